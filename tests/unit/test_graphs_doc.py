"""docs/graphs.md must say what the engine does: its diamond template is a valid template, its range table is what
canvas.execution.graph selects and feeds, and its examples name blocks that exist with variables they have."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from canvas.applications.catalog import load_application_catalog
from canvas.catalog.definition import check_template_variables, parse_definition
from canvas.execution.graph import (
    RangeError,
    block_graph,
    outside_inputs,
    run_plan,
    topological_order,
)
from canvas.execution.registry import all_blocks, get_block

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "graphs.md"
NONE = "–"  # the doc's "not given" / "none"


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def diamond(text):  # noqa: ANN201 - the stored chain of the doc's template
    raw = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1))
    definition = parse_definition(raw, load_application_catalog(ROOT / "templates_catalog" / "applications"))
    return [entry.to_json() for entry in definition.chain], raw


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n#", start + len(heading))
    return text[start:following if following != -1 else None]


def table_rows(part: str) -> list[list[str]]:
    """The cells of a markdown table's body rows (the header and the |---| line left out)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in part.splitlines() if line.startswith("|")]
    return rows[2:]


def numbers(cell: str) -> list[int]:
    return [] if cell == NONE else [int(number) for number in cell.split(",")]


def bound(cell: str) -> int | None:
    return None if cell == NONE else int(cell)


def test_the_diamond_template_is_valid_and_numbered_as_the_doc_says(diamond):
    chain, raw = diamond
    assert [entry["blockName"] for entry in chain] == ["Get orders", "Sold", "Pending", "Report"]
    assert {(edge.source, edge.target) for edge in block_graph(chain).edges} == {(1, 2), (1, 3), (2, 4), (3, 4)}
    # "and so it would be if Report were written first"
    ids = [entry["uniqueBlockId"] for entry in raw["chain"]]
    edges = [(given["from"], entry["uniqueBlockId"]) for entry in raw["chain"] for given in entry["inputs"]]
    assert topological_order([ids[3], *ids[:3]], edges) == ids


def test_the_range_table_is_what_the_engine_runs_and_feeds(text, diamond):
    graph = block_graph(diamond[0])
    rows = table_rows(section(text, "### Ranges on the diamond"))
    assert len(rows) >= 10, rows  # the table was found and read
    forms = set()
    for run_from, run_till, runs, stored in rows:
        forms.add((run_from != NONE, run_till != NONE))
        if runs.startswith("400"):
            with pytest.raises(RangeError):
                run_plan(graph, bound(run_from), bound(run_till))
            continue
        plan = run_plan(graph, bound(run_from), bound(run_till))
        assert plan == numbers(runs), (run_from, run_till)
        fed = [] if stored == NONE else [tuple(int(n) for n in pair.split("→")) for pair in stored.split(",")]
        read = sorted((edge.source, edge.target) for edges in outside_inputs(graph, plan).values() for edge in edges)
        assert read == sorted(fed), (run_from, run_till)
    assert forms == {(False, False), (True, False), (False, True), (True, True)}  # every range form


def test_the_seed_mapping_names_blocks_that_exist(text):
    keys = {block.key for block in all_blocks()}
    rows = table_rows(section(text, "## The v2 seed's \"Create a flow\" example here"))
    named = {name for _seed, here, _how in rows for name in re.findall(r"`([^`]+)`", here)}
    assert named - {"cron"} <= keys, named - keys
    assert {"http.request", "records.from_variable", "noop"} <= named


@pytest.mark.parametrize("index", [0, 1])
def test_the_flow_graphs_name_blocks_and_fields_that_exist(text, index):
    graph = json.loads(re.findall(r"```json\n(.*?)```", text, re.DOTALL)[index])
    for node in graph["nodes"]:
        check_template_variables(get_block(node["command"]), node.get("fields") or {}, node["id"], require=True)
    order = topological_order([node["id"] for node in graph["nodes"]],
                              [(edge["source"], edge["target"]) for edge in graph["edges"]])
    assert order == [node["id"] for node in graph["nodes"]]  # written in the order they are numbered

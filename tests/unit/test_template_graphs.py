"""Templates that are graphs: `inputs` parsed, checked and stored in topological order; chains stored as before."""
from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest
import yaml

from canvas.applications.catalog import load_application_catalog
from canvas.catalog.definition import (
    TemplateDefinitionError,
    definition_from_json,
    inputs_for_display,
    parse_definition,
)
from canvas.catalog.files import TemplateFileError, load_template_files
from canvas.execution.graph import block_graph

SHIPPED = Path(__file__).resolve().parents[2] / "templates_catalog"
RECORDS, UPPER, LOWER, JOIN, CSV = (str(uuid.UUID(int=n)) for n in (0x11, 0x22, 0x33, 0x44, 0x55))

# A graph template for a test-only catalog (the shipped catalog's published templates are each run end to end by
# tests/e2e/test_catalog_templates.py): records, two branches with their own JSONata, and a join. Given with the join
# first, so that storing it in topological order moves it.
GRAPH_TEMPLATE = f"""
id: 7e2b1c94-0d5a-4f3e-8b6c-1a9d2e3f4b50
name: "Sample: a fork and a join"
description: One list of records, two transforms, and the two results joined.
version: 1.0.0
state: Published
failurePolicy: continue
applications: []
chain:
  - uniqueBlockId: {JOIN}
    blockName: Join
    block: noop
    inputs:
      - from: {UPPER}
      - from: {LOWER}
        inputCondition: "name != 'skip'"
  - uniqueBlockId: {RECORDS}
    blockName: Records
    block: records.from_variable
    inputs: []
    variables:
      records: [{{id: 1, name: Ada}}, {{id: 2, name: skip}}]
  - uniqueBlockId: {UPPER}
    blockName: Upper
    block: jsonata.transform
    variables: {{expression: "{{'name': $uppercase(name)}}"}}
  - uniqueBlockId: {LOWER}
    blockName: Lower
    block: jsonata.transform
    inputs:
      - {{from: {RECORDS}, inputMapper: "{{'id': id, 'name': $lowercase(name)}}"}}
    variables: {{expression: "$"}}
"""


@pytest.fixture(scope="module")
def catalog():
    return load_application_catalog(SHIPPED / "applications")


def graph() -> dict:
    return yaml.safe_load(GRAPH_TEMPLATE)


def entry(block_id: str, name: str, block: str, variables: dict | None = None, **extra) -> dict:
    return {"uniqueBlockId": block_id, "blockName": name, "block": block, "variables": variables or {}, **extra}


def refusal(raw: dict, catalog) -> TemplateDefinitionError:
    with pytest.raises(TemplateDefinitionError) as refused:
        parse_definition(raw, catalog)
    return refused.value


def test_a_graph_is_accepted_and_stored_in_stable_topological_order(catalog):
    definition = parse_definition(graph(), catalog)
    # Records has no parent; Upper was given without inputs, so it is fed by the entry given before it (Records);
    # Lower comes after Upper as given; the join needs both.
    assert [item.block_name for item in definition.chain] == ["Records", "Upper", "Lower", "Join"]
    stored = definition.to_json()
    assert [item.get("inputs") for item in stored["chain"]] == [
        [], [{"from": RECORDS}], [{"from": RECORDS, "inputMapper": "{'id': id, 'name': $lowercase(name)}"}],
        [{"from": UPPER}, {"from": LOWER, "inputCondition": "name != 'skip'"}]]
    assert stored["failurePolicy"] == "continue"
    assert definition_from_json(stored) == definition
    assert parse_definition(stored, catalog) == definition  # parsing what is stored changes nothing
    edges = {(edge.source, edge.target) for edge in block_graph(stored["chain"]).edges}
    assert edges == {(1, 2), (1, 3), (2, 4), (3, 4)}
    assert inputs_for_display(stored["chain"]) == [
        [], [{"fromBlock": 1}], [{"fromBlock": 1, "inputMapper": "{'id': id, 'name': $lowercase(name)}"}],
        [{"fromBlock": 2}, {"fromBlock": 3, "inputCondition": "name != 'skip'"}]]


def test_ties_keep_the_given_order(catalog):
    raw = {"applications": [], "chain": [
        entry(RECORDS, "Records", "records.from_variable", {"records": []}, inputs=[]),
        entry(LOWER, "Lower", "noop", inputs=[{"from": RECORDS}]),
        entry(UPPER, "Upper", "noop", inputs=[{"from": RECORDS}]),
    ]}
    assert [item.block_name for item in parse_definition(raw, catalog).chain] == ["Records", "Lower", "Upper"]


def test_a_from_that_names_no_block_of_the_chain_is_refused_naming_it(catalog):
    raw = graph()
    stranger = str(uuid.UUID(int=0x99))
    raw["chain"][0]["inputs"][1]["from"] = stranger
    refused = refusal(raw, catalog)
    assert refused.entry == "chain[0].inputs[1].from"
    assert stranger in str(refused) and "unknown block" in str(refused)


@pytest.mark.parametrize(("change", "entry_named", "words"), [
    pytest.param(lambda raw: raw["chain"][3]["inputs"].append({"from": RECORDS}), "chain[3].inputs[1].from",
                 "already an input", id="duplicate-parent"),
    pytest.param(lambda raw: raw["chain"][0]["inputs"].append({"from": JOIN}), "chain[0].inputs[2].from",
                 "input of itself", id="own-output"),
    pytest.param(lambda raw: raw["chain"][0]["inputs"][0].update(inputMapper="{'a': "),
                 "chain[0].inputs[0].inputMapper", "not a valid JSONata expression", id="bad-mapper"),
    pytest.param(lambda raw: raw["chain"][0]["inputs"][1].update(inputCondition=7),
                 "chain[0].inputs[1].inputCondition", "JSONata expression", id="condition-not-text"),
    pytest.param(lambda raw: raw["chain"][0]["inputs"][0].update(form=RECORDS), "chain[0].inputs[0].form",
                 "unknown property", id="unknown-key"),
    pytest.param(lambda raw: raw["chain"][0].update(inputs={"from": UPPER}), "chain[0].inputs", "must be a list",
                 id="not-a-list"),
    pytest.param(lambda raw: raw.update(failurePolicy="retry"), "failurePolicy", "failFast, continue",
                 id="bad-failure-policy"),
])
def test_bad_inputs_are_refused_naming_the_entry(catalog, change, entry_named, words):
    raw = graph()
    change(raw)
    refused = refusal(raw, catalog)
    assert refused.entry == entry_named and words in str(refused)


def test_a_cycle_is_refused_naming_its_blocks(catalog):
    raw = {"applications": [], "chain": [
        entry(RECORDS, "Records", "records.from_variable", {"records": []}, inputs=[]),
        entry(UPPER, "Upper", "noop", inputs=[{"from": RECORDS}, {"from": LOWER}]),
        entry(LOWER, "Lower", "noop", inputs=[{"from": JOIN}]),
        entry(JOIN, "Join", "noop", inputs=[{"from": UPPER}]),
    ]}
    refused = refusal(raw, catalog)
    assert refused.entry == "chain"
    assert refused.problem.startswith("the graph has a cycle: ")
    cycle = refused.problem.removeprefix("the graph has a cycle: ").split(" -> ")
    assert set(cycle) == {"Upper", "Lower", "Join"} and cycle[0] == cycle[-1] and len(cycle) == 4


def test_a_cycle_of_blocks_with_the_same_name_is_named_by_block_ids(catalog):
    raw = {"applications": [], "chain": [
        entry(UPPER, "Same", "noop", inputs=[{"from": LOWER}]),
        entry(LOWER, "Same", "noop", inputs=[{"from": UPPER}]),
    ]}
    assert set(refusal(raw, catalog).problem.split(": ", 1)[1].split(" -> ")) == {UPPER, LOWER}


def test_a_join_of_a_block_that_gives_a_file_is_refused_naming_the_join(catalog):
    raw = {"applications": [], "chain": [
        entry(RECORDS, "Records", "records.from_variable", {"records": []}, inputs=[]),
        entry(CSV, "As CSV", "csv.from_records", inputs=[{"from": RECORDS}]),
        entry(UPPER, "Upper", "jsonata.transform", {"expression": "$"}, inputs=[{"from": RECORDS}]),
        entry(JOIN, "Join", "noop", inputs=[{"from": CSV}, {"from": UPPER}]),
    ]}
    refused = refusal(raw, catalog)
    assert refused.entry == "chain[3].inputs"
    assert "'Join' joins the outputs of 'As CSV', 'Upper'" in refused.problem
    assert "'As CSV' (csv.from_records) gives a file" in refused.problem


def test_a_mapper_on_the_edge_from_a_file_is_refused(catalog):
    raw = {"applications": [], "chain": [
        entry(RECORDS, "Records", "records.from_variable", {"records": []}, inputs=[]),
        entry(CSV, "As CSV", "csv.from_records", inputs=[{"from": RECORDS}]),
        entry(JOIN, "After", "noop", inputs=[{"from": CSV, "inputMapper": "{'a': a}"}]),
    ]}
    refused = refusal(raw, catalog)
    assert refused.entry == "chain[2].inputs[0].inputMapper" and "gives a file" in refused.problem


def test_a_chain_is_stored_exactly_as_before(catalog):
    sample = yaml.safe_load((SHIPPED / "templates" / "sample-records-to-csv.yaml").read_text(encoding="utf-8"))
    given = copy.deepcopy(sample)
    definition = parse_definition(sample, catalog)
    stored = definition.to_json()
    assert sample == given
    assert stored == {"applications": [], "chain": [
        {key: item.get(key) for key in ("uniqueBlockId", "blockName", "block", "application", "variables")}
        for item in sample["chain"]]}
    assert not definition.is_graph and all(item.inputs is None for item in definition.chain)
    # the content hash it had before graphs (catalog sync compares it: a changed hash would read as a new version)
    assert definition.content_hash() == "fc70e1002150b69d455bfbb9b1698933d4334e46323914a0d557b80fc825b6f0"
    assert inputs_for_display(stored["chain"]) == [None, None, None]


def test_a_graph_template_file_loads_from_a_catalog(catalog, tmp_path):
    (tmp_path / "fork-and-join.yaml").write_text(GRAPH_TEMPLATE, encoding="utf-8")
    [template] = load_template_files(tmp_path, catalog)
    assert [item.block_name for item in template.definition.chain] == ["Records", "Upper", "Lower", "Join"]
    assert template.definition.failure_policy == "continue"


def test_a_graph_template_file_with_a_cycle_stops_the_load_naming_the_file(catalog, tmp_path):
    raw = graph()
    raw["chain"][1]["inputs"] = [{"from": JOIN}]
    path = tmp_path / "cycle.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(TemplateFileError) as refused:
        load_template_files(tmp_path, catalog)
    assert str(path) in str(refused.value) and "chain: the graph has a cycle: " in str(refused.value)

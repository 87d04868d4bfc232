"""Regenerates the generated parts of docs/blocks.md and README.md from the block registry and the shipped catalog,
so that the documents never drift from the code (tests/unit/test_blocks_doc.py fails when they have).

    .venv/bin/python docs/generate_blocks_doc.py           # rewrite docs/blocks.md and README.md
    .venv/bin/python docs/generate_blocks_doc.py --check   # exit 1 when either is out of date

Only the text between the markers <!-- generated:NAME --> and <!-- end generated:NAME --> is replaced; the rest of
the document (the introduction and the worked example) is written by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canvas.applications.catalog import ApplicationCatalog  # noqa: E402
from canvas.catalog.files import CatalogTemplate  # noqa: E402
from canvas.catalog.loader import load_catalog  # noqa: E402
from canvas.execution.blocks.base import Block, VariableSpec  # noqa: E402
from canvas.execution.registry import all_blocks  # noqa: E402

DOCUMENT = ROOT / "docs" / "blocks.md"
README = ROOT / "README.md"  # its short lists of the blocks and templates link to DOCUMENT
DOCUMENTS = (DOCUMENT, README)
DATA_WORDS = {"records": "records", "file": "a file", "none": "nothing", "any": "records, a file or nothing"}
GIVES_WORDS = {"records": "records", "file": "a file", "none": "nothing", "any": "what it was given"}
GENERATED = re.compile(r"(<!-- generated:(?P<name>[a-z]+) -->\n).*?(<!-- end generated:(?P=name) -->)", re.S)


# --- the blocks ------------------------------------------------------------------------------------------------------


def blocks_section(applications: ApplicationCatalog, templates: list[CatalogTemplate]) -> str:
    entries = [block_entry(block, application_words(block, applications, templates)) for block in all_blocks()]
    return blocks_index() + "\n\n" + "\n\n".join(entries)


def blocks_index(link_to: str = "") -> str:
    """One row per block, linking to its section (`link_to`: the document holding the sections, "" for this one)."""
    index = ["| key | title | application | side effects | takes → gives |", "|---|---|---|---|---|"]
    index += [f"| [`{block.key}`]({link_to}#{anchor(block.key)}) | {cell(block.title)} | "
              f"{block.application_kind or '–'} | {'yes' if block.side_effects else 'no'} | "
              f"{block.input_kind} → {block.output_kind} |"
              for block in all_blocks()]
    return "\n".join(index)


def block_entry(block: type[Block], application: str) -> str:
    lines = [f"### `{block.key}`", "", f"**{block.title}.** {block.description}".rstrip(), "",
             f"- Application: {application}",
             f"- Side effects: {side_effect_words(block)}",
             f"- Takes {DATA_WORDS[block.input_kind]}; gives {GIVES_WORDS[block.output_kind]}."]
    if block.variables:
        lines += ["", "| variable | type | default | required | meaning |", "|---|---|---|---|---|"]
        lines += [variable_row(name, spec) for name, spec in block.variables.items()]
    else:
        lines += ["", "No variables."]
    return "\n".join(lines)


def anchor(block_key: str) -> str:
    """The anchor GitHub gives the heading "### `key`": lower case, dots and backticks dropped."""
    return re.sub(r"[^a-z0-9_\- ]", "", block_key.lower()).replace(" ", "-")


def application_words(block: type[Block], applications: ApplicationCatalog, templates: list[CatalogTemplate]) -> str:
    """The application kind, and which applications the shipped templates bind to the block (else every
    application of that kind: a template may bind any of them)."""
    kind = block.application_kind
    if kind is None:
        return "none"
    bound = sorted({entry.application for template in templates for entry in template.definition.chain
                    if entry.block == block.key and entry.application})
    if bound:
        return f"kind `{kind}`; the shipped templates bind " + ", ".join(
            application_name(short_name, applications) for short_name in bound)
    names = sorted(f"{spec.name} (`{spec.short_name}`)" for spec in applications if spec.kind == kind)
    return f"kind `{kind}`: " + ", ".join(names)


def side_effect_words(block: type[Block]) -> str:
    if block.side_effects:
        return "yes, it changes the outside world (a dry run records what it would have done instead)"
    return "no (a dry run really runs it)"


def variable_row(name: str, spec: VariableSpec) -> str:
    meaning = spec.description
    if spec.choices:
        meaning += " One of: " + ", ".join(f"`{choice}`" for choice in spec.choices) + "."
    if not spec.placeholders:
        meaning += " Taken literally (no placeholders)."
    default = "–" if spec.default is None else f"`{json.dumps(spec.default)}`"
    return f"| `{name}` | {spec.type} | {default} | {'yes' if spec.required else 'no'} | {cell(meaning)} |"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- the shipped templates -----------------------------------------------------------------------------------------


def templates_section(applications: ApplicationCatalog, templates: Iterable[CatalogTemplate]) -> str:
    return "\n\n".join(template_entry(template, applications) for template in by_name(templates))


def templates_index(applications: ApplicationCatalog, templates: Iterable[CatalogTemplate], link_to: str) -> str:
    """One row per shipped template: its state, the applications it needs and its chain of blocks."""
    rows = ["| template | state | applications | blocks |", "|---|---|---|---|"]
    for template in by_name(templates):
        name, definition = template.header["name"], template.definition
        needs = ", ".join(f"`{short_name}`" for short_name in definition.applications) or "–"
        chain = " → ".join(entry.block_name for entry in definition.chain)
        rows.append(f"| [{cell(name)}]({link_to}#{heading_anchor(name)}) | {template.header['state']} | {needs} | "
                    f"{cell(chain)} |")
    return "\n".join(rows)


def by_name(templates: Iterable[CatalogTemplate]) -> list[CatalogTemplate]:
    return sorted(templates, key=lambda template: template.header["name"].lower())


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def template_entry(template: CatalogTemplate, applications: ApplicationCatalog) -> str:
    header = template.header
    version = f"version {header['version']}" if header["version"] else "no version"
    needs = [application_name(short_name, applications) for short_name in template.definition.applications]
    chain = [f"{number}. {chain_entry_words(entry)}" for number, entry in enumerate(template.definition.chain, start=1)]
    return "\n".join([f"### {header['name']}", "", f"`{header['id']}` — {header['state']}, {version}. "
                      f"{header['description']}".rstrip(), "",
                      "Applications: " + (", ".join(needs) if needs else "none") + ".", "", *chain])


def chain_entry_words(entry) -> str:  # noqa: ANN001 - canvas.catalog.definition.ChainEntry
    """"Name (`block.key`, APP)" and the variables the template sets."""
    where = f"`{entry.block}`" + (f", {entry.application}" if entry.application else "")
    variables = f": `{json.dumps(entry.variables, ensure_ascii=False)}`" if entry.variables else ""
    return f"{entry.block_name} ({where}){variables}"


def application_name(short_name: str, applications: ApplicationCatalog) -> str:
    spec = applications.get_by_short_name(short_name)
    return f"{spec.name} (`{short_name}`)" if spec else f"`{short_name}`"


# --- the document --------------------------------------------------------------------------------------------------


def generated_sections() -> dict[str, Callable[[], str]]:
    applications, templates = load_catalog({})
    return {"blocks": lambda: blocks_section(applications, templates),
            "templates": lambda: templates_section(applications, templates),
            "blockindex": lambda: blocks_index(link_to="docs/blocks.md"),
            "templateindex": lambda: templates_index(applications, templates, link_to="docs/blocks.md")}


def regenerated(document: str) -> str:
    """`document` with every generated section rewritten; an unknown section name is an error."""
    sections = generated_sections()

    def replace(match: re.Match) -> str:
        return match.group(1) + sections[match.group("name")]() + "\n" + match.group(3)

    return GENERATED.sub(replace, document)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the documents are up to date")
    args = parser.parse_args()
    stale = []
    for document in DOCUMENTS:
        current = document.read_text(encoding="utf-8")
        wanted = regenerated(current)
        if wanted != current:
            stale.append(document.relative_to(ROOT).as_posix())
            if not args.check:
                document.write_text(wanted, encoding="utf-8")
    if args.check:
        print(f"out of date: {', '.join(stale)}" if stale else "up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerates the generated parts of docs/blocks.md from the block registry and the shipped catalog, so that the
document never drifts from the code (tests/unit/test_blocks_doc.py fails when it has).

    .venv/bin/python docs/generate_blocks_doc.py           # rewrite docs/blocks.md
    .venv/bin/python docs/generate_blocks_doc.py --check   # exit 1 when docs/blocks.md is out of date

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
DATA_WORDS = {"records": "records", "file": "a file", "none": "nothing", "any": "records, a file or nothing"}
GIVES_WORDS = {"records": "records", "file": "a file", "none": "nothing", "any": "what it was given"}
GENERATED = re.compile(r"(<!-- generated:(?P<name>[a-z]+) -->\n).*?(<!-- end generated:(?P=name) -->)", re.S)


# --- the blocks ------------------------------------------------------------------------------------------------------


def blocks_section(applications: ApplicationCatalog, templates: list[CatalogTemplate]) -> str:
    index = ["| key | title | application | side effects | takes → gives |", "|---|---|---|---|---|"]
    index += [f"| [`{block.key}`](#{anchor(block.key)}) | {cell(block.title)} | {block.application_kind or '–'} | "
              f"{'yes' if block.side_effects else 'no'} | {block.input_kind} → {block.output_kind} |"
              for block in all_blocks()]
    entries = [block_entry(block, application_words(block, applications, templates)) for block in all_blocks()]
    return "\n".join(index) + "\n\n" + "\n\n".join(entries)


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
    entries = [template_entry(template, applications)
               for template in sorted(templates, key=lambda template: template.header["name"].lower())]
    return "\n\n".join(entries)


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
            "templates": lambda: templates_section(applications, templates)}


def regenerated(document: str) -> str:
    """`document` with every generated section rewritten; an unknown section name is an error."""
    sections = generated_sections()

    def replace(match: re.Match) -> str:
        return match.group(1) + sections[match.group("name")]() + "\n" + match.group(3)

    return GENERATED.sub(replace, document)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether docs/blocks.md is up to date")
    args = parser.parse_args()
    current = DOCUMENT.read_text(encoding="utf-8")
    wanted = regenerated(current)
    if args.check:
        print("docs/blocks.md is up to date" if wanted == current else "docs/blocks.md is out of date")
        return 0 if wanted == current else 1
    DOCUMENT.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

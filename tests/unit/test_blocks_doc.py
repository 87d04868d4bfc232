"""docs/blocks.md and the README's lists are generated from the block registry and the shipped catalog: they must say
what the code does."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from canvas.execution.registry import all_blocks

GENERATOR = Path(__file__).resolve().parents[2] / "docs" / "generate_blocks_doc.py"


def load_generator():  # noqa: ANN201 - the docs/generate_blocks_doc module
    """docs/ is no package: load the script as a module."""
    spec = importlib.util.spec_from_file_location("generate_blocks_doc", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and friends look their module up here
    spec.loader.exec_module(module)
    return module


def test_the_committed_documents_are_what_the_generator_writes():
    generator = load_generator()
    for document in generator.DOCUMENTS:
        committed = document.read_text(encoding="utf-8")
        assert generator.regenerated(committed) == committed, (
            f"{document.name} is out of date: run .venv/bin/python docs/generate_blocks_doc.py")


def test_every_block_and_shipped_template_has_its_section():
    # Guards the markers too: without them nothing would be regenerated and the first test would pass vacuously.
    text = load_generator().DOCUMENT.read_text(encoding="utf-8")
    missing = [block.key for block in all_blocks() if f"### `{block.key}`" not in text]
    assert not missing, missing
    for name in ("Quinyx Employee Export Into FTP(CSV)", "Sample: records to CSV", "Transferring of Orders & Customers"):
        assert f"### {name}" in text


def test_the_readme_lists_every_block_and_shipped_template():
    generator = load_generator()
    readme = generator.README.read_text(encoding="utf-8")
    missing = [block.key for block in all_blocks() if f"[`{block.key}`](docs/blocks.md#" not in readme]
    assert not missing, missing
    applications, templates = generator.load_catalog({})
    for template in templates:
        name = template.header["name"]
        assert f"[{name}](docs/blocks.md#{generator.heading_anchor(name)})" in readme
        assert f"### {name}" in generator.DOCUMENT.read_text(encoding="utf-8")  # the link has somewhere to go

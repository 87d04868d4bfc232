"""The engine (canvas/execution) imports no dialect: not the v2 JSON:API one (canvas.v2), not the HTTP layer of the
Canvas one (its packages' resources and schemas modules), not flask_smorest. Dialects translate documents and call
the engine, never the other way round."""
from __future__ import annotations

import ast
from pathlib import Path

import canvas

PACKAGE = Path(canvas.__file__).parent
ENGINE = PACKAGE / "execution"
DIALECT_MODULE_NAMES = {"resources", "schemas"}  # a Canvas-dialect package's HTTP resources and their schemas


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = PACKAGE.parent) -> list[tuple[int, str]]:
    """(line, module) for every module the file imports, at top level or inside functions; `from a import b`
    yields both a and a.b, since b may be a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.append((node.lineno, base))
            names.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
    return names


def forbidden(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "flask_smorest":
        return True
    if parts[0] != "canvas" or len(parts) < 2:
        return False
    if parts[1] == "v2":
        return True
    return parts[1] != "execution" and any(part in DIALECT_MODULE_NAMES for part in parts[2:])


def test_the_engine_imports_no_dialect():
    offenders = []
    for path in sorted(ENGINE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for line in sorted({line for line, name in imported_names(path) if forbidden(name)}):
            offenders.append(f"{module_name(path)} ({path.relative_to(PACKAGE.parent)}:{line}): "
                             f"{lines[line - 1].strip()}")
    assert not offenders, "the engine must not import a dialect:\n" + "\n".join(offenders)


def test_the_check_sees_every_way_of_importing_a_dialect(tmp_path):
    engine = tmp_path / "canvas" / "execution"
    engine.mkdir(parents=True)
    sample = engine / "sample.py"
    sample.write_text("import flask_smorest\n"
                      "from canvas import v2\n"
                      "from canvas.v2.graph import step_id\n"
                      "from canvas.runs import resources\n"
                      "def later():\n"
                      "    import canvas.workflows.schemas\n"
                      "from .blocks import base\n"
                      "from canvas.execution.data import Records\n")
    names = {name for _, name in imported_names(sample, tmp_path)}
    assert {name for name in names if forbidden(name)} == {
        "flask_smorest", "canvas.v2", "canvas.v2.graph", "canvas.v2.graph.step_id", "canvas.runs.resources",
        "canvas.workflows.schemas"}
    assert "canvas.execution.blocks.base" in names  # relative imports are resolved

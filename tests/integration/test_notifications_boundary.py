"""canvas.notifications is engine-side: like canvas.execution, it imports no dialect (canvas.v2, a Canvas package's
resources or schemas, flask_smorest). The dialects translate the settings and call it, never the other way round."""
from __future__ import annotations

from tests.unit.test_engine_boundary import PACKAGE, forbidden, imported_names, module_name


def test_notifications_import_no_dialect():
    offenders = [f"{module_name(path)}: {name}" for path in sorted((PACKAGE / "notifications").rglob("*.py"))
                 for _line, name in imported_names(path) if forbidden(name)]
    modules = list((PACKAGE / "notifications").rglob("*.py"))
    assert len(modules) >= 4 and not offenders, offenders

"""Loading and checking the whole catalog (applications, later templates) as one all-or-nothing step."""
from __future__ import annotations

from typing import Any

from canvas.applications.catalog import CatalogError, load_application_catalog
from canvas.extensions import catalog_dir


class CatalogCheckError(Exception):
    """The catalog cannot be used; the message names the file, the entry and the problem."""


def check_catalog(settings: dict[str, Any]) -> str:
    root = catalog_dir(settings)
    try:
        applications = load_application_catalog(root / "applications")
    except CatalogError as exc:
        raise CatalogCheckError(str(exc)) from None
    return f"catalog OK: {len(applications)} applications in {root}"

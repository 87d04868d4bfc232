"""Loading, checking and syncing the whole catalog (applications and templates) as one all-or-nothing step."""
from __future__ import annotations

from typing import Any

from canvas.applications.catalog import ApplicationCatalog, CatalogError, load_application_catalog
from canvas.catalog.files import CatalogTemplate, TemplateFileError, load_template_files
from canvas.extensions import catalog_dir


class CatalogCheckError(Exception):
    """The catalog cannot be used; the message names the file, the entry and the problem."""


def load_catalog(settings: dict[str, Any]) -> tuple[ApplicationCatalog, list[CatalogTemplate]]:
    root = catalog_dir(settings)
    try:
        applications = load_application_catalog(root / "applications")
        return applications, load_template_files(root / "templates", applications)
    except (CatalogError, TemplateFileError) as exc:
        raise CatalogCheckError(str(exc)) from None


def check_catalog(settings: dict[str, Any]) -> str:
    applications, templates = load_catalog(settings)
    return f"catalog OK: {len(applications)} applications, {len(templates)} templates in {catalog_dir(settings)}"


def sync_catalog_files(database, settings: dict[str, Any]) -> str:  # noqa: ANN001 - canvas.db.Database
    """Load template files into the database (idempotent); the whole sync is one transaction."""
    from canvas.catalog.service import sync_catalog

    _applications, templates = load_catalog(settings)
    try:
        with database.transaction() as session:
            report = sync_catalog(session, templates)
    except TemplateFileError as exc:
        raise CatalogCheckError(str(exc)) from None
    return f"catalog sync: {report.summary()}"

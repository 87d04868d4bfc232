"""Workflow templates as data files under templates_catalog/templates/, one template per file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from canvas.applications.catalog import SAFE_LOADER, ApplicationCatalog
from canvas.catalog.definition import TemplateDefinition, TemplateDefinitionError, parse_definition, parse_header

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")


class TemplateFileError(Exception):
    """A template file cannot be used; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class CatalogTemplate:
    path: Path
    header: dict
    definition: TemplateDefinition

    @property
    def id(self) -> str:
        return self.header["id"]

    @property
    def content_hash(self) -> str:
        header = {key: value for key, value in self.header.items() if key != "id"}
        return self.definition.content_hash(header)


def load_template_files(directory: Path, applications: ApplicationCatalog) -> list[CatalogTemplate]:
    """Every template file, validated; any bad file stops the whole load."""
    if not directory.is_dir():
        return []
    templates: list[CatalogTemplate] = []
    seen: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in TEMPLATE_SUFFIXES):
        template = _load_file(path, applications)
        if template.id in seen:
            raise TemplateFileError(f"{path}: id: {template.id} is also used by {seen[template.id].name}")
        seen[template.id] = path
        templates.append(template)
    return templates


def _load_file(path: Path, applications: ApplicationCatalog) -> CatalogTemplate:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 - safe
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TemplateFileError(f"{path}: cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise TemplateFileError(f"{path}: must hold one template (a mapping)")
    unknown = set(raw) - {"id", "name", "description", "version", "state", "organizationId", "applications", "chain",
                          "failurePolicy", "draftIsCommitted"}
    if unknown:
        raise TemplateFileError(f"{path}: {sorted(unknown)[0]}: unknown key")
    try:
        header = parse_header(raw)
        header["draft_is_committed"] = _draft_is_committed(raw, header["state"])
        return CatalogTemplate(path, header, parse_definition(raw, applications))
    except TemplateDefinitionError as exc:
        raise TemplateFileError(f"{path}: {exc}") from None


def _draft_is_committed(raw: dict, state: str) -> bool | None:
    """Whether a Published template's draft holds nothing beyond its last published version (default true); the
    Canvas document shows a Published template with uncommitted draft changes as `draftIsCommitted: false`, and a
    Draft as null."""
    value = raw.get("draftIsCommitted")
    if state != "Published":
        if value is not None:
            raise TemplateDefinitionError("draftIsCommitted", "applies to a Published template only")
        return None
    if value is None:
        return True
    if not isinstance(value, bool):
        raise TemplateDefinitionError("draftIsCommitted", "must be true or false")
    return value

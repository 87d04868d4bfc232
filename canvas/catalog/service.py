"""Workflow templates: catalog sync, visibility, organization templates (drafts, publishing) and versions."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from canvas.applications.catalog import ApplicationCatalog
from canvas.audit import service as audit
from canvas.catalog.definition import (
    ChainEntry,
    TemplateDefinition,
    TemplateDefinitionError,
    bump_version,
    definition_from_json,
    inputs_for_display,
    parse_definition,
    version_key,
)
from canvas.catalog.files import CatalogTemplate, TemplateFileError
from canvas.errors import BadRequestError, ConflictError, ForbiddenError, NotFoundError
from canvas.models import Organization, WorkflowTemplate, WorkflowTemplateVersion
from canvas.models.base import utcnow

log = logging.getLogger(__name__)
PUBLISHED, DRAFT = "Published", "Draft"


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.new_versions)} new versions, {len(self.updated)} drafts "
                f"updated, {self.unchanged} unchanged")


# --- catalog sync --------------------------------------------------------------------------------------------------

def sync_catalog(session: Session, templates: list[CatalogTemplate]) -> SyncReport:
    """Load catalog files into the database. Unchanged files change nothing; a changed Published file with a new
    version adds that version (older versions stay for the workflows that use them)."""
    report = SyncReport()
    for template in templates:
        _sync_one(session, template, report)
    session.flush()
    return report


def _sync_one(session: Session, template: CatalogTemplate, report: SyncReport) -> None:
    try:
        _sync_checked(session, template, report)
    except TemplateDefinitionError as exc:
        raise TemplateFileError(f"{template.path}: {exc}") from None


def _sync_checked(session: Session, template: CatalogTemplate, report: SyncReport) -> None:
    existing = session.get(WorkflowTemplate, uuid.UUID(template.id))
    header = template.header
    if header["organization_id"] and session.get(Organization, uuid.UUID(header["organization_id"])) is None:
        raise TemplateFileError(f"{template.path}: organizationId: organization {header['organization_id']} "
                                "does not exist")
    if existing is None:
        _create_from_file(session, template)
        report.created.append(template.id)
    elif existing.source != "catalog":
        raise TemplateFileError(f"{template.path}: id: {template.id} belongs to a template created through the API")
    elif existing.content_hash == template.content_hash:
        report.unchanged += 1
    else:
        published_new = _update_from_file(session, existing, template)
        (report.new_versions if published_new else report.updated).append(template.id)


def _create_from_file(session: Session, template: CatalogTemplate) -> None:
    header, now = template.header, utcnow()
    row = WorkflowTemplate(
        id=uuid.UUID(template.id), organization_id=_uuid_or_none(header["organization_id"]), name=header["name"],
        description=header["description"], state=header["state"], version=None,
        definition=template.definition.to_json(), source="catalog", content_hash=template.content_hash,
        date_created=now, date_modified=now)
    session.add(row)
    if header["state"] == PUBLISHED:
        _add_version(session, row, header["version"], template.definition)
    row.draft_is_committed = header.get("draft_is_committed", row.draft_is_committed)


def _update_from_file(session: Session, row: WorkflowTemplate, template: CatalogTemplate) -> bool:
    header = template.header
    published_new = False
    if header["state"] == PUBLISHED:
        stored = _version_row(session, row.id, header["version"])
        if stored is not None and stored.content_hash != template.definition.content_hash():
            raise TemplateFileError(f"{template.path}: version: {header['version']} is already published with "
                                    "other content; give the changed template a new version")
        if stored is None:
            _add_version(session, row, header["version"], template.definition)
            published_new = True
    row.name, row.description, row.state = header["name"], header["description"], header["state"]
    row.draft_is_committed = header.get("draft_is_committed", row.draft_is_committed)
    row.definition = template.definition.to_json()
    row.content_hash = template.content_hash
    row.date_modified = utcnow()
    return published_new


def _add_version(session: Session, row: WorkflowTemplate, version: str, definition: TemplateDefinition) -> None:
    if row.version and version_key(version) <= version_key(row.version):
        raise TemplateDefinitionError("version", f"{version} is not newer than the published {row.version}")
    session.add(WorkflowTemplateVersion(template_id=row.id, version=version, name=row.name,
                                        description=row.description, definition=definition.to_json(),
                                        content_hash=definition.content_hash()))
    now = utcnow()
    row.version, row.state, row.draft_is_committed, row.date_committed = version, PUBLISHED, True, now


def _version_row(session: Session, template_id: uuid.UUID, version: str) -> WorkflowTemplateVersion | None:
    return session.scalar(select(WorkflowTemplateVersion).where(WorkflowTemplateVersion.template_id == template_id,
                                                                WorkflowTemplateVersion.version == version))


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


# --- visibility ------------------------------------------------------------------------------------------------------

def visible_templates(session: Session, organization_id: uuid.UUID,
                      args: dict | None = None) -> tuple[list[WorkflowTemplate], int]:
    """Global templates (as the Canvas document lists them, drafts included) and every template of the organization,
    by name: all of them or the page `args` asks for (see canvas.workflows.service.list_of); and how many in all."""
    from canvas.workflows.service import list_of  # imported here: the workflows service uses this one

    query = select(WorkflowTemplate).where(or_(WorkflowTemplate.organization_id.is_(None),
                                               WorkflowTemplate.organization_id == organization_id))
    return list_of(session, query, (WorkflowTemplate.name, WorkflowTemplate.id), args)


def find_visible_template(session: Session, organization_id: uuid.UUID, template_id: Any) -> WorkflowTemplate:
    try:
        row = session.get(WorkflowTemplate, uuid.UUID(str(template_id)))
    except ValueError:
        row = None
    if row is None or row.organization_id not in (None, organization_id):
        raise BadRequestError(f"Unknown workflow template {template_id}", field="workflowTemplateId")
    return row


def published_version(session: Session, row: WorkflowTemplate, version: str | None = None) -> WorkflowTemplateVersion:
    """The template's current published version (or the one asked for); 400 for a Draft that never was published."""
    if row.version is None:
        raise BadRequestError(f"Workflow template {row.id} is a Draft; only Published templates can be instantiated",
                              field="workflowTemplateId")
    found = _version_row(session, row.id, version or row.version)
    if found is None:  # a well-formed version that names nothing: not found, as an unknown id is
        raise NotFoundError(f"Workflow template {row.id} has no version {version}", field="version")
    return found


def list_versions(session: Session, template_id: uuid.UUID) -> list[WorkflowTemplateVersion]:
    rows = session.scalars(select(WorkflowTemplateVersion).where(WorkflowTemplateVersion.template_id == template_id))
    return sorted(rows, key=lambda row: version_key(row.version))


def template_to_api(row: WorkflowTemplate) -> dict:
    definition = definition_from_json(row.definition)
    answer = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "dateCreated": row.date_created,
        "dateModified": row.date_modified,
        "state": row.state,
        "version": row.version,
        "draftIsCommitted": row.draft_is_committed,
        "dateCommitted": row.date_committed,
        "organizationId": row.organization_id,
        "applications": list(definition.applications),
        "chain": [_chain_entry_to_api(entry, inputs)
                  for entry, inputs in zip(definition.chain, inputs_for_display(row.definition["chain"]))],
    }
    if definition.failure_policy is not None:  # a template that sets one (graphs); others show the documented shape
        answer["failurePolicy"] = definition.failure_policy
    return answer


def _chain_entry_to_api(entry: ChainEntry, inputs: list[dict] | None) -> dict:
    shown = {"uniqueBlockId": entry.unique_block_id, "blockName": entry.block_name, "variables": entry.variables}
    if inputs is not None:  # a graph's block: its parents by block number
        shown["inputs"] = inputs
    return shown


# --- organization templates through the API --------------------------------------------------------------------------

def create_org_template(session: Session, catalog: ApplicationCatalog, organization_id: uuid.UUID,
                        data: dict) -> WorkflowTemplate:
    definition = _parse_api_definition(data, catalog)
    now = utcnow()
    row = WorkflowTemplate(organization_id=organization_id, name=data["name"].strip(),
                           description=data.get("description") or "", state=DRAFT, version=None,
                           definition=definition.to_json(), draft_is_committed=False, source="api",
                           content_hash=definition.content_hash(), date_created=now, date_modified=now)
    session.add(row)
    session.flush()
    audit.record_change(session, "template.create", "template", row, {}, organization_id=organization_id)
    return row


def update_org_template(session: Session, catalog: ApplicationCatalog, organization_id: uuid.UUID,
                        data: dict) -> WorkflowTemplate:
    row = own_template(session, organization_id, data["id"])
    before = audit.snapshot(row)
    if "chain" in data or "applications" in data or "failurePolicy" in data:
        current = row.definition
        merged = {"applications": data.get("applications", current["applications"]),
                  "chain": data.get("chain", current["chain"]),
                  "failurePolicy": data.get("failurePolicy", current.get("failurePolicy"))}
        definition = _parse_api_definition(merged, catalog)
        row.definition = definition.to_json()
        row.content_hash = definition.content_hash()
        row.draft_is_committed = False
    if data.get("name"):
        row.name = data["name"].strip()
    if data.get("description") is not None:
        row.description = data["description"]
    row.date_modified = utcnow()
    audit.record_change(session, "template.update", "template", row, before, organization_id=organization_id)
    return row


def publish_org_template(session: Session, organization_id: uuid.UUID, template_id: Any,
                         version: str | None) -> WorkflowTemplate:
    row = own_template(session, organization_id, template_id)
    before = audit.snapshot(row)
    if row.draft_is_committed:
        raise ConflictError(f"Workflow template {row.id} has no uncommitted changes to publish")
    try:
        _add_version(session, row, version or bump_version(row.version), definition_from_json(row.definition))
    except TemplateDefinitionError as exc:
        raise BadRequestError(str(exc), field="version") from None
    row.date_modified = utcnow()
    audit.record_change(session, "template.publish", "template", row, before, organization_id=organization_id)
    return row


def own_template(session: Session, organization_id: uuid.UUID, template_id: Any) -> WorkflowTemplate:
    try:
        row = session.get(WorkflowTemplate, uuid.UUID(str(template_id)))
    except ValueError:
        row = None
    if row is None or row.organization_id not in (None, organization_id):
        raise NotFoundError(f"Unknown workflow template {template_id}", field="id")
    if row.organization_id is None:
        raise ForbiddenError("Global catalog templates are edited in templates_catalog/, not through the API")
    return row


def _parse_api_definition(data: dict, catalog: ApplicationCatalog) -> TemplateDefinition:
    try:
        return parse_definition(data, catalog)
    except TemplateDefinitionError as exc:
        raise BadRequestError(str(exc), field=exc.entry) from None

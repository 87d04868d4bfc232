"""A workflow template's definition (applications and chain), parsed and validated the same way whether it comes
from a catalog file or from the API: against the block registry and the application catalog."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from canvas.applications.catalog import ApplicationCatalog

STATES = ("Draft", "Published")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


class TemplateDefinitionError(ValueError):
    """`entry` locates the problem (e.g. `chain[1].variables.filename`); the message names it."""

    def __init__(self, entry: str, problem: str):
        super().__init__(f"{entry}: {problem}" if entry else problem)
        self.entry = entry
        self.problem = problem


@dataclass(frozen=True)
class ChainEntry:
    unique_block_id: str
    block_name: str
    block: str
    application: str | None
    variables: dict = field(hash=False, compare=True)

    def to_json(self) -> dict:
        return {"uniqueBlockId": self.unique_block_id, "blockName": self.block_name, "block": self.block,
                "application": self.application, "variables": self.variables}


@dataclass(frozen=True)
class TemplateDefinition:
    applications: tuple[str, ...]
    chain: tuple[ChainEntry, ...]

    def to_json(self) -> dict:
        return {"applications": list(self.applications), "chain": [entry.to_json() for entry in self.chain]}

    def content_hash(self, *extra: Any) -> str:
        canonical = json.dumps([self.to_json(), *extra], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def entry(self, unique_block_id: str) -> ChainEntry | None:
        return next((entry for entry in self.chain if entry.unique_block_id == unique_block_id), None)


def definition_from_json(data: dict) -> TemplateDefinition:
    """Rebuild a stored definition (already validated when it was stored)."""
    chain = tuple(ChainEntry(e["uniqueBlockId"], e["blockName"], e["block"], e.get("application"),
                             dict(e.get("variables") or {})) for e in data.get("chain", []))
    return TemplateDefinition(tuple(data.get("applications", [])), chain)


def parse_definition(raw: dict, catalog: ApplicationCatalog) -> TemplateDefinition:
    """Validate `applications` and `chain` of a template; raises TemplateDefinitionError naming the entry."""
    applications = _parse_applications(raw.get("applications"), catalog)
    chain_raw = raw.get("chain")
    if not isinstance(chain_raw, list) or not chain_raw:
        raise TemplateDefinitionError("chain", "must be a non-empty list of blocks")
    chain, seen = [], set()
    for index, entry in enumerate(chain_raw):
        parsed = _parse_chain_entry(entry, f"chain[{index}]", applications, catalog)
        if parsed.unique_block_id in seen:
            raise TemplateDefinitionError(f"chain[{index}].uniqueBlockId",
                                          f"duplicate uniqueBlockId {parsed.unique_block_id}")
        seen.add(parsed.unique_block_id)
        chain.append(parsed)
    return TemplateDefinition(applications, tuple(chain))


def _parse_applications(raw: Any, catalog: ApplicationCatalog) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise TemplateDefinitionError("applications", "must be a list of application shortNames")
    for index, short_name in enumerate(raw):
        if catalog.get_by_short_name(short_name) is None:
            raise TemplateDefinitionError(f"applications[{index}]",
                                          f"unknown application '{short_name}' (not in the application catalog)")
    if len(set(raw)) != len(raw):
        raise TemplateDefinitionError("applications", "lists an application twice")
    return tuple(raw)


def _parse_chain_entry(raw: Any, where: str, applications: tuple[str, ...],
                       catalog: ApplicationCatalog) -> ChainEntry:
    from canvas.execution.registry import UnknownBlockError, get_block

    if not isinstance(raw, dict):
        raise TemplateDefinitionError(where, "must be an object")
    unique_block_id = _uuid_text(raw.get("uniqueBlockId"), f"{where}.uniqueBlockId")
    block_name = raw.get("blockName")
    if not isinstance(block_name, str) or not block_name.strip():
        raise TemplateDefinitionError(f"{where}.blockName", "must be a non-empty string")
    try:
        block_class = get_block(raw.get("block"))
    except UnknownBlockError:
        raise TemplateDefinitionError(f"{where}.block", f"unknown block '{raw.get('block')}'") from None
    application = _check_application(raw.get("application"), block_class, where, applications, catalog)
    variables = raw.get("variables") or {}
    check_template_variables(block_class, variables, f"{where}.variables")
    return ChainEntry(unique_block_id, block_name.strip(), block_class.key, application, dict(variables))


def _uuid_text(value: Any, where: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise TemplateDefinitionError(where, f"'{value}' is not a UUID") from None


# The platform application (CMAF) is of this kind. Besides its File Hub it provides the platform's own mail relay,
# so that "Send email" may be bound to it, as the Canvas document's "MyStore Customers Send email" is.
PLATFORM_KIND = "filehub"
PLATFORM_SERVES = frozenset({"filehub", "smtp"})


def serves(application_kind: str, block_kind: str) -> bool:
    """Whether an application of `application_kind` may be bound to a block needing `block_kind`."""
    return application_kind == block_kind or (application_kind == PLATFORM_KIND and block_kind in PLATFORM_SERVES)


def _check_application(application: Any, block_class, where: str, applications: tuple[str, ...],  # noqa: ANN001
                       catalog: ApplicationCatalog) -> str | None:
    needed_kind = block_class.application_kind
    if application is None:
        if needed_kind is not None and needed_kind != PLATFORM_KIND:
            raise TemplateDefinitionError(f"{where}.application",
                                          f"block '{block_class.key}' needs a {needed_kind} application")
        return None
    if application not in applications:
        raise TemplateDefinitionError(f"{where}.application",
                                      f"'{application}' is not one of the template's applications")
    kind = catalog.get_by_short_name(application).kind
    if needed_kind is not None and not serves(kind, needed_kind):
        raise TemplateDefinitionError(f"{where}.application",
                                      f"block '{block_class.key}' needs a {needed_kind} application, "
                                      f"'{application}' is {kind}")
    return application


def check_template_variables(block_class, variables: Any, where: str, *, require: bool = False) -> None:  # noqa: ANN001
    """Names and types of variables, and their placeholders; `require` also demands every required variable."""
    from canvas.execution.blocks.base import check_variables, find_variable_placeholder_errors

    if not isinstance(variables, dict):
        raise TemplateDefinitionError(where, "must be an object of variable values")
    problems = check_variables(block_class, variables, partial=not require)
    problems += find_variable_placeholder_errors(block_class, variables)
    if problems:
        raise TemplateDefinitionError(where, "; ".join(problems))


def parse_header(raw: dict) -> dict:
    """id, name, description, version, state, organizationId of a template file or API body."""
    state = raw.get("state", "Draft")
    if state not in STATES:
        raise TemplateDefinitionError("state", f"must be Draft or Published, not '{state}'")
    version = raw.get("version")
    if version is not None and (not isinstance(version, str) or not SEMVER.match(version)):
        raise TemplateDefinitionError("version", f"'{version}' is not a semantic version such as 1.0.0")
    if state == "Published" and version is None:
        raise TemplateDefinitionError("version", "a Published template needs a version")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TemplateDefinitionError("name", "must be a non-empty string")
    organization_id = raw.get("organizationId")
    return {
        "id": _uuid_text(raw.get("id"), "id"),
        "name": name.strip(),
        "description": raw.get("description") or "",
        "version": version,
        "state": state,
        "organization_id": _uuid_text(organization_id, "organizationId") if organization_id else None,
    }


def bump_version(version: str | None) -> str:
    if not version:
        return "1.0.0"
    major, minor, patch = (int(part) for part in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))

"""Instantiate, list, read, update, delete and upgrade workflows."""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from canvas.applications import service as applications
from canvas.audit import service as audit
from canvas.catalog import service as templates
from canvas.catalog.definition import ChainEntry, TemplateDefinition, TemplateDefinitionError, \
    check_template_variables, definition_from_json, inputs_for_display
from canvas.defaults import DEFAULT_SCHEDULER_FREQUENCY
from canvas.errors import BadRequestError, ConflictError, NotFoundError
from canvas.execution.graph import DEFAULT_FAILURE_POLICY
from canvas.models import RegisteredApplication, Workflow, WorkflowApplication
from canvas.models.base import utcnow
from canvas.notifications import settings as notification_settings
from canvas.queueing.dispatch import active_run
from canvas.workflows.block_settings import listed_settings, settings_from_json

# The Canvas dialect's names of the notification settings (canvas.notifications.settings keeps engine names).
NOTIFICATION_NAMES = {"on_failure": "onFailure", "on_recovery": "onRecovery", "on_missed_schedule": "onMissedSchedule",
                      "emails": "emails"}


@dataclass(frozen=True)
class Actor:
    """Whose workflows these are: the acting account and its organization."""

    account_id: uuid.UUID
    organization_id: uuid.UUID


# --- instantiation -----------------------------------------------------------------------------------------------

def instantiate(session: Session, actor: Actor, data: dict) -> Workflow:
    template = templates.find_visible_template(session, actor.organization_id, data["workflowTemplateId"])
    version = templates.published_version(session, template)
    definition = definition_from_json(version.definition)
    overrides = parse_overrides(definition, data.get("chain") or [])
    settings = parse_settings(data.get("chain") or [])
    workflow_id = uuid.uuid4()
    bindings = bind_applications(session, actor, definition, data.get("applications"), workflow_id=None)
    now = utcnow()
    workflow = Workflow(
        id=workflow_id, account_id=actor.account_id, organization_id=actor.organization_id,
        template_id=template.id, template_version=version.version,
        name=(data.get("name") or "").strip() or version.name,
        description=data.get("description") if data.get("description") is not None else version.description,
        failure_policy=definition.failure_policy or DEFAULT_FAILURE_POLICY, date_created=now, date_modified=now)
    apply_overrides(workflow, definition, overrides, settings)
    workflow.bindings = bindings
    session.add(workflow)
    session.flush()
    record_workflow_change(session, "workflow.create", workflow, {})
    return workflow


def parse_overrides(definition: TemplateDefinition, raw: Any, kept: dict[str, dict] | None = None) -> dict[str, dict]:
    """Chain overrides `[{uniqueBlockId, variables}]`, checked against the template's blocks and variables.
    `kept`: the overrides a workflow has; a block listed in `raw` gets exactly the variables listed for it (none:
    back to the template's), the others keep theirs."""
    if not isinstance(raw, list):
        raise BadRequestError("chain: must be a list of {uniqueBlockId, variables}", field="chain")
    listed: dict[str, dict] = {}
    for index, entry in enumerate(raw):
        where = f"chain[{index}]"
        block_id = str(entry.get("uniqueBlockId") or "").lower() if isinstance(entry, dict) else ""
        template_entry = definition.entry(block_id)
        if template_entry is None:
            raise BadRequestError(f"{where}.uniqueBlockId: block {entry.get('uniqueBlockId') if block_id else None} "
                                  "is not in the template", field=f"{where}.uniqueBlockId")
        variables = entry.get("variables") or {}
        _check_variables(template_entry, variables, f"{where}.variables", require=False)
        listed.setdefault(block_id, {}).update(variables)
    overrides = {block_id: variables for block_id, variables in {**(kept or {}), **listed}.items() if variables}
    for number, template_entry in enumerate(definition.chain):
        merged = {**template_entry.variables, **overrides.get(template_entry.unique_block_id, {})}
        _check_variables(template_entry, merged, f"chain[{number}].variables", require=True)
    return overrides


def parse_settings(raw: list, kept: dict[str, dict] | None = None) -> dict[str, dict]:
    """Per-block settings of the chain entries (their blocks are checked by parse_overrides): a listed block gets
    exactly the settings given, the others keep theirs."""
    listed = {str(entry["uniqueBlockId"]).lower(): listed_settings(entry) for entry in raw}
    return {block_id: settings for block_id, settings in {**(kept or {}), **listed}.items() if settings}


def _check_variables(template_entry: ChainEntry, variables: Any, where: str, *, require: bool) -> None:
    """A 400 naming the block (its uniqueBlockId and name, as the caller knows it) and the variable at fault."""
    from canvas.execution.registry import get_block

    try:
        check_template_variables(get_block(template_entry.block), variables, where, require=require)
    except TemplateDefinitionError as exc:
        block = f"block {template_entry.unique_block_id} '{template_entry.block_name}'"
        raise BadRequestError(f"{exc.entry} ({block}): {exc.problem}", field=exc.entry) from None


def resolve_chain(definition: TemplateDefinition, overrides: dict[str, dict],
                  settings: dict[str, dict] | None = None) -> list[dict]:
    chain = []
    for entry in definition.chain:
        resolved = entry.to_json()
        resolved["variables"] = {**copy.deepcopy(entry.variables), **overrides.get(entry.unique_block_id, {})}
        resolved.update((settings or {}).get(entry.unique_block_id, {}))
        chain.append(resolved)
    return chain


def apply_overrides(workflow: Workflow, definition: TemplateDefinition, overrides: dict[str, dict],
                    settings: dict[str, dict] | None = None) -> None:
    """The workflow's chain, its stored overrides and whether it differs from its template, from both. Without
    `settings`, the workflow keeps the per-block settings it has (of the blocks still in the definition)."""
    if settings is None:
        settings = settings_from_json(workflow.chain_overrides)
    settings = {block_id: values for block_id, values in settings.items() if definition.entry(block_id) is not None}
    workflow.chain = resolve_chain(definition, overrides, settings)
    workflow.chain_overrides = overrides_to_json(overrides, settings)
    workflow.is_customized = is_customized(definition, overrides)


def current_bindings(workflow: Workflow) -> dict[str, str]:
    """shortName -> registered application id (text, as requests give them)."""
    return {binding.short_name: str(binding.registered_application_id) for binding in workflow.bindings}


def replace_bindings(session: Session, workflow: Workflow, bindings: list) -> None:
    workflow.bindings.clear()
    session.flush()  # the old bindings go before new ones with the same keys arrive
    workflow.bindings.extend(bindings)


def overrides_to_json(overrides: dict[str, dict], settings: dict[str, dict] | None = None) -> list[dict]:
    settings = settings or {}
    return [{"uniqueBlockId": block_id, "variables": overrides.get(block_id, {}), **settings.get(block_id, {})}
            for block_id in {**overrides, **settings}]


def overrides_from_json(raw: list[dict]) -> dict[str, dict]:
    return {entry["uniqueBlockId"]: dict(entry["variables"]) for entry in raw or []}


def is_customized(definition: TemplateDefinition, overrides: dict[str, dict]) -> bool:
    return any(definition.entry(block_id).variables.get(name, _MISSING) != value
               for block_id, variables in overrides.items() for name, value in variables.items())


_MISSING = object()


def bind_applications(session: Session, actor: Actor, definition: TemplateDefinition, mapping: Any,
                      workflow_id: uuid.UUID | None) -> list[WorkflowApplication]:
    """Every template application mapped to a registered application of the acting account with that shortName."""
    if not isinstance(mapping, dict):
        raise BadRequestError("applications: must map each application shortName to a registered application id",
                              field="applications")
    extra = [name for name in mapping if name not in definition.applications]
    if extra:
        raise BadRequestError(f"applications.{extra[0]}: the template does not use {extra[0]}",
                              field=f"applications.{extra[0]}")
    bindings = []
    for position, short_name in enumerate(definition.applications):
        registered = _registered_for(session, actor, short_name, mapping.get(short_name))
        applications.check_grant(session, registered, workflow_id)
        bindings.append(WorkflowApplication(short_name=short_name, position=position,
                                            registered_application_id=registered.id))
    return bindings


def _registered_for(session: Session, actor: Actor, short_name: str, raw_id: Any) -> RegisteredApplication:
    where = f"applications.{short_name}"
    if raw_id is None:
        raise BadRequestError(f"{where}: the template needs a registered {short_name} application", field=where)
    try:
        registered = session.get(RegisteredApplication, uuid.UUID(str(raw_id)))
    except ValueError:
        registered = None
    if registered is None or registered.account_id != actor.account_id:
        raise BadRequestError(f"{where}: unknown registered application {raw_id}", field=where)
    if registered.short_name != short_name:
        raise BadRequestError(f"{where}: registered application {raw_id} is a {registered.short_name} application, "
                              f"not {short_name}", field=where)
    return registered


# --- reading ---------------------------------------------------------------------------------------------------------

# GET Workflows reads plain rows of these columns, ids as text, and builds its answer from them: loading ORM objects
# (their chain JSON too) with their bindings, making uuid.UUID objects only to write them back as text, and dumping
# every field through marshmallow took 1.1 s for 10,000 workflows, against 0.16 s so.
LISTED_COLUMNS = (cast(Workflow.id, String), Workflow.name, Workflow.description, Workflow.status,
                  Workflow.is_scheduled, Workflow.schedule_frequency, cast(Workflow.template_id, String),
                  Workflow.is_customized, cast(Workflow.account_id, String), cast(Workflow.organization_id, String),
                  Workflow.date_created, Workflow.date_modified, Workflow.date_last_run, Workflow.date_next_schedule,
                  Workflow.current_block)
LIST_ORDER = (Workflow.date_created, Workflow.id)


def list_workflows(session: Session, account_id: uuid.UUID, args: dict | None = None) -> tuple[list[dict], int]:
    """The account's live workflows, oldest first: all of them, or the page `args` asks for (see list_of); and how
    many there are in all. Each is what WorkflowSchema dumps of workflow_to_api(workflow), built without the
    dump: ids and instants as text already."""
    query = select(*LISTED_COLUMNS).where(Workflow.account_id == account_id, Workflow.date_deleted.is_(None))
    rows, total = list_of(session, query, LIST_ORDER, args)
    if is_paged(args):
        listed = WorkflowApplication.workflow_id.in_([uuid.UUID(row[0]) for row in rows])
    else:
        listed = WorkflowApplication.workflow_id.in_(select(Workflow.id).where(Workflow.account_id == account_id))
    bindings = (select(cast(WorkflowApplication.workflow_id, String),
                       cast(WorkflowApplication.registered_application_id, String))
                .where(listed).order_by(WorkflowApplication.workflow_id, WorkflowApplication.position))
    registered: dict[str, list[str]] = {row[0]: [] for row in rows}
    for workflow_id, registered_id in session.execute(bindings):
        if workflow_id in registered:  # not one made since the first query
            registered[workflow_id].append(id_text(registered_id))
    return [_listed_to_api(row, registered[row[0]]) for row in rows], total


def _listed_to_api(row, registered_ids: list[str]) -> dict:  # noqa: ANN001 - a Row of LISTED_COLUMNS
    """workflow_to_api's fields, in its order, as WorkflowSchema dumps them (an Id as str, a DateTime isoformat)."""
    (workflow_id, name, description, status, is_scheduled, frequency, template_id, is_customized, account_id,
     organization_id, created, modified, last_run, next_schedule, current_block) = row
    return {
        "id": id_text(workflow_id),
        "name": name,
        "description": description,
        "status": status,
        "isScheduled": is_scheduled,
        "schedulerFrequency": frequency or DEFAULT_SCHEDULER_FREQUENCY,
        "workflowTemplateId": id_text(template_id),
        "isCustomizedStructure": is_customized,
        "accountId": id_text(account_id),
        "organizationId": id_text(organization_id),
        "dateCreated": created.isoformat(),
        "dateModified": modified.isoformat(),
        "dateLastRun": last_run.isoformat() if last_run else None,
        "dateNextSchedule": next_schedule.isoformat() if next_schedule else None,
        "regApplicationIds": registered_ids,
        "currentBlock": current_block,
    }


def id_text(stored: str | None) -> str | None:
    """An id read as text (CAST(id AS VARCHAR)) in the API's 8-4-4-4-12 form: PostgreSQL's uuid text is in it
    already; SQLite holds SQLAlchemy's Uuid as its 32 hex digits."""
    if stored is None or len(stored) != 32:
        return stored
    return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"


def get_workflow(session: Session, account_id: uuid.UUID, workflow_id: Any) -> Workflow:
    """The account's live workflow; deleted ones and other accounts' read as unknown."""
    try:
        workflow = session.get(Workflow, uuid.UUID(str(workflow_id)))
    except ValueError:
        raise BadRequestError(f"id: '{workflow_id}' is not a valid id", field="id") from None
    if workflow is None or workflow.account_id != account_id or workflow.date_deleted is not None:
        raise NotFoundError(f"Unknown workflow {workflow_id}", field="id")
    return workflow


def history_owner(session: Session, account_id: uuid.UUID, workflow_id: Any) -> Workflow:
    """The account's workflow for reading its history: deleted ones too (history is kept for audit)."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None or workflow.account_id != account_id:
        raise NotFoundError(f"Unknown workflow {workflow_id}", parameter="workflowId")
    return workflow


def list_of(session: Session, query, order_by, args: dict | None) -> tuple[list, int]:  # noqa: ANN001
    """A Canvas list: every row when `args` asks for no page (no page or pageSize was given: the whole list, as
    Canvas answers), else the page they ask for; and the total count."""
    if not is_paged(args):
        rows = list(_rows(session, query.order_by(*order_by)))
        return rows, len(rows)
    return page_of(session, query, order_by, args["page"], args["pageSize"])


def is_paged(args: dict | None) -> bool:
    return bool(args and args.get("paged"))


def page_of(session: Session, query, order_by, page: int, size: int) -> tuple[list, int]:  # noqa: ANN001
    """One page of a query's rows (page from 1) and the total count."""
    return slice_of(session, query, order_by, (page - 1) * size, size)


def slice_of(session: Session, query, order_by, offset: int, limit: int) -> tuple[list, int]:  # noqa: ANN001
    """The query's rows from `offset` on, at most `limit` of them, in `order_by` order, and the total count.

    A deferred join: the ids of the slice first, then the rows of those ids. Skipping `offset` rows of the full
    query reads every skipped row from the table (100,000 rows deep, the last page of Workflows took 70-120 ms on
    PostgreSQL); skipping them in the id query reads only the list's index (an index-only scan), and just the
    slice's rows are read from the table."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    keys = inspect(query.column_descriptions[0]["entity"]).primary_key
    if len(keys) > 1:  # schedule occurrences, flow versions (one workflow's history): no single id to join on
        return list(_rows(session, query.order_by(*order_by).offset(offset).limit(limit))), total
    ids = _slice_ids(session, query.with_only_columns(keys[0]), order_by, offset, limit, total)
    if not ids:
        return [], total
    return list(_rows(session, query.where(keys[0].in_(ids)).order_by(*order_by))), total


def _slice_ids(session: Session, ids_query, order_by, offset: int, limit: int, total: int) -> list:  # noqa: ANN001
    """The ids of the slice, read from the nearer end of the list (see `nearer_end`). Its ids come in either order:
    the caller sorts."""
    from_the_end, skip, take = nearer_end(total, offset, limit)
    if take <= 0:
        return []
    order = [_reversed(term) for term in order_by] if from_the_end else order_by
    return session.scalars(ids_query.order_by(*order).offset(skip).limit(take)).all()


def nearer_end(total: int, offset: int, limit: int) -> tuple[bool, int, int]:
    """How to read the slice `offset:offset + limit` of a list of `total` rows from its nearer end: (whether from the
    end, in the reverse order; the rows to skip; the rows to take), counted from that end. A slice in the second half
    is the same slice of the reverse order counted from the other end, so that the last page skips no more rows than
    the first (the deepest page is the middle one, skipping half of them)."""
    after = total - offset - limit  # rows after the slice (negative: the slice is cut short by the list's end)
    if offset <= after:
        return False, offset, limit
    return True, max(after, 0), min(limit, total - offset)


def _reversed(term):  # noqa: ANN001, ANN202 - a column or a column's .asc()/.desc()
    """The term in the opposite direction; NULLs are reversed with it (PostgreSQL puts them last ascending and first
    descending, SQLite takes them for the smallest value)."""
    if isinstance(term, UnaryExpression) and term.modifier in (operators.desc_op, operators.asc_op):
        return term.element.asc() if term.modifier is operators.desc_op else term.element.desc()
    return term.desc()


def _rows(session: Session, query):  # noqa: ANN001, ANN202
    """Entities of a query of one entity (or values of one column); Row tuples of a query of several columns."""
    result = session.execute(query)
    return result.scalars() if len(query.column_descriptions) == 1 else result


def workflow_to_api(workflow: Workflow, *, with_chain: bool = False) -> dict:
    answer = {
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "status": workflow.status,
        "isScheduled": workflow.is_scheduled,
        "schedulerFrequency": workflow.schedule_frequency or DEFAULT_SCHEDULER_FREQUENCY,
        "workflowTemplateId": workflow.template_id,
        "isCustomizedStructure": workflow.is_customized,
        "accountId": workflow.account_id,
        "organizationId": workflow.organization_id,
        "dateCreated": workflow.date_created,
        "dateModified": workflow.date_modified,
        "dateLastRun": workflow.date_last_run,
        "dateNextSchedule": workflow.date_next_schedule,
        "regApplicationIds": [binding.registered_application_id for binding in workflow.bindings],
        "currentBlock": workflow.current_block,
    }
    if with_chain:
        answer["templateVersion"] = workflow.template_version
        answer["failurePolicy"] = workflow.failure_policy or DEFAULT_FAILURE_POLICY
        answer["chain"] = chain_to_api(workflow.chain)
        answer["notificationSettings"] = notification_settings.settings_for_api(workflow.notification_settings,
                                                                                 NOTIFICATION_NAMES)
    return answer


def chain_to_api(chain: list[dict]) -> list[dict]:
    """The stored chain as the Canvas dialect shows it: each block with its number, and a graph's blocks with their
    `inputs` by block number (`[{fromBlock, inputMapper?, inputCondition?}]`) instead of by uniqueBlockId."""
    shown = []
    for number, (entry, inputs) in enumerate(zip(chain, inputs_for_display(chain)), start=1):
        block = {"number": number, **entry}
        if inputs is not None:
            block["inputs"] = inputs
        shown.append(block)
    return shown


# --- changing --------------------------------------------------------------------------------------------------------

def delete_workflow(session: Session, account_id: uuid.UUID, workflow_id: Any, *, action: str = "workflow.delete",
                    object_type: str = "workflow") -> None:
    """Soft delete: the schedule goes off, the run history stays for audit, the workflow leaves lists and GETs.
    `action`/`object_type`: what the audit log calls it (the v2 dialect deletes a flow)."""
    workflow = get_workflow(session, account_id, workflow_id)
    running = active_run(session, workflow.id)
    if running is not None:
        raise ConflictError(f"Workflow {workflow.id} has an active run {running.id}; cancel it or wait for it to end")
    before = audit.snapshot(workflow)
    workflow.is_scheduled = False
    workflow.date_next_schedule = None
    workflow.date_deleted = workflow.date_modified = utcnow()
    audit.record_change(session, action, object_type, workflow, before, organization_id=workflow.organization_id)


def update_workflow(session: Session, actor: Actor, data: dict) -> Workflow:
    """Rename, change variable overrides or the failure policy, or rebind applications, validated like
    instantiation."""
    workflow = get_workflow(session, actor.account_id, data["id"])
    before = audited_workflow(workflow)
    definition = workflow_definition(session, workflow)
    if data.get("chain") is not None:
        kept = overrides_from_json(workflow.chain_overrides)
        settings = parse_settings(data["chain"], kept=settings_from_json(workflow.chain_overrides))
        apply_overrides(workflow, definition, parse_overrides(definition, data["chain"], kept=kept), settings)
    if data.get("applications") is not None:
        mapping = {**current_bindings(workflow), **data["applications"]}
        replace_bindings(session, workflow, bind_applications(session, actor, definition, mapping, workflow.id))
    if data.get("name"):
        workflow.name = data["name"].strip()
    if data.get("description") is not None:
        workflow.description = data["description"]
    if data.get("failurePolicy") is not None:
        workflow.failure_policy = data["failurePolicy"]
    if "notificationSettings" in data:
        workflow.notification_settings = notification_settings.parse_settings(
            data["notificationSettings"], NOTIFICATION_NAMES, "notificationSettings")
    workflow.date_modified = utcnow()
    record_workflow_change(session, "workflow.update", workflow, before)
    return workflow


def audited_workflow(workflow: Workflow) -> dict:
    """A workflow's fields as an audit entry compares them, with its application bindings (`applications`)."""
    return {**audit.snapshot(workflow), "applications": current_bindings(workflow)}


def record_workflow_change(session: Session, action: str, workflow: Workflow, before: dict) -> None:
    audit.record(session, action, "workflow", workflow.id, audit.changes_between(before, audited_workflow(workflow)),
                 organization_id=workflow.organization_id)


def workflow_definition(session: Session, workflow: Workflow) -> TemplateDefinition:
    template = templates.find_visible_template(session, workflow.organization_id, workflow.template_id)
    return definition_from_json(templates.published_version(session, template, workflow.template_version).definition)

"""Flows over the workflow services: create, update, list with filters, start/stop (the schedule), versions
(drafts and copies: canvas.v2.flow_drafts). Plain functions over a session; the v2 views parse the request and
call these."""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from canvas.audit import service as audit
from canvas.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableError
from canvas.execution.graph import DEFAULT_FAILURE_POLICY, FAILURE_POLICIES
from canvas.models import Account, FlowDraft, FlowSettings, FlowVersion, Workflow, WorkflowSchedule
from canvas.models.base import utcnow
from canvas.notifications.settings import FLAGS, parse_settings, settings_for_api
from canvas.schedules import service as schedules
from canvas.scheduling.unix_cron import is_unix_form
from canvas.v2.visibility import Viewer
from canvas.schema_fields import parse_id
from canvas.v2.graph import graph_hash, graph_of, parse_graph
from canvas.workflows import service as workflows
from canvas.workflows.service import Actor, slice_of

FLOW_TYPES = ("ordinary", "long_running")
FLOW_STATUSES = ("active", "inactive")
VERSION_RECORD_ATTEMPTS = 3  # concurrent first reads of a new graph: one makes it, the others read it
NOTIFICATION_NAMES = {name: name for name in (*FLAGS, "emails")}  # v2 attributes use the engine's snake_case names
SORT_COLUMNS = {"created_at": Workflow.date_created, "updated_at": Workflow.date_modified, "name": Workflow.name}


@dataclass(frozen=True)
class FlowFilters:
    status: str | None = None
    flow_type: str | None = None
    user: uuid.UUID | None = None
    has_draft: bool | None = None
    search: str | None = None
    sort: str | None = None


# --- reading ---------------------------------------------------------------------------------------------------------

def settings_of(session: Session, workflow: Workflow) -> FlowSettings:
    """The flow attributes; a workflow made in the Canvas dialect reads with the defaults (nothing is written)."""
    found = session.get(FlowSettings, workflow.id)
    if found is not None:
        return found
    return _default_settings(workflow)


def _default_settings(workflow: Workflow) -> FlowSettings:
    return FlowSettings(workflow_id=workflow.id, flow_type="ordinary", default_mapper_type="jsonata", cron=None,
                        nodes_config={}, stats_enabled=True)


def _stored_settings(session: Session, workflow: Workflow) -> FlowSettings:
    found = session.get(FlowSettings, workflow.id)
    if found is None:
        found = settings_of(session, workflow)
        session.add(found)
    return found


def list_flows(session: Session, viewer: Viewer, filters: FlowFilters, offset: int,
               limit: int) -> tuple[list[Workflow], int]:
    query = _filtered(select(Workflow).outerjoin(FlowSettings, FlowSettings.workflow_id == Workflow.id)
                      .where(viewer.condition(Workflow.account_id, Workflow.organization_id),
                             Workflow.date_deleted.is_(None)), filters)
    return slice_of(session, query.options(selectinload(Workflow.bindings)), _ordering(filters.sort), offset, limit)


@dataclass(frozen=True)
class FlowPage:
    """What a flow resource shows beside its workflow, read for a page of flows at once, a query for each kind (read
    flow by flow, a page of 50 took some 300 queries): settings, schedules, drafts, the owners' time zones."""

    settings: dict[uuid.UUID, FlowSettings]
    schedules: dict[uuid.UUID, WorkflowSchedule]
    drafts: dict[uuid.UUID, FlowDraft]
    zones: dict[uuid.UUID, str | None]

    def settings_of(self, workflow: Workflow) -> FlowSettings:
        return self.settings.get(workflow.id) or _default_settings(workflow)

    def schedule_of(self, workflow: Workflow) -> FlowSchedule:
        return _schedule_from(workflow, self.schedules.get(workflow.id), lambda: self.settings.get(workflow.id),
                              lambda: self.zones.get(workflow.account_id) or schedules.DEFAULT_ZONE)

    def draft_of(self, workflow: Workflow) -> FlowDraft | None:
        return self.drafts.get(workflow.id)


def load_flow_page(session: Session, workflows: list[Workflow]) -> FlowPage:
    """For flow_to_resource(session, workflow, page) of each of these workflows."""
    ids = [workflow.id for workflow in workflows]
    owners = {workflow.account_id for workflow in workflows}
    return FlowPage(
        settings={row.workflow_id: row for row in session.scalars(
            select(FlowSettings).where(FlowSettings.workflow_id.in_(ids)))},
        schedules={row.workflow_id: row for row in session.scalars(
            select(WorkflowSchedule).where(WorkflowSchedule.workflow_id.in_(ids)))},
        drafts={row.workflow_id: row for row in session.scalars(
            select(FlowDraft).where(FlowDraft.workflow_id.in_(ids)))},
        zones={account_id: zone for account_id, zone in session.execute(
            select(Account.id, Account.time_zone).where(Account.id.in_(owners)))})


def visible_flow(session: Session, viewer: Viewer, flow_id: Any) -> Workflow:
    """A flow to read: the viewer's own, or for a manager one of its workspace (see canvas.v2.visibility)."""
    workflow = session.get(Workflow, as_id(flow_id, "flow"))
    if workflow is None or workflow.date_deleted is not None or not viewer.sees(workflow.account_id,
                                                                                 workflow.organization_id):
        raise NotFoundError(f"Unknown flow {flow_id}")
    return workflow


def _filtered(query, filters: FlowFilters):  # noqa: ANN001, ANN202 - a Select
    if filters.status is not None:
        query = query.where(Workflow.is_scheduled.is_(filters.status == "active"))
    if filters.flow_type is not None:
        query = query.where(func.coalesce(FlowSettings.flow_type, "ordinary") == filters.flow_type)
    if filters.user is not None:
        query = query.where(Workflow.account_id == filters.user)
    if filters.has_draft is not None:
        has_draft = exists().where(FlowDraft.workflow_id == Workflow.id)
        query = query.where(has_draft if filters.has_draft else ~has_draft)
    if filters.search:
        pattern = "%" + _escape_like(filters.search.lower()) + "%"
        query = query.where(or_(func.lower(Workflow.name).like(pattern, escape="\\"),
                                func.lower(Workflow.description).like(pattern, escape="\\")))
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ordering(sort: str | None) -> list:
    if not sort:
        return [Workflow.id]
    column = SORT_COLUMNS[sort.lstrip("-")]
    return [column.desc() if sort.startswith("-") else column.asc(), Workflow.id]


# --- creating and changing -----------------------------------------------------------------------------------------

def create_flow(session: Session, catalog, actor: Actor, attributes: dict) -> Workflow:  # noqa: ANN001
    name = required_text(attributes, "name")
    parsed = parse_graph(session, catalog, actor.account_id, required(attributes, "graph"))
    now = utcnow()
    workflow = Workflow(id=uuid.uuid4(), account_id=actor.account_id, organization_id=actor.organization_id,
                        template_id=None, template_version=None, name=name,
                        description=optional_text(attributes, "description") or "", chain=parsed.chain,
                        chain_overrides=[], is_customized=False, date_created=now, date_modified=now,
                        failure_policy=DEFAULT_FAILURE_POLICY)
    _apply_failure_policy(workflow, attributes)
    _apply_notification_settings(workflow, attributes)
    workflow.bindings = parsed.bindings
    session.add(workflow)
    session.flush()
    settings = settings_of(session, workflow)
    session.add(settings)
    _apply_settings(settings, attributes)
    _change_schedule(session, workflow, settings, attributes)
    settings.latest_version = record_version(session, workflow).id
    record_flow_change(session, "flow.create", workflow, {})
    return workflow


def update_flow(session: Session, catalog, actor: Actor, flow_id: str, attributes: dict) -> Workflow:  # noqa: ANN001
    workflow = get_flow(session, actor.account_id, flow_id)
    before = audited_flow(session, workflow)
    if "graph" in attributes:
        parsed = parse_graph(session, catalog, actor.account_id, attributes["graph"], current=workflow)
        _refuse_new_structure_while_active(session, workflow, parsed.chain)
        workflow.chain = parsed.chain
        workflows.replace_bindings(session, workflow, parsed.bindings)
    if "name" in attributes:
        workflow.name = required_text(attributes, "name")
    if "description" in attributes:
        workflow.description = optional_text(attributes, "description") or ""
    _apply_failure_policy(workflow, attributes)
    _apply_notification_settings(workflow, attributes)
    settings = _stored_settings(session, workflow)
    _apply_settings(settings, attributes)
    workflow.date_modified = utcnow()
    settings.latest_version = record_version(session, workflow).id
    _change_schedule(session, workflow, settings, attributes)
    record_flow_change(session, "flow.update", workflow, before)
    return workflow


def _refuse_new_structure_while_active(session: Session, workflow: Workflow, chain: list[dict]) -> None:
    """A run numbers its blocks by the graph it was queued with: steps added, removed or moved while it waits or
    runs made it run a mix of both (a step cut off by its old range, another in its place) and call it Succeeded.
    New steps or edges wait for its end, as deleting the flow does; the fields of its steps may change."""
    if _structure(chain) == _structure(workflow.chain):
        return
    running = workflows.active_run(session, workflow.id)
    if running is not None:
        raise ConflictError(f"Workflow {workflow.id} has an active run {running.id}: its steps and edges can change "
                            "when the run has ended (cancel it, or wait); the steps' fields can change now",
                            field="graph")


def _structure(chain: list[dict]) -> list[tuple]:
    return [(entry.get("uniqueBlockId"), entry.get("block"), json.dumps(entry.get("inputs"), sort_keys=True))
            for entry in chain]


def audited_flow(session: Session, workflow: Workflow) -> dict:
    """A flow's fields as an audit entry compares them: the workflow's, and its flow settings' (`settings.*`)."""
    stored = session.get(FlowSettings, workflow.id)
    settings = {f"settings.{name}": value for name, value in audit.snapshot(stored).items() if name != "workflow_id"}
    return {**audit.snapshot(workflow), **settings}


def record_flow_change(session: Session, action: str, workflow: Workflow, before: dict) -> None:
    audit.record(session, action, "flow", workflow.id, audit.changes_between(before, audited_flow(session, workflow)),
                 organization_id=workflow.organization_id)


def _apply_failure_policy(workflow: Workflow, attributes: dict) -> None:
    """`failure_policy`: what a run does when a step fails while other branches could go on (failFast: start no
    further step; continue: run every step that does not depend on a failed one). Kept on the workflow."""
    if attributes.get("failure_policy") is not None:
        workflow.failure_policy = choice(attributes, "failure_policy", FAILURE_POLICIES)


def failure_policy_of(workflow: Workflow) -> str:
    return workflow.failure_policy or DEFAULT_FAILURE_POLICY


def _apply_notification_settings(workflow: Workflow, attributes: dict) -> None:
    """`notification_settings`: {on_failure, on_recovery, on_missed_schedule, emails} (absent flags: true; no
    emails: the account's default address); null: the account's global notifications. Kept on the workflow."""
    if "notification_settings" in attributes:
        workflow.notification_settings = parse_settings(attributes["notification_settings"], NOTIFICATION_NAMES,
                                                        "notification_settings")


def notification_settings_of(workflow: Workflow) -> dict | None:
    return settings_for_api(workflow.notification_settings, NOTIFICATION_NAMES)


def _apply_settings(settings: FlowSettings, attributes: dict) -> None:
    if attributes.get("type") is not None:
        settings.flow_type = choice(attributes, "type", FLOW_TYPES)
    if attributes.get("default_mapper_type") is not None:
        settings.default_mapper_type = choice(attributes, "default_mapper_type", ("jsonata",))
    if attributes.get("nodes_config") is not None:
        settings.nodes_config = object_attribute(attributes, "nodes_config")
    if attributes.get("stats_enabled") is not None:
        settings.stats_enabled = boolean(attributes, "stats_enabled")


# --- cron and time zone: the workflow's schedule, shared with the Canvas dialect -----------------------------------

@dataclass(frozen=True)
class FlowSchedule:
    """The flow's `cron` (as given: 5-field Unix cron, or Quartz) and `time_zone` (the effective IANA zone)."""

    cron: str | None
    time_zone: str
    names_zone: bool  # the zone is the schedule's own, not the account's default that it follows


def flow_schedule(session: Session, workflow: Workflow) -> FlowSchedule:
    """Read from the workflow's schedule, whichever dialect set it: its scheduleFrequency's cronSchedule (the text
    given) and its zone; a flow whose v2 cron never reached the schedule reads the cron kept in its settings."""
    return _schedule_from(workflow, session.get(WorkflowSchedule, workflow.id),
                          lambda: session.get(FlowSettings, workflow.id), lambda: _default_zone(session, workflow))


def _schedule_from(workflow: Workflow, schedule: WorkflowSchedule | None, stored_settings: Callable,
                   default_zone: Callable) -> FlowSchedule:
    """flow_schedule's rule, given the schedule row; the stored settings and the account's default zone are read
    (called) only when the rule needs them."""
    fields = schedules.stored_frequency(workflow)
    cron = fields.get("cronSchedule") if isinstance(fields.get("cronSchedule"), str) else None
    if cron is not None:
        zone = schedule.time_zone if schedule is not None else fields.get("timeZone") or default_zone()
        return FlowSchedule(cron, zone, "timeZone" in fields)
    stored = stored_settings()
    cron = stored.cron if stored is not None else None
    default = default_zone()
    if schedule is None:
        return FlowSchedule(cron, default, False)
    return FlowSchedule(cron, schedule.time_zone, schedule.time_zone != default)


def _default_zone(session: Session, workflow: Workflow) -> str:
    return schedules.account_time_zone(session, workflow.account_id) or schedules.DEFAULT_ZONE


def checked_cron(raw: Any, zone: str) -> str | None:
    """A v2 `cron`: classic 5-field Unix cron (croniter's fire times), or Quartz (6 or 7 fields); kept as given (in
    single spaces). One that is not valid, or never fires in ``zone``, is a 400 pointing at the attribute."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise BadRequestError("cron must be a cron expression string or null", field="cron")
    text = " ".join(raw.split())
    if len(text) > schedules.MAX_EXPRESSION_LENGTH:
        raise BadRequestError(f"cron must be at most {schedules.MAX_EXPRESSION_LENGTH} characters", field="cron")
    try:
        schedules.check_fires(schedules.parse_frequency(_frequency(text, zone), None), utcnow())
    except BadRequestError as exc:
        raise BadRequestError(f"cron: '{raw}' is not a valid cron expression ({exc.message})", field="cron") from None
    return text


def _frequency(cron: str, zone: str | None) -> str:
    """The scheduleFrequency of a v2 cron: a Unix one says so (cronDialect), a zone of its own is named."""
    return json.dumps({"cronSchedule": cron, **({"timeZone": zone} if zone else {}),
                       **({"cronDialect": "unix"} if is_unix_form(cron) else {})})


def _change_schedule(session: Session, workflow: Workflow, settings: FlowSettings, attributes: dict) -> None:
    """A v2 write of `cron` and/or `time_zone` goes to the workflow's schedule: on or off as it was, its time zone
    kept unless `time_zone` is given (null: the account's default); `cron` null removes the schedule (and stops it)."""
    if "cron" not in attributes and "time_zone" not in attributes:
        return
    current = flow_schedule(session, workflow)
    zone, names_zone = current.time_zone, current.names_zone
    if "time_zone" in attributes:
        if attributes["time_zone"] in (None, ""):
            zone, names_zone = _default_zone(session, workflow), False
        else:
            zone, names_zone = schedules.check_time_zone(attributes["time_zone"], "time_zone"), True
    cron = checked_cron(attributes.get("cron", current.cron), zone)
    settings.cron = cron
    if cron is None:
        schedules.clear_schedule(session, workflow, zone)
        return
    schedules.set_workflow_scheduler(session, workflow.account_id, {
        "workflowId": workflow.id, "isScheduled": workflow.is_scheduled,
        "scheduleFrequency": _frequency(cron, zone if names_zone else None)})


def delete_flow(session: Session, account_id: uuid.UUID, flow_id: str) -> None:
    get_flow(session, account_id, flow_id)
    workflows.delete_workflow(session, account_id, flow_id, action="flow.delete", object_type="flow")


def as_id(value: Any, kind: str) -> uuid.UUID:
    """A path id; one that is no id names nothing (404, as an unknown one)."""
    try:
        return parse_id(value)
    except ValueError:
        raise NotFoundError(f"Unknown {kind} {value}") from None


def get_flow(session: Session, account_id: uuid.UUID, flow_id: Any) -> Workflow:
    as_id(flow_id, "flow")
    try:
        return workflows.get_workflow(session, account_id, flow_id)
    except NotFoundError:
        raise NotFoundError(f"Unknown flow {flow_id}") from None


def get_flow_part(session: Session, account_id: uuid.UUID, flow_id: Any, model: type, part_id: Any,  # noqa: ANN201
                  kind: str):
    """A row of `model` (a webhook, a callback...) that belongs to one of the account's flows; 404 otherwise."""
    workflow = get_flow(session, account_id, flow_id)
    part = session.get(model, as_id(part_id, kind))
    if part is None or part.workflow_id != workflow.id:
        raise NotFoundError(f"Unknown {kind} {part_id}")
    return part


# --- start / stop: the schedule ----------------------------------------------------------------------------------

def start_flow(session: Session, account_id: uuid.UUID, flow_id: str) -> Workflow:
    """Its cron on, and webhook calls accepted again after a stop. With neither to do, a 422 says what is missing."""
    workflow = get_flow(session, account_id, flow_id)
    before = audited_flow(session, workflow)
    settings = _stored_settings(session, workflow)
    cron = flow_schedule(session, workflow).cron
    if cron is None and settings.stopped_at is None:
        raise UnprocessableError(f"Flow {workflow.id} has no cron: set attributes.cron (PATCH) to start it",
                                 field="cron")
    settings.stopped_at = None
    if cron is not None:
        _set_schedule(session, workflow, on=True)
    settings.last_start_time = utcnow()
    record_flow_change(session, "flow.start", workflow, before)
    return workflow


def stop_flow(session: Session, account_id: uuid.UUID, flow_id: str) -> Workflow:
    """Its cron off, and its webhooks refusing calls (409) until the flow is started again."""
    workflow = get_flow(session, account_id, flow_id)
    before = audited_flow(session, workflow)
    settings = _stored_settings(session, workflow)
    _set_schedule(session, workflow, on=False)
    settings.stopped_at = utcnow()
    record_flow_change(session, "flow.stop", workflow, before)
    return workflow


def refuse_if_stopped(session: Session, workflow: Workflow) -> None:
    if settings_of(session, workflow).stopped_at is not None:
        raise ConflictError(f"Flow {workflow.id} is stopped: its webhooks accept calls again once it is started "
                            f"(POST /v2/flows/{workflow.id}/start)")


def _set_schedule(session: Session, workflow: Workflow, *, on: bool) -> None:
    """The schedule on (with the scheduleFrequency it has) or off; a v2 cron that never reached the schedule (kept
    in the flow's settings only) is written to it first."""
    frequency = None
    if on and "cronSchedule" not in schedules.stored_frequency(workflow):
        current = flow_schedule(session, workflow)
        frequency = _frequency(current.cron, current.time_zone if current.names_zone else None)
    schedules.set_workflow_scheduler(session, workflow.account_id, {
        "workflowId": workflow.id, "isScheduled": on, "scheduleFrequency": frequency})


# --- versions -------------------------------------------------------------------------------------------------------

def record_version(session: Session, workflow: Workflow) -> FlowVersion:
    """The version of the current graph, made when the graph is new (content-addressed: unchanged graph, same id),
    in the caller's transaction. A graph that becomes current again (a revert) heads the history again: it takes
    the next number."""
    graph = graph_of(workflow)
    return _head_version(session, workflow, graph_hash(graph), graph)


def settle_version(session: Session, workflow: Workflow) -> FlowVersion:
    """record_version for a reader, committed at once. Versions are recorded on first sight, so concurrent first
    reads race to make the same row: the loser's insert fails on the row's key, and it reads the winner's."""
    for _attempt in range(VERSION_RECORD_ATTEMPTS - 1):
        try:
            version = record_version(session, workflow)
            session.commit()
            return version
        except IntegrityError:
            session.rollback()
    version = record_version(session, workflow)
    session.commit()
    return version


def _head_version(session: Session, workflow: Workflow, version_id: str, graph: dict) -> FlowVersion:
    latest = session.scalar(select(FlowVersion).where(FlowVersion.workflow_id == workflow.id)
                            .order_by(FlowVersion.number.desc()).limit(1))
    if latest is not None and latest.id == version_id:
        return latest
    number = (latest.number if latest is not None else 0) + 1
    version = session.get(FlowVersion, (workflow.id, version_id))
    if version is None:
        version = FlowVersion(workflow_id=workflow.id, id=version_id, number=number, graph=graph,
                              chain=workflow.chain, date_created=utcnow())
        session.add(version)
    else:
        version.number = number
    session.flush()
    return version


def list_versions(session: Session, viewer: Viewer, flow_id: str, offset: int,
                  limit: int) -> tuple[Workflow, list[FlowVersion], int]:
    workflow = visible_flow(session, viewer, flow_id)
    settle_version(session, workflow)  # a change made in the Canvas dialect becomes a version when first seen
    query = select(FlowVersion).where(FlowVersion.workflow_id == workflow.id)
    rows, total = slice_of(session, query, (FlowVersion.number.desc(),), offset, limit)
    return workflow, rows, total


def get_version(session: Session, viewer: Viewer, flow_id: str, version_id: str) -> FlowVersion:
    workflow = visible_flow(session, viewer, flow_id)
    settle_version(session, workflow)
    version = session.get(FlowVersion, (workflow.id, version_id))
    if version is None:
        raise NotFoundError(f"Flow {flow_id} has no version {version_id}")
    return version


# --- attribute readers --------------------------------------------------------------------------------------------

def required(attributes: dict, name: str) -> Any:
    if attributes.get(name) is None:
        raise BadRequestError(f"{name} is required", field=name)
    return attributes[name]


def required_text(attributes: dict, name: str) -> str:
    value = required(attributes, name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"{name} must be a non-empty string", field=name)
    if len(value.strip()) > 200:
        raise BadRequestError(f"{name} must be at most 200 characters", field=name)
    return value.strip()


def optional_text(attributes: dict, name: str) -> str | None:
    value = attributes.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequestError(f"{name} must be a string or null", field=name)
    return value


def choice(attributes: dict, name: str, allowed: tuple[str, ...]) -> str:
    if attributes[name] not in allowed:
        raise BadRequestError(f"{name} must be one of {', '.join(allowed)}, got {json.dumps(attributes[name])}",
                              field=name)
    return attributes[name]


def object_attribute(attributes: dict, name: str) -> dict:
    if not isinstance(attributes[name], dict):
        raise BadRequestError(f"{name} must be an object", field=name)
    return attributes[name]


def boolean(attributes: dict, name: str) -> bool:
    if not isinstance(attributes[name], bool):
        raise BadRequestError(f"{name} must be true or false", field=name)
    return attributes[name]

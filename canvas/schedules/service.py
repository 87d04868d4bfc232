"""WorkflowScheduler and its extensions: reading scheduleFrequency, setting schedules and policies, previews, the
account's default time zone and the occurrence ledger. Plain functions; the views only parse and call.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.audit import service as audit
from canvas.errors import BadRequestError
from canvas.models import Account, ScheduleOccurrence, Workflow, WorkflowSchedule
from canvas.models.base import utcnow
from canvas.scheduling.quartz import CronExpression, CronSyntaxError, parse
from canvas.scheduling.quartz.search import last_fire_year
from canvas.scheduling.trigger import Expression, parse_cached
from canvas.scheduling.unix_cron import parse_unix
from canvas.workflows.service import get_workflow

FIELD = "scheduleFrequency"
EXPECTED_FORM = '{"cronSchedule": "<Quartz cron>", "timeZone": "<IANA name, optional>"}'
FREQUENCY_KEYS = {"cronschedule": "cronSchedule", "timezone": "timeZone",  # read case-insensitively, as ASP.NET does
                  "crondialect": "cronDialect"}
# cronDialect (optional): "quartz" (the default) or "unix", a classic 5-field cron (the v2 dialect's `cron`, whose
# schedule the Canvas dialect reads back with this key, and may send back as it read it).
CRON_DIALECTS = ("quartz", "unix")
MAX_EXPRESSION_LENGTH = 200
ENABLED, DISABLED = "Workflow Scheduler enabled", "Workflow Scheduler disabled"
DEFAULT_ZONE = "UTC"


@dataclass(frozen=True)
class ScheduleSpec:
    """A valid scheduleFrequency: the expression and the effective zone (given, else the account's, else UTC)."""

    cron: Expression  # a Quartz CronExpression, or a UnixCronExpression (cronDialect "unix")
    zone_name: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)


# --- reading scheduleFrequency ---------------------------------------------------------------------------------

def parse_frequency(text: Any, default_zone: str | None) -> ScheduleSpec:
    """The JSON string of WorkflowScheduler and SchedulePreview; a 400 quoting the text and naming the field."""
    fields = _frequency_fields(text)
    cron_text = fields.get("cronSchedule")
    if cron_text is None:
        raise BadRequestError(f"{FIELD}.cronSchedule: missing in '{text}'; expected {EXPECTED_FORM}", field=FIELD)
    if not isinstance(cron_text, str):
        raise BadRequestError(f"{FIELD}.cronSchedule: must be a string, got {json.dumps(cron_text)}", field=FIELD)
    dialect = fields.get("cronDialect") or "quartz"
    if dialect not in CRON_DIALECTS:
        raise BadRequestError(f"{FIELD}.cronDialect: must be one of {', '.join(CRON_DIALECTS)}, got "
                              f"{json.dumps(dialect)}", field=FIELD)
    try:
        cron = parse_unix(cron_text) if dialect == "unix" else parse(cron_text)
    except CronSyntaxError as exc:
        kind = "Unix" if dialect == "unix" else "Quartz"
        raise BadRequestError(f"{FIELD}.cronSchedule: '{cron_text}' is not a valid {kind} cron expression: {exc}",
                              field=FIELD) from None
    if len(str(cron)) > MAX_EXPRESSION_LENGTH:  # the stored expression's column
        raise BadRequestError(f"{FIELD}.cronSchedule: '{cron_text}' is {len(str(cron))} characters long; at most "
                              f"{MAX_EXPRESSION_LENGTH}", field=FIELD)
    zone = fields.get("timeZone")
    if zone is not None:
        check_time_zone(zone, f"{FIELD}.timeZone", f" (schedule '{cron_text}')")
    return ScheduleSpec(cron, zone or default_zone or DEFAULT_ZONE)


def _frequency_fields(text: Any) -> dict:
    if not isinstance(text, str):
        raise BadRequestError(f"{FIELD}: must be a JSON string holding {EXPECTED_FORM}, got {json.dumps(text)}",
                              field=FIELD)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadRequestError(f"{FIELD}: '{text}' is not valid JSON ({exc}); expected {EXPECTED_FORM}",
                              field=FIELD) from None
    if not isinstance(value, dict):
        raise BadRequestError(f"{FIELD}: '{text}' must be a JSON object {EXPECTED_FORM}", field=FIELD)
    fields = {}
    for key, item in value.items():
        name = FREQUENCY_KEYS.get(key.lower())
        if name is None:
            raise BadRequestError(f"{FIELD}.{key}: unknown field in '{text}'; expected {EXPECTED_FORM}", field=FIELD)
        fields[name] = item
    return fields


def check_fires(spec: ScheduleSpec, now: datetime) -> None:
    """Quartz refuses to schedule a trigger that will never fire (February 30, a year gone by); so do we, rather than
    enable a schedule whose dateNextSchedule is null."""
    if spec.cron.next_fire_time(now, spec.zone) is None:
        quartz = " (Quartz: based on configured schedule, the given trigger will never fire)" \
            if isinstance(spec.cron, CronExpression) else ""
        raise BadRequestError(f"{FIELD}.cronSchedule: '{spec.cron}' never fires: it has no fire time from now up to "
                              f"the end of {last_fire_year()} in {spec.zone_name}{quartz}", field=FIELD)


# In the system's zone files but no IANA zone: this machine's own zone (a link that differs between machines), and
# the placeholder zone
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    return frozenset((available_timezones() - NOT_ZONES) | {DEFAULT_ZONE})


def check_time_zone(name: Any, field: str, context: str = "") -> str:
    if not isinstance(name, str) or name not in known_time_zones():
        shown = f"'{name}'" if isinstance(name, str) else json.dumps(name)
        raise BadRequestError(f"{field}: {shown} is not a known IANA time zone, e.g. 'Europe/Oslo' or 'UTC'{context}",
                              field=field.split(".")[0])
    return name


def account_time_zone(session: Session, account_id: uuid.UUID) -> str | None:
    return session.scalar(select(Account.time_zone).where(Account.id == account_id))


# --- WorkflowScheduler ---------------------------------------------------------------------------------------------

def set_workflow_scheduler(session: Session, account_id: uuid.UUID, data: dict) -> str:
    """Turn a workflow's schedule on (computing dateNextSchedule) or off; the answer Canvas gives."""
    workflow = get_workflow(session, account_id, data["workflowId"])
    before = audited_schedule(workflow, session.get(WorkflowSchedule, workflow.id))
    on = bool(data["isScheduled"])
    text = data.get("scheduleFrequency")
    if text in (None, "") and on:
        text = workflow.schedule_frequency
        if not text:
            raise BadRequestError(f"{FIELD}: required to turn the scheduler on; expected a JSON string holding "
                                  f"{EXPECTED_FORM}", field=FIELD)
    spec = None if text in (None, "") else parse_frequency(text, account_time_zone(session, account_id))
    now = utcnow()
    if spec is not None and on:
        check_fires(spec, now)
    schedule = schedule_row(session, workflow)
    if spec is not None:
        _apply_spec(workflow, schedule, text, spec, now)
    if on != workflow.is_scheduled:
        schedule.date_changed = now
    workflow.is_scheduled = on
    _touch(workflow, schedule, now)
    record_schedule_change(session, "schedule.update", workflow, schedule, before)
    return ENABLED if on else DISABLED


def _apply_spec(workflow: Workflow, schedule: WorkflowSchedule, text: str, spec: ScheduleSpec,
                now: datetime) -> None:
    cron_text = str(spec.cron)
    if (cron_text, spec.zone_name) != (schedule.cron_expression, schedule.time_zone):
        schedule.date_changed = now  # occurrences of the old schedule are no longer due
    workflow.schedule_frequency = text
    schedule.cron_expression, schedule.time_zone = cron_text, spec.zone_name


def _touch(workflow: Workflow, schedule: WorkflowSchedule, now: datetime) -> None:
    """A new version for the schedulers, and the next fire time as it now stands."""
    schedule.version = (schedule.version or 0) + 1
    workflow.date_next_schedule = next_schedule(schedule, now) if workflow.is_scheduled else None
    workflow.date_modified = now


def audited_schedule(workflow: Workflow, schedule: WorkflowSchedule | None) -> dict:
    """The schedule's fields an audit entry compares (not the next fire time: it follows from them)."""
    state = audit.json_value(schedule_to_api(workflow, schedule))
    state.pop("workflowId")
    state.pop("dateNextSchedule")
    return state


def record_schedule_change(session: Session, action: str, workflow: Workflow, schedule: WorkflowSchedule | None,
                           before: dict) -> None:
    """An audit entry when the schedule changed (a v2 PATCH of a flow writes its schedule again as it was)."""
    changes = audit.changes_between(before, audited_schedule(workflow, schedule))
    if changes:
        audit.record(session, action, "workflow", workflow.id, changes, organization_id=workflow.organization_id)


def next_schedule(schedule: WorkflowSchedule, after: datetime) -> datetime | None:
    if schedule.cron_expression is None:
        return None
    fire_time = parse_cached(schedule.cron_expression).next_fire_time(after, ZoneInfo(schedule.time_zone))
    return None if fire_time is None else fire_time.astimezone(timezone.utc)


def stored_frequency(workflow: Workflow) -> dict:
    """The fields of the workflow's stored scheduleFrequency (keys as FREQUENCY_KEYS spells them); {} when none."""
    try:
        return _frequency_fields(workflow.schedule_frequency) if workflow.schedule_frequency else {}
    except BadRequestError:
        return {}


def clear_schedule(session: Session, workflow: Workflow, zone_name: str) -> None:
    """No schedule (the v2 dialect's cron set to null): off, no expression, no scheduleFrequency; the time zone is
    kept for the next schedule."""
    schedule = schedule_row(session, workflow)
    now = utcnow()
    if (schedule.cron_expression, schedule.time_zone, workflow.is_scheduled) != (None, zone_name, False):
        schedule.date_changed = now
    schedule.cron_expression, schedule.time_zone = None, zone_name
    workflow.schedule_frequency = None
    workflow.is_scheduled = False
    _touch(workflow, schedule, now)


def schedule_row(session: Session, workflow: Workflow) -> WorkflowSchedule:
    schedule = session.get(WorkflowSchedule, workflow.id)
    if schedule is None:
        schedule = WorkflowSchedule(workflow_id=workflow.id, time_zone=DEFAULT_ZONE, overlap_policy="skip",
                                    misfire_policy="coalesce", version=0, date_changed=utcnow())
        session.add(schedule)
    return schedule


# --- policies and the schedule's state -------------------------------------------------------------------------

def set_policy(session: Session, account_id: uuid.UUID, data: dict) -> dict:
    workflow = get_workflow(session, account_id, data["workflowId"])
    before = audited_schedule(workflow, session.get(WorkflowSchedule, workflow.id))
    schedule = schedule_row(session, workflow)
    if data.get("overlapPolicy"):
        schedule.overlap_policy = data["overlapPolicy"]
    if data.get("misfirePolicy"):
        schedule.misfire_policy = data["misfirePolicy"]
    _touch(workflow, schedule, utcnow())
    record_schedule_change(session, "schedule.policy.update", workflow, schedule, before)
    return schedule_to_api(workflow, schedule)


def get_schedule(session: Session, account_id: uuid.UUID, workflow_id: Any) -> dict:
    workflow = get_workflow(session, account_id, workflow_id)
    return schedule_to_api(workflow, session.get(WorkflowSchedule, workflow.id))


def schedule_to_api(workflow: Workflow, schedule: WorkflowSchedule | None) -> dict:
    return {
        "workflowId": workflow.id,
        "isScheduled": workflow.is_scheduled,
        "scheduleFrequency": workflow.schedule_frequency,
        "cronSchedule": schedule.cron_expression if schedule else None,
        "timeZone": schedule.time_zone if schedule and schedule.cron_expression else None,
        "overlapPolicy": schedule.overlap_policy if schedule else "skip",
        "misfirePolicy": schedule.misfire_policy if schedule else "coalesce",
        "dateNextSchedule": workflow.date_next_schedule,
    }


# --- the account's default time zone -------------------------------------------------------------------------------

def set_account_time_zone(session: Session, account_id: uuid.UUID, zone: str | None) -> dict:
    """Set (or clear, with null) the zone of the account's schedules that name none; those move with it at once."""
    if zone is not None:
        check_time_zone(zone, "timeZone")
    account = session.get(Account, account_id)
    before = audit.snapshot(account)
    account.time_zone = zone
    audit.record_change(session, "account.time_zone.update", "account", account, before,
                        organization_id=account.organization_id)
    now = utcnow()
    for workflow, schedule in session.execute(
            select(Workflow, WorkflowSchedule).join(WorkflowSchedule, WorkflowSchedule.workflow_id == Workflow.id)
            .where(Workflow.account_id == account_id, Workflow.date_deleted.is_(None))):
        if schedule.cron_expression and not _names_zone(workflow.schedule_frequency):
            _follow_account_zone(workflow, schedule, zone or DEFAULT_ZONE, now)
    return account_zone_to_api(account)


def _follow_account_zone(workflow: Workflow, schedule: WorkflowSchedule, zone: str, now: datetime) -> None:
    if schedule.time_zone == zone:
        return
    schedule.time_zone = zone
    schedule.date_changed = now
    _touch(workflow, schedule, now)


def _names_zone(frequency: str | None) -> bool:
    try:
        return any(key.lower() == "timezone" for key in json.loads(frequency or "{}"))
    except (ValueError, TypeError, AttributeError):
        return False


def get_account_time_zone(session: Session, account_id: uuid.UUID) -> dict:
    return account_zone_to_api(session.get(Account, account_id))


def account_zone_to_api(account: Account) -> dict:
    return {"accountId": account.id, "timeZone": account.time_zone}


# --- previews ------------------------------------------------------------------------------------------------------

def preview(session: Session, account_id: uuid.UUID, data: dict, now: datetime | None = None) -> list[str]:
    spec = parse_frequency(data.get("scheduleFrequency"), account_time_zone(session, account_id))
    after = parse_instant(data["after"], "after") if data.get("after") else (now or utcnow())
    return fire_time_texts(spec.cron, spec.zone, after, data.get("count") or 5)


def fire_time_texts(cron: Expression, zone: ZoneInfo, after: datetime, count: int) -> list[str]:
    """ISO 8601 with the zone's offset, whole seconds: ``2026-03-29T03:00:00+02:00``."""
    try:
        return [fire_time.isoformat(timespec="seconds") for fire_time in cron.fire_times(after, zone, count)]
    except OverflowError:  # an instant at the very edge of what datetime holds
        raise BadRequestError(f"after: {after.isoformat()} is out of range", field="after") from None


def parse_instant(text: Any, field: str) -> datetime:
    """An ISO 8601 instant; one without an offset is read as UTC, as every timestamp of this API is."""
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        raise BadRequestError(f"{field}: '{text}' is not an ISO 8601 instant, e.g. 2026-03-29T01:30:00+01:00",
                              field=field) from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# --- the occurrence ledger --------------------------------------------------------------------------------------------

def list_occurrences(session: Session, account_id: uuid.UUID, args: dict) -> tuple[list[ScheduleOccurrence], int]:
    """A workflow's occurrences, newest first; a deleted workflow's ledger stays readable, as its runs do."""
    from canvas.workflows.service import history_owner, page_of

    workflow = history_owner(session, account_id, args["workflowId"])
    query = select(ScheduleOccurrence).where(ScheduleOccurrence.workflow_id == workflow.id)
    if args.get("outcome"):
        query = query.where(ScheduleOccurrence.outcome == args["outcome"])
    return page_of(session, query, (ScheduleOccurrence.scheduled_time.desc(),), args["page"], args["pageSize"])


def occurrence_to_api(occurrence: ScheduleOccurrence) -> dict:
    started_run = occurrence.outcome in ("fired", "failed")
    return {
        "workflowId": occurrence.workflow_id,
        "scheduledTime": occurrence.scheduled_time,
        "dispatchTime": occurrence.dispatch_time,
        "outcome": occurrence.outcome,
        "reason": occurrence.reason,
        "runId": occurrence.run_id if started_run else None,
        "scheduler": occurrence.scheduler,
    }

"""The console's schedules pages (issue 20, item 4): a workflow's schedule (on or off, its Quartz cron with the next
fire times previewed in its time zone, the time zone, the overlap and misfire policies) and its occurrence ledger.
They call the services of /api/WorkflowScheduler, /api/SchedulePreview, /api/WorkflowSchedulePolicy and
/api/ScheduleOccurrences, so the checks, the messages and the audit entries are the API's."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import current_app, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from canvas.console import forms
from canvas.console.resources import acting_account_id, blp, field_errors, render_page
from canvas.errors import BadRequestError, CanvasError, NotFoundError
from canvas.extensions import db_session
from canvas.models import Workflow, WorkflowSchedule
from canvas.models.schedule import MISFIRE_POLICIES, OUTCOMES, OVERLAP_POLICIES
from canvas.schedules import service as schedules
from canvas.schedules.notify import announce_schedule_change
from canvas.workflows.service import get_workflow, history_owner

PREVIEW_COUNT = 10
OCCURRENCES_PAGE_SIZE = 50
# The API names every cron problem after its JSON field; beside the console's cron field that prefix says nothing.
CRON_MESSAGE_PREFIX = f"{schedules.FIELD}.cronSchedule: "
OVERLAP_CHOICES = {"skip": "Skip: an occurrence due while a run is still active is skipped",
                   "queue": "Queue: one occurrence waits for the active run to end, then runs"}
MISFIRE_CHOICES = {"coalesce": "Coalesce: occurrences missed (no scheduler running) become one run",
                   "skip": "Skip: missed occurrences are recorded as missed and not run",
                   "run_each": "Run each: one run per missed occurrence, newest first, up to a limit"}
DIALECT_CHOICES = {"quartz": "Quartz (seconds first, 6 or 7 fields)", "unix": "Unix (5 fields)"}
assert set(OVERLAP_CHOICES) == set(OVERLAP_POLICIES) and set(MISFIRE_CHOICES) == set(MISFIRE_POLICIES)
assert set(DIALECT_CHOICES) == set(schedules.CRON_DIALECTS)


@dataclass(frozen=True)
class ScheduleForm:
    """What the schedule form shows, or what the browser sent (kept as typed when it is refused)."""

    is_scheduled: bool
    cron: str
    time_zone: str  # empty: the account's default zone
    dialect: str
    overlap_policy: str
    misfire_policy: str

    def frequency(self) -> str | None:
        """The scheduleFrequency JSON string WorkflowScheduler and SchedulePreview take; None without a cron."""
        if not self.cron:
            return None
        fields = {"cronSchedule": self.cron}
        if self.time_zone:
            fields["timeZone"] = self.time_zone
        if self.dialect != "quartz":
            fields["cronDialect"] = self.dialect
        return json.dumps(fields)


# --- the schedule page -----------------------------------------------------------------------------------------------

@blp.route("/workflows/<workflow_id>/schedule", methods=["GET", "POST"])
def workflow_schedule(workflow_id: str):  # noqa: ANN201
    """GET: the schedule and its form. POST with intent=preview: the form's next fire times, nothing saved (the page
    works without JavaScript); otherwise: saved, then back to the page (POST, redirect, GET)."""
    session = db_session()
    schedule = schedules.get_schedule(session, acting_account_id(), workflow_id)  # another account's: a 404
    workflow = session.get(Workflow, schedule["workflowId"])
    if request.method == "GET":
        return _schedule_page(workflow, schedule, _stored_form(workflow, schedule))
    form = _sent_form(request.form)
    if request.form.get("intent") == "preview":
        preview = _preview(form)
        return _schedule_page(workflow, schedule, form, {preview.field: preview.error} if preview.error else {},
                              preview)
    try:
        _save(session, acting_account_id(), workflow.id, form)
    except CanvasError as error:
        session.rollback()
        return _schedule_page(workflow, schedule, form, _schedule_errors(error))
    return redirect(url_for("console.workflow_schedule", workflow_id=workflow.id, saved=1))


def _schedule_page(workflow: Workflow, schedule: dict, form: ScheduleForm, errors: dict | None = None,
                   preview: Preview | None = None):  # noqa: ANN202
    """The page with `form` as shown or as sent; 400 when `errors` name what is wrong, beside each field."""
    return render_page("schedule.html", status=400 if errors else 200,
                       workflow=workflow, schedule=schedule, form=form, errors=errors or {},
                       preview=preview or _preview(form), saved=request.args.get("saved") == "1",
                       account_zone=_account_zone(), zones=sorted(schedules.known_time_zones()),
                       overlap_choices=OVERLAP_CHOICES, misfire_choices=MISFIRE_CHOICES,
                       dialect_choices=DIALECT_CHOICES, workflow_link=workflow_link(workflow.id),
                       next_fire=_local(schedule["dateNextSchedule"], schedule["timeZone"]))


def _stored_form(workflow: Workflow, schedule: dict) -> ScheduleForm:
    """The schedule as the account last set it: the cron and zone as it wrote them in scheduleFrequency."""
    stored = schedules.stored_frequency(workflow)
    return ScheduleForm(is_scheduled=schedule["isScheduled"],
                        cron=str(stored.get("cronSchedule") or schedule["cronSchedule"] or ""),
                        time_zone=str(stored.get("timeZone") or ""),
                        dialect=str(stored.get("cronDialect") or "quartz"),
                        overlap_policy=schedule["overlapPolicy"], misfire_policy=schedule["misfirePolicy"])


def _sent_form(values: MultiDict) -> ScheduleForm:
    return ScheduleForm(is_scheduled=values.get("isScheduled") == "true",
                        cron=values.get("cronSchedule", "").strip(), time_zone=values.get("timeZone", "").strip(),
                        dialect=values.get("cronDialect") or "quartz",
                        overlap_policy=values.get("overlapPolicy", ""), misfire_policy=values.get("misfirePolicy", ""))


def _save(session, account_id: uuid.UUID, workflow_id: uuid.UUID, form: ScheduleForm) -> None:  # noqa: ANN001
    """WorkflowScheduler, then WorkflowSchedulePolicy when a policy changed: one transaction, each audited."""
    _check_choice("overlapPolicy", form.overlap_policy, OVERLAP_POLICIES)
    _check_choice("misfirePolicy", form.misfire_policy, MISFIRE_POLICIES)
    _check_frequency_fields(form)
    if form.is_scheduled and not form.cron:
        raise BadRequestError("Enter a cron expression to turn the schedule on", field="cronSchedule")
    schedules.set_workflow_scheduler(session, account_id, {"workflowId": workflow_id,
                                                           "isScheduled": form.is_scheduled,
                                                           "scheduleFrequency": form.frequency()})
    current = schedules.get_schedule(session, account_id, workflow_id)
    if (current["overlapPolicy"], current["misfirePolicy"]) != (form.overlap_policy, form.misfire_policy):
        schedules.set_policy(session, account_id, {"workflowId": workflow_id, "overlapPolicy": form.overlap_policy,
                                                   "misfirePolicy": form.misfire_policy})
    session.commit()
    announce_schedule_change()


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if forms.choice(MultiDict({name: value}), name, allowed) is None:  # the console's one check of a choice
        raise BadRequestError(f"{name}: choose one of {', '.join(allowed)}", field=name)


def _check_frequency_fields(form: ScheduleForm) -> None:
    """The dialect and the zone before the cron: the service names all three scheduleFrequency, the form has a
    field for each."""
    _check_choice("cronDialect", form.dialect, schedules.CRON_DIALECTS)
    if form.time_zone:
        schedules.check_time_zone(form.time_zone, "timeZone")


def _schedule_errors(error: CanvasError) -> dict[str, str]:
    """A service error by form field: what the API calls scheduleFrequency is the cron field here."""
    if error.field != schedules.FIELD:
        return field_errors(error)
    return {"cronSchedule": error.message.removeprefix(CRON_MESSAGE_PREFIX)}


def _account_zone() -> str:
    """The zone of a schedule that names none: the account's default, else UTC (as parse_frequency falls back)."""
    return schedules.account_time_zone(db_session(), acting_account_id()) or schedules.DEFAULT_ZONE


# --- the live preview ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Preview:
    fire_times: list[datetime]
    zone: str
    error: str | None = None
    field: str | None = None  # the form field the error belongs to
    note: str | None = None  # why there is nothing to show yet (no error)


def _preview(form: ScheduleForm) -> Preview:
    """The next fire times of the form's schedule in its zone, from SchedulePreview's service, or why there are
    none."""
    zone = form.time_zone or _account_zone()
    if not form.cron:
        return Preview([], zone, note="Enter a cron expression to see its next fire times.")
    try:
        _check_frequency_fields(form)
        texts = schedules.preview(db_session(), acting_account_id(),
                                  {"scheduleFrequency": form.frequency(), "count": PREVIEW_COUNT})
    except BadRequestError as error:
        (field, message), = _schedule_errors(error).items()
        return Preview([], zone, message, field)
    return Preview([_local(datetime.fromisoformat(text), zone) for text in texts], zone)  # the zone's own names


@blp.get("/workflows/<workflow_id>/schedule/preview")
def schedule_preview(workflow_id: str):  # noqa: ANN201
    """An HTML fragment for console.js: the next fire times of ?cron=&timeZone=&cronDialect=, or the error."""
    get_workflow(db_session(), acting_account_id(), workflow_id)  # another account's workflow: a 404
    form = ScheduleForm(is_scheduled=False, cron=request.args.get("cron", "").strip(),
                        time_zone=request.args.get("timeZone", "").strip(),
                        dialect=request.args.get("cronDialect") or "quartz", overlap_policy="", misfire_policy="")
    preview = _preview(form)
    return render_page("schedule_preview.html", status=400 if preview.error else 200, preview=preview)


# --- the occurrence ledger -------------------------------------------------------------------------------------------

@blp.get("/workflows/<workflow_id>/occurrences")
def workflow_occurrences(workflow_id: str):  # noqa: ANN201
    """ScheduleOccurrences: newest first, 50 a page, filtered by outcome; a deleted workflow's ledger stays readable,
    as in the API."""
    session = db_session()
    workflow = history_owner(session, acting_account_id(), _workflow_uuid(workflow_id))
    args = {"workflowId": workflow.id, "outcome": None, "page": 1, "pageSize": OCCURRENCES_PAGE_SIZE}
    errors, rows, total = {}, [], 0
    try:
        args.update(outcome=forms.choice(request.args, "outcome", OUTCOMES),
                    page=forms.page_number(request.args))
        rows, total = schedules.list_occurrences(session, acting_account_id(), args)
    except BadRequestError as error:
        errors = field_errors(error)
    zone = _schedule_zone(session, workflow.id)
    return render_page("occurrences.html", status=400 if errors else 200, workflow=workflow, errors=errors,
                       occurrences=[_occurrence_view(row, zone) for row in rows], total=total, zone=zone,
                       page=args["page"], pages=forms.page_count(total, OCCURRENCES_PAGE_SIZE),
                       outcome=request.args.get("outcome", ""), outcomes=OUTCOMES,
                       workflow_link=workflow_link(workflow.id))


def _workflow_uuid(workflow_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(workflow_id)
    except ValueError:
        raise NotFoundError(f"Unknown workflow {workflow_id}", parameter="workflowId") from None


def _schedule_zone(session, workflow_id: uuid.UUID) -> str:  # noqa: ANN001
    """The zone the ledger's times are shown in: the schedule's (the one its occurrences were computed in)."""
    schedule = session.get(WorkflowSchedule, workflow_id)
    return schedule.time_zone if schedule is not None else schedules.DEFAULT_ZONE


def _occurrence_view(row, zone: str) -> dict:  # noqa: ANN001 - a ScheduleOccurrence
    shown = schedules.occurrence_to_api(row)
    return {**shown, "scheduledLocal": _local(shown["scheduledTime"], zone),
            "dispatchLocal": _local(shown["dispatchTime"], zone)}


def _local(instant: datetime | None, zone: str | None) -> datetime | None:
    return None if instant is None else instant.astimezone(ZoneInfo(zone or schedules.DEFAULT_ZONE))


def workflow_link(workflow_id: uuid.UUID) -> str | None:
    """The workflow's page, once the workflows pages exist (they are built alongside)."""
    if "console.workflow_detail" not in current_app.view_functions:
        return None
    return url_for("console.workflow_detail", workflow_id=workflow_id)


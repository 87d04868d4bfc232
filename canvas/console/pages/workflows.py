"""The console's workflows pages: the acting account's workflows a page at a time (as GET /api/Workflows) with
their template, last run and next fire time; a workflow's blocks (its chain, or its graph with each block's parents),
bound applications, schedule and recent runs; and forms for its settings (name, description, failure policy, who is
mailed about its runs), its blocks' variables and its application bindings that change them through the service
POST /api/UpdateWorkflow calls, with the same request schema."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from canvas.catalog.definition import ChainEntry, version_key
from canvas.console import forms
from canvas.console.resources import acting_account_id, blp, field_errors, render_page
from canvas.console.variables import (
    APPLICATION_FIELD,
    BLOCK_VARIABLES_FIELD,
    FormErrors,
    VariableField,
    application_choices,
    as_form_errors,
    chain_overrides,
    chosen_applications,
    shown,
)
from canvas.errors import BadRequestError
from canvas.execution.graph import FAILURE_POLICIES
from canvas.execution.registry import get_block
from canvas.extensions import db_session, services
from canvas.models import RegisteredApplication, Workflow, WorkflowRun, WorkflowTemplate
from canvas.notifications import settings as notification_settings
from canvas.runs import service as runs
from canvas.schedules import service as schedules
from canvas.workflows import service as workflows
from canvas.workflows.block_settings import settings_from_json
from canvas.workflows.resources import actor
from canvas.workflows.schemas import UpdateWorkflowSchema
from canvas.workflows.service import NOTIFICATION_NAMES

WORKFLOWS_PAGE_SIZE = 50
RECENT_RUNS = 5  # on a workflow's page; the runs list filtered by the workflow has the rest
NO_TEMPLATE_MESSAGE = ("This flow was made through the v2 API from no template: its variables and applications are "
                       "changed there (PATCH /v2/flows/<id>), not here.")
NAMED_VARIABLE = re.compile(r"variable '([^']+)'")  # how the service's variable checks name the variable at fault
NOTIFICATIONS = "notificationSettings"  # the settings form's fields are UpdateWorkflow's names (errors land on them)
OWN_NOTIFICATIONS = "own"  # the choice of the workflow's own settings; "account" leaves them to the account
# Each event a workflow's own settings can mail about (canvas.notifications.settings' flags): the form's label, and
# the word the page's facts use.
NOTIFICATION_EVENTS = {"on_failure": ("a run fails", "failures"),
                       "on_recovery": ("a run succeeds after a failed one", "recoveries"),
                       "on_missed_schedule": ("a scheduled run is missed or skipped", "missed or skipped schedules")}
NOTIFICATION_FLAGS = [(f"{NOTIFICATIONS}.{NOTIFICATION_NAMES[flag]}", label)
                      for flag, (label, _word) in NOTIFICATION_EVENTS.items()]
EMAILS_FIELD = f"{NOTIFICATIONS}.emails"


# --- the list --------------------------------------------------------------------------------------------------------

@blp.get("/workflows")
def workflows_list():  # noqa: ANN201
    session = db_session()
    errors, rows, total, page = {}, [], 0, 1
    try:
        page = forms.page_number(request.args)
        rows, total = workflows.list_workflows(session, acting_account_id(),
                                               {"paged": True, "page": page, "pageSize": WORKFLOWS_PAGE_SIZE})
    except BadRequestError as error:
        errors = field_errors(error)
    ids = [uuid.UUID(row["id"]) for row in rows]
    return render_page("workflows.html", status=400 if errors else 200, workflows=[_listed(row) for row in rows],
                       last_runs=last_runs(session, ids), total=total, page=page, errors=errors,
                       template_names=_template_names(session, {row["workflowTemplateId"] for row in rows}),
                       pages=forms.page_count(total, WORKFLOWS_PAGE_SIZE))


def _listed(row: dict) -> dict:
    """A GET Workflows item with its instants as datetimes again, for the page to format."""
    return {**row, **{key: datetime.fromisoformat(row[key]) if row[key] else None
                      for key in ("dateLastRun", "dateNextSchedule")}}


def last_runs(session: Session, workflow_ids: list[uuid.UUID]) -> dict[str, Any]:
    """The newest run of each of these workflows (id, workflow_id, status, date_queued), by workflow id as text (as
    the list's rows have it): one newest-run
    lookup per workflow on the (workflow_id, date_queued, id) index, however many runs they have."""
    if not workflow_ids:
        return {}
    newest = (select(WorkflowRun.id).where(WorkflowRun.workflow_id == Workflow.id)
              .order_by(WorkflowRun.date_queued.desc(), WorkflowRun.id.desc()).limit(1)
              .correlate(Workflow).scalar_subquery())
    run_ids = [run_id for run_id in session.scalars(select(newest).where(Workflow.id.in_(workflow_ids))) if run_id]
    if not run_ids:
        return {}
    rows = session.execute(select(WorkflowRun.id, WorkflowRun.workflow_id, WorkflowRun.status, WorkflowRun.date_queued)
                           .where(WorkflowRun.id.in_(run_ids)))
    return {str(row.workflow_id): row for row in rows}


def _template_names(session: Session, template_ids: set[str | None]) -> dict[str, str]:
    ids = [uuid.UUID(template_id) for template_id in template_ids if template_id]
    if not ids:
        return {}
    rows = session.execute(select(WorkflowTemplate.id, WorkflowTemplate.name).where(WorkflowTemplate.id.in_(ids)))
    return {str(row.id): row.name for row in rows}


@blp.app_template_global()
def workflows_page_link(page: int) -> str:
    return url_for("console.workflows_list", page=page)


# --- one workflow ----------------------------------------------------------------------------------------------------

@dataclass
class BlockView:
    """A block of the workflow as its page shows it: GET Workflow's chain entry, and its variables' form fields."""

    shown: dict  # chain_to_api's entry: number, uniqueBlockId, blockName, block, application, variables, inputs?
    template_entry: ChainEntry | None  # the block in the workflow's template version; None: a v2 flow's block
    title: str  # the block type's human name
    settings: dict  # retries, timeoutSeconds, onRecordError the workflow sets on it
    fields: list[VariableField]  # compared with the template's values: a value equal to them is no override

    @property
    def error_field(self) -> str:
        return BLOCK_VARIABLES_FIELD.format(self.shown["number"] - 1)

    def current_text(self, field: VariableField) -> str:
        """What the field shows before an edit: the workflow's value (the template's with its override)."""
        return shown(self.shown["variables"].get(field.name, field.spec.default))


@blp.get("/workflows/<workflow_id>")
def workflow_detail(workflow_id: str):  # noqa: ANN201
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    return _detail_page(session, workflow, {}, MultiDict(), saved=request.args.get("saved") == "1")


@blp.post("/workflows/<workflow_id>/variables")
def workflow_variables(workflow_id: str):  # noqa: ANN201
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    blocks = _blocks(session, workflow)
    try:
        _update_variables(session, workflow, blocks, request.form)
    except FormErrors as error:
        session.rollback()
        workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
        return _detail_page(session, workflow, _beside_variables(error.errors, blocks), request.form, status=400)
    return redirect(url_for("console.workflow_detail", workflow_id=workflow.id, saved=1))


def _update_variables(session: Session, workflow: Workflow, blocks: list[BlockView], form: MultiDict) -> None:
    """UpdateWorkflow with every block's variables that differ from the template's; each block keeps its run
    settings (a block listed without them would go back to the defaults)."""
    if workflow.template_id is None:
        raise FormErrors({"form": NO_TEMPLATE_MESSAGE})
    chain, errors = chain_overrides([{"entry": block.template_entry, "fields": block.fields} for block in blocks],
                                     _with_current_values(blocks, form))
    if errors:
        raise FormErrors(errors)
    for entry, block in zip(chain, blocks):
        entry.update(block.settings)
    with as_form_errors():
        data = UpdateWorkflowSchema().load({"id": str(workflow.id), "chain": chain})
        workflows.update_workflow(session, actor(), data)
        session.commit()


def _with_current_values(blocks: list[BlockView], form: MultiDict) -> MultiDict:
    """The form with each field it did not send holding the workflow's value: a truncated or scripted submit keeps
    the overrides it did not mention (taken for the template's values, they were dropped, the page saying saved)."""
    filled = MultiDict(form)
    for block in blocks:
        for field in block.fields:
            if field.field not in form:
                filled[field.field] = block.current_text(field)
    return filled


@blp.post("/workflows/<workflow_id>/settings")
def workflow_settings(workflow_id: str):  # noqa: ANN201
    """Name, description, failure policy and notification e-mails, as UpdateWorkflow changes them."""
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    try:
        with as_form_errors():
            data = UpdateWorkflowSchema().load({"id": str(workflow.id), **settings_from_form(request.form)})
            workflows.update_workflow(session, actor(), data)
            session.commit()
    except FormErrors as error:
        session.rollback()
        workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
        return _detail_page(session, workflow, _on_settings_fields(error.errors), request.form, status=400)
    return redirect(url_for("console.workflow_detail", workflow_id=workflow.id, saved=1))


def settings_from_form(form: MultiDict) -> dict:
    """UpdateWorkflow's fields from the settings form: an unticked box is false, addresses one per line (or
    separated by commas), and "the account's settings" is null."""
    data = {"name": form.get("name", ""), "description": form.get("description", ""),
            "failurePolicy": form.get("failurePolicy") or None}
    if form.get(NOTIFICATIONS) == OWN_NOTIFICATIONS:
        data[NOTIFICATIONS] = {_api_name(field): form.get(field) == "on" for field, _label in NOTIFICATION_FLAGS}
        data[NOTIFICATIONS]["emails"] = [address.strip() for address in
                                         re.split(r"[\n,;]", form.get(EMAILS_FIELD, "")) if address.strip()]
    else:
        data[NOTIFICATIONS] = None
    return data


def _on_settings_fields(errors: dict[str, str]) -> dict[str, str]:
    """An address's error (notificationSettings.emails.2) goes beside the addresses' field."""
    return {re.sub(rf"^{re.escape(EMAILS_FIELD)}\.\d+$", EMAILS_FIELD, key): message
            for key, message in errors.items()}


def _settings_form(workflow: Workflow, form: MultiDict) -> dict:
    """What the settings form shows: what was sent (after a refusal), else the workflow's settings."""
    if form.get("name") is not None:
        return {key: form.get(key) for key in ("name", "description", "failurePolicy", NOTIFICATIONS, EMAILS_FIELD)} | {
            field: form.get(field) == "on" for field, _label in NOTIFICATION_FLAGS}
    own = notification_settings.settings_for_api(workflow.notification_settings, NOTIFICATION_NAMES)
    shown = {"name": workflow.name, "description": workflow.description or "",
             "failurePolicy": workflow.failure_policy or FAILURE_POLICIES[0],
             NOTIFICATIONS: OWN_NOTIFICATIONS if own is not None else "account",
             EMAILS_FIELD: "\n".join((own or {}).get("emails", []))}
    shown.update({field: (own or {}).get(_api_name(field), True) for field, _label in NOTIFICATION_FLAGS})
    return shown


def _api_name(field: str) -> str:
    """A settings form field's name in UpdateWorkflow's notificationSettings (notificationSettings.onFailure)."""
    return field.rsplit(".", 1)[1]


def _who_is_mailed(workflow: Workflow) -> str:
    """The page's fact: which events of the workflow's runs are mailed, and to whom."""
    stored = workflow.notification_settings
    if stored is None:
        return "the account's settings"
    events = ", ".join(word for flag, (_label, word) in NOTIFICATION_EVENTS.items() if stored.get(flag, True))
    addresses = ", ".join(stored.get("emails") or []) or "the account's notification address"
    return f"{events or 'none'} to {addresses}"


@blp.post("/workflows/<workflow_id>/applications")
def workflow_applications(workflow_id: str):  # noqa: ANN201
    """Binds the workflow's applications to other registered applications of the account, as UpdateWorkflow's
    `applications` does (a binding left unchosen stays as it is)."""
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    choices = _binding_choices(session, workflow)
    try:
        if workflow.template_id is None:
            raise FormErrors({"form": NO_TEMPLATE_MESSAGE})
        with as_form_errors():
            data = UpdateWorkflowSchema().load({"id": str(workflow.id),
                                                "applications": chosen_applications(choices, request.form)})
            workflows.update_workflow(session, actor(), data)
            session.commit()
    except FormErrors as error:
        session.rollback()
        workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
        return _detail_page(session, workflow, error.errors, request.form, status=400)
    return redirect(url_for("console.workflow_detail", workflow_id=workflow.id, saved=1))


def _binding_choices(session: Session, workflow: Workflow) -> list:
    """Per application the workflow binds: the account's registered applications of that kind."""
    return application_choices(session, [binding.short_name for binding in workflow.bindings])


def _binding_form(workflow: Workflow, form: MultiDict) -> MultiDict:
    """The bindings form's values: what was sent, else the workflow's current bindings."""
    current = {APPLICATION_FIELD.format(short_name): registered_id
               for short_name, registered_id in workflows.current_bindings(workflow).items()}
    return MultiDict({**current, **{key: form[key] for key in current if form.get(key)}})


def _beside_variables(errors: dict[str, str], blocks: list[BlockView]) -> dict[str, str]:
    """The service names a block's variables (chain[i].variables) and, in its message, the variable at fault: the
    error goes beside that variable's field when the message names one of the block's."""
    placed = dict(errors)
    for block in blocks:
        message = placed.get(block.error_field)
        named = set(NAMED_VARIABLE.findall(message or ""))
        fields = [field for field in block.fields if field.name in named]
        if fields:
            del placed[block.error_field]
            placed.update({field.field: message for field in fields})
    return placed


def _blocks(session: Session, workflow: Workflow) -> list[BlockView]:
    """The workflow's blocks in the template's order (the order UpdateWorkflow's errors count them by), each with a
    field for every variable its block type declares. A flow made through the v2 dialect has no template, and no
    fields: UpdateWorkflow cannot change its variables (PATCH /v2/flows does)."""
    definition = workflows.workflow_definition(session, workflow) if workflow.template_id else None
    settings = settings_from_json(workflow.chain_overrides)
    views = []
    for entry in workflows.chain_to_api(workflow.chain):
        # the chain is resolved from the template's version: each of its blocks is there
        template_entry = definition.entry(entry["uniqueBlockId"]) if definition else None
        block = get_block(entry["block"])
        fields = [VariableField(entry["uniqueBlockId"], name, spec, template_entry.variables.get(name, spec.default))
                  for name, spec in block.variables.items()] if template_entry else []
        views.append(BlockView(entry, template_entry, block.title, settings.get(entry["uniqueBlockId"], {}), fields))
    return views


def _detail_page(session: Session, workflow: Workflow, errors: dict[str, str], form: MultiDict,  # noqa: ANN202
                 status: int = 200, saved: bool = False):
    recent, run_count = runs.list_runs(session, acting_account_id(),
                                       {"workflowId": workflow.id, "page": 1, "pageSize": RECENT_RUNS})
    template = session.get(WorkflowTemplate, workflow.template_id) if workflow.template_id else None
    blocks = _blocks(session, workflow)
    return render_page("workflow.html", status=status, workflow=workflow, blocks=blocks,
                       graph=any("inputs" in block.shown for block in blocks),
                       applications=_bound_applications(session, workflow), workflow_template=template,
                       binding_choices=_binding_choices(session, workflow) if workflow.template_id else [],
                       binding_form=_binding_form(workflow, form),
                       newer_version=_newer_version(workflow, template), recent_runs=recent, run_count=run_count,
                       schedule=schedules.get_schedule(session, acting_account_id(), workflow.id),
                       errors=errors, form=form, saved=saved, shown_value=shown,
                       no_template_message=NO_TEMPLATE_MESSAGE, settings=_settings_form(workflow, form),
                       failure_policies=FAILURE_POLICIES, notification_flags=NOTIFICATION_FLAGS,
                       own_notifications=OWN_NOTIFICATIONS, emails_field=EMAILS_FIELD,
                       who_is_mailed=_who_is_mailed(workflow))


def _newer_version(workflow: Workflow, template: WorkflowTemplate | None) -> str | None:
    """The template's newest published version when it is newer than the workflow's (what Upgrade offers)."""
    if template is None or not template.version or not workflow.template_version:
        return None
    return template.version if version_key(template.version) > version_key(workflow.template_version) else None


def _bound_applications(session: Session, workflow: Workflow) -> list[dict]:
    """Each application the template uses, with the registered application bound to it (never its credentials)."""
    catalog = services().application_catalog
    bound = []
    for binding in workflow.bindings:
        spec = catalog.get_by_short_name(binding.short_name)
        registered = session.get(RegisteredApplication, binding.registered_application_id)
        bound.append({"short_name": binding.short_name, "name": spec.name if spec else binding.short_name,
                      "registered": registered})
    return bound

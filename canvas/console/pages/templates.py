"""The console's templates pages: the catalog and the organization's templates (as GET /api/WorkflowTemplates),
a template's blocks, applications and versions, instantiating it (as POST /api/Workflow) and upgrading a workflow
to a newer version of its template (as /api/WorkflowUpgradePreview and /api/UpgradeWorkflow)."""
from __future__ import annotations

import uuid

from flask import g, redirect, request, url_for

from canvas.catalog import service as templates
from canvas.catalog.definition import (
    TemplateDefinition,
    definition_from_json,
    inputs_for_display,
    version_key,
)
from canvas.console import forms
from canvas.console.resources import acting_account_id, blp, field_errors, render_page
from canvas.console.variables import (
    ApplicationChoice,
    FormErrors,
    application_choices,
    as_form_errors,
    chain_overrides,
    chosen_applications,
    variable_blocks,
)
from canvas.errors import BadRequestError, CanvasError, NotFoundError
from canvas.execution.registry import get_block
from canvas.extensions import db_session
from canvas.models import WorkflowTemplate
from canvas.workflows import service as workflows
from canvas.workflows import upgrade
from canvas.workflows.resources import actor
from canvas.workflows.schemas import AddWorkflowSchema, UpgradeWorkflowSchema

TEMPLATES_PAGE_SIZE = 50


# --- the list and the detail -----------------------------------------------------------------------------------------

@blp.get("/templates")
def templates_list():  # noqa: ANN201
    errors, rows, total, page = {}, [], 0, 1
    try:
        page = forms.page_number(request.args)
        rows, total = templates.visible_templates(db_session(), g.principal.organization_id,
                                                  {"paged": True, "page": page, "pageSize": TEMPLATES_PAGE_SIZE})
    except BadRequestError as error:
        errors = field_errors(error)
    pages = forms.page_count(total, TEMPLATES_PAGE_SIZE)
    return render_page("templates.html", status=400 if errors else 200, templates=rows, total=total, page=page,
                       pages=pages, errors=errors)


@blp.get("/templates/<template_id>")
def template_detail(template_id: str):  # noqa: ANN201
    session = db_session()
    row = _visible_template(session, template_id)
    definition = _instantiable_definition(session, row)
    return render_page("template.html", workflow_template=row, blocks=_described_blocks(definition),
                       versions=templates.list_versions(session, row.id),
                       applications=application_choices(session, definition.applications))


def _visible_template(session, template_id: str) -> WorkflowTemplate:  # noqa: ANN001
    """A template of the catalog or of the acting account's organization; any other reads as not found (the API
    answers 400 for it, naming the request's field, which a page has none of)."""
    try:
        return templates.find_visible_template(session, g.principal.organization_id, template_id)
    except BadRequestError:
        raise NotFoundError(f"Unknown workflow template {template_id}") from None


def _instantiable_definition(session, row: WorkflowTemplate) -> TemplateDefinition:  # noqa: ANN001
    """What instantiating the template uses: its current published version; a Draft's own definition."""
    if row.version is None:
        return definition_from_json(row.definition)
    return definition_from_json(templates.published_version(session, row).definition)


def _described_blocks(definition: TemplateDefinition) -> list[dict]:
    """Each block with its type's title and, in a graph, the blocks feeding it (by number)."""
    inputs = inputs_for_display(definition.to_json()["chain"])
    return [{"number": number, "entry": entry, "title": get_block(entry.block).title,
             "inputs": [given["fromBlock"] for given in fed_by] if fed_by is not None else None}
            for number, (entry, fed_by) in enumerate(zip(definition.chain, inputs), start=1)]


@blp.route("/templates/<template_id>/instantiate", methods=["GET", "POST"])
def instantiate_template(template_id: str):  # noqa: ANN201
    session = db_session()
    row = _visible_template(session, template_id)
    version = templates.published_version(session, row)  # a Draft: the service's 400 page says why
    definition = definition_from_json(version.definition)
    choices = application_choices(session, definition.applications)
    blocks = variable_blocks(definition)
    errors = {}
    if request.method == "POST":
        try:
            workflow_id = _instantiate(session, row, choices, blocks)
            return redirect(url_for("console.workflow_detail", workflow_id=workflow_id))
        except FormErrors as error:
            session.rollback()
            errors = error.errors
    return render_page("template_instantiate.html", status=400 if errors else 200, workflow_template=row,
                       version=version, applications=choices, blocks=blocks, errors=errors, form=request.form)


def _instantiate(session, row: WorkflowTemplate, choices: list[ApplicationChoice],  # noqa: ANN001
                 blocks: list[dict]) -> uuid.UUID:
    chain, errors = chain_overrides(blocks, request.form)
    if errors:
        raise FormErrors(errors)
    body = {"workflowTemplateId": str(row.id), "name": request.form.get("name") or None,
            "applications": chosen_applications(choices, request.form), "chain": chain}
    with as_form_errors():
        workflow = workflows.instantiate(session, actor(), AddWorkflowSchema().load(body))
        session.commit()
        return workflow.id


# --- upgrading a workflow --------------------------------------------------------------------------------------------

@blp.route("/workflows/<workflow_id>/upgrade", methods=["GET", "POST"])
def workflow_upgrade(workflow_id: str):  # noqa: ANN201
    """GET: the three-way merge preview of the chosen newer version (default: the newest) and its conflicts; POST
    (the confirmation): the upgrade, refused as the API refuses it."""
    session = db_session()
    workflow = workflows.get_workflow(session, acting_account_id(), workflow_id)
    newer = _newer_versions(session, workflow)
    chosen = request.values.get("version") or (newer[-1].version if newer else None)
    plan, errors = _preview(session, workflow, chosen)
    choices = application_choices(session, plan["newApplications"]) if plan else []
    if request.method == "POST" and plan:
        try:
            _upgrade(session, workflow.id, chosen, chosen_applications(choices, request.form))
            return redirect(url_for("console.workflow_detail", workflow_id=workflow.id))
        except FormErrors as error:
            session.rollback()
            errors = error.errors
    return render_page("upgrade.html", status=400 if errors else 200, workflow=workflow, versions=newer,
                       chosen=chosen, plan=plan, applications=choices, errors=errors, form=request.form)


def _newer_versions(session, workflow) -> list:  # noqa: ANN001
    """The template's published versions newer than the workflow's, oldest first (none for a flow of the v2
    dialect, made without a template)."""
    if workflow.template_id is None:
        return []
    row = templates.find_visible_template(session, workflow.organization_id, workflow.template_id)
    current = version_key(workflow.template_version)
    return [version for version in templates.list_versions(session, row.id) if version_key(version.version) > current]


def _preview(session, workflow, version: str | None) -> tuple[dict | None, dict[str, str]]:  # noqa: ANN001
    """WorkflowUpgradePreview's answer, or why there is none (a version that is no newer one of the template)."""
    if not version or workflow.template_id is None:
        return None, {}
    try:
        return upgrade.plan_upgrade(session, workflow, version).to_api(), {}
    except CanvasError as error:
        return None, field_errors(error)


def _upgrade(session, workflow_id: uuid.UUID, version: str, chosen: dict[str, str]) -> None:  # noqa: ANN001
    body = {"id": str(workflow_id), "version": version, "applications": chosen or None}
    with as_form_errors():
        data = UpgradeWorkflowSchema().load(body)
        upgrade.apply_upgrade(session, actor(), data["id"], data.get("version"),
                              {key: str(value) for key, value in (data.get("applications") or {}).items()})
        session.commit()

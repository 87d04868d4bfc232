"""Flow drafts and copies: a draft holds the next graph, cron and settings of a flow without touching the running
one; publishing applies it through the PATCH path; a copy writes another flow's draft."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.audit import service as audit
from canvas.errors import BadRequestError, NotFoundError, UnprocessableError
from canvas.models import FlowDraft, Workflow
from canvas.models.base import utcnow
from canvas.v2.flow_service import (
    boolean,
    checked_cron,
    failure_policy_of,
    flow_schedule,
    get_flow,
    object_attribute,
    optional_text,
    record_flow_change,
    record_version,
    required_text,
    settings_of,
    update_flow,
)
from canvas.v2.graph import graph_of, parse_graph
from canvas.workflows.service import Actor


def find_draft(session: Session, workflow: Workflow) -> FlowDraft | None:
    return session.scalar(select(FlowDraft).where(FlowDraft.workflow_id == workflow.id))


def get_draft(session: Session, account_id: uuid.UUID, flow_id: str) -> tuple[Workflow, FlowDraft]:
    workflow = get_flow(session, account_id, flow_id)
    draft = find_draft(session, workflow)
    if draft is None:
        raise NotFoundError(f"Flow {workflow.id} has no draft")
    return workflow, draft


def save_draft(session: Session, catalog, actor: Actor, flow_id: str,  # noqa: ANN001
               attributes: dict) -> tuple[Workflow, FlowDraft]:
    """Create or update the flow's draft. Attributes not given keep the draft's value (a new draft starts from the
    flow as it is). The graph is validated as a flow's graph is; the running flow is not touched."""
    workflow = get_flow(session, actor.account_id, flow_id)
    return workflow, _write_draft(session, catalog, actor, workflow, attributes)


def _write_draft(session: Session, catalog, actor: Actor, workflow: Workflow,  # noqa: ANN001
                 attributes: dict) -> FlowDraft:
    draft = find_draft(session, workflow)
    before = audit.snapshot(draft)
    if draft is None:
        settings = settings_of(session, workflow)
        draft = FlowDraft(workflow_id=workflow.id, account_id=actor.account_id, name=workflow.name,
                          description=workflow.description,
                          cron=flow_schedule(session, workflow).cron, graph=graph_of(workflow),
                          nodes_config=settings.nodes_config or {},
                          stats_enabled=settings.stats_enabled, date_created=utcnow())
        session.add(draft)
    if "name" in attributes:
        draft.name = required_text(attributes, "name")
    if "description" in attributes:
        draft.description = optional_text(attributes, "description")
    if "cron" in attributes:
        draft.cron = checked_cron(attributes["cron"], flow_schedule(session, workflow).time_zone)
    if "graph" in attributes:
        parse_graph(session, catalog, actor.account_id, attributes["graph"])  # validation only
        draft.graph = attributes["graph"]
    if attributes.get("nodes_config") is not None:
        draft.nodes_config = object_attribute(attributes, "nodes_config")
    if attributes.get("stats_enabled") is not None:
        draft.stats_enabled = boolean(attributes, "stats_enabled")
    draft.account_id = actor.account_id
    draft.date_modified = utcnow()
    session.flush()
    record_draft_change(session, "flow.draft.save", workflow, audit.changes_between(before, audit.snapshot(draft)))
    return draft


def record_draft_change(session: Session, action: str, workflow: Workflow, changes: dict) -> None:
    """A draft's entry names its flow: a draft has no id of its own in the API."""
    changes.pop("id", None)
    audit.record(session, action, "flow", workflow.id, changes, organization_id=workflow.organization_id)


def delete_draft(session: Session, account_id: uuid.UUID, flow_id: str) -> None:
    workflow, draft = get_draft(session, account_id, flow_id)
    record_draft_change(session, "flow.draft.delete", workflow, audit.changes_between(audit.snapshot(draft), {}))
    session.delete(draft)
    session.flush()


def publish_draft(session: Session, catalog, actor: Actor, flow_id: str) -> Workflow:  # noqa: ANN001
    """Apply the draft through the PATCH path (a new version when the graph changed), then drop the draft."""
    _, draft = get_draft(session, actor.account_id, flow_id)
    attributes = {"name": draft.name, "description": draft.description, "cron": draft.cron, "graph": draft.graph,
                  "nodes_config": draft.nodes_config, "stats_enabled": draft.stats_enabled}
    workflow = update_flow(session, catalog, actor, flow_id, attributes)
    record_draft_change(session, "flow.draft.publish", workflow, {})
    session.delete(draft)
    session.flush()
    return workflow


def copy_flow(session: Session, catalog, actor: Actor, flow_id: str, attributes: dict,  # noqa: ANN001
              dest_workspace: str | None) -> Workflow:
    """Copy a flow into the draft of a new flow (`dest_workspace`, the caller's organization) or of an existing flow
    (`attributes.dest_flow_id`). The copied flow and the destination's running graph are not changed."""
    source = get_flow(session, actor.account_id, flow_id)
    if not source.chain:
        raise UnprocessableError(f"Flow {source.id} has no steps: there is no graph to copy")
    dest_flow_id = attributes.get("dest_flow_id")
    if (dest_flow_id is None) == (dest_workspace is None):
        raise BadRequestError("Give either attributes.dest_flow_id or relationships.dest_workspace, not both",
                              field="dest_flow_id")
    settings = settings_of(session, source)
    copied = {"name": attributes.get("name") or source.name, "description": source.description,
              "cron": flow_schedule(session, source).cron, "graph": graph_of(source),
              "nodes_config": settings.nodes_config or {},
              "stats_enabled": settings.stats_enabled}
    if dest_flow_id is not None:
        destination = get_flow(session, actor.account_id, dest_flow_id)
    else:
        if dest_workspace.strip().lower() != str(actor.organization_id):
            raise NotFoundError(f"Unknown workspace {dest_workspace}")
        now = utcnow()
        destination = Workflow(id=uuid.uuid4(), account_id=actor.account_id,
                               organization_id=actor.organization_id, template_id=None, template_version=None,
                               name=required_text(copied, "name"), description=source.description or "", chain=[],
                               chain_overrides=[], is_customized=False, date_created=now, date_modified=now,
                               failure_policy=failure_policy_of(source))
        session.add(destination)
        session.flush()
        new_settings = settings_of(session, destination)
        new_settings.flow_type = settings.flow_type
        new_settings.default_mapper_type = settings.default_mapper_type
        session.add(new_settings)
        new_settings.latest_version = record_version(session, destination).id
        record_flow_change(session, "flow.create", destination, {})
    existing = find_draft(session, destination)
    if existing is not None:  # the copy replaces the destination's draft
        session.delete(existing)
        session.flush()
    _write_draft(session, catalog, actor, destination, copied)
    return destination

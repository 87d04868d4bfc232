"""Domain rows as JSON:API resource objects of the v2 dialect."""
from __future__ import annotations

from sqlalchemy.orm import Session

from canvas.models import FlowDraft, FlowVersion, Workflow
from canvas.v2.flow_drafts import find_draft
from canvas.v2.flow_service import FlowPage, flow_schedule, settings_of
from canvas.v2.graph import graph_hash, graph_of
from canvas.v2.jsonapi import iso_time, resource, to_one

API_VERSION = "2.0"


def flow_link(flow_id) -> str:  # noqa: ANN001
    return f"/v2/flows/{flow_id}"


def version_link(flow_id, version_id: str) -> str:  # noqa: ANN001
    return f"{flow_link(flow_id)}/versions/{version_id}"


def flow_to_resource(session: Session, workflow: Workflow, page: FlowPage | None = None) -> dict:
    """`page`: what the flows of a list's page show beside their workflows, read at once (load_flow_page)."""
    settings = page.settings_of(workflow) if page else settings_of(session, workflow)
    schedule = page.schedule_of(workflow) if page else flow_schedule(session, workflow)
    graph = graph_of(workflow)
    attributes = {
        "api_version": API_VERSION,
        "name": workflow.name,
        "description": workflow.description,
        "status": "active" if workflow.is_scheduled else "inactive",
        "current_status": "active" if workflow.is_scheduled else "inactive",
        "run_status": workflow.status,  # the Canvas status: Ready, Queued, Running, Failed
        "type": settings.flow_type,
        "default_mapper_type": settings.default_mapper_type,
        "cron": schedule.cron,  # as given, in either dialect (5-field Unix, or Quartz)
        "time_zone": schedule.time_zone,
        "graph": graph,
        "nodes_config": settings.nodes_config or {},
        "stats_enabled": settings.stats_enabled,
        "created_at": iso_time(workflow.date_created),
        "updated_at": iso_time(workflow.date_modified),
        "last_modified": iso_time(workflow.date_modified),
        "last_start_time": iso_time(settings.last_start_time),
        "last_run_time": iso_time(workflow.date_last_run),
        "due_execution": iso_time(workflow.date_next_schedule),
        "workflow_template_id": str(workflow.template_id) if workflow.template_id else None,
    }
    relationships = _flow_relationships(workflow, graph_hash(graph))
    relationships["components"] = components_relationship(graph)
    draft = page.draft_of(workflow) if page else find_draft(session, workflow)
    if draft is not None:
        relationships["draft"] = {"data": {"id": str(draft.id), "type": "flow-draft"},
                                  "links": {"self": draft_link(workflow.id), "related": draft_link(workflow.id)}}
    return resource("flow", workflow.id, attributes, self_link=flow_link(workflow.id), relationships=relationships)


def draft_link(flow_id) -> str:  # noqa: ANN001
    return f"{flow_link(flow_id)}/draft"


def draft_to_resource(draft: FlowDraft) -> dict:
    attributes = {"name": draft.name, "description": draft.description, "cron": draft.cron, "graph": draft.graph,
                  "nodes_config": draft.nodes_config or {}, "stats_enabled": draft.stats_enabled,
                  "created_at": iso_time(draft.date_created), "updated_at": iso_time(draft.date_modified)}
    relationships = {"user": to_one("user", draft.account_id, f"/v2/users/{draft.account_id}"),
                     "flow": to_one("flow", draft.workflow_id, flow_link(draft.workflow_id))}
    return resource("flow-draft", draft.id, attributes, self_link=draft_link(draft.workflow_id),
                    relationships=relationships)


def components_relationship(graph: dict) -> dict:
    """The components (/v2/components/{id}) the flow's nodes run, each once, with the ids of its nodes in `meta`."""
    nodes: dict[str, list[str]] = {}
    for node in graph["nodes"]:
        nodes.setdefault(node["command"], []).append(node["id"])
    return {"data": [{"type": "component", "id": key, "meta": {"nodes": ids}} for key, ids in nodes.items()]}


def _flow_relationships(workflow: Workflow, latest_version: str) -> dict:
    latest = version_link(workflow.id, latest_version)
    return {
        "user": to_one("user", workflow.account_id, f"/v2/users/{workflow.account_id}"),
        "workspace": to_one("workspace", workflow.organization_id, f"/v2/workspaces/{workflow.organization_id}"),
        "versions": {"links": {"related": f"{flow_link(workflow.id)}/versions"}},
        "latest_version": {"data": {"id": latest_version, "type": "flow-version"},
                           "links": {"self": latest, "related": latest}},
    }


def version_to_resource(version: FlowVersion) -> dict:
    attributes = {"number": version.number, "graph": version.graph, "created_at": iso_time(version.date_created)}
    relationships = {"flow": to_one("flow", version.workflow_id, flow_link(version.workflow_id))}
    return resource("flow-version", version.id, attributes, self_link=version_link(version.workflow_id, version.id),
                    relationships=relationships)

"""A flow's graph *is* its workflow's chain (canvas.execution.graph describes the storage): each node a block
(command = block key, fields = variables, credentials_id = registered application), in topological order. A graph
that is a single path is stored as a chain always was: each edge's JSONata mapper and condition carried by the
target block as `inputMapper` / `inputCondition`. A graph that forks or joins names each block's parents in
`inputs`, one per incoming edge with that edge's mapper and condition. Cycles are refused."""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from canvas.catalog.definition import TemplateDefinitionError, check_template_variables, parse_definition
from canvas.errors import BadRequestError, UnprocessableError
from canvas.execution.blocks._jsonata import jsonata_problem
from canvas.execution.graph import (
    CycleError,
    block_graph,
    join_problems,
    records_edge_problems,
    topological_order,
)
from canvas.models import RegisteredApplication, Workflow, WorkflowApplication
from canvas.schema_fields import parse_id
from canvas.workflows.block_settings import node_fields, node_settings

# Node ids are the flow's own names (step_1...); blocks need UUIDs, derived stably from the node id.
NODE_NAMESPACE = uuid.UUID("6f1c2a8e-5d43-4b1e-9a0f-3c2b7d9e4f10")
# A node's command may name a version (`csv:from_records@latest`); built-in blocks have only this one.
COMMAND_VERSIONS = ("latest",)
CHAIN_TO_NODE_FIELD = {"block": "command", "variables": "fields", "application": "credentials_id",
                       "blockName": "name", "uniqueBlockId": "id"}


@dataclass(frozen=True)
class ParsedGraph:
    chain: list[dict]
    bindings: list[WorkflowApplication]


def parse_graph(session: Session, catalog, account_id: uuid.UUID, raw: Any,  # noqa: ANN001
                current: Workflow | None = None) -> ParsedGraph:
    """`current`: the workflow whose graph this replaces; a node it already has (same id, same command) keeps its
    block id, so stored outputs stay attached (a template workflow's blocks have the template's ids)."""
    nodes, edges = _graph_parts(raw)
    by_id = _index_nodes(nodes)
    _check_edges(edges, by_id)
    order = graph_order(by_id, edges)
    registered = {node_id: _registered_for(session, account_id, by_id[node_id]) for node_id in order}
    kept = _block_ids(current) if current is not None else {}
    chain = [_chain_entry(*by_id[node_id], registered[node_id], kept) for node_id in order]
    _connect(chain, order, edges)
    _validate_blocks(chain, order, by_id, catalog)
    _refuse_edges_of_what_is_not_records(chain, order, edges, by_id)
    return ParsedGraph(chain, _bindings(order, registered, by_id))


def _graph_parts(raw: Any) -> tuple[list, list]:
    if not isinstance(raw, dict):
        raise BadRequestError("graph must be an object with `nodes` and `edges`", field="graph")
    nodes, edges = raw.get("nodes"), raw.get("edges", [])
    if not isinstance(nodes, list) or not nodes:
        raise BadRequestError("graph.nodes must be a non-empty list of nodes", field="graph.nodes")
    if not isinstance(edges, list):
        raise BadRequestError("graph.edges must be a list of edges", field="graph.edges")
    return nodes, edges


def _index_nodes(nodes: list) -> dict[str, tuple[int, dict]]:
    by_id: dict[str, tuple[int, dict]] = {}
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str) or not node["id"].strip():
            raise BadRequestError(f"graph.nodes[{index}] must be an object with a string `id`",
                                  field=f"graph.nodes.{index}.id")
        if node["id"] in by_id:
            raise BadRequestError(f"graph.nodes[{index}].id: duplicate node id '{node['id']}'",
                                  field=f"graph.nodes.{index}.id")
        if not isinstance(node.get("command"), str):
            raise BadRequestError(f"graph.nodes[{index}].command must be a block key string",
                                  field=f"graph.nodes.{index}.command")
        by_id[node["id"]] = (index, {**node, "command": block_key_of(node["command"], index, node["id"])})
    return by_id


def block_key_of(command: str, index: int, node_id: str) -> str:
    """The block key a node's `command` names: the key itself (`csv.from_records`) or the seed's component form
    `name:action` (`csv:from_records`), either with `@latest` or no version. Blocks are built into the service, so
    `latest` is the one version there is; any other is a 422 pointing at the command."""
    name, at, version = command.partition("@")
    if at and version not in COMMAND_VERSIONS:
        raise UnprocessableError(f"graph: node '{node_id}' command '{command}': there is no version '{version}' of "
                                 f"{name.replace(':', '.', 1)}; the versions are: {', '.join(COMMAND_VERSIONS)} "
                                 "(or give no version)", field=f"graph.nodes.{index}.command")
    return name.replace(":", ".", 1)


def command_forms(key: str) -> list[str]:
    """Every `command` that names the block `key` (see block_key_of), the plain key first."""
    forms = [key] + ([key.replace(".", ":", 1)] if "." in key else [])
    return forms + [f"{form}@{version}" for form in forms for version in COMMAND_VERSIONS]


def _check_edges(edges: list, by_id: dict) -> None:
    """Each edge an object between two nodes of the graph, and no two edges from the same source to the same
    target."""
    seen: dict[tuple[str, str], int] = {}
    for index, edge in enumerate(edges):
        if not isinstance(edge, dict):
            raise BadRequestError(f"graph.edges[{index}] must be an object", field=f"graph.edges.{index}")
        for end in ("source", "target"):
            if not isinstance(edge.get(end), str) or edge[end] not in by_id:
                raise BadRequestError(f"graph.edges[{index}].{end}: no node '{edge.get(end)}' in graph.nodes",
                                      field=f"graph.edges.{index}.{end}")
        pair = (edge["source"], edge["target"])
        if pair in seen:
            raise UnprocessableError(f"graph.edges[{index}]: a second edge from '{pair[0]}' to '{pair[1]}' (the "
                                     f"first is graph.edges[{seen[pair]}]); two steps are joined by one edge at most",
                                     field=f"graph.edges.{index}")
        seen[pair] = index


def graph_order(by_id: dict, edges: list) -> list[str]:
    """The node ids in topological order, the order given breaking ties (a path keeps its order, branches the
    order their nodes were given in); a cycle is a 422 naming it."""
    try:
        return topological_order(list(by_id), [(edge["source"], edge["target"]) for edge in edges])
    except CycleError as error:
        raise UnprocessableError(f"graph: {error}", field="graph.edges") from None


def _is_path(order: list[str], edges: list) -> bool:
    """Every edge goes from a node to the one after it, and every node but the first is fed: the graph is a chain."""
    position = {node_id: number for number, node_id in enumerate(order)}
    return len(edges) == len(order) - 1 and all(
        position[edge["target"]] == position[edge["source"]] + 1 for edge in edges)


def _connect(chain: list[dict], order: list[str], edges: list) -> None:
    """The edges into the chain: on a path each block carries its incoming edge's settings (the chain as it always
    was); otherwise every block names its parents in `inputs`, by the parents' position, each with its edge's."""
    position = {node_id: number for number, node_id in enumerate(order)}
    incoming: dict[str, list[tuple[int, dict]]] = {node_id: [] for node_id in order}
    for index, edge in enumerate(edges):
        incoming[edge["target"]].append((index, edge))
    if _is_path(order, edges):
        for entry, node_id in zip(chain, order):
            for index, edge in incoming[node_id]:
                entry.update(_edge_settings(index, edge))
        return
    for entry, node_id in zip(chain, order):
        parents = sorted(incoming[node_id], key=lambda given: position[given[1]["source"]])
        entry["inputs"] = [{"from": chain[position[edge["source"]]]["uniqueBlockId"], **_edge_settings(index, edge)}
                           for index, edge in parents]


def _registered_for(session: Session, account_id: uuid.UUID, indexed: tuple[int, dict]) -> RegisteredApplication | None:
    index, node = indexed
    raw = node.get("credentials_id")
    if raw in (None, ""):
        return None
    try:
        registered = session.get(RegisteredApplication, parse_id(raw))
    except ValueError:
        registered = None
    if registered is None or registered.account_id != account_id:
        raise BadRequestError(f"graph.nodes[{index}].credentials_id: unknown credential {raw}",
                              field=f"graph.nodes.{index}.credentials_id")
    return registered


def _block_ids(workflow: Workflow) -> dict[tuple[str, str], str]:
    """(node id, block key) -> block id of the workflow's chain as it is."""
    return {(step_id(workflow, number), entry["block"]): entry["uniqueBlockId"]
            for number, entry in enumerate(workflow.chain, start=1)}


def _chain_entry(index: int, node: dict, registered: RegisteredApplication | None,
                 kept: dict[tuple[str, str], str]) -> dict:
    block_id = kept.get((node["id"], node["command"])) or str(uuid.uuid5(NODE_NAMESPACE, node["id"]))
    entry = {"uniqueBlockId": block_id,
             "blockName": (node.get("name") or "").strip() or node["id"], "block": node["command"],
             "application": registered.short_name if registered else None,
             "variables": node.get("fields") or {}, "nodeId": node["id"],
             "description": node.get("description") or "", **node_settings(node, f"graph.nodes.{index}")}
    return entry


def _edge_settings(index: int, edge: dict) -> dict:
    """The edge as given (for the graph) and as JSONata texts the runner applies to the block's input."""
    config = edge.get("config") or {}
    where = f"graph.edges.{index}.config"
    if not isinstance(config, dict):
        raise BadRequestError(f"{where} must be an object", field=where)
    if config.get("mapper_type", "jsonata") not in ("jsonata", None):
        raise BadRequestError(f"{where}.mapper_type must be 'jsonata'", field=f"{where}.mapper_type")
    settings: dict[str, Any] = {"edge": {"mapper_type": "jsonata", "mapper": config.get("mapper") or {},
                                         "condition": config.get("condition")}}
    mapper = mapper_expression(config.get("mapper"), f"{where}.mapper")
    if mapper:
        settings["inputMapper"] = mapper
    if config.get("condition") not in (None, ""):
        settings["inputCondition"] = _checked_jsonata(config["condition"], f"{where}.condition")
    return settings


def mapper_expression(mapper: Any, where: str) -> str | None:
    """A mapper object {field: expression} becomes one JSONata object constructor; a string is used as is."""
    if mapper in (None, "", {}):
        return None
    if isinstance(mapper, str):
        return _checked_jsonata(mapper, where)
    if not isinstance(mapper, dict) or not all(isinstance(value, str) for value in mapper.values()):
        raise BadRequestError(f"{where} must be a JSONata expression or an object of field: expression",
                              field=where)
    for name, expression in mapper.items():
        _checked_jsonata(expression, f"{where}.{name}")
    return "{" + ", ".join(f"{json.dumps(name)}: ({text})" for name, text in mapper.items()) + "}"


def _checked_jsonata(text: Any, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequestError(f"{where} must be a non-empty JSONata expression", field=where)
    problem = jsonata_problem(text)
    if problem:
        raise UnprocessableError(f"{where} {problem}", field=where)
    return text


def _validate_blocks(chain: list[dict], order: list[str], by_id: dict, catalog) -> None:  # noqa: ANN001
    """The template rules (known blocks, application kinds, variables), with errors pointing at the node."""
    from canvas.execution.registry import get_block

    applications = list(dict.fromkeys(entry["application"] for entry in chain if entry["application"]))
    # The blocks one by one; the graph's own rules (cycles, joins, edges after files) are checked here, naming
    # nodes and edges.
    blocks = [{key: value for key, value in entry.items() if key != "inputs"} for entry in chain]
    try:
        definition = parse_definition({"applications": applications, "chain": blocks}, catalog)
        for index, entry in enumerate(definition.chain):
            check_template_variables(get_block(entry.block), entry.variables, f"chain[{index}].variables",
                                     require=True)
    except TemplateDefinitionError as exc:
        message, field = _node_problem(exc, order, by_id)
        raise UnprocessableError(message, field=field) from None


def _refuse_edges_of_what_is_not_records(chain: list[dict], order: list[str], edges: list, by_id: dict) -> None:
    """A mapper, a condition and a join work on records: after a step that gives a file (or nothing) they would have
    nothing to work on (a join: "any" is checked when the run joins)."""
    from canvas.execution.registry import get_block

    graph, gives = block_graph(chain), [get_block(entry["block"]).output_kind for entry in chain]
    for problem in records_edge_problems(graph, gives):
        source, target = order[problem.source - 1], order[problem.target - 1]
        index = next(index for index, edge in enumerate(edges)
                     if edge["source"] == source and edge["target"] == target)
        part = "mapper" if problem.setting == "inputMapper" else "condition"
        raise UnprocessableError(f"graph.edges[{index}].config.{part}: step '{source}' "
                                 f"({by_id[source][1]['command']}) gives {_gives(problem.kind)}, and a {part} "
                                 "applies to records", field=f"graph.edges.{index}.config.{part}")
    for problem in join_problems(graph, gives):
        parents = [order[source - 1] for source in problem.parents]
        node_id, culprit = order[problem.number - 1], order[problem.culprit - 1]
        raise UnprocessableError(f"graph: node '{node_id}' joins the outputs of steps {', '.join(parents)}, and "
                                 f"step '{culprit}' ({by_id[culprit][1]['command']}) gives {_gives(problem.kind)}: "
                                 "a join takes records only", field=f"graph.nodes.{by_id[node_id][0]}")


def _gives(kind: str) -> str:
    return "a file" if kind == "file" else "nothing"


def _node_problem(exc: TemplateDefinitionError, order: list[str], by_id: dict) -> tuple[str, str]:
    head, _, rest = exc.entry.partition("].")
    if not head.startswith("chain["):
        return f"graph: {exc.problem}", "graph"
    node_id = order[int(head.removeprefix("chain["))]
    node_field = CHAIN_TO_NODE_FIELD.get(rest.split(".")[0], rest.split(".")[0] or "command")
    message = f"graph: node '{node_id}' {node_field}: {exc.problem}"
    if node_field == "command" and exc.problem.startswith("unknown block"):
        message += " (GET /v2/components lists the components a command can name)"
    return message, f"graph.nodes.{by_id[node_id][0]}.{node_field}"


def _bindings(order: list[str], registered: dict, by_id: dict) -> list[WorkflowApplication]:
    bindings: dict[str, WorkflowApplication] = {}
    for node_id in order:
        application = registered[node_id]
        if application is None:
            continue
        known = bindings.get(application.short_name)
        if known is not None and known.registered_application_id != application.id:
            raise UnprocessableError(f"graph: node '{node_id}' uses a second {application.short_name} credential; "
                                     f"a flow uses one credential per application",
                                     field=f"graph.nodes.{by_id[node_id][0]}.credentials_id")
        bindings[application.short_name] = WorkflowApplication(
            short_name=application.short_name, position=len(bindings), registered_application_id=application.id)
    return list(bindings.values())


# --- chain -> graph -----------------------------------------------------------------------------------------------

def step_id(workflow: Workflow | None, number: int) -> str:
    """The node id of the workflow's block `number` (from 1): its v2 node id, else step_<number> (a Canvas workflow,
    or a block the chain no longer has). Executions and logs name steps as the graph names its nodes."""
    chain = workflow.chain if workflow is not None else []
    entry = chain[number - 1] if number <= len(chain) else {}
    return entry.get("nodeId") or numbered_step(number)


def numbered_step(number: int) -> str:
    """The id of a step that has no node id (a Canvas workflow's block, or one the graph no longer has)."""
    return f"step_{number}"


def graph_of(workflow: Workflow) -> dict:
    """The graph of any workflow, whichever dialect made it (Canvas workflows get nodes step_1, step_2...): its
    edges are the chain's (canvas.execution.graph.block_graph), by target block, a target's by source block."""
    credentials = {binding.short_name: str(binding.registered_application_id) for binding in workflow.bindings}
    node_ids = [step_id(workflow, number) for number in range(1, len(workflow.chain) + 1)]
    nodes = [_node_of(node_id, entry, credentials) for node_id, entry in zip(node_ids, workflow.chain)]
    edges = [_edge_of(node_ids[edge.source - 1], node_ids[edge.target - 1], edge.settings)
             for edge in block_graph(workflow.chain).edges]
    return {"nodes": nodes, "edges": edges}


def _node_of(node_id: str, entry: dict, credentials: dict) -> dict:
    node = {"id": node_id, "command": entry["block"], "name": entry.get("blockName") or "",
            "description": entry.get("description") or "", "fields": entry.get("variables") or {}}
    if entry.get("application"):
        node["credentials_id"] = credentials.get(entry["application"])
    node.update(node_fields(entry))
    return node


def _edge_of(source: str, target: str, settings: dict) -> dict:
    edge = {"id": f"{source}:{target}", "source": source, "target": target}
    config = settings.get("edge")
    if config and (config.get("mapper") or config.get("condition")):
        edge["id"] = f"mapper:{source}:{target}"
        edge["config"] = config
    return edge


def graph_hash(graph: dict) -> str:
    """A flow version's id: the SHA-1 of the canonical graph (40 hex digits, as the seed's version ids)."""
    canonical = json.dumps(graph, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()

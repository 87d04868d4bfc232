"""A workflow template's definition (applications and chain), parsed and validated the same way whether it comes
from a catalog file or from the API: against the block registry and the application catalog.

A chain may be a graph (canvas.execution.graph): an entry names its parents in `inputs`, `[{"from": <uniqueBlockId>,
"inputMapper": <JSONata>, "inputCondition": <JSONata>}]` (`[]`: a start node). A parsed graph is stored in stable
topological order with every entry's inputs explicit; a chain without any `inputs` is stored exactly as given."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from canvas.applications.catalog import ApplicationCatalog
from canvas.execution.graph import (
    FAILURE_POLICIES,
    CycleError,
    block_graph,
    join_problems,
    records_edge_problems,
    topological_order,
)

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
    # None: fed by the entry before it (every chain); else its parents: ({"from", "inputMapper"?, ...}, ...)
    inputs: tuple[dict, ...] | None = field(default=None, hash=False, compare=True)

    def to_json(self) -> dict:
        data = {"uniqueBlockId": self.unique_block_id, "blockName": self.block_name, "block": self.block,
                "application": self.application, "variables": self.variables}
        if self.inputs is not None:
            data["inputs"] = [dict(given) for given in self.inputs]
        return data


@dataclass(frozen=True)
class TemplateDefinition:
    applications: tuple[str, ...]
    chain: tuple[ChainEntry, ...]
    failure_policy: str | None = None  # None: the workflow's default (canvas.execution.graph)

    def to_json(self) -> dict:
        data = {"applications": list(self.applications), "chain": [entry.to_json() for entry in self.chain]}
        if self.failure_policy is not None:
            data["failurePolicy"] = self.failure_policy
        return data

    @property
    def is_graph(self) -> bool:
        return any(entry.inputs is not None for entry in self.chain)

    def content_hash(self, *extra: Any) -> str:
        canonical = json.dumps([self.to_json(), *extra], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def entry(self, unique_block_id: str) -> ChainEntry | None:
        return next((entry for entry in self.chain if entry.unique_block_id == unique_block_id), None)


def definition_from_json(data: dict) -> TemplateDefinition:
    """Rebuild a stored definition (already validated when it was stored)."""
    chain = tuple(ChainEntry(e["uniqueBlockId"], e["blockName"], e["block"], e.get("application"),
                             dict(e.get("variables") or {}), _stored_inputs(e.get("inputs")))
                  for e in data.get("chain", []))
    return TemplateDefinition(tuple(data.get("applications", [])), chain, data.get("failurePolicy"))


def _stored_inputs(inputs: list | None) -> tuple[dict, ...] | None:
    return None if inputs is None else tuple(dict(given) for given in inputs)


def inputs_for_display(chain: list[dict]) -> list[list[dict] | None]:
    """Each stored chain entry's `inputs` as the Canvas dialect shows them, parents by block number:
    `[{"fromBlock": n, "inputMapper"?, "inputCondition"?}]`; None for an entry fed by the one before it."""
    numbers = {entry.get("uniqueBlockId"): number for number, entry in enumerate(chain, start=1)}
    shown: list[list[dict] | None] = []
    for entry in chain:
        if entry.get("inputs") is None:
            shown.append(None)
            continue
        shown.append([{"fromBlock": numbers.get(given.get("from")),
                       **{key: given[key] for key in ("inputMapper", "inputCondition") if given.get(key)}}
                      for given in entry["inputs"]])
    return shown


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
    if any(isinstance(entry, dict) and entry.get("inputs") is not None for entry in chain_raw):
        chain = _parse_graph(chain, chain_raw)
    return TemplateDefinition(applications, tuple(chain), _parse_failure_policy(raw.get("failurePolicy")))


def _parse_failure_policy(value: Any) -> str | None:
    if value is None:
        return None
    if value not in FAILURE_POLICIES:
        raise TemplateDefinitionError("failurePolicy", f"must be one of {', '.join(FAILURE_POLICIES)}, not "
                                                       f"{json.dumps(value, default=str)}")
    return value


# --- graphs ----------------------------------------------------------------------------------------------------------

INPUT_KEYS = ("from", "inputMapper", "inputCondition", "edge")  # edge: the v2 dialect's edge as given


def _parse_graph(chain: list[ChainEntry], chain_raw: list) -> list[ChainEntry]:
    """The entries with their inputs checked and explicit (an entry without `inputs` is fed by the one given before
    it), in stable topological order (the given order breaks ties). Errors name entries by their given index."""
    ids = [entry.unique_block_id for entry in chain]
    given_index = {block_id: index for index, block_id in enumerate(ids)}
    explicit = []
    for index, (entry, raw) in enumerate(zip(chain, chain_raw)):
        if raw.get("inputs") is not None:
            inputs = _parse_inputs(raw["inputs"], f"chain[{index}].inputs", entry.unique_block_id, given_index)
        else:
            inputs = ({"from": ids[index - 1]},) if index else ()
        explicit.append(ChainEntry(entry.unique_block_id, entry.block_name, entry.block, entry.application,
                                   entry.variables, inputs))
    edges = [(given["from"], entry.unique_block_id) for entry in explicit for given in entry.inputs]
    try:
        order = topological_order(ids, edges)
    except CycleError as cycle:
        names = _display_names(explicit)
        raise TemplateDefinitionError("chain", "the graph has a cycle: "
                                      + " -> ".join(names[block_id] for block_id in cycle.cycle)) from None
    ordered = [explicit[given_index[block_id]] for block_id in order]
    _check_edges_take_records(ordered, given_index)
    return ordered


def _parse_inputs(raw: Any, where: str, own_id: str, given_index: dict[str, int]) -> tuple[dict, ...]:
    if not isinstance(raw, list):
        raise TemplateDefinitionError(where, "must be a list of inputs {from, inputMapper, inputCondition} "
                                             "([] for a block that starts the graph)")
    inputs, parents = [], set()
    for number, given in enumerate(raw):
        at = f"{where}[{number}]"
        if not isinstance(given, dict):
            raise TemplateDefinitionError(at, "must be an object {from, inputMapper, inputCondition}")
        unknown = sorted(str(key) for key in given if key not in INPUT_KEYS)
        if unknown:
            raise TemplateDefinitionError(f"{at}.{unknown[0]}", f"unknown property; an input has "
                                                                f"{', '.join(INPUT_KEYS[:3])}")
        parent = _parent_id(given.get("from"), f"{at}.from", own_id, given_index)
        if parent in parents:
            raise TemplateDefinitionError(f"{at}.from", f"block {parent} is already an input of this block")
        parents.add(parent)
        parsed = {"from": parent}
        for key in ("inputMapper", "inputCondition"):
            if given.get(key) is not None:
                parsed[key] = _checked_jsonata(given[key], f"{at}.{key}")
        if given.get("edge") is not None:
            if not isinstance(given["edge"], dict):
                raise TemplateDefinitionError(f"{at}.edge", "must be an object")
            parsed["edge"] = dict(given["edge"])
        inputs.append(parsed)
    return tuple(inputs)


def _parent_id(value: Any, where: str, own_id: str, given_index: dict[str, int]) -> str:
    try:
        parent = str(uuid.UUID(str(value))) if isinstance(value, (str, uuid.UUID)) else None
    except ValueError:
        parent = None
    if parent is None or parent not in given_index:
        raise TemplateDefinitionError(where, f"unknown block {json.dumps(value, default=str)}: `from` must be the "
                                             "uniqueBlockId of another block of the chain")
    if parent == own_id:
        raise TemplateDefinitionError(where, f"block {parent} cannot be an input of itself")
    return parent


def _checked_jsonata(text: Any, where: str) -> str:
    from canvas.execution.blocks._jsonata import jsonata_problem

    if not isinstance(text, str):
        raise TemplateDefinitionError(where, "must be a JSONata expression (a string)")
    problem = jsonata_problem(text)
    if problem:
        raise TemplateDefinitionError(where, problem)
    return text


def _display_names(chain: list[ChainEntry]) -> dict[str, str]:
    """A block's name where no other block has it, else its uniqueBlockId."""
    names = [entry.block_name for entry in chain]
    return {entry.unique_block_id: entry.block_name if names.count(entry.block_name) == 1 else entry.unique_block_id
            for entry in chain}


def _output_kinds(chain: list[ChainEntry]) -> list[str]:
    from canvas.execution.registry import get_block

    return [get_block(entry.block).output_kind for entry in chain]


def _check_edges_take_records(chain: list[ChainEntry], given_index: dict[str, int]) -> None:
    """Mappers, conditions and joins work on records: not on an edge from a block that gives a file or nothing."""
    graph, gives = block_graph([entry.to_json() for entry in chain]), _output_kinds(chain)
    for edge in records_edge_problems(graph, gives):
        entry, parent = chain[edge.target - 1], chain[edge.source - 1]
        number = next(index for index, given in enumerate(entry.inputs) if given["from"] == parent.unique_block_id)
        raise TemplateDefinitionError(
            f"chain[{given_index[entry.unique_block_id]}].inputs[{number}].{edge.setting}",
            f"'{parent.block_name}' ({parent.block}) gives {_gives(edge.kind)}, and {edge.setting} applies to records")
    for join in join_problems(graph, gives):
        entry, culprit = chain[join.number - 1], chain[join.culprit - 1]
        raise TemplateDefinitionError(
            f"chain[{given_index[entry.unique_block_id]}].inputs",
            f"'{entry.block_name}' joins the outputs of "
            f"{', '.join(repr(chain[s - 1].block_name) for s in join.parents)}, "
            f"and {culprit.block_name!r} ({culprit.block}) gives {_gives(join.kind)}: a join takes records only")


def _gives(kind: str) -> str:
    return "a file" if kind == "file" else "nothing"


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

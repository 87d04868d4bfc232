"""A workflow's blocks as a graph: nodes are the chain's entries (block numbers are their positions, a topological
order), edges say which block's output feeds which block, each with an optional JSONata mapper and condition.

A chain entry names its parents in `inputs`: ``[{"from": <uniqueBlockId>, "inputMapper": ..., "inputCondition":
..., "edge": {...}}]`` (``[]`` for a start node). An entry without `inputs` is fed by the entry before it (its
own `inputMapper` / `inputCondition` apply to that edge), so a chain -- every workflow made before graphs -- is the
graph that is a single path, stored exactly as it always was.

Pure functions, no database and no dialect: the engine, both dialects and the template catalog use them.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

EDGE_SETTINGS = ("inputMapper", "inputCondition", "edge")
FAILURE_POLICIES = ("failFast", "continue")
DEFAULT_FAILURE_POLICY = "failFast"


class CycleError(ValueError):
    """The graph has a cycle; `cycle` lists its nodes in order, the first repeated at the end."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        super().__init__("the graph has a cycle: " + " -> ".join(cycle))


class RangeError(ValueError):
    """A block range that selects nothing; `field` is the bound to blame (runTillBlock)."""

    def __init__(self, message: str, field: str = "runTillBlock"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Edge:
    source: int  # block numbers, from 1
    target: int
    settings: dict = field(default_factory=dict, hash=False, compare=False)  # inputMapper, inputCondition, edge

    @property
    def has_condition(self) -> bool:
        return bool(self.settings.get("inputCondition"))


@dataclass(frozen=True)
class BlockGraph:
    size: int
    edges: tuple[Edge, ...]

    @cached_property
    def _parents(self) -> dict[int, list[Edge]]:
        return self._edges_by(lambda edge: edge.target, lambda edge: edge.source)

    @cached_property
    def _children(self) -> dict[int, list[Edge]]:
        return self._edges_by(lambda edge: edge.source, lambda edge: edge.target)

    def _edges_by(self, end, other) -> dict[int, list[Edge]]:  # noqa: ANN001
        """Each block's edges at `end`, ordered by the block at their `other` end."""
        edges: dict[int, list[Edge]] = {number: [] for number in range(1, self.size + 1)}
        for edge in self.edges:
            edges[end(edge)].append(edge)
        return {number: sorted(listed, key=other) for number, listed in edges.items()}

    def parents(self, number: int) -> list[Edge]:
        """Incoming edges, by their source's block number: the order a join concatenates its inputs in."""
        return self._parents[number]

    def children(self, number: int) -> list[Edge]:
        return self._children[number]

    @cached_property
    def is_path(self) -> bool:
        return all(edge.source == edge.target - 1 for edge in self.edges) and len(self.edges) == self.size - 1

    def descendants(self, number: int) -> set[int]:
        return _reach(number, lambda n: (edge.target for edge in self.children(n)))

    def ancestors(self, number: int) -> set[int]:
        return _reach(number, lambda n: (edge.source for edge in self.parents(n)))

    def fed_from_within(self, number: int, planned: frozenset[int] | set[int]) -> bool:
        """Has the block a parent among the `planned` blocks? One that has none is fed by the run's input (a
        webhook body) when the run has one, instead of by stored outputs."""
        return any(edge.source in planned for edge in self.parents(number))


def _reach(start: int, step) -> set[int]:  # noqa: ANN001
    seen: set[int] = set()
    todo = [start]
    while todo:
        for following in step(todo.pop()):
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


def block_graph(chain: Sequence[dict]) -> BlockGraph:
    """The graph of a stored chain (see the module's docstring). Entries name parents by uniqueBlockId; a parent
    must come earlier in the chain (stored chains are in topological order, checked when they are made)."""
    numbers = {entry.get("uniqueBlockId"): number for number, entry in enumerate(chain, start=1)}
    edges = []
    for number, entry in enumerate(chain, start=1):
        if "inputs" in entry and entry["inputs"] is not None:
            for given in entry["inputs"]:
                source = numbers.get(given.get("from"))
                if source is None or source >= number:
                    raise ValueError(f"block {number}: input from {given.get('from')!r} is not an earlier block")
                edges.append(Edge(source, number, _edge_settings(given)))
        elif number > 1:
            edges.append(Edge(number - 1, number, _edge_settings(entry)))
    return BlockGraph(len(chain), tuple(edges))


def _edge_settings(holder: dict) -> dict:
    return {key: holder[key] for key in EDGE_SETTINGS if holder.get(key)}


def is_chain(chain: Iterable[dict]) -> bool:
    """Stored as a plain chain (no entry names its inputs)."""
    return not any(entry.get("inputs") is not None for entry in chain)


def topological_order(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """The nodes so that every edge goes forward, stable: among the nodes whose parents are all placed, the one
    given first comes first (a chain keeps its order, branches keep the order they were given in). Raises
    CycleError naming a cycle."""
    position = {node_id: index for index, node_id in enumerate(node_ids)}
    following: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    waiting_on = {node_id: 0 for node_id in node_ids}
    for source, target in edges:
        following[source].append(target)
        waiting_on[target] += 1
    ready = [position[node_id] for node_id in node_ids if waiting_on[node_id] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node_id = node_ids[heapq.heappop(ready)]
        order.append(node_id)
        for target in following[node_id]:
            waiting_on[target] -= 1
            if waiting_on[target] == 0:
                heapq.heappush(ready, position[target])
    if len(order) < len(node_ids):
        raise CycleError(_a_cycle(following, {node_id for node_id in node_ids if waiting_on[node_id] > 0}))
    return order


def _a_cycle(following: dict[str, list[str]], left: set[str]) -> list[str]:
    """Every node left over by the sort is on a cycle or downstream of one; walking forward within them from any
    of them must come back to a node already walked."""
    start = min(left)
    walked, node_id = [], start
    while node_id not in walked:
        walked.append(node_id)
        node_id = next(target for target in following[node_id] if target in left)
    return walked[walked.index(node_id):] + [node_id]


def run_plan(graph: BlockGraph, run_from: int | None, run_till: int | None) -> list[int]:
    """The blocks a run executes, in block order: `run_from` and everything downstream of it, `run_till` and
    everything it depends on, both together the blocks between them. On a chain this is run_from..run_till."""
    nodes = set(range(1, graph.size + 1))
    if run_from is not None:
        nodes &= {run_from} | graph.descendants(run_from)
    if run_till is not None:
        nodes &= {run_till} | graph.ancestors(run_till)
    if not nodes:
        raise RangeError(f"runTillBlock {run_till} is not downstream of runFromBlock {run_from}: no block runs "
                         f"after block {run_from} and before block {run_till}")
    return sorted(nodes)


def outside_inputs(graph: BlockGraph, plan: Sequence[int]) -> dict[int, list[Edge]]:
    """For each block of the plan, its incoming edges from blocks outside the plan: those are fed from the
    parent's stored output."""
    planned = set(plan)
    return {number: [edge for edge in graph.parents(number) if edge.source not in planned] for number in plan
            if any(edge.source not in planned for edge in graph.parents(number))}


@dataclass(frozen=True)
class JoinProblem:
    """A block with several parents (`parents`, block numbers in order) one of which, `culprit`, gives `kind`
    ("file" or "none"): what a join cannot concatenate."""

    number: int
    parents: tuple[int, ...]
    culprit: int
    kind: str


@dataclass(frozen=True)
class RecordsEdgeProblem:
    """An edge into `target` whose `setting` ("inputMapper" or "inputCondition") works on records, from a parent,
    `source`, that gives `kind` ("file" or "none"): the run would have nothing to map or test."""

    source: int
    target: int
    setting: str
    kind: str


def records_edge_problems(graph: BlockGraph, gives: Sequence[str]) -> list[RecordsEdgeProblem]:
    """Mappers and conditions on edges from blocks that give no records. `gives` as for join_problems; each dialect
    words the problem its own way."""
    return [RecordsEdgeProblem(edge.source, edge.target, setting, gives[edge.source - 1])
            for edge in graph.edges for setting in ("inputMapper", "inputCondition")
            if edge.settings.get(setting) and gives[edge.source - 1] in ("file", "none")]


def join_problems(graph: BlockGraph, gives: Sequence[str]) -> list[JoinProblem]:
    """Joins of what cannot be joined: a block with several inputs concatenates their records, so each parent must
    give records. `gives`: each block's output kind ("records" | "file" | "none" | "any"), by position; "any" is
    checked when the run joins them. Each dialect words the problem its own way."""
    problems = []
    for number in range(1, graph.size + 1):
        parents = tuple(edge.source for edge in graph.parents(number))
        culprit = next((source for source in parents if gives[source - 1] in ("file", "none")), None)
        if len(parents) > 1 and culprit is not None:
            problems.append(JoinProblem(number, parents, culprit, gives[culprit - 1]))
    return problems

"""The engine's graph of blocks: chains as paths, stable topological order, cycles named, range plans, joins."""
from __future__ import annotations

import pytest

from canvas.execution.graph import (
    CycleError, JoinProblem, RangeError, block_graph, is_chain, join_problems, outside_inputs, run_plan,
    topological_order,
)

CHAIN = [{"uniqueBlockId": f"b{n}", "inputMapper": "x"} if n == 3 else {"uniqueBlockId": f"b{n}"} for n in (1, 2, 3)]


def graph_of(parents: dict[int, list[int]], size: int):
    chain = [{"uniqueBlockId": f"b{n}", "inputs": [{"from": f"b{p}"} for p in parents.get(n, [])]}
             for n in range(1, size + 1)]
    return block_graph(chain)


DIAMOND = graph_of({2: [1], 3: [1], 4: [2, 3]}, 4)


def test_a_chain_stored_before_graphs_is_a_path_with_its_edge_settings_on_the_target():
    graph = block_graph(CHAIN)
    assert is_chain(CHAIN) and graph.is_path
    assert [(edge.source, edge.target) for edge in graph.edges] == [(1, 2), (2, 3)]
    assert graph.parents(3)[0].settings == {"inputMapper": "x"} and graph.parents(1) == []


def test_explicit_inputs_make_a_graph_and_parents_come_in_block_order():
    assert not DIAMOND.is_path and not is_chain([{"uniqueBlockId": "a", "inputs": []}])
    assert [edge.source for edge in DIAMOND.parents(4)] == [2, 3]
    assert DIAMOND.descendants(2) == {4} and DIAMOND.ancestors(4) == {1, 2, 3}


def test_an_input_from_a_later_or_unknown_block_is_refused():
    with pytest.raises(ValueError, match="not an earlier block"):
        block_graph([{"uniqueBlockId": "a", "inputs": [{"from": "b"}]}, {"uniqueBlockId": "b", "inputs": []}])


def test_topological_order_is_stable_and_keeps_a_given_order_where_it_can():
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert topological_order(["a", "b", "c", "d"], edges) == ["a", "b", "c", "d"]
    assert topological_order(["d", "c", "b", "a"], edges) == ["a", "c", "b", "d"]
    assert topological_order(["x", "y"], []) == ["x", "y"]


def test_a_cycle_is_refused_naming_it():
    with pytest.raises(CycleError) as caught:
        topological_order(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")])
    assert caught.value.cycle == ["b", "c", "d", "b"]
    assert "the graph has a cycle: b -> c -> d -> b" in str(caught.value)


@pytest.mark.parametrize(("run_from", "run_till", "blocks"), [
    (None, None, [1, 2, 3, 4]), (2, None, [2, 4]), (None, 3, [1, 3]), (2, 4, [2, 4]), (1, 4, [1, 2, 3, 4]),
    (3, 3, [3]), (None, 1, [1]),
])
def test_every_range_form_on_a_diamond(run_from, run_till, blocks):
    assert run_plan(DIAMOND, run_from, run_till) == blocks


def test_a_range_whose_end_is_not_downstream_of_its_start_is_refused():
    with pytest.raises(RangeError, match="runTillBlock 3 is not downstream of runFromBlock 2"):
        run_plan(DIAMOND, 2, 3)


def test_on_a_chain_a_range_is_from_till():
    assert run_plan(block_graph(CHAIN), 2, 3) == [2, 3] and run_plan(block_graph(CHAIN), 2, None) == [2, 3]


def test_blocks_fed_from_outside_the_range_read_stored_outputs():
    inputs = outside_inputs(DIAMOND, [2, 4])
    assert {number: [edge.source for edge in edges] for number, edges in inputs.items()} == {2: [1], 4: [3]}
    assert outside_inputs(DIAMOND, [1, 2, 3, 4]) == {}


def test_a_join_of_a_block_that_gives_a_file_is_refused_naming_the_join_and_the_parent():
    problems = join_problems(DIAMOND, ["records", "file", "any", "records"])
    assert problems == [JoinProblem(number=4, parents=(2, 3), culprit=2, kind="file")]
    assert join_problems(DIAMOND, ["records", "records", "any", "file"]) == []

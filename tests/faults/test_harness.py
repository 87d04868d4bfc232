"""The harness itself, so that a failing scenario fails because of the engine: the Redis server of the test's own
(restarts keeping and losing data), the side-effect receiver, the figures (duplicates, overlaps), the observer's
checks, and a control scenario without any fault that must come out clean."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
import requests
from rq import Queue

from tests.faults.harness import (
    Effect, EffectReceiver, RedisServer, RunObserver, duplicate_effects, effect_intervals, overlapping_effects,
    results_table, Figures,
)

pytestmark = [pytest.mark.faults]
NOW = datetime.now(timezone.utc)


def effect(run_id: str, block: int, at: float) -> Effect:
    return Effect(run_id, block, "begin" if block == 1 else "end", at, NOW)


def test_the_redis_server_is_our_own_and_restarts_keeping_or_losing_its_data(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        assert server.port != 6379 and server.url.startswith("redis://127.0.0.1:")
        client = server.client()
        client.set("kept", "1")
        queue = Queue("q", connection=client)
        queue.enqueue_call("builtins.print", args=("x",), job_id="job-1")
        server.restart(keep_data=True, down_seconds=0.2)
        assert server.ping()
        client = server.client()
        assert client.get("kept") == b"1"
        assert Queue("q", connection=client).job_ids == ["job-1"]
        server.restart(keep_data=False, down_seconds=0.2)
        assert server.client().get("kept") is None and server.dbsize() == 0
        server.client().set("again", "1")
        server.flushall()
        assert server.dbsize() == 0
    finally:
        server.stop()
    assert not server.ping()


def test_the_receiver_records_every_post_with_its_run_and_block():
    receiver = EffectReceiver().start()
    try:
        assert requests.get(f"{receiver.base_url}/health", timeout=5).json() == {"ok": True}
        run_id = str(uuid.uuid4())
        for block in (1, 3, 3):
            answer = requests.post(f"{receiver.base_url}/effects", params={"run": run_id, "block": block,
                                                                           "step": "x"}, data=b"body", timeout=5)
            assert answer.status_code == 200 and answer.json()["run"] == run_id
        assert requests.get(f"{receiver.base_url}/effects", timeout=5).status_code == 405
        effects = receiver.effects_of(run_id)
        assert [(e.block, e.body) for e in effects] == [(1, b"body"), (3, b"body"), (3, b"body")]
        assert effects[0].at <= effects[1].at <= effects[2].at
        assert duplicate_effects(effects) == {(run_id, 3): 2}
    finally:
        receiver.stop()


def test_overlaps_are_intersecting_effect_intervals_of_runs_of_one_workflow():
    # a: [0, 5]; b starts after a ended: no overlap; c: [4, 4] (began while a was going): overlap with a;
    # z: a zombie of workflow W2 posting after its re-run y began: overlap; x of another workflow never counts.
    effects = [effect("a", 1, 0.0), effect("a", 3, 5.0), effect("b", 1, 5.5), effect("b", 3, 9.0),
               effect("c", 1, 4.0), effect("y", 1, 10.0), effect("z", 1, 1.0), effect("z", 3, 11.0),
               effect("x", 1, 4.5)]
    workflow_of = {"a": "W1", "b": "W1", "c": "W1", "y": "W2", "z": "W2", "x": "W3"}
    assert effect_intervals(effects)["a"] == (0.0, 5.0)
    assert overlapping_effects(effects, workflow_of) == {frozenset("ac"), frozenset("yz")}
    assert overlapping_effects([effect("a", 1, 0.0), effect("b", 1, 0.0)], {"a": "W", "b": "W"}) == {
        frozenset("ab")}, "closed intervals: the same instant overlaps"


def _row(run_id: str, status: str, error: str | None = None, workflow_id: str = "W") -> dict:
    return {"id": run_id, "workflow_id": workflow_id, "status": status, "error": error, "worker_name": "w1",
            "trigger": "manual", "date_queued": NOW}


def test_the_observer_catches_a_final_state_that_changes_late_writes_and_two_running_runs(tmp_path):
    observer = RunObserver(f"sqlite:///{tmp_path / 'unused.db'}")  # never started: fed by hand
    observer.ingest([_row("r1", "Queued")], {}, 1.0)
    observer.ingest([_row("r1", "Running")], {"r1": {1: "Running"}}, 2.0)
    observer.ingest([_row("r1", "Failed", "worker lost")], {"r1": {1: "Failed"}}, 3.0)
    observer.ingest([_row("r1", "Failed", "worker lost")], {"r1": {1: "Failed"}}, 4.0)
    assert not observer.final_state_changes and not observer.late_writes
    observer.ingest([_row("r1", "Failed", "worker lost")], {"r1": {1: "Failed", 2: "Running"}}, 5.0)
    assert len(observer.late_writes) == 1
    observer.ingest([_row("r1", "Succeeded")], {"r1": {1: "Failed", 2: "Running"}}, 6.0)
    observer.ingest([_row("r1", "Succeeded")], {"r1": {1: "Failed", 2: "Running"}}, 6.5)
    assert len(observer.final_state_changes) == 1 and "became Succeeded" in observer.final_state_changes[0]
    assert len(observer.late_writes) == 1, "each change is reported once"
    track = observer.get("r1")
    assert [status for _at, status in track.transitions] == ["Queued", "Running", "Failed", "Succeeded"]
    observer.ingest([_row("r2", "Running"), _row("r3", "Running"), _row("r4", "Running", workflow_id="V")], {}, 7.0)
    assert observer.concurrent == {frozenset(("r2", "r3"))}
    assert observer.active("W") and not observer.all_final({"W"})
    observer.engine.dispose()


def test_the_table_has_a_row_per_scenario():
    figures = Figures("kill", "sqlite", runs_started=3, recovery_seconds=7.25, verdict="FAIL: a | b")
    figures.states.update({"Succeeded": 2, "Failed": 1})
    table = results_table([figures])
    assert table.splitlines()[2] == "| kill | sqlite | 3 | 2 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | – | 7.2 | FAIL: a \\| b |"


def test_figures_cross_from_a_test_process_to_the_table_as_plain_values():
    """Under pytest-xdist they travel on a report, which carries only what JSON could."""
    figures = Figures("kill", "postgresql", runs_started=3, overlaps=1, fault_seconds=2.5, notes=["reaped 6 s after"])
    figures.states.update({"Succeeded": 2, "stranded": 1})
    values = figures.as_dict()
    assert json.loads(json.dumps(values)) == values
    assert Figures.from_dict(values) == figures
    assert Figures.from_dict(values).states["Failed"] == 0, "a Counter again"


def test_a_control_scenario_without_a_fault_is_clean(fault_scenario):
    """Real workers and a scheduler, runs of three workflows one after the other: every figure must be zero."""
    scenario = fault_scenario("no fault (control)")
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(3, delay_seconds=0.5)
    first = scenario.start_runs(workflows)
    scenario.fault_begins()
    scenario.fault_ends()  # no fault: recovery is how long one more run of each workflow takes
    scenario.recover()
    for run_id in first:
        scenario.check(scenario.track(run_id).status == "Succeeded", f"run {run_id} did not succeed")
    tracks = scenario.observer.tracks(set(workflows))
    scenario.check(len(tracks) == 6, f"3 runs and 3 probes expected, got {len(tracks)}")
    for track in tracks:
        posts = sorted(e.block for e in scenario.receiver.effects_of(track.run_id))
        scenario.check(posts == [1, 3], f"run {track.run_id}: POSTs of blocks {posts}")
    scenario.finish()
    assert scenario.figures.verdict == "pass"

"""Deciding a batch: fire, skip on overlap, queue one, miss, drop stale or duplicate occurrences."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from canvas.scheduling.decisions import WorkflowState, decide
from canvas.scheduling.occurrences import MISS, WAIT, Firing
from canvas.scheduling.quartz import parse

NOW = datetime(2026, 6, 1, 12, 0, 5, tzinfo=timezone.utc)
T1, T2, T3 = (datetime(2026, 6, 1, 12, 0, second, tzinfo=timezone.utc) for second in (1, 2, 3))
ACTIVE = uuid.uuid4()


def state(cron: str = "* * * ? * *", overlap: str = "skip", enabled: bool = True, active: bool = False,
          changed: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)) -> WorkflowState:
    return WorkflowState(uuid.uuid4(), uuid.uuid4(), 3, "1.0", enabled, parse(cron), ZoneInfo("UTC"), changed,
                         overlap, version=7, active_run=(ACTIVE, "Running") if active else None)


def decide_for(workflow: WorkflowState, *firings: Firing):
    return decide(list(firings), {workflow.workflow_id: workflow}, NOW, "host:1")


def outcomes(plan) -> list[tuple[datetime, str, str | None]]:
    return [(row["scheduled_time"], row["outcome"], row["reason"]) for row in plan.ledger]


def test_the_first_fires_and_the_next_are_skipped_while_its_run_is_active():
    workflow = state()
    plan = decide_for(workflow, Firing(workflow.workflow_id, (T1,)), Firing(workflow.workflow_id, (T2,)))
    [run] = plan.runs
    assert (run.times, run.blocks, run.template_version) == ((T1,), 3, "1.0")
    assert outcomes(plan) == [(T1, "fired", None), (T2, "skipped", f"previous run {run.run_id} still Queued")]
    assert plan.ledger[0]["run_id"] == run.run_id and plan.ledger[0]["dispatch_time"] == NOW
    assert plan.next_times == {workflow.workflow_id: T3}


def test_an_active_run_skips_with_its_id_and_status():
    workflow = state(active=True)
    plan = decide_for(workflow, Firing(workflow.workflow_id, (T1,)))
    assert plan.runs == [] and outcomes(plan) == [(T1, "skipped", f"previous run {ACTIVE} still Running")]


def test_overlap_queue_keeps_one_waiting_and_skips_the_rest():
    workflow = state(overlap="queue", active=True)
    plan = decide_for(workflow, Firing(workflow.workflow_id, (T1,)), Firing(workflow.workflow_id, (T2,)))
    assert [row["outcome"] for row in plan.ledger] == ["queued", "skipped"]
    assert plan.ledger[0]["reason"] == f"queued behind run {ACTIVE} (Running) (overlap policy queue)"
    assert plan.ledger[0]["run_id"] is not None and plan.runs == []
    assert plan.ledger[1]["reason"].endswith("another occurrence already waits for it (overlap policy queue keeps one)")


def test_an_occurrence_never_overtakes_earlier_ones_waiting_to_run():
    """Between a run's end and the release of the occurrences queued behind it, a new occurrence has no active run
    to overlap, but must not start before them."""
    for overlap in ("skip", "queue"):
        workflow = state(overlap=overlap)
        workflow.waiting = True
        plan = decide_for(workflow, Firing(workflow.workflow_id, (T1,)))
        assert plan.runs == []
        [(time, outcome, reason)] = outcomes(plan)
        assert (time, outcome) == (T1, "skipped") and reason.startswith("earlier occurrences are still waiting")


def test_a_coalesced_firing_is_one_run_over_all_its_times():
    workflow = state()
    plan = decide_for(workflow, Firing(workflow.workflow_id, (T1, T2, T3), reason="coalesced"))
    [run] = plan.runs
    assert run.times == (T1, T2, T3) and {row["run_id"] for row in plan.ledger} == {run.run_id}


def test_missed_and_waiting_firings_are_recorded_without_a_run():
    workflow = state()
    plan = decide_for(workflow, Firing(workflow.workflow_id, (T1,), MISS, "missed"),
                      Firing(workflow.workflow_id, (T2,), WAIT, "caught up"))
    assert [(row["outcome"], row["reason"]) for row in plan.ledger] == [("missed", "missed"), ("queued", "caught up")]
    assert plan.runs == []


def test_stale_duplicate_and_disabled_occurrences_are_dropped():
    hourly, disabled, recent = state("0 0 * * * ?"), state(enabled=False), state(changed=T2)
    firings = [Firing(hourly.workflow_id, (T1,)), Firing(disabled.workflow_id, (T1,)),
               Firing(recent.workflow_id, (T1,)), Firing(recent.workflow_id, (T2,)),
               Firing(recent.workflow_id, (T3,)), Firing(recent.workflow_id, (T3,)), Firing(uuid.uuid4(), (T1,))]
    plan = decide(firings, {workflow.workflow_id: workflow for workflow in (hourly, disabled, recent)}, NOW, "h")
    assert [(row["workflow_id"], row["scheduled_time"]) for row in plan.ledger] == [(recent.workflow_id, T3)], \
        "not a fire time; schedule off; at or before the last change; offered twice; unknown workflow"


def test_times_from_a_job_of_the_current_version_are_trusted_others_are_checked():
    hourly = state("0 0 * * * ?")
    plan = decide_for(hourly, Firing(hourly.workflow_id, (T1,), version=7), Firing(hourly.workflow_id, (T2,), version=6))
    assert [row["scheduled_time"] for row in plan.ledger] == [T1], "T2 is no fire time of the current expression"


def test_times_in_other_zones_are_normalised_to_utc():
    workflow = state()
    oslo_time = T1.astimezone(ZoneInfo("Europe/Oslo"))
    plan = decide_for(workflow, Firing(workflow.workflow_id, (oslo_time,)))
    assert plan.ledger[0]["scheduled_time"].tzinfo is timezone.utc and plan.ledger[0]["scheduled_time"] == T1
    assert plan.next_times[workflow.workflow_id] == T1 + timedelta(seconds=1)

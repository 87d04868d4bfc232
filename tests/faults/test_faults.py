"""The fault-injection suite: real `canvas worker` and `canvas scheduler` processes, a Redis server of the test's
own, PostgreSQL for the database scenarios, a real S3 server behind a relay for the object store's, and workflows
whose blocks POST to a side-effect receiver (block 1 "begin", block 2 waits, block 3 "end"; each POST names its run
and block).

Every scenario checks, besides what is particular to it (see each test): every run ends in exactly one final state,
no workflow ever has two executing runs, each block's side effect happens once per run that reached it, no run stays
Queued or Running past the grace period plus a minute after the fault, and every process is alive (or was
replaced) at the end. The figures of each scenario go into the suite's table (the terminal summary and
benchmarks/results/faults.md); the definitions are in tests/faults/harness.py.

Run alone: `.venv/bin/python -m pytest tests/faults -m faults`.
"""
from __future__ import annotations

import math
import os
import re
import signal
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.faults.harness import (
    BEGIN_BLOCK, END_BLOCK, RAW_DRIVER_TEXT, TIMING, WAIT_BLOCK, wait_for, wall_now,
)
from tests.faults.scenario import BackendTerminator, RunLoad, Scenario
from tests.process_tools import clock_offset_in_log, descendants, skewed_clock
from tests.servers.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.slow]
WORKER_LOST = "worker lost"


def posts(scenario: Scenario, run_id: str) -> list[int]:
    return sorted(effect.block for effect in scenario.receiver.effects_of(run_id))


def expect_succeeded_once(scenario: Scenario, run_ids: list[str], what: str) -> None:
    for run_id in run_ids:
        track = scenario.track(run_id)
        status = track.status if track else "unseen"
        scenario.check(status == "Succeeded", f"{what} run {run_id} ended {status} ({track and track.error!r}), "
                                              f"not Succeeded")
        scenario.check(posts(scenario, run_id) == [BEGIN_BLOCK, END_BLOCK],
                       f"{what} run {run_id}: POSTs of blocks {posts(scenario, run_id)}, not exactly [1, 3]")


def expect_worker_lost(scenario: Scenario, run_id: str) -> None:
    track = scenario.track(run_id)
    scenario.check(track.status == "Failed" and (track.error or "").startswith(WORKER_LOST),
                   f"the lost run {run_id} ended {track.status} with error {track.error!r}, not Failed "
                   f"'{WORKER_LOST}…'")
    scenario.check(track.blocks.get(BEGIN_BLOCK) == "Succeeded" and track.blocks.get(WAIT_BLOCK) != "Succeeded"
                   and END_BLOCK not in track.blocks,
                   f"the lost run {run_id}: block rows {track.blocks}, expected block 1 Succeeded, block 2 not, "
                   f"no block 3")
    scenario.check(posts(scenario, run_id) == [BEGIN_BLOCK],
                   f"the lost run {run_id}: POSTs of blocks {posts(scenario, run_id)}, expected only [1]")


def note_when_lost(scenario: Scenario, run_id: str) -> None:
    """How long after the kill the lost run was failed, for the suite's table."""
    lost_at = scenario.track(run_id).final_at
    if lost_at is not None:
        scenario.notes.append(f"the lost run was failed {lost_at - scenario.fault_started:.1f} s after the kill")


# --- workers ----------------------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_block(fault_scenario):
    """kill -9 of a worker's process group while its run waits in block 2, and a replacement worker at once: after
    the grace period the run is Failed 'worker lost', the other runs succeed, the workflow runs again."""
    scenario = fault_scenario("worker kill -9 mid-block")
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(3, delay_seconds=4)
    runs = scenario.start_runs(workflows)
    victim_run = scenario.wait_in_block(runs, WAIT_BLOCK)[0]
    victim = scenario.worker_of(victim_run)
    time.sleep(0.5)
    scenario.fault_begins()
    scenario.fleet.kill9(victim)
    scenario.fault_ends()
    scenario.start_prober()
    scenario.fleet.replace(victim, f"{victim}-r1")
    scenario.fleet.wait_ready()
    scenario.recover()
    expect_worker_lost(scenario, victim_run.run_id)
    expect_succeeded_once(scenario, [run_id for run_id in runs if run_id != victim_run.run_id], "an untouched")
    note_when_lost(scenario, victim_run.run_id)
    scenario.finish()


def test_a_forking_workers_staying_child_killed_mid_block(fault_scenario):
    """Forking workers whose children serve three runs each (CANVAS_WORKER_RUNS_PER_CHILD=3): kill -9 of the child
    running a run in block 2, its worker left alone. The worker carries on with a new child: after the grace period
    the run is Failed 'worker lost', the other runs succeed once, the workflow runs again."""
    scenario = fault_scenario("fork: staying child kill -9 mid-block")
    scenario.fleet.env["CANVAS_WORKER_RUNS_PER_CHILD"] = "3"
    scenario.start_processes(workers=2, schedulers=1, worker_args=("--worker-class", "fork"))
    workflows = scenario.make_workflows(3, delay_seconds=4)
    runs = scenario.start_runs(workflows)
    victim_run = scenario.wait_in_block(runs, WAIT_BLOCK)[0]
    worker = scenario.fleet.procs[scenario.worker_of(victim_run)].process
    children = wait_for(lambda: descendants(worker.pid) or None, 10, what="the worker's child")
    scenario.check(len(children) == 1, f"a worker whose child stays has that one child, not {sorted(children)}")
    time.sleep(0.5)
    scenario.fault_begins()
    for child in children:
        os.kill(child, signal.SIGKILL)
    scenario.fault_ends()
    scenario.recover()
    expect_worker_lost(scenario, victim_run.run_id)
    expect_succeeded_once(scenario, [run_id for run_id in runs if run_id != victim_run.run_id], "an untouched")
    scenario.check(worker.poll() is None, "the worker whose child was killed carries on")
    note_when_lost(scenario, victim_run.run_id)
    scenario.finish()


def test_a_worker_stopped_past_the_grace_period_then_continued(fault_scenario):
    """SIGSTOP of a worker's process group for the grace period plus 4 s while its run waits in block 2: the run is
    failed 'worker lost' while the worker is stopped, a re-run of the workflow starts and runs; after SIGCONT the old
    worker POSTs nothing more for its old run and does not change its final state."""
    scenario = fault_scenario("worker SIGSTOP past the grace, SIGCONT")
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(3, delay_seconds=3)
    runs = scenario.start_runs(workflows)
    victim_run = scenario.wait_in_block(runs, WAIT_BLOCK)[0]
    victim = scenario.worker_of(victim_run)
    time.sleep(0.3)
    scenario.fault_begins()
    scenario.fleet.sigstop(victim)
    stop_until = scenario.fault_started + TIMING.grace + 4
    rerun = None
    while time.monotonic() < stop_until:  # while stopped: once the run is lost, its workflow runs again
        track = scenario.track(victim_run.run_id)
        if rerun is None and track.is_final:
            status, rerun = scenario.api.run(victim_run.workflow_id)
            scenario.check(status == 202, f"the re-run of the lost run's workflow was answered {status}")
        time.sleep(0.1)
    scenario.check(scenario.track(victim_run.run_id).is_final,
                   f"the run of the stopped worker was not failed within {TIMING.grace + 4:.0f} s (grace "
                   f"{TIMING.grace:g} s)")
    scenario.fleet.sigcont(victim)
    continued_at = time.monotonic()
    scenario.fault_ends()
    scenario.start_prober()
    time.sleep(5)  # what the old worker does once it runs again
    scenario.recover()
    expect_worker_lost(scenario, victim_run.run_id)
    late = [effect for effect in scenario.receiver.effects_of(victim_run.run_id) if effect.at >= continued_at]
    scenario.check(not late, f"the continued worker POSTed for its lost run: {late}")
    if rerun:
        expect_succeeded_once(scenario, [rerun], "the re-run")
    expect_succeeded_once(scenario, [run_id for run_id in runs if run_id != victim_run.run_id], "an untouched")
    scenario.finish()


CLOCK_SKEW_SECONDS = 3 * TIMING.grace  # far past what the lease's renewal interval absorbs


@pytest.mark.parametrize("skew", [-CLOCK_SKEW_SECONDS, CLOCK_SKEW_SECONDS], ids=["behind", "ahead"])
def test_a_worker_whose_clock_is_off(postgres_database_url, fault_scenario, skew):
    """Two machines whose clocks disagree by three grace periods: worker w1's wall clock is behind (or ahead of) the
    other worker's and the database's, on PostgreSQL (the database several machines share). Every worker runs the
    reaper. Runs keep four workflows busy on both workers for 20 s: none is failed 'worker lost' (no worker was),
    each run succeeds once, the skewed worker runs its share, and it says in its log that its clock is off."""
    where = "behind" if skew < 0 else "ahead"
    scenario = fault_scenario(f"a worker's clock {abs(skew):g} s {where}", database_url=postgres_database_url)
    skewed = scenario.fleet.start_worker("w1", env=skewed_clock(skew))
    scenario.fleet.start_worker("w2")
    scenario.fleet.start_scheduler("s1")
    scenario.fleet.wait_ready()
    offset = clock_offset_in_log(skewed.log_path)
    scenario.check(abs(offset - skew) < 2, f"w1's clock is {offset:+.1f} s off, not {skew:+g} s: no fault")
    workflows = scenario.make_workflows(4, delay_seconds=1.5)
    scenario.fault_begins()
    load = RunLoad(scenario.api, scenario.observer, workflows).start()
    try:
        time.sleep(20)
    finally:
        load.stop()
    scenario.fault_ends()
    scenario.recover()
    tracks = scenario.observer.tracks(set(workflows))
    lost = [f"{track.run_id} [{track.worker_name}]: {track.error}" for track in tracks
            if (track.error or "").startswith(WORKER_LOST)]
    scenario.check(not lost, f"runs of live workers failed as lost: {lost}")
    expect_succeeded_once(scenario, [track.run_id for track in tracks], "a")
    by_worker = Counter(track.worker_name for track in tracks)
    scenario.check(by_worker["w1"] >= 3 and by_worker["w2"] >= 3, f"runs per worker: {dict(by_worker)}")
    told = f"this machine's clock is {abs(skew):.1f} s {'behind' if skew < 0 else 'ahead of'} the database server's"
    scenario.check(told in skewed.log_path.read_text(), f"w1 did not log {told!r}")
    scenario.notes.append(f"runs per worker {dict(by_worker)}; w1's clock {offset:+.1f} s off")
    scenario.finish()


# --- Redis ------------------------------------------------------------------------------------------------------------

REDIS_FAULTS = {
    "keep": "Redis restarted keeping its data",
    "lose": "Redis restarted losing its data",
    "flushall": "Redis FLUSHALL",
    "full": "Redis full (OOM at maxmemory)",
    "cannot save": "Redis unable to save (MISCONF)",
}


@pytest.mark.parametrize("how", list(REDIS_FAULTS))
def test_redis_restarts_with_runs_queued_and_running(fault_scenario, how):
    """Two runs waiting in block 2, three queued, then Redis goes: restarted after 5 s with its append-only file
    (keep), restarted after 5 s on an empty directory (lose), emptied by FLUSHALL, or refusing every write for 5 s,
    full or unable to save. The running runs finish (during the outage, for the restarts) and succeed; the queued ones run, once
    each, also when their jobs were lost."""
    scenario = fault_scenario(REDIS_FAULTS[how])
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(5, delay_seconds=4)
    runs = scenario.start_runs(workflows)
    running = [track.run_id for track in scenario.wait_in_block(runs, WAIT_BLOCK, count=2)]
    queued = [run_id for run_id in runs if scenario.track(run_id).status == "Queued"]
    scenario.notes.append(f"{len(running)} running, {len(queued)} queued when Redis went")
    scenario.fault_begins()
    if how == "flushall":
        scenario.redis_server.flushall()
    elif how in ("full", "cannot save"):
        scenario.redis_server.refuse_writes(seconds=5, why=how)
    else:
        scenario.redis_server.restart(keep_data=how == "keep", down_seconds=5)
    scenario.fault_ends()
    scenario.recover()
    expect_succeeded_once(scenario, running, "a running")
    expect_succeeded_once(scenario, queued, "a queued")
    scenario.finish()


# --- PostgreSQL -------------------------------------------------------------------------------------------------------


def test_postgres_backends_terminated_while_runs_start_and_finish(postgres_database_url, fault_scenario):
    """Every backend of the database (but the observer's) terminated every 0.1 s for 8 s, while runs of four
    workflows start and finish one after the other: every run ends Succeeded or Failed with a readable error, none
    stays Queued or Running, every workflow runs again, and the API answers 503 (never 500) when it loses its
    connection."""
    scenario = fault_scenario("PostgreSQL backends terminated", database_url=postgres_database_url)
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(4, delay_seconds=0.5)
    load = RunLoad(scenario.api, scenario.observer, workflows).start()
    terminator = BackendTerminator(scenario.database_url, every=0.1)
    try:
        wait_for(lambda: len(scenario.observer.tracks(set(workflows))) >= 6, 60,
                 what="runs under way before the fault")
        scenario.fault_begins()
        terminator.start()
        time.sleep(8)
    finally:
        terminator.stop()
        load.stop()
    scenario.fault_ends()
    scenario.notes.append(f"{terminator.terminated} backends terminated in {terminator.rounds} rounds; "
                          f"RunWorkflow answers {dict(load.answers)}")
    scenario.check(terminator.terminated > 0, "no backend was terminated: the fault did not happen")
    leaked = [error for error in scenario.api.errors if RAW_DRIVER_TEXT.search(error)]
    scenario.check(not leaked, f"the API showed driver text to its client: {leaked[:3]}")
    scenario.check(500 not in load.answers, f"RunWorkflow answered 500 (a lost connection is a 503): {load.answers}")
    if scenario.api.errors:
        scenario.notes.append(f"API: {scenario.api.errors[0]}")
    scenario.recover()
    during = scenario.observer.tracks(set(workflows))
    scenario.check(len(during) >= 10, f"only {len(during)} runs started: the load did not run")
    scenario.finish()


def test_postgres_takes_no_writes_for_a_while_as_in_a_failover(postgres_database_url, fault_scenario):
    """A failover as the service sees it: every connection cut and the new ones landing on a server that takes no
    writes (SQLSTATE 25006, as a standby or a demoted primary) for 5 s, while runs of four workflows start and finish;
    then the name leads to a writable server again, the connections opened meanwhile still on the old one until
    dropped. Every run ends Succeeded or Failed with a readable error, none stays Queued or Running, every workflow
    runs again, and the API answers 503 (never 500) while writes are refused."""
    from tests.servers.postgres import database_default

    scenario = fault_scenario("PostgreSQL read-only for 5 s (a failover)", database_url=postgres_database_url)
    scenario.start_processes(workers=2, schedulers=1)
    workflows = scenario.make_workflows(4, delay_seconds=0.5)
    [idle] = scenario.make_workflows(1, delay_seconds=0.5)  # run during the fault only
    load = RunLoad(scenario.api, scenario.observer, workflows).start()
    terminator = BackendTerminator(scenario.database_url)
    try:
        wait_for(lambda: len(scenario.observer.tracks(set(workflows))) >= 6, 60,
                 what="runs under way before the fault")
        scenario.fault_begins()
        with database_default(scenario.database_url, "default_transaction_read_only", "on"):
            terminated = terminator.terminate_once()
            time.sleep(2.5)
            refused, _run_id = scenario.api.run(idle)
            time.sleep(2.5)
    finally:
        terminator.engine.dispose()
        load.stop()
    scenario.fault_ends()
    scenario.notes.append(f"{terminated} backends terminated; RunWorkflow answers {dict(load.answers)}, "
                          f"{refused} while writes were refused")
    scenario.check(terminated > 0, "no backend was terminated: the fault did not happen")
    scenario.check(refused == 503, f"RunWorkflow answered {refused} while writes were refused, not 503")
    scenario.check(500 not in load.answers, f"RunWorkflow answered 500 (refused writes are a 503): {load.answers}")
    leaked = [error for error in scenario.api.errors if RAW_DRIVER_TEXT.search(error)]
    scenario.check(not leaked, f"the API showed driver text to its client: {leaked[:3]}")
    scenario.recover()
    scenario.finish()

def test_the_database_host_goes_dark_and_a_failover_leads_elsewhere(postgres_database_url, fault_scenario):
    """A failover in which the old host goes dark: the workers' and the scheduler's connections lead through a route
    that becomes a black hole for good (every packet dropped, nothing answers, not even with a reset) while two runs
    wait in block 2 and three are queued; their database URL names a second address of the same server after it, as a
    URL naming a primary and a standby does. A connection through the dark route holds whichever thread used it
    next (a run, a lease keeper, a reaper) until it is found dead: within half the lost-run grace (canvas.db), not
    the operating system's quarter of an hour. Then: every run succeeds once; of two runs started a little later,
    whose block 2 outlasts the grace (only the lease keeper keeps them from being taken for lost), one succeeds and
    the other, its worker killed (kill -9), is failed 'worker lost' by a reaper."""
    from sqlalchemy.engine import URL, make_url

    from tests.servers.network_hole import NetworkHole

    direct = make_url(postgres_database_url)
    with NetworkHole(direct.host, direct.port) as hole:
        # libpq's shortest connect_timeout: each new connection tries the dark address first.
        two_hosts = URL.create(direct.drivername, direct.username, direct.password, database=direct.database, query={
            "host": [f"{hole.there_address}:{hole.port}", f"{direct.host}:{direct.port}"], "connect_timeout": "2"})
        scenario = fault_scenario("PostgreSQL host goes dark (failover)", database_url=postgres_database_url,
                                  process_database_url=two_hosts.render_as_string(hide_password=False))
        scenario.start_processes(workers=2, schedulers=1)
        workflows = scenario.make_workflows(5, delay_seconds=4)
        long_ones = scenario.make_workflows(2, delay_seconds=TIMING.grace + 4)
        runs = scenario.start_runs(workflows)
        running = [track.run_id for track in scenario.wait_in_block(runs, WAIT_BLOCK, count=2)]
        queued = [run_id for run_id in runs if scenario.track(run_id).status == "Queued"]
        relayed = hole.connections()
        scenario.fault_begins()
        hole.open()  # for good: the old host never comes back
        scenario.fault_ends()
        time.sleep(TIMING.grace + 2)  # the timeout, and a new connection's try of the dark address, are behind
        later = scenario.start_runs(long_ones)
        victim_run = scenario.wait_in_block(later, WAIT_BLOCK, timeout=90)[0]
        victim = scenario.worker_of(victim_run)
        killed_at = time.monotonic()
        scenario.fleet.kill9(victim)
        try:  # by the processes whose connections went dark: replaced only then
            wait_for(lambda: scenario.track(victim_run.run_id).final, TIMING.stranded_after, what="the lost run reaped")
        except AssertionError:
            scenario.problem(f"the killed worker's run was not reaped within {TIMING.stranded_after:.0f} s")
        scenario.fleet.replace(victim, f"{victim}-r1")
        scenario.notes.append(f"{relayed} connections led through the route that went dark; {len(running)} running, "
                              f"{len(queued)} queued; {len(later)} runs with a long block 2 started "
                              f"{TIMING.grace + 2:.0f} s later, the worker of one killed")
        scenario.check(relayed >= 3, f"only {relayed} connections through the route: the fault would not show")
        scenario.recover()
        expect_succeeded_once(scenario, running, "a running")
        expect_succeeded_once(scenario, queued, "a queued")
        expect_succeeded_once(scenario, [run_id for run_id in later if run_id != victim_run.run_id], "a later")
        expect_worker_lost(scenario, victim_run.run_id)
        lost_at = scenario.track(victim_run.run_id).final_at
        if lost_at is not None:
            scenario.notes.append(f"the killed worker's run was failed {lost_at - killed_at:.1f} s after the kill")
        scenario.finish()


CUT_OFF_SECONDS = 3 * TIMING.grace
CLAIM_REFUSED = re.compile(r"run ([0-9a-f-]{36}): database unavailable while claiming it")


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_worker_cut_off_from_the_database(postgres_database_url, fault_scenario, worker_class):
    """One of two workers, idle for a moment, loses the database for three lost-run graces while the other, the
    scheduler and the API keep it (its connections dropped and new ones refused, as a firewall, a full connection
    limit or a broken route on one machine do), under a steady stream of runs. The cut-off worker still reaches
    Redis, so it could go on taking runs it cannot start, each held for a grace before it gives it up and the reaper
    queues it again (three here, before): it takes at most one (the one it was waiting for when it lost the
    database), then takes no run until the database answers, and runs again once it does. Every run succeeds once.
    A forking worker learns of the outage from its reaper (the run it could not start failed in its child)."""
    url = make_url(postgres_database_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as relay:
        name = "a worker cut off from the database"
        scenario = fault_scenario(name if worker_class == "simple" else f"fork: {name}",
                                  database_url=postgres_database_url)
        relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        worker_args = ("--worker-class", worker_class)
        scenario.fleet.start_worker("w1", *worker_args)
        scenario.fleet.start_worker("w2", *worker_args, env={"CANVAS_DATABASE_URL": relayed})
        scenario.fleet.start_scheduler("s1")
        scenario.fleet.wait_ready()
        workflows = scenario.make_workflows(4, delay_seconds=0.5)
        ran_on_w2 = lambda after: any(track.worker_name == "w2" and track.status == "Succeeded"  # noqa: E731
                                      and (track.final_at or 0) > after
                                      for track in scenario.observer.tracks(set(workflows)))
        load = RunLoad(scenario.api, scenario.observer, workflows).start()
        try:
            wait_for(lambda: ran_on_w2(0), 60, what="a run of w2 before the fault")
        finally:
            load.stop()
        wait_for(lambda: scenario.observer.all_final(set(workflows)), 30, what="the runs before the fault ended")
        scenario.fault_begins()
        relay.cut()  # w2 idle: waiting for a run in Redis
        load = RunLoad(scenario.api, scenario.observer, workflows).start()
        try:
            time.sleep(CUT_OFF_SECONDS)
            taken = set(CLAIM_REFUSED.findall(scenario.fleet.log_tail("w2", 5000)))
            health = scenario.api.client.get("/healthz").json
            relay.restore()
            scenario.fault_ends()
            try:
                wait_for(lambda: ran_on_w2(scenario.fault_ended), 30, what="a run of w2 after the database came back")
            except AssertionError as error:
                scenario.problem(str(error))
        finally:
            load.stop()
        scenario.recover()
        expect_succeeded_once(scenario, [track.run_id for track in scenario.observer.tracks(set(workflows))], "a")
        scenario.check(len(taken) <= 1, f"the cut-off worker took {len(taken)} runs it could not start "
                                        f"({sorted(taken)}); at most 1 expected")
        scenario.check((health["workers"], health.get("workersWaitingForDatabase")) == (2, 1),
                       f"/healthz during the cut: {health}, not 2 workers of which 1 waiting for the database")
        held_off = "takes no run until the database answers" in scenario.fleet.log_tail("w2", 5000)
        scenario.check(held_off, "the cut-off worker did not say that it takes no run until the database answers")
        scenario.notes.append(f"the cut-off worker took {len(taken)} run(s) it could not start in "
                              f"{CUT_OFF_SECONDS:g} s; RunWorkflow answers {dict(load.answers)}")
        scenario.finish()


# --- schedulers -------------------------------------------------------------------------------------------------------

# --- object storage ---------------------------------------------------------------------------------------------------

STORE_AWAY_SECONDS = 6.0  # a restart of the store, within CANVAS_BLOB_OUTAGE_SECONDS (10 s by default)


def test_the_object_store_is_unreachable_for_a_while(fault_scenario, s3_environment):
    """Block outputs on a real S3 server behind a relay, cut for 6 s (connections dropped, new ones refused, as in a
    restart of the store) while runs of four workflows store and read them: the requests that cannot connect wait
    for the store, so every run succeeds, each side effect once; the workers say that they waited."""
    endpoint = urlsplit(s3_environment.endpoint_url)
    with TcpProxy(endpoint.hostname, endpoint.port) as relay:
        scenario = fault_scenario(f"object store unreachable for {STORE_AWAY_SECONDS:g} s (a restart)",
                                  BLOB_URL=f"s3://{s3_environment.create_bucket()}/canvas",
                                  S3_ENDPOINT_URL=f"http://127.0.0.1:{relay.port}")
        scenario.start_processes(workers=2, schedulers=1)
        workflows = scenario.make_workflows(4, delay_seconds=0.5)
        load = RunLoad(scenario.api, scenario.observer, workflows).start()
        try:
            wait_for(lambda: len(scenario.observer.tracks(set(workflows))) >= 6, 60,
                     what="runs under way before the fault")
            scenario.fault_begins()
            relay.cut()
            time.sleep(STORE_AWAY_SECONDS)
            relay.restore()
        finally:
            load.stop()
        scenario.fault_ends()
        scenario.recover()
        tracks = scenario.observer.tracks(set(workflows))
        expect_succeeded_once(scenario, [track.run_id for track in tracks], "a")
        waits = sum(proc.log_path.read_text().count("; waiting up to 10 s for it")
                    for proc in scenario.fleet.current())
        scenario.check(waits > 0, "no worker waited for the store: the fault did not happen")
        scenario.notes.append(f"{waits} requests waited for the store; RunWorkflow answers {dict(load.answers)}")
        scenario.finish()


SCHEDULE_PERIOD_SECONDS = 3
# A run the killed scheduler claimed but had not yet queued waits in the database until the reaper queues it again
# (after the grace, within a reaper interval); occurrences due meanwhile are skipped by the overlap policy. Besides
# those, one may be skipped because the previous run was still running.
MAX_SKIPPED = 1 + math.ceil((TIMING.grace + TIMING.reaper) / SCHEDULE_PERIOD_SECONDS)
EVERY_THREE_SECONDS = "0/3 * * ? * *"


def test_two_schedulers_one_killed(fault_scenario):
    """Two schedulers fire three every-3-seconds schedules, real workers run the runs; one scheduler is killed
    (kill -9) just after a fire time and replaced 5 s later. The ledger is whole (check_occurrences), and the killed
    scheduler recorded nothing after its death."""
    scenario = fault_scenario("two schedulers, one killed (kill -9)")
    scenario.start_processes(workers=2, schedulers=2)
    workflows = scenario.make_workflows(3, delay_seconds=0.5)
    enabled_at = wall_now()
    for workflow_id in workflows:
        scenario.api.schedule(workflow_id, EVERY_THREE_SECONDS)
    time.sleep(10)
    # Just after a fire time, when both schedulers are claiming and dispatching.
    now = time.time()
    time.sleep(SCHEDULE_PERIOD_SECONDS - now % SCHEDULE_PERIOD_SECONDS + 0.02)
    killed_pid = scenario.fleet.procs["s1"].process.pid
    scenario.fault_begins()
    scenario.fleet.kill9("s1")
    scenario.fault_ends()
    killed_at = wall_now()
    scenario.start_prober(start_runs=False)  # the schedules themselves run the workflows again
    time.sleep(5)
    scenario.fleet.replace("s1", "s1-r1")
    scenario.fleet.wait_ready()
    time.sleep(9)
    disabled_at = wall_now()
    for workflow_id in workflows:
        scenario.api.schedule(workflow_id, None)
    scenario.recover(start_runs=False)

    for workflow_id, rows in check_occurrences(scenario, workflows, enabled_at, disabled_at).items():
        after_death = killed_at + timedelta(seconds=1)
        by_dead = [row.scheduled_time.isoformat() for row in rows
                   if row.scheduler.endswith(f":{killed_pid}") and row.scheduled_time > after_death]
        scenario.check(not by_dead, f"workflow {workflow_id[:8]}: occurrences recorded by the killed scheduler after "
                                    f"its death: {by_dead}")
    scenario.finish()



FROZEN_SECONDS = 12
FROZEN_APPLICATION_NAME = "fault-frozen-scheduler"


def test_a_scheduler_frozen_inside_its_claim(postgres_database_url, fault_scenario):
    """Two schedulers fire three every-3-seconds schedules; one is frozen (SIGSTOP, as a frozen VM or a process
    paused by a debugger) in the middle of its claim, holding the three workflows' rows locked, for 12 s. PostgreSQL
    ends its transaction once it has been idle for half the lost-run grace (3 s here: canvas.db.silence_limit), so
    the other scheduler goes on firing every occurrence at most that much late, and the workers end their runs of
    those workflows (without the limit, no occurrence fired while it was frozen, and a worker waiting to end its run
    had the run taken for lost). Continued, the frozen scheduler goes on without a traceback; the ledger is whole
    (check_occurrences), no occurrence fired twice."""
    from canvas.db import silence_limit
    from tests.servers.postgres import idle_in_transaction_of, lock_rows, waiting_for_lock, with_application_name

    idle_limit = silence_limit(TIMING.grace)
    scenario = fault_scenario("a scheduler frozen inside its claim (SIGSTOP)", database_url=postgres_database_url)
    frozen_url = with_application_name(postgres_database_url, FROZEN_APPLICATION_NAME)
    scenario.fleet.start_worker("w1")
    scenario.fleet.start_worker("w2")
    scenario.fleet.start_scheduler("s1", env={"CANVAS_DATABASE_URL": frozen_url})
    scenario.fleet.start_scheduler("s2")
    scenario.fleet.wait_ready()
    workflows = scenario.make_workflows(3, delay_seconds=0.5)
    enabled_at = wall_now()
    for workflow_id in workflows:
        scenario.api.schedule(workflow_id, EVERY_THREE_SECONDS)
    time.sleep(7)
    # Freezing s1 inside its claim: the workflows' rows held by the test across a fire time, so that both schedulers
    # wait for them inside their claims; s1 frozen there; the rows let go: s1's claim takes them (after s2's, if s2
    # was first in line) and holds them, its process stopped.
    fire_time = (math.floor(time.time() / SCHEDULE_PERIOD_SECONDS) + 1) * SCHEDULE_PERIOD_SECONDS
    if fire_time - time.time() < 0.5:
        fire_time += SCHEDULE_PERIOD_SECONDS
    time.sleep(fire_time - time.time() - 0.3)
    with lock_rows(scenario.database_url, "workflow", workflows):
        wait_for(lambda: waiting_for_lock(scenario.database_url, FROZEN_APPLICATION_NAME), 5, interval=0.05,
                 what="scheduler s1 waiting for the workflows' rows in its claim")
        scenario.fault_begins()
        scenario.fleet.sigstop("s1")
    try:
        wait_for(lambda: idle_in_transaction_of(scenario.database_url, FROZEN_APPLICATION_NAME), 5, interval=0.05,
                 what="the frozen scheduler's claim holding the rows")
    except AssertionError as error:
        scenario.problem(f"{error}: the fault did not happen")
    time.sleep(idle_limit + 2)
    scenario.check(not idle_in_transaction_of(scenario.database_url, FROZEN_APPLICATION_NAME),
                   f"the frozen scheduler's transaction still holds its locks {idle_limit + 2:g} s "
                   f"after it went idle")
    time.sleep(FROZEN_SECONDS - idle_limit - 2)
    scenario.fleet.sigcont("s1")
    scenario.fault_ends()
    continued_at = wall_now()
    scenario.start_prober(start_runs=False)  # the schedules themselves run the workflows again
    time.sleep(8)
    disabled_at = wall_now()
    for workflow_id in workflows:
        scenario.api.schedule(workflow_id, None)
    scenario.recover(start_runs=False)

    late = idle_limit + 2.5
    for workflow_id, rows in check_occurrences(scenario, workflows, enabled_at, disabled_at).items():
        during = [row for row in rows if row.outcome == "fired"
                  and fire_time <= row.scheduled_time.timestamp() <= continued_at.timestamp()]
        scenario.check(len(during) >= 2, f"workflow {workflow_id[:8]}: {len(during)} occurrences fired while s1 was "
                                         f"frozen, expected at least 2 of the {FROZEN_SECONDS // 3}")
        lateness = max(((row.date_recorded - row.scheduled_time).total_seconds() for row in during), default=0.0)
        scenario.check(lateness <= late, f"workflow {workflow_id[:8]}: an occurrence was fired {lateness:.1f} s "
                                         f"late while s1 was frozen (at most {late:g} s expected)")
        scenario.notes.append(f"workflow {workflow_id[:8]}: latest occurrence while frozen {lateness:.1f} s late")
    said = scenario.fleet.log_tail("s1", 200)
    scenario.check("Traceback" not in said, f"the continued scheduler logged a traceback: {said[-800:]}")
    scenario.finish()

def check_occurrences(scenario: Scenario, workflows: list[str], enabled_at: datetime,
                      disabled_at: datetime) -> dict[str, list]:
    """Every occurrence of each every-3-seconds schedule from the first to the last is in the ledger exactly once,
    fired (or skipped while the previous run was still active: see MAX_SKIPPED), each fired one has exactly one run,
    and every run succeeded, its side effects once. Returns each workflow's ledger rows."""
    from canvas.models import ScheduleOccurrence

    services = scenario.app.extensions["canvas"]
    tracks = {track.run_id: track for track in scenario.observer.tracks(set(workflows))}
    skipped_total = 0
    ledger = {}
    with services.db.sessions() as session:
        for workflow_id in workflows:
            rows = ledger[workflow_id] = list(session.scalars(
                select(ScheduleOccurrence).where(ScheduleOccurrence.workflow_id == uuid.UUID(workflow_id))
                .order_by(ScheduleOccurrence.scheduled_time)))
            label = f"workflow {workflow_id[:8]}"
            if not scenario.check(len(rows) >= 6, f"{label}: only {len(rows)} occurrences recorded"):
                continue
            times = [row.scheduled_time for row in rows]
            gaps = [(a.isoformat(), b.isoformat()) for a, b in zip(times, times[1:])
                    if b - a != timedelta(seconds=SCHEDULE_PERIOD_SECONDS)]
            scenario.check(not gaps, f"{label}: occurrences missing or doubled between {gaps}")
            scenario.check(times[0] <= enabled_at + timedelta(seconds=SCHEDULE_PERIOD_SECONDS + 3),
                           f"{label}: the first occurrence {times[0]} came late (enabled {enabled_at})")
            scenario.check(times[-1] >= disabled_at - timedelta(seconds=SCHEDULE_PERIOD_SECONDS + 1),
                           f"{label}: the last occurrence {times[-1]} is long before the schedule was disabled "
                           f"({disabled_at})")
            outcomes = [(row.scheduled_time.isoformat(), row.outcome, row.reason) for row in rows]
            odd = [outcome for outcome in outcomes if outcome[1] not in ("fired", "skipped")]
            scenario.check(not odd, f"{label}: occurrences neither fired nor skipped: {odd}")
            skipped = [outcome for outcome in outcomes if outcome[1] == "skipped"]
            skipped_total += len(skipped)
            scenario.check(len(skipped) <= MAX_SKIPPED, f"{label}: {len(skipped)} occurrences skipped: {skipped}")
            fired_runs = [str(row.run_id) for row in rows if row.outcome == "fired"]
            scenario.check(len(set(fired_runs)) == len(fired_runs), f"{label}: a run id for two occurrences")
            scheduled_runs = sorted(run_id for run_id, track in tracks.items()
                                    if track.workflow_id == workflow_id and track.trigger == "schedule")
            scenario.check(sorted(fired_runs) == scheduled_runs,
                           f"{label}: fired occurrences {len(fired_runs)} and scheduled runs {len(scheduled_runs)} "
                           f"differ: {sorted(set(fired_runs) ^ set(scheduled_runs))}")
            expect_succeeded_once(scenario, fired_runs, f"{label}: a scheduled")
    scenario.notes.append(f"{skipped_total} occurrences skipped")
    return ledger

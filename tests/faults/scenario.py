"""One fault-injection scenario: the platform it runs on (the in-process API, real workers and schedulers, the
test's own Redis, the side-effect receiver, the observer), the fault's timeline, and its verdict.

A scenario collects problems instead of stopping at the first one: its figures go into the suite's table whether it
passes or not, then `finish()` fails the test with every problem, the runs' timelines and the processes' logs.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.faults.harness import (
    EFFECT_BLOCKS, OBSERVER_APPLICATION_NAME, RAW_DRIVER_TEXT, TIMING, Api, EffectReceiver, Figures, Fleet,
    Prober, RedisServer, RunObserver, RunTrack, Timing, duplicate_effects, effect_template, overlapping_effects,
    process_env, wait_for, wall_now,
)


class Scenario:
    def __init__(self, name: str, app, redis_server: RedisServer, receiver: EffectReceiver,  # noqa: ANN001
                 log_dir: Path, timing: Timing = TIMING, process_database_url: str | None = None):
        from tests.conftest import Org

        settings = app.config["CANVAS_SETTINGS"]
        self.name, self.app, self.timing = name, app, timing
        self.database_url = settings["DATABASE_URL"]
        self.database = "postgresql" if self.database_url.startswith("postgresql") else "sqlite"
        self.redis_server, self.receiver, self.log_dir = redis_server, receiver, log_dir
        self.figures = Figures(name, self.database)
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.recorded = False
        self.workflows: list[str] = []
        self.fault_started: float | None = None
        self.fault_ended: float | None = None
        self.fault_ended_wall: datetime | None = None
        self.prober: Prober | None = None
        self.api = Api(app, Org(app, "Faults").admin_headers)
        self.registered = self.api.register_receiver(receiver)
        self.template_id = self.api.publish_template(effect_template(f"Fault probe: {name}"))
        self.fleet = Fleet(process_env(settings, redis_server, timing, process_database_url), log_dir, redis_server)
        self.observer = RunObserver(self.database_url).start()  # last: close() needs everything above

    # --- the platform ------------------------------------------------------------------------------------------------

    def start_processes(self, workers: int = 2, schedulers: int = 1, worker_args: tuple[str, ...] = ()) -> None:
        for number in range(1, workers + 1):
            self.fleet.start_worker(f"w{number}", *worker_args)
        for number in range(1, schedulers + 1):
            self.fleet.start_scheduler(f"s{number}")
        self.fleet.wait_ready()

    def make_workflows(self, count: int, delay_seconds: float) -> list[str]:
        made = [self.api.workflow(self.template_id, self.registered, delay_seconds, f"{self.name} #{index + 1}")
                for index in range(count)]
        self.workflows.extend(made)
        return made

    def start_runs(self, workflows: list[str]) -> list[str]:
        run_ids = []
        for workflow_id in workflows:
            status, run_id = self.api.run(workflow_id)
            assert status == 202 and run_id, f"RunWorkflow answered {status}: {self.api.errors[-1:]}"
            run_ids.append(run_id)
        self.observer.wait_fresh()
        return run_ids

    def track(self, run_id: str) -> RunTrack | None:
        return self.observer.get(run_id)

    def wait_in_block(self, run_ids: list[str], number: int, count: int = 1, timeout: float = 60) -> list[RunTrack]:
        """Wait until `count` of the runs are Running with block `number` Running; those runs."""

        def in_block() -> list[RunTrack] | None:
            tracks = [self.track(run_id) for run_id in run_ids]
            there = [track for track in tracks
                     if track is not None and track.status == "Running" and track.blocks.get(number) == "Running"]
            return there if len(there) >= count else None

        try:
            return wait_for(in_block, timeout, what=f"{count} run(s) in block {number}")
        except AssertionError:
            raise AssertionError(f"{count} run(s) never reached block {number}:\n{self.timelines()}\n"
                                 f"{self.fleet.log_tails()}") from None

    def worker_of(self, track: RunTrack) -> str:
        """The fleet name of the worker running a run (workers are started with --name)."""
        names = {proc.name for proc in self.fleet.current() if proc.role == "worker"}
        worker = track.worker_name or ""
        assert worker in names, f"run {track.run_id} is held by {worker!r}, not one of {sorted(names)}"
        return worker

    # --- the fault's timeline --------------------------------------------------------------------------------------

    def fault_begins(self) -> None:
        self.fault_started = time.monotonic()

    def fault_ends(self) -> None:
        self.fault_ended, self.fault_ended_wall = time.monotonic(), wall_now()
        self.figures.fault_seconds = self.fault_ended - (self.fault_started or self.fault_ended)

    def start_prober(self, start_runs: bool = True) -> Prober:
        """Probe runs once the fault has ended; without `start_runs` (schedules run the workflows) the recovery is
        the first Succeeded run of each workflow after the fault."""
        assert self.fault_ended_wall is not None, "the prober starts once the fault has ended"
        self.prober = Prober(self.api, self.observer, self.workflows, self.fault_ended_wall, start_runs=start_runs,
                             recovery="affected" if start_runs else "rerun").start()
        return self.prober

    @property
    def deadline(self) -> float:
        """Runs still Queued/Running after this are stranded."""
        assert self.fault_ended is not None
        return self.fault_ended + self.timing.stranded_after

    def recover(self, start_runs: bool = True, settle_seconds: float = 2.0) -> None:
        """Probe every workflow, wait for the recovery (or the deadline), then a little longer for late writes."""
        prober = self.prober or self.start_prober(start_runs)
        workers_gone_since: float | None = None
        while time.monotonic() < self.deadline and prober.done_at is None:
            if self.fleet.live_workers():
                workers_gone_since = None
            elif workers_gone_since is None:
                workers_gone_since = time.monotonic()
            elif time.monotonic() - workers_gone_since > self.timing.grace + 10:
                self.problem("every worker is dead: stopped waiting for the recovery")
                break
            time.sleep(0.2)
        if prober.done_at is None:
            self.problem(f"not recovered {time.monotonic() - self.fault_ended:.0f} s after the fault ended "
                         f"(deadline {self.timing.stranded_after:.0f} s; probe attempts {dict(prober.attempts)}, "
                         f"answers {dict(Counter(status for _workflow, status in prober.answers))})")
        prober.stop()
        time.sleep(settle_seconds)
        self.observer.wait_fresh()

    # --- verdict ---------------------------------------------------------------------------------------------------

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def check(self, condition: bool, message: str) -> bool:
        if not condition:
            self.problem(message)
        return condition

    def compute(self) -> Figures:
        figures = self.figures
        tracks = self.observer.tracks(set(self.workflows))
        effects = self.receiver.effects()
        workflow_of = {track.run_id: track.workflow_id for track in tracks}
        figures.runs_started = len(tracks)
        figures.states = Counter(track.status if track.is_final else "stranded" for track in tracks)
        stranded = [track for track in tracks if not track.is_final]
        figures.stranded = len(stranded)
        duplicates = duplicate_effects(effects)
        figures.duplicates = sum(count - 1 for count in duplicates.values())
        pairs = overlapping_effects(effects, workflow_of) | {
            pair for pair in self.observer.concurrent if pair <= set(workflow_of)}
        figures.overlaps = len(pairs)
        arrived = Counter((effect.run_id, effect.block) for effect in effects)
        lost = [(track.run_id, number) for track in tracks for number in EFFECT_BLOCKS
                if track.blocks.get(number) == "Succeeded" and not arrived[(track.run_id, number)]]
        figures.lost_effects = len(lost)
        figures.final_state_changes = len(self.observer.final_state_changes)
        figures.late_writes = len(self.observer.late_writes)
        recovered_at = self.prober.recovered_at if self.prober is not None else None
        if recovered_at is not None and self.fault_started is not None:
            figures.recovery_seconds = max(0.0, recovered_at - self.fault_started)

        self.check(not stranded, "stranded runs: " + ", ".join(
            f"{track.run_id} {track.status} (blocks {track.blocks})" for track in stranded))
        self.check(not duplicates, f"duplicate side effects: {duplicates}")
        self.check(not pairs, "overlapping executions: " + "; ".join(
            " & ".join(sorted(pair)) for pair in pairs) + " " + "; ".join(self.observer.concurrent_notes))
        self.check(not lost, f"blocks recorded Succeeded whose POST never arrived: {lost}")
        orphans = sorted({effect.run_id for effect in effects if effect.run_id not in workflow_of})
        self.check(not orphans, f"side effects of runs the database does not know: {orphans}")
        self.check(not self.observer.final_state_changes,
                   "final states changed: " + "; ".join(self.observer.final_state_changes))
        self.check(not self.observer.late_writes, "late writes: " + "; ".join(self.observer.late_writes))
        unreadable = [f"{track.run_id}: {track.error!r}" for track in tracks if track.status == "Failed"
                      and (not (track.error or "").strip() or RAW_DRIVER_TEXT.search(track.error or ""))]
        self.check(not unreadable, "failed runs without a readable error: " + "; ".join(unreadable))
        for message in self.fleet.not_alive():
            self.problem(message)
        return figures

    def finish(self) -> None:
        """Figures into the table, then fail the test with every problem."""
        self.compute()
        self._record()
        if self.problems:
            raise AssertionError(self.report())

    def _record(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        if self.problems:
            shown = [problem if len(problem) <= 140 else problem[:140] + "…" for problem in self.problems[:3]]
            more = f" (+{len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
            self.figures.verdict = "FAIL: " + "; ".join(shown) + more
        else:
            self.figures.verdict = "pass"
        self.figures.notes = list(self.notes)

    def report(self) -> str:
        parts = [f"scenario {self.name!r} on {self.database}: {len(self.problems)} problem(s)",
                 *(f"  - {problem}" for problem in self.problems)]
        if self.notes:
            parts.append("notes: " + "; ".join(self.notes))
        parts.append("runs:\n" + self.timelines())
        if self.api.errors:
            parts.append("API errors: " + "; ".join(self.api.errors[:10]))
        if self.observer.poll_errors:
            parts.append(f"observer poll errors: {dict(self.observer.poll_errors)}")
        parts.append("process events: " + "; ".join(
            f"{at - (self.fault_started or at):+.1f}s {what}" for at, what in self.fleet.events))
        parts.append(self.fleet.log_tails(30))
        return "\n".join(parts)

    def timelines(self) -> str:
        origin = self.fault_started or 0.0
        effects = self.receiver.effects()
        lines = []
        for track in sorted(self.observer.tracks(set(self.workflows)), key=lambda track: track.first_seen):
            steps = " -> ".join(f"{status}@{at - origin:+.1f}s" for at, status in track.transitions)
            posts = ", ".join(f"{effect.block}:{effect.step}@{effect.at - origin:+.1f}s"
                              for effect in effects if effect.run_id == track.run_id)
            lines.append(f"  {track.run_id} wf {track.workflow_id[:8]} [{track.worker_name}] {steps} "
                         f"blocks {track.blocks} posts [{posts}] error {track.error!r}")
        return "\n".join(lines) or "  (none)"

    def close(self) -> None:
        """Always: the figures of a scenario that stopped half-way (while its processes still run), then the
        processes (they must not write while the tables are emptied), then the observer."""
        try:
            if self.prober is not None:
                self.prober.stop()
            if not self.recorded:  # the test failed before finish(): its figures still go into the table
                self.problem("the scenario did not run to its end")
                try:
                    self.compute()
                except Exception as error:  # noqa: BLE001
                    self.problem(f"figures not computed: {type(error).__name__}: {error}")
                self._record()
        finally:
            try:
                self.fleet.close()
            finally:
                self.observer.stop()


# --- load and faults that are threads -------------------------------------------------------------------------------


class RunLoad:
    """Keeps every workflow busy: starts a run of each workflow that has no active run, until stopped."""

    def __init__(self, api: Api, observer: RunObserver, workflows: list[str], pause: float = 0.2):
        self.api, self.observer, self.workflows, self.pause = api, observer, workflows, pause
        self.answers: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-load", daemon=True)

    def start(self) -> RunLoad:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for workflow_id in self.workflows:
                if self._stop.is_set():
                    break
                if not self.observer.active(workflow_id):
                    status, _run_id = self.api.run(workflow_id)
                    self.answers[status] += 1
            self._stop.wait(self.pause)


class BackendTerminator:
    """Terminates every PostgreSQL backend of the test database (but the observer's, which only watches) every
    `every` seconds, from a connection to the maintenance database."""

    def __init__(self, database_url: str, every: float = 0.25):
        url = make_url(database_url)
        self.database = url.database
        self.engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        self.every = every
        self.terminated = 0
        self.rounds = 0
        self.errors: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-terminator", daemon=True)

    def start(self) -> BackendTerminator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.engine.dispose()

    def terminate_once(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :database AND pid <> pg_backend_pid() "
                "AND coalesce(application_name, '') <> :observer"),
                {"database": self.database, "observer": OBSERVER_APPLICATION_NAME}).scalar() or 0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.terminated += self.terminate_once()
                self.rounds += 1
            except Exception as error:  # noqa: BLE001 - keep terminating
                self.errors[type(error).__name__] += 1
            self._stop.wait(self.every)

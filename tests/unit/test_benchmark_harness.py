"""benchmarks/_harness.py: readiness that survives a slow server, child processes that never outlive a benchmark; and
benchmarks/run_throughput.py's rates (execution to the last finish)."""
from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.process_tools import alive, descendants

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _harness  # noqa: E402
import run_throughput  # noqa: E402


class StillRunning:
    args = ("canvas", "api")

    def poll(self) -> None:
        return None


def serve(answers: list) -> tuple[http.server.HTTPServer, str]:
    """A local server giving `answers` in turn (the last one for ever): (status, body), or "drop" (close the
    connection without an answer), or ("slow", seconds) (answer 200 {} after that long)."""
    queue = list(answers)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if answer == "drop":
                self.close_connection = True
                return
            if answer[0] == "slow":
                time.sleep(answer[1])
                answer = (200, {})
            body = json.dumps(answer[1]).encode()
            self.send_response(answer[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/healthz"


def test_readiness_retries_errors_timeouts_and_dropped_connections_until_ready():
    server, url = serve([(503, {"status": "unavailable"}), "drop", ("slow", 0.6), (500, {}),
                         (200, {"workers": 0}), (200, {"workers": 1})])
    try:
        body = _harness.wait_until_ready(url, StillRunning(), timeout=20, attempt_timeout=0.3,
                                         ready=lambda health: health.get("workers", 0) >= 1)
    finally:
        server.shutdown()
    assert body == {"workers": 1}


def test_readiness_gives_up_at_the_deadline_saying_what_it_saw(tmp_path):
    log = tmp_path / "api.log"
    log.write_text("gunicorn: worker boot failed\n")
    server, url = serve([(500, {"error": "boom"})])
    began = time.monotonic()
    try:
        with pytest.raises(RuntimeError) as raised:
            _harness.wait_until_ready(url, StillRunning(), timeout=1.0, log_path=log)
    finally:
        server.shutdown()
    assert time.monotonic() - began < 5
    assert "not ready within 1 s" in str(raised.value) and "500" in str(raised.value)
    assert "worker boot failed" in str(raised.value)


def test_readiness_fails_at_once_when_the_process_exits():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        _harness.wait_until_ready("http://127.0.0.1:9/healthz", process, timeout=30)


SCRIPT = """
import sys, time
sys.path.insert(0, {benchmarks!r})
import _harness
child = _harness.spawn({command!r}, {{"PATH": "/usr/bin:/bin"}})
print(child.pid, flush=True)
{then}
"""


@pytest.mark.parametrize("ending", ["sigterm", "exception", "stop_processes"])
def test_spawned_trees_are_killed_on_every_way_out(ending):
    then = {"sigterm": "time.sleep(60)", "exception": "time.sleep(1.0); raise ValueError('benchmark failed')",
            "stop_processes": "time.sleep(1.0); _harness.stop_processes([child], grace=5); time.sleep(60)"}[ending]
    # a child that starts a grandchild in a session of its own (as `canvas api` starts the embedded Redis)
    command = ["sh", "-c", "setsid sleep 300 & exec sleep 300"]
    script = textwrap.dedent(SCRIPT.format(benchmarks=str(BENCHMARKS), command=command, then=then))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(runner.stdout.readline())
        deadline = time.monotonic() + 10
        while len(tree := {child, *descendants(child)}) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tree) >= 2, tree  # the child (sleep), and the sleep it started in a session of its own
        if ending == "sigterm":
            runner.send_signal(signal.SIGTERM)
        if ending == "stop_processes":
            deadline = time.monotonic() + 10
            while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert [pid for pid in tree if alive(pid)] == []
            runner.send_signal(signal.SIGTERM)
        runner.wait(30)
        assert [pid for pid in tree if alive(pid)] == []
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_execution_rate_runs_to_the_last_finish_and_spread_of_worker_starts():
    burst = run_throughput.Burst(dispatched=4, dispatch_seconds=0.5, starts=[10.0, 10.2, 10.5, 11.0],
                                 finishes=[10.1, 10.4, 10.6, 12.0], workers=["a", "b", "a", "b"], succeeded=4)
    assert burst.dispatch_rate == 8.0
    assert burst.execution_rate == pytest.approx(4 / 2.0)  # first start 10.0 -> last finish 12.0, not last start
    assert burst.spread == pytest.approx(0.2)
    assert burst.active_workers == 2


def test_cpu_per_run_is_the_workers_and_the_dispatchers_over_the_concurrent_burst():
    def burst(worker_cpu: float = math.nan, dispatch_cpu: float = math.nan) -> run_throughput.Burst:
        return run_throughput.Burst(dispatched=100, dispatch_seconds=1.0, starts=[1.0, 2.0], finishes=[1.5, 3.0],
                                    workers=["a", "a"], succeeded=100, worker_cpu_seconds=worker_cpu,
                                    dispatch_cpu_seconds=dispatch_cpu)

    values = run_throughput.Figures(burst(), burst(0.6, 0.2), [1.0, 2.0]).values
    assert (values["cpu_ms_per_run"], values["dispatch_cpu_ms_per_run"]) == pytest.approx((6.0, 2.0))
    assert values["total_cpu_ms_per_run"] == pytest.approx(8.0)
    unmeasured = run_throughput.Figures(burst(), burst(0.6), [1.0]).values  # dispatched by processes
    assert math.isnan(unmeasured["dispatch_cpu_ms_per_run"]) and math.isnan(unmeasured["total_cpu_ms_per_run"])


def test_a_spawned_process_gets_sigterm_when_the_benchmark_is_killed():
    """SIGKILL reaches no handler: Linux's parent-death signal tells the child (which stops its own children)."""
    script = textwrap.dedent(SCRIPT.format(benchmarks=str(BENCHMARKS), command=["sleep", "300"],
                                           then="time.sleep(60)"))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(runner.stdout.readline())
        assert alive(child)
        runner.kill()
        runner.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if "child" in locals() and alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_pre_filled_backlog_is_held_until_every_worker_waits_then_reaches_them_all(redis_url, monkeypatch):
    """`--pre-filled-release ready`: real RQ workers boot while the backlog is set aside; once both wait on the queue
    it comes back in one step (nothing left aside), and both take jobs from it."""
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    name = f"bench-held-{os.getpid()}-{time.monotonic_ns()}"
    queue = Queue(name, connection=connection)
    connection.delete(run_throughput.rq_noop.RESULTS_KEY)
    for _ in range(20):
        queue.enqueue(run_throughput.rq_noop.record_start, time.time())
    start, seen_at_start = run_throughput.start, []

    def start_and_look(*args, **kwargs):  # noqa: ANN002, ANN003
        seen_at_start.append((connection.llen(queue.key), connection.llen(run_throughput.held_aside(queue.key))))
        return start(*args, **kwargs)

    monkeypatch.setattr(run_throughput, "start", start_and_look)
    command = [sys.executable, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "--url", redis_url,
               "--quiet", name]
    env = {**os.environ, "BENCH_REDIS_URL": redis_url, "PYTHONPATH": str(BENCHMARKS)}
    processes = run_throughput.start_on_backlog(connection, name, "ready", command, env, 2)
    try:
        assert seen_at_start == [(0, 20)]  # set aside while the workers booted
        run_throughput._wait(lambda: connection.llen(run_throughput.rq_noop.RESULTS_KEY) >= 20, processes, 0.02,
                             "20 jobs", 60)
        workers = {worker for *_, worker in run_throughput._raw_records(connection)}
        assert len(workers) == 2, workers
        assert connection.exists(run_throughput.held_aside(queue.key)) == 0
    finally:
        _harness.stop_processes(processes, grace=1)  # RQ's worker now and then sits out SIGTERM on its queue
        connection.delete(run_throughput.rq_noop.RESULTS_KEY)
        queue.delete(delete_jobs=True)
        connection.close()

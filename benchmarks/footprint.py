"""Memory footprint of idle processes: `canvas up` (embedded defaults) and a standalone `canvas worker`.

    .venv/bin/python benchmarks/footprint.py [--rounds 2] [--settle 8] [--api-workers N] [--api-threads T]
                                             [--requests 300]

Each round starts `canvas up` on a fresh data dir with its default API workers and threads (unless --api-workers,
--api-threads; `--api-threads 1` is gunicorn's sync workers, 2 x cores + 1 of them by default), waits
until /healthz counts its worker and scheduler, lets it settle, and reads every process of its tree; then a
standalone `canvas worker` on a data dir of its own (so with an embedded Redis of its own, listed apart). RSS counts
every resident page of a process, shared ones in full; PSS divides each shared page among the processes that map it,
so the PSS of a tree is what it really costs (forked children share their parent's pages copy-on-write). Figures are
MB (2^20 bytes), min and median over the rounds. psutil when installed, else /proc/<pid>/status and smaps_rollup.
`canvas up` is read again after ``--requests`` API requests (/healthz, and every tenth /openapi.json), which copy
some of the pages gunicorn's workers share with their master.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import requests
from _harness import cpu_note

from tests.process_tools import canvas_env, free_port, start_canvas

try:
    import psutil
except ImportError:  # pragma: no cover - /proc is enough
    psutil = None

MB = 1024 * 1024


@dataclass
class Sample:
    role: str
    pid: int
    rss: float  # MB
    pss: float  # MB


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB."""
    if psutil is not None:
        info = psutil.Process(pid).memory_full_info()
        return info.rss / MB, info.pss / MB
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


FORKED = {"api": "api worker (gunicorn)", "worker": "worker: forked child (RQ scheduler)"}


def role_of(pid: int, parent_role: str | None) -> str:
    """What a process is, from its command line; a forked child has its parent's, so it is named by its parent."""
    args = command_line(pid)
    if "redis-server" in args[0]:
        return "redis-server"
    role = args[0]
    if "canvas" in args and args.index("canvas") + 1 < len(args):
        command = args[args.index("canvas") + 1]
        role = "up (supervisor)" if command == "up" else command
    if role == parent_role:
        return FORKED.get(role, f"{role}: forked child")
    return role


def tree(root: int) -> list[Sample]:
    """The root and its descendants, each named by its role; processes of one role numbered."""
    samples, counts = [], defaultdict(int)
    stack = [(root, None)]
    while stack:
        pid, parent_role = stack.pop(0)
        try:
            role = role_of(pid, parent_role)
            rss, pss = memory_mb(pid)
        except (OSError, ValueError):
            continue
        counts[role] += 1
        samples.append(Sample(f"{role} #{counts[role]}" if counts[role] > 1 else role, pid, rss, pss))
        stack.extend((child, role.split(" #")[0]) for child in children_of(pid))
    return samples


def wait_idle_up(port: int, process: subprocess.Popen, settle: float) -> None:
    url, health = f"http://127.0.0.1:{port}/healthz", None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"canvas up exited with {process.returncode}")
        try:
            health = requests.get(url, timeout=10).json()
        except requests.RequestException:  # not listening yet, or its workers still starting
            health = None
        if health and (health.get("workers"), health.get("schedulers")) == (1, 1):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"canvas up did not count its worker and scheduler: {health}")
    time.sleep(settle)


def wait_idle_worker(log_path: Path, process: subprocess.Popen, settle: float) -> None:
    deadline = time.monotonic() + 120
    while "listening on queue" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"canvas worker did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(settle)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def send_requests(port: int, count: int) -> None:
    """One connection per request, so that they spread over gunicorn's workers."""
    for index in range(count):
        path = "/openapi.json" if index % 10 == 0 else "/healthz"
        requests.get(f"http://127.0.0.1:{port}{path}", timeout=30, headers={"Connection": "close"})


def measure_up(settle: float, api_workers: int | None, api_threads: int | None,
               request_count: int) -> tuple[list[Sample], list[Sample]]:
    """(idle, after the requests)"""
    with tempfile.TemporaryDirectory(prefix="canvas-footprint-") as tmp:
        env = canvas_env(Path(tmp) / "data")
        env.pop("CANVAS_API_WORKERS")  # the default count, as a user gets it
        if api_workers is not None:
            env["CANVAS_API_WORKERS"] = str(api_workers)
        if api_threads is not None:
            env["CANVAS_API_THREADS"] = str(api_threads)
        port = free_port()
        process = start_canvas("up", "--port", str(port), env=env, log_path=Path(tmp) / "up.log")
        try:
            wait_idle_up(port, process, settle)
            idle = tree(process.pid)
            send_requests(port, request_count)
            time.sleep(2)
            return idle, tree(process.pid)
        finally:
            stop(process)


def measure_worker(settle: float) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="canvas-footprint-") as tmp:
        env = canvas_env(Path(tmp) / "data")
        log_path = Path(tmp) / "worker.log"
        process = start_canvas("worker", env=env, log_path=log_path)
        try:
            wait_idle_worker(log_path, process, settle)
            return tree(process.pid)
        finally:
            stop(process)


def report(title: str, rounds: list[list[Sample]]) -> None:
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for samples in rounds:
        for sample in samples:
            rows[sample.role].append((sample.rss, sample.pss))
        python = [s for s in samples if s.role != "redis-server"]
        rows["= total"].append((sum(s.rss for s in samples), sum(s.pss for s in samples)))
        rows["= total without redis-server"].append((sum(s.rss for s in python), sum(s.pss for s in python)))
    print(f"\n{title}")
    print(f"{'process':<40} {'RSS min':>8} {'RSS med':>8} {'PSS min':>8} {'PSS med':>8}   (MB, {len(rounds)} rounds)")
    for role, values in rows.items():
        rss, pss = [v[0] for v in values], [v[1] for v in values]
        print(f"{role:<40} {min(rss):8.1f} {statistics.median(rss):8.1f} {min(pss):8.1f} "
              f"{statistics.median(pss):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds to wait once a process is up")
    parser.add_argument("--api-workers", type=int, default=None, help="CANVAS_API_WORKERS (default: the default)")
    parser.add_argument("--api-threads", type=int, default=None, help="CANVAS_API_THREADS (default: the default)")
    parser.add_argument("--requests", type=int, default=300, help="API requests before the second reading")
    args = parser.parse_args()
    print(f"footprint of idle processes; {cpu_note()}; {'psutil' if psutil else '/proc'}")
    up_rounds, busy_rounds, worker_rounds = [], [], []
    for _ in range(args.rounds):
        idle, busy = measure_up(args.settle, args.api_workers, args.api_threads, args.requests)
        up_rounds.append(idle)
        busy_rounds.append(busy)
        worker_rounds.append(measure_worker(args.settle))
    workers = f", {args.api_workers} API workers" if args.api_workers else ", default API workers"
    workers += f" of {args.api_threads} threads" if args.api_threads else " and threads"
    report(f"canvas up (embedded defaults{workers}), idle", up_rounds)
    report(f"canvas up (embedded defaults{workers}), after {args.requests} API requests", busy_rounds)
    report("canvas worker (standalone, embedded Redis of its own)", worker_rounds)


if __name__ == "__main__":
    sys.exit(main())

"""Blocks run in forked children of a process warmed up as `canvas worker --worker-class fork` warms up, one child
after the other, as a forking worker runs its jobs: for tests/integration/test_forked_block_libraries.py and
benchmarks/forked_block_runs.py. Run in a fresh interpreter, so that nothing the caller imported counts:

    python -m tests.integration.blocks.forked_runs < order.json

The order: {"preload": bool (Block.preload before forking, as the worker does), "work": a directory, "runs": N,
"steps": [{"key", "credentials", "variables"?, "file"?: [name, text]}]}. Prints one JSON line: a list of N answers,
each {"imported": the modules the child imported, "outputs": {key: records or null}, "cpu_seconds": the child's
user + system time, "wall_seconds"}, or {"error": ...} for a child whose steps failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from canvas.execution.data import Records
from tests.integration.blocks.net_support import file_of, run_block
from tests.servers.http import respond

ROOT = Path(__file__).resolve().parents[3]


def network_steps(sftp_server, postgres_url: str, ftp_server, smtp_server, http_server) -> list[dict]:  # noqa: ANN001
    """A block of each network kind, against the servers: each run writes the same files again (overwrite)."""
    http_server.route("/api/items", respond([{"id": 1}]))
    return [
        {"key": "sftp.upload", "credentials": sftp_server.credentials(), "file": ["by-sftp.txt", "from a child"],
         "variables": {"overwrite": True}},
        {"key": "sql.query", "credentials": {"url": postgres_url}, "variables": {"query": "SELECT 1 AS one"}},
        {"key": "ftp.upload", "credentials": ftp_server.credentials(), "file": ["by-ftp.txt", "from a child"],
         "variables": {"overwrite": True}},
        {"key": "email.send", "credentials": smtp_server.credentials(fromAddress="canvas@example.com"),
         "variables": {"to": "ann@example.com", "subject": "From a child"}, "file": ["note.txt", "hello"]},
        {"key": "http.get", "credentials": {"baseUrl": http_server.url("/api"), "authType": "none"},
         "variables": {"path": "/items"}},
    ]


def forked_runs(steps: list[dict], work: Path, preload: bool, runs: int, env: dict[str, str]) -> list[dict]:
    """The answers of `runs` forked children of a fresh interpreter (this module's main) that ran `steps`."""
    order = {"preload": preload, "work": str(work), "runs": runs, "steps": steps}
    done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(order), env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)  # __name__: this module, as its importers name it
    if done.returncode != 0:
        raise RuntimeError(f"the forking process failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warmed_up(preload: bool) -> None:
    import canvas.execution.registry
    from workers import process_app
    from workers.worker import _warm_up

    if not preload:
        canvas.execution.registry.preload_block_libraries = lambda: None
    app = process_app()
    with app.app_context():
        _warm_up(app.extensions["canvas"])


def run_steps(steps: list[dict], work: Path) -> dict:
    outputs = {}
    for step in steps:
        data = file_of(step["file"][0], step["file"][1].encode()) if "file" in step else None
        output = run_block(step["key"], work, credentials=step["credentials"], variables=step.get("variables"),
                           data=data)
        outputs[step["key"]] = list(output) if isinstance(output, Records) else None
    return outputs


def in_a_child(steps: list[dict], work: Path) -> dict:
    before = set(sys.modules)
    reading, writing = os.pipe()
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            answer = {"outputs": run_steps(steps, work), "imported": sorted(set(sys.modules) - before)}
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            answer = {"error": repr(error)}
        os.write(writing, json.dumps(answer).encode())
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        answer = json.load(pipe)
    _, _, usage = os.wait4(pid, 0)
    return {**answer, "cpu_seconds": usage.ru_utime + usage.ru_stime, "wall_seconds": time.perf_counter() - began}


def main() -> None:
    order = json.load(sys.stdin)
    warmed_up(order["preload"])
    work = Path(order["work"])
    print(json.dumps([in_a_child(order["steps"], work) for _ in range(order["runs"])]))


if __name__ == "__main__":
    main()

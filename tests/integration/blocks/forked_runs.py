"""Blocks run in forked children of a process warmed up as `canvas worker --worker-class fork` warms up, one child
after the other, as a forking worker runs its jobs: for tests/integration/test_forked_block_libraries.py and
benchmarks/forked_block_runs.py. Run in a fresh interpreter, so that nothing the caller imported counts:

    python -m tests.integration.blocks.forked_runs < order.json

The order: {"preload": bool (Block.preload before forking, as the worker does), "work": a directory, "runs": N,
"steps": [{"key", "credentials", "variables"?, "file"?: [name, text]}]}. Prints one JSON line: a list of N answers,
each {"imported": the modules the child imported, "trust_stores": the CA files it loaded into TLS contexts,
"outputs": {key: records or null}, "cpu_seconds": the child's user + system time, "wall_seconds"}, or {"error": ...}
for a child whose steps failed. The steps run under the worker's network policy (its CANVAS_ settings).
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from canvas.execution.data import Records
from canvas.network.guard import NetworkPolicy
from tests.integration.blocks.net_support import file_of, run_block
from tests.process_tools import canvas_env
from tests.servers.http import respond

ROOT = Path(__file__).resolve().parents[3]


def network_steps(sftp_server, postgres_url: str, ftp_server, smtp_server, https_server) -> list[dict]:  # noqa: ANN001
    """A block of each network kind, against the servers: each run writes the same files again (overwrite). The
    HTTPS server's CA must be the worker's CANVAS_TLS_CA_FILE."""
    https_server.route("/api/items", respond([{"id": 1}]))
    return [
        {"key": "sftp.upload", "credentials": sftp_server.credentials(), "file": ["by-sftp.txt", "from a child"],
         "variables": {"overwrite": True}},
        {"key": "sql.query", "credentials": {"url": postgres_url}, "variables": {"query": "SELECT 1 AS one"}},
        {"key": "ftp.upload", "credentials": ftp_server.credentials(), "file": ["by-ftp.txt", "from a child"],
         "variables": {"overwrite": True}},
        {"key": "email.send", "credentials": smtp_server.credentials(fromAddress="canvas@example.com"),
         "variables": {"to": "ann@example.com", "subject": "From a child"}, "file": ["note.txt", "hello"]},
        {"key": "http.get", "credentials": {"baseUrl": https_server.url("/api"), "authType": "none"},
         "variables": {"path": "/items"}},
    ]


def forked_runs(steps: list[dict], work: Path, preload: bool, runs: int, ca_file: Path) -> list[dict]:
    """The answers of `runs` forked children of a fresh interpreter (this module's main) that ran `steps`, on
    embedded defaults under `work`, with loopback allowed and `ca_file` trusted."""
    known_hosts = work / "known_hosts"
    known_hosts.write_text("")  # the pinned hostKey decides, never the user's own known_hosts
    env = canvas_env(work / "data", CANVAS_SSH_KNOWN_HOSTS_FILE=str(known_hosts), CANVAS_TLS_CA_FILE=str(ca_file),
                     CANVAS_ALLOW_PRIVATE_NETWORKS="127.0.0.0/8")
    order = {"preload": preload, "work": str(work), "runs": runs, "steps": steps}
    done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(order), env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)  # __name__: this module, as its importers name it
    if done.returncode != 0:
        raise RuntimeError(f"the forking process failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warmed_up(preload: bool) -> NetworkPolicy:
    """The worker's network policy (CANVAS_ALLOW_PRIVATE_NETWORKS, CANVAS_TLS_CA_FILE), as its runs get it."""
    import canvas.execution.registry
    from workers import process_app
    from workers.worker import _warm_up

    if not preload:
        canvas.execution.registry.preload_block_libraries = lambda: None
    app = process_app()
    with app.app_context():
        _warm_up(app.extensions["canvas"])
    return app.extensions["canvas"].network_policy


def run_steps(steps: list[dict], work: Path, policy: NetworkPolicy) -> dict:
    outputs = {}
    for step in steps:
        data = file_of(step["file"][0], step["file"][1].encode()) if "file" in step else None
        output = run_block(step["key"], work, credentials=step["credentials"], variables=step.get("variables"),
                           data=data, policy=policy)
        outputs[step["key"]] = list(output) if isinstance(output, Records) else None
    return outputs


def counting_trust_store_loads(patch: Callable[[object, str, object], None] = setattr) -> list[str]:
    """The CA files loaded into TLS contexts from now on, in this process: it counts, then loads. `patch` puts the
    counter in place (a test's monkeypatch.setattr takes it away again)."""
    loaded: list[str] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(context, cafile=None, *args, **kwargs):  # noqa: ANN001
        loaded.append(str(cafile))
        return load(context, cafile, *args, **kwargs)

    patch(ssl.SSLContext, "load_verify_locations", counted)
    return loaded


def in_a_child(steps: list[dict], work: Path, policy: NetworkPolicy) -> dict:
    before = set(sys.modules)
    reading, writing = os.pipe()
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            loaded = counting_trust_store_loads()
            outputs = run_steps(steps, work, policy)
            answer = {"outputs": outputs, "imported": sorted(set(sys.modules) - before), "trust_stores": loaded}
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
    policy = warmed_up(order["preload"])
    work = Path(order["work"])
    print(json.dumps([in_a_child(order["steps"], work, policy) for _ in range(order["runs"])]))


if __name__ == "__main__":
    main()

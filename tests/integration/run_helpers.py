"""Helpers for run tests: workflows built from local blocks, and real RQ workers (in-process or subprocess)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from rq import Queue

from canvas.execution.runner import Runner
from canvas.models import Workflow
from canvas.queueing.keys import RUN_QUEUE
from canvas.queueing.worker import CanvasSimpleWorker, RunQueue
from canvas.settings import redis_url
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template
from tests.process_tools import stop_gracefully

B1, B2, B3, B4 = (str(uuid.UUID(int=n)) for n in (0x101, 0x102, 0x103, 0x104))
RECORDS = [{"id": 1, "name": "Ann", "city": "Oslo"}, {"id": 2, "name": "Bo", "city": "Bergen"},
           {"id": 3, "name": "Cy", "city": "Oslo"}]


def chain_template(blocks: list[tuple[str, str, dict]], applications: list[str] | None = None) -> dict:
    ids = [B1, B2, B3, B4]
    return {"name": "Run test", "description": "", "applications": applications or [],
            "chain": [{"uniqueBlockId": ids[index], "blockName": name, "block": key, "variables": variables,
                       **({"application": "CMAF"} if key.startswith("filehub") and applications else {})}
                      for index, (name, key, variables) in enumerate(blocks)]}


THREE_BLOCKS = [
    ("Records", "records.from_variable", {"records": RECORDS}),
    ("Only Oslo", "jsonata.filter", {"condition": "city = 'Oslo'"}),
    ("To CSV", "csv.from_records", {"filename": "people_{runId}.csv"}),
]


def make_workflow(client, headers, blocks=None, applications=None) -> str:
    template_id = published_template(client, headers, chain_template(blocks or THREE_BLOCKS, applications))
    body = {"workflowTemplateId": template_id, "applications": {}}
    if applications:
        return new_workflow(client, headers, template_id, file_hub_app(client, headers))
    answer = client.post("/api/Workflow", json=body, headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


def run(client, headers, workflow_id: str, **extra):
    return client.post("/api/RunWorkflow", json={"workflowId": workflow_id, **extra}, headers=headers)


def rq_connection(app) -> Redis:
    return Redis.from_url(redis_url(app.config["CANVAS_SETTINGS"]))


def work_off(app) -> None:
    """The platform's simple worker (RQ's SimpleWorker with the platform's handling), in this process, until the
    queue is empty."""
    connection = rq_connection(app)
    with app.app_context():
        CanvasSimpleWorker([RunQueue(RUN_QUEUE, connection=connection)], connection=connection).work(burst=True)


def run_and_work(client, app, headers, workflow_id: str, **extra) -> dict:
    answer = run(client, headers, workflow_id, **extra)
    assert answer.status_code == 202, answer.json
    work_off(app)
    return client.get(answer.headers["Location"], headers=headers).json


def empty_queue(app) -> None:
    """The jobs waiting, and those a worker took without starting them (RQ's intermediate list)."""
    queue = Queue(RUN_QUEUE, connection=rq_connection(app))
    queue.empty()
    queue.connection.delete(queue.intermediate_queue_key)


def worker_env(settings: dict) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CANVAS_")}
    env.update({"CANVAS_DATA_DIR": settings["DATA_DIR"], "CANVAS_DATABASE_URL": settings["DATABASE_URL"],
                "CANVAS_REDIS_URL": redis_url(settings), "CANVAS_REDIS_PREFIX": settings["REDIS_PREFIX"],
                "CANVAS_SECRET_KEYS": settings["SECRET_KEYS"], "CANVAS_ALLOW_PRIVATE_NETWORKS": "true",
                "CANVAS_LOST_RUN_GRACE_SECONDS": "6", "CANVAS_LEASE_RENEW_SECONDS": "1",
                "CANVAS_REAPER_INTERVAL_SECONDS": "1", "CANVAS_RECONNECT_MAX_SECONDS": "2"})
    return env


def start_worker(settings: dict, log_path: Path, *extra: str, env: dict | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """A `canvas worker` in a process group of its own: with --worker-class fork it forks its job children (with
    --with-rq-scheduler, RQ's scheduler), which must go with it. `env` adds to its environment (CANVAS_ settings);
    `preexec_fn` runs in the child before it starts (a resource limit, say)."""
    with open(log_path, "ab") as log:  # the child writes to its own copy
        return subprocess.Popen([sys.executable, "-m", "canvas", "worker", *extra],
                                env={**worker_env(settings), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=preexec_fn)


def kill_worker(process: subprocess.Popen) -> None:
    """As a lost machine would: every process of the worker dies at once."""
    _signal_group(process, signal.SIGKILL)
    process.wait(10)


def stop_worker(process: subprocess.Popen) -> None:
    stop_gracefully(process, 30)
    _signal_group(process, signal.SIGKILL)  # whatever the worker left behind in its group


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def in_a_thread(app, work: Callable[[Runner], str]) -> tuple[threading.Thread, dict]:
    """A runner's `work` (run a run, or a block for another worker's run) in a thread of its own, as a worker
    would; the outcome's "result" is what it returned."""
    outcome: dict = {}

    def execute() -> None:
        with app.app_context():
            outcome["result"] = work(Runner(app.extensions["canvas"]))

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")


def rq_worker(redis_url: str, label: str) -> CanvasSimpleWorker:
    """A platform worker (not started) on a queue of its own, over a client of its own, both named `label-…`."""
    from canvas.queueing.connections import redis_client

    connection = redis_client(redis_url)
    queue = RunQueue(f"{label}-{uuid.uuid4().hex[:8]}", connection=connection)
    return CanvasSimpleWorker([queue], connection=connection, name=f"{label}-{uuid.uuid4().hex[:8]}")


def block_id(number: int) -> str:
    return str(uuid.UUID(int=0x900 + number))


def node(name: str, key: str, variables: dict | None = None, inputs: list | None = None) -> dict:
    """A chain entry of a graph; `inputs`: (parent number, {"inputMapper"/"inputCondition": ...}) pairs."""
    entry = {"blockName": name, "block": key, "application": None, "variables": variables or {}}
    if inputs is not None:
        entry["inputs"] = [{"from": block_id(parent), **settings} for parent, settings in inputs]
    return entry


def graph_workflow(client, app, headers, nodes: list[dict], policy: str = "failFast") -> str:
    """A workflow whose chain is the given graph (written straight to its row: the engine is under test here;
    the dialects' and the catalog's graph validation have their own tests)."""
    workflow_id = make_workflow(client, headers, blocks=[("Start", "noop", {})])
    chain = [{"uniqueBlockId": block_id(number), **entry} for number, entry in enumerate(nodes, start=1)]
    with app.extensions["canvas"].db.transaction() as session:
        workflow = session.get(Workflow, uuid.UUID(workflow_id))
        workflow.chain, workflow.failure_policy = chain, policy
    return workflow_id

"""Several machines sharing one S3-compatible blob store: `canvas api` and two `canvas worker`s as real processes,
each with a data directory of its own (nothing shared on disk), on PostgreSQL, a Redis of the test's own and an S3
server on loopback (moto's standalone server). Whatever one process stored, another one reads."""
from __future__ import annotations

import base64
import json
import signal
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select

from canvas.models.run import WorkflowRun
from tests.api.workflow_helpers import FILE_HUB_APP
from tests.e2e.http_api import Api
from tests.integration.run_helpers import RECORDS, stop_worker, wait_for
from tests.process_tools import (
    canvas_env,
    free_port,
    one_error_line,
    run_canvas,
    start_canvas,
    wait_for_http,
)

pytestmark = pytest.mark.slow

PREFIX = "deployment/blobs"


@pytest.fixture
def cluster(tmp_path, postgres_database_url, own_redis, s3_environment):
    """Starts processes on demand (`start(name, *args)`), each with its own data directory; stops them all."""
    bucket = s3_environment.create_bucket()
    shared = {"CANVAS_DATABASE_URL": postgres_database_url, "CANVAS_REDIS_URL": own_redis.url,
              "CANVAS_REDIS_PREFIX": f"mm-{uuid.uuid4().hex[:8]}",
              "CANVAS_SECRET_KEYS": base64.urlsafe_b64encode(b"k" * 32).decode(),
              "CANVAS_BLOB_URL": f"s3://{bucket}/{PREFIX}", "CANVAS_S3_ENDPOINT_URL": s3_environment.endpoint_url,
              "CANVAS_ALLOW_PRIVATE_NETWORKS": "true", "CANVAS_API_WORKERS": "2"}
    processes: dict[str, object] = {}

    class Cluster:
        s3 = s3_environment

        def env(self, name: str, **extra: str) -> dict:
            return canvas_env(tmp_path / name, **shared, **extra)

        def start(self, name: str, *args: str):
            process = start_canvas(*args, env=self.env(name), log_path=tmp_path / f"{name}.log")
            processes[name] = process
            return process

        def stop(self, name: str) -> None:
            stop_worker(processes[name])

        def objects(self) -> list[str]:
            listed = s3_environment.client().list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/")
            return sorted(item["Key"][len(PREFIX) + 1:] for item in listed.get("Contents", ()))

        def log(self, name: str) -> str:
            return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    cluster = Cluster()
    cluster.bucket = bucket
    try:
        yield cluster
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            stop_worker(process)


def worker_of(database_url: str, run_id: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(WorkflowRun.worker_name).where(WorkflowRun.id == uuid.UUID(run_id)))
    finally:
        engine.dispose()


def test_api_and_two_workers_with_their_own_data_directories_share_the_s3_store(cluster, postgres_database_url):
    port = free_port()
    api_process = cluster.start("api", "api", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/healthz", api_process)
    email = f"admin-{uuid.uuid4().hex[:8]}@multi.test"
    created = run_canvas("org", "create", "--name", "Multi", "--admin-email", email, "--json",
                         env=cluster.env("cli"))
    assert created.returncode == 0, created.stderr
    api = Api(base, json.loads(created.stdout), email)
    registered = api.post("/api/RegApplication", {"applicationId": FILE_HUB_APP, "credentialsJson": "{}"}).json()

    # Worker A alone: blocks 1..2, and a File Hub file.
    cluster.start("worker-a", "worker", "--name", "worker-a")
    three = api.workflow([("Records", "records.from_variable", {"records": RECORDS}),
                          ("Only Oslo", "jsonata.filter", {"condition": "city = 'Oslo'"}),
                          ("Store", "filehub.write", {"filename": "shared/oslo.jsonl"})], registered)
    first = api.run(three, runTillBlock=2)
    assert first["status"] == "Succeeded", (first, cluster.log("worker-a"))
    assert worker_of(postgres_database_url, first["id"]) == "worker-a"
    written = api.run(three)
    assert written["status"] == "Succeeded", written
    cluster.stop("worker-a")

    # The API (never ran a block) serves the output worker A stored.
    output = api.get(f"/api/WorkflowRun/{first['id']}/Block/2/Output")
    assert output.status_code == 200, output.text
    assert [json.loads(line)["name"] for line in output.text.splitlines()] == ["Ann", "Cy"]

    # Worker B alone: runFromBlock 3 reads block 2's output that worker A stored.
    cluster.start("worker-b", "worker", "--name", "worker-b")
    resumed = api.run(three, runFromBlock=3)
    assert resumed["status"] == "Succeeded", (resumed, cluster.log("worker-b"))
    assert worker_of(postgres_database_url, resumed["id"]) == "worker-b"

    # File Hub: the file worker A wrote, read by worker B.
    reader = api.workflow([("Read", "filehub.read", {"filename": "shared/oslo.jsonl"})], registered)
    read = api.run(reader)
    assert read["status"] == "Succeeded", (read, cluster.log("worker-b"))
    assert worker_of(postgres_database_url, read["id"]) == "worker-b"
    content = api.get(f"/api/WorkflowRun/{read['id']}/Block/1/Output")
    assert [json.loads(line)["name"] for line in content.text.splitlines()] == ["Ann", "Cy"]

    # A webhook body received by the API, consumed by worker B.
    graph = {"nodes": [{"id": "in", "command": "jsonata.transform", "fields": {"expression": "$"}},
                       {"id": "out", "command": "filehub.write", "credentials_id": registered,
                        "fields": {"filename": "hook_{runId}.jsonl"}}],
             "edges": [{"source": "in", "target": "out"}]}
    flow = api.v2("/v2/flows", {"data": {"type": "flow", "attributes": {"name": "Hooked", "type": "ordinary",
                                                                         "graph": graph}}})
    hook = api.v2(f"/v2/flows/{flow['id']}/webhooks", {"data": {"type": "webhook", "attributes": {"hmac": None}}})
    url = hook["attributes"]["url"]
    called = requests.post(base + url[url.index("/v2/hooks/"):], json=[{"id": 1}, {"id": 2}, {"id": 3}], timeout=30)
    assert called.status_code == 202, called.text
    execution = called.json()["data"]["id"]

    def hook_done():
        state = api.get(f"/v2/executions/{execution}", v2=True).json()["data"]["attributes"]
        return state if state["status"] not in ("queued", "running") else None

    done = wait_for(hook_done, timeout=40, interval=0.3, what="the webhook's run")
    assert done["status"] == "succeeded", (done, cluster.log("worker-b"))
    assert done["steps"][0]["records_out"] == 3
    assert not any(path.startswith("blobs") for path in _files(cluster))  # nothing went to a local blob folder

    # Retention deletes objects from the bucket (block outputs beyond the newest one per block).
    before = [key for key in cluster.objects() if key.startswith("runs/")]
    pruned = run_canvas("outputs", "prune", env=cluster.env("cli", CANVAS_OUTPUT_RETENTION_RUNS="1"))
    assert pruned.returncode == 0, pruned.stderr
    after = [key for key in cluster.objects() if key.startswith("runs/")]
    assert set(after) < set(before), (before, after)
    assert any(key.startswith("filehub/") for key in cluster.objects())  # File Hub files are not outputs
    assert api.get(f"/api/WorkflowRun/{first['id']}/Block/2/Output").status_code in (404, 410)

    # The bucket goes away under a running worker: the run's error says what is wrong.
    client = cluster.s3.client()
    for key in client.list_objects_v2(Bucket=cluster.bucket).get("Contents", ()):
        client.delete_object(Bucket=cluster.bucket, Key=key["Key"])
    client.delete_bucket(Bucket=cluster.bucket)
    failed = api.run(three, runTillBlock=1)
    assert failed["status"] == "Failed", failed
    assert failed["error"].startswith("CANVAS_BLOB_URL: bucket") and "does not exist" in failed["error"], failed
    assert "BlobStoreError" not in failed["error"]  # words, not a class name


def _files(cluster) -> list[str]:
    """Every file below the processes' data directories, relative to each one."""
    root = Path(cluster.env("api")["CANVAS_DATA_DIR"]).parent
    return [path.relative_to(directory).as_posix() for directory in root.iterdir() if directory.is_dir()
            for path in directory.rglob("*") if path.is_file()]


@pytest.mark.parametrize("command", ["worker", "api", "scheduler", "up"])
def test_a_process_with_a_missing_bucket_refuses_to_start_with_one_line(tmp_path, s3_environment, command):
    env = canvas_env(tmp_path / "data", CANVAS_BLOB_URL="s3://no-such-bucket/blobs",
                     CANVAS_S3_ENDPOINT_URL=s3_environment.endpoint_url)
    error = one_error_line(run_canvas(command, env=env))
    assert "no-such-bucket" in error and "does not exist" in error, error

"""One organization's admin on a real `canvas api` or `canvas up`, over real HTTP, in both dialects."""
from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.integration.run_helpers import chain_template, wait_for
from tests.process_tools import canvas_env, free_port, start_canvas, wait_for_http


@contextlib.contextmanager
def api_serving(app, log_path: Path, **env: str) -> Iterator[str]:  # noqa: ANN001 - the test's Flask app
    """A `canvas api` process on the test app's database, Redis, keys and data dir (`env`: CANVAS_ settings that
    differ), serving over HTTP; its base URL."""
    settings = app.config["CANVAS_SETTINGS"]
    environment = canvas_env(settings["DATA_DIR"], **{
        "CANVAS_DATABASE_URL": settings["DATABASE_URL"], "CANVAS_REDIS_URL": settings["REDIS_URL"],
        "CANVAS_REDIS_PREFIX": settings["REDIS_PREFIX"], "CANVAS_SECRET_KEYS": settings["SECRET_KEYS"],
        "CANVAS_API_WORKERS": "1", **env})
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=environment, log_path=log_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(60)


class Api:
    """The API over real HTTP, as one organization's admin."""

    def __init__(self, base: str, keys: dict, email: str):
        self.base = base
        self.headers = {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]}
        token = base64.b64encode(f"{email}:{keys['secretKey']}".encode()).decode()
        self.v2_headers = {"Authorization": f"Basic {token}", "Accept": "application/vnd.api+json"}

    def post(self, path: str, body, status: int = 200):
        answer = requests.post(self.base + path, json=body, headers=self.headers, timeout=30)
        assert answer.status_code == status, answer.text
        return answer

    def get(self, path: str, v2: bool = False):
        return requests.get(self.base + path, headers=self.v2_headers if v2 else self.headers, timeout=30)

    def v2(self, path: str, body):
        answer = requests.post(self.base + path, json=body, headers=self.v2_headers, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()["data"]

    def workflow(self, blocks, registered_app: str) -> str:
        template = self.post("/api/WorkflowTemplate", chain_template(blocks, ["CMAF"])).json()
        self.post("/api/PublishWorkflowTemplate", {"id": template, "version": None})
        return self.post("/api/Workflow", {"workflowTemplateId": template,
                                           "applications": {"CMAF": registered_app}}).json()

    def run(self, workflow_id: str, **extra) -> dict:
        """Starts a run and waits until it has ended."""
        location = self.post("/api/RunWorkflow", {"workflowId": workflow_id, **extra}, status=202).headers["Location"]

        def ended():
            state = self.get(location).json()
            return state if state["status"] not in ("Queued", "Running") else None

        return wait_for(ended, timeout=40, interval=0.3, what=f"the end of {location}")

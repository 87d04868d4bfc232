"""schemathesis against a real `canvas api` process: for every operation of /openapi.json, in both dialects, a fixed
number of derandomized examples; each answer must be no 5xx and must match the document (status, content type,
body schema)."""
from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.process_tools import (
    canvas_env,
    free_port,
    run_canvas,
    start_canvas,
    wait_for_http,
)

pytestmark = pytest.mark.slow

# Small and fixed, so that the whole run takes a few minutes on a 2-core machine and fails the same way every time
EXAMPLES_PER_OPERATION = int(os.environ.get("CANVAS_TEST_OPENAPI_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture()
def canvas_api(tmp_path, request):
    """A real `canvas api` on a free port with its own data dir; on the suite's PostgreSQL when there is one."""
    extra = {"CANVAS_API_WORKERS": "2"}
    if os.environ.get("CANVAS_TEST_DATABASE_URL"):
        extra["CANVAS_DATABASE_URL"] = request.getfixturevalue("migrated_database")
    env = canvas_env(tmp_path / "data", **extra)
    port = free_port()
    process = start_canvas("api", "--port", str(port), env=env, log_path=tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", process)
        yield base, env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


@pytest.fixture()
def credentials(canvas_api) -> dict:
    _, env = canvas_api
    email = f"admin-{uuid.uuid4().hex[:8]}@conformance.test"
    created = run_canvas("org", "create", "--name", "Conformance", "--admin-email", email, "--json", env=env)
    assert created.returncode == 0, created.stderr
    keys = json.loads(created.stdout)
    basic = base64.b64encode(f"{email}:{keys['secretKey']}".encode()).decode()
    return {"/api/": {"Consumer": keys["consumer"], "SecretKey": keys["secretKey"]},
            "/v2/": {"Authorization": f"Basic {basic}"}}


def headers_for(path: str, credentials: dict) -> dict:
    return next(headers for prefix, headers in credentials.items() if path.startswith(prefix))


def check_operation(operation, base: str, headers: dict) -> None:  # noqa: ANN001 - schemathesis APIOperation
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=operation.as_strategy())
    def conforms(case) -> None:  # noqa: ANN001
        case.headers = {**(case.headers or {}), **headers}
        case.call_and_validate(base_url=base, checks=CHECKS, timeout=30)

    conforms()


def test_every_answer_of_both_dialects_matches_the_openapi_document(canvas_api, credentials):
    base, _ = canvas_api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures, tested, started = [], 0, time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        tested += 1
        try:
            check_operation(operation, base, headers_for(operation.path, credentials))
        except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - check them all, report every failure
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    print(f"schemathesis: {tested} operations, up to {EXAMPLES_PER_OPERATION} examples each, "
          f"{time.monotonic() - started:.0f} s")
    assert tested >= 80
    assert not failures, "\n\n".join(failures)

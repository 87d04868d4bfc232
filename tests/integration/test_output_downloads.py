"""Every stream a download opens on the blob store is closed once the answer is, however it ends: a GET that sends
the body, and a HEAD that sends none (a generator that never starts never runs its own cleanup; on S3 an unclosed
stream holds an HTTP connection)."""
from __future__ import annotations

import pytest

from tests.integration.run_helpers import THREE_BLOCKS, make_workflow, run_and_work
from tests.integration.test_record_errors import (
    picky_workflow,
    picky_write,  # noqa: F401 - a fixture this module uses
)

pytestmark = pytest.mark.usefixtures("clean_run_queue", "picky_write")


@pytest.fixture
def opened(services, monkeypatch) -> list:
    """The streams the blob store opens, as it opens them."""
    streams, open_stream = [], services.blob_store.open

    def recording_open(key: str):  # noqa: ANN202
        stream = open_stream(key)
        streams.append(stream)
        return stream

    monkeypatch.setattr(services.blob_store, "open", recording_open)
    return streams


def downloads(client, app, headers) -> dict[str, str]:  # noqa: ANN001
    """The download paths of a file output, a records output, an error output and a retry's error output."""
    files = run_and_work(client, app, headers, make_workflow(client, headers, THREE_BLOCKS))
    workflow_id = picky_workflow(client, headers, "continue")
    first = run_and_work(client, app, headers, workflow_id)
    retry = run_and_work(client, app, headers, workflow_id, retryFailedRecords={
        "runId": first["id"], "block": 2, "records": [{"position": 2, "record": {"id": 2, "price": 1}}]})
    assert retry["recordsFailed"] == 1, retry
    return {"file": f"/api/WorkflowRun/{files['id']}/Block/3/Output",
            "records": f"/api/WorkflowRun/{first['id']}/Block/2/Output",
            "errors": f"/api/WorkflowRun/{first['id']}/Block/2/Errors",
            "retried errors": f"/api/WorkflowRun/{retry['id']}/Block/2/Errors"}


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_download_closes_the_one_stream_it_opens(app, client, org, opened, method):
    for what, path in downloads(client, app, org.admin_headers).items():
        opened.clear()
        answer = client.open(path, method=method, headers=org.admin_headers, buffered=True)
        assert answer.status_code == 200, (what, answer.status_code)
        assert answer.headers["Content-Disposition" if what != "records" else "Content-Type"]
        assert len(opened) == 1, (what, opened)
        assert opened[0].closed, f"{what}: the stream is left open after a {method}"


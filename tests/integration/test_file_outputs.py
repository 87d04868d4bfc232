"""Files between blocks are linked, not copied: a file a block passes on, or writes to the File Hub, becomes a new
name for the same stored bytes (no second copy on disk), and stays intact when the first name goes."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from canvas.execution.data import FileData
from canvas.models import BlockOutput
from canvas.storage.blob import FileHub
from tests.integration.run_helpers import THREE_BLOCKS, make_workflow, run_and_work

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def output_paths(app, run_id: str) -> list:
    services = app.extensions["canvas"]
    with services.db.sessions() as session:
        keys = session.scalars(select(BlockOutput.blob_key).where(BlockOutput.run_id == uuid.UUID(run_id))
                               .order_by(BlockOutput.number)).all()
    return [services.blob_store.path_for(key) for key in keys]


def test_a_file_passed_on_unchanged_is_stored_once(client, app, org):
    blocks = [THREE_BLOCKS[0], ("To CSV", "csv.from_records", {"filename": "people.csv"}), ("Pass", "noop", {})]
    workflow_id = make_workflow(client, org.admin_headers, blocks)
    finished = run_and_work(client, app, org.admin_headers, workflow_id)
    assert finished["status"] == "Succeeded", finished["error"]
    _, csv_blob, passed_blob = output_paths(app, finished["id"])
    assert csv_blob.stat().st_ino == passed_blob.stat().st_ino  # one file, two names
    assert finished["blocks"][1]["output"]["sha256"] == finished["blocks"][2]["output"]["sha256"]
    expected = csv_blob.read_bytes()
    csv_blob.unlink()  # as retention would remove the older output
    third = client.get(f"/api/WorkflowRun/{finished['id']}/Block/3/Output", headers=org.admin_headers)
    assert third.status_code == 200 and third.data == expected and expected.startswith(b"id,name,city")


def test_writing_a_stored_file_to_the_file_hub_links_it(app, tmp_path):
    store = app.extensions["canvas"].blob_store
    stored = store.put("runs/test/file-hub-link.out", lambda sink: sink.write(b"a,b\n1,2\n"))
    source = FileData("report.csv", "text/csv", lambda: store.open(stored.key), store.local_path(stored.key))
    hub = FileHub(store, "acct-link")
    written = hub.write("reports/report.csv", source)
    assert written.sha256 == stored.sha256
    assert store.path_for(written.key).stat().st_ino == store.path_for(stored.key).stat().st_ino
    hub.write("reports/report.csv", FileData.from_bytes("report.csv", "text/csv", b"new"))  # replaced by rename
    assert store.path_for(stored.key).read_bytes() == b"a,b\n1,2\n"  # the other name keeps the old bytes
    assert hub.open("reports/report.csv").read_bytes() == b"new"

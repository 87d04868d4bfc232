"""Retention never deletes a block's latest successful output, which partial runs depend on."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from canvas.execution.data import TEMP_FILE_PREFIX, FileData
from canvas.execution.retention import prune_outputs, prune_temp_files
from canvas.models import BlockOutput
from canvas.storage.blob import TEMP_PREFIX, FileHub, FileSystemBlobStore
from tests.integration.run_helpers import make_workflow, run, run_and_work

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def count_outputs(app) -> int:
    with app.extensions["canvas"].db.sessions() as session:
        return session.scalar(select(func.count()).select_from(BlockOutput))


def test_prune_keeps_the_latest_output_of_every_block(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    for _ in range(3):
        run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=2)
    run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=2, dryRun=True)
    assert count_outputs(app) == 8
    services = app.extensions["canvas"]
    with services.db.transaction() as session:  # everything is old now
        for output in session.scalars(select(BlockOutput)):
            output.date_created -= timedelta(days=400)
    store = FileSystemBlobStore(services.data_dir / "blobs")
    report = prune_outputs(services.db, store, max_age_days=30, keep_per_block=10)
    assert report.outputs_deleted == 6 and report.bytes_freed > 0
    assert count_outputs(app) == 2
    # The kept outputs are the newest real ones: a partial run still starts from block 2's.
    assert run(client, org.admin_headers, workflow_id, runFromBlock=3).status_code == 202


def test_prune_by_count_keeps_the_newest(client, app, org):
    workflow_id = make_workflow(client, org.admin_headers)
    for _ in range(4):
        run_and_work(client, app, org.admin_headers, workflow_id, runTillBlock=1)
    services = app.extensions["canvas"]
    store = FileSystemBlobStore(services.data_dir / "blobs")
    report = prune_outputs(services.db, store, max_age_days=365, keep_per_block=2)
    assert report.outputs_deleted == 2 and count_outputs(app) == 2


def test_stale_temporary_files_go_and_file_hub_files_stay_whatever_their_names(tmp_path):
    blobs, temp = tmp_path / "blobs", tmp_path / "tmp"
    hub = FileHub(FileSystemBlobStore(blobs), "acct-1")
    hub.write("canvas-block-report.csv", FileData.from_bytes("r.csv", "text/csv", b"a,b\n"))  # a user's name
    stale = [blobs / "runs" / "wf" / f"{TEMP_PREFIX}0123", temp / f"{TEMP_FILE_PREFIX}1.csv"]
    fresh = temp / f"{TEMP_FILE_PREFIX}2.csv"
    for path in [*stale, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    day_old = time.time() - 2 * 24 * 3600
    for path in [*stale, blobs / "filehub" / "acct-1" / "canvas-block-report.csv"]:
        os.utime(path, (day_old, day_old))
    deleted = prune_temp_files([(blobs, TEMP_PREFIX), (temp, TEMP_FILE_PREFIX)])
    assert deleted == 2 and not any(path.exists() for path in stale) and fresh.exists()
    assert hub.list() == ["canvas-block-report.csv"]

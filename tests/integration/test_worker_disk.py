"""A worker whose disk refuses a block's temporary file (full, over quota, a file-size limit): the block and the run
fail with what happened and what to do, the worker logs the path without a traceback and carries on."""
from __future__ import annotations

import resource

import pytest

from tests.conftest import Org
from tests.integration.run_helpers import make_workflow, run, start_worker, wait_for

pytestmark = pytest.mark.slow
FILE_SIZE_LIMIT = 512 * 1024  # RLIMIT_FSIZE: the kernel answers EFBIG past it, as a full disk answers ENOSPC
# Block 1's output (JSON lines, ~36 bytes a record) stays under the limit; block 2's XML file (~75) goes past it.
RECORDS = [{"a_long_field_name_for_xml": number} for number in range(10_000)]


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, resource.RLIM_INFINITY))


def test_a_temporary_file_the_disk_refuses_fails_the_block_in_words(postgres_database_url, make_app, tmp_path):
    app = make_app(DATABASE_URL=postgres_database_url)  # the database's files are the server's, not the worker's
    client, org = app.test_client(), Org(app, "Disk")
    workflow_id = make_workflow(client, org.admin_headers, [("Records", "records.from_variable", {"records": RECORDS}),
                                                            ("To XML", "xml.from_records", {})])
    answer = run(client, org.admin_headers, workflow_id)
    assert answer.status_code == 202, answer.json
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, "--burst", preexec_fn=limit_file_size)
    exit_code = worker.wait(120)
    logged = log_path.read_text()
    assert exit_code == 0, logged
    finished = wait_for(lambda: (body := client.get(answer.headers["Location"], headers=org.admin_headers).json)
                        ["status"] in ("Succeeded", "Failed") and body, what="the run's end")
    said = ("the worker could not write to its disk while running block 2 (File too large): free space on the "
            "worker's disk (its data directory) and run the block again")
    assert finished["status"] == "Failed" and finished["error"] == said, finished
    assert [(block["status"], block["error"]) for block in finished["blocks"]] == [("Succeeded", None),
                                                                                   ("Failed", said)]
    assert "Traceback" not in logged and "unexpected error" not in logged, logged
    assert f"{said} ([Errno 27] File too large" in logged, logged  # the path follows, for the operator

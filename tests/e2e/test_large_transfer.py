"""Large data through a real `canvas worker` process: 200,000 records from a paginated REST API, written as CSV and
uploaded over FTP by the shipped Quinyx template, with the worker's peak memory bounded (the engine's streaming
goal: a block never needs the whole data set in memory)."""
from __future__ import annotations

import pytest

from tests.e2e.employee_api import COLUMNS, EMPLOYEES_PATH, EmployeeApi
from tests.e2e.template_support import CanvasApi, block_id, block_summary, catalog_template
from tests.integration.run_helpers import run, start_worker, stop_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_run_queue")]

QUINYX_TO_FTP = "bbe52876-aca2-4ece-ba31-11e0d98ddc19"
RECORDS = 200_000
PAGE_SIZE = 1_000
API_KEY = "quinyx-Bulk-Key-42"
PEAK_RSS_LIMIT_KB = 200 * 1024
API_ROOT = EMPLOYEES_PATH.removesuffix("/employees")  # the Quinyx block appends /employees to its baseUrl


def peak_rss_kb(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in kB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1])


def bulk_export_workflow(api: CanvasApi, employee_api: EmployeeApi, ftp_server) -> str:  # noqa: ANN001
    applications = {"QUIN": api.register("QUIN", {"apikey": API_KEY, "environment": "live"}),
                    "FTP": api.register("FTP", ftp_server.credentials())}
    template = catalog_template(QUINYX_TO_FTP)
    return api.instantiate(QUINYX_TO_FTP, applications, {
        block_id(template, "quinyx.get_employees"): {"baseUrl": employee_api.url(API_ROOT), "pageSize": PAGE_SIZE},
        block_id(template, "ftp.upload"): {"filename": "bulk_employees"}})


def test_200k_records_rest_to_csv_on_ftp_in_a_worker_process_with_bounded_memory(app, client, org, ftp_server,
                                                                                  tmp_path):
    api = CanvasApi(app, client, org.admin_headers)
    with EmployeeApi(RECORDS, API_KEY) as employee_api:
        workflow_id = bulk_export_workflow(api, employee_api, ftp_server)
        worker = start_worker(app.config["CANVAS_SETTINGS"], tmp_path / "worker.log", "--worker-class", "simple",
                              env={"CANVAS_PROGRESS_INTERVAL_SECONDS": "0.1"})
        progress_seen = []

        def finished_run() -> dict | None:
            state = api.get(location)
            progress_seen.extend((block["number"], block["recordsRead"], block["recordsOut"])
                                 for block in state["blocks"] if block["status"] == "Running")
            return state if state["status"] in ("Succeeded", "Failed") else None

        try:
            location = run(client, org.admin_headers, workflow_id).headers["Location"]
            finished = wait_for(finished_run, timeout=90, interval=0.1, what="the bulk run finished")
            peak_kb = peak_rss_kb(worker.pid)  # before stopping it: /proc forgets a process that has exited
        finally:
            stop_worker(worker)
    assert finished["status"] == "Succeeded", (finished["error"], (tmp_path / "worker.log").read_text()[-2000:])
    assert block_summary(finished) == [("Succeeded", None, RECORDS), ("Succeeded", RECORDS, None)]
    assert [block["recordsRead"] for block in finished["blocks"]] == [None, RECORDS]
    # While they ran, the blocks' counts were seen moving: block 1's stored records, block 2's records read (the
    # final counts are written only once a block has finished, so a count seen while Running is live progress).
    assert any(number == 1 and (stored or 0) > 0 for number, _, stored in progress_seen), progress_seen
    assert any(number == 2 and (read or 0) > 0 for number, read, _ in progress_seen), progress_seen
    uploaded = ftp_server.home / "bulk_employees.csv"
    with uploaded.open("rb") as csv_file:
        header = csv_file.readline()
        lines = 1 + sum(1 for _ in csv_file)
    assert header == (",".join(COLUMNS) + "\r\n").encode()
    assert lines == RECORDS + 1
    assert peak_kb < PEAK_RSS_LIMIT_KB, f"worker peak RSS {peak_kb / 1024:.0f} MB"
    print(f"\nworker peak RSS {peak_kb / 1024:.0f} MB for {RECORDS} records")

"""Console runs: the list across an account's workflows (filters, failed first, paging, live fragment), the run
detail with its blocks, the confirmed actions (re-run, from / till a block, cancel), Health, and what a page never
shows."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from canvas.console.service import RUNS_PAGE_SIZE
from canvas.models import WorkflowRun
from canvas.models.base import utcnow
from tests.console.conftest import signed_in, users_workflow
from tests.integration.run_helpers import make_workflow, run, run_and_work

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def _runs(app, **where):
    with app.extensions["canvas"].db.transaction() as session:
        rows = session.scalars(select(WorkflowRun).filter_by(**where).order_by(WorkflowRun.date_queued)).all()
        session.expunge_all()
        return rows


def test_a_user_sees_its_own_runs_and_never_another_accounts(app, org, client):
    mine_id, mine_headers = org.add_account()
    other_id, other_headers = org.add_account()
    mine = run_and_work(client, app, mine_headers, users_workflow(client, org, mine_headers))
    other = run_and_work(client, app, other_headers, users_workflow(client, org, other_headers))
    browser = signed_in(app, mine_id)
    listed = browser.get("/console/runs").get_data(as_text=True)
    assert mine["id"] in listed and other["id"] not in listed and "1 run." in listed
    assert browser.get(f"/console/runs/{other['id']}").status_code == 404
    refused = browser.get(f"/console/runs/{other['id']}/rerun")
    assert refused.status_code == 404 and other["workflowId"] not in refused.get_data(as_text=True)
    filtered = browser.get(f"/console/runs?workflow={other['workflowId']}").get_data(as_text=True)
    assert "0 runs." in filtered


def test_the_run_detail_shows_every_block_with_its_counts_and_log(app, org, client):
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    assert finished["status"] == "Succeeded"
    page = signed_in(app, org.admin_id).get(f"/console/runs/{finished['id']}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for block in finished["blocks"]:
        assert f"Block {block['number']}: {block['blockName']}" in text
    assert "3 / 3 / 2" in text, "the filter block's records in / read / out"
    logged = [line["message"] for block in finished["blocks"] for line in block["log"]]
    assert logged and all(message in text for message in logged), "the blocks' log lines"
    assert text.count("Run from this block") == 3 and text.count("Run till this block") == 3


def test_run_from_a_block_and_till_a_block_start_runs_through_the_confirmation_form(app, org, client):
    headers = org.admin_headers
    workflow_id = make_workflow(client, headers)
    finished = run_and_work(client, app, headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    confirm = browser.get(f"/console/runs/{finished['id']}/rerun?mode=from&runFromBlock=2")
    assert confirm.status_code == 200 and "from block 2 to its last block" in confirm.get_data(as_text=True)
    assert len(_runs(app)) == 1, "showing the confirmation starts nothing"
    started = browser.submit(f"/console/runs/{finished['id']}/rerun", {"mode": "from", "runFromBlock": "2"},
                             form_page=f"/console/runs/{finished['id']}/rerun?mode=from&runFromBlock=2")
    assert started.status_code == 302
    newest = _runs(app)[-1]
    assert (newest.run_from_block, newest.run_till_block, newest.status) == (2, 3, "Queued")
    assert started.headers["Location"].endswith(f"/console/runs/{newest.id}")

    busy = browser.submit(f"/console/runs/{finished['id']}/rerun", {"mode": "till", "runTillBlock": "2"},
                          form_page=f"/console/runs/{finished['id']}/rerun?mode=till&runTillBlock=2")
    assert busy.status_code == 400 and 'class="error"' in busy.get_data(as_text=True), \
        "the service's refusal (a run is already active) is shown on the page"
    forged = browser.client.post(f"/console/runs/{finished['id']}/rerun", data={"mode": "all"})
    assert forged.status_code == 400 and len(_runs(app)) == 2


def test_cancel_a_queued_run_through_its_confirmation_form(app, org, client):
    headers = org.admin_headers
    queued = run(client, headers, make_workflow(client, headers))
    run_id = queued.headers["Location"].rsplit("/", 1)[1]
    browser = signed_in(app, org.admin_id)
    detail = browser.get(f"/console/runs/{run_id}").get_data(as_text=True)
    assert 'data-live="on"' in detail and "Cancel" in detail
    cancelled = browser.submit(f"/console/runs/{run_id}/cancel", {}, form_page=f"/console/runs/{run_id}/cancel")
    assert cancelled.status_code == 302
    assert _runs(app, id=uuid.UUID(run_id))[0].status == "Cancelled"
    again = browser.submit(f"/console/runs/{run_id}/cancel", {}, form_page=f"/console/runs/{run_id}/cancel")
    assert again.status_code == 400 and "already Cancelled" in again.get_data(as_text=True)


def test_the_list_puts_failed_runs_first_filters_pages_and_serves_its_live_fragment(app, org, client):
    headers = org.admin_headers
    workflow_id = uuid.UUID(make_workflow(client, headers))
    start = utcnow() - timedelta(days=1)
    with app.extensions["canvas"].db.transaction() as session:
        for number in range(RUNS_PAGE_SIZE + 5):
            session.add(WorkflowRun(workflow_id=workflow_id, account_id=uuid.UUID(org.admin_id),
                                    status="Failed" if number == 0 else "Succeeded", trigger="schedule",
                                    run_from_block=1, run_till_block=3, date_queued=start + timedelta(minutes=number),
                                    error="boom" if number == 0 else None))
    browser = signed_in(app, org.admin_id)
    first = browser.get("/console/runs").get_data(as_text=True)
    assert f"{RUNS_PAGE_SIZE + 5} runs, page 1 of 2" in first
    assert first.index("status-failed") < first.index("status-succeeded"), "failed first, though the oldest"
    assert 'rel="next"' in first and 'data-live="off"' in first
    assert len(first.encode()) < 200_000, "the runs list's page weight"
    second = browser.get("/console/runs?page=2").get_data(as_text=True)
    assert second.count("<tr class=") == 5
    newest = browser.get("/console/runs?order=newest&page=2").get_data(as_text=True)
    assert "status-failed" in newest, "the oldest run is on the last page when newest come first"
    failed = browser.get("/console/runs?status=Failed&trigger=schedule").get_data(as_text=True)
    assert "1 run." in failed and "boom" in failed
    since = (start + timedelta(minutes=RUNS_PAGE_SIZE + 2)).strftime("%Y-%m-%dT%H:%M")
    assert "3 runs." in browser.get(f"/console/runs?since={since}").get_data(as_text=True)
    wrong = browser.get("/console/runs?status=Sleeping&since=yesterday")
    assert wrong.status_code == 400 and 'id="status-error"' in wrong.get_data(as_text=True)
    fragment = browser.get("/console/runs", headers={"X-Console-Fragment": "1"}).get_data(as_text=True)
    assert fragment.startswith('<section id="live"') and "<html" not in fragment


def test_the_workflow_filter_asks_for_an_id_when_there_are_too_many_to_list(app, org, client, monkeypatch):
    from canvas.console import service

    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    assert f'<option value="{workflow_id}"' in browser.get("/console/runs").get_data(as_text=True)
    monkeypatch.setattr(service, "WORKFLOW_CHOICES_LIMIT", 0)
    page = browser.get(f"/console/runs?workflow={workflow_id}").get_data(as_text=True)
    assert '<label for="workflow">Workflow id</label>' in page and f'value="{workflow_id}"' in page


def test_health_page_and_navigation(app, org):
    browser = signed_in(app, org.admin_id)
    page = browser.get("/console/health").get_data(as_text=True)
    assert "Database</dt><dd>ok" in page and "Queued runs" in page
    from canvas.console.resources import NAVIGATION

    for endpoint, label, _ in NAVIGATION:
        if endpoint not in app.view_functions:
            assert f">{label}</a>" not in page, "no link to a page that does not exist yet"


def test_no_page_shows_a_secret_key(app, org, client):
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    user_id, user_headers = org.add_account()
    browser = signed_in(app, org.admin_id)
    pages = ["/console/runs", f"/console/runs/{finished['id']}", "/console/health",
             f"/console/runs/{finished['id']}/rerun", f"/console/runs/{finished['id']}/cancel"]
    for secret in (headers["SecretKey"], user_headers["SecretKey"]):
        for page in pages:
            assert secret not in browser.get(page).get_data(as_text=True), page


def test_the_console_is_not_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json["paths"]
    assert paths and not [path for path in paths if path.startswith("/console") or path == "/"]

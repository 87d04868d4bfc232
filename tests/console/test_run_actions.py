"""Console run actions beyond re-run / cancel: a workflow's "Run..." form (every block, from / till a block, a range,
a dry run), the re-run form's range and dry run, each succeeded block's output preview (a records table read from
the output's head only, or a file's download), the output download, and comparing a block's output with another
run's. Runs are not in the audit log (the API records none), so these tests check the runs themselves."""
from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from canvas.console import service as console
from canvas.models import WorkflowRun
from tests.conftest import Org
from tests.console.conftest import Browser, signed_in, users_workflow
from tests.integration.run_helpers import (
    B1,
    RECORDS,
    THREE_BLOCKS,
    make_workflow,
    run_and_work,
)

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def _runs(app, workflow_id: str) -> list[WorkflowRun]:
    with app.extensions["canvas"].db.transaction() as session:
        rows = session.scalars(select(WorkflowRun).where(WorkflowRun.workflow_id == uuid.UUID(workflow_id))
                               .order_by(WorkflowRun.date_queued)).all()
        session.expunge_all()
        return rows


def _run_form(browser: Browser, workflow_id: str, data: dict):
    path = f"/console/workflows/{workflow_id}/run"
    return browser.submit(path, data, form_page=path)


def _error_beside(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', page)
    assert match, f"no error beside {field}"
    return match.group(1)


# --- the workflow's Run... form --------------------------------------------------------------------------------------

def test_the_run_form_offers_every_mode_and_block_with_labels(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    page = signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}/run")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "A new run of all its blocks." in text
    for mode in ("all", "from", "till", "range"):
        assert f'<label for="mode-{mode}">' in text and f'id="mode-{mode}"' in text
    for field in ("runFromBlock", "runTillBlock", "dryRun"):
        assert f'<label for="{field}">' in text
    for number, (name, _, _) in enumerate(THREE_BLOCKS, start=1):
        assert f'<option value="{number}"' in text and f"{number}. {name}" in text
    assert '<option value="3" selected>3. To CSV</option>' in text, "till the last block by default"


def test_another_accounts_workflow_cannot_be_run_or_seen(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    user_id, _ = org.add_account()
    browser = signed_in(app, user_id)
    page = browser.get(f"/console/workflows/{workflow_id}/run")
    assert page.status_code == 404 and "Only Oslo" not in page.get_data(as_text=True)
    token = browser.csrf_token("/console/runs")
    refused = browser.client.post(f"/console/workflows/{workflow_id}/run", data={"csrf_token": token, "mode": "all"})
    assert refused.status_code == 404 and _runs(app, workflow_id) == []


def test_the_run_form_refuses_a_post_without_its_token(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    forged = browser.client.post(f"/console/workflows/{workflow_id}/run", data={"mode": "all"})
    assert forged.status_code == 400 and _runs(app, workflow_id) == []


def test_a_run_the_queue_cannot_take_is_a_503_page_with_the_reason_and_retry_after(make_app, own_redis):
    """Redis away when the form is sent: the page comes back with the service's reason, as a 503 with
    Retry-After (an outage, not a value the form got wrong), and the run is recorded failed, not left queued."""
    app = make_app(REDIS_URL=own_redis.url)
    client, org = app.test_client(), Org(app, "Queueless")
    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    path = f"/console/workflows/{workflow_id}/run"
    token = browser.csrf_token(path)
    own_redis.stop()
    refused = browser.client.post(path, data={"csrf_token": token, "mode": "all"})
    assert (refused.status_code, refused.headers.get("Retry-After")) == (503, "5")
    assert "the queue (Redis) is unavailable" in refused.get_data(as_text=True)
    assert [(run.status, run.error_class) for run in _runs(app, workflow_id)] == [("Failed", "QueueUnavailable")]


def test_a_bad_range_is_shown_beside_its_field_and_starts_nothing(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    backwards = _run_form(browser, workflow_id, {"mode": "range", "runFromBlock": "3", "runTillBlock": "1"})
    text = backwards.get_data(as_text=True)
    assert backwards.status_code == 400
    assert "runTillBlock must be between runFromBlock (3) and 3" in _error_beside(text, "runTillBlock")
    assert 'id="mode-range" name="mode" type="radio" value="range" checked' in text, "the form keeps the choice"
    assert '<option value="3" selected>3. To CSV</option>' in text
    no_input = _run_form(browser, workflow_id, {"mode": "from", "runFromBlock": "2"})
    assert no_input.status_code == 400, "block 1 has no stored output yet: the service's 409, beside the field"
    assert "no stored output yet" in _error_beside(no_input.get_data(as_text=True), "runFromBlock")
    not_a_block = _run_form(browser, workflow_id, {"mode": "till", "runTillBlock": "last"})
    assert not_a_block.status_code == 400 and _error_beside(not_a_block.get_data(as_text=True), "runTillBlock")
    assert _runs(app, workflow_id) == []


def test_run_till_a_block_as_a_dry_run_starts_that_run_and_shows_it(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    started = _run_form(browser, workflow_id, {"mode": "till", "runTillBlock": "2", "runFromBlock": "1",
                                               "dryRun": "1"})
    assert started.status_code == 302
    (queued,) = _runs(app, workflow_id)
    assert (queued.run_from_block, queued.run_till_block, queued.dry_run, queued.trigger) == (1, 2, True, "manual")
    assert started.headers["Location"].endswith(f"/console/runs/{queued.id}")
    detail = browser.get(started.headers["Location"]).get_data(as_text=True)
    assert "(dry run)" in detail and "1–2" in detail


def test_every_block_runs_from_the_form(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    assert _run_form(signed_in(app, org.admin_id), workflow_id, {"mode": "all"}).status_code == 302
    (queued,) = _runs(app, workflow_id)
    assert (queued.run_from_block, queued.run_till_block, queued.dry_run) == (1, 3, False)


# --- re-run: a range and a dry run -----------------------------------------------------------------------------------

def test_a_range_and_a_dry_run_from_the_run_detail(app, org, client):
    headers = org.admin_headers
    workflow_id = make_workflow(client, headers)
    finished = run_and_work(client, app, headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    detail = browser.get(f"/console/runs/{finished['id']}").get_data(as_text=True)
    assert "Run a range…" in detail and "Dry run…" in detail
    range_page = f"/console/runs/{finished['id']}/rerun?mode=range&runFromBlock=2&runTillBlock=2"
    confirm = browser.get(range_page).get_data(as_text=True)
    assert "A new run of blocks 2 to 2." in confirm and '<option value="2" selected>2. Only Oslo</option>' in confirm
    assert _runs(app, workflow_id)[-1].id == uuid.UUID(finished["id"]), "showing the form starts nothing"
    started = browser.submit(f"/console/runs/{finished['id']}/rerun",
                             {"mode": "range", "runFromBlock": "2", "runTillBlock": "2"}, form_page=range_page)
    assert started.status_code == 302
    ranged = _runs(app, workflow_id)[-1]
    assert (ranged.run_from_block, ranged.run_till_block, ranged.dry_run) == (2, 2, False)

    dry_page = f"/console/runs/{finished['id']}/rerun?mode=all&dryRun=1"
    assert 'name="dryRun" type="checkbox" value="1" checked' in browser.get(dry_page).get_data(as_text=True)
    busy = browser.submit(f"/console/runs/{finished['id']}/rerun", {"mode": "all", "dryRun": "1"}, form_page=dry_page)
    assert busy.status_code == 400 and "already queued or running" in busy.get_data(as_text=True)
    _cancel(app, browser, ranged.id)
    dry = browser.submit(f"/console/runs/{finished['id']}/rerun", {"mode": "all", "dryRun": "1"}, form_page=dry_page)
    assert dry.status_code == 302
    newest = _runs(app, workflow_id)[-1]
    assert (newest.run_from_block, newest.run_till_block, newest.dry_run) == (1, 3, True)


def _cancel(app, browser: Browser, run_id) -> None:
    path = f"/console/runs/{run_id}/cancel"
    assert browser.submit(path, {}, form_page=path).status_code == 302


def test_a_backwards_range_of_a_rerun_is_shown_beside_its_field(app, org, client):
    headers = org.admin_headers
    workflow_id = make_workflow(client, headers)
    finished = run_and_work(client, app, headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    path = f"/console/runs/{finished['id']}/rerun"
    wrong = browser.submit(path, {"mode": "range", "runFromBlock": "3", "runTillBlock": "2"}, form_page=path)
    assert wrong.status_code == 400 and _error_beside(wrong.get_data(as_text=True), "runTillBlock")
    assert len(_runs(app, workflow_id)) == 1


# --- output preview and download -------------------------------------------------------------------------------------

def test_the_run_detail_previews_records_and_offers_the_file(app, org, client):
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    browser = signed_in(app, org.admin_id)
    page = browser.get(f"/console/runs/{finished['id']}").get_data(as_text=True)
    assert "<caption>3 records</caption>" in page and "<caption>2 records</caption>" in page
    assert '<th scope="col">id</th><th scope="col">name</th><th scope="col">city</th>' in page
    assert "<td>1</td><td>Ann</td><td>Oslo</td>" in page and "<td>Bergen</td>" in page
    csv_name = f"people_{finished['id']}.csv"
    assert f"Output file <strong>{csv_name}</strong>" in page
    for number in (1, 2, 3):
        assert f'href="/console/runs/{finished["id"]}/blocks/{number}/output" download' in page
        assert f'href="/console/runs/{finished["id"]}/blocks/{number}/compare"' in page
    fragment = browser.get(f"/console/runs/{finished['id']}", headers={"X-Console-Fragment": "1"})
    assert "<td>1</td><td>Ann</td><td>Oslo</td>" in fragment.get_data(as_text=True), "the live part keeps it"


def test_the_download_is_the_stored_output_as_an_attachment(app, org, client):
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    browser = signed_in(app, org.admin_id)
    for number in (1, 3):
        api = client.get(f"/api/WorkflowRun/{finished['id']}/Block/{number}/Output", headers=headers)
        download = browser.get(f"/console/runs/{finished['id']}/blocks/{number}/output")
        assert download.status_code == 200 and download.data == api.data
        assert download.headers["Content-Length"] == str(len(api.data))
        assert download.headers["Content-Disposition"].startswith("attachment;")
    records = browser.get(f"/console/runs/{finished['id']}/blocks/1/output")
    assert f"run-{finished['id']}-block-1.jsonl" in records.headers["Content-Disposition"]
    assert f"people_{finished['id']}.csv" in download.headers["Content-Disposition"]
    assert browser.get(f"/console/runs/{finished['id']}/blocks/7/output").status_code == 404


def test_a_user_of_another_account_gets_no_output_and_no_comparison(app, org, client):
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    user_id, _ = org.add_account()
    browser = signed_in(app, user_id)
    for path in (f"/console/runs/{finished['id']}/blocks/1/output", f"/console/runs/{finished['id']}/blocks/1/compare",
                 f"/console/runs/{finished['id']}/rerun?mode=range"):
        answer = browser.get(path)
        assert answer.status_code == 404 and "Ann" not in answer.get_data(as_text=True), path


BIG = 5000


def test_a_big_output_is_previewed_from_its_head_only(app, org, client, monkeypatch):
    headers = org.admin_headers
    many = [{"id": number, "name": f"person {number}", "tags": ["a", number]} for number in range(1, BIG + 1)]
    finished = run_and_work(client, app, headers,
                            make_workflow(client, headers, [("Many", "records.from_variable", {"records": many})]))
    size = finished["blocks"][0]["output"]["size"]
    monkeypatch.setattr(console, "PREVIEW_BYTES", 16 * 1024)  # well below the output's size, whatever it is
    read = _count_reads(app, monkeypatch)
    page = signed_in(app, org.admin_id).get(f"/console/runs/{finished['id']}").get_data(as_text=True)
    assert f"<caption>The first {console.PREVIEW_RECORDS} of {BIG} records</caption>" in page
    assert "<td>10</td><td>person 10</td><td>[&#34;a&#34;, 10]</td>" in page and "person 11<" not in page
    assert read and max(read) <= console.PREVIEW_BYTES and sum(read) < size // 4


def test_a_page_drawn_again_reads_its_outputs_no_more(app, org, client, monkeypatch):
    """A running run's page is drawn again every 4 s by each browser showing it: the previews of the outputs
    already shown are kept (an output never changes under its key), not read from the store each time."""
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    browser = signed_in(app, org.admin_id)
    read = _count_reads(app, monkeypatch)
    assert "<td>Ann</td>" in browser.get(f"/console/runs/{finished['id']}").get_data(as_text=True)
    reads = len(read)
    assert reads >= 2  # blocks 1 and 2 give records
    again = browser.get(f"/console/runs/{finished['id']}", headers={"X-Console-Fragment": "1"})
    assert "<td>1</td><td>Ann</td><td>Oslo</td>" in again.get_data(as_text=True) and len(read) == reads


def _count_reads(app, monkeypatch) -> list[int]:
    """The bytes each blob the pages open is read for (the real store, its reads counted)."""
    store, counts = app.extensions["canvas"].blob_store, []
    real_open = store.open

    class Counted:
        def __init__(self, stream):
            self.stream = stream

        def read(self, size=-1):
            data = self.stream.read(size)
            counts.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    monkeypatch.setattr(store, "open", lambda key: Counted(real_open(key)))
    return counts


def test_a_first_record_bigger_than_the_preview_is_named_not_read(app, org, client, monkeypatch):
    monkeypatch.setattr(console, "PREVIEW_BYTES", 20)
    headers = org.admin_headers
    finished = run_and_work(client, app, headers, make_workflow(client, headers))
    page = signed_in(app, org.admin_id).get(f"/console/runs/{finished['id']}").get_data(as_text=True)
    assert "The first record is too large to preview" in page and "<td>Ann</td>" not in page


# --- compare ---------------------------------------------------------------------------------------------------------

def test_compare_a_blocks_output_with_another_runs(app, org, client):
    headers = org.admin_headers
    workflow_id = make_workflow(client, headers)
    first = run_and_work(client, app, headers, workflow_id)
    changed = [{**RECORDS[0], "name": "Anna"}, RECORDS[1], {"id": 4, "name": "Di", "city": "Oslo"}]
    assert client.post("/api/UpdateWorkflow", headers=headers, json={
        "id": workflow_id, "chain": [{"uniqueBlockId": B1, "variables": {"records": changed}}]}).status_code == 200
    second = run_and_work(client, app, headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    form = browser.get(f"/console/runs/{second['id']}/blocks/1/compare").get_data(as_text=True)
    assert '<label for="otherRun">' in form and '<label for="key">' in form
    assert f"otherRun={first['id']}" in form, "the newest other runs with this block's output are offered"
    shown = browser.get(f"/console/runs/{second['id']}/blocks/1/compare?otherRun={first['id']}&key=id")
    text = shown.get_data(as_text=True)
    api = client.post("/api/CompareBlockOutputs", headers=headers, json={
        "runId": second["id"], "otherRunId": first["id"], "block": 1, "key": "id"}).json
    assert shown.status_code == 200 and "The outputs differ" in text
    records = api["records"]
    assert (records["added"], records["removed"], records["changed"], records["unchanged"]) == (1, 1, 1, 1)
    assert "<dt>Added in the other run</dt><dd>1 (for example 3)</dd>" in text
    assert "<dt>Missing from the other run</dt><dd>1 (for example 4)</dd>" in text
    assert "<dt>Changed</dt><dd>1 (for example 1)</dd>" in text
    files = browser.get(f"/console/runs/{second['id']}/blocks/3/compare?otherRun={first['id']}")
    assert "The outputs differ" in files.get_data(as_text=True) and "First difference at byte" in \
        files.get_data(as_text=True)
    same = browser.get(f"/console/runs/{first['id']}/blocks/1/compare?otherRun={first['id']}")
    assert "The outputs are identical" in same.get_data(as_text=True)


def test_compare_shows_a_bad_or_foreign_other_run_beside_its_field(app, org, client):
    headers = org.admin_headers
    mine = run_and_work(client, app, headers, make_workflow(client, headers))
    user_id, user_headers = org.add_account()
    theirs = run_and_work(client, app, user_headers, users_workflow(client, org, user_headers))
    browser = signed_in(app, org.admin_id)
    for other, message in (("nonsense", "is not a valid id"), (theirs["id"], f"Unknown run {theirs['id']}")):
        answer = browser.get(f"/console/runs/{mine['id']}/blocks/1/compare?otherRun={other}")
        text = answer.get_data(as_text=True)
        assert answer.status_code == 400 and message in _error_beside(text, "otherRun")
        assert 'value="' + other + '"' in text, "the form keeps what was typed"
        assert "The outputs" not in text


def test_no_new_page_shows_a_secret_key(app, org, client):
    headers = org.admin_headers
    workflow_id = make_workflow(client, headers)
    finished = run_and_work(client, app, headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    pages = [f"/console/workflows/{workflow_id}/run", f"/console/runs/{finished['id']}/rerun?mode=range",
             f"/console/runs/{finished['id']}/blocks/1/compare?otherRun={finished['id']}",
             f"/console/runs/{finished['id']}/blocks/1/output"]
    for page in pages:
        answer = browser.get(page)
        assert answer.status_code == 200 and headers["SecretKey"] not in answer.get_data(as_text=True), page

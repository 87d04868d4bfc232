"""What a scripted or hostile browser sends the console: each gets a 4xx page naming what is wrong and changes
nothing, never a 500 (on PostgreSQL a NUL character, an instant out of range or a page beyond a bigint failed inside
the database), and a partial form loses nothing it did not mention. Unknown console addresses answer with the
console's page, not the API's JSON."""
from __future__ import annotations

import html

import pytest

from canvas.schema_fields import MAX_PAGE_NUMBER
from tests.console.conftest import PASSWORD, Browser, activation_token, email_of, give_password, signed_in
from tests.console.test_workflows import (
    CONDITION_FIELD,
    RECORDS_FIELD,
    _form,
    _new_workflow,
    _template,
    _text,
    _variables,
    _workflow,
)
from tests.integration.run_helpers import make_workflow, run_and_work

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def _is_console_page(answer) -> bool:  # noqa: ANN001
    return answer.mimetype == "text/html" and "<html" in answer.get_data(as_text=True)


@pytest.mark.parametrize("superscript", ["²", "¹⁰"])
def test_page_and_block_numbers_take_ascii_digits_only(app, org, client, superscript):
    workflow_id = make_workflow(client, org.admin_headers)
    run_id = run_and_work(client, app, org.admin_headers, workflow_id)["id"]
    browser = signed_in(app, org.admin_id)
    for path in ("/console/runs", "/console/workflows", "/console/applications", "/console/templates",
                 f"/console/workflows/{workflow_id}/occurrences"):
        answer = browser.get(path, query_string={"page": superscript})
        assert answer.status_code == 400 and _is_console_page(answer), path
        assert "page must be a whole number from 1" in _text(answer)
    rerun = browser.submit(f"/console/runs/{run_id}/rerun", {"mode": "from", "runFromBlock": superscript},
                           form_page=f"/console/runs/{run_id}/rerun")
    assert rerun.status_code == 400 and "runFromBlock: choose a block" in _text(rerun)
    run = browser.submit(f"/console/workflows/{workflow_id}/run", {"mode": "till", "runTillBlock": superscript},
                         form_page=f"/console/workflows/{workflow_id}")
    assert run.status_code == 400 and "runTillBlock: choose a block" in _text(run)
    assert len(client.get("/api/WorkflowRuns", headers=org.admin_headers,
                          query_string={"workflowId": workflow_id}).json) == 1, "no run was started"


def test_a_page_beyond_what_the_database_can_count_is_refused(app, org, client):
    workflow_id = make_workflow(client, org.admin_headers)
    browser = signed_in(app, org.admin_id)
    for path in ("/console/runs", f"/console/workflows/{workflow_id}/occurrences"):
        last = browser.get(path, query_string={"page": MAX_PAGE_NUMBER})
        assert last.status_code == 200, path
        beyond = browser.get(path, query_string={"page": str(10**30)})
        assert beyond.status_code == 400 and "page must be a whole number" in _text(beyond), path


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00+14:00"])
def test_a_date_filter_whose_offset_leaves_the_calendar_is_refused_beside_it(app, org, since):
    answer = signed_in(app, org.admin_id).get("/console/runs", query_string={"since": since})
    assert answer.status_code == 400 and _is_console_page(answer)
    assert f"since: '{since}' is not a date and time" in _text(answer)


def test_nul_characters_in_form_fields_are_refused_naming_the_field_and_change_nothing(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org), name="Kept")
    before = _variables(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    renamed = browser.submit(f"{page}/settings", {"name": "a\x00b", "failurePolicy": "Continue"}, form_page=page)
    assert renamed.status_code == 400 and _is_console_page(renamed)
    assert "name: text must not contain NUL characters" in _text(renamed)
    variables = browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{CONDITION_FIELD: "x\x00"}),
                               form_page=page)
    assert variables.status_code == 400 and f"{CONDITION_FIELD}: text must not contain NUL" in _text(variables)
    assert _workflow(client, org.admin_headers, workflow_id)["name"] == "Kept"
    assert _variables(client, org.admin_headers, workflow_id) == before
    signed_out = Browser(app)
    sign_in = signed_out.submit("/console/sign-in", {"email": "probe\x00@acme.test", "password": PASSWORD})
    assert sign_in.status_code == 400 and "email: text must not contain NUL" in _text(sign_in)
    forgot = signed_out.submit("/console/forgot-password", {"email": "a\x00@acme.test"})
    assert forgot.status_code == 400 and "email: text must not contain NUL" in _text(forgot)


def test_a_variable_nested_too_deeply_is_refused_beside_its_field(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    before = _variables(client, org.admin_headers, workflow_id)
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    answer = browser.submit(f"{page}/variables", {RECORDS_FIELD: "[" * 100_000 + "]" * 100_000}, form_page=page)
    assert answer.status_code == 400 and f'id="{RECORDS_FIELD}-error"' in _text(answer)
    assert "is not a valid array" in _text(answer)
    assert _variables(client, org.admin_headers, workflow_id) == before


def test_a_variables_form_that_leaves_fields_out_keeps_their_values(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    browser = signed_in(app, org.admin_id)
    page = f"/console/workflows/{workflow_id}"
    browser.submit(f"{page}/variables", _form(_text(browser.get(page)), **{CONDITION_FIELD: "city = 'Bergen'"}),
                   form_page=page)
    assert _variables(client, org.admin_headers, workflow_id)[1] == {"condition": "city = 'Bergen'"}
    saved = browser.submit(f"{page}/variables", {}, form_page=page)  # only the csrf_token
    assert saved.status_code == 302
    assert _variables(client, org.admin_headers, workflow_id)[1] == {"condition": "city = 'Bergen'"}


def test_setting_a_password_voids_the_accounts_other_unused_links(app, org):
    user_id, _ = org.add_account()
    older, newer = activation_token(app, user_id), activation_token(app, user_id)
    browser = Browser(app)
    done = browser.submit("/console/activate", {"token": newer, "password": PASSWORD, "confirmation": PASSWORD},
                          form_page=f"/console/activate?token={newer}")
    assert done.status_code == 200 and "Your password is set" in _text(done)
    replayed = browser.submit("/console/activate", {"token": older, "password": "an attacker's password",
                                                    "confirmation": "an attacker's password"},
                              form_page=f"/console/activate?token={older}")
    assert replayed.status_code == 400
    assert browser.sign_in(email_of(app, user_id), "an attacker's password").status_code == 400
    assert Browser(app).sign_in(email_of(app, user_id)).status_code == 302


def test_unknown_console_addresses_and_methods_answer_with_the_consoles_page(app, org):
    browser = signed_in(app, org.admin_id)
    for method, path, status in [("GET", "/console/nope", 404), ("GET", "/console/runs/x/y/z", 404),
                                 ("POST", "/console/runs", 405), ("GET", "/console/act-as", 405)]:
        answer = browser.client.open(path, method=method)
        assert answer.status_code == status and _is_console_page(answer), (method, path)
        assert '"State"' not in answer.get_data(as_text=True)
    assert browser.client.get("/api/nope").is_json, "the API keeps its JSON errors"


def test_an_unexpected_error_on_a_console_page_is_the_consoles_page(make_app, org):
    app = make_app()

    @app.get("/console/broken-for-the-test")
    def broken():  # noqa: ANN202
        raise RuntimeError("a bug")

    answer = Browser(app).get("/console/broken-for-the-test")
    assert answer.status_code == 500 and _is_console_page(answer)
    assert "Internal error; reference" in _text(answer) and "a bug" not in _text(answer)


def test_a_super_partner_is_refused_new_keys_for_the_admin_before_being_asked(app, org):
    partner_id, _ = org.add_account("SuperPartner")
    partner = signed_in(app, partner_id)
    asked = partner.get(f"/console/accounts/{org.admin_id}/keys")
    assert asked.status_code == 403 and "Only an Admin may issue keys" in _text(asked)


@pytest.mark.parametrize("next_page", ["/console/../api/Accounts", "/console/%2e%2e/api/Accounts",
                                       "/console/runs/../../api/Accounts"])
def test_sign_in_never_sends_the_browser_out_of_the_console(app, org, next_page):
    browser = Browser(app)
    email = give_password(app, org.admin_id)
    answer = browser.submit("/console/sign-in", {"email": email, "password": PASSWORD, "next": next_page})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/runs")
    kept = Browser(app).submit("/console/sign-in", {"email": email, "password": PASSWORD,
                                                    "next": "/console/workflows?page=2"})
    assert html.unescape(kept.headers["Location"]).endswith("/console/workflows?page=2")


def test_an_upgrade_to_a_version_that_does_not_exist_says_so_when_none_is_newer(app, org, client):
    workflow_id = _new_workflow(client, org.admin_headers, _template(client, org))
    answer = signed_in(app, org.admin_id).get(f"/console/workflows/{workflow_id}/upgrade",
                                              query_string={"version": "9.9.9"})
    assert answer.status_code == 400 and 'id="version-error"' in _text(answer)
    assert "9.9.9" in _text(answer)

"""Console applications: the catalog, registration through the form generated from an application's
credentialFields (verified against a real FTP server before anything is stored), the registered applications with
their faulted state, and updating credentials; what a page never shows (secrets, another account's registrations)."""
from __future__ import annotations

import re
import uuid

from markupsafe import escape

from tests.api.test_applications import FILE_HUB_APP, FTP_APP, QUINYX_APP, register
from tests.api.workflow_helpers import file_hub_app, new_workflow, published_template
from tests.console.conftest import email_of, signed_in
from tests.servers.ftp import FtpServer

TALENTSOFT_APP = "07ffd13d-ba57-4d1b-9c46-03c5c919eed0"
SFTP_APP = "c066d993-697e-4805-a265-66674235191e"
SMTP_APP = "10a93c0f-9b67-49bb-aa36-248f5166da4c"
WRONG_PASSWORD = "wrong-Password-0815"


def _registered(client, headers) -> list[dict]:
    return client.get("/api/RegApplications", headers=headers).json


def _ftp_form(server: FtpServer, **overrides) -> dict:
    """The FTP registration form as a user fills it in for `server`."""
    return {"tagText": "Depot", "username": server.username, "password": server.password, "port": str(server.port),
            "address": server.host, **overrides}


def _beside(page: str, key: str) -> str | None:
    """The error shown beside credential field `key`."""
    found = re.search(rf'<p class="error" id="credentialsJson\.{key}-error" role="alert">([^<]*)</p>', page)
    return found and found.group(1)


def _audit_actions(client, headers, object_id: str) -> list[str]:
    entries = client.get("/api/AuditLog", headers=headers, query_string={"pageSize": 500}).json
    return [entry["action"] for entry in entries if entry["objectId"] == object_id]


def _stored_credentials(app, registered_id: str) -> dict:
    from canvas.applications.service import decrypt_credentials
    from canvas.models import RegisteredApplication

    services = app.extensions["canvas"]
    with services.db.transaction() as session:
        return decrypt_credentials(services.secret_box, session.get(RegisteredApplication, uuid.UUID(registered_id)))


# --- the catalog -------------------------------------------------------------------------------------------------

def test_the_catalog_lists_every_application_with_its_description_and_a_registration_link(app, org, client):
    page = signed_in(app, org.admin_id).get("/console/applications/catalog")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for application in client.get("/api/Applications", headers=org.admin_headers).json:
        assert application["name"] in text and application["description"] in text
        assert f'href="/console/applications/register/{application["id"]}"' in text


# --- the generated registration form -----------------------------------------------------------------------------

def test_the_registration_form_is_generated_from_the_credential_fields(app, org, client):
    browser = signed_in(app, org.admin_id)
    text = browser.get(f"/console/applications/register/{FTP_APP}").get_data(as_text=True)
    [ftp] = [each for each in client.get("/api/Applications", headers=org.admin_headers).json if each["id"] == FTP_APP]
    for field in ftp["credentialFields"]:
        assert re.search(rf'<label for="cf-{field["ShortName"]}">{re.escape(field["Name"])}', text), field
        assert f'id="cf-{field["ShortName"]}" name="{field["ShortName"]}"' in text
        assert escape(field["Desc"]) in text
    assert 'name="password" type="password" value=""' in text, "a hidden field is a password input"
    assert 'name="secure" type="checkbox"' in text, "a bool field is a checkbox"
    assert 'name="port" type="text" inputmode="numeric"' in text
    assert '<label for="tagText">' in text and 'name="csrf_token"' in text
    assert "Secure (FTPS)</label>" in text and "Password (optional)" not in text

    quinyx = browser.get(f"/console/applications/register/{QUINYX_APP}").get_data(as_text=True)
    assert '<select id="cf-environment" name="environment"' in quinyx
    assert '<option value="live">Live Environment</option>' in quinyx
    assert '<option value="test">Test Environment</option>' in quinyx
    sftp = browser.get(f"/console/applications/register/{SFTP_APP}").get_data(as_text=True)
    assert '<textarea id="cf-privateKey" name="privateKey"' in sftp
    assert '<label for="cf-privateKey">Private key</label> <small id="optional-privateKey">(optional)</small>' in sftp


def test_an_unknown_application_is_a_404_page(app, org):
    assert signed_in(app, org.admin_id).get(f"/console/applications/register/{uuid.uuid4()}").status_code == 404


def test_registration_verifies_against_a_real_ftp_server_then_stores(app, org, client, ftp_server):
    browser = signed_in(app, org.admin_id)
    done = browser.submit(f"/console/applications/register/{FTP_APP}", _ftp_form(ftp_server))
    assert done.status_code == 302, done.get_data(as_text=True)
    [entry] = _registered(client, org.admin_headers)
    assert entry["tagText"] == "Depot" and entry["isAuthenticated"] is True and entry["faulted"] is False
    assert done.headers["Location"].endswith(f"/console/applications?saved={entry['id']}")
    assert _stored_credentials(app, entry["id"]) == ftp_server.credentials(secure=False)
    assert "application.register" in _audit_actions(client, org.admin_headers, entry["id"])
    listed = browser.get(done.headers["Location"]).get_data(as_text=True)
    assert "Depot is saved." in listed and "FTP Server" in listed and "Yes (" in listed
    assert ftp_server.password not in listed


def test_a_wrong_password_shows_the_verification_error_keeps_what_was_typed_and_stores_nothing(app, org, client,
                                                                                                ftp_server):
    browser = signed_in(app, org.admin_id)
    refused = browser.submit(f"/console/applications/register/{FTP_APP}",
                             _ftp_form(ftp_server, password=WRONG_PASSWORD, tagText="Typed tag"))
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert re.search(r'id="credentialsJson-error" role="alert"><p class="error">Authentication Error: ', text)
    assert f'name="username" type="text" value="{ftp_server.username}"' in text
    assert f'name="port" type="text" inputmode="numeric" value="{ftp_server.port}"' in text
    assert f'name="address" type="text" value="{ftp_server.host}"' in text and 'value="Typed tag"' in text
    assert WRONG_PASSWORD not in text, "a secret is never sent back"
    assert _registered(client, org.admin_headers) == []


def test_a_bad_value_is_shown_beside_its_field_with_a_400_and_nothing_is_stored(app, org, client, ftp_server):
    browser = signed_in(app, org.admin_id)
    path = f"/console/applications/register/{FTP_APP}"
    bad_port = browser.submit(path, _ftp_form(ftp_server, port="twenty-one"))
    text = bad_port.get_data(as_text=True)
    assert bad_port.status_code == 400 and _beside(text, "port") == "Port must be a number"
    assert 'value="twenty-one" aria-describedby="help-port credentialsJson.port-error" aria-invalid="true"' in text
    missing = browser.submit(path, _ftp_form(ftp_server, address="", password=""))
    text = missing.get_data(as_text=True)
    assert missing.status_code == 400 and 'id="credentialsJson-error"' not in text, "every line is beside its field"
    assert _beside(text, "password") == "You must enter a value for Password."
    assert _beside(text, "address") == "You must enter a value for Server address."
    long_tag = browser.submit(path, _ftp_form(ftp_server, tagText="t" * 201))
    assert long_tag.status_code == 400
    assert re.search(r'<p class="error" id="tagText-error" role="alert">tagText: ', long_tag.get_data(as_text=True))
    assert _registered(client, org.admin_headers) == []


def test_a_post_without_the_csrf_token_is_refused_and_stores_nothing(app, org, client, ftp_server):
    browser = signed_in(app, org.admin_id)
    refused = browser.client.post(f"/console/applications/register/{FTP_APP}", data=_ftp_form(ftp_server))
    assert refused.status_code == 400
    assert _registered(client, org.admin_headers) == []


def test_a_select_outside_its_options_is_refused_with_the_apis_message(app, org, client):
    browser = signed_in(app, org.admin_id)
    refused = browser.submit(f"/console/applications/register/{QUINYX_APP}", {"apikey": "k", "environment": "prod"})
    assert refused.status_code == 400
    assert _beside(refused.get_data(as_text=True), "environment") == "Environment must be one of live, test"
    assert _registered(client, org.admin_headers) == []


# --- registered applications -------------------------------------------------------------------------------------

def test_the_list_shows_faulted_applications_and_why(app, org, client, tmp_path):
    with FtpServer(tmp_path / "gone") as gone:
        registered_id = register(client, org.admin_headers, FTP_APP, gone.credentials(), "Old depot").json
    assert client.post("/api/VerifyRegApplication", headers=org.admin_headers,
                       json={"id": registered_id}).status_code == 400
    text = signed_in(app, org.admin_id).get("/console/applications").get_data(as_text=True)
    assert "Old depot" in text and '<tr class="status-failed">' in text
    assert re.search(r'<strong class="error">Faulted</strong>: \S', text), "the fault's reason is shown"
    assert f'href="/console/applications/{registered_id}/credentials"' in text


def test_the_list_pages_by_fifty(app, org, client):
    for number in range(51):
        assert register(client, org.admin_headers, FILE_HUB_APP, {}, f"hub {number:02}").status_code == 200
    browser = signed_in(app, org.admin_id)
    first = browser.get("/console/applications").get_data(as_text=True)
    assert "51 registered applications, page 1 of 2." in first and "hub 49" in first and "hub 50" not in first
    second = browser.get("/console/applications?page=2").get_data(as_text=True)
    assert "hub 50" in second and "hub 49" not in second and 'rel="prev"' in second


def test_a_user_never_sees_or_changes_another_accounts_registration(app, org, client, ftp_server):
    mine_id, mine_headers = org.add_account()
    other_id, other_headers = org.add_account()
    theirs = register(client, other_headers, FTP_APP, ftp_server.credentials(), "Their depot").json
    browser = signed_in(app, mine_id)
    assert "Their depot" not in browser.get("/console/applications").get_data(as_text=True)
    page = browser.get(f"/console/applications/{theirs}/credentials")
    assert page.status_code == 404 and ftp_server.username not in page.get_data(as_text=True)
    own_token = browser.csrf_token("/console/applications")
    refused = browser.client.post(f"/console/applications/{theirs}/credentials",
                                  data={"csrf_token": own_token, "tagText": "Taken", "port": "1"})
    assert refused.status_code == 404
    [entry] = _registered(client, other_headers)
    assert entry["tagText"] == "Their depot" and _stored_credentials(app, theirs)["port"] == ftp_server.port
    assert browser.get("/console/applications?saved=" + theirs).get_data(as_text=True).count("Their depot") == 0


# --- updating credentials ----------------------------------------------------------------------------------------

def test_the_update_form_shows_stored_values_but_never_a_secret(app, org, client, ftp_server):
    registered_id = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), "Depot").json
    talentsoft = register(client, org.admin_headers, TALENTSOFT_APP,
                          {"baseUrl": "https://ts.example.test", "client_id": "id-1", "client_secret": "s3cr3t-Value"},
                          "Talentsoft").json
    browser = signed_in(app, org.admin_id)
    text = browser.get(f"/console/applications/{registered_id}/credentials").get_data(as_text=True)
    assert f'name="username" type="text" value="{ftp_server.username}"' in text
    assert f'value="{ftp_server.port}"' in text and 'value="Depot"' in text
    assert 'name="password" type="password" value=""' in text and ftp_server.password not in text
    assert "Leave empty to keep the stored value." in text
    secret_as_text = browser.get(f"/console/applications/{talentsoft}/credentials").get_data(as_text=True)
    assert 'value="id-1"' in secret_as_text and "s3cr3t-Value" not in secret_as_text
    assert 'name="client_secret" type="password" value=""' in secret_as_text


def test_new_credentials_are_verified_then_kept_and_an_empty_secret_keeps_the_stored_one(app, org, client,
                                                                                         ftp_server, tmp_path):
    registered_id = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), "Depot").json
    browser = signed_in(app, org.admin_id)
    path = f"/console/applications/{registered_id}/credentials"
    with FtpServer(tmp_path / "moved") as moved:
        done = browser.submit(path, _ftp_form(moved, password="", tagText="Moved depot"))
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _stored_credentials(app, registered_id) == {**ftp_server.credentials(port=moved.port), "secure": False}
    [entry] = _registered(client, org.admin_headers)
    assert entry["tagText"] == "Moved depot" and entry["isAuthenticated"] is True
    assert "application.update" in _audit_actions(client, org.admin_headers, registered_id)


def test_refused_credentials_show_the_error_and_change_nothing(app, org, client, ftp_server):
    registered_id = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), "Depot").json
    before = _stored_credentials(app, registered_id)
    browser = signed_in(app, org.admin_id)
    path = f"/console/applications/{registered_id}/credentials"
    refused = browser.submit(path, _ftp_form(ftp_server, password=WRONG_PASSWORD, tagText="Renamed"))
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Authentication Error: " in text and WRONG_PASSWORD not in text
    assert 'value="Renamed"' in text, "what was typed stays"
    cleared = browser.submit(path, _ftp_form(ftp_server, address=""))
    assert cleared.status_code == 400
    assert _beside(cleared.get_data(as_text=True), "address") == "You must enter a value for Server address."
    no_token = browser.client.post(path, data=_ftp_form(ftp_server, tagText="No token"))
    assert no_token.status_code == 400
    assert _stored_credentials(app, registered_id) == before
    [entry] = _registered(client, org.admin_headers)
    assert entry["tagText"] == "Depot"


def test_updating_a_faulted_application_with_working_credentials_clears_the_fault(app, org, client, tmp_path):
    with FtpServer(tmp_path / "gone") as gone:
        registered_id = register(client, org.admin_headers, FTP_APP, gone.credentials(), "Depot").json
    client.post("/api/VerifyRegApplication", headers=org.admin_headers, json={"id": registered_id})
    assert _registered(client, org.admin_headers)[0]["faulted"] is True
    browser = signed_in(app, org.admin_id)
    with FtpServer(tmp_path / "back") as back:
        done = browser.submit(f"/console/applications/{registered_id}/credentials", {"port": str(back.port),
                              "username": back.username, "address": back.host})
    assert done.status_code == 302, done.get_data(as_text=True)
    [entry] = _registered(client, org.admin_headers)
    assert entry["faulted"] is False and entry["isAuthenticated"] is True


def test_an_admin_acting_as_a_user_registers_for_that_user(app, org, client, ftp_server):
    user_id, user_headers = org.add_account()
    browser = signed_in(app, org.admin_id)
    acting = browser.submit("/console/act-as", {"email": email_of(app, user_id)}, form_page="/console/runs")
    assert acting.status_code == 302
    done = browser.submit(f"/console/applications/register/{FTP_APP}", _ftp_form(ftp_server, tagText="For user"))
    assert done.status_code == 302
    assert [entry["tagText"] for entry in _registered(client, user_headers)] == ["For user"]
    assert _registered(client, org.admin_headers) == []


def test_the_remove_box_clears_an_optional_secret_and_is_offered_for_optional_secrets_only(app, org, client,
                                                                                           smtp_server, ftp_server):
    smtp = register(client, org.admin_headers, SMTP_APP, smtp_server.credentials(fromAddress="hub@acme.test"),
                    "Mail").json
    ftp = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), "Depot").json
    browser = signed_in(app, org.admin_id)
    path = f"/console/applications/{smtp}/credentials"
    assert 'name="password__clear" type="checkbox"' in browser.get(path).get_data(as_text=True)
    assert "__clear" not in browser.get(f"/console/applications/{ftp}/credentials").get_data(as_text=True)
    done = browser.submit(path, {"host": smtp_server.host, "port": str(smtp_server.port), "username": "",
                                 "password": "", "password__clear": "1", "security": "none",
                                 "fromAddress": "hub@acme.test"})
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _stored_credentials(app, smtp) == {"host": smtp_server.host, "port": smtp_server.port,
                                              "security": "none", "fromAddress": "hub@acme.test"}


def test_checking_the_stored_credentials_again_clears_or_sets_the_fault(app, org, client, tmp_path):
    with FtpServer(tmp_path / "depot") as depot:
        registered_id = register(client, org.admin_headers, FTP_APP, depot.credentials(), "Depot").json
        browser = signed_in(app, org.admin_id)
        path = f"/console/applications/{registered_id}/verify"
        assert browser.client.post(path, data={}).status_code == 400, "no CSRF token"
        works = browser.submit(path, {}, form_page=f"/console/applications/{registered_id}/credentials")
        assert works.status_code == 302 and works.headers["Location"].endswith(f"?verified={registered_id}")
        assert "Depot: the stored credentials work." in browser.get(works.headers["Location"]).get_data(as_text=True)
    failed = browser.submit(path, {}, form_page=f"/console/applications/{registered_id}/credentials")
    text = failed.get_data(as_text=True)
    assert failed.status_code == 400 and 'id="credentialsJson-error"' in text and "Authentication Error: " in text
    assert '<dd class="status-failed">Yes: ' in text, "the page shows the fault it just recorded"
    [entry] = _registered(client, org.admin_headers)
    assert entry["faulted"] is True
    assert _audit_actions(client, org.admin_headers, registered_id).count("application.reverify") == 2


def test_another_accounts_registration_cannot_be_checked(app, org, client, ftp_server):
    _, other_headers = org.add_account()
    theirs = register(client, other_headers, FTP_APP, ftp_server.credentials(), "Their depot").json
    browser = signed_in(app, org.admin_id)
    refused = browser.submit(f"/console/applications/{theirs}/verify", {}, form_page="/console/applications")
    assert refused.status_code == 404
    assert "application.reverify" not in _audit_actions(client, org.admin_headers, theirs)
    assert _registered(client, other_headers)[0]["faulted"] is False


def test_unchanged_credentials_are_not_verified_so_a_new_tag_alone_is_saved(app, org, client, tmp_path):
    with FtpServer(tmp_path / "gone") as gone:
        registered_id = register(client, org.admin_headers, FTP_APP, gone.credentials(), "Depot").json
    before = _stored_credentials(app, registered_id)
    browser = signed_in(app, org.admin_id)
    done = browser.submit(f"/console/applications/{registered_id}/credentials",
                          _ftp_form(gone, password="", tagText="Old depot"))
    assert done.status_code == 302, done.get_data(as_text=True)
    [entry] = _registered(client, org.admin_headers)
    assert entry["tagText"] == "Old depot" and _stored_credentials(app, registered_id) == before


def test_applications_without_a_verification_say_so_and_register_as_the_api_does(app, org, client):
    browser = signed_in(app, org.admin_id)
    hub = browser.get(f"/console/applications/register/{FILE_HUB_APP}").get_data(as_text=True)
    assert "File Hub asks for no credentials." in hub and "saved as authenticated" in hub
    assert browser.submit(f"/console/applications/register/{FILE_HUB_APP}", {}).status_code == 302
    quinyx = browser.get(f"/console/applications/register/{QUINYX_APP}").get_data(as_text=True)
    assert "as not authenticated" in quinyx and ">Register</button>" in quinyx
    assert browser.submit(f"/console/applications/register/{QUINYX_APP}",
                          {"apikey": "k-1", "environment": "test", "tagText": "Rota"}).status_code == 302
    by_tag = {entry["tagText"]: entry["isAuthenticated"] for entry in _registered(client, org.admin_headers)}
    assert by_tag == {"File Hub": True, "Rota": False}


# --- deleting a registration -------------------------------------------------------------------------------------

def test_deleting_an_unused_registration_asks_first_then_deletes_it_and_audits(app, org, client):
    headers = org.admin_headers
    registered_id = file_hub_app(client, headers)
    browser = signed_in(app, org.admin_id)
    listed = browser.get("/console/applications").get_data(as_text=True)
    assert f'href="/console/applications/{registered_id}/delete"' in listed
    page = f"/console/applications/{registered_id}/delete"
    asked = browser.get(page)
    assert asked.status_code == 200 and "No workflow uses it." in asked.get_data(as_text=True)
    assert client.get(f"/api/RegApplication/{registered_id}", headers=headers).status_code == 200  # asking: nothing
    deleted = browser.submit(page, {})
    assert deleted.status_code == 302 and deleted.headers["Location"].endswith("/console/applications?deleted=1")
    assert "The registered application was deleted." in browser.get(deleted.headers["Location"]).get_data(as_text=True)
    assert client.get(f"/api/RegApplication/{registered_id}", headers=headers).status_code == 404
    entries = client.get("/api/AuditLog", headers=headers, query_string={"pageSize": 500}).json
    [removal] = [entry for entry in entries if entry["objectId"] == registered_id
                 and entry["action"] == "application.delete"]
    assert removal["actorKind"] == "console", removal


def test_a_registration_a_workflow_uses_is_not_deleted_and_the_page_links_the_workflow(app, org, client):
    headers = org.admin_headers
    registered_id = file_hub_app(client, headers)
    workflow_id = new_workflow(client, headers, published_template(client, headers), registered_id, name="Nightly")
    browser = signed_in(app, org.admin_id)
    page = f"/console/applications/{registered_id}/delete"
    asked = browser.get(page).get_data(as_text=True)
    assert f'<a href="/console/workflows/{workflow_id}">Nightly</a>' in asked
    assert "Delete the registered application</button>" not in asked
    token = browser.csrf_token("/console/applications")
    refused = browser.client.post(page, data={"csrf_token": token})  # a stale page, or a hand-made request
    text = refused.get_data(as_text=True)
    assert refused.status_code == 409 and f"is used by workflow(s) {workflow_id}" in text
    assert client.get(f"/api/RegApplication/{registered_id}", headers=headers).status_code == 200


def test_another_accounts_registration_is_not_deleted_and_the_csrf_token_is_required(app, org, client):
    mine_id, mine_headers = org.add_account()
    _other_id, other_headers = org.add_account()
    theirs = file_hub_app(client, other_headers)
    browser = signed_in(app, mine_id)
    assert browser.get(f"/console/applications/{theirs}/delete").status_code == 404
    token = browser.csrf_token("/console/applications")
    assert browser.client.post(f"/console/applications/{theirs}/delete", data={"csrf_token": token}).status_code == 404
    own = file_hub_app(client, mine_headers)
    assert browser.client.post(f"/console/applications/{own}/delete").status_code == 400
    assert client.get(f"/api/RegApplication/{theirs}", headers=other_headers).status_code == 200
    assert client.get(f"/api/RegApplication/{own}", headers=mine_headers).status_code == 200

"""Applications, RegApplications and RegApplication against real servers on loopback."""
from __future__ import annotations

import json
import re
import uuid

import pytest

FTP_APP = "5f814909-01ea-4395-96ee-5ba7614128fc"
QUINYX_APP = "97cbc3b3-32c7-4e4a-b788-a332ea82aeff"
FILE_HUB_APP = "9b6a04b3-c91f-4255-9033-6ac7b7a6f935"
REG_APP_FIELDS = ["id", "shortName", "accountId", "applicationId", "name", "tagText", "description",
                  "isAuthenticated", "isOAuthApp", "dateModified", "dateTimeUtcAuthenticated", "dateTimeForReAuth",
                  "sessionTimeMins", "sessionSlidingExpiry", "faulted"]


def register(client, headers, application_id: str, credentials, tag_text: str | None = None):
    body = {"applicationId": application_id, "credentialsJson": credentials if not isinstance(credentials, dict)
            else json.dumps(credentials)}
    if tag_text is not None:
        body["tagText"] = tag_text
    return client.post("/api/RegApplication", json=body, headers=headers)


def test_applications_lists_the_catalog_in_the_documented_shape(client, org):
    applications = client.get("/api/Applications", headers=org.admin_headers).json
    ftp = next(app for app in applications if app["id"] == FTP_APP)
    assert list(ftp) == ["id", "name", "shortName", "description", "vendorUrl", "credentialFields",
                         "credentialsJson", "tag", "sessionTimeMins", "sessionSlidingExpiry"]
    assert ftp["shortName"] == "FTP"
    assert [field["Name"] for field in ftp["credentialFields"]][:4] == ["User name", "Password", "Port",
                                                                          "Server address"]
    assert ftp["credentialsJson"] == {field["ShortName"]: None for field in ftp["credentialFields"]}
    quinyx = next(app for app in applications if app["id"] == QUINYX_APP)
    environment = next(field for field in quinyx["credentialFields"] if field["ShortName"] == "environment")
    assert environment["Options"] == "live|Live Environment,test|Test Environment"


def test_register_verifies_against_a_real_ftp_server(client, org, ftp_server):
    answer = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(), "FTP 2022-05-03")
    assert answer.status_code == 200
    registered_id = answer.json
    assert str(uuid.UUID(registered_id)) == registered_id
    [entry] = client.get("/api/RegApplications", headers=org.admin_headers).json
    assert list(entry) == REG_APP_FIELDS
    assert entry["id"] == registered_id and entry["tagText"] == "FTP 2022-05-03" and entry["shortName"] == "FTP"
    assert entry["isAuthenticated"] is True and entry["faulted"] is False
    assert re.fullmatch(r"\d{4}-.*\+00:00", entry["dateTimeUtcAuthenticated"])
    assert entry["accountId"] == org.admin_id


def test_tag_text_defaults_to_the_application_name(client, org):
    answer = register(client, org.admin_headers, FILE_HUB_APP, {})
    [entry] = client.get("/api/RegApplications", headers=org.admin_headers).json
    assert entry["id"] == answer.json and entry["tagText"] == "File Hub"
    # Nothing to verify for File Hub: authenticated, without a verification time (as in the Canvas document).
    assert entry["isAuthenticated"] is True and entry["dateTimeUtcAuthenticated"] is None


def test_missing_fields_give_the_documented_text(client, org):
    body = '{"username": null,"password": null,"port": null,"address": null,"secure": true}'
    answer = register(client, org.admin_headers, FTP_APP, body)
    assert answer.status_code == 400
    assert answer.json["Msg"] == ("Authentication Error: You must enter a value for User name.\n"
                                  "You must enter a value for Password.\nYou must enter a value for Port.\n"
                                  "You must enter a value for Server address.")


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        pytest.param({"apikey": "k"}, "credentialsJson must be a string holding a JSON object, got an object",
                     id="object-instead-of-string"),
        pytest.param(None, "credentialsJson must be a string holding a JSON object, got null", id="null"),
        pytest.param('{"apikey": ', "credentialsJson is not valid JSON", id="malformed-json"),
        pytest.param('["apikey"]', "credentialsJson must hold a JSON object, got an array", id="array"),
        pytest.param('{"apikey": "k", "environment": "prod"}', "Environment must be one of live, test",
                     id="select-outside-options"),
        pytest.param('{"apikey": "k", "environment": "live", "colour": "red"}', "'colour'", id="unknown-field"),
    ],
)
def test_invalid_credentials_json_is_a_400_that_says_which(client, org, credentials, expected):
    body = {"applicationId": QUINYX_APP, "credentialsJson": credentials}
    answer = client.post("/api/RegApplication", json=body, headers=org.admin_headers)
    assert answer.status_code == 400
    assert expected in answer.json["Msg"]
    assert client.get("/api/RegApplications", headers=org.admin_headers).json == []


def test_port_that_is_not_a_number_names_the_field(client, org, ftp_server):
    answer = register(client, org.admin_headers, FTP_APP, ftp_server.credentials(port="twenty-one"))
    assert answer.status_code == 400 and "Port must be a number" in answer.json["Msg"]


def test_unknown_application_is_a_400(client, org):
    answer = register(client, org.admin_headers, str(uuid.uuid4()), "{}")
    assert answer.status_code == 400 and answer.json["Msg"].startswith("Unknown application")


@pytest.mark.parametrize("failure", ["wrong-password", "closed-port", "silent-server"])
def test_failed_verification_stores_nothing(make_app, ftp_server, silent_server, closed_port, failure):
    app = make_app(VERIFY_TIMEOUT_SECONDS=1.0)
    from tests.conftest import Org

    org, client = Org(app, "Acme"), app.test_client()
    credentials = {
        "wrong-password": ftp_server.credentials(password="wrong-password-123"),
        "closed-port": ftp_server.credentials(port=closed_port),
        "silent-server": ftp_server.credentials(port=silent_server.port),
    }[failure]
    answer = register(client, org.admin_headers, FTP_APP, credentials)
    assert answer.status_code == 400
    assert answer.json["Msg"].startswith("Authentication Error: ")
    assert "wrong-password-123" not in answer.json["Msg"]
    assert client.get("/api/RegApplications", headers=org.admin_headers).json == []


def test_accounts_never_see_or_use_each_others_registered_applications(client, org, make_org):
    user_id, user_headers = org.add_account("User")
    other_user_id, other_headers = org.add_account("User")
    mine = register(client, user_headers, FILE_HUB_APP, {}, "mine").json
    assert client.get("/api/RegApplications", headers=other_headers).json == []
    assert client.get(f"/api/RegApplication/{mine}", headers=other_headers).status_code == 404
    assert client.get(f"/api/DeleteRegApplication/{mine}", headers=other_headers).status_code == 404
    # The admin sees it only when acting as the owner.
    assert client.get("/api/RegApplications", headers=org.admin_headers).json == []
    as_owner = client.get("/api/RegApplications", headers={**org.admin_headers, "ManagedAccountId": user_id}).json
    assert [entry["id"] for entry in as_owner] == [mine]
    outsider = make_org("Other")
    assert client.get("/api/RegApplications", headers={**outsider.admin_headers,
                                                        "ManagedAccountId": user_id}).status_code == 403


def test_get_one_update_reverify_and_delete(client, org, ftp_server):
    registered_id = register(client, org.admin_headers, FTP_APP, ftp_server.credentials()).json
    by_query = client.get(f"/api/RegApplication?id={registered_id}", headers=org.admin_headers)
    assert by_query.json["id"] == registered_id
    updated = client.post("/api/UpdateRegApplication", headers=org.admin_headers,
                          json={"id": registered_id, "tagText": "renamed"})
    assert updated.json["tagText"] == "renamed"
    refused = client.post("/api/UpdateRegApplication", headers=org.admin_headers,
                          json={"id": registered_id, "credentialsJson": json.dumps({"password": "nope-nope"})})
    assert refused.status_code == 400 and refused.json["Msg"].startswith("Authentication Error:")
    still_good = client.post("/api/VerifyRegApplication", headers=org.admin_headers, json={"id": registered_id})
    assert still_good.status_code == 200 and still_good.json["faulted"] is False
    deleted = client.get(f"/api/DeleteRegApplication?id={registered_id}", headers=org.admin_headers)
    assert deleted.json is True
    assert client.get("/api/RegApplications", headers=org.admin_headers).json == []


def test_reverify_failure_marks_faulted_and_success_clears_it(client, org, tmp_path):
    from tests.servers.ftp import FtpServer

    with FtpServer(tmp_path / "first") as first:
        registered_id = register(client, org.admin_headers, FTP_APP, first.credentials()).json
    failed = client.post("/api/VerifyRegApplication", headers=org.admin_headers, json={"id": registered_id})
    assert failed.status_code == 400
    [entry] = client.get("/api/RegApplications", headers=org.admin_headers).json
    assert entry["faulted"] is True and entry["isAuthenticated"] is False
    with FtpServer(tmp_path / "second") as second:
        client.post("/api/UpdateRegApplication", headers=org.admin_headers,
                    json={"id": registered_id, "credentialsJson": json.dumps({"port": second.port})})
    [entry] = client.get("/api/RegApplications", headers=org.admin_headers).json
    assert entry["faulted"] is False and entry["isAuthenticated"] is True

"""Consumer/SecretKey authentication, ManagedAccountId and the IP allowlist, over the Flask test client."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from canvas.models import ApiKey
from tests.conftest import canvas_headers

BAD_KEYS = {"State": 401, "Msg": "Consumer or SecretKey are incorrect or missing"}
MANAGED_REFUSED = {"State": 403, "Msg": "ManagedAccountId does not identify an account you may manage"}


def test_authenticate_answers_true_with_valid_keys(client, org):
    response = client.get("/api/Authenticate", headers=org.admin_headers)
    assert response.status_code == 200
    assert response.json is True


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-headers"),
        pytest.param({"Consumer": "X"}, id="consumer-only"),
        pytest.param({"SecretKey": "Y"}, id="secret-only"),
        pytest.param({"Consumer": "", "SecretKey": ""}, id="empty-values"),
    ],
)
def test_missing_keys_get_401_with_the_canvas_text(client, org, headers):
    response = client.get("/api/Authenticate", headers=headers)
    assert response.status_code == 401
    assert response.json == BAD_KEYS


def test_wrong_secret_and_unknown_consumer_get_the_same_401(client, org):
    wrong_secret = {**org.admin_headers, "SecretKey": "not-the-secret"}
    unknown_consumer = {**org.admin_headers, "Consumer": "0" * 64}
    for headers in (wrong_secret, unknown_consumer):
        response = client.get("/api/Authenticate", headers=headers)
        assert (response.status_code, response.json) == (401, BAD_KEYS)


def test_consumer_matches_case_insensitively_but_secret_does_not(client, org):
    lower_consumer = {**org.admin_headers, "Consumer": org.admin_headers["Consumer"].lower()}
    assert client.get("/api/Authenticate", headers=lower_consumer).status_code == 200
    upper_secret = {**org.admin_headers, "SecretKey": org.admin_headers["SecretKey"].upper()}
    assert client.get("/api/Authenticate", headers=upper_secret).status_code == 401


def test_inactive_accounts_keys_are_refused(client, org):
    _account_id, headers = org.add_account("User", active=False)
    response = client.get("/api/Authenticate", headers=headers)
    assert (response.status_code, response.json) == (401, BAD_KEYS)


def test_secret_is_stored_only_as_a_hash(app, org):
    secret = org.admin_headers["SecretKey"]
    with app.extensions["canvas"].db.sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.consumer == org.admin_headers["Consumer"]))
        stored = [key.secret_hash, key.secret_salt, key.consumer.encode()]
    assert all(secret.encode() not in value for value in stored)
    assert len(key.secret_hash) == 32


def test_unauthenticated_endpoints_need_no_keys(client):
    assert client.get("/api/GetMetaData").status_code == 200
    assert client.get("/api/Describe?name=AddAccountApiDto").status_code == 200


# --- ManagedAccountId matrix -------------------------------------------------------------------------------------

def _managed_target(kind: str, org, other_org) -> str:
    if kind == "same-org":
        return org.add_account("User")[0]
    if kind == "other-org":
        return other_org.add_account("User")[0]
    if kind == "unknown":
        return str(uuid.uuid4())
    if kind == "inactive":
        return org.add_account("User", active=False)[0]
    return "not-a-guid"


def _caller_headers(role: str, org) -> dict:
    if role == "Admin":
        return org.admin_headers
    return org.add_account(role)[1]


@pytest.mark.parametrize("role", ["Admin", "SuperPartner", "User"])
@pytest.mark.parametrize("target", ["same-org", "other-org", "unknown", "inactive", "malformed"])
def test_managed_account_matrix(client, make_org, role, target):
    org, other_org = make_org("Acme"), make_org("Other")
    caller = _caller_headers(role, org)
    target_id = _managed_target(target, org, other_org)
    response = client.get("/api/Accounts", headers={**caller, "ManagedAccountId": target_id})
    if role in ("Admin", "SuperPartner") and target == "same-org":
        assert response.status_code == 200
        assert any(account["id"] == target_id for account in response.json)
    else:
        # One answer for every refusal: an unknown id reads exactly like another organization's account.
        assert (response.status_code, response.json) == (403, MANAGED_REFUSED)


def test_user_may_name_itself_as_managed_account(client, org):
    account_id, headers = org.add_account("User")
    response = client.get("/api/Authenticate", headers={**headers, "ManagedAccountId": account_id})
    assert response.status_code == 200


def test_bad_keys_win_over_managed_account_checks(client, org):
    headers = {**org.admin_headers, "SecretKey": "wrong", "ManagedAccountId": "not-a-guid"}
    assert client.get("/api/Accounts", headers=headers).json == BAD_KEYS


# --- IP allowlist ---------------------------------------------------------------------------------------------------

def _set_allowlist(app, org, cidrs: list[str]) -> None:
    from canvas.accounts import service

    with app.extensions["canvas"].db.transaction() as session:
        service.set_ip_allowlist(session, uuid.UUID(org.id), cidrs)


def test_allowlisted_address_is_admitted(client, app, org):
    _set_allowlist(app, org, ["10.1.0.0/16"])
    response = client.get("/api/Authenticate", headers=org.admin_headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 200


def test_address_outside_allowlist_is_refused(client, app, org):
    _set_allowlist(app, org, ["10.1.0.0/16"])
    response = client.get("/api/Authenticate", headers=org.admin_headers, environ_base={"REMOTE_ADDR": "10.2.0.1"})
    assert response.status_code == 403
    assert response.json["Msg"] == "Calls from IP address 10.2.0.1 are not allowed for this organization"


def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(client, app, org):
    _set_allowlist(app, org, ["10.1.0.0/16"])
    response = client.get("/api/Authenticate", headers={**org.admin_headers, "X-Forwarded-For": "10.1.2.3"},
                          environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 403
    assert "192.0.2.7" in response.json["Msg"]


def test_forwarded_for_counts_behind_a_trusted_proxy(make_app):
    app = make_app(TRUSTED_PROXY_COUNT=1)
    from tests.conftest import Org

    org = Org(app, "Proxied")
    _set_allowlist(app, org, ["10.1.0.0/16"])
    client = app.test_client()
    allowed = client.get("/api/Authenticate", headers={**org.admin_headers, "X-Forwarded-For": "10.1.2.3"},
                         environ_base={"REMOTE_ADDR": "127.0.0.1"})
    refused = client.get("/api/Authenticate", headers={**org.admin_headers, "X-Forwarded-For": "10.9.9.9"},
                         environ_base={"REMOTE_ADDR": "127.0.0.1"})
    # With one trusted proxy only the last hop counts: a client cannot prepend its own address.
    prepended = client.get("/api/Authenticate",
                           headers={**org.admin_headers, "X-Forwarded-For": "10.1.2.3, 10.9.9.9"},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert (allowed.status_code, refused.status_code, prepended.status_code) == (200, 403, 403)


def test_ip_allowlist_endpoint_is_admin_only_and_validates(client, org):
    user_headers = org.add_account("User")[1]
    assert client.post("/api/IpAllowlist", json={"cidrs": []}, headers=user_headers).status_code == 403
    bad = client.post("/api/IpAllowlist", json={"cidrs": ["10.0.0.0/33"]}, headers=org.admin_headers)
    assert bad.status_code == 400 and "10.0.0.0/33" in bad.json["Msg"]
    ok = client.post("/api/IpAllowlist", json={"cidrs": ["127.0.0.1", "10.0.0.0/8"]}, headers=org.admin_headers)
    assert ok.json == {"cidrs": ["127.0.0.1/32", "10.0.0.0/8"]}
    assert client.get("/api/IpAllowlist", headers=org.admin_headers).json == ok.json


# --- keys ------------------------------------------------------------------------------------------------------------

def test_rotating_keys_invalidates_the_old_secret(client, app, org):
    from canvas.accounts import service

    with app.extensions["canvas"].db.transaction() as session:
        new = service.rotate_keys(session, uuid.UUID(org.admin_id))
    assert client.get("/api/Authenticate", headers=org.admin_headers).status_code == 401
    assert client.get("/api/Authenticate", headers=canvas_headers(new.consumer, new.secret_key)).status_code == 200


def test_account_keys_endpoint_issues_keys_within_the_organization(client, org, make_org):
    account_id, old_headers = org.add_account("User")
    issued = client.post("/api/AccountKeys", json={"accountId": account_id}, headers=org.admin_headers)
    assert issued.status_code == 200
    assert client.get("/api/Authenticate", headers=old_headers).status_code == 401
    new_headers = canvas_headers(issued.json["consumer"], issued.json["secretKey"])
    assert client.get("/api/Authenticate", headers=new_headers).status_code == 200
    foreign_id = make_org("Other").add_account("User")[0]
    refused = client.post("/api/AccountKeys", json={"accountId": foreign_id}, headers=org.admin_headers)
    # the account is named in the body, not by ManagedAccountId: another organization's account reads as unknown
    assert (refused.status_code, refused.json) == (404, {"State": 404, "Msg": f"Unknown account {foreign_id}"})

"""Accounts (GET) and Account (POST), with activation."""
from __future__ import annotations

import re
import uuid

import pytest

NEW_ACCOUNT = {
    "firstName": "John",
    "lastName": "Smeet",
    "email": "john.smeet@company.test",
    "phone": "+470568765432",
    "roleName": "SuperPartner",
    "countryKey": "DE",
    "globalNotifications": True,
    "defaultNotificationEmail": "support@company.test",
    "activated": True,
}
ACCOUNT_FIELDS = ["id", "firstName", "lastName", "email", "organizationId", "organizationName", "roleId", "role",
                  "dateCreated"]


def test_account_post_returns_the_new_id_and_accounts_lists_it(client, org):
    created = client.post("/api/Account", json=NEW_ACCOUNT, headers=org.admin_headers)
    assert created.status_code == 200
    new_id = created.json
    assert str(uuid.UUID(new_id)) == new_id
    listed = client.get("/api/Accounts", headers=org.admin_headers).json
    entry = next(account for account in listed if account["id"] == new_id)
    assert list(entry) == ACCOUNT_FIELDS
    assert entry["role"] == "SuperPartner" and entry["organizationName"] == "Acme"
    assert entry["email"] == NEW_ACCOUNT["email"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", entry["dateCreated"])


def test_accounts_lists_only_active_accounts_of_the_own_organization(client, org, make_org):
    inactive_id, _ = org.add_account("User", active=False)
    foreign_id, _ = make_org("Other").add_account("User")
    ids = {account["id"] for account in client.get("/api/Accounts", headers=org.admin_headers).json}
    assert org.admin_id in ids
    assert inactive_id not in ids and foreign_id not in ids


def test_duplicate_email_gives_409_with_the_canvas_text(client, org):
    assert client.post("/api/Account", json=NEW_ACCOUNT, headers=org.admin_headers).status_code == 200
    again = client.post("/api/Account", json={**NEW_ACCOUNT, "email": NEW_ACCOUNT["email"].upper()},
                        headers=org.admin_headers)
    assert (again.status_code, again.json) == (409, {"State": 409, "Msg": "Account has already been created"})


def test_admin_role_is_refused_with_the_canvas_text(client, org):
    response = client.post("/api/Account", json={**NEW_ACCOUNT, "roleName": "Admin"}, headers=org.admin_headers)
    assert response.status_code == 400
    assert response.json == {"State": 400, "Msg": "Role Admin is not supported. Please use SuperPartner or User"}


def test_unknown_role_is_a_400_naming_the_field(client, org):
    response = client.post("/api/Account", json={**NEW_ACCOUNT, "roleName": "Boss"}, headers=org.admin_headers)
    assert response.status_code == 400 and response.json["Msg"].startswith("roleName:")


def test_user_role_may_not_create_accounts(client, org):
    _id, user_headers = org.add_account("User")
    response = client.post("/api/Account", json=NEW_ACCOUNT, headers=user_headers)
    assert response.status_code == 403


def test_superpartner_creates_accounts_in_its_own_organization(client, org):
    _id, partner_headers = org.add_account("SuperPartner")
    created = client.post("/api/Account", json={**NEW_ACCOUNT, "roleName": "User"}, headers=partner_headers)
    listed = client.get("/api/Accounts", headers=org.admin_headers).json
    assert created.json in {account["id"] for account in listed}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"email": 42}, "email", id="email-not-a-string"),
        pytest.param({"firstName": "A"}, "email", id="email-missing"),
        pytest.param({"email": "x@y.test", "activated": "maybe"}, "activated", id="activated-not-boolean"),
        pytest.param({"email": "x@y.test", "favouriteColour": "red"}, "favouriteColour", id="unknown-field"),
        pytest.param({"email": "not an address"}, "email", id="email-malformed"),
    ],
)
def test_invalid_bodies_get_400_naming_the_field(client, org, body, field):
    response = client.post("/api/Account", json=body, headers=org.admin_headers)
    assert response.status_code == 400
    assert response.json["State"] == 400
    assert field in response.json["Msg"]


def test_inactive_account_gets_a_single_use_activation_link(client, org, caplog):
    caplog.set_level("WARNING", logger="canvas.accounts.mail")
    created = client.post("/api/Account", json={**NEW_ACCOUNT, "activated": False}, headers=org.admin_headers)
    assert created.status_code == 200
    ids = {account["id"] for account in client.get("/api/Accounts", headers=org.admin_headers).json}
    assert created.json not in ids
    link = re.search(r"(/api/ActivateAccount\?token=\S+)", caplog.text).group(1)
    assert client.get(link).json == "Account activated"
    ids = {account["id"] for account in client.get("/api/Accounts", headers=org.admin_headers).json}
    assert created.json in ids
    reused = client.get(link)
    assert reused.status_code == 400 and "invalid, already used or expired" in reused.json["Msg"]


def test_expired_activation_token_is_refused(app, org):
    from datetime import timedelta

    from canvas.accounts import service
    from canvas.errors import BadRequestError
    from canvas.models.base import utcnow

    account_id, _ = org.add_account("User", active=False)
    with app.extensions["canvas"].db.transaction() as session:
        token = service.create_activation_token(session, uuid.UUID(account_id), timedelta(hours=1))
    with app.extensions["canvas"].db.transaction() as session, pytest.raises(BadRequestError):
        service.activate_account(session, token, now=utcnow() + timedelta(hours=2))

"""The console's accounts pages (Admin and SuperPartner): the organization's accounts, a new account with its
activation e-mail through a real SMTP server, deactivation (service and page), and new API keys shown once."""
from __future__ import annotations

import uuid

import pytest

from canvas.accounts import service as accounts
from canvas.errors import ForbiddenError, NotFoundError
from canvas.models import Account, ActivationToken, AuditEntry, ConsoleSession
from tests.console.conftest import (
    PASSWORD,
    Browser,
    activation_token,
    give_password,
    rows_of,
    signed_in,
)
from tests.integration.test_notifications import smtp_url


def _account(app, account_id: str) -> Account:
    [account] = rows_of(app, Account, Account.id == uuid.UUID(account_id))
    return account


def _actions(app, object_id: str) -> list[str]:
    return [entry.action for entry in rows_of(app, AuditEntry, AuditEntry.object_id == object_id)]


def _authenticates(app, headers: dict) -> bool:
    return app.test_client().get("/api/Authenticate", headers=headers).status_code == 200


# --- the deactivation service ----------------------------------------------------------------------------------------

def test_deactivating_voids_unused_links_ends_sessions_stops_the_keys_and_is_audited(app, org):
    user_id, headers = org.add_account()
    user_browser = signed_in(app, user_id)
    unused_link = activation_token(app, user_id)
    with app.test_request_context(), app.extensions["canvas"].db.transaction() as session:
        admin = session.get(Account, uuid.UUID(org.admin_id))
        accounts.deactivate_account(session, admin, uuid.UUID(user_id))
    assert not _account(app, user_id).active
    assert rows_of(app, ConsoleSession, ConsoleSession.account_id == uuid.UUID(user_id)) == []
    [used] = rows_of(app, ActivationToken, ActivationToken.account_id == uuid.UUID(user_id))
    assert used.used_at is not None, "the password's link is kept as used; the unused one is gone"
    assert not _authenticates(app, headers), "its API keys fail"
    assert user_browser.get("/console/runs").status_code == 302, "its browser is signed out"
    assert user_browser.sign_in(_account(app, user_id).email).status_code == 400
    activated = app.test_client().get(f"/api/ActivateAccount?token={unused_link}")
    assert activated.status_code == 400 and not _account(app, user_id).active, "an old link cannot reactivate it"
    [entry] = [entry for entry in rows_of(app, AuditEntry, AuditEntry.object_id == user_id)
               if entry.action == "account.deactivate"]
    assert entry.changes == {"active": {"before": True, "after": False}}


def test_the_deactivation_rules_are_the_key_rules(app, org, make_org):
    partner_id, _ = org.add_account("SuperPartner")
    other_partner_id, _ = org.add_account("SuperPartner")
    elsewhere = make_org("Elsewhere")
    with app.test_request_context(), app.extensions["canvas"].db.transaction() as session:
        admin = session.get(Account, uuid.UUID(org.admin_id))
        partner = session.get(Account, uuid.UUID(partner_id))
        with pytest.raises(ForbiddenError, match="your own account"):
            accounts.deactivate_account(session, admin, admin.id)
        with pytest.raises(ForbiddenError, match="Only an Admin"):
            accounts.deactivate_account(session, partner, admin.id)
        with pytest.raises(NotFoundError):
            accounts.deactivate_account(session, admin, uuid.UUID(elsewhere.admin_id))
        with pytest.raises(NotFoundError):
            accounts.deactivate_account(session, admin, "not-an-id")
        accounts.deactivate_account(session, partner, uuid.UUID(other_partner_id))
    assert _account(app, org.admin_id).active and _account(app, elsewhere.admin_id).active
    assert not _account(app, other_partner_id).active


# --- the list --------------------------------------------------------------------------------------------------------

def test_the_list_shows_the_organizations_active_accounts_a_page_at_a_time(app, org, make_org):
    elsewhere = make_org("Elsewhere")
    added = [org.add_account()[0] for _ in range(50)]
    _, _ = org.add_account(active=False)
    browser = signed_in(app, org.admin_id)
    first = browser.get("/console/accounts")
    page = first.get_data(as_text=True)
    assert first.status_code == 200 and "51 active accounts, page 1 of 2" in page
    assert _account(app, org.admin_id).email + " (you)" in page, "the oldest first"
    assert _account(app, elsewhere.admin_id).email not in page
    assert 'href="/console/accounts?page=2"' in page and 'href="/console/accounts"' in page, "a navigation link"
    second = browser.get("/console/accounts?page=2").get_data(as_text=True)
    assert _account(app, added[-1]).email in second and "Previous page" in second
    bad = browser.get("/console/accounts?page=0")
    assert bad.status_code == 400 and 'id="page-error"' in bad.get_data(as_text=True)


def test_a_user_has_no_accounts_link_and_is_refused_every_accounts_page(app, org):
    user_id, _ = org.add_account()
    user = signed_in(app, user_id)
    assert 'href="/console/accounts"' not in user.get("/console/runs").get_data(as_text=True)
    for path in ("/console/accounts", "/console/accounts/new", f"/console/accounts/{org.admin_id}/deactivate",
                 f"/console/accounts/{org.admin_id}/keys"):
        assert user.get(path).status_code == 403, path
    created = user.submit("/console/accounts/new", {"email": "sneaky@acme.test"}, form_page="/console/runs")
    keys = user.submit(f"/console/accounts/{org.admin_id}/keys", {}, form_page="/console/runs")
    gone = user.submit(f"/console/accounts/{org.admin_id}/deactivate", {}, form_page="/console/runs")
    assert created.status_code == keys.status_code == gone.status_code == 403
    assert rows_of(app, Account, Account.email == "sneaky@acme.test") == [] and _account(app, org.admin_id).active
    assert _actions(app, org.admin_id).count("account.keys.rotate") == 1, "only its first keys"


def test_a_super_partner_manages_the_organizations_accounts_but_not_its_admin(app, org):
    partner_id, _ = org.add_account("SuperPartner")
    user_id, _ = org.add_account()
    partner = signed_in(app, partner_id)
    page = partner.get("/console/accounts").get_data(as_text=True)
    assert f"/console/accounts/{user_id}/deactivate" in page and f"/console/accounts/{user_id}/keys" in page
    assert f"/console/accounts/{org.admin_id}/" not in page, "no action on the Admin"
    assert f"/console/accounts/{partner_id}/deactivate" not in page, "nor deactivating itself"
    assert partner.get(f"/console/accounts/{org.admin_id}/deactivate").status_code == 403
    refused = partner.submit(f"/console/accounts/{org.admin_id}/keys", {},
                             form_page=f"/console/accounts/{org.admin_id}/keys")
    assert refused.status_code == 403 and "Only an Admin" in refused.get_data(as_text=True)


# --- a new account ---------------------------------------------------------------------------------------------------

def test_a_new_account_gets_its_activation_email_and_is_listed_once_activated(make_app, org, smtp_server):
    app = make_app(SMTP_URL=smtp_url(smtp_server))
    browser = signed_in(app, org.admin_id)
    form = browser.get("/console/accounts/new").get_data(as_text=True)
    for field in ("email", "firstName", "lastName", "phone", "roleName"):
        assert f'<label for="{field}">' in form and f'id="{field}" name="{field}"' in form, field
    created = browser.submit("/console/accounts/new", {"email": " New@Acme.test ", "firstName": "Nora",
                                                       "lastName": "", "phone": "", "roleName": "SuperPartner"})
    page = created.get_data(as_text=True)
    assert created.status_code == 200 and "new@acme.test" in page and "SuperPartner" in page
    [account] = rows_of(app, Account, Account.email == "new@acme.test")
    assert (account.first_name, account.role, account.active) == ("Nora", "SuperPartner", False)
    assert "account.create" in _actions(app, str(account.id))
    [message] = [received.parsed() for received in smtp_server.messages]
    assert message["To"] == "new@acme.test"
    body = message.get_content()
    token = body.split("/console/activate?token=")[1].split()[0]
    active_part, waiting_part = browser.get("/console/accounts").get_data(as_text=True).split(
        "<h2>Waiting for activation</h2>")
    assert f"/console/accounts/{account.id}/" not in active_part and "new@acme.test" in waiting_part
    done = Browser(app).submit("/console/activate", {"token": token, "password": PASSWORD, "confirmation": PASSWORD},
                               form_page=f"/console/activate?token={token}")
    assert done.status_code == 200 and _account(app, str(account.id)).active
    active_part, waiting_part = browser.get("/console/accounts").get_data(as_text=True).split(
        "<h2>Waiting for activation</h2>")
    assert "new@acme.test" in active_part and "new@acme.test" not in waiting_part


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"email": "not an address"}, "email", "is not a valid e-mail address"),
    ({"email": "x@acme.test", "roleName": "Admin"}, "roleName", "Role Admin is not supported"),
    ({"email": "x@acme.test", "firstName": "n" * 201}, "firstName", "firstName: Longer than maximum length 200."),
])
def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_created(app, org, form, field, message):
    browser = signed_in(app, org.admin_id)
    answer = browser.submit("/console/accounts/new", form)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and f'id="{field}-error"' in page and message in page
    assert f'value="{form["email"]}"' in page, "the form keeps what was typed"
    assert len(rows_of(app, Account)) == 1


def test_a_taken_email_is_a_conflict_beside_the_field_and_a_form_without_its_token_is_refused(app, org):
    browser = signed_in(app, org.admin_id)
    taken = browser.submit("/console/accounts/new", {"email": _account(app, org.admin_id).email})
    assert taken.status_code == 409 and 'id="email-error"' in taken.get_data(as_text=True)
    forged = browser.client.post("/console/accounts/new", data={"email": "forged@acme.test"})
    assert forged.status_code == 400 and "security token" in forged.get_data(as_text=True)
    assert rows_of(app, Account, Account.email == "forged@acme.test") == []


def test_a_relay_that_is_down_creates_nothing_and_says_so(make_app, org):
    app = make_app(SMTP_URL="smtp://127.0.0.1:1")
    browser = signed_in(app, org.admin_id)
    answer = browser.submit("/console/accounts/new", {"email": "down@acme.test"})
    assert answer.status_code == 503 and "could not be sent" in answer.get_data(as_text=True)
    assert rows_of(app, Account, Account.email == "down@acme.test") == []


# --- deactivation ----------------------------------------------------------------------------------------------------

def test_deactivating_asks_first_then_signs_the_account_out_everywhere(app, org):
    user_id, headers = org.add_account()
    user = signed_in(app, user_id)
    admin = signed_in(app, org.admin_id)
    path = f"/console/accounts/{user_id}/deactivate"
    confirm = admin.get(path)
    assert confirm.status_code == 200 and "Deactivate " + _account(app, user_id).email + "?" in \
        confirm.get_data(as_text=True)
    assert admin.client.post(path).status_code == 400, "no token, no change"
    assert _account(app, user_id).active
    done = admin.submit(path, {})
    assert done.status_code == 200 and "is deactivated" in done.get_data(as_text=True)
    [entry] = [entry for entry in rows_of(app, AuditEntry, AuditEntry.object_id == user_id)
               if entry.action == "account.deactivate"]
    assert not _account(app, user_id).active and entry.actor_id == uuid.UUID(org.admin_id)
    assert user.get("/console/runs").status_code == 302 and not _authenticates(app, headers)
    assert _account(app, user_id).email not in admin.get("/console/accounts").get_data(as_text=True)
    act_as = admin.submit("/console/act-as", {"email": _account(app, user_id).email}, form_page="/console/runs")
    assert act_as.status_code == 403, "nobody acts as a deactivated account"


def test_an_admin_cannot_deactivate_itself_nor_see_another_organizations_account(app, org, make_org):
    elsewhere = make_org("Elsewhere")
    admin = signed_in(app, org.admin_id)
    own = admin.get(f"/console/accounts/{org.admin_id}/deactivate")
    assert own.status_code == 403 and "your own account" in own.get_data(as_text=True)
    assert admin.submit(f"/console/accounts/{org.admin_id}/deactivate", {},
                        form_page="/console/accounts").status_code == 403
    for path in (f"/console/accounts/{elsewhere.admin_id}/deactivate", f"/console/accounts/{elsewhere.admin_id}/keys",
                 "/console/accounts/not-an-id/keys"):
        assert admin.get(path).status_code == 404, path
        assert admin.submit(path, {}, form_page="/console/accounts").status_code == 404, path
    assert _account(app, org.admin_id).active and _account(app, elsewhere.admin_id).active
    assert _authenticates(app, elsewhere.admin_headers)


def test_acting_as_a_user_the_admin_still_manages_with_its_own_role(app, org):
    user_id, _ = org.add_account()
    give_password(app, user_id)
    admin = signed_in(app, org.admin_id)
    admin.submit("/console/act-as", {"email": _account(app, user_id).email}, form_page="/console/runs")
    assert admin.get("/console/accounts").status_code == 200
    assert admin.submit(f"/console/accounts/{user_id}/deactivate", {},
                        form_page="/console/accounts").status_code == 200
    page = admin.get("/console/accounts").get_data(as_text=True)
    assert "You are acting as" not in page, "acting as a deactivated account ends"


# --- new API keys ----------------------------------------------------------------------------------------------------

def test_new_keys_are_shown_once_and_the_old_ones_stop_working(app, org):
    user_id, old_headers = org.add_account()
    admin = signed_in(app, org.admin_id)
    path = f"/console/accounts/{user_id}/keys"
    confirm = admin.get(path).get_data(as_text=True)
    assert "New API keys for " + _account(app, user_id).email in confirm and "SecretKey</dt>" not in confirm
    assert admin.client.post(path).status_code == 400 and _authenticates(app, old_headers), "no token, no change"
    issued = admin.submit(path, {})
    page = issued.get_data(as_text=True)
    assert issued.status_code == 200
    consumer = page.split("<dt>Consumer</dt><dd><code>")[1].split("<")[0]
    secret = page.split("<dt>SecretKey</dt><dd><code>")[1].split("<")[0]
    assert issued.headers["Cache-Control"] == "no-store"
    assert not _authenticates(app, old_headers)
    assert _authenticates(app, {"Consumer": consumer, "SecretKey": secret})
    assert "account.keys.rotate" in _actions(app, user_id)
    assert secret not in admin.get(path).get_data(as_text=True), "never shown again"
    assert secret not in admin.get("/console/accounts").get_data(as_text=True)
    assert secret not in str([entry.changes for entry in rows_of(app, AuditEntry)])


# --- accounts waiting for activation ---------------------------------------------------------------------------------

def _token_in(message) -> str:  # noqa: ANN001 - a parsed e-mail
    return message.get_content().split("/console/activate?token=")[1].split()[0]


def test_a_lost_activation_email_is_sent_again_and_only_the_new_link_works(make_app, org, smtp_server):
    app = make_app(SMTP_URL=smtp_url(smtp_server))
    browser = signed_in(app, org.admin_id)
    browser.submit("/console/accounts/new", {"email": "late@acme.test", "roleName": "User"})
    [account] = rows_of(app, Account, Account.email == "late@acme.test")
    page = browser.get("/console/accounts").get_data(as_text=True)
    waiting = page.split("<h2>Waiting for activation</h2>", 1)[1]
    assert "late@acme.test" in waiting and f"/console/accounts/{account.id}/activation" in waiting
    resent = browser.submit(f"/console/accounts/{account.id}/activation", {}, form_page="/console/accounts")
    assert resent.status_code == 302 and resent.headers["Location"].endswith(f"/console/accounts?resent={account.id}")
    assert "A new activation e-mail was sent to late@acme.test" in browser.get(resent.headers["Location"]).get_data(
        as_text=True)
    first, second = [received.parsed() for received in smtp_server.messages]
    assert first["To"] == second["To"] == "late@acme.test" and _token_in(first) != _token_in(second)
    assert "account.activation.resend" in _actions(app, str(account.id))
    old = app.test_client().get(f"/api/ActivateAccount?token={_token_in(first)}")
    assert old.status_code == 400 and not _account(app, str(account.id)).active, "the first link no longer works"
    assert app.test_client().get(f"/api/ActivateAccount?token={_token_in(second)}").status_code == 200
    assert _account(app, str(account.id)).active
    page = browser.get("/console/accounts").get_data(as_text=True)
    assert "late@acme.test" not in page.split("<h2>Waiting for activation</h2>", 1)[1], "activated: no longer waits"
    refused = browser.submit(f"/console/accounts/{account.id}/activation", {}, form_page="/console/accounts")
    assert refused.status_code == 409 and "is not waiting for activation" in refused.get_data(as_text=True)
    assert len(smtp_server.messages) == 2


def test_a_deactivated_account_does_not_wait_and_gets_no_new_link(app, org):
    user_id, _headers = org.add_account()
    activation_token(app, user_id)  # an unused link, voided by the deactivation
    with app.test_request_context(), app.extensions["canvas"].db.transaction() as session:
        accounts.deactivate_account(session, session.get(Account, uuid.UUID(org.admin_id)), uuid.UUID(user_id))
    browser = signed_in(app, org.admin_id)
    email = _account(app, user_id).email
    assert email not in browser.get("/console/accounts").get_data(as_text=True)
    refused = browser.submit(f"/console/accounts/{user_id}/activation", {}, form_page="/console/accounts")
    assert refused.status_code == 409
    assert rows_of(app, ActivationToken, ActivationToken.account_id == uuid.UUID(user_id),
                   ActivationToken.used_at.is_(None)) == []


def test_only_managers_resend_and_only_within_their_organization(app, org, make_org):
    user_id, _ = org.add_account()
    other = make_org()
    pending_id, _ = other.add_account()
    with app.extensions["canvas"].db.transaction() as session:
        session.get(Account, uuid.UUID(pending_id)).active = False
    activation_token(app, pending_id)
    assert signed_in(app, org.admin_id).submit(f"/console/accounts/{pending_id}/activation", {},
                                               form_page="/console/accounts").status_code == 404
    assert signed_in(app, user_id).submit(f"/console/accounts/{pending_id}/activation", {},
                                          form_page="/console/runs").status_code == 403
    assert len(rows_of(app, ActivationToken, ActivationToken.account_id == uuid.UUID(pending_id))) == 1

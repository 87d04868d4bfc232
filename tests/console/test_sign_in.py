"""Console sign-in: password links, sessions and their cookies, CSRF, rate limits, deactivation, the IP allowlist,
acting as another account, the forgot-password mail and the activation mail."""
from __future__ import annotations

import uuid
from datetime import timedelta

from canvas.models import (
    Account,
    AuditEntry,
    ConsolePassword,
    ConsoleSession,
    Organization,
)
from tests.console.conftest import (
    PASSWORD,
    Browser,
    activation_token,
    email_of,
    give_password,
    rows_of,
)
from tests.integration.test_notifications import smtp_url


def _set_active(app, account_id: str, active: bool) -> None:
    with app.extensions["canvas"].db.transaction() as session:
        session.get(Account, uuid.UUID(account_id)).active = active


def test_the_root_and_every_page_send_a_signed_out_browser_to_sign_in(browser):
    assert browser.get("/").headers["Location"].endswith("/console")
    for page in ("/console", "/console/runs", "/console/health", f"/console/runs/{uuid.uuid4()}"):
        answer = browser.get(page, follow_redirects=True)
        assert answer.status_code == 200 and answer.request.path == "/console/sign-in", page
    sign_in = browser.get("/console/sign-in").get_data(as_text=True)
    assert '<label for="email">' in sign_in and '<label for="password">' in sign_in


def test_a_set_password_link_activates_the_account_once_and_stores_only_an_argon2_hash(app, org, browser):
    user_id, _ = org.add_account(active=False)
    token = activation_token(app, user_id)
    page = f"/console/activate?token={token}"
    done = browser.submit("/console/activate", {"token": token, "password": PASSWORD, "confirmation": PASSWORD},
                          form_page=page)
    assert done.status_code == 200 and "Your password is set" in done.get_data(as_text=True)
    [stored] = rows_of(app, ConsolePassword, ConsolePassword.account_id == uuid.UUID(user_id))
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    assert rows_of(app, Account, Account.id == uuid.UUID(user_id))[0].active
    again = browser.submit("/console/activate", {"token": token, "password": "another password",
                                                 "confirmation": "another password"}, form_page=page)
    assert again.status_code == 400 and "invalid, already used or expired" in again.get_data(as_text=True)
    assert rows_of(app, ConsolePassword, ConsolePassword.account_id == uuid.UUID(user_id))[0].password_hash == \
        stored.password_hash
    actions = [entry.action for entry in rows_of(app, AuditEntry, AuditEntry.object_id == user_id)]
    assert "account.password.set" in actions and "account.activate" in actions
    assert PASSWORD not in str([entry.changes for entry in rows_of(app, AuditEntry)])


def test_an_expired_link_and_a_short_or_mistyped_password_are_refused_beside_their_field(app, org, browser):
    user_id, _ = org.add_account(active=False)
    expired = activation_token(app, user_id, ttl=timedelta(seconds=-1))
    answer = browser.submit("/console/activate", {"token": expired, "password": PASSWORD, "confirmation": PASSWORD},
                            form_page=f"/console/activate?token={expired}")
    assert answer.status_code == 400 and 'id="token-error"' in answer.get_data(as_text=True)
    token = activation_token(app, user_id)
    short = browser.submit("/console/activate", {"token": token, "password": "short", "confirmation": "short"},
                           form_page=f"/console/activate?token={token}")
    assert short.status_code == 400 and 'id="password-error"' in short.get_data(as_text=True)
    differ = browser.submit("/console/activate", {"token": token, "password": PASSWORD, "confirmation": "x" + PASSWORD},
                            form_page=f"/console/activate?token={token}")
    assert differ.status_code == 400 and 'id="confirmation-error"' in differ.get_data(as_text=True)
    assert not rows_of(app, Account, Account.id == uuid.UUID(user_id))[0].active, "a refused form used no token"


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(app, org, browser):
    email = give_password(app, org.admin_id)
    signed_in = browser.sign_in(email.upper())
    assert signed_in.status_code == 302 and signed_in.headers["Location"].endswith("/console/runs")
    cookie = next(value for value in signed_in.headers.getlist("Set-Cookie") if "canvas_console_session=" in value)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie and "Secure" not in cookie
    runs = browser.get("/console/runs")
    assert runs.status_code == 200 and email in runs.get_data(as_text=True)
    [record] = rows_of(app, ConsoleSession)
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token.encode() not in record.token_hash, "only the token's hash is kept"
    assert "console.sign_in" in [entry.action for entry in rows_of(app, AuditEntry)]
    out = browser.submit("/console/sign-out", {}, form_page="/console/runs")
    assert out.status_code == 302 and rows_of(app, ConsoleSession) == []
    stolen = Browser(app)
    stolen.client.set_cookie("canvas_console_session", token, path="/console")
    assert stolen.get("/console/runs").status_code == 302, "a signed-out session's cookie opens nothing"


def test_the_cookie_is_secure_when_the_public_url_is_https(make_app, org):
    app = make_app(PUBLIC_URL="https://canvas.example.test")
    email = give_password(app, org.admin_id)
    signed_in = Browser(app).sign_in(email)
    assert any("Secure" in value for value in signed_in.headers.getlist("Set-Cookie"))


def test_a_wrong_password_is_refused_like_an_unknown_email(app, org, browser):
    email = give_password(app, org.admin_id)
    wrong = browser.sign_in(email, "not the password")
    unknown = browser.sign_in("nobody@acme.test", "not the password")
    assert wrong.status_code == unknown.status_code == 400
    assert 'id="password-error"' in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True).replace(email, "") == unknown.get_data(as_text=True).replace(
        "nobody@acme.test", ""), "one answer whether or not the account exists"


def test_a_form_without_or_with_a_wrong_csrf_token_is_refused_with_an_html_page(app, org, browser):
    email = give_password(app, org.admin_id)
    assert browser.sign_in(email).status_code == 302
    missing = browser.client.post("/console/sign-out")
    wrong = browser.client.post("/console/sign-out", data={"csrf_token": "forged"})
    for answer in (missing, wrong):
        assert answer.status_code == 400 and answer.mimetype == "text/html"
        assert "security token" in answer.get_data(as_text=True)
    assert len(rows_of(app, ConsoleSession)) == 1, "still signed in"
    anonymous = Browser(app).client.post("/console/sign-in", data={"email": email, "password": PASSWORD})
    assert anonymous.status_code == 400, "the sign-in form has its token too"


def test_wrong_passwords_are_answered_429_after_the_limit_even_with_the_right_one(make_app, org):
    app = make_app(CONSOLE_SIGN_IN_FAILURE_LIMIT=3)
    email = give_password(app, org.admin_id)
    browser = Browser(app)
    assert [browser.sign_in(email, "wrong password").status_code for _ in range(4)] == [400, 400, 400, 429]
    refused = browser.sign_in(email)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in refused.get_data(as_text=True)
    assert rows_of(app, ConsoleSession) == []


def test_a_deactivated_account_cannot_sign_in_and_its_sessions_end(app, org, browser):
    user_id, _ = org.add_account()
    email = give_password(app, user_id)
    assert browser.sign_in(email).status_code == 302
    _set_active(app, user_id, False)
    assert browser.get("/console/runs").status_code == 302
    assert rows_of(app, ConsoleSession) == []
    assert Browser(app).sign_in(email).status_code == 400


def test_the_organizations_ip_allowlist_applies(app, org, browser):
    email = give_password(app, org.admin_id)
    signed_in = Browser(app)
    assert signed_in.sign_in(email).status_code == 302
    with app.extensions["canvas"].db.transaction() as session:
        session.get(Organization, uuid.UUID(org.id)).ip_allowlist = ["10.0.0.0/8"]
    refused = browser.sign_in(email)
    assert refused.status_code == 403 and "127.0.0.1" in refused.get_data(as_text=True)
    assert len(rows_of(app, ConsoleSession)) == 1, "no new session"
    assert signed_in.get("/console/runs").status_code == 403, "a signed-in browser is refused too"


def test_an_admin_acts_as_a_user_with_a_banner_and_a_user_cannot(app, org, browser):
    user_id, _ = org.add_account()
    user_email = give_password(app, user_id)
    browser.sign_in(give_password(app, org.admin_id))
    acted = browser.submit("/console/act-as", {"email": user_email.upper()}, form_page="/console/runs")
    assert acted.status_code == 302
    page = browser.get("/console/runs").get_data(as_text=True)
    assert "You are acting as <strong>" + user_email in page
    assert "console.act_as" in [entry.action for entry in rows_of(app, AuditEntry)]
    unknown = browser.submit("/console/act-as", {"email": "nobody@elsewhere.test"}, form_page="/console/runs")
    assert unknown.status_code == 403 and "You are acting as <strong>" + user_email in \
        browser.get("/console/runs").get_data(as_text=True), "a refused switch keeps the current one"
    back = browser.submit("/console/act-as", {"email": ""}, form_page="/console/runs")
    assert back.status_code == 302 and "acting as" not in browser.get("/console/runs").get_data(as_text=True)

    user = Browser(app)
    user.sign_in(user_email)
    assert "Act as" not in user.get("/console/runs").get_data(as_text=True), "no act-as choice"
    refused = user.submit("/console/act-as", {"email": email_of(app, org.admin_id)}, form_page="/console/runs")
    assert refused.status_code == 403 and "ManagedAccountId" in refused.get_data(as_text=True)


def test_forgot_password_mails_a_link_through_the_relay_and_answers_the_same_for_unknown_emails(
        make_app, org, smtp_server):
    app = make_app(SMTP_URL=smtp_url(smtp_server))
    email = give_password(app, org.admin_id)
    browser = Browser(app)
    known = browser.submit("/console/forgot-password", {"email": email})
    unknown = browser.submit("/console/forgot-password", {"email": "nobody@acme.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    [message] = [received.parsed() for received in smtp_server.messages]
    assert message["To"] == email
    body = message.get_content()
    link = body[body.index("http://127.0.0.1:8080/console/activate?token="):].split()[0]
    path = link.removeprefix("http://127.0.0.1:8080")
    token = path.split("token=")[1]
    new_password = "a brand new password"
    done = browser.submit("/console/activate", {"token": token, "password": new_password,
                                                "confirmation": new_password}, form_page=path)
    assert done.status_code == 200
    assert browser.sign_in(email, PASSWORD).status_code == 400
    assert browser.sign_in(email, new_password).status_code == 302


def test_the_activation_email_gives_the_console_link_and_activate_account_is_unchanged(make_app, org, smtp_server):
    app = make_app(SMTP_URL=smtp_url(smtp_server))
    client = app.test_client()
    created = client.post("/api/Account", json={"email": "new@acme.test", "activated": False},
                          headers=org.admin_headers)
    assert created.status_code == 200, created.json
    body = smtp_server.messages[0].parsed().get_content()
    api_token = body.split("/api/ActivateAccount?token=")[1].split()[0]
    console_token = body.split("/console/activate?token=")[1].split()[0]
    assert api_token == console_token
    activated = client.get(f"/api/ActivateAccount?token={api_token}")
    assert (activated.status_code, activated.json) == (200, "Account activated")
    again = client.get(f"/api/ActivateAccount?token={api_token}")
    assert again.status_code == 400 and again.json["Msg"] == "The activation link is invalid, already used or expired"
    assert email_of(app, created.json) == "new@acme.test"

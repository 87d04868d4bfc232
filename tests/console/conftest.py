"""A browser's view of the console: a Flask test client that keeps cookies, reads each form's CSRF token from the
page, and signs accounts in with passwords set through the real single-use links."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from canvas.accounts import service as accounts
from canvas.console import service as console
from canvas.models import Account

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    def __init__(self, app):
        self.app = app
        self.client = app.test_client()

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def csrf_token(self, path: str) -> str:
        page = self.client.get(path)
        match = CSRF.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {path}: {page.status_code}"
        return match.group(1)

    def submit(self, path: str, data: dict, form_page: str | None = None):
        """POSTs a form the way a browser does: with the token of the page that shows it."""
        token = self.csrf_token(form_page or path)
        return self.client.post(path, data={"csrf_token": token, **data})

    def sign_in(self, email: str, password: str = PASSWORD):
        return self.submit("/console/sign-in", {"email": email, "password": password})


def email_of(app, account_id: str) -> str:
    with app.extensions["canvas"].db.transaction() as session:
        return session.get(Account, uuid.UUID(account_id)).email


def activation_token(app, account_id: str, ttl: timedelta = timedelta(hours=1)) -> str:
    with app.extensions["canvas"].db.transaction() as session:
        return accounts.create_activation_token(session, uuid.UUID(account_id), ttl)


def give_password(app, account_id: str, password: str = PASSWORD) -> str:
    """The account's console password, set through its single-use link; its e-mail."""
    token = activation_token(app, account_id)
    with app.test_request_context(), app.extensions["canvas"].db.transaction() as session:
        console.set_password_with_token(session, token, password, password)
    return email_of(app, account_id)


def rows_of(app, model, *where) -> list:  # noqa: ANN001
    """The rows of `model` matching `where`, detached from their session (read after the request's commit)."""
    from sqlalchemy import select

    with app.extensions["canvas"].db.transaction() as session:
        rows = session.scalars(select(model).where(*where)).all()
        session.expunge_all()
        return rows


def signed_in(app, account_id: str) -> Browser:  # noqa: ANN001
    """A browser signed in as the account, with a password set through its single-use link."""
    browser = Browser(app)
    assert browser.sign_in(give_password(app, account_id)).status_code == 302
    return browser


def users_workflow(client, org, headers) -> str:  # noqa: ANN001
    """A workflow of a User, from a template its organization's Admin published (a User may not publish)."""
    from tests.api.workflow_helpers import published_template
    from tests.integration.run_helpers import THREE_BLOCKS, chain_template

    template_id = published_template(client, org.admin_headers, chain_template(THREE_BLOCKS))
    answer = client.post("/api/Workflow", json={"workflowTemplateId": template_id, "applications": {}},
                         headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json


@pytest.fixture()
def browser(app) -> Browser:
    return Browser(app)

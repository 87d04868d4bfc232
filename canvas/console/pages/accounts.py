"""The console's accounts pages, for Admins and SuperPartners (issue 20 item 7): the organization's accounts (as GET
Accounts) and those waiting for their activation e-mail to be opened (with a new e-mail if the first was lost), a
new account with its activation e-mail (as POST Account), deactivating an account, and new API keys for an account
(as AccountKeys: the new SecretKey is shown once, on the page that answers the form)."""
from __future__ import annotations

import marshmallow as ma
from flask import g, redirect, request, url_for

from canvas.accounts import service as accounts
from canvas.accounts.schemas import AddAccountSchema
from canvas.auth import account_managers
from canvas.console import forms
from canvas.console.resources import blp, field_errors, render_page
from canvas.errors import BadRequestError, CanvasError
from canvas.extensions import db_session, services
from canvas.models import Role

ACCOUNTS_PAGE_SIZE = 50
# The roles POST Account creates (it refuses Admin: an organization has the Admin `canvas org create` made).
CREATABLE_ROLES = (Role.USER.value, Role.SUPER_PARTNER.value)
# What the new-account form asks for, in the AddAccountApiDto's names (the form's field names too).
ACCOUNT_FORM_FIELDS = ("email", "firstName", "lastName", "phone", "roleName")


def _require_manager() -> None:
    """The API's rule for managing accounts, by the signed-in account's role (as by the key's, acting as or not)."""
    g.principal.require(account_managers("manage accounts"))


def _organization_id():  # noqa: ANN202
    return g.principal.organization_id


@blp.get("/accounts")
def accounts_list():  # noqa: ANN201
    _require_manager()
    errors, rows, total, page = {}, [], 0, 1
    try:
        page = forms.page_number(request.args)
        rows, total = accounts.list_active_accounts(
            db_session(), _organization_id(), {"paged": True, "page": page, "pageSize": ACCOUNTS_PAGE_SIZE})
    except BadRequestError as error:
        errors = field_errors(error)
    pages = forms.page_count(total, ACCOUNTS_PAGE_SIZE)
    return render_page("accounts.html", status=400 if errors else 200, accounts=rows, total=total, page=page,
                       pages=pages, errors=errors, actions=_row_actions(rows),
                       organization=g.signed_in.organization.name,
                       pending=accounts.pending_accounts(db_session(), _organization_id()),
                       resent=_resent_to(request.args.get("resent")))


def _row_actions(rows: list) -> dict:
    """What the signed-in account may do to each listed account, by the services' own rules: (new keys,
    deactivate)."""
    manager = g.signed_in
    actions = {}
    for account in rows:
        may_deactivate = True
        try:
            accounts.check_may_deactivate(manager, account)
        except CanvasError:
            may_deactivate = False
        actions[account.id] = (accounts.may_change_account(manager, account), may_deactivate)
    return actions


@blp.route("/accounts/new", methods=["GET", "POST"])
def create_account():  # noqa: ANN201
    _require_manager()
    typed = {name: request.form.get(name, "") for name in ACCOUNT_FORM_FIELDS}
    errors, status = {}, 200
    if request.method == "POST":
        session = db_session()
        try:
            account = _create_and_mail(session, typed)
            session.commit()
            return render_page("account_created.html", account=account)
        except CanvasError as error:
            session.rollback()
            errors, status = field_errors(error), error.status
    return render_page("account_new.html", status=status, errors=errors, typed=typed, roles=CREATABLE_ROLES)


def _create_and_mail(session, typed: dict):  # noqa: ANN001, ANN202
    """POST Account with `activated: false`: the account becomes active when its owner opens the mailed link and
    sets a console password."""
    data = {**_account_request(typed), "activated": False}
    account = accounts.create_account(session, _organization_id(), data)
    accounts.send_activation(session, services().settings, account)
    return account


def _account_request(typed: dict) -> dict:
    """The form read as POST Account reads its body (AddAccountApiDto's limits); an empty field is not sent."""
    try:
        return AddAccountSchema().load({name: value.strip() for name, value in typed.items() if value.strip()})
    except ma.ValidationError as error:
        field, messages = next(iter(error.normalized_messages().items()))
        message = messages[0] if isinstance(messages, list) else str(messages)
        raise BadRequestError(f"{field}: {message}", field=field) from None


@blp.route("/accounts/<account_id>/deactivate", methods=["GET", "POST"])
def deactivate_account(account_id: str):  # noqa: ANN201
    _require_manager()
    session = db_session()
    target = accounts.account_of_organization(session, _organization_id(), account_id)
    accounts.check_may_deactivate(g.signed_in, target)  # refused before asking, not after
    if request.method == "POST":
        accounts.deactivate_account(session, g.signed_in, target.id)
        session.commit()
        return render_page("account_deactivated.html", account=target)
    return render_page("account_confirm.html", account=target, action="deactivate",
                       form_action=url_for("console.deactivate_account", account_id=target.id))


@blp.post("/accounts/<account_id>/activation")
def resend_activation(account_id: str):  # noqa: ANN201
    _require_manager()
    session = db_session()
    target = accounts.resend_activation(session, services().settings, g.signed_in, account_id)
    session.commit()
    return redirect(url_for("console.accounts_list", resent=target.id))


def _resent_to(account_id: str | None) -> str | None:
    """The e-mail address of the account just sent a new activation e-mail (?resent=<id>), if it is one of the
    organization's."""
    if not account_id:
        return None
    try:
        return accounts.account_of_organization(db_session(), _organization_id(), account_id).email
    except CanvasError:
        return None


@blp.route("/accounts/<account_id>/keys", methods=["GET", "POST"])
def rotate_keys(account_id: str):  # noqa: ANN201
    _require_manager()
    session = db_session()
    target = accounts.account_of_organization(session, _organization_id(), account_id)
    accounts.check_may_issue_keys(g.principal.key_role, target)  # refused before asking, not after
    if request.method == "POST":
        keys = accounts.issue_keys_for(session, _organization_id(), g.principal.key_role, target.id)
        session.commit()
        return render_page("account_keys.html", account=target, keys=keys)
    return render_page("account_confirm.html", account=target, action="keys",
                       form_action=url_for("console.rotate_keys", account_id=target.id))

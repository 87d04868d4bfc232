"""Resolves the caller once per request, before any view runs (the Flask tutorial's load_logged_in_user)."""
from __future__ import annotations

from flask import current_app, g, request

from canvas.accounts import service as accounts
from canvas.auth.principal import Principal
from canvas.endpoint import endpoint_meta
from canvas.errors import ForbiddenError
from canvas.extensions import db_session
from canvas.models.account import Account

CONSUMER_HEADER = "Consumer"
SECRET_HEADER = "SecretKey"
MANAGED_ACCOUNT_HEADER = "ManagedAccountId"


def resolve_canvas_principal() -> None:
    """For Canvas endpoints that authenticate: 401 for bad keys, then 403 for the IP allowlist and ManagedAccountId."""
    if request.routing_exception is not None or request.url_rule is None:
        return
    meta = endpoint_meta(current_app.view_functions[request.endpoint], request.method)
    if meta is None or not meta.authenticate:
        return
    session = db_session()
    key_account = accounts.authenticate(session, request.headers.get(CONSUMER_HEADER),
                                        request.headers.get(SECRET_HEADER))
    g.principal = principal_for(session, key_account, request.headers.get(MANAGED_ACCOUNT_HEADER))
    if meta.role is not None:
        g.principal.require(meta.role)


def principal_for(session, key_account: Account, managed_account_id: str | None) -> Principal:  # noqa: ANN001
    check_ip_allowlist(key_account)
    acting = key_account
    if managed_account_id is not None and managed_account_id.strip():
        acting = accounts.resolve_managed_account(session, key_account, managed_account_id)
    return Principal(key_account_id=key_account.id, key_role=key_account.role_enum, account_id=acting.id,
                     organization_id=acting.organization_id)


def check_ip_allowlist(account: Account) -> None:
    allowlist = account.organization.ip_allowlist or []
    address = request.remote_addr
    if not accounts.ip_allowed(allowlist, address):
        raise ForbiddenError(f"Calls from IP address {address} are not allowed for this organization")

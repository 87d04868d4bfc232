"""v2 authentication: HTTP Basic with an account's e-mail and one of its API keys (SecretKey), resolved once
before any /v2 view into the same Principal the Canvas dialect uses, with the same tenancy rules."""
from __future__ import annotations

import uuid

from flask import g, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import Authorization

from canvas.accounts.service import record_keys_change
from canvas.auth.keys import issue_key, secret_matches
from canvas.auth.resolver import MANAGED_ACCOUNT_HEADER, principal_for
from canvas.errors import AuthenticationError
from canvas.extensions import db_session
from canvas.models import Account, ApiKey
from canvas.web import V2_PREFIX, is_under

BAD_CREDENTIALS_MESSAGE = "E-mail or API key are incorrect or missing (HTTP Basic: -u EMAIL:APIKEY)"
# Paths under /v2 that authenticate otherwise: a webhook's secret URL is its own credential.
PUBLIC_PREFIXES = (V2_PREFIX + "/hooks/",)


def resolve_v2_principal() -> None:
    """Before every /v2 view: 401 for missing or wrong Basic credentials, then the allowlist and ManagedAccountId."""
    if not _is_protected_v2_path(request.path) or request.routing_exception is not None:
        return
    credentials = _authorization()
    if credentials is None or credentials.type != "basic":
        raise AuthenticationError(BAD_CREDENTIALS_MESSAGE)
    session = db_session()
    account = authenticate_basic(session, credentials.username, credentials.password)
    g.principal = principal_for(session, account, request.headers.get(MANAGED_ACCOUNT_HEADER))


def _authorization() -> Authorization | None:
    """The Authorization header as werkzeug reads it; None when it cannot be read. werkzeug answers None for most
    malformed Basic credentials but lets base64's ValueError out for text that is not ASCII ("Basic øø"): a 500."""
    try:
        return request.authorization
    except ValueError:
        return None


def _is_protected_v2_path(path: str) -> bool:
    if not is_under(path, V2_PREFIX):
        return False
    return not path.startswith(PUBLIC_PREFIXES)


def authenticate_basic(session: Session, email: str | None, secret: str | None) -> Account:
    """The active account with this e-mail whose keys include this secret; one answer for every failure."""
    if not email or not secret:
        raise AuthenticationError(BAD_CREDENTIALS_MESSAGE)
    account = session.scalar(select(Account).where(Account.email == email.strip().lower()))
    if account is None or not account.active:
        raise AuthenticationError(BAD_CREDENTIALS_MESSAGE)
    keys = session.scalars(select(ApiKey).where(ApiKey.account_id == account.id))
    if not any(secret_matches(secret.strip(), key.secret_salt, key.secret_hash) for key in keys):
        raise AuthenticationError(BAD_CREDENTIALS_MESSAGE)
    return account


def add_api_key(session: Session, account_id: uuid.UUID) -> tuple[ApiKey, str]:
    """A further key for the account, beside its others (rotating keys in the Canvas dialect revokes them all)."""
    issued = issue_key()
    key = ApiKey(account_id=account_id, consumer=issued.consumer, secret_salt=issued.salt,
                 secret_hash=issued.secret_hash)
    session.add(key)
    session.flush()
    record_keys_change(session, "account.keys.add", account_id)
    return key, issued.secret

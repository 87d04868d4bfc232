"""Account and key operations as plain functions over a session."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canvas.accounts import mail
from canvas.audit import service as audit
from canvas.auth.keys import issue_key, secret_matches
from canvas.console.links import console_url
from canvas.db import wait_inside_transaction
from canvas.errors import AuthenticationError, BadRequestError, ConflictError, ForbiddenError, NotFoundError
from canvas.models import Account, ActivationToken, ApiKey, Organization, Role
from canvas.models.base import utcnow
from canvas.schema_fields import parse_id

BAD_KEYS_MESSAGE = "Consumer or SecretKey are incorrect or missing"
BAD_MANAGED_ACCOUNT_MESSAGE = "ManagedAccountId does not identify an account you may manage"
ADMIN_ROLE_MESSAGE = "Role Admin is not supported. Please use SuperPartner or User"
DUPLICATE_ACCOUNT_MESSAGE = "Account has already been created"
BAD_ACTIVATION_MESSAGE = "The activation link is invalid, already used or expired"
SELF_DEACTIVATION_MESSAGE = "You cannot deactivate your own account"


@dataclass(frozen=True)
class NewKeys:
    account_id: uuid.UUID
    consumer: str
    secret_key: str


@dataclass(frozen=True)
class NewOrganization:
    organization_id: uuid.UUID
    account_id: uuid.UUID
    consumer: str
    secret_key: str


def create_organization(session: Session, name: str, admin_email: str) -> NewOrganization:
    """An organization with an active Admin account and its first API keys."""
    if not name.strip():
        raise BadRequestError("Organization name must not be empty", field="name")
    if len(name.strip()) > ORGANIZATION_NAME_MAX_LENGTH:
        raise BadRequestError(f"Organization name must have at most {ORGANIZATION_NAME_MAX_LENGTH} characters",
                              field="name")
    organization = Organization(name=name.strip(), ip_allowlist=[])
    session.add(organization)
    session.flush()
    audit.record_change(session, "organization.create", "organization", organization, {},
                        organization_id=organization.id)
    admin = _add_account(session, organization.id, admin_email, Role.ADMIN, active=True)
    keys = issue_keys(session, admin.id)
    return NewOrganization(organization.id, admin.id, keys.consumer, keys.secret_key)


def _add_account(session: Session, organization_id: uuid.UUID, email: str, role: Role, **fields) -> Account:
    normalised = normalise_email(email)
    if session.scalar(select(func.count()).select_from(Account).where(Account.email == normalised)):
        raise ConflictError(DUPLICATE_ACCOUNT_MESSAGE, field="email")
    account = Account(organization_id=organization_id, email=normalised, role=role.value, **fields)
    session.add(account)
    try:
        session.flush()
    except IntegrityError:  # a concurrent request registered the same e-mail first
        raise ConflictError(DUPLICATE_ACCOUNT_MESSAGE, field="email") from None
    audit.record_change(session, "account.create", "account", account, {}, organization_id=organization_id)
    return account


# One mailbox: a local part and a domain, without what would make it several addresses or a display form when it
# goes into a mail's To header ("a@b.c,d@e.f" mailed two, "<a@b.c>", quotes, a second @)
_ONE_MAILBOX = re.compile(r"[^@\s,;<>()\"\[\]\\:]+@[^@\s,;<>()\"\[\]\\:]+")
EMAIL_MAX_LENGTH = 320  # account.email
ORGANIZATION_NAME_MAX_LENGTH = 200  # organization.name


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > EMAIL_MAX_LENGTH:
        raise BadRequestError(f"email: at most {EMAIL_MAX_LENGTH} characters", field="email")
    if not _ONE_MAILBOX.fullmatch(email):
        raise BadRequestError(f"email: '{email}' is not a valid e-mail address", field="email")
    return email


def issue_keys(session: Session, account_id: uuid.UUID) -> NewKeys:
    """New keys for an account; any earlier keys stop working in the same transaction."""
    session.execute(delete(ApiKey).where(ApiKey.account_id == account_id))
    issued = issue_key()
    session.add(ApiKey(account_id=account_id, consumer=issued.consumer, secret_salt=issued.salt,
                       secret_hash=issued.secret_hash))
    session.flush()
    record_keys_change(session, "account.keys.rotate", account_id)
    return NewKeys(account_id, issued.consumer, issued.secret)


def record_keys_change(session: Session, action: str, account_id: uuid.UUID) -> None:
    """That an account's keys changed; never the keys (a Consumer is only half a key, but it names the new one)."""
    account = session.get(Account, account_id)
    audit.record(session, action, "account", account_id, {"apiKeys": audit.secret_changed()},
                 organization_id=account.organization_id if account is not None else None)


def issue_keys_for(session: Session, organization_id: uuid.UUID, key_role: Role, account_id: uuid.UUID) -> NewKeys:
    """AccountKeys: new keys for an account of the caller's organization. The account is named in the body, not by
    ManagedAccountId, so an unknown one is a 404 about that account; another organization's reads as unknown."""
    target = session.get(Account, account_id)
    if target is None or target.organization_id != organization_id:
        raise NotFoundError(f"Unknown account {account_id}", field="accountId")
    check_may_issue_keys(key_role, target)
    return issue_keys(session, target.id)


def check_may_issue_keys(key_role: Role, target: Account) -> None:
    if target.role_enum is Role.ADMIN and key_role is not Role.ADMIN:
        raise ForbiddenError("Only an Admin may issue keys for an Admin account")


def rotate_keys(session: Session, account_id: uuid.UUID) -> NewKeys:
    if session.get(Account, account_id) is None:
        raise NotFoundError(f"Unknown account {account_id}")
    return issue_keys(session, account_id)


def authenticate(session: Session, consumer: str | None, secret: str | None) -> Account:
    """The active account owning these keys, or AuthenticationError (the same answer for every kind of failure)."""
    if not consumer or not secret:
        raise AuthenticationError(BAD_KEYS_MESSAGE)
    key = session.scalar(select(ApiKey).where(ApiKey.consumer == consumer.strip().upper()))
    if key is None or not secret_matches(secret.strip(), key.secret_salt, key.secret_hash):
        raise AuthenticationError(BAD_KEYS_MESSAGE)
    if not key.account.active:
        raise AuthenticationError(BAD_KEYS_MESSAGE)
    return key.account


def resolve_managed_account(session: Session, key_account: Account, raw_id: str) -> Account:
    """The account named by ManagedAccountId, if the key's account may act as it; one answer for every refusal."""
    try:
        managed_id = parse_id(raw_id.strip())  # a header's surrounding spaces are HTTP's, not the id's
    except ValueError:
        raise ForbiddenError(BAD_MANAGED_ACCOUNT_MESSAGE) from None
    if managed_id == key_account.id:
        return key_account
    if not key_account.role_enum.may_manage_accounts:
        raise ForbiddenError(BAD_MANAGED_ACCOUNT_MESSAGE)
    managed = session.get(Account, managed_id)
    if managed is None or not managed.active or managed.organization_id != key_account.organization_id:
        raise ForbiddenError(BAD_MANAGED_ACCOUNT_MESSAGE)
    return managed


def ip_allowed(allowlist: list[str], address: str | None) -> bool:
    if not allowlist:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in allowlist)


def set_ip_allowlist(session: Session, organization_id: uuid.UUID, cidrs: list[str]) -> list[str]:
    normalised = []
    for cidr in cidrs:
        try:
            normalised.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            raise BadRequestError(f"'{cidr}' is not an IP address or CIDR range", field="cidrs") from None
    organization = session.get(Organization, organization_id)
    if organization is None:
        raise NotFoundError(f"Unknown organization {organization_id}")
    before = audit.snapshot(organization)
    organization.ip_allowlist = normalised
    audit.record_change(session, "organization.ip_allowlist.update", "organization", organization, before,
                        organization_id=organization.id)
    return normalised


def list_active_accounts(session: Session, organization_id: uuid.UUID,
                         args: dict | None = None) -> tuple[list[Account], int]:
    """The organization's active accounts, oldest first (e-mails are unique: they break ties), all of them or the
    page `args` asks for; and how many there are in all."""
    from canvas.workflows.service import list_of  # the paging of every Canvas list

    query = select(Account).where(Account.organization_id == organization_id, Account.active.is_(True))
    return list_of(session, query, (Account.date_created, Account.email), args)


def create_account(session: Session, organization_id: uuid.UUID, data: dict) -> Account:
    role = _requested_role(data.get("roleName"))
    return _add_account(
        session, organization_id, data["email"], role,
        first_name=data.get("firstName") or "", last_name=data.get("lastName") or "",
        phone=data.get("phone"), country_key=data.get("countryKey"),
        global_notifications=bool(data.get("globalNotifications")),
        default_notification_email=data.get("defaultNotificationEmail"),
        active=data.get("activated", True) is not False,
    )


def _requested_role(role_name: str | None) -> Role:
    if role_name is None or role_name == "":
        return Role.USER
    matched = next((role for role in Role if role.value.lower() == role_name.strip().lower()), None)
    if matched is Role.ADMIN:
        raise BadRequestError(ADMIN_ROLE_MESSAGE, field="roleName")
    if matched is None:
        raise BadRequestError(f"roleName: '{role_name}' is not a role. Please use SuperPartner or User",
                              field="roleName")
    return matched


def create_activation_token(session: Session, account_id: uuid.UUID, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    session.add(ActivationToken(account_id=account_id, token_hash=token_hash(token), expires_at=utcnow() + ttl))
    session.flush()
    return token


def activate_account(session: Session, token: str, now: datetime | None = None) -> Account:
    now = now or utcnow()
    record = session.scalar(select(ActivationToken).where(ActivationToken.token_hash == token_hash(token or "")))
    if record is None or record.used_at is not None or record.expires_at <= now:
        raise BadRequestError(BAD_ACTIVATION_MESSAGE, parameter="token")
    record.used_at = now
    account = session.get(Account, record.account_id)
    before = audit.snapshot(account)
    account.active = True
    audit.record_change(session, "account.activate", "account", account, before,
                        organization_id=account.organization_id)
    return account


def void_unused_links(session: Session, account_id: uuid.UUID) -> None:
    """The account's activation and password-reset links not used yet stop working: an old e-mail is worth nothing
    once a new one is sent, the account deactivated, or its password set."""
    session.execute(delete(ActivationToken).where(ActivationToken.account_id == account_id,
                                                  ActivationToken.used_at.is_(None)))


def issue_activation_token(session: Session, settings: dict, account_id: uuid.UUID) -> str:
    """A single-use activation token that lives CANVAS_ACTIVATION_TTL_HOURS."""
    return create_activation_token(session, account_id, timedelta(hours=settings["ACTIVATION_TTL_HOURS"]))


def send_activation(session: Session, settings: dict, account: Account) -> None:
    """A single-use activation link mailed through the platform relay: the Canvas link and the console's, where the
    account also sets its password (the same token). A relay failure is a 503 and the caller's transaction, with
    the account, is rolled back."""
    token = issue_activation_token(session, settings, account.id)
    link = f"{settings['PUBLIC_URL'].rstrip('/')}/api/ActivateAccount?token={token}"
    wait_inside_transaction(session)
    mail.send_activation_link(settings, account.email, link, console_link=console_url(settings, token))


PENDING_SHOWN = 200  # pending accounts listed at once: more means something else is wrong


def _waits_for_activation():  # noqa: ANN202 - a SQL condition on Account
    """Created inactive, with a link nobody has used yet. A deactivated account is not waiting: deactivation voids
    its unused links."""
    unused_link = select(ActivationToken.id).where(ActivationToken.account_id == Account.id,
                                                   ActivationToken.used_at.is_(None)).exists()
    return Account.active.is_(False) & unused_link


def pending_accounts(session: Session, organization_id: uuid.UUID) -> list[Account]:
    """The organization's accounts waiting for their owner to open the activation e-mail, oldest first (GET
    Accounts lists active accounts only)."""
    return list(session.scalars(select(Account).where(Account.organization_id == organization_id,
                                                      _waits_for_activation())
                                .order_by(Account.date_created, Account.email).limit(PENDING_SHOWN)))


def resend_activation(session: Session, settings: dict, manager: Account, account_id: uuid.UUID | str) -> Account:
    """A new activation e-mail for an account still waiting for one to be opened; the earlier e-mails' links stop
    working (one live link at a time). Only an Admin does this for an Admin account."""
    target = account_of_organization(session, manager.organization_id, account_id)
    if not may_change_account(manager, target):
        raise ForbiddenError("Only an Admin may send an Admin account's activation e-mail")
    if session.scalar(select(Account.id).where(Account.id == target.id, _waits_for_activation())) is None:
        raise ConflictError(f"Account {target.email} is not waiting for activation")
    void_unused_links(session, target.id)
    send_activation(session, settings, target)
    audit.record(session, "account.activation.resend", "account", target.id, organization_id=target.organization_id)
    return target


def account_of_organization(session: Session, organization_id: uuid.UUID, account_id: uuid.UUID | str) -> Account:
    """An account of this organization; another organization's reads as unknown (as AccountKeys answers)."""
    try:
        target = session.get(Account, parse_id(account_id))
    except ValueError:
        target = None
    if target is None or target.organization_id != organization_id:
        raise NotFoundError(f"Unknown account {account_id}", field="accountId")
    return target


def may_change_account(manager: Account, target: Account) -> bool:
    """AccountKeys' rule for changing another account: only an Admin changes an Admin account."""
    return target.role_enum is not Role.ADMIN or manager.role_enum is Role.ADMIN


def check_may_deactivate(manager: Account, target: Account) -> None:
    """Nobody deactivates itself (a slip must not lock an organization's last manager out), and only an Admin
    deactivates an Admin."""
    if target.id == manager.id:
        raise ForbiddenError(SELF_DEACTIVATION_MESSAGE)
    if not may_change_account(manager, target):
        raise ForbiddenError("Only an Admin may deactivate an Admin account")


def deactivate_account(session: Session, manager: Account, account_id: uuid.UUID | str) -> Account:
    """An account of the manager's organization made inactive: its API keys and console password stop working, its
    console sessions end (and a session acting as it falls back to its own account), its unused activation and
    password-reset links are voided so that an old e-mail cannot make it active again, and its workflows' schedules
    stop starting runs (the scheduler records each occurrence skipped, with the reason)."""
    from canvas.console.service import end_sessions_of  # here: the console's service imports this module

    target = account_of_organization(session, manager.organization_id, account_id)
    check_may_deactivate(manager, target)
    before = audit.snapshot(target)
    target.active = False
    void_unused_links(session, target.id)
    end_sessions_of(session, target.id)
    audit.record_change(session, "account.deactivate", "account", target, before,
                        organization_id=target.organization_id)
    return target


def token_hash(token: str) -> bytes:
    """What the database keeps of a single-use or session token: its SHA-256 (the token itself is never stored)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

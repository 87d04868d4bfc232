"""The console's own logic over a database session: passwords, browser sessions, acting as another account, and the
runs list across an account's workflows. Everything else the pages do goes through the Canvas services."""
from __future__ import annotations

import io
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import islice

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session

from canvas.accounts import mail
from canvas.accounts import service as accounts
from canvas.audit import service as audit
from canvas.audit.actor import CONSOLE, AuditActor
from canvas.console.links import console_url
from canvas.db import wait_inside_transaction
from canvas.errors import (
    AuthenticationError,
    BadRequestError,
    CanvasError,
    ForbiddenError,
)
from canvas.execution.context import BlockError
from canvas.execution.serialization import iter_json_lines
from canvas.models import (
    Account,
    BlockOutput,
    ConsolePassword,
    ConsoleSession,
    Workflow,
    WorkflowRun,
)
from canvas.models.base import utcnow
from canvas.runs import service as runs
from canvas.storage.blob import BlobStoreError
from canvas.workflows import service as workflows

log = logging.getLogger(__name__)

BAD_SIGN_IN_MESSAGE = "The e-mail or the password is not right"
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024  # argon2 takes any length; a bound keeps one request from costing much
RUNS_PAGE_SIZE = 50
# argon2-cffi's defaults (RFC 9106's low-memory profile: argon2id, 64 MiB, 3 passes) are kept on purpose: they are
# the library's judgement, raised with its releases; check_needs_rehash upgrades stored hashes on sign-in.
_hasher = PasswordHasher()
# Verified when the e-mail is unknown, so that a sign-in takes as long whether or not the account exists.
_UNKNOWN_ACCOUNT_HASH = _hasher.hash(secrets.token_urlsafe(16))


# --- passwords -------------------------------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str, confirmation: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise BadRequestError(f"The password must have at least {PASSWORD_MIN_LENGTH} characters", field="password")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise BadRequestError(f"The password must have at most {PASSWORD_MAX_LENGTH} characters", field="password")
    if password != confirmation:
        raise BadRequestError("The two passwords differ", field="confirmation")


def set_password_with_token(session: Session, token: str, password: str, confirmation: str) -> Account:
    """The single-use link of an activation or reset e-mail: the account's new password, and the account active
    (the same consumption of the token as GET ActivateAccount)."""
    check_new_password(password, confirmation)
    account = accounts.activate_account(session, token)
    _store_password(session, account.id, password)
    accounts.void_unused_links(session, account.id)  # an older reset e-mail must not set another password
    audit.record(session, "account.password.set", "account", account.id, {"password": audit.secret_changed()},
                 organization_id=account.organization_id, actor=_actor(account))
    end_sessions_of(session, account.id)  # a new password signs every browser out
    return account


def _store_password(session: Session, account_id: uuid.UUID, password: str) -> None:
    stored = session.get(ConsolePassword, account_id)
    if stored is None:
        stored = ConsolePassword(account_id=account_id)
        session.add(stored)
    stored.password_hash = hash_password(password)
    stored.date_set = utcnow()
    session.flush()


def authenticate(session: Session, email: str, password: str) -> Account:
    """The active account with this e-mail and password, or AuthenticationError: one answer for an unknown e-mail,
    a wrong password, no password set and a deactivated account."""
    account = session.scalar(select(Account).where(Account.email == email))
    stored = session.get(ConsolePassword, account.id) if account is not None else None
    if stored is None:
        _password_matches(_UNKNOWN_ACCOUNT_HASH, password)  # only for its time
        raise AuthenticationError(BAD_SIGN_IN_MESSAGE, field="password")
    if not _password_matches(stored.password_hash, password) or not account.active:
        raise AuthenticationError(BAD_SIGN_IN_MESSAGE, field="password")
    if _hasher.check_needs_rehash(stored.password_hash):
        stored.password_hash = hash_password(password)
    return account


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def send_password_reset(session: Session, settings: dict, email: str) -> None:
    """A reset link for an active account with this e-mail; nothing for any other. The caller answers the same
    either way, and a relay failure is only logged: a different answer would tell which e-mails have accounts."""
    account = session.scalar(select(Account).where(Account.email == email))
    if account is None or not account.active:
        return
    token = accounts.create_activation_token(session, account.id,
                                             timedelta(hours=settings["CONSOLE_RESET_TTL_HOURS"]))
    wait_inside_transaction(session)  # the link works only if the e-mail left
    try:
        mail.send_password_reset_link(settings, account.email, console_url(settings, token))
    except CanvasError as error:
        log.warning("password reset e-mail not sent: %s", error.message)


# --- browser sessions ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie only; the database keeps its hash
    record: ConsoleSession


def start_session(session: Session, account: Account, lifetime: timedelta) -> NewSession:
    token = secrets.token_urlsafe(32)
    record = ConsoleSession(token_hash=accounts.token_hash(token), account_id=account.id,
                            csrf_token=secrets.token_urlsafe(32), expires_at=utcnow() + lifetime)
    session.add(record)
    session.flush()
    audit.record(session, "console.sign_in", "account", account.id, {}, organization_id=account.organization_id,
                 actor=_actor(account))
    return NewSession(token, record)


def session_for(session: Session, token: str | None, now: datetime | None = None) -> ConsoleSession | None:
    """The live session of a cookie's token; an expired one, or one of an account deactivated since, is ended."""
    if not token:
        return None
    record = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == accounts.token_hash(token)))
    if record is None:
        return None
    account = session.get(Account, record.account_id)
    if account is not None and account.active and record.expires_at > (now or utcnow()):
        return record
    if account is not None and not account.active:
        end_sessions_of(session, account.id)
    else:
        session.delete(record)
    session.commit()
    return None


def end_session(session: Session, record: ConsoleSession) -> None:
    session.delete(record)


def end_sessions_of(session: Session, account_id: uuid.UUID) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.account_id == account_id))


def act_as(session: Session, record: ConsoleSession, email: str | None) -> Account:
    """The session acts as the account of its organization with this e-mail (same rules, and the same one refusal,
    as ManagedAccountId), or as its own again when `email` is empty."""
    signed_in = session.get(Account, record.account_id)
    acting = signed_in
    if email and email.strip():
        acting = accounts.resolve_managed_account(session, signed_in, str(_account_id_of(session, email)))
    record.acting_as_id = None if acting.id == signed_in.id else acting.id
    audit.record(session, "console.act_as", "account", acting.id, {}, organization_id=signed_in.organization_id,
                 actor=_actor(signed_in, record.acting_as_id))
    return acting


def _account_id_of(session: Session, email: str) -> uuid.UUID:
    """The id of the account with this e-mail; an unknown or malformed one is refused as ManagedAccountId refuses."""
    try:
        normalised = accounts.normalise_email(email)
    except BadRequestError:
        raise ForbiddenError(accounts.BAD_MANAGED_ACCOUNT_MESSAGE) from None
    account_id = session.scalar(select(Account.id).where(Account.email == normalised))
    if account_id is None:
        raise ForbiddenError(accounts.BAD_MANAGED_ACCOUNT_MESSAGE)
    return account_id


def _actor(account: Account, acting_as_id: uuid.UUID | None = None) -> AuditActor:
    from flask import g, has_request_context

    return AuditActor(kind=CONSOLE, account_id=account.id, acting_as_id=acting_as_id,
                      organization_id=account.organization_id,
                      request_id=g.get("request_id") if has_request_context() else None)


# --- runs ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunFilters:
    status: str | None = None
    workflow_id: uuid.UUID | None = None
    trigger: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    failed_first: bool = True


def list_account_runs(session: Session, account_id: uuid.UUID, filters: RunFilters,
                      page: int) -> tuple[list[WorkflowRun], int]:
    """A page of the account's runs (the runs get_run lets it read), failed first then newest first by default,
    through the deferred-join paging of every list (only the page's rows are read from the table)."""
    query = select(WorkflowRun).where(WorkflowRun.account_id == account_id)
    if filters.status:
        query = query.where(WorkflowRun.status == filters.status)
    if filters.workflow_id:
        query = query.where(WorkflowRun.workflow_id == filters.workflow_id)
    if filters.trigger:
        query = query.where(WorkflowRun.trigger == filters.trigger)
    if filters.since:
        query = query.where(WorkflowRun.date_queued >= filters.since)
    if filters.until:
        query = query.where(WorkflowRun.date_queued < filters.until)
    order = list(runs.NEWEST_FIRST)
    if filters.failed_first:
        order.insert(0, case((WorkflowRun.status == "Failed", 0), else_=1).asc())
    return workflows.page_of(session, query, order, page, RUNS_PAGE_SIZE)


WORKFLOW_CHOICES_LIMIT = 200  # more than this, and the runs filter asks for a workflow id instead of a list


def workflow_choices(session: Session, account_id: uuid.UUID) -> dict[uuid.UUID, str] | None:
    """The account's workflows (deleted ones too: their runs stay listed) by name, for the runs filter; None when
    there are too many to list in a page."""
    rows = session.execute(select(Workflow.id, Workflow.name).where(Workflow.account_id == account_id)
                           .order_by(Workflow.name, Workflow.id).limit(WORKFLOW_CHOICES_LIMIT + 1)).all()
    return None if len(rows) > WORKFLOW_CHOICES_LIMIT else {row.id: row.name for row in rows}


def workflow_names(session: Session, workflow_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of these workflows (a page's), by id."""
    if not workflow_ids:
        return {}
    rows = session.execute(select(Workflow.id, Workflow.name).where(Workflow.id.in_(workflow_ids)))
    return {row.id: row.name for row in rows}


# --- run detail extras -----------------------------------------------------------------------------------------------

PREVIEW_RECORDS = 10
# The preview reads at most this much of an output, whatever its size: the run detail stays fast with a big output.
PREVIEW_BYTES = 256 * 1024
PREVIEW_CELL_CHARACTERS = 200
PREVIEWS_KEPT = 64  # per API process; a preview is at most PREVIEW_RECORDS rows of cells cut to the length above
COMPARE_CHOICES = 20


@dataclass(frozen=True)
class OutputPreview:
    """What the run detail shows of a stored output: a file's download only; the first records of a records output
    as a table (columns in the order they first appear), or why they cannot be shown."""
    kind: str = "records"
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    problem: str | None = None


def output_previews(store, run: WorkflowRun) -> dict[int, OutputPreview]:  # noqa: ANN001 - a BlobStore
    """Previews of the run's succeeded blocks' outputs, by block number."""
    return {block.number: preview_records(store, block.output) if block.output.kind == "records"
            else OutputPreview(kind="file") for block in run.blocks
            if block.status == "Succeeded" and block.output is not None and block.output.kind != "none"}


def preview_records(store, output: BlockOutput) -> OutputPreview:  # noqa: ANN001
    try:
        return _stored_preview(store, output.blob_key, output.sha256, output.size, output.record_count)
    except (CanvasError, BlobStoreError, BlockError) as error:  # a missing blob, an unreachable store, bad lines
        return OutputPreview(problem=f"The output cannot be previewed: {getattr(error, 'message', error)}")


@lru_cache(maxsize=PREVIEWS_KEPT)
def _stored_preview(store, blob_key: str, sha256: str, size: int,  # noqa: ANN001 - a BlobStore
                    record_count: int | None) -> OutputPreview:
    """The preview of one stored output, kept: a running run's page is drawn again every few seconds by each
    browser showing it, and an output never changes under its key and digest. Not kept when reading it failed."""
    records = list(islice(iter_json_lines(lambda: io.BytesIO(_whole_lines_of_head(store, blob_key, size))),
                          PREVIEW_RECORDS))
    if not records and record_count:
        return OutputPreview(problem="The first record is too large to preview: download the output to read it.")
    columns = list(dict.fromkeys(name for record in records for name in record))
    return OutputPreview(columns=columns, rows=[[_cell(record.get(name)) for name in columns] for record in records])


def _whole_lines_of_head(store, blob_key: str, size: int) -> bytes:  # noqa: ANN001
    """At most PREVIEW_RECORDS whole lines of the output's first PREVIEW_BYTES: only those are decoded."""
    with store.open(blob_key) as stream:
        head = stream.read(PREVIEW_BYTES)
    whole = head if size <= PREVIEW_BYTES else head[:head.rfind(b"\n") + 1]
    lines = whole.split(b"\n", PREVIEW_RECORDS)
    return whole if len(lines) <= PREVIEW_RECORDS else b"\n".join(lines[:PREVIEW_RECORDS]) + b"\n"


def _cell(value: object) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= PREVIEW_CELL_CHARACTERS else text[:PREVIEW_CELL_CHARACTERS - 1] + "…"


def download_name(output: BlockOutput) -> str:
    """A file output's own name; records are saved as JSON lines named after the run and block."""
    return output.file_name or f"run-{output.run_id}-block-{output.number}.jsonl"


@dataclass(frozen=True)
class ComparableRun:
    run_id: uuid.UUID
    date_created: datetime
    dry_run: bool


def comparable_runs(session: Session, output: BlockOutput) -> list[ComparableRun]:
    """The newest other runs with a stored output of the same block (by its uniqueBlockId, as the workflow keeps
    it across upgrades), for the compare form to offer."""
    rows = session.execute(
        select(BlockOutput.run_id, BlockOutput.date_created, BlockOutput.dry_run)
        .where(BlockOutput.workflow_id == output.workflow_id, BlockOutput.unique_block_id == output.unique_block_id,
               BlockOutput.run_id != output.run_id)
        .order_by(BlockOutput.date_created.desc()).limit(COMPARE_CHOICES))
    return [ComparableRun(row.run_id, row.date_created, row.dry_run) for row in rows]


def workflow_blocks(session: Session, workflow_id: uuid.UUID) -> list[tuple[int, str]]:
    """The workflow's blocks as (number, name), for the run forms' block choices."""
    workflow = session.get(Workflow, workflow_id)
    chain = workflow.chain if workflow is not None else []
    return [(number, entry.get("blockName") or entry.get("block") or f"Block {number}")
            for number, entry in enumerate(chain, start=1)]

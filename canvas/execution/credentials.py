"""What a block run needs from the account's side: decrypted credentials (in memory only), the secrets to redact,
the workflow's time zone, and marking an application faulted when its credentials are refused."""
from __future__ import annotations

import json
import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from canvas.applications import redaction
from canvas.applications import service as applications
from canvas.catalog.definition import PLATFORM_KIND
from canvas.errors import ForbiddenError
from canvas.execution.context import PLATFORM_RELAY, BlockError
from canvas.execution.registry import UnknownBlockError, get_block
from canvas.models import Account, RegisteredApplication, Workflow
from canvas.secrets import SecretDecryptError

log = logging.getLogger(__name__)
KEYS_DIFFER = ("none of this worker's keys (CANVAS_SECRET_KEYS, else the key file of its data directory) is the one "
               "they were encrypted with; give every worker the API's keys")
API_KEYS_DIFFER = ("none of this API's keys (CANVAS_SECRET_KEYS, else the key file of its data directory) is the one "
                   "they were encrypted with, and what it registers now the other machines cannot decrypt; give every "
                   "API and worker the same keys")


def for_block(services, state, entry: dict) -> tuple[dict | None, list[str]]:  # noqa: ANN001
    """The decrypted credentials of the application bound to this block, and the values to keep out of logs."""
    short_name = entry.get("application")
    if not short_name:
        return None, []
    registered_id = state.bindings.get(short_name)
    with services.db.sessions() as session:
        registered = session.get(RegisteredApplication, registered_id) if registered_id else None
        if registered is None:
            raise BlockError(f"the workflow has no registered {short_name} application (it may have been deleted)")
        try:
            applications.check_grant(session, registered, state.workflow_id)
        except ForbiddenError as refusal:
            raise BlockError(refusal.message) from None
        try:
            credentials = applications.decrypt_credentials(services.secret_box, registered)
        except SecretDecryptError:
            log.error("registered application %s (%s): %s", registered.id, short_name, KEYS_DIFFER)
            raise BlockError(f"the credentials of the registered {short_name} application cannot be decrypted: "
                             f"{KEYS_DIFFER}") from None
    spec = services.application_catalog.get(registered.application_id)
    if spec is not None and spec.kind == PLATFORM_KIND and get_block(entry["block"]).application_kind == "smtp":
        credentials = platform_relay(services.settings)
    return credentials, secret_values(spec, credentials)


def say_if_keys_differ(database, secret_box, who: str, keys_differ: str = KEYS_DIFFER) -> None:  # noqa: ANN001
    """A machine started with other keys than the rest fails every run that needs credentials (a worker), or
    registers credentials no other machine can decrypt (an API): said at its start, not first at a run's. It still
    starts: what needs no credentials, or those it can decrypt, works."""
    try:
        problem = keys_problem(database, secret_box, keys_differ)
    except Exception as error:  # noqa: BLE001 - the database's trouble is for the process's own work to meet
        log.debug("%s: keys not checked (%s)", who, error.__class__.__name__)
        return
    if problem:
        log.error("%s: %s", who, problem)


def keys_problem(database, secret_box, keys_differ: str = KEYS_DIFFER) -> str | None:  # noqa: ANN001
    """Why this process's keys (`secret_box`) cannot decrypt the credentials stored last in `database` (a machine
    given other keys than the others), or None: they can, or none are stored. One row read, for a process's start."""
    with database.sessions() as session:
        stored = session.scalar(select(RegisteredApplication.credentials_ciphertext)
                                .order_by(RegisteredApplication.date_created.desc()).limit(1))
    if stored is None:
        return None
    try:
        secret_box.decrypt(stored)
    except SecretDecryptError:
        return f"the newest registered application's credentials cannot be decrypted: {keys_differ}"
    return None


def platform_relay(settings: dict) -> dict:
    """The platform's own mail relay (CANVAS_SMTP_URL, from CANVAS_SMTP_FROM) as an SMTP application's credentials,
    for "Send email" bound to the platform application (CMAF) as in the Canvas document's template."""
    from canvas.accounts.mail import relay_settings

    if not settings.get("SMTP_URL"):
        raise BlockError("the platform has no mail relay (the operator sets CANVAS_SMTP_URL); "
                         "bind an SMTP application to send through your own")
    return {**relay_settings(settings["SMTP_URL"]), "fromAddress": settings["SMTP_FROM"], PLATFORM_RELAY: True}


def owner_email(services, account_id) -> str | None:  # noqa: ANN001
    with services.db.sessions() as session:
        return session.scalar(select(Account.email).where(Account.id == account_id))


def secret_values(spec, credentials: dict) -> list[str]:  # noqa: ANN001 - ApplicationSpec | None
    """What to keep out of the block's log lines: the catalog's secret fields and the usual secret names."""
    return redaction.secret_values(credentials, spec.secret_field_names if spec else ())


def mark_faulted(services, state, entry: dict, reason: str) -> None:  # noqa: ANN001
    registered_id = state.bindings.get(entry.get("application") or "")
    if registered_id is None:
        return
    with services.db.transaction() as session:
        registered = session.get(RegisteredApplication, registered_id)
        if registered is not None:
            applications.mark_faulted(registered, reason)
    log.warning("registered application %s marked faulted: %s", registered_id, reason)


def workflow_time_zone(session: Session, workflow: Workflow) -> ZoneInfo:
    """The schedule's time zone, else the account's default, else UTC. Only `{date:...}` placeholders and dated
    blocks (Block.dated) use it, so a chain with neither costs no lookup."""
    if "{date:" not in json.dumps(workflow.chain) and not any(_dated(entry) for entry in workflow.chain):
        return ZoneInfo("UTC")
    candidates = [_schedule_zone(workflow.schedule_frequency),
                  session.scalar(select(Account.time_zone).where(Account.id == workflow.account_id))]
    for name in candidates:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("unknown time zone %r on workflow %s; using UTC", name, workflow.id)
    return ZoneInfo("UTC")


def _dated(entry: dict) -> bool:
    try:
        return get_block(entry.get("block") or "").dated
    except UnknownBlockError:  # the run fails at that block, saying so
        return False


def _schedule_zone(frequency: str | None) -> str | None:
    try:
        return json.loads(frequency).get("timeZone") if frequency else None
    except (ValueError, AttributeError):
        return None

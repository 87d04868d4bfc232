"""Who makes a change, derived in one place: from the Principal the request resolved once (API callers, or a web
console session: the console marks its requests with `g.audit_actor_kind`), from the command line's marker
(operators), or the service itself (anything else, e.g. the reaper)."""
from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from flask import g, has_request_context

from canvas.models.audit import ACTOR_KINDS

API_KEY, CONSOLE, CLI, SYSTEM = ACTOR_KINDS


@dataclass(frozen=True)
class AuditActor:
    kind: str
    account_id: uuid.UUID | None = None
    acting_as_id: uuid.UUID | None = None  # the ManagedAccountId account, only when it is not the key's own
    organization_id: uuid.UUID | None = None
    request_id: str | None = None


SYSTEM_ACTOR = AuditActor(kind=SYSTEM)
# Set by CLI commands for the duration of the command (a CLI process has no request, hence no Principal).
_command_line_actor: contextvars.ContextVar[AuditActor | None] = contextvars.ContextVar("audit_cli_actor",
                                                                                        default=None)


def current_actor() -> AuditActor:
    if has_request_context():
        principal = g.get("principal")
        if principal is not None:
            return AuditActor(kind=g.get("audit_actor_kind", API_KEY), account_id=principal.key_account_id,
                              acting_as_id=principal.account_id if principal.is_managing else None,
                              organization_id=principal.organization_id, request_id=g.get("request_id"))
    return _command_line_actor.get() or SYSTEM_ACTOR


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Changes made inside are recorded as an operator's at the command line."""
    token = _command_line_actor.set(AuditActor(kind=CLI))
    try:
        yield
    finally:
        _command_line_actor.reset(token)

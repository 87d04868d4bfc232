"""A workflow's notification settings, stored on the workflow under engine names, and whom they tell.

Stored: {"on_failure": bool, "on_recovery": bool, "on_missed_schedule": bool, "emails": [address, ...]}, or nothing
(null): then the account's own settings apply (`globalNotifications` on and a `defaultNotificationEmail`: every event
is mailed to that address). A workflow's settings without addresses mail the account's defaultNotificationEmail."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canvas.errors import BadRequestError

FLAGS = ("on_failure", "on_recovery", "on_missed_schedule")
MAX_EMAILS = 20
MAX_EMAIL_LENGTH = 320
# One address, no display name: what a mail relay accepts in RCPT TO. Deliberately plain; the relay has the last word.
EMAIL_PATTERN = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
EVENT_FLAGS = {"failure": "on_failure", "recovery": "on_recovery", "missed": "on_missed_schedule"}


@dataclass(frozen=True)
class Audience:
    """Which events are mailed, and to whom."""

    events: frozenset[str]  # of EVENT_FLAGS' keys
    emails: tuple[str, ...]

    def wants(self, event: str) -> bool:
        return event in self.events and bool(self.emails)


NOBODY = Audience(frozenset(), ())


def parse_settings(value: Any, names: Mapping[str, str], field: str) -> dict | None:
    """A dialect's settings object (its key for each engine name in `names`) as stored; None stays None (the
    account's default). Absent flags are on; absent emails are none (the account's address). A malformed value is a
    400 naming the dialect's field."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BadRequestError(f"{field} must be an object", field=field)
    unknown = sorted(set(value) - set(names.values()))
    if unknown:
        raise BadRequestError(f"{field}.{unknown[0]} is not a notification setting (known: "
                              f"{', '.join(names.values())})", field=f"{field}.{unknown[0]}")
    stored: dict[str, Any] = {}
    for flag in FLAGS:
        given = value.get(names[flag], True)
        if not isinstance(given, bool):
            raise BadRequestError(f"{field}.{names[flag]} must be true or false", field=f"{field}.{names[flag]}")
        stored[flag] = given
    stored["emails"] = _emails(value.get(names["emails"]) or [], f"{field}.{names['emails']}")
    return stored


def _emails(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise BadRequestError(f"{field} must be a list of e-mail addresses", field=field)
    if len(value) > MAX_EMAILS:
        raise BadRequestError(f"{field} takes at most {MAX_EMAILS} addresses, got {len(value)}", field=field)
    emails = []
    for index, address in enumerate(value):
        if not isinstance(address, str) or len(address) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.match(address.strip()):
            raise BadRequestError(f"{field}[{index}] is not an e-mail address", field=field)
        if address.strip().lower() not in emails:
            emails.append(address.strip().lower())
    return emails


def settings_for_api(stored: dict | None, names: Mapping[str, str]) -> dict | None:
    """The stored settings under a dialect's names (None: the account's default applies)."""
    if stored is None:
        return None
    shown = {names[flag]: bool(stored.get(flag, True)) for flag in FLAGS}
    shown[names["emails"]] = list(stored.get("emails") or [])
    return shown


def audience(stored: dict | None, global_notifications: bool, default_email: str | None) -> Audience:
    """Whom a workflow's events are mailed to, from its settings and its account's."""
    if stored is None:
        if global_notifications and default_email:
            return Audience(frozenset(EVENT_FLAGS), (default_email,))
        return NOBODY
    emails = tuple(stored.get("emails") or ([default_email] if default_email else []))
    events = frozenset(event for event, flag in EVENT_FLAGS.items() if stored.get(flag, True))
    return Audience(events, emails)

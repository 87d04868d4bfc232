"""Keeping credential values out of text meant for people: API answers, run history, log lines.

One notion of "which values are secret" and one redactor serve verification, the network blocks and the runner's
block logs."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy

from canvas.applications.sql_urls import MALFORMED_URL_ERRORS

# Field names that hold secrets in the shipped applications (a catalog may declare more: secret_names).
SECRET_FIELDS = ("password", "passphrase", "privateKey", "token", "apiKey", "apikey", "clientSecret",
                 "client_secret")
MIN_SECRET_LENGTH = 3  # shorter "secrets" would garble every message and protect nothing
REDACTED = "***"


def secret_values(credentials: Mapping | None, secret_names: Iterable[str] = (), extra: Iterable[str] = ()) -> list[str]:
    """Every value worth hiding: secret fields, the password inside a database URL, each line of a multi-line key
    (a server may quote one line of it), and `extra` values such as tokens obtained at run time."""
    credentials = credentials or {}
    names = set(SECRET_FIELDS) | set(secret_names)
    values = [str(credentials.get(name) or "") for name in names]
    values.append(_url_password(str(credentials.get("url") or "")))
    values += [str(value) for value in extra if value]
    lines = [line.strip() for value in values for line in value.splitlines()]
    return sorted({value for value in (*values, *lines) if len(value) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def _url_password(url: str) -> str:
    if not url:
        return ""
    try:
        return sqlalchemy.make_url(url).password or ""
    except MALFORMED_URL_ERRORS:
        return url  # an unparseable URL may hold anything


class Redactor:
    """Replaces known secret values in text, longest first (so a secret containing another is hidden whole)."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH},
                              key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    @classmethod
    def for_credentials(cls, credentials: Mapping | None, secret_names: Iterable[str] = (),
                        extra: Iterable[str] = ()) -> "Redactor":
        return cls(secret_values(credentials, secret_names, extra))

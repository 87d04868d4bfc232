"""The SQL application's `url`, checked at registration before verification connects to anything.

A URL whose scheme names no database SQLAlchemy supports would otherwise fail deep in verification with the
library's own text ("NoSuchModuleError: Can't load plugin ..."); an SQLite URL, while SQLite applications are off,
must be refused without looking at the file system at all: the answer must not tell /etc/shadow (exists) from a
missing file, and a `file:...?mode=rwc&uri=true` URL must not create a file on the API host.
"""
from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy

from canvas.applications.values import ALLOW_SQLITE_SETTING, sqlite_allowed, text_value
from canvas.errors import ValidationError

URL_FIELD = "credentialsJson.url"
SUPPORTED_SCHEMES = ("postgresql", "mysql", "mariadb", "mssql", "oracle", "sqlite")
EXAMPLE_URL = "postgresql+psycopg://user:password@host:5432/database"


def check_sql_url(credentials: Mapping) -> None:
    """Raise ValidationError naming `url` when it cannot be a usable database URL; the URL itself is never quoted
    (it may hold a password)."""
    text = text_value(credentials, "url")
    if not text:
        return  # the server/port/database form
    backend = _backend_name(text)
    if backend not in SUPPORTED_SCHEMES:
        raise ValidationError(f"url: '{backend}' is not a supported database URL scheme; use one of "
                              f"{', '.join(scheme + '://' for scheme in SUPPORTED_SCHEMES)} (a driver may follow "
                              f"'+'), e.g. {EXAMPLE_URL}", field=URL_FIELD)
    if backend == "sqlite" and not sqlite_allowed():
        raise ValidationError(f"url: SQLite applications are turned off on this platform (the operator allows them "
                              f"with {ALLOW_SQLITE_SETTING}=true)", field=URL_FIELD)


# What sqlalchemy.make_url raises for text that is no usable URL: ArgumentError, and ValueError for a port that is no
# number (it reads the port with int(): host:notaport)
MALFORMED_URL_ERRORS = (sqlalchemy.exc.ArgumentError, ValueError)


def _backend_name(text: str) -> str:
    try:
        url = sqlalchemy.make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise ValidationError(f"url: not a database URL; expected scheme://..., e.g. {EXAMPLE_URL}",
                              field=URL_FIELD) from None
    except ValueError:  # SQLAlchemy reads the port with int(): host:notaport
        url = None
    if url is None or (url.port is not None and not 1 <= url.port <= 65535):
        raise ValidationError("url: the port after the host must be a number from 1 to 65535", field=URL_FIELD)
    return url.get_backend_name()

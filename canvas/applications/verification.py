"""Verify a registered application's credentials against the real system before they are stored.

One verifier per application kind (ftp, sftp, smtp, sql, rest; filehub and none have nothing to check). Each one
passes the host through the SSRF guard first, connects to the checked address itself (keeping the host name for TLS),
and applies `timeout` to the connect and to every read, so a server that accepts and then says nothing fails in
bounded time. Failures become a VerificationError whose `reason` is short, clear and free of secrets.
"""
from __future__ import annotations

import ftplib
import logging
import math
import os
import smtplib
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import requests
import sqlalchemy

from canvas.applications.redaction import Redactor
from canvas.applications.sql_urls import MALFORMED_URL_ERRORS
from canvas.applications.values import (
    DEFAULT_SQL_DRIVER, SMTP_DEFAULT_PORTS, SQL_DEFAULT_PORTS, SQL_HOST_QUERY_KEYS, flag_value, port_value,
    smtp_reply_text, smtp_security_value, text_value,
)
from canvas.network.clients import GuardedFTP, GuardedFTPTLS, GuardedSMTP, GuardedSMTPSSL
from canvas.network.failures import (
    describe_network_error, describe_request_error, endpoint as _endpoint, first_line as _first_line,
    seconds as _seconds, url_without_query,
)
from canvas.network.guard import BlockedAddressError, NetworkPolicy, guarded_session
from canvas.network.rest_auth import RestCredentialsError, TokenRequestError, base_url, build_auth, join_url
from canvas.network.ssh import DEFAULT_KNOWN_HOSTS_FILE, HostKeyCheck, SshError, SshLogin, open_sftp

log = logging.getLogger(__name__)




class VerificationError(Exception):
    """The credentials did not work. `reason` is short human text without any secret."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Check:
    policy: NetworkPolicy
    timeout: float
    settings: Mapping


def verify_credentials(
    kind: str, credentials: dict, *, policy: NetworkPolicy, timeout: float = 10.0, settings: dict | None = None
) -> None:
    """Log in to the system the credentials are for and do one harmless thing; raise VerificationError if not."""
    verifier = _VERIFIERS.get((kind or "").lower())
    if verifier is None:
        raise VerificationError(f"unknown application kind {kind!r}")
    redact = Redactor.for_credentials(credentials)
    try:
        verifier(credentials, _Check(policy, timeout, settings or {}))
    except (VerificationError, SshError, RestCredentialsError) as error:
        reason = redact(getattr(error, "reason", None) or str(error))
        log.info("%s credentials rejected: %s", kind, reason)
        raise VerificationError(reason) from None  # no chained library error: it might quote a secret
    except Exception as error:  # a library failure we do not know yet still deserves a clean answer
        reason = redact(f"verification failed: {type(error).__name__}: {_first_line(error)}")
        log.warning("%s credentials could not be verified: %s", kind, reason)
        raise VerificationError(reason) from None
    log.info("%s credentials verified", kind)


# --- helpers shared by the verifiers ---------------------------------------------------------------------------


def _required(credentials: Mapping, field: str) -> str:
    value = text_value(credentials, field)
    if not value:
        raise VerificationError(f"the {field} field is required")
    return value


def _port(credentials: Mapping, default: int) -> int:
    port = port_value(credentials, default)
    if port is None:
        raise VerificationError("port must be a number between 1 and 65535")
    return port




@contextmanager
def _network_errors(host: str, port: int, timeout: float) -> Iterator[None]:
    """Turn the socket-level failures every protocol shares into clear reasons."""
    try:
        yield
    except VerificationError:
        raise
    except (BlockedAddressError, OSError, EOFError) as error:
        raise VerificationError(describe_network_error(error, host, port, timeout) or _first_line(error)) from None


# --- FTP / FTPS ------------------------------------------------------------------------------------------------


@contextmanager
def _ftp_replies(failure: str) -> Iterator[None]:
    try:
        yield
    except ftplib.Error as error:
        raise VerificationError(f"{failure}: {_first_line(error)}") from None


def _close_ftp(ftp: ftplib.FTP) -> None:
    if ftp.sock is None:  # never connected
        return
    try:
        ftp.quit()
    except (OSError, EOFError, ftplib.Error):
        ftp.close()


def _verify_ftp(credentials: Mapping, check: _Check) -> None:
    host, port = _required(credentials, "address"), _port(credentials, 21)
    secure = flag_value(credentials.get("secure"))
    ftp = (GuardedFTPTLS if secure else GuardedFTP)(check.policy, timeout=check.timeout)
    with _network_errors(host, port, check.timeout):
        try:
            with _ftp_replies("the server refused the connection"):
                ftp.connect(host, port)
            if secure:
                with _ftp_replies("the server refused AUTH TLS"):
                    ftp.auth()
            with _ftp_replies("login failed"):
                ftp.login(_required(credentials, "username"), str(credentials.get("password") or ""))
            if secure:
                with _ftp_replies("the server refused PROT P (encrypted data connections)"):
                    ftp.prot_p()
            with _ftp_replies("the server refused PWD"):
                ftp.pwd()
        finally:
            _close_ftp(ftp)


# --- SFTP ------------------------------------------------------------------------------------------------------


def _verify_sftp(credentials: Mapping, check: _Check) -> None:
    host, port = _required(credentials, "address"), _port(credentials, 22)
    login = SshLogin(
        _required(credentials, "username"),
        password=str(credentials.get("password") or ""),
        private_key=str(credentials.get("privateKey") or ""),
        passphrase=str(credentials.get("passphrase") or "") or None,
    )
    host_keys = HostKeyCheck(
        pinned=str(credentials.get("hostKey") or ""),
        policy=check.settings.get("host_key_policy", "known_hosts"),
        known_hosts_file=check.settings.get("known_hosts_file", DEFAULT_KNOWN_HOSTS_FILE),
    )
    try:
        session = open_sftp(check.policy, host, port, login, host_keys, check.timeout)
    except SshError as error:
        raise VerificationError(error.reason) from None
    with session, _network_errors(host, port, check.timeout):
        try:
            session.sftp.stat(".")
        except (PermissionError, FileNotFoundError) as error:  # an SFTP status, not a network problem
            raise VerificationError(f"logged in, but the home folder is not accessible: {error.strerror}") from None


# --- SMTP ------------------------------------------------------------------------------------------------------


def _smtp_security(credentials: Mapping) -> str:
    security = smtp_security_value(credentials)
    if security is None:
        raise VerificationError("security must be one of starttls, ssl, none")
    return security


@contextmanager
def _smtp_replies(endpoint: str, timeout: float) -> Iterator[None]:
    try:
        yield
    except smtplib.SMTPAuthenticationError as error:
        raise VerificationError(f"login failed: {error.smtp_code} {smtp_reply_text(error.smtp_error)}") from None
    except smtplib.SMTPServerDisconnected as error:
        if isinstance(error.__context__, TimeoutError):  # smtplib turns a read timeout into "disconnected"
            raise VerificationError(f"timed out after {_seconds(timeout)} s waiting for {endpoint} to answer")
        raise VerificationError(f"connection closed by {endpoint}") from None
    except smtplib.SMTPNotSupportedError:
        raise VerificationError("login failed: the server offers no AUTH here (does it want STARTTLS or SSL?)")
    except smtplib.SMTPResponseException as error:
        raise VerificationError(f"the server answered {error.smtp_code} {smtp_reply_text(error.smtp_error)}") from None
    except smtplib.SMTPException as error:
        raise VerificationError(f"SMTP failure with {endpoint}: {_first_line(error)}") from None


def _verify_smtp(credentials: Mapping, check: _Check) -> None:
    host, security = _required(credentials, "host"), _smtp_security(credentials)
    port = _port(credentials, SMTP_DEFAULT_PORTS[security])
    helo_name = check.settings.get("helo_name") or socket.getfqdn()
    smtp_class = GuardedSMTPSSL if security == "ssl" else GuardedSMTP
    smtp = smtp_class(check.policy, timeout=check.timeout, local_hostname=helo_name)
    with _network_errors(host, port, check.timeout), _smtp_replies(_endpoint(host, port), check.timeout):
        try:
            smtp.connect(host, port)
            smtp.ehlo_or_helo_if_needed()
            if security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise VerificationError(f"{_endpoint(host, port)} does not offer STARTTLS")
                smtp.starttls(context=check.policy.ssl_context())
                smtp.ehlo()
            username = str(credentials.get("username") or "").strip()
            if username:
                smtp.login(username, str(credentials.get("password") or ""))
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


# --- SQL -------------------------------------------------------------------------------------------------------


def _sql_url(credentials: Mapping, settings: Mapping) -> sqlalchemy.URL:
    text = str(credentials.get("url") or "").strip()
    if text:
        try:
            return sqlalchemy.make_url(text)
        except MALFORMED_URL_ERRORS:
            raise VerificationError("url is not a valid SQLAlchemy database URL") from None
    return sqlalchemy.URL.create(
        str(credentials.get("driver") or settings.get("driver") or DEFAULT_SQL_DRIVER),
        username=str(credentials.get("username") or "") or None,
        password=str(credentials.get("password") or "") or None,
        host=_required(credentials, "server"),
        port=_port(credentials, 0) or None,
        database=str(credentials.get("database") or "") or None,
    )


def _sqlite_connect_args(url: sqlalchemy.URL, timeout: float) -> dict:
    path = _sqlite_file_path(url.database or ":memory:")
    if path is not None and not os.path.isfile(path):
        # Connecting would create it (a `file:` URI with mode=rwc does even when told to open): verifying must not.
        raise VerificationError(f"SQLite database file not found: {path}")
    return {"timeout": timeout}


def _sqlite_file_path(database: str) -> str | None:
    """The file an SQLite database name opens, `file:` URIs included; None for an in-memory database."""
    if database.startswith("file:"):
        database = database.removeprefix("file:")
        database = database[2:] if database.startswith("///") else database  # file:///path -> /path
    return None if database in ("", ":memory:") else database


def _network_connect_args(url: sqlalchemy.URL, timeout: float, addresses: list[str]) -> dict:
    """Driver options that bound the connect (and where possible each read) by `timeout`."""
    seconds = max(2, math.ceil(timeout))  # libpq and most drivers take whole seconds; libpq's minimum is 2
    driver = url.get_driver_name()
    if driver in ("psycopg", "psycopg2"):
        # hostaddr makes libpq connect to the checked address (no second lookup) and still verify TLS by host.
        return {"connect_timeout": seconds, "hostaddr": addresses[0]}
    if driver in ("pymysql", "mysqldb", "mysqlconnector"):
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
    if driver == "pymssql":
        return {"login_timeout": seconds, "timeout": seconds}
    if driver == "oracledb":
        return {"tcp_connect_timeout": float(timeout)}
    return {}  # other drivers resolve the host again themselves: a residual DNS-rebinding window


def _describe_database_error(error: Exception, endpoint: str, timeout: float) -> str:
    message = " ".join(_first_line(getattr(error, "orig", None) or error).split())
    lowered = message.lower()
    if "connection refused" in lowered:
        return f"connection refused by {endpoint}"
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"timed out after {_seconds(timeout)} s connecting to {endpoint}"
    if any(words in lowered for words in ("authentication failed", "access denied", "login failed")):
        return f"login failed: {message}"
    return f"database error: {message}"


def _verify_sql(credentials: Mapping, check: _Check) -> None:
    url = _sql_url(credentials, check.settings)
    backend = url.get_backend_name()
    endpoint = "the SQLite file"
    if backend == "sqlite":
        connect_args = _sqlite_connect_args(url, check.timeout)
    else:
        if SQL_HOST_QUERY_KEYS & {key.lower() for key in url.query}:
            raise VerificationError("name the database server in the URL's host part, not in its query")
        host, port = url.host or "localhost", url.port or SQL_DEFAULT_PORTS.get(backend, 0)
        endpoint = _endpoint(host, port)
        with _network_errors(host, port, check.timeout):
            connect_args = _network_connect_args(url, check.timeout, check.policy.resolve(host, port))
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError):
        raise VerificationError(f"the database driver for {url.drivername} is not installed") from None
    probe = "SELECT 1 FROM DUAL" if backend == "oracle" else "SELECT 1"
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(probe).scalar()
    except ModuleNotFoundError:
        raise VerificationError(f"the database driver for {url.drivername} is not installed") from None
    except sqlalchemy.exc.DBAPIError as error:
        raise VerificationError(_describe_database_error(error, endpoint, check.timeout)) from None
    finally:
        engine.dispose()


# --- REST ------------------------------------------------------------------------------------------------------


def _verify_rest(credentials: Mapping, check: _Check) -> None:
    credentials = _with_catalog_defaults(credentials, check.settings)
    path = credentials.get("verifyPath") or check.settings.get("path")  # none: GET the base url itself
    url = join_url(base_url(credentials), path)
    session = guarded_session(check.policy, default_timeout=check.timeout)
    auth = build_auth(credentials, session=session, timeout=check.timeout)
    try:
        response = session.get(url, auth=auth, timeout=check.timeout, stream=True)  # the status is enough
        response.close()
    except BlockedAddressError as error:
        raise VerificationError(str(error)) from None
    except TokenRequestError as error:
        rejected = error.status_code in (400, 401, 403)
        raise VerificationError(f"authentication rejected: {error}" if rejected else str(error)) from None
    except requests.RequestException as error:
        raise VerificationError(describe_request_error(error, url, check.timeout)) from None
    finally:
        session.close()
    if response.status_code in (401, 403):
        raise VerificationError(f"authentication rejected (HTTP {response.status_code})")
    if response.status_code >= 400:
        raise VerificationError(f"HTTP {response.status_code} from {url_without_query(response.url)}")


def _with_catalog_defaults(credentials: Mapping, settings: Mapping) -> dict:
    """An application's verification settings are defaults for the generic REST fields it does not ask the user
    for (MyStore and Fiken fix authType: bearer; Fiken its baseUrl)."""
    defaults = {name: value for name, value in settings.items() if name != "path"}
    return {**defaults, **{name: value for name, value in credentials.items() if value not in (None, "")}}


def _nothing_to_verify(credentials: Mapping, check: _Check) -> None:
    """File Hub lives on the platform itself; "none" applications have no credentials."""


_VERIFIERS: dict[str, Callable[[Mapping, _Check], None]] = {
    "ftp": _verify_ftp,
    "sftp": _verify_sftp,
    "smtp": _verify_smtp,
    "sql": _verify_sql,
    "rest": _verify_rest,
    "filehub": _nothing_to_verify,
    "none": _nothing_to_verify,
}

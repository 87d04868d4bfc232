"""verify_credentials against real servers on loopback: success, and each common failure in plain words.

Every failure's reason, and everything logged meanwhile, is checked for the secrets of the credentials used.
"""
from __future__ import annotations

import logging
import sqlite3
import time

import pytest
import sqlalchemy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from werkzeug.wrappers import Request, Response

from canvas.applications.verification import VerificationError, verify_credentials
from canvas.network.guard import NetworkPolicy
from tests.servers.http import json_response, redirect_to, respond
from tests.servers.sftp import generate_key

LOOPBACK = NetworkPolicy.from_setting("127.0.0.0/8")
TIMEOUT = 10.0  # generous: a loaded CI machine must not turn a success into a timeout
SHORT_TIMEOUT = 1.0  # for the tests whose subject is the timeout
TIMEOUT_SLACK = 8.0  # how much later than SHORT_TIMEOUT a timeout may fire on a noisy machine
SECRET_FIELDS = ("password", "passphrase", "privateKey", "token", "apiKey", "clientSecret")


class Verifier:
    """Runs verify_credentials and remembers every secret it was given, to look for them in the logs later."""

    def __init__(self):
        self.secrets: set[str] = set()

    def _remember(self, credentials: dict) -> None:
        values = [str(credentials.get(field) or "") for field in SECRET_FIELDS]
        if credentials.get("url"):
            values.append(sqlalchemy.make_url(credentials["url"]).password or "")
        for value in values:  # a key's long lines count one by one: a message must not quote any of them
            self.secrets |= {value} | {line for line in value.splitlines() if len(line) > 20}
        self.secrets.discard("")

    def ok(self, kind: str, credentials: dict, *, policy=LOOPBACK, timeout=TIMEOUT, settings=None) -> None:
        self._remember(credentials)
        verify_credentials(kind, credentials, policy=policy, timeout=timeout, settings=settings)

    def refused(self, kind: str, credentials: dict, *, policy=LOOPBACK, timeout=TIMEOUT, settings=None) -> str:
        self._remember(credentials)
        with pytest.raises(VerificationError) as failure:
            verify_credentials(kind, credentials, policy=policy, timeout=timeout, settings=settings)
        reason = failure.value.reason
        assert str(failure.value) == reason and failure.value.__cause__ is None
        assert not [secret for secret in self.secrets if secret in reason], reason
        return reason

    def timed(self, *args, **kwargs) -> tuple[str, float]:
        started = time.monotonic()
        reason = self.refused(*args, **kwargs)
        return reason, time.monotonic() - started


@pytest.fixture
def verify(caplog):
    caplog.set_level(logging.DEBUG, logger="canvas")
    caplog.set_level(logging.INFO)
    verifier = Verifier()
    yield verifier
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [secret for secret in verifier.secrets if secret in logged]


@pytest.fixture
def trusting(tls_certs) -> NetworkPolicy:
    """Loopback allowed and the test CA trusted."""
    return NetworkPolicy(allowlist=LOOPBACK.allowlist, ca_file=str(tls_certs.ca_file))


def silent_credentials(kind: str, port: int) -> dict:
    return {
        "ftp": {"address": "127.0.0.1", "port": port, "username": "u", "password": "silent-Secret"},
        "sftp": {"address": "127.0.0.1", "port": port, "username": "u", "password": "silent-Secret",
                 "hostKey": generate_key().public_line},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "username": "u", "password": "silent-Secret"},
        "rest": {"baseUrl": f"http://127.0.0.1:{port}/api", "authType": "bearer", "token": "silent-Secret"},
    }[kind]


@pytest.mark.parametrize("kind", ["ftp", "sftp", "smtp", "rest"])
def test_a_server_that_never_answers_times_out(verify, silent_server, kind):
    reason, elapsed = verify.timed(kind, silent_credentials(kind, silent_server.port), timeout=SHORT_TIMEOUT)
    assert reason.startswith("timed out after 1 s")
    assert f"127.0.0.1:{silent_server.port}" in reason
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + TIMEOUT_SLACK


@pytest.mark.parametrize("kind", ["ftp", "sftp", "smtp", "rest"])
def test_a_closed_port_is_connection_refused(verify, closed_port, kind):
    reason = verify.refused(kind, silent_credentials(kind, closed_port))
    assert reason == f"connection refused by 127.0.0.1:{closed_port}"


@pytest.mark.parametrize("kind", ["ftp", "sftp", "smtp"])
def test_loopback_is_refused_by_the_default_policy(verify, closed_port, kind):
    reason = verify.refused(kind, silent_credentials(kind, closed_port), policy=NetworkPolicy())
    assert reason.startswith("Refused to connect to 127.0.0.1: private address")


def test_metadata_address_is_refused_even_when_private_networks_are_allowed(verify):
    credentials = {"address": "169.254.169.254", "port": 21, "username": "u", "password": "meta-Secret"}
    reason = verify.refused("ftp", credentials, policy=NetworkPolicy(allow_private=True))
    assert reason.endswith("link-local/cloud metadata addresses are never allowed")


def test_an_unknown_host_is_host_not_found(verify):
    credentials = {"address": "no-such-host.invalid", "username": "u", "password": "nohost-Secret"}
    assert verify.refused("ftp", credentials) == "host not found: no-such-host.invalid"


# --- FTP / FTPS ------------------------------------------------------------------------------------------------


def test_ftp_login_succeeds(verify, ftp_server):
    verify.ok("ftp", ftp_server.credentials())


def test_ftp_wrong_password_is_login_failed(verify, ftp_server):
    reason = verify.refused("ftp", ftp_server.credentials(password="wrong-Password-1"))
    assert reason.startswith("login failed: 530")


def test_ftps_succeeds_when_the_ca_is_trusted(verify, ftps_server, trusting):
    verify.ok("ftp", ftps_server.credentials(), policy=trusting)


def test_ftps_refuses_an_untrusted_certificate(verify, ftps_server):
    reason = verify.refused("ftp", ftps_server.credentials())
    assert reason.startswith("TLS failure: certificate verify failed")


def test_plain_ftp_to_a_server_requiring_tls_fails_at_login(verify, ftps_server):
    assert verify.refused("ftp", ftps_server.credentials(secure=False)).startswith("login failed: 5")


# --- SFTP ------------------------------------------------------------------------------------------------------


def test_sftp_password_login_succeeds(verify, sftp_server):
    verify.ok("sftp", sftp_server.credentials())


@pytest.mark.parametrize("key_kind", ["ed25519", "rsa", "ecdsa"])
def test_sftp_private_key_login_succeeds(verify, sftp_server, key_kind):
    key = generate_key(key_kind)
    sftp_server.authorized_keys.append(key.public_line)
    verify.ok("sftp", sftp_server.credentials(password="", privateKey=key.private_text))


def test_sftp_passphrase_protected_pkcs8_key(verify, sftp_server):
    key = ed25519.Ed25519PrivateKey.generate()
    protected = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-Passphrase-8"),
    ).decode()
    public_line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    sftp_server.authorized_keys.append(public_line.decode())
    credentials = sftp_server.credentials(password="", privateKey=protected)
    verify.ok("sftp", {**credentials, "passphrase": "key-Passphrase-8"})
    assert "passphrase is missing or wrong" in verify.refused("sftp", credentials)


def test_sftp_wrong_password_is_login_failed(verify, sftp_server):
    reason = verify.refused("sftp", sftp_server.credentials(password="wrong-Password-2"))
    assert reason == "login failed: the server rejected the password for user 'sftp-user'"


def test_sftp_unauthorized_key_is_login_failed(verify, sftp_server):
    credentials = sftp_server.credentials(password="", privateKey=generate_key().private_text)
    assert verify.refused("sftp", credentials).startswith("login failed: the server rejected the private key")


def test_sftp_unreadable_private_key_is_refused_without_quoting_it(verify, sftp_server):
    credentials = sftp_server.credentials(privateKey="-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key-Secret\n")
    assert verify.refused("sftp", credentials).startswith("privateKey is not a readable")


def test_sftp_host_key_mismatch_is_refused_before_login(verify, sftp_server):
    reason = verify.refused("sftp", sftp_server.credentials(hostKey=generate_key().public_line))
    assert reason.startswith(f"host key mismatch: 127.0.0.1:{sftp_server.port} presented ssh-ed25519 SHA256:")


def test_sftp_unknown_host_is_refused_unless_accept_new(verify, sftp_server, tmp_path):
    settings = {"known_hosts_file": str(tmp_path / "known_hosts")}
    reason = verify.refused("sftp", sftp_server.credentials(hostKey=""), settings=settings)
    assert reason.startswith("unknown SSH host key ssh-ed25519 SHA256:")
    verify.ok("sftp", sftp_server.credentials(hostKey=""), settings={**settings, "host_key_policy": "accept_new"})


def test_sftp_host_known_in_known_hosts_is_accepted(verify, sftp_server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_server.port} {sftp_server.host_key_line}\n")
    verify.ok("sftp", sftp_server.credentials(hostKey=""), settings={"known_hosts_file": str(known_hosts)})


# --- SMTP ------------------------------------------------------------------------------------------------------


def test_smtp_login_succeeds_and_sends_nothing(verify, smtp_server):
    verify.ok("smtp", smtp_server.credentials())
    assert smtp_server.messages == []


def test_smtp_wrong_password_is_login_failed(verify, smtp_server):
    reason = verify.refused("smtp", smtp_server.credentials(password="wrong-Password-3"))
    assert reason == "login failed: 535 5.7.8 Authentication credentials invalid"


def test_smtp_starttls_succeeds_when_the_ca_is_trusted(verify, smtp_starttls_server, trusting):
    verify.ok("smtp", smtp_starttls_server.credentials(), policy=trusting)


def test_smtp_starttls_refuses_an_untrusted_certificate(verify, smtp_starttls_server):
    reason = verify.refused("smtp", smtp_starttls_server.credentials())
    assert reason.startswith("TLS failure: certificate verify failed")


def test_smtp_starttls_asked_of_a_server_without_it(verify, smtp_server):
    reason = verify.refused("smtp", smtp_server.credentials(security="starttls"))
    assert reason == f"127.0.0.1:{smtp_server.port} does not offer STARTTLS"


def test_smtp_login_without_tls_where_the_server_requires_it(verify, smtp_starttls_server):
    reason = verify.refused("smtp", smtp_starttls_server.credentials(security="none"))
    assert reason.startswith("login failed: the server offers no AUTH here")


def test_smtps_succeeds_when_the_ca_is_trusted(verify, smtps_server, trusting):
    verify.ok("smtp", smtps_server.credentials(), policy=trusting)


# --- SQL -------------------------------------------------------------------------------------------------------


def test_sql_sqlite_file_succeeds(verify, tmp_path):
    database = tmp_path / "data.db"
    sqlite3.connect(database).close()
    verify.ok("sql", {"url": f"sqlite:///{database}"})
    verify.ok("sql", {"url": "sqlite:///:memory:"})


def test_sql_sqlite_missing_file_is_not_created(verify, tmp_path):
    missing = tmp_path / "missing.db"
    assert verify.refused("sql", {"url": f"sqlite:///{missing}"}) == f"SQLite database file not found: {missing}"
    assert not missing.exists()


def test_sql_postgresql(verify, postgres_url):
    url = postgres_url
    verify.ok("sql", {"url": url}, policy=NetworkPolicy(allow_private=True))
    missing_database = url.rsplit("/", 1)[0] + "/no_such_database_for_canvas"
    reason = verify.refused("sql", {"url": missing_database}, policy=NetworkPolicy(allow_private=True))
    assert "no_such_database_for_canvas" in reason


def test_sql_postgresql_closed_port_is_connection_refused(verify, closed_port):
    url = f"postgresql+psycopg://canvas:pg-Secret-77@127.0.0.1:{closed_port}/canvas"
    assert verify.refused("sql", {"url": url}) == f"connection refused by 127.0.0.1:{closed_port}"


def test_sql_postgresql_silent_server_times_out(verify, silent_server):
    url = f"postgresql+psycopg://canvas:pg-Secret-77@127.0.0.1:{silent_server.port}/canvas"
    reason, elapsed = verify.timed("sql", {"url": url}, timeout=SHORT_TIMEOUT)
    assert reason == f"timed out after 1 s connecting to 127.0.0.1:{silent_server.port}"  # libpq waits 2 s at least
    assert elapsed < 2 + TIMEOUT_SLACK


def test_sql_network_host_is_checked_by_the_policy(verify):
    url = "postgresql+psycopg://canvas:pg-Secret-77@10.1.2.3:5432/canvas"
    assert verify.refused("sql", {"url": url}, policy=NetworkPolicy()).startswith("Refused to connect to 10.1.2.3")


def test_sql_host_smuggled_into_the_query_is_refused(verify):
    url = "postgresql+psycopg://canvas:pg-Secret-77@db.example/canvas?host=169.254.169.254"
    assert verify.refused("sql", {"url": url}).startswith("name the database server in the URL's host part")


def test_sql_fields_form_builds_the_url_with_the_configured_driver(verify):
    credentials = {"server": "127.0.0.1", "database": "hr", "username": "sa", "password": "mssql-Secret-1"}
    reason = verify.refused("sql", credentials, settings={"driver": "mssql+pymssql"})
    assert reason == "the database driver for mssql+pymssql is not installed"


# --- REST ------------------------------------------------------------------------------------------------------

REST_CREDENTIALS = {
    "basic": {"authType": "basic", "username": "ann", "password": "rest-Password-1"},
    "bearer": {"authType": "bearer", "token": "rest-Token-2"},
    "apikey_header": {"authType": "apikey_header", "apiKeyName": "X-Key", "apiKey": "rest-Key-3"},
    "apikey_query": {"authType": "apikey_query", "apiKeyName": "key", "apiKey": "rest-Key-4"},
}


def guarded_api(request: Request) -> Response:
    """Accepts exactly the REST_CREDENTIALS above; answers 401 otherwise."""
    accepted = (
        (request.authorization and request.authorization.password == "rest-Password-1")
        or request.headers.get("Authorization") == "Bearer rest-Token-2"
        or request.headers.get("X-Key") == "rest-Key-3"
        or request.args.get("key") == "rest-Key-4"
    )
    return json_response({"ok": True}) if accepted else json_response({"error": "unauthorized"}, 401)


@pytest.mark.parametrize("auth_type", sorted(REST_CREDENTIALS))
def test_rest_succeeds_with_each_auth_type(verify, http_server, auth_type):
    http_server.route("/api/me", guarded_api)
    verify.ok("rest", {"baseUrl": http_server.url("/api"), "verifyPath": "me", **REST_CREDENTIALS[auth_type]})


@pytest.mark.parametrize("auth_type", sorted(REST_CREDENTIALS))
def test_rest_wrong_secret_is_authentication_rejected(verify, http_server, auth_type):
    http_server.route("/api", guarded_api)
    wrong = {field: f"wrong-{value}" if field in SECRET_FIELDS else value
             for field, value in REST_CREDENTIALS[auth_type].items()}
    assert verify.refused("rest", {"baseUrl": http_server.url("/api"), **wrong}) == "authentication rejected (HTTP 401)"


def test_rest_oauth2_client_credentials(verify, http_server):
    http_server.route("/token", lambda request: json_response({"access_token": "oauth-Token-5", "expires_in": 60}))
    http_server.route("/api", lambda request: Response(status=200 if request.headers.get("Authorization") == (
        "Bearer oauth-Token-5") else 401))
    credentials = {"baseUrl": http_server.url("/api"), "authType": "oauth2_client_credentials",
                   "tokenUrl": http_server.url("/token"), "clientId": "me", "clientSecret": "oauth-Secret-6"}
    verify.ok("rest", credentials)


def test_rest_oauth2_refused_client_is_authentication_rejected(verify, http_server):
    http_server.route("/token", respond({"error": "invalid_client"}, 401))
    credentials = {"baseUrl": http_server.url("/api"), "authType": "oauth2_client_credentials",
                   "tokenUrl": http_server.url("/token"), "clientId": "me", "clientSecret": "oauth-Secret-7"}
    reason = verify.refused("rest", credentials)
    assert reason == f"authentication rejected: the token endpoint {http_server.url('/token')} refused the client " \
                     "(HTTP 401: invalid_client)"


def test_rest_forbidden_and_server_errors(verify, http_server):
    http_server.route("/api/forbidden", respond({}, 403))
    http_server.route("/api/broken", respond({}, 500))
    base = {"baseUrl": http_server.url("/api"), **REST_CREDENTIALS["apikey_query"]}
    assert verify.refused("rest", {**base, "verifyPath": "forbidden"}) == "authentication rejected (HTTP 403)"
    reason = verify.refused("rest", {**base, "verifyPath": "/broken"})
    assert reason == f"HTTP 500 from {http_server.url('/api/broken')}"  # the key in the query is left out


def test_rest_redirect_to_cloud_metadata_is_refused(verify, http_server):
    http_server.route("/api", redirect_to("http://169.254.169.254/latest/meta-data/"))
    reason = verify.refused("rest", {"baseUrl": http_server.url("/api"), **REST_CREDENTIALS["bearer"]})
    assert reason == "Refused to connect to 169.254.169.254: link-local/cloud metadata addresses are never allowed"


def test_rest_https_needs_the_ca(verify, https_server, trusting):
    https_server.route("/api", respond({}))
    credentials = {"baseUrl": https_server.url("/api"), **REST_CREDENTIALS["bearer"]}
    assert verify.refused("rest", credentials).startswith("TLS failure: certificate verify failed")
    verify.ok("rest", credentials, policy=trusting)


def test_rest_incomplete_credentials_name_the_field(verify, http_server):
    reason = verify.refused("rest", {"baseUrl": http_server.url("/api"), "authType": "bearer"})
    assert reason == "bearer authentication needs the field(s): token"


# --- other kinds -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["filehub", "none"])
def test_kinds_without_anything_to_verify(verify, kind):
    verify.ok(kind, {}, policy=NetworkPolicy())


def test_unknown_kind_is_refused(verify):
    assert verify.refused("gopher", {}) == "unknown application kind 'gopher'"

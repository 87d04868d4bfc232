"""SFTP sessions through the NetworkPolicy: host key check, key or password login, and no unbounded wait.

    with open_sftp(policy, "sftp.example", 22, SshLogin("bob", password="..."), HostKeyCheck(pinned=line), 10) as s:
        s.sftp.put(...)

Every failure is an SshError whose `reason` is short and free of secrets ("login failed: ...", "host key mismatch:
...", "timed out after 10 s ..."). Unknown hosts are refused unless the host key policy is "accept_new": a host key
is only trusted when it was pinned (the hostKey field) or is in known_hosts.

paramiko (~13 MB resident) is imported only when a key is read or a session opened, never at import time: the API
imports this module (application checks, the SFTP blocks) in every worker but rarely opens a session.
"""
from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from canvas.network.failures import describe_network_error, endpoint, first_line, seconds
from canvas.network.guard import BlockedAddressError, NetworkPolicy

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS_FILE = "~/.ssh/known_hosts"
HOST_KEY_POLICIES = ("known_hosts", "accept_new")
WATCHDOG_FACTOR = 3  # opening a session may take this many timeouts in all (some paramiko waits have no timeout)


class SshError(Exception):
    """The SSH/SFTP session could not be opened. `reason` is safe to show."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidKeyError(SshError, ValueError):
    """A pasted private or public key could not be read. The message never quotes the key."""


# --- keys ------------------------------------------------------------------------------------------------------

def _paramiko_key_classes() -> tuple[tuple[type, type[paramiko.PKey]], ...]:
    import paramiko

    return (
        (rsa.RSAPrivateKey, paramiko.RSAKey),
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
    )


def _load_cryptography_key(data: bytes, password: bytes | None):
    try:
        return serialization.load_ssh_private_key(data, password)
    except ValueError:
        return serialization.load_pem_private_key(data, password)


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko key from pasted text: OpenSSH, traditional PEM or PKCS#8; RSA, Ed25519 or ECDSA."""
    import paramiko

    if "\n" not in text and "\\n" in text:  # pasted through a JSON string that was escaped once too often
        text = text.replace("\\n", "\n")
    data, password = text.strip().encode() + b"\n", passphrase.encode() if passphrase else None
    try:
        key = _load_cryptography_key(data, password)
        key_class = next(cls for kind, cls in _paramiko_key_classes() if isinstance(key, kind))
        # paramiko reads every key type from OpenSSH text: re-serialise once, unencrypted and in memory only.
        openssh = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        return key_class.from_private_key(io.StringIO(openssh.decode()))
    except (ValueError, TypeError, StopIteration, paramiko.SSHException):
        raise InvalidKeyError(
            "privateKey is not a readable RSA, Ed25519 or ECDSA private key (or its passphrase is missing or wrong)"
        ) from None


@dataclass(frozen=True)
class HostKey:
    """A public SSH host key as OpenSSH writes it: type and base64 blob."""

    key_type: str
    base64: str

    @classmethod
    def parse(cls, line: str) -> "HostKey":
        """From "ssh-ed25519 AAAA... comment" (a known_hosts line, with the host names in front, works too)."""
        words = line.split()
        for index, word in enumerate(words[:-1]):
            if word.startswith(("ssh-", "ecdsa-", "sk-")):
                return cls(word, words[index + 1])
        raise InvalidKeyError("hostKey is not an OpenSSH public key line like 'ssh-ed25519 AAAA...'")

    def matches(self, key: paramiko.PKey) -> bool:
        return key.get_base64() == self.base64

    def algorithms(self) -> list[str]:
        """The host-key algorithms that make a server present this key (RSA keys sign with several)."""
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if self.key_type == "ssh-rsa" else [self.key_type]


def known_host_keys(host: str, port: int, known_hosts_file: str = DEFAULT_KNOWN_HOSTS_FILE) -> list[HostKey]:
    """The keys known_hosts holds for host:port (OpenSSH writes "[host]:port" for ports other than 22)."""
    import paramiko

    known_hosts = paramiko.HostKeys()
    try:
        known_hosts.load(os.path.expanduser(known_hosts_file))
    except OSError:  # no known_hosts file: every host is unknown
        return []
    entries = known_hosts.lookup(host if port == 22 else f"[{host}]:{port}") or {}
    return [HostKey(key.get_name(), key.get_base64()) for key in entries.values()]


def describe_key(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


# --- session ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshLogin:
    username: str
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)  # pasted text; tried first when given
    passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class HostKeyCheck:
    pinned: str = ""  # the hostKey field: "ssh-ed25519 AAAA..."; empty = look in known_hosts
    policy: str = "known_hosts"  # or "accept_new": trust an unknown host (never a changed key)
    known_hosts_file: str = DEFAULT_KNOWN_HOSTS_FILE

    def expected_keys(self, host: str, port: int) -> list[HostKey]:
        if self.pinned.strip():
            return [HostKey.parse(self.pinned)]
        return known_host_keys(host, port, self.known_hosts_file)


@dataclass
class SftpSession:
    transport: paramiko.Transport
    sftp: paramiko.SFTPClient

    def close(self) -> None:
        self.sftp.close()
        self.transport.close()

    def __enter__(self) -> "SftpSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _restrict_host_key_types(transport: paramiko.Transport, expected: list[HostKey]) -> None:
    """Ask for a key type we can check: a server with RSA and Ed25519 keys would otherwise pick its favourite."""
    wanted = {algorithm for key in expected for algorithm in key.algorithms()}
    options = transport.get_security_options()
    supported = [algorithm for algorithm in options.key_types if algorithm in wanted]
    if supported:
        options.key_types = supported


def _start_client(transport: paramiko.Transport, timeout: float, where: str) -> None:
    started, negotiated = time.monotonic(), threading.Event()
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
    transport.start_client(event=negotiated)
    finished_in_time = negotiated.wait(timeout + 1)  # the transport's own timeouts usually fire first
    if finished_in_time and transport.is_active():
        return
    if not finished_in_time or time.monotonic() - started >= timeout * 0.9:
        raise SshError(f"timed out after {seconds(timeout)} s waiting for the SSH handshake of {where}")
    raise SshError(f"SSH handshake with {where} failed: {first_line(transport.get_exception()) or 'closed'}")


def _check_host_key(server_key: paramiko.PKey, expected: list[HostKey], where: str, policy: str) -> None:
    if not expected:
        if policy == "accept_new":
            log.info("accepting the unknown SSH host key %s of %s", describe_key(server_key), where)
            return
        raise SshError(
            f"unknown SSH host key {describe_key(server_key)} for {where}; put the server's public key in the "
            "hostKey field"
        )
    if not any(key.matches(server_key) for key in expected):
        presented = describe_key(server_key)
        raise SshError(f"host key mismatch: {where} presented {presented}, which is not the expected key")


def _log_in(transport: paramiko.Transport, login: SshLogin) -> None:
    import paramiko

    if not login.private_key.strip() and not login.password:
        raise SshError("enter a password or a privateKey")
    method = "private key" if login.private_key.strip() else "password"
    try:
        if login.private_key.strip():
            remaining = transport.auth_publickey(login.username, load_private_key(login.private_key, login.passphrase))
            if remaining and login.password:  # the server wants a second factor (publickey AND password)
                method = "password"
                transport.auth_password(login.username, login.password)
        else:
            transport.auth_password(login.username, login.password)
    except paramiko.BadAuthenticationType as error:
        allowed = ", ".join(error.allowed_types) or "nothing"
        raise SshError(f"login failed: the server does not accept this method (it allows {allowed})") from None
    except paramiko.AuthenticationException:
        raise SshError(f"login failed: the server rejected the {method} for user {login.username!r}") from None


def _open_sftp_channel(transport: paramiko.Transport, timeout: float) -> paramiko.SFTPClient:
    import paramiko

    channel = transport.open_session(timeout=timeout)
    channel.settimeout(timeout)  # every later SFTP read too
    channel.invoke_subsystem("sftp")
    return paramiko.SFTPClient(channel)


def _connect(policy: NetworkPolicy, host: str, port: int, timeout: float) -> paramiko.Transport:
    import paramiko

    try:
        return paramiko.Transport(policy.connect(host, port, timeout))
    except (BlockedAddressError, OSError) as error:
        raise SshError(describe_network_error(error, host, port, timeout) or first_line(error)) from None


def open_sftp(
    policy: NetworkPolicy, host: str, port: int, login: SshLogin, host_keys: HostKeyCheck, timeout: float
) -> SftpSession:
    """Connect to a checked address, verify the host key, log in and open SFTP; raise SshError otherwise."""
    import paramiko

    where = endpoint(host, port)
    expected = host_keys.expected_keys(host, port)
    transport = _connect(policy, host, port, timeout)
    watchdog = threading.Timer(WATCHDOG_FACTOR * timeout, transport.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        if expected:
            _restrict_host_key_types(transport, expected)
        _start_client(transport, timeout, where)
        _check_host_key(transport.get_remote_server_key(), expected, where, host_keys.policy)
        _log_in(transport, login)
        return SftpSession(transport, _open_sftp_channel(transport, timeout))
    except SshError:
        transport.close()
        raise
    except (paramiko.SSHException, EOFError, OSError) as error:
        transport.close()
        if not watchdog.is_alive():
            raise SshError(f"timed out after {seconds(timeout)} s opening an SFTP session with {where}") from None
        reason = describe_network_error(error, host, port, timeout) if isinstance(error, OSError) else None
        raise SshError(reason or f"SFTP session with {where} failed: {first_line(error) or 'closed'}") from None
    finally:
        watchdog.cancel()

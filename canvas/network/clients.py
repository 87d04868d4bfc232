"""Protocol clients that connect through the NetworkPolicy, for verification and for the blocks.

Each one opens its TCP connection with `policy.connect()` (the checked address is the one connected to, so a
rebinding DNS answer cannot slip in between) and keeps the host NAME for TLS certificate checks and SNI.
Also here: reading pasted SSH private keys and the SSH host keys a server is expected to present.
"""
from __future__ import annotations

import ftplib
import io
import os
import smtplib
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from canvas.network.guard import NetworkPolicy

DEFAULT_KNOWN_HOSTS_FILE = "~/.ssh/known_hosts"

# --- FTP / FTPS ------------------------------------------------------------------------------------------------


class _PolicyConnectMixin:
    """ftplib's connect(), but through NetworkPolicy.connect; self.host keeps the name FTPS verifies against.

    Passive data connections go to the control connection's peer address (ftplib ignores the address in a PASV
    reply unless trust_server_pasv_ipv4_address is set), so they reach the checked address too.
    """

    policy: NetworkPolicy

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host = host or self.host
        self.port = port if port > 0 else self.port
        self.timeout = self.timeout if timeout == -999 else timeout
        self.source_address = source_address or self.source_address
        self.sock = self.policy.connect(self.host, self.port, self.timeout, self.source_address)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class GuardedFTP(_PolicyConnectMixin, ftplib.FTP):
    """Plain FTP. `timeout` (keyword) bounds the connect and every read."""

    def __init__(self, policy: NetworkPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)


class GuardedFTPTLS(_PolicyConnectMixin, ftplib.FTP_TLS):
    """Explicit FTPS (AUTH TLS); the certificate is verified with policy.ssl_context()."""

    def __init__(self, policy: NetworkPolicy, **kwargs):
        self.policy = policy
        super().__init__(context=policy.ssl_context(), **kwargs)


# --- SMTP ------------------------------------------------------------------------------------------------------


class _RememberHostMixin:
    def connect(self, host="localhost", port=0, source_address=None):
        # smtplib records the host only when given to __init__ (which would connect at once), yet STARTTLS and
        # SMTPS verify the certificate against it.
        self._host = host
        return super().connect(host, port, source_address)


class GuardedSMTP(_RememberHostMixin, smtplib.SMTP):
    """SMTP (optionally upgraded with STARTTLS, which checks the certificate against the host name)."""

    def __init__(self, policy: NetworkPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        return self.policy.connect(host, port, timeout, self.source_address)


class GuardedSMTPSSL(_RememberHostMixin, smtplib.SMTP_SSL):
    """SMTP over implicit TLS (SMTPS), verified with policy.ssl_context()."""

    def __init__(self, policy: NetworkPolicy, **kwargs):
        self.policy = policy
        super().__init__(context=policy.ssl_context(), **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = self.policy.connect(host, port, timeout, self.source_address)
        return self.context.wrap_socket(sock, server_hostname=self._host)


# --- SSH keys --------------------------------------------------------------------------------------------------


class InvalidKeyError(ValueError):
    """A pasted key could not be read. The message never quotes the key."""


_PARAMIKO_KEY_CLASSES = (
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
    if "\n" not in text and "\\n" in text:  # pasted through a JSON string that was escaped once too often
        text = text.replace("\\n", "\n")
    data, password = text.strip().encode() + b"\n", passphrase.encode() if passphrase else None
    try:
        key = _load_cryptography_key(data, password)
        key_class = next(cls for kind, cls in _PARAMIKO_KEY_CLASSES if isinstance(key, kind))
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

    @classmethod
    def of(cls, key: paramiko.PKey) -> "HostKey":
        return cls(key.get_name(), key.get_base64())

    def matches(self, key: paramiko.PKey) -> bool:
        return key.get_base64() == self.base64

    def algorithms(self) -> list[str]:
        """The host-key algorithms that make a server present this key (RSA keys sign with several)."""
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if self.key_type == "ssh-rsa" else [self.key_type]


def known_host_keys(host: str, port: int, known_hosts_file: str = DEFAULT_KNOWN_HOSTS_FILE) -> list[HostKey]:
    """The keys known_hosts holds for host:port (OpenSSH writes "[host]:port" for ports other than 22)."""
    known_hosts = paramiko.HostKeys()
    try:
        known_hosts.load(os.path.expanduser(known_hosts_file))
    except OSError:  # no known_hosts file: every host is unknown
        return []
    entries = known_hosts.lookup(host if port == 22 else f"[{host}]:{port}") or {}
    return [HostKey.of(key) for key in entries.values()]


def restrict_host_key_types(transport: paramiko.Transport, expected: list[HostKey]) -> None:
    """Ask for a key type we can check: a server with RSA and Ed25519 keys would otherwise pick its favourite."""
    wanted = {algorithm for key in expected for algorithm in key.algorithms()}
    options = transport.get_security_options()
    supported = [algorithm for algorithm in options.key_types if algorithm in wanted]
    if supported:
        options.key_types = supported


def describe_key(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"

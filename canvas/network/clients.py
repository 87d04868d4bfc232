"""FTP and SMTP clients that connect through the NetworkPolicy, for verification and for the blocks.

Each one opens its TCP connection with `policy.connect()` (the checked address is the one connected to, so a
rebinding DNS answer cannot slip in between) and keeps the host NAME for TLS certificate checks and SNI.
SFTP lives in `canvas.network.ssh`.
"""
from __future__ import annotations

import ftplib
import smtplib

from canvas.network.guard import NetworkPolicy

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
    message_sent = False  # the DATA command was begun: a connection lost from here may have delivered the e-mail

    def connect(self, host="localhost", port=0, source_address=None):
        # smtplib records the host only when given to __init__ (which would connect at once), yet STARTTLS and
        # SMTPS verify the certificate against it.
        self._host = host
        return super().connect(host, port, source_address)

    def data(self, msg):  # noqa: ANN001, ANN201 - smtplib's signature
        self.message_sent = True
        return super().data(msg)


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

"""A real SMTP server (aiosmtpd) on 127.0.0.1, on a free port, that requires AUTH and keeps what it receives.

mode "plain": no TLS; "starttls": offers STARTTLS and only allows AUTH after it; "ssl": implicit TLS (SMTPS).
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
import logging
import socket
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.servers.certs import TlsCerts

DEFAULT_USERNAME = "smtp-user"
DEFAULT_PASSWORD = "smtp-Secret-1234"
MODES = ("plain", "starttls", "ssl")
READY_TIMEOUT = 30.0  # seconds; aiosmtpd's 5 s default is tight on a loaded CI machine

# aiosmtpd sets its own deprecated login_data and then complains about it on every login: keep that out of the logs.
logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # the raw message as received
    login: str | None  # who authenticated, if anyone

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)


class _CollectingHandler:
    def __init__(self, messages: list[ReceivedMessage], owner: "SmtpServer"):
        self.messages, self.owner = messages, owner

    async def handle_DATA(self, server, session, envelope):
        if self.owner.data_delay_seconds:  # a relay taking its time over the message
            await asyncio.sleep(self.owner.data_delay_seconds)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        raw = envelope.original_content or envelope.content or b""
        self.messages.append(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), bytes(raw), login))
        return "250 Message accepted for delivery"


class _PreboundController(Controller):
    """aiosmtpd's Controller serving a socket bound beforehand: it cannot listen on port 0 by itself."""

    def __init__(self, handler, listener: socket.socket, *, auth_required: bool, **kwargs):
        self._listener = listener
        self._require_auth = auth_required
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, ready_timeout=READY_TIMEOUT, **kwargs)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        # AUTH without TLS is what the "plain" and "ssl" modes are for (aiosmtpd does not count implicit TLS), but
        # aiosmtpd warns about it on every connection; requiring AUTH after construction keeps the output clean.
        smtp = SMTP(self.handler, **self.SMTP_kwargs)
        smtp._auth_required = self._require_auth
        return smtp


class SmtpServer:
    """SMTP with AUTH LOGIN/PLAIN required for sending; `messages` collects every accepted message."""

    def __init__(
        self,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        *,
        mode: str = "plain",
        tls_certs: TlsCerts | None = None,
        auth_required: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode != "plain" and tls_certs is None:
            raise ValueError(f"mode {mode!r} needs tls_certs")
        self.username, self.password = username, password
        self.mode, self.tls_certs, self.auth_required = mode, tls_certs, auth_required
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[ReceivedMessage] = []
        self.data_delay_seconds = 0.0  # how long the server takes before it accepts a message
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == self.username and hmac.compare_digest(
            auth_data.password, self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    def _tls_options(self) -> dict:
        if self.mode == "starttls":
            return {"tls_context": self.tls_certs.server_context(), "auth_require_tls": True}
        if self.mode == "ssl":
            return {"ssl_context": self.tls_certs.server_context(), "auth_require_tls": False}
        return {"auth_require_tls": False}

    def start(self) -> "SmtpServer":
        listener = socket.create_server((self.host, 0))
        self.port = listener.getsockname()[1]
        self._controller = _PreboundController(
            _CollectingHandler(self.messages, self),
            listener,
            server_hostname="canvas-test-smtpd",  # else aiosmtpd asks DNS for our FQDN
            authenticator=self._authenticate,
            auth_required=self.auth_required,
            **self._tls_options(),
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def credentials(self, **overrides) -> dict:
        """SMTP application credentials for this server."""
        security = {"plain": "none", "starttls": "starttls", "ssl": "ssl"}[self.mode]
        credentials = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "security": security,
        }
        return {**credentials, **overrides}

"""Activation and console password-reset e-mails over SMTP (CANVAS_SMTP_URL); without SMTP the link is logged for
the operator."""
from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from canvas.errors import ServiceUnavailableError
from canvas.network.guard import system_trust_context

log = logging.getLogger(__name__)
SMTP_TIMEOUT_SECONDS = 15


def send_activation_link(settings: dict, recipient: str, link: str, console_link: str | None = None) -> None:
    """The Canvas activation link and, beside it, the console's: the same single-use token, where the account also
    sets its console password."""
    console_part = ("" if console_link is None else
                    f"Or open this link to activate it and set a password for the web console:\n\n{console_link}\n\n")
    _send(settings, recipient, "Activate your Canvas account",
          f"An account was created for {recipient}.\n\nOpen this link to activate it (it works once, and expires in "
          f"{settings['ACTIVATION_TTL_HOURS']} hours):\n\n{link}\n\n{console_part}".rstrip("\n") + "\n",
          "activation")


def send_password_reset_link(settings: dict, recipient: str, link: str) -> None:
    _send(settings, recipient, "Set a new password for the Canvas console",
          f"Someone asked to set a new console password for {recipient}.\n\nOpen this link to set it (it works once, "
          f"and expires in {settings['CONSOLE_RESET_TTL_HOURS']:g} hours):\n\n{link}\n\n"
          f"If it was not you, ignore this e-mail: your password stays as it is.\n", "password reset")


def _send(settings: dict, recipient: str, subject: str, body: str, kind: str) -> None:
    smtp_url = settings.get("SMTP_URL")
    if not smtp_url:
        log.warning("CANVAS_SMTP_URL is not set; %s e-mail for %s:\n%s", kind, recipient, body)
        return
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings["SMTP_FROM"]
    message["To"] = recipient
    message.set_content(body)
    try:
        send_message(smtp_url, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("%s e-mail to %s failed: %s", kind, recipient, exc.__class__.__name__)
        raise ServiceUnavailableError(f"The {kind} e-mail could not be sent: {_reason(exc)}") from None


def relay_settings(smtp_url: str) -> dict:
    """CANVAS_SMTP_URL (smtp://user:pass@host:587?starttls=1, smtps://…) as host, port, security (starttls, ssl,
    none), username and password: the shape of an SMTP application's credentials."""
    parts = urlsplit(smtp_url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "smtps":
        security = "ssl"
    else:
        security = "starttls" if options.get("starttls", "0").lower() in ("1", "true", "yes") else "none"
    return {"host": parts.hostname or "", "port": parts.port or (465 if security == "ssl" else 25),
            "security": security, "username": unquote(parts.username or ""), "password": unquote(parts.password or "")}


def send_message(smtp_url: str, message: EmailMessage) -> None:
    """Through the platform relay; raises OSError or smtplib.SMTPException (run notifications use it too)."""
    relay = relay_settings(smtp_url)
    context = system_trust_context()  # one per process: building one cost every message ~30 ms of CPU
    implicit_tls = relay["security"] == "ssl"
    smtp_class = smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP
    kwargs = {"context": context} if implicit_tls else {}
    with smtp_class(relay["host"], relay["port"], timeout=SMTP_TIMEOUT_SECONDS, **kwargs) as client:
        if relay["security"] == "starttls":
            client.starttls(context=context)
        if relay["username"]:
            client.login(relay["username"], relay["password"])
        client.send_message(message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "the mail server refused the login"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "the mail server refused the recipient"
    if isinstance(exc, TimeoutError):
        return "the mail server did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "the mail server refused the connection"
    return exc.__class__.__name__

"""Activation e-mails over SMTP (CANVAS_SMTP_URL); without SMTP the link is logged for the operator."""
from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from canvas.errors import ServiceUnavailableError

log = logging.getLogger(__name__)
SMTP_TIMEOUT_SECONDS = 15


def send_activation_link(settings: dict, recipient: str, link: str) -> None:
    smtp_url = settings.get("SMTP_URL")
    if not smtp_url:
        log.warning("CANVAS_SMTP_URL is not set; activation link for %s: %s", recipient, link)
        return
    message = EmailMessage()
    message["Subject"] = "Activate your Canvas account"
    message["From"] = settings["SMTP_FROM"]
    message["To"] = recipient
    message.set_content(
        f"An account was created for {recipient}.\n\nOpen this link to activate it (it works once, and expires in "
        f"{settings['ACTIVATION_TTL_HOURS']} hours):\n\n{link}\n"
    )
    try:
        _send(smtp_url, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("activation e-mail to %s failed: %s", recipient, exc.__class__.__name__)
        raise ServiceUnavailableError(f"The activation e-mail could not be sent: {_reason(exc)}") from None


def _send(smtp_url: str, message: EmailMessage) -> None:
    parts = urlsplit(smtp_url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    implicit_tls = parts.scheme == "smtps"
    port = parts.port or (465 if implicit_tls else 25)
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP
    kwargs = {"context": context} if implicit_tls else {}
    with smtp_class(parts.hostname, port, timeout=SMTP_TIMEOUT_SECONDS, **kwargs) as client:
        if not implicit_tls and options.get("starttls", "0").lower() in ("1", "true", "yes"):
            client.starttls(context=context)
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
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

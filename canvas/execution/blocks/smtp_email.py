"""Send e-mail ("Send email" in the Canvas document) through the bound SMTP application, or, bound to the platform
application (CMAF) as in the document's "MyStore Customers Send email", through the platform's own relay
(CANVAS_SMTP_URL, from CANVAS_SMTP_FROM). Without `to`, the e-mail goes to the account the workflow belongs to.

The input records are attached as one file named `fileName` + the format's extension (csv, json or xml); an input
file is attached as is; without input only the note is sent. STARTTLS, implicit TLS (ssl) or none as the
application's `security` says; From is the application's `fromAddress`.

A refused recipient, sender or message is final (BlockError naming it); a lost or refused connection is transient.
"""
from __future__ import annotations

import mimetypes
import re
import smtplib
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as DEFAULT_EMAIL_POLICY
from email.utils import formatdate, make_msgid, parseaddr

from canvas.applications.values import SMTP_DEFAULT_PORTS, smtp_reply_text, smtp_security_value
from canvas.execution.blocks._file_names import file_name_problem
from canvas.execution.blocks._net_common import (
    credential_redactor,
    Redactor, as_file, credentials_of, file_format_variable, network_failures, policy_of, port_field, required_field,
    target_file_name, timeout_of, timeout_variable,
)
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockAuthenticationError, BlockContext, BlockError, TransientBlockError
from canvas.execution.data import BlockData, FileData
from canvas.execution.registry import register
from canvas.network.clients import GuardedSMTP, GuardedSMTPSSL
from canvas.network.failures import endpoint

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # what common mail servers accept; larger files belong on FTP/SFTP
DEFAULT_FILE_NAME = "data"
_ADDRESS_SEPARATORS = re.compile(r"[,;]")


@register
class SendEmail(Block):
    key = "email.send"
    title = "Send email"
    description = ("Sends an e-mail with the input records (or file) attached, through the SMTP application, or "
                   "through the platform's relay when bound to the platform application (CMAF).")
    application_kind = "smtp"
    side_effects = True
    input_kind = "any"
    output_kind = "none"
    variables = {
        "to": VariableSpec("any", description="Recipients: an array or a comma-separated text; none: the e-mail "
                                              "address of the account the workflow belongs to."),
        "cc": VariableSpec("any", description="Copy recipients: an array or a comma-separated text."),
        "subject": VariableSpec("string", default="", description="The subject line."),
        "fileName": VariableSpec("string", default=DEFAULT_FILE_NAME, description="Attachment name (records).",
                                 text_check=file_name_problem),
        "note": VariableSpec("string", default="", description="The body text."),
        "fileformat": file_format_variable(),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> None:
        credentials = credentials_of(context, self.key)
        variables = context.variables
        sender = _addresses(required_field(credentials, "fromAddress"), "the application's fromAddress")
        to, cc = _addresses(variables.get("to"), "to"), _addresses(variables.get("cc"), "cc")
        if not to:
            to = _addresses(context.owner_email(), "the account's e-mail address")
        if not to:
            raise BlockError("no recipient: the variable 'to' is empty and the account has no e-mail address")
        message = _message(sender[0], to, cc, variables.get("subject") or "", variables.get("note") or "")
        attachment = self._attach(context, message, data)
        send(context, credentials, message, sender[0], to + cc)
        context.logger.info("sent %r to %d recipient(s)%s", message["Subject"], len(to + cc),
                            f" with {attachment} attached" if attachment else "")

    def _attach(self, context: BlockContext, message: EmailMessage, data: BlockData) -> str | None:
        if data is None:
            return None
        fileformat = context.variables.get("fileformat") or "csv"
        name = target_file_name(context.variables.get("fileName") or DEFAULT_FILE_NAME, data, fileformat)
        file = as_file(context, data, fileformat, name, self.key)
        name = file.name if isinstance(data, FileData) else name
        maintype, subtype = _content_type(file, name).split("/", 1)
        message.add_attachment(_bounded_bytes(file), maintype=maintype, subtype=subtype, filename=name)
        return name


def _addresses(value: object, variable: str) -> list[str]:
    """Addresses from an array or a comma/semicolon-separated text; each must look like name@domain."""
    items = value if isinstance(value, (list, tuple)) else _ADDRESS_SEPARATORS.split(str(value or ""))
    addresses = []
    for item in (str(item).strip() for item in items):
        if not item:
            continue
        address = parseaddr(item)[1]
        if "@" not in address or any(character in address for character in "\r\n "):
            raise BlockError(f"{variable}: {item!r} is not an e-mail address")
        addresses.append(address)
    return addresses


def _message(sender: str, to: list[str], cc: list[str], subject: str, note: str) -> EmailMessage:
    message = EmailMessage(policy=DEFAULT_EMAIL_POLICY)  # its default, imported now rather than by each forked child
    try:
        message["From"] = sender
        message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        message["Subject"] = subject
    except ValueError as error:  # a line break in a header would let a variable add headers of its own
        raise BlockError(f"cannot build the e-mail headers: {error}") from None
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=Address(addr_spec=sender).domain or None)
    message.set_content(note)
    return message


def _content_type(file: FileData, name: str) -> str:
    given = (file.content_type or "").split(";")[0].strip().lower()
    if "/" in given and given != "application/octet-stream":
        return given
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _bounded_bytes(file: FileData) -> bytes:
    with file.open() as stream:
        content = stream.read(MAX_ATTACHMENT_BYTES + 1)
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise BlockError(f"the attachment is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB; "
                         "send large files by FTP or SFTP instead")
    return content


# --- SMTP ----------------------------------------------------------------------------------------------------


def security_of(credentials: Mapping) -> str:
    security = smtp_security_value(credentials)
    if security is None:
        raise BlockError("the application's security must be one of starttls, ssl, none")
    return security


def send(context: BlockContext, credentials: Mapping, message: EmailMessage, sender: str,
         recipients: list[str]) -> None:
    host, security = required_field(credentials, "host"), security_of(credentials)
    port, timeout = port_field(credentials, SMTP_DEFAULT_PORTS[security]), timeout_of(context)
    redact = credential_redactor(credentials)
    policy = policy_of(context)
    smtp_class = GuardedSMTPSSL if security == "ssl" else GuardedSMTP
    smtp = smtp_class(policy, timeout=timeout, local_hostname=socket.gethostname())  # no DNS lookup for HELO
    with network_failures(host, port, timeout, redact), smtp_replies(endpoint(host, port), redact):
        try:
            smtp.connect(host, port)
            smtp.ehlo_or_helo_if_needed()
            if security == "starttls":
                smtp.starttls(context=policy.ssl_context())
                smtp.ehlo()
            username = str(credentials.get("username") or "").strip()
            if username:
                smtp.login(username, str(credentials.get("password") or ""))
            try:
                refused = smtp.send_message(message, sender, recipients)
            except smtplib.SMTPServerDisconnected:
                if smtp.message_sent:
                    raise _delivery_unknown(endpoint(host, port)) from None
                raise
        finally:
            _close(smtp)
    if refused:
        raise BlockError(redact(f"the server refused {_refusals(refused)}; the others received the e-mail"))


def _delivery_unknown(where: str) -> BlockError:
    """The connection ended after the e-mail was sent and before the server said it took it: it may have been
    delivered. Said as such (never retried): 'connection closed' read as not sent, and a rerun mailed it twice."""
    error = BlockError(f"the connection to {where} closed after the e-mail was sent, before the server confirmed "
                       "it: it may have been delivered; check with a recipient before running again")
    error.outcome_unknown = True
    return error


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


@contextmanager
def smtp_replies(where: str, redact: Redactor) -> Iterator[None]:
    try:
        yield
    except smtplib.SMTPAuthenticationError as error:
        raise BlockAuthenticationError(redact(f"SMTP login failed: {_reply(error)}")) from None
    except smtplib.SMTPRecipientsRefused as error:
        raise BlockError(redact(f"the server refused {_refusals(error.recipients)}")) from None
    except smtplib.SMTPSenderRefused as error:
        raise BlockError(redact(f"the server refused the sender {error.sender}: {_reply(error)}")) from None
    except smtplib.SMTPServerDisconnected as error:
        timed_out = isinstance(error.__context__, TimeoutError)  # smtplib turns a read timeout into this
        raise TransientBlockError(f"{'timed out waiting for' if timed_out else 'connection closed by'} {where}") \
            from None
    except smtplib.SMTPNotSupportedError as error:
        raise BlockError(f"{where}: {error} (check the application's security)") from None
    except smtplib.SMTPResponseException as error:
        failure = TransientBlockError if 400 <= error.smtp_code < 500 else BlockError
        raise failure(redact(f"the server rejected the e-mail: {_reply(error)}")) from None
    except smtplib.SMTPException as error:
        raise BlockError(redact(f"SMTP failure with {where}: {error}")) from None


def _reply(error: smtplib.SMTPResponseException) -> str:
    return f"{error.smtp_code} {smtp_reply_text(error.smtp_error)}"


def _refusals(refused: Mapping) -> str:
    """'recipient a@x (550 no such user), b@y (...)' from smtplib's {address: (code, reply)}."""
    described = [f"{address} ({code} {smtp_reply_text(reply)})" for address, (code, reply) in refused.items()]
    return ("recipient " if len(described) == 1 else "recipients ") + ", ".join(described)



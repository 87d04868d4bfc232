"""email.send against aiosmtpd on loopback: plain, STARTTLS and SMTPS; attachments, headers, refusals."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from canvas.execution.context import BlockAuthenticationError, TransientBlockError
from canvas.execution.data import Records
from canvas.execution.registry import get_block
from canvas.network.guard import NetworkPolicy
from tests.integration.blocks.net_support import (
    LOOPBACK, assert_no_secrets, failure, file_of, logged_text, make_context, run_block,
)
from tests.servers import smtp as smtp_module
from tests.servers.smtp import SmtpServer

SENDER = "canvas@example.com"
CUSTOMERS = [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}]
DOCUMENT_VARIABLES = {"subject": "MyStore Customers", "fileName": "AllCustomers",
                      "note": "Please see your customers in MyStore"}


def credentials(server: SmtpServer, **overrides) -> dict:
    return server.credentials(fromAddress=SENDER, **overrides)


def send(server, tmp_path, data, policy=LOOPBACK, **variables):
    return run_block("email.send", tmp_path, credentials=credentials(server), data=data, policy=policy,
                     variables={"to": "ann@example.com", **variables})


def test_records_are_attached_as_csv_with_the_documents_variables(smtp_server, tmp_path):
    send(smtp_server, tmp_path, Records(iter(CUSTOMERS)), to=["ann@example.com", "bob@example.com"],
         cc="boss@example.com; audit@example.com", **DOCUMENT_VARIABLES)
    received = smtp_server.messages[0]
    assert received.login == smtp_server.username and received.mail_from == SENDER
    assert received.rcpt_tos == ["ann@example.com", "bob@example.com", "boss@example.com", "audit@example.com"]
    message = received.parsed()
    assert message["From"] == SENDER and message["Subject"] == "MyStore Customers"
    assert message["To"] == "ann@example.com, bob@example.com" and message["Cc"] == "boss@example.com, audit@example.com"
    assert message.get_body(("plain",)).get_content().strip() == "Please see your customers in MyStore"
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "AllCustomers.csv" and attachment.get_content_type() == "text/csv"
    assert attachment.get_payload(decode=True) == b"id,name\r\n1,Ann\r\n2,Bob\r\n"


def test_a_file_is_attached_as_is_and_json_is_an_option(smtp_server, tmp_path):
    pdf = b"%PDF-1.7 \x00\xff binary"
    send(smtp_server, tmp_path, file_of("report.pdf", pdf, "application/pdf"))
    send(smtp_server, tmp_path, Records(iter(CUSTOMERS)), fileformat="json", fileName="customers")
    first, second = (next(m.parsed().iter_attachments()) for m in smtp_server.messages)
    assert (first.get_filename(), first.get_content_type(), first.get_payload(decode=True)) == (
        "report.pdf", "application/pdf", pdf)
    assert second.get_filename() == "customers.json" and second.get_payload(decode=True).startswith(b"[")


def test_without_input_only_the_note_is_sent(smtp_server, tmp_path):
    send(smtp_server, tmp_path, None, note="nothing attached")
    message = smtp_server.messages[0].parsed()
    assert list(message.iter_attachments()) == [] and "nothing attached" in message.get_content()


def tls_policy(tls_certs) -> NetworkPolicy:
    return NetworkPolicy(allowlist=LOOPBACK.allowlist, ca_file=str(tls_certs.ca_file))


def test_starttls_and_smtps(smtp_starttls_server, smtps_server, tls_certs, tmp_path):
    for server in (smtp_starttls_server, smtps_server):
        send(server, tmp_path, Records(iter(CUSTOMERS)), policy=tls_policy(tls_certs), subject=server.mode)
        assert server.messages[0].parsed()["Subject"] == server.mode and server.messages[0].login


class RefusingHandler(smtp_module._CollectingHandler):
    """Refuses recipients at refused.example and every message whose subject says "spam"."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if b"Subject: spam" in envelope.original_content:
            return "554 5.7.1 message refused as spam"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def refusing_server(monkeypatch):
    monkeypatch.setattr(smtp_module, "_CollectingHandler", RefusingHandler)
    with SmtpServer() as server:
        yield server


class HangingUpHandler(smtp_module._CollectingHandler):
    """Keeps the message, then closes the connection instead of saying 250."""

    async def handle_DATA(self, server, session, envelope):
        await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "250 never sent"


def test_a_connection_lost_after_the_message_was_sent_says_it_may_have_been_delivered(monkeypatch, tmp_path):
    """It said 'connection closed by …', which reads as not sent: a rerun mailed it twice."""
    monkeypatch.setattr(smtp_module, "_CollectingHandler", HangingUpHandler)
    with SmtpServer() as server:
        error = failure("email.send", tmp_path, credentials=credentials(server), variables={"to": "ann@example.com"})
        assert len(server.messages) == 1
    assert not error.transient and error.outcome_unknown
    assert "closed after the e-mail was sent, before the server confirmed it: it may have been delivered" in str(error)


def test_a_refused_recipient_is_named(refusing_server, tmp_path):
    error = failure("email.send", tmp_path, credentials=credentials(refusing_server),
                    variables={"to": "nobody@refused.example"})
    assert "nobody@refused.example" in str(error) and "550" in str(error)
    partly = failure("email.send", tmp_path, credentials=credentials(refusing_server),
                     variables={"to": "ann@example.com, nobody@refused.example"})
    assert "nobody@refused.example" in str(partly) and "others received" in str(partly)
    assert refusing_server.messages[0].rcpt_tos == ["ann@example.com"]


def test_a_refused_message_is_final(refusing_server, tmp_path):
    error = failure("email.send", tmp_path, credentials=credentials(refusing_server),
                    variables={"to": "ann@example.com", "subject": "spam"})
    assert "554" in str(error) and "spam" in str(error)


def test_a_wrong_password_is_an_authentication_error_without_the_password(smtp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Password-1337"
    error = failure("email.send", tmp_path, BlockAuthenticationError, variables={"to": "ann@example.com"},
                    credentials=credentials(smtp_server, password=wrong))
    assert "SMTP login failed" in str(error)
    assert_no_secrets([str(error), *logged_text(caplog)], [wrong, smtp_server.password])


def test_connection_failures_are_transient(smtp_server, closed_port, silent_server, tmp_path):
    refused = failure("email.send", tmp_path, TransientBlockError, variables={"to": "a@example.com"},
                      credentials=credentials(smtp_server, port=closed_port))
    assert "connection refused" in str(refused)
    silent = failure("email.send", tmp_path, TransientBlockError, variables={"to": "a@example.com", "timeout": 1},
                     credentials=credentials(smtp_server, port=silent_server.port))
    assert "timed out" in str(silent)


@pytest.mark.parametrize("variables, problem", [
    ({"to": "not an address"}, "not an e-mail address"),
    ({"to": []}, "no recipient: the variable 'to' is empty and the account has no e-mail address"),
    ({"to": "a@example.com", "subject": "hi\r\nBcc: victim@example.com"}, "headers"),
])
def test_bad_variables_are_refused_before_sending(smtp_server, tmp_path, variables, problem):
    error = failure("email.send", tmp_path, variables=variables, credentials=credentials(smtp_server))
    assert problem in str(error) and smtp_server.messages == []


def test_without_to_the_e_mail_goes_to_the_account_the_workflow_belongs_to(smtp_server, tmp_path):
    context = dataclasses.replace(make_context("email.send", {"subject": "yours"}, credentials(smtp_server), tmp_path),
                                  owner_email=lambda: "owner@tenant.example")
    get_block("email.send")().run(context, None)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["owner@tenant.example"] and received.parsed()["To"] == "owner@tenant.example"

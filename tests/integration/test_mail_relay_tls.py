"""The platform's own mail relay (CANVAS_SMTP_URL: account activation, run notifications) over STARTTLS and SMTPS,
against real servers that present the test CA's certificate. The relay trusts the system's CAs; here SSL_CERT_FILE
makes the test CA the system's. However many messages go out, the process builds one TLS context (building one
cost every message ~30 ms of CPU), and a certificate the system does not trust is refused before anything is sent.
"""
from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest

from canvas.accounts.mail import send_message


@pytest.fixture
def system_trusts_the_test_ca(fresh_tls_contexts, tls_certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_file))


def note(number: int) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "canvas@example.com", "ops@example.com", f"Note {number}"
    message.set_content("hello")
    return message


def relay_url(server, scheme: str, query: str = "") -> str:
    return f"{scheme}://{server.username}:{server.password}@{server.host}:{server.port}{query}"


def test_starttls_and_smtps_relays_deliver_through_one_context(system_trusts_the_test_ca, fresh_tls_contexts,
                                                               smtp_starttls_server, smtps_server):
    for server, url in ((smtp_starttls_server, relay_url(smtp_starttls_server, "smtp", "?starttls=1")),
                        (smtps_server, relay_url(smtps_server, "smtps"))):
        for number in (1, 2):
            send_message(url, note(number))
        assert [message.parsed()["Subject"] for message in server.messages] == ["Note 1", "Note 2"]
        assert [message.login for message in server.messages] == [server.username] * 2
    assert fresh_tls_contexts.cache_info().misses == 1


def test_a_relay_certificate_the_system_does_not_trust_is_refused(fresh_tls_contexts, smtp_starttls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        send_message(relay_url(smtp_starttls_server, "smtp", "?starttls=1"), note(1))
    assert smtp_starttls_server.messages == []

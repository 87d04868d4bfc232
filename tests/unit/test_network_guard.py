"""The outbound SSRF guard: address rules, the setting, and a requests session checked on every hop."""
from __future__ import annotations

import socket
import ssl

import pytest
import requests

from canvas.network.guard import BlockedAddressError, NetworkPolicy, guarded_session
from tests.integration.blocks.forked_runs import counting_trust_store_loads
from tests.servers.http import HttpServer, redirect_to, respond

DEFAULT = NetworkPolicy()
ALLOW_PRIVATE = NetworkPolicy(allow_private=True)
LOOPBACK_ONLY = NetworkPolicy.from_setting("127.0.0.1/32")

NEVER_ALLOWED = [
    "169.254.169.254",  # AWS/GCP/Azure metadata
    "169.254.10.1",  # any IPv4 link-local
    "fe80::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "100.100.100.200",  # Alibaba metadata
    "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
PRIVATE = [
    "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "127.8.8.8", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "240.0.0.1", "::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:7f00:1::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", NEVER_ALLOWED)
@pytest.mark.parametrize(
    "policy",
    [DEFAULT, ALLOW_PRIVATE, NetworkPolicy.from_setting("169.254.0.0/16,fe80::/10,fd00::/8,100.64.0.0/10")],
    ids=["default", "allow-private", "allowlisted"],
)
def test_link_local_and_metadata_are_refused_whatever_the_policy(address, policy):
    with pytest.raises(BlockedAddressError, match="link-local/cloud metadata addresses are never allowed"):
        policy.check_address(address)


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_are_refused_by_default_with_a_hint(address):
    with pytest.raises(BlockedAddressError) as refused:
        DEFAULT.check_address(address)
    assert str(refused.value).startswith(f"Refused to connect to {address}: private address")
    assert "set CANVAS_ALLOW_PRIVATE_NETWORKS to allow it" in str(refused.value)


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_are_allowed_when_private_networks_are(address):
    ALLOW_PRIVATE.check_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed_by_default(address):
    DEFAULT.check_address(address)


@pytest.mark.parametrize(
    "address, allowed",
    [("10.0.0.1", True), ("10.255.0.9", True), ("::ffff:10.0.0.1", True), ("192.168.1.1", False),
     ("127.0.0.1", True), ("127.0.0.2", False)],
    ids=["in-cidr", "in-cidr-edge", "mapped-in-cidr", "other-private", "single-host", "next-to-single-host"],
)
def test_allowlist_allows_only_its_networks(address, allowed):
    policy = NetworkPolicy.from_setting("10.0.0.0/8, 127.0.0.1")
    if allowed:
        policy.check_address(address)
    else:
        with pytest.raises(BlockedAddressError, match="private address"):
            policy.check_address(address)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " yes "])
def test_setting_true_allows_all_private_networks(value):
    assert NetworkPolicy.from_setting(value) == NetworkPolicy(allow_private=True)


@pytest.mark.parametrize("value", [None, "", "false", "False", "0", "no"])
def test_setting_false_or_empty_allows_none(value):
    assert NetworkPolicy.from_setting(value) == NetworkPolicy()


def test_setting_with_cidrs_builds_an_allowlist_and_keeps_the_ca_file():
    policy = NetworkPolicy.from_setting("10.1.0.0/16,fd12::/16", ca_file="/etc/ca.pem")
    assert [str(network) for network in policy.allowlist] == ["10.1.0.0/16", "fd12::/16"]
    assert policy.allow_private is False and policy.ca_file == "/etc/ca.pem"


def test_setting_with_a_bad_cidr_names_it():
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        NetworkPolicy.from_setting("10.0.0.0/8,10.0.0.0/33")


def test_resolve_catches_a_host_name_pointing_at_loopback():
    with pytest.raises(BlockedAddressError, match=r"localhost \(127\.0\.0\.1\): private address"):
        DEFAULT.resolve("localhost", 80)
    assert LOOPBACK_ONLY.resolve("localhost", 80) == ["127.0.0.1"]


def test_resolve_refuses_when_any_one_of_the_addresses_is_refused(monkeypatch):
    def two_answers(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(BlockedAddressError, match="169.254.169.254"):
        ALLOW_PRIVATE.resolve("mixed.example", 443)


def test_resolve_lets_an_unknown_host_raise_gaierror():
    with pytest.raises(socket.gaierror):
        DEFAULT.resolve("no-such-host.invalid", 80)


@pytest.mark.parametrize(
    "url, message",
    [("http://169.254.169.254/latest/meta-data/", "never allowed"), ("http://127.0.0.1:8080/x", "private address"),
     ("https://[::1]/", "private address"), ("http:///no-host", "no host name")],
)
def test_check_url_refuses(url, message):
    with pytest.raises(BlockedAddressError, match=message):
        DEFAULT.check_url(url)


def test_ssl_context_verifies_and_adds_the_ca_file(tls_certs):
    plain, with_ca = NetworkPolicy().ssl_context(), NetworkPolicy(ca_file=str(tls_certs.ca_file)).ssl_context()
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert any(cert["subject"] == ((("commonName", "Canvas Test CA"),),) for cert in with_ca.get_ca_certs())


# --- the guarded requests session ---------------------------------------------------------------------------


def test_session_refuses_loopback_by_default_without_sending(http_server):
    http_server.route("/", respond({"ok": True}))
    with pytest.raises(BlockedAddressError, match="private address"):
        guarded_session(DEFAULT).get(http_server.url("/"))
    assert http_server.requests == []


def test_session_reaches_an_allowed_server(http_server):
    http_server.route("/", respond({"ok": True}))
    assert guarded_session(LOOPBACK_ONLY).get(http_server.url("/")).json() == {"ok": True}


def test_redirect_to_cloud_metadata_is_refused(http_server):
    http_server.route("/go", redirect_to("http://169.254.169.254/latest/meta-data/iam/"))
    with pytest.raises(BlockedAddressError, match="169.254.169.254: link-local/cloud metadata"):
        guarded_session(ALLOW_PRIVATE).get(http_server.url("/go"))


def test_redirect_to_a_private_address_is_refused_before_it_is_sent(http_server):
    with HttpServer(host="127.0.0.2") as internal:  # loopback too, but outside the allowlist
        internal.route("/secret", respond({"secret": True}))
        http_server.route("/go", redirect_to(internal.url("/secret")))
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.2: private address"):
            guarded_session(LOOPBACK_ONLY).get(http_server.url("/go"))
        assert http_server.hits("/go") == 1
        assert internal.requests == []


def test_session_connects_to_the_address_it_checked(http_server, monkeypatch):
    """DNS rebinding: a second lookup would answer 169.254.169.254, but there is no second lookup."""
    real_getaddrinfo, answers = socket.getaddrinfo, []

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        answers.append(host)
        address = "127.0.0.1" if len(answers) == 1 else "169.254.169.254"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    http_server.route("/", respond({"ok": True}))
    response = guarded_session(LOOPBACK_ONLY).get(f"http://rebind.test:{http_server.port}/")
    assert response.json() == {"ok": True} and len(answers) == 1
    assert http_server.requests[0].headers["Host"] == f"rebind.test:{http_server.port}"


def test_session_ignores_environment_proxies_and_refuses_explicit_ones(http_server, monkeypatch):
    http_server.route("/", respond({"ok": True}))
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    session = guarded_session(LOOPBACK_ONLY)
    assert session.get(http_server.url("/")).ok
    with pytest.raises(BlockedAddressError, match="proxy"):
        session.get(http_server.url("/"), proxies={"http": "http://127.0.0.1:3128"})


def test_session_applies_a_default_timeout(silent_server):
    session = guarded_session(LOOPBACK_ONLY, default_timeout=0.5)
    with pytest.raises(requests.ReadTimeout):
        session.get(f"http://127.0.0.1:{silent_server.port}/")


def test_session_trusts_the_policy_ca_file_for_https(https_server, tls_certs):
    https_server.route("/", respond({"ok": True}))
    with pytest.raises(requests.exceptions.SSLError):
        guarded_session(LOOPBACK_ONLY).get(https_server.url("/"))
    trusting = NetworkPolicy(allowlist=LOOPBACK_ONLY.allowlist, ca_file=str(tls_certs.ca_file))
    assert guarded_session(trusting).get(https_server.url("/")).json() == {"ok": True}


@pytest.fixture
def trust_store_loads(fresh_tls_contexts, monkeypatch) -> list[str]:
    """The CA files loaded into TLS contexts during the test, process-wide contexts built afresh."""
    return counting_trust_store_loads(monkeypatch.setattr)


def test_https_connections_share_one_trust_store_per_process(https_server, tls_certs, trust_store_loads):
    """Each session opens a connection of its own; before, each of them loaded requests' CA bundle again (~25 ms of
    CPU; with a CA file, the system's CAs as well)."""
    https_server.route("/", respond({"ok": True}))
    trusting = NetworkPolicy(allowlist=LOOPBACK_ONLY.allowlist, ca_file=str(tls_certs.ca_file))
    for _ in range(3):
        with guarded_session(trusting) as session:
            assert session.get(https_server.url("/")).json() == {"ok": True}
    assert sorted(trust_store_loads) == sorted([str(tls_certs.ca_file), requests.utils.DEFAULT_CA_BUNDLE_PATH])
    assert len(https_server.requests) == 3


def test_smtp_and_ftps_share_one_context_per_ca_file(tls_certs, trust_store_loads):
    ca_file = str(tls_certs.ca_file)
    contexts = {id(NetworkPolicy(ca_file=ca_file).ssl_context()) for _ in range(3)}
    assert len(contexts) == 1 and trust_store_loads == [ca_file]
    assert NetworkPolicy().ssl_context() is not NetworkPolicy(ca_file=ca_file).ssl_context()


def test_a_request_cannot_change_verification_and_the_shared_context_keeps_verifying(https_server, tls_certs):
    https_server.route("/", respond({"ok": True}))
    trusting = NetworkPolicy(allowlist=LOOPBACK_ONLY.allowlist, ca_file=str(tls_certs.ca_file))
    assert guarded_session(trusting).get(https_server.url("/")).json() == {"ok": True}
    for options in ({"verify": False}, {"verify": str(tls_certs.ca_file)}, {"cert": str(tls_certs.ca_file)}):
        with pytest.raises(ValueError, match="a request cannot change how certificates are verified"):
            guarded_session(LOOPBACK_ONLY).get(https_server.url("/"), **options)
    assert len(https_server.requests) == 1  # none of them was sent
    for policy in (LOOPBACK_ONLY, trusting):
        assert policy.https_context().verify_mode == ssl.CERT_REQUIRED and policy.https_context().check_hostname
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        guarded_session(LOOPBACK_ONLY).get(https_server.url("/"))

"""Every network block goes through the outbound guard: metadata and link-local addresses are always refused,
private and loopback addresses unless the operator allows them, redirects included. A refusal is final (not
transient) and happens before any byte is sent."""
from __future__ import annotations

import pytest

from canvas.execution.context import BlockError
from canvas.execution.data import Records
from canvas.network.guard import NetworkPolicy
from tests.integration.blocks.net_support import LOOPBACK, STRICT, failure, file_of
from tests.servers.http import redirect_to, respond

METADATA = "169.254.169.254"
PRIVATE = "10.20.30.40"

# (block, credentials for a host, variables, input) for every kind of network block
BLOCKS = {
    "http.get": (lambda host: {"baseUrl": f"http://{host}/latest/meta-data", "authType": "none"}, {}, None),
    "quinyx.get_employees": (lambda host: {"apikey": "k-123", "environment": "live"},
                             {"baseUrl": "http://{host}/v1"}, None),
    "ftp.upload": (lambda host: {"address": host, "port": 21, "username": "u", "password": "p"},
                   {"filename": "x"}, file_of("x.txt", b"x")),
    "sftp.list": (lambda host: {"address": host, "port": 22, "username": "u", "password": "p"}, {}, None),
    "email.send": (lambda host: {"host": host, "port": 25, "security": "none", "fromAddress": "a@example.com"},
                   {"to": "b@example.com"}, None),
    "sql.query": (lambda host: {"url": f"postgresql+psycopg://u:p@{host}:5432/db"}, {"query": "SELECT 1"}, None),
}


def attempt(key: str, host: str, tmp_path, policy: NetworkPolicy | None) -> BlockError:
    credentials, variables, data = BLOCKS[key]
    variables = {name: value.format(host=host) if isinstance(value, str) else value
                 for name, value in variables.items()}
    return failure(key, tmp_path, BlockError, credentials=credentials(host), variables=variables, data=data,
                   policy=policy)


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_cloud_metadata_is_refused_even_when_private_networks_are_allowed(key, tmp_path):
    error = attempt(key, METADATA, tmp_path, NetworkPolicy(allow_private=True))
    assert "link-local/cloud metadata" in str(error)


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_private_addresses_are_refused_by_default(key, tmp_path):
    error = attempt(key, PRIVATE, tmp_path, STRICT)
    assert f"Refused to connect to {PRIVATE}: private address" in str(error)


def test_without_a_policy_the_strict_default_applies(http_server, tmp_path):
    http_server.route("/api/items", respond([{"id": 1}]))
    error = failure("http.get", tmp_path, BlockError, variables={"path": "/items"}, policy=None,
                    credentials={"baseUrl": http_server.url("/api"), "authType": "none"})
    assert "loopback" in str(error) and http_server.requests == []


@pytest.mark.parametrize("target", [f"http://{METADATA}/latest/meta-data/iam", f"http://{PRIVATE}/admin"])
def test_a_redirect_to_a_refused_address_is_refused(http_server, tmp_path, target):
    http_server.route("/api/items", redirect_to(target))
    error = failure("http.get", tmp_path, BlockError, variables={"path": "/items"}, policy=LOOPBACK,
                    credentials={"baseUrl": http_server.url("/api"), "authType": "none"})
    assert "Refused to connect" in str(error) and http_server.hits("/api/items") == 1


def test_posting_records_to_a_refused_address_sends_nothing(tmp_path):
    error = failure("http.request", tmp_path, BlockError, policy=STRICT, data=Records(iter([{"secret": 1}])),
                    variables={"method": "POST", "bodyMode": "each_record"},
                    credentials={"baseUrl": "http://127.0.0.1:9/", "authType": "none"})
    assert "loopback" in str(error)

"""The HTTP blocks authenticate as the bound REST application says, and never show its secrets."""
from __future__ import annotations

import base64
import logging

import pytest
from werkzeug.wrappers import Request, Response

from canvas.execution.context import BlockAuthenticationError
from canvas.network.rest_auth import TOKEN_CACHE
from tests.integration.blocks.net_support import assert_no_secrets, failure, logged_text, records
from tests.servers.http import json_response

PASSWORD, TOKEN, API_KEY, CLIENT_SECRET = "pw-Basic-5150", "tok-Bearer-8086", "key-Api-6502", "client-Secret-68000"
SECRETS = (PASSWORD, TOKEN, API_KEY, CLIENT_SECRET)


@pytest.fixture(autouse=True)
def fresh_tokens():
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


def echo(request: Request) -> Response:
    """Answers with what identified the caller, or 401 when nothing did."""
    seen = {name: request.headers.get(name) for name in ("Authorization", "X-Api-Key")}
    seen["query"] = request.args.get("api_key")
    if not any(seen.values()):
        return json_response({"error": "anonymous"}, 401)
    return json_response(seen)


def credentials(server, auth_type: str, **fields) -> dict:
    return {"baseUrl": server.url("/api"), "authType": auth_type, **fields}


@pytest.mark.parametrize("auth_type, fields, field, expected", [
    ("basic", {"username": "ann", "password": PASSWORD}, "Authorization",
     "Basic " + base64.b64encode(f"ann:{PASSWORD}".encode()).decode()),
    ("bearer", {"token": TOKEN}, "Authorization", f"Bearer {TOKEN}"),
    ("apikey_header", {"apiKey": API_KEY}, "X-Api-Key", API_KEY),
    ("apikey_query", {"apiKey": API_KEY}, "query", API_KEY),
])
def test_each_static_scheme_identifies_the_caller(http_server, tmp_path, caplog, auth_type, fields, field, expected):
    caplog.set_level(logging.DEBUG)
    http_server.route("/api/me", echo)
    got = records("http.get", tmp_path, variables={"path": "/me"},
                  credentials=credentials(http_server, auth_type, **fields))
    assert got[0][field] == expected
    assert_no_secrets(logged_text(caplog), SECRETS)


def test_no_authentication_sends_nothing(http_server, tmp_path):
    http_server.route("/api/me", echo)
    error = failure("http.get", tmp_path, BlockAuthenticationError, variables={"path": "/me"},
                    credentials=credentials(http_server, "none"))
    assert "HTTP 401" in str(error)


class TokenServer:
    """OAuth2 client credentials; the API accepts only the newest token, so an older one meets a 401."""

    def __init__(self):
        self.issued: list[str] = []

    def token(self, request: Request) -> Response:
        if (request.authorization.username, request.authorization.password) != ("client", CLIENT_SECRET):
            return json_response({"error": "invalid_client"}, 401)
        self.issued.append(f"access-{len(self.issued) + 1}")
        return json_response({"access_token": self.issued[-1], "expires_in": 3600})

    def api(self, request: Request) -> Response:
        if self.issued and request.headers.get("Authorization") == f"Bearer {self.issued[-1]}":
            return json_response([{"token": self.issued[-1]}])
        return json_response({"error": "invalid_token"}, 401)


def oauth(server, secret: str = CLIENT_SECRET) -> dict:
    return credentials(server, "oauth2_client_credentials", tokenUrl=server.url("/token"), clientId="client",
                       clientSecret=secret)


def test_oauth2_client_credentials_fetches_caches_and_refreshes_the_token(http_server, tmp_path):
    tokens = TokenServer()
    http_server.route("/token", tokens.token)
    http_server.route("/api/me", tokens.api)
    assert records("http.get", tmp_path, variables={"path": "/me"}, credentials=oauth(http_server)) == [
        {"token": "access-1"}]
    assert records("http.get", tmp_path, variables={"path": "/me"}, credentials=oauth(http_server)) == [
        {"token": "access-1"}]
    assert http_server.hits("/token") == 1  # cached
    tokens.issued.append("revoked-elsewhere")  # the API now only takes a newer token: ours meets a 401
    assert records("http.get", tmp_path, variables={"path": "/me"}, credentials=oauth(http_server)) == [
        {"token": "access-3"}]


def test_a_refused_client_secret_is_an_authentication_error_without_the_secret(http_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    http_server.route("/token", TokenServer().token)
    wrong = "wrong-Secret-4004"
    error = failure("http.get", tmp_path, BlockAuthenticationError, variables={"path": "/me"},
                    credentials=oauth(http_server, wrong))
    assert "invalid_client" in str(error)
    assert_no_secrets([str(error), *logged_text(caplog)], [wrong, CLIENT_SECRET])


def test_a_wrong_password_is_an_authentication_error_without_the_password(http_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    def echoing_refusal(request: Request) -> Response:  # a careless API that repeats what it was sent
        return json_response({"error": f"bad credentials {request.authorization.password}"}, 401)

    http_server.route("/api/me", echoing_refusal)
    http_server.route("/api/other", lambda request: json_response(
        {"error": f"bad request {request.authorization.password}"}, 400))
    error = failure("http.get", tmp_path, BlockAuthenticationError, variables={"path": "/me"},
                    credentials=credentials(http_server, "basic", username="ann", password=PASSWORD))
    other = failure("http.get", tmp_path, variables={"path": "/other"},
                    credentials=credentials(http_server, "basic", username="ann", password=PASSWORD))
    assert "***" in str(other)
    assert_no_secrets([str(error), str(other), *logged_text(caplog)], SECRETS)

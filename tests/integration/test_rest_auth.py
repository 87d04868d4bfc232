"""REST authentication from credentials, against a real HTTP server on loopback."""
from __future__ import annotations

import base64
from typing import Callable

import pytest
from werkzeug.wrappers import Request, Response

from canvas.network.failures import url_without_query
from canvas.network.guard import BlockedAddressError, NetworkPolicy, guarded_session
from canvas.network.rest_auth import RestCredentialsError, TokenCache, TokenRequestError, build_auth, join_url
from tests.servers.http import HttpServer, json_response, redirect_to, respond

LOOPBACK = NetworkPolicy.from_setting("127.0.0.0/8")
CLIENT_ID, CLIENT_SECRET = "canvas-client", "client-Secret-9876"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """An OAuth2 token endpoint: checks the client's basic auth, hands out token-1, token-2, ..."""

    def __init__(self, expires_in: float | None = 3600):
        self.expires_in = expires_in
        self.issued: list[str] = []

    def __call__(self, request: Request) -> Response:
        if request.form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if request.authorization is None or (request.authorization.username, request.authorization.password) != (
            CLIENT_ID, CLIENT_SECRET
        ):
            return json_response({"error": "invalid_client"}, 401)
        self.issued.append(f"token-{len(self.issued) + 1}")
        body = {"access_token": self.issued[-1], "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return json_response(body)


def bearer_api(valid_tokens: Callable | None = None):
    """An API handler accepting the bearer tokens `valid_tokens()` names, answering 401 otherwise."""

    def handle(request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in valid_tokens():
            return json_response({"token": token})
        return json_response({"error": "invalid_token"}, 401)

    return handle


@pytest.fixture
def session():
    with guarded_session(LOOPBACK, default_timeout=10) as session:
        yield session


def oauth_credentials(server, **overrides) -> dict:
    return {
        "baseUrl": server.url("/api"), "authType": "oauth2_client_credentials", "tokenUrl": server.url("/token"),
        "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, **overrides,
    }


def test_basic_auth_sends_the_user_and_password(http_server, session):
    http_server.route("/api", respond({}))
    auth = build_auth({"authType": "basic", "username": "ann", "password": "pw-basic-123"}, session=session)
    session.get(http_server.url("/api"), auth=auth)
    expected = "Basic " + base64.b64encode(b"ann:pw-basic-123").decode()
    assert http_server.requests[-1].headers["Authorization"] == expected


def test_bearer_auth_sends_the_token(http_server, session):
    http_server.route("/api", respond({}))
    session.get(http_server.url("/api"), auth=build_auth({"authType": "bearer", "token": "tok-42"}, session=session))
    assert http_server.requests[-1].headers["Authorization"] == "Bearer tok-42"


@pytest.mark.parametrize("name, expected_header", [("X-Secret-Key", "x-secret-key"), ("", "X-API-Key")])
def test_api_key_header_uses_the_named_header_or_a_default(http_server, session, name, expected_header):
    http_server.route("/api", respond({}))
    auth = build_auth({"authType": "apikey_header", "apiKeyName": name, "apiKey": "key-777"}, session=session)
    session.get(http_server.url("/api"), auth=auth)
    assert http_server.requests[-1].headers[expected_header] == "key-777"


def test_api_key_query_adds_the_parameter_and_keeps_the_others(http_server, session):
    http_server.route("/api", respond({}))
    auth = build_auth({"authType": "apikey_query", "apiKeyName": "key", "apiKey": "k&y=1"}, session=session)
    session.get(http_server.url("/api?page=2"), auth=auth)
    assert http_server.requests[-1].query == {"page": "2", "key": "k&y=1"}


@pytest.mark.parametrize(
    "credentials, header",
    [({"authType": "apikey_header", "apiKeyName": "X-Key", "apiKey": "key-888"}, "X-Key"),
     ({"authType": "bearer", "token": "tok-999"}, "Authorization")],
    ids=["api-key-header", "bearer"],
)
def test_credentials_do_not_follow_a_redirect_to_another_host(http_server, session, credentials, header):
    with HttpServer(host="127.0.0.2") as elsewhere:
        elsewhere.route("/landing", respond({}))
        http_server.route("/api", redirect_to(elsewhere.url("/landing")))
        http_server.route("/same-host", respond({}))
        http_server.route("/moved", redirect_to(http_server.url("/same-host")))
        auth = build_auth(credentials, session=session)
        assert session.get(http_server.url("/api"), auth=auth).ok
        assert session.get(http_server.url("/moved"), auth=auth).ok
    assert header in http_server.requests[0].headers
    assert header not in elsewhere.requests[0].headers
    assert header in http_server.requests[-1].headers  # a redirect within the host keeps them


def test_none_means_no_auth(session):
    assert build_auth({"authType": "none"}, session=session) is None
    assert build_auth({}, session=session) is None


@pytest.mark.parametrize(
    "credentials, message",
    [({"authType": "bearer"}, "token"), ({"authType": "basic", "password": "x"}, "username"),
     ({"authType": "oauth2_client_credentials", "clientSecret": "s3cr3t-value"}, "tokenUrl, clientId"),
     ({"authType": "kerberos"}, "unknown authType")],
)
def test_incomplete_credentials_name_the_missing_fields_only(session, credentials, message):
    with pytest.raises(RestCredentialsError, match=message) as refused:
        build_auth(credentials, session=session)
    assert "s3cr3t-value" not in str(refused.value)


def test_oauth2_token_is_fetched_once_and_reused(http_server, session):
    endpoint = TokenEndpoint()
    http_server.route("/token", endpoint)
    http_server.route("/api", bearer_api(lambda: endpoint.issued))
    auth = build_auth(oauth_credentials(http_server), session=session, cache=TokenCache())
    answers = [session.get(http_server.url("/api"), auth=auth).json() for _ in range(3)]
    assert answers == [{"token": "token-1"}] * 3
    assert http_server.hits("/token") == 1
    token_request = next(request for request in http_server.requests if request.path == "/token")
    assert token_request.method == "POST" and b"grant_type=client_credentials" in token_request.body


def test_oauth2_token_is_refreshed_before_it_expires(http_server, session):
    clock, endpoint = FakeClock(), TokenEndpoint(expires_in=300)  # refreshed 30 s (10 %) before the end
    http_server.route("/token", endpoint)
    http_server.route("/api", bearer_api(lambda: endpoint.issued))
    auth = build_auth(oauth_credentials(http_server), session=session, cache=TokenCache(clock))
    session.get(http_server.url("/api"), auth=auth)
    clock.now += 269
    assert session.get(http_server.url("/api"), auth=auth).json() == {"token": "token-1"}
    clock.now += 2  # 29 s left: inside the margin
    assert session.get(http_server.url("/api"), auth=auth).json() == {"token": "token-2"}
    assert http_server.hits("/token") == 2


def test_long_lived_token_is_refreshed_a_minute_before_expiry(http_server, session):
    clock, endpoint = FakeClock(), TokenEndpoint(expires_in=3600)
    http_server.route("/token", endpoint)
    http_server.route("/api", bearer_api(lambda: endpoint.issued))
    auth = build_auth(oauth_credentials(http_server), session=session, cache=TokenCache(clock))
    session.get(http_server.url("/api"), auth=auth)
    clock.now += 3539
    session.get(http_server.url("/api"), auth=auth)
    assert http_server.hits("/token") == 1
    clock.now += 2
    session.get(http_server.url("/api"), auth=auth)
    assert http_server.hits("/token") == 2


def test_oauth2_refreshes_once_when_the_api_revokes_the_token(http_server, session):
    endpoint = TokenEndpoint()
    http_server.route("/token", endpoint)
    http_server.route("/api", bearer_api(lambda: endpoint.issued[-1:]))  # only the newest token counts
    cache = TokenCache()
    auth = build_auth(oauth_credentials(http_server), session=session, cache=cache)
    session.get(http_server.url("/api"), auth=auth)
    endpoint.issued.append("token-revoked-by-rotation")  # the API now only accepts a token we do not have
    response = session.get(http_server.url("/api"), auth=auth)
    assert response.status_code == 200 and response.json() == {"token": "token-3"}
    assert [r.status_code for r in response.history] == [401]
    assert http_server.hits("/token") == 2


def test_oauth2_gives_up_after_one_refresh(http_server, session):
    http_server.route("/token", TokenEndpoint())
    http_server.route("/api", respond({"error": "nope"}, 401))
    auth = build_auth(oauth_credentials(http_server), session=session, cache=TokenCache())
    assert session.get(http_server.url("/api"), auth=auth).status_code == 401
    assert http_server.hits("/token") == 2 and http_server.hits("/api") == 2


def test_token_endpoint_refusal_names_the_status_but_not_the_secret(http_server, session):
    http_server.route("/token", TokenEndpoint())
    credentials = oauth_credentials(http_server, clientSecret="wrong-Secret-5555")
    auth = build_auth(credentials, session=session, cache=TokenCache())
    with pytest.raises(TokenRequestError) as refused:
        session.get(http_server.url("/api"), auth=auth)
    assert refused.value.status_code == 401
    assert "HTTP 401: invalid_client" in str(refused.value)
    assert "wrong-Secret-5555" not in str(refused.value) and CLIENT_SECRET not in str(refused.value)


def test_a_changed_secret_does_not_reuse_the_old_token(http_server, session):
    http_server.route("/token", TokenEndpoint())
    http_server.route("/api", respond({}))
    cache = TokenCache()
    session.get(http_server.url("/api"), auth=build_auth(oauth_credentials(http_server), session=session, cache=cache))
    wrong = build_auth(oauth_credentials(http_server, clientSecret="changed-Secret"), session=session, cache=cache)
    with pytest.raises(TokenRequestError):
        session.get(http_server.url("/api"), auth=wrong)


def test_token_without_expiry_is_kept_until_the_api_says_401(http_server, session):
    clock, endpoint = FakeClock(), TokenEndpoint(expires_in=None)
    http_server.route("/token", endpoint)
    http_server.route("/api", bearer_api(lambda: endpoint.issued))
    auth = build_auth(oauth_credentials(http_server), session=session, cache=TokenCache(clock))
    session.get(http_server.url("/api"), auth=auth)
    clock.now += 10 * 24 * 3600
    session.get(http_server.url("/api"), auth=auth)
    assert http_server.hits("/token") == 1


def test_an_unreachable_token_endpoint_says_why(http_server, session, closed_port):
    credentials = {**oauth_credentials(http_server), "tokenUrl": f"http://127.0.0.1:{closed_port}/token"}
    auth = build_auth(credentials, session=session, cache=TokenCache())
    with pytest.raises(TokenRequestError) as failed:
        session.get(http_server.url("/api"), auth=auth)
    assert str(failed.value) == (
        f"the token endpoint http://127.0.0.1:{closed_port}/token could not be reached: "
        f"connection refused by 127.0.0.1:{closed_port}"
    )
    assert failed.value.status_code is None


def test_the_token_endpoint_passes_the_guard_too(http_server):
    http_server.route("/api", respond({}))
    strict = guarded_session(NetworkPolicy.from_setting("127.0.0.1/32"))
    credentials = {**oauth_credentials(http_server), "tokenUrl": "http://169.254.169.254/token"}
    auth = build_auth(credentials, session=strict, cache=TokenCache())
    with pytest.raises(BlockedAddressError, match="never allowed"):
        strict.get(http_server.url("/api"), auth=auth)


def test_url_helpers():
    assert join_url("https://api.example/v1/", "/items") == "https://api.example/v1/items"
    assert join_url("https://api.example/v1", None) == "https://api.example/v1"
    assert url_without_query("https://u:p@api.example/v1/x?api_key=abc#f") == "https://api.example/v1/x"

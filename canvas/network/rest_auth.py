"""Authentication for REST applications, built from a registered application's credentials.

Credential fields: baseUrl, authType (none | basic | bearer | apikey_header | apikey_query |
oauth2_client_credentials), username, password, token, apiKeyName, apiKey, tokenUrl, clientId, clientSecret, scope.

Every error names fields, never their values: messages end up in API answers and run logs.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.cookies import extract_cookies_to_jar

from canvas.network.failures import describe_request_error, url_without_query

AUTH_TYPES = ("none", "basic", "bearer", "apikey_header", "apikey_query", "oauth2_client_credentials")
DEFAULT_API_KEY_HEADER = "X-API-Key"
DEFAULT_API_KEY_PARAM = "api_key"
DEFAULT_TOKEN_TIMEOUT = 10.0  # seconds
# Refresh a token this long before it expires, so a request never leaves with a token that dies on the way.
REFRESH_MARGIN_SECONDS = 60.0
REFRESH_MARGIN_FRACTION = 0.1  # ...or this share of its lifetime, whichever is shorter (short-lived tokens)


class RestCredentialsError(ValueError):
    """The credentials are incomplete or inconsistent. The message names fields, never their values."""


class TokenRequestError(Exception):
    """The OAuth2 token endpoint refused or gave no usable token. `status_code` is None without an HTTP answer."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def join_url(base_url: str, path: str | None) -> str:
    """baseUrl + path, with exactly one slash between them."""
    if not path:
        return base_url
    if path.startswith(("http://", "https://")):
        raise RestCredentialsError("the path must be relative to baseUrl, not a full URL")
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def base_url(credentials: Mapping) -> str:
    url = str(credentials.get("baseUrl") or "").strip()
    if not url:
        raise RestCredentialsError("the baseUrl field is required")
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).hostname:
        raise RestCredentialsError("baseUrl must be an http:// or https:// URL with a host")
    return url


# --- static credentials -----------------------------------------------------------------------------------------


class BearerAuth(AuthBase):
    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class ApiKeyHeaderAuth(AuthBase):
    def __init__(self, name: str, key: str):
        self._name, self._key = name, key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._name] = self._key
        request.register_hook("response", self._drop_on_redirect_to_another_host)
        return request

    def _drop_on_redirect_to_another_host(self, response: requests.Response, **kwargs) -> requests.Response:
        """requests strips Authorization when a redirect leaves the host, but not a custom header: do it here.

        The next hop is prepared from a copy of response.request, so removing the header there keeps it away.
        """
        target = response.headers.get("Location") if response.is_redirect else None
        if target and urlsplit(urljoin(response.url, target)).hostname != urlsplit(response.url).hostname:
            response.request.headers.pop(self._name, None)
        return response


class ApiKeyQueryAuth(AuthBase):
    def __init__(self, name: str, key: str):
        self._name, self._key = name, key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url, {self._name: self._key})
        return request


# --- OAuth2 client credentials --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedToken:
    value: str
    refresh_at: float | None  # on the cache's clock; None: no known expiry, keep until the API answers 401


class TokenCache:
    """In-process OAuth2 access tokens, shared by every request of every run in this process.

    Keyed by token URL, client id, scope and a digest of the client secret: a changed secret must not keep
    using (and so seem to verify with) a token obtained with the old one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._tokens: dict[tuple, _CachedToken] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def token(self, key: tuple, fetch: Callable[[], tuple[str, float | None]]) -> str:
        """The cached token for `key`, fetched with `fetch() -> (token, lifetime seconds)` when missing or due."""
        with self._lock_for(key):  # one fetch per key at a time: concurrent requests wait for it
            cached = self._tokens.get(key)
            if cached is None or self._is_due(cached):
                value, lifetime = fetch()
                cached = _CachedToken(value, self._refresh_time(lifetime))
                self._tokens[key] = cached
            return cached.value

    def invalidate(self, key: tuple, stale_value: str) -> None:
        """Forget the token, unless another request already replaced it with a fresh one."""
        with self._lock_for(key):
            cached = self._tokens.get(key)
            if cached is not None and cached.value == stale_value:
                del self._tokens[key]

    def clear(self) -> None:
        with self._locks_guard:
            self._tokens.clear()

    def _lock_for(self, key: tuple) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _is_due(self, cached: _CachedToken) -> bool:
        return cached.refresh_at is not None and self._clock() >= cached.refresh_at

    def _refresh_time(self, lifetime: float | None) -> float | None:
        if lifetime is None:
            return None
        margin = min(REFRESH_MARGIN_SECONDS, lifetime * REFRESH_MARGIN_FRACTION)
        return self._clock() + lifetime - margin


TOKEN_CACHE = TokenCache()


def _parse_token_response(response: requests.Response, shown_url: str) -> tuple[str, float | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        message = f"the token endpoint {shown_url} answered without an access_token"
        raise TokenRequestError(message, response.status_code)
    try:
        lifetime = float(body["expires_in"]) if body.get("expires_in") is not None else None
    except (TypeError, ValueError):
        lifetime = None
    return token, lifetime


def _error_code(response: requests.Response) -> str:
    """The RFC 6749 `error` code (e.g. invalid_client) when the body has a plain one; it never holds a secret."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {code}" if isinstance(code, str) and code.replace("_", "").isalpha() and len(code) < 50 else ""


class OAuth2ClientCredentialsAuth(AuthBase):
    """Bearer token from the client-credentials grant: cached, refreshed before expiry, and once more on a 401."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        session: requests.Session,
        timeout: float = DEFAULT_TOKEN_TIMEOUT,
        cache: TokenCache = TOKEN_CACHE,
    ):
        self.token_url, self.client_id, self.scope = token_url, client_id, scope or None
        self._client_secret = client_secret
        self._session, self._timeout, self._cache = session, timeout, cache
        secret_digest = hashlib.sha256(client_secret.encode()).hexdigest()
        self._key = (token_url, client_id, self.scope or "", secret_digest)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._current_token()}"
        request.register_hook("response", self._retry_once_on_401)
        return request

    def _current_token(self) -> str:
        return self._cache.token(self._key, self._fetch_token)

    def _fetch_token(self) -> tuple[str, float | None]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        shown_url = url_without_query(self.token_url)
        try:
            response = self._session.post(
                self.token_url,
                data=form,
                auth=HTTPBasicAuth(self.client_id, self._client_secret),
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            reason = describe_request_error(error, self.token_url, self._timeout)
            raise TokenRequestError(f"the token endpoint {shown_url} could not be reached: {reason}") from error
        if not 200 <= response.status_code < 300:
            status, code = response.status_code, _error_code(response)
            raise TokenRequestError(f"the token endpoint {shown_url} refused the client (HTTP {status}{code})", status)
        return _parse_token_response(response, shown_url)

    def _retry_once_on_401(self, response: requests.Response, **send_kwargs) -> requests.Response:
        """The API may revoke a token before its announced expiry: get a new one and resend, once."""
        if response.status_code != 401 or getattr(response.request, "_canvas_token_retried", False):
            return response
        stale = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        self._cache.invalidate(self._key, stale)
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self._current_token()}"
        retry._canvas_token_retried = True
        response.content  # drain, so the connection can go back to the pool
        response.close()
        extract_cookies_to_jar(retry._cookies, response.request, response.raw)
        retry.prepare_cookies(retry._cookies)
        answer = response.connection.send(retry, **send_kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer


# --- from credentials ------------------------------------------------------------------------------------------


def _require(credentials: Mapping, auth_type: str, *fields: str) -> list[str]:
    missing = [field for field in fields if not str(credentials.get(field) or "").strip()]
    if missing:
        raise RestCredentialsError(f"{auth_type} authentication needs the field(s): {', '.join(missing)}")
    return [str(credentials[field]) for field in fields]


def auth_type_of(credentials: Mapping) -> str:
    auth_type = str(credentials.get("authType") or "none").strip().lower()
    if auth_type not in AUTH_TYPES:
        raise RestCredentialsError(f"unknown authType {auth_type!r}; expected one of {', '.join(AUTH_TYPES)}")
    return auth_type


def build_auth(
    credentials: Mapping,
    *,
    session: requests.Session,
    timeout: float = DEFAULT_TOKEN_TIMEOUT,
    cache: TokenCache = TOKEN_CACHE,
) -> AuthBase | None:
    """The requests auth for these credentials (None for authType none).

    `session` fetches OAuth2 tokens: pass the guarded session so the token endpoint passes the SSRF guard too.
    """
    auth_type = auth_type_of(credentials)
    if auth_type == "basic":
        username = _require(credentials, auth_type, "username")[0]
        return HTTPBasicAuth(username, str(credentials.get("password") or ""))
    if auth_type == "bearer":
        return BearerAuth(*_require(credentials, auth_type, "token"))
    if auth_type in ("apikey_header", "apikey_query"):
        key = _require(credentials, auth_type, "apiKey")[0]
        default_name = DEFAULT_API_KEY_HEADER if auth_type == "apikey_header" else DEFAULT_API_KEY_PARAM
        name = str(credentials.get("apiKeyName") or "").strip() or default_name
        return ApiKeyHeaderAuth(name, key) if auth_type == "apikey_header" else ApiKeyQueryAuth(name, key)
    if auth_type == "oauth2_client_credentials":
        token_url, client_id, secret = _require(credentials, auth_type, "tokenUrl", "clientId", "clientSecret")
        scope = str(credentials.get("scope") or "").strip() or None
        return OAuth2ClientCredentialsAuth(
            token_url, client_id, secret, scope, session=session, timeout=timeout, cache=cache
        )
    return None

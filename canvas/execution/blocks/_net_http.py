"""The HTTP transport of the REST blocks: one guarded session per block run, JSON answers, retries and limits.

- every request and redirect hop goes through the SSRF guard (guarded_session);
- 429 waits for Retry-After when that is at most `max_retry_after` seconds, 5xx and connection errors are retried
  `retries` times with exponential backoff and jitter; after that a TransientBlockError hands over to the runner's
  own retry policy;
- 401/403 raise BlockAuthenticationError (not retried; the registered application is marked faulted);
- an answer larger than `max_response_bytes` is abandoned while streaming, before it fills the memory.
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO, Union

import requests
from requests.auth import AuthBase

from canvas.execution.blocks._net_common import Redactor, policy_of
from canvas.execution.context import BlockAuthenticationError, BlockContext, BlockError, TransientBlockError
from canvas.execution.serialization import decode_json_document, json_default
from canvas.network.failures import causes, describe_request_error, url_without_query
from canvas.network.guard import BlockedAddressError, guarded_session
from canvas.network.rest_auth import RestCredentialsError, TokenRequestError

DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
DEFAULT_RETRIES = 3
DEFAULT_MAX_RETRY_AFTER = 60.0  # seconds; a server asking for a longer pause gets a TransientBlockError instead
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
SLEEP_STEP_SECONDS = 0.2  # waits are cut into steps so a cancel is noticed
READ_CHUNK_BYTES = 64 * 1024
ERROR_EXCERPT_CHARS = 200
JSON_CONTENT_TYPE = "application/json"

Body = Union[bytes, BinaryIO, None]


class _HideQueryStrings(logging.Filter):
    """urllib3 logs every request line at DEBUG, query included, and API keys may ride in the query
    (authType apikey_query): an operator turning on DEBUG must not find them in the worker's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_line = str(record.msg).startswith('%s://%s:%s "%s %s %s"')
        if request_line and isinstance(record.args, tuple) and isinstance(record.args[4], str):
            record.args = (*record.args[:4], record.args[4].split("?", 1)[0], *record.args[5:])
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideQueryStrings())


@dataclass(frozen=True)
class HttpLimits:
    timeout: float
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    retries: int = DEFAULT_RETRIES
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER


@dataclass(frozen=True)
class HttpCall:
    """One request to make; `body` returns a fresh body per attempt (a retried request must resend it whole)."""

    method: str
    url: str
    params: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    auth: AuthBase | None = None
    body: Callable[[], Body] | None = None


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    url: str
    headers: Any  # requests' case-insensitive dict
    links: dict
    data: Any  # the parsed JSON, None for an empty body


class _Retry(Exception):
    """An attempt failed in a way worth another try after `wait` seconds (None: the usual backoff)."""

    def __init__(self, failure: BlockError, wait: float | None = None):
        super().__init__(str(failure))
        self.failure, self.wait = failure, wait


class HttpClient:
    def __init__(self, context: BlockContext, limits: HttpLimits, redact: Redactor):
        self.context, self.limits, self.redact = context, limits, redact
        self.session = guarded_session(policy_of(context), default_timeout=limits.timeout)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def call(self, request: HttpCall) -> HttpAnswer:
        """The JSON answer of `request`, retried as the module docstring says; raises a BlockError otherwise."""
        for attempt in range(self.limits.retries + 1):
            try:
                return self._attempt(request)
            except _Retry as retry:
                if attempt == self.limits.retries:
                    raise retry.failure from None
                wait = retry.wait if retry.wait is not None else backoff_seconds(attempt)
                self.context.logger.warning("%s; retrying in %.1f s", retry.failure, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")

    def _attempt(self, request: HttpCall) -> HttpAnswer:
        shown = f"{request.method} {url_without_query(request.url)}"
        try:
            with self._send(request) as response:
                self._check_status(response, shown)
                return HttpAnswer(response.status_code, response.url, response.headers, response.links,
                                  self._json(response, shown))
        except BlockedAddressError as error:
            raise BlockError(str(error)) from None
        except RestCredentialsError as error:
            raise BlockError(f"the application's credentials: {error}") from None
        except TokenRequestError as error:
            if error.status_code in (400, 401, 403):
                raise BlockAuthenticationError(self.redact(f"authentication rejected: {error}")) from None
            raise _Retry(TransientBlockError(self.redact(str(error)))) from None
        except requests.RequestException as error:
            blocked = _blocked_cause(error)
            if blocked is not None:
                raise BlockError(str(blocked)) from None
            reason = describe_request_error(error, request.url, self.limits.timeout)
            raise _Retry(TransientBlockError(self.redact(f"{shown} failed: {reason}"))) from None

    def _send(self, request: HttpCall) -> requests.Response:
        headers = {"Accept": JSON_CONTENT_TYPE, **request.headers}
        body = request.body() if request.body is not None else None
        if body is not None:
            headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        try:
            return self.session.request(
                request.method, request.url, params=request.params or None, headers=headers, data=body,
                auth=request.auth, stream=True, timeout=self.limits.timeout,
            )
        finally:
            if hasattr(body, "close"):
                body.close()

    def _check_status(self, response: requests.Response, shown: str) -> None:
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            failure = TransientBlockError(f"{shown} was rate limited (HTTP 429)")
            if wait is not None and wait > self.limits.max_retry_after:
                raise TransientBlockError(f"{failure}; the server asks to wait {wait:.0f} s") from None
            raise _Retry(failure, wait)
        if status >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            failure = TransientBlockError(f"{shown} failed: HTTP {status}{self._excerpt(response)}")
            raise _Retry(failure, None if wait is None else min(wait, self.limits.max_retry_after))
        if status in (401, 403):
            raise BlockAuthenticationError(f"{shown}: authentication rejected (HTTP {status})")
        if status >= 400:
            raise BlockError(f"{shown} failed: HTTP {status}{self._excerpt(response)}")

    def _excerpt(self, response: requests.Response) -> str:
        """The start of an error answer: APIs explain themselves there. Redacted: some echo what they got."""
        try:
            text = next(response.iter_content(ERROR_EXCERPT_CHARS * 4), b"").decode("utf-8", errors="replace")
        except requests.RequestException:
            return ""
        text = " ".join(text.split())[:ERROR_EXCERPT_CHARS]
        return f": {self.redact(text)}" if text else ""

    def _json(self, response: requests.Response, shown: str) -> Any:
        content = read_limited(response, self.limits.max_response_bytes, shown)
        if not content.strip():
            return None
        try:
            return decode_json_document(content)
        except ValueError as error:
            raise BlockError(f"the answer to {shown} is not valid JSON: {_json_problem(error)}") from None

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.context.raise_if_cancelled()
            time.sleep(min(left, SLEEP_STEP_SECONDS))
        self.context.raise_if_cancelled()


def read_limited(response: requests.Response, limit: int, shown: str) -> bytes:
    """The body, refused as soon as it exceeds `limit` bytes (decoded bytes: a gzip bomb is caught too)."""
    too_large = BlockError(f"the answer to {shown} is larger than maxResponseBytes ({limit} bytes)")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, total = [], 0
    for chunk in response.iter_content(READ_CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter, so that many workers retrying at once spread out."""
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt) * random.uniform(0.5, 1.5)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def json_body(value: Any) -> Callable[[], bytes]:
    encoded = json.dumps(value, ensure_ascii=False, default=json_default).encode("utf-8")
    return lambda: encoded


def _json_problem(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _blocked_cause(error: BaseException) -> BlockedAddressError | None:
    """urllib3 and requests wrap what the connection raised; the guard's refusal may hide inside."""
    return next((cause for cause in causes(error) if isinstance(cause, BlockedAddressError)), None)

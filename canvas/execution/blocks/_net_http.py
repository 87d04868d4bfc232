"""The HTTP transport of the REST blocks: one guarded session per block run, JSON answers, retries and limits.

- every request and redirect hop goes through the SSRF guard (guarded_session);
- 401/403 raise BlockAuthenticationError (not retried; the registered application is marked faulted), any other
  4xx fails the block (not retried), so does a URL or header that requests refuses to send;
- an answer larger than `max_response_bytes` is abandoned while streaming, before it fills the memory.

Retries, and when a request is not repeated. A failed request is tried again up to `retries` times, after
exponential backoff with jitter, or after the Retry-After the server asks for when that is at most
`max_retry_after` seconds (a longer one fails at once with a TransientBlockError). Which failures are retried
depends on whether sending the request twice is harmless:
- GET, HEAD, PUT, DELETE and OPTIONS (idempotent), and any request that carries an idempotency key: after HTTP 429,
  HTTP 5xx, a connection error or a timeout;
- POST and PATCH without a key: only after a failure that proves the server did not process the request, which is
  (a) the connection could not be made: connection refused, host not found, connect timeout, certificate refused;
  (b) the server answered 429, or 503 with a Retry-After header (a server shedding load before doing the work).
  A redirect (other than 307/308) before such an answer voids the proof: the first server may have done the work.
  Anything else leaves the outcome unknown: a read timeout, the connection closed after the request was sent,
  HTTP 500/502/504, 503 without Retry-After. The request is not repeated: the block fails at once with a BlockError
  that is not transient and has `outcome_unknown` set, whose message says so and asks to check the target before
  the block runs again ("POST https://api.example/orders (record 3): the outcome is unknown (…); check the target
  before running this block again").
When the retries are used up the failure is a TransientBlockError for the runner's own retry policy (a caller may
first give a request further rounds of retries: a page of a paged read, see _net_paging). Every error the client
raises has `retry_safe` set when no request of this block run can have been processed (nothing was sent, or every
answer was one of the refusals above): the only case in which the runner runs a block with side effects again.

Idempotency keys (HttpCall.idempotency_header, http.request's `idempotencyKey`): every POST/PATCH then carries that
header with a key (a UUID) derived from the run id, the block number and the request's label ("record 3", "page 2",
"all records"; empty for a block's single unpaged request): every attempt of a request sends the same key, so does
the same request when the block runs again within the run, and different records send different keys. Such a
request is retried like an idempotent one: the target is trusted to honour the key.
"""
from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, BinaryIO, Union

import requests
import urllib3.exceptions
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
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
ROUND_PAUSE_BASE_SECONDS = 2.0  # before a further round of retries (see HttpClient.call): as the runner's own backoff
ROUND_PAUSE_CAP_SECONDS = 60.0
SLEEP_STEP_SECONDS = 0.2  # waits are cut into steps so a cancel is noticed
READ_CHUNK_BYTES = 64 * 1024
ERROR_EXCERPT_CHARS = 200
JSON_CONTENT_TYPE = "application/json"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Answers before the last one that show the server did not act on the request: 307/308 ask to send it elsewhere
# unchanged, a 401 makes the OAuth2 authentication send it again with a fresh token.
HOPS_THAT_DID_NOTHING = frozenset({307, 308, 401})
# Requests refuses these before sending anything: a malformed URL or header is not worth another try.
_MALFORMED = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
              requests.exceptions.InvalidHeader, requests.exceptions.URLRequired)
# Fixed, so that a key depends on nothing but the run, the block and the request (uuid5 hashes it with them).
IDEMPOTENCY_KEY_NAMESPACE = uuid.UUID("3b9942a7-49dc-4614-84e0-db2afd0b9033")

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


READS = frozenset({"GET", "HEAD", "OPTIONS"})  # methods whose answer is what was asked for


@dataclass(frozen=True)
class HttpCall:
    """One request to make; `body` returns a fresh body per attempt (a retried request must resend it whole)."""

    method: str
    url: str
    params: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    auth: AuthBase | None = None
    body: Callable[[], Body] | None = None
    label: str = ""  # which of the block's requests this is ("record 3", "page 2"): in messages and idempotency keys
    idempotency_header: str = ""  # non-empty: a POST/PATCH carries an idempotency key in this header

    @property
    def repeatable(self) -> bool:
        """Sending it twice does no harm: an idempotent method, or a key the target recognises a repeat by."""
        return self.method.upper() in IDEMPOTENT_METHODS or bool(self.idempotency_header)

    @property
    def shown(self) -> str:
        """The request in messages: method, URL without the query (API keys ride there), and its label."""
        shown = f"{self.method} {url_without_query(self.url)}"
        return f"{shown} ({self.label})" if self.label else shown


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    url: str
    headers: Any  # requests' case-insensitive dict
    links: dict
    data: Any  # the parsed JSON, None for an empty body


class _Retry(Exception):
    """An attempt failed in a way worth another try after `wait` seconds (None: the usual backoff).

    `unknown_because` says why the server may have processed the request anyway (then only a repeatable request is
    tried again); None means the failure proves it did not."""

    def __init__(self, failure: BlockError, wait: float | None = None, unknown_because: str | None = None):
        super().__init__(str(failure))
        self.failure, self.wait, self.unknown_because = failure, wait, unknown_because


class HttpClient:
    """The requests of one block run: one guarded session, and what the runner must know when one fails."""

    def __init__(self, context: BlockContext, limits: HttpLimits, redact: Redactor):
        self.context, self.limits, self.redact = context, limits, redact
        self.session = guarded_session(policy_of(context), default_timeout=limits.timeout)
        # Whether a request of this block run reached the server and was not turned away: decides `retry_safe`.
        self.may_have_processed = False
        self.answers = 0  # calls of this block run that were answered (a paged read resumes once there is one)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def call(self, request: HttpCall, rounds: int = 1) -> HttpAnswer:
        """The JSON answer of `request`, retried as the module docstring says; raises a BlockError otherwise.

        `rounds` > 1 gives a request whose retries are used up further rounds of them, each after a longer pause:
        for a page of a paged read, which the runner cannot retry without reading the earlier pages again."""
        request = self._with_idempotency_key(request)
        pauses = self._pauses(rounds)
        while True:
            try:
                answer = self._attempt(request)
                self.answers += 1
                return answer
            except _Retry as retry:
                if retry.unknown_because is not None and not request.repeatable:
                    raise self._final(self._outcome_unknown(request, retry.unknown_because)) from None
                pause = next(pauses, None)
                if pause is None:
                    raise self._final(retry.failure) from None
                wait = retry.wait if retry.wait is not None else pause
                self.context.logger.warning("%s; retrying in %.1f s", retry.failure, wait)
                self._sleep(wait)
            except BlockError as error:
                self._final(error)
                raise

    def _pauses(self, rounds: int) -> Iterator[float]:
        """The backoff before each further attempt: `retries` of them per round, a longer pause between rounds."""
        for round_number in range(rounds):
            if round_number:
                yield round_pause_seconds(round_number)
            for attempt in range(self.limits.retries):
                yield backoff_seconds(attempt)

    def _with_idempotency_key(self, request: HttpCall) -> HttpCall:
        if not request.idempotency_header or request.method.upper() in IDEMPOTENT_METHODS:
            return request
        key = idempotency_key(self.context.run_id, self.context.block_number, request.label)
        return dataclasses.replace(request, headers={**request.headers, request.idempotency_header: key})

    def _outcome_unknown(self, request: HttpCall, because: str) -> BlockError:
        error = BlockError(self.redact(
            f"{request.shown}: the outcome is unknown ({because}); check the target before running this block again"))
        error.outcome_unknown = True
        return error

    def _final(self, error: BlockError) -> BlockError:
        """The error that fails the call, marked for the runner: safe to run the block again only if nothing of
        this block run can have been processed."""
        error.retry_safe = not self.may_have_processed
        return error

    def _attempt(self, request: HttpCall) -> HttpAnswer:
        answered: list[requests.Response] = []  # every answer of this attempt, redirect hops included
        try:
            answer = self._exchange(request, answered)
        except _Retry as retry:
            self.may_have_processed |= retry.unknown_because is not None
            raise
        except BlockError:
            self.may_have_processed |= not did_nothing(answered)
            raise
        self.may_have_processed = True
        return answer

    def _exchange(self, request: HttpCall, answered: list[requests.Response]) -> HttpAnswer:
        shown = request.shown
        try:
            with self._send(request, answered) as response:
                self._check_status(request, response)
                return HttpAnswer(response.status_code, response.url, response.headers, response.links,
                                  self._json(response, shown, request.method))
        except BlockedAddressError as error:
            raise BlockError(str(error)) from None
        except RestCredentialsError as error:
            raise BlockError(f"the application's credentials: {error}") from None
        except TokenRequestError as error:  # the token is fetched before the request is sent
            if error.status_code in (400, 401, 403):
                raise BlockAuthenticationError(self.redact(f"authentication rejected: {error}")) from None
            raise _Retry(TransientBlockError(self.redact(str(error)))) from None
        except _MALFORMED as error:  # refused by requests before anything was sent; the text may quote a secret
            raise BlockError(f"{shown} cannot be sent: {type(error).__name__} (check the URL and headers)") from None
        except requests.TooManyRedirects:  # a loop, or a chain longer than any API's: no retry mends it
            raise BlockError(f"{shown} failed: more than {self.session.max_redirects} redirects (a redirect "
                             "loop?)") from None
        except requests.RequestException as error:
            blocked = _blocked_cause(error)
            if blocked is not None:
                raise BlockError(str(blocked)) from None
            reason = describe_request_error(error, request.url, self.limits.timeout)
            failure = TransientBlockError(self.redact(f"{shown} failed: {reason}"))
            unsent = did_nothing(answered) and never_connected(error)
            raise _Retry(failure, unknown_because=None if unsent else self._lost_because(error)) from None

    def _lost_because(self, error: requests.RequestException) -> str:
        if isinstance(error, requests.ReadTimeout):
            return f"no answer within {self.limits.timeout:g} s"
        return "the connection was closed after the request was sent"

    def _send(self, request: HttpCall, answered: list[requests.Response]) -> requests.Response:
        headers = {"Accept": JSON_CONTENT_TYPE, **request.headers}
        body = request.body() if request.body is not None else None
        if body is not None:
            headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        try:
            return self.session.request(
                request.method, request.url, params=request.params or None, headers=headers, data=body,
                auth=request.auth, stream=True, timeout=self.limits.timeout,
                hooks={"response": lambda response, *args, **kwargs: answered.append(response)},
            )
        finally:
            if hasattr(body, "close"):
                body.close()

    def _check_status(self, request: HttpCall, response: requests.Response) -> None:
        status, shown = response.status_code, request.shown
        if status == 429 or status >= 500:
            raise self._retry_of(request, response)
        if status in (401, 403):
            raise BlockAuthenticationError(f"{shown}: authentication rejected (HTTP {status})")
        if status >= 400:
            raise BlockError(f"{shown} failed: HTTP {status}{self._excerpt(response)}")

    def _retry_of(self, request: HttpCall, response: requests.Response) -> _Retry:
        """429 and 5xx: worth another try, after the Retry-After the server asks for when it gives one."""
        status = response.status_code
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if status == 429:
            failure = TransientBlockError(f"{request.shown} was rate limited (HTTP 429)")
            if wait is not None and wait > self.limits.max_retry_after:
                raise TransientBlockError(f"{failure}; the server asks to wait {wait:.0f} s") from None
            answer = "HTTP 429"
        else:
            answer = f"HTTP {status}{self._excerpt(response)}"
            failure = TransientBlockError(f"{request.shown} failed: {answer}")
            wait = None if wait is None else min(wait, self.limits.max_retry_after)
        turned_away = did_nothing([*response.history, response])
        return _Retry(failure, wait, None if turned_away else f"the server answered {answer}")

    def _excerpt(self, response: requests.Response) -> str:
        """The start of an error answer: APIs explain themselves there. Redacted: some echo what they got."""
        try:
            text = next(response.iter_content(ERROR_EXCERPT_CHARS * 4), b"").decode("utf-8", errors="replace")
        except requests.RequestException:
            return ""
        text = " ".join(text.split())[:ERROR_EXCERPT_CHARS]
        return f": {self.redact(text)}" if text else ""

    def _json(self, response: requests.Response, shown: str, method: str = "GET") -> Any:
        """The answer's JSON; None for an empty one, and for a write's answer that is no JSON ("201 created" as
        text): the write was done, and failing the block there had a rerun make it again."""
        content = read_limited(response, self.limits.max_response_bytes, shown)
        if not content.strip():
            return None
        try:
            return decode_json_document(content)
        except ValueError as error:
            if method.upper() not in READS:
                self.context.logger.warning("the answer to %s (HTTP %d) is no JSON (%s): the request is taken as "
                                            "done, with no records from its answer", shown, response.status_code,
                                            _json_problem(error))
                return None
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
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # isdigit alone takes "²"
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


def round_pause_seconds(round_number: int) -> float:
    """The pause before round `round_number` (1, 2, …) of further retries: as long as the runner would have waited
    before running the whole block again."""
    return min(ROUND_PAUSE_CAP_SECONDS, ROUND_PAUSE_BASE_SECONDS * 2 ** (round_number - 1)) * random.uniform(0.5, 1.0)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
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


def idempotency_key(run_id: str, block_number: int, label: str) -> str:
    """The key of one request of a block run: the same for every attempt and every run of the block within the run,
    different for another record, page, block or run. A UUID, the format APIs that take such keys accept."""
    return str(uuid.uuid5(IDEMPOTENCY_KEY_NAMESPACE, f"{run_id}/{block_number}/{label}"))


def did_nothing(answers: list[requests.Response]) -> bool:
    """Whether these answers (one attempt's, redirect hops included) show that the server did not act on the
    request: none at all, or only hops that send it elsewhere unchanged or ask for fresh credentials, and a refusal
    (429, or 503 with Retry-After: a server shedding load answers so before doing the work)."""
    return all(answer.status_code in HOPS_THAT_DID_NOTHING or _turned_away(answer) for answer in answers)


def _turned_away(answer: requests.Response) -> bool:
    return answer.status_code == 429 or (answer.status_code == 503 and "Retry-After" in answer.headers)


def never_connected(error: requests.RequestException) -> bool:
    """Whether the request failed before a connection existed, so not a byte of it was sent: connection refused,
    host not found or connect timeout (urllib3 wraps all three in ConnectTimeoutError's family), certificate
    refused during the TLS handshake. A read timeout or a connection closed later proves nothing."""
    return any(isinstance(cause, (urllib3.exceptions.ConnectTimeoutError, ssl.SSLCertVerificationError))
               for cause in causes(error))


def _blocked_cause(error: BaseException) -> BlockedAddressError | None:
    """urllib3 and requests wrap what the connection raised; the guard's refusal may hide inside."""
    return next((cause for cause in causes(error) if isinstance(cause, BlockedAddressError)), None)

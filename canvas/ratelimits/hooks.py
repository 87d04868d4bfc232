"""The rate limits on requests: per API key and per organization after authentication, failed authentications per
address, webhook calls per flow. Each refusal is a TooManyRequestsError (429 with Retry-After, in the dialect's
error shape, by canvas.web)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request

from canvas.errors import AuthenticationError, TooManyRequestsError
from canvas.ratelimits.counters import Counters, Limit, Over, RateLimits

EXTENSION_KEY = "canvas-rate-limits"
TOO_MANY_FAILURES = ("Too many failed authentications from this address; try again after the time in Retry-After")
TOO_MANY_SIGN_IN_FAILURES = "Too many failed sign-ins for this e-mail; try again after the time in Retry-After"
FAILURE_MESSAGES = {"auth-failure": TOO_MANY_FAILURES, "sign-in-failure": TOO_MANY_SIGN_IN_FAILURES}  # by limit kind


class RequestLimits:
    """The limits of one app and the counters they are kept in (the service's Redis, under its key prefix)."""

    def __init__(self, limits: RateLimits, counters: Counters):
        self.limits, self.counters = limits, counters


def init_rate_limits(app: Flask, settings: dict[str, Any]) -> None:
    """Checks the limit settings (a bad one stops the start) and keeps the limits for the request hooks."""
    limits = RateLimits.from_settings(settings)
    counters = Counters(lambda: app.extensions["canvas"].redis, settings["REDIS_PREFIX"])
    app.extensions[EXTENSION_KEY] = RequestLimits(limits, counters)


def request_limits(app: Flask | None = None) -> RequestLimits:
    return (app or current_app).extensions[EXTENSION_KEY]


def counting_auth_failures(resolve: Callable[[], None]) -> Callable[[], None]:
    """`resolve` (a before-request hook that authenticates), with each of its authentication failures counted
    against the caller's address; past the limit the failure is answered 429 instead of 401."""

    def resolve_counting_failures() -> None:
        try:
            resolve()
        except AuthenticationError:
            limits = request_limits()
            over = limits.counters.count([(limits.limits.auth_failures, _address())])
            if over is not None:
                raise _refusal(over) from None
            raise

    resolve_counting_failures.__name__ = resolve.__name__
    return resolve_counting_failures


def enforce_rate_limits() -> None:
    """After authentication: counts the request for the caller's key and organization (at most one Redis round trip,
    which also reads the address's failed authentications: an address over that limit is refused even with good
    keys)."""
    principal = g.get("principal")
    if principal is None:  # not an authenticated endpoint: only failed authentications are limited
        return
    limits = request_limits()
    counted = [(limits.limits.per_key, str(principal.key_account_id)),
               (limits.limits.per_organization, str(principal.organization_id))]
    over = limits.counters.count(counted, watched=[(limits.limits.auth_failures, _address())])
    if over is not None:
        raise _refusal(over)


def limit_webhook_calls(flow_id: Any) -> None:
    """Counts a call of one of the flow's webhooks; past the limit it starts nothing and is answered 429."""
    limits = request_limits()
    over = limits.counters.count([(limits.limits.webhook_per_flow, str(flow_id))])
    if over is not None:
        raise _refusal(over)


def check_sign_in_allowed(email: str) -> None:
    """Before a console sign-in checks a password: an address or an e-mail at its failure limit is refused (429)
    without trying, so guessing costs the guesser and not the service."""
    limits = request_limits()
    over = limits.counters.count([], watched=_sign_in_subjects(limits, email))
    if over is not None:
        raise _refusal(over)


def count_sign_in_failure(email: str) -> None:
    """A failed console sign-in, counted against the address (with the API's failed authentications) and the
    e-mail; past either limit it is answered 429."""
    limits = request_limits()
    over = limits.counters.count(_sign_in_subjects(limits, email))
    if over is not None:
        raise _refusal(over)


def _sign_in_subjects(limits: RequestLimits, email: str) -> list[tuple[Limit, str]]:
    return [(limits.limits.auth_failures, _address()), (limits.limits.sign_in_failures, email)]


def forget_counts(app: Flask) -> None:
    """Every counter of the app dropped (the test suite's fixtures start each test with fresh counts)."""
    request_limits(app).counters.forget_all()


def _refusal(over: Over) -> TooManyRequestsError:
    if over.limit.kind in FAILURE_MESSAGES:
        return TooManyRequestsError(FAILURE_MESSAGES[over.limit.kind], retry_after=over.retry_after)
    return TooManyRequestsError(f"Rate limit of {_subject(over.limit)} reached ({over.limit.describe()}); try again "
                                f"after the time in Retry-After", retry_after=over.retry_after)


def _subject(limit: Limit) -> str:
    return {"key": "this API key", "organization": "this organization",
            "webhook-flow": "this flow's webhooks"}.get(limit.kind, limit.kind)


def _address() -> str:
    return request.remote_addr or "unknown"  # the client's, behind TRUSTED_PROXY_COUNT proxies (ProxyFix)

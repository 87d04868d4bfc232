"""Plain words for failed outbound connections: users read them, so they are short, specific and free of secrets.

"connection refused by 127.0.0.1:2121", "timed out after 10 s connecting to 10.0.0.1:21", "host not found: x.example",
"TLS failure: certificate verify failed (unable to get local issuer certificate) for ftp.example:21".
"""
from __future__ import annotations

import socket
import ssl
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests

from canvas.network.guard import BlockedAddressError, ConnectTimeoutError


def seconds(timeout: float) -> str:
    return f"{timeout:g}"


def endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_without_query(url: str) -> str:
    """The URL without query, fragment and user info: safe to show (API keys often ride in the query)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def first_line(error: BaseException | None) -> str:
    return (str(error or "").strip().splitlines() or [""])[0].strip()


def describe_network_error(error: BaseException, host: str, port: int, timeout: float) -> str | None:
    """The reason for a socket-level failure talking to host:port, or None when `error` is not one."""
    where = endpoint(host, port)
    if isinstance(error, BlockedAddressError):
        return str(error)
    if isinstance(error, socket.gaierror):
        return f"host not found: {host}"
    if isinstance(error, ConnectTimeoutError):
        return f"timed out after {seconds(timeout)} s connecting to {where}"
    if isinstance(error, TimeoutError):
        return f"timed out after {seconds(timeout)} s waiting for {where} to answer"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS failure: certificate verify failed ({error.verify_message}) for {where}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failure with {where}: {error.reason or first_line(error)}"
    if isinstance(error, (EOFError, ConnectionResetError)):
        return f"connection closed by {where}"
    if isinstance(error, OSError):
        return f"network error with {where}: {error.strerror or first_line(error)}"
    return None


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything it wraps (urllib3 keeps the socket error in MaxRetryError.reason)."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args[:1]]


def _endpoint_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return host, endpoint(host, parts.port or (443 if parts.scheme == "https" else 80))


def describe_request_error(error: requests.RequestException, url: str, timeout: float) -> str:
    """The reason a `requests` call to `url` failed (the failing redirect hop's host when known)."""
    failed_url = getattr(error.request, "url", None) or url
    host, where = _endpoint_of(failed_url)
    if isinstance(error, requests.ConnectTimeout):
        return f"timed out after {seconds(timeout)} s connecting to {where}"
    if isinstance(error, requests.ReadTimeout):
        return f"timed out after {seconds(timeout)} s waiting for {where} to answer"
    if isinstance(error, requests.TooManyRedirects):
        return f"too many redirects starting at {url_without_query(url)}"
    for cause in causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS failure: certificate verify failed ({cause.verify_message}) for {where}"
        if isinstance(cause, socket.gaierror):
            return f"host not found: {host}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where}"
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS failure with {where}"
    return f"request to {url_without_query(failed_url)} failed ({type(error).__name__})"

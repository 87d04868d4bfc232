"""What every REST block does the same way: limits from variables, the URL and authentication from a REST
application's credentials, request bodies from the input records."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from requests.auth import AuthBase

from canvas.execution.blocks._net_common import as_file, positive_int, timeout_of, timeout_variable
from canvas.execution.blocks._net_http import (
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_RETRY_AFTER, DEFAULT_RETRIES, HttpCall, HttpClient, HttpLimits, json_body,
)
from canvas.execution.blocks._net_paging import PAGE_ROUNDS, Paging, records_in, stream_records
from canvas.execution.blocks.base import VariableSpec
from canvas.execution.context import BlockAuthenticationError, BlockCancelledError, BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.network.rest_auth import RestCredentialsError, base_url, build_auth, join_url

RECORD_ROUNDS = PAGE_ROUNDS  # a record, like a page, is tried in place rather than the whole block again

LIMIT_VARIABLES = {
    "maxResponseBytes": VariableSpec("integer", default=DEFAULT_MAX_RESPONSE_BYTES,
                                     description="Abandon an answer larger than this (bytes)."),
    "retries": VariableSpec("integer", default=DEFAULT_RETRIES,
                            description="Retries of a request after HTTP 429/5xx or a connection error (POST/PATCH: "
                                        "only when it was not processed)."),
    "maxRetryAfter": VariableSpec("number", default=DEFAULT_MAX_RETRY_AFTER,
                                  description="Longest Retry-After (seconds) honoured before giving up."),
    "timeout": timeout_variable(),
}


def limits_of(context: BlockContext) -> HttpLimits:
    max_wait = context.variables.get("maxRetryAfter")
    return HttpLimits(
        timeout=timeout_of(context),
        max_response_bytes=positive_int(context, "maxResponseBytes", DEFAULT_MAX_RESPONSE_BYTES) or 1,
        retries=positive_int(context, "retries", DEFAULT_RETRIES),
        max_retry_after=float(max_wait) if isinstance(max_wait, (int, float)) else DEFAULT_MAX_RETRY_AFTER,
    )


def rest_url(credentials: Mapping, path: str | None) -> str:
    try:
        return join_url(base_url(credentials), path)
    except RestCredentialsError as error:
        raise BlockError(f"cannot build the request URL: {error}") from None


def rest_auth(credentials: Mapping, client: HttpClient) -> AuthBase | None:
    """The REST application's authentication; OAuth2 tokens are fetched through the client's guarded session."""
    try:
        return build_auth(credentials, session=client.session, timeout=client.limits.timeout)
    except RestCredentialsError as error:
        raise BlockError(f"the application's credentials: {error}") from None


def text_values(value: Any, name: str) -> dict[str, str]:
    """Headers or query parameters from an object variable; values become text (JSON true/false stay lower-case)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BlockError(f"variable '{name}' must be an object")
    return {str(key): _text(item) for key, item in value.items() if item is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def send_each_record(context: BlockContext, client: HttpClient, call: HttpCall, data: BlockData,
                     records_path: str) -> Iterator[dict]:
    """One request per input record, the record as its JSON body, labelled with the record's position ("record 3"):
    in messages, and in its idempotency key. Gives the records of every answer.

    A record whose request keeps failing in a way that may pass (after the retries the module docstring of
    _net_http allows) gets further rounds of them in place (RECORD_ROUNDS): the runner would have to send the earlier
    records again to retry the block, so the block resumes at the failed record instead. A record the target refuses
    (4xx) or whose outcome is unknown fails the block, or under onRecordError `continue` goes to the block's error
    output (context.fail_record) while the others go on. A failure that outlasts the rounds (the target is down) and a
    refused login fail the block whatever the setting: they are not about one record."""
    records = data if isinstance(data, Records) else Records([])
    count = failed = 0
    if context.resume_after:
        context.logger.info("resuming after record %d: an earlier run of this block sent the records before it",
                            context.resume_after)
    for count, record in enumerate(context.cancellable(records), start=1):
        if count <= context.resume_after:
            continue
        record_call = dataclasses.replace(call, body=json_body(record), label=f"record {count}")
        try:
            # Before anything was processed the runner may run the block again: its own retries, its own pauses.
            answer = client.call(record_call, rounds=RECORD_ROUNDS if client.may_have_processed else 1)
        except BlockError as error:
            if error.transient or isinstance(error, (BlockAuthenticationError, BlockCancelledError)):
                raise
            context.fail_record(record, count, error)
            context.confirm(count)
            failed += 1
            continue
        context.confirm(count)
        yield from records_in(answer.data, records_path)
    context.logger.info("sent %d records one by one%s", count, f"; {failed} set aside" if failed else "")


def send_all_records(context: BlockContext, client: HttpClient, call: HttpCall, data: BlockData,
                     records_path: str, block_key: str) -> Iterator[dict]:
    """All input records as one JSON array, spilled to a file first so a retry can send the same body again."""
    body_file = as_file(context, data, "json", "request-body", block_key)
    all_call = dataclasses.replace(call, body=body_file.open, label="all records")
    yield from records_in(client.call(all_call).data, records_path)


def stream_calls(context: BlockContext, client: HttpClient, calls: list[HttpCall], paging: Paging,
                 records_path: str) -> Iterator[dict]:
    """The records of every call, page by page, one call after the other; closes the client at the end."""
    with client:
        for call in calls:
            yield from stream_records(context, client, call, paging, records_path)


def with_default_auth(credentials: Mapping, auth_type: str) -> dict:
    """Credentials of an application whose catalog entry fixes the auth type (e.g. MyStore, Fiken: bearer)."""
    return {**credentials, "authType": credentials.get("authType") or auth_type}

"""HTTP/REST request blocks against the bound REST application (its baseUrl and authentication).

Two blocks, because "does it change the outside world" is a property of the block, not of a variable:
- `http.get` reads (GET only, no side effects: dry runs really run it);
- `http.request` takes any method and may send the input records as the JSON body (side effects: dry runs replace
  it). bodyMode none ignores the input; each_record sends one request per record; all_records sends one JSON array.

Both give Records: the answer's records at `recordsPath` (dotted; empty = the answer itself, an object = one
record), streamed page by page (see _net_paging for the pagination styles): the result is never built whole.

Side effects happen once (the rule is _net_http's):
- GET, PUT, DELETE are retried after HTTP 429, 5xx, connection errors and timeouts (`retries` times, with backoff);
- POST and PATCH only when the failure proves the request was not processed: the connection could not be made
  (refused, host not found, connect timeout), or the server answered 429, or 503 with Retry-After. After a read
  timeout, a connection closed once the request was sent, or 500/502/504 (503 without Retry-After), the outcome is
  unknown: the request is not repeated, and the block fails (not retried by the runner either) with a message that
  names the request, its record ("record 3") and says to check the target before running the block again;
- `idempotencyKey: true` sends every POST/PATCH with a key in the header `idempotencyHeader` (Idempotency-Key), a
  UUID derived from the run, the block number and which of the block's requests it is (the record's position with
  each_record, the page number of a paged read): a repeat of a request, also when the runner runs the block again
  in the same run, carries the same key, so a target that honours such keys does the work once; such requests are
  retried like idempotent ones;
- an HTTP 4xx answer fails the block at once, naming the record: the records before it were sent once, the ones
  after it are not sent;
- the runner runs this block again after a transient failure only when nothing of the block run can have been
  processed (e.g. the first request's connection was refused);
- a paged read resumes at the failed page (see _net_paging): pages already read are not fetched again.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from canvas.execution.blocks._net_common import credential_redactor, credentials_of, flag
from canvas.execution.blocks._net_http import DEFAULT_IDEMPOTENCY_HEADER, HttpCall, HttpClient
from canvas.execution.blocks._net_paging import PAGING_VARIABLES, Paging, paging_from_variables, stream_records
from canvas.execution.blocks._net_rest import (
    LIMIT_VARIABLES, limits_of, rest_auth, rest_url, send_all_records, send_each_record, text_values,
)
from canvas.execution.blocks.base import Block, VariableSpec, expect_records
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import register

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODY_MODES = ("none", "each_record", "all_records")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token

_REQUEST_VARIABLES = {
    "path": VariableSpec("string", default="", description="Path relative to the application's baseUrl."),
    "query": VariableSpec("object", default={}, description="Query parameters."),
    "headers": VariableSpec("object", default={}, description="Extra request headers."),
    "recordsPath": VariableSpec("string", default="", description="Dotted path to the records in the answer."),
}


@register
class HttpGet(Block):
    key = "http.get"
    title = "HTTP GET"
    description = "GET JSON from the REST application, page by page; gives the records found at recordsPath."
    application_kind = "rest"
    input_kind = "any"
    output_kind = "records"
    variables = {**_REQUEST_VARIABLES, **PAGING_VARIABLES, **LIMIT_VARIABLES}

    def run(self, context: BlockContext, data: BlockData) -> Records:
        method, body_mode = self.method_and_body_mode(context, data)
        paging = paging_from_variables(context.variables)
        if body_mode != "none" and paging.style != "none":
            raise BlockError("pagination works with bodyMode none only")
        credentials = credentials_of(context, self.key)
        client = HttpClient(context, limits_of(context), credential_redactor(credentials))
        call = HttpCall(
            method, rest_url(credentials, context.variables.get("path")),
            params=text_values(context.variables.get("query"), "query"),
            headers=text_values(context.variables.get("headers"), "headers"),
            auth=rest_auth(credentials, client), idempotency_header=self.idempotency_header(context),
        )
        return Records(self._records(context, client, call, paging, body_mode, data), json_native=True)

    def method_and_body_mode(self, context: BlockContext, data: BlockData) -> tuple[str, str]:
        return "GET", "none"

    def idempotency_header(self, context: BlockContext) -> str:
        """The header that carries an idempotency key on POST/PATCH; empty: none (GET never needs one)."""
        return ""

    def _records(self, context: BlockContext, client: HttpClient, call: HttpCall, paging: Paging, body_mode: str,
                 data: BlockData) -> Iterator[dict]:
        records_path = context.variables.get("recordsPath") or ""
        with client:
            if body_mode == "each_record":
                yield from send_each_record(context, client, call, data, records_path)
            elif body_mode == "all_records":
                yield from send_all_records(context, client, call, data, records_path, self.key)
            else:
                yield from stream_records(context, client, call, paging, records_path)


@register
class HttpRequest(HttpGet):
    key = "http.request"
    title = "HTTP request"
    description = (
        "Any method against the REST application; bodyMode each_record sends one request per input record, "
        "all_records one JSON array of them. Gives the records of the answers."
    )
    side_effects = True
    resumable = True  # bodyMode each_record: a record is done once its request was answered, or it was set aside
    variables = {
        "method": VariableSpec("string", default="GET", choices=METHODS, description="The HTTP method."),
        "bodyMode": VariableSpec("string", default="none", choices=BODY_MODES,
                                 description="none, each_record or all_records."),
        "idempotencyKey": VariableSpec("boolean", default=False,
                                       description="Send POST/PATCH with an idempotency key (the same on a repeat), "
                                                   "and retry them like GET; only for targets that honour it."),
        "idempotencyHeader": VariableSpec("string", default=DEFAULT_IDEMPOTENCY_HEADER,
                                          description="The header carrying the idempotency key."),
        **HttpGet.variables,
    }

    def method_and_body_mode(self, context: BlockContext, data: BlockData) -> tuple[str, str]:
        method = str(context.variables.get("method") or "GET").upper()
        body_mode = context.variables.get("bodyMode") or "none"
        if method not in METHODS:
            raise BlockError(f"variable 'method' must be one of {', '.join(METHODS)}")
        if body_mode not in BODY_MODES:
            raise BlockError(f"variable 'bodyMode' must be one of {', '.join(BODY_MODES)}")
        if body_mode == "each_record":
            expect_records(data, self.key)  # all_records also takes a JSON file as the body
        return method, body_mode

    def idempotency_header(self, context: BlockContext) -> str:
        if not flag(context.variables.get("idempotencyKey")):
            return ""
        header = str(context.variables.get("idempotencyHeader") or DEFAULT_IDEMPOTENCY_HEADER).strip()
        if not HEADER_NAME.fullmatch(header):
            raise BlockError("variable 'idempotencyHeader' must be a header name (letters, digits, '-' and the like)")
        return header

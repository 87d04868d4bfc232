"""HTTP/REST request blocks against the bound REST application (its baseUrl and authentication).

Two blocks, because "does it change the outside world" is a property of the block, not of a variable:
- `http.get` reads (GET only, no side effects: dry runs really run it);
- `http.request` takes any method and may send the input records as the JSON body (side effects: dry runs replace
  it). bodyMode none ignores the input; each_record sends one request per record; all_records sends one JSON array.

Both give Records: the answer's records at `recordsPath` (dotted; empty = the answer itself, an object = one
record), streamed page by page (see _net_paging for the pagination styles): the result is never built whole.

Retries (429, 5xx, connection errors; see _net_http) apply to every method: an endpoint that must not receive a
POST twice wants `retries: 0` (and the runner's own retry policy re-runs the whole block on a transient error).
"""
from __future__ import annotations

from collections.abc import Iterator

from canvas.execution.blocks._net_common import credential_redactor, credentials_of
from canvas.execution.blocks._net_http import HttpCall, HttpClient
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
            auth=rest_auth(credentials, client),
        )
        return Records(self._records(context, client, call, paging, body_mode, data), json_native=True)

    def method_and_body_mode(self, context: BlockContext, data: BlockData) -> tuple[str, str]:
        return "GET", "none"

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
    variables = {
        "method": VariableSpec("string", default="GET", choices=METHODS, description="The HTTP method."),
        "bodyMode": VariableSpec("string", default="none", choices=BODY_MODES,
                                 description="none, each_record or all_records."),
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

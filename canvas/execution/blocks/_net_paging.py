"""Pagination of JSON APIs and the records inside their answers, one page at a time.

Styles: none; page (page number + page size parameters, stop on an empty page); offset (offset + limit, stop on an
empty page); link (follow the RFC 8288 `Link: <...>; rel="next"` header); cursor (the next cursor is read from the
answer at `cursor_path` and sent as `cursor_param`; stop when it is missing, empty or repeats).

A paged read resumes at the failed page. While nothing has been read in the block run, a page fails as any request
does (see _net_http; the runner may run the block again, which repeats nothing). Once pages were read, a page whose
retries are used up gets PAGE_ROUNDS - 1 further rounds of them in place, each after a longer pause (a Retry-After
is honoured), and if it still fails the block fails for good (not transient): running the block again would read
every page before it again. So within a run no page that was read is fetched twice.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from canvas.execution.blocks._net_http import HttpAnswer, HttpCall, HttpClient
from canvas.execution.blocks.base import VariableSpec
from canvas.execution.context import BlockContext, BlockError
from canvas.network.failures import url_without_query

STYLES = ("none", "page", "offset", "link", "cursor")
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 10_000
# Tries of a page after the first, in rounds of the client's `retries`: the first round and as many more as the runner
# would by default have run the whole block again (BLOCK_RETRIES), which is what a failed page used to cost.
PAGE_ROUNDS = 3
_MISSING = object()


@dataclass(frozen=True)
class Paging:
    style: str = "none"
    page_param: str = "page"
    size_param: str = "pageSize"  # empty: the page size is not sent
    page_size: int = DEFAULT_PAGE_SIZE
    first_page: int = 1
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_path: str = ""
    cursor_param: str = "cursor"
    max_pages: int = DEFAULT_MAX_PAGES


PAGING_VARIABLES = {
    "pagination": VariableSpec("string", default="none", choices=STYLES, description="none, page, offset, link, cursor."),
    "pageParam": VariableSpec("string", default="page", description="page: the page number parameter."),
    "sizeParam": VariableSpec("string", default="pageSize", description="page: the page size parameter (empty: none)."),
    "pageSize": VariableSpec("integer", default=DEFAULT_PAGE_SIZE, description="page/offset: records per page."),
    "firstPage": VariableSpec("integer", default=1, description="page: the number of the first page (0 or 1)."),
    "offsetParam": VariableSpec("string", default="offset", description="offset: the offset parameter."),
    "limitParam": VariableSpec("string", default="limit", description="offset: the limit parameter."),
    "cursorPath": VariableSpec("string", default="", description="cursor: dotted path to the next cursor."),
    "cursorParam": VariableSpec("string", default="cursor", description="cursor: the parameter carrying it."),
    "maxPages": VariableSpec("integer", default=DEFAULT_MAX_PAGES, description="Fail after this many pages."),
}


def paging_from_variables(variables: dict) -> Paging:
    defaults = Paging()

    def value(name: str, default: Any) -> Any:
        given = variables.get(name)
        return default if given is None else given

    paging = Paging(
        style=value("pagination", defaults.style), page_param=value("pageParam", defaults.page_param),
        size_param=value("sizeParam", defaults.size_param), page_size=value("pageSize", defaults.page_size),
        first_page=value("firstPage", defaults.first_page), offset_param=value("offsetParam", defaults.offset_param),
        limit_param=value("limitParam", defaults.limit_param), cursor_path=value("cursorPath", defaults.cursor_path),
        cursor_param=value("cursorParam", defaults.cursor_param), max_pages=value("maxPages", defaults.max_pages),
    )
    if paging.style == "cursor" and not paging.cursor_path:
        raise BlockError("pagination 'cursor' needs the variable 'cursorPath'")
    if paging.page_size < 1 or paging.max_pages < 1:
        raise BlockError("variables 'pageSize' and 'maxPages' must be at least 1")
    return paging


# --- records in an answer ------------------------------------------------------------------------------------


def dig(document: Any, path: str) -> Any:
    """The value at a dotted path ("data.items", "pages.0.next"); _MISSING when the path leads nowhere."""
    current = document
    for step in (part for part in path.split(".") if part):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.lstrip("-").isdigit() and -len(current) <= int(step) < len(current):
            current = current[int(step)]
        else:
            return _MISSING
    return current


def records_in(document: Any, path: str) -> list[dict]:
    """The records at `path` (empty: the whole answer): an array gives one record per item (a non-object item v
    gives {"value": v}), an object gives one record, null or a missing path gives none."""
    value = dig(document, path) if path else document
    if value is _MISSING or value is None:
        return []
    if isinstance(value, list):
        return [item if isinstance(item, dict) else {"value": item} for item in value]
    return [value if isinstance(value, dict) else {"value": value}]


Fetch = Callable[[HttpCall], HttpAnswer]  # the answer to one page's request


# --- pages ---------------------------------------------------------------------------------------------------


def record_pages(client: HttpClient, call: HttpCall, paging: Paging, records_path: str) -> Iterator[list[dict]]:
    """The records of each page, page after page; requests are made only as the pages are consumed."""
    styles = {"none": _single, "page": _numbered, "offset": _offsets, "link": _links, "cursor": _cursors}
    pages = styles[paging.style](_PageReader(client, labelled=paging.style != "none"), call, paging, records_path)
    for count, page in enumerate(pages, start=1):
        yield page
        if count >= paging.max_pages:
            raise BlockError(f"stopped after maxPages ({paging.max_pages}) pages: does the API ignore the paging?")


def stream_records(context: BlockContext, client: HttpClient, call: HttpCall, paging: Paging,
                   records_path: str) -> Iterator[dict]:
    shown = f"{call.method} {url_without_query(call.url)}"
    pages = count = 0
    for pages, page in enumerate(record_pages(client, call, paging, records_path), start=1):
        context.raise_if_cancelled()
        context.logger.debug("%s page %d: %d records", shown, pages, len(page))
        count += len(page)
        yield from page
    context.logger.info("%s gave %d records in %d page(s)", shown, count, pages)


class _PageReader:
    """Fetches the pages of one read in order, resuming at a page that fails (see the module docstring). Labels
    each request "page N" when the read is paged: in messages, and so that each page has its own idempotency key."""

    def __init__(self, client: HttpClient, labelled: bool):
        self.client, self.labelled = client, labelled
        self.pages_read = 0

    def __call__(self, call: HttpCall) -> HttpAnswer:
        number = self.pages_read + 1
        if self.labelled:
            call = dataclasses.replace(call, label=f"page {number}")
        answer = self._resumed(call) if self.client.answers else self.client.call(call)
        self.pages_read = number
        return answer

    def _resumed(self, call: HttpCall) -> HttpAnswer:
        try:
            return self.client.call(call, rounds=PAGE_ROUNDS)
        except BlockError as error:
            if not error.transient:
                raise
            # Final, not transient: the runner would run the block again from the first page.
            raise BlockError(f"{error}; gave up after {PAGE_ROUNDS} rounds of retries rather than read the earlier "
                             "pages again") from None


def _with_params(call: HttpCall, **params: Any) -> HttpCall:
    return dataclasses.replace(call, params={**call.params, **{k: v for k, v in params.items() if k}})


def _single(fetch: Fetch, call: HttpCall, paging: Paging, path: str) -> Iterator[list[dict]]:
    yield records_in(fetch(call).data, path)


def _numbered(fetch: Fetch, call: HttpCall, paging: Paging, path: str) -> Iterator[list[dict]]:
    page = paging.first_page
    while True:
        sizes = {paging.size_param: paging.page_size} if paging.size_param else {}
        records = records_in(fetch(_with_params(call, **{paging.page_param: page}, **sizes)).data, path)
        if not records:
            return
        yield records
        page += 1


def _offsets(fetch: Fetch, call: HttpCall, paging: Paging, path: str) -> Iterator[list[dict]]:
    offset = 0
    while True:
        page_call = _with_params(call, **{paging.offset_param: offset, paging.limit_param: paging.page_size})
        records = records_in(fetch(page_call).data, path)
        if not records:
            return
        yield records
        offset += len(records)


def _links(fetch: Fetch, call: HttpCall, paging: Paging, path: str) -> Iterator[list[dict]]:
    origin = _origin(call.url)
    while True:
        answer = fetch(call)
        yield records_in(answer.data, path)
        next_url = _next_link(answer)
        if next_url is None:
            return
        if _origin(next_url) != origin:
            # The credentials ride along on every request: never follow a link to another server.
            raise BlockError(f"the next-page link leads to another server: {url_without_query(next_url)}")
        call = dataclasses.replace(call, url=next_url, params={})  # the link carries its own query


def _next_link(answer: HttpAnswer) -> str | None:
    target = (answer.links.get("next") or {}).get("url")
    return urljoin(answer.url, target) if target else None


def _origin(url: str) -> tuple:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _cursors(fetch: Fetch, call: HttpCall, paging: Paging, path: str) -> Iterator[list[dict]]:
    cursor, seen = None, set()
    while True:
        page_call = _with_params(call, **{paging.cursor_param: cursor}) if cursor is not None else call
        answer = fetch(page_call)
        records = records_in(answer.data, path)
        yield records
        cursor = dig(answer.data, paging.cursor_path)
        if not records or cursor in (_MISSING, None, "") or str(cursor) in seen:
            return
        seen.add(str(cursor))

"""MyStore "MyStore Get Customers" and "MyStore Get orders" (application MYST2: `baseUrl` and `token`).

The Canvas document names the blocks and their variables but not the API, so these blocks ASSUME MyStore's REST
API speaks JSON:API, as its public documentation describes:
- GET <baseUrl>/customers and <baseUrl>/orders with the API key as a bearer token (the catalog's verification
  settings say the same);
- paging by `page[number]` (from 1) and `page[size]`, until an empty page; the resources are under `data`;
- each resource {id, type, attributes, ...} becomes the record {id, **attributes} (flat rows suit CSV and e-mail);
- orders: `status` is sent as `filter[status]`; `age` (days) as `filter[created_at_min]`, the UTC date that many
  days ago (only orders created since then).
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from canvas.execution.blocks._net_common import credential_redactor, credentials_of
from canvas.execution.blocks._net_http import HttpCall, HttpClient
from canvas.execution.blocks._net_paging import Paging
from canvas.execution.blocks._net_rest import (
    LIMIT_VARIABLES, limits_of, rest_auth, rest_url, stream_calls, with_default_auth,
)
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import register

PAGE_SIZE = 100
PAGING = Paging(style="page", page_param="page[number]", size_param="page[size]", page_size=PAGE_SIZE, first_page=1)
RECORDS_PATH = "data"


class _MyStoreGet(Block):
    """Not registered: GET one MyStore collection, all pages, as flat records."""

    application_kind = "rest"
    input_kind = "any"
    output_kind = "records"
    path: str
    variables = dict(LIMIT_VARIABLES)

    def run(self, context: BlockContext, data: BlockData) -> Records:
        credentials = with_default_auth(credentials_of(context, self.key), "bearer")
        client = HttpClient(context, limits_of(context), credential_redactor(credentials))
        call = HttpCall("GET", rest_url(credentials, self.path), params=self.filters(context),
                        auth=rest_auth(credentials, client))
        return Records(flattened(stream_calls(context, client, [call], PAGING, RECORDS_PATH)), json_native=True)

    def filters(self, context: BlockContext) -> dict:
        return {}


def flattened(resources: Iterator[dict]) -> Iterator[dict]:
    """JSON:API resources as flat records: {id, **attributes}; anything else unchanged."""
    for resource in resources:
        attributes = resource.get("attributes")
        yield {"id": resource.get("id"), **attributes} if isinstance(attributes, dict) else resource


@register
class MyStoreGetCustomers(_MyStoreGet):
    key = "mystore.get_customers"
    title = "MyStore Get Customers"
    description = "All customers of the MyStore shop."
    path = "/customers"


@register
class MyStoreGetOrders(_MyStoreGet):
    key = "mystore.get_orders"
    title = "MyStore Get orders"
    description = "The shop's orders, optionally only those with a `status` and created in the last `age` days."
    path = "/orders"
    variables = {
        "status": VariableSpec("any", description="Only orders with this status (MyStore's status id, e.g. \"2\")."),
        "age": VariableSpec("any", description="Only orders created in the last this many days."),
        **_MyStoreGet.variables,
    }

    def filters(self, context: BlockContext) -> dict:
        filters = {}
        status, age = context.variables.get("status"), context.variables.get("age")
        if status not in (None, ""):
            filters["filter[status]"] = str(status)
        if age not in (None, ""):
            filters["filter[created_at_min]"] = _days_ago(age)
        return filters


def _days_ago(age: object) -> str:
    try:
        days = int(str(age).strip())
    except ValueError:
        days = -1
    if days < 0:
        raise BlockError(f"variable 'age' must be a whole number of days, got {age!r}")
    return (datetime.now(timezone.utc) - timedelta(days=days)).date().isoformat()

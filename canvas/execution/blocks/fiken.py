"""Fiken "Get all contacts" and "Post orders & customers" (application FIKE: `token`, `companySlug`, optional
`baseUrl`), the second and third blocks of the Canvas document's "Transferring of Orders & Customers".

The document names the blocks and their variables (testValue: "name", shippingtext: "Shipping") but not what
they do; these blocks ASSUME Fiken's API v2 (bearer token; data under /companies/<companySlug>) and:
- Get all contacts: GET .../contacts, paged by `page` (from 0) and `pageSize`, the answer a JSON array. Without
  input it gives the contacts. With input records (the orders of "MyStore Get orders") it gives each order with
  `contact`: the Fiken contact whose field `testValue` equals the order customer's (the order's `customer` object,
  or the order itself), compared without case; null when none matches. The contacts are indexed in memory.
- Post orders & customers: per order, the matched contact's contactId, or a new contact (POST .../contacts, id from
  the Location header); then POST .../sales with the order's lines (`lines` or `items`: name/description, quantity,
  price in NOK) plus a shipping line named `shippingtext` when the order has a `shipping` amount. Amounts are sent
  in øre, as Fiken counts them. Gives {orderId, contactId, sale} per order.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from canvas.execution.blocks._net_common import credential_redactor, credentials_of, required_field
from canvas.execution.blocks._net_http import HttpCall, HttpClient, json_body
from canvas.execution.blocks._net_paging import Paging
from canvas.execution.blocks._net_rest import (
    LIMIT_VARIABLES, limits_of, rest_auth, rest_url, stream_calls, with_default_auth,
)
from canvas.execution.blocks.base import Block, VariableSpec, expect_records
from canvas.execution.context import BlockContext, BlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import register

DEFAULT_BASE_URL = "https://api.fiken.no/api/v2"
CONTACTS_PAGING = Paging(style="page", page_param="page", size_param="pageSize", page_size=100, first_page=0)


class FikenApi:
    """The company's API root, authentication and one HTTP client for a block run."""

    def __init__(self, context: BlockContext, block_key: str):
        credentials = with_default_auth(credentials_of(context, block_key), "bearer")
        credentials = {**credentials, "baseUrl": credentials.get("baseUrl") or DEFAULT_BASE_URL}
        slug = quote(required_field(credentials, "companySlug"), safe="")
        self.company_url = rest_url(credentials, f"/companies/{slug}")
        self.client = HttpClient(context, limits_of(context), credential_redactor(credentials))
        self.auth = rest_auth(credentials, self.client)

    def call(self, method: str, path: str, body: Any = None, label: str = "") -> HttpCall:
        return HttpCall(method, self.company_url + path, auth=self.auth,
                        body=json_body(body) if body is not None else None, label=label)


# --- Get all contacts -----------------------------------------------------------------------------------------


@register
class FikenGetContacts(Block):
    key = "fiken.get_contacts"
    title = "Get all contacts"
    description = "Fiken's contacts; with input records, each record with its matching contact (see testValue)."
    application_kind = "rest"
    input_kind = "any"
    output_kind = "records"
    variables = {
        "testValue": VariableSpec("string", default="name", description="The field that matches records to contacts."),
        **LIMIT_VARIABLES,
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        api = FikenApi(context, self.key)
        field = context.variables.get("testValue") or "name"
        if isinstance(data, Records):
            return Records(_with_contacts(context, api, data, field))
        return Records(_contacts(context, api))


def _contacts(context: BlockContext, api: FikenApi) -> Iterator[dict]:
    return stream_calls(context, api.client, [api.call("GET", "/contacts")], CONTACTS_PAGING, "")


def _with_contacts(context: BlockContext, api: FikenApi, records: Records, field: str) -> Iterator[dict]:
    index = {_match_key(contact.get(field)): contact for contact in _contacts(context, api)}
    index.pop(None, None)
    for record in context.cancellable(records):
        yield {**record, "contact": index.get(_match_key(_customer(record).get(field)))}


def _customer(order: Mapping) -> Mapping:
    customer = order.get("customer")
    return customer if isinstance(customer, dict) else order


def _match_key(value: object) -> str | None:
    text = str(value).strip().casefold() if value is not None else ""
    return text or None


# --- Post orders & customers ----------------------------------------------------------------------------------


@register
class FikenPostOrdersCustomers(Block):
    key = "fiken.post_orders_customers"
    title = "Post orders & customers"
    description = ("Creates missing customers as Fiken contacts and each order as a Fiken sale, dated by the order's "
                   "date, else by the day the run is on in the workflow's time zone (its schedule's, else the "
                   "account's).")
    application_kind = "rest"
    side_effects = True
    input_kind = "records"
    output_kind = "records"
    dated = True  # a sale without a date of its own is dated today, in the workflow's time zone
    variables = {
        "shippingtext": VariableSpec("string", default="Shipping", description="Description of the shipping line."),
        **LIMIT_VARIABLES,
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        orders = expect_records(data, self.key)
        api = FikenApi(context, self.key)
        return Records(_posted(context, api, orders, context.variables.get("shippingtext") or "Shipping"))


def _posted(context: BlockContext, api: FikenApi, orders: Records, shipping_text: str) -> Iterator[dict]:
    """The POSTs carry no idempotency key: one whose outcome is unknown fails the block, naming the order."""
    with api.client:
        for position, order in enumerate(context.cancellable(orders), start=1):
            label = _order_label(position, order)
            contact_id = _contact_id(api, order, label)
            body = sale_body(order, contact_id, shipping_text, context.today())
            answer = api.client.call(api.call("POST", "/sales", body, label))
            yield {"orderId": order.get("id"), "contactId": contact_id, "sale": answer.headers.get("Location")}


def _order_label(position: int, order: Mapping) -> str:
    """Which order a request is for, in messages: its position in the input and its id."""
    order_id = order.get("id")
    return f"order {position}" if order_id is None else f"order {position}, id {order_id!r}"


def _contact_id(api: FikenApi, order: Mapping, label: str) -> Any:
    contact = order.get("contact")
    if isinstance(contact, dict) and contact.get("contactId") is not None:
        return contact["contactId"]
    customer = _customer(order)
    body = {"name": customer.get("name") or customer.get("email") or "Unknown customer",
            "email": customer.get("email"), "customer": True}
    answer = api.client.call(api.call("POST", "/contacts", body, f"the contact of {label}"))
    location = answer.headers.get("Location") or ""
    if not location:
        raise BlockError(f"Fiken created a contact for order {order.get('id')!r} but did not say where")
    return location.rstrip("/").rsplit("/", 1)[-1]


def sale_body(order: Mapping, contact_id: Any, shipping_text: str, today: dt.date) -> dict:
    lines = [_line(item) for item in order.get("lines") or order.get("items") or []]
    shipping = _number(order.get("shipping"))
    if shipping:
        lines.append({"description": shipping_text, "quantity": 1, "unitPrice": _ore(shipping)})
    return {
        "date": str(order.get("date") or today.isoformat())[:10],
        "kind": "external_invoice",
        "currency": order.get("currency") or "NOK",
        "customerId": contact_id,
        "lines": lines,
    }


def _line(item: Mapping) -> dict:
    return {"description": str(item.get("name") or item.get("description") or ""),
            "quantity": _number(item.get("quantity")) or 1, "unitPrice": _ore(_number(item.get("price")))}


def _number(value: object) -> float:
    try:
        return float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise BlockError(f"{value!r} is not a number") from None


def _ore(amount: float) -> int:
    return round(amount * 100)

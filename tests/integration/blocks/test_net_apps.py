"""The Canvas document's application blocks (Quinyx, MyStore, Fiken) against a real HTTP server on loopback,
speaking the API shapes their modules document."""
from __future__ import annotations

import logging

from werkzeug.wrappers import Request, Response

from canvas.execution.context import BlockAuthenticationError, BlockError
from canvas.execution.data import Records
from canvas.execution.registry import get_block
from tests.integration.blocks.net_support import assert_no_secrets, failure, logged_text, make_context, records
from tests.servers.http import json_response

EMPLOYEES = {"key-Unit-A1": [{"badgeNo": "1", "name": "Ann"}, {"badgeNo": "2", "name": "Bob"}],
             "key-Unit-B2": [{"badgeNo": "3", "name": "Cy"}]}


def quinyx_api(request: Request) -> Response:
    employees = EMPLOYEES.get(request.headers.get("X-Api-Key"))
    if employees is None:
        return json_response({"error": f"unknown key {request.headers.get('X-Api-Key')}"}, 401)
    if request.args.get("badgeNo"):
        employees = [e for e in employees if e["badgeNo"] == request.args["badgeNo"]]
    page, size = int(request.args["page"]), int(request.args["pageSize"])
    return json_response(employees[(page - 1) * size:page * size])


def quinyx(server, tmp_path, apikey="key-Unit-A1", **variables):
    return records("quinyx.get_employees", tmp_path, credentials={"apikey": apikey, "environment": "test"},
                   variables={"baseUrl": server.url("/quinyx"), "pageSize": 1, **variables})


def test_quinyx_employees_of_the_applications_key_page_by_page(http_server, tmp_path):
    http_server.route("/quinyx/employees", quinyx_api)
    assert quinyx(http_server, tmp_path, apiKeys=[], badgeNo=None) == EMPLOYEES["key-Unit-A1"]
    assert [r.query["page"] for r in http_server.requests] == ["1", "2", "3"]


def test_quinyx_employees_of_every_listed_key_and_by_badge(http_server, tmp_path):
    http_server.route("/quinyx/employees", quinyx_api)
    everyone = quinyx(http_server, tmp_path, apikey="key-Own-0", apiKeys=["key-Unit-A1", "key-Unit-B2"])
    assert [e["name"] for e in everyone] == ["Ann", "Bob", "Cy"]
    assert quinyx(http_server, tmp_path, badgeNo=2) == [{"badgeNo": "2", "name": "Bob"}]


def test_quinyx_keys_stay_out_of_errors_and_logs(http_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    http_server.route("/quinyx/employees", quinyx_api)
    error = failure("quinyx.get_employees", tmp_path, BlockAuthenticationError,
                    credentials={"apikey": "key-Wrong-999", "environment": "live"},
                    variables={"baseUrl": http_server.url("/quinyx"), "apiKeys": ["key-Listed-777"]})
    assert_no_secrets([str(error), *logged_text(caplog)], ["key-Wrong-999", "key-Listed-777"])


def test_quinyx_without_base_url_needs_a_known_environment(tmp_path):
    error = failure("quinyx.get_employees", tmp_path, credentials={"apikey": "k-1", "environment": "staging"})
    assert "live or test" in str(error)


def json_api(resources: list[dict], token: str = "shop-Token-42"):
    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return json_response({"errors": [{"title": "unauthorized"}]}, 401)
        page, size = int(request.args["page[number]"]), int(request.args["page[size]"])
        return json_response({"data": resources[(page - 1) * size:page * size]})

    return handler


def mystore(server) -> dict:
    return {"baseUrl": server.url("/shops/demo"), "token": "shop-Token-42"}


def test_mystore_customers_are_flattened_json_api_resources(http_server, tmp_path):
    customers = [{"id": "7", "type": "customers", "attributes": {"name": "Ann", "email": "ann@example.com"}}]
    http_server.route("/shops/demo/customers", json_api(customers))
    assert records("mystore.get_customers", tmp_path, credentials=mystore(http_server)) == [
        {"id": "7", "name": "Ann", "email": "ann@example.com"}]


def test_mystore_orders_are_filtered_by_status_and_age(http_server, tmp_path):
    http_server.route("/shops/demo/orders", json_api([{"id": "1", "type": "orders", "attributes": {"total": 5}}]))
    got = records("mystore.get_orders", tmp_path, credentials=mystore(http_server),
                  variables={"status": "2", "age": 7})
    assert got == [{"id": "1", "total": 5}]
    sent = http_server.requests[0].query
    assert sent["filter[status]"] == "2" and len(sent["filter[created_at_min]"]) == 10
    error = failure("mystore.get_orders", tmp_path, credentials=mystore(http_server), variables={"age": "old"})
    assert "'age'" in str(error)


class Fiken:
    """Fiken's API v2 as the fiken module assumes it: contacts paged from 0, POSTs answered with a Location."""

    def __init__(self, server):
        self.server = server
        self.contacts = [{"contactId": 11, "name": "Ann"}, {"contactId": 12, "name": "Bob"}]
        self.posted: list[tuple[str, dict]] = []
        root = "/api/v2/companies/demo-as"
        server.route(f"{root}/contacts", self.contacts_endpoint)
        server.route(f"{root}/sales", self.sales_endpoint)

    def credentials(self) -> dict:
        return {"baseUrl": self.server.url("/api/v2"), "token": "fiken-Token-1", "companySlug": "demo-as"}

    def contacts_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            self.posted.append(("contact", request.get_json()))
            return Response(status=201, headers={"Location": self.server.url("/api/v2/companies/demo-as/contacts/99")})
        page, size = int(request.args["page"]), int(request.args["pageSize"])
        return json_response(self.contacts[page * size:(page + 1) * size])

    def sales_endpoint(self, request: Request) -> Response:
        self.posted.append(("sale", request.get_json()))
        return Response(status=201, headers={"Location": f"/sales/{len(self.posted)}"})


ORDERS = [
    {"id": "o1", "customer": {"name": "ann", "email": "ann@example.com"}, "shipping": 49.5,
     "lines": [{"name": "Mug", "quantity": 2, "price": 100}]},
    {"id": "o2", "customer": {"name": "Dora", "email": "dora@example.com"}, "items": [{"name": "Tea", "price": 35}]},
]


def test_fiken_contacts_alone_and_matched_to_orders(http_server, tmp_path):
    fiken = Fiken(http_server)
    assert records("fiken.get_contacts", tmp_path, credentials=fiken.credentials()) == fiken.contacts
    matched = records("fiken.get_contacts", tmp_path, credentials=fiken.credentials(), data=Records(iter(ORDERS)),
                      variables={"testValue": "name"})
    assert [order["contact"] for order in matched] == [fiken.contacts[0], None]
    assert http_server.requests[0].headers["Authorization"] == "Bearer fiken-Token-1"


def test_fiken_posts_missing_customers_and_every_order(http_server, tmp_path):
    fiken = Fiken(http_server)
    orders = [{**ORDERS[0], "contact": fiken.contacts[0]}, {**ORDERS[1], "contact": None}]
    got = records("fiken.post_orders_customers", tmp_path, credentials=fiken.credentials(),
                  data=Records(iter(orders)), variables={"shippingtext": "Frakt"})
    assert [(r["orderId"], r["contactId"]) for r in got] == [("o1", 11), ("o2", "99")]
    kinds = [kind for kind, _ in fiken.posted]
    assert kinds == ["sale", "contact", "sale"]
    first_sale = fiken.posted[0][1]
    assert first_sale["customerId"] == 11 and first_sale["lines"] == [
        {"description": "Mug", "quantity": 2, "unitPrice": 10000},
        {"description": "Frakt", "quantity": 1, "unitPrice": 4950}]
    assert fiken.posted[1][1] == {"name": "Dora", "email": "dora@example.com", "customer": True}


def test_fiken_does_not_post_a_sale_again_when_its_outcome_is_unknown(http_server, tmp_path):
    fiken = Fiken(http_server)
    answer_sale = fiken.sales_endpoint
    http_server.route("/api/v2/companies/demo-as/sales", lambda request: (
        answer_sale(request), Response("gateway timeout", status=504))[1])  # Fiken saved it; the gateway gave up
    orders = [{**order, "contact": fiken.contacts[0]} for order in ORDERS]
    error = failure("fiken.post_orders_customers", tmp_path, credentials=fiken.credentials(), data=Records(iter(orders)))
    assert error.outcome_unknown and "/sales (order 1, id 'o1'): the outcome is unknown" in str(error)
    assert [kind for kind, _ in fiken.posted] == ["sale"]  # not repeated, and the second order not sent


def test_fiken_needs_the_company_slug(tmp_path):
    error = failure("fiken.get_contacts", tmp_path, BlockError, credentials={"token": "t-1"})
    assert "companySlug" in str(error)


def test_the_documents_quinyx_to_ftp_chain(http_server, ftp_server, tmp_path):
    """"API - Get Employees" → "FTP Upload" with the template's variables, as the runner chains them."""
    http_server.route("/quinyx/employees", quinyx_api)
    employees = get_block("quinyx.get_employees")().run(make_context(
        "quinyx.get_employees", {"apiKeys": [], "badgeNo": None, "baseUrl": http_server.url("/quinyx")},
        {"apikey": "key-Unit-A1", "environment": "live"}, tmp_path), None)
    variables = {"filename": "NY_Employees_2024-05-01-10-30", "fileformat": "csv", "filepath": "/"}
    get_block("ftp.upload")().run(make_context("ftp.upload", variables, ftp_server.credentials(), tmp_path), employees)
    uploaded = ftp_server.home / "NY_Employees_2024-05-01-10-30.csv"
    assert uploaded.read_bytes() == b"badgeNo,name\r\n1,Ann\r\n2,Bob\r\n"

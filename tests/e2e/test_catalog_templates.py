"""Every shipped catalog template end to end, as a tenant uses it: applications registered through the API against
real servers on loopback (and verified there), the template instantiated through the API, run by a real RQ worker,
and what arrived at the servers checked byte for byte; plus the failures a tenant meets, with clear run history.

Every run's history is checked for credential values by CanvasApi.run.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from canvas.execution.blocks.sql import ALLOW_SQLITE_SETTING
from canvas.secrets import SecretBox
from tests.e2e.http_api import api_serving
from tests.e2e.template_support import (
    CanvasApi, FakeFiken, RecordingCollection, TenantDatabase, as_org_template, attachments,
    bearer_checked, block_id, block_summary, catalog_template, change_ftp_password, json_api_collection,
    minute_stamps, now, numbered_pages, only_file, published_catalog_template_ids, quinyx_employees,
    sftp_credentials, smtp_credentials,
)
from tests.integration.run_helpers import start_worker
from tests.servers import smtp as smtp_module
from tests.servers.http import json_response
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.usefixtures("clean_run_queue")

QUINYX_TO_FTP = "bbe52876-aca2-4ece-ba31-11e0d98ddc19"
MYSTORE_TO_EMAIL = "3b76ca61-bca9-4995-90ba-7190c1dd567b"
FILE_HUB_TO_EMAIL = "e3df755f-1340-40dc-ad38-dc961136ad87"
FTP_JSONATA_REST = "b89b8d73-a3d5-443b-b560-55e8abba80b8"
REST_TO_SQL = "5e61c938-f2d5-4a6a-af99-a2a97ac157a4"
SQL_TO_SFTP = "530bf180-7b7c-4f7e-9d2e-dcffec65b303"
SAMPLE_TO_CSV = "6d1f0c52-3a8e-4b7a-9c61-2f4e8d0b5a17"
ORDERS_AND_CUSTOMERS = "018fda95-a62f-4f0b-af12-3cfcd9146def"  # a Draft, as in the Canvas document

QUINYX_KEY = "quinyx-Key-5150"
SHOP_TOKEN = "shop-Token-8086"
SHOP = "/mystore/shops/demo"  # the MyStore shop of the orders-and-customers template
REST_TOKEN = "rest-Token-31337"
FIKEN_TOKEN = "fiken-Token-6502"
MINUTES = "%Y-%m-%d-%H-%M"  # {date:yyyy-MM-dd-HH-mm}

EMPLOYEES = [{"badgeNo": "1001", "firstName": "Ann", "lastName": "Archer", "unit": "NY 5th Ave"},
             {"badgeNo": "1002", "firstName": "Bo", "lastName": "Berg", "unit": "NY Soho"},
             {"badgeNo": "1003", "firstName": "Cy", "lastName": "Chen, Jr.", "unit": "NY Soho"}]
EMPLOYEES_CSV = (b"badgeNo,firstName,lastName,unit\r\n1001,Ann,Archer,NY 5th Ave\r\n1002,Bo,Berg,NY Soho\r\n"
                 b'1003,Cy,"Chen, Jr.",NY Soho\r\n')
SAMPLE_CSV = b"id,name,country\r\n1,Ada Lovelace,GB\r\n2,Grace Hopper,US\r\n3,Edsger Dijkstra,NL\r\n"
SHOP_CUSTOMERS = [{"id": "7", "type": "customers", "attributes": {"name": "Ann Archer", "email": "ann@example.com"}},
                  {"id": "8", "type": "customers", "attributes": {"name": "Bo Berg", "email": "bo@example.com"}}]
SHOP_ORDERS = [
    {"id": "5001", "type": "orders", "attributes": {
        "date": "2024-05-02", "customer": {"name": "Ann Archer", "email": "ann@example.com"}, "shipping": 49,
        "lines": [{"name": "Mug", "quantity": 2, "price": 100}]}},
    {"id": "5002", "type": "orders", "attributes": {
        "date": "2024-05-03", "customer": {"name": "Dora Dahl", "email": "dora@example.com"},
        "lines": [{"name": "Tea", "quantity": 1, "price": 35.5}]}},
]
FILE_ORDERS = [{"id": "A-1", "customer": {"name": "Ann"}, "lines": [{"quantity": 2, "price": 10},
                                                                     {"quantity": 1, "price": 5}]},
               {"id": "A-2", "customer": {"name": "Bo"}, "lines": [{"quantity": 3, "price": 7}]}]
REST_CUSTOMERS = [{"id": n, "name": f"Customer {n}", "email": f"c{n}@example.com", "segment": "retail"}
                  for n in range(1, 251)]
EMPLOYEE_ROWS = [{"id": 1, "name": "Ann", "updated_at": "2024-03-01"},
                 {"id": 2, "name": "Bo", "updated_at": "2023-12-31"},
                 {"id": 3, "name": "Cy", "updated_at": "2024-05-06"}]


@pytest.fixture
def api(app, client, org) -> CanvasApi:
    return CanvasApi(app, client, org.admin_headers)


@pytest.fixture(params=["sqlite", "postgresql"])
def tenant_database(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        monkeypatch.setenv(ALLOW_SQLITE_SETTING, "true")  # SQLite applications are the operator's choice
        database = TenantDatabase(f"sqlite:///{tmp_path / 'tenant.db'}")
    else:
        database = TenantDatabase(request.getfixturevalue("postgres_url"), unique_suffix=f"_{uuid.uuid4().hex[:10]}")
    yield database
    database.close()


def test_every_published_catalog_template_is_covered_here():
    covered = {QUINYX_TO_FTP, MYSTORE_TO_EMAIL, FILE_HUB_TO_EMAIL, FTP_JSONATA_REST, REST_TO_SQL, SQL_TO_SFTP,
               SAMPLE_TO_CSV}
    assert published_catalog_template_ids() == covered


# --- Quinyx Employee Export Into FTP(CSV), and the FTP failures ------------------------------------------------------


def quinyx_to_ftp_workflow(api, http_server, ftp_server, **upload_variables) -> tuple[str, dict]:
    """The document's first template bound to a local Quinyx stand-in (baseUrl) and the FTP server."""
    http_server.route("/quinyx/employees", quinyx_employees(QUINYX_KEY, EMPLOYEES))
    applications = {"QUIN": api.register("QUIN", {"apikey": QUINYX_KEY, "environment": "live"}),
                    "FTP": api.register("FTP", ftp_server.credentials())}
    template = catalog_template(QUINYX_TO_FTP)
    chain = {block_id(template, "quinyx.get_employees"): {"baseUrl": http_server.url("/quinyx"), "pageSize": 2}}
    if upload_variables:
        chain[block_id(template, "ftp.upload")] = upload_variables
    return api.instantiate(QUINYX_TO_FTP, applications, chain), applications


def test_a_worker_given_other_keys_says_so_and_leaves_the_applications_alone(api, app, http_server, ftp_server,
                                                                             tmp_path):
    """A second machine started with other CANVAS_SECRET_KEYS than the API's: it says so when it starts, and the run
    fails saying which credentials it cannot decrypt and why, without marking the (sound) application faulted."""
    workflow_id, applications = quinyx_to_ftp_workflow(api, http_server, ftp_server)
    answer = api.client.post("/api/RunWorkflow", json={"workflowId": workflow_id}, headers=api.headers)
    assert answer.status_code == 202, answer.json
    log_path = tmp_path / "worker.log"
    worker = start_worker(app.config["CANVAS_SETTINGS"], log_path, "--burst",
                          env={"CANVAS_SECRET_KEYS": SecretBox.generate_key()})
    exit_code = worker.wait(120)
    logged = log_path.read_text()
    assert exit_code == 0, logged
    run = api.get(answer.headers["Location"])
    differ = ("none of this worker's keys (CANVAS_SECRET_KEYS, else the key file of its data directory) is the one "
              "they were encrypted with; give every worker the API's keys")
    assert (run["status"], run["failedBlock"]) == ("Failed", 1), run
    assert run["error"] == f"the credentials of the registered QUIN application cannot be decrypted: {differ}"
    assert f"the newest registered application's credentials cannot be decrypted: {differ}" in logged
    assert "Traceback" not in logged, logged
    assert [api.registered(applications[name])["faulted"] for name in ("QUIN", "FTP")] == [False, False]
    assert not http_server.requests  # nothing was sent with credentials it could not read

@pytest.mark.parametrize("other_keys", [True, False], ids=["other-keys", "same-keys"])
def test_an_api_given_other_keys_says_so_when_it_starts(api, app, http_server, ftp_server, tmp_path, other_keys):
    """An API started on another machine with other CANVAS_SECRET_KEYS than the rest: it would encrypt what it
    registers with keys the workers do not have. It says so at its start (and serves all the same); with the same
    keys it says nothing."""
    quinyx_to_ftp_workflow(api, http_server, ftp_server)
    log_path = tmp_path / "api.log"
    keys = {"CANVAS_SECRET_KEYS": SecretBox.generate_key()} if other_keys else {}
    with api_serving(app, log_path, **keys) as base:
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
    logged = log_path.read_text()
    said = ("API: the newest registered application's credentials cannot be decrypted: none of this API's keys "
            "(CANVAS_SECRET_KEYS, else the key file of its data directory) is the one they were encrypted with, and "
            "what it registers now the other machines cannot decrypt; give every API and worker the same keys")
    assert (said in logged) == other_keys, logged
    assert "Traceback" not in logged, logged


def retry_messages(block: dict) -> list[str]:
    return [line["message"] for line in block["log"] if "retrying" in line["message"]]


def test_quinyx_employees_arrive_on_ftp_as_a_dated_csv(api, http_server, ftp_server):
    workflow_id, _ = quinyx_to_ftp_workflow(api, http_server, ftp_server)
    started = now()
    run = api.run(workflow_id)
    finished = now()
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 3), ("Succeeded", 3, None)]
    uploaded = only_file(ftp_server.home, r"NY_Employees_[-0-9]+\.csv")
    assert uploaded.name in {f"NY_Employees_{stamp}.csv" for stamp in minute_stamps(started, finished, MINUTES)}
    assert uploaded.read_bytes() == EMPLOYEES_CSV
    assert run["blocks"][1]["output"]["fileName"] == uploaded.name
    pages = [request.query["page"] for request in http_server.requests if request.path == "/quinyx/employees"]
    assert pages == ["1", "2", "3"]  # two full pages, then the empty one that ends the paging


def test_a_password_changed_on_the_ftp_server_fails_the_run_and_faults_the_application(api, http_server,
                                                                                       ftp_server):
    workflow_id, applications = quinyx_to_ftp_workflow(api, http_server, ftp_server)
    change_ftp_password(ftp_server, "changed-Elsewhere-77")  # after registration verified the old one
    run = api.run(workflow_id)
    assert (run["status"], run["failedBlock"], run["errorClass"]) == ("Failed", 2, "BlockAuthenticationError")
    assert run["error"].startswith("FTP login failed for user 'ftp-user': 530")
    assert block_summary(run) == [("Succeeded", None, 3), ("Failed", 3, None)]
    assert retry_messages(run["blocks"][1]) == []  # a refused login is not worth a retry
    assert run["blocks"][1]["attempts"] == 1
    ftp_application = api.registered(applications["FTP"])
    assert ftp_application["faulted"] is True and ftp_application["isAuthenticated"] is False
    assert api.registered(applications["QUIN"])["faulted"] is False


def test_an_ftp_server_that_is_down_is_retried_then_fails_the_run_clearly(api, http_server, ftp_server):
    workflow_id, applications = quinyx_to_ftp_workflow(api, http_server, ftp_server)
    ftp_server.stop()  # its port is closed now: connection refused, a transient failure
    run = api.run(workflow_id)
    assert (run["status"], run["failedBlock"], run["errorClass"]) == ("Failed", 2, "TransientBlockError")
    assert run["error"] == f"connection refused by {ftp_server.host}:{ftp_server.port}"
    assert [message.split(";")[0] for message in retry_messages(run["blocks"][1])] == [
        f"attempt {number} failed ({run['error']})" for number in (1, 2)]  # BLOCK_RETRIES more, then give up
    assert run["blocks"][1]["attempts"] == 3
    assert api.registered(applications["FTP"])["faulted"] is False  # the server is down, the credentials are fine


def test_registering_an_ftp_server_that_is_down_is_refused(api, closed_port):
    answer = api.try_register("FTP", {"address": "127.0.0.1", "port": closed_port, "username": "u",
                                      "password": "never-Stored-1"})
    assert answer.status_code == 400
    assert answer.json["Msg"] == f"Authentication Error: connection refused by 127.0.0.1:{closed_port}"
    assert api.get("/api/RegApplications") == []


def test_an_existing_file_on_ftp_is_kept_when_overwrite_is_false(api, http_server, ftp_server):
    workflow_id, _ = quinyx_to_ftp_workflow(api, http_server, ftp_server, filename="NY_Employees_fixed")
    existing = ftp_server.home / "NY_Employees_fixed.csv"
    existing.write_bytes(b"yesterday's export\r\n")
    run = api.run(workflow_id)
    assert (run["status"], run["failedBlock"], run["errorClass"]) == ("Failed", 2, "BlockError")
    assert run["error"] == "file already exists: /NY_Employees_fixed.csv (set overwrite to true to replace it)"
    assert existing.read_bytes() == b"yesterday's export\r\n"
    assert [path.name for path in ftp_server.home.iterdir()] == ["NY_Employees_fixed.csv"]  # no temporary left


# --- MyStore Customers Send email, and a refused e-mail -----------------------------------------------------------


def mystore_email_applications(api, http_server) -> dict:
    """Exactly the applications the Canvas document lists for the template: the shop, and the platform (CMAF)."""
    shop = "/mystore/shops/demo"
    http_server.route(f"{shop}/products", bearer_checked(SHOP_TOKEN, lambda request: json_response({"data": []})))
    http_server.route(f"{shop}/customers", bearer_checked(SHOP_TOKEN, json_api_collection(SHOP_CUSTOMERS)))
    return {"MYST2": api.register("MYST2", {"baseUrl": http_server.url(shop), "token": SHOP_TOKEN}),
            "CMAF": api.register("CMAF", {})}


def with_platform_relay(make_app, org, smtp_server) -> CanvasApi:
    """The tenant's API on a platform whose own mail relay (CANVAS_SMTP_URL) is the given server."""
    relay = f"smtp://{smtp_server.username}:{smtp_server.password}@{smtp_server.host}:{smtp_server.port}"
    relay_app = make_app(SMTP_URL=relay, SMTP_FROM="canvas@platform.example")
    return CanvasApi(relay_app, relay_app.test_client(), org.admin_headers)


def owner_email(app, org) -> str:
    from canvas.models import Account

    with app.extensions["canvas"].db.sessions() as session:
        return session.get(Account, uuid.UUID(org.admin_id)).email


def email_block(template_id: str) -> str:
    return block_id(catalog_template(template_id), "email.send")


def test_mystore_customers_are_emailed_to_the_account_through_the_platform_relay(make_app, org, http_server,
                                                                                 smtp_server):
    api = with_platform_relay(make_app, org, smtp_server)
    applications = mystore_email_applications(api, http_server)
    [verification] = [request for request in http_server.requests if request.path.endswith("/products")]
    assert verification.headers["Authorization"] == f"Bearer {SHOP_TOKEN}"  # the catalog's authType default
    template = api.get("/api/WorkflowTemplates")
    assert [entry["applications"] for entry in template if entry["id"] == MYSTORE_TO_EMAIL] == [["MYST2", "CMAF"]]
    workflow_id = api.instantiate(MYSTORE_TO_EMAIL, applications)  # as the document's template is: no overrides
    run = api.run(workflow_id)
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 2), ("Succeeded", 2, None)]
    [received] = smtp_server.messages
    assert received.rcpt_tos == [owner_email(api.app, org)] and received.login == smtp_server.username
    message = received.parsed()
    assert (message["From"], message["Subject"]) == ("canvas@platform.example", "MyStore Customers")
    assert message.get_body(("plain",)).get_content().strip() == "Please see your customers in MyStore"
    assert attachments(message) == [("AllCustomers.csv", "text/csv", b"id,name,email\r\n7,Ann Archer,ann@example.com"
                                                                     b"\r\n8,Bo Berg,bo@example.com\r\n")]
    assert smtp_server.password not in json.dumps(api.get(f"/api/WorkflowRun/{run['id']}"))


def test_the_workflow_s_own_recipients_replace_the_account(make_app, org, http_server, smtp_server):
    api = with_platform_relay(make_app, org, smtp_server)
    workflow_id = api.instantiate(MYSTORE_TO_EMAIL, mystore_email_applications(api, http_server),
                                  {email_block(MYSTORE_TO_EMAIL): {"to": "owner@shop.example, sales@shop.example"}})
    assert api.run(workflow_id)["status"] == "Succeeded"
    assert [message.rcpt_tos for message in smtp_server.messages] == [["owner@shop.example", "sales@shop.example"]]


def test_without_a_platform_relay_the_run_says_what_to_do(api, http_server):
    workflow_id = api.instantiate(MYSTORE_TO_EMAIL, mystore_email_applications(api, http_server))
    run = api.run(workflow_id)
    assert (run["status"], run["failedBlock"]) == ("Failed", 2)
    assert run["error"].startswith("the platform has no mail relay (the operator sets CANVAS_SMTP_URL)")


class RecipientRefusingHandler(smtp_module._CollectingHandler):  # noqa: SLF001 - the server's message sink
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address.endswith("@refused.example"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def refusing_smtp_server(monkeypatch):
    monkeypatch.setattr(smtp_module, "_CollectingHandler", RecipientRefusingHandler)
    with SmtpServer() as server:
        yield server


def test_an_email_the_server_refuses_fails_the_run_with_the_servers_reason(make_app, org, http_server,
                                                                           refusing_smtp_server):
    api = with_platform_relay(make_app, org, refusing_smtp_server)
    applications = mystore_email_applications(api, http_server)
    workflow_id = api.instantiate(MYSTORE_TO_EMAIL, applications,
                                  {email_block(MYSTORE_TO_EMAIL): {"to": "nobody@refused.example"}})
    run = api.run(workflow_id)
    assert (run["status"], run["failedBlock"], run["errorClass"]) == ("Failed", 2, "BlockError")
    assert run["error"] == "the server refused recipient nobody@refused.example (550 5.1.1 mailbox unavailable)"
    assert refusing_smtp_server.messages == []
    assert api.registered(applications["CMAF"])["faulted"] is False


# --- the File Hub templates ------------------------------------------------------------------------------------------


def test_sample_records_to_csv_keeps_a_dated_csv_in_the_file_hub(api, app, org):
    workflow_id = api.instantiate(SAMPLE_TO_CSV, {})
    started = now()
    run = api.run(workflow_id)
    finished = now()
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 3), ("Succeeded", 3, 3), ("Succeeded", 3, None)]
    file_hub = Path(app.config["CANVAS_SETTINGS"]["DATA_DIR"]) / "blobs" / "filehub" / org.admin_id
    stored = only_file(file_hub, r"people_[-0-9]+\.csv")
    assert stored.name in {f"people_{stamp}.csv" for stamp in minute_stamps(started, finished, MINUTES)}
    assert stored.read_bytes() == SAMPLE_CSV


def test_a_file_hub_file_is_emailed(api, smtp_server):
    # The File Hub file comes from another workflow of the account: the sample, told where to keep its CSV.
    sample = catalog_template(SAMPLE_TO_CSV)
    producer = api.instantiate(SAMPLE_TO_CSV, {}, {block_id(sample, "filehub.write_csv"):
                                                   {"filename": "reports/latest.csv"}})
    assert api.run(producer)["status"] == "Succeeded"
    applications = {"CMAF": api.register("CMAF", {}), "SMTP": api.register("SMTP", smtp_credentials(smtp_server))}
    workflow_id = api.instantiate(FILE_HUB_TO_EMAIL, applications,
                                  {email_block(FILE_HUB_TO_EMAIL): {"to": ["boss@example.com", "cfo@example.com"]}})
    started = now()
    run = api.run(workflow_id)
    finished = now()
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, None), ("Succeeded", None, None)]
    [received] = smtp_server.messages
    message = received.parsed()
    assert received.rcpt_tos == ["boss@example.com", "cfo@example.com"]
    assert message["Subject"] in {f"Latest report {day}" for day in minute_stamps(started, finished, "%Y-%m-%d")}
    assert attachments(message) == [("latest.csv", "text/csv", SAMPLE_CSV)]


# --- FTP download, JSONata mapping, REST post ------------------------------------------------------------------------


def rest_credentials(http_server) -> dict:
    http_server.route("/rest/health", bearer_checked(REST_TOKEN, lambda request: json_response({"ok": True})))
    return {"baseUrl": http_server.url("/rest"), "authType": "bearer", "token": REST_TOKEN, "verifyPath": "/health"}


def test_ftp_orders_are_mapped_with_jsonata_and_posted_one_by_one(api, ftp_server, http_server):
    (ftp_server.home / "outbox").mkdir()
    (ftp_server.home / "archive").mkdir()
    (ftp_server.home / "outbox" / "orders.json").write_text(json.dumps(FILE_ORDERS))
    posted = RecordingCollection()
    http_server.route("/rest/orders", bearer_checked(REST_TOKEN, posted))
    applications = {"FTP": api.register("FTP", ftp_server.credentials()),
                    "REST": api.register("REST", rest_credentials(http_server))}
    run = api.run(api.instantiate(FTP_JSONATA_REST, applications))
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, None), ("Succeeded", None, 2), ("Succeeded", 2, 2),
                                  ("Succeeded", 2, 2)]
    assert posted.bodies == [{"externalId": "A-1", "customer": "Ann", "total": 25},
                             {"externalId": "A-2", "customer": "Bo", "total": 21}]
    assert not (ftp_server.home / "outbox" / "orders.json").exists()  # moved once downloaded (moveTo)
    assert json.loads((ftp_server.home / "archive" / "orders.json").read_text()) == FILE_ORDERS


# --- the SQL templates, on SQLite and PostgreSQL ---------------------------------------------------------------------


def test_every_rest_page_is_upserted_into_sql(api, http_server, tenant_database):
    table = tenant_database.create("customers", "id INTEGER PRIMARY KEY, name TEXT, email TEXT",
                                   [{"id": 1, "name": "Old name", "email": "old@example.com"}])
    http_server.route("/rest/customers", bearer_checked(REST_TOKEN, numbered_pages(REST_CUSTOMERS, "data")))
    applications = {"REST": api.register("REST", rest_credentials(http_server)),
                    "SQL": api.register("SQL", {"url": tenant_database.url})}
    upsert = block_id(catalog_template(REST_TO_SQL), "sql.upsert")
    run = api.run(api.instantiate(REST_TO_SQL, applications, {upsert: {"table": table}}))
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 250), ("Succeeded", 250, None)]
    assert tenant_database.rows(f"SELECT id, name, email FROM {table} ORDER BY id") == [
        (customer["id"], customer["name"], customer["email"]) for customer in REST_CUSTOMERS]
    pages = [request.query["page"] for request in http_server.requests if request.path == "/rest/customers"]
    assert pages == ["1", "2", "3", "4"]


def test_query_rows_arrive_on_sftp_as_a_dated_csv(api, sftp_server, tenant_database):
    date_type = "DATE" if tenant_database.dialect == "postgresql" else "TEXT"  # a real date is written as ISO text
    table = tenant_database.create("employees", f"id INTEGER PRIMARY KEY, name TEXT, updated_at {date_type}",
                                   EMPLOYEE_ROWS)
    template = catalog_template(SQL_TO_SFTP)
    query_block = next(entry for entry in template["chain"] if entry["block"] == "sql.query")
    query = query_block["variables"]["query"].replace("employees", table)
    applications = {"SQL": api.register("SQL", {"url": tenant_database.url}),
                    "SFTP": api.register("SFTP", sftp_credentials(sftp_server))}
    workflow_id = api.instantiate(SQL_TO_SFTP, applications, {
        query_block["uniqueBlockId"]: {"query": query, "parameters": {"since": "2024-01-01"}}})
    started = now()
    run = api.run(workflow_id)
    finished = now()
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 2), ("Succeeded", 2, None)]
    uploaded = only_file(sftp_server.root, r"employees_[-0-9]+\.csv")
    assert uploaded.name in {f"employees_{stamp}.csv" for stamp in minute_stamps(started, finished, MINUTES)}
    assert uploaded.read_bytes() == b"id,name,updated_at\r\n1,Ann,2024-03-01\r\n3,Cy,2024-05-06\r\n"


# --- Transferring of Orders & Customers: a Draft, its chain run as an organization template ----------------------


def test_the_draft_orders_and_customers_template_cannot_be_instantiated(api):
    answer = api.try_instantiate(ORDERS_AND_CUSTOMERS, {})
    assert answer.status_code == 400
    assert answer.json["Msg"] == (f"Workflow template {ORDERS_AND_CUSTOMERS} is a Draft; only Published templates "
                                  "can be instantiated")



def a_zone_on_another_day() -> str:
    """A time zone whose date is not UTC's now: at UTC+14 or UTC-11, one of the two always is."""
    today = datetime.now(timezone.utc).date()
    return next(zone for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
                if datetime.now(ZoneInfo(zone)).date() != today)


def test_a_sale_without_a_date_is_dated_today_in_the_accounts_time_zone(api, app, org, http_server):
    """The order has no date of its own: Fiken gets the day the run is on where the account is, not the worker
    machine's (UTC here)."""
    from canvas.models import Account

    zone = a_zone_on_another_day()
    with app.extensions["canvas"].db.transaction() as session:
        session.get(Account, uuid.UUID(org.admin_id)).time_zone = zone
    undated = [{**order, "attributes": {name: value for name, value in order["attributes"].items() if name != "date"}}
               for order in SHOP_ORDERS]
    fiken, workflow_id = orders_to_fiken(api, http_server, undated)
    days = {datetime.now(ZoneInfo(zone)).date().isoformat()}
    run = api.run(workflow_id)
    days.add(datetime.now(ZoneInfo(zone)).date().isoformat())  # two only if the zone's midnight passed meanwhile
    assert run["status"] == "Succeeded", run["error"]
    sales = [body for kind, body in fiken.posted if kind == "sale"]
    assert len(sales) == 2 and {sale["date"] for sale in sales} <= days, (zone, days, sales)


def orders_to_fiken(api: CanvasApi, http_server, orders: list[dict]) -> tuple[FakeFiken, str]:  # noqa: ANN001
    """The orders-and-customers template as an organization's, its MyStore shop giving `orders`: (Fiken, the
    workflow)."""
    http_server.route(f"{SHOP}/products", bearer_checked(SHOP_TOKEN, lambda request: json_response({"data": []})))
    http_server.route(f"{SHOP}/orders", bearer_checked(SHOP_TOKEN, json_api_collection(orders)))
    fiken = FakeFiken(http_server, FIKEN_TOKEN, "demo-as")
    applications = {"MYST2": api.register("MYST2", {"baseUrl": http_server.url(SHOP), "token": SHOP_TOKEN}),
                    "FIKE": api.register("FIKE", fiken.credentials())}
    template_id = api.publish_org_template(as_org_template(catalog_template(ORDERS_AND_CUSTOMERS)))
    return fiken, api.instantiate(template_id, applications)


def test_the_orders_and_customers_chain_runs_as_an_organization_template(api, http_server):
    fiken, workflow_id = orders_to_fiken(api, http_server, SHOP_ORDERS)
    run = api.run(workflow_id)
    assert run["status"] == "Succeeded", run["error"]
    assert block_summary(run) == [("Succeeded", None, 2), ("Succeeded", 2, 2), ("Succeeded", 2, 2)]
    order_queries = [request.query for request in http_server.requests if request.path == f"{SHOP}/orders"]
    assert {query["filter[status]"] for query in order_queries} == {"2"}  # the template's status variable
    assert [kind for kind, _ in fiken.posted] == ["sale", "contact", "sale"]
    assert fiken.posted[1][1] == {"name": "Dora Dahl", "email": "dora@example.com", "customer": True}
    assert fiken.posted[0][1] == {
        "date": "2024-05-02", "kind": "external_invoice", "currency": "NOK", "customerId": 11,
        "lines": [{"description": "Mug", "quantity": 2, "unitPrice": 10000},
                  {"description": "Shipping", "quantity": 1, "unitPrice": 4900}]}
    assert fiken.posted[2][1]["customerId"] == "92" and fiken.posted[2][1]["lines"] == [
        {"description": "Tea", "quantity": 1, "unitPrice": 3550}]
    output = api.client.get(f"/api/WorkflowRun/{run['id']}/Block/3/Output", headers=api.headers)
    assert [json.loads(line) for line in output.get_data(as_text=True).splitlines()] == [
        {"orderId": "5001", "contactId": 11, "sale": "/sales/1"},
        {"orderId": "5002", "contactId": "92", "sale": "/sales/3"}]


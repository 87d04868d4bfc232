"""Support for the end-to-end tests of the shipped catalog templates: the Canvas API as a tenant drives it, the
catalog files, fake third-party REST APIs served by the real loopback HTTP server, and tenant SQL databases.

Everything goes through the API (Flask test client) and a real in-process RQ worker; the third-party systems are
the real loopback servers of tests/servers. Each run's history is checked for credential values as it is fetched.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy
import yaml
from werkzeug.wrappers import Request, Response

from tests.integration.run_helpers import run_and_work
from tests.servers.ftp import FtpServer
from tests.servers.http import json_response

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates_catalog" / "templates"
SECRET_FIELDS = ("password", "token", "apikey", "apiKey", "clientSecret", "privateKey")
SENDER = "canvas@example.com"


# --- the shipped catalog ------------------------------------------------------------------------------------------


def catalog_template(template_id: str) -> dict:
    """A shipped template file, as data (the API does not show a chain's block keys, an org template needs them)."""
    for path in TEMPLATES_DIR.glob("*.yaml"):
        template = yaml.safe_load(path.read_text(encoding="utf-8"))
        if template["id"] == template_id:
            return template
    raise KeyError(template_id)


def published_catalog_template_ids() -> set[str]:
    templates = (yaml.safe_load(path.read_text(encoding="utf-8")) for path in TEMPLATES_DIR.glob("*.yaml"))
    return {template["id"] for template in templates if template["state"] == "Published"}


def block_id(template: dict, block_key: str) -> str:
    """The uniqueBlockId of the template's block that uses `block_key` (chain overrides are addressed by it)."""
    return next(entry["uniqueBlockId"] for entry in template["chain"] if entry["block"] == block_key)


def as_org_template(template: dict) -> dict:
    """The body of POST /api/WorkflowTemplate that copies a catalog template's applications and chain."""
    chain = [{key: entry[key] for key in ("uniqueBlockId", "blockName", "block", "application", "variables")
              if key in entry} for entry in template["chain"]]
    return {"name": f"{template['name']} (organization copy)", "description": template["description"],
            "applications": template["applications"], "chain": chain}


# --- the API as a tenant uses it -------------------------------------------------------------------------------------


@dataclass
class CanvasApi:
    """One account calling the Canvas API; remembers the secrets it registered to look for them in run history."""

    app: object
    client: object
    headers: dict
    secrets: set[str] = field(default_factory=set)

    def get(self, path: str, **params):
        answer = self.client.get(path, headers=self.headers, query_string=params)
        assert answer.status_code == 200, (path, answer.json)
        return answer.json

    def post(self, path: str, body: dict):
        return self.client.post(path, json=body, headers=self.headers)

    def application_id(self, short_name: str) -> str:
        return next(app["id"] for app in self.get("/api/Applications") if app["shortName"] == short_name)

    def try_register(self, short_name: str, credentials: dict):
        self.secrets |= secret_values(credentials)
        body = {"applicationId": self.application_id(short_name), "tagText": f"e2e {short_name}",
                "credentialsJson": json.dumps(credentials)}
        return self.post("/api/RegApplication", body)

    def register(self, short_name: str, credentials: dict) -> str:
        answer = self.try_register(short_name, credentials)
        assert answer.status_code == 200, answer.json
        return answer.json

    def registered(self, registered_id: str) -> dict:
        return next(app for app in self.get("/api/RegApplications") if app["id"] == registered_id)

    def try_instantiate(self, template_id: str, applications: dict, chain: dict | None = None):
        """`chain` maps uniqueBlockId → variable overrides."""
        overrides = [{"uniqueBlockId": unique_id, "variables": variables}
                     for unique_id, variables in (chain or {}).items()]
        return self.post("/api/Workflow", {"workflowTemplateId": template_id, "applications": applications,
                                           "chain": overrides})

    def instantiate(self, template_id: str, applications: dict, chain: dict | None = None) -> str:
        answer = self.try_instantiate(template_id, applications, chain)
        assert answer.status_code == 200, answer.json
        return answer.json

    def publish_org_template(self, body: dict) -> str:
        created = self.post("/api/WorkflowTemplate", body)
        assert created.status_code == 200, created.json
        published = self.post("/api/PublishWorkflowTemplate", {"id": created.json})
        assert published.status_code == 200, published.json
        return created.json

    def run(self, workflow_id: str) -> dict:
        """Runs the whole workflow on a real in-process RQ worker; its history, checked to hold no secret."""
        finished = run_and_work(self.client, self.app, self.headers, workflow_id)
        self.assert_no_secret_in_history(workflow_id)
        return finished

    def assert_no_secret_in_history(self, workflow_id: str) -> None:
        runs = self.get("/api/WorkflowRuns", workflowId=workflow_id)
        history = json.dumps([runs, *(self.get(f"/api/WorkflowRun/{run['id']}") for run in runs)])
        leaked = sorted(secret for secret in self.secrets if secret in history)
        assert not leaked, f"credential values in the run history: {leaked}"


def secret_values(credentials: dict) -> set[str]:
    values = {str(credentials.get(name)) for name in SECRET_FIELDS if credentials.get(name)}
    if credentials.get("url"):
        values.add(sqlalchemy.make_url(credentials["url"]).password or "")
    return {value for value in values if value}


# --- what a run history says ---------------------------------------------------------------------------------------


def block_summary(run: dict) -> list[tuple]:
    """(status, recordsIn, recordsOut) of every block of a run."""
    return [(block["status"], block["recordsIn"], block["recordsOut"]) for block in run["blocks"]]


def minute_stamps(started: datetime, finished: datetime, pattern: str) -> set[str]:
    """`pattern` (strftime) at every UTC minute from `started` to `finished`: a {date:...} placeholder resolved at
    block start falls on one of them, even when the run straddles a minute boundary."""
    moment = started.astimezone(timezone.utc).replace(second=0, microsecond=0)
    stamps = set()
    while moment <= finished:
        stamps.add(moment.strftime(pattern))
        moment += timedelta(minutes=1)
    return stamps


def now() -> datetime:
    return datetime.now(timezone.utc)


def only_file(directory: Path, pattern: str) -> Path:
    """The one file of `directory` whose name matches the regular expression `pattern` (no temporary leftovers)."""
    files = [path for path in directory.iterdir() if path.is_file()]
    assert len(files) == 1 and re.fullmatch(pattern, files[0].name), [path.name for path in files]
    return files[0]


# --- the real servers' credentials -----------------------------------------------------------------------------------


def smtp_credentials(server) -> dict:  # noqa: ANN001 - tests.servers.smtp.SmtpServer
    return server.credentials(fromAddress=SENDER)


def sftp_credentials(server) -> dict:  # noqa: ANN001 - tests.servers.sftp.SftpServer
    """Password login, the server's host key pinned (the platform never trusts an unknown host)."""
    return {"address": server.host, "port": server.port, "username": server.username, "password": server.password,
            "hostKey": server.host_key_line}


def change_ftp_password(server: FtpServer, password: str) -> None:
    """The password changes on the server after the application was registered (and verified) with the old one.
    pyftpdlib keeps its users on the handler class of the running server."""
    authorizer = server._server.handler.authorizer  # noqa: SLF001 - the test server exposes no setter
    authorizer.user_table[server.username]["pwd"] = password


def attachments(message) -> list[tuple[str, str, bytes]]:  # noqa: ANN001 - email.message.EmailMessage
    return [(part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_attachments()]


# --- fake third-party REST APIs on the loopback HTTP server ---------------------------------------------------------


def bearer_checked(token: str, handler):  # noqa: ANN001, ANN201
    """`handler` behind a bearer-token check, as the real APIs answer a wrong token: 401."""

    def checked(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return json_response({"error": "unauthorized"}, 401)
        return handler(request)

    return checked


def quinyx_employees(api_key: str, employees: list[dict]):  # noqa: ANN201
    """GET /employees?page&pageSize with the X-Api-Key header, as the quinyx block assumes the API."""

    def handler(request: Request) -> Response:
        if request.headers.get("X-Api-Key") != api_key:
            return json_response({"error": "unknown key"}, 401)
        page, size = int(request.args["page"]), int(request.args["pageSize"])
        return json_response(employees[(page - 1) * size:page * size])

    return handler


def json_api_collection(resources: list[dict]):  # noqa: ANN201
    """A JSON:API collection paged by page[number] (from 1) and page[size], as MyStore serves them."""

    def handler(request: Request) -> Response:
        page, size = int(request.args["page[number]"]), int(request.args["page[size]"])
        return json_response({"data": resources[(page - 1) * size:page * size]})

    return handler


def numbered_pages(records: list[dict], records_path: str):  # noqa: ANN201
    """A collection paged by page (from 1) and pageSize, its records under `records_path`."""

    def handler(request: Request) -> Response:
        page, size = int(request.args["page"]), int(request.args["pageSize"])
        return json_response({records_path: records[(page - 1) * size:page * size], "page": page})

    return handler


class RecordingCollection:
    """POST endpoint that keeps each JSON body and answers 201 with the stored resource (id given here)."""

    def __init__(self):
        self.bodies: list[dict] = []

    def __call__(self, request: Request) -> Response:
        if request.method != "POST":
            return json_response({"error": "method not allowed"}, 405)
        self.bodies.append(request.get_json())
        return json_response({"id": len(self.bodies), **self.bodies[-1]}, 201)


class FakeFiken:
    """Fiken's API v2 as the fiken blocks assume it: /user for verification, contacts paged from 0, POSTs
    answered 201 with a Location."""

    def __init__(self, server, token: str, slug: str):  # noqa: ANN001 - tests.servers.http.HttpServer
        self.server, self.token, self.slug = server, token, slug
        self.contacts = [{"contactId": 11, "name": "Ann Archer", "email": "ann@example.com"}]
        self.posted: list[tuple[str, dict]] = []
        root = f"/fiken/api/v2/companies/{slug}"
        server.route("/fiken/api/v2/user", bearer_checked(token, lambda request: json_response({"name": "e2e"})))
        server.route(f"{root}/contacts", bearer_checked(token, self.contacts_endpoint))
        server.route(f"{root}/sales", bearer_checked(token, self.sales_endpoint))

    def credentials(self) -> dict:
        return {"baseUrl": self.server.url("/fiken/api/v2"), "token": self.token, "companySlug": self.slug}

    def contacts_endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            self.posted.append(("contact", request.get_json()))
            location = self.server.url(f"/fiken/api/v2/companies/{self.slug}/contacts/{90 + len(self.posted)}")
            return Response(status=201, headers={"Location": location})
        page, size = int(request.args["page"]), int(request.args["pageSize"])
        return json_response(self.contacts[page * size:(page + 1) * size])

    def sales_endpoint(self, request: Request) -> Response:
        self.posted.append(("sale", request.get_json()))
        return Response(status=201, headers={"Location": f"/sales/{len(self.posted)}"})


# --- tenant SQL databases ------------------------------------------------------------------------------------------


class TenantDatabase:
    """A tenant's database for the SQL templates. SQLite keeps the templates' own table names (a fresh file each
    test); PostgreSQL gets uniquely named tables, dropped by close()."""

    def __init__(self, url: str, unique_suffix: str = ""):
        self.url, self.unique_suffix = url, unique_suffix
        self.engine = sqlalchemy.create_engine(url)
        self.created: list[str] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def table(self, name: str) -> str:
        return f"{name}{self.unique_suffix}"

    def create(self, name: str, columns: str, rows: list[dict] = ()) -> str:
        table = self.table(name)
        with self.engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE {table} ({columns})")
            self.created.append(table)
            if rows:
                keys = list(rows[0])
                placeholders = ", ".join(f":{key}" for key in keys)
                statement = sqlalchemy.text(f"INSERT INTO {table} ({', '.join(keys)}) VALUES ({placeholders})")
                connection.execute(statement, list(rows))
        return table

    def rows(self, query: str) -> list[tuple]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(query)]

    def close(self) -> None:
        with self.engine.begin() as connection:
            for table in self.created:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        self.engine.dispose()

"""How long the lists take as their tables grow: 100, 10,000 and 100,000 rows of each listed table in one account (or
its organization): workflows, runs, accounts, registered applications, templates and audit entries.

    .venv/bin/python benchmarks/list_timings.py [--sizes 100,10000,100000] [--rounds 5]

Server-side time: each request goes through the Flask test client in this process (the whole WSGI app: auth,
argument parsing, queries, serialisation, JSON encoding), so network and HTTP-server time are left out; the app's
objects are frozen out of the cyclic collector's sight, as `canvas api` freezes them (canvas.long_lived). Rows are
added with Core executemany inserts, one size after the other (the next size adds the missing rows): workflows with
one binding each, runs of the first workflow (one in a hundred Failed; each with a block run that logged a line: as
many /v2/logs lines as runs, and a line more per failed run), accounts of the organization, registered applications
of its admin, templates of the organization and its audit entries.
After each size, ANALYZE (PostgreSQL: VACUUM ANALYZE, as autovacuum soon would). Timed: the whole Workflows list (up
to 10,000); the first, the middle and the last page of 50 of every list (Workflows, Accounts, RegApplications,
WorkflowTemplates, WorkflowRuns, AuditLog, /v2/flows, /v2/executions, /v2/credentials, /v2/audit-events, and
/v2/logs by offset and limit); and Authenticate as the baseline. (A page past the middle is read from the list's
other end, so the middle page is the deepest one.)

The database: CANVAS_DATABASE_URL if set (an empty database: it is migrated here), else SQLite in a temp dir.
`--postgres` makes a scratch database on CANVAS_BENCH_PG (default postgresql+psycopg://postgres@127.0.0.1:5432/
postgres) and drops it at the end.
"""
from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ADMIN_URL = os.environ.get("CANVAS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
INSERT_BATCH = 5_000
TEMPLATE_ID = uuid.UUID("bbe52876-aca2-4ece-ba31-11e0d98ddc19")  # a catalog template (Quinyx -> FTP)


@contextmanager
def scratch_postgres():
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"canvas_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Platform:
    """The app in this process on a temp data dir: a migrated database and the catalog. Redis is never reached by
    a list, so none is started."""

    def __init__(self, database_url: str | None):
        from canvas import create_app, migrate
        from canvas.long_lived import freeze_long_lived
        from canvas.catalog.loader import sync_catalog_files

        self.tmp = tempfile.TemporaryDirectory(prefix="canvas-bench-lists-")
        url = database_url or f"sqlite:///{self.tmp.name}/canvas.db"
        self.app = create_app({"DATA_DIR": self.tmp.name, "DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0"})
        self.services = self.app.extensions["canvas"]
        self.database = url.split(":", 1)[0]
        migrate.upgrade(self.services.db.engine)
        sync_catalog_files(self.services.db, self.app.config["CANVAS_SETTINGS"])
        freeze_long_lived()  # as `canvas api` does once it has built the app

    def create_organization(self) -> tuple:
        """(canvas.accounts.service.NewOrganization, its admin's e-mail)"""
        from canvas.accounts import service

        email = f"{uuid.uuid4().hex[:8]}@bench.test"
        with self.services.db.transaction() as session:
            return service.create_organization(session, "Bench", email), email

    def close(self) -> None:
        self.services.close()
        self.tmp.cleanup()


class Seeder:
    """Adds workflows (each bound to one registered application) and runs of one workflow, in bulk."""

    def __init__(self, platform: Platform, organization):  # noqa: ANN001
        from canvas.models import RegisteredApplication, WorkflowTemplate

        self.engine = platform.services.db.engine
        self.account_id, self.organization_id = organization.account_id, organization.organization_id
        self.start = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.workflows = self.runs = 0
        self.added = {"accounts": 1, "registered": 1, "templates": 0, "audit": 0}  # the admin and its application
        # /v2/credentials shows the keys of what it lists: every registered application holds the same ones
        self.ciphertext = platform.services.secret_box.encrypt_json({"username": "bench", "password": "x"})
        with platform.services.db.transaction() as session:
            template = session.get(WorkflowTemplate, TEMPLATE_ID)
            self.definition, self.template_version = template.definition, template.version
            self.chain = self.definition["chain"]
            registered = RegisteredApplication(account_id=self.account_id, application_id=uuid.uuid4(),
                                               short_name="quinyx", tag_text="bench",
                                               credentials_ciphertext=self.ciphertext)
            session.add(registered)
            session.flush()
            self.registered_id = registered.id
        self.first_workflow = self._add_workflows(1)[0]

    def grow_to(self, size: int) -> float:
        """Seconds taken to add the missing workflows and runs."""
        started = time.perf_counter()
        self._add_workflows(size - self.workflows)
        self._add_runs(size - self.runs)
        from canvas.models import Account, AuditEntry, RegisteredApplication, WorkflowTemplate

        self._add_rows(Account, "accounts", size, self._account)
        self._add_rows(RegisteredApplication, "registered", size, self._registered)
        self._add_rows(WorkflowTemplate, "templates", size, self._template)
        self._add_rows(AuditEntry, "audit", size, self._audit_entry)
        return time.perf_counter() - started

    def _add_rows(self, model, kind: str, size: int, make_row) -> None:  # noqa: ANN001
        """Rows of `model` made by make_row(n) until there are `size` of this kind."""
        from sqlalchemy import insert

        while self.added[kind] < size:
            rows = [make_row(n) for n in range(self.added[kind], min(size, self.added[kind] + INSERT_BATCH))]
            with self.engine.begin() as connection:
                connection.execute(insert(model), rows)
            self.added[kind] += len(rows)

    def _account(self, n: int) -> dict:
        return {"id": uuid.uuid4(), "organization_id": self.organization_id, "email": f"user{n}@bench.test",
                "first_name": "User", "last_name": str(n), "role": "User", "global_notifications": False,
                "active": True, "date_created": self.start + timedelta(milliseconds=n // 3)}

    def _registered(self, n: int) -> dict:
        stamp = self.start + timedelta(milliseconds=n // 3)
        return {"id": uuid.uuid4(), "account_id": self.account_id, "application_id": uuid.uuid4(),
                "short_name": "quinyx", "tag_text": f"bench {n}", "credentials_ciphertext": self.ciphertext,
                "is_authenticated": False, "faulted": False, "restricted_to_grants": False, "date_created": stamp,
                "date_modified": stamp}

    def _template(self, n: int) -> dict:
        stamp = self.start + timedelta(milliseconds=n)
        return {"id": uuid.uuid4(), "organization_id": self.organization_id, "name": f"Bench template {n // 3}",
                "description": "", "state": "Draft", "version": None, "definition": self.definition,
                "draft_is_committed": False, "source": "api", "content_hash": "", "date_created": stamp,
                "date_modified": stamp}

    def _audit_entry(self, n: int) -> dict:
        return {"id": uuid.uuid4(), "organization_id": self.organization_id, "actor_id": self.account_id,
                "actor_kind": "api_key", "occurred_at": self.start + timedelta(milliseconds=n // 3),
                "action": "workflow.update", "object_type": "workflow", "object_id": str(self.first_workflow),
                "changes": {"name": {"before": f"Workflow {n}", "after": f"Workflow {n + 1}"}},
                "request_id": uuid.uuid4().hex}

    def _add_workflows(self, count: int) -> list[uuid.UUID]:
        from sqlalchemy import insert

        from canvas.models import Workflow, WorkflowApplication

        ids = []
        for batch_start in range(0, count, INSERT_BATCH):
            rows, bindings = [], []
            for _ in range(min(INSERT_BATCH, count - batch_start)):
                stamp = self.start + timedelta(milliseconds=self.workflows // 3)  # every third shares a timestamp
                workflow_id = uuid.uuid4()
                rows.append({"id": workflow_id, "account_id": self.account_id,
                             "organization_id": self.organization_id, "template_id": TEMPLATE_ID,
                             "template_version": self.template_version, "name": f"Workflow {self.workflows}", "description": "",
                             "status": "Ready", "current_block": 0, "chain": self.chain, "chain_overrides": [],
                             "failure_policy": "failFast", "is_customized": False, "is_scheduled": False,
                             "date_created": stamp, "date_modified": stamp})
                bindings.append({"workflow_id": workflow_id, "short_name": "quinyx", "position": 0,
                                 "registered_application_id": self.registered_id})
                ids.append(workflow_id)
                self.workflows += 1
            with self.engine.begin() as connection:
                connection.execute(insert(Workflow), rows)
                connection.execute(insert(WorkflowApplication), bindings)
        return ids

    def _add_runs(self, count: int) -> None:
        from sqlalchemy import insert

        from canvas.models import BlockRun, LogLine, WorkflowRun

        for batch_start in range(0, count, INSERT_BATCH):
            rows, blocks, lines = [], [], []
            for _ in range(min(INSERT_BATCH, count - batch_start)):
                stamp = self.start + timedelta(seconds=self.runs)
                failed = self.runs % 100 == 99  # one in a hundred failed: a line of /v2/logs each
                run_id, block_id = uuid.uuid4(), uuid.uuid4()
                rows.append({"id": run_id, "workflow_id": self.first_workflow, "account_id": self.account_id,
                             "status": "Failed" if failed else "Succeeded", "error": "boom" if failed else None,
                             "trigger": "manual", "run_from_block": 1, "run_till_block": 2,
                             "dry_run": False, "cancel_requested": False, "lease_token": 0, "dispatch_count": 1,
                             "date_queued": stamp, "date_started": stamp, "date_finished": stamp})
                message = f"read {self.runs} records"  # a line each: as many lines as runs
                blocks.append({"id": block_id, "run_id": run_id, "number": 1, "unique_block_id": "b1",
                               "block_name": "API - Get Employees", "block_key": "http.get", "status": "Succeeded",
                               "attempts": 1, "date_started": stamp, "date_finished": stamp,
                               "log": [{"time": stamp.isoformat(), "level": "INFO", "message": message}]})
                lines.append({"block_run_id": block_id, "run_id": run_id, "workflow_id": self.first_workflow,
                              "account_id": self.account_id, "organization_id": self.organization_id,
                              "position": 0, "logged_at": stamp, "stated_time": stamp.isoformat(), "level": 30,
                              "message": message})
                self.runs += 1
            with self.engine.begin() as connection:
                connection.execute(insert(WorkflowRun), rows)
                connection.execute(insert(BlockRun), blocks)
                connection.execute(insert(LogLine), lines)


# (name, path up to its paging parameters); {workflow} is the first workflow, whose runs these are
PAGED_LISTS = [
    ("Workflows", "/api/Workflows?"),
    ("Accounts", "/api/Accounts?"),
    ("RegApplications", "/api/RegApplications?"),
    ("WorkflowTemplates", "/api/WorkflowTemplates?"),
    ("WorkflowRuns", "/api/WorkflowRuns?workflowId={workflow}&"),
    ("AuditLog", "/api/AuditLog?"),
    ("v2 flows", "/v2/flows?"),
    ("v2 executions", "/v2/executions?"),
    ("v2 credentials", "/v2/credentials?"),
    ("v2 audit-events", "/v2/audit-events?"),
]


def total_of(client, path: str, headers: dict) -> int:  # noqa: ANN001
    """How many a list has in all: its X-Total-Count (Canvas), meta.total (JSON:API) or total (/v2/logs)."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    if "X-Total-Count" in response.headers:
        return int(response.headers["X-Total-Count"])
    body = response.get_json()
    return body["meta"]["total"] if "meta" in body else body["total"]


def timed(client, path: str, headers: dict, rounds: int, expect_items: int | None = None) -> tuple[float, float]:  # noqa: ANN001
    """(min, median) milliseconds of `rounds` requests, after one warm-up request."""
    response = client.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    if expect_items is not None:
        body = response.get_json()
        items = body if isinstance(body, list) else body.get("data", body.get("hits"))
        assert len(items) == expect_items, (path, len(items), expect_items)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    return min(times), statistics.median(times)


def analyse(platform: Platform) -> None:
    """After a bulk load, what autovacuum gives soon after (PostgreSQL: VACUUM ANALYZE, so that a count reads only
    the index; SQLite: ANALYZE)."""
    engine = platform.services.db.engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")


def measure(platform: Platform, sizes: list[int], rounds: int) -> list[tuple[str, int, float, float]]:
    organization, email = platform.create_organization()
    canvas_headers = {"Consumer": organization.consumer, "SecretKey": organization.secret_key}
    basic = base64.b64encode(f"{email}:{organization.secret_key}".encode()).decode()
    v2_headers = {"Authorization": f"Basic {basic}"}
    seeder = Seeder(platform, organization)
    client = platform.app.test_client()
    results = []
    for size in sizes:
        seconds = seeder.grow_to(size)
        analyse(platform)
        print(f"{size:>7} workflows and runs: inserted in {seconds:.1f} s", flush=True)
        cases = [("Authenticate (baseline)", "/api/Authenticate", None)]
        if size <= 10_000:
            cases.append(("Workflows, all", "/api/Workflows", size))
        for name, path in PAGED_LISTS:
            path = path.format(workflow=seeder.first_workflow)
            headers = v2_headers if path.startswith("/v2/") else canvas_headers
            total = total_of(client, path + "page=1&pageSize=50" if path.startswith("/api/")
                             else path + "page[number]=1&page[size]=50", headers)
            last = max(1, -(-total // 50))
            for which, number in (("first", 1), ("middle", (last + 1) // 2), ("last", last)):
                paging = f"page={number}&pageSize=50" if path.startswith("/api/") else \
                    f"page[number]={number}&page[size]=50"
                cases.append((f"{name}, {which} page", path + paging, min(50, total - (number - 1) * 50)))
        lines = total_of(client, "/v2/logs?limit=1", v2_headers)
        cases += [("v2 logs, first 50 lines", "/v2/logs?limit=50", min(50, lines)),
                  ("v2 logs, middle 50 lines", f"/v2/logs?offset={lines // 2}&limit=50", min(50, lines - lines // 2)),
                  ("v2 logs, last 50 lines", f"/v2/logs?offset={max(0, lines - 50)}&limit=50", min(50, lines))]
        for label, path, items in cases:
            best, middle = timed(client, path, v2_headers if path.startswith("/v2/") else canvas_headers, rounds,
                                 items)
            results.append((label, size, best, middle))
            print(f"  {label:<32} min {best:8.1f} ms   median {middle:8.1f} ms", flush=True)
    return results


def bench_main(measure, default_sizes: str, header: str) -> None:  # noqa: ANN001 - measure(platform, sizes, rounds)
    """Parse --sizes/--rounds/--postgres, run `measure` on a fresh database, print the table (`header` names its
    first two columns) with each median as a ratio to Authenticate's in the same run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=default_sizes)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="a scratch database on CANVAS_BENCH_PG")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with scratch_postgres() if args.postgres else _nothing() as url:
        platform = Platform(url)
        try:
            print(f"{os.cpu_count()} cores, python {sys.version.split()[0]}, {platform.database}, Flask test client "
                  f"in-process, {args.rounds} rounds after a warm-up")
            results = measure(platform, sizes, args.rounds)
        finally:
            platform.close()
    auth = {size: middle for label, size, _best, middle in results if label.startswith("Authenticate")}
    print(f"\n| {header} | min ms | median ms | median / Authenticate |\n|---|---:|---:|---:|---:|")
    for label, size, best, middle in results:
        print(f"| {label} | {size:,} | {best:.1f} | {middle:.1f} | {middle / auth[size]:.1f} |")


def main() -> None:
    bench_main(measure, "100,10000,100000", "list | rows")

@contextmanager
def _nothing():
    yield os.environ.get("CANVAS_DATABASE_URL")


if __name__ == "__main__":
    main()

"""Browser tests of the web console: a real headless Chromium (Debian's package, driven by Playwright) against a real
`canvas up` (the API under its WSGI server, a worker, the scheduler and their Redis, as separate processes) on a free
port, on SQLite in a temporary data dir, or on a fresh PostgreSQL database when CANVAS_TEST_DATABASE_URL names a
PostgreSQL server; and a real FTP server on loopback.

One browser and one server set serve the whole module: the tests are the steps of one user's journey, in order.
Without a Chromium on the machine every test here is skipped with a message that says how to install one: Playwright
never downloads a browser of its own here (there is no network but the package registries).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.process_tools import canvas_env, free_port, run_canvas, start_canvas, stop_gracefully, wait_for_http
from tests.servers.ftp import FtpServer

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
INSTALL_HINT = ("no Chromium on this machine: the browser tests need Debian's chromium "
                "(apt-get install chromium chromium-driver), found at /usr/bin/chromium or on PATH")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "browser-Journey-2048"
ADMIN_EMAIL = "admin@journey.test"
EXPECT_TIMEOUT, ACTION_TIMEOUT = 10_000, 20_000  # ms
START_TIMEOUT = 90  # seconds: `canvas up` migrates the database and starts four processes on a shared 2-core box


def chromium_executable() -> str | None:
    found = [path for path in CHROMIUM_PATHS if os.access(path, os.X_OK)]
    return found[0] if found else shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The machine's Chromium; the only reason a browser test may skip is that there is none."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip(INSTALL_HINT)
    return executable


# --- the database: SQLite in the data dir, or a fresh PostgreSQL database of the module's own ---------------------

@pytest.fixture(scope="module")
def database_setting() -> Iterator[dict]:
    """CANVAS_DATABASE_URL for the processes: nothing (SQLite in the data dir) unless the suite runs on PostgreSQL,
    then a database of this module's own on that server (the suite's own is emptied and rebuilt by other tests)."""
    suite_url = os.environ.get("CANVAS_TEST_DATABASE_URL", "")
    if not suite_url.startswith("postgresql"):
        yield {}
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"canvas_browser_{uuid.uuid4().hex[:10]}"
    server = make_url(suite_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {"CANVAS_DATABASE_URL": server.set(database=name).render_as_string(hide_password=False)}
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the servers ----------------------------------------------------------------------------------------------------

@dataclass
class Canvas:
    """A running `canvas up`: where it listens, its environment (for `canvas` commands beside it), its log."""

    base_url: str
    env: dict
    log_path: Path
    admin: dict = field(default_factory=dict)  # what `canvas org create --json` printed

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    @contextlib.contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The worker process stopped (SIGSTOP) meanwhile, so a run started now stays Queued until the block ends:
        the journey sees a page of an active run turn Succeeded by itself, not one that had ended already."""
        worker_pid = json.loads((self.log_path.parent / "canvas-up.pid").read_text())["worker"][0]
        os.kill(worker_pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(worker_pid, signal.SIGCONT)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """The Canvas API as the organization's Admin (its API keys keep working beside the console)."""
        headers = {"Consumer": self.admin["consumer"], "SecretKey": self.admin["secretKey"]}
        return requests.request(method, self.url(path), headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def canvas(chromium, database_setting, tmp_path_factory) -> Iterator[Canvas]:
    """`canvas up` on a free port, with every part started (the health check counts the worker and the scheduler),
    and an organization made by `canvas org create`, whose printed consoleLink the journey opens."""
    data_dir = tmp_path_factory.mktemp("browser-canvas")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = canvas_env(data_dir, CANVAS_API_WORKERS="1", CANVAS_API_THREADS="4", CANVAS_PUBLIC_URL=base_url,
                     CANVAS_ALLOW_PRIVATE_NETWORKS="true",  # the FTP server is on loopback
                     CANVAS_SCHEDULER_RECONCILE_SECONDS="1",  # a schedule set in the console is picked up at once
                     CANVAS_BLOCK_RETRY_BASE_SECONDS="0.1", **database_setting)
    log_path = data_dir / "canvas-up.log"
    process = start_canvas("up", "--port", str(port), env=env, log_path=log_path)
    server = Canvas(base_url, env, log_path)
    try:
        wait_for_http(server.url("/healthz"), process, timeout=START_TIMEOUT)
        _wait_until_worker_and_scheduler_run(server, process)
        created = run_canvas("org", "create", "--name", "Journey", "--admin-email", ADMIN_EMAIL, "--json", env=env)
        assert created.returncode == 0, created.stderr
        server.admin = json.loads(created.stdout)
        yield server
    finally:
        _stop(process)


def _wait_until_worker_and_scheduler_run(server: Canvas, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"canvas up exited with {process.returncode}:\n{server.log_tail()}"
        health = requests.get(server.url("/healthz"), timeout=10).json()
        if health.get("workers", 0) >= 1 and health.get("schedulers", 0) >= 1:
            return
        time.sleep(0.5)
    raise AssertionError(f"no worker and scheduler within {START_TIMEOUT} s:\n{server.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM: `canvas up` stops its children and its Redis, then exits."""
    stop_gracefully(process, 60)


@pytest.fixture(scope="module")
def ftp(tmp_path_factory) -> Iterator[FtpServer]:
    """The FTP server the journey registers an application against (through the console's generated form)."""
    with FtpServer(tmp_path_factory.mktemp("browser-ftp")) as server:
        yield server


# --- the browser ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox
        launched = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser, canvas):
    """One tab for the whole journey: it keeps the console's session cookie from step to step."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT)  # the whole suite may share the 2 cores with these processes
    context = browser.new_context(viewport=VIEWPORT, base_url=canvas.base_url, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(ACTION_TIMEOUT)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page, name: str) -> None:
    """docs/console/<name>.png, overwritten each run: the README links these pictures of the main pages."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 - pytest's hook signature
    """A failed step's report ends with the last lines of `canvas up`'s log (a page's 500 names a reference there)."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("canvas")
    if report.failed and isinstance(server, Canvas):
        report.sections.append(("canvas up log, last lines", server.log_tail()))

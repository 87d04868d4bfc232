"""The `canvas` command line."""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from typing import ClassVar, NoReturn

import click

from canvas.settings import SettingsError, load_settings, unknown_variable_warnings

log = logging.getLogger("canvas.cli")


def _settings() -> dict:
    from config.logging import configure_logging

    if not os.environ.get("CANVAS_STARTED_BY"):  # a child of `canvas up`: its supervisor has warned already
        for warning in unknown_variable_warnings():
            click.echo(f"Warning: {warning}", err=True)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:  # every problem at once, one line each
            click.echo(f"Error: {problem}", err=True)
        sys.exit(2)
    configure_logging(settings["LOG_LEVEL"], settings.get("LOG_FORMAT") or "text")
    _check_data_dir(settings["DATA_DIR"])
    if not os.environ.get("CANVAS_PUBLIC_URL"):
        settings.update(_running_public_url(settings))
    return settings


def _check_data_dir(data_dir: str) -> None:
    """Every command keeps something in the data dir (its lock files, the secret key, the embedded database):
    one that is a file or cannot be written is said once, naming the setting (it was a traceback)."""
    from pathlib import Path

    path = Path(data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _refuse_to_start(f"CANVAS_DATA_DIR: cannot create {path} ({error.strerror or error})")
    if not os.access(path, os.W_OK | os.X_OK):
        _refuse_to_start(f"CANVAS_DATA_DIR: {path} cannot be written by this process (user {os.getuid()})")


def _running_public_url(settings: dict) -> dict:
    """Without CANVAS_PUBLIC_URL, a command beside a live `canvas up` on the same data dir links to where its API
    serves (the console link `org create` prints, a second worker's e-mails), not to the default port."""
    from pathlib import Path

    from canvas.supervisor import INSTANCE_FILE_NAME, InstanceFile

    url = InstanceFile(Path(settings["DATA_DIR"]) / INSTANCE_FILE_NAME).running_public_url()
    return {} if url is None else {"PUBLIC_URL": url}


def _refuse_to_start(reason: object) -> NoReturn:
    """A setting that cannot work ends the process before it starts: exit status 2 and one line saying what to
    fix, whatever the message holds, instead of a traceback or failing every run later."""
    click.echo(f"Error: {' '.join(str(reason).split())}", err=True)
    sys.exit(2)


def _check_before_start(settings: dict) -> None:
    """What every process needs of its settings, checked before it starts: the blob store (CANVAS_BLOB_URL) is
    usable (a missing bucket, refused credentials, an unreachable endpoint), and CANVAS_SECRET_KEYS holds keys (a
    worker with a malformed one failed each run that reads credentials)."""
    from pathlib import Path

    from canvas.extensions import blob_fsync
    from canvas.secrets.box import SETTING_NAME, parse_key_list
    from canvas.storage.blob import BlobStoreError
    from canvas.storage.factory import blob_store_from_settings

    try:
        blob_store_from_settings(settings, Path(settings["DATA_DIR"]), fsync=blob_fsync(settings)).check()
        if (settings.get("SECRET_KEYS") or "").strip():
            parse_key_list(settings["SECRET_KEYS"], source=SETTING_NAME)  # its errors never quote a key
    except (BlobStoreError, SettingsError, ValueError) as exc:
        _refuse_to_start(exc)
    refused = _redis_refusal(settings.get("REDIS_URL"))
    if refused is not None:
        _refuse_to_start(refused)


def _redis_refusal(url: str | None) -> str | None:
    """A configured Redis that answers but refuses the credentials of CANVAS_REDIS_URL (a wrong password, none where
    one is required): waiting cannot mend that, as it mends an outage, so the process does not start. An
    unreachable Redis is waited for as ever; the embedded one (no URL) is this machine's own."""
    if not url:
        return None
    from urllib.parse import urlsplit

    import redis

    from canvas.queueing.connections import redis_client
    from canvas.settings import without_password

    client = redis_client(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.AuthenticationError as error:  # WRONGPASS, NOAUTH
        shown = without_password(url)
        if urlsplit(url).password is None:
            return f"CANVAS_REDIS_URL: Redis at {shown} requires a password, and the URL gives none"
        return f"CANVAS_REDIS_URL: Redis at {shown} refused the credentials: {_first_line(error, None)}"
    except redis.ResponseError as error:  # answered, refusing the connection's own setup: SELECT of no database
        if "DB index is out of range" not in str(error):
            return None
        return (f"CANVAS_REDIS_URL: Redis at {without_password(url)} has no database {urlsplit(url).path.strip('/')} "
                f"(its 'databases' setting is lower)")
    except redis.RedisError:
        return None
    finally:
        client.close()
    return None


def _in_a_child(step: Callable[..., object], *args: object) -> None:
    """Run a start-up step in a forked child and wait for it: what the step imports (migrations, the catalog loader,
    a blob store's client library: tens of MB) then never weighs on the long-lived process that runs it, nor on the
    processes that process forks (gunicorn's workers). A step that fails ends this process too, with its status;
    it has said why."""
    if not hasattr(os, "fork"):
        step(*args)
        return
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            step(*args)
            status = 0
        except click.ClickException as exc:
            exc.show()
            status = exc.exit_code
        except KeyboardInterrupt:
            status = 130
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child must end here whatever happened, its traceback shown
            log.exception("starting failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    try:
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except KeyboardInterrupt:  # Ctrl-C reached the child too
        os.waitpid(pid, 0)
        sys.exit(130)
    if status != 0:
        sys.exit(status if status > 0 else 1)


def _prepare(settings: dict, check_keys: bool = False) -> None:
    """Before `canvas up` or `canvas api` starts anything: the blob store, the data dir, the database migrated and
    the catalog synced, once, rather than each child failing and being restarted for a while. With `check_keys` (an
    API on its own, maybe beside others on other machines), whether its keys decrypt the credentials stored last."""
    _check_before_start(settings)
    _prepare_data_dir(settings)
    database = _synced_database(settings)
    try:
        if check_keys:
            from pathlib import Path

            from canvas.execution.credentials import API_KEYS_DIFFER, say_if_keys_differ
            from canvas.secrets import SecretBox

            keys = SecretBox.from_setting(settings.get("SECRET_KEYS"), Path(settings["DATA_DIR"]))
            say_if_keys_differ(database, keys, "API", API_KEYS_DIFFER)
    finally:
        database.dispose()


def _database(settings: dict):  # noqa: ANN202
    from canvas.db import Database

    return Database(settings["DATABASE_URL"], settings["LOST_RUN_GRACE_SECONDS"])


def _migrated_database(settings: dict):  # noqa: ANN202
    from canvas import migrate
    from canvas.outages import DATABASE, sqlstate, unreachable_service

    database = _database(settings)
    try:
        migrate.upgrade(database.engine)
    except Exception as error:
        url, reason = database.engine.url, _first_line(getattr(error, "orig", error), database.engine.url.password)
        if sqlstate(error) == INSUFFICIENT_PRIVILEGE:
            database.dispose()
            _refuse_to_start(f"CANVAS_DATABASE_URL: user {url.username} may not create Canvas's tables in the "
                             f"database at {url!r}: {reason}. Make it the database's owner (ALTER DATABASE "
                             f"{url.database} OWNER TO {url.username}), or grant it CREATE on the schema")
        if unreachable_service(error) != DATABASE:
            raise
        database.dispose()
        _refuse_to_start(f"CANVAS_DATABASE_URL: the database at {url!r} cannot be reached: {reason}")
    return database


INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE: since PostgreSQL 15 only a schema's owner may create in it


def _first_line(error: BaseException, password: str | None) -> str:
    """The driver's reason ("Connection refused", "password authentication failed for user …", "database … does
    not exist"), its first line, never the password."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line.replace(password, "***") if password else line


def _synced_database(settings: dict):  # noqa: ANN202
    """Migrated, with the template catalog loaded: what the API and workers expect to find."""
    from canvas.catalog.loader import CatalogCheckError, sync_catalog_files

    database = _migrated_database(settings)
    try:
        log.info(sync_catalog_files(database, settings))
    except CatalogCheckError as exc:
        raise click.ClickException(f"the catalog cannot be loaded: {exc}") from None
    return database


class CommandsImportedWhenUsed(click.Group):
    """Commands that live with their capability package (``name: "module:attribute"``) are imported only when they
    run or are listed in help: importing `canvas.schedules.cli` loads every model and SQLAlchemy (~20 MB), which
    `canvas up`'s supervisor and gunicorn's master would otherwise hold for good."""

    elsewhere: ClassVar[dict[str, str]] = {"cron": "canvas.schedules.cli:cron"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.elsewhere])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.elsewhere:
            return super().get_command(ctx, name)
        import importlib

        module, attribute = self.elsewhere[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=CommandsImportedWhenUsed)
@click.version_option(package_name="canvas-orchestrator", prog_name="canvas", message="%(prog)s %(version)s")
def cli() -> None:
    """Canvas: a self-hosted workflow-template orchestrator."""


# --- processes -------------------------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default=None, help="Address the API listens on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port the API listens on (default 8080).")
def up(host: str | None, port: int | None) -> None:
    """Run everything on this machine: the API, one worker and the scheduler."""
    from canvas.defaults import DEFAULT_HOST, DEFAULT_PORT
    from canvas.queueing.embedded import ensure_redis
    from canvas.observability import metrics_setup
    from canvas.supervisor import Child, Supervisor, canvas_command

    settings = _settings()
    host, port = host or DEFAULT_HOST, port or DEFAULT_PORT
    instance = _claimed_instance(settings)  # before the port check: a dead `canvas up`'s API may still hold it
    try:
        _check_port_free(host, port)
        _in_a_child(_prepare, settings)  # the supervisor stays small: it only starts and watches processes
        metrics_setup.use_shared_dir(settings)  # the API's /metrics shows the worker's and the scheduler's too
        _environment_for_children(host, port)
        instance.record_public_url(os.environ["CANVAS_PUBLIC_URL"])
        embedded = ensure_redis(settings)
        kept = [] if embedded is None else [_embedded_redis_child(embedded)]
        if embedded is not None:
            instance.record("redis", embedded.process.pid)
        try:
            bind = ["--host", host, "--port", str(port)]
            children = [Child("api", canvas_command("api", *bind)), Child("worker", canvas_command("worker")),
                        Child("scheduler", canvas_command("scheduler"))]
            log.info("Canvas is starting on http://%s:%s (data in %s)", host, port, settings["DATA_DIR"])
            supervisor = Supervisor(children, settings["SHUTDOWN_GRACE_SECONDS"], kept=kept,
                                    on_start=lambda child: instance.record(child.name, child.process.pid))
            exit_code = supervisor.run()
        finally:
            if embedded is not None:
                embedded.stop()
    finally:
        instance.release()
    sys.exit(exit_code)


def _embedded_redis_child(embedded):  # noqa: ANN001, ANN202 - EmbeddedRedis -> canvas.supervisor.KeptChild
    """The embedded Redis, restarted by the supervisor when it dies (a crash, the OOM killer): every process waited
    for it forever. Its append-only file keeps the queue across the restart."""
    import time

    from canvas.supervisor import KeptChild

    def launch():  # noqa: ANN202 - subprocess.Popen
        try:
            embedded.start()
        except RuntimeError as error:  # it ended, or did not answer in time: the supervisor tries again, later
            log.error("%s", error)
        return embedded.process

    child = KeptChild("redis", [], launch=launch)
    child.process, child.started_at = embedded.process, time.monotonic()
    return child


def _claimed_instance(settings: dict):  # noqa: ANN202 - canvas.supervisor.InstanceFile
    """One `canvas up` per data dir: refuse to start beside a live one (exit 2), stop what a dead one left."""
    from pathlib import Path

    from canvas.supervisor import INSTANCE_FILE_NAME, InstanceFile, InstanceRunningError

    instance = InstanceFile(Path(settings["DATA_DIR"]) / INSTANCE_FILE_NAME)
    try:
        stopped = instance.claim()
    except InstanceRunningError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    for line in stopped:
        log.warning(line)
    return instance


def _check_port_free(host: str, port: int) -> None:
    """Before anything starts (a worker, a scheduler that would fire schedules): the API's port must be free, or
    this ends with exit status 2 and one line saying what to do."""
    import socket

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        click.echo(f"Error: cannot listen on {host!r}: {exc.strerror}; start with --host <an address of this "
                   f"machine>", err=True)
        sys.exit(2)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            click.echo(f"Error: port {port} on {host} {why}; start with --port <another port>", err=True)
            sys.exit(2)


def _environment_for_children(host: str, port: int) -> None:
    """What every child of `canvas up` inherits: the API's real address as CANVAS_PUBLIC_URL when none is set (links
    in e-mails sent from workers then lead to it), and a mark that settings were checked and warned about."""
    public_url = _listening_public_url(host, port)
    if public_url is not None:
        os.environ["CANVAS_PUBLIC_URL"] = public_url["PUBLIC_URL"]
    os.environ["CANVAS_STARTED_BY"] = str(os.getpid())


def _prepare_data_dir(settings: dict) -> None:
    """Check the catalog, create the data dir and the secret key once, before several processes could race."""
    from pathlib import Path

    from canvas.catalog.loader import CatalogCheckError, check_catalog
    from canvas.secrets import SecretBox

    try:
        log.info(check_catalog(settings))
    except CatalogCheckError as exc:
        raise click.ClickException(f"the catalog cannot be loaded: {exc}") from None

    Path(settings["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    SecretBox.from_setting(settings.get("SECRET_KEYS"), Path(settings["DATA_DIR"]))


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port to listen on (default 8080).")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="gunicorn worker processes (default: CANVAS_API_WORKERS, else one per core, or 2 x cores + 1 "
                   "with --threads 1, as far as half the available memory holds them at ~100 MB each, at least 2).")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Requests each worker serves at once, in threads (default: CANVAS_API_THREADS, 4); 1: gunicorn's "
                   "sync workers.")
def api(host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Run the HTTP API on gunicorn: a few worker processes, each serving several requests at once in threads."""
    from canvas.db import name_sessions
    from canvas.defaults import DEFAULT_HOST, DEFAULT_PORT
    from canvas.queueing.embedded import ensure_redis
    from canvas.wsgi_server import CanvasServer

    settings = _settings()
    host, port = host or DEFAULT_HOST, port or DEFAULT_PORT
    _check_port_free(host, port)
    name_sessions(f"canvas api {host}:{port}")
    if not os.environ.get("CANVAS_STARTED_BY"):  # `canvas up` has prepared everything before starting this
        _in_a_child(_prepare, settings, True)  # gunicorn's master stays small, and so do the workers it forks
    _metrics(settings, "api")  # before the app is built: its gunicorn workers write where /metrics reads
    embedded = ensure_redis(settings)
    try:
        threads = threads or settings["API_THREADS"]
        CanvasServer(f"{host}:{port}", workers or _api_workers(settings, threads), threads,
                     _listening_public_url(host, port)).run()
    finally:
        if embedded is not None:
            embedded.stop()


def _metrics(settings: dict, role: str, port: int | None = None) -> None:
    """Where this process's metrics are kept (canvas.observability.metrics_setup), decided before anything loads
    prometheus_client; with a port, they are served there from now on."""
    from canvas.observability import metrics_setup

    metrics_setup.forked_children_share_files = role == "worker"  # RQ's fork worker: one job child at a time
    if role == "api" or port is not None or metrics_setup.multiprocess_dir():
        metrics_setup.use_own_dir(settings, role)
    if port is None or not metrics_setup.metrics_enabled(settings):
        return
    from canvas.observability.metrics_web import serve_on_port

    try:
        serve_on_port(port, settings["METRICS_HOST"])
    except OSError as exc:
        raise click.ClickException(f"--metrics-port {port} on CANVAS_METRICS_HOST {settings['METRICS_HOST']}: "
                                   f"{exc.strerror or exc}") from None


def _api_workers(settings: dict, threads: int) -> int:
    """CANVAS_API_WORKERS when it is set (not 0), else a count sized for this machine's cores and memory, and for
    workers of ``threads`` threads."""
    from config.gunicorn import machine_default_workers

    return settings["API_WORKERS"] or machine_default_workers(threads)


def _listening_public_url(host: str, port: int) -> dict | None:
    """Without CANVAS_PUBLIC_URL, links the service gives (activation e-mails, webhook URLs) lead to where this API
    listens, not to the default port."""
    import os
    import socket

    if os.environ.get("CANVAS_PUBLIC_URL"):
        return None
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - naming, not binding
    shown = f"[{shown}]" if ":" in shown else shown
    return {"PUBLIC_URL": f"http://{shown}:{port}"}


@cli.command()
@click.option("--worker-class", type=click.Choice(["simple", "fork"]), default=None,
              help="simple: jobs run in the worker process (fast); fork: each job in a child process (isolated), a "
                   "child serving CANVAS_WORKER_RUNS_PER_CHILD runs (default 1).")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None,
              help="Exit after this many runs (a supervisor restarts it): bounds what a leaky block can hold.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option("--with-rq-scheduler", is_flag=True,
              help="Also fork RQ's scheduler, which queues delayed jobs (callback retries), when no other process "
                   "holds its lock. `canvas scheduler` runs it already: use this only without one (~90 MB).")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this process's Prometheus metrics on this port (/metrics, on CANVAS_METRICS_HOST).")
def worker(worker_class: str | None, burst: bool, max_jobs: int | None, name: str | None,
           with_rq_scheduler: bool, metrics_port: int | None) -> None:
    """Run an RQ worker that executes workflow runs.

    Delayed jobs (callback retries) are queued by RQ's scheduler, which `canvas scheduler` runs: a deployment needs
    one `canvas scheduler`, or one worker started with --with-rq-scheduler."""
    from canvas.queueing.embedded import ensure_redis

    settings = _settings()
    _in_a_child(_check_before_start, settings)  # a store's client library loads with the first run that needs it
    _metrics(settings, "worker", metrics_port)
    from canvas.queueing.worker import WorkerNameTakenError
    from workers.worker import run_worker  # after _metrics: it loads the metrics

    embedded = ensure_redis(settings)
    try:
        sys.exit(run_worker(worker_class=worker_class, burst=burst, name=name, max_jobs=max_jobs,
                            with_rq_scheduler=with_rq_scheduler))
    except WorkerNameTakenError as taken:
        _refuse_to_start(taken)
    finally:
        if embedded is not None:
            embedded.stop()


@cli.command()
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve this process's Prometheus metrics on this port (/metrics, on CANVAS_METRICS_HOST).")
def scheduler(metrics_port: int | None) -> None:
    """Run the scheduler that fires workflow schedules.

    It also runs RQ's scheduler, which queues delayed jobs (callback retries); with several schedulers one does at a
    time, the others stand by."""
    from canvas.queueing.embedded import ensure_redis

    settings = _settings()
    _in_a_child(_check_before_start, settings)
    _metrics(settings, "scheduler", metrics_port)
    from workers.scheduler import run_scheduler  # after _metrics: it loads the metrics

    embedded = ensure_redis(settings)
    try:
        sys.exit(run_scheduler())
    finally:
        if embedded is not None:
            embedded.stop()


# --- database ----------------------------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from canvas.schema_version import database_revision

    database = _migrated_database(_settings())
    with database.engine.connect() as connection:
        click.echo(f"database at revision {database_revision(connection)}")
    database.dispose()


# --- organizations and keys ----------------------------------------------------------------------------------

@cli.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.option("--name", required=True, help="Organization name.")
@click.option("--admin-email", required=True, help="E-mail of its Admin account.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def org_create(name: str, admin_email: str, as_json: bool) -> None:
    """Create an organization with an Admin account and API keys (the SecretKey is shown only now), and a one-time
    link where the Admin sets its web console password."""
    from canvas.accounts import service
    from canvas.audit.actor import command_line
    from canvas.console.links import console_url

    settings = _settings()
    database = _migrated_database(settings)
    with _domain_errors(), command_line(), database.transaction() as session:
        created = service.create_organization(session, name, admin_email)
        token = service.issue_activation_token(session, settings, created.account_id)
    result = {"organizationId": str(created.organization_id), "accountId": str(created.account_id),
              "consumer": created.consumer, "secretKey": created.secret_key,
              "consoleLink": console_url(settings, token)}
    _print(result, as_json, "Keep the SecretKey safe: it is stored only as a hash and cannot be shown again. "
                            "The console link sets the Admin's console password; it works once.")


@org.command("ip-allowlist")
@click.argument("organization_id", type=click.UUID)
@click.argument("cidrs", nargs=-1)
def org_ip_allowlist(organization_id: uuid.UUID, cidrs: tuple[str, ...]) -> None:
    """Set the CIDRs allowed to call the API for an organization (none: any address)."""
    from canvas.accounts import service
    from canvas.audit.actor import command_line

    database = _migrated_database(_settings())
    with _domain_errors(), command_line(), database.transaction() as session:
        allowed = service.set_ip_allowlist(session, organization_id, list(cidrs))
    click.echo("allowed: " + (", ".join(allowed) if allowed else "any address"))


@cli.group()
def keys() -> None:
    """API keys."""


@keys.command("rotate")
@click.option("--account", "account_id", required=True, type=click.UUID, help="Account id.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def keys_rotate(account_id: uuid.UUID, as_json: bool) -> None:
    """Issue new keys for an account; the old SecretKey stops working at once."""
    from canvas.accounts import service
    from canvas.audit.actor import command_line

    database = _migrated_database(_settings())
    with _domain_errors(), command_line(), database.transaction() as session:
        issued = service.rotate_keys(session, account_id)
    _print({"accountId": str(issued.account_id), "consumer": issued.consumer, "secretKey": issued.secret_key},
           as_json, "Keep the SecretKey safe: it cannot be shown again.")


@cli.group()
def secrets() -> None:
    """Credentials encrypted at rest."""


@secrets.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key for CANVAS_SECRET_KEYS (put it first to encrypt with it; keep older keys after it to read
    what they encrypted, then run `canvas secrets rotate`)."""
    from canvas.secrets import SecretBox

    click.echo(SecretBox.generate_key())


@secrets.command("rotate")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(min=1),
              help="Rows re-encrypted per transaction.")
def secrets_rotate(batch_size: int) -> None:
    """Re-encrypt every stored secret with the first key of CANVAS_SECRET_KEYS (safe to re-run)."""
    from pathlib import Path

    from canvas.secrets import SecretBox
    from canvas.secrets.rotation import rotate_all

    settings = _settings()
    box = SecretBox.from_setting(settings.get("SECRET_KEYS"), Path(settings["DATA_DIR"]))
    report = rotate_all(_migrated_database(settings), box, batch_size)
    click.echo(f"rotated {report.rotated}, already current {report.already_current}, "
               f"changed meanwhile {report.changed_meanwhile}")


@cli.group()
def outputs() -> None:
    """Stored block outputs."""


@outputs.command("prune")
def outputs_prune() -> None:
    """Delete outputs past CANVAS_OUTPUT_RETENTION_DAYS / _RUNS (never a block's latest successful output)."""
    from canvas.execution.retention import prune_everything
    from canvas.extensions import Services
    from canvas.storage.blob import BlobStoreError

    settings = _settings()
    _migrated_database(settings).dispose()
    try:
        report = prune_everything(Services(settings))
    except BlobStoreError as exc:
        raise click.ClickException(f"{exc}; nothing was deleted") from None
    click.echo(f"deleted {report.outputs_deleted} outputs ({report.bytes_freed} bytes) and "
               f"{report.temp_files_deleted} stale temporary files")


@cli.group()
def catalog() -> None:
    """The catalog of applications and workflow templates (templates_catalog/)."""


@catalog.command("check")
def catalog_check() -> None:
    """Validate the catalog files without starting anything."""
    from canvas.catalog.loader import CatalogCheckError, check_catalog

    settings = _settings()
    try:
        summary = check_catalog(settings)
    except CatalogCheckError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary)


@catalog.command("sync")
def catalog_sync() -> None:
    """Load catalog changes into the database (unchanged files change nothing)."""
    settings = _settings()
    database = _synced_database(settings)
    database.dispose()
    click.echo("catalog synced")


def _print(result: dict, as_json: bool, note: str) -> None:
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        click.echo(f"{key}: {value}")
    click.echo(note, err=True)


class _domain_errors:  # noqa: N801 - used as a context manager, reads like a statement
    """Domain errors become a one-line message and exit status 1 instead of a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, _tb) -> bool:  # noqa: ANN001
        from canvas.errors import CanvasError

        if exc is not None and isinstance(exc, CanvasError):
            raise click.ClickException(exc.message)
        return False


def main() -> None:
    cli(prog_name="canvas")

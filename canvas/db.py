"""The database: one engine per process, sessions per request or per unit of work."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from canvas import clock
from canvas.defaults import DEFAULT_LOST_RUN_GRACE_SECONDS


# A pooled connection idle longer than this is pinged before use (a server restart or a terminated backend leaves it
# dead); one given back a moment ago is not: a one-block run checks a connection out twice within milliseconds, and
# pinging it each time was a tenth of the run's bookkeeping. A connection that died within the window fails its
# statement as a lost connection, which every caller waits out already (a backend can die after a ping just as well).
PING_AFTER_IDLE_SECONDS = 1.0
_GIVEN_BACK_AT = "canvas.given_back_at"  # a pooled connection's info: when it was last given back (monotonic)

# SQLite: the commit that takes the write-ahead log past `wal_autocheckpoint` pages copies the log back into the
# database file and syncs it (10-20 ms here), in the middle of whichever run or request committed: one run start in
# thirty waited for it. Long-lived processes copy it back in a thread instead (WalCheckpointer); commits still do it
# past this backstop, when no process did for long (none running, or a reader holding an old snapshot).
WAL_CHECKPOINT_INTERVAL_SECONDS = 0.25
WAL_AUTOCHECKPOINT_PAGES = 4000  # SQLite's default is 1000; ~28 pages per one-block run
log = logging.getLogger("canvas.db")

# SQLite in a process that forks (the forking worker's parent): a child forked while another thread of its parent was
# inside SQLite hangs at its own first use of the file (a trial: a thread writing in a loop, 25-31 of 100 children
# forked by the main thread never finished), on state copied mid-change; and a child must not touch, nor close, the
# connections it inherits (https://sqlite.org/howtocorrupt.html#fork). So such a parent's threads use the database
# apart from its forks (Database.apart_from_forks): each fork waits for a use under way to end, and the use ends with
# every pooled connection closed. One gate for the process: forks are a process's, not a database's.
_FORK_GATE = threading.Lock()
_fork_gate_registered = False

# libpq waits for a new connection as long as the operating system does: a server that drops packets instead of
# refusing them (a firewall, a host that went away) holds every first use of the database for minutes, a worker's
# start and the API's /healthz among them. A URL's own `?connect_timeout=` wins.
CONNECT_TIMEOUT_SECONDS = 10
# The same on a connection already made: when the server's host is powered off or a failover moves its address away,
# nothing answers a statement, not even with a reset, and Linux retransmits for about 15 minutes (tcp_retries2)
# before it gives up. A worker's lease keeper then renews nothing that long, so that every run of the worker with a
# block longer than the lost-run grace is taken for lost, and the API holds its request threads. Sent data left
# unacknowledged for half the grace ends the connection instead (libpq's tcp_user_timeout): a lost database, which
# everything waits out already, and the keeper renews through a new connection before the grace is up. A slow
# statement is not cut (the server's kernel acknowledges it); keepalives find an idle pooled connection dead.
# A URL's own values win.
MIN_ESTABLISHED_TIMEOUT_SECONDS = 2.0
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT = 30, 5, 3
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction
# The other way round: a process stopped in the middle of a transaction (a frozen VM, SIGSTOP, a debugger; or a
# machine gone dark, whose connection the server keeps for its keepalive time, two hours by default) keeps the
# transaction's row locks. A scheduler frozen inside its claim held the rows of every workflow firing with it: the
# other scheduler fired none of them, RunWorkflow waited, and a worker ending a run of one waited too, renewing
# nothing, until its healthy run was taken for lost. PostgreSQL ends a session left idle in a transaction for
# idle_in_transaction_session_timeout, releasing its locks; the service sets it on its own sessions to the same half
# of the lost-run grace, unless the server or the role sets a shorter one. No transaction of the service waits for
# another system (a remote system, the object store, a callback's receiver are called between transactions: see
# end_reading), but those that mail a link, which wait_inside_transaction spares.
IDLE_IN_TRANSACTION_SETTING = "idle_in_transaction_session_timeout"
# Read with current_setting, not from the pg_settings view: a new connection's round trip took 0.10 ms instead of
# 0.52 (a forking worker's child opens one for each run).
LIMIT_IDLE_TRANSACTIONS = (f"SELECT set_config('{IDLE_IN_TRANSACTION_SETTING}', %s, false) "
                           f"WHERE current_setting('{IDLE_IN_TRANSACTION_SETTING}')::interval = '0' "
                           f"OR current_setting('{IDLE_IN_TRANSACTION_SETTING}')::interval > make_interval(secs => %s)")
# What pg_stat_activity and the server's log call this process's sessions (libpq's application_name): which process
# holds a lock, runs a slow statement or idles in a transaction ("canvas worker w1", "canvas scheduler host:pid").
# Set by the process's command before its engine is built (name_sessions); a URL's own value wins.
MAX_APPLICATION_NAME = 63  # what PostgreSQL keeps
_session_name = "canvas"


def build_engine(url: str, lost_run_grace_seconds: float = DEFAULT_LOST_RUN_GRACE_SECONDS) -> Engine:
    if url.startswith("sqlite"):
        return _build_sqlite_engine(url)
    engine = create_engine(url, pool_size=5, max_overflow=10,
                           connect_args=_connect_args(url, lost_run_grace_seconds))
    _probe_at_checkout(engine, follow_server_clock=engine.dialect.name == "postgresql")
    _reconnect_when_read_only(engine)
    if engine.dialect.name == "postgresql":
        _limit_idle_transactions(engine, round(silence_limit(lost_run_grace_seconds) * 1000))
    return engine


def name_sessions(name: str) -> None:
    """The application_name of the PostgreSQL sessions this process opens from now on (engines built after)."""
    global _session_name  # noqa: PLW0603 - one name per process
    _session_name = name[:MAX_APPLICATION_NAME]


def silence_limit(lost_run_grace_seconds: float) -> float:
    """How long a connection to PostgreSQL may stay silent before it is ended: a statement unanswered (its server
    gone), or a transaction left idle (its process gone)."""
    return max(MIN_ESTABLISHED_TIMEOUT_SECONDS, lost_run_grace_seconds / 2)


def _connect_args(url: str, lost_run_grace_seconds: float = DEFAULT_LOST_RUN_GRACE_SECONDS) -> dict:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    established_timeout = silence_limit(lost_run_grace_seconds)
    defaults = {"application_name": _session_name,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS, "tcp_user_timeout": round(established_timeout * 1000),
                "keepalives": 1, "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
                "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS, "keepalives_count": KEEPALIVE_COUNT}
    return {name: value for name, value in defaults.items() if name not in parsed.query}


def _probe_at_checkout(engine: Engine, follow_server_clock: bool) -> None:
    """SQLAlchemy's pool_pre_ping, for connections idle longer than PING_AFTER_IDLE_SECONDS only: a dead one raises
    DisconnectionError from the checkout, on which the pool replaces it with a fresh connection. With
    `follow_server_clock`, the process's first connection and, once a minute, a checkout measure how far the
    machine's clock is off the server's instead (canvas.clock), which proves the connection alive as well."""

    @event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection, record) -> None:  # noqa: ANN001 - DB-API connection, pool entry
        record.info[_GIVEN_BACK_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - DB-API connection, pool entry, proxy
        if follow_server_clock and clock.check_due():
            probe = clock.measure
        else:
            given_back = record.info.get(_GIVEN_BACK_AT)  # none yet: a new connection (the info goes with a dead one)
            if given_back is None or time.monotonic() - given_back < PING_AFTER_IDLE_SECONDS:
                return
            probe = engine.dialect.do_ping
        try:
            probe(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError(str(error)) from error
            raise

    if follow_server_clock:
        @event.listens_for(engine, "connect")
        def _connected(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection, pool entry
            if clock.check_due():
                clock.measure(dbapi_connection)


def _limit_idle_transactions(engine: Engine, milliseconds: int) -> None:
    """Each new connection's session ends a transaction left idle for `milliseconds` (IDLE_IN_TRANSACTION_SETTING),
    set in autocommit so that it outlasts the statement's own transaction."""

    @event.listens_for(engine, "connect")
    def _limited(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection, pool entry
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(LIMIT_IDLE_TRANSACTIONS, (str(milliseconds), milliseconds / 1000))
        finally:
            dbapi_connection.autocommit = autocommit


def _reconnect_when_read_only(engine: Engine) -> None:
    """A failover can leave pooled connections on a server that takes no more writes (a demoted primary, a name that
    still leads to a standby for a while): PostgreSQL refuses each write with SQLSTATE 25006. Taken for a lost
    connection, the pool drops its connections and the next use connects afresh, to whichever server the name leads
    to then, and every caller waits it out as it waits out a lost connection (the API answers 503). The write was
    refused, not done: trying it again is safe."""

    @event.listens_for(engine, "handle_error")
    def _refused_as_read_only(context) -> None:  # noqa: ANN001 - sqlalchemy.engine.ExceptionContext
        if getattr(context.original_exception, "sqlstate", None) == READ_ONLY_SQLSTATE:
            context.is_disconnect = True


def _build_sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):  # noqa: ANN001 - DB-API connection
        # WAL lets the API read while a worker writes, and makes a commit ~6x cheaper than the default journal.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    return engine


def end_reading(session: Session) -> None:
    """Before a wait for something other than the database (a remote system, the object store): the session's
    transaction ends if it has only read so far, so that no connection sits idle in it meanwhile (PostgreSQL ends a
    session idle in a transaction past IDLE_IN_TRANSACTION_SETTING, and the work would fail). The objects read stay
    loaded (sessions do not expire them on commit)."""
    if not (session.new or session.dirty or session.deleted):
        session.commit()


def wait_inside_transaction(session: Session) -> None:
    """The session's transaction is about to wait for another system on purpose, its outcome deciding what is
    committed (an account exists only if its activation e-mail left): PostgreSQL does not end it for idling meanwhile
    (IDLE_IN_TRANSACTION_SETTING lifted for this transaction only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL {IDLE_IN_TRANSACTION_SETTING} = 0"))


class Database:
    """Holds the engine and the session factory of one process."""

    def __init__(self, url: str, lost_run_grace_seconds: float = DEFAULT_LOST_RUN_GRACE_SECONDS):
        self.url = url
        self.engine = build_engine(url, lost_run_grace_seconds)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pid = os.getpid()
        self._connect_arguments: tuple[tuple, dict] | None = None  # the driver's, as the pool last connected
        self._opening: Future | None = None  # a connection being opened ahead of the pool's need for it
        self._opening_lock = threading.Lock()
        self._checkpointer: WalCheckpointer | None = None
        self._kept_apart_from_forks = False
        if self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "do_connect", self._connect)

    def after_fork(self) -> None:
        """In a forked child (RQ's forking worker), drop the parent's pooled connections instead of sharing them,
        and start opening the child's first connection at once, in a thread: a new PostgreSQL connection costs a
        server process of its own (~4 ms here), which overlaps what the child does before its first statement
        (RQ's bookkeeping of the job, in Redis) instead of adding to it. Idempotent within a process."""
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()
            self._opening_lock = threading.Lock()  # the parent's may have been held by a thread that is gone
            self._open_ahead()

    def check_reachable(self) -> None:
        """One trivial statement on a pooled connection: raises when the database cannot be reached. Apart from forks
        (keep_apart_from_forks): a forking worker's children must not inherit the connection."""
        with self.apart_from_forks(), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def ready_for_work(self) -> None:
        """In a child forked ahead of its job (canvas.queueing.waiting_child): after_fork, and the connection its job
        will use opened now, pooled. On PostgreSQL the pool pings it if the job comes more than
        PING_AFTER_IDLE_SECONDS later, and replaces it if the server went away meanwhile."""
        self.after_fork()
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def _open_ahead(self) -> None:
        if self._connect_arguments is None:  # the parent never connected: nothing to copy
            return
        cargs, cparams = self._connect_arguments
        opening: Future = Future()

        def open_connection() -> None:
            try:
                opening.set_result(self.engine.dialect.connect(*cargs, **cparams))
            except BaseException as error:  # noqa: BLE001 - handed to whoever takes the connection
                opening.set_exception(error)

        self._opening = opening
        threading.Thread(target=open_connection, name="open-database-connection", daemon=True).start()

    def _connect(self, _dialect, _record, cargs: tuple, cparams: dict):  # noqa: ANN001, ANN202 - SQLAlchemy's
        """The pool needs a new connection: the one opened ahead, if any (waiting for it to be ready), else None,
        for SQLAlchemy to connect as usual (which also reports a failure of the one opened ahead, if it persists)."""
        self._connect_arguments = (tuple(cargs), dict(cparams))
        with self._opening_lock:
            opening, self._opening = self._opening, None
        if opening is None:
            return None
        try:
            return opening.result()
        except Exception:  # noqa: BLE001 - connecting again says why, or succeeds
            return None

    def keep_apart_from_forks(self) -> None:
        """This process forks children that use the database (RQ's forking worker): from now on its uses inside
        `apart_from_forks` never overlap a fork, and leave no SQLite connection open behind them; the connections
        open now are closed. Nothing to do on PostgreSQL, whose children drop what they inherit (after_fork)."""
        global _fork_gate_registered  # noqa: PLW0603 - one registration per process, whatever the databases
        if self.engine.dialect.name != "sqlite":
            return
        if not _fork_gate_registered:
            os.register_at_fork(before=_FORK_GATE.acquire, after_in_parent=_FORK_GATE.release,
                                after_in_child=_FORK_GATE.release)
            _fork_gate_registered = True
        self._kept_apart_from_forks = True
        with _FORK_GATE:
            self.engine.dispose()
        self._checkpoint_apart_from_forks()

    def _checkpoint_apart_from_forks(self) -> None:
        """A WAL thread started before keep_apart_from_forks holds a lasting connection, which every fork would copy:
        it gives way to one that opens a connection for each round between two forks."""
        lasting = self._checkpointer
        if lasting is None or lasting.apart_from_forks:
            return
        lasting.stop()
        self._checkpointer = None
        self.checkpoint_in_background(lasting.interval)

    @contextmanager
    def apart_from_forks(self) -> Iterator[None]:
        """A use of the database by a thread other than the one that forks (keep_apart_from_forks); elsewhere, and on
        PostgreSQL, just the use."""
        if not self._kept_apart_from_forks:
            yield
            return
        with _FORK_GATE:
            try:
                yield
            finally:
                self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def checkpoint_in_background(self, interval: float = WAL_CHECKPOINT_INTERVAL_SECONDS) -> None:
        """For a long-lived process on a SQLite file (a worker, the scheduler): the write-ahead log is copied back by
        a thread of this process rather than by whichever commit filled it. Nothing to do on PostgreSQL. In a
        process kept apart from its forks (keep_apart_from_forks, called before or after), each round runs between
        two forks, on a connection of its own that it closes."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:" or self._checkpointer:
            return
        self._checkpointer = WalCheckpointer(database, interval, apart_from_forks=self._kept_apart_from_forks)
        self._checkpointer.start()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._opening_lock:
            opening, self._opening = self._opening, None
        if opening is not None and opening.exception() is None:
            opening.result().close()
        self.engine.dispose()


class WalCheckpointer:
    """A daemon thread that copies a SQLite database's write-ahead log back into the database file every `interval`
    seconds: PASSIVE checkpoints, which neither wait for nor block readers and writers."""

    def __init__(self, path: str, interval: float, apart_from_forks: bool = False) -> None:
        self.path, self.interval, self.apart_from_forks = path, interval, apart_from_forks
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        if self.apart_from_forks:
            while not self.stopped.wait(self.interval):
                with _FORK_GATE:
                    self._checkpoint_once()
            return
        connection = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
        try:
            while not self.stopped.wait(self.interval):
                self.checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint_once(self) -> None:
        """A round on a connection of its own, closed after it; a file that cannot be opened now is tried again next
        round (the thread outlives it, as it outlives a failed checkpoint)."""
        try:
            connection = sqlite3.connect(self.path, timeout=0)
        except sqlite3.Error as error:
            log.debug("WAL checkpoint of %s not done: %s", self.path, error)
            return
        try:
            self.checkpoint(connection)
        finally:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:  # a commit's own checkpoint takes over; the next round tries again
            log.debug("WAL checkpoint of %s not done: %s", self.path, error)

"""SQL blocks through SQLAlchemy URLs: `sql.query` (rows as records, streamed), `sql.insert` and `sql.upsert`.

Security: a `sqlite:` URL opens a file on the worker, so a tenant could read any file the worker can read, the
platform's own database included. SQLite applications are refused unless the operator sets
CANVAS_ALLOW_SQLITE_APPLICATIONS=true. A network database must be named in the URL's host part, which passes the
SSRF guard; PostgreSQL (libpq) then connects to the checked address itself (hostaddr).

`sql.query` runs in a transaction that is always rolled back: it promises no side effects, and a tenant's
"SELECT" that is really a DELETE must keep that promise. Rows stream with yield_per (a server-side cursor where the
driver has one). Parameters are bound (`:name` in the query), never formatted into the text.

`sql.insert`/`sql.upsert` write all input records in ONE transaction (a failure, or a retry after it, never leaves
half the records behind), in batches of `batchSize`. A failure before the COMMIT rolled everything back, so the
block may run again (`retry_safe`); a connection lost during the COMMIT leaves the outcome unknown, and an insert
then fails saying so instead of risking every row twice (an upsert may run again: it writes the same rows). A record's keys must be columns of the table (or are dropped
with ignoreUnknownColumns); a column a record lacks is left out of its statement, so an insert gets the column's
default and an upsert keeps the current value. Upsert uses ON CONFLICT (keyColumns) DO UPDATE on PostgreSQL and
SQLite, and UPDATE-then-INSERT per record elsewhere; within a batch the last record of a key wins.
"""
from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import sqlalchemy
from sqlalchemy.dialects import postgresql, sqlite

from canvas.applications.sql_urls import MALFORMED_URL_ERRORS
from canvas.applications.values import (  # the SQLite switch is shared with verification at registration
    ALLOW_SQLITE_SETTING, DEFAULT_SQL_DRIVER, SQL_DEFAULT_PORTS, SQL_HOST_QUERY_KEYS, sqlite_allowed,
)
from canvas.execution.blocks._formats import unique_names
from canvas.execution.blocks._net_common import (
    credential_redactor,
    Redactor, credentials_of, network_failures, policy_of, port_field, required_field, timeout_of,
    timeout_variable,
)
from canvas.execution.blocks.base import Block, VariableSpec, expect_records
from canvas.execution.context import BlockAuthenticationError, BlockContext, BlockError, TransientBlockError
from canvas.execution.data import BlockData, Records
from canvas.execution.registry import register
from canvas.network.failures import endpoint, first_line

DEFAULT_QUERY_BATCH = 1000
DEFAULT_WRITE_BATCH = 500
_TRANSIENT_WORDS = ("connection refused", "could not connect", "timeout expired", "timed out", "server closed")
_AUTH_WORDS = ("authentication failed", "access denied", "login failed", "password")

Writer = Callable[[sqlalchemy.Connection, sqlalchemy.Table, list[dict]], None]


# --- connecting ----------------------------------------------------------------------------------------------


def database_url(credentials: Mapping) -> sqlalchemy.URL:
    text = str(credentials.get("url") or "").strip()
    if not text:  # the server/port/database/username/password form
        return sqlalchemy.URL.create(
            str(credentials.get("driver") or DEFAULT_SQL_DRIVER),
            username=str(credentials.get("username") or "") or None,
            password=str(credentials.get("password") or "") or None,
            host=required_field(credentials, "server"), port=port_field(credentials, 0) or None,
            database=str(credentials.get("database") or "") or None,
        )
    try:
        return sqlalchemy.make_url(text)
    except MALFORMED_URL_ERRORS:
        raise BlockError("the application's url is not a valid SQLAlchemy database URL") from None


def _connect_args(context: BlockContext, url: sqlalchemy.URL, redact: Redactor) -> dict:
    timeout = timeout_of(context)
    if url.get_backend_name() == "sqlite":
        if not sqlite_allowed():
            raise BlockError(f"SQLite applications are turned off on this platform (the operator allows them with "
                             f"{ALLOW_SQLITE_SETTING}=true)")
        return {"timeout": timeout}
    if not url.host or SQL_HOST_QUERY_KEYS & {key.lower() for key in url.query}:
        raise BlockError("name the database server in the URL's host part (not in its query or a socket path)")
    port = url.port or SQL_DEFAULT_PORTS.get(url.get_backend_name(), 0)
    with network_failures(url.host, port, timeout, redact):
        addresses = policy_of(context).resolve(url.host, port)
    seconds = max(2, math.ceil(timeout))  # drivers take whole seconds; libpq's minimum is 2
    driver = url.get_driver_name()
    if driver in ("psycopg", "psycopg2"):
        return {"connect_timeout": seconds, "hostaddr": addresses[0]}  # connect to the checked address
    if driver in ("pymysql", "mysqldb", "mysqlconnector"):
        return {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
    if driver == "pymssql":
        return {"login_timeout": seconds, "timeout": seconds}
    return {}  # other drivers resolve the host again: a residual DNS-rebinding window


def open_engine(context: BlockContext, block_key: str) -> tuple[sqlalchemy.Engine, Redactor, str]:
    credentials = credentials_of(context, block_key)
    redact = credential_redactor(credentials)
    url = database_url(credentials)
    connect_args = _connect_args(context, url, redact)
    where = "the SQLite database" if url.get_backend_name() == "sqlite" else endpoint(url.host, url.port or 0)
    with database_errors(where, redact):
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    return engine, redact, where


@contextmanager
def database_errors(where: str, redact: Redactor) -> Iterator[None]:
    try:
        yield
    except sqlalchemy.exc.NoSuchTableError as error:
        raise BlockError(f"no table {error} in {where}") from None
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError) as error:
        raise BlockError(f"the database driver is not installed: {first_line(error)}") from None
    except sqlalchemy.exc.DBAPIError as error:
        raise _classified(error, where, redact) from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise BlockError(redact(f"database error: {' '.join(first_line(error).split())}")) from None


@contextmanager
def rolled_back_on_failure(errors) -> Iterator[None]:  # noqa: ANN001 - a database_errors context
    """Failures before the COMMIT: nothing was written, so even a block with side effects may run again."""
    try:
        with errors:
            yield
    except BlockError as error:
        error.retry_safe = error.transient
        raise


def _classified(error: sqlalchemy.exc.DBAPIError, where: str, redact: Redactor) -> BlockError:
    message = redact(" ".join(first_line(error.orig or error).split()))
    lowered = message.lower()
    if isinstance(error, sqlalchemy.exc.OperationalError) and any(w in lowered for w in _AUTH_WORDS):
        return BlockAuthenticationError(f"database login failed at {where}: {message}")
    if error.connection_invalidated or any(word in lowered for word in _TRANSIENT_WORDS):
        return TransientBlockError(f"cannot reach the database at {where}: {message}")
    return BlockError(f"database error: {message}")


# --- query ---------------------------------------------------------------------------------------------------


# The driver of each backend the SQL applications name (the catalog's postgresql+psycopg, the MS SQL applications'
# mssql+pymssql, MySQL/MariaDB and Oracle as verification knows them): loaded, where installed, before a worker forks.
PRELOADED_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mssql": "pymssql", "oracle": "oracledb"}


class _SqlAccess(Block):
    application_kind = "sql"

    @classmethod
    def preload(cls) -> None:
        """Each installed driver and its SQLAlchemy dialect: in a forked child, the engine of a PostgreSQL
        application cost each run ~140 ms of CPU importing them."""
        for backend, driver in PRELOADED_DRIVERS.items():
            if importlib.util.find_spec(driver) is not None:
                sqlalchemy.make_url(f"{backend}+{driver}://").get_dialect().import_dbapi()


@register
class SqlQuery(_SqlAccess):
    key = "sql.query"
    title = "SQL query"
    description = "Runs a query (with :named parameters) and gives its rows as records, streamed."
    input_kind = "any"
    output_kind = "records"
    variables = {
        "query": VariableSpec("string", required=True, description="SQL text; :name marks a bound parameter."),
        "parameters": VariableSpec("object", default={}, description="Values of the :name parameters."),
        "batchSize": VariableSpec("integer", default=DEFAULT_QUERY_BATCH, description="Rows fetched at a time."),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> Records:
        query = context.variables.get("query")
        parameters = context.variables.get("parameters") or {}
        if not isinstance(query, str) or not query.strip():
            raise BlockError("variable 'query' is required")
        if not isinstance(parameters, dict):
            raise BlockError("variable 'parameters' must be an object")
        batch = max(1, context.variables.get("batchSize") or DEFAULT_QUERY_BATCH)
        engine, redact, where = open_engine(context, self.key)
        return Records(_rows(context, engine, sqlalchemy.text(query), parameters, batch, (where, redact)))


def _rows(context: BlockContext, engine: sqlalchemy.Engine, statement, parameters: dict, batch: int,
          errors: tuple[str, Redactor]) -> Iterator[dict]:
    count = 0
    try:
        with database_errors(*errors), engine.connect() as connection:
            with connection.begin() as transaction:
                result = connection.execution_options(yield_per=batch).execute(statement, parameters)
                if result.returns_rows:
                    # a join's repeated column names (SELECT * FROM a JOIN b: two ids) each keep their value, as a
                    # CSV header's repeats do: a dict of the row kept only the last of them
                    keys = unique_names(list(result.keys()))
                    for count, row in enumerate(context.cancellable(result), start=1):
                        yield dict(zip(keys, row))
                transaction.rollback()  # a query block changes nothing, whatever the SQL says
    finally:
        engine.dispose()
    context.logger.info("the query gave %d rows", count)


# --- insert and upsert ---------------------------------------------------------------------------------------


@register
class SqlInsert(_SqlAccess):
    key = "sql.insert"
    title = "SQL insert"
    description = "Inserts the input records into a table, in batches, in one transaction."
    side_effects = True
    input_kind = "records"
    output_kind = "none"
    variables = {
        "table": VariableSpec("string", required=True, description="Table name, optionally schema.table."),
        "batchSize": VariableSpec("integer", default=DEFAULT_WRITE_BATCH, description="Records per statement."),
        "ignoreUnknownColumns": VariableSpec("boolean", default=False,
                                             description="Drop record keys that are not columns (else an error)."),
        "timeout": timeout_variable(),
    }

    def run(self, context: BlockContext, data: BlockData) -> None:
        records = expect_records(data, self.key)
        table_name = context.variables.get("table")
        if not isinstance(table_name, str) or not table_name.strip():
            raise BlockError("variable 'table' is required")
        size = max(1, context.variables.get("batchSize") or DEFAULT_WRITE_BATCH)
        ignore_unknown = context.variables.get("ignoreUnknownColumns") is True
        engine, redact, where = open_engine(context, self.key)
        count = 0
        try:
            with engine.connect() as connection:
                with rolled_back_on_failure(database_errors(where, redact)):
                    transaction = connection.begin()
                    table = reflect_table(connection, table_name.strip())
                    writer = self.writer(context, table, connection)
                    for batch in batches(context.cancellable(records), size):
                        writer(connection, table, prepared(batch, table, ignore_unknown, count))
                        count += len(batch)
                with self.committing(database_errors(where, redact), count, table_name):
                    transaction.commit()
        finally:
            engine.dispose()
        context.logger.info("wrote %d records into %s", count, table_name)

    @contextmanager
    def committing(self, errors, count: int, table_name: str) -> Iterator[None]:  # noqa: ANN001
        """A COMMIT whose answer was lost: for an insert, the outcome is unknown."""
        try:
            with errors:
                yield
        except TransientBlockError as error:
            failure = BlockError(f"{error}: the connection was lost while committing {count} records into "
                                 f"{table_name}, so the outcome is unknown; check the table before running this "
                                 "block again")
            failure.outcome_unknown = True
            raise failure from None

    def writer(self, context: BlockContext, table: sqlalchemy.Table, connection: sqlalchemy.Connection) -> Writer:
        return _insert


@register
class SqlUpsert(SqlInsert):
    key = "sql.upsert"
    title = "SQL upsert"
    description = "Inserts the input records, updating the rows whose keyColumns already exist."
    variables = {
        **SqlInsert.variables,
        "keyColumns": VariableSpec("array", required=True, description="Columns that identify a row."),
    }

    @contextmanager
    def committing(self, errors, count: int, table_name: str) -> Iterator[None]:  # noqa: ANN001
        """An upsert written twice writes the same rows: a lost COMMIT answer may be retried."""
        with rolled_back_on_failure(errors):
            yield

    def writer(self, context: BlockContext, table: sqlalchemy.Table, connection: sqlalchemy.Connection) -> Writer:
        keys = context.variables.get("keyColumns") or []
        if not keys or not all(isinstance(key, str) and key in table.c for key in keys):
            raise BlockError(f"variable 'keyColumns' must name columns of {table.name}, got {keys!r}")
        dialect = connection.dialect.name
        if dialect in ("postgresql", "sqlite"):
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            return lambda connection, table, rows: _upsert_on_conflict(insert, connection, table, keys, rows)
        return lambda connection, table, rows: _upsert_row_by_row(connection, table, keys, rows)


def reflect_table(connection: sqlalchemy.Connection, name: str) -> sqlalchemy.Table:
    schema, _, table = name.rpartition(".")
    return sqlalchemy.Table(table, sqlalchemy.MetaData(), schema=schema or None, autoload_with=connection)


def batches(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def prepared(batch: list[dict], table: sqlalchemy.Table, ignore_unknown: bool, offset: int) -> list[dict]:
    """The records, checked to hold only columns of the table (or stripped of the others)."""
    rows = []
    for index, record in enumerate(batch, start=offset):
        if not isinstance(record, dict):
            raise BlockError(f"record {index} is {type(record).__name__}, not an object")
        unknown = [key for key in record if key not in table.c]
        if unknown and not ignore_unknown:
            raise BlockError(f"record {index} has keys that are not columns of {table.name}: {', '.join(unknown)}")
        rows.append({key: value for key, value in record.items() if key in table.c})
    return rows


def by_columns(rows: list[dict]) -> list[list[dict]]:
    """Rows grouped by the columns they have: one statement (executemany) per group."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())


def _insert(connection: sqlalchemy.Connection, table: sqlalchemy.Table, rows: list[dict]) -> None:
    for group in by_columns(rows):
        connection.execute(table.insert(), group)


def _last_per_key(keys: list[str], rows: list[dict]) -> list[dict]:
    """One row per key (the last wins): PostgreSQL refuses to update the same row twice in one statement."""
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row.get(column) for column in keys)
        if None in key:
            raise BlockError(f"a record has no value for the key column(s) {', '.join(keys)}")
        by_key[key] = row
    return list(by_key.values())


def _upsert_on_conflict(insert, connection: sqlalchemy.Connection, table: sqlalchemy.Table, keys: list[str],
                        rows: list[dict]) -> None:  # noqa: ANN001 - a dialect's insert()
    for group in by_columns(_last_per_key(keys, rows)):
        statement = insert(table)
        updates = {column: statement.excluded[column] for column in group[0] if column not in keys}
        if updates:
            statement = statement.on_conflict_do_update(index_elements=keys, set_=updates)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        connection.execute(statement, group)


def _upsert_row_by_row(connection: sqlalchemy.Connection, table: sqlalchemy.Table, keys: list[str],
                       rows: list[dict]) -> None:
    for row in _last_per_key(keys, rows):
        condition = sqlalchemy.and_(*(table.c[key] == row[key] for key in keys))
        if not _updated(connection, table, condition, row, keys):
            connection.execute(table.insert().values(row))


def _updated(connection: sqlalchemy.Connection, table: sqlalchemy.Table, condition, row: dict,
             keys: list[str]) -> bool:  # noqa: ANN001 - a SQL expression
    """Whether the row exists (and now has the record's values)."""
    values = {column: value for column, value in row.items() if column not in keys}
    if values:
        return connection.execute(table.update().where(condition).values(values)).rowcount > 0
    query = sqlalchemy.select(sqlalchemy.literal(1)).select_from(table).where(condition)
    return connection.execute(query).first() is not None

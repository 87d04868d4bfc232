"""sql.query / sql.insert / sql.upsert on SQLite (with the operator's permission) and on PostgreSQL."""
from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy

from canvas.execution.blocks.sql import ALLOW_SQLITE_SETTING
from canvas.execution.context import BlockError, TransientBlockError
from canvas.execution.data import Records
from canvas.execution.registry import get_block
from tests.integration.blocks.net_support import (
    assert_no_secrets, failure, logged_text, make_context, records, run_block,
)

ROWS = [{"id": 1, "name": "Ann", "city": "Oslo"}, {"id": 2, "name": "Bob", "city": "Bergen"}]


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv(ALLOW_SQLITE_SETTING, "true")
    url = f"sqlite:///{tmp_path / 'tenant.db'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
    engine.dispose()
    return url


@pytest.fixture
def postgres_table(postgres_url) -> tuple[str, str]:
    """(url, table): a uniquely named table in the test PostgreSQL, dropped afterwards."""
    url = postgres_url
    table = f"canvas_net_test_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT, city TEXT)")
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL at {engine.url.render_as_string(hide_password=True)} is needed: {error.orig}")
    yield url, table
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def write(key: str, url: str, tmp_path, rows, **variables) -> None:
    run_block(key, tmp_path, credentials={"url": url}, data=Records(iter(rows)), variables=variables)


def query(url: str, tmp_path, sql: str, **parameters) -> list[dict]:
    return records("sql.query", tmp_path, credentials={"url": url},
                   variables={"query": sql, "parameters": parameters})


def test_sqlite_urls_are_refused_unless_the_operator_allows_them(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_SQLITE_SETTING, raising=False)
    error = failure("sql.query", tmp_path, credentials={"url": "sqlite:////etc/passwd"},
                    variables={"query": "SELECT 1"})
    assert ALLOW_SQLITE_SETTING in str(error)


def test_sqlite_insert_query_and_upsert(sqlite_url, tmp_path):
    write("sql.insert", sqlite_url, tmp_path, ROWS, table="people")
    assert query(sqlite_url, tmp_path, "SELECT * FROM people WHERE city = :city", city="Oslo") == [ROWS[0]]
    write("sql.upsert", sqlite_url, tmp_path, [{"id": 2, "city": "Tromsø"}, {"id": 3, "name": "Cy", "city": "Bodø"}],
          table="people", keyColumns=["id"])
    assert query(sqlite_url, tmp_path, "SELECT * FROM people ORDER BY id") == [
        ROWS[0], {"id": 2, "name": "Bob", "city": "Tromsø"}, {"id": 3, "name": "Cy", "city": "Bodø"}]


def test_parameters_are_bound_not_formatted(sqlite_url, tmp_path):
    write("sql.insert", sqlite_url, tmp_path, ROWS, table="people")
    assert query(sqlite_url, tmp_path, "SELECT name FROM people WHERE name = :name", name="x' OR '1'='1") == []


def test_a_query_block_changes_nothing(sqlite_url, tmp_path):
    write("sql.insert", sqlite_url, tmp_path, ROWS, table="people")
    query(sqlite_url, tmp_path, "DELETE FROM people")
    assert len(query(sqlite_url, tmp_path, "SELECT id FROM people")) == 2


def test_a_join_keeps_every_column_of_a_repeated_name(sqlite_url, tmp_path):
    """SELECT * FROM a JOIN b gave one id and one name, b's: a's were silently lost."""
    write("sql.insert", sqlite_url, tmp_path, ROWS, table="people")
    joined = query(sqlite_url, tmp_path, "SELECT * FROM people p JOIN people q ON q.id = p.id + 1")
    assert joined == [{**ROWS[0], "id_2": ROWS[1]["id"], "name_2": ROWS[1]["name"], "city_2": ROWS[1]["city"]}]
    assert query(sqlite_url, tmp_path, "SELECT 1 AS dup, 2 AS dup") == [{"dup": 1, "dup_2": 2}]


def test_insert_is_all_or_nothing_and_names_unknown_columns(sqlite_url, tmp_path):
    error = failure("sql.insert", tmp_path, credentials={"url": sqlite_url}, variables={"table": "people"},
                    data=Records(iter([ROWS[0], {"id": 9, "nickname": "?"}])))
    assert "nickname" in str(error)
    assert query(sqlite_url, tmp_path, "SELECT id FROM people") == []
    write("sql.insert", sqlite_url, tmp_path, [{"id": 9, "nickname": "?"}], table="people",
          ignoreUnknownColumns=True)
    assert query(sqlite_url, tmp_path, "SELECT * FROM people") == [{"id": 9, "name": None, "city": None}]


def test_upsert_without_on_conflict_updates_then_inserts(sqlite_url, tmp_path):
    from canvas.execution.blocks import sql

    write("sql.insert", sqlite_url, tmp_path, ROWS, table="people")
    engine = sqlalchemy.create_engine(sqlite_url)
    with engine.begin() as connection:  # the path other dialects (MS SQL...) take
        table = sql.reflect_table(connection, "people")
        sql._upsert_row_by_row(connection, table, ["id"], [{"id": 1, "city": "Molde"}, {"id": 4, "name": "Di"}])
    engine.dispose()
    assert query(sqlite_url, tmp_path, "SELECT * FROM people ORDER BY id") == [
        {"id": 1, "name": "Ann", "city": "Molde"}, ROWS[1], {"id": 4, "name": "Di", "city": None}]


def test_sql_errors_are_clear(sqlite_url, tmp_path):
    missing = failure("sql.insert", tmp_path, credentials={"url": sqlite_url}, variables={"table": "nope"},
                      data=Records([]))
    assert "no table nope" in str(missing)
    bad = failure("sql.query", tmp_path, credentials={"url": sqlite_url}, variables={"query": "SELEC 1"})
    assert "syntax error" in str(bad)
    duplicate = failure("sql.insert", tmp_path, credentials={"url": sqlite_url}, variables={"table": "people"},
                        data=Records([ROWS[0], ROWS[0]]))
    assert "UNIQUE" in str(duplicate)


def test_postgresql_streams_inserts_and_upserts(postgres_table, tmp_path):
    url, table = postgres_table
    many = [{"id": number, "name": f"n{number}", "city": "Oslo"} for number in range(1, 1201)]
    write("sql.insert", url, tmp_path, many, table=table, batchSize=500)
    write("sql.upsert", url, tmp_path, [{"id": 5, "name": "first"}, {"id": 5, "name": "last"}, {"id": 2000}],
          table=table, keyColumns=["id"])
    variables = {"query": f"SELECT id, name FROM {table} WHERE id >= :low ORDER BY id", "parameters": {"low": 1},
                 "batchSize": 100}
    output = get_block("sql.query")().run(make_context("sql.query", variables, {"url": url}, tmp_path), None)
    iterator = iter(output)
    assert next(iterator) == {"id": 1, "name": "n1"}
    rest = list(iterator)
    assert len(rest) == 1200 and {"id": 5, "name": "last"} in rest and rest[-1] == {"id": 2000, "name": None}


def test_postgresql_failures(postgres_table, closed_port, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    url, table = postgres_table
    down = sqlalchemy.make_url(url).set(port=closed_port, password="db-Secret-7777")
    refused = failure("sql.query", tmp_path, TransientBlockError, variables={"query": "SELECT 1", "timeout": 2},
                      credentials={"url": down.render_as_string(hide_password=False)})
    assert "cannot reach the database" in str(refused)
    conflict = failure("sql.upsert", tmp_path, BlockError, credentials={"url": url}, data=Records([{"id": 7, "name": "x"}]),
                       variables={"table": table, "keyColumns": ["name"]})
    assert "ON CONFLICT" in str(conflict)
    assert_no_secrets([str(refused), *logged_text(caplog)], ["db-Secret-7777"])


def test_network_databases_are_named_in_the_host_part(tmp_path):
    error = failure("sql.query", tmp_path, variables={"query": "SELECT 1"},
                    credentials={"url": "postgresql+psycopg://u@/db?host=/var/run/postgresql"})
    assert "host part" in str(error)


def test_a_connection_lost_mid_insert_leaves_nothing_and_is_safe_to_run_again(postgres_table, tmp_path):
    """A relay to PostgreSQL is cut while the 300th of 600 records is read: the transaction is gone, no row is
    written, and the failure says the block may run again (nothing was written); run again, every row is there once."""
    from tests.servers.tcp_proxy import TcpProxy

    url, table = postgres_table
    target = sqlalchemy.make_url(url)
    rows = [{"id": n, "name": f"n{n}", "city": "Oslo"} for n in range(1, 601)]
    with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

        def cut_at_300():  # the block reads its records lazily: the cut falls between two batches
            for row in rows:
                if row["id"] == 300:
                    proxy.cut()
                yield row

        context = make_context("sql.insert", {"table": table, "batchSize": 50}, {"url": proxied}, tmp_path)
        with pytest.raises(TransientBlockError) as raised:
            get_block("sql.insert")().run(context, Records(cut_at_300()))
        assert raised.value.retry_safe and not raised.value.outcome_unknown
        proxy.restore()
        assert query(url, tmp_path, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
        write("sql.insert", proxied, tmp_path, rows, table=table, batchSize=50)
    counted = query(url, tmp_path, f"SELECT count(*) AS n, count(DISTINCT id) AS ids FROM {table}")
    assert counted == [{"n": 600, "ids": 600}]

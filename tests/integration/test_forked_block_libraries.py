"""A forking worker loads what blocks import only when they run (Block.preload: paramiko for SFTP, the installed SQL
drivers) before it forks, so that its children inherit those modules instead of importing them for every run.

Checked the way it matters: a fresh interpreter warms up as `canvas worker --worker-class fork` does (on SQLite, so
that the platform's own database has not loaded psycopg already), then forks a child that runs a block of each
network kind against real servers on loopback (SFTP, SQL on PostgreSQL, FTP, SMTP, HTTPS), as a forked run would,
and reports the modules the child imported and the TLS trust stores it loaded (the worker builds those before forking
too). Without the preload, the same child imports paramiko and psycopg.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from canvas.execution.blocks.base import Block, register
from canvas.execution.registry import _BLOCKS, preload_block_libraries
from tests.integration.blocks.forked_runs import forked_runs, network_steps


@pytest.fixture
def run_forked(tmp_path, sftp_server, postgres_url, ftp_server, smtp_server, https_server, tls_certs):
    """One forked child of a fresh worker-like process runs a block of each network kind: its answer."""
    steps = network_steps(sftp_server, postgres_url, ftp_server, smtp_server, https_server)

    def run(preload: bool) -> dict:
        [answer] = forked_runs(steps, tmp_path, preload, 1, tls_certs.ca_file)
        assert "error" not in answer, answer["error"]
        return answer

    return run


def test_forked_runs_of_every_network_kind_import_nothing_and_load_no_trust_store(run_forked, sftp_server,
                                                                                 ftp_server, smtp_server):
    answer = run_forked(preload=True)
    assert answer["imported"] == []
    assert answer["trust_stores"] == []  # the worker built its TLS contexts before forking
    assert answer["outputs"]["sql.query"] == [{"one": 1}]
    assert answer["outputs"]["http.get"] == [{"id": 1}]  # over HTTPS, verified against the worker's CA file
    assert (sftp_server.root / "by-sftp.txt").read_text() == "from a child"
    assert (Path(ftp_server.home) / "by-ftp.txt").read_text() == "from a child"
    assert [message.parsed()["Subject"] for message in smtp_server.messages] == ["From a child"]


def test_without_the_preload_each_forked_run_imports_paramiko_and_psycopg(run_forked):
    assert {"paramiko", "psycopg"} <= set(run_forked(preload=False)["imported"])


def test_a_block_whose_libraries_fail_to_load_is_a_warning_and_the_others_still_load(caplog):
    class MissingLibrary(Block):
        key = "test.missing_library"
        title = "Needs a library that is not installed"

        @classmethod
        def preload(cls) -> None:
            import canvas_no_such_library  # noqa: F401

    register(MissingLibrary)
    try:
        with caplog.at_level(logging.WARNING, logger="canvas.execution.registry"):
            preload_block_libraries()
    finally:
        del _BLOCKS[MissingLibrary.key]
    assert [record.getMessage() for record in caplog.records] == [
        "block test.missing_library could not load its libraries before forking (ModuleNotFoundError: No module "
        "named 'canvas_no_such_library'); its runs load them"]

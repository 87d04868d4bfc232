"""sftp.upload / sftp.download / sftp.list against a paramiko SFTP server on loopback."""
from __future__ import annotations

import io
import logging
import zipfile

import pytest

from canvas.execution.blocks.sftp import KNOWN_HOSTS_SETTING
from canvas.execution.context import BlockAuthenticationError, BlockError, TransientBlockError
from canvas.execution.data import Records
from tests.integration.blocks.net_support import (
    SHORT_TIMEOUT, assert_no_secrets, failure, file_of, logged_text, records, run_block,
)


@pytest.fixture(autouse=True)
def empty_known_hosts(tmp_path, monkeypatch):
    """Without a pinned hostKey the worker's known_hosts decides: here an empty one, never the user's own."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    monkeypatch.setenv(KNOWN_HOSTS_SETTING, str(known_hosts))


def test_records_are_uploaded_atomically_and_an_existing_file_is_kept(sftp_server, tmp_path):
    data = Records(iter([{"id": 1}]))
    run_block("sftp.upload", tmp_path, credentials=sftp_server.credentials(), data=data,
              variables={"filename": "ids", "fileformat": "json"})
    assert (sftp_server.root / "ids.json").read_text() == '[\n{"id":1}\n]\n'
    assert [path.name for path in sftp_server.root.iterdir()] == ["ids.json"]
    error = failure("sftp.upload", tmp_path, credentials=sftp_server.credentials(), data=file_of("ids.json", b"x"))
    assert "file already exists: /ids.json" in str(error)


def test_overwrite_replaces_the_file(sftp_server, tmp_path):
    (sftp_server.root / "sub").mkdir()
    (sftp_server.root / "sub" / "r.txt").write_bytes(b"old")
    run_block("sftp.upload", tmp_path, credentials=sftp_server.credentials(), data=file_of("r.txt", b"new"),
              variables={"filepath": "/sub", "overwrite": True})
    assert (sftp_server.root / "sub" / "r.txt").read_bytes() == b"new"
    assert [path.name for path in (sftp_server.root / "sub").iterdir()] == ["r.txt"]


def test_list_and_download(sftp_server, tmp_path):
    (sftp_server.root / "a.csv").write_bytes(b"a")
    (sftp_server.root / "b.csv").write_bytes(b"bb")
    (sftp_server.root / "dir").mkdir()
    listed = records("sftp.list", tmp_path, credentials=sftp_server.credentials())
    assert [(entry["name"], entry["size"]) for entry in listed] == [("a.csv", 1), ("b.csv", 2)]
    assert listed[0]["modified"].endswith("Z")
    single = run_block("sftp.download", tmp_path, credentials=sftp_server.credentials(), variables={"pattern": "b*"})
    assert single.name == "b.csv" and single.read_bytes() == b"bb"
    both = run_block("sftp.download", tmp_path, credentials=sftp_server.credentials(),
                     variables={"pattern": "*.csv", "deleteAfter": True})
    assert zipfile.ZipFile(io.BytesIO(both.read_bytes())).namelist() == ["a.csv", "b.csv"]
    assert [path.name for path in sftp_server.root.iterdir()] == ["dir"]


def test_an_unknown_host_key_is_refused_unless_accept_new(sftp_server, tmp_path):
    credentials = sftp_server.credentials(hostKey="")
    error = failure("sftp.list", tmp_path, credentials=credentials)
    assert "unknown SSH host key" in str(error)
    assert records("sftp.list", tmp_path, credentials=credentials, variables={"hostKeyPolicy": "accept_new"}) == []


def test_a_changed_host_key_is_refused(sftp_server, tmp_path):
    from tests.servers.sftp import generate_key

    error = failure("sftp.list", tmp_path, credentials=sftp_server.credentials(hostKey=generate_key().public_line))
    assert "host key mismatch" in str(error)


def test_a_wrong_password_is_an_authentication_error_without_the_password(sftp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Password-2001"
    error = failure("sftp.list", tmp_path, BlockAuthenticationError,
                    credentials=sftp_server.credentials(password=wrong))
    assert "login failed" in str(error)
    assert_no_secrets([str(error), *logged_text(caplog)], [wrong, sftp_server.password])


def test_a_closed_port_is_transient_and_a_silent_server_times_out(closed_port, silent_server, sftp_server, tmp_path):
    refused = failure("sftp.list", tmp_path, TransientBlockError, credentials=sftp_server.credentials(port=closed_port))
    assert "connection refused" in str(refused)
    silent = failure("sftp.list", tmp_path, TransientBlockError, variables={"timeout": SHORT_TIMEOUT},
                     credentials=sftp_server.credentials(port=silent_server.port))
    assert "timed out" in str(silent)


def test_a_missing_directory_is_a_final_error(sftp_server, tmp_path):
    error = failure("sftp.list", tmp_path, BlockError, credentials=sftp_server.credentials(),
                    variables={"filepath": "/missing"})
    assert "cannot list /missing" in str(error)

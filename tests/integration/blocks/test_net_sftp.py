"""sftp.upload / sftp.download / sftp.list against a paramiko SFTP server on loopback."""
from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko
import pytest

from canvas.execution.blocks.sftp import KNOWN_HOSTS_SETTING
from canvas.execution.context import BlockAuthenticationError, BlockError, TransientBlockError
from canvas.execution.data import Records
from tests.integration.blocks.net_support import (
    SHORT_TIMEOUT, assert_no_secrets, failure, file_of, logged_text, records, run_block,
)
from tests.integration.blocks.upload_support import (
    BIG, Listing, assert_never_partial, breaking_file, list_during, temporary_name_pattern,
)
from tests.servers.sftp import SftpServer


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


# --- atomic upload: the final name never holds a partial file --------------------------------------------------


def upload(server: SftpServer, tmp_path: Path, data, **variables):
    return run_block("sftp.upload", tmp_path, credentials=server.credentials(), data=data, variables=variables)


def recording_writes(server: SftpServer) -> set[str]:
    """The names of the files the server writes into from now on."""
    written: set[str] = set()
    server.before_write = lambda path, offset, length: written.add(path.name)
    return written


@contextmanager
def sftp_client(server: SftpServer) -> Iterator[paramiko.SFTPClient]:
    """The test's own session, to look at the directory through the server while the block works."""
    transport = paramiko.Transport((server.host, server.port))
    try:
        transport.connect(hostkey=server.host_key, username=server.username, password=server.password)
        yield paramiko.SFTPClient.from_transport(transport)
    finally:
        transport.close()


def listing(client: paramiko.SFTPClient) -> Listing:
    return {entry.filename: entry.st_size for entry in client.listdir_attr("/")}


def test_an_upload_is_written_under_a_temporary_name_and_renamed(sftp_server, tmp_path):
    written = recording_writes(sftp_server)
    upload(sftp_server, tmp_path, file_of("big.bin", BIG))
    assert (sftp_server.root / "big.bin").read_bytes() == BIG
    assert [path.name for path in sftp_server.root.iterdir()] == ["big.bin"]
    [temporary] = written
    assert temporary_name_pattern("big.bin").fullmatch(temporary)


def test_a_name_as_long_as_the_file_system_allows_still_has_room_for_the_temporary_name(sftp_server, tmp_path):
    name = "é" * 120 + ".csv"  # 244 bytes of the 255 a name may have
    upload(sftp_server, tmp_path, file_of(name, b"a,b\r\n"))
    assert [path.name for path in sftp_server.root.iterdir()] == [name]


def test_overwrite_on_a_server_without_posix_rename_deletes_then_renames(tmp_path):
    with SftpServer(tmp_path / "sftp", rename_replaces=False) as server:
        (server.root / "a.txt").write_bytes(b"old")
        error = failure("sftp.upload", tmp_path, credentials=server.credentials(), data=file_of("a.txt", b"new"))
        assert "file already exists: /a.txt" in str(error)
        upload(server, tmp_path, file_of("a.txt", b"new"), overwrite=True)
        assert [path.name for path in server.root.iterdir()] == ["a.txt"]
        assert (server.root / "a.txt").read_bytes() == b"new"


def test_a_connection_dropped_mid_upload_leaves_neither_the_file_nor_the_temporary_one(tmp_path):
    written, dropped = set(), threading.Event()

    def drop_past_128_kib(path: Path, offset: int, length: int) -> None:
        written.add(path.name)
        if offset >= 128 * 1024 and not dropped.is_set():
            dropped.set()
            server.drop_connections()

    with SftpServer(tmp_path / "sftp", before_write=drop_past_128_kib) as server:
        error = failure("sftp.upload", tmp_path, TransientBlockError, credentials=server.credentials(),
                        data=file_of("big.bin", BIG))
        assert error.retry_safe  # nothing reached the final name: the runner may try again
        [temporary] = written
        assert dropped.is_set() and temporary_name_pattern("big.bin").fullmatch(temporary)
        assert list(server.root.iterdir()) == []  # the temporary file was removed, through a fresh session


def test_an_input_that_breaks_off_mid_upload_leaves_no_file(sftp_server, tmp_path):
    written = recording_writes(sftp_server)
    with pytest.raises(BlockError, match="cannot upload /big.bin: .*the input broke off"):
        upload(sftp_server, tmp_path, breaking_file("big.bin", BIG, fail_after=200 * 1024))
    assert len(written) == 1  # the server got part of the file...
    assert list(sftp_server.root.iterdir()) == []  # ...under a name that is gone now


def test_a_file_that_appears_during_the_upload_is_kept_and_the_temporary_one_removed(sftp_server, tmp_path):
    other = sftp_server.root / "big.bin"
    sftp_server.before_write = lambda path, offset, length: other.exists() or other.write_bytes(b"someone else's")
    error = failure("sftp.upload", tmp_path, credentials=sftp_server.credentials(), data=file_of("big.bin", BIG))
    assert "file already exists: /big.bin" in str(error)
    assert other.read_bytes() == b"someone else's"
    assert [path.name for path in sftp_server.root.iterdir()] == ["big.bin"]


def test_a_listing_during_a_slow_upload_never_shows_the_final_name_before_it_is_complete(sftp_server, tmp_path):
    sftp_server.before_write = lambda path, offset, length: time.sleep(0.1)  # 16 writes of 32 KiB: about 2 s
    with sftp_client(sftp_server) as client:
        watched = list_during(lambda: upload(sftp_server, tmp_path, file_of("big.bin", BIG)), lambda: listing(client))
    assert_never_partial(watched.listings, "big.bin", len(BIG), temporary_name_pattern("big.bin"))
    assert (sftp_server.root / "big.bin").read_bytes() == BIG
    assert [path.name for path in sftp_server.root.iterdir()] == ["big.bin"]


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

"""ftp.upload / ftp.download / ftp.list against pyftpdlib on loopback, plain and explicit FTPS."""
from __future__ import annotations

import ftplib
import io
import logging
import re
import time
import zipfile

import pytest

from canvas.execution.context import BlockAuthenticationError, BlockError, TransientBlockError
from canvas.execution.data import FileData, Records
from canvas.network.guard import NetworkPolicy
from tests.integration.blocks.net_support import (
    LOOPBACK, SHORT_TIMEOUT, assert_no_secrets, failure, file_of, logged_text, records, run_block,
)
from tests.integration.blocks.upload_support import (
    BIG, Listing, assert_never_partial, breaking_file, list_during, temporary_name_pattern,
)
from tests.servers.ftp import FtpServer

EMPLOYEES = [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}]


def upload(server, tmp_path, data, policy=LOOPBACK, **variables):
    return run_block("ftp.upload", tmp_path, variables=variables, credentials=server.credentials(), data=data,
                     policy=policy)


def test_records_are_uploaded_as_csv_with_the_extension_appended(ftp_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyftpdlib")
    output = upload(ftp_server, tmp_path, Records(iter(EMPLOYEES)), filename="NY_Employees_2024-05-01-10-30",
                    fileformat="csv", filepath="/")
    uploaded = ftp_server.home / "NY_Employees_2024-05-01-10-30.csv"
    assert uploaded.read_bytes() == b"id,name\r\n1,Ann\r\n2,Bob\r\n"
    assert isinstance(output, FileData) and output.read_bytes() == uploaded.read_bytes()
    renames = [line for line in logged_text(caplog) if " RNFR " in line or " RNTO " in line]
    assert ".part" in renames[0] and renames[1].split()[-2].endswith("/NY_Employees_2024-05-01-10-30.csv")
    assert [path.name for path in ftp_server.home.iterdir()] == [uploaded.name]  # no temporary file left


@pytest.mark.parametrize("fileformat, start", [("json", b"["), ("xml", b"<?xml")])
def test_records_can_be_uploaded_as_json_or_xml(ftp_server, tmp_path, fileformat, start):
    upload(ftp_server, tmp_path, Records(iter(EMPLOYEES)), filename="people", fileformat=fileformat)
    assert (ftp_server.home / f"people.{fileformat}").read_bytes().startswith(start)


def test_a_file_is_uploaded_as_is_into_the_directory(ftp_server, tmp_path):
    (ftp_server.home / "in").mkdir()
    upload(ftp_server, tmp_path, file_of("report.pdf", b"%PDF-1.7"), filepath="/in", filename="monthly")
    assert (ftp_server.home / "in" / "monthly.pdf").read_bytes() == b"%PDF-1.7"


def test_an_existing_file_is_kept_unless_overwrite_is_set(ftp_server, tmp_path):
    (ftp_server.home / "a.txt").write_bytes(b"old")
    error = failure("ftp.upload", tmp_path, variables={"filename": "a.txt"}, credentials=ftp_server.credentials(),
                    data=file_of("a.txt", b"new"))
    assert "file already exists: /a.txt" in str(error)
    assert (ftp_server.home / "a.txt").read_bytes() == b"old"
    upload(ftp_server, tmp_path, file_of("a.txt", b"new"), filename="a.txt", overwrite=True)
    assert (ftp_server.home / "a.txt").read_bytes() == b"new"
    assert sorted(path.name for path in ftp_server.home.iterdir()) == ["a.txt"]


# --- atomic upload: the final name never holds a partial file --------------------------------------------------


def stored_files(caplog: pytest.LogCaptureFixture) -> list[tuple[str, bool, int]]:
    """(name, complete, bytes) of each upload the server logged ("STOR /path completed=1 bytes=42 seconds=0.1")."""
    transfers = [re.search(r"STOR (\S+) completed=(\d) bytes=(\d+)", line) for line in logged_text(caplog)]
    return [(found[1].rsplit("/", 1)[-1], found[2] == "1", int(found[3])) for found in transfers if found]


def deleted_files(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Names the server deleted ("DELE /path 250 ...")."""
    return [found[1].rsplit("/", 1)[-1] for line in logged_text(caplog)
            if (found := re.search(r" DELE (\S+) 250", line))]


def listing(ftp: ftplib.FTP) -> Listing:
    return {name: int(facts["size"]) for name, facts in ftp.mlsd("/", ["type", "size"]) if facts["type"] == "file"}


def test_an_upload_is_written_under_a_temporary_name_of_its_attempt_and_renamed(ftp_server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyftpdlib")
    for _ in range(2):  # two attempts of the same block of the same run
        upload(ftp_server, tmp_path, file_of("big.bin", BIG), overwrite=True)
    assert (ftp_server.home / "big.bin").read_bytes() == BIG
    assert [path.name for path in ftp_server.home.iterdir()] == ["big.bin"]
    (first, *_), (second, *_) = stored_files(caplog)
    assert temporary_name_pattern("big.bin").fullmatch(first) and temporary_name_pattern("big.bin").fullmatch(second)
    assert first != second


def test_overwrite_on_a_server_whose_rename_cannot_replace_deletes_then_renames(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyftpdlib")
    with FtpServer(tmp_path / "ftp", rename_replaces=False) as server:
        (server.home / "a.txt").write_bytes(b"old")
        upload(server, tmp_path, file_of("a.txt", b"new"), overwrite=True)
        assert [path.name for path in server.home.iterdir()] == ["a.txt"]
        assert (server.home / "a.txt").read_bytes() == b"new"
    rename_replies = [found[1] for line in logged_text(caplog) if (found := re.search(r" RNTO \S+ (\d{3})", line))]
    assert rename_replies == ["550", "250"] and deleted_files(caplog) == ["a.txt"]


def test_a_connection_cut_mid_upload_leaves_neither_the_file_nor_the_temporary_one(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pyftpdlib")
    with FtpServer(tmp_path / "ftp", cut_uploads_after=128 * 1024) as server:
        error = failure("ftp.upload", tmp_path, TransientBlockError, credentials=server.credentials(),
                        data=file_of("big.bin", BIG))  # the 426 reply, or a broken pipe if we were still sending
        assert error.retry_safe  # nothing reached the final name: the runner may try again
        [(temporary, complete, size)] = stored_files(caplog)
        assert not complete and 128 * 1024 <= size < len(BIG)  # the server really got part of the file...
        assert deleted_files(caplog) == [temporary]  # ...and the block removed it
        assert list(server.home.iterdir()) == []


@pytest.mark.parametrize("server_fixture", ["ftp_server", "ftps_server"])
def test_an_input_that_breaks_off_mid_upload_leaves_no_file(server_fixture, request, tls_certs, tmp_path, caplog):
    """The dangerous case: we close the data connection early, so the server takes the part it got as complete."""
    caplog.set_level(logging.INFO, logger="pyftpdlib")
    server = request.getfixturevalue(server_fixture)
    policy = NetworkPolicy(allowlist=LOOPBACK.allowlist, ca_file=str(tls_certs.ca_file))
    with pytest.raises(BlockError, match="the input broke off"):
        upload(server, tmp_path, breaking_file("big.bin", BIG, fail_after=200 * 1024), policy=policy)
    # The server created the file; how much of what we sent it read before the connections closed is a race.
    [(temporary, _, size)] = stored_files(caplog)
    assert size <= 200 * 1024 and temporary_name_pattern("big.bin").fullmatch(temporary)
    assert deleted_files(caplog) == [temporary]
    assert list(server.home.iterdir()) == []


def test_a_listing_during_a_slow_upload_never_shows_the_final_name_before_it_is_complete(tmp_path):
    with FtpServer(tmp_path / "ftp", upload_rate=len(BIG) // 4) as server, ftplib.FTP() as lister:  # about 2 s
        lister.connect(server.host, server.port, timeout=10)
        lister.login(server.username, server.password)
        watched = list_during(lambda: upload(server, tmp_path, file_of("big.bin", BIG)), lambda: listing(lister))
    assert_never_partial(watched.listings, "big.bin", len(BIG), temporary_name_pattern("big.bin"))
    assert (server.home / "big.bin").read_bytes() == BIG
    assert [path.name for path in server.home.iterdir()] == ["big.bin"]


def test_list_gives_name_size_and_modified(ftp_server, tmp_path):
    (ftp_server.home / "b.csv").write_bytes(b"12345")
    (ftp_server.home / "a.json").write_bytes(b"{}")
    (ftp_server.home / "folder").mkdir()
    listed = records("ftp.list", tmp_path, credentials=ftp_server.credentials())
    assert [(entry["name"], entry["size"]) for entry in listed] == [("a.json", 2), ("b.csv", 5)]
    assert listed[0]["modified"].startswith(time.strftime("%Y-", time.gmtime())) and listed[0]["modified"][-1] == "Z"
    assert [e["name"] for e in records("ftp.list", tmp_path, credentials=ftp_server.credentials(),
                                       variables={"pattern": "*.csv"})] == ["b.csv"]


def test_download_of_one_file_gives_that_file(ftp_server, tmp_path):
    (ftp_server.home / "out").mkdir()
    (ftp_server.home / "out" / "data.csv").write_bytes(b"a,b\r\n1,2\r\n")
    output = run_block("ftp.download", tmp_path, credentials=ftp_server.credentials(),
                       variables={"filepath": "/out", "pattern": "*.csv"})
    assert output.name == "data.csv" and output.content_type == "text/csv"
    assert output.read_bytes() == b"a,b\r\n1,2\r\n"
    assert (ftp_server.home / "out" / "data.csv").exists()


def test_download_of_several_files_gives_a_zip_then_moves_them(ftp_server, tmp_path):
    for name in ("one.csv", "two.csv", "skip.txt"):
        (ftp_server.home / name).write_bytes(name.encode())
    (ftp_server.home / "done").mkdir()
    output = run_block("ftp.download", tmp_path, credentials=ftp_server.credentials(),
                       variables={"pattern": "*.csv", "moveTo": "/done"})
    with zipfile.ZipFile(io.BytesIO(output.read_bytes())) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == {"one.csv": b"one.csv",
                                                                              "two.csv": b"two.csv"}
    assert output.name == "files.zip"
    assert sorted(path.name for path in (ftp_server.home / "done").iterdir()) == ["one.csv", "two.csv"]
    assert sorted(path.name for path in ftp_server.home.iterdir()) == ["done", "skip.txt"]


def test_download_can_delete_the_files_afterwards(ftp_server, tmp_path):
    (ftp_server.home / "x.json").write_bytes(b"[]")
    run_block("ftp.download", tmp_path, credentials=ftp_server.credentials(),
              variables={"pattern": "x.json", "deleteAfter": True})
    assert not (ftp_server.home / "x.json").exists()


def test_download_without_a_matching_file_says_so(ftp_server, tmp_path):
    error = failure("ftp.download", tmp_path, credentials=ftp_server.credentials(), variables={"pattern": "*.csv"})
    assert "no file matching '*.csv' in /" in str(error)


def test_ftps_uploads_and_lists_over_tls(ftps_server, tls_certs, tmp_path):
    policy = NetworkPolicy(allowlist=LOOPBACK.allowlist, ca_file=str(tls_certs.ca_file))
    upload(ftps_server, tmp_path, Records(iter(EMPLOYEES)), policy=policy, filename="secure")
    assert [path.name for path in ftps_server.home.iterdir()] == ["secure.csv"]  # renamed, no temporary file left
    listed = records("ftp.list", tmp_path, credentials=ftps_server.credentials(), policy=policy)
    assert [entry["name"] for entry in listed] == ["secure.csv"]


def test_ftps_with_an_untrusted_certificate_is_refused_for_good(ftps_server, tmp_path):
    error = failure("ftp.list", tmp_path, credentials=ftps_server.credentials())
    assert "certificate verify failed" in str(error)


def test_a_wrong_password_is_an_authentication_error_without_the_password(ftp_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Password-1984"
    error = failure("ftp.list", tmp_path, BlockAuthenticationError, credentials=ftp_server.credentials(password=wrong))
    assert "FTP login failed" in str(error) and "530" in str(error)
    assert_no_secrets([str(error), *logged_text(caplog)], [wrong, ftp_server.password])


def test_a_closed_port_is_transient(ftp_server, closed_port, tmp_path):
    error = failure("ftp.list", tmp_path, TransientBlockError, credentials=ftp_server.credentials(port=closed_port))
    assert "connection refused" in str(error)


def test_a_silent_server_times_out(ftp_server, silent_server, tmp_path):
    started = time.monotonic()
    error = failure("ftp.list", tmp_path, TransientBlockError, variables={"timeout": SHORT_TIMEOUT},
                    credentials=ftp_server.credentials(port=silent_server.port))
    assert "timed out" in str(error) and time.monotonic() - started < SHORT_TIMEOUT + 5


def test_a_missing_directory_is_a_final_error(ftp_server, tmp_path):
    error = failure("ftp.upload", tmp_path, BlockError, variables={"filepath": "/nowhere", "filename": "a"},
                    credentials=ftp_server.credentials(), data=file_of("a.txt", b"x"))
    assert "/nowhere" in str(error)

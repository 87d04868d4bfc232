"""The file-system blob store (atomic writes, key validation) and the File Hub on top of it."""
from __future__ import annotations

import hashlib
import io

import pytest

from canvas.errors import NotFoundError
from canvas.execution.data import FileData
from canvas.storage.blob import BlobNotFoundError, FileHub, FileSystemBlobStore, InvalidFileNameError


@pytest.fixture
def store(tmp_path) -> FileSystemBlobStore:
    return FileSystemBlobStore(tmp_path / "blobs")


def all_files(store: FileSystemBlobStore) -> list[str]:
    return sorted(path.relative_to(store.root).as_posix() for path in store.root.rglob("*") if path.is_file())


def test_put_returns_size_and_sha256_and_open_reads_it_back(store):
    stored = store.put("runs/r1/block-1.out", lambda sink: sink.write(b"hello world"))
    assert (stored.key, stored.size) == ("runs/r1/block-1.out", 11)
    assert stored.sha256 == hashlib.sha256(b"hello world").hexdigest()
    with store.open("runs/r1/block-1.out") as blob:
        assert blob.read() == b"hello world"
    assert store.exists("runs/r1/block-1.out")


def test_put_file_links_the_file_in_and_outlives_it(store, tmp_path):
    source = tmp_path / "export.csv"
    source.write_bytes(b"id,name\n1,Ann\n")
    stored = store.put_file("runs/r1/block-2.out", source)
    content = b"id,name\n1,Ann\n"
    assert (stored.size, stored.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert store.path_for("runs/r1/block-2.out").stat().st_ino == source.stat().st_ino  # linked, not copied
    source.unlink()  # the block's temporary file goes; the blob stays
    with store.open("runs/r1/block-2.out") as blob:
        assert blob.read() == b"id,name\n1,Ann\n"
    assert all_files(store) == ["runs/r1/block-2.out"]


def test_put_file_copies_where_it_cannot_link(store, tmp_path, monkeypatch):
    source = tmp_path / "export.csv"
    source.write_bytes(b"x" * 300_000)

    def cross_device(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("canvas.storage.blob.os.link", cross_device)
    stored = store.put_file("a/b", source)
    assert stored.sha256 == hashlib.sha256(b"x" * 300_000).hexdigest()
    assert store.path_for("a/b").stat().st_ino != source.stat().st_ino
    assert store.path_for("a/b").read_bytes() == source.read_bytes()
    assert all_files(store) == ["a/b"]


def test_put_hands_back_what_the_writer_returned(store):
    assert store.put("a/b", lambda sink: sink.write(b"x") and "done").result == "done"


def test_put_accepts_a_writer_that_wraps_and_closes_the_stream(store):
    def write_text(sink):
        with io.TextIOWrapper(sink, encoding="utf-8") as text:
            text.write("é" * 10_000)

    stored = store.put("text/blob", write_text)
    assert stored.size == 20_000
    with store.open("text/blob") as blob:
        assert blob.read().decode("utf-8") == "é" * 10_000


def test_a_writer_that_fails_midway_leaves_nothing_behind(store):
    def failing(sink):
        sink.write(b"x" * 1_000_000)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        store.put("runs/r1/block-2.out", failing)
    assert not store.exists("runs/r1/block-2.out")
    assert all_files(store) == []  # no blob and no temporary file


def test_a_failed_rewrite_keeps_the_previous_blob(store):
    store.put("k", lambda sink: sink.write(b"old"))
    with pytest.raises(ValueError):
        store.put("k", lambda sink: (sink.write(b"new, half written"), int("boom")))
    with store.open("k") as blob:
        assert blob.read() == b"old"
    assert all_files(store) == ["k"]


def test_missing_blob_and_idempotent_delete(store):
    with pytest.raises(BlobNotFoundError) as caught:
        store.open("runs/none")
    assert isinstance(caught.value, NotFoundError)
    store.put("runs/x", lambda sink: sink.write(b"1"))
    store.delete("runs/x")
    store.delete("runs/x")
    store.delete("never/existed")
    assert not store.exists("runs/x")


@pytest.mark.parametrize(
    "key",
    ["", "../escape", "runs/../../etc/passwd", "/absolute", "runs\\windows", "a//b", "a/./b", "trailing/",
     "C:/drive", "runs/.canvas-tmp-x", "nul\x00byte"],
)
def test_unsafe_keys_are_rejected(store, key):
    with pytest.raises(ValueError):
        store.put(key, lambda sink: sink.write(b"x"))
    with pytest.raises(ValueError):
        store.open(key)
    assert all_files(store) == []


def test_list_keys(store):
    for key in ("p/a", "p/sub/b", "q/c"):
        store.put(key, lambda sink: sink.write(b"."))
    assert store.list_keys("p") == ["p/a", "p/sub/b"]
    assert store.list_keys("missing") == []


def test_file_hub_write_open_list_delete(store):
    hub = FileHub(store, "acct-1")
    stored = hub.write("reports/2026/jan.csv", FileData.from_bytes("jan.csv", "text/csv", b"a,b\n1,2\n"))
    assert stored.key == "filehub/acct-1/reports/2026/jan.csv"
    hub.write("notes.txt", FileData.from_bytes("notes.txt", "text/plain", b"hi"))
    opened = hub.open("reports/2026/jan.csv")
    assert (opened.name, opened.content_type, opened.read_bytes()) == ("jan.csv", "text/csv", b"a,b\n1,2\n")
    assert opened.read_bytes() == b"a,b\n1,2\n"  # opens again
    assert hub.list() == ["notes.txt", "reports/2026/jan.csv"]
    assert hub.list("*.csv") == ["reports/2026/jan.csv"]
    hub.delete("notes.txt")
    assert hub.list() == ["reports/2026/jan.csv"]
    with pytest.raises(BlobNotFoundError):
        hub.open("notes.txt")


def test_file_hubs_of_different_accounts_do_not_see_each_other(store):
    FileHub(store, "a").write("f.txt", FileData.from_bytes("f.txt", "text/plain", b"a"))
    assert FileHub(store, "b").list() == []


@pytest.mark.parametrize("name", ["../other-account/f.txt", "a/../../x", "/etc/passwd", "back\\slash", ""])
def test_file_hub_names_never_escape(store, name):
    hub = FileHub(store, "acct")
    with pytest.raises(InvalidFileNameError):
        hub.write(name, FileData.from_bytes("x", "text/plain", b"x"))
    with pytest.raises(ValueError):
        hub.open(name)


def test_file_hub_rejects_an_unsafe_account_id(store):
    for account in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            FileHub(store, account)

"""Both blob stores keep the BlobStore Protocol the same way: the file store, and the S3 store against a real
S3-speaking server on loopback (moto's standalone server, in a child process; no mock of the protocol)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tracemalloc

import pytest

from canvas.execution.data import FileData, Records
from canvas.execution.serialization import (
    KIND_FILE,
    KIND_RECORDS,
    load_output,
    store_output,
)
from canvas.storage import s3
from canvas.storage.blob import BlobNotFoundError, BlobStoreError, FileSystemBlobStore
from canvas.storage.s3 import DEFAULT_PART_SIZE, MIN_PART_SIZE, S3BlobStore
from tests.servers.raw_http import DROP, RawAnswer, RawHttpServer

MiB = 1024 * 1024


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """Each backend in turn; the S3 store with the smallest part size, so a few MiB already make a multipart
    upload."""
    if request.param == "file":
        return FileSystemBlobStore(tmp_path / "blobs", fsync=False)
    server = request.getfixturevalue("s3_environment")
    return S3BlobStore(server.create_bucket(), "deployment/blobs", server.endpoint_url, part_size=MIN_PART_SIZE)


@pytest.fixture
def s3_store(s3_environment):
    return S3BlobStore(s3_environment.create_bucket(), "blobs", s3_environment.endpoint_url)


def incomplete_uploads(store) -> list:
    if isinstance(store, FileSystemBlobStore):
        return [path for path in store.root.rglob("*") if path.name.startswith(".canvas-tmp-")]
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def chunks(total: int, chunk: bytes):
    """`total` bytes as repetitions of `chunk`, without ever holding more than `chunk`."""
    for _ in range(total // len(chunk)):
        yield chunk
    if total % len(chunk):
        yield chunk[:total % len(chunk)]


@pytest.mark.parametrize("size", [0, 1000, 2 * MIN_PART_SIZE + 123])  # empty, one PUT, a multipart upload
def test_a_put_blob_reads_back_with_its_size_and_sha256(store, size):
    data = os.urandom(size)

    def source(sink):
        for start in range(0, size, 100_000):
            sink.write(data[start:start + 100_000])
        return "what the writer returned"

    stored = store.put("runs/w1/r1-block-1.out", source)
    assert (stored.key, stored.size, stored.sha256) == ("runs/w1/r1-block-1.out", size,
                                                        hashlib.sha256(data).hexdigest())
    assert stored.result == "what the writer returned"
    assert store.exists("runs/w1/r1-block-1.out")
    with store.open("runs/w1/r1-block-1.out") as stream:
        assert stream.read() == data


def test_a_put_replaces_the_blob_under_the_key(store):
    store.put("a/b", lambda sink: sink.write(b"old"))
    store.put("a/b", lambda sink: sink.write(b"new"))
    with store.open("a/b") as stream:
        assert stream.read() == b"new"


@pytest.mark.parametrize("written", [10, 3 * MIN_PART_SIZE])  # fails before the first part, and after three
def test_a_failing_source_leaves_nothing_under_the_key(store, written):
    store.put("keep/me", lambda sink: sink.write(b"the old blob"))

    def failing(sink):
        for chunk in chunks(written, b"x" * MiB):
            sink.write(chunk)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        store.put("out/new", failing)
    with pytest.raises(RuntimeError, match="the source broke"):
        store.put("keep/me", failing)
    assert not store.exists("out/new")
    assert store.list_keys("out") == []
    with store.open("keep/me") as stream:
        assert stream.read() == b"the old blob"  # a failed overwrite leaves the previous blob whole
    assert incomplete_uploads(store) == []


def test_put_file_stores_the_file_and_leaves_it_in_place(store, tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(b"id,name\n" + b"1,Ada\n" * 1_000_000)
    stored = store.put_file("filehub/acct/export.csv", path)
    content = path.read_bytes()
    assert (stored.size, stored.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    with store.open("filehub/acct/export.csv") as stream:
        assert stream.read() == content


def test_local_path_only_for_the_file_store(store):
    store.put("k", lambda sink: sink.write(b"1"))
    assert (store.local_path("k") is not None) == isinstance(store, FileSystemBlobStore)


def test_delete_is_idempotent(store):
    store.put("runs/x", lambda sink: sink.write(b"1"))
    store.delete("runs/x")
    store.delete("runs/x")
    store.delete("never/was")
    assert not store.exists("runs/x")
    with pytest.raises(BlobNotFoundError):
        store.open("runs/x")


def test_list_keys_is_recursive_sorted_and_stays_in_its_folder(store):
    for key in ["runs/w/b", "runs/w/a/2", "runs/a", "runs/w/a/10", "runsx/other", "run", "filehub/acct/f"]:
        store.put(key, lambda sink: sink.write(b"."))
    assert store.list_keys("runs") == ["runs/a", "runs/w/a/10", "runs/w/a/2", "runs/w/b"]
    assert store.list_keys("runs/w/a") == ["runs/w/a/10", "runs/w/a/2"]
    assert store.list_keys("nothing/here") == []
    assert store.list_keys("run") == []  # a blob, not a folder


def test_list_keys_pages_through_many_objects(store, monkeypatch):
    monkeypatch.setattr(s3, "LIST_PAGE_SIZE", 7)  # several pages from a few objects (S3 sends 1000 a page)
    keys = sorted(f"many/{number:02d}" for number in range(30))
    for key in keys:
        store.put(key, lambda sink: None)
    assert store.list_keys("many") == keys


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/.", "back\\slash", "nul\x00",
                                 "a/.canvas-tmp-1", "C:/x", "k" * 1025])
def test_invalid_keys_are_refused_by_every_operation(store, key):
    for operation in (lambda: store.put(key, lambda sink: sink.write(b"x")), lambda: store.open(key),
                      lambda: store.exists(key), lambda: store.delete(key), lambda: store.list_keys(key),
                      lambda: store.put_file(key, __file__)):
        with pytest.raises(ValueError, match="invalid blob key"):
            operation()


def test_a_missing_blob_is_blob_not_found(store):
    with pytest.raises(BlobNotFoundError):
        store.open("runs/missing")
    store.put("runs/folder/x", lambda sink: sink.write(b"1"))
    with pytest.raises(BlobNotFoundError):
        store.open("runs/folder")  # a folder is no blob
    assert not store.exists("runs/folder") and not store.exists("runs/missing")


def test_open_streams_a_readable_binary_file(store):
    lines = b"".join(b'{"n":%d}\n' % number for number in range(200_000))
    store.put("lines", lambda sink: sink.write(lines))
    with store.open("lines") as stream:
        assert stream.readable() and stream.readline() == b'{"n":0}\n'
        rest, buffer = [], bytearray(64 * 1024)
        while count := stream.readinto(buffer):
            rest.append(bytes(buffer[:count]))
    assert stream.closed
    assert b'{"n":0}\n' + b"".join(rest) == lines


def test_check_passes_on_a_usable_store(store):
    store.check()


def test_fifty_megabytes_go_up_and_down_in_bounded_memory(s3_store):
    """The S3 store holds at most two parts going up (one filling, one travelling) and one read buffer going down,
    whatever the object's size."""
    size, chunk = 50 * 1000 * 1000, os.urandom(MiB)
    s3_store.put("warm/up", lambda sink: sink.write(b"1"))  # boto3 loads its S3 model (MiBs) on first use
    tracemalloc.start()
    try:
        stored = s3_store.put("big/output", lambda sink: [sink.write(piece) for piece in chunks(size, chunk)])
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest, read = hashlib.sha256(), 0
        with s3_store.open("big/output") as stream:
            while piece := stream.read(MiB):
                digest.update(piece)
                read += len(piece)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == read == size and stored.sha256 == digest.hexdigest()
    assert upload_peak < 2 * DEFAULT_PART_SIZE + 4 * MiB, f"upload peak {upload_peak / MiB:.1f} MiB"
    assert download_peak < 8 * MiB, f"download peak {download_peak / MiB:.1f} MiB"
    parts = s3_store.client.head_object(Bucket=s3_store.bucket, Key="blobs/big/output", PartNumber=1)
    assert parts["PartsCount"] == 6  # it did go up as a multipart upload, in 8 MiB parts


def test_check_names_a_missing_bucket(s3_environment):
    store = S3BlobStore("no-such-bucket", "", s3_environment.endpoint_url)
    with pytest.raises(BlobStoreError) as raised:
        store.check()
    assert str(raised.value) == (f"CANVAS_BLOB_URL: bucket 'no-such-bucket' does not exist at "
                                 f"{s3_environment.endpoint_url}")
    with pytest.raises(BlobStoreError, match="does not exist"):  # the same words when a put meets it
        store.put("k", lambda sink: sink.write(b"1"))


def test_check_says_access_is_denied_for_wrong_credentials(s3_environment):
    store = S3BlobStore(s3_environment.create_bucket(), "", s3_environment.endpoint_url)
    with s3_environment.requiring_auth(), pytest.raises(BlobStoreError) as raised:
        store.check()
    message = str(raised.value)
    assert message.startswith("CANVAS_BLOB_URL: access denied to bucket")
    assert "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message
    assert s3_environment.secret_access_key not in message and s3_environment.access_key_id not in message


def test_check_says_the_endpoint_cannot_be_reached(s3_environment, closed_port):
    endpoint = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(BlobStoreError, match=rf"^CANVAS_BLOB_URL: cannot reach {endpoint} \(.+\)"):
        S3BlobStore("bucket", "", endpoint).check()


@pytest.mark.parametrize("answer, said", [
    (lambda request: DROP, r"did not answer \(Connection was closed before we received a valid response .+\)"),
    (lambda request: RawAnswer(503), r"is failing \(HTTP 503\)"),
], ids=["connection dropped", "HTTP 503"])
@pytest.mark.parametrize("outage_seconds, attempts", [(10.0, s3.ATTEMPTS), (0.0, s3.ANSWERING_ATTEMPTS)],
                         ids=["a worker's store", "the API's store"])
def test_a_storage_that_connects_but_fails_is_named_in_words(s3_environment, answer, said, outage_seconds, attempts):
    """A server that drops the connection, or answers 5xx until botocore gives up (sooner for the API, which does
    not wait for the store): BlobStoreError, which the API answers 503 and a run shows as its error, not botocore's
    exception as it is. The server answered, so no worker waits for it beyond botocore's tries."""
    with RawHttpServer(answer) as server:
        store = S3BlobStore("bucket", "", server.url().rstrip("/"), outage_seconds=outage_seconds)
        with pytest.raises(BlobStoreError, match=rf"^CANVAS_BLOB_URL: {server.url().rstrip('/')} {said}$"):
            store.check()
        with pytest.raises(BlobStoreError, match=said):  # the same words from any operation, after its retries
            store.open("runs/w/r-block-1.out")
    tries = [(request.method, request.headers["amz-sdk-request"]) for request in server.requests]
    assert tries == [("HEAD", "attempt=1; max=1"), *(("GET", f"attempt={n}; max={attempts}")
                                                     for n in range(1, attempts + 1))]


def test_check_says_when_no_credentials_are_found(s3_environment, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for, here
    with pytest.raises(BlobStoreError, match="^CANVAS_BLOB_URL: no AWS credentials found .*AWS_ACCESS_KEY_ID"):
        S3BlobStore("bucket", "", s3_environment.endpoint_url).check()


def test_messages_never_show_a_password_in_the_endpoint(closed_port):
    store = S3BlobStore("bucket", "", f"http://user:hunter2@127.0.0.1:{closed_port}")
    assert store.location() == f"http://127.0.0.1:{closed_port}"


def test_the_file_store_check_says_where_it_cannot_write(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(BlobStoreError, match=r"^CANVAS_BLOB_URL: cannot write to .*a-file/blobs"):
        FileSystemBlobStore(tmp_path / "a-file" / "blobs").check()


# A real process whose files may not grow past 64 KiB (RLIMIT_FSIZE: the kernel answers EFBIG, as a full disk answers
# ENOSPC; Python ignores SIGXFSZ): the store's own write fails, then a source's own OSError (a remote file that went
# away while it was copied), which is not the store's.
FILES_CANNOT_GROW = """
import json, os, resource, sys
from canvas.storage.blob import FileSystemBlobStore

store = FileSystemBlobStore(sys.argv[1], fsync=False)
store.put("keep/me", lambda sink: sink.write(b"the old blob"))
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

def remote_went_away(sink):
    sink.write(b"x" * 1024)
    raise ConnectionResetError(104, "the remote file went away")

outcome = {}
for name, source in [("store", lambda sink: sink.write(b"x" * 1024 * 1024)), ("source", remote_went_away)]:
    try:
        store.put("keep/me", source)
    except Exception as error:
        outcome[name] = [type(error).__name__, str(error)]
print(json.dumps(outcome))
"""


def test_the_file_store_says_so_when_its_files_cannot_be_written(tmp_path):
    root = tmp_path / "blobs"
    finished = subprocess.run([sys.executable, "-c", FILES_CANNOT_GROW, str(root)], capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(finished.stdout)
    assert outcome["store"] == ["BlobStoreError", f"CANVAS_BLOB_URL: cannot write to {root} (File too large)"]
    assert outcome["source"] == ["ConnectionResetError", "[Errno 104] the remote file went away"]
    assert [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()] == ["keep/me"]
    assert (root / "keep" / "me").read_bytes() == b"the old blob"


def test_block_outputs_are_stored_and_loaded_on_s3(s3_store, tmp_path):
    records = [{"id": number, "name": f"n{number}", "tags": ["a", "ü"]} for number in range(2000)]
    stored, info = store_output(s3_store, "runs/w/r-block-1.out", Records(iter(records)))
    assert info.kind == KIND_RECORDS and info.record_count == 2000 and stored.size > 0
    assert list(load_output(s3_store, "runs/w/r-block-1.out", info)) == records

    path = tmp_path / "report.csv"
    path.write_bytes(b"id,name\n1,Ada\n")
    file = dataclasses.replace(FileData.from_path("report.csv", "text/csv", path), frozen_path=path)  # put_file
    stored, info = store_output(s3_store, "runs/w/r-block-2.out", file)
    assert info.kind == KIND_FILE and stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_output(s3_store, "runs/w/r-block-2.out", info)
    assert (loaded.name, loaded.content_type, loaded.frozen_path) == ("report.csv", "text/csv", None)
    assert loaded.read_bytes() == b"id,name\n1,Ada\n"


def test_the_services_use_the_bucket_of_the_settings_on_a_private_address(s3_environment, tmp_path):
    """The store's endpoint is the operator's: loopback works without CANVAS_ALLOW_PRIVATE_NETWORKS."""
    from canvas.extensions import Services
    from canvas.settings import load_settings

    bucket = s3_environment.create_bucket()
    settings = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_BLOB_URL": f"s3://{bucket}/canvas",
                                      "CANVAS_S3_ENDPOINT_URL": s3_environment.endpoint_url})
    assert not settings["ALLOW_PRIVATE_NETWORKS"]
    store = Services(settings).blob_store
    store.check()
    store.put("runs/w/r-block-1.out", lambda sink: sink.write(b'{"a":1}\n'))
    objects = s3_environment.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in objects] == ["canvas/runs/w/r-block-1.out"]

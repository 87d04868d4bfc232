"""The blob store on S3-compatible object storage (AWS S3, MinIO, Ceph...): the BlobStore Protocol over boto3.

Keys are the file store's keys (validated the same way), below an optional prefix in one bucket. Memory stays
bounded both ways: a put uploads its bytes as they are written, part by part (a multipart upload; one part leaves
while the next one fills), and open() streams the object's body instead of reading it whole.

An object appears under its key only when its upload completed: a single PUT, or the completion of the multipart
upload; a source that fails aborts the upload, so nothing is left under the key and no parts are left stored.

The endpoint is the operator's configuration (CANVAS_BLOB_URL, CANVAS_S3_ENDPOINT_URL), not a tenant's input: the
SSRF guard of tenants' connections does not apply to it, so a MinIO on a private address works as it is.
Credentials and region come from boto3's standard chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, shared config files and profiles, instance and container roles...).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as ConnectingError

from canvas.outages import Backoff
from canvas.storage.blob import (
    BlobNotFoundError,
    BlobStoreError,
    HashingWriter,
    StoredBlob,
    copy_path,
    key_problem,
    validate_key,
    write_through,
)

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part (all but the last)
DEFAULT_PART_SIZE = 8 * 1024 * 1024
PARTS_PER_SIZE_STEP = 1000  # the part size doubles every 1000 parts: S3 allows 10,000 parts per upload
READ_BUFFER_SIZE = 256 * 1024
LIST_PAGE_SIZE = 1000  # keys per listing request, S3's most
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
# Tries of one request, the first included, in botocore's standard retry mode (throttling, 5xx, dropped connections),
# with random waits in between of up to 0.05, 0.1, 0.2, 0.4, 0.8 s (1, 2, 4, 8, 16 s when throttled).
ATTEMPTS = 6
# A store that does not wait for an outage (outage_seconds 0: the API's, which answers 503 instead) gives up sooner
# on a store that does not answer too: a host gone dark held an API request for a minute (six 10 s connect timeouts).
ANSWERING_CONNECT_TIMEOUT_SECONDS, ANSWERING_READ_TIMEOUT_SECONDS, ANSWERING_ATTEMPTS = 3.0, 15.0, 2
OUTAGE_FIRST_WAIT_SECONDS, OUTAGE_MAX_WAIT_SECONDS = 0.25, 2.0  # S3BlobStore.send's waits for a store it cannot reach
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                                 "ExpiredToken", "AllAccessDisabled", "AccountProblem"})
MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404"})  # "404": the bodiless answer to HEAD of a bucket
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404"})


class S3BlobStore:
    """Blobs as objects `<prefix>/<key>` in `bucket`, at `endpoint_url` (None: AWS S3 itself)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 part_size: int = DEFAULT_PART_SIZE, outage_seconds: float = 0.0):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's smallest part)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.part_size = part_size
        self.outage_seconds = outage_seconds  # how long a request waits for a store it cannot connect to
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._lock = threading.Lock()
        self._clients: tuple[int, Any] | None = None  # (process id, client)

    @property
    def client(self):  # noqa: ANN201 - a boto3 S3 client
        """This process's client: a child forked after the first use must not share the parent's pooled
        connections (two processes writing on one socket), so it makes its own."""
        with self._lock:
            if self._clients is None or self._clients[0] != os.getpid():
                self._clients = (os.getpid(), self._new_client())
            return self._clients[1]

    def _new_client(self):  # noqa: ANN202 - a boto3 S3 client
        if self.outage_seconds > 0:
            return new_client(self.endpoint_url)
        return new_client(self.endpoint_url, ANSWERING_ATTEMPTS, ANSWERING_CONNECT_TIMEOUT_SECONDS,
                          ANSWERING_READ_TIMEOUT_SECONDS)

    def object_key(self, key: str) -> str:
        validate_key(key)
        return self._root + key

    def send(self, operation: str, **params: Any) -> Any:
        """One request of the client (`operation`: get_object, put_object...), after botocore's own quick retries
        (ATTEMPTS). While no connection can be made to the store (restarting, a network cut), it is tried again for
        up to `outage_seconds`. Sending it again cannot write anything twice: every request here is a read, a
        delete, or a PUT of the same bytes under the same key or part number; the completion of an upload that an
        earlier try did complete is refused (NoSuchUpload), and that put fails instead."""
        deadline = time.monotonic() + self.outage_seconds
        backoff = Backoff(OUTAGE_MAX_WAIT_SECONDS, OUTAGE_FIRST_WAIT_SECONDS)
        while True:
            try:
                return getattr(self.client, operation)(**params)
            except ConnectingError as error:
                wait = backoff.next_delay()
                if isinstance(error, SSLError) or time.monotonic() + wait > deadline:  # TLS: a setting, not an outage
                    raise
                if backoff.failures == 1:  # one line per request, not one per try
                    log.warning("%s: cannot reach %s (%s); waiting up to %.0f s for it", operation, self.location(),
                                error.__class__.__name__, self.outage_seconds)
                time.sleep(wait)

    def put(self, key: str, source: Callable[[BinaryIO], Any]) -> StoredBlob:
        upload = _Upload(self, self.object_key(key))
        hashing = HashingWriter(upload)
        try:
            result = write_through(hashing, source)
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        return StoredBlob(key, hashing.size, hashing.digest.hexdigest(), result)

    def put_file(self, key: str, path: Path) -> StoredBlob:
        """Streams the file up (there is no link to make into object storage)."""
        return self.put(key, lambda sink: copy_path(path, sink))

    def open(self, key: str) -> BinaryIO:
        object_key = self.object_key(key)
        with self.translated_errors():
            try:
                response = self.send("get_object", Bucket=self.bucket, Key=object_key)
            except ClientError as error:
                if error_code(error) in MISSING_KEY_CODES:
                    raise BlobNotFoundError(f"no blob {key!r}") from None
                raise
        return io.BufferedReader(_BodyReader(response["Body"]), buffer_size=READ_BUFFER_SIZE)

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> None:
        object_key = self.object_key(key)
        with self.translated_errors():
            self.send("delete_object", Bucket=self.bucket, Key=object_key)  # S3 answers 204 for a missing key too

    def exists(self, key: str) -> bool:
        """A missing bucket also answers 404 here (HEAD has no body to tell): check() tells them apart."""
        object_key = self.object_key(key)
        with self.translated_errors():
            try:
                self.send("head_object", Bucket=self.bucket, Key=object_key)
            except ClientError as error:
                if error_code(error) in MISSING_KEY_CODES:
                    return False
                raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        folder = self.object_key(prefix) + "/"
        keys = []
        with self.translated_errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": LIST_PAGE_SIZE})
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self._root):]
                    if key_problem(key) is None:  # skips what other tools put there ("folder/" markers...)
                        keys.append(key)
        return sorted(keys)

    def check(self) -> None:
        """One HEAD of the bucket, without retries, so a wrong setting is reported at once."""
        client = new_client(self.endpoint_url, attempts=1)
        with self.translated_errors():
            client.head_bucket(Bucket=self.bucket)

    @contextlib.contextmanager
    def translated_errors(self) -> Iterator[None]:
        """botocore errors that need the operator (missing bucket, refused credentials, unreachable endpoint) as
        BlobStoreError saying what to fix; anything else as it is."""
        try:
            yield
        except (BotoCoreError, ClientError) as error:
            message = self._problem(error)
            if message is None:
                raise
            raise BlobStoreError(message) from error

    def _problem(self, error: Exception) -> str | None:
        if isinstance(error, NoCredentialsError):
            return ("CANVAS_BLOB_URL: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "or another standard AWS credential source)")
        if isinstance(error, ConnectingError):  # refused, timed out, TLS or proxy failures: no connection made
            return (f"CANVAS_BLOB_URL: cannot reach {self.location()} ({error}); check CANVAS_S3_ENDPOINT_URL and "
                    f"the network")
        if isinstance(error, HTTPClientError):  # connected, then the connection dropped or the answer never came
            return f"CANVAS_BLOB_URL: {self.location()} did not answer ({error})"
        if not isinstance(error, ClientError):
            return None
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500:  # botocore tried again before giving up
            said = f"HTTP {status}" if code in ("", str(status)) else f"HTTP {status} {code}"
            return f"CANVAS_BLOB_URL: {self.location()} is failing ({said})"
        if code in MISSING_BUCKET_CODES:
            return f"CANVAS_BLOB_URL: bucket {self.bucket!r} does not exist at {self.location()}"
        if code in ACCESS_DENIED_CODES or code == "403":
            said = f"HTTP {code}" if code.isdigit() else code  # HEAD answers carry no error code, only a status
            return (f"CANVAS_BLOB_URL: access denied to bucket {self.bucket!r} at {self.location()} ({said}; check "
                    f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket's policy)")
        return None

    def location(self) -> str:
        """The endpoint for messages, without any user or password it may carry."""
        if self.endpoint_url is None:
            return f"AWS S3 ({self.client.meta.region_name or 'default region'})"
        parts = urlsplit(self.endpoint_url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix} at {self.endpoint_url or 'AWS'})"


def new_client(endpoint_url: str | None, attempts: int = ATTEMPTS,  # noqa: ANN201 - a boto3 S3 client
               connect_timeout: float = CONNECT_TIMEOUT_SECONDS, read_timeout: float = READ_TIMEOUT_SECONDS):
    config = Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},  # `max_attempts` would count retries only
        # S3-compatible servers are usually reached by IP or an internal name: bucket in the path, not in the host.
        s3={"addressing_style": "path"} if endpoint_url else {},
        # botocore's default CRC checksums on every request are refused by several S3-compatible servers; the
        # content hash is ours anyway (sha256 on the way up, recorded with the output).
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    # A session per client: boto3's default session is not safe to share between threads that create clients.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class _Upload:
    """The bytes of one put on their way up, written by HashingWriter.

    Up to one part they stay in memory and go as a single PUT at complete(); beyond that they go as a multipart
    upload, each part handed to one background thread while the next one fills, so at most two parts are held
    and the writer keeps producing while a part travels."""

    def __init__(self, store: S3BlobStore, object_key: str):
        self._store = store
        self._key = object_key
        self._buffer = bytearray()  # grows for the first part (most blobs are small); later ones are allocated whole
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._part_count = 0
        self._in_flight: Future | None = None
        self._sender: ThreadPoolExecutor | None = None

    def _part_size(self) -> int:
        """The size of the part being filled."""
        return self._store.part_size * 2 ** (self._part_count // PARTS_PER_SIZE_STEP)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        total = view.nbytes
        while view.nbytes:
            if self._filled == self._part_size():  # a full part goes only once more bytes come
                self._send_part(last=False)
            taken = min(view.nbytes, self._part_size() - self._filled)
            self._buffer[self._filled:self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]
        return total

    def _take_part(self, last: bool) -> bytearray:
        """The filled bytes (the buffer itself, cut in place) and a fresh buffer for the next part, allocated whole:
        growing it would copy it while the previous part is still held."""
        part = self._buffer
        del part[self._filled:]
        self._buffer, self._filled = bytearray() if last else bytearray(self._part_size()), 0
        return part

    def _send_part(self, last: bool) -> None:
        store = self._store
        if self._upload_id is None:
            with store.translated_errors():
                answer = store.send("create_multipart_upload", Bucket=store.bucket, Key=self._key)
            self._upload_id = answer["UploadId"]
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="s3-part")
        self._wait_for_part()
        self._part_count += 1
        self._in_flight = self._sender.submit(self._upload_part, self._part_count, self._take_part(last))

    def _upload_part(self, number: int, part: bytearray) -> dict:
        store = self._store
        with store.translated_errors():
            answer = store.send("upload_part", Bucket=store.bucket, Key=self._key, UploadId=self._upload_id,
                                PartNumber=number, Body=part)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _wait_for_part(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            self._parts.append(in_flight.result())

    def complete(self) -> None:
        """Makes the object visible under its key, whole: the one moment a reader can see it."""
        store = self._store
        if self._upload_id is None:
            with store.translated_errors():
                store.send("put_object", Bucket=store.bucket, Key=self._key, Body=self._take_part(last=True))
            return
        self._send_part(last=True)  # never empty: a full part is only sent when more bytes come
        self._wait_for_part()
        self._close_sender()
        with store.translated_errors():
            store.send("complete_multipart_upload", Bucket=store.bucket, Key=self._key, UploadId=self._upload_id,
                       MultipartUpload={"Parts": self._parts})

    def abort(self) -> None:
        """Drops the stored parts, so neither an object nor an incomplete upload (billed storage) is left."""
        self._buffer, self._filled = bytearray(), 0
        self._close_sender()  # lets a part in flight finish first: aborting under it could leave that part behind
        if self._upload_id is None:
            return
        store = self._store
        try:
            store.client.abort_multipart_upload(Bucket=store.bucket, Key=self._key, UploadId=self._upload_id)
        except Exception as error:  # noqa: BLE001 - the put's own error is the one to raise
            log.warning("could not abort the upload of %s (%s); a lifecycle rule AbortIncompleteMultipartUpload "
                        "on the bucket removes such leftovers", self._key, error)

    def _close_sender(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None


class _BodyReader(io.RawIOBase):
    """The object's HTTP body as a raw stream, read as it arrives (io.BufferedReader adds readline and the rest).
    botocore checks at the end that as many bytes came as announced, so a cut connection is an error, not a
    shorter blob."""

    def __init__(self, body):  # noqa: ANN001 - botocore's StreamingBody
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        count = len(data)
        memoryview(buffer).cast("B")[:count] = data
        return count

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()

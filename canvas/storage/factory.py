"""Which blob store a process uses, from one setting: CANVAS_BLOB_URL.

- unset: files under <data dir>/blobs (one machine, or a shared file system);
- `file:///absolute/path`: files there;
- `s3://bucket/prefix`: S3-compatible object storage, at CANVAS_S3_ENDPOINT_URL (unset: AWS S3 itself), with the
  standard AWS credential sources (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, profiles, roles).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from canvas.settings import SettingsError
from canvas.storage.blob import FileSystemBlobStore, key_problem

SETTING = "CANVAS_BLOB_URL"


def blob_store_from_settings(settings: Mapping[str, Any], data_dir: Path, fsync: bool = True,  # noqa: ANN201
                             outage_seconds: float = 0.0):
    """A FileSystemBlobStore or an S3BlobStore (imported only then: boto3 costs ~40 MiB and half a second);
    `outage_seconds`: how long the S3 store's requests wait for a store they cannot connect to."""
    url = (settings.get("BLOB_URL") or "").strip()
    if not url:
        return FileSystemBlobStore(Path(data_dir) / "blobs", fsync=fsync)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise SettingsError(f"{SETTING} takes no query or fragment, got {url!r}")
    if parts.scheme == "file":
        return FileSystemBlobStore(_file_path(url, parts), fsync=fsync)
    if parts.scheme == "s3":
        bucket, prefix = _bucket_and_prefix(url, parts)
        from canvas.storage.s3 import S3BlobStore

        return S3BlobStore(bucket, prefix, endpoint_url=settings.get("S3_ENDPOINT_URL") or None,
                           outage_seconds=outage_seconds)
    raise SettingsError(f"{SETTING} must be file:///absolute/path or s3://bucket/prefix, got {_shown(url)!r}")


def _file_path(url: str, parts) -> Path:  # noqa: ANN001 - SplitResult
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise SettingsError(f"{SETTING} must name an absolute path on this machine (file:///path), got {_shown(url)!r}")
    return Path(unquote(parts.path))


def _bucket_and_prefix(url: str, parts) -> tuple[str, str]:  # noqa: ANN001 - SplitResult
    if "@" in parts.netloc or ":" in parts.netloc:
        raise SettingsError(f"{SETTING}: put credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the endpoint "
                            f"in CANVAS_S3_ENDPOINT_URL, not in the s3:// URL")
    if not parts.netloc:
        raise SettingsError(f"{SETTING} must name a bucket (s3://bucket/prefix), got {url!r}")
    prefix = unquote(parts.path).strip("/")
    problem = key_problem(prefix) if prefix else None
    if problem:
        raise SettingsError(f"{SETTING}: the prefix {prefix!r} {problem}")
    return parts.netloc, prefix


def _shown(url: str) -> str:
    """The URL without a user and password, should someone have put them there."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

"""CANVAS_BLOB_URL picks the blob store: the data dir by default, a folder, or an S3 bucket and prefix."""
from __future__ import annotations

import pytest

from canvas.settings import SettingsError, load_settings
from canvas.storage.blob import FileSystemBlobStore
from canvas.storage.factory import blob_store_from_settings


def store_for(tmp_path, **environment):
    environ = {"CANVAS_DATA_DIR": str(tmp_path), **{f"CANVAS_{name}": value for name, value in environment.items()}}
    return blob_store_from_settings(load_settings(environ=environ), tmp_path, fsync=False)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_keeps_the_files_under_the_data_dir(tmp_path, value):
    store = store_for(tmp_path) if value is None else store_for(tmp_path, BLOB_URL=value)
    assert isinstance(store, FileSystemBlobStore) and store.root == (tmp_path / "blobs").resolve()
    assert store.fsync is False


@pytest.mark.parametrize("url_path", ["{path}", "{path}/", "{path}/with%20space"])
def test_a_file_url_names_the_folder(tmp_path, url_path):
    url = "file://" + url_path.format(path=tmp_path)
    store = store_for(tmp_path, BLOB_URL=url)
    expected = tmp_path / "with space" if "%20" in url else tmp_path
    assert isinstance(store, FileSystemBlobStore) and store.root == expected.resolve()


def test_an_s3_url_names_bucket_prefix_and_the_endpoint_setting(tmp_path):
    from canvas.storage.s3 import S3BlobStore

    store = store_for(tmp_path, BLOB_URL="s3://canvas-blobs/prod/eu/", S3_ENDPOINT_URL="http://10.1.2.3:9000")
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == ("canvas-blobs", "prod/eu", "http://10.1.2.3:9000")
    assert store.object_key("runs/x") == "prod/eu/runs/x"
    bare = store_for(tmp_path, BLOB_URL="s3://canvas-blobs")
    assert (bare.prefix, bare.endpoint_url, bare.object_key("runs/x")) == ("", None, "runs/x")



@pytest.mark.parametrize("environment, worker_waits", [({}, 10.0), ({"CANVAS_BLOB_OUTAGE_SECONDS": "2.5"}, 2.5)])
def test_a_workers_store_waits_for_the_object_store_and_the_apis_does_not(tmp_path, environment, worker_waits):
    from canvas.extensions import Services
    from workers import process_app

    settings = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_BLOB_URL": "s3://b", **environment})
    worker = process_app(settings).extensions["canvas"]
    assert (worker.blob_store.outage_seconds, Services(settings).blob_store.outage_seconds) == (worker_waits, 0.0)


@pytest.mark.parametrize("url", ["ftp://host/x", "blobs", "/var/blobs", "file:relative", "file://server/share",
                                 "s3://", "s3:///prefix-only", "s3://bucket/a/../b", "s3://bucket/x?region=eu",
                                 "gs://bucket"])
def test_unusable_urls_name_the_setting(tmp_path, url):
    with pytest.raises(SettingsError, match="^CANVAS_BLOB_URL"):
        store_for(tmp_path, BLOB_URL=url)


@pytest.mark.parametrize("url", ["s3://AKIAEXAMPLE:hunter2@bucket/prefix", "https://user:hunter2@host/x"])
def test_a_url_with_credentials_is_refused_without_repeating_them(tmp_path, url):
    with pytest.raises(SettingsError) as raised:
        store_for(tmp_path, BLOB_URL=url)
    assert "hunter2" not in str(raised.value)

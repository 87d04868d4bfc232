"""The default number of API workers (`canvas api` without --workers or CANVAS_API_WORKERS): threaded workers (the
default, CANVAS_API_THREADS > 1) one per core, sync workers (one thread each) 2 x cores + 1; either as far as half
the available memory holds them at ~100 MB each, never fewer than 2. And the worker class that goes with the
threads."""
from __future__ import annotations

import pytest

from canvas.settings import SettingsError, load_settings
from config.gunicorn import (
    SYNC_WORKER,
    THREADED_WORKER,
    available_memory,
    default_workers,
    machine_default_workers,
    worker_class_for,
)

GB = 1024 ** 3


@pytest.mark.parametrize(("cores", "available", "expected"), [
    pytest.param(1, 16 * GB, 2, id="one core, plenty of memory: still 2"),
    pytest.param(2, 24 * GB, 2, id="two cores, plenty of memory: one per core"),
    pytest.param(8, 64 * GB, 8, id="eight cores, plenty of memory: one per core"),
    pytest.param(8, int(0.6 * GB), 3, id="eight cores, 0.6 GB available: half of it at 100 MB each"),
    pytest.param(4, int(0.3 * GB), 2, id="little memory: still 2"),
    pytest.param(0, 16 * GB, 2, id="cores unknown: as one"),
])
def test_default_threaded_workers_follow_cores_and_memory(cores, available, expected):
    assert default_workers(cores, available, threads=4) == expected


@pytest.mark.parametrize(("cores", "available", "expected"), [
    pytest.param(1, 16 * GB, 3, id="one core, plenty of memory: 2 x 1 + 1"),
    pytest.param(2, 24 * GB, 5, id="two cores, plenty of memory: 2 x 2 + 1"),
    pytest.param(8, 1 * GB, 5, id="eight cores, 1 GB available: half of it at 100 MB each"),
    pytest.param(4, int(0.3 * GB), 2, id="little memory: still 2"),
])
def test_default_sync_workers_follow_cores_and_memory(cores, available, expected):
    assert default_workers(cores, available, threads=1) == expected


def test_without_a_memory_figure_cores_decide():
    assert default_workers(4, None, threads=4) == 4
    assert default_workers(4, None, threads=1) == 9
    assert default_workers(1, None, threads=4) == 2


def test_one_thread_is_a_sync_worker_more_are_threaded():
    assert worker_class_for(1) == SYNC_WORKER
    assert worker_class_for(2) == THREADED_WORKER == "canvas.wsgi_server.JsonErrorThreadWorker"


def test_this_machine_gets_at_least_two_and_its_memory_is_read():
    assert machine_default_workers(4) >= 2
    assert available_memory() is None or available_memory() > 0


def test_api_threads_are_four_by_default_and_at_least_one(tmp_path):
    assert load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path)})["API_THREADS"] == 4
    assert load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_API_THREADS": "1"})["API_THREADS"] == 1
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_API_THREADS": "0"})
    assert raised.value.problems == ["CANVAS_API_THREADS must be at least 1; got 0"]


def test_the_api_app_is_built_with_its_objects_out_of_the_cyclic_collectors_sight(base_settings, migrated_database):
    """gunicorn's master builds the app once (preload_app) and freezes what it made: a worker's full collections do
    not walk the app's objects (each cost a large answer 60-100 ms) nor write to the pages shared with the master."""
    import gc

    from canvas.wsgi_server import CanvasServer

    gc.unfreeze()
    try:
        app = CanvasServer("127.0.0.1:0", workers=1, threads=1, app_config=dict(base_settings)).load()
        assert gc.get_freeze_count() > 10_000
        assert not any(tracked is app.url_map for tracked in gc.get_objects())  # the permanent generation's
        app.extensions["canvas"].close()
    finally:
        gc.unfreeze()

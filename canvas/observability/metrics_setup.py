"""Where a process's Prometheus metrics live, decided before prometheus_client is loaded (it picks its storage once).

Without a directory, metrics are plain in-memory values of the process. A process whose metrics must be read by
another process, or must survive the processes it forks, writes them to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multi-process mode) and whoever serves them reads the whole directory:

* `canvas up`: one directory for all its children, ``<DATA_DIR>/metrics``, emptied at start; the API's `/metrics`
  then shows the API's gunicorn workers, the worker (and the runs it forks) and the scheduler in one scrape.
* `canvas api` alone: a private temporary directory for its gunicorn workers, removed when it exits.
* `canvas worker` / `canvas scheduler` with ``--metrics-port``: the same, served on that port.

This module must not import prometheus_client: it runs before the process decides.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TEMP_PREFIX = "canvas-metrics-"  # then the role and the pid of the process that owns the directory
SHARED_DIR_NAME = "metrics"
log = logging.getLogger(__name__)

# Set by `canvas worker`: a process it forks (RQ's fork worker class runs each job in one, one at a time) writes to
# files named after the worker rather than after its own pid, so the directory does not grow by a file per run.
forked_children_share_files = False


def metrics_enabled(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("METRICS_ENABLED", True))


def use_shared_dir(settings: Mapping[str, Any]) -> Path | None:
    """`canvas up`: ``<DATA_DIR>/metrics``, emptied (the counts of an earlier start would be added to this one's),
    set in the environment every child inherits."""
    if not metrics_enabled(settings):
        os.environ.pop(MULTIPROC_ENV, None)
        return None
    directory = Path(settings["DATA_DIR"]) / SHARED_DIR_NAME
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


def use_own_dir(settings: Mapping[str, Any], role: str) -> Path | None:
    """A process serving its own metrics: the directory it was given (by `canvas up`, or by the operator, who then
    empties it between starts), else a private temporary one, removed when this process exits."""
    if not metrics_enabled(settings):
        return None
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    _check_not_loaded_yet()
    _remove_dirs_of_dead_processes()
    directory = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{role}-{os.getpid()}-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    owner = os.getpid()
    # Forked children (gunicorn's workers) inherit the handler: only the process that made the directory removes it.
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(directory, ignore_errors=True))
    return directory


def _remove_dirs_of_dead_processes() -> None:
    """Private directories whose owner was killed (SIGKILL: no exit handler ran) are removed by the next start."""
    for directory in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*-*"):
        owner = directory.name[len(TEMP_PREFIX):].split("-")
        if len(owner) == 3 and owner[1].isdigit() and not _alive(int(owner[1])):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _check_not_loaded_yet() -> None:
    """The metrics module picks its storage when it is loaded: loaded before the directory was set, this process
    would keep its counts in memory, where nobody serving the directory sees them."""
    if "canvas.observability.metrics" in sys.modules:
        raise RuntimeError("canvas.observability.metrics was loaded before its multi-process directory was set")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None

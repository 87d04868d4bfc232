"""The embedded Redis's owner (`canvas up`, or a lone process) hands the server its log file and closes its own
copy at once, rather than leaving it to the garbage collector (a ResourceWarning in every owner's log with -W
default): the server goes on writing to the file."""
from __future__ import annotations

import gc
import warnings

from canvas.queueing.embedded import EmbeddedRedis


def test_starting_the_server_leaves_no_file_unclosed_and_the_server_writes_its_log(tmp_path):
    server = EmbeddedRedis({"DATA_DIR": str(tmp_path), "REDIS_URL": None})
    gc.collect()  # what earlier tests of this process left is theirs: only what the start leaves is counted below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            assert server.start()
            gc.collect()
        finally:
            server.stop()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []
    assert b"ready to accept connections" in (server.directory / "redis.log").read_bytes().lower()

"""The supervisor of `canvas up` only starts and watches processes (benchmarks/footprint.py: ~23 MB resident): it
loads no Redis client, no database layer and no metrics library. It tells that its embedded Redis is up by a PING
over the bare socket."""
from __future__ import annotations

from tests.process_tools import canvas_env
from tests.unit.test_lazy_imports import loaded_after

NOT_FOR_THE_SUPERVISOR = ("redis", "asyncio", "sqlalchemy", "prometheus_client", "flask")


def test_the_supervisor_starts_and_pings_the_embedded_redis_without_a_client(tmp_path):
    code = """
        import canvas.cli, canvas.supervisor
        from canvas.observability import metrics_setup
        from canvas.queueing.embedded import EmbeddedRedis
        from canvas.settings import load_settings

        embedded = EmbeddedRedis(load_settings())
        answered = [embedded.is_running(), embedded.start(), embedded.is_running()]
        embedded.stop()
        result = [*answered, embedded.is_running()]
    """
    outcome = loaded_after(code, NOT_FOR_THE_SUPERVISOR, canvas_env(tmp_path / "data"))
    assert outcome["result"] == [False, True, True, False]  # down, started by us, up, stopped
    assert outcome["loaded"] == []

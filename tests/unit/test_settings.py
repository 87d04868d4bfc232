"""Settings: defaults, CANVAS_* environment overrides, explicit overrides."""
from __future__ import annotations

from pathlib import Path

import pytest
from redis.connection import parse_url
from sqlalchemy.engine import make_url

import config.default
from canvas.settings import SettingsError, embedded_redis_socket, load_settings, redis_url


def test_defaults_put_everything_under_the_data_dir(tmp_path):
    settings = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path)})
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'canvas.db'}"
    assert redis_url(settings) == f"unix://{tmp_path / 'redis' / 'redis.sock'}"


@pytest.mark.parametrize("name", ["dä ta", "a#b", "a?b=c", "a%41b", "a@b:c", "a;b&c", "a+b", "ø"])
def test_a_data_dir_of_any_name_gives_urls_that_lead_back_to_it(tmp_path, name):
    data_dir = tmp_path / name
    settings = load_settings(environ={"CANVAS_DATA_DIR": str(data_dir)})
    assert make_url(settings["DATABASE_URL"]).database == str(data_dir / "canvas.db")
    assert parse_url(redis_url(settings))["path"] == str(data_dir / "redis" / "redis.sock")


def test_the_socket_path_limit_counts_bytes_not_characters(tmp_path):
    """sun_path holds bytes: a path of 'ø' within the limit in characters is twice as long in bytes."""
    short_in_characters = tmp_path / ("ø" * max(1, 95 - len(str(tmp_path)) - len("/redis/redis.sock")))
    assert len(str(short_in_characters / "redis" / "redis.sock")) <= 100
    socket_path = embedded_redis_socket(load_settings(environ={"CANVAS_DATA_DIR": str(short_in_characters)}))
    assert len(str(socket_path).encode()) <= 100


def test_environment_values_are_parsed_by_the_type_of_their_default(tmp_path):
    settings = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_TRUSTED_PROXY_COUNT": "2",
                                      "CANVAS_BENCHMARK_ENDPOINTS": "yes", "CANVAS_VERIFY_TIMEOUT_SECONDS": "2.5"})
    assert settings["TRUSTED_PROXY_COUNT"] == 2
    assert settings["BENCHMARK_ENDPOINTS"] is True
    assert settings["VERIFY_TIMEOUT_SECONDS"] == 2.5


def test_explicit_overrides_win_over_the_environment(tmp_path):
    settings = load_settings({"TRUSTED_PROXY_COUNT": 3}, environ={"CANVAS_TRUSTED_PROXY_COUNT": "1",
                                                                  "CANVAS_DATA_DIR": str(tmp_path)})
    assert settings["TRUSTED_PROXY_COUNT"] == 3


def test_postgres_urls_get_the_psycopg_driver(tmp_path):
    settings = load_settings(environ={"CANVAS_DATABASE_URL": "postgresql://u@h/db", "CANVAS_DATA_DIR": str(tmp_path)})
    assert settings["DATABASE_URL"] == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(("name", "value"), [("CANVAS_TRUSTED_PROXY_COUNT", "many"),
                                             ("CANVAS_BENCHMARK_ENDPOINTS", "perhaps")])
def test_unusable_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value})


def test_deep_data_dirs_get_a_short_socket_path(tmp_path):
    deep = tmp_path / ("d" * 120)
    socket = redis_url(load_settings(environ={"CANVAS_DATA_DIR": str(deep)}))
    assert len(socket) < 110 and socket.startswith("unix://")


def test_the_readme_configuration_table_names_every_setting():
    """An operator looks a setting up in the README: none may be missing from its table."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Configuration"):readme.index("## API conventions")]
    missing = [name for name in dir(config.default) if name.isupper() and f"| `CANVAS_{name}` |" not in table]
    assert missing == [], f"settings missing from the README's configuration table: {missing}"

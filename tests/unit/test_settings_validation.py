"""Settings are checked at start: choices, ranges and URLs from one table, every problem on a line of its own,
exit status 2; CANVAS_* variables that name no setting are warned about; `canvas --version`; `canvas secrets
generate-key`."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from canvas.cli import cli
from canvas.secrets import SecretBox
from canvas.settings import SettingsError, load_settings, unknown_variable_warnings


def _problems(tmp_path, **variables: str) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), **variables})
    return raised.value.problems


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("WORKER_CLASS", "bogus", "CANVAS_WORKER_CLASS must be one of simple, fork; got 'bogus'"),
    ("LOG_LEVEL", "loud", "CANVAS_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got 'loud'"),
    ("BLOCK_RETRIES", "-1", "CANVAS_BLOCK_RETRIES must be at least 0; got -1"),
    ("LEASE_RENEW_SECONDS", "0", "CANVAS_LEASE_RENEW_SECONDS must be above 0; got 0"),
    ("MAX_REQUEST_BYTES", "0", "CANVAS_MAX_REQUEST_BYTES must be at least 1; got 0"),
    ("SHUTDOWN_GRACE_SECONDS", "-5", "CANVAS_SHUTDOWN_GRACE_SECONDS must be above 0; got -5"),
    ("PUBLIC_URL", "ftp://example.com", "CANVAS_PUBLIC_URL must be a URL starting with http:// or https://; "
                                        "got 'ftp://example.com'"),
    ("PUBLIC_URL", "http://", "CANVAS_PUBLIC_URL must name a host; got 'http://'"),
    ("SMTP_URL", "mail.example.com:25", "CANVAS_SMTP_URL must be a URL starting with smtp:// or smtps://; "
                                        "got 'mail.example.com:25'"),
    ("REDIS_URL", "redis://localhost:notaport", "CANVAS_REDIS_URL is not a valid URL; "
                                                "got 'redis://localhost:notaport'"),
    ("DATABASE_URL", "mysql://db/canvas", "CANVAS_DATABASE_URL must be a URL starting with sqlite:// or "
                                          "postgresql+psycopg://; got 'mysql://db/canvas'"),
    # found probing the CLI: each passed the check and failed later, far from the setting, or silently did wrong
    ("LOST_RUN_GRACE_SECONDS", "inf", "CANVAS_LOST_RUN_GRACE_SECONDS must be a number, got 'inf'"),
    ("LOST_RUN_GRACE_SECONDS", "99999999", "CANVAS_LOST_RUN_GRACE_SECONDS must be at most 1e+06; got 1e+08"),
    ("REAPER_INTERVAL_SECONDS", "1e23", "CANVAS_REAPER_INTERVAL_SECONDS must be at most 1e+09; got 1e+23"),
    ("SCHEDULER_MISFIRE_GRACE_SECONDS", "99999999999999999999999",
     "CANVAS_SCHEDULER_MISFIRE_GRACE_SECONDS must be at most 1e+09; got 1e+23"),
    ("OUTPUT_RETENTION_DAYS", "1000000", "CANVAS_OUTPUT_RETENTION_DAYS must be at most 36500; got 1e+06"),
    ("REAPER_INTERVAL_SECONDS", "nan", "CANVAS_REAPER_INTERVAL_SECONDS must be a number, got 'nan'"),
    ("BLOCK_RETRIES", "1_000", "CANVAS_BLOCK_RETRIES must be a whole number, got '1_000'"),
    ("BLOB_FSYNC", "maybe", "CANVAS_BLOB_FSYNC must be true or false, got 'maybe'"),
    ("ALLOW_PRIVATE_NETWORKS", "10.0.0.0/33",
     "CANVAS_ALLOW_PRIVATE_NETWORKS: '10.0.0.0/33' is neither true/false nor a CIDR network"),
    ("TLS_CA_FILE", "/nonexistent.pem", "CANVAS_TLS_CA_FILE names no file this process can read; "
                                        "got '/nonexistent.pem'"),
    ("REDIS_URL", "redis://127.0.0.1:6379/abc", "CANVAS_REDIS_URL must end with a database number "
                                                "(redis://host:6379/0), if any; got 'redis://127.0.0.1:6379/abc'"),
], ids=lambda value: value if isinstance(value, str) and value.isupper() else None)
def test_each_unusable_value_is_one_line_naming_the_variable(tmp_path, name, value, problem):
    assert _problems(tmp_path, **{f"CANVAS_{name}": value}) == [problem]


def test_every_problem_is_reported_at_once(tmp_path):
    problems = _problems(tmp_path, CANVAS_WORKER_CLASS="bogus", CANVAS_BLOCK_RETRIES="-2",
                         CANVAS_PUBLIC_URL="nowhere")
    assert [problem.split()[0] for problem in problems] == [
        "CANVAS_WORKER_CLASS", "CANVAS_BLOCK_RETRIES", "CANVAS_PUBLIC_URL"]
    assert all("\n" not in problem for problem in problems)


def test_values_of_the_wrong_type_are_all_reported(tmp_path):
    assert _problems(tmp_path, CANVAS_BLOCK_RETRIES="many", CANVAS_BENCHMARK_ENDPOINTS="perhaps") == [
        "CANVAS_BENCHMARK_ENDPOINTS must be true or false, got 'perhaps'",
        "CANVAS_BLOCK_RETRIES must be a whole number, got 'many'"]


@pytest.mark.parametrize("name", ["PUBLIC_URL", "LOG_LEVEL", "METRICS_HOST", "DATA_DIR", "BLOB_FSYNC", "REDIS_URL"])
def test_an_empty_variable_stands_for_the_default(tmp_path, name):
    """An empty CANVAS_PUBLIC_URL used to be None: `canvas org create` crashed after writing the organization, its
    keys never shown; an empty CANVAS_METRICS_HOST listened on every address."""
    defaults = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path)})
    environ = {"CANVAS_DATA_DIR": str(tmp_path), f"CANVAS_{name}": ""}
    if name == "DATA_DIR":
        environ = {"CANVAS_DATA_DIR": "", "HOME": str(tmp_path)}
        defaults = load_settings(environ={"HOME": str(tmp_path)})
    assert load_settings(environ=environ)[name] == defaults[name]


def test_a_password_in_a_refused_url_is_not_shown(tmp_path):
    [problem] = _problems(tmp_path, CANVAS_SMTP_URL="http://user:hunter2@mail.example.com")
    assert "hunter2" not in problem and "user:***@mail.example.com" in problem


def test_the_lease_timing_rule_still_holds(tmp_path):
    assert _problems(tmp_path, CANVAS_LOST_RUN_GRACE_SECONDS="10", CANVAS_LEASE_RENEW_SECONDS="5") == [
        "CANVAS_LEASE_RENEW_SECONDS (5) must be above 0 and at most a third of CANVAS_LOST_RUN_GRACE_SECONDS (10)"]


def test_good_values_pass_and_log_level_ignores_case(tmp_path):
    settings = load_settings(environ={"CANVAS_DATA_DIR": str(tmp_path), "CANVAS_LOG_LEVEL": "debug",
                                      "CANVAS_WORKER_CLASS": "fork", "CANVAS_REDIS_URL": "unix:///tmp/r.sock",
                                      "CANVAS_SMTP_URL": "smtps://u:p@mail.example.com:465",
                                      "CANVAS_DATABASE_URL": "postgresql://u@db/canvas"})
    assert (settings["LOG_LEVEL"], settings["WORKER_CLASS"]) == ("debug", "fork")


def test_unknown_canvas_variables_are_warned_about_with_the_closest_setting():
    warnings = unknown_variable_warnings({
        "CANVAS_LOG_LEVL": "DEBUG", "CANVAS_NOTHING_LIKE_IT": "1", "CANVAS_LOG_LEVEL": "INFO",
        "CANVAS_TEST_DATABASE_URL": "postgresql://x", "CANVAS_SSH_KNOWN_HOSTS_FILE": "/k",
        "CANVAS_ALLOW_SQLITE_APPLICATIONS": "true", "CANVAS_STARTED_BY": "1", "PATH": "/bin"})
    assert warnings == [
        "CANVAS_LOG_LEVL is not a Canvas setting and is ignored (did you mean CANVAS_LOG_LEVEL?)",
        "CANVAS_NOTHING_LIKE_IT is not a Canvas setting and is ignored"]


def _invoke(monkeypatch, tmp_path, args: list[str], **variables: str):
    monkeypatch.setenv("CANVAS_DATA_DIR", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, args, prog_name="canvas")


def test_the_command_line_prints_each_problem_and_exits_2(monkeypatch, tmp_path):
    result = _invoke(monkeypatch, tmp_path, ["catalog", "check"], CANVAS_WORKER_CLASS="bogus",
                     CANVAS_LOG_LEVL="DEBUG", CANVAS_API_WORKERS="-1")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Warning: CANVAS_LOG_LEVL is not a Canvas setting and is ignored (did you mean CANVAS_LOG_LEVEL?)",
        "Error: CANVAS_WORKER_CLASS must be one of simple, fork; got 'bogus'",
        "Error: CANVAS_API_WORKERS must be at least 0; got -1"]


def test_version_prints_the_package_version(monkeypatch, tmp_path):
    from importlib.metadata import version

    result = _invoke(monkeypatch, tmp_path, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"canvas {version('canvas-orchestrator')}\n")


def test_generate_key_prints_a_key_that_canvas_secret_keys_accepts(monkeypatch, tmp_path):
    first = _invoke(monkeypatch, tmp_path, ["secrets", "generate-key"])
    second = _invoke(monkeypatch, tmp_path, ["secrets", "generate-key"])
    assert first.exit_code == 0 and first.stdout != second.stdout
    old = SecretBox.from_setting(second.stdout.strip(), tmp_path)  # as CANVAS_SECRET_KEYS is read
    token = old.encrypt("a secret")
    rotated = SecretBox.from_setting(f"{first.stdout.strip()},{second.stdout.strip()}", tmp_path)
    assert rotated.decrypt(token) == b"a secret"
    assert rotated.decrypt(rotated.encrypt("new")) == b"new"

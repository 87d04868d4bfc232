"""What the command line refuses, in one line naming the option or setting, exit status 2, before it writes
anything: out-of-range ports and counts, a data dir it cannot use, a cron that never fires, an organization whose
name or e-mail the database or a mail header cannot hold. Each was a traceback, a silent wrong default, or a success
that did nothing (found probing the CLI)."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from canvas.cli import cli


def _invoke(monkeypatch, data_dir, args: list[str], **variables: str):
    monkeypatch.setenv("CANVAS_DATA_DIR", str(data_dir))
    for name in [name for name in os.environ if name.startswith("CANVAS_") and name != "CANVAS_DATA_DIR"]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, args, prog_name="canvas")


@pytest.mark.parametrize("args, option", [
    (["up", "--port", "99999"], "--port"), (["up", "--port", "0"], "--port"), (["api", "--port", "-1"], "--port"),
    (["api", "--workers", "-1"], "--workers"), (["worker", "--metrics-port", "99999"], "--metrics-port"),
    (["scheduler", "--metrics-port", "0"], "--metrics-port"), (["worker", "--max-jobs", "0"], "--max-jobs"),
    (["secrets", "rotate", "--batch-size", "0"], "--batch-size"),
    (["secrets", "rotate", "--batch-size", "-5"], "--batch-size")])
def test_numbers_out_of_range_are_refused_naming_the_option(monkeypatch, tmp_path, args, option):
    result = _invoke(monkeypatch, tmp_path, args)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.stderr
    assert not (tmp_path / "canvas.db").exists(), "refused before anything was written"


def test_a_data_dir_that_is_a_file_is_refused_naming_the_setting(monkeypatch, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    result = _invoke(monkeypatch, afile, ["outputs", "prune"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: CANVAS_DATA_DIR: cannot create {afile}")


@pytest.mark.parametrize("expression, after", [("0 0 0 30 2 ?", None), ("0 0 12 * * ? 2023", None),
                                               ("0 0 12 * * ?", "9999-12-31T23:59:59")])
def test_a_cron_that_never_fires_is_an_error_not_silence(monkeypatch, tmp_path, expression, after):
    result = _invoke(monkeypatch, tmp_path, ["cron", expression] + (["--after", after] if after else []))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: '{expression}' never fires after ")


@pytest.mark.parametrize("name, email, problem", [
    ("Acme", "a@b.c,d@e.f", "email: 'a@b.c,d@e.f' is not a valid e-mail address"),
    ("Acme", "<a@b.c>", "is not a valid e-mail address"), ("Acme", "a@@b.c", "is not a valid e-mail address"),
    ("Acme", "a" * 310 + "@example.com", "email: at most 320 characters"),
    ("x" * 201, "admin@acme.test", "Organization name must have at most 200 characters")])
def test_org_create_refuses_what_the_database_or_a_mail_header_cannot_hold(monkeypatch, tmp_path, name, email,
                                                                           problem):
    result = _invoke(monkeypatch, tmp_path, ["org", "create", "--name", name, "--admin-email", email])
    assert result.exit_code != 0 and problem in result.output and "Traceback" not in result.output
    again = _invoke(monkeypatch, tmp_path, ["org", "create", "--name", "Acme", "--admin-email", "admin@acme.test"])
    assert again.exit_code == 0, again.output  # nothing of the refused one was kept


def test_an_empty_public_url_is_the_default_and_org_create_prints_its_keys(monkeypatch, tmp_path):
    result = _invoke(monkeypatch, tmp_path, ["org", "create", "--name", "PU", "--admin-email", "pu@acme.test",
                                             "--json"], CANVAS_PUBLIC_URL="")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["secretKey"] and created["consoleLink"].startswith("http://127.0.0.1:8080/console/activate?token=")

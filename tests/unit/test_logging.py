"""Process log lines (canvas.observability.logging): run and request fields, the text and JSON formats, redaction
of a running block's secrets whatever logger writes them, and CANVAS_LOG_FORMAT checked at start."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from canvas.observability.access_log import accepted_request_id
from canvas.observability.logging import (
    enter_block,
    logged_request,
    logged_run,
    process_handler,
    redact_block_lines,
)
from canvas.settings import SettingsError, load_settings
from tests.process_tools import canvas_env

RUN, WORKFLOW, ACCOUNT = "0f0e0d0c-0000-4000-8000-000000000001", "wf-2", "acct-3"
SECRET = "hunter2-s3cr3t"


class Lines:
    """A process handler of the given format on a logger of the test's own, and the lines it wrote."""

    def __init__(self, log_format: str):
        self.buffer = io.StringIO()
        self.logger = logging.getLogger(f"tests.logging.{log_format}")
        self.handler = process_handler(log_format, self.buffer)

    def text(self) -> str:
        return self.buffer.getvalue()

    def json(self) -> list[dict]:
        return [json.loads(line) for line in self.text().splitlines()]


@contextmanager
def captured(log_format: str) -> Iterator[Lines]:
    lines = Lines(log_format)
    lines.logger.addHandler(lines.handler)
    lines.logger.setLevel(logging.DEBUG)
    lines.logger.propagate = False
    try:
        yield lines
    finally:
        lines.logger.removeHandler(lines.handler)


@pytest.fixture(params=["json", "text"])
def lines(request) -> Iterator[Lines]:
    with captured(request.param) as lines:
        yield lines


@pytest.fixture
def json_lines() -> Iterator[Lines]:
    with captured("json") as lines:
        yield lines


@pytest.fixture
def text_lines() -> Iterator[Lines]:
    with captured("text") as lines:
        yield lines


def test_a_json_line_is_one_object_with_time_level_logger_message_and_process(json_lines):
    json_lines.logger.warning("disk %s%% full", 91)
    [line] = json_lines.json()
    assert line["message"] == "disk 91% full" and line["level"] == "WARNING"
    assert line["logger"] == json_lines.logger.name and line["process"] > 0
    assert line["time"].endswith("Z") and line["time"][10] == "T" and len(line["time"]) == 24
    assert not {"run_id", "workflow_id", "account_id", "block", "request_id"} & set(line)  # outside a run


def test_every_line_of_a_run_carries_its_ids_and_block(json_lines):
    with logged_run(RUN, WORKFLOW, ACCOUNT):
        json_lines.logger.info("claimed")
        enter_block(2)
        json_lines.logger.info("in block two")
    json_lines.logger.info("after the run")
    claimed, in_block, after = json_lines.json()
    assert (claimed["run_id"], claimed["workflow_id"], claimed["account_id"]) == (RUN, WORKFLOW, ACCOUNT)
    assert "block" not in claimed and in_block["block"] == 2 and in_block["run_id"] == RUN
    assert "run_id" not in after


def test_the_runners_context_nests_in_the_workers_and_gives_it_back(json_lines):
    with logged_run(RUN):  # the worker knows the job's run id only
        with logged_run(RUN, WORKFLOW, ACCOUNT):
            enter_block(1)
        json_lines.logger.info("job done")
    [line] = json_lines.json()
    assert line["run_id"] == RUN and "workflow_id" not in line and "block" not in line


def test_a_text_line_shows_the_context_after_the_message(text_lines):
    with logged_run(RUN, WORKFLOW, ACCOUNT):
        enter_block(3)
        text_lines.logger.info("reading")
    assert text_lines.text().rstrip().endswith(f"reading [run_id={RUN} workflow_id={WORKFLOW} account_id={ACCOUNT} "
                                          "block=3]")


def test_a_blocks_secret_is_redacted_from_any_logger_in_both_formats(lines):
    with logged_run(RUN, WORKFLOW, ACCOUNT):
        enter_block(1)
        redact_block_lines(lambda text: text.replace(SECRET, "***"))
        lines.logger.debug("GET /orders?key=%s 200", SECRET)  # as urllib3 logs a request
        try:
            raise RuntimeError(f"refused {SECRET}")
        except RuntimeError:
            lines.logger.exception("block failed with %s", SECRET)
        enter_block(2)  # the next block has its own secrets
        lines.logger.info("clear %s", "text")
    written = lines.text()
    assert SECRET not in written
    assert "GET /orders?key=*** 200" in written and "refused ***" in written  # redacted, not dropped
    assert "clear text" in written


def test_the_exception_is_a_field_of_the_json_line(json_lines):
    try:
        raise ValueError("bad value")
    except ValueError:
        json_lines.logger.exception("failed")
    [line] = json_lines.json()
    assert line["message"] == "failed" and "ValueError: bad value" in line["exception"]
    assert "Traceback" in line["exception"]


def test_lines_logged_during_a_request_carry_its_id(lines):
    with logged_request("req-42"):
        lines.logger.info("serving")
    lines.logger.info("idle")
    serving, idle = lines.text().splitlines()
    assert "req-42" in serving and "req-42" not in idle


@pytest.mark.parametrize("sent, kept", [
    ("abc-123", True),
    ("0f0e0d0c-0000-4000-8000-000000000001", True),
    ("trace:1/2+x=y@z", True),
    ("x" * 128, True),
    ("x" * 129, False),
    ("", False),
    ("has space", False),
    ('quote"d', False),
    ("new\nline", False),
    ("caf\u00e9", False),
], ids=["plain", "uuid", "punctuation", "longest", "too-long", "empty", "space", "quote", "newline", "non-ascii"])
def test_a_sane_request_id_is_kept_and_any_other_replaced(sent, kept):
    accepted = accepted_request_id(sent)
    assert (accepted == sent) is kept
    if not kept:
        assert len(accepted) == 32 and accepted.isalnum()


def test_request_ids_made_here_differ():
    assert accepted_request_id(None) != accepted_request_id(None)


def test_log_format_defaults_to_text_and_accepts_json():
    assert load_settings(environ={})["LOG_FORMAT"] == "text"
    assert load_settings(environ={"CANVAS_LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"


def test_an_unknown_log_format_is_refused_naming_the_variable():
    with pytest.raises(SettingsError, match="CANVAS_LOG_FORMAT"):
        load_settings(environ={"CANVAS_LOG_FORMAT": "xml"})


def test_a_process_with_an_unknown_log_format_ends_at_start_with_one_line(tmp_path: Path):
    env = {**canvas_env(tmp_path / "data"), "CANVAS_LOG_FORMAT": "yaml"}
    done = subprocess.run([sys.executable, "-m", "canvas", "db", "upgrade"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    [message] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "CANVAS_LOG_FORMAT" in message and "yaml" in message and "Traceback" not in done.stderr

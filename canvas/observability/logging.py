"""Structured process logs: the run and request a line belongs to, and its two formats (text, JSON).

Context travels in context variables, not in logger names or arguments: the runner says once which run and which
block it is in (``logged_run``, ``enter_block``) and the API says once which request it serves (``logged_request``);
``ContextFilter``, on the process's one handler, stamps those fields on every record that reaches it, from whatever
logger (the runner's, a block's, RQ's, a client library's). A thread starts with an empty context, so lines of
helper threads (lease keeper, reaper) carry no run fields; they name their run in the message.

While a block runs, the filter also passes every line through that block's redactor (the credential values of the
applications it uses): a block's own lines are redacted already (canvas.execution.run_log), but a library that
logs a URL or an error with a password in it is not the block's logger. Redaction happens before formatting, so
neither format can show a secret that the other hides.

Only stdlib here: the runner and every process import it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

LOG_FORMATS = ("text", "json")
RUN_FIELDS = ("run_id", "workflow_id", "account_id", "block")
CONTEXT_FIELDS = (*RUN_FIELDS, "request_id")
# What an access line adds (canvas.observability.access_log); a JSON line shows them as fields of their own.
ACCESS_FIELDS = ("method", "route", "path", "status", "duration_ms", "remote_addr")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


@dataclass(frozen=True)
class RunLogContext:
    run_id: str
    workflow_id: str | None = None
    account_id: str | None = None
    block: int | None = None
    redact: Callable[[str], str] | None = None


_run: ContextVar[RunLogContext | None] = ContextVar("canvas_run_log", default=None)
_request_id: ContextVar[str | None] = ContextVar("canvas_request_id", default=None)


# --- saying which run, block or request the following lines belong to -----------------------------------------------


@contextmanager
def logged_run(run_id: object, workflow_id: object = None, account_id: object = None) -> Iterator[None]:
    """Lines logged inside carry the run's ids; on leaving, whatever context was there before is back (the worker
    knows only the run id of a job; the runner, inside it, knows the workflow and the account too)."""
    token = _run.set(RunLogContext(str(run_id), _text(workflow_id), _text(account_id)))
    try:
        yield
    finally:
        _run.reset(token)


def forget_run() -> None:
    """From here on, lines carry no run: in a child forked while its worker was busy with one, before its own."""
    _run.set(None)


def logged_run_of(run: object) -> contextlib.AbstractContextManager[None]:
    """``logged_run`` for anything with ``run_id``, ``workflow_id`` and ``account_id`` (the runner's RunState). The
    context it is entered in, when it is the same run's (the worker's, which knew only the run id), learns the
    workflow and the account as well: the job's lines after the runner's (RQ's own) carry them too."""
    current = _run.get()
    if current is not None and current.run_id == str(run.run_id) and current.workflow_id is None:
        _run.set(replace(current, workflow_id=_text(run.workflow_id), account_id=_text(run.account_id)))
    return logged_run(run.run_id, run.workflow_id, run.account_id)


def enter_block(number: int) -> None:
    """The block in hand, until the next one or the end of the run; outside a run, nothing."""
    current = _run.get()
    if current is not None:
        _run.set(replace(current, block=number, redact=None))


def redact_block_lines(redact: Callable[[str], str]) -> None:
    """Every line from now until the next block or the end of the run goes through ``redact``."""
    current = _run.get()
    if current is not None:
        _run.set(replace(current, redact=redact))


@contextmanager
def logged_request(request_id: str) -> Iterator[None]:
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def bind_request_id(request_id: str | None) -> object:
    """For hooks that cannot wrap the request in a ``with``: the token to give to ``unbind_request_id``."""
    return _request_id.set(request_id)


def unbind_request_id(token: object) -> None:
    _request_id.reset(token)


def current_run_id() -> str | None:
    """The run the lines logged here belong to, if any."""
    run = _run.get()
    return None if run is None else run.run_id


def current_request_id() -> str | None:
    return _request_id.get()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# --- the handler's filter and the two formats ------------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Stamps the run and request fields on every record (None outside a run or a request), and redacts the lines of
    a running block. On the handler, not on a logger: a logger's filter never sees its children's records."""

    _exception_text = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        run = _run.get()
        record.request_id = _request_id.get()
        if run is None:
            record.run_id = record.workflow_id = record.account_id = record.block = None
            return True
        record.run_id, record.workflow_id, record.account_id = run.run_id, run.workflow_id, run.account_id
        record.block = run.block
        if run.redact is not None:
            self._redact(record, run.redact)
        return True

    def _redact(self, record: logging.LogRecord, redact: Callable[[str], str]) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - arguments that do not fit the message: keep the message alone
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_text.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)


class TextFormatter(logging.Formatter):
    """The plain line people read, with the context after the message: `... message [run_id=... block=2]`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={value}" for name in CONTEXT_FIELDS
                           if (value := getattr(record, name, None)) is not None)
        if not context:
            return line
        first, newline, rest = line.partition("\n")  # after the message, before a traceback
        return f"{first} [{context}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO-8601, UTC), level, logger, message, process, the context fields that are
    set, an access line's fields, and the exception's text as a field of its own."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": iso_utc(record.created), "level": record.levelname, "logger": record.name,
                "message": record.getMessage(), "process": record.process}
        for name in CONTEXT_FIELDS + ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def iso_utc(created: float) -> str:
    """2026-12-02T17:13:39.123Z (milliseconds; cheaper than datetime for a line each)."""
    seconds = int(created)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{int((created - seconds) * 1000):03d}Z"


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def process_handler(log_format: str = "text", stream: object = None) -> logging.Handler:
    """The one handler of a process (config/logging.py): lines to ``stream`` (stderr when None), in ``log_format``,
    with their run and request fields."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(ContextFilter())
    return handler

"""Block loggers whose lines land in run history (bounded) and in the process log, with secrets redacted."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from canvas.applications.redaction import Redactor

MAX_LINES_PER_BLOCK = 200
MAX_LINE_LENGTH = 1000
BLOCK_LOGGER_PARENT = "canvas.block"
# A line's level as a number, the scale of the v2 document's logs (and of most log stores): what a search by level
# compares. A level it does not know is INFO's.
LEVEL_NUMBERS = {"NOTSET": 1, "TRACE": 10, "DEBUG": 20, "INFO": 30, "WARNING": 40, "WARN": 40, "ERROR": 50,
                 "CRITICAL": 60, "FATAL": 60}


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        return True


class _CaptureHandler(logging.Handler):
    def __init__(self, lines: list[dict]):
        super().__init__(logging.DEBUG)
        self.lines = lines
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) >= MAX_LINES_PER_BLOCK and not self._make_room(record.levelno):
            self.dropped += 1
            return
        message = record.getMessage()
        if len(message) > MAX_LINE_LENGTH:
            message = message[:MAX_LINE_LENGTH] + "…"
        self.lines.append({"time": self.format_time(record), "level": record.levelname, "message": message,
                           "_levelno": record.levelno})

    def _make_room(self, levelno: int) -> bool:
        """When full, a line more important than DEBUG replaces the oldest DEBUG line: a block's summary and its
        warnings must survive a long series of per-page debug lines."""
        if levelno <= logging.DEBUG:
            return False
        oldest_debug = next((i for i, line in enumerate(self.lines) if line["_levelno"] <= logging.DEBUG), None)
        if oldest_debug is None:
            return False
        del self.lines[oldest_debug]
        self.dropped += 1
        return True

    @staticmethod
    def format_time(record: logging.LogRecord) -> str:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(record.created, timezone.utc).isoformat()


class BlockLog:
    """A logger for one block run. It is not registered with logging's manager, so runs leave no loggers behind."""

    def __init__(self, block_key: str, redact: Redactor):
        self.lines: list[dict] = []
        self._capture = _CaptureHandler(self.lines)
        self.logger = logging.Logger(f"{BLOCK_LOGGER_PARENT}.{block_key}", logging.DEBUG)
        self.logger.parent = logging.getLogger(BLOCK_LOGGER_PARENT)  # lines reach the process log too
        self.logger.addFilter(_RedactingFilter(redact))
        self.logger.addHandler(self._capture)

    def finished_lines(self) -> list[dict]:
        lines = [{key: value for key, value in line.items() if key != "_levelno"} for line in self.lines]
        if self._capture.dropped:
            lines.append({"time": None, "level": "WARNING",
                          "message": f"{self._capture.dropped} more lines (DEBUG first) were not kept"})
        return lines


def line_rows(lines: list[dict], block_end: datetime) -> list[dict]:
    """A block's lines as the log_line rows that index them (canvas.models.LogLine): in order, each with the time it
    sorts and is searched by - its own when it states an ISO 8601 instant (without an offset: UTC), else its
    block's end."""
    rows = []
    for position, line in enumerate(lines):
        stated = line.get("time")
        rows.append({"position": position, "logged_at": _instant(stated) or block_end,
                     "stated_time": None if stated is None else str(stated),
                     "level": LEVEL_NUMBERS.get(str(line.get("level")).upper(), LEVEL_NUMBERS["INFO"]),
                     "message": str(line.get("message") or "")})
    return rows


def _instant(stated: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(stated))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

"""Logging setup shared by every process (API, worker, scheduler, CLI): one handler on stderr, text or JSON lines
(CANVAS_LOG_FORMAT), each stamped with the run and request it belongs to (canvas.observability.logging)."""
import logging.config
import sys
import threading

from canvas.observability.logging import formatter_for, process_handler


def configure_logging(level: str = "INFO", log_format: str = "text", stream: object = None) -> None:
    """``stream``: where lines go (stderr when None; tests give a buffer)."""
    formatter_for(log_format)  # an unknown format fails here, before anything is replaced
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "stderr": {"()": process_handler, "log_format": log_format, "stream": stream},
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            "loggers": {
                # One line per API request (canvas.observability.access_log), whatever LOG_LEVEL says, as gunicorn's
                # access log was before; werkzeug's own request lines would repeat them, paramiko is noisy at INFO.
                "canvas.access": {"level": "INFO"},
                "werkzeug": {"level": "WARNING"},
                "paramiko": {"level": "WARNING"},
                "alembic.runtime.plugins": {"level": "WARNING"},  # seven lines of plugin set-up per process
            },
        }
    )
    logging.captureWarnings(True)  # a library's warning is a line of the log, in its format, not stray stderr text
    if log_format == "json":
        _log_uncaught_exceptions()


def _log_uncaught_exceptions() -> None:
    """A crash's traceback as a JSON line too (its `exception` field), in the process and in its threads: a log
    collector reading JSON would otherwise get a dozen lines it cannot parse, the most important of the day."""
    crashed = logging.getLogger("canvas.crash")

    def log_exception(kind, value, traceback) -> None:  # noqa: ANN001 - sys.excepthook's arguments
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, traceback)
            return
        crashed.critical("uncaught exception", exc_info=(kind, value, traceback))

    def log_thread_exception(args) -> None:  # noqa: ANN001 - threading.ExceptHookArgs
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        crashed.critical("uncaught exception in %s", name, exc_info=(args.exc_type, args.exc_value,
                                                                      args.exc_traceback))

    sys.excepthook = log_exception
    threading.excepthook = log_thread_exception

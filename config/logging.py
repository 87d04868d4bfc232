"""Logging setup shared by every process (API, worker, scheduler, CLI)."""
import logging.config


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"},
            },
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            "loggers": {
                # Per-request access lines come from gunicorn; werkzeug and paramiko are noisy at INFO.
                "werkzeug": {"level": "WARNING"},
                "paramiko": {"level": "WARNING"},
                "alembic.runtime.plugins": {"level": "WARNING"},  # seven lines of plugin set-up per process
            },
        }
    )

"""Log formatting for the webhook server: plain text for people, one JSON object a line for machines.

Fields passed as `extra={"fields": {...}}` (the per-review line does this) become top-level keys
of the JSON object, so log pipelines can filter on `allowed`, `kind` or `duration_ms`.
"""

from __future__ import annotations

import logging
from typing import Any

from webhook import codec

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message, extra fields, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):  # extra keys; the record's own (time, message …) are never replaced
            entry = {**fields, **entry}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return codec.dumps_text(entry)


def dict_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for gunicorn's loggers and ours, in `log_format`."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not supported; use one of {', '.join(FORMATS)}")
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            # Off: every probe would log a line; the app logs one line per review instead.
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
            "kubernetes": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
        },
    }

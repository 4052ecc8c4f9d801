"""Log records as JSON lines carrying the route id, for log shippers beside a deployment.

The route id lives in a context variable set when a route starts; asyncio copies the context
into every task a route spawns, so the judge's records of that route carry its id too.
``logging_config`` is the ``dictConfig`` that ``tablerouter serve`` hands to uvicorn.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from app.observability.redaction import RedactingFilter

__all__ = ["ROUTE_ID", "JsonFormatter", "RouteIdFilter", "logging_config"]

ROUTE_ID: ContextVar[str | None] = ContextVar("tablerouter_route_id", default=None)


class RouteIdFilter(logging.Filter):
    """Puts the current route id (or None) on every record as ``route_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.route_id = ROUTE_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, route id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        route_id = getattr(record, "route_id", None) or ROUTE_ID.get()
        if route_id:
            entry["route_id"] = route_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # set (and redacted) by app.observability.redaction's filter, if any
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def logging_config(fmt: Literal["text", "json"], level: str, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn's loggers.

    Its handler masks ``secrets`` and secret-shaped text (``app.observability.redaction``) from
    the first record on, so a start-up failure's traceback naming a DSN is masked too.
    """
    level = level.upper()
    text = "%(asctime)s %(levelname)s %(name)s [%(route_id)s] %(message)s"
    formatter: dict[str, Any] = {"()": JsonFormatter} if fmt == "json" else {"format": text}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "filters": ["route_id", "redact"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "route_id": {"()": RouteIdFilter},
            "redact": {"()": RedactingFilter, "secrets": list(secrets)},
        },
        "formatters": {"main": formatter},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            name: {"handlers": [], "level": level, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }

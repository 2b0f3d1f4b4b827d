"""Structured logging: one JSON line per fact, with a stable ``event`` name.

Every event name used anywhere is listed in ``docs/events.md``; a test keeps the two in step.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_FIELDS = frozenset(
    {"secret", "secretKey", "secret_key", "passphrase", "sign", "apiKey", "api_key"}
)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for field in _SECRET_FIELDS & event_dict.keys():
        event_dict[field] = "***"
    return event_dict


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Configure structlog for the process: JSON lines (or console) on stdout."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

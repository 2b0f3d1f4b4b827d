"""Structured logging: one JSON line per fact, with a stable ``event`` name.

Every event name used anywhere is listed in ``docs/events.md``; a test keeps the two in step.
No credential reaches the output: the last processor before rendering masks every registered
secret value and every secret-named field (:mod:`reactor.redaction`), in the event's fields
and in formatted tracebacks alike; the standard library's loggers (asyncio, aiohttp,
websockets) and uncaught exceptions go through the same scrubbing on stderr.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

from reactor.redaction import SECRET_FIELDS, redact, redact_text

_PLAIN = (int, float, bool, type(None))


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: mask secrets in every field (nested values included)."""
    for field, value in event_dict.items():
        if value.__class__ in _PLAIN:
            continue
        if field.lower() in SECRET_FIELDS:
            event_dict[field] = "***"
        elif value.__class__ is str:
            if len(value) > 3:
                event_dict[field] = redact_text(value)
        else:
            event_dict[field] = redact(
                value if isinstance(value, dict | list | tuple) else str(value)
            )
    return event_dict


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _redacting_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(redact_text(text))


def _route_stdlib_logging() -> None:
    """asyncio's "Task exception was never retrieved", aiohttp and websockets log through the
    standard library: give them one handler on stderr that scrubs like structlog does."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, _RedactingFormatter) for h in root.handlers):
        handler = logging.StreamHandler()  # sys.stderr at the time of each write
        handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    sys.excepthook = _redacting_excepthook


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
            structlog.processors.format_exc_info,
            _redact,  # after the traceback is text, so that it is scrubbed too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

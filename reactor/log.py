"""Structured logging: one JSON line per fact, with a stable ``event`` name.

Every event name used anywhere is listed in ``docs/events.md``; a test keeps the two in step.
No credential reaches the output: the last processor before rendering masks every registered
secret value and every secret-named field (:mod:`reactor.redaction`), in the event's fields
and in formatted tracebacks alike; the standard library's loggers (asyncio, aiohttp,
websockets) and uncaught exceptions go through the same scrubbing on stderr.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from collections.abc import Mapping, MutableMapping
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
    """Configure structlog for the process: JSON lines (or console) on stdout.

    ``fmt``: ``json``, ``console`` or ``auto`` (console on a terminal, JSON otherwise; see
    :func:`output_processors`). Under journald each line carries its syslog priority.
    """
    out = stream or sys.stdout
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,  # after the traceback is text, so that it is scrubbed too
            *output_processors(fmt, out),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging()


# -- output: format, terminal colours, journald priorities ------------------------------------

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")

# syslog(3) priorities for sd-daemon(3)'s "<N>" line prefix.
SYSLOG_PRIORITY = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}

# Console field order: who and what first, then amounts, then the rest alphabetically.
CONSOLE_FIRST = (
    "account",
    "instId",
    "posSide",
    "action",
    "amount",
    "margin",
    "target",
    "floor",
    "code",
    "msg",
    "reason",
    "error",
)


def is_journald_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream systemd gave us (``JOURNAL_STREAM`` holds its
    ``device:inode``, see systemd.exec(5)); a redirected or piped stream is not."""
    raw = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = raw.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (ValueError, OSError, AttributeError, io.UnsupportedOperation):
        return False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False


def resolve_format(fmt: str, stream: TextIO, env: Mapping[str, str] | None = None) -> str:
    """``auto`` -> ``console`` on a terminal, ``json`` otherwise (files, pipes, journald)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    if fmt != "auto":
        return fmt
    return "console" if _is_tty(stream) and not is_journald_stream(stream, env) else "json"


def _order_fields(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A fixed field order for people: :data:`CONSOLE_FIRST`, then the rest sorted."""
    first = [k for k in CONSOLE_FIRST if k in event_dict]
    rest = sorted(k for k in event_dict if k not in CONSOLE_FIRST)
    return {k: event_dict[k] for k in first + rest}


class _PriorityPrefix:
    """Wraps a renderer: ``<N>`` before each line (sd-daemon(3)), so journald records the
    level as the entry's PRIORITY and ``journalctl -p err`` finds errors."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        level = str(event_dict.get("level", method))
        prio = SYSLOG_PRIORITY.get(level, SYSLOG_PRIORITY.get(method, 6))
        return f"<{prio}>" + str(self._renderer(logger, method, event_dict))


def output_processors(fmt: str, stream: TextIO, env: Mapping[str, str] | None = None) -> list[Any]:
    """The last processors for ``stream``: JSON, or the console renderer (colours only on a
    terminal, fixed field order); prefixed with the syslog priority under journald."""
    resolved = resolve_format(fmt, stream, env)
    if resolved == "console":
        renderer: Any = structlog.dev.ConsoleRenderer(colors=_is_tty(stream), sort_keys=False)
        chain: list[Any] = [_order_fields]
    else:
        renderer = structlog.processors.JSONRenderer()
        chain = []
    if is_journald_stream(stream, env):
        renderer = _PriorityPrefix(renderer)
    return [*chain, renderer]


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def error_text(exc: BaseException, limit: int | None = 300) -> str:
    """An exception as one bounded log field, ``Type: message``: the type says what failed
    when the message alone is empty or ambiguous (``TimeoutError: ``, ``KeyError: 'x'``)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if limit is None else text[:limit]

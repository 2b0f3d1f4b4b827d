"""Structured logging: one JSON line per fact, with a stable ``event`` name.

Every event name used anywhere is listed in ``docs/events.md``; a test keeps the two in step.
No credential reaches the output: the last processor before rendering masks every registered
secret value and every secret-named field (:mod:`reactor.redaction`), in the event's fields
and in formatted tracebacks alike; the standard library's loggers (asyncio, aiohttp,
websockets) and uncaught exceptions go through the same scrubbing on stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
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


# -- amounts: USDT's precision in every line ---------------------------------------------------

# Every amount an event carries is USDT (isolated margin of USDT-margined swaps): shown to 8
# places at most, so Decimal arithmetic (``12.77478000000000000000000002``) and float artefacts
# from OKX (``0.41040000000000004``) read as amounts; shorter values stay as they are.
USDT_PLACES = 8
_USDT_QUANTUM = Decimal(1).scaleb(-USDT_PLACES)
AMOUNT_FIELDS = frozenset(
    {
        *("amount", "margin", "target", "floor", "upl", "posBal", "capped", "est_avail"),
        *("step_cap", "limit", "moved_last_hour", "position_moved_last_hour"),
        *("margin_before", "margin_expected", "margin_after", "available", "moved"),
    }
)
# Free text with amounts in it (a decision's reason, an error's detail).
AMOUNT_TEXT_FIELDS = frozenset({"reason", "detail", "msg"})
_LONG_DECIMAL = re.compile(rf"(?<![\w.])-?\d+\.\d{{{USDT_PLACES + 1},}}(?![\w.])")


def amount_text(value: Decimal | str, places: int = USDT_PLACES) -> str:
    """An amount as fixed-point text with at most ``places`` decimals (trailing zeros of the
    rounding dropped): ``12.77478000000000000000000002`` -> ``12.77478``."""
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except InvalidOperation:
        return str(value)
    if not d.is_finite():
        return str(value)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -places:
        return format(d, "f")
    q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    text = format(q, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def usdt(value: Decimal | None) -> Decimal | None:
    """An amount for status and CLI output: at most :data:`USDT_PLACES` decimals."""
    return None if value is None else Decimal(amount_text(value))


def amounts_in_text(text: str) -> str:
    """Amounts inside free text, quantized like :func:`amount_text`."""
    return _LONG_DECIMAL.sub(lambda m: amount_text(m.group(0)), text)


def _quantize_amounts(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for field, value in event_dict.items():
        if field in AMOUNT_FIELDS and isinstance(value, str | Decimal):
            event_dict[field] = amount_text(value)
        elif field in AMOUNT_TEXT_FIELDS and isinstance(value, str) and "." in value:
            event_dict[field] = amounts_in_text(value)
    return event_dict


# -- repeated lines: the first, then one count per interval --------------------------------------

SUMMARY_EVENT = "log.repeated"
SUMMARISED_LEVELS = frozenset({"warning", "error", "critical"})
_MAX_WINDOWS = 1000


@dataclass(slots=True)
class _Window:
    started: float
    count: int
    level: str
    fields: dict[str, Any]


class RepeatSummary:
    """A processor: a warning or error line identical to one logged less than ``interval_s``
    ago (same event, level and fields) is counted, not written; once per interval one
    ``log.repeated`` line at the same level says how many (``repeated_event``, ``count``) with
    the line's own fields. A failing ledger behind a status page polled every second writes
    two lines a minute, not hundreds. Windows are closed by the next line of any event."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[Any, ...], _Window] = {}
        self._emitting = False

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self._emitting:
            return event_dict
        self.flush(now := self._clock())
        level = str(event_dict.get("level", method))
        if level not in SUMMARISED_LEVELS or event_dict.get("event") == SUMMARY_EVENT:
            return event_dict
        key = (level, *sorted((k, repr(v)) for k, v in event_dict.items()))
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _MAX_WINDOWS:
                self.flush(now, everything=True)
            self._windows[key] = _Window(now, 0, level, dict(event_dict))
            return event_dict
        window.count += 1
        raise structlog.DropEvent

    def flush(self, now: float | None = None, *, everything: bool = False) -> None:
        """Write the counts of the intervals that ended (all of them with ``everything``)."""
        now = self._clock() if now is None else now
        due = [
            (k, w)
            for k, w in self._windows.items()
            if everything or now - w.started >= self.interval_s
        ]
        for key, window in due:
            if window.count == 0:
                del self._windows[key]
                continue
            fields = {k: v for k, v in window.fields.items() if k not in ("event", "level")}
            fields["repeated_event"] = window.fields.get("event", "")
            fields["count"] = window.count
            fields["interval_s"] = round(now - window.started, 3)
            self._emitting = True
            try:
                structlog.get_logger("reactor.log").log(
                    logging.getLevelNamesMapping()[window.level.upper()], SUMMARY_EVENT, **fields
                )
            finally:
                self._emitting = False
            if everything:
                del self._windows[key]
            else:
                window.started, window.count = now, 0


_summary: RepeatSummary | None = None


def flush_repeats() -> None:
    """Write the counts of ended intervals now (a periodic task calls it, so a storm that
    stopped is still reported without waiting for the next line)."""
    if _summary is not None:
        _summary.flush()


# -- taps: in-process readers of the (redacted) lines ----------------------------------------------

_taps: list[Callable[[Mapping[str, Any]], None]] = []


def add_tap(fn: Callable[[Mapping[str, Any]], None]) -> None:
    """Hand every written line (after redaction, before rendering) to ``fn`` as well: the
    direct notifier reads the same lines the log-based alerts count."""
    _taps.append(fn)


def remove_tap(fn: Callable[[Mapping[str, Any]], None]) -> None:
    if fn in _taps:
        _taps.remove(fn)


def _tap(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for fn in list(_taps):
        with contextlib.suppress(Exception):  # a reader must never lose the line
            fn(event_dict)
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


def configure(
    level: str = "info",
    fmt: str = "json",
    stream: TextIO | None = None,
    *,
    repeat_interval_s: float | None = None,
) -> None:
    """Configure structlog for the process: JSON lines (or console) on stdout.

    ``fmt``: ``json``, ``console`` or ``auto`` (console on a terminal, JSON otherwise; see
    :func:`output_processors`). Under journald each line carries its syslog priority.
    ``repeat_interval_s``: summarise identical warning/error lines (:class:`RepeatSummary`);
    None writes every line (tests that count lines).
    """
    global _summary
    out = stream or sys.stdout
    _summary = None if repeat_interval_s is None else RepeatSummary(repeat_interval_s)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _quantize_amounts,
            *([_summary] if _summary is not None else []),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,  # after the traceback is text, so that it is scrubbed too
            _tap,
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

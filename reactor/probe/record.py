"""The probe's record stream: every WebSocket frame and REST exchange, in order, with a time.

One record is a JSON object with ``seq``, ``t_ms`` (wall clock, ms) and ``kind``:

- ``ws_open`` / ``ws_closed`` / ``ws_error`` (``conn``, ``url`` / ``code``, ``reason`` /
  ``error``: the connection could not be opened);
- ``ws_out`` / ``ws_in`` (``conn``, ``text``: the frame as sent or received);
- ``http_request`` (``id``, ``method``, ``path`` with query, ``body``);
- ``http_response`` (``id``, ``method``, ``path``, ``status``, ``body``: the raw text);
- ``http_error`` (``id``, ``method``, ``path``, ``error``): no answer came;
- ``step`` (``name``, ``phase`` and what the script knew then).

Secrets never reach a record: request headers are not recorded at all, the login frame's
``apiKey``/``passphrase``/``sign`` are replaced, and as a last line every serialised record is
scrubbed of the account's literal key, secret and passphrase (inside every string).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REDACTED = "<redacted>"
_LOGIN_SECRET_FIELDS = ("apiKey", "passphrase", "sign")
_SECRET_KEY_NAMES = frozenset(
    {"apikey", "api_key", "secretkey", "secret_key", "secret", "passphrase", "sign"}
)


def redact_ws_out(text: str) -> str:
    """A frame to send, fit to record: a login frame loses its key, passphrase and signature."""
    try:
        msg = json.loads(text)
    except ValueError:
        return text
    if not isinstance(msg, dict) or msg.get("op") != "login":
        return text
    args = msg.get("args")
    if isinstance(args, list):
        for arg in args:
            if isinstance(arg, dict):
                for name in _LOGIN_SECRET_FIELDS:
                    if name in arg:
                        arg[name] = REDACTED
    return json.dumps(msg, separators=(",", ":"))


def _scrub_keys(value: Any) -> Any:
    """Any object key that names a secret gets its value replaced (JSON bodies we send)."""
    if isinstance(value, dict):
        return {
            k: REDACTED if k.lower() in _SECRET_KEY_NAMES else _scrub_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_keys(v) for v in value]
    return value


class Redactor:
    """Replaces the literal secrets of one account wherever they would appear."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text

    def scrub(self, value: Any) -> Any:
        """``value`` with the secrets replaced inside every string (keys included); numbers
        and structure untouched, so the result still serialises to the same JSON shape."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value


class Recorder:
    """Collects records in memory and hands each serialised line to ``sink`` at once, so a
    probe cut short still leaves everything it saw on disk."""

    def __init__(
        self,
        redactor: Redactor,
        *,
        sink: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redactor = redactor
        self._sink = sink
        self._clock = clock
        self.records: list[dict[str, Any]] = []
        self._next_http = 0

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"seq": len(self.records), "t_ms": self.now_ms(), "kind": kind, **fields}
        record = self.redactor.scrub(_scrub_keys(record))
        line = json.dumps(record, separators=(",", ":"), default=str)
        kept: dict[str, Any] = json.loads(line)  # what is kept is exactly what is written
        self.records.append(kept)
        if self._sink is not None:
            self._sink(line + "\n")
        return kept

    def http_id(self) -> int:
        self._next_http += 1
        return self._next_http

    def ws_out(self, conn: int, text: str) -> None:
        self.add("ws_out", conn=conn, text=redact_ws_out(text))

    def ws_in(self, conn: int, text: str) -> None:
        self.add("ws_in", conn=conn, text=text)

    def step(self, name: str, phase: str, **fields: Any) -> None:
        self.add("step", name=name, phase=phase, **fields)


class FileSink:
    """Appends lines to ``path`` and flushes each one (a crash loses nothing written)."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("w", encoding="utf-8")

    def __call__(self, line: str) -> None:
        self._fh.write(line)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_records(path: Path) -> list[dict[str, Any]]:
    """A ``frames.jsonl`` written by the probe, as records (blank lines skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out

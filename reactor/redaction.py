"""Scrub credentials out of any text or structure before it leaves the process.

Two nets, because neither alone is enough:

- **known values**: every :class:`~reactor.okx.credentials.Credentials` registers its API key,
  secret key and passphrase here when it is created, and any occurrence of one of them in a
  string is replaced - wherever it came from (an echoed frame, an exception, a header dump);
- **secret fields**: a value under a name such as ``sign``, ``passphrase``, ``apiKey``,
  ``secretKey`` or an ``OK-ACCESS-*`` header is replaced, in dicts and in text that looks like
  JSON, a Python repr or ``key=value`` (escaped quotes included): this catches the signature,
  which no registry can know in advance.

Used at the sources (WebSocket error frames, REST error texts, transport exceptions, journal
rows) and as the last processor of every log line (:mod:`reactor.log`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "SECRET_FIELDS", "redact", "redact_text", "register_secrets"]

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words; OKX's are far longer

SECRET_FIELDS = frozenset(
    name.lower()
    for name in (
        "sign",
        "signature",
        "passphrase",
        "apiKey",
        "api_key",
        "secretKey",
        "secret_key",
        "secret",
        "OK-ACCESS-KEY",
        "OK-ACCESS-SIGN",
        "OK-ACCESS-PASSPHRASE",
    )
)

_FIELD_NAMES = "|".join(
    sorted((re.escape(f) for f in SECRET_FIELDS), key=len, reverse=True)
).replace("_", "_?")
# name, optional (escaped) quote, ':' or '=', optional (escaped) quote, then the value up to
# the next quote, backslash, separator or bracket.
_FIELD_RE = re.compile(
    rf"""(?<![A-Za-z0-9_-])(\\*["']?(?:{_FIELD_NAMES})\\*["']?\s*[:=]\s*\\*["']?)"""
    r"""([^"'\\,;&}\]\s]+)""",
    re.IGNORECASE,
)

_lock = threading.Lock()
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None
_stale = False  # secrets were registered since _known_re was built


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that they are masked wherever they appear.

    The pattern is rebuilt when it is next used, not here: start-up registers every account's
    credentials one by one, and rebuilding (and compiling) the whole trie each time cost 8.5 s
    and ~200 MB (re's cache kept every pattern) at 1,000 sub-accounts (bench: app.start).
    """
    global _stale
    fresh = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS}
    with _lock:
        if fresh <= _known:
            return
        _known.update(fresh)
        _stale = True


def _known_pattern() -> re.Pattern[str] | None:
    """The pattern of every registered secret, rebuilt first if any was added since."""
    global _known_re, _stale
    if _stale:
        with _lock:
            if _stale:
                _known_re = re.compile(_trie_pattern(_known))
                _stale = False
    return _known_re


def _trie_pattern(values: Iterable[str]) -> str:
    """One regex for many literals, shaped as a trie: at each position of the text the engine
    follows only the branch of the next character, so the cost hardly grows with the number
    of accounts (a flat alternation of 1,500 keys cost ~300 µs per 160-character message).
    Longer matches are preferred (``x(?:yz)?``), so no partial secret is left behind."""
    trie: dict[str, Any] = {}
    for value in values:
        node = trie
        for ch in value:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        end = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if end else body

    return build(trie)


def redact_text(text: str) -> str:
    """``text`` with every known secret and every secret-named field's value masked."""
    if len(text) < MIN_SECRET_CHARS:
        return text
    pattern = _known_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if "=" in text or ":" in text:
        text = _FIELD_RE.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (str, dict, list, tuple, exception) with secrets masked.

    Other types (numbers, Decimals, None) are returned as they are.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: MASK
            if isinstance(k, str) and k.lower() in SECRET_FIELDS and v not in ("", None)
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value

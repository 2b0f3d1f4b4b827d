"""API credentials for one OKX (sub-)account.

A dedicated type so that secrets can never leak through ``repr``/``str`` into logs, tracebacks
or exception messages: only a short prefix of the API key is ever shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reactor.redaction import register_secrets


def _hint(value: str) -> str:
    return f"{value[:2]}…" if len(value) > 4 else "…"


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    passphrase: str = field(repr=False)

    def __post_init__(self) -> None:
        # Known from here on: masked in every log line, journal row and error text.
        register_secrets((self.api_key, self.secret_key, self.passphrase))

    def __repr__(self) -> str:
        return f"Credentials(api_key={_hint(self.api_key)!r}, ***)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

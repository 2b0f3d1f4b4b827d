"""The simulator's business rejections, carrying OKX's code (shared by the pure modules)."""

from __future__ import annotations


class ExchangeError(Exception):
    """A business rejection with OKX's code (59300, 59301, 59200, 51000, 51008...)."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg

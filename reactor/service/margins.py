"""Records the margin of every pushed position for the status page's chart, on its way to the
engine (the engine itself is not touched: this wraps its :class:`SessionHandler`)."""

from __future__ import annotations

from reactor.okx.models import Position
from reactor.okx.orders import OrderUpdate
from reactor.okx.ws import SessionHandler
from reactor.status.history import MarginRecorder


class MarginTap:
    """A :class:`SessionHandler` that hands every ``positions`` snapshot page and update to
    ``recorder`` before passing it on unchanged (recording never stops a push: it is pure
    arithmetic on data already parsed)."""

    def __init__(self, inner: SessionHandler, recorder: MarginRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def on_connected(self, account: str) -> None:
        self._inner.on_connected(account)

    def on_snapshot(
        self, account: str, positions: list[Position], *, last_page: bool, cur_page: int | None
    ) -> None:
        self._recorder.record(positions)
        self._inner.on_snapshot(account, positions, last_page=last_page, cur_page=cur_page)

    def on_update(self, account: str, positions: list[Position]) -> None:
        self._recorder.record(positions)
        self._inner.on_update(account, positions)

    def on_disconnected(self, account: str, reason: str) -> None:
        self._inner.on_disconnected(account, reason)

    def on_stopped(self, account: str, reason: str) -> None:
        self._inner.on_stopped(account, reason)

    def on_orders(self, account: str, orders: list[OrderUpdate]) -> None:
        self._inner.on_orders(account, orders)

"""``POST /api/pause`` and ``POST /api/resume``: pause one account or one position over local HTTP.

Mounted on the status server. The same token as the maintenance API (one bearer token, read
from the environment variable ``maintenance.api_token_env`` names, ``REACTOR_API_TOKEN`` by
default, checked by :class:`reactor.api.auth.TokenGuard`); without a token the endpoints
refuse every call (they never run open), and only loopback clients are served whatever
``status.host`` says. A pause is written to the ledger (it survives restarts, and ``reactor
pause``/``resume`` on the command line write the same rows) and applied to the engine at once.

Request (JSON): ``{"account": "Wu666666", "instId": "CRO-USDT-SWAP", "posSide": "long",
"reason": "manual hedge"}`` (``instId``/``posSide`` omitted: the whole account).

Answers: 200 ``{"ok": true, "changed": bool}``, 400 bad body (one line naming the field), 401
missing or wrong token, 403 not from loopback, 404 unknown account, 503 no token configured or
the ledger unavailable. Bodies never echo the token.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from reactor.api.auth import MAX_BODY, NO_STORE, BadRequest, Id, TokenGuard, parse_json_body
from reactor.log import get_logger
from reactor.store import Ledger, LedgerError

__all__ = ["PAUSE_PATH", "RESUME_PATH", "TOKEN_ENV", "ControlApi", "ControlRequest"]

log = get_logger(__name__)

PAUSE_PATH = "/api/pause"
RESUME_PATH = "/api/resume"
TOKEN_ENV = "REACTOR_API_TOKEN"  # the default of maintenance.api_token_env (one token for both)


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    account: Id
    inst_id: Id | None = Field(default=None, alias="instId")
    pos_side: Literal["long", "short", "net"] | None = Field(default=None, alias="posSide")
    reason: str = Field(default="", max_length=200)


def parse_request(body: bytes) -> ControlRequest:
    req = parse_json_body(body, ControlRequest, empty=b"{}")
    if (req.inst_id is None) != (req.pos_side is None):
        raise BadRequest("instId and posSide: give both (one position) or neither (the account)")
    return req


class ControlApi:
    """The handlers; ``on_change`` applies the ledger's pauses to the engine at once (the ledger
    poll only notices other processes' writes)."""

    def __init__(
        self,
        ledger: Ledger,
        token: str | None,
        accounts: Callable[[], Collection[str]],
        on_change: Callable[[], None],
        *,
        token_env: str = TOKEN_ENV,
    ) -> None:
        self._guard = TokenGuard(
            token or "",
            "control.api.refused",
            f"no API token configured (set {token_env})",
            {401: "bad token"},
            lambda request: {"path": request.path},
            loopback_only=True,
        )
        self._ledger = ledger
        self._accounts = accounts
        self._on_change = on_change

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PAUSE_PATH, self._pause)
        app.router.add_post(RESUME_PATH, self._resume)

    async def _pause(self, request: web.Request) -> web.Response:
        return await self._handle(request, pause=True)

    async def _resume(self, request: web.Request) -> web.Response:
        return await self._handle(request, pause=False)

    async def _handle(self, request: web.Request, *, pause: bool) -> web.Response:
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        try:
            req = parse_request(await request.content.read(MAX_BODY + 1))
        except BadRequest as exc:
            return _answer(400, error=str(exc))
        if req.account not in self._accounts():
            return _answer(404, error=f"account {req.account!r} is not in the config")
        fields = {"account": req.account, "instId": req.inst_id, "posSide": req.pos_side}
        try:
            if pause:
                changed = self._ledger.pause(
                    req.account, req.inst_id, req.pos_side, req.reason, source="api"
                )
            else:
                changed = self._ledger.resume(req.account, req.inst_id, req.pos_side)
        except LedgerError as exc:
            return _answer(503, error=f"ledger unavailable: {exc}"[:300])
        event = (
            ("control.paused" if changed else "control.pause.duplicate")
            if pause
            else ("control.resumed" if changed else "control.resume.not_paused")
        )
        log.info(event, **fields, source="api")
        self._on_change()
        return _answer(200, ok=True, changed=changed)


def _answer(status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=status, headers=NO_STORE)

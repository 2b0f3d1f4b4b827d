"""``POST /api/maintenance``: record a maintenance over local HTTP, for strategies that cannot tag.

Mounted on the status server (loopback by default). A bearer token read from the environment
(``maintenance.api_token_env``, default ``REACTOR_API_TOKEN``) is required; without a token
configured the endpoint refuses every call (it never runs open). The body names the position
and the order; the same idempotency rules as every other way in apply (``ordId`` and ``key``
are unique per account), so a strategy may retry a call, and a tagged fill already recorded
from the ``orders`` channel is not counted again.

Request (JSON)::

    {"account": "Wu666666", "instId": "CRO-USDT-SWAP", "posSide": "long",
     "ordId": "680800019749904384", "cTime": "1700000000000"}   # key defaults to ordId

Answers: 201 recorded, 200 already recorded (``duplicate``), 400 bad body (one line naming the
field), 401 missing or wrong token, 404 unknown or read-only account or an instrument OKX does
not list, 409 no open position on that side (the checks ``reactor maintenance record`` makes;
a body with ``cTime`` names its position itself and skips the position check), 503 no token
configured, the account's positions not read yet, or the ledger unavailable. Bodies never echo
the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from reactor.api.auth import (
    MAX_BODY,
    NO_STORE,
    BadRequest,
    Id,
    TokenGuard,
    bearer_ok,
    error_response,
    parse_json_body,
)
from reactor.log import get_logger
from reactor.store import Ledger, MaintenanceRecord

__all__ = [
    "MAINTENANCE_PATH",
    "BadRequest",
    "MaintenanceApi",
    "MaintenanceRequest",
    "PositionCheck",
    "Refused",
    "bearer_ok",
    "parse_request",
]

log = get_logger(__name__)

MAINTENANCE_PATH = "/api/maintenance"


class MaintenanceRequest(BaseModel):
    """The body of ``POST /api/maintenance``; ``key`` defaults to ``ordId``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    account: Id
    inst_id: Id = Field(alias="instId")
    pos_side: Literal["long", "short", "net"] = Field(alias="posSide")
    ord_id: Id | None = Field(default=None, alias="ordId")
    key: Id | None = None
    c_time: int | None = Field(default=None, alias="cTime", gt=0)

    @property
    def idempotency_key(self) -> str:
        key = self.key or self.ord_id
        assert key is not None  # parse_request refuses a body without either
        return key


def parse_request(body: bytes) -> MaintenanceRequest:
    """Validate a request body; raises :class:`BadRequest` with one line naming the field."""
    req = parse_json_body(body, MaintenanceRequest)
    if req.key is None and req.ord_id is None:
        raise BadRequest("ordId: give the order's ordId (or a key)")
    return req


class Refused(Exception):
    """A position check refused the request: ``status`` (404, 409, 503) and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# (account, instId, posSide, cTime given) -> the open position's cTime (None: not known), or
# raises Refused; the running reactor answers from its book and its instrument list.
PositionCheck = Callable[[str, str, str, int | None], Awaitable[int | None]]


class MaintenanceApi:
    """The handler; ``on_recorded`` lets the running engine re-evaluate the position at once."""

    def __init__(
        self,
        ledger: Ledger,
        token: str | None,
        managed_accounts: Collection[str] | Callable[[], Collection[str]],
        *,
        on_recorded: Callable[[MaintenanceRecord], None] | None = None,
        check: PositionCheck | None = None,
    ) -> None:
        """``managed_accounts`` may be a callable: asked per request (a config reload);
        ``check`` refuses what the CLI refuses (an unlisted instrument, no open position)."""
        self._ledger = ledger
        self._guard = TokenGuard(
            token or "",
            "maintenance.api.refused",
            "maintenance API disabled: no token configured",
            {503: "no token configured", 401: "missing or wrong token"},
            lambda request: {"peer": request.remote or ""},
        )
        self._accounts = managed_accounts
        self._on_recorded = on_recorded
        self._check = check

    @property
    def enabled(self) -> bool:
        return self._guard.enabled

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(MAINTENANCE_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.remote or ""
        refused = self._guard.refuse(request)
        if refused is not None:
            return refused
        try:
            req = parse_request(await request.content.read(MAX_BODY + 1))
        except BadRequest as exc:
            log.warning("maintenance.api.refused", reason=str(exc), peer=peer)
            return error_response(400, str(exc))
        accounts = self._accounts() if callable(self._accounts) else self._accounts
        if req.account not in accounts:
            log.warning("maintenance.api.refused", reason="unknown account", peer=peer)
            return error_response(404, f"account: {req.account} is not a managed sub-account")
        key = req.idempotency_key
        fields = {"account": req.account, "instId": req.inst_id, "posSide": req.pos_side}
        c_time = req.c_time
        if self._check is not None:
            try:
                c_time = await self._check(req.account, req.inst_id, req.pos_side, req.c_time)
            except Refused as exc:
                if not self._known(req.account, key):  # a retry stays a 200 duplicate
                    log.warning("maintenance.api.refused", reason=str(exc), peer=peer, **fields)
                    return error_response(exc.status, str(exc))
                c_time = req.c_time
        try:
            rec = self._ledger.record(
                req.account,
                req.inst_id,
                req.pos_side,
                key,
                source="api",
                c_time=c_time,
                ord_id=req.ord_id,
            )
        except Exception as exc:  # the ledger is down: say so, never pretend it was written
            log.error("maintenance.api.failed", **fields, key=key, error=type(exc).__name__)
            return error_response(503, f"ledger unavailable: {type(exc).__name__}")
        if rec is None:
            log.info("maintenance.duplicate", **fields, key=key, source="api")
            return web.json_response(
                {"recorded": False, "duplicate": True, "key": key}, headers=NO_STORE
            )
        log.info("maintenance.recorded", **fields, key=key, source="api", record_id=rec.id)
        if self._on_recorded is not None:
            self._on_recorded(rec)
        return web.json_response(
            {"recorded": True, "duplicate": False, "key": key, "id": rec.id},
            status=201,
            headers=NO_STORE,
        )

    def _known(self, account: str, key: str) -> bool:
        """Already recorded (a retry); an unreadable ledger is answered by the write itself."""
        try:
            return bool(self._ledger.find(key, account))
        except Exception:
            return False

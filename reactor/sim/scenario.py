"""Scenario files that seed the simulator: instruments, accounts, positions (YAML).

Validated with pydantic so a bad file fails at start-up with a message naming the file and the
field, instead of surfacing later as a wrong number in a push.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstrumentSpec(_Model):
    instId: str = Field(min_length=1)
    ctVal: Decimal = Field(gt=0)
    markPx: Decimal = Field(gt=0)
    mmrRate: Decimal = Field(default=Decimal("0.004"), ge=0, lt=1)
    lotSz: Decimal = Field(default=Decimal("1"), gt=0)
    tickSz: Decimal = Field(default=Decimal("0.0001"), gt=0)
    ctValCcy: str | None = None
    # Funding (docs/spec/okx-fidelity.md §11.2.2): the rate charged per settlement (a positive rate
    # makes longs pay shorts), and the seconds between settlements. OKX settles every 8 h at
    # 00:00/08:00/16:00 UTC, every 4 h or 2 h on some contracts (okx.com/help/360053909272);
    # tests scale the interval down. A rate of 0 turns the clock off.
    fundingRate: Decimal = Field(default=Decimal(0), gt=-1, lt=1)
    fundingIntervalS: float = Field(default=28800.0, gt=0)


class PositionSpec(_Model):
    instId: str = Field(min_length=1)
    posSide: Literal["long", "short", "net"]
    pos: Decimal
    avgPx: Decimal = Field(gt=0)
    lever: Decimal = Field(gt=0)
    margin: Decimal | None = Field(default=None, ge=0)
    mgnMode: Literal["isolated", "cross"] = "isolated"
    cTime: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> PositionSpec:
        if self.pos == 0:
            raise ValueError("pos must not be 0 (omit closed positions)")
        if self.posSide != "net" and self.pos < 0:
            raise ValueError("pos must be positive for posSide long/short")
        if self.mgnMode == "isolated" and self.margin is None:
            raise ValueError("margin is required for an isolated position")
        return self


class AccountSpec(_Model):
    name: str = Field(min_length=1)
    apiKey: str = Field(min_length=1)
    secretKey: SecretStr
    passphrase: SecretStr
    balance: Decimal = Field(ge=0)
    main: bool = False
    uid: str | None = None
    # The API key's permissions as ``GET /api/v5/account/config`` reports them (``perm``,
    # DOC-TA "Get account configuration": comma-separated read_only, trade, withdraw).
    perm: str = "read_only,trade"
    # account/config posMode (docs/spec/okx-fidelity.md §11.2.10); default: net_mode when a
    # position has posSide net, else long_short_mode.
    posMode: Literal["long_short_mode", "net_mode"] | None = None
    positions: list[PositionSpec] = Field(default_factory=list)


class PriceWalkSpec(_Model):
    enabled: bool = True
    interval_s: float = Field(default=1.0, gt=0)
    max_step_pct: Decimal = Field(default=Decimal("0.2"), gt=0, lt=50)
    seed: int | None = None


# ---- exchange mechanics (sim-trade): reduce rule, fees, tiers, position lifecycle -------------
# Every OKX unknown the order/bill/lifecycle mechanics depend on is a switch here, with OKX's
# most plausible (or strictest) behaviour as the default; see reactor/sim/reduce_rule.py.


class ReduceRuleSpec(_Model):
    """How much isolated margin a ``margin-balance`` reduce may take (OKX publishes no
    formula: docs/spec/okx-fidelity.md §4). The default is the strictest variant."""

    im_basis: Literal["mark", "avgPx", "max"] = "max"
    fee_reserve: bool = True  # keep the taker fee of closing the position at mark
    extra: Decimal = Field(default=Decimal(0), ge=0)  # a further fixed reserve (stricter OKX)


class TierSpec(_Model):
    """One position tier (OKX ``public/position-tiers``, SWAP sizes in contracts)."""

    maxSz: Decimal = Field(gt=0)
    mmr: Decimal = Field(ge=0, lt=1)
    maxLever: Decimal = Field(gt=0)


class PositionErrorsSpec(_Model):
    """The code ``margin-balance`` answers without a matching isolated position (which one
    OKX uses is unknown, docs/spec/okx-fidelity.md §7.16; DOC error table: 59300 "Margin call
    failed. Position does not exist.", 51023 "Position doesn't exist.", 51043 "This isolated
    position doesn't exist.", 51000 "Parameter {param0} error")."""

    missing: Literal["59300", "51023", "51043"] = "59300"  # no position on instId/posSide
    cross: Literal["51000", "59300", "51043"] = "51000"  # only a cross one there
    wrong_pos_side: Literal["59300", "51000", "51023", "51043"] = "59300"  # other posSide


class MechanicsSpec(_Model):
    reduce_rule: ReduceRuleSpec = Field(default_factory=ReduceRuleSpec)
    taker_fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=0, lt=1)
    reopen_ctime: Literal["new", "keep"] = "new"
    default_lever: Decimal = Field(default=Decimal(10), gt=0)
    tiers: dict[str, list[TierSpec]] = Field(default_factory=dict)
    # USDT/USD: notionalUsd = notional x usdt_usd, usdPx = usdt_usd (docs/spec/okx-fidelity.md §3.1;
    # CCXT-POS and a 2025 capture show USDT slightly off 1).
    usdt_usd: Decimal = Field(default=Decimal(1), gt=0)
    # Whether a position's lever shows the real leverage after a margin transfer
    # (unknown, docs/spec/okx-fidelity.md §7.14): keep the set leverage, or real = notional /
    # margin.
    lever_after_margin_call: Literal["keep", "real"] = "keep"
    # 59302 while TP/SL orders are attached: for reduces (DOC), and adds too (unknown).
    close_orders_block_add: bool = False
    position_errors: PositionErrorsSpec = Field(default_factory=PositionErrorsSpec)

    @model_validator(mode="after")
    def _check_tiers(self) -> MechanicsSpec:
        for inst_id, tiers in self.tiers.items():
            if not tiers:
                raise ValueError(f"tiers[{inst_id}]: at least one tier")
            sizes = [t.maxSz for t in tiers]
            if sizes != sorted(set(sizes)):
                raise ValueError(f"tiers[{inst_id}]: maxSz must increase")
        return self


# ---- end of the mechanics block ---------------------------------------------------------------


# ---- the simulated desk (sim-demo): market orders on the demo book, reactor/sim/desk.py -------


class DeskSpec(_Model):
    """A desk placing market orders on random open isolated positions, so that the demo
    shows fills being corrected. Not an OKX behaviour: a driver of the simulated market."""

    enabled: bool = True
    interval_s: float = Field(default=25.0, gt=0)  # one order every interval
    first_after_s: float | None = Field(default=None, ge=0)  # default: one interval
    maint_share: float = Field(default=0.8, ge=0, le=1)  # share of tagged maintenance fills
    tag: str = Field(default="maint", pattern=r"^[A-Za-z0-9]{1,16}$")  # OKX tag format
    # Order size: a random whole percentage of the position's first-seen size, in lots.
    size_pct: tuple[int, int] = (10, 30)
    max_growth: Decimal = Field(default=Decimal(3), gt=1)  # beyond: a plain reduce instead
    accounts: list[str] | None = None  # default: every account that is not main
    seed: int | None = None

    @model_validator(mode="after")
    def _check_sizes(self) -> DeskSpec:
        lo, hi = self.size_pct
        if not 1 <= lo <= hi <= 100:
            raise ValueError("size_pct: two whole percentages, 1 <= min <= max <= 100")
        return self


# ---- end of the desk block --------------------------------------------------------------------


class SimulatorSpec(_Model):
    """How the simulated OKX behaves where OKX's behaviour is a setting or unknown."""

    # Positions per snapshot page (OKX's own page size is unknown, docs/spec/okx-fidelity.md §1.3).
    snapshot_page_size: int = Field(default=100, ge=1)
    # Multiplies the regular-snapshot intervals and the 50 ms event window (tests: 0.1).
    time_scale: float = Field(default=1.0, gt=0)
    # Omit eventType/curPage/lastPage from positions pushes, as in 2024 (CCXT-21565).
    legacy_push_fields: bool = False
    # Close with 4001 "Login Failed" after a failed WS login (DOC-WS close codes; likely).
    close_on_login_failure: bool = True
    # The accounts' keys are demo-trading keys: REST requests need x-simulated-trading: 1,
    # and a live key must not send it (DOC: 50101, docs/spec/okx-fidelity.md §7.8).
    demo_keys: bool = True
    # DOC-WS limits (docs/spec/okx-fidelity.md §7.4; reactor/sim/ws_limits.py); 0 turns one off.
    ws_connects_per_s: int = Field(default=3, ge=0)  # new connections per second per IP
    # Beyond it: HTTP 429 on the upgrade, or accept and close 1013 (OKX: undocumented).
    ws_connect_refusal: Literal["http_429", "close"] = "http_429"
    ws_ops_per_hour: int = Field(default=480, ge=0)  # login/subscribe/unsubscribe per conn
    ws_conns_per_channel: int = Field(default=30, ge=0)  # per channel per sub-account
    # What adjust-leverage-info's estAvailTrans answers for an isolated position (unknown,
    # docs/spec/okx-fidelity.md §11.2.1: DOC-TA calls it "estimated" and "not applicable when
    # increasing leverage"; no public capture of an isolated SWAP answer exists). exact: the reduce
    # rule's own limit; optimistic / pessimistic: that plus / minus est_avail_trans_delta
    # (USDT; pessimistic never below 0), so a capped reduce can still get 59301 or leave
    # margin behind; empty: "" at every lever.
    est_avail_trans: Literal["exact", "optimistic", "pessimistic", "empty"] = "exact"
    est_avail_trans_delta: Decimal = Field(default=Decimal("0.5"), ge=0)


class Scenario(_Model):
    instruments: list[InstrumentSpec] = Field(min_length=1)
    accounts: list[AccountSpec] = Field(min_length=1)
    price_walk: PriceWalkSpec | None = None
    desk: DeskSpec | None = None  # sim-demo
    mechanics: MechanicsSpec = Field(default_factory=MechanicsSpec)  # sim-trade
    simulator: SimulatorSpec = Field(default_factory=SimulatorSpec)

    @model_validator(mode="after")
    def _check_references(self) -> Scenario:
        inst_ids = [i.instId for i in self.instruments]
        _unique("instruments", "instId", inst_ids)
        _unique("accounts", "name", [a.name for a in self.accounts])
        _unique("accounts", "apiKey", [a.apiKey for a in self.accounts])
        known = set(inst_ids)
        for a in self.accounts:
            # OKX keys a position by instId, posSide and mgnMode (docs/spec/okx-fidelity.md §3.4)
            keys = [(p.instId, p.posSide, p.mgnMode) for p in a.positions]
            _unique(f"accounts[{a.name}].positions", "instId+posSide+mgnMode", keys)
            for p in a.positions:
                if p.instId not in known:
                    raise ValueError(
                        f"accounts[{a.name}].positions: instId {p.instId!r} is not an instrument"
                    )
        if self.desk is not None and self.desk.accounts is not None:
            names = {a.name for a in self.accounts}
            for name in self.desk.accounts:
                if name not in names:
                    raise ValueError(f"desk.accounts: {name!r} is not an account")
        for inst_id in self.mechanics.tiers:
            if inst_id not in known:
                raise ValueError(f"mechanics.tiers: {inst_id!r} is not an instrument")
        return self


def _unique(where: str, field: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{where}: duplicate {field} {v!r}")
        seen.add(v)


def scenario_from_dict(raw: Any, source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed scenario (tests build them as dicts)."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{source}: expected a mapping at top level")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ScenarioError(f"{source}: {loc}: {first['msg']}{more}") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; every failure is a :class:`ScenarioError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{p}: not valid YAML: {exc}") from None
    return scenario_from_dict(raw, str(p))

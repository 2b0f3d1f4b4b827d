"""``reactor plan``: read every account's positions once and print what the reactor would do now.

A safe first step before going live: nothing is written to the exchange and nothing to the
ledger. The decision is :func:`reactor.domain.policy.decide` itself, with the maintenance
counts from the ledger (0 when there is none yet) and the operator's pauses; the rows are
built by the pure
:func:`plan_rows`, the I/O (REST reads) is in :func:`read_book`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import TextIO

from reactor.config import Config, resolve_credentials
from reactor.domain.policy import ActionKind, PolicyConfig, decide, round_down
from reactor.log import get_logger
from reactor.okx.credentials import Credentials
from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
from reactor.okx.models import PayloadError, Position, parse_instrument, parse_position
from reactor.service.accounts import configured_client

log = get_logger(__name__)

EXIT_UNREACHABLE = 1
COLUMNS = (
    *("account", "instId", "posSide", "pos", "margin", "count"),
    *("target", "band", "floor", "action", "amount", "reason"),
)


@dataclass(frozen=True, slots=True)
class PlanRow:
    account: str
    inst_id: str
    pos_side: str
    pos: Decimal
    margin: Decimal | None
    count: int
    target: Decimal | None
    band: tuple[Decimal, Decimal] | None
    floor: Decimal | None
    action: str  # add | reduce | none | blocked | paused | skip
    amount: Decimal | None
    reason: str

    def cells(self) -> list[str]:
        def d(v: Decimal | None) -> str:
            return "-" if v is None else format(v, "f")

        band = "-" if self.band is None else f"{self.band[0]}-{self.band[1]}"
        return [
            self.account,
            self.inst_id,
            self.pos_side,
            d(self.pos),
            d(self.margin),
            str(self.count),
            d(self.target),
            band,
            d(self.floor),
            self.action,
            d(self.amount),
            self.reason,
        ]


PauseLookup = Callable[[str, str, str], str | None]


def _row(
    pos: Position,
    action: str,
    reason: str,
    *,
    count: int = 0,
    target: Decimal | None = None,
    band: tuple[Decimal, Decimal] | None = None,
    floor: Decimal | None = None,
    amount: Decimal | None = None,
) -> PlanRow:
    return PlanRow(
        pos.account,
        pos.inst_id,
        pos.pos_side,
        pos.pos,
        pos.margin,
        count,
        target,
        band,
        floor,
        action,
        amount,
        reason,
    )


def plan_rows(
    positions: Sequence[Position],
    roles: Mapping[str, str],
    ct_vals: Mapping[str, Decimal],
    counts: Callable[[Position], int],
    policy: PolicyConfig,
    paused: PauseLookup = lambda a, i, s: None,
) -> list[PlanRow]:
    """One row per position, in account/instrument order; the same gates as the engine's
    evaluation before :func:`decide` (read-only account, cross margin, pause, unknown ctVal)."""
    rows = []
    for pos in sorted(positions, key=lambda p: (p.account, p.inst_id, p.pos_side)):
        row = partial(_row, pos)
        if roles.get(pos.account) != "sub":
            rows.append(row("skip", "read-only account"))
            continue
        if not pos.is_managed_kind:
            rows.append(row("skip", f"{pos.mgn_mode} {pos.inst_id}"))
            continue
        why = paused(pos.account, pos.inst_id, pos.pos_side)
        if why is not None:
            rows.append(row("paused", f"paused: {why}" if why else "paused"))
            continue
        ct_val = ct_vals.get(pos.inst_id)
        if ct_val is None:
            rows.append(row("skip", "instrument not listed (no ctVal)"))
            continue
        count = counts(pos)
        action = decide(pos, ct_val, count, policy)
        rows.append(
            row(
                action.kind.value,
                action.reason,
                count=count,
                target=action.target,
                band=action.band,
                floor=action.floor,
                amount=action.amount
                if action.kind in (ActionKind.ADD, ActionKind.REDUCE)
                else None,
            )
        )
    return rows


def apply_exchange_limit(row: PlanRow, cap: Decimal | None, policy: PolicyConfig) -> PlanRow:
    """A reduce as the engine sends it: never above OKX's own ``estAvailTrans`` (read at the
    position's leverage), rounded down to the step; below ``min_action`` it is not sent.
    ``cap`` None: the limit could not be read, and then the engine sends no reduce either."""
    if row.action != "reduce" or row.amount is None:
        return row
    if cap is None:
        return replace(row, action="blocked", amount=None, reason="estAvailTrans unreadable")
    if cap >= row.amount:
        return row
    amount = round_down(max(cap, Decimal(0)), policy.amount_step)
    if amount < policy.min_action:
        why = f"exchange_limit: estAvailTrans {cap} < min_action"
        return replace(row, action="blocked", amount=None, reason=why)
    return replace(row, amount=amount, reason=f"{row.reason}; capped by estAvailTrans {cap}")


def render(rows: Sequence[PlanRow], out: TextIO) -> None:
    """A plain aligned table (no colours: it is read in terminals and pasted into tickets)."""
    table = [list(COLUMNS)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
    for line in table:
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=False)] + [line[-1]]
        out.write("  ".join(cells).rstrip() + "\n")
    acting = sum(1 for r in rows if r.action in ("add", "reduce"))
    out.write(f"{len(rows)} positions, {acting} would be corrected now\n")


class Unreachable(Exception):
    """A read failed (network, OKX error): exit 1, naming the account."""


async def read_book(
    rest_url: str, cfg: Config, creds: Mapping[str, Credentials]
) -> tuple[dict[str, Decimal], list[Position]]:
    """Instruments (ctVal) and every enabled account's positions, by REST, once."""
    positions: list[Position] = []
    ct_vals: dict[str, Decimal] = {}
    for i, (name, c) in enumerate(creds.items()):
        async with configured_client(cfg, rest_url, c, name) as client:
            try:
                if i == 0:
                    for raw in await client.get_instruments("SWAP"):
                        try:
                            inst = parse_instrument(raw)
                        except PayloadError:
                            continue
                        ct_vals[inst.inst_id] = inst.ct_val
                raws = await client.get_positions("SWAP")
            except (OkxError, RequestNotSent, AmbiguousOutcome) as exc:
                raise Unreachable(f"{name}: cannot read positions: {exc}") from None
        for raw in raws:
            try:
                positions.append(parse_position(name, raw))
            except PayloadError as exc:
                log.warning("rest.payload.invalid", what="position", account=name, reason=str(exc))
    return ct_vals, [p for p in positions if p.pos != 0]


async def read_caps(
    rest_url: str,
    cfg: Config,
    creds: Mapping[str, Credentials],
    wanted: Sequence[Position],
) -> dict[tuple[str, str, str], Decimal | None]:
    """``estAvailTrans`` for each position the plan would reduce (None when unreadable: the
    engine would not send that reduce either, and the row says so)."""
    out: dict[tuple[str, str, str], Decimal | None] = {}
    for pos in wanted:
        key = (pos.account, pos.inst_id, pos.pos_side)
        async with configured_client(cfg, rest_url, creds[pos.account], pos.account) as client:
            try:
                if pos.lever is None:
                    raise ValueError("no lever")
                info = await client.adjust_leverage_info(pos.inst_id, pos.lever, pos.pos_side)
                cap = Decimal(str(info.get("estAvailTrans")))
                out[key] = cap if cap.is_finite() and cap >= 0 else None
            except (OkxError, RequestNotSent, AmbiguousOutcome, ValueError, ArithmeticError):
                out[key] = None
    return out


async def _plan(cfg: Config, out: TextIO) -> int:
    from reactor.service.accounts import embedded_credentials

    sim = None
    if cfg.venue.embedded:
        from reactor.sim.scenario import load_scenario
        from reactor.sim.server import Simulator

        assert cfg.venue.scenario is not None
        scenario = load_scenario(cfg.venue.scenario)
        creds = embedded_credentials(cfg, scenario)
        sim = Simulator(scenario, price_walk=False)
        await sim.start("127.0.0.1", 0)
        rest_url = sim.url
    else:
        creds = resolve_credentials(cfg)
        rest_url, _ = cfg.venue.urls()
    try:
        ct_vals, positions = await read_book(rest_url, cfg, creds)
        rows = _rows(cfg, ct_vals, positions)
        reducing = {(r.account, r.inst_id, r.pos_side) for r in rows if r.action == "reduce"}
        wanted = [p for p in positions if (p.account, p.inst_id, p.pos_side) in reducing]
        caps = await read_caps(rest_url, cfg, creds, wanted)
    except Unreachable as exc:
        print(f"reactor: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        if sim is not None:
            await sim.stop()
    policy = cfg.policy_config()
    rows = [
        apply_exchange_limit(r, caps[(r.account, r.inst_id, r.pos_side)], policy)
        if (r.account, r.inst_id, r.pos_side) in caps
        else r
        for r in rows
    ]
    render(rows, out)
    return 0


def _rows(cfg: Config, ct_vals: Mapping[str, Decimal], positions: list[Position]) -> list[PlanRow]:
    """The plan's rows with the ledger's counts and pauses (no ledger yet: counts 0)."""
    from reactor.store import SqliteLedger
    from reactor.store.state_dir import LEDGER_FILE

    path = cfg.state_dir / LEDGER_FILE
    ledger = SqliteLedger(path) if path.exists() else None
    try:
        pauses = {p.key: p.reason for p in ledger.pauses()} if ledger else {}

        def counts(p: Position) -> int:
            return ledger.count(p.account, p.inst_id, p.pos_side, p.c_time) if ledger else 0

        def paused(a: str, i: str, s: str) -> str | None:
            whole = pauses.get((a, None, None))
            return whole if whole is not None else pauses.get((a, i, s))

        roles = {a.name: a.role for a in cfg.enabled_accounts()}
        return plan_rows(positions, roles, ct_vals, counts, cfg.policy_config(), paused)
    finally:
        if ledger is not None:
            ledger.close()


def plan_command(cfg: Config, out: TextIO | None = None) -> int:
    return asyncio.run(_plan(cfg, out or sys.stdout))

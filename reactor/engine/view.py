"""The engine's read-only view for the status page: reads state, never writes it, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from reactor.domain.book import PositionBook
from reactor.engine.state import AccountState, PositionControl, Role, Status
from reactor.okx.models import Position, PositionKey


@dataclass(frozen=True, slots=True)
class PositionView:
    account: str
    role: Role
    inst_id: str
    pos_side: str
    mgn_mode: str
    pos: Decimal
    margin: Decimal | None
    target: Decimal | None
    band: tuple[Decimal, Decimal] | None
    count: int
    upl: Decimal | None
    profit_rate: Decimal | None
    status: Status
    reason: str
    sources: tuple[tuple[str, int], ...] = ()  # where the counted records came from


@dataclass(frozen=True, slots=True)
class AccountView:
    name: str
    role: Role
    enabled: bool
    fresh: bool  # a full snapshot came and the subscription was not lost since
    stopped_reason: str | None
    positions: tuple[PositionView, ...]
    paused: str | None = None  # the whole account is paused by an operator (with this reason)


@dataclass(frozen=True, slots=True)
class EngineView:
    accounts: tuple[AccountView, ...]
    main_expected_positions: int
    problems: tuple[str, ...]  # engine-level reasons /healthz fails (storage, internal errors)
    storage_ok: bool
    internal_errors: int


_NO_CONTROL = PositionControl()


def build_view(
    accounts: Iterable[AccountState],
    book: PositionBook,
    controls: Mapping[PositionKey, PositionControl],
    *,
    main_expected_positions: int,
    problems: list[str],
    storage_ok: bool,
    internal_errors: int,
    paused_accounts: Mapping[str, str] | None = None,
    sources: Callable[[Position], tuple[tuple[str, int], ...]] | None = None,
) -> EngineView:
    """``sources``: where a position's counted maintenance records came from (cached, no I/O)."""
    out = []
    problems = list(problems)
    for state in accounts:
        rows = []
        managed = state.role is Role.SUB
        for pos in book.positions(state.name):
            control = controls.get(pos.key, _NO_CONTROL)
            rows.append(
                PositionView(
                    account=state.name,
                    role=state.role,
                    inst_id=pos.inst_id,
                    pos_side=pos.pos_side,
                    mgn_mode=pos.mgn_mode,
                    pos=pos.pos,
                    margin=pos.margin,
                    target=control.target if managed else None,
                    band=control.band if managed else None,
                    count=control.count,
                    sources=sources(pos) if managed and sources is not None else (),
                    upl=pos.upl,
                    profit_rate=pos.profit_rate,
                    status=control.status if managed else Status.UNMANAGED,
                    reason=control.reason,
                )
            )
            if control.foreign_held:
                problems.append(
                    f"{state.name} {pos.inst_id} {pos.pos_side}: held, margin moved by"
                    " transfers this reactor did not make (another controller?)"
                )
            if control.guard_held:
                problems.append(
                    f"{state.name} {pos.inst_id} {pos.pos_side}: held by the runaway guard"
                )
        out.append(
            AccountView(
                name=state.name,
                role=state.role,
                enabled=state.enabled,
                fresh=book.is_fresh(state.name),
                stopped_reason=state.stopped_reason
                or ("runaway guard tripped" if state.guard_tripped else None),
                positions=tuple(rows),
                paused=(paused_accounts or {}).get(state.name),
            )
        )
    return EngineView(
        accounts=tuple(out),
        main_expected_positions=main_expected_positions,
        problems=tuple(problems),
        storage_ok=storage_ok,
        internal_errors=internal_errors,
    )

"""Hand-built status snapshots shared by the ops tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D

from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot

BANDS = {0: ("10", "9.5", "10.5"), 1: ("10", "9.5", "10.5"), 2: ("20", "19", "21")}


def position(
    account: str,
    inst: str,
    side: str,
    *,
    margin: str = "10",
    upl: str = "0",
    count: int = 0,
    status: str = "ok",
    reason: str = "",
    role: str = "sub",
    pos: str = "1",
) -> PositionStatus:
    target, lo, hi = BANDS.get(count, ("30", "28.5", "31.5"))
    managed = role == "sub"
    return PositionStatus(
        account=account,
        role=role,
        inst_id=inst,
        pos_side=side,
        pos=D(pos),
        margin=D(margin),
        target=D(target) if managed else None,
        band_lo=D(lo) if managed else None,
        band_hi=D(hi) if managed else None,
        count=count,
        upl=D(upl),
        profit_rate=(D(upl) / D(margin)).quantize(D("0.0001")),
        status=status,
        reason=reason,
    )


def sample_snapshot(main_positions: int = 3, expected: int = 4) -> StatusSnapshot:
    main = tuple(
        position(
            "main",
            f"COIN{i}-USDT-SWAP",
            "long" if i % 2 == 0 else "short",
            role="main",
            margin="50",
            upl="-5" if i == 0 else "2.5",
            status="unmanaged",
        )
        for i in range(main_positions)
    )
    return StatusSnapshot(
        accounts=(
            AccountStatus("main", "main", True, True, True, None, main),
            AccountStatus(
                "sub-a",
                "sub",
                True,
                True,
                True,
                None,
                (
                    position("sub-a", "BTC-USDT-SWAP", "long", margin="10.2", upl="-1.02"),
                    position(
                        "sub-a",
                        "ETH-USDT-SWAP",
                        "short",
                        margin="24",
                        upl="-6",
                        count=2,
                        status="blocked",
                        reason="unrealised loss",
                    ),
                ),
            ),
            AccountStatus(
                "sub-b",
                "sub",
                True,
                True,
                True,
                None,
                (position("sub-b", "SOL-USDT-SWAP", "long", margin="30", upl="3", count=3),),
            ),
            AccountStatus("sub-off", "sub", False, False, False, None, ()),
        ),
        main_expected_positions=expected,
        generated_ms=1_700_000_000_000,
    )


@dataclass
class MutableSource:
    """A StatusSource whose snapshot a test can swap."""

    snapshot: StatusSnapshot = field(default_factory=sample_snapshot)
    calls: int = 0

    def status_snapshot(self) -> StatusSnapshot:
        self.calls += 1
        return self.snapshot

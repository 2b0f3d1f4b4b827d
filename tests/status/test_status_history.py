"""Last action and margin chart from journal rows; dry-run status; venue; metrics semantics
(reconnects are not shutdowns, retries are not reactions, calls carry their account)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from reactor.engine.view import AccountView, EngineView, PositionView
from reactor.status.history import last_calls, margin_history
from reactor.status.metrics import Metrics
from reactor.status.snapshot import build_snapshot

from .test_status_model import _samples

NOW = 1_700_000_000_000
H = 3600 * 1000
KEY = ("a", "CRO-USDT-SWAP", "long")


@dataclass(frozen=True)
class Row:
    account: str
    inst_id: str
    pos_side: str
    action: str
    amount: str
    status: str
    sent_ms: int
    done_ms: int | None = None


def row(action: str, amount: str, at: int, status: str = "ok", key: tuple[str, ...] = KEY) -> Row:
    return Row(key[0], key[1], key[2], action, amount, status, at, at + 50)


def test_history_steps_back_from_the_current_margin() -> None:
    rows = [
        row("reduce", "10.03", NOW - 2 * H),  # 20.29 -> 10.26
        row("add", "5", NOW - H, status="error"),  # rejected: moved nothing
        row("add", "0.5", NOW - H // 2),  # 10.26 -> 10.76
        row("reduce", "1", NOW - 9 * H),  # outside the 6 h window
    ]
    hist = margin_history(rows, {KEY: D("10.76")}, now_ms=NOW, window_ms=6 * H)[KEY]
    assert hist == (
        (NOW - 6 * H, D("20.29")),
        (NOW - 2 * H + 50, D("20.29")),
        (NOW - 2 * H + 50, D("10.26")),
        (NOW - H // 2 + 50, D("10.26")),
        (NOW - H // 2 + 50, D("10.76")),
        (NOW, D("10.76")),
    )
    last = last_calls(rows)[KEY]
    assert (last.action, last.amount, last.sent_ms) == ("add", "0.5", NOW - H // 2)


@given(st.lists(st.tuples(st.sampled_from(["add", "reduce"]), st.integers(1, 500)), max_size=20))
def test_history_replays_to_the_current_margin(calls: list[tuple[str, int]]) -> None:
    """Replaying the calls forwards from the first point ends at the current margin, and time
    never goes backwards."""
    current = D("100")
    rows = [row(a, str(D(c) / 100), NOW - H + i * 1000) for i, (a, c) in enumerate(calls)]
    hist = margin_history(rows, {KEY: current}, now_ms=NOW, window_ms=6 * H)[KEY]
    margin = hist[0][1]
    for r in rows:
        margin += D(r.amount) if r.action == "add" else -D(r.amount)
    assert margin == current == hist[-1][1]
    assert [t for t, _ in hist] == sorted(t for t, _ in hist)


def _view(status: str, margin: str, reason: str = "") -> EngineView:
    p = PositionView(
        account="a",
        role="sub",
        inst_id="CRO-USDT-SWAP",
        pos_side="long",
        mgn_mode="isolated",
        pos=D("108"),
        margin=D(margin),
        target=D("10"),
        band=(D("9.5"), D("10.5")),
        count=0,
        upl=D("1"),
        profit_rate=D("0.05"),
        status=status,
        reason=reason,
    )
    acc = AccountView("a", "sub", True, True, True, None, (p,))
    stopped = AccountView("b", "sub", True, False, False, "login failed 60024", ())
    return EngineView((acc, stopped), 22, (), True, 0)


def test_dry_run_position_out_of_band_is_not_ok() -> None:
    snap = build_snapshot(_view("ok", "20.29", "dry run"), NOW, venue="live", dry_run=True)
    (p,) = snap.accounts[0].positions
    assert (p.status, p.reason) == ("dry_run", "dry run: would adjust")
    in_band = build_snapshot(_view("ok", "10"), NOW, venue="live", dry_run=True)
    assert in_band.accounts[0].positions[0].status == "ok"
    live = build_snapshot(_view("ok", "20.29"), NOW, venue="live")
    assert live.accounts[0].positions[0].status == "ok"  # not a dry run: the engine decides


def test_snapshot_carries_venue_stopped_accounts_and_last_action() -> None:
    rows = [row("reduce", "10.03", NOW - H)]
    snap = build_snapshot(_view("ok", "10.26"), NOW, venue="demo", journal=rows)
    j = snap.to_json()
    assert (j["venue"], j["dryRun"]) == ("demo", False)
    assert j["sub"]["states"]["stopped"] == 1 and j["sub"]["states"]["live"] == 1
    assert j["sub"]["stopped"] == [{"name": "b", "reason": "login failed 60024"}]
    pos = j["accounts"][0]["positions"][0]
    assert pos["lastAction"] == {
        "action": "reduce",
        "amount": "10.03",
        "result": "ok",
        "ms": NOW - H,
    }
    assert pos["history"][0] == [NOW - 6 * H, "20.29"] and pos["history"][-1] == [NOW, "10.26"]
    v = _samples(Metrics(process=False).render(snap))
    assert float(v['reactor_info{dry_run="false",venue="demo"}']) == 1
    assert float(v['reactor_accounts{role="sub",state="stopped"}']) == 1
    assert float(v['reactor_account_stopped{account="b",role="sub"}']) == 1


def test_reconnects_are_not_shutdowns_and_retries_are_not_reactions() -> None:
    m = Metrics(process=False)
    m.inc_reconnect("a")
    m.inc_reconnect("a", reason="stopped")  # the account stopped for good
    m.stopping()
    m.inc_reconnect("a")  # the clean shutdown's disconnect
    m.observe_latency(0.002)
    m.observe_latency(30.0, retry=True)  # back-off inside: not a reaction
    m.inc_adjustment("ok", account="a")
    v = _samples(m.render())
    assert float(v['reactor_ws_reconnects_total{account="a"}']) == 1
    assert float(v["reactor_event_to_call_seconds_count"]) == 1
    assert float(v["reactor_event_to_call_seconds_sum"]) == 0.002
    assert float(v["reactor_retry_call_delay_seconds_count"]) == 1
    assert float(v['reactor_margin_adjustments_total{account="a",result="ok"}']) == 1
    assert "process_open_fds" not in v


class _Engine:
    def __init__(self, view: EngineView) -> None:
        self._view = view

    def view(self) -> EngineView:
        return self._view


def test_engine_status_reads_the_journal_at_most_once_per_ttl_and_survives_failures() -> None:
    from reactor.status.snapshot import EngineStatus

    reads: list[int] = []
    now = [0.0]
    fail = [False]

    def journal(since_ms: int) -> list[Row]:
        reads.append(since_ms)
        if fail[0]:
            raise RuntimeError("database is locked")
        return [row("reduce", "10.03", since_ms + H)]

    source = EngineStatus(
        _Engine(_view("ok", "10.26")),
        venue="sim",
        journal=journal,
        journal_ttl_s=2,
        clock=lambda: now[0],
    )
    first = source.status_snapshot()
    assert first.accounts[0].positions[0].last_action == "reduce"
    source.status_snapshot()
    assert len(reads) == 1
    now[0], fail[0] = 3.0, True
    broken = source.status_snapshot()  # storage failing: the page still renders
    assert len(reads) == 2 and broken.accounts[0].positions[0].last_action is None
    assert broken.venue == "sim"

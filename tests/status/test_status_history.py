"""Last action and margin chart from journal rows; dry-run status; venue; metrics semantics
(reconnects are not shutdowns, retries are not reactions, calls carry their account)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from reactor.engine.view import AccountView, EngineView, PositionView
from reactor.status.history import MarginRecorder, last_calls
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


@dataclass(frozen=True)
class Pushed:
    account: str
    inst_id: str
    pos_side: str
    pos: D
    margin: D | None
    u_time: int
    c_time: int = NOW - 10 * H


def pushed(
    margin: str | None, at: int, pos: str = "108", key: tuple[str, ...] = KEY, c_time: int = 0
) -> Pushed:
    opened = NOW - 10 * H if c_time == 0 else c_time
    return Pushed(key[0], key[1], key[2], D(pos), None if margin is None else D(margin), at, opened)


def test_last_call_is_the_latest_sent() -> None:
    rows = [
        row("reduce", "10.03", NOW - 2 * H),
        row("add", "5", NOW - H, status="error"),
        row("add", "0.5", NOW - H // 2),
        row("reduce", "1", NOW - 9 * H),
    ]
    last = last_calls(rows)[KEY]
    assert (last.action, last.amount, last.sent_ms) == ("add", "0.5", NOW - H // 2)


def test_chart_is_the_margin_okx_pushed_not_rebuilt_from_calls() -> None:
    """The issue's case: the journal says 20.29 -> 10.36 (a reduce of 9.93), then a fill moved
    the margin to 12.00. Rebuilt backwards from 12.00 with the call amount, the chart showed
    21.93 -> 12.00 and shifted the whole past; recorded, it is what OKX pushed."""
    rec = MarginRecorder(window_ms=6 * H)
    rec.record([pushed("20.29", NOW - 3 * H)])
    rec.record([pushed("20.29", NOW - 3 * H + 5)])  # unchanged: no new point
    rec.record([pushed("10.36", NOW - 2 * H)])  # after the reduce
    rec.record([pushed("25", NOW - 3 * H + 9)])  # a late push (older uTime): ignored
    rec.record([pushed("12.00", NOW - H)])  # a fill
    assert rec.history({KEY: D("12.00")}, NOW)[KEY] == (
        (NOW - 3 * H, D("20.29")),
        (NOW - 2 * H, D("10.36")),
        (NOW - H, D("12.00")),
        (NOW, D("12.00")),
    )
    # no push recorded (e.g. just restarted): no line at all, never a made-up one
    other = ("a", "SOL-USDT-SWAP", "long")
    assert other not in rec.history({KEY: D("12"), other: D("9.8")}, NOW)


def test_each_position_carries_the_ctime_okx_pushed() -> None:
    """``/api/status`` names the position (its cTime: the one the maintenance count is for);
    a reopened position has another, a late push of the old one does not bring it back, a
    closed position has none."""
    rec = MarginRecorder(window_ms=6 * H)
    assert rec.c_time(KEY) is None  # nothing pushed yet: unknown, never made up
    rec.record([pushed("20", NOW - 3 * H, c_time=NOW - 5 * H)])
    assert rec.c_time(KEY) == NOW - 5 * H
    rec.record([pushed("0", NOW - 2 * H, pos="0")])  # closed
    assert rec.c_time(KEY) is None
    rec.record([pushed("15", NOW - H, c_time=NOW - H)])  # reopened
    rec.record([pushed("20", NOW - 3 * H + 1, c_time=NOW - 5 * H)])  # a late push of the old
    assert rec.c_time(KEY) == NOW - H
    view = EngineView(
        accounts=(
            AccountView(
                "a",
                "sub",
                True,
                True,
                None,
                (
                    PositionView(
                        "a",
                        "sub",
                        KEY[1],
                        KEY[2],
                        "isolated",
                        D("108"),
                        D("15"),
                        D("15"),
                        (D("14"), D("16")),
                        0,
                        None,
                        None,
                        "ok",
                        "",
                    ),
                ),
            ),
        ),
        main_expected_positions=0,
        problems=(),
        storage_ok=True,
        internal_errors=0,
    )
    [acc] = build_snapshot(view, NOW, margins=rec).to_json()["accounts"]
    assert acc["positions"][0]["cTime"] == NOW - H
    [acc] = build_snapshot(view, NOW).to_json()["accounts"]
    assert acc["positions"][0]["cTime"] is None


def test_recorded_history_is_bounded() -> None:
    rec = MarginRecorder(window_ms=6 * H, max_points=8)
    for i in range(10):  # one push per hour for 10 hours
        rec.record([pushed(str(10 + i), NOW - (9 - i) * H)])
    # older than the window dropped, except where the line starts (13, 6 h ago)
    assert len(rec) == 7
    hist = rec.history({KEY: D("19")}, NOW)[KEY]
    assert hist[0] == (NOW - 6 * H, D("13")) and hist[-1] == (NOW, D("19"))
    assert [t for t, _ in hist] == sorted(t for t, _ in hist)
    # time passes without pushes: older points fall out of the window at read time
    later = rec.history({KEY: D("19")}, NOW + 4 * H)[KEY]
    assert later == (
        (NOW - 2 * H, D("17")),
        (NOW - H, D("18")),
        (NOW, D("19")),
        (NOW + 4 * H, D("19")),
    )
    few = MarginRecorder(window_ms=6 * H, max_points=5)
    for i in range(10):
        few.record([pushed(str(10 + i), NOW + i)])
    assert len(few) == 5  # at most max_points per position, the newest
    # a position that closes forgets its past; one the engine no longer has is dropped
    rec.record([pushed("0", NOW + 1, pos="0")])
    assert len(rec) == 0 and rec.history({KEY: D("5")}, NOW + 2) == {}
    rec.record([pushed("7", NOW + 3)])
    rec.history({}, NOW + 4)
    assert len(rec) == 0


@given(st.lists(st.tuples(st.integers(0, 20 * H), st.integers(1, 5000)), max_size=60))
def test_recorded_line_is_ordered_in_window_and_ends_at_the_current_margin(
    pushes: list[tuple[int, int]],
) -> None:
    rec = MarginRecorder(window_ms=6 * H, max_points=20)
    for at, cents in pushes:
        rec.record([pushed(str(D(cents) / 100), NOW - 20 * H + at)])
    assert len(rec) <= 20
    hist = rec.history({KEY: D("1")}, NOW).get(KEY, ())
    times = [t for t, _ in hist]
    assert times == sorted(times) and all(NOW - 6 * H <= t <= NOW for t in times)
    assert not hist or hist[-1] == (NOW, D("1"))


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
    acc = AccountView("a", "sub", True, True, None, (p,))
    stopped = AccountView("b", "sub", True, False, "login failed 60024", ())
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
    assert pos["history"] == []  # no pushes recorded: no chart rather than one made up
    rec = MarginRecorder(6 * H)
    rec.record([pushed("20.29", NOW - 2 * H), pushed("10.26", NOW - H)])
    charted = build_snapshot(_view("ok", "10.26"), NOW, journal=rows, margins=rec).to_json()
    assert charted["accounts"][0]["positions"][0]["history"] == [
        [NOW - 2 * H, "20.29"],
        [NOW - H, "10.26"],
        [NOW, "10.26"],
    ]
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

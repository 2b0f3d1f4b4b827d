"""Status snapshot totals, health reasons, JSON form and Prometheus rendering."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from decimal import Decimal as D

from reactor.status.metrics import Metrics
from reactor.status.model import PROFIT_RATE_WEIGHTING, AccountStatus, StatusSnapshot

from .snapshots import position, sample_snapshot


def test_totals() -> None:
    s = sample_snapshot(main_positions=3, expected=4)
    assert (s.main_long, s.main_short, s.main_total) == (2, 1, 3)
    assert s.has_main and s.main_below_expected
    assert (s.sub_accounts, s.sub_positions) == (2, 3)
    assert s.total_upl == D("-4.02")
    # Margin-weighted: total uPnL over total margin (an unweighted mean would be -0.0417).
    rows = [p for a in s.accounts for p in a.positions]
    margin = sum((p.margin for p in rows if p.margin is not None), D(0))
    assert s.avg_profit_rate == (D("-4.02") / margin).quantize(D("0.0001")) == D("-0.0188")
    assert not sample_snapshot(main_positions=4, expected=4).main_below_expected


def test_net_mode_side_follows_sign() -> None:
    p = position("main", "X-USDT-SWAP", "net", role="main", pos="-3")
    assert p.side == "short"
    assert replace(p, pos=D("2")).side == "long"


def test_no_main_account_is_not_below_expected() -> None:
    s = StatusSnapshot((AccountStatus("a", "sub", True, True, True, None, ()),), 22, 0)
    assert not s.has_main and not s.main_below_expected
    assert s.avg_profit_rate is None and s.total_upl == 0


def test_problems_only_for_enabled_accounts() -> None:
    s = sample_snapshot()
    assert s.healthy and s.problems() == ()
    down = AccountStatus("sub-x", "sub", True, False, False, None, ())
    stale = AccountStatus("sub-y", "sub", True, True, False, None, ())
    stopped = AccountStatus("sub-z", "sub", True, False, False, "login failed: 50113", ())
    s2 = replace(s, accounts=(*s.accounts, down, stale, stopped))
    assert s2.problems() == (
        "sub-x: not connected",
        "sub-y: data not fresh",
        "sub-z: stopped (login failed: 50113)",
        "sub-z: not connected",
    )


def test_to_json_uses_decimal_strings() -> None:
    j = sample_snapshot().to_json()
    json.dumps(j)  # serialisable as is
    assert j["main"] == {
        "present": True,
        "long": 2,
        "short": 1,
        "total": 3,
        "expected": 4,
        "belowExpected": True,
    }
    assert j["sub"] == {
        "accounts": 2,
        "positions": 3,
        "states": {"live": 2, "stale": 0, "disconnected": 0, "stopped": 0, "disabled": 1},
        "stopped": [],
    }
    assert j["pnl"] == {
        "upl": "-4.02",
        "avgProfitRate": "-0.0188",
        "avgProfitRateWeighting": PROFIT_RATE_WEIGHTING,
    }
    assert (j["venue"], j["dryRun"]) == ("", False)
    eth = j["accounts"][1]["positions"][1]
    assert eth == {
        "account": "sub-a",
        "role": "sub",
        "instId": "ETH-USDT-SWAP",
        "posSide": "short",
        "cTime": None,
        "side": "short",
        "pos": "1",
        "margin": "24",
        "target": "20",
        "bandLo": "19",
        "bandHi": "21",
        "count": 2,
        "sources": {},
        "upl": "-6",
        "profitRate": "-0.2500",
        "status": "blocked",
        "reason": "unrealised loss",
        "lastAction": None,
        "history": [],
    }
    big = replace(sample_snapshot().accounts[1].positions[0], margin=D("1E+1"))
    assert big.to_json()["margin"] == "10"


def _samples(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = value
    return out


def test_metrics_render() -> None:
    m = Metrics()
    m.inc_adjustment("ok")
    m.inc_adjustment("ok")
    m.inc_adjustment("failed")
    m.inc_reconnect('we"ird\\acct')
    for s in (0.0005, 0.003, 0.003, 0.2, 9.0):
        m.observe_latency(s)
    text = m.render(sample_snapshot())
    v = _samples(text)
    assert float(v['reactor_margin_adjustments_total{account="",result="ok"}']) == 2.0
    assert float(v['reactor_margin_adjustments_total{account="",result="failed"}']) == 1.0
    assert float(v['reactor_ws_reconnects_total{account="we\\"ird\\\\acct"}']) == 1.0
    assert float(v['reactor_event_to_call_seconds_bucket{le="0.001"}']) == 1
    assert float(v['reactor_event_to_call_seconds_bucket{le="0.0025"}']) == 1
    assert float(v['reactor_event_to_call_seconds_bucket{le="0.005"}']) == 3
    assert float(v['reactor_event_to_call_seconds_bucket{le="0.25"}']) == 4
    assert float(v['reactor_event_to_call_seconds_bucket{le="5.0"}']) == 4
    assert float(v['reactor_event_to_call_seconds_bucket{le="+Inf"}']) == 5
    assert float(v["reactor_event_to_call_seconds_count"]) == 5
    assert float(v["reactor_event_to_call_seconds_sum"]) == sum((0.0005, 0.003, 0.003, 0.2, 9.0))
    assert float(v['reactor_positions{account="sub-a",role="sub",status="blocked"}']) == 1
    assert float(v['reactor_positions{account="sub-a",role="sub",status="ok"}']) == 1
    assert float(v['reactor_positions{account="main",role="main",status="unmanaged"}']) == 3
    assert float(v['reactor_account_up{account="sub-b",role="sub"}']) == 1
    assert 'reactor_account_up{account="sub-off",role="sub"}' not in v
    assert float(v['reactor_main_positions{side="long"}']) == 2
    assert float(v["reactor_main_positions_expected"]) == 4
    assert float(v["reactor_unrealized_pnl_usdt"]) == -4.02
    assert float(v['reactor_info{dry_run="false",venue="unknown"}']) == 1
    assert float(v['reactor_accounts{role="sub",state="disabled"}']) == 1
    assert float(v['reactor_account_stopped{account="sub-b",role="sub"}']) == 0
    assert float(v["process_max_fds"]) > 0 and float(v["process_open_fds"]) > 0
    # Every sample belongs to a declared family (HELP and TYPE lines present).
    types = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for name in v:
        base = re.sub(r"(_bucket|_sum|_count)$", "", name.split("{")[0])
        assert base in types, name


def test_metrics_without_snapshot_or_data() -> None:
    text = Metrics().render()
    assert 'reactor_event_to_call_seconds_bucket{le="+Inf"} 0' in text
    assert "reactor_positions" not in text

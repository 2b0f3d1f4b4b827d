"""Fact extraction, redaction, fixture layout and the summary, on recorded frames (pure)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reactor.okx.endpoints import BILLS, MARGIN_BALANCE
from reactor.probe.facts import (
    extract_facts,
    match_bill,
    ws_facts,
)
from reactor.probe.fixtures import UID_MASK, fixture_payloads, readme
from reactor.probe.record import REDACTED, Recorder, Redactor, redact_ws_out
from reactor.probe.summary import summary_lines
from tests.domain.factories import MsClock

INST = "XRP-USDT-SWAP"
# CCXT-BILL: a real type-6 bill captured 2024-03-22 (docs/spec/okx-fidelity.md §5.2).
CCXT_BILL = {
    "bal": "67621.4325135010619812", "balChg": "-10.0000000000000000",
    "billId": "691293628710342659", "ccy": "USDT", "clOrdId": "", "execType": "", "fee": "0",
    "fillTime": "1711089244850", "from": "", "instId": INST, "instType": "SWAP",
    "interest": "0", "mgnMode": "isolated", "notes": "", "ordId": "", "pnl": "0",
    "posBal": "73.12", "posBalChg": "10.00", "px": "", "subType": "160", "sz": "10", "tag": "",
    "to": "", "tradeId": "0", "ts": "1711089244699", "type": "6",
}  # fmt: skip
# CCXT-21565: the initial push of a 2024 OKX cluster, without eventType/curPage/lastPage.
UNTYPED_PUSH = {"arg": {"channel": "positions", "instType": "ANY", "uid": "77"}, "data": []}


def position(**kw: str) -> dict[str, str]:
    base = {"instId": INST, "posSide": "long", "mgnMode": "isolated", "pos": "100"}
    base.update({"margin": "20", "lever": "3", "uTime": "1000", "pTime": "1001"})
    return {**base, **kw}


def push(event_type: str | None, data: list[Any], **extra: Any) -> str:
    msg: dict[str, Any] = {"arg": {"channel": "positions", "instType": "SWAP", "uid": "42"}}
    if event_type is not None:
        msg["eventType"] = event_type
    msg.update(extra)
    msg["data"] = data
    return json.dumps(msg)


def stream(window_s: float = 12) -> tuple[Recorder, MsClock]:
    clock = MsClock()
    rec = Recorder(Redactor(["the-key", "the-secret", "the-pass"]), clock=clock)
    rec.add("ws_open", conn=1, url="wss://example")
    rec.ws_in(1, json.dumps({"event": "login", "code": "0", "msg": "", "connId": "a"}))
    rec.ws_in(1, json.dumps({"event": "subscribe", "arg": {"channel": "positions"}}))
    rec.ws_in(1, json.dumps({"event": "channel-conn-count", "connCount": "1"}))
    rec.step("observe", "start", window_s=window_s)
    return rec, clock


def test_snapshots_pages_and_intervals() -> None:
    rec, clock = stream()
    for t in (0, 5000, 10100):  # three regular pushes of two pages each
        clock.ms += t - (clock.ms - 1_700_000_000_000)
        rec.ws_in(1, push("snapshot", [position()], curPage=1, lastPage=False))
        clock.ms += 2
        rec.ws_in(1, push("snapshot", [position(), position()], curPage=2, lastPage=True))
    rec.step("observe", "end")
    ws = ws_facts(rec.records)
    assert ws["snapshots"]["count"] == 3
    assert ws["snapshots"]["intervals_ms"] == [5000, 5100]
    assert ws["snapshots"]["interval_ms"] == {"min": 5000, "median": 5050, "max": 5100}
    assert ws["snapshots"]["pages_max"] == 2 and ws["snapshots"]["page_size_max"] == 2
    assert ws["pages"]["curPage"] == {"present": 6, "types": ["int"]}
    assert ws["pages"]["lastPage"] == {"present": 6, "types": ["bool"]}
    assert ws["event_type"] == {"present": 6, "absent": 0, "values": ["snapshot"]}
    assert ws["between_snapshots"]["pushes"] == 0
    assert ws["login_code"] == "0" and ws["channel_conn_count"] is True
    assert ws["p_time_present"] is True
    assert ws["closed_in_window"] is None


def test_pushes_between_snapshots_and_a_close_in_the_window() -> None:
    rec, clock = stream()
    rec.ws_in(1, push("snapshot", [position()], curPage=1, lastPage=True))
    clock.ms += 1000
    rec.ws_in(1, push("event_update", [position(markPx="1.1")]))
    clock.ms += 29000
    rec.add("ws_closed", conn=1, code=4004, reason="No data received in 30s")
    rec.step("observe", "end")
    ws = ws_facts(rec.records)
    assert ws["between_snapshots"] == {"pushes": 1, "event_types": ["event_update"]}
    assert ws["closed_in_window"] == {
        "code": 4004,
        "reason": "No data received in 30s",
        "after_open_ms": 30000,
    }
    assert ws["snapshots"]["interval_ms"] is None


def test_a_cluster_without_event_type_counts_every_push_as_regular() -> None:
    rec, clock = stream()
    rec.ws_in(1, json.dumps(UNTYPED_PUSH))
    clock.ms += 5000
    rec.ws_in(1, json.dumps(UNTYPED_PUSH))
    rec.step("observe", "end")
    ws = ws_facts(rec.records)
    assert ws["event_type"] == {"present": 0, "absent": 2, "values": []}
    assert ws["pages"]["curPage"] == {"present": 0, "types": []}
    assert ws["snapshots"]["count"] == 2 and ws["snapshots"]["intervals_ms"] == [5000]


def test_frames_after_the_window_are_not_part_of_it() -> None:
    rec, _ = stream()
    rec.step("observe", "end")
    rec.ws_in(1, push("event_update", [position()]))
    assert ws_facts(rec.records)["pushes"] == 0


def margin_call(rec: Recorder, clock: MsClock, *, bills: list[dict[str, Any]] | None) -> None:
    before = {"margin": "20", "lever": "3", "uTime": "1000"}
    t_sent = clock.ms
    rec.step("select", "chosen", instId=INST, posSide="long")
    rec.step(
        "add_1",
        "start",
        instId=INST,
        posSide="long",
        action="add",
        amt="10",
        before=before,
        t_sent_ms=t_sent,
    )
    rec.add("http_request", id=1, method="POST", path=MARGIN_BALANCE, body="{}")
    clock.ms += 40
    answer = {"code": "0", "msg": "", "data": [{"amt": "10", "leverage": "2.5"}]}
    rec.add("http_response", id=1, method="POST", path=MARGIN_BALANCE, status=200,
            body=json.dumps(answer))  # fmt: skip
    rec.step("add_1", "result", code="0", msg="", applied=True)
    clock.ms += 30
    rec.ws_in(1, push("event_update", [position(margin="30", uTime=str(t_sent + 5))]))
    for n in range(2):
        clock.ms += 500
        body = (
            {"code": "0", "msg": "", "data": [] if n == 0 else bills}
            if bills is not None
            else {"code": "404", "msg": "Not Found"}
        )
        path = f"{BILLS}?instType=SWAP&type=6"
        rec.add("http_response", id=2 + n, method="GET", path=path, status=200,
                body=json.dumps(body))  # fmt: skip
        if bills is None:
            break
    after = {"margin": "30", "lever": "3", "uTime": str(t_sent + 5)}
    rec.step("add_1", "end", after=after, push_seen=True, bill_seen=bills is not None)


def test_margin_call_push_lever_and_bill() -> None:
    rec, clock = stream()
    rec.step("observe", "end")
    bill = {**CCXT_BILL, "ts": str(clock.ms + 20)}
    margin_call(rec, clock, bills=[bill])
    f = extract_facts(rec.records)["margin_calls"]["add_1"]
    assert f["code"] == "0" and f["applied"] is True
    assert f["answer"] == {"amt": "10", "leverage": "2.5"}
    push_fact = f["event_push"]
    assert push_fact["seen"] and push_fact["latency_ms"] == 70
    assert push_fact["eventType"] == "event_update"
    assert push_fact["uTime_moved"] is True and push_fact["lever_changed"] is False
    assert push_fact["carries_transfer"] is True  # 20 + 10 = 30
    assert f["rest_after"]["margin_delta"] == "10" and f["rest_after"]["uTime_moved"] is True
    assert f["bill"]["available"] and f["bill"]["seen"]
    assert f["bill"]["latency_ms"] == 1070 and f["bill"]["ts_minus_sent_ms"] == 20
    assert f["bill"]["polls"] == 2 and f["bill"]["bill"]["billId"] == CCXT_BILL["billId"]


def test_bills_not_available_is_a_fact() -> None:
    rec, clock = stream()
    rec.step("observe", "end")
    margin_call(rec, clock, bills=None)
    bill = extract_facts(rec.records)["margin_calls"]["add_1"]["bill"]
    assert bill == {"available": False, "seen": False, "polls": 1, "code": "404"}


def test_match_bill_on_the_captured_bill() -> None:
    sent = int(CCXT_BILL["ts"]) - 100
    assert match_bill([CCXT_BILL], INST, "160", Decimal(10), sent) is CCXT_BILL
    assert match_bill([CCXT_BILL], INST, "161", Decimal(10), sent) is None  # a reduce
    assert match_bill([CCXT_BILL], INST, "160", Decimal(1), sent) is None  # another amount
    assert match_bill([CCXT_BILL], "BTC-USDT-SWAP", "160", Decimal(10), sent) is None
    assert match_bill([CCXT_BILL], INST, "160", Decimal(10), sent + 60_000) is None  # older
    assert match_bill(["junk", {"type": 6}], INST, "160", Decimal(10), sent) is None


def test_reduce_limit_against_the_reactor_floor() -> None:
    rec, _ = stream()
    rec.step("reduce_limit", "end", available=True, lever="10", margin="20.29",
             reactor_floor="10.26432", est_avail_trans="9.8")  # fmt: skip
    lim = extract_facts(rec.records)["reduce_limit"]
    assert lim["reactor_max_reduce"] == "10.02568"
    assert lim["est_minus_reactor"] == "-0.22568"


def test_redaction_of_login_frames_and_literal_secrets() -> None:
    login = json.dumps({"op": "login", "args": [{"apiKey": "k", "passphrase": "p",
                        "timestamp": "1", "sign": "s"}]})  # fmt: skip
    assert json.loads(redact_ws_out(login))["args"][0] == {
        "apiKey": REDACTED,
        "passphrase": REDACTED,
        "timestamp": "1",
        "sign": REDACTED,
    }
    assert redact_ws_out("ping") == "ping"
    lines: list[str] = []
    rec = Recorder(Redactor(["the-secret", "the-pass"]), sink=lines.append)
    rec.add("http_request", path="/x?k=the-secret", body='{"passphrase":"zz"}', secret="q")
    text = "".join(lines)
    assert "the-secret" not in text and '"q"' not in text
    assert rec.records[0]["path"] == f"/x?k={REDACTED}"


@given(st.text(min_size=1, max_size=20), st.text(max_size=60))
def test_a_secret_never_survives_the_recorder(secret: str, noise: str) -> None:
    lines: list[str] = []
    rec = Recorder(Redactor([secret]), sink=lines.append)
    rec.ws_in(1, noise + secret + noise)
    rec.add("http_response", body=json.dumps({"x": secret}), path=secret)
    for record in map(json.loads, lines):  # every line stays valid JSON
        strings = [v for v in record.values() if isinstance(v, str)]
        assert all(secret not in v or secret in REDACTED for v in strings)


def test_fixture_layout_and_uid_mask() -> None:
    rec, clock = stream()
    rec.ws_in(1, push("snapshot", [], curPage=1, lastPage=True))
    rec.ws_in(1, push("snapshot", [position()], curPage=1, lastPage=True))
    rec.ws_in(1, json.dumps(UNTYPED_PUSH))
    rec.step("observe", "end")
    margin_call(rec, clock, bills=None)
    rec.add("http_response", id=9, method="POST", path=MARGIN_BALANCE, status=200,
            body=json.dumps({"code": "59301", "msg": "x", "data": []}))  # fmt: skip
    files = fixture_payloads(rec.records)
    assert sorted(files) == [
        "bills_404.json",
        "margin_balance.json",
        "margin_balance_59301.json",
        "ws_event_channel_conn_count.json",
        "ws_event_login.json",
        "ws_event_subscribe.json",
        "ws_positions_event_update.json",
        "ws_positions_snapshot.json",
        "ws_positions_untyped.json",
    ]
    assert files["ws_positions_snapshot.json"]["data"] == [position()]  # the one with data
    assert files["ws_positions_snapshot.json"]["arg"]["uid"] == UID_MASK
    assert files["ws_positions_untyped.json"]["arg"]["uid"] == UID_MASK


def test_the_margin_bill_is_kept_as_a_record_of_its_own() -> None:
    rec, clock = stream()
    rec.step("observe", "end")
    margin_call(rec, clock, bills=[{**CCXT_BILL, "type": "2", "subType": "1"}, CCXT_BILL])
    files = fixture_payloads(rec.records)
    assert files["bill_margin_transfer.json"] == CCXT_BILL
    assert files["bills.json"]["data"][1] == CCXT_BILL  # the answer with data, not the empty one
    assert "| `bill_margin_transfer.json` |" in readme(sorted(files), "a test")


def test_summary_names_the_facts() -> None:
    rec, clock = stream()
    rec.ws_in(1, push("snapshot", [position()], curPage=1, lastPage=True))
    rec.step("observe", "end")
    margin_call(rec, clock, bills=[{**CCXT_BILL, "ts": str(clock.ms)}])
    rec.step("done", "end", net_left="0", unresolved=[], undo="not needed")
    facts = extract_facts(rec.records)
    facts["meta"] = {"account": "A", "venue": "demo", "rest_url": "https://www.okx.com"}
    text = "\n".join(summary_lines(facts))
    assert "eventType present on 1" in text
    assert "event push after 70 ms" in text
    assert "bill type 6/160 seen 1070 ms after the call" in text
    assert "net margin moved by the probe 0" in text
    rec.step("done", "end", net_left="1", unresolved=[], undo="failed: 50013")
    facts = {**extract_facts(rec.records), "meta": {}}
    assert any(line.startswith("WARNING: margin NOT restored") for line in summary_lines(facts))

"""Facts from a probe's record stream: pure functions, re-runnable on any ``frames.jsonl``.

Each fact names what was seen, never what was expected, so the same code reads the simulator
and OKX. Sources of the questions: docs/spec/okx-fidelity.md §1.3/§1.4 (snapshots, pages,
``eventType``), §1.2/§7.14 (``uTime``/``lever`` after a margin call), §5 (bills), §4
(``estAvailTrans``, 59301). Numbers are decimal strings; times are ms.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from reactor.okx.bills import BILL_TYPE_MARGIN, TRANSFER_SUBTYPE
from reactor.okx.endpoints import BILLS, MARGIN_BALANCE

BILL_SKEW_MS = 5000
WS_SERVICE_UPGRADE = "64008"
HOUR_MS = 3_600_000

OBSERVED_STEPS = ("add_1", "reduce_1")
BOUNDARY_STEPS = ("above_limit", "at_limit")

Record = dict[str, Any]


def lenient_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a captured field (string or JSON number), else None."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def match_bill(
    bills: Iterable[Any], inst_id: str, sub_type: str, amt: Decimal, t_sent_ms: int
) -> dict[str, Any] | None:
    """The margin-transfer bill of one call: type 6, the subType of its direction, the same
    instrument, ``sz`` equal to the amount (CCXT-BILL: ``sz`` is the amount transferred) and
    ``ts`` no earlier than the send time minus a clock skew allowance."""
    for bill in bills:
        if not isinstance(bill, dict):
            continue
        if str(bill.get("type")) != BILL_TYPE_MARGIN or str(bill.get("subType")) != sub_type:
            continue
        if bill.get("instId") != inst_id or lenient_decimal(bill.get("sz")) != amt:
            continue
        ts = lenient_decimal(bill.get("ts"))
        if ts is None or ts < t_sent_ms - BILL_SKEW_MS:
            continue
        return bill
    return None


# -- parsing the stream --------------------------------------------------------------------


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def positions_pushes(records: Iterable[Record]) -> list[tuple[Record, dict[str, Any]]]:
    """Every received ``positions`` push with its record."""
    out = []
    for r in records:
        if r.get("kind") != "ws_in":
            continue
        msg = _json(r.get("text"))
        if (
            isinstance(msg, dict)
            and isinstance(msg.get("arg"), dict)
            and msg["arg"].get("channel") == "positions"
            and isinstance(msg.get("data"), list)
        ):
            out.append((r, msg))
    return out


def ws_events(records: Iterable[Record]) -> list[tuple[Record, dict[str, Any]]]:
    """Every received ``event`` frame (login, subscribe, error, channel-conn-count, notice)."""
    out = []
    for r in records:
        if r.get("kind") == "ws_in":
            msg = _json(r.get("text"))
            if isinstance(msg, dict) and "event" in msg:
                out.append((r, msg))
    return out


def http_answers(records: Sequence[Record], path: str) -> list[tuple[Record, Any]]:
    """Responses (and errors) for ``path`` with their parsed body (None if not JSON)."""
    out = []
    for r in records:
        if r.get("kind") in ("http_response", "http_error") and _path(r) == path:
            out.append((r, _json(r.get("body"))))
    return out


def _path(r: Record) -> str:
    return str(r.get("path", "")).split("?", 1)[0]


def _steps(records: Sequence[Record], name: str) -> dict[str, Record]:
    """The records of one step by phase (the last of each phase wins)."""
    return {
        str(r.get("phase")): r for r in records if r.get("kind") == "step" and r.get("name") == name
    }


def _between(records: Sequence[Record], start: Record, end: Record | None) -> list[Record]:
    lo = int(start["seq"])
    hi = int(end["seq"]) if end is not None else len(records) + lo + 1
    return [r for r in records if lo <= int(r["seq"]) <= hi]


def _is_regular(msg: dict[str, Any]) -> bool:
    """A regular push: ``eventType`` snapshot, or (on clusters that send none, CCXT-21565)
    any push without ``eventType``."""
    return bool(msg.get("eventType", "snapshot") == "snapshot")


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


# -- the facts -----------------------------------------------------------------------------


def ws_facts(records: Sequence[Record]) -> dict[str, Any]:
    """Push model during the quiet observation window (check 1)."""
    obs = _steps(records, "observe")
    start, end = obs.get("start"), obs.get("end")
    opened = next((r for r in records if r.get("kind") == "ws_open"), None)
    # From the connection's opening (the subscribe snapshot belongs to what was observed) to
    # the end of the quiet window.
    first = opened or start or (records[0] if records else None)
    window = _between(records, first, end) if first is not None else []
    pushes = positions_pushes(window)
    events = ws_events(window)
    login = next((m for _, m in events if m.get("event") == "login"), None)
    ack = next((m for _, m in events if m.get("event") == "subscribe"), None)
    errors = [m for _, m in events if m.get("event") == "error"]
    closed = next((r for r in window if r.get("kind") == "ws_closed"), None)
    with_type = [m for _, m in pushes if "eventType" in m]

    snapshots: list[tuple[int, int, int]] = []  # (t_ms of page 1, pages, largest page)
    between = []
    for r, m in pushes:
        if not _is_regular(m):
            between.append(m)
            continue
        page = m.get("curPage", 1)
        if page in (1, "1") or not snapshots:
            snapshots.append((int(r["t_ms"]), 1, len(m["data"])))
        else:
            t0, n, size = snapshots[-1]
            snapshots[-1] = (t0, n + 1, max(size, len(m["data"])))
    starts = [s[0] for s in snapshots]
    intervals = [b - a for a, b in itertools.pairwise(starts)]
    regular = [m for _, m in pushes if _is_regular(m)]
    return {
        "connected": opened is not None,
        "login_code": None if login is None else login.get("code"),
        "subscribe_ack": None if ack is None else sorted(ack),
        "channel_conn_count": any(m.get("event") == "channel-conn-count" for _, m in events),
        "errors": [{"code": m.get("code"), "msg": m.get("msg")} for m in errors],
        "window_s": None if start is None else start.get("window_s"),
        "closed_in_window": None
        if closed is None
        else {
            "code": closed.get("code"),
            "reason": closed.get("reason"),
            "after_open_ms": None if opened is None else closed["t_ms"] - opened["t_ms"],
        },
        "pushes": len(pushes),
        "event_type": {
            "present": len(with_type),
            "absent": len(pushes) - len(with_type),
            "values": sorted({str(m["eventType"]) for m in with_type}),
        },
        "pages": {
            name: {
                "present": sum(name in m for m in regular),
                "types": sorted({_type_name(m[name]) for m in regular if name in m}),
            }
            for name in ("curPage", "lastPage")
        },
        "p_time_present": any(
            isinstance(p, dict) and "pTime" in p for _, m in pushes for p in m["data"]
        ),
        "snapshots": {
            "count": len(snapshots),
            "pages_max": max((s[1] for s in snapshots), default=0),
            "page_size_max": max((s[2] for s in snapshots), default=0),
            "intervals_ms": intervals,
            "interval_ms": None
            if not intervals
            else {
                "min": min(intervals),
                "median": int(statistics.median(intervals)),
                "max": max(intervals),
            },
        },
        "between_snapshots": {
            "pushes": len(between),
            "event_types": sorted({str(m.get("eventType")) for m in between}),
        },
    }


def find_event_push(
    records: Sequence[Record], inst_id: str, pos_side: str, after_ms: int
) -> tuple[Record, dict[str, Any], dict[str, Any]] | None:
    for r, m in positions_pushes(records):
        if int(r["t_ms"]) < after_ms or m.get("eventType") == "snapshot":
            continue
        for p in m["data"]:
            if isinstance(p, dict) and p.get("instId") == inst_id and p.get("posSide") == pos_side:
                return r, m, p
    return None


def _changed(before: Any, after: Any) -> bool | None:
    if before in (None, "") or after in (None, ""):
        return None
    b, a = lenient_decimal(before), lenient_decimal(after)
    if b is not None and a is not None:
        return b != a
    return bool(before != after)


def _carries(before: Any, pushed: Any, start: Record, amt: Decimal) -> bool | None:
    """Whether the pushed margin is the margin before plus (add) or minus (reduce) the amount:
    the push reports this transfer, not some other change."""
    m0, m1 = lenient_decimal(before), lenient_decimal(pushed)
    if m0 is None or m1 is None:
        return None
    return m1 - m0 == (amt if start.get("action") == "add" else -amt)


def margin_call_facts(records: Sequence[Record], name: str) -> dict[str, Any] | None:
    """One observed call (check 2): its answer, the push, ``uTime``/``lever``, the bill."""
    phases = _steps(records, name)
    start = phases.get("start")
    if start is None:
        return None
    end = phases.get("end")
    result = phases.get("result", {})
    span = _between(records, start, end)
    inst, side = str(start.get("instId")), str(start.get("posSide"))
    t_sent = int(start.get("t_sent_ms") or start["t_ms"])
    amt = lenient_decimal(start.get("amt")) or Decimal(0)
    before = start.get("before") or {}
    after = (end or {}).get("after") or {}

    answer = None
    for _, body in http_answers(span, MARGIN_BALANCE):
        if isinstance(body, dict):
            data = body.get("data")
            answer = data[0] if isinstance(data, list) and data else None

    push_fact: dict[str, Any] = {"seen": False}
    found = find_event_push(span, inst, side, t_sent)
    if found is not None:
        r, m, p = found
        push_fact = {
            "seen": True,
            "latency_ms": int(r["t_ms"]) - t_sent,
            "eventType": m.get("eventType"),
            "uTime_moved": _changed(before.get("uTime"), p.get("uTime")),
            "lever_before": before.get("lever"),
            "lever_pushed": p.get("lever"),
            "lever_changed": _changed(before.get("lever"), p.get("lever")),
            "margin_pushed": p.get("margin"),
            "carries_transfer": _carries(before.get("margin"), p.get("margin"), start, amt),
            "p_time_present": "pTime" in p,
        }

    bill_fact: dict[str, Any] = {"available": None, "seen": False, "polls": 0}
    sub_type = TRANSFER_SUBTYPE.get(str(start.get("action")), "")
    for r, body in http_answers(span, BILLS):
        bill_fact["polls"] += 1
        code = str(body.get("code")) if isinstance(body, dict) else None
        if code != "0":
            bill_fact["available"] = False
            bill_fact["code"] = code if code is not None else str(r.get("status", "no answer"))
            break
        bill_fact["available"] = True
        bill = match_bill(body.get("data") or [], inst, sub_type, amt, t_sent)
        if bill is not None:
            ts = lenient_decimal(bill.get("ts"))
            bill_fact.update(
                seen=True,
                latency_ms=int(r["t_ms"]) - t_sent,
                ts_minus_sent_ms=None if ts is None else int(ts) - t_sent,
                bill=bill,
            )
            break

    m0, m1 = lenient_decimal(before.get("margin")), lenient_decimal(after.get("margin"))
    return {
        "action": start.get("action"),
        "amt": start.get("amt"),
        "code": result.get("code"),
        "msg": result.get("msg"),
        "applied": result.get("applied"),
        "answer": answer,
        "event_push": push_fact,
        "rest_after": {
            "uTime_moved": _changed(before.get("uTime"), after.get("uTime")),
            "lever_before": before.get("lever"),
            "lever_after": after.get("lever"),
            "lever_changed": _changed(before.get("lever"), after.get("lever")),
            "margin_before": before.get("margin"),
            "margin_after": after.get("margin"),
            "margin_delta": None if m0 is None or m1 is None else _s(m1 - m0),
        },
        "bill": bill_fact,
    }


def reduce_limit_facts(records: Sequence[Record]) -> dict[str, Any] | None:
    """``estAvailTrans`` against the reactor's floor (check 3)."""
    end = _steps(records, "reduce_limit").get("end")
    if end is None:
        return None
    est = lenient_decimal(end.get("est_avail_trans"))
    margin = lenient_decimal(end.get("margin"))
    floor = lenient_decimal(end.get("reactor_floor"))
    reactor_max = None if margin is None or floor is None else max(margin - floor, Decimal(0))
    return {
        "available": bool(end.get("available")),
        "plausible": end.get("plausible"),
        "code": end.get("code"),
        "msg": end.get("msg"),
        "lever": end.get("lever"),
        "margin": _s(margin),
        "est_avail_trans": _s(est),
        "reactor_floor": _s(floor),
        "reactor_max_reduce": _s(reactor_max),
        "est_minus_reactor": None if est is None or reactor_max is None else _s(est - reactor_max),
        # asked at the position's own lever (§11.2.1: "not applicable when increasing")
        "at_own_lever": end.get("lever") == (end.get("position") or {}).get("lever"),
        "empty": isinstance(end.get("answer"), dict)
        and end["answer"].get("estAvailTrans") in ("", None),
        "answer": end.get("answer"),
    }


def funding_facts(records: Sequence[Record]) -> dict[str, Any] | None:
    """The funding bills of the position's instrument (type 8, last 7 days): their subTypes,
    and when they were booked relative to the settlement hour (§11.2.2: 00:00/08:00/16:00
    UTC, every 4 h or 2 h on some contracts)."""
    end = _steps(records, "funding_bills").get("end")
    if end is None:
        return None
    bills = [b for b in end.get("bills") or [] if isinstance(b, dict)]
    out: dict[str, Any] = {"available": end.get("code") is None, "code": end.get("code")}
    stamps = sorted(int(t) for b in bills if (t := lenient_decimal(b.get("ts"))) is not None)
    out.update(
        count=len(bills),
        types=sorted({str(b.get("type")) for b in bills}),
        sub_types=sorted({str(b.get("subType")) for b in bills}),
        # ms after the full hour: 0-999 = booked in the settlement second
        ms_after_hour=[t % HOUR_MS for t in stamps],
        hours_utc=sorted({t // HOUR_MS % 24 for t in stamps}),
        intervals_h=sorted({(b - a) / HOUR_MS for a, b in itertools.pairwise(stamps)}),
        pos_bal_chg_set=sum(1 for b in bills if lenient_decimal(b.get("posBalChg"))),
        first=bills[0] if bills else None,
    )
    return out


def upgrade_facts(records: Sequence[Record]) -> dict[str, Any]:
    """Every 64008 notice and what happened to its connection: when it closed after the
    notice (DOC-WS: "60 seconds prior to the upgrade") and how (1006: no close frame,
    ISS-TG90), or that it outlived the probe."""
    notices: list[dict[str, Any]] = []
    for r, msg in ws_events(records):
        if msg.get("event") != "notice" or str(msg.get("code")) != WS_SERVICE_UPGRADE:
            continue
        conn = r.get("conn")
        closed = next(
            (
                c
                for c in records
                if c.get("kind") == "ws_closed"
                and c.get("conn") == conn
                and c.get("seq", 0) > r.get("seq", 0)
            ),
            None,
        )
        notices.append(
            {
                "conn": conn,
                "t_ms": r.get("t_ms"),
                "connId": msg.get("connId"),
                "closed": closed is not None,
                "close_after_ms": None if closed is None else closed["t_ms"] - r["t_ms"],
                "close_code": None if closed is None else closed.get("code"),
                "close_reason": None if closed is None else closed.get("reason"),
                "close_frame": None if closed is None else closed.get("close_frame"),
            }
        )
    return {"count": len(notices), "notices": notices}


def boundary_facts(records: Sequence[Record]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in BOUNDARY_STEPS:
        phases = _steps(records, name)
        start, result = phases.get("start"), phases.get("result")
        if start is None or result is None:
            continue
        expect = start.get("expect")
        out[name] = {
            "amt": start.get("amt"),
            "expect": expect,
            "code": result.get("code"),
            "msg": result.get("msg"),
            "applied": result.get("applied"),
            "as_expected": None if expect is None else result.get("code") == expect,
        }
    return out


def reversal_facts(records: Sequence[Record]) -> dict[str, Any]:
    """Net margin the probe left moved, and the margin before the first and after the last
    call (other trading on the account would move it too)."""
    done = _steps(records, "done").get("end") or {}
    starts = [r for r in records if r.get("kind") == "step" and r.get("phase") == "start"]
    ends = [r for r in records if r.get("kind") == "step" and r.get("phase") == "end"]
    first = next((r.get("before") for r in starts if r.get("before")), None) or {}
    last = next((r.get("after") for r in reversed(ends) if r.get("after")), None) or {}
    m0, m1 = lenient_decimal(first.get("margin")), lenient_decimal(last.get("margin"))
    calls = [r for r in records if r.get("kind") == "step" and r.get("phase") == "result"]
    return {
        "calls": len(calls),
        "net_left": done.get("net_left"),
        "unresolved": done.get("unresolved", []),
        "undo": done.get("undo"),
        "error": done.get("error"),
        "skipped": done.get("skipped"),
        "margin_first": _s(m0),
        "margin_last": _s(m1),
        "margin_delta": None if m0 is None or m1 is None else _s(m1 - m0),
    }


def extract_facts(records: Sequence[Record]) -> dict[str, Any]:
    """Everything the probe can say from ``records``."""
    select = _steps(records, "select")
    chosen = select.get("chosen") or {}
    return {
        "position": {"instId": chosen.get("instId"), "posSide": chosen.get("posSide")},
        "ws": ws_facts(records),
        "margin_calls": {
            name: f for name in OBSERVED_STEPS if (f := margin_call_facts(records, name))
        },
        "reduce_limit": reduce_limit_facts(records),
        "funding": funding_facts(records),
        "upgrade": upgrade_facts(records),
        "boundary": boundary_facts(records),
        "reversal": reversal_facts(records),
    }

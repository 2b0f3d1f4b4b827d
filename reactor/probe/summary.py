"""The human summary of a probe's facts (pure: facts in, lines out)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def _yn(value: Any) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _ws_lines(ws: dict[str, Any]) -> list[str]:
    et = ws["event_type"]
    snaps = ws["snapshots"]
    interval = snaps["interval_ms"]
    pages = ws["pages"]
    lines = [
        f"positions channel, {ws['window_s']} s without extraParams and without client ping:",
        f"  pushes: {ws['pushes']}; eventType present on {et['present']}, absent on "
        f"{et['absent']} (values: {', '.join(et['values']) or '-'})",
        f"  curPage on {pages['curPage']['present']} regular pushes "
        f"({'/'.join(pages['curPage']['types']) or '-'}), lastPage on "
        f"{pages['lastPage']['present']} ({'/'.join(pages['lastPage']['types']) or '-'})",
        f"  snapshots: {snaps['count']} (up to {snaps['pages_max']} pages of up to "
        f"{snaps['page_size_max']} positions); interval "
        + (
            "not measurable (fewer than two snapshots)"
            if interval is None
            else f"{interval['median']} ms median ({interval['min']}-{interval['max']})"
        ),
        f"  pushes between snapshots: {ws['between_snapshots']['pushes']}; "
        f"pTime on records: {_yn(ws['p_time_present'])}; channel-conn-count: "
        f"{_yn(ws['channel_conn_count'])}",
    ]
    closed = ws["closed_in_window"]
    lines.append(
        "  connection survived the window"
        if closed is None
        else f"  connection CLOSED in the window: code {closed['code']} "
        f"{closed['reason']!r} after {closed['after_open_ms']} ms"
    )
    return lines


def _call_lines(name: str, f: dict[str, Any]) -> list[str]:
    push, rest, bill = f["event_push"], f["rest_after"], f["bill"]
    lines = [f"{name}: {f['action']} {f['amt']} -> code {f['code']} (applied: {_yn(f['applied'])})"]
    if push["seen"]:
        lines.append(
            f"  event push after {push['latency_ms']} ms (eventType {push['eventType']}, "
            f"margin {push['margin_pushed']}, this transfer: {_yn(push['carries_transfer'])}); "
            f"uTime moved: {_yn(push['uTime_moved'])}; lever {push['lever_before']} -> "
            f"{push['lever_pushed']} (changed: {_yn(push['lever_changed'])})"
        )
    else:
        lines.append("  no event push for the position")
    lines.append(
        f"  REST after: margin {rest['margin_before']} -> {rest['margin_after']}, uTime moved: "
        f"{_yn(rest['uTime_moved'])}, lever {rest['lever_before']} -> {rest['lever_after']}"
    )
    if bill["available"] is False:
        lines.append(f"  bills: not available (code {bill.get('code')})")
    elif bill["seen"]:
        lines.append(
            f"  bill type 6/{bill['bill'].get('subType')} seen {bill['latency_ms']} ms after the "
            f"call (bill ts - send time {bill['ts_minus_sent_ms']} ms, {bill['polls']} polls)"
        )
    elif bill["available"]:
        lines.append(f"  bill NOT seen after {bill['polls']} polls")
    return lines


def summary_lines(facts: dict[str, Any]) -> list[str]:
    meta = facts.get("meta", {})
    pos = facts["position"]
    lines = [f"probe of {meta.get('account')} on {meta.get('venue')} ({meta.get('rest_url')})"]
    if meta.get("failure"):
        lines.append(f"FAILED before any margin call: {meta['failure']}")
    lines += _ws_lines(facts["ws"])
    rev = facts["reversal"]
    if rev.get("skipped"):
        lines.append(f"margin steps skipped: {rev['skipped']}")
    elif pos.get("instId"):
        lines.append(f"position: {pos['instId']} {pos['posSide']}")
    for name, f in facts["margin_calls"].items():
        lines += _call_lines(name, f)
    lim = facts["reduce_limit"]
    if lim is not None:
        if lim["available"] and lim.get("plausible") is False:
            lines.append(
                f"estAvailTrans {lim['est_avail_trans']} is implausible for margin "
                f"{lim['margin']}: boundary steps not tried"
            )
        if lim["available"]:
            lines.append(
                f"estAvailTrans at lever {lim['lever']}: {lim['est_avail_trans']}; reactor floor "
                f"{lim['reactor_floor']} allows {lim['reactor_max_reduce']} of margin "
                f"{lim['margin']} (estAvailTrans - reactor = {lim['est_minus_reactor']})"
            )
        else:
            lines.append(
                f"estAvailTrans: not available (code {lim.get('code')}); reactor floor "
                f"{lim['reactor_floor']} allows {lim['reactor_max_reduce']}"
            )
    verdicts = {None: "", True: ", as expected", False: ", NOT as expected"}
    for name, b in facts["boundary"].items():
        lines.append(
            f"{name}: reduce {b['amt']} -> code {b['code']} (expected {b['expect'] or 'any'}"
            f"{verdicts[b['as_expected']]})"
        )
    moved = rev["net_left"] is not None and Decimal(rev["net_left"]) != 0
    if rev["unresolved"] or moved:
        lines.append(
            f"WARNING: margin NOT restored: net {rev['net_left']} USDT still moved by the probe, "
            f"unresolved calls {rev['unresolved']}, undo {rev['undo']}; check "
            f"{pos.get('instId')} {pos.get('posSide')} by hand"
        )
    elif rev["calls"]:
        lines.append(
            f"reversible: {rev['calls']} calls, net margin moved by the probe 0 (undo: "
            f"{rev['undo']}; margin {rev['margin_first']} -> {rev['margin_last']})"
        )
    if rev.get("error"):
        lines.append(f"stopped early: {rev['error']}")
    return lines

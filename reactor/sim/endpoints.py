"""The account and public OKX v5 REST endpoints the simulator serves (sans-I/O).

Each endpoint is a function of a :class:`~reactor.sim.rest_api.Call` returning the envelope's
``data``; :func:`register` wires them into a :class:`~reactor.sim.rest_api.RestApi` with OKX's
documented rate limits (``reactor.okx.endpoints.RATE_LIMITS``, per sub-account User ID).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from reactor.okx.endpoints import (
    ACCOUNT_CONFIG,
    BALANCE,
    CURRENCIES,
    INSTRUMENTS,
    MARGIN_BALANCE,
    POSITIONS,
    RATE_LIMITS,
    TIME,
)
from reactor.sim.exchange import ExchangeError, Instrument, fmt
from reactor.sim.rest_api import Call, Reject, RestApi, parse_positive_decimal

INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
LIST_TIME = "1573557408000"  # NT fixture's listTime for the USDT swaps


def register(api: RestApi, wall_clock: Callable[[], float] = time.time) -> None:
    """Serve the endpoints of this module on ``api``."""
    # Public routes are not rate limited here; the private ones at OKX's documented limits.
    api.add("GET", TIME, lambda call: public_time(call, wall_clock), private=False)
    api.add("GET", INSTRUMENTS, public_instruments, private=False)
    limits = RATE_LIMITS
    api.add("GET", POSITIONS, positions, private=True, rate_limit=limits[POSITIONS])
    api.add(
        "GET",
        BALANCE,
        lambda call: balance(call, wall_clock),
        private=True,
        rate_limit=limits[BALANCE],
    )
    api.add("POST", MARGIN_BALANCE, margin_balance, private=True, rate_limit=limits[MARGIN_BALANCE])
    api.add("GET", ACCOUNT_CONFIG, account_config, private=True, rate_limit=limits[ACCOUNT_CONFIG])
    api.add("GET", CURRENCIES, currencies, private=True, rate_limit=limits[CURRENCIES])


def public_time(call: Call, wall_clock: Callable[[], float]) -> list[Any]:
    return [{"ts": str(int(wall_clock() * 1000))}]


def public_instruments(call: Call) -> list[Any]:
    """``GET /api/v5/public/instruments`` with OKX's full SWAP field set (NT
    ``http_get_instruments_swap.json``; docs/spec/okx-fidelity.md §7.11). The simulator lists SWAPs
    only, so every other ``instType`` answers an empty list."""
    q = call.query
    inst_type = q.get("instType", "")
    if not inst_type:
        raise Reject("50014", "Parameter instType cannot be empty.")
    if inst_type not in INST_TYPES:
        raise Reject("51000", "Parameter instType error")
    want, family, uly = q.get("instId", ""), q.get("instFamily", ""), q.get("uly", "")
    out: list[Any] = []
    if inst_type != "SWAP":
        return out
    for n, i in enumerate(call.exchange.instruments.values()):
        fam = i.inst_id.removesuffix("-SWAP")
        if want not in ("", i.inst_id) or family not in ("", fam) or uly not in ("", fam):
            continue
        out.append(instrument_record(i, n))
    return out


def instrument_record(i: Instrument, index: int) -> dict[str, Any]:
    """One SWAP instrument as OKX lists it; the figures the scenario does not set take the
    values OKX shows for liquid USDT swaps."""
    fam = i.inst_id.removesuffix("-SWAP")
    return {
        "alias": "",
        "auctionEndTime": "",
        "baseCcy": "",
        "category": "1",
        "contTdSwTime": "",
        "ctMult": "1",
        "ctType": "linear",
        "ctVal": fmt(i.ct_val),
        "ctValCcy": i.ct_val_ccy,
        "expTime": "",
        "futureSettlement": False,
        "instFamily": fam,
        "instId": i.inst_id,
        "instIdCode": 20000 + index,
        "instType": "SWAP",
        "lever": "75",
        "listTime": LIST_TIME,
        "lotSz": fmt(i.lot_sz),
        "maxIcebergSz": "100000000.0000000000000000",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "100000000",
        "maxMktAmt": "",
        "maxMktSz": "20000",
        "maxPlatOILmt": "",
        "maxStopSz": "20000",
        "maxTriggerSz": "100000000.0000000000000000",
        "maxTwapSz": "100000000.0000000000000000",
        "minSz": fmt(i.lot_sz),
        "openType": "",
        "optType": "",
        "posLmtAmt": "",
        "posLmtPct": "",
        "preMktSwTime": "",
        "quoteCcy": "",
        "ruleType": "normal",
        "settleCcy": "USDT",
        "state": "live",
        "stk": "",
        "tickSz": fmt(i.tick_sz),
        "tradeQuoteCcyList": [],
        "uly": fam,
    }


def currencies(call: Call) -> list[Any]:
    """``GET /api/v5/asset/currencies``: USDT and every contract currency, one main-net chain
    each (DOC Funding: Get currencies; clients with keys load it at start, docs/spec/okx-fidelity.md
    §7.12)."""
    wanted = {s for s in call.query.get("ccy", "").split(",") if s}
    names = ["USDT", *sorted({i.ct_val_ccy for i in call.exchange.instruments.values()} - {"USDT"})]
    return [currency_record(c) for c in names if not wanted or c in wanted]


def currency_record(ccy: str) -> dict[str, Any]:
    chain = f"{ccy}-TRC20" if ccy == "USDT" else f"{ccy}-{ccy}"
    return {
        "burningFeeRate": "",
        "canDep": True,
        "canInternal": True,
        "canWd": True,
        "ccy": ccy,
        "chain": chain,
        "ctAddr": "",
        "depEstOpenTime": "",
        "depQuotaFixed": "",
        "depQuoteDailyLayer2": "",
        "fee": "1",
        "logoLink": "",
        "mainNet": True,
        "maxFee": "",
        "maxFeeForCtAddr": "",
        "maxWd": "10000000",
        "minDep": "0.00000001",
        "minDepArrivalConfirm": "1",
        "minFee": "",
        "minFeeForCtAddr": "",
        "minInternal": "0.0001",
        "minWd": "1",
        "minWdUnlockConfirm": "1",
        "name": ccy,
        "needTag": False,
        "usedDepQuotaFixed": "",
        "usedWdQuota": "0",
        "wdEstOpenTime": "",
        "wdQuota": "10000000",
        "wdTickSz": "8",
    }


def positions(call: Call) -> list[Any]:
    q = call.query
    inst_type = q.get("instType", "")
    if inst_type not in ("", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise Reject("51000", "Parameter instType error")
    inst_ids = {s for s in q.get("instId", "").split(",") if s}
    pos_ids = {s for s in q.get("posId", "").split(",") if s}
    if inst_type not in ("", "SWAP"):
        return []
    return [
        p
        for p in call.exchange.positions(call.account.name)
        if (not inst_ids or p["instId"] in inst_ids) and (not pos_ids or p["posId"] in pos_ids)
    ]


def account_config(call: Call) -> list[Any]:
    """``GET /api/v5/account/config`` with OKX's field set (DOC-TA "Get account configuration",
    response example): the reactor reads ``perm`` (the key's permissions) and ``posMode``.
    Sub-accounts report their main account's uid as ``mainUid`` (the first ``main`` account of
    the scenario, else their own uid); ``acctLv`` 2 (futures mode: isolated SWAP needs it)."""
    ex, acct = call.exchange, call.account
    main_uid = next((a.uid for a in ex.accounts.values() if a.main), acct.uid)
    return [
        {
            "acctLv": "2",
            "acctStpMode": "cancel_maker",
            "autoLoan": False,
            "ctIsoMode": "automatic",
            "enableSpotBorrow": False,
            "greeksType": "PA",
            "feeType": "0",
            "ip": "",
            "type": "0" if acct.main else "1",
            "kycLv": "3" if acct.main else "0",
            "label": acct.name,
            "level": "Lv1",
            "levelTmp": "",
            "liquidationGear": "-1",
            "mainUid": acct.uid if acct.main else main_uid,
            "mgnIsoMode": "automatic",
            "opAuth": "1",
            "perm": acct.perm,
            "posMode": acct.pos_mode,
            "roleType": "0",
            "spotBorrowAutoRepay": False,
            "spotOffsetType": "",
            "spotRoleType": "0",
            "spotTraderInsts": [],
            "stgyType": "0",
            "traderInsts": [],
            "uid": acct.uid,
            "settleCcy": "USDT",
            "settleCcyList": ["USDT", "USDC"],
        }
    ]


def balance(call: Call, wall_clock: Callable[[], float]) -> list[Any]:
    ex, acct = call.exchange, call.account
    ccys = {s for s in call.query.get("ccy", "").split(",") if s}
    iso_eq = upl = frozen = cross_upl = Decimal(0)
    for p in acct.positions.values():
        m = ex.metrics(p)
        upl += m.upl
        if p.mgn_mode == "isolated":
            iso_eq += p.margin + m.upl
            frozen += p.margin
        else:
            cross_upl += m.upl
    eq = acct.balance + iso_eq + cross_upl
    now = str(int(wall_clock() * 1000))
    detail = {
        "ccy": "USDT",
        "eq": fmt(eq),
        "cashBal": fmt(acct.balance + frozen),
        "availBal": fmt(acct.balance),
        "availEq": fmt(acct.balance),
        "frozenBal": fmt(frozen),
        "isoEq": fmt(iso_eq),
        "upl": fmt(upl),
        "eqUsd": fmt(eq),
        "uTime": now,
    }
    details = [detail] if not ccys or "USDT" in ccys else []
    return [{"totalEq": fmt(eq), "adjEq": "", "uTime": now, "details": details}]


def margin_balance(call: Call) -> list[Any]:
    raw = call.json_body()
    fields: dict[str, Any] = {k: v for k, v in raw.items() if v not in ("", None)}
    for name in ("instId", "posSide", "type", "amt"):
        call.require(name, fields)
    inst_id, side, kind, amt_raw = (fields[k] for k in ("instId", "posSide", "type", "amt"))
    if not isinstance(inst_id, str):
        raise Reject("51000", "Parameter instId error")
    if side not in ("long", "short", "net"):
        raise Reject("51000", "Parameter posSide error")
    if kind not in ("add", "reduce"):
        raise Reject("51000", "Parameter type error")
    amt = parse_positive_decimal("amt", amt_raw)
    if inst_id not in call.exchange.instruments:
        raise Reject("51001")
    try:
        result, changes = call.exchange.margin_balance(call.account.name, inst_id, side, kind, amt)
    except ExchangeError as exc:
        raise Reject(exc.code, exc.msg) from None
    call.publish_changes(changes)
    return [result]

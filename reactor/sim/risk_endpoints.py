"""``GET /api/v5/public/position-tiers``: each instrument's maintenance rates and leverage
limits as the simulator applies them (sans-I/O; docs/spec/okx-fidelity.md §11.2.8).

DOC Public Data "Get position tiers": ``instType`` and ``tdMode`` (cross, isolated) required,
``instFamily`` (or the older ``uly``) required for SWAP, up to 5 families comma-separated;
``instId`` and ``tier`` optional filters; 10 requests per 2 s per IP (not enforced: the
simulator has no per-IP REST windows). Record fields as NT ``http_get_position_tiers.json``
(a captured MARGIN answer): ``baseMaxLoan``, ``imr``, ``instId``, ``maxLever``, ``maxSz``,
``minSz``, ``mmr``, ``optMgnFactor``, ``quoteMaxLoan``, ``tier``, ``uly``, ``instFamily``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reactor.sim.exchange import MAX_LEVER, Instrument, fmt
from reactor.sim.rest_api import Call, Reject, RestApi
from reactor.sim.tiers import Tier

POSITION_TIERS = "/api/v5/public/position-tiers"
# The size bound of the one tier of an instrument without tiers (it has no limit).
UNBOUNDED_SZ = Decimal(100000000)


def register(api: RestApi) -> None:
    api.add("GET", POSITION_TIERS, position_tiers, private=False)


def position_tiers(call: Call) -> list[Any]:
    q = call.query
    inst_type = call.require("instType")
    td_mode = call.require("tdMode")
    if inst_type not in ("MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise Reject("51000", "Parameter instType error")
    if td_mode not in ("cross", "isolated"):
        raise Reject("51000", "Parameter tdMode error")
    if inst_type != "SWAP":
        return []  # the simulator lists SWAPs only
    families = {f for f in (q.get("instFamily") or q.get("uly") or "").split(",") if f}
    if not families:
        raise Reject("50014", "Parameter instFamily cannot be empty.")
    if len(families) > 5:
        raise Reject("51000", "Parameter instFamily error")
    want_id, want_tier = q.get("instId", ""), q.get("tier", "")
    out: list[Any] = []
    for inst in call.exchange.instruments.values():
        family = inst.inst_id.removesuffix("-SWAP")
        if family not in families or want_id not in ("", inst.inst_id):
            continue
        out.extend(r for r in tier_records(inst) if want_tier in ("", r["tier"]))
    return out


def tier_records(inst: Instrument) -> list[dict[str, str]]:
    """The instrument's tiers (the scenario's ``mechanics.tiers``, else one tier with its flat
    ``mmrRate`` and the instruments list's lever 75). ``minSz`` is the tier below's ``maxSz``
    and ``imr`` = 1 / ``maxLever`` (**likely**: OKX's SWAP tier tables read so); ``instId``
    "" for SWAP, which OKX tiers by instrument family (**likely**)."""
    tiers = inst.tiers or (Tier(UNBOUNDED_SZ, inst.mmr_rate, MAX_LEVER),)
    family = inst.inst_id.removesuffix("-SWAP")
    out: list[dict[str, str]] = []
    floor = Decimal(0)
    for n, t in enumerate(tiers, start=1):
        out.append(
            {
                "baseMaxLoan": "",
                "imr": fmt((Decimal(1) / t.max_lever).quantize(Decimal("1e-10"))),
                "instId": "",
                "maxLever": fmt(t.max_lever),
                "maxSz": fmt(t.max_sz),
                "minSz": fmt(floor),
                "mmr": fmt(t.mmr),
                "optMgnFactor": "",
                "quoteMaxLoan": "",
                "tier": str(n),
                "uly": family,
                "instFamily": family,
            }
        )
        floor = t.max_sz
    return out

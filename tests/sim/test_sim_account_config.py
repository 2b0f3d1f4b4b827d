"""``GET /api/v5/account/config`` (DOC-TA "Get account configuration"): OKX's field set through
python-okx, ``perm`` from the scenario (``read_only,trade`` by default)."""

from __future__ import annotations

import asyncio

import okx.Account as Account

from reactor.cli.online_check import permission_problem
from reactor.sim.scenario import Scenario
from reactor.sim.server import Simulator

DOC_FIELDS = {  # the response example of DOC-TA "Get account configuration"
    *("acctLv", "acctStpMode", "autoLoan", "ctIsoMode", "enableSpotBorrow", "greeksType"),
    *("feeType", "ip", "type", "kycLv", "label", "level", "levelTmp", "liquidationGear"),
    *("mainUid", "mgnIsoMode", "opAuth", "perm", "posMode", "roleType", "spotBorrowAutoRepay"),
    *("spotOffsetType", "spotRoleType", "spotTraderInsts", "stgyType", "traderInsts", "uid"),
    *("settleCcy", "settleCcyList"),
}


def _scenario() -> Scenario:
    acc = {"secretKey": "s" * 8, "passphrase": "p" * 8, "balance": "10"}
    return Scenario.model_validate(
        {
            "instruments": [{"instId": "CRO-USDT-SWAP", "ctVal": "10", "markPx": "0.1"}],
            "accounts": [
                {"name": "main", "apiKey": "main-key", "main": True, "uid": "100", **acc},
                {"name": "sub", "apiKey": "sub-key", "uid": "200", **acc},
                {"name": "ro", "apiKey": "ro-key", "perm": "read_only", **acc},
            ],
        }
    )


def _sdk(sim: Simulator, key: str) -> Account.AccountAPI:
    return Account.AccountAPI(key, "s" * 8, "p" * 8, False, "1", domain=sim.url, debug=False)


async def test_account_config_through_python_okx() -> None:
    sim = Simulator(_scenario(), price_walk=False)
    await sim.start("127.0.0.1", 0)
    try:
        res = await asyncio.to_thread(_sdk(sim, "sub-key").get_account_config)
        assert res["code"] == "0", res
        (row,) = res["data"]
        assert set(row) == DOC_FIELDS
        assert (row["uid"], row["mainUid"], row["perm"]) == ("200", "100", "read_only,trade")
        main = (await asyncio.to_thread(_sdk(sim, "main-key").get_account_config))["data"][0]
        assert (main["uid"], main["mainUid"], main["type"]) == ("100", "100", "0")
        ro = (await asyncio.to_thread(_sdk(sim, "ro-key").get_account_config))["data"][0]
        assert ro["perm"] == "read_only"
    finally:
        await sim.stop()


def test_permission_rules() -> None:
    assert permission_problem("read_only,trade", "sub") is None
    assert permission_problem("read_only,withdraw,trade", "sub") is None
    assert permission_problem("read_only", "main") is None
    assert permission_problem("read_only", "sub") == (
        "API key lacks trade permission (has: read_only)"
    )
    assert permission_problem("", "sub") == (
        "API key lacks read_only and trade permission (has: none)"
    )
    assert permission_problem("trade", "main") == "API key lacks read_only permission (has: trade)"

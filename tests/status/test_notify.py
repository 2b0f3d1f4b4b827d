"""Issue 20 item 10: direct notification (webhook, Telegram) for a desk without Prometheus,
fed by the alert definitions, grouped and rate-limited; tested against local receivers (the
Telegram API base URL points at one). The bot token never reaches a log line."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from reactor import log as logging_setup
from reactor.config import NotifySection
from reactor.status import alerting
from reactor.status.notify import Notifier, NotifySettings, run_notifier

TOKEN = "7011223344:AAHsecretBotTokenValue_xyz"


class Receiver:
    """A webhook endpoint and a fake Telegram Bot API on one local port."""

    def __init__(self, fail: bool = False) -> None:
        self.hooks: list[dict[str, Any]] = []
        self.telegram: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail
        self.base = ""
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=500)
        self.hooks.append(await request.json())
        return web.json_response({})

    async def _tg(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=502)
        self.telegram.append((request.match_info["bot"], await request.json()))
        return web.json_response({"ok": True, "result": {}})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/{bot}/sendMessage", self._tg)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@contextlib.asynccontextmanager
async def notifying(settings: NotifySettings) -> AsyncIterator[tuple[Notifier, io.StringIO]]:
    out = io.StringIO()
    logging_setup.configure("debug", "json", out)
    notifier = Notifier(settings)
    logging_setup.add_tap(notifier.observe)
    task = asyncio.create_task(run_notifier(notifier, every_s=0.05))
    try:
        yield notifier, out
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        logging_setup.remove_tap(notifier.observe)
        logging_setup.configure("info", "json")


def settings(rx: Receiver, **kw: Any) -> NotifySettings:
    base = NotifySettings(
        webhook_url=f"{rx.base}/hook",
        telegram_token=TOKEN,
        telegram_chat_id="-100123",
        telegram_api_url=rx.base,
        group_wait_s=0.3,
        group_interval_s=0.5,
        max_per_hour=20,
    )
    return replace(base, **kw)


async def until(pred: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_alerts_arrive_grouped_on_webhook_and_telegram() -> None:
    async with Receiver() as rx, notifying(settings(rx)) as (_, out):
        log = logging_setup.get_logger("t")
        pos = {"instId": "CRO-USDT-SWAP", "posSide": "long"}
        # Two positions fail within the group wait: one notification naming both.
        log.error("margin.adjust.failed", account="A1", **pos, code="59200", msg="no funds")
        log.error("margin.adjust.failed", account="B2", **pos, code="50004", msg="timeout")
        # Reconnects: the storm rule needs more than storm_count of them.
        for i in range(alerting.PRODUCTION.storm_count):
            log.info("ws.reconnect", account="A1", attempt=i, reason="eof")
        log.error("reactor.task.error", task="reconcile", error="RuntimeError: x")
        log.info("margin.adjust.ok", account="A1", **pos)  # normal operation: nothing
        await until(lambda: len(rx.hooks) >= 2 and len(rx.telegram) >= 2)
        await asyncio.sleep(0.4)
        names = sorted(h["alertname"] for h in rx.hooks)
        assert names == ["ReactorErrorLogged", "ReactorMarginCallFailed"]  # no storm yet
        failed = next(h for h in rx.hooks if h["alertname"] == "ReactorMarginCallFailed")
        assert [(a["account"], a["code"]) for a in failed["alerts"]] == [
            ("A1", "59200"),
            ("B2", "50004"),
        ]
        assert failed["severity"] == "warning"
        assert failed["runbook_url"].endswith("docs/runbook.md#reactormargincallfailed")
        assert failed["summary"] == "Margin call failed on A1 CRO-USDT-SWAP long (OKX code 59200)"
        assert {bot for bot, _ in rx.telegram} == {f"bot{TOKEN}"}
        assert all(body["chat_id"] == "-100123" for _, body in rx.telegram)
        tg = next(b["text"] for _, b in rx.telegram if "ReactorMarginCallFailed" in b["text"])
        assert "code=59200" in tg and "code=50004" in tg and "Runbook: " in tg

        log.info("ws.reconnect", account="A1", attempt=9, reason="eof")  # storm_count + 1
        await until(lambda: any(h["alertname"] == "ReactorReconnectStorm" for h in rx.hooks))
        # The same failure again within group_interval: held, then sent once.
        n = len(rx.hooks)
        log.error("margin.adjust.failed", account="A1", **pos, code="59200", msg="no funds")
        await asyncio.sleep(0.2)
        assert len(rx.hooks) == n
        await until(lambda: len(rx.hooks) == n + 1)
        # Four messages, each to both channels: every delivery logged once it is answered.
        await until(lambda: out.getvalue().count('"notify.sent"') == 8)
        assert len(rx.hooks) == len(rx.telegram) == 4
    text = out.getvalue()
    assert TOKEN not in text
    sent = [json.loads(x) for x in text.splitlines() if '"notify.sent"' in x]
    assert {(x["channel"], x["alert"]) for x in sent} == {
        (c, a)
        for c in ("webhook", "telegram")
        for a in ("ReactorMarginCallFailed", "ReactorErrorLogged", "ReactorReconnectStorm")
    }


async def test_rate_limit_counts_what_it_left_out() -> None:
    async with Receiver() as rx, notifying(settings(rx, max_per_hour=2, group_wait_s=0.0)) as _:
        log = logging_setup.get_logger("t")
        for name in ("a.one.failed", "a.two.failed", "a.three.failed"):
            log.error(name, error="x")
            await asyncio.sleep(0.6)  # past group_interval: a new message each time
        log.error("margin.adjust.failed", account="A1", instId="X", posSide="net", code="1")
        await asyncio.sleep(0.6)
        assert len(rx.hooks) == 2  # at most two an hour
        assert rx.hooks[0]["dropped_before"] == 0


async def test_failed_delivery_is_logged_without_the_token() -> None:
    async with Receiver(fail=True) as rx, notifying(settings(rx, group_wait_s=0.0)) as (_, out):
        logging_setup.get_logger("t").error("reactor.task.error", task="x", error="y")
        await until(lambda: out.getvalue().count("notify.failed") >= 2)
    assert TOKEN not in out.getvalue()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    failed = [x for x in lines if x["event"] == "notify.failed"]
    assert {x["channel"] for x in failed} == {"webhook", "telegram"}


def test_an_episode_fires_only_when_it_lasts() -> None:
    now = [0.0]
    n = Notifier(NotifySettings(group_wait_s=0.0), clock=lambda: now[0])
    after = alerting.PRODUCTION.blocked_s
    pos = {"account": "B2", "instId": "X", "posSide": "long"}
    n.observe({"event": "margin.target.blocked", "level": "warning", **pos, "reason": "loss"})
    now[0] = after - 1
    assert n.due() == []
    n.observe({"event": "margin.target.unblocked", "level": "info", **pos})
    now[0] = after + 10
    assert n.due() == []
    n.observe({"event": "margin.target.blocked", "level": "warning", **pos, "reason": "loss"})
    now[0] += after
    (due,) = n.due()
    assert due[0].alert.name == "ReactorTargetBlocked"
    assert due[1] == [{**pos, "reason": "loss", "event": "margin.target.blocked"}]


def test_summarised_repeats_count_as_their_event() -> None:
    n = Notifier(NotifySettings(group_wait_s=0.0), clock=lambda: 0.0)
    n.observe({"event": "log.repeated", "level": "error", "repeated_event": "ledger.unavailable"})
    ((rule, items, _),) = n.due()
    assert rule.alert.name == "ReactorErrorLogged"
    assert items[0]["event"] == "ledger.unavailable"


def test_every_log_based_alert_has_a_direct_rule() -> None:
    """The notifier is fed by the same definitions as the Prometheus rules."""
    direct = {r.alert.name: r for r in alerting.direct_rules()}
    log_based = {a.name for a in alerting.alerts() if a.events} | {"ReactorErrorLogged"}
    log_based -= {"ReactorRestarting"}  # counts process starts: needs an outside observer
    assert log_based <= direct.keys()
    by_name = {a.name: a for a in alerting.alerts()}
    for name, r in direct.items():
        assert r.alert == by_name[name]
        assert r.events <= set(by_name[name].events) or r.any_error


def test_config_keys() -> None:
    n = NotifySection()
    assert not n.enabled and n.telegram_token_env == "REACTOR_TELEGRAM_TOKEN"
    assert NotifySection(webhook_url="http://x").enabled
    with pytest.raises(ValueError):
        NotifySection(telegram_token="in the file")  # type: ignore[call-arg]

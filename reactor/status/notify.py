"""Direct notification for a desk without a Prometheus stack: a webhook and a Telegram bot.

Fed by the same alert definitions as the Prometheus rules (:func:`alerting.direct_rules`):
the process watches its own log lines (a tap after redaction, :func:`reactor.log.add_tap`), so
an alert here fires on the events its rule counts, with the same name, severity, summary and
runbook link. Notifications are grouped by alert name (the first waits ``group_wait_s`` for
company, the next of a group waits ``group_interval_s``) and rate-limited (``max_per_hour``
messages; what is left out is counted in the next one). Resolutions are not sent: the
status page says when things are well again.

The Telegram bot token comes from the environment (``notify.telegram_token_env``), is
registered as a secret (never in a log line, even inside an error's URL) and the API base URL
is configurable (a test points it at a local receiver).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reactor.log import error_text, get_logger
from reactor.redaction import register_secrets
from reactor.status.alerting import REPEATED, DirectRule, direct_rules, runbook_url

log = get_logger("reactor.status.notify")

SEND_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NotifySettings:
    webhook_url: str | None = None
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    max_per_hour: int = 20
    runbook: str | None = None


@dataclass(slots=True)
class _Group:
    """Firings of one alert not yet sent."""

    rule: DirectRule
    first_ms: float
    items: list[dict[str, str]] = field(default_factory=list)


class Notifier:
    """Turns log lines into grouped, rate-limited notifications (I/O only in :meth:`send`)."""

    def __init__(
        self,
        settings: NotifySettings,
        rules: tuple[DirectRule, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rules = direct_rules() if rules is None else rules
        self._by_event: dict[str, list[DirectRule]] = {}
        for r in self.rules:
            for e in r.events:
                self._by_event.setdefault(e, []).append(r)
        self._catch_all = [r for r in self.rules if r.any_error]
        self._clock = clock
        self._counts: dict[tuple[str, tuple[str, ...]], deque[float]] = {}
        self._open: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, str]]] = {}
        self._pending: dict[str, _Group] = {}
        self._last_sent: dict[str, float] = {}
        self._sent_times: deque[float] = deque()
        self.dropped = 0
        if settings.telegram_token:
            register_secrets([settings.telegram_token])

    # -- input ------------------------------------------------------------------------------------
    def observe(self, line: Mapping[str, Any]) -> None:
        """One log line (already redacted); called on the thread that logs it."""
        event = str(line.get("event", ""))
        if event == REPEATED:  # identical lines counted by the log: they are the event's
            event = str(line.get("repeated_event", ""))
            line = {**line, "event": event}
        now = self._clock()
        rules = self._by_event.get(event)
        if rules is None and line.get("level") == "error":
            rules = self._catch_all
        for r in rules or ():
            labels = tuple(str(line.get(k, "")) for k in r.by)
            key = (r.alert.name, labels)
            if r.end is not None and event == r.end:
                self._open.pop(key, None)
                continue
            fields = {k: str(line[k]) for k in (*r.by, *r.extra) if k in line}
            fields.setdefault("event", event)
            if r.after_s > 0:  # an episode: fires if still open after after_s
                self._open.setdefault(key, (now, fields))
                continue
            seen = self._counts.setdefault(key, deque())
            seen.append(now)
            while seen and now - seen[0] > r.window_s:
                seen.popleft()
            if len(seen) >= r.count:
                seen.clear()
                self._fire(r, fields, now)

    def _fire(self, rule: DirectRule, fields: dict[str, str], now: float) -> None:
        group = self._pending.setdefault(rule.alert.name, _Group(rule, now))
        if fields not in group.items:
            group.items.append(fields)

    # -- output -----------------------------------------------------------------------------------
    def due(self) -> list[tuple[DirectRule, list[dict[str, str]], int]]:
        """Groups to send now: (rule, firings, messages left out before it)."""
        now = self._clock()
        for key, (since, fields) in list(self._open.items()):
            rule = next(r for r in self.rules if r.alert.name == key[0])
            if now - since >= rule.after_s:
                del self._open[key]
                self._fire(rule, fields, now)
        while self._sent_times and now - self._sent_times[0] >= 3600:
            self._sent_times.popleft()
        out = []
        for name, group in list(self._pending.items()):
            last = self._last_sent.get(name)
            ready = now - group.first_ms >= self.settings.group_wait_s and (
                last is None or now - last >= self.settings.group_interval_s
            )
            if not ready:
                continue
            del self._pending[name]
            if len(self._sent_times) >= self.settings.max_per_hour:
                self.dropped += 1
                continue
            self._last_sent[name] = now
            self._sent_times.append(now)
            out.append((group.rule, group.items, self.dropped))
            self.dropped = 0
        return out

    def text(self, rule: DirectRule, items: list[dict[str, str]], dropped: int) -> str:
        a = rule.alert
        lines = [f"[{a.severity.upper()}] {a.name}: {_summary(a.summary, items[0])}"]
        for item in items[:20]:
            lines.append("- " + ", ".join(f"{k}={v}" for k, v in item.items()))
        if len(items) > 20:
            lines.append(f"... and {len(items) - 20} more")
        lines.append(f"Runbook: {self._runbook(a.name)}")
        if dropped:
            lines.append(f"({dropped} notifications left out by the rate limit before this one)")
        return "\n".join(lines)

    def _runbook(self, name: str) -> str:
        return (
            runbook_url(name, self.settings.runbook)
            if self.settings.runbook
            else (runbook_url(name))
        )

    async def send(self, client: httpx.AsyncClient) -> int:
        """Send what is due; a failed delivery is logged (``notify.failed``), not retried."""
        sent = 0
        s = self.settings
        for rule, items, dropped in self.due():
            text = self.text(rule, items, dropped)
            targets: list[tuple[str, str, dict[str, Any]]] = []
            if s.webhook_url:
                payload = {
                    "alertname": rule.alert.name,
                    "severity": rule.alert.severity,
                    "summary": _summary(rule.alert.summary, items[0]),
                    "description": rule.alert.description,
                    "runbook_url": self._runbook(rule.alert.name),
                    "alerts": items,
                    "dropped_before": dropped,
                    "text": text,
                }
                targets.append(("webhook", s.webhook_url, payload))
            if s.telegram_token and s.telegram_chat_id:
                url = f"{s.telegram_api_url.rstrip('/')}/bot{s.telegram_token}/sendMessage"
                body = {"chat_id": s.telegram_chat_id, "text": text}
                targets.append(("telegram", url, body))
            for channel, url, body in targets:
                try:
                    r = await client.post(url, json=body, timeout=SEND_TIMEOUT_S)
                    r.raise_for_status()
                except httpx.HTTPError as exc:
                    log.warning(
                        "notify.failed", channel=channel, alert=rule.alert.name,
                        error=error_text(exc),
                    )  # fmt: skip
                    continue
                sent += 1
                log.info("notify.sent", channel=channel, alert=rule.alert.name, count=len(items))
        return sent


def _summary(template: str, labels: Mapping[str, str]) -> str:
    """The rule's summary with ``{{ $labels.x }}`` filled from the line's fields."""
    out = template
    for k, v in labels.items():
        out = out.replace("{{ $labels." + k + " }}", v)
    return out


async def run_notifier(notifier: Notifier, every_s: float = 1.0) -> None:
    """Check for due notifications every ``every_s`` and send them."""
    async with httpx.AsyncClient() as client:
        while True:
            await asyncio.sleep(every_s)
            try:
                await notifier.send(client)
            except Exception as exc:  # a notifier bug must never take the reactor down
                log.warning("notify.failed", channel="all", alert="", error=error_text(exc))

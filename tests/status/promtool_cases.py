"""Unit tests of every Prometheus alert, as ``promtool test rules`` input.

The cases (series and when each alert must fire or not) are written here; the expected
annotations are the rules' own templates with the labels filled in, so the committed
``deploy/alerts/prometheus-rules.test.yaml`` is this module's output:

    .venv/bin/python -m tests.status.promtool_cases > deploy/alerts/prometheus-rules.test.yaml

``make alert-rules`` runs promtool on it; ``tests/ops/test_alert_rules.py`` keeps it current.
Times are promtool's: the evaluation starts at 0 s, so ``time()`` at ``eval_time: 35m`` is 2100.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from reactor.status.alerting import (
    MTAIL_JOB,
    PRODUCTION,
    REACTOR_JOB,
    alerts,
    needs_funding,
    runbook_url,
)

MTAIL = {"job": MTAIL_JOB, "instance": "localhost:3903", "prog": "okx-margin-reactor.mtail"}
REACTOR = {"job": REACTOR_JOB, "instance": "localhost:8787"}
POS = {"account": "a", "instId": "CRO-USDT-SWAP", "posSide": "long"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def mtail(name: str, values: str, **labels: str) -> dict[str, str]:
    return series(name, values, **MTAIL, **labels)


def _annotations(alertname: str, labels: dict[str, str]) -> dict[str, str]:
    rule = next(a for a in alerts(PRODUCTION) if a.name == alertname)

    def fill(text: str) -> str:
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m[1], ""), text)

    return {
        "summary": fill(rule.summary),
        "description": fill(rule.description),
        "runbook_url": runbook_url(alertname),
    }


def fires(at: str, alertname: str, *label_sets: dict[str, str]) -> dict[str, Any]:
    """``alertname`` fires at ``at`` with exactly these label sets (none: it does not fire)."""
    rule = next(a for a in alerts(PRODUCTION) if a.name == alertname)
    # the rule's templated labels, as Python computes them: promtool checks Go agrees
    computed = {"needs_funding": lambda labels: needs_funding(labels.get("code", ""))}
    return {
        "eval_time": at,
        "alertname": alertname,
        "exp_alerts": [
            {
                "exp_labels": {
                    "severity": rule.severity,
                    **{k: computed[k](labels) for k, _ in rule.labels},
                    **labels,
                },
                "exp_annotations": _annotations(alertname, labels),
            }
            for labels in label_sets
        ],
    }


def quiet(at: str, alertname: str) -> dict[str, Any]:
    return fires(at, alertname)


def case(name: str, input_series: list[dict[str, str]], *checks: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "interval": "1m", "input_series": input_series, "alert_rule_test": checks}


FAIL = "reactor_log_margin_call_failures_total"
EVENTS = "reactor_log_events_total"
STARTED = "reactor_log_started_timestamp_seconds"
BLOCKED_SINCE = "reactor_log_target_blocked_since_timestamp_seconds"
BLOCKED_SEEN = "reactor_log_target_blocked_seen_timestamp_seconds"
MAIN_SINCE = "reactor_log_main_below_expected_since_timestamp_seconds"
MAIN_SEEN = "reactor_log_main_below_expected_seen_timestamp_seconds"
STOP_SINCE = "reactor_log_account_stopped_since_timestamp_seconds"
STOP_SEEN = "reactor_log_account_stopped_seen_timestamp_seconds"
HOLD_SINCE = "reactor_log_foreign_hold_since_timestamp_seconds"
HOLD_SEEN = "reactor_log_foreign_hold_seen_timestamp_seconds"


def cases() -> list[dict[str, Any]]:
    both = {"instance": MTAIL["instance"], "job": MTAIL["job"]}
    return [
        case(
            "a margin call fails once: the new series alerts, then resolves after the window",
            [mtail(FAIL, "_x5 1x30", **POS)],
            quiet("4m", "ReactorMarginCallFailed"),
            fires("6m", "ReactorMarginCallFailed", POS),
            fires("14m", "ReactorMarginCallFailed", POS),
            quiet("17m", "ReactorMarginCallFailed"),
        ),
        case(
            "an old series grows again; a restarted mtail (counter reset) still alerts",
            [mtail(FAIL, "3x20 4x15 stale 1x20", **POS)],
            quiet("15m", "ReactorMarginCallFailed"),
            fires("22m", "ReactorMarginCallFailed", POS),
            quiet("34m", "ReactorMarginCallFailed"),
            fires("38m", "ReactorMarginCallFailed", POS),
        ),
        case(
            "the OKX code is a label: 59200 needs funding, 50004 (outcome unknown) does not",
            [
                mtail(FAIL, "_x2 1x20", **POS, code="59200"),
                mtail(FAIL, "_x2 1x20", **POS, code="50004"),
                mtail(FAIL, "_x2 1x20", **POS, code="none"),
                mtail(FAIL, "_x2 2x20", account="b", instId="X", posSide="net", code="59200"),
            ],
            fires(
                "5m",
                "ReactorMarginCallFailed",
                {**POS, "code": "50004"},
                {**POS, "code": "59200"},
                {**POS, "code": "none"},
                {"account": "b", "instId": "X", "posSide": "net", "code": "59200"},
            ),
            quiet("20m", "ReactorMarginCallFailed"),
        ),
        case(
            "a restart of mtail without new failures is quiet",
            [mtail(FAIL, "3x20 stale _x20", **POS)],
            quiet("25m", "ReactorMarginCallFailed"),
        ),
        case(
            "reconnect storm: more than 5 in 5 minutes on one account only",
            [
                mtail("reactor_log_ws_reconnects_total", "0+2x10 20x20", account="a"),
                mtail("reactor_log_ws_reconnects_total", "0+1x5 5x20", account="b"),
                mtail("reactor_log_ws_reconnects_total", "_x3 7x10", account="c"),
            ],
            fires("5m", "ReactorReconnectStorm", {"account": "a"}, {"account": "c"}),
            quiet("20m", "ReactorReconnectStorm"),
        ),
        case(
            "login failure and a stopped account; a restart with good keys resolves the stop",
            [
                mtail("reactor_log_login_failures_total", "_ 1x30", account="a", code="60024"),
                mtail(STARTED, "60x10 600x20"),
                mtail(STOP_SINCE, "_ 120x30", account="a"),
                mtail(STOP_SEEN, "_ 120x30", account="a"),
            ],
            fires("2m", "ReactorLoginFailed", {"account": "a", "code": "60024"}),
            fires("2m", "ReactorAccountStopped", {"account": "a"}),
            quiet("12m", "ReactorLoginFailed"),
            quiet("12m", "ReactorAccountStopped"),
        ),
        case(
            "a restart that stops the account again fires again",
            [
                mtail(STARTED, "60x10 600x20"),
                mtail(STOP_SINCE, "_ 120x30", account="a"),
                mtail(STOP_SEEN, "_ 120x10 610x20", account="a"),
            ],
            fires("5m", "ReactorAccountStopped", {"account": "a"}),
            fires("15m", "ReactorAccountStopped", {"account": "a"}),
        ),
        case(
            "a foreign-transfer hold fires at once; its release resolves it",
            [
                mtail(STARTED, "60x40"),
                mtail(HOLD_SINCE, "_ _ 120x10 stale _x10", account="a", instId="CRO-USDT-SWAP"),
                mtail(HOLD_SEEN, "_ _ 120x10 stale _x10", account="a", instId="CRO-USDT-SWAP"),
            ],
            quiet("1m", "ReactorForeignTransferHold"),
            fires("3m", "ReactorForeignTransferHold", {"account": "a", "instId": "CRO-USDT-SWAP"}),
            quiet("16m", "ReactorForeignTransferHold"),
        ),
        case(
            "blocked for 30 minutes fires; unblocked resolves",
            [
                mtail(STARTED, "60x60"),
                mtail(BLOCKED_SINCE, "_ _ 120x40 stale _x10", **POS),
                mtail(BLOCKED_SEEN, "_ _ 120x40 stale _x10", **POS),
            ],
            quiet("30m", "ReactorTargetBlocked"),
            fires("33m", "ReactorTargetBlocked", POS),
            quiet("44m", "ReactorTargetBlocked"),
        ),
        case(
            "restart: an episode the new process does not log again is over (no unblocked line)",
            [
                mtail(STARTED, "60x39 2400x30"),
                mtail(BLOCKED_SINCE, "_ _ 120x60", **POS),
                mtail(BLOCKED_SEEN, "_ _ 120x60", **POS),
            ],
            fires("38m", "ReactorTargetBlocked", POS),
            quiet("41m", "ReactorTargetBlocked"),
            quiet("60m", "ReactorTargetBlocked"),
        ),
        case(
            "restart: still blocked, logged again by the new process; its clock restarts",
            [
                mtail(STARTED, "60x39 2400x60"),
                mtail(BLOCKED_SINCE, "_ _ 120x38 2460x60", **POS),
                mtail(BLOCKED_SEEN, "_ _ 120x38 2460x60", **POS),
            ],
            fires("38m", "ReactorTargetBlocked", POS),
            quiet("45m", "ReactorTargetBlocked"),
            fires("72m", "ReactorTargetBlocked", POS),
        ),
        case(
            "mtail restarted while the reactor ran: no start seen yet, episodes still count",
            [
                mtail(STARTED, "0x60"),
                mtail(BLOCKED_SINCE, "_ _ 120x60", **POS),
                mtail(BLOCKED_SEEN, "_ _ 120x60", **POS),
            ],
            fires("35m", "ReactorTargetBlocked", POS),
        ),
        case(
            "main account below expected for 5 minutes; restored resolves; restart resolves",
            [
                mtail(STARTED, "60x24 1500x20"),
                mtail(MAIN_SINCE, "_ 120x10 stale _x2 900x30", account="m"),
                mtail(MAIN_SEEN, "_ 120x10 stale _x2 900x30", account="m"),
            ],
            quiet("6m", "ReactorMainBelowExpected"),
            fires("8m", "ReactorMainBelowExpected", {"account": "m"}),
            quiet("13m", "ReactorMainBelowExpected"),
            fires("21m", "ReactorMainBelowExpected", {"account": "m"}),
            quiet("26m", "ReactorMainBelowExpected"),
        ),
        case(
            "drift, guard, watchdog, EMFILE and reload-refused lines alert, then resolve",
            [
                mtail("reactor_log_book_drifts_total", "_ 1x30", account="a"),
                mtail("reactor_log_guard_trips_total", "_ 1x30", account="a"),
                mtail("reactor_log_watchdog_unhealthy_total", "0 1x30"),
                mtail("reactor_log_fd_exhausted_total", "0 0 2x30"),
                mtail("reactor_log_reload_refusals_total", "0 1x30"),
            ],
            fires("2m", "ReactorBookDrift", {"account": "a"}),
            fires("2m", "ReactorRunawayGuardTripped", {"account": "a"}),
            fires("2m", "ReactorWatchdogUnhealthy", both),
            fires("3m", "ReactorFileDescriptorsExhausted", both),
            fires("2m", "ReactorReloadRefused", both),
            quiet("13m", "ReactorReloadRefused"),
            quiet("18m", "ReactorBookDrift"),
            quiet("13m", "ReactorRunawayGuardTripped"),
            quiet("13m", "ReactorWatchdogUnhealthy"),
            quiet("14m", "ReactorFileDescriptorsExhausted"),
        ),
        case(
            "any error-level event alerts, per event; info lines do not",
            [
                mtail(EVENTS, "_ 1x30", event="journal.write.failed", level="error"),
                mtail(EVENTS, "_ _ 1x30", event="maintenance.api.failed", level="error"),
                mtail(EVENTS, "0+5x30", event="ws.connected", level="info"),
                mtail(EVENTS, "_ 1x30", event="account.stopped", level="error"),  # own alert
            ],
            fires(
                "3m",
                "ReactorErrorLogged",
                {"event": "journal.write.failed"},
                {"event": "maintenance.api.failed"},
            ),
            quiet("15m", "ReactorErrorLogged"),
        ),
        case(
            "the ledger unwritable (reactor_storage_ok 0) for a minute, then back",
            [series("reactor_storage_ok", "1 0x3 1x5", **REACTOR)],
            quiet("1m", "ReactorStorageDown"),
            fires("3m", "ReactorStorageDown", dict(REACTOR)),
            quiet("5m", "ReactorStorageDown"),
        ),
        case(
            "an HA lease lost: alerts, then resolves after the window",
            [mtail("reactor_log_ha_lease_lost_total", "_ 1x30", scope="shard:a")],
            fires("2m", "ReactorHaLeaseLost", {"scope": "shard:a"}),
            quiet("13m", "ReactorHaLeaseLost"),
        ),
        case(
            "open descriptors above 80 % of the limit for 2 minutes",
            [
                series("process_open_fds", "100 900x10 100x5", **REACTOR),
                series("process_max_fds", "1000x20", **REACTOR),
            ],
            quiet("2m", "ReactorFileDescriptorsHigh"),
            fires("4m", "ReactorFileDescriptorsHigh", dict(REACTOR)),
            quiet("13m", "ReactorFileDescriptorsHigh"),
        ),
        case(
            "a crash loop: more than 3 starts in an hour",
            [mtail("reactor_log_starts_total", "0 1 2 3 4 5x70")],
            quiet("3m", "ReactorRestarting"),
            fires("5m", "ReactorRestarting", both),
            quiet("70m", "ReactorRestarting"),
        ),
        case(
            "the reactor and mtail down for 2 minutes, then back",
            [
                series("up", "1 1 0x5 1x5", **REACTOR),
                series("up", "1 0x5 1x5", **{k: MTAIL[k] for k in ("job", "instance")}),
            ],
            quiet("3m", "ReactorDown"),
            fires("5m", "ReactorDown", dict(REACTOR)),
            quiet("8m", "ReactorDown"),
            fires("4m", "ReactorLogAlertingDown", both),
            quiet("7m", "ReactorLogAlertingDown"),
        ),
    ]


def render() -> str:
    doc = {
        "rule_files": ["prometheus-rules.yaml"],
        "evaluation_interval": "1m",
        "tests": cases(),
    }
    header = (
        "# Generated by `python -m tests.status.promtool_cases`; do not edit"
        " (the cases live there).\n"
        "# promtool test rules deploy/alerts/prometheus-rules.test.yaml\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


if __name__ == "__main__":
    print(render(), end="")

"""Alert rules cannot rot: every event they match is documented in docs/events.md and emitted
by the code, every documented event exists in the code, and every event the code logs is
documented. The jq recipe is run on a synthetic journal.

Names in PENDING are documented but not emitted yet (the engine adds them); their "in the code"
checks are expected failures until then, and turn into passes by themselves when they land.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from reactor.status import alerting
from tests.paths import REPO
from tests.status import promtool_cases

ROOT = REPO
ALERTS = ROOT / "deploy" / "alerts"
EVENTS_MD = ROOT / "docs" / "events.md"
RULE_FILES = ("loki-rules.yaml", "promtail.yaml", "journalctl-jq.sh", "okx-margin-reactor.mtail")

PENDING: frozenset[str] = frozenset()

# What the issue asks alerts for, as the events each rule file must match.
REQUIRED = frozenset(
    {
        "ws.login.failed",
        "account.stopped",
        "margin.adjust.failed",
        "margin.target.blocked",
        "margin.target.unblocked",
        "ws.reconnect",
        "book.drift",
        "margin.guard.tripped",
        "main.positions.below_expected",
        "main.positions.restored",
        "reactor.reload.refused",
    }
)

_EVENT_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def rule_events(name: str) -> set[str]:
    text = (ALERTS / name).read_text()
    # LogQL label filters (event="x") and jq comparisons (.event == "x").
    found = set(re.findall(r'event\s*==?\s*"([^"]+)"', text))
    # mtail regexes over the JSON line: /"event": "margin\.adjust\.failed"/
    found |= {m.replace("\\", "") for m in re.findall(r'/"event": "((?:[a-z0-9_]|\\\.)+)"/', text)}
    return found


@cache
def referenced() -> frozenset[str]:
    return frozenset(n for f in RULE_FILES for n in rule_events(f))


@cache
def documented() -> frozenset[str]:
    names = re.findall(r"^\| `([^`]+)` \|", EVENTS_MD.read_text(), re.M)
    assert len(names) == len(set(names)), "an event is documented twice"
    return frozenset(names)


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted((ROOT / "reactor").rglob("*.py"))]


@cache
def code_literals() -> frozenset[str]:
    return frozenset(
        n.value
        for _, tree in _modules()
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


@cache
def emitted() -> dict[str, str]:
    """Event name -> first file that logs it (``log.<level>("name", ...)``)."""
    out: dict[str, str] = {}
    for path, tree in _modules():
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr in _LOG_METHODS
                and n.args
                and isinstance(n.args[0], ast.Constant)
                and isinstance(n.args[0].value, str)
                and _EVENT_RE.match(n.args[0].value)
            ):
                out.setdefault(n.args[0].value, str(path.relative_to(ROOT)))
    return out


def _params(names: frozenset[str]) -> list[object]:
    return [
        pytest.param(
            n,
            marks=pytest.mark.xfail(reason="pending: not emitted yet", strict=False)
            if n in PENDING
            else (),
        )
        for n in sorted(names)
    ]


@pytest.mark.parametrize(
    "name", ["loki-rules.yaml", "journalctl-jq.sh", "okx-margin-reactor.mtail"]
)
def test_rules_cover_the_required_alerts(name: str) -> None:
    missing = REQUIRED - rule_events(name)
    assert not missing, f"{name} has no rule for {sorted(missing)}"


@pytest.mark.parametrize("event", sorted(referenced()))
def test_rule_events_are_documented(event: str) -> None:
    assert _EVENT_RE.match(event), event
    assert event in documented(), f"{event} is used by deploy/alerts but not in docs/events.md"


@pytest.mark.parametrize("event", _params(referenced()))
def test_rule_events_are_in_the_code(event: str) -> None:
    assert event in code_literals(), f"{event} is used by deploy/alerts but never in reactor/"


@pytest.mark.parametrize("event", _params(documented()))
def test_documented_events_are_in_the_code(event: str) -> None:
    assert event in code_literals(), f"docs/events.md lists {event} but reactor/ never uses it"


def test_emitted_events_are_documented() -> None:
    missing = {e: f for e, f in emitted().items() if e not in documented()}
    assert not missing, "add these to docs/events.md: " + ", ".join(
        f"{e} ({f})" for e, f in sorted(missing.items())
    )


def test_pending_names_are_documented() -> None:
    assert documented() >= PENDING


def test_loki_rules_are_well_formed() -> None:
    doc = yaml.safe_load((ALERTS / "loki-rules.yaml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        expr = r["expr"]
        assert "| json" in expr and 'unit=~"okx-margin-reactor' in expr, r["alert"]
        assert expr.count("(") == expr.count(")"), r["alert"]
        assert r["labels"]["severity"] in {"warning", "critical"}
        assert r["annotations"]["summary"]


def test_promtail_keeps_only_the_reactor_units() -> None:
    doc = yaml.safe_load((ALERTS / "promtail.yaml").read_text())
    (job,) = doc["scrape_configs"]
    assert "journal" in job
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    rx = re.compile(keep["regex"])
    for unit in ("okx-margin-reactor.service", "okx-margin-reactor@shard-1.service"):
        assert rx.fullmatch(unit)
    assert not rx.fullmatch("sshd.service")


# -- the jq recipe on a synthetic journal --------------------------------------------------------

T0 = 1_700_000_000


def journal_line(t: float, **fields: object) -> str:
    return json.dumps(
        {
            "MESSAGE": json.dumps(fields),
            "__REALTIME_TIMESTAMP": str(int((T0 + t) * 1_000_000)),
            "_SYSTEMD_UNIT": "okx-margin-reactor.service",
        }
    )


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (apt-get install jq)")
def test_journalctl_jq_recipe() -> None:
    pos = {"instId": "CRO-USDT-SWAP", "posSide": "long"}
    lines = [
        journal_line(0, event="ws.connected", account="a"),
        json.dumps({"MESSAGE": "plain text, not JSON", "__REALTIME_TIMESTAMP": "1"}),
        json.dumps({"MESSAGE": [123, 125], "__REALTIME_TIMESTAMP": "1"}),  # bytes form
        journal_line(1, event="ws.login.failed", account="a", code="60009", msg="Login failed."),
        journal_line(2, event="account.stopped", account="a", reason="login failed 60009"),
        journal_line(3, event="margin.target.blocked", account="a", **pos, reason="loss"),
        journal_line(4, event="margin.target.blocked", account="b", **pos, reason="loss"),
        journal_line(60, event="margin.target.unblocked", account="b", **pos),
        *(journal_line(100 + i, event="ws.reconnect", account="c", attempt=i) for i in range(3)),
        journal_line(200, event="margin.adjust.failed", account="a", **pos, code="59301"),
        journal_line(201, event="margin.adjust.unknown", account="a", **pos, error="timeout"),
        journal_line(300, event="book.drift", account="a", **pos, field="margin"),
        journal_line(301, event="margin.guard.tripped", account="a", **pos, limit="1000"),
        journal_line(302, event="main.positions.below_expected", account="m", positions=20),
        journal_line(303, event="systemd.watchdog.unhealthy", reason="health check failed"),
        journal_line(400, event="ws.connected", account="a"),
        journal_line(401, event="ws.connected", account="a"),
        journal_line(402, event="main.positions.restored", account="m", positions=22),
        journal_line(403, event="margin.target.unblocked", account="a", **pos),
    ]
    r = subprocess.run(
        ["bash", str(ALERTS / "journalctl-jq.sh"), "--stdin"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "BLOCKED_MINUTES": "5", "STORM_COUNT": "2"},
    )
    assert r.returncode == 0, r.stderr
    alerts = r.stdout.splitlines()
    names = [a.split()[1] for a in alerts]
    assert names == [
        "ReactorLoginFailed",
        "ReactorAccountStopped",
        "ReactorReconnectStorm",
        "ReactorMarginCallFailed",
        "ReactorMarginCallFailed",
        "ReactorBookDrift",
        "ReactorRunawayGuardTripped",
        "ReactorMainBelowExpected",
        "ReactorWatchdogUnhealthy",
        "ReactorTargetBlocked",  # account a only (b was unblocked), once
        "ReactorMainBelowExpected",  # RESOLVED
        "ReactorTargetBlocked",  # RESOLVED
    ]
    assert alerts[0].startswith("ALERT ReactorLoginFailed 2023-11-14T22:13:21Z account=a")
    assert 'msg="Login failed."' in alerts[0]
    assert "account=c count=3 window_s=300" in alerts[2]
    blocked = alerts[9]
    assert blocked.startswith("ALERT ReactorTargetBlocked")
    assert "account=a instId=CRO-USDT-SWAP posSide=long" in blocked and "blocked_min=6" in blocked
    assert (
        alerts[10].startswith("RESOLVED ReactorMainBelowExpected") and "positions=22" in alerts[10]
    )
    assert alerts[11].startswith("RESOLVED ReactorTargetBlocked") and "account=a" in alerts[11]


# -- mtail + Prometheus + Alertmanager (generated from reactor.status.alerting) ----------------

APT_ALERTING = "apt-get install -y prometheus prometheus-alertmanager mtail"


@pytest.mark.parametrize("name", sorted(alerting.ARTEFACTS))
def test_generated_files_are_current(name: str) -> None:
    """deploy/alerts/ holds exactly what the spec renders (regenerate: python -m
    reactor.status.alerting deploy/alerts)."""
    assert (ALERTS / name).read_text() == alerting.ARTEFACTS[name](), f"{name} is stale"


def test_promtool_cases_are_current() -> None:
    """python -m tests.status.promtool_cases > deploy/alerts/prometheus-rules.test.yaml"""
    assert (ALERTS / "prometheus-rules.test.yaml").read_text() == promtool_cases.render()


def test_every_alert_has_a_promtool_case() -> None:
    tested = {
        check["alertname"]
        for case in promtool_cases.cases()
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert tested == {a.name for a in alerting.alerts()}


def test_watched_events_cover_the_required_alerts() -> None:
    assert sorted(REQUIRED - alerting.watched_events()) == []


@pytest.mark.parametrize("event", sorted(alerting.watched_events()))
def test_watched_events_are_documented_and_emitted(event: str) -> None:
    assert event in documented(), f"{event}: add it to docs/events.md"
    assert event in code_literals(), f"{event} is never used in reactor/"


def test_rules_read_only_metrics_that_exist() -> None:
    """Every series a rule reads is made by the mtail program or by the reactor's /metrics
    (prometheus_client's process collector) or is Prometheus' own ``up``."""
    program = (ALERTS / "okx-margin-reactor.mtail").read_text()
    mtail_metrics = set(re.findall(r"^(?:counter|gauge) (\w+)", program, re.M))
    reactor_metrics = {"process_open_fds", "process_max_fds", "up", "reactor_storage_ok"}
    assert '"reactor_storage_ok"' in (ROOT / "reactor" / "status" / "metrics.py").read_text()
    for a in alerting.alerts():
        names = set(re.findall(r"\b(reactor_\w+|process_\w+|up)\b(?=[{\[ )]|$)", a.expr))
        assert names, a.name
        unknown = names - mtail_metrics - reactor_metrics
        assert not unknown, f"{a.name} reads {sorted(unknown)}"


def test_fast_timings_only_change_windows() -> None:
    """The end-to-end test runs the FAST rendering: same alerts, same metrics."""
    prod = {a.name: a for a in alerting.alerts(alerting.PRODUCTION)}
    fast = {a.name: a for a in alerting.alerts(alerting.FAST)}
    assert prod.keys() == fast.keys()
    strip = re.compile(r"\[\w+\]|offset \w+|> [\d.]+$|\d+[smh]\b")
    for name, a in prod.items():
        assert strip.sub("", a.expr) == strip.sub("", fast[name].expr), name


def _mtail_one_shot(lines: list[str], tmp_path: Path) -> dict[str, float]:
    log = tmp_path / "reactor.log"
    log.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [
            "mtail",
            "--progs",
            str(ALERTS / "okx-margin-reactor.mtail"),
            "--one_shot",
            "--one_shot_format",
            "prometheus",
            "--logs",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, float] = {}
    for line in r.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        series = re.sub(r',?prog="[^"]*"', "", series).replace("{}", "").replace("{,", "{")
        out[series] = float(value)
    return out


def _line(ts: str, event: str, level: str = "info", prefix: str = "", **fields: object) -> str:
    body = {**fields, "event": event, "level": level, "timestamp": f"2026-01-01T{ts}.000123Z"}
    return prefix + json.dumps(body)


@pytest.mark.skipif(shutil.which("mtail") is None, reason=f"needs mtail ({APT_ALERTING})")
def test_mtail_program_on_a_synthetic_log(tmp_path: Path) -> None:
    pos = {"account": "a", "instId": "CRO-USDT-SWAP", "posSide": "long"}
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    lines = [
        _line("00:00:00", "reactor.started"),
        _line("00:01:00", "margin.target.blocked", "warning", **pos, reason="loss"),
        _line(
            "00:02:00", "margin.target.blocked", "warning", account="b", instId="X", posSide="net"
        ),
        _line("00:03:00", "margin.target.unblocked", account="b", instId="X", posSide="net"),
        _line("00:04:00", "margin.adjust.failed", "error", **pos, code="59301", msg="m"),
        _line("00:04:01", "margin.adjust.unknown", "error", prefix="<3>", **pos, error="timeout"),
        # an unknown outcome with its code null (JSON null): counted as "none" too
        _line("00:04:02", "margin.adjust.unknown", "warning", **pos, code=None, recovered=True),
        _line("00:05:00", "ws.reconnect", account="a", attempt="1"),
        _line("00:05:01", "ws.reconnect", account="a", attempt="2"),
        _line("00:06:00", "account.stopped", "error", account="c", reason="login", code="60024"),
        "plain text that is not JSON",
        # Restart: the episode of `a` is not logged again, a new one for `d` is.
        _line("00:10:00", "reactor.started"),
        _line(
            "00:10:05", "margin.target.blocked", "warning", account="d", instId="Y", posSide="long"
        ),
    ]
    m = _mtail_one_shot(lines, tmp_path)
    lbl = 'account="a",instId="CRO-USDT-SWAP",posSide="long"'
    # by OKX code; a line without one (the unknown outcome's timeout) counts as "none"
    fail = "reactor_log_margin_call_failures_total"
    code = 'account="a",code="{}",instId="CRO-USDT-SWAP",posSide="long"'  # mtail sorts labels
    assert m[f"{fail}{{{code.format('59301')}}}"] == 1
    assert m[f"{fail}{{{code.format('none')}}}"] == 2
    assert sum(v for k, v in m.items() if k.startswith(fail + "{")) == 3
    assert m['reactor_log_ws_reconnects_total{account="a"}'] == 2
    assert m['reactor_log_events_total{event="ws.reconnect",level="info"}'] == 2
    assert m['reactor_log_events_total{event="margin.adjust.unknown",level="error"}'] == 1
    assert m["reactor_log_starts_total"] == 2
    assert m["reactor_log_started_timestamp_seconds"] == pytest.approx(t0 + 600, abs=1)
    assert m[f"reactor_log_target_blocked_since_timestamp_seconds{{{lbl}}}"] == pytest.approx(
        t0 + 60, abs=1
    )
    # The episode of `a` predates the last start: the rule's `seen >= started` drops it.
    assert m[f"reactor_log_target_blocked_seen_timestamp_seconds{{{lbl}}}"] < t0 + 600
    assert not any('account="b"' in k and "target_blocked" in k for k in m)  # unblocked
    assert m[
        'reactor_log_target_blocked_seen_timestamp_seconds{account="d",instId="Y",posSide="long"}'
    ] == pytest.approx(t0 + 605, abs=1)
    assert m['reactor_log_account_stopped_seen_timestamp_seconds{account="c"}'] == pytest.approx(
        t0 + 360, abs=1
    )


def test_mtail_unit_matches_the_generated_files(tmp_path: Path) -> None:
    unit = (ALERTS / "okx-margin-reactor-mtail.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "journalctl -f -n 0 -o cat -u okx-margin-reactor.service" in exec_start
    assert "--logs /dev/stdin" in exec_start and "--port 3903" in exec_start
    prom = yaml.safe_load((ALERTS / alerting.PROMETHEUS_FILE).read_text())
    mtail_job = next(j for j in prom["scrape_configs"] if j["job_name"] == alerting.MTAIL_JOB)
    assert mtail_job["static_configs"][0]["targets"] == ["127.0.0.1:3903"]
    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze")
    copy = tmp_path / "okx-margin-reactor-mtail.service"
    copy.write_text(unit)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in r.stderr.splitlines()
        if "okx-margin-reactor-mtail" in line and "okx-margin-reactor.service" not in line
    ]
    assert not problems, r.stderr


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (apt-get install jq)")
def test_journalctl_jq_recipe_across_restarts() -> None:
    """A restart closes blocked episodes: one that ended while the reactor was down never
    alerts, and one that had alerted is RESOLVED (the new process logs it again if it is still
    blocked, and its clock starts again)."""
    pos = {"instId": "CRO-USDT-SWAP", "posSide": "long"}
    lines = [
        journal_line(0, event="margin.target.blocked", account="a", **pos),
        journal_line(360, event="margin.target.blocked", account="b", **pos),
        journal_line(400, event="ws.connected", account="x"),  # a: 6+ minutes -> ALERT
        journal_line(500, event="reactor.started"),  # a RESOLVED; b (not alerted) closed
        journal_line(1500, event="ws.connected", account="x"),  # b would be 19 min old: quiet
        journal_line(1600, event="margin.target.blocked", account="a", **pos),  # still blocked
        journal_line(2000, event="ws.connected", account="x"),  # 6.7 min after re-log: ALERT
    ]
    r = subprocess.run(
        ["bash", str(ALERTS / "journalctl-jq.sh"), "--stdin"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "BLOCKED_MINUTES": "5"},
    )
    assert r.returncode == 0, r.stderr
    out = [
        (line.split()[0], line.split()[1], "account=a" in line) for line in r.stdout.splitlines()
    ]
    assert out == [
        ("ALERT", "ReactorTargetBlocked", True),
        ("RESOLVED", "ReactorTargetBlocked", True),
        ("ALERT", "ReactorTargetBlocked", True),
    ]
    assert "closed_by=restart" in r.stdout.splitlines()[1]


def test_loki_episode_rules_are_restart_safe() -> None:
    """The Loki blocked / main-below rules compare last times, including the last start;
    no "count minus count" is left."""
    doc = yaml.safe_load((ALERTS / "loki-rules.yaml").read_text())
    rules = {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}
    for name in ("ReactorTargetBlocked", "ReactorMainBelowExpected"):
        expr = rules[name]
        assert 'event="reactor.started"' in expr, name
        assert "unwrap ts" in expr and "__timestamp__" in expr, name
        assert not re.search(r"\)\s*-\s*\n?\s*sum", expr), name


# -- issue 20, item 2: nothing that needs a human fails silently -------------------------------

RUNBOOK_MD = ROOT / "docs" / "runbook.md"


def _error_level_events() -> list[str]:
    rows = re.findall(r"^\| `([^`]+)` \| (\w+) \|", EVENTS_MD.read_text(), re.M)
    return sorted(name for name, level in rows if level == "error")


def test_every_error_level_event_alerts() -> None:
    """The catalog says an ``error`` needs a human: every one reaches an alert, through a rule
    of its own or the rule over mtail's per-level count of every line."""
    assert len(_error_level_events()) > 20
    rules = alerting.alerts()
    (catch_all,) = [a for a in rules if 'reactor_log_events_total{level="error"' in a.expr]
    excluded = re.search(r'event!~"([^"]*)"', catch_all.expr)
    assert excluded is not None
    for event in _error_level_events():
        own = [a.name for a in rules if event in a.events]
        assert own or not re.fullmatch(excluded[1], event), f"{event}: no alert"
        assert not (own and not re.fullmatch(excluded[1], event)), f"{event}: pages twice"
    program = (ALERTS / "okx-margin-reactor.mtail").read_text()
    assert "reactor_log_events_total[$event][$level]++" in program


def test_storage_down_alerts() -> None:
    (rule,) = [a for a in alerting.alerts() if "reactor_storage_ok" in a.expr]
    assert rule.expr.endswith("== 0") and rule.severity == "critical"


def test_every_alert_has_a_runbook_section() -> None:
    doc = yaml.safe_load((ALERTS / "prometheus-rules.yaml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    sections = {
        h.strip().lower() for h in re.findall(r"^## (Reactor\w+)\s*$", RUNBOOK_MD.read_text(), re.M)
    }
    for r in rules:
        url = r["annotations"]["runbook_url"]
        base, anchor = url.split("#")
        assert base.endswith("/docs/runbook.md"), url
        assert anchor == r["alert"].lower() and anchor in sections, f"{r['alert']}: no section"
    assert sections == {r["alert"].lower() for r in rules}, "a runbook section without an alert"


def test_thresholds_from_a_settings_file(tmp_path: Path) -> None:
    """A desk tunes windows and thresholds without patching the package."""
    settings = tmp_path / "alerting.yaml"
    settings.write_text("blocked_s: 3600\nerror_window: 30m\nrunbook_url: https://wiki/rb\n")
    out = tmp_path / "alerts"
    assert alerting.main([str(out), "--settings", str(settings)]) == 0
    rules = (out / "prometheus-rules.yaml").read_text()
    assert "> 3600" in rules and "> 1800" not in rules
    assert 'ws.reconnect"}[30m]' in rules
    assert "runbook_url: https://wiki/rb#reactortargetblocked" in rules
    settings.write_text("blocked_minutes: 5\n")
    assert alerting.main([str(out), "--settings", str(settings)]) == 2


@pytest.mark.skipif(shutil.which("mtail") is None, reason=f"needs mtail ({APT_ALERTING})")
def test_mtail_adds_summarised_repeats_to_the_event(tmp_path: Path) -> None:
    """Issue 20 item 9: identical error lines are written once, then counted in
    ``log.repeated``; mtail adds the count back, so ReactorErrorLogged keeps firing for the
    repeated event during a long outage, and never for ``log.repeated`` itself."""
    lines = [
        _line("00:00:00", "journal.write.failed", "error", what="intent", error="locked"),
        _line(
            "00:01:00",
            "log.repeated",
            "error",
            what="intent",
            error="locked",
            repeated_event="journal.write.failed",
        ).replace('"level"', '"count": 59, "level"'),
    ]
    m = _mtail_one_shot(lines, tmp_path)
    assert m['reactor_log_events_total{event="journal.write.failed",level="error"}'] == 60
    rule = next(a for a in alerting.alerts() if a.name == "ReactorErrorLogged")
    assert "log\\.repeated" in rule.expr or "log.repeated" in rule.expr

"""``reactor status``: asks the running reactor (its local status API, ``/api/status``) what it
sees now; a table by default, ``--json`` for scripts. Times are ISO 8601 (UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from reactor.config import Config
from reactor.store.state_dir import StartupError


def iso(ms: int | None) -> str:
    """``2026-12-07T12:31:56.123Z`` (UTC), ``-`` for none."""
    if ms is None:
        return "-"
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_url(cfg: Config) -> str:
    host = "127.0.0.1" if cfg.status.host in ("0.0.0.0", "") else cfg.status.host
    host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
    return f"http://{host}:{cfg.status.port}/api/status"


def fetch(cfg: Config, timeout_s: float = 5.0) -> dict[str, Any]:
    """The running reactor's snapshot; a clear one-line error when nothing answers."""
    if not cfg.status.enabled:
        raise StartupError("status: the status server is disabled in this config (status.enabled)")
    url = status_url(cfg)
    try:
        r = httpx.get(url, timeout=timeout_s)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
    except httpx.HTTPError as exc:
        raise StartupError(f"status: no reactor answers at {url} ({type(exc).__name__})") from None
    return body


def table(s: dict[str, Any], *, account: str | None = None) -> str:
    """The snapshot for a terminal: health, what needs attention, then one line per position."""
    att = s.get("attention", {})
    counts = ", ".join(f"{n} {k}" for k, n in att.get("counts", {}).items() if n) or "nothing"
    health = s.get("health") or ("healthy" if s.get("healthy") else "down")
    lines = [
        f"{health}  at {iso(s.get('generatedMs'))}  venue {s.get('venue') or '?'}"
        + ("  DRY RUN" if s.get("dryRun") else ""),
    ]
    lines += [f"  problem: {p}" for p in s.get("problems", [])]
    lines.append(f"needs attention: {counts}")
    for i in att.get("items", []):
        if account and i.get("account") != account:
            continue
        where = i["account"] or "engine"
        if i.get("instId"):
            where += f" {i['instId']} {i['posSide']}"
        lines.append(f"  {i['kind']:<8} {where}  {i.get('reason', '')}".rstrip())
    head = ("ACCOUNT", "INSTRUMENT", "SIDE", "MARGIN", "BAND", "COUNT", "STATUS", "LAST CALL")
    rows: list[tuple[str, ...]] = [head]
    for a in s.get("accounts", []):
        if account and a["name"] != account:
            continue
        for p in a.get("positions", []):
            band = "-" if p.get("bandLo") is None else f"{p['bandLo']}-{p['bandHi']}"
            la = p.get("lastAction")
            last = "-" if la is None else f"{la['action']} {la['amount']} {la['result']} "
            last += "" if la is None else iso(la.get("ms"))
            rows.append(
                (a["name"], p["instId"], p["posSide"], p.get("margin") or "-", band,
                 str(p.get("count", 0)), p["status"], last)
            )  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def status_command(cfg: Config, *, as_json: bool = False, account: str | None = None) -> int:
    """0 when healthy or degraded, 1 when the reactor says it is down (scripts can test it)."""
    s = fetch(cfg)
    if account is not None and not any(a["name"] == account for a in s.get("accounts", [])):
        raise StartupError(f"--account: {account} is not an account of the running reactor")
    if as_json:
        if account is not None:
            s = {**s, "accounts": [a for a in s["accounts"] if a["name"] == account]}
        print(json.dumps(s, indent=2))
    else:
        print(table(s, account=account))
    return 1 if (s.get("health") or "") == "down" else 0

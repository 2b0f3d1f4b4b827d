"""``STATUS=`` text from the status snapshot, and the loop that keeps it current."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from reactor.service.systemd import SystemdNotifier, run_status, status_text
from reactor.status.model import AccountStatus, PositionStatus, StatusSnapshot


def _pos(account: str, status: str) -> PositionStatus:
    d = Decimal("10")
    return PositionStatus(
        account, "sub", "CRO-USDT-SWAP", "long", d, d, d, d, d, 0, None, None, status
    )


def _acc(name: str, *statuses: str, **kw: object) -> AccountStatus:
    base: dict[str, object] = {"enabled": True, "connected": True, "fresh": True}
    base["stopped_reason"] = None
    base.update(kw)
    return AccountStatus(
        name,
        "sub",
        positions=tuple(_pos(name, s) for s in statuses),
        **base,  # type: ignore[arg-type]
    )


def _snap(*accounts: AccountStatus, storage_ok: bool = True) -> StatusSnapshot:
    return StatusSnapshot(accounts, 22, 0, storage_ok=storage_ok)


def test_live_stopped_adjusting() -> None:
    accounts = [_acc(f"a{i}", "ok") for i in range(495)]
    accounts += [_acc("b1", "adjusting", "adjusting"), _acc("b2", "adjusting", "ok")]
    accounts += [_acc("s1", stopped_reason="login failed"), _acc("s2", stopped_reason="x")]
    accounts += [_acc("c1", connected=False), _acc("off", enabled=False)]
    accounts += [_acc("d", "ok", fresh=False)]
    assert status_text(_snap(*accounts)) == (
        "497/501 live, 2 stopped, 2 connecting, 3 adjusting;"
        " needs attention: 2 error (s1, s2), 2 stale (c1, d)"
    )


def test_blocked_paused_storage_and_dry_run() -> None:
    snap = _snap(
        _acc("a", "blocked", "paused"),
        _acc("b", "paused", paused="hedge"),
        storage_ok=False,
    )
    assert status_text(snap, dry_run=True) == (
        "dry run: 2/2 live, 1 blocked, 1 accounts paused, 2 positions paused, ledger failing;"
        " needs attention: 1 blocked (a CRO-USDT-SWAP long),"
        " 3 paused (a CRO-USDT-SWAP long, b, b CRO-USDT-SWAP long)"
    )
    assert status_text(_snap(_acc("a"))) == "1/1 live"


def test_needs_attention_names_the_places() -> None:
    """The issue's case: 3 of 7 managed positions blocked, one failing with 59200; everything
    said "live" before. STATUS= names them (the first three per kind, then how many more)."""
    blocked = [_pos("sub-a", "blocked") for _ in range(3)]
    blocked = [replace(p, inst_id=f"C{i}-USDT-SWAP") for i, p in enumerate(blocked)]
    err = replace(_pos("sub-b", "error"), reason="59200 insufficient balance")
    held = [replace(_pos("sub-c", "held"), inst_id=f"H{i}-USDT-SWAP") for i in range(5)]
    snap = _snap(
        replace(_acc("sub-a", "ok"), positions=(*blocked, _pos("sub-a", "ok"))),
        replace(_acc("sub-b"), positions=(err,)),
        replace(_acc("sub-c"), positions=tuple(held)),
        _acc("sub-d", fresh=False),
    )
    assert status_text(snap) == (
        "3/4 live, 1 connecting, 3 blocked; needs attention:"
        " 1 error (sub-b CRO-USDT-SWAP long),"
        " 3 blocked (sub-a C0-USDT-SWAP long, sub-a C1-USDT-SWAP long, sub-a C2-USDT-SWAP long),"
        " 5 held (sub-c H0-USDT-SWAP long, sub-c H1-USDT-SWAP long, sub-c H2-USDT-SWAP long,"
        " +2 more), 1 stale (sub-d)"
    )


async def test_run_status_sends_only_changes_and_wakes_at_once() -> None:
    d = tempfile.mkdtemp(prefix="sdn")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    texts = ["a", "a", "b"]
    calls = 0

    def text() -> str:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("snapshot broke")  # logged, the last line stays
        return texts[min(calls - 1, len(texts) - 1)]

    wake = asyncio.Event()
    task = asyncio.create_task(
        run_status(SystemdNotifier({"NOTIFY_SOCKET": path}), text, 3600, wake)
    )
    try:
        for _ in range(4):
            await asyncio.sleep(0.05)
            wake.set()
        await asyncio.sleep(0.05)
        got = []
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except BlockingIOError:
                break
        assert got == ["STATUS=a", "STATUS=b"]
        assert calls >= 4
    finally:
        task.cancel()
        sock.close()
        Path(path).unlink()
        os.rmdir(d)


async def test_run_status_is_silent_outside_systemd() -> None:
    await asyncio.wait_for(run_status(SystemdNotifier({}), lambda: "x"), 1)

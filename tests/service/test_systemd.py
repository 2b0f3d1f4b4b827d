"""sd_notify protocol against a fake NOTIFY_SOCKET: a unix datagram socket the test binds."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactor.service.systemd import SystemdNotifier, run_watchdog


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    # A short directory: unix socket paths are limited to ~108 bytes.
    d = tempfile.mkdtemp(prefix="sdn")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()
    Path(path).unlink()
    os.rmdir(d)


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def drain(sock: socket.socket) -> list[str]:
    out: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return out


def test_ready_status_stopping_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    n.ready("3 accounts connected")
    assert recv(sock) == "READY=1\nSTATUS=3 accounts connected"
    n.ready()
    assert recv(sock) == "READY=1"
    n.status("line one\nline two")
    assert recv(sock) == "STATUS=line one line two"
    n.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    n.stopping()
    assert recv(sock) == "STOPPING=1"
    n.close()


def test_abstract_socket() -> None:
    name = f"okx-reactor-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        n = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        n.ready()
        assert recv(sock) == "READY=1"
        n.close()
    finally:
        sock.close()


def test_noop_without_socket() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    assert n.notify("READY=1") is False
    n.ready("x")
    n.watchdog()
    n.stopping()
    assert n.watchdog_interval_s() is None


def test_send_failure_is_swallowed(tmp_path: Path) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.notify("READY=1") is False  # logged, not raised


def test_default_env_is_process_environment(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    SystemdNotifier().ready()
    assert recv(sock) == "READY=1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "junk"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    n = SystemdNotifier({"NOTIFY_SOCKET": "/run/nonexistent", **env})
    assert n.watchdog_interval_s() == expected


def test_watchdog_interval_needs_socket() -> None:
    assert SystemdNotifier({"WATCHDOG_USEC": "1000000"}).watchdog_interval_s() is None


async def test_run_watchdog_pings_while_healthy(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})  # ping every 10 ms
    healthy = True
    task = asyncio.create_task(run_watchdog(n, lambda: healthy))
    try:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, recv, sock) == "WATCHDOG=1"
        assert await loop.run_in_executor(None, recv, sock) == "WATCHDOG=1"
        # Unhealthy: the pings stop, so systemd would restart the service.
        healthy = False
        await asyncio.sleep(0.05)
        drain(sock)
        await asyncio.sleep(0.05)
        assert drain(sock) == []
        healthy = True
        assert await loop.run_in_executor(None, recv, sock) == "WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        n.close()


async def test_run_watchdog_raising_check_counts_as_unhealthy(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})

    def broken() -> bool:
        raise RuntimeError("boom")

    task = asyncio.create_task(run_watchdog(n, broken))
    await asyncio.sleep(0.05)
    assert not task.done()
    assert drain(sock) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_stuck_loop_stops_pings(listener: tuple[socket.socket, str]) -> None:
    """The ping runs on the event loop: a blocked loop sends nothing while it is blocked."""
    sock, path = listener
    n = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    task = asyncio.create_task(run_watchdog(n, lambda: True))
    await asyncio.sleep(0.03)
    drain(sock)
    time.sleep(0.1)  # block the loop: no task runs
    assert drain(sock) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_watchdog_returns_when_unarmed() -> None:
    await asyncio.wait_for(run_watchdog(SystemdNotifier({}), lambda: True), 1)

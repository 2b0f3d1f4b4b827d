"""``reactor sim --scenario FILE``: run the simulator until SIGINT/SIGTERM.

stdout carries exactly one JSON line (``sim.ready``) so scripts and tests can wait for it and
read the URL; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from reactor.log import configure, get_logger
from reactor.sim.scenario import ScenarioError, load_scenario
from reactor.sim.server import Simulator
from reactor.sim.tls import TlsError

log = get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reactor sim", description="OKX v5 simulator on loopback")
    p.add_argument("--scenario", required=True, help="scenario YAML file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--price-walk", action="store_true", help="move mark prices randomly")
    p.add_argument(
        "--page-size",
        type=_positive_int,
        default=None,
        help="positions per snapshot page (default: the scenario's, 100)",
    )
    p.add_argument(
        "--time-scale",
        type=_positive_float,
        default=None,
        help="multiply regular-snapshot intervals and the 50 ms event window (default 1)",
    )
    p.add_argument(
        "--legacy-push-fields",
        action="store_true",
        default=None,
        help="omit eventType/curPage/lastPage from positions pushes (OKX in 2024)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="serve https/wss with a fresh self-signed CA (its file is named in sim.ready)",
    )
    p.add_argument(
        "--no-desk",
        action="store_true",
        help="do not run the scenario's simulated desk (its market orders)",
    )
    p.add_argument("--log-level", default="info")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


async def _serve(sim: Simulator, host: str, port: int) -> None:
    url = await sim.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = {"event": "sim.ready", "url": url, "ws_url": sim.ws_url}
    if sim.ca_file is not None:
        ready["ca_file"] = str(sim.ca_file)  # SSL_CERT_FILE for clients (python-okx, reactor)
    print(json.dumps(ready), flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    configure(args.log_level, "json", sys.stderr)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"reactor sim: bad scenario: {exc}", file=sys.stderr)
        return 2
    sim = Simulator(
        scenario,
        price_walk=True if args.price_walk else None,
        page_size=args.page_size,
        time_scale=args.time_scale,
        legacy_push_fields=args.legacy_push_fields,
        tls=args.tls,
        desk=False if args.no_desk else None,
    )
    try:
        asyncio.run(_serve(sim, args.host, args.port))
    except TlsError as exc:
        print(f"reactor sim: cannot serve TLS: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"reactor sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0

"""``reactor probe --config F --account A --out DIR``: the reversible probe of one account.

Exit codes: 0 done and the account's margin is back where it started; 1 the probe could not
run, or stopped early, or could not restore the margin (the summary says which); 2 bad
arguments or config (one line), including ``venue.kind: live`` without
``--i-understand-live``; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NoReturn

from reactor import log as logging_setup
from reactor.config import ConfigError, load_config
from reactor.probe.script import ProbeOptions

EXIT_BAD_INPUT = 2


class _BadArgs(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + error
        raise _BadArgs(message)


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600: {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reactor probe", description=__doc__)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--account", required=True, help="one sub-account of the config")
    p.add_argument("--out", type=Path, required=True, help="new or empty folder for the capture")
    p.add_argument("--window-s", type=_seconds, default=60.0, help="quiet observation window (60)")
    p.add_argument("--inst-id", default=None, help="position to probe (default: the first)")
    p.add_argument("--pos-side", default=None, choices=["long", "short", "net"])
    p.add_argument("--amount", type=_amount, default=Decimal("1"), help="add/reduce size (1)")
    p.add_argument("--event-wait-s", type=_seconds, default=5.0, help="wait for a push (5)")
    p.add_argument("--bill-wait-s", type=_seconds, default=10.0, help="wait for a bill (10)")
    p.add_argument(
        "--no-at-limit",
        action="store_true",
        help="skip the reduce of exactly estAvailTrans (and its add back)",
    )
    p.add_argument(
        "--i-understand-live",
        action="store_true",
        help="allow venue.kind live: the probe moves real margin (and moves it back)",
    )
    return p


def _fail(msg: str) -> int:
    print(f"reactor probe: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except _BadArgs as exc:
        return _fail(str(exc))
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc).splitlines()[0])
    if cfg.venue.kind == "live" and not args.i_understand_live:
        return _fail(
            "venue.kind is live: the probe moves margin on real positions; "
            "pass --i-understand-live to allow it"
        )
    opts = ProbeOptions(
        window_s=args.window_s,
        inst_id=args.inst_id,
        pos_side=args.pos_side,
        amount=args.amount,
        step=cfg.policy.amount_step,
        event_wait_s=args.event_wait_s,
        bill_wait_s=args.bill_wait_s,
        at_limit=not args.no_at_limit,
    )
    logging_setup.configure("warning", "json", sys.stderr)  # stdout carries the summary
    from reactor.probe.driver import run_probe

    try:
        run = asyncio.run(run_probe(cfg, args.account, args.out, opts))
    except ConfigError as exc:
        return _fail(str(exc).splitlines()[0])
    except KeyboardInterrupt:
        return 130
    return run.exit_code

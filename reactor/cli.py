"""``reactor`` command line: run, check-config, sim, maintenance, journal.

Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, CLI arguments) with one clear line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from reactor import log as logging_setup
from reactor.config import AccountConfig, Config, ConfigError, load_config, resolve_credentials
from reactor.ledger import LedgerError
from reactor.state_dir import StartupError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reactor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the reactor")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--dry-run", action="store_true", help="decide and log, never call margin-balance"
    )
    run.add_argument("--log-format", choices=logging_setup.LOG_FORMATS, help="overrides log.format")
    run.add_argument("--log-level", choices=logging_setup.LOG_LEVELS, help="overrides log.level")

    check = sub.add_parser("check-config", help="validate a config file and its credentials")
    check.add_argument("--config", type=Path, required=True)

    sub.add_parser("sim", help="run the OKX v5 simulator", add_help=False)
    sub.add_parser("probe", help="reversible probe of one account (reactor probe -h)")

    maint = sub.add_parser("maintenance", help="the maintenance ledger")
    msub = maint.add_subparsers(dest="maint_command", required=True)
    rec = msub.add_parser("record", help="record one successful maintenance (idempotent)")
    rec.add_argument("--config", type=Path, required=True)
    rec.add_argument("--account", required=True)
    rec.add_argument("--inst-id", required=True)
    rec.add_argument("--pos-side", required=True, choices=["long", "short", "net"])
    rec.add_argument("--key", required=True, help="idempotency key, e.g. the order's clOrdId")
    rec.add_argument(
        "--c-time",
        type=int,
        default=None,
        help="position cTime (ms); default: read the position OKX reports now",
    )
    lst = msub.add_parser("list", help="list maintenance records with derived counts")
    lst.add_argument("--config", type=Path, required=True)

    journal = sub.add_parser("journal", help="show the journal of exchange calls")
    journal.add_argument("--config", type=Path, required=True)
    journal.add_argument("--limit", type=int, default=50)
    return p


def _fail(msg: str) -> int:
    print(f"reactor: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        from reactor.sim.cli import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["probe"]:  # the probe parses its own arguments (reactor/probe/cli.py)
        from reactor.probe.cli import main as probe_main

        return probe_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.command == "check-config":
            return _check_config(cfg, args.config)
        logging_setup.configure(
            getattr(args, "log_level", None) or cfg.log.level,
            getattr(args, "log_format", None) or cfg.log.format,
        )
        if args.command == "run":
            from reactor import app

            return asyncio.run(app.run(cfg, dry_run=args.dry_run))
        if args.command == "maintenance":
            if args.maint_command == "record":
                return _maintenance_record(cfg, args)
            return _maintenance_list(cfg)
        if args.command == "journal":
            return _journal(cfg, args.limit)
    except (ConfigError, StartupError, LedgerError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return _fail(f"unknown command {args.command}")


def _check_config(cfg: Config, path: Path) -> int:
    if not cfg.venue.embedded:
        resolve_credentials(cfg)
    enabled = cfg.enabled_accounts()
    if not enabled:
        raise ConfigError("accounts: every account is disabled; nothing to run")
    print(
        json.dumps(
            {
                "event": "config.ok",
                "config": str(path),
                "venue": cfg.venue.kind,
                "accounts": len(enabled),
                "targets": [str(t.target) for t in cfg.targets],
            }
        )
    )
    return 0


def _ledger(cfg: Config):  # type: ignore[no-untyped-def]
    from reactor.app import LEDGER_FILE
    from reactor.ledger import Ledger

    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    return Ledger(cfg.state_dir / LEDGER_FILE)


def _maintenance_record(cfg: Config, args: argparse.Namespace) -> int:
    from reactor.app import account_by_name

    acc = account_by_name(cfg, args.account)
    if acc.role != "sub":
        raise ConfigError(f"--account: {acc.name} is the main account; it is never managed")
    if not args.key.strip():
        raise ConfigError("--key: must not be empty")
    log = logging_setup.get_logger("reactor.cli")
    c_time = args.c_time
    if c_time is None:
        try:
            c_time = asyncio.run(_current_c_time(cfg, acc, args.inst_id, args.pos_side))
        except _ExchangeUnreachable as exc:
            print(f"reactor: {exc}", file=sys.stderr)
            return 1
    elif c_time <= 0:
        raise ConfigError(f"--c-time: must be a positive OKX cTime in ms, not {c_time}")
    ledger = _ledger(cfg)
    try:
        rec = ledger.record_maintenance(
            acc.name, args.inst_id, args.pos_side, args.key, c_time=c_time
        )
    finally:
        ledger.close()
    fields = {"account": acc.name, "instId": args.inst_id, "posSide": args.pos_side}
    if rec is None:
        log.info("maintenance.duplicate", **fields, key=args.key)
    else:
        log.info("maintenance.recorded", **fields, key=args.key, record_id=rec.id, cTime=c_time)
    return 0


class _ExchangeUnreachable(Exception):
    """The position could not be read (network, OKX error): a runtime failure, exit 1."""


async def _current_c_time(cfg: Config, acc: AccountConfig, inst_id: str, pos_side: str) -> int:
    """The cTime of the position OKX reports now, read with the account's own credentials.

    A maintenance record belongs to one real position: the host clock cannot say which (a
    position reopened a minute ago would take a record meant for the closed one). Unknown
    instrument, or no open position on that side: ConfigError (one line, exit 2).
    """
    from reactor.config import load_credentials
    from reactor.okx.errors import OkxError
    from reactor.okx.models import PayloadError, parse_position
    from reactor.okx.rest import AmbiguousOutcome, OkxRestClient, RequestNotSent

    if cfg.venue.embedded:
        raise ConfigError(
            "--c-time: required with the embedded simulator (its positions live inside the "
            "running reactor); pass the position's cTime"
        )
    creds = load_credentials(cfg, acc)
    rest_url, _ = cfg.venue.urls()
    where = f"{acc.name} {inst_id} {pos_side}"
    async with OkxRestClient(
        rest_url,
        creds,
        simulated=cfg.venue.simulated_trading,
        timeout_s=cfg.timing.request_timeout_s,
        account=acc.name,
    ) as client:
        try:
            listed = {i.get("instId") for i in await client.get_instruments("SWAP")}
            if inst_id not in listed:
                raise ConfigError(f"--inst-id: {inst_id} is not a swap OKX lists")
            raw = await client.get_positions("SWAP", inst_id)
        except OkxError as exc:
            if exc.code == "51001":
                raise ConfigError(f"--inst-id: {inst_id} is not an instrument OKX knows") from None
            raise _ExchangeUnreachable(f"cannot read the position {where}: {exc}") from None
        except (RequestNotSent, AmbiguousOutcome) as exc:
            raise _ExchangeUnreachable(f"cannot read the position {where}: {exc}") from None
    open_now = []
    for item in raw:
        try:
            p = parse_position(acc.name, item)
        except PayloadError:
            continue
        if p.inst_id == inst_id and p.pos_side == pos_side and p.pos != 0:
            open_now.append(p)
    if not open_now:
        raise ConfigError(f"no open position {where} on OKX now: nothing to record against")
    if open_now[0].c_time <= 0:
        raise ConfigError(f"OKX reports no cTime for {where}: pass --c-time")
    return open_now[0].c_time


def _maintenance_list(cfg: Config) -> int:
    ledger = _ledger(cfg)
    try:
        for rec in ledger.list_maintenance():
            print(
                json.dumps(
                    {
                        "id": rec.id,
                        "account": rec.account,
                        "instId": rec.inst_id,
                        "posSide": rec.pos_side,
                        "cTime": rec.c_time,
                        "key": rec.key,
                        "recorded_ms": rec.recorded_ms,
                    }
                )
            )
    finally:
        ledger.close()
    return 0


def _journal(cfg: Config, limit: int) -> int:
    ledger = _ledger(cfg)
    try:
        for e in ledger.journal(limit):
            print(
                json.dumps(
                    {
                        "id": e.id,
                        "account": e.account,
                        "instId": e.inst_id,
                        "posSide": e.pos_side,
                        "action": e.action,
                        "amount": e.amount,
                        "status": e.status,
                        "code": e.code,
                        "msg": e.msg,
                        "sent_ms": e.sent_ms,
                        "done_ms": e.done_ms,
                    }
                )
            )
    finally:
        ledger.close()
    return 0

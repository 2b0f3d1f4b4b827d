"""The ``reactor`` subcommands that read or write the ledger in the state dir: ``pause`` /
``resume`` / ``pauses``, ``maintenance record | void | list`` and ``journal``.

Each takes the loaded config and the parsed arguments and returns an exit code; bad input is
ConfigError or CliInputError (the CLI prints one line, exit 2). A running reactor sees what
these write within a ledger poll tick (``ledger_poll_ms``). The record/void/list rules
themselves are :mod:`reactor.cli.maintenance`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from reactor import log as logging_setup
from reactor.cli import maintenance as maintenance_cli
from reactor.cli.tables import iso, parse_since, render
from reactor.config import AccountConfig, Config, ConfigError
from reactor.store import JournalEntry, Ledger
from reactor.store.backend import open_configured
from reactor.store.state_dir import LEDGER_FILE, LOCK_FILE


def account_by_name(cfg: Config, name: str) -> AccountConfig:
    """The account called ``name``; an unknown name is one line, exit 2."""
    for acc in cfg.accounts:
        if acc.name == name:
            return acc
    raise ConfigError(f"--account: {name!r} is not an account in the config")


def pause(cfg: Config, args: argparse.Namespace) -> int:
    """Write the pause (or remove it) in the ledger; a running reactor applies it within a
    ledger poll tick (``ledger_poll_ms``), and it survives restarts."""
    acc = account_by_name(cfg, args.account)
    if (args.inst_id is None) != (args.pos_side is None):
        raise ConfigError("--inst-id and --pos-side: give both (one position) or neither")
    ledger = _ledger(cfg)
    log = logging_setup.get_logger("reactor.cli.main")
    fields = {"account": acc.name, "instId": args.inst_id, "posSide": args.pos_side}
    if reactor_holds(cfg) is False:  # on stderr: stdout stays the command's own log line
        print(
            f"reactor: warning: no running reactor holds state_dir {cfg.state_dir}; the "
            f"{args.command} applies when one starts with it (is -c the config it runs with?)",
            file=sys.stderr,
        )
    try:
        if args.command == "pause":
            new = ledger.pause(acc.name, args.inst_id, args.pos_side, args.reason, source="cli")
            log.info("control.paused" if new else "control.pause.duplicate", **fields, source="cli")
        else:
            gone = ledger.resume(acc.name, args.inst_id, args.pos_side)
            log.info(
                "control.resumed" if gone else "control.resume.not_paused", **fields, source="cli"
            )
    finally:
        ledger.close()
    return 0


def _filters(cfg: Config, args: argparse.Namespace) -> tuple[str | None, int | None]:
    """``--account`` (a name in the config: a typo is one line, exit 2, never an empty
    listing) and ``--since`` (epoch ms), for the commands that list the ledger."""
    account = getattr(args, "account", None)
    if account is not None:
        account = account_by_name(cfg, account).name
    since = getattr(args, "since", None)
    return account, None if since is None else parse_since(since, int(time.time() * 1000))


def pauses(cfg: Config, args: argparse.Namespace) -> int:
    """The pauses in force, oldest account first: a table, or JSON lines with ``--json``."""
    account, since = _filters(cfg, args)
    ledger = _existing_ledger(cfg)
    try:
        found = [
            p
            for p in ledger.pauses()
            if (account is None or p.account == account) and (since is None or p.paused_ms >= since)
        ]
    finally:
        ledger.close()
    if args.json:
        for p in found:
            print(json.dumps(p.to_json()))
        return 0
    rows = [
        (p.account, p.inst_id or "(account)", p.pos_side or "-", iso(p.paused_ms), p.source,
         p.reason or "-")
        for p in found
    ]  # fmt: skip
    print(render(("ACCOUNT", "INSTRUMENT", "SIDE", "PAUSED", "SOURCE", "REASON"), rows))
    return 0


def reactor_holds(cfg: Config) -> bool | None:
    """Whether a running reactor holds the state dir's lock (read from /proc/locks, so the
    check never takes the lock a starting reactor needs); None when it cannot be told."""
    lock = cfg.state_dir / LOCK_FILE
    try:
        st = lock.stat()
        table = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return False if not lock.exists() else None
    except OSError:
        return None
    for line in table.splitlines():
        parts = line.split()  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        # the inode alone: overlay file systems report another device than stat() does
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].endswith(f":{st.st_ino}"):
            return True
    return False


def _existing_ledger(cfg: Config) -> Ledger:
    """The configured ledger for a command that only reads it: a missing one is refused
    (a wrong config or state dir would otherwise show an empty, freshly created ledger; on
    PostgreSQL a database without the reactor's schema is refused the same way)."""
    if cfg.storage.kind == "postgres":
        return open_configured(cfg, existing=True)
    path = cfg.state_dir / LEDGER_FILE
    if not path.is_file():
        raise ConfigError(
            f"state_dir {cfg.state_dir}: no ledger ({LEDGER_FILE}); is this the state dir "
            "the reactor runs with?"
        )
    return open_configured(cfg)


def _ledger(cfg: Config) -> Ledger:
    """The configured ledger (the state dir's file, created when missing, or the PostgreSQL
    database of ``storage``), opened for one command."""
    return open_configured(cfg)


def maintenance_record(cfg: Config, args: argparse.Namespace) -> int:
    acc = account_by_name(cfg, args.account)
    if acc.role != "sub":
        raise ConfigError(f"--account: {acc.name} is the main account; it is never managed")
    if not args.key.strip():
        raise ConfigError("--key: must not be empty")
    if args.ord_id is not None and not args.ord_id.strip():
        raise ConfigError("--ord-id: must not be empty")
    log = logging_setup.get_logger("reactor.cli.main")
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
        rec = ledger.record(
            acc.name,
            args.inst_id,
            args.pos_side,
            args.key,
            source=args.source,
            c_time=c_time,
            ord_id=None if args.ord_id is None else args.ord_id.strip(),
        )
    finally:
        ledger.close()
    fields = {"account": acc.name, "instId": args.inst_id, "posSide": args.pos_side}
    if rec is None:
        log.info("maintenance.duplicate", **fields, key=args.key, source=args.source)
    else:
        log.info(
            "maintenance.recorded",
            **fields,
            key=args.key,
            source=args.source,
            record_id=rec.id,
            cTime=c_time,
        )
    return 0


def maintenance_void(cfg: Config, args: argparse.Namespace) -> int:
    if args.account is not None:
        account_by_name(cfg, args.account)  # an unknown name is one line, exit 2
    ledger = _ledger(cfg)
    try:
        maintenance_cli.void(ledger, args.key, account=args.account, reason=args.reason)
    finally:
        ledger.close()
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
    from reactor.okx.errors import AmbiguousOutcome, OkxError, RequestNotSent
    from reactor.okx.models import PayloadError, parse_position
    from reactor.service.accounts import configured_client

    if cfg.venue.embedded:
        raise ConfigError(
            "--c-time: required with the embedded simulator (its positions live inside the "
            "running reactor); pass the position's cTime"
        )
    creds = load_credentials(cfg, acc)
    rest_url, _ = cfg.venue.urls()
    where = f"{acc.name} {inst_id} {pos_side}"
    async with configured_client(cfg, rest_url, creds, acc.name) as client:
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


def maintenance_list(cfg: Config, args: argparse.Namespace) -> int:
    """Per position its count and sources, then (``--records``) every record: tables, or JSON
    lines with ``--json``. ``--since`` keeps the records recorded since then and the positions
    that have one."""
    account, since = _filters(cfg, args)
    ledger = _existing_ledger(cfg)
    try:
        counts, recs = maintenance_cli.listing(ledger, account=account, since_ms=since)
    finally:
        ledger.close()
    if args.json:
        for line in maintenance_cli.json_lines(counts, recs if args.records else []):
            print(line)
        return 0
    rows = [
        (pc.account, pc.inst_id, pc.pos_side,
         "(not tied)" if pc.c_time is None else iso(pc.c_time), str(pc.count),
         ", ".join(f"{k} {n}" for k, n in sorted(pc.sources.items())))
        for pc in counts
    ]  # fmt: skip
    print(render(("ACCOUNT", "INSTRUMENT", "SIDE", "POSITION OPENED", "COUNT", "SOURCES"), rows))
    if args.records:
        record_rows = [
            (str(r.id), iso(r.recorded_ms), r.account, r.inst_id, r.pos_side, iso(r.c_time),
             r.key, r.ord_id or "-", r.source,
             "-" if r.voided_ms is None else f"voided {iso(r.voided_ms)}")
            for r in recs
        ]  # fmt: skip
        head = ("ID", "RECORDED", "ACCOUNT", "INSTRUMENT", "SIDE", "POSITION OPENED", "KEY")
        print()
        print(render((*head, "ORDID", "SOURCE", "VOID"), record_rows))
    return 0


def journal(cfg: Config, args: argparse.Namespace) -> int:
    """The latest ``--limit`` calls, newest first (``--since``/``--account`` narrow them): a
    table with ISO times, or JSON lines with ``--json``."""
    if args.limit < 1:
        raise ConfigError(f"--limit: must be at least 1, not {args.limit}")
    account, since = _filters(cfg, args)
    ledger = _existing_ledger(cfg)
    try:
        if since is None and account is None:
            entries = ledger.journal(args.limit)
        else:  # the filters read the rows they select (retention bounds them), newest first
            entries = [
                e
                for e in reversed(ledger.journal_since(0 if since is None else since))
                if account is None or e.account == account
            ][: args.limit]
    finally:
        ledger.close()
    if args.json:
        for e in entries:
            print(json.dumps(_journal_json(e)))
        return 0
    rows = [
        (str(e.id), iso(e.sent_ms), e.account, e.inst_id, e.pos_side, e.action, e.amount,
         e.status, e.code or "-", iso(e.done_ms), e.bill_id or "-", e.msg or "")
        for e in entries
    ]  # fmt: skip
    head = ("ID", "SENT", "ACCOUNT", "INSTRUMENT", "SIDE", "ACTION", "AMOUNT", "STATUS", "CODE")
    print(render((*head, "DONE", "BILL", "MESSAGE"), rows))
    return 0


def _journal_json(e: JournalEntry) -> dict[str, object]:
    return {
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
        "bill_id": e.bill_id,
    }

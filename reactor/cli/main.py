"""``reactor`` command line: run, status, check-config, plan, pause/resume, sim, maintenance,
journal.

Argument parsing, dispatch and exit codes; the subcommands on the ledger (pause/resume,
maintenance, journal) are :mod:`reactor.cli.ledger`, ``run`` is :mod:`reactor.service.app`.

Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, CLI arguments) with one clear line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from reactor import log as logging_setup
from reactor.cli import db as db_cli
from reactor.cli import ledger as ledger_cli
from reactor.cli.maintenance import CliInputError
from reactor.config import Config, ConfigError, load_config, resolve_credentials
from reactor.store import LedgerError
from reactor.store.state_dir import StartupError

EXIT_BAD_INPUT = 2
CONFIG_ENV = "REACTOR_CONFIG"  # the default for -c/--config (a unit or a shell profile sets it)


def _version() -> str:
    """The installed version: from git tags (setuptools-scm), see pyproject.toml."""
    from reactor import __version__

    return __version__


def _add_config(p: argparse.ArgumentParser) -> None:
    """``-c/--config`` (default ``$REACTOR_CONFIG``) and the log flags: every command has both."""
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"config file (default: ${CONFIG_ENV})",
    )
    _add_log_flags(p)


def _add_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=logging_setup.LOG_FORMATS, help="overrides log.format")
    p.add_argument("--log-level", choices=logging_setup.LOG_LEVELS, help="overrides log.level")


def _add_position(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account", required=True)
    p.add_argument("--inst-id", default=None, help="one position (with --pos-side)")
    p.add_argument("--pos-side", default=None, choices=["long", "short", "net"])


_USAGE = """Keeps the isolated margin of OKX perpetual-swap positions at a target.

Start with `reactor check-config -c F --online`, then `reactor plan -c F`, then `reactor run`.
`reactor COMMAND --help` explains each command. Exit codes: 0 ok, 1 runtime failure, 2 bad
input (one line on stderr naming it)."""

_SINCE_HELP = (
    "only since then: an ISO 8601 time (2026-03-01T12:00Z; no zone means UTC) or a duration "
    "before now (90s, 15m, 2h, 3d, 1w)"
)


def _add_listing(p: argparse.ArgumentParser, what: str) -> None:
    """``--json``, ``--account`` and ``--since``: the same on every command that lists."""
    p.add_argument(
        "--json", action="store_true", help=f"one JSON object a line ({what}), for scripts"
    )
    p.add_argument("--account", default=None, help="only this account (a name in the config)")
    p.add_argument("--since", default=None, metavar="WHEN", help=_SINCE_HELP)


def _described(
    sub: Any, name: str, help_text: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it is for and shows examples."""
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reactor", description=_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the reactor")
    _add_config(run)
    run.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decide and log, never call margin-balance (overrides the dry_run config key)",
    )

    check = sub.add_parser("check-config", help="validate a config file and its credentials")
    _add_config(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also log in to every enabled account and check its API key's permissions",
    )

    st = sub.add_parser(
        "status",
        help="ask the running reactor what it sees now (its local status API)",
        description="Asks the running reactor (status.host:status.port, /api/status) for its "
        "health, what needs attention and every position; a table by default, --json for "
        "scripts. Times are ISO 8601 UTC. Exit 0 healthy or degraded, 1 down, 2 when no "
        "reactor answers.",
    )
    _add_config(st)
    st.add_argument("--json", action="store_true", help="the /api/status document, as JSON")
    st.add_argument("--account", default=None, help="only this account")

    plan = sub.add_parser("plan", help="read the positions once and print what would be done now")
    _add_config(plan)

    for verb, text in (("pause", "stop correcting"), ("resume", "correct again")):
        ctl = sub.add_parser(verb, help=f"{text} one account or one position (no restart)")
        _add_config(ctl)
        _add_position(ctl)
        if verb == "pause":
            ctl.add_argument("--reason", default="", help="shown on the status page")
    pauses = _described(
        sub,
        "pauses",
        "list paused accounts and positions",
        "Lists the pauses in force (`reactor pause`, the status page or POST /api/pause): who\n"
        "is paused, since when (ISO 8601 UTC), from where and why. A paused account or\n"
        "position gets no margin call until `reactor resume`.",
        "  reactor pauses -c F\n  reactor pauses -c F --account sub1 --since 1d\n"
        "  reactor pauses -c F --json",
    )
    _add_config(pauses)
    _add_listing(pauses, "the pause")

    sub.add_parser("sim", help="run the OKX v5 simulator", add_help=False)
    sub.add_parser("probe", help="reversible probe of one account (reactor probe -h)")

    maint = sub.add_parser("maintenance", help="the maintenance ledger")
    msub = maint.add_subparsers(dest="maint_command", required=True)
    rec = msub.add_parser("record", help="record one successful maintenance (idempotent)")
    _add_config(rec)
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
    rec.add_argument(
        "--ord-id", default=None, help="the OKX ordId: the same order is never counted twice"
    )
    rec.add_argument(
        "--source",
        default="cli",
        choices=["cli", "backfill"],
        help="cli (a manual fix) or backfill (from the desk's own records)",
    )
    lst = _described(
        msub,
        "list",
        "per-position counts and where the records came from",
        "Shows, per position, how many maintenances count against it and where they came\n"
        "from (fill, api, cli, backfill); --records also lists every record, voided ones\n"
        "included. Times are ISO 8601 UTC. --since keeps the records recorded since then\n"
        "and the positions that have one.",
        "  reactor maintenance list -c F\n"
        "  reactor maintenance list -c F --account sub1 --since 2h --records\n"
        "  reactor maintenance list -c F --json",
    )
    _add_config(lst)
    lst.add_argument("--records", action="store_true", help="also list every record")
    _add_listing(lst, "a position, then a record")
    void = msub.add_parser("void", help="undo one record (by key or ordId), with an audit entry")
    void.add_argument("key", metavar="KEY")
    _add_config(void)
    void.add_argument("--account", default=None, help="needed when KEY is in several accounts")
    void.add_argument("--reason", default="", help="why, kept in the audit entry")

    journal = _described(
        sub,
        "journal",
        "show the journal of exchange calls",
        "Shows the margin calls the reactor made, newest first: when sent and answered\n"
        "(ISO 8601 UTC), the amount, the status (pending: sent, no answer yet; ok; error with\n"
        "OKX's code; unknown: outcome never learned) and the OKX bill that credited it.",
        "  reactor journal -c F\n  reactor journal -c F --account sub1 --since 2h\n"
        "  reactor journal -c F --since 2026-03-01T00:00Z --limit 500 --json",
    )
    _add_config(journal)
    journal.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    _add_listing(journal, "the call")

    reload = sub.add_parser(
        "reload",
        help="reload the running reactor's config and wait for its answer (systemd ExecReload=)",
        description="Sends SIGHUP to the reactor holding the state dir and waits for the result:\n"
        "exit 0 applied, 1 refused (the reason on stderr) or no answer in time, 2 when no\n"
        "reactor runs. The units use it as ExecReload=, so `systemctl reload` fails on a\n"
        "refusal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(reload)
    reload.add_argument("--pid", type=int, default=None, help="expected pid ($MAINPID): checked")
    reload.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the answer (default 60)"
    )

    db_cli.add_parser(sub, _add_config)
    return p


def _fail(msg: str) -> int:
    print(f"reactor: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    env = os.environ.get(CONFIG_ENV, "")
    if not env:
        raise ConfigError(f"--config: required (or set {CONFIG_ENV})")
    return Path(env)


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
        path = _config_path(args)
        cfg = load_config(path)
        logging_setup.configure(
            getattr(args, "log_level", None) or cfg.log.level,
            getattr(args, "log_format", None) or cfg.log.format,
            repeat_interval_s=cfg.log.repeat_interval_s or None,
        )
        if args.command == "check-config":
            return _check_config(cfg, path, online=args.online)
        if args.command == "run":
            from reactor.service import app

            return asyncio.run(app.run(cfg, dry_run=args.dry_run, config_path=path))
        if args.command == "status":
            from reactor.cli.status import status_command

            return status_command(cfg, as_json=args.json, account=args.account)
        if args.command == "reload":
            from reactor.cli.reload import reload_command

            return reload_command(cfg, pid=args.pid, timeout_s=args.timeout)
        if args.command == "plan":
            from reactor.cli.plan import plan_command

            return plan_command(cfg)
        if args.command in ("pause", "resume"):
            return ledger_cli.pause(cfg, args)
        if args.command == "pauses":
            return ledger_cli.pauses(cfg, args)
        if args.command == "maintenance":
            if args.maint_command == "record":
                return ledger_cli.maintenance_record(cfg, args)
            if args.maint_command == "void":
                return ledger_cli.maintenance_void(cfg, args)
            return ledger_cli.maintenance_list(cfg, args)
        if args.command == "journal":
            return ledger_cli.journal(cfg, args)
        if args.command == "db":
            return db_cli.run(cfg, args)
    except (ConfigError, StartupError, LedgerError, CliInputError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return _fail(f"unknown command {args.command}")


def _check_config(cfg: Config, path: Path, *, online: bool = False) -> int:
    creds = None if cfg.venue.embedded else resolve_credentials(cfg)
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
                "dry_run": cfg.dry_run,
            }
        ),
        flush=True,
    )
    if not online:
        return 0
    if creds is None:
        raise ConfigError(
            "--online: the embedded simulator runs only inside `reactor run`; use a venue "
            "with URLs (an external `reactor sim`, demo or live)"
        )
    from reactor.cli.online_check import check_accounts

    rest_url, ws_url = cfg.venue.urls()
    results = asyncio.run(check_accounts(cfg, creds, rest_url, ws_url))
    failing = [r for r in results if r.problem is not None]
    if failing:
        names = "; ".join(f"{r.account}: {r.problem}" for r in failing)
        return _fail(f"{len(failing)} of {len(results)} accounts failed the online check: {names}")
    return 0

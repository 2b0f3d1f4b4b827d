"""``reactor db``: the ledger's upkeep for upgrades and retention - ``backup``, ``version`` and
``prune`` (docs/upgrading.md).

Each command takes the loaded config (for ``state_dir`` and ``journal.retention_days``) and the
parsed arguments and returns an exit code; bad input raises ConfigError or LedgerError (one
line, exit 2). None of them creates a ledger: a state dir without one is refused.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reactor import __version__
from reactor.config import Config, ConfigError
from reactor.store import SCHEMA_VERSION, SqliteLedger
from reactor.store.backend import migrate_configured
from reactor.store.backup import backup_ledger, read_schema_version
from reactor.store.state_dir import LEDGER_FILE

__all__ = ["add_parser", "run"]

_DAY_MS = 86_400_000


def add_parser(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``db`` group and its commands on the top-level parser."""
    db = sub.add_parser(
        "db", help="the ledger: schema migration, backup, schema version, journal retention"
    )
    dsub = db.add_subparsers(dest="db_command", required=True)
    migrate = dsub.add_parser("migrate", help="create or migrate the ledger schema, then exit")
    add_config(migrate)
    backup = dsub.add_parser(
        "backup", help="copy the ledger safely, even while the reactor runs (SQLite backup API)"
    )
    add_config(backup)
    backup.add_argument(
        "dest",
        metavar="DEST",
        type=Path,
        help="a new file, or a directory to put reactor-<version>-<UTC time>.sqlite in",
    )
    version = dsub.add_parser(
        "version", help="the ledger's schema version and this program's (read only)"
    )
    add_config(version)
    prune = dsub.add_parser(
        "prune", help="delete finished journal rows older than journal.retention_days"
    )
    add_config(prune)
    prune.add_argument(
        "--older-than-days",
        type=int,
        default=None,
        help="overrides journal.retention_days for this run (at least 1)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )


def run(cfg: Config, args: argparse.Namespace, *, clock: Callable[[], float] = time.time) -> int:
    if args.db_command == "migrate":
        return migrate(cfg)
    if cfg.storage.kind != "sqlite":
        raise ConfigError(
            f"reactor db {args.db_command}: storage.kind {cfg.storage.kind} - use the "
            "database's own tools (pg_dump, DELETE with care); this command reads a SQLite ledger"
        )
    ledger = cfg.state_dir / LEDGER_FILE
    if not ledger.is_file():
        raise ConfigError(
            f"state_dir {cfg.state_dir}: no ledger ({LEDGER_FILE}); is this the state dir "
            "the reactor runs with?"
        )
    if args.db_command == "backup":
        return _backup(ledger, args.dest, clock)
    if args.db_command == "version":
        return _version(ledger)
    return _prune(cfg, ledger, args, clock)


def migrate(cfg: Config) -> int:
    """``reactor db migrate``: the PostgreSQL schema brought to this version (``reactor run``
    does it too at start); a SQLite ledger is migrated whenever it is opened."""
    before, after = migrate_configured(cfg)
    if cfg.storage.kind == "postgres":
        print(f"ledger schema: version {before} -> {after}")
    else:
        print(f"ledger schema: {cfg.state_dir} (sqlite) is current")
    return 0


def _backup(ledger: Path, dest: Path, clock: Callable[[], float]) -> int:
    if dest.is_dir():
        stamp = datetime.fromtimestamp(clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = dest / f"reactor-{__version__}-{stamp}.sqlite"
    done = backup_ledger(ledger, dest)
    print(
        json.dumps(
            {
                "event": "db.backup.done",
                "ledger": str(ledger),
                "backup": str(done.path),
                "bytes": done.size,
                "schema": done.schema,
            }
        )
    )
    return 0


def _version(ledger: Path) -> int:
    found = read_schema_version(ledger)
    if found > SCHEMA_VERSION:
        state = "newer: refused by this version"
    elif found < SCHEMA_VERSION:
        state = "older: migrated in place when this version opens it"
    else:
        state = "current"
    print(
        json.dumps(
            {
                "ledger": str(ledger),
                "schema": found,
                "program_schema": SCHEMA_VERSION,
                "program_version": __version__,
                "state": state,
            }
        )
    )
    return 0


def _prune(cfg: Config, ledger: Path, args: argparse.Namespace, clock: Callable[[], float]) -> int:
    days = cfg.journal.retention_days if args.older_than_days is None else args.older_than_days
    if days < 1:
        raise ConfigError(f"--older-than-days: must be at least 1, not {days}")
    before_ms = int(clock() * 1000) - days * _DAY_MS
    db = SqliteLedger(ledger)
    try:
        n = db.prune_journal(before_ms, dry_run=args.dry_run)
    finally:
        db.close()
    before = datetime.fromtimestamp(before_ms / 1000, UTC).isoformat(timespec="seconds")
    print(
        json.dumps(
            {
                "event": "db.prune.dry_run" if args.dry_run else "db.prune.done",
                "ledger": str(ledger),
                "older_than_days": days,
                "before": before.replace("+00:00", "Z"),
                "rows": n,
            }
        )
    )
    return 0

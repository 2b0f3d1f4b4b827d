"""The configured ledger backend: ``storage.kind`` sqlite (the file in the state dir) or
postgres (the shared database). One opener for ``reactor run`` and the CLI commands."""

from __future__ import annotations

from reactor.config import Config
from reactor.store.db import LedgerUnavailable
from reactor.store.interface import Ledger
from reactor.store.sqlite import SqliteLedger
from reactor.store.state_dir import LEDGER_FILE

__all__ = ["ledger_exists", "migrate_configured", "open_configured"]


def open_configured(
    cfg: Config, *, busy_timeout_ms: int | None = None, existing: bool = False
) -> Ledger:
    """Open the configured ledger, creating or migrating its schema (``existing``: refuse a
    PostgreSQL database without the current schema instead); raises the ledger's one-line
    errors. Both backends implement :class:`reactor.store.Ledger` (tests/store runs the
    contract on both)."""
    if cfg.storage.kind == "postgres":
        from reactor.store.postgres import PostgresLedger

        assert cfg.storage.dsn is not None  # the config requires it
        return PostgresLedger(
            cfg.storage.dsn, timeout_s=cfg.storage.timeout_s, migrate_schema=not existing
        )
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.state_dir / LEDGER_FILE
    if busy_timeout_ms is None:
        return SqliteLedger(path)
    return SqliteLedger(path, busy_timeout_ms=busy_timeout_ms)


def ledger_exists(cfg: Config) -> bool:
    """Whether a ledger is there to read without creating one (a database always is)."""
    return cfg.storage.kind == "postgres" or (cfg.state_dir / LEDGER_FILE).exists()


def migrate_configured(cfg: Config) -> tuple[int, int]:
    """``reactor db migrate``: bring the PostgreSQL schema to this version; (before, after).
    A SQLite ledger migrates itself whenever it is opened."""
    if cfg.storage.kind != "postgres":
        open_configured(cfg).close()
        return (0, 0)
    import psycopg

    from reactor.store.postgres import connect_args, describe_dsn, migrate

    assert cfg.storage.dsn is not None
    try:
        with psycopg.connect(cfg.storage.dsn, **connect_args(cfg.storage.timeout_s)) as conn:
            return migrate(conn)
    except psycopg.Error as exc:
        text = " ".join(str(exc).split())[:200]
        raise LedgerUnavailable(
            f"ledger {describe_dsn(cfg.storage.dsn)}: {text}", "unreachable"
        ) from None

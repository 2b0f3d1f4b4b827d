"""A consistent copy of the ledger while the reactor may be writing it (``reactor db backup``).

Copying the file with ``cp`` can tear a write in progress and misses what still sits in the
``-wal`` file; SQLite's online backup API copies committed pages only, retrying pages another
connection changed meanwhile. The copy is written beside its destination and renamed into place,
so a crash never leaves half a backup under the final name.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from reactor.store.db import LedgerError, schema_version

__all__ = ["BackupResult", "backup_ledger", "read_schema_version"]


class BackupResult:
    """What was copied: the destination, its size and the schema version it carries."""

    def __init__(self, path: Path, size: int, schema: int) -> None:
        self.path = path
        self.size = size
        self.schema = schema


def _open_existing(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open an existing ledger without creating or migrating it (``mode=rw``: never a new file)."""
    if not path.is_file():
        raise LedgerError(f"ledger {path}: no such file")
    try:
        db = sqlite3.connect(
            f"file:{path}?mode=rw", uri=True, timeout=busy_timeout_ms / 1000, isolation_level=None
        )
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    except sqlite3.Error as exc:
        raise LedgerError(f"ledger {path}: cannot open: {exc}") from None
    return db


def read_schema_version(path: Path, *, busy_timeout_ms: int = 5000) -> int:
    """The schema version of the ledger at ``path``, read without migrating it."""
    db = _open_existing(path, busy_timeout_ms)
    try:
        return schema_version(db)
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"ledger {path}: not a usable SQLite database: {exc}") from None
    finally:
        db.close()


def backup_ledger(src: Path, dest: Path, *, busy_timeout_ms: int = 5000) -> BackupResult:
    """Copy the ledger at ``src`` to the new file ``dest`` (mode 0600) with SQLite's backup API.

    Refuses an existing ``dest`` (a backup is never overwritten) and checks the copy
    (``quick_check``) before renaming it into place.
    """
    if dest.exists():
        raise LedgerError(f"backup {dest}: already exists; choose a new name")
    if not dest.parent.is_dir():
        raise LedgerError(f"backup {dest}: no directory {dest.parent}")
    tmp = dest.with_name(f".{dest.name}.part")
    source = _open_existing(src, busy_timeout_ms)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            source.backup(target)
            # A self-contained file: a copy in WAL mode would need its -wal beside it.
            target.execute("PRAGMA journal_mode = DELETE")
            check = target.execute("PRAGMA quick_check(1)").fetchone()
            if check is None or check[0] != "ok":
                raise LedgerError(f"backup {dest}: the copy failed its check: {check}")
            schema = schema_version(target)
        finally:
            target.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, LedgerError):
            raise
        raise LedgerError(f"backup of ledger {src} to {dest} failed: {exc}") from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LedgerError(f"backup {dest}: {exc.strerror or exc}") from None
    finally:
        source.close()
    return BackupResult(dest, dest.stat().st_size, schema)

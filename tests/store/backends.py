"""Both ledger backends behind one fixture: the contract tests run on SQLite and PostgreSQL.

``open_ledger(**kw)`` opens one more connection to the SAME store (another process, the CLI):
on SQLite the file in the test's state dir, on PostgreSQL the test's fresh database. The
PostgreSQL case is skipped (or fails under CI=true) without PostgreSQL, like every PG test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reactor.store import Ledger, SqliteLedger

OpenLedger = Callable[..., Ledger]
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_ledger(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened: list[Any] = []
    if backend == "postgres":
        from reactor.store.postgres import PostgresLedger

        dsn = request.getfixturevalue("pg_dsn")

        def open_pg(**kw: Any) -> Any:
            led = PostgresLedger(dsn, **kw)
            opened.append(led)
            return led

        yield open_pg
    else:
        path = tmp_path / "state" / "ledger.sqlite3"

        def open_sqlite(**kw: Any) -> Ledger:
            led = SqliteLedger(path, **kw)
            opened.append(led)
            return led

        yield open_sqlite
    for led in opened:
        led.close()

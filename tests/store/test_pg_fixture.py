"""The PostgreSQL fixture itself: one cluster, a fresh empty database per test."""

from __future__ import annotations

import psycopg

from tests.store.pg import PgCluster


def test_fresh_database_is_empty_and_writable(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_each_test_gets_its_own_database(pg_cluster: PgCluster, pg_dsn: str) -> None:
    other = pg_cluster.create_database()
    try:
        assert other != pg_dsn
        with psycopg.connect(other, autocommit=True) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
    finally:
        pg_cluster.drop_database(other)

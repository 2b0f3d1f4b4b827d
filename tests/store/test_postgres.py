"""What only the PostgreSQL ledger has: a versioned schema, bounded calls against a frozen or
stopped server, and messages that never carry the DSN's secrets."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from reactor.store import LedgerUnavailable
from reactor.store.postgres import SCHEMA_VERSION, PostgresLedger, describe_dsn, migrate
from tests.store.pg import PgCluster


def _versions(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_schema_is_versioned_and_migrated_once(pg_dsn: str) -> None:
    with PostgresLedger(pg_dsn) as led:
        led.pause("sub1", reason="x")
    assert _versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)  # nothing to do twice
    with PostgresLedger(pg_dsn) as again:
        assert [p.account for p in again.pauses()] == ["sub1"]
    assert _versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))


def test_concurrent_starters_migrate_once(pg_dsn: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            PostgresLedger(pg_dsn).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))


def test_without_migrate_an_old_schema_is_refused(pg_dsn: str) -> None:
    with pytest.raises(LedgerUnavailable, match="reactor db migrate") as err:
        PostgresLedger(pg_dsn, migrate_schema=False)
    assert err.value.reason == "schema"


def test_a_newer_schema_is_refused(pg_dsn: str) -> None:
    PostgresLedger(pg_dsn).close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(Exception, match="newer than this reactor"):
        PostgresLedger(pg_dsn)


def test_unreachable_database_is_one_line_without_secrets() -> None:
    dsn = "host=/nonexistent-pg-dir port=5999 user=reactor dbname=x password=hunter22"
    started = time.monotonic()
    with pytest.raises(LedgerUnavailable) as err:
        PostgresLedger(dsn, timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert err.value.reason == "unreachable"
    assert "hunter22" not in str(err.value) and "\n" not in str(err.value)
    assert describe_dsn(dsn) == "postgres /nonexistent-pg-dir/x"
    assert describe_dsn("postgresql://me:hunter22@db.example:5432/reactor") == (
        "postgres db.example/reactor"
    )


def test_frozen_server_costs_one_bounded_call(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """A SIGSTOPped server still accepts on its socket (no TCP timer fires): the watchdog ends
    the call at ``timeout_s``; later calls fail at once until ``check()`` (the poll loop's
    probe, off the event loop) reaches the database again; nothing is left pending."""
    led = PostgresLedger(pg_dsn, timeout_s=0.5)
    try:
        led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
        pg_cluster.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable) as err:
                led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "2", "{}")
            took = time.monotonic() - started
            assert err.value.reason == "timeout"
            assert 0.4 < took < 0.9, took  # timeout_s, not more
            assert led.problem is err.value
            started = time.monotonic()
            for _ in range(20):  # what the engine would try meanwhile: no wait at all
                with pytest.raises(LedgerUnavailable):
                    led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "x", "{}")
            assert time.monotonic() - started < 0.05
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable):
                led.check()  # the probe: bounded too (libpq's connect_timeout, at least 2 s)
            assert time.monotonic() - started < 2.6
        finally:
            pg_cluster.thaw()
        led.check()  # the database is back: calls go through again
        assert led.problem is None
        entry = led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "3", "{}")
        assert entry > 0
        # "2" reached the frozen server, which may run it when it thaws: never "pending" (a
        # call of unknown outcome), it is closed as never sent.
        rows = [(e.amount, e.status) for e in led.journal()]
        assert ("3", "pending") in rows and ("1", "pending") in rows
        assert ("2", "pending") not in rows and ("x", "pending") not in rows
        for e in led.journal():
            if e.amount == "2":
                assert (e.status, e.msg) == ("error", "never sent: the intent write timed out")
    finally:
        led.close()


def test_a_slow_statement_is_cancelled_by_the_server(pg_dsn: str) -> None:
    with PostgresLedger(pg_dsn, timeout_s=0.3) as led:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable) as err:
            led._query("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 1.0
        assert err.value.reason == "timeout"
        assert led.pauses() == []  # the next call works


def test_an_intent_keeps_its_send_time_on_okx_clock(pg_dsn: str) -> None:
    """Migration 3: the journal's send time on OKX's clock (issue 21 item 5), None when not
    given (a row written by an older version: bills matched by today's offset)."""
    with PostgresLedger(pg_dsn) as led:
        with_okx = led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}", okx_ms=7)
        without = led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "2", "{}")
        assert led.journal_entry(with_okx).sent_okx_ms == 7  # type: ignore[union-attr]
        assert led.journal_entry(without).sent_okx_ms is None  # type: ignore[union-attr]
        assert [e.sent_okx_ms for e in led.journal_since(0)] == [7, None]


def test_a_refused_write_leaves_the_connection_usable(pg_dsn: str) -> None:
    """A rule's refusal (KeyError, ValueError) inside a call disarms its watchdog: the idle
    connection is not cut later, so the next call is not failed as unreachable."""
    with PostgresLedger(pg_dsn, timeout_s=0.2) as led:
        with pytest.raises(KeyError):
            led.void("sub1", "nope", actor="t", reason="r")
        entry = led.journal_intent("sub1", "BTC-USDT-SWAP", "long", "add", "1", "{}")
        led.journal_bill(entry, "b1")
        other = led.journal_intent("sub1", "BTC-USDT-SWAP", "long", "add", "1", "{}")
        with pytest.raises(ValueError):
            led.journal_bill(other, "b1")
        time.sleep(0.6)  # past watchdog_s(0.2)
        assert led.pause("sub1", reason="x") is True
        assert led.problem is None

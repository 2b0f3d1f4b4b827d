"""Leases with fencing on a real PostgreSQL: epochs, expiry by the database clock, a paused
holder losing to a standby, and the fence race (with and without FOR SHARE)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from reactor.store import Intent, LedgerUnavailable
from reactor.store.lease import LeaseStore, SignClock
from reactor.store.postgres import Fence, PostgresLedger, intent_sql

SCOPE = "shard:a"


@pytest.fixture
def store(pg_dsn: str) -> LeaseStore:
    s = LeaseStore(pg_dsn)
    s.ensure(SCOPE)
    yield s
    s.close()


def test_epoch_grows_on_every_grant(store: LeaseStore) -> None:
    assert store.acquire(SCOPE, "a", 0.2) == 1
    assert store.acquire(SCOPE, "b", 0.2) is None  # held: not granted
    assert store.renew(SCOPE, "a", 1, 0.2)
    assert not store.renew(SCOPE, "b", 1, 0.2)  # not the holder
    time.sleep(0.25)
    assert not store.renew(SCOPE, "a", 1, 0.2)  # expired: lost, never extended
    assert store.acquire(SCOPE, "b", 0.2) == 2
    time.sleep(0.25)
    assert store.acquire(SCOPE, "a", 5) == 3  # the same holder again: still a new epoch
    info = store.info(SCOPE)
    assert info is not None and (info.holder, info.epoch, info.held) == ("a", 3, True)


def test_release_lets_a_successor_in_at_once(store: LeaseStore) -> None:
    assert store.acquire(SCOPE, "a", 30) == 1
    assert store.release(SCOPE, "a", 1, 0)
    assert store.acquire(SCOPE, "b", 30) == 2
    assert not store.release(SCOPE, "a", 1, 0)  # a released lease cannot be released again


def test_a_paused_holder_loses_to_a_standby_after_the_ttl(pg_dsn: str, store: LeaseStore) -> None:
    """The holder stops renewing (a pause: GC, SIGSTOP, a frozen VM). Its connection stays
    open and healthy, which is why session-bound advisory locks never fail over here."""
    ttl = 1.0
    assert store.acquire(SCOPE, "leader", ttl) == 1
    standby = LeaseStore(pg_dsn)
    try:
        started = time.monotonic()
        epoch = None
        while epoch is None and time.monotonic() - started < 3 * ttl:
            epoch = standby.acquire(SCOPE, "standby", ttl)
            time.sleep(0.05)
        took = time.monotonic() - started
        assert epoch == 2
        assert ttl - 0.1 <= took <= ttl + 0.5, took
        # The leader resumes: its renewal returns no row, it has lost.
        assert not store.renew(SCOPE, "leader", 1, ttl)
    finally:
        standby.close()


def test_fenced_intent_commits_only_under_the_held_lease(pg_dsn: str, store: LeaseStore) -> None:
    led = PostgresLedger(pg_dsn)
    try:
        led.fence = Fence(SCOPE, "a", 1)
        with pytest.raises(LedgerUnavailable) as err:  # not granted yet
            led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
        assert err.value.reason == "fenced"
        assert store.acquire(SCOPE, "a", 0.3) == 1
        first = led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", "{}")
        time.sleep(0.35)  # expired by the database's clock
        with pytest.raises(LedgerUnavailable, match="fenced"):
            led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "2", "{}")
        assert store.acquire(SCOPE, "b", 5) == 2
        led.fence = Fence(SCOPE, "b", 2)
        second = led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "3", "{}")
        assert led.journal_epochs() == [(first, SCOPE, 1), (second, SCOPE, 2)]
        # A batch (a push's corrections, issue 18) is fenced as a whole: none, or all of it.
        batch = [Intent("sub1", inst, "long", "add", "1", "{}") for inst in ("A", "B", "C")]
        ids = led.journal_intents(batch)
        assert led.journal_epochs()[-3:] == [(i, SCOPE, 2) for i in ids]
        led.fence = Fence(SCOPE, "b", 1)  # a stale epoch
        with pytest.raises(LedgerUnavailable, match="fenced"):
            led.journal_intents(batch)
        assert len(led.journal_epochs()) == 5
    finally:
        led.close()


def test_sign_clock_stops_window_plus_margin_before_expiry() -> None:
    now = [100.0]
    clock = SignClock(3.0, 1.5, 0.25, clock=lambda: now[0])
    assert not clock.may_sign()  # nothing granted
    clock.granted(100.0)
    assert clock.deadline == pytest.approx(101.25)
    now[0] = 101.2
    assert clock.may_sign() and clock.last_signed == 101.2
    assert clock.hold_after_release_s() == pytest.approx(1.75)
    now[0] = 101.25
    assert not clock.may_sign()
    clock.granted(101.0)
    assert clock.may_sign()
    clock.revoke()
    assert not clock.may_sign()
    now[0] = 200.0
    assert clock.hold_after_release_s() == 0.0


# --- the fence race ---------------------------------------------------------------------------


def _race(
    pg_dsn: str, sql: str, *, rows: int = 1, writers: int = 8, takeovers: int = 200
) -> tuple[int, int]:
    """``writers`` threads write fenced intents for the epoch they believe they hold while a
    takeover thread grants new epochs. Returns (intents committed, intents of an old epoch
    committed after the grant of a newer one).

    Detection: right after each grant of epoch N+1 commits, count the rows of epochs <= N; any
    such row counted later committed after the grant. A trigger sleeps up to 1 ms inside each
    insert, between its read of the lease row and its commit, to widen the window a real
    scheduler opens now and then."""
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_sleep(random() * 0.001); RETURN NEW; END $$"
        )
        admin.execute(
            "CREATE TRIGGER slow BEFORE INSERT ON journal FOR EACH ROW EXECUTE FUNCTION slow()"
        )
        admin.execute(
            "UPDATE lease SET holder = 'n0', epoch = 1, expires_at = clock_timestamp()"
            " + interval '1 hour' WHERE name = %s",
            (SCOPE,),
        )
    current = [1]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                i = 0
                while not stop.is_set():
                    epoch = current[0]
                    i += 1
                    fence = (SCOPE, f"n{epoch - 1}", epoch)
                    row = ("sub1", "X", "long", "add", "1", "{}", i, None, None)
                    conn.execute(sql, (*row * rows, *fence))
                    # A breath between writes: back to back, 8 share-lockers can keep the
                    # takeover's UPDATE waiting for long (PostgreSQL favours no one here).
                    time.sleep(0.0005)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    before_grant: dict[int, int] = {}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for _ in range(takeovers):
            time.sleep(0.002)
            old = current[0]
            row = conn.execute(
                "UPDATE lease SET holder = %s, epoch = epoch + 1, expires_at ="
                " clock_timestamp() + interval '1 hour' WHERE name = %s RETURNING epoch",
                (f"n{old}", SCOPE),
            ).fetchone()
            assert row is not None
            current[0] = int(row[0])
            counted = conn.execute(
                "SELECT count(*) FROM journal WHERE epoch <= %s", (old,)
            ).fetchone()
            assert counted is not None
            before_grant[old] = int(counted[0])
        time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        total = conn.execute("SELECT count(*) FROM journal").fetchone()
        late = 0
        for old, counted_then in before_grant.items():
            now = conn.execute("SELECT count(*) FROM journal WHERE epoch <= %s", (old,)).fetchone()
            assert now is not None
            late = max(late, int(now[0]) - counted_then)
    assert total is not None
    return int(total[0]), late


@pytest.mark.parametrize(("rows", "writers"), [(1, 8), (3, 2)])
def test_fence_race_no_old_epoch_intent_after_a_takeover(
    pg_dsn: str, store: LeaseStore, rows: int, writers: int
) -> None:
    """``rows``: intents per statement (a push's corrections journal in one, issue 18). With
    three rows a statement holds its share lock three times as long (the trigger's sleep is
    per row): fewer writers, or the takeovers starve."""
    sql = intent_sql(rows, fenced=True)
    committed, stale = _race(pg_dsn, sql, rows=rows, writers=writers)
    assert committed > 1000  # the writers did race the takeovers
    assert stale == 0


@pytest.mark.parametrize(("rows", "writers"), [(1, 8), (3, 2)])
def test_fence_race_without_for_share_lets_stale_intents_in(
    pg_dsn: str, store: LeaseStore, rows: int, writers: int
) -> None:
    """The same race without FOR SHARE OF l: proof that the test above can fail."""
    fenced = intent_sql(rows, fenced=True)
    assert " FOR SHARE OF l" in fenced
    sql = fenced.replace(" FOR SHARE OF l", "")
    committed, stale = _race(pg_dsn, sql, rows=rows, writers=writers)
    assert committed > 300  # the takeovers, unhindered, end the race sooner
    assert stale > 0


def test_an_account_belongs_to_one_scope(store: LeaseStore) -> None:
    """Sharding: the database knows every scope's accounts; a second scope listing one of them
    is told which, and a scope that drops an account frees it for another."""
    assert store.claim("shard:a", ["a1", "a2"]) == {}
    assert store.claim("shard:a", ["a1", "a2"]) == {}  # every host of the shard claims again
    assert store.claim("shard:b", ["b1", "a2"]) == {"a2": "shard:a"}
    assert store.claim("shard:a", ["a1"]) == {}  # a2 moves: shard a lets it go first
    assert store.claim("shard:b", ["b1", "a2"]) == {}
    assert store.claim("shard:a", ["a1", "a2"]) == {"a2": "shard:b"}

"""High availability on PostgreSQL (issue 17): what the lease and its fence cost.

- the fenced journal intent (ONE ``INSERT ... SELECT ... FOR SHARE``) against a plain intent
  on the same database and today's SQLite intent: p50/p99 per call, as the engine makes it
  (synchronous, every call bounded);
- renewing 1,000 leases in one statement (sharding: one instance renews all its scopes);
- takeover after the holder stalls (stops renewing: a SIGSTOP, a partition or a SIGKILL look
  the same to the database), measured at scaled timings (TTL 3 s, standby poll 0.25 s) and
  computed at production settings (TTL 45 s, poll 1 s).

A throwaway cluster (``tests/store/pg.py``) with fsync and synchronous commit ON, unix socket.
``python -m bench.ha [--quick]`` prints the JSON; ``python -m bench --only ha`` records it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import dist_ms

PRODUCTION_TTL_S, PRODUCTION_POLL_S = 45.0, 1.0
SCALED_TTL_S, SCALED_POLL_S = 3.0, 0.25


def _intents(led: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        led.journal_intent("sub1", "CRO-USDT-SWAP", "long", "add", "1", f'{{"n":{i}}}')
        out.append(time.perf_counter() - t0)
    return out


def _takeover(dsn: str, runs: int) -> list[float]:
    """The holder renews once, then stalls; the standby polls: time from the last renewal
    to the standby's grant."""
    from reactor.store.lease import LeaseStore

    holder, standby = LeaseStore(dsn), LeaseStore(dsn)
    out = []
    try:
        for r in range(runs):
            scope = f"takeover:{r}"
            holder.ensure(scope)
            assert holder.acquire(scope, "holder", SCALED_TTL_S) == 1
            assert holder.renew(scope, "holder", 1, SCALED_TTL_S)
            stalled = time.monotonic()
            while standby.acquire(scope, "standby", SCALED_TTL_S) is None:
                time.sleep(SCALED_POLL_S)
            out.append(time.monotonic() - stalled)
    finally:
        holder.close()
        standby.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    import psycopg

    from reactor.store import SqliteLedger
    from reactor.store.lease import RENEW_ALL_SQL, LeaseStore
    from reactor.store.postgres import Fence, PostgresLedger
    from tests.store.pg import PgCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        return {"skipped": "PostgreSQL binaries not found (apt-get install postgresql)"}
    n = 200 if quick else 1000
    cluster = PgCluster(bin_dir)
    cluster.start(durable=True)
    try:
        dsn = cluster.create_database()
        store = LeaseStore(dsn)
        store.ensure("shard:a")
        epoch = store.acquire("shard:a", "me", 3600)
        assert epoch is not None
        with PostgresLedger(dsn) as led:
            _intents(led, 50)  # warm
            plain = _intents(led, n)
            led.fence = Fence("shard:a", "me", epoch)
            fenced = _intents(led, n)
        with (
            tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp,
            SqliteLedger(Path(tmp) / "ledger.sqlite3") as sq,
        ):
            _intents(sq, 50)
            sqlite = _intents(sq, n)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO lease (name, holder, epoch, expires_at) SELECT 'acct:' || g, 'many',"
                " 1, clock_timestamp() + interval '1 hour' FROM generate_series(1, 1000) g"
            )
            for _ in range(10):  # warm: plans, caches
                conn.execute(RENEW_ALL_SQL, (3600, "many")).fetchall()
            renew = []
            for _ in range(100 if quick else 500):
                t0 = time.perf_counter()
                rows = conn.execute(RENEW_ALL_SQL, (3600, "many")).fetchall()
                renew.append(time.perf_counter() - t0)
                assert len(rows) == 1000
        store.close()
        takeover = _takeover(dsn, 2 if quick else 5)
    finally:
        cluster.stop()
    return {
        "setup": "local PostgreSQL, unix socket, fsync + synchronous_commit on",
        "intent_sqlite": dist_ms(sqlite),
        "intent_plain": dist_ms(plain),
        "intent_fenced": dist_ms(fenced),
        "renew_1000_leases": dist_ms(renew),
        "takeover_scaled_s": {
            "ttl_s": SCALED_TTL_S,
            "poll_s": SCALED_POLL_S,
            "runs": [round(t, 3) for t in takeover],
            "max": round(max(takeover), 3),
        },
        # A stalled or killed holder: the lease expires TTL after its last renewal, then the
        # standby's next poll, then one REST snapshot before it acts.
        "takeover_production_s": {
            "ttl_s": PRODUCTION_TTL_S,
            "poll_s": PRODUCTION_POLL_S,
            "bound_s": PRODUCTION_TTL_S + PRODUCTION_POLL_S,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.ha", description=__doc__)
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(ap.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()

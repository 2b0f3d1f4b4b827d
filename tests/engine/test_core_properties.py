"""Properties of the core under random pushes, answers, failures and time (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.engine.calls import OK
from reactor.engine.commands import SendMarginCall, WriteIntent
from tests.domain.factories import D

from .core_driver import NOT_SENT, UNKNOWN, Driver, cro, doge, driver, rejected

OUTCOMES = [OK, OK, OK, UNKNOWN, NOT_SENT] + [
    rejected(c) for c in ("59301", "50013", "51000", "59200", "50102", "50020")
]
LIMIT = D("200")

op = st.one_of(
    st.tuples(st.just("push"), st.sampled_from(["cro", "doge"]), st.integers(50, 6000)),
    st.tuples(st.just("size"), st.sampled_from(["cro", "doge"]), st.integers(1, 3)),
    st.tuples(st.just("answer"), st.integers(0, len(OUTCOMES) - 1), st.integers(0, 1)),
    st.tuples(st.just("resolve"), st.booleans(), st.just(0)),
    st.tuples(st.just("advance"), st.integers(0, 20_000), st.just(0)),
    st.tuples(st.just("journal"), st.booleans(), st.just(0)),
    st.tuples(st.just("crash"), st.integers(0, 1), st.just(0)),
    st.tuples(st.just("drop"), st.just(0), st.just(0)),
    st.tuples(st.just("reconnect"), st.just(0), st.just(0)),
)


def _check(d: Driver) -> None:
    # Never two calls in flight for one position.
    keys = [c.key for c in d.sent]
    assert len(keys) == len(set(keys))
    # Never a call without a prior durable intent of the same call and journal id.
    intents: dict[int, int] = {}
    for i, cmd in enumerate(d.history):
        if isinstance(cmd, WriteIntent) and cmd.call in d.intent_ids:
            intents.setdefault(cmd.call, i)
        if isinstance(cmd, SendMarginCall):
            assert cmd.call in intents and intents[cmd.call] < i
            assert d.intent_ids[cmd.call] == cmd.journal_id
    # Nothing in flight without something outstanding that will answer it.
    waiting = {c.key for c in d.sent} | {r.key for r in d.resolves} | {c.key for c in d.checks}
    for key in d.core.in_flight():
        assert key in waiting, key
    # The runaway guard's ceiling holds for what may have moved.
    refunded = {c.call for c, outcome in d.answered if outcome.moved_nothing}
    moved = sum((c.amount for c in d.all_sent if c.call not in refunded), Decimal(0))
    assert moved <= LIMIT or d.core.accounts["sub1"].guard_tripped


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=40))
def test_random_histories_keep_the_invariants(ops: list[tuple[str, object, object]]) -> None:
    d = driver(cooldown_s=2.0, retry_max_s=30.0, max_moved_per_hour=LIMIT)
    u = {"cro": cro().u_time, "doge": cro().u_time}
    size = {"cro": D("108"), "doge": D("3")}
    make = {"cro": cro, "doge": doge}
    d.snapshot(cro(), doge())
    _check(d)
    crashed: list[SendMarginCall] = []
    stale_since: int | None = None  # len(all_sent) when the stream broke
    for name, a, b in ops:
        if name == "push":
            assert isinstance(a, str) and isinstance(b, int)
            u[a] += 1
            d.push(make[a](margin=Decimal(b) / 100, pos=size[a], u_time=u[a]))
        elif name == "size":
            assert isinstance(a, str) and isinstance(b, int)
            u[a] += 1
            size[a] = size[a] + b
            held = d.core.book.get(make[a]().key)
            margin = held.margin if held is not None else D("20")
            d.push(make[a](margin=margin, pos=size[a], u_time=u[a]))
        elif name == "answer" and d.sent:
            assert isinstance(a, int) and isinstance(b, int)
            d.answer(OUTCOMES[a], index=min(b, len(d.sent) - 1))
        elif name == "resolve" and d.resolves:
            key = d.resolves[0].key
            held = d.core.book.get(key)
            d.resolve(*([held] if held is not None and a else []))
        elif name == "advance":
            assert isinstance(a, int)
            d.advance(a / 1000)
        elif name == "journal":
            d.journal_error = "database is locked" if a else None
        elif name == "crash" and d.sent:
            cmd = d.sent.pop(0)
            crashed.append(cmd)
            d.feed(d.core.on_task_failed(cmd, "RuntimeError: boom", now=d.now))
        elif name == "drop":
            d.feed(d.core.on_disconnected("sub1", "drop", now=d.now))
            stale_since = len(d.all_sent) if stale_since is None else stale_since
        elif name == "reconnect":
            d.snapshot(*d.core.book.positions("sub1"))
            stale_since = None
        if stale_since is not None:  # never a call from a stale book
            assert len(d.all_sent) == stale_since
        _check(d)
    # Storage back, every question answered, time passes: still nothing stuck.
    d.journal_error = None
    for _ in range(5):
        while d.sent:
            d.answer(OK)
        while d.resolves:
            key = d.resolves[0].key
            held = d.core.book.get(key)
            d.resolve(*([held] if held is not None else []))
        d.advance(60.0)
        _check(d)


@given(
    st.floats(0.1, 10),
    st.floats(1, 600),
    st.floats(0, 1),
    st.integers(1, 40),
)
def test_backoff_grows_and_stays_under_its_cap(
    base: float, cap: float, rand: float, failures: int
) -> None:
    from reactor.backoff import Backoff
    from reactor.engine.timing import JITTER, MAX_EXPONENT

    b = Backoff(base, cap, JITTER, max_exponent=MAX_EXPONENT)
    now, after = b.delay(failures, lambda: rand), b.delay(failures + 1, lambda: rand)
    assert 0 < now <= after <= max(cap, 0)
    assert now >= 0.75 * min(cap, base)


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5000), st.integers(0, 600)), max_size=60)
)
def test_guard_never_lets_a_window_pass_its_limits(
    steps: list[tuple[int, int, int]],
) -> None:
    from reactor.engine.guard import HOUR_S, RunawayGuard, Verdict

    keys = [("a", f"I{i}-USDT-SWAP", "long", "isolated") for i in range(3)]
    guard = RunawayGuard(D("100"), D("40"))
    now = 0.0
    allowed: list[tuple[float, Decimal, tuple[str, str, str, str]]] = []
    for k, cents, dt in steps:
        now += dt
        amount = Decimal(cents) / 100
        if guard.check(keys[k], amount, now).verdict is Verdict.ALLOW:
            allowed.append((now, amount, keys[k]))
        window = [(t, a, key) for t, a, key in allowed if now - t <= HOUR_S]
        assert sum((a for _, a, _ in window), Decimal(0)) <= D("100")
        for key in keys:
            assert sum((a for _, a, kk in window if kk == key), Decimal(0)) <= D("40")

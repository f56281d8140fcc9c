"""The refresher on its own: windows, single flight, static stability, retries, backoff,
error memory, invalidation, cancellation, deadlines, event loops, fork.

Time is driven by hand (``ManualClock``: wall clock, monotonic clock and sleep); only the
tests of several event loops and of fork use real time, with generous bounds that a
correct engine meets by orders of magnitude.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
import weakref
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib._refresh import (
    ErrorKind,
    Refresher,
    RefreshStats,
    RefreshTimeoutError,
    UnusableCredentialsError,
)

from ._manual_clock import ManualClock, settle
from .conftest import HANG_SECONDS, HAS_TRIO

pytestmark = pytest.mark.anyio

BACKENDS = ["asyncio", "trio"] if HAS_TRIO else ["asyncio"]

# Tasks a test deliberately leaves behind in a loop it stops (asyncio holds them weakly).
left_running: set[asyncio.Future[Any]] = set()


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Transient(Exception):
    pass


class Denied(Exception):
    pass


def classify(error: BaseException) -> ErrorKind:
    if isinstance(error, Transient):
        return "transient"
    if isinstance(error, Denied):
        return "non_recoverable"
    return "failed"


class Loader:
    """Issues values 1, 2, 3... valid for ``lifetime`` seconds; can block, fail or hang."""

    def __init__(self, clock: ManualClock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.issued = 0
        self.gate: anyio.Event | None = None
        self.fail_with: list[BaseException] = []
        self.down = False  # every call fails with Transient while set
        self.expiry_override: float | None = None
        self.cancelled = 0

    async def __call__(self) -> tuple[int, float]:
        self.calls += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        if self.fail_with:
            raise self.fail_with.pop(0)
        if self.down:
            raise Transient("source is down")
        self.issued += 1
        expiry = self.expiry_override
        return self.issued, (self.clock.wall() + self.lifetime) if expiry is None else expiry


def make(
    lifetime: float = 3600.0, rand: float = 0.0, **kwargs: Any
) -> tuple[ManualClock, Loader, Refresher[int]]:
    clock = ManualClock()
    loader = Loader(clock, lifetime)
    refresher: Refresher[int] = Refresher(
        loader,
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: rand,
        classify_error=classify,
        key_of=lambda value: value,
        **kwargs,
    )
    return clock, loader, refresher


# --- the windows (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "advisory", "blocking"),
    [
        (6.0, 1.2, 0.6),  # a test's credentials: used 80% of their life first
        (60.0, 12.0, 6.0),
        (600.0, 300.0, 60.0),  # the AWS tiers from here on
        (900.0, 300.0, 60.0),
        (1230.0, 900.0, 60.0),
        (3600.0, 900.0, 60.0),
        (21600.0, 3600.0, 60.0),
        (43200.0, 3600.0, 60.0),
    ],
)
def test_windows_follow_the_lifetime_tiers_capped_for_short_lifetimes(
    lifetime: float, advisory: float, blocking: float
) -> None:
    policy = RefreshPolicy()
    assert policy.advisory_window(lifetime) == pytest.approx(advisory)
    assert policy.blocking_window(lifetime) == pytest.approx(blocking)
    expiry = 10_000.0 + lifetime
    advisory_at, blocking_at = policy.windows(10_000.0, expiry, rand=0.0)
    assert (expiry - advisory_at, expiry - blocking_at) == pytest.approx((advisory, blocking))
    # Jitter moves the advisory start later, never into the blocking window.
    late, _ = policy.windows(10_000.0, expiry, rand=0.999)
    assert advisory_at < late < blocking_at


def test_a_configured_advisory_window_overrides_the_tiers() -> None:
    assert RefreshPolicy(advisory_window_seconds=1800).advisory_window(21600) == 1800


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jitter_fraction": -1}, "jitter_fraction must be a finite number >= 0"),
        ({"jitter_fraction": "x"}, "jitter_fraction must be a number, not str"),
        ({"jitter_fraction": 1}, "jitter_fraction must be < 1"),
        ({"attempt_timeout_seconds": 0}, "attempt_timeout_seconds must be > 0"),
        ({"max_tries": 0}, "max_tries must be a whole number >= 1"),
        ({"backoff_min_seconds": 5, "backoff_max_seconds": 1}, "backoff_min_seconds"),
        ({"error_memory_min_seconds": 9}, "error_memory_min_seconds must be <="),
        ({"advisory_window_seconds": math.inf}, "advisory_window_seconds must be a finite"),
    ],
)
def test_policy_rejects_bad_settings_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="Invalid RefreshPolicy") as info:
        RefreshPolicy(**kwargs)
    assert message in str(info.value)


def test_backoff_doubles_from_the_minimum_up_to_backoff_max_seconds() -> None:
    policy = RefreshPolicy()  # 2 s, doubling, at most 300 s
    twelve_hours = 43_200.0  # neither the lifetime nor the time left caps it here
    ceilings = [policy.backoff(n, twelve_hours, twelve_hours, rand=1.0) for n in range(1, 12)]
    assert ceilings == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert policy.backoff(3, twelve_hours, twelve_hours, rand=0.0) == 4.0  # equal jitter
    assert RefreshPolicy(backoff_max_seconds=20).backoff(9, twelve_hours, twelve_hours, 1.0) == 20


def test_backoff_is_capped_by_the_lifetime_and_half_the_time_left() -> None:
    policy = RefreshPolicy()
    assert policy.backoff(20, 3600.0, 3600.0, rand=1.0) == 180.0  # 5 % of the lifetime
    assert policy.backoff(20, 3600.0, 100.0, rand=1.0) == 50.0  # half of the 100 s left
    assert policy.backoff(20, 3600.0, 3.0, rand=1.0) == 2.0  # never below the minimum
    assert policy.backoff(20, 3600.0, -1.0, rand=1.0) == 4.0  # expired: 2 to 4 s
    assert policy.backoff(20, None, None, rand=0.0) == 2.0  # nothing cached: 2 to 4 s


# --- fresh, advisory, blocking -----------------------------------------------------------


async def test_first_use_loads_once_for_all_concurrent_callers() -> None:
    _, loader, refresher = make()
    loader.gate = anyio.Event()
    results: list[int] = []

    async def use() -> None:
        results.append(await refresher.get())

    async with anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(use)
        await settle()
        loader.gate.set()
    assert loader.calls == 1
    assert results == [1] * 1000
    assert refresher.stats.waits == 1000


async def test_advisory_window_refreshes_in_background_without_waiting() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 - 600)  # 1 h credentials: advisory window is the last 15 min
    loader.gate = anyio.Event()
    assert [await refresher.get() for _ in range(100)] == [1] * 100  # nobody waits
    await settle()
    assert loader.calls == 2  # exactly one background refresh
    loader.gate.set()
    await settle()
    assert await refresher.get() == 2
    assert refresher.stats.advisory_refreshes == 1
    assert refresher.stats.waits == 1  # only the very first load was waited for


async def test_jitter_moves_the_start_of_the_advisory_window() -> None:
    # With the most jitter, the advisory window of 1 h credentials starts 15 min - 420 s
    # before expiry (half of the 840 s between the windows): not yet 14 min before.
    clock, loader, refresher = make(rand=0.999)
    await refresher.get()
    await clock.advance(3600 - 840)
    assert await refresher.get() == 1
    await settle()
    assert loader.calls == 1, "refreshed at the earliest start, ignoring the jitter"
    await clock.advance(420)
    await refresher.get()
    await settle()
    assert loader.calls == 2


async def test_blocking_window_waits_for_one_refresh() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 - 30)
    loader.gate = anyio.Event()
    results: list[int] = []

    async def use() -> None:
        results.append(await refresher.get())

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(use)
        await settle()
        assert results == []  # they wait
        loader.gate.set()
    assert results == [2] * 200
    assert loader.calls == 2


# --- static stability ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds_left", [30.0, -120.0], ids=["blocking", "expired"])
async def test_a_failed_refresh_serves_the_cached_value_to_every_waiter(
    seconds_left: float, caplog: pytest.LogCaptureFixture
) -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 - seconds_left)
    loader.down = True
    with caplog.at_level(logging.WARNING, "aio_assume_role_lib.refresh"):
        results = []
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(lambda: _append(results, refresher.get()))
            await clock.advance(1)  # through the pauses between tries (0.25 s, 0.5 s)
    assert results == [1] * 50
    assert loader.calls == 1 + 3  # one refresh, three tries, for 50 waiters
    assert refresher.stats.failures == 1
    (record,) = [r for r in caplog.records if r.refresh_event == "failure"]  # type: ignore[attr-defined]
    assert record.levelno == (logging.ERROR if seconds_left < 0 else logging.WARNING)
    assert record.error_code == "Transient"  # type: ignore[attr-defined]
    # During the backoff, callers get the cached value at once, without a new try.
    assert [await refresher.get() for _ in range(20)] == [1] * 20
    assert loader.calls == 4
    assert refresher.stats.served_stale >= 20


async def _append(results: list[Any], awaitable: Any) -> None:
    results.append(await awaitable)


async def test_with_nothing_cached_every_waiter_gets_its_own_copy_of_the_error() -> None:
    _clock, loader, refresher = make(policy=RefreshPolicy(max_tries=1))
    loader.gate = anyio.Event()
    loader.fail_with = [Transient("sts is down")]
    errors: list[BaseException] = []

    async def use() -> None:
        try:
            await refresher.get()
        except Transient as error:
            errors.append(error)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(use)
        await settle()
        loader.gate.set()
    assert len(errors) == 20
    assert len({id(e) for e in errors}) == 20  # nobody shares an exception object
    assert {str(e) for e in errors} == {"sts is down"}
    errors[0].add_note("request 1's private detail")
    with pytest.raises(Transient) as again:
        await refresher.get()
    assert not getattr(again.value, "__notes__", None)
    assert again.value.__context__ is None
    assert loader.calls == 1


async def test_tracebacks_do_not_grow_with_each_caller() -> None:
    _clock, loader, refresher = make()
    loader.fail_with = [Denied("AccessDenied")]
    depths = []
    for _ in range(30):
        try:
            await refresher.get()
        except Denied as error:
            depths.append(len(traceback.extract_tb(error.__traceback__)))
    # The first caller waited on the flight; every later one got a remembered error.
    assert len(set(depths[1:])) == 1


# --- retries inside one refresh --------------------------------------------------------------


async def test_transient_errors_are_retried_inside_the_refresh() -> None:
    clock, loader, refresher = make()
    loader.fail_with = [Transient("Throttling"), Transient("500")]
    results: list[int] = []
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(lambda: _append(results, refresher.get()))
        await clock.advance(5)
    assert results == [1] * 100
    assert loader.calls == 3
    assert refresher.stats.attempts == 1
    assert refresher.stats.tries == 3


async def test_retries_stop_after_max_tries_and_the_pauses_are_jittered() -> None:
    clock, loader, refresher = make(rand=1.0)
    loader.down = True
    tried_at: list[float] = []
    original = loader.__call__

    async def noting() -> tuple[int, float]:
        tried_at.append(clock.monotonic())
        return await original()

    refresher._load = noting
    async with anyio.create_task_group() as tg:

        async def use() -> None:
            with pytest.raises(Transient):
                await refresher.get()

        tg.start_soon(use)
        await clock.advance(10)
    assert len(tried_at) == 3
    assert [b - a for a, b in itertools.pairwise(tried_at)] == [0.5, 1.0]


async def test_advisory_refreshes_make_one_try_each() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 - 600)
    loader.down = True
    assert await refresher.get() == 1
    await clock.advance(1)
    assert loader.calls == 2


async def test_a_hung_try_is_cut_off_and_retried_within_the_deadline() -> None:
    policy = RefreshPolicy(try_timeout_seconds=2, attempt_timeout_seconds=5)
    clock, loader, refresher = make(policy=policy)
    loader.gate = anyio.Event()  # never set: a hung or trickling STS
    outcome: list[BaseException] = []

    async def use() -> None:
        try:
            await refresher.get()
        except RefreshTimeoutError as error:
            outcome.append(error)

    async def use_and_note_the_end() -> None:
        await use()
        ended.append(clock.monotonic())

    ended: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(use_and_note_the_end)
        await clock.advance(60)
    assert len(outcome) == 1
    assert "no answer within" in str(outcome[0])
    # Tries at 0 s and 2.25 s time out after 2 s; the third gets what is left of the
    # 5 s deadline, and the callers have their error at 5 s.
    assert loader.calls == 3
    assert loader.cancelled == 3
    assert refresher.stats.timeouts == 3
    assert ended == [5.0]


# --- backoff that never lets credentials expire unrenewed --------------------------------------


async def traffic(
    clock: ManualClock,
    refresher: Refresher[int],
    seconds: float,
    every: float,
    until: Any = lambda value: False,
) -> list[tuple[float, Any]]:
    """Send a request every ``every`` seconds of the hand-driven clock, each in its own
    task (so a request that waits does not stop time); stop after ``seconds`` or once
    ``until(value)`` holds for an answer. Returns (monotonic time, value or error)."""
    answers: list[tuple[float, Any]] = []

    async def request() -> None:
        try:
            value: Any = await refresher.get()
        except Exception as error:
            value = error
        answers.append((clock.monotonic(), value))

    end = clock.monotonic() + seconds
    async with anyio.create_task_group() as tg:
        while clock.monotonic() < end and not any(until(v) for _, v in answers):
            tg.start_soon(request)
            await clock.advance(every)
        await clock.advance(60)  # let the last requests finish
    return answers


@pytest.mark.parametrize("lifetime", [900.0, 3600.0, 43200.0])
@pytest.mark.parametrize("recovery_fraction", [0.1, 0.12, 0.5])
async def test_source_back_before_expiry_renews_before_expiry(
    lifetime: float, recovery_fraction: float
) -> None:
    clock, loader, refresher = make(lifetime=lifetime, rand=1.0)
    await refresher.get()
    expiry = clock.wall() + lifetime
    loader.down = True
    outage = lifetime * (1 - recovery_fraction)
    every = lifetime / 900  # steady traffic: 900 requests per lifetime
    await traffic(clock, refresher, outage, every)
    attempts_during_outage = refresher.stats.attempts
    loader.down = False
    answers = await traffic(clock, refresher, expiry - clock.wall(), every, until=lambda v: v == 2)
    assert refresher.expiry is not None
    assert refresher.expiry > expiry
    renewed_at = min(t for t, v in answers if v == 2)
    assert renewed_at < clock.monotonic() + expiry - clock.wall()  # before expiry
    assert all(not isinstance(v, Exception) for _, v in answers)
    # While the source was down, attempts stayed far apart (no hot loop).
    assert attempts_during_outage <= 150


async def test_expired_credentials_are_renewed_within_5s_of_recovery_without_a_hot_loop() -> None:
    clock, loader, refresher = make(lifetime=900, rand=1.0)
    await refresher.get()
    loader.down = True
    await traffic(clock, refresher, 900 + 60, every=1.0)  # expired during the outage
    attempts_before = refresher.stats.attempts
    answers = await traffic(clock, refresher, 120, every=0.5)  # 2 more minutes of outage
    assert [v for _, v in answers] == [1] * len(answers)  # the expired value, never an error
    assert refresher.stats.attempts - attempts_before <= 120 / 2
    loader.down = False
    recovered_at = clock.monotonic()
    answers = await traffic(clock, refresher, 30, every=0.1, until=lambda v: v == 2)
    renewed_at = min(t for t, v in answers if v == 2)
    assert renewed_at - recovered_at <= 5.0


async def test_backoff_and_deadlines_use_the_monotonic_clock() -> None:
    clock, loader, refresher = make(policy=RefreshPolicy(max_tries=1))
    loader.fail_with = [Transient("down")]
    with pytest.raises(Transient):
        await refresher.get()
    clock.wall_now -= 3600  # the wall clock steps back an hour
    await clock.advance(4.0)  # the longest expired/none backoff
    assert await refresher.get() == 1


async def test_a_long_outage_ends_within_backoff_max_seconds_of_recovery() -> None:
    # 12-hour credentials refreshed from 4 h before expiry; the source is down for the
    # next 2 hours: the backoff grows to its cap, not to 5 % of the lifetime (36 min).
    policy = RefreshPolicy(advisory_window_seconds=4 * 3600, jitter_fraction=0)
    clock, loader, refresher = make(lifetime=43_200.0, rand=1.0, policy=policy)
    await refresher.get()
    await clock.advance(8 * 3600 + 1)
    loader.down = True
    await traffic(clock, refresher, 2 * 3600, every=30.0)  # valid all along: served
    assert refresher.stats.failures >= 10
    loader.down = False
    recovered_at = clock.monotonic()
    answers = await traffic(clock, refresher, 3600, every=5.0, until=lambda v: v == 2)
    renewed_at = min(t for t, v in answers if v == 2)
    assert renewed_at - recovered_at <= RefreshPolicy().backoff_max_seconds + 5


async def test_invalidated_credentials_are_renewed_within_seconds_of_recovery() -> None:
    # A service rejected 12-hour credentials as expired while the source was down: they
    # count as expired for the backoff (2 to 4 s), not as 11 more hours of validity.
    clock, loader, refresher = make(lifetime=43_200.0, rand=1.0)
    assert await refresher.get() == 1
    loader.down = True
    assert refresher.invalidate(rejected_key=1)
    answers = await traffic(clock, refresher, 15 * 60, every=1.0)  # a 15-minute outage
    assert {v for _, v in answers} == {1}  # the rejected key is served, never an error
    assert refresher.stats.attempts <= 15 * 60 / 2  # no hot loop either
    loader.down = False
    recovered_at = clock.monotonic()
    answers = await traffic(clock, refresher, 120, every=0.1, until=lambda v: v == 2)
    renewed_at = min(t for t, v in answers if v == 2)
    assert renewed_at - recovered_at <= 6.0  # a 4 s backoff and tries 0.5 s and 1 s apart


async def test_answers_that_are_already_expired_are_failures_that_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, loader, refresher = make()
    loader.expiry_override = clock.wall() - 3600  # a source (or a clock) an hour off
    with caplog.at_level(logging.WARNING, "aio_assume_role_lib.refresh"):
        async with anyio.create_task_group() as tg:
            for _ in range(100):

                async def use() -> None:
                    for _ in range(30):  # 100 tasks, each trying every 0.1 s for 3 s
                        with pytest.raises(UnusableCredentialsError, match=r"\(36\d\d s ago"):
                            await refresher.get()
                        await clock.sleep(0.1)

                tg.start_soon(use)
            await clock.advance(3.5)
    assert loader.calls == 2  # at 0 s and after the 2 s backoff: 3,000 requests
    assert any("local clock is wrong" in r.getMessage() for r in caplog.records)


# --- non-recoverable errors ---------------------------------------------------------------------


async def test_non_recoverable_errors_are_remembered_for_1_to_5_seconds() -> None:
    for rand, memory in ((0.0, 1.0), (1.0, 5.0)):
        clock, loader, refresher = make(rand=rand)
        loader.fail_with = [Denied("AccessDenied")]
        # A retry inside the refresh would wait on the hand clock: fail, do not hang.
        with anyio.fail_after(5), pytest.raises(Denied):
            await refresher.get()
        assert loader.calls == 1  # never retried inside the refresh
        await clock.advance(memory - 0.01)
        with pytest.raises(Denied):
            await refresher.get()
        assert loader.calls == 1
        assert refresher.stats.fast_failures == 1
        await clock.advance(0.02)
        assert await refresher.get() == 1


async def test_non_recoverable_error_with_valid_credentials_serves_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 - 30)  # blocking window, still valid
    loader.fail_with = [Denied("AccessDenied")]
    with caplog.at_level(logging.WARNING, "aio_assume_role_lib.refresh"):
        assert await refresher.get() == 1
    (record,) = [r for r in caplog.records if r.refresh_event == "failure"]  # type: ignore[attr-defined]
    assert record.levelno == logging.WARNING
    assert record.error_code == "Denied"  # type: ignore[attr-defined]
    assert record.seconds_left == pytest.approx(30)  # type: ignore[attr-defined]
    await clock.advance(1.0)  # the memory (rand 0: 1 s) lapses: tried again
    assert await refresher.get() == 2


async def test_non_recoverable_error_with_expired_credentials_is_raised() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    await clock.advance(3600 + 1)
    loader.fail_with = [Denied("AccessDenied")]
    with pytest.raises(Denied):
        await refresher.get()
    with pytest.raises(Denied):
        await refresher.get()
    assert loader.calls == 2


# --- invalidation ---------------------------------------------------------------------------------


async def test_invalidation_compares_keys_and_a_burst_makes_one_refresh() -> None:
    clock, loader, refresher = make()
    assert await refresher.get() == 1
    assert not refresher.invalidate(rejected_key=99)  # another key: ignored
    assert await refresher.get() == 1
    assert loader.calls == 1
    assert refresher.invalidate(rejected_key=1)
    for _ in range(50):
        refresher.invalidate(rejected_key=1)  # the burst of rejections of key 1
    assert await refresher.get() == 2
    for _ in range(50):
        refresher.invalidate(rejected_key=1)  # late answers to requests signed with 1
    assert await refresher.get() == 2
    assert loader.calls == 2
    assert refresher.stats.invalidations == 1
    # A rejection of the new key inside the minimum interval is ignored too.
    assert not refresher.invalidate(rejected_key=2)
    await clock.advance(5)
    assert refresher.invalidate(rejected_key=2)
    assert await refresher.get() == 3


async def test_invalidation_respects_backoff_and_serves_when_the_refresh_fails() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    loader.down = True
    refresher.invalidate(rejected_key=1)
    served: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _append(served, refresher.get()))
        await clock.advance(1)  # three tries (0.25 s and 0.5 s apart), then a 1 s backoff
    assert served == [1]  # served, even though invalidated
    assert await refresher.get() == 1
    calls = loader.calls
    assert await refresher.get() == 1
    assert loader.calls == calls  # backing off: no new try


# --- cancellation, threads, loops, fork -------------------------------------------------------------


async def test_cancelling_the_triggering_task_neither_aborts_nor_duplicates_the_refresh() -> None:
    _, loader, refresher = make()
    loader.gate = anyio.Event()
    got: list[int] = []
    first = anyio.CancelScope()

    async def trigger() -> None:
        with first:
            await refresher.get()

    async with anyio.create_task_group() as tg:
        tg.start_soon(trigger)
        await settle()
        first.cancel()  # the client that started the refresh disconnects
        tg.start_soon(lambda: _append(got, refresher.get()))
        await settle()
        loader.gate.set()
    assert got == [1]
    assert loader.calls == 1
    assert loader.cancelled == 0


async def test_callers_have_the_new_value_before_the_after_success_work_runs() -> None:
    # after_success is the cache write: a slow disk must not delay the callers.
    writing, may_finish = anyio.Event(), anyio.Event()

    async def slow_write() -> None:
        writing.set()
        await may_finish.wait()

    _, loader, refresher = make(after_success=slow_write)
    got: list[int] = []
    async with anyio.create_task_group() as tg:
        try:
            tg.start_soon(lambda: _append(got, refresher.get()))
            await settle()
            assert writing.is_set()
            assert got == [1]  # while the write is still running
        finally:
            may_finish.set()
    assert loader.calls == 1


class _RacyStats(RefreshStats):
    """Counters whose ``waits`` read gives up the GIL between reading and writing, as any
    read may on a free-threaded build: an update made outside the refresher's lock
    loses counts under contention."""

    def __init__(self) -> None:
        self._waits = 0
        super().__init__()

    @property  # type: ignore[override]
    def waits(self) -> int:
        value = self._waits
        time.sleep(0)  # releases the GIL
        return value

    @waits.setter
    def waits(self, value: int) -> None:
        self._waits = value


def test_counters_are_exact_under_contention_from_many_threads() -> None:
    release = threading.Event()

    async def slow_load() -> tuple[int, float]:
        await anyio.to_thread.run_sync(release.wait, HANG_SECONDS)
        return 1, 4_000_000_000.0

    refresher: Refresher[int] = Refresher(slow_load, owner_check_interval=0.05)
    refresher.stats = _RacyStats()
    results: list[Any] = []
    ready = threading.Barrier(8)

    def worker() -> None:
        async def main() -> list[int]:
            ready.wait(HANG_SECONDS)
            return list(await asyncio.gather(*(refresher.get() for _ in range(50))))

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for _ in range(int(HANG_SECONDS * 100)):  # until every loop waits for the flight
            flight = refresher._flight
            if (flight is not None and len(flight._events) == 8) or not any(
                t.is_alive() for t in threads
            ):
                break
            time.sleep(0.01)
        # The loops' other callers join in the same turn of their loop: wait until all 400
        # are counted (bounded: lost increments never get there, and the assert says so).
        for _ in range(500):
            if refresher.stats.waits >= 8 * 50:
                break
            time.sleep(0.01)
        release.set()
        for t in threads:
            t.join(HANG_SECONDS)
    finally:
        sys.setswitchinterval(previous)
        release.set()
    assert results == [[1] * 50] * 8
    assert refresher.stats.waits == 8 * 50  # every waiting caller counted, none lost


def _threaded_refresher(check_interval: float) -> tuple[Refresher[int], list[int], Any]:
    calls: list[int] = []
    release = threading.Event()

    async def slow_load() -> tuple[int, float]:
        calls.append(threading.get_ident())
        await anyio.to_thread.run_sync(release.wait, 10)
        return len(calls), 4_000_000_000.0

    refresher: Refresher[int] = Refresher(slow_load, owner_check_interval=check_interval)
    return refresher, calls, release


def test_waiters_on_other_loops_are_woken_by_the_flight_itself() -> None:
    # The owner check never runs (infinite interval): only the thread-safe wake-up can
    # end the other loops' waits, and fail_after turns a missed wake-up into a failure.
    refresher, calls, release = _threaded_refresher(check_interval=math.inf)
    results: list[Any] = []

    def worker() -> None:
        async def main() -> list[int]:
            with anyio.fail_after(20):
                return list(await asyncio.gather(*(refresher.get() for _ in range(50))))

        try:
            results.append(asyncio.run(main()))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(500):
        if calls and sum(len(f._events) for f in [refresher._flight] if f) == 4:
            break
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert results == [[1] * 50] * 4
    assert len(calls) == 1


def test_a_flight_abandoned_by_a_closed_loop_is_replaced() -> None:
    calls = 0

    async def load() -> tuple[int, float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3600)  # the first loop ends while this is in flight
        return calls, 4_000_000_000.0

    refresher: Refresher[int] = Refresher(load)

    async def start_and_leave() -> None:
        task = _keep = asyncio.ensure_future(refresher.get())
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(start_and_leave())  # asyncio.run cancels the detached flight on exit

    async def use() -> int:
        return await refresher.get()

    assert asyncio.run(use()) == 2
    assert asyncio.run(use()) == 2


def test_a_waiter_elsewhere_leaves_a_flight_whose_loop_stopped_running() -> None:
    # The owner loop stops (without closing) while its flight is in the load: a waiter
    # on another thread's loop notices from the loop's state, not from a timer.
    calls = 0
    stuck = threading.Event()

    async def load() -> tuple[int, float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            stuck.set()
            await asyncio.sleep(3600)
        return calls, 4_000_000_000.0

    refresher: Refresher[int] = Refresher(load, owner_check_interval=0.05)
    owner = asyncio.new_event_loop()
    try:

        async def start() -> None:
            left_running.add(asyncio.ensure_future(refresher.get()))
            await asyncio.sleep(0.05)

        owner.run_until_complete(start())  # the loop stops; the flight is left in it
        assert stuck.is_set()

        async def other() -> int:
            with anyio.fail_after(20):
                return await refresher.get()

        assert asyncio.run(other()) == 2
    finally:
        owner.run_until_complete(asyncio.sleep(0))
        for task in asyncio.all_tasks(owner):
            task.cancel()
        owner.run_until_complete(asyncio.sleep(0.01))
        owner.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_wait_for_the_parents_flight() -> None:
    # The owner loop is running the flight (in its own thread) at the moment of the fork:
    # in the child, that loop still looks running, but nothing will ever end its flight;
    # and the refresher's lock is held, as by a thread that does not exist in the child.
    started = threading.Event()

    async def load() -> tuple[int, float]:
        if not started.is_set():
            started.set()
            await asyncio.sleep(3600)
        return 2, 4_000_000_000.0

    refresher: Refresher[int] = Refresher(load, owner_check_interval=0.05)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(refresher.get(), loop)
        assert started.wait(HANG_SECONDS)
        assert loop.is_running()
        assert refresher._flight is not None
        # As if another thread were inside the refresher at the fork: its lock is held.
        refresher._mutex.acquire()
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    signal.alarm(20)  # a lock still held blocks the loop itself: end the child

                    async def child() -> int:
                        with anyio.fail_after(3):
                            return await refresher.get()

                    code = 0 if asyncio.run(child()) == 2 else 1
                finally:
                    os._exit(code)
        finally:
            refresher._mutex.release()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_later(0.05, loop.stop)

        loop.call_soon_threadsafe(cancel_all)
        thread.join(HANG_SECONDS)
        loop.close()


# Destroying tasks left pending makes asyncio and anyio complain: that is the point here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_flights_left_in_a_closed_loop_do_not_keep_their_refreshers() -> None:
    # A loop closed without cancelling its tasks (loop.close() after run_until_complete):
    # its flights, and the refreshers they belong to, are collected with it.
    async def hang() -> tuple[int, float]:
        await asyncio.sleep(3600)
        return 1, 4_000_000_000.0

    refs: list[weakref.ref[Refresher[int]]] = []
    loop = asyncio.new_event_loop()

    async def start() -> None:
        callers = []  # dropped when start() returns: only the loop references them
        for _ in range(20):
            refresher: Refresher[int] = Refresher(hang)
            refs.append(weakref.ref(refresher))
            callers.append(asyncio.ensure_future(refresher.get()))
        await asyncio.sleep(0.01)

    loop.run_until_complete(start())
    assert all(ref() is not None and ref()._flight is not None for ref in refs)  # type: ignore[union-attr]
    loop.close()
    del loop
    gc.collect()
    assert [ref() for ref in refs] == [None] * 20


# --- nothing secret in reprs or captured locals -------------------------------------------------------


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


async def test_reprs_and_traceback_locals_never_show_the_value() -> None:
    # The secret is a module constant, so that only the library's frames could show it.
    clock = ManualClock()
    fail = [False]

    async def load() -> tuple[str, float]:
        if fail[0]:
            raise Transient("down")
        return SECRET, clock.wall() + 3600

    refresher: Refresher[str] = Refresher(
        load,
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        classify_error=classify,
        policy=RefreshPolicy(max_tries=1),
    )
    await refresher.get()
    fail[0] = True
    await clock.advance(3600 + 10)
    rendered = [repr(refresher), repr(refresher._current), repr(refresher.stats)]
    refresher._current = None  # nothing cached: the failure reaches the caller
    await clock.advance(10)
    try:
        await refresher.get()
    except Transient as error:
        rendered.append(
            "".join(
                traceback.TracebackException.from_exception(error, capture_locals=True).format()
            )
        )
    assert rendered[-1].count("Traceback") == 1
    for text in rendered:
        assert SECRET not in text

"""The refresher on its own: windows, single flight, backoff, cancellation, deadlines, loops.

Time is driven by hand (an injected clock); only the deadline and loop tests wait for real,
and then for fractions of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib._refresh import Refresher, RefreshTimeoutError

from .conftest import HAS_TRIO

pytestmark = pytest.mark.anyio

BACKENDS = ["asyncio", "trio"] if HAS_TRIO else ["asyncio"]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Loader:
    """Issues values 1, 2, 3... valid for ``lifetime`` seconds; can be made to block or fail."""

    def __init__(self, clock: Clock, lifetime: float = 900.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.gate: anyio.Event | None = None
        self.fail_with: list[BaseException] = []
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
        return self.calls, self.clock() + self.lifetime


def make(
    lifetime: float = 900.0, policy: RefreshPolicy | None = None, **kwargs: Any
) -> tuple[Clock, Loader, Refresher[int]]:
    clock = Clock()
    loader = Loader(clock, lifetime)
    refresher: Refresher[int] = Refresher(
        loader, policy=policy, clock=clock, random=lambda: 0.0, **kwargs
    )
    return clock, loader, refresher


async def settle() -> None:
    """Let spawned refresh tasks run to their next wait."""
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


# --- the windows ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "advisory", "mandatory"),
    [(900.0, 180.0, 45.0), (43200.0, 900.0, 600.0), (6.0, 1.2, 0.3)],
)
def test_windows_scale_with_lifetime_up_to_botocore_caps(
    lifetime: float, advisory: float, mandatory: float
) -> None:
    policy = RefreshPolicy()
    expiry = 10_000.0 + lifetime
    advisory_at, mandatory_at = policy.windows(10_000.0, expiry, rand=0.0)
    assert expiry - advisory_at == pytest.approx(advisory)
    assert expiry - mandatory_at == pytest.approx(mandatory)
    # With the most jitter the advisory start moves later, but stays before the mandatory.
    late_advisory_at, _ = policy.windows(10_000.0, expiry, rand=0.999)
    assert advisory_at < late_advisory_at < mandatory_at
    assert expiry - late_advisory_at == pytest.approx(
        advisory - (advisory - mandatory) * 0.2, rel=0.01
    )


def test_jitter_spreads_a_fleet() -> None:
    policy = RefreshPolicy()
    starts = {policy.windows(0.0, 900.0, rand=r / 10)[0] for r in range(10)}
    assert len(starts) == 10


def test_backoff_grows_with_jitter_and_is_bounded() -> None:
    policy = RefreshPolicy(backoff_initial_seconds=1.0, backoff_max_seconds=30.0)
    lows = [policy.backoff(n, permanent=False, rand=0.0) for n in range(1, 10)]
    highs = [policy.backoff(n, permanent=False, rand=1.0) for n in range(1, 10)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0]
    assert highs == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert policy.backoff(1, permanent=True, rand=0.0) == policy.permanent_error_backoff_seconds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"advisory_fraction": -1}, "advisory_fraction must be a finite number >= 0"),
        ({"jitter_fraction": "x"}, "jitter_fraction must be a number, not str"),
        ({"mandatory_fraction": 0.5, "advisory_fraction": 0.2}, "mandatory_fraction <= advisory"),
        ({"attempt_timeout_seconds": 0}, "attempt_timeout_seconds must be > 0"),
        ({"backoff_initial_seconds": 5, "backoff_max_seconds": 1}, "backoff_initial_seconds"),
        ({"mandatory_max_seconds": 1000}, "mandatory_max_seconds must be <="),
    ],
)
def test_policy_rejects_bad_settings_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="Invalid RefreshPolicy") as info:
        RefreshPolicy(**kwargs)
    assert message in str(info.value)


# --- fresh, advisory, mandatory --------------------------------------------------------


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


async def test_fresh_value_needs_no_load() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    clock.now += 700  # 900 s credentials: advisory starts 180 s before expiry
    assert [await refresher.get() for _ in range(100)] == [1] * 100
    assert loader.calls == 1


async def test_advisory_window_refreshes_in_background_without_waiting() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    clock.now += 900 - 170  # inside the advisory window, before the mandatory one
    loader.gate = anyio.Event()
    # Every caller, the one that noticed included, gets the valid value at once.
    assert [await refresher.get() for _ in range(100)] == [1] * 100
    await settle()
    assert loader.calls == 2  # exactly one background refresh
    loader.gate.set()
    await settle()
    assert await refresher.get() == 2
    assert refresher.stats.advisory_refreshes == 1
    assert refresher.stats.waits == 1  # only the very first load was waited for


async def test_mandatory_window_waits_for_one_refresh() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    clock.now += 900 - 30  # inside the mandatory window (45 s)
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


async def test_expired_value_is_never_returned() -> None:
    clock, _loader, refresher = make()
    await refresher.get()
    clock.now += 10_000
    assert await refresher.get() == 2


# --- failures and backoff --------------------------------------------------------------


class Boom(Exception):
    pass


async def test_failed_mandatory_refresh_gives_its_error_to_every_waiter_once() -> None:
    clock, loader, refresher = make()
    await refresher.get()
    clock.now += 900  # expired
    loader.gate = anyio.Event()
    loader.fail_with = [Boom("sts is down")]
    errors: list[BaseException] = []

    async def use() -> None:
        try:
            await refresher.get()
        except Boom as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(use)
        await settle()
        loader.gate.set()
    assert len(errors) == 20
    assert len({id(e) for e in errors}) == 1
    assert loader.calls == 2  # one attempt for 20 waiters

    # Within the backoff, callers get the error at once, without a new attempt.
    for _ in range(50):
        with pytest.raises(Boom):
            await refresher.get()
    assert loader.calls == 2
    assert refresher.stats.fast_failures == 50

    clock.now += refresher.policy.backoff_initial_seconds  # backoff over
    loader.gate = None
    assert await refresher.get() == 3


async def test_failed_advisory_refresh_keeps_serving_and_backs_off() -> None:
    policy = RefreshPolicy(backoff_initial_seconds=2.0, backoff_max_seconds=8.0)
    clock, loader, refresher = make(policy=policy)
    await refresher.get()
    clock.now += 900 - 170  # advisory window; mandatory starts at 900 - 45
    loader.fail_with = [Boom("1"), Boom("2"), Boom("3"), Boom("4")]
    attempts_at: list[float] = []
    for _ in range(1200):  # 1 request every 0.1 s, until the new value arrives
        calls = loader.calls
        value = await refresher.get()
        if value != 1:
            break
        await settle()
        if loader.calls != calls:
            attempts_at.append(clock.now)
        clock.now += 0.1
        assert clock.now < 1_000_000 + 900 - 45, "still failing at the mandatory window"
    # Four failures, then a success; delays grow (2 s * 0.5 jitter floor, doubling).
    assert len(attempts_at) == 5
    gaps = [b - a for a, b in itertools.pairwise(attempts_at)]
    assert gaps == pytest.approx([1.0, 2.0, 4.0, 4.0], abs=0.11)
    assert await refresher.get() == 6
    assert refresher.stats.failures == 4


async def test_advisory_backoff_never_skips_the_start_of_the_mandatory_window() -> None:
    policy = RefreshPolicy(permanent_error_backoff_seconds=3600)
    clock, loader, refresher = make(policy=policy, is_permanent_error=lambda e: True)
    await refresher.get()
    clock.now += 900 - 170
    loader.fail_with = [Boom("denied")]
    assert await refresher.get() == 1
    await settle()
    assert loader.calls == 2
    clock.now = 1_000_000 + 900 - 45  # mandatory window starts: one more real attempt
    assert await refresher.get() == 3


async def test_permanent_errors_are_not_retried_in_a_hot_loop() -> None:
    clock, loader, refresher = make(is_permanent_error=lambda e: isinstance(e, Boom))
    loader.fail_with = [Boom("AccessDenied")]
    for _ in range(100):
        with pytest.raises(Boom):
            await refresher.get()
        clock.now += 1
    assert loader.calls == 1
    clock.now += refresher.policy.permanent_error_backoff_seconds
    assert await refresher.get() == 2


# --- cancellation, deadline, invalidation -----------------------------------------------


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

        async def second() -> None:
            got.append(await refresher.get())

        tg.start_soon(second)
        await settle()
        loader.gate.set()
    assert got == [1]
    assert loader.calls == 1
    assert loader.cancelled == 0


async def test_a_refresh_that_hangs_is_cut_off_at_the_deadline() -> None:
    policy = RefreshPolicy(attempt_timeout_seconds=0.2)
    _, loader, refresher = make(policy=policy)
    loader.gate = anyio.Event()  # never set: a trickling or hung STS
    with anyio.fail_after(5):
        with pytest.raises(RefreshTimeoutError, match=r"within 0.2 s"):
            await refresher.get()
    assert refresher.stats.timeouts == 1
    assert isinstance(RefreshTimeoutError("x"), TimeoutError)


async def test_invalidate_only_hits_credentials_older_than_the_failed_request() -> None:
    clock, _loader, refresher = make()
    await refresher.get()
    request_started = clock.now - 1  # a request signed before these credentials arrived
    refresher.invalidate(if_obtained_before=request_started)
    assert await refresher.get() == 1
    refresher.invalidate(if_obtained_before=clock.now + 1)
    assert await refresher.get() == 2
    assert refresher.stats.invalidations == 1


# --- several event loops -------------------------------------------------------------------


def test_one_refresher_serves_several_threads_each_with_its_own_loop() -> None:
    clock = Clock()
    calls: list[int] = []
    release = threading.Event()

    async def slow_load() -> tuple[int, float]:
        calls.append(threading.get_ident())
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return len(calls), clock() + 900

    refresher: Refresher[int] = Refresher(slow_load, clock=clock)
    results: list[Any] = []

    def worker() -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(refresher.get() for _ in range(50))))

        try:
            results.append(asyncio.run(main()))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    while not calls:
        threading.Event().wait(0.01)
    threading.Event().wait(0.1)  # let every thread join the flight
    release.set()
    for t in threads:
        t.join(10)
    assert results == [[1] * 50] * 4
    assert len(calls) == 1


def test_a_flight_abandoned_by_a_closed_loop_is_replaced() -> None:
    clock = Clock()
    calls = 0

    async def load() -> tuple[int, float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(3600)  # the first loop ends while this is in flight
        return calls, clock() + 900

    refresher: Refresher[int] = Refresher(load, clock=clock)

    async def start_and_leave() -> None:
        task = asyncio.ensure_future(refresher.get())
        await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(start_and_leave())  # asyncio.run cancels the detached flight on exit

    async def use() -> int:
        return await refresher.get()

    assert asyncio.run(use()) == 2
    assert asyncio.run(use()) == 2

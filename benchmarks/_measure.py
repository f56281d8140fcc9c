"""Measuring tools: event-loop lag, percentiles, bounded task and traffic runners, time scaling."""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.credentials
import botocore.retryhandler

# --- statistics -----------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` quantile (nearest rank) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- event-loop lag -------------------------------------------------------------------


class LoopLagMonitor:
    """A task that sleeps 1 ms again and again and notes how late it wakes up.

    The largest lateness is the longest time the event loop could not run anything:
    a blocking call, a long stretch of synchronous work, or a starved loop.
    """

    interval = 0.001

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._sleep_started: float | None = None

    def _note(self, lag: float) -> None:
        self.samples += 1
        if lag > self.max_lag:
            self.max_lag = lag

    async def _tick(self) -> None:
        clock = time.perf_counter
        while True:
            self._sleep_started = clock()
            await asyncio.sleep(self.interval)
            self._note(clock() - self._sleep_started - self.interval)
            self._sleep_started = None

    async def __aenter__(self) -> LoopLagMonitor:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # let it take its first timestamp
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        # The last sleep may be overdue without the ticker having had a chance to wake
        # (the loop was blocked until the measured work ended): count it too.
        if self._sleep_started is not None:
            overdue = time.perf_counter() - self._sleep_started - self.interval
            if overdue > 0:
                self._note(overdue)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


# --- bounded runners ------------------------------------------------------------------


@dataclass
class TaskRun:
    """What happened to a batch of tasks: latencies of the ones that finished, errors."""

    offered: int
    started: int = 0
    latencies: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    elapsed: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values()) + self.unfinished

    def note_error(self, error: BaseException) -> None:
        name = type(error).__name__
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        key = f"{name}({code})" if code else name
        self.errors[key] = self.errors.get(key, 0) + 1


async def run_tasks(
    operation: Callable[[], Awaitable[Any]],
    count: int,
    *,
    concurrency: int,
    admit_until: float,
    finish_within: float,
) -> TaskRun:
    """Offer ``count`` tasks running ``operation``, at most ``concurrency`` at a time.

    Latencies count from the start of the run when all tasks start at once, else from
    each task's admission.

    No task starts after ``admit_until`` seconds (the rest count as not started), and the
    whole run is cut off ``finish_within`` seconds after the start (tasks still running
    then are cancelled and count as unfinished).
    """
    run = TaskRun(offered=count)
    gate = asyncio.Semaphore(concurrency)
    started_at = time.perf_counter()
    admission_deadline = started_at + admit_until
    # Tasks that all start at once all arrived at the start: their latency counts from
    # then, including the time they waited for the loop. Tasks held back by the
    # concurrency bound count from when they were let in.
    all_at_once = concurrency >= count

    async def one() -> None:
        async with gate:
            if time.perf_counter() >= admission_deadline:
                return
            run.started += 1
            begin = started_at if all_at_once else time.perf_counter()
            try:
                result = await operation()
            except Exception as exc:
                run.note_error(exc)
                return
            run.latencies.append(time.perf_counter() - begin)
            run.results.append(result)

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    _, pending = await asyncio.wait(tasks, timeout=finish_within)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    run.unfinished = len(pending)
    run.elapsed = time.perf_counter() - started_at
    return run


@dataclass
class Use:
    """One request's use of credentials: when, with which access key, and whether it worked."""

    at: float
    """Wall-clock time (``time.time()``) the request had its credentials."""
    access_key: str


async def run_traffic(
    request: Callable[[bool], Awaitable[Use]],
    *,
    rate: float,
    duration: float,
    send_every: int,
    max_in_flight: int,
    grace: float,
) -> TaskRun:
    """Open-loop traffic: request ``i`` is due at ``i / rate`` seconds, for ``duration``.

    ``request(send)`` gets credentials the way the contender's users do; when ``send``
    (every ``send_every``-th request) it also sends a signed API call. A request's latency
    counts from when it was due, so time spent queued behind a blocked event loop counts.
    More than ``max_in_flight`` unfinished requests hold back new ones (the schedule then
    slips, and the achieved rate shows it).
    """
    loop_clock = time.perf_counter
    run = TaskRun(offered=math.floor(rate * duration))
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    start = loop_clock()

    async def one(index: int, due: float) -> None:
        try:
            use = await request(index % send_every == 0)
        except Exception as exc:
            run.note_error(exc)
        else:
            run.latencies.append(loop_clock() - due)
            run.results.append(use)
        finally:
            gate.release()

    for index in range(run.offered):
        due = start + index / rate
        now = loop_clock()
        if due > now:
            await asyncio.sleep(due - now)
        await gate.acquire()
        if loop_clock() - start >= duration:
            gate.release()
            break
        run.started += 1
        task = asyncio.create_task(one(index, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        run.unfinished = len(pending)
    run.elapsed = loop_clock() - start
    return run


# --- time compression -----------------------------------------------------------------


@contextlib.contextmanager
def botocore_time_scaled(factor: float) -> Iterator[None]:
    """Shrink botocore's own fixed durations by ``factor`` while time is compressed.

    With credential lifetimes divided by ``factor``, botocore's refresh windows (15 and 10
    minutes) and its retry back-off (legacy mode: random * 2**(attempt - 1) seconds) must
    shrink by the same factor, or the anchors would see a different world from the real
    one: every credential inside the mandatory window, every retry outlasting an outage.
    Only clients and credentials created inside the block are affected.
    """
    cls = botocore.credentials.RefreshableCredentials
    saved_windows = (cls._advisory_refresh_timeout, cls._mandatory_refresh_timeout)
    saved_delay = botocore.retryhandler.delay_exponential

    def scaled_delay(base: Any, growth_factor: float, attempts: int) -> float:
        return float(saved_delay(base, growth_factor, attempts)) / factor

    cls._advisory_refresh_timeout = saved_windows[0] / factor
    cls._mandatory_refresh_timeout = saved_windows[1] / factor
    botocore.retryhandler.delay_exponential = scaled_delay
    try:
        yield
    finally:
        cls._advisory_refresh_timeout, cls._mandatory_refresh_timeout = saved_windows
        botocore.retryhandler.delay_exponential = saved_delay

"""The benchmark scenarios (each with its target), each run for every contender it applies to.

Each scenario function runs the same workload for every contender in turn, against the
same loopback STS, and returns one :class:`Row` per contender. What is measured comes
from the loopback server (AssumeRole calls, the expiry of every credential it issued)
and from the client side (latencies, errors, event-loop lag); nothing is estimated.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _contenders import THIS, Contender
from _measure import (
    LoopLagMonitor,
    TaskRun,
    Use,
    botocore_time_scaled,
    median,
    percentile,
    run_tasks,
    run_traffic,
)
from _sts_process import AssumeRoleCall, RemoteSTS
from aio_assume_role_lib import RefreshPolicy

ACCOUNT = "111111111111"
LONG_LIFETIME = 3600.0  # what STS issues by default (DurationSeconds absent)


@dataclass(frozen=True)
class Config:
    """Every count and duration of a run; ``FULL`` and ``SMOKE`` below."""

    name: str
    sts_latency: float  # every STS request (AssumeRole and GetCallerIdentity) waits this
    short_lifetime: float  # credentials issued to be expired a moment later
    finish_within: float  # hard cut-off of any one task batch
    expired_tasks: int  # S1
    per_request_tasks: int  # S2
    anchor_concurrency: int  # S2: anchors make one STS call per task
    anchor_admit_seconds: float  # S2: no anchor task starts after this
    repeat_calls: int  # S3
    micro_time_cap: float  # S3, S4: no new sample after this many seconds
    client_pairs: int  # S4
    lag_latency: float  # S5
    lag_rate: int  # S5, requests per second
    lag_seconds: float  # S5
    lag_repeats: int  # S5
    time_scale: float  # S6, S7: real seconds = scenario seconds / time_scale
    steady_rate: float  # S6, requests per second
    steady_lifetimes: int  # S6, run length in credential lifetimes
    outage_rate: float  # S7, requests per second
    outage_send_every: int  # S7: every n-th request also sends a signed API call
    max_in_flight: int  # S6, S7
    traffic_grace: float  # S6, S7: wait this long for requests still running at the end
    hot_batches: int  # S8
    hot_batch_size: int  # S8
    hot_time_cap: float  # S8
    scenario_timeout: float  # a scenario still running after this is a crash


FULL = Config(
    name="full",
    sts_latency=0.020,
    short_lifetime=2.0,
    finish_within=120.0,
    expired_tasks=10_000,
    per_request_tasks=10_000,
    anchor_concurrency=10,
    anchor_admit_seconds=3.0,
    repeat_calls=10_000,
    micro_time_cap=2.0,
    client_pairs=100,
    lag_latency=0.200,
    lag_rate=1_000,
    lag_seconds=0.6,
    lag_repeats=5,
    time_scale=100.0,
    steady_rate=100.0,
    steady_lifetimes=2,
    outage_rate=1_000.0,
    outage_send_every=10,
    max_in_flight=20,
    traffic_grace=10.0,
    hot_batches=200,
    hot_batch_size=500,
    hot_time_cap=1.0,
    scenario_timeout=600.0,
)

SMOKE = Config(
    name="smoke",
    sts_latency=0.002,
    # Not shorter: CI runs the smoke at the lowest CPU priority, where an anchor's first
    # fetch took over 1.2 s once and botocore then raised "refreshed credentials are
    # still expired", ending the run.
    short_lifetime=3.0,
    finish_within=20.0,
    expired_tasks=200,
    per_request_tasks=100,
    anchor_concurrency=4,
    anchor_admit_seconds=0.3,
    repeat_calls=200,
    micro_time_cap=0.3,
    client_pairs=3,
    lag_latency=0.200,
    lag_rate=200,
    lag_seconds=0.3,
    lag_repeats=1,
    time_scale=1_000.0,
    steady_rate=30.0,
    steady_lifetimes=1,
    outage_rate=200.0,
    outage_send_every=10,
    max_in_flight=5,
    traffic_grace=5.0,
    hot_batches=20,
    hot_batch_size=50,
    hot_time_cap=0.2,
    scenario_timeout=120.0,
)


@dataclass
class Row:
    """One contender's result in one scenario."""

    scenario: str
    contender: str
    workload: str
    """The workload as it ran for this contender (counts actually run, bounds hit)."""
    headline: float | None
    """The scenario's key figure (see Scenario.metric)."""
    sts_calls: int | None = None
    failed: int | None = None
    median: float | None = None  # seconds
    p99: float | None = None  # seconds
    max_lag: float | None = None  # seconds
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    metric: str
    """What the headline figure is, with its unit."""
    target: str
    met: Callable[[Row], bool]
    run: Callable[[Context], Awaitable[list[Row]]]
    workload: Callable[[Config], str]
    """The offered workload, stated for the table."""


class Context:
    """What every scenario gets: the server, the contenders, the configuration."""

    def __init__(self, sts: RemoteSTS, contenders: list[Contender], config: Config) -> None:
        self.sts = sts
        self.contenders = contenders
        self.config = config
        self._roles = 0

    def role(self, scenario: str, contender: Contender) -> str:
        """A role ARN used by nothing else, so its AssumeRole calls are this run's alone."""
        self._roles += 1
        return f"arn:aws:iam::{ACCOUNT}:role/bench-{scenario}-{contender.key}-{self._roles}"

    def settle(self) -> None:
        """Collect garbage and freeze what is left, before measuring the next contender.

        The process holds every contender's sessions and service models; without this a
        full collection triggered by one contender would scan them all, and another
        contender's garbage would be collected on this one's time.
        """
        gc.collect()
        gc.freeze()

    def reset_server(self) -> None:
        self.sts.set_latency(self.config.sts_latency)
        self.sts.set_credential_lifetime(LONG_LIFETIME)


# --- helpers ----------------------------------------------------------------------------


def expired_uses(uses: list[Use], calls: list[AssumeRoleCall]) -> int:
    """Uses of credentials that STS had issued with an expiry at or before the use.

    Such a request would be rejected with ExpiredToken; a key STS never issued for this
    role would be rejected too.
    """
    expiry = {call.issued_access_key_id: call.expiration for call in calls}
    count = 0
    for use in uses:
        expires = expiry.get(use.access_key)
        if expires is None or use.at >= expires:
            count += 1
    return count


def _fill_latency(row: Row, run: TaskRun) -> None:
    row.median = median(run.latencies)
    row.p99 = percentile(run.latencies, 0.99)


def _error_note(run: TaskRun) -> list[str]:
    if not run.errors and not run.unfinished:
        return []
    parts = [f"{name} x{count}" for name, count in sorted(run.errors.items())]
    if run.unfinished:
        parts.append(f"unfinished x{run.unfinished}")
    return ["errors: " + ", ".join(parts)]


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _traffic_workload(run: TaskRun) -> str:
    """A traffic run's workload as it ran: requests started and the rate achieved."""
    return f"{_n(run.started)} requests, {run.started / run.elapsed:,.0f} req/s achieved"


def _scaled_policy(scale: float, lifetime: float = 900.0) -> RefreshPolicy:
    """The default RefreshPolicy for ``lifetime``-second credentials, every window and
    back-off divided by ``scale``.

    The advisory window is pinned to the AWS tier of the uncompressed lifetime (5 min for
    900 s credentials): left to the tiers, a 9-second credential would fall under the
    short-lifetime cap and get a different, proportionally smaller window. Fractions
    (min_use_fraction, jitter_fraction, backoff_lifetime_fraction) need no scaling. The
    per-try and per-refresh deadlines and ``max_tries`` are left alone: like botocore's
    connect and read timeouts, they bound network calls, and the time a call takes (CPU,
    latency) is not compressed.
    """
    default = RefreshPolicy()
    tier = default.advisory_window(lifetime)
    return RefreshPolicy(
        advisory_window_seconds=tier / scale,
        blocking_window_seconds=default.blocking_window_seconds / scale,
        min_use_seconds=default.min_use_seconds / scale,
        retry_delay_seconds=default.retry_delay_seconds / scale,
        backoff_min_seconds=default.backoff_min_seconds / scale,
        backoff_max_seconds=default.backoff_max_seconds / scale,
        error_memory_min_seconds=default.error_memory_min_seconds / scale,
        error_memory_max_seconds=default.error_memory_max_seconds / scale,
        invalidation_min_interval_seconds=default.invalidation_min_interval_seconds / scale,
    )


async def _expired_handles(ctx: Context, scenario: str, per_contender: int) -> list[list[Any]]:
    """For each contender, ``per_contender`` role sessions whose credentials just expired.

    They are fetched with a short lifetime and left to expire together, so the scenario
    waits once; STS then goes back to issuing long-lived credentials.
    """
    ctx.reset_server()
    ctx.sts.set_credential_lifetime(ctx.config.short_lifetime)
    handles: list[list[Any]] = []
    for contender in ctx.contenders:
        mine = []
        for _ in range(per_contender):
            arn = ctx.role(scenario, contender)
            handle = await contender.role_handle(arn)
            await handle.credentials()
            mine.append((arn, handle))
        handles.append(mine)
    await asyncio.sleep(ctx.config.short_lifetime + 0.2)
    ctx.sts.set_credential_lifetime(LONG_LIFETIME)
    return handles


# --- S1 ---------------------------------------------------------------------------------


async def run_expired(ctx: Context) -> list[Row]:
    config = ctx.config
    rows = []
    handles = await _expired_handles(ctx, "s1", 1)
    for contender, [(arn, handle)] in zip(ctx.contenders, handles, strict=True):
        ctx.settle()
        before = len(ctx.sts.assume_role_calls(arn))
        async with LoopLagMonitor() as lag:
            run = await run_tasks(
                handle.credentials,
                config.expired_tasks,
                concurrency=config.expired_tasks,
                admit_until=math.inf,
                finish_within=config.finish_within,
            )
        calls = ctx.sts.assume_role_calls(arn)
        new_calls = len(calls) - before
        row = Row(
            "S1",
            contender.key,
            f"{_n(run.started)} tasks",
            headline=new_calls,
            sts_calls=new_calls,
            failed=run.failed + expired_uses(run.results, calls),
            max_lag=lag.max_lag,
            notes=_error_note(run),
        )
        _fill_latency(row, run)
        rows.append(row)
    return rows


# --- S2 ---------------------------------------------------------------------------------


async def run_per_request(ctx: Context) -> list[Row]:
    config = ctx.config
    rows = []
    ctx.reset_server()
    for contender in ctx.contenders:
        ctx.settle()
        arn = ctx.role("s2", contender)
        ours = contender.key == THIS
        async with LoopLagMonitor() as lag:
            run = await run_tasks(
                functools.partial(contender.per_request_credentials, arn),
                config.per_request_tasks,
                concurrency=config.per_request_tasks if ours else config.anchor_concurrency,
                admit_until=config.anchor_admit_seconds,
                finish_within=config.finish_within,
            )
        calls = ctx.sts.assume_role_calls(arn)
        workload = f"{_n(run.started)} tasks"
        if run.started < config.per_request_tasks:
            workload += f" of {_n(config.per_request_tasks)} (time bound)"
        row = Row(
            "S2",
            contender.key,
            workload,
            headline=len(calls),
            sts_calls=len(calls),
            failed=run.failed + expired_uses(run.results, calls),
            max_lag=lag.max_lag,
            notes=_error_note(run),
            extra={
                "calls_per_task": len(calls) / run.started if run.started else None,
                "tasks": run.started,
            },
        )
        _fill_latency(row, run)
        rows.append(row)
    return rows


# --- S3 ---------------------------------------------------------------------------------


async def _timed(operation: Callable[[], Awaitable[Any]], count: int, cap: float) -> list[float]:
    samples = []
    deadline = time.perf_counter() + cap
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        await operation()
        samples.append((clock() - started) / 1e9)
        if time.perf_counter() > deadline:
            break
    return samples


async def run_repeat(ctx: Context) -> list[Row]:
    config = ctx.config
    rows = []
    ctx.reset_server()
    for contender in ctx.contenders:
        ctx.settle()
        arn = ctx.role("s3", contender)
        await contender.repeat_assume(arn)  # the first call; the rest are repeats

        async def repeat(contender: Contender = contender, arn: str = arn) -> None:
            await contender.repeat_assume(arn)

        samples = await _timed(repeat, config.repeat_calls, config.micro_time_cap)
        calls = ctx.sts.assume_role_calls(arn)
        workload = f"{_n(len(samples))} calls"
        if len(samples) < config.repeat_calls:
            workload += " (time bound)"
        rows.append(
            Row(
                "S3",
                contender.key,
                workload,
                headline=median(samples),
                sts_calls=len(calls),
                median=median(samples),
                p99=percentile(samples, 0.99),
            )
        )
    return rows


# --- S4 ---------------------------------------------------------------------------------


async def run_client_ratio(ctx: Context) -> list[Row]:
    config = ctx.config
    rows = []
    ctx.reset_server()
    for contender in ctx.contenders:
        ctx.settle()
        arn = ctx.role("s4", contender)
        await contender.parent_client()
        await contender.role_client(arn)
        on_parent: list[float] = []
        on_role: list[float] = []
        deadline = time.perf_counter() + config.micro_time_cap
        for _ in range(config.client_pairs):
            # Interleaved, so that drift (GC, caches, frequency) hits both sides alike.
            on_parent += await _timed(contender.parent_client, 1, math.inf)
            on_role += await _timed(functools.partial(contender.role_client, arn), 1, math.inf)
            if time.perf_counter() > deadline:
                break
        parent_median, role_median = median(on_parent), median(on_role)
        ratio = role_median / parent_median if parent_median and role_median else None
        workload = f"{len(on_role)} pairs"
        if len(on_role) < config.client_pairs:
            workload += " (time bound)"
        rows.append(
            Row(
                "S4",
                contender.key,
                workload,
                headline=ratio,
                sts_calls=len(ctx.sts.assume_role_calls(arn)),
                median=role_median,
                p99=percentile(on_role, 0.99),
                extra={"parent_median": parent_median},
            )
        )
    return rows


# --- S5 ---------------------------------------------------------------------------------


async def _lag_of_traffic(ctx: Context, handle: Any) -> tuple[float, TaskRun]:
    """The worst loop lag while ``lag_rate`` req/s await ``handle``'s credentials."""
    config = ctx.config

    async def request(send: bool) -> Use:
        use: Use = await handle.credentials()
        return use

    async with LoopLagMonitor() as lag:
        run = await run_traffic(
            request,
            rate=config.lag_rate,
            duration=config.lag_seconds,
            send_every=1,
            max_in_flight=config.lag_rate,
            grace=config.traffic_grace,
        )
    return lag.max_lag, run


async def run_loop_lag(ctx: Context) -> list[Row]:
    """What a refresh in flight adds to the loop lag of the same traffic.

    Each repeat runs the same traffic twice, in turn: on fresh credentials (the in-run
    baseline: the traffic's own load) and on expired ones, whose refresh then waits
    ``lag_latency`` for STS. The figure is the difference of the two worst lags; its
    median over the repeats is the headline, its largest value is shown beside it.
    """
    config = ctx.config
    rows = []
    handles = await _expired_handles(ctx, "s5", config.lag_repeats)
    fresh_handles = []
    for contender in ctx.contenders:
        handle = await contender.role_handle(ctx.role("s5-fresh", contender))
        await handle.credentials()  # long-lived from now on: no refresh in the baseline
        fresh_handles.append(handle)
    ctx.sts.set_latency(config.lag_latency)
    try:
        for contender, mine, fresh in zip(ctx.contenders, handles, fresh_handles, strict=True):
            ctx.settle()
            baselines, with_refresh, excess = [], [], []
            latencies, failed, calls_made, notes, started = [], 0, 0, [], 0
            for index, (arn, handle) in enumerate(mine):
                before = len(ctx.sts.assume_role_calls(arn))
                # Alternate which goes first, so that drift in the machine's load hits
                # both sides alike.
                if index % 2 == 0:
                    baseline, _ = await _lag_of_traffic(ctx, fresh)
                    lag, run = await _lag_of_traffic(ctx, handle)
                else:
                    lag, run = await _lag_of_traffic(ctx, handle)
                    baseline, _ = await _lag_of_traffic(ctx, fresh)
                baselines.append(baseline)
                with_refresh.append(lag)
                excess.append(lag - baseline)
                calls = ctx.sts.assume_role_calls(arn)
                calls_made += len(calls) - before
                latencies += run.latencies
                started += run.started
                failed += run.failed + expired_uses(run.results, calls)
                notes += _error_note(run)
            rows.append(
                Row(
                    "S5",
                    contender.key,
                    f"{len(mine)} x ({_n(started / len(mine))} requests with a refresh in "
                    f"flight + the same without)",
                    headline=median(excess),
                    sts_calls=calls_made,
                    failed=failed,
                    median=median(latencies),
                    p99=percentile(latencies, 0.99),
                    max_lag=max(with_refresh),
                    notes=notes,
                    extra={
                        "worst_excess": max(excess),
                        "baseline_median": median(baselines),
                        "with_refresh_median": median(with_refresh),
                        "repeats": len(excess),
                    },
                )
            )
    finally:
        ctx.reset_server()
    return rows


# --- S6 ---------------------------------------------------------------------------------


def _per_lifetime(calls: list[AssumeRoleCall], lifetime: float, duration: float) -> float:
    """AssumeRole calls per credential lifetime, from the spacing of the calls.

    (calls - 1) intervals over the time from the first call to the last, so neither the
    first fetch nor where the run happens to stop skews the rate.
    """
    if len(calls) >= 2:
        span = calls[-1].time - calls[0].time
        if span > 0:
            return (len(calls) - 1) * lifetime / span
    return len(calls) * lifetime / duration


async def run_steady(ctx: Context) -> list[Row]:
    config = ctx.config
    scale = config.time_scale
    lifetime = 900.0 / scale
    duration = lifetime * config.steady_lifetimes
    rows = []
    ctx.reset_server()
    ctx.sts.set_credential_lifetime(lifetime)
    try:
        for contender in ctx.contenders:
            ctx.settle()
            arn = ctx.role("s6", contender)
            with botocore_time_scaled(scale):
                request = contender.traffic_request(arn, _scaled_policy(scale))
                async with LoopLagMonitor() as lag:
                    run = await run_traffic(
                        request,
                        rate=config.steady_rate,
                        duration=duration,
                        send_every=1,
                        max_in_flight=config.max_in_flight,
                        grace=config.traffic_grace,
                    )
            calls = ctx.sts.assume_role_calls(arn)
            row = Row(
                "S6",
                contender.key,
                _traffic_workload(run),
                headline=_per_lifetime(calls, lifetime, duration),
                sts_calls=len(calls),
                failed=run.failed + expired_uses(run.results, calls),
                max_lag=lag.max_lag,
                notes=_error_note(run),
            )
            _fill_latency(row, run)
            rows.append(row)
            await contender.close()
    finally:
        ctx.reset_server()
    return rows


# --- S7 ---------------------------------------------------------------------------------


class _Outage:
    """STS answers every AssumeRole with HTTP 500 for ``length`` seconds.

    The outage starts with the contender's first AssumeRole attempt after it has its
    credentials (faults are queued at once and the first one consumed marks the start:
    for this library that is when the advisory window opens) and ends ``length`` later.
    A thread keeps the time, because a contender that blocks the event loop must not
    stretch the outage.
    """

    QUEUED = 10_000  # more than any contender attempts in one outage

    def __init__(self, sts: RemoteSTS, length: float, give_up_after: float) -> None:
        self._sts = sts
        self._length = length
        self._give_up_after = give_up_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outage", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._give_up_after
        while self._sts.pending_faults() == self.QUEUED:
            if self._stop.wait(0.002) or time.monotonic() > deadline:
                self._sts.clear_faults()
                return
        self._stop.wait(self._length)
        self._sts.clear_faults()

    def __enter__(self) -> _Outage:
        self._sts.fail_next("5xx", self.QUEUED)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._sts.clear_faults()


async def run_outage(ctx: Context) -> list[Row]:
    config = ctx.config
    scale = config.time_scale
    lifetime = 900.0 / scale
    outage_length = 60.0 / scale
    rows = []
    ctx.reset_server()
    ctx.sts.set_credential_lifetime(lifetime)
    try:
        for contender in ctx.contenders:
            ctx.settle()
            arn = ctx.role("s7", contender)
            with botocore_time_scaled(scale):
                request = contender.traffic_request(arn, _scaled_policy(scale))
                # The first request fetches the credentials; traffic runs until they expire.
                fetched_at = time.time()
                first = await run_tasks(
                    functools.partial(request, True),
                    1,
                    concurrency=1,
                    admit_until=math.inf,
                    finish_within=config.traffic_grace,
                )
                async with LoopLagMonitor() as lag:
                    with _Outage(ctx.sts, outage_length, give_up_after=lifetime):
                        run = await run_traffic(
                            request,
                            rate=config.outage_rate,
                            duration=fetched_at + lifetime - time.time(),
                            send_every=config.outage_send_every,
                            max_in_flight=config.max_in_flight,
                            grace=config.traffic_grace,
                        )
            calls = ctx.sts.assume_role_calls(arn)
            failed_attempts = [call for call in calls if call.outcome == "5xx"]
            workload = _traffic_workload(run)
            if failed_attempts:
                began = (failed_attempts[0].time - calls[0].time) / lifetime
                workload += f"; outage began at {began:.0%} of the lifetime"
            row = Row(
                "S7",
                contender.key,
                workload,
                headline=len(failed_attempts),
                sts_calls=len(calls),
                failed=run.failed + first.failed + expired_uses(run.results, calls),
                max_lag=lag.max_lag,
                notes=_error_note(first) + _error_note(run),
            )
            _fill_latency(row, run)
            rows.append(row)
            await contender.close()
    finally:
        ctx.reset_server()
    return rows


# --- S8 ---------------------------------------------------------------------------------


async def run_hot_path(ctx: Context) -> list[Row]:
    config = ctx.config
    rows = []
    ctx.reset_server()
    for contender in ctx.contenders:
        ctx.settle()
        arn = ctx.role("s8", contender)
        handle = await contender.role_handle(arn)
        await handle.credentials()  # fresh, long-lived credentials from now on
        per_call: list[float] = []
        deadline = time.perf_counter() + config.hot_time_cap
        size = config.hot_batch_size
        clock = time.perf_counter_ns
        for _ in range(config.hot_batches):
            if handle.hot_path_sync is not None:
                get_sync = handle.hot_path_sync
                started = clock()
                for _ in range(size):
                    get_sync()
            else:
                get = handle.hot_path
                assert get is not None
                started = clock()
                for _ in range(size):
                    await get()
            per_call.append((clock() - started) / 1e9 / size)
            if time.perf_counter() > deadline:
                break
        rows.append(
            Row(
                "S8",
                contender.key,
                f"{_n(len(per_call) * size)} calls in batches of {size}",
                headline=median(per_call),
                sts_calls=len(ctx.sts.assume_role_calls(arn)),
                median=median(per_call),
                p99=percentile(per_call, 0.99),
            )
        )
    return rows


# --- the list ---------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


SCENARIOS = [
    Scenario(
        "S1",
        "10,000 concurrent tasks on expired credentials",
        "AssumeRole calls",
        "1 AssumeRole call",
        lambda row: row.headline == 1 and row.failed == 0,
        run_expired,
        lambda c: (
            f"one role session per contender, credentials fetched with a "
            f"{c.short_lifetime:g} s lifetime and left to expire; then {_n(c.expired_tasks)} "
            f"tasks at once each await the credentials the request signer awaits "
            f"(get_frozen_credentials); STS latency {_ms(c.sts_latency)}"
        ),
    ),
    Scenario(
        "S2",
        "10,000 `await assume_role(parent, arn)` then first use, same args",
        "AssumeRole calls",
        "1 AssumeRole call",
        lambda row: row.headline == 1 and row.failed == 0,
        run_per_request,
        lambda c: (
            f"{_n(c.per_request_tasks)} tasks each get a role session the per-request way "
            f"and use its credentials for the first time; all at once for this library; "
            f"anchors (one STS call per task) at most {c.anchor_concurrency} at a time and "
            f"none started after {c.anchor_admit_seconds:g} s"
        ),
    ),
    Scenario(
        "S3",
        "repeat `await assume_role(parent, arn)` (warm)",
        "median per call",
        "median <= 2 us",
        lambda row: row.headline is not None and row.headline <= 2e-6,
        run_repeat,
        lambda c: (
            f"after one first call, up to {_n(c.repeat_calls)} sequential repeat calls with "
            f"the same arguments, at most {c.micro_time_cap:g} s"
        ),
    ),
    Scenario(
        "S4",
        "`assume_role` + `create_client` on the child vs `create_client` on the parent",
        "ratio of medians",
        "<= 1.2x",
        lambda row: row.headline is not None and row.headline <= 1.2,
        run_client_ratio,
        lambda c: (
            f"up to {c.client_pairs} interleaved pairs (at most {c.micro_time_cap:g} s): "
            f"make and close an STS client on the warm parent; get the role session the "
            f"per-request way and make and close an STS client on it"
        ),
    ),
    Scenario(
        "S5",
        "event-loop stall while STS takes 200 ms to answer",
        "loop lag a refresh in flight adds (median of the repeats; worst beside it)",
        "adds <= 5 ms to the max loop lag",
        lambda row: row.headline is not None and row.headline <= 0.005,
        run_loop_lag,
        lambda c: (
            f"{c.lag_repeats} times, in turn: {_n(c.lag_rate)} req/s for {c.lag_seconds:g} s "
            f"of requests that await the credentials, once on fresh credentials (the "
            f"baseline: the traffic's own lag) and once on credentials expired as in S1 "
            f"with STS latency {_ms(c.lag_latency)} (the first request starts the "
            f"refresh); a ticker task measures how late a 1 ms sleep wakes up; the "
            f"figure is the worst lag with the refresh minus the worst lag without"
        ),
    ),
    Scenario(
        "S6",
        "900 s credentials, steady traffic",
        "AssumeRole calls per credential lifetime",
        "about 1 (met: <= 1.5, 0 failed)",
        lambda row: row.headline is not None and row.headline <= 1.5 and row.failed == 0,
        run_steady,
        lambda c: (
            f"time compressed {c.time_scale:g}x: credentials live {900 / c.time_scale:g} s; "
            f"{c.steady_rate:g} req/s for {c.steady_lifetimes} lifetimes; each request gets "
            f"its credentials the contender's way and sends a signed GetCallerIdentity. "
            f"This library refreshes in its advisory window (5 min before expiry for 900 s "
            f"credentials, the AWS tier), started later by a jitter of up to half the "
            f"4 min to the blocking window: at 600-720 s of 900, 1.36 calls per lifetime "
            f"on average by design"
        ),
    ),
    Scenario(
        "S7",
        "STS down for 60 s inside the advisory window, 1,000 req/s",
        "AssumeRole attempts during the outage",
        "0 failed requests, <= 10 STS attempts",
        lambda row: row.headline is not None and row.headline <= 10 and row.failed == 0,
        run_outage,
        lambda c: (
            f"time compressed {c.time_scale:g}x: credentials live {900 / c.time_scale:g} s; "
            f"a first request fetches the credentials, then {c.outage_rate:,.0f} req/s until "
            f"they expire; STS answers every AssumeRole with HTTP 500 for "
            f"{60 / c.time_scale:g} s (60 s scaled) from the contender's first refresh "
            f"attempt on (this library's: when its advisory window opens, 5 min scaled "
            f"before expiry, jittered later by up to half the time to the blocking window: "
            f"at 67-80% of the lifetime, so the outage ends before its blocking window, "
            f"1 min scaled before expiry, at 93%); each "
            f"request gets its credentials the contender's way and every "
            f"{c.outage_send_every}th also sends a signed GetCallerIdentity"
        ),
    ),
    Scenario(
        "S8",
        "hot path `get_frozen_credentials()` when fresh",
        "median per call",
        "<= 2 us median",
        lambda row: row.headline is not None and row.headline <= 2e-6,
        run_hot_path,
        lambda c: (
            f"fresh long-lived credentials; up to {c.hot_batches} batches of "
            f"{c.hot_batch_size} back-to-back calls (at most {c.hot_time_cap:g} s); "
            f"median of the per-call time of each batch"
        ),
    ),
]

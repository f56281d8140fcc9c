"""Issue 11 item 10: static stability, non-recoverable errors, a throttled first fetch, and
memory, each beside the same anchors as S1-S8.

* R1: STS answers HTTP 500 from just after the first fetch until after the credentials
  expired, under steady traffic; time compressed like S6 and S7 (see ``_scaled_policy``).
* R2: STS answers AccessDenied for a few seconds, then allows; a caller retries until it
  gets credentials. Real time, default policy (full mode).
* R3: the first AssumeRole is answered with Throttling; steady traffic from the start.
* R4: parents made, used (one first fetch of a child's credentials each) and dropped in
  one running loop: objects the garbage collector tracks, and RSS, before and after.

Faults come from the loopback STS (``fail_next``); a fault that lasts a while is a queue
of faults the benchmark clears when the time is up (:class:`_TimedFault`), as S7 does.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from _contenders import THIS, Contender
from _measure import LoopLagMonitor, TaskRun, Use, botocore_time_scaled, run_tasks, run_traffic
from _scenarios import (
    Config,
    Context,
    Row,
    Scenario,
    _error_note,
    _fill_latency,
    _n,
    _scaled_policy,
    _traffic_workload,
    expired_uses,
)
from _sts_process import RemoteSTS
from aio_assume_role_lib import RefreshPolicy


@dataclass(frozen=True)
class StabilityConfig:
    time_scale: float  # R1: real seconds = scenario seconds / time_scale
    outage_rate: float  # R1: requests per second
    outage_sts_latency: float  # R1: real seconds (not scaled: see the workload text)
    outage_past_expiry: float  # R1: scenario seconds the outage lasts past the expiry
    recovery_watch: float  # R1: scenario seconds of traffic after STS is back
    deny_seconds: float  # R2: real seconds of AccessDenied
    deny_scale: float  # R2: the policy's error memory is divided by this (1: real)
    retry_every: float  # R2: the caller's pause between two tries, real seconds
    retry_give_up: float  # R2: the caller stops this many seconds after the deny ends
    deny_repeats: int  # R2: runs for this library (its error memory is jittered)
    deny_repeats_anchors: int  # R2: runs for each anchor
    throttle_rate: float  # R3: requests per second
    throttle_seconds: float  # R3
    parents: int  # R4
    parents_warm_up: int  # R4
    parents_time_cap: float  # R4: no new parent after this many seconds (this library)
    parents_time_cap_anchors: float  # R4: the same for each anchor


FULL = StabilityConfig(
    time_scale=100.0, outage_rate=1_000.0, outage_sts_latency=0.001, outage_past_expiry=60.0,
    recovery_watch=30.0, deny_seconds=4.0, deny_scale=1.0, retry_every=0.1, retry_give_up=15.0,
    deny_repeats=5, deny_repeats_anchors=1, throttle_rate=100.0, throttle_seconds=2.0,
    parents=1_000, parents_warm_up=20, parents_time_cap=180.0, parents_time_cap_anchors=6.0,
)  # fmt: skip
SMOKE = StabilityConfig(
    time_scale=1_000.0, outage_rate=200.0, outage_sts_latency=0.001, outage_past_expiry=60.0,
    recovery_watch=60.0, deny_seconds=0.4, deny_scale=10.0, retry_every=0.01, retry_give_up=3.0,
    deny_repeats=1, deny_repeats_anchors=1, throttle_rate=30.0, throttle_seconds=0.5,
    parents=5, parents_warm_up=2, parents_time_cap=3.0, parents_time_cap_anchors=1.0,
)  # fmt: skip


def stability_config(config: Config) -> StabilityConfig:
    return SMOKE if config.name == "smoke" else FULL


class _TimedFault:
    """STS answers every AssumeRole with ``fault`` from ``start()`` until ``end_at``.

    A thread keeps the time, so that a contender blocking the event loop cannot stretch
    the fault. ``ended_at`` is the wall-clock time (``time.time()``, the clock of the
    server's records) just before the fault was lifted: every call the server answers
    without the fault is recorded at or after it. (Taken after the lifting, it missed
    the calls answered while the reply to the lifting came back: a contender retrying
    every few milliseconds, as this library does with expired credentials, got its fresh
    key in that gap, which counted as issued during the outage, and R1 then reported
    "no fresh credentials" for a recovery of a few milliseconds.)
    """

    QUEUED = 10_000  # more than any contender attempts in one fault

    def __init__(self, sts: RemoteSTS, fault: str) -> None:
        self._sts = sts
        self._fault = fault
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def start(self, length: float) -> None:
        self._sts.fail_next(self._fault, self.QUEUED)
        self.started_at = time.time()
        self._thread = threading.Thread(
            target=self._run, args=(length,), name="timed-fault", daemon=True
        )
        self._thread.start()

    def _run(self, length: float) -> None:
        self._stop.wait(length)
        self.ended_at = time.time()
        self._sts.clear_faults()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.ended_at is None:
            self.ended_at = time.time()
        self._sts.clear_faults()


def _recorded(request: Callable[[bool], Awaitable[Use]], errors_at: list[float]) -> Any:
    """``request``, noting the wall-clock time each failed request started."""

    async def recorded(send: bool) -> Use:
        started = time.time()
        try:
            return await request(send)
        except Exception:
            errors_at.append(started)
            raise

    return recorded


# --- R1 ---------------------------------------------------------------------------------


async def run_outage_past_expiry(ctx: Context) -> list[Row]:
    config = stability_config(ctx.config)
    scale = config.time_scale
    lifetime = 900.0 / scale
    rows = []
    ctx.reset_server()
    ctx.sts.set_credential_lifetime(lifetime)
    ctx.sts.set_latency(config.outage_sts_latency)
    try:
        for contender in ctx.contenders:
            ctx.settle()
            arn = ctx.role("r1", contender)
            errors_at: list[float] = []
            with botocore_time_scaled(scale):
                request = _recorded(
                    contender.traffic_request(arn, _scaled_policy(scale)), errors_at
                )
                first = await run_tasks(
                    functools.partial(request, False),
                    1,
                    concurrency=1,
                    admit_until=math.inf,
                    finish_within=10.0,
                )
                calls = ctx.sts.assume_role_calls(arn)
                expiry = calls[-1].expiration if calls else time.time() + lifetime
                assert expiry is not None
                outage = _TimedFault(ctx.sts, "5xx")
                # From just after the first fetch until outage_past_expiry after expiry.
                outage.start(expiry + config.outage_past_expiry / scale - time.time())
                try:
                    async with LoopLagMonitor() as lag:
                        run = await run_traffic(
                            request,
                            rate=config.outage_rate,
                            duration=expiry
                            + (config.outage_past_expiry + config.recovery_watch) / scale
                            - time.time(),
                            send_every=2**62,  # credentials only: see the workload text
                            max_in_flight=ctx.config.max_in_flight,
                            grace=ctx.config.traffic_grace,
                        )
                finally:
                    outage.stop()
            calls = ctx.sts.assume_role_calls(arn)
            assert outage.started_at is not None
            assert outage.ended_at is not None
            during = [c for c in calls if outage.started_at <= c.time < outage.ended_at]
            fresh_keys = {
                c.issued_access_key_id
                for c in calls
                if c.outcome == "ok" and c.time >= outage.ended_at
            }
            fresh_uses = [u.at for u in run.results if u.access_key in fresh_keys]
            recovery = (min(fresh_uses) - outage.ended_at) * scale if fresh_uses else None
            valid_uses = [u for u in run.results if u.at < expiry]
            failed_while_valid = sum(1 for at in errors_at if at < expiry) + expired_uses(
                valid_uses, calls
            )
            workload = _traffic_workload(run)
            if recovery is None:
                workload += "; no fresh credentials before the run ended"
            rows.append(
                _r1_row(contender, workload, failed_while_valid, recovery, during, calls, run)
            )
            rows[-1].failed = first.failed + failed_while_valid
            rows[-1].notes = _error_note(first) + _error_note(run)
            rows[-1].extra["failed_after_expiry"] = sum(1 for at in errors_at if at >= expiry)
            rows[-1].max_lag = lag.max_lag
            await contender.close()
    finally:
        ctx.reset_server()
    return rows


def _r1_row(
    contender: Contender,
    workload: str,
    failed_while_valid: int,
    recovery: float | None,
    during: list[Any],
    calls: list[Any],
    run: TaskRun,
) -> Row:
    row = Row(
        "R1",
        contender.key,
        workload,
        headline=float(failed_while_valid),
        sts_calls=len(calls),
        extra={"recovery_seconds": recovery, "outage_attempts": len(during)},
    )
    _fill_latency(row, run)
    return row


# --- R2 ---------------------------------------------------------------------------------


async def _retry_until_success(
    request: Callable[[bool], Awaitable[Use]], pause: float, give_up_at: float
) -> tuple[float | None, int]:
    """Call ``request`` until it succeeds; (wall-clock time of success or None, tries)."""
    tries = 0
    while time.monotonic() < give_up_at:
        tries += 1
        try:
            await request(False)
        except Exception:
            await asyncio.sleep(pause)
            continue
        return time.time(), tries
    return None, tries


async def run_denied_then_allowed(ctx: Context) -> list[Row]:
    config = stability_config(ctx.config)
    policy = None
    if config.deny_scale != 1:
        default = RefreshPolicy()
        policy = RefreshPolicy(
            error_memory_min_seconds=default.error_memory_min_seconds / config.deny_scale,
            error_memory_max_seconds=default.error_memory_max_seconds / config.deny_scale,
        )
    rows = []
    ctx.reset_server()
    try:
        for contender in ctx.contenders:
            ctx.settle()
            waits: list[float] = []
            tries = 0
            attempts = 0
            gave_up = 0
            repeats = config.deny_repeats if contender.key == THIS else config.deny_repeats_anchors
            for _ in range(repeats):
                arn = ctx.role("r2", contender)
                request = contender.traffic_request(arn, policy)
                deny = _TimedFault(ctx.sts, "access_denied")
                deny.start(config.deny_seconds)
                try:
                    succeeded_at, made = await _retry_until_success(
                        request,
                        config.retry_every,
                        time.monotonic() + config.deny_seconds + config.retry_give_up,
                    )
                finally:
                    deny.stop()
                assert deny.started_at is not None
                tries += made
                attempts += len(ctx.sts.assume_role_calls(arn))
                if succeeded_at is None:
                    gave_up += 1
                else:
                    # From the moment STS allows again (the denial ends on its timer).
                    waits.append(succeeded_at - deny.started_at - config.deny_seconds)
                await contender.close()
            ordered = sorted(waits)
            median = ordered[len(ordered) // 2] if ordered else None
            workload = f"{repeats} run(s), {_n(tries)} caller tries in all"
            if gave_up:
                workload += f"; {gave_up} gave up after {config.retry_give_up:g} s more"
            rows.append(
                Row(
                    "R2",
                    contender.key,
                    workload,
                    headline=median,
                    sts_calls=attempts,
                    failed=gave_up,
                    extra={"worst": max(waits) if waits else None, "waits": waits},
                )
            )
    finally:
        ctx.reset_server()
    return rows


# --- R3 ---------------------------------------------------------------------------------


async def run_throttled_first_fetch(ctx: Context) -> list[Row]:
    config = stability_config(ctx.config)
    rows = []
    ctx.reset_server()
    try:
        for contender in ctx.contenders:
            ctx.settle()
            arn = ctx.role("r3", contender)
            request = contender.traffic_request(arn, None)
            ctx.sts.clear_faults()
            ctx.sts.fail_next("throttling", 1)
            async with LoopLagMonitor() as lag:
                run = await run_traffic(
                    request,
                    rate=config.throttle_rate,
                    duration=config.throttle_seconds,
                    send_every=ctx.config.outage_send_every,
                    max_in_flight=ctx.config.max_in_flight,
                    grace=ctx.config.traffic_grace,
                )
            unused = ctx.sts.pending_faults()
            ctx.sts.clear_faults()
            calls = ctx.sts.assume_role_calls(arn)
            failed = run.failed + expired_uses(run.results, calls)
            workload = _traffic_workload(run)
            if unused:
                workload += "; the Throttling answer was never consumed"
            row = Row(
                "R3",
                contender.key,
                workload,
                headline=float(failed),
                sts_calls=len(calls),
                failed=failed,
                max_lag=lag.max_lag,
                notes=_error_note(run),
                extra={"throttled": sum(1 for c in calls if c.outcome == "throttling")},
            )
            _fill_latency(row, run)
            rows.append(row)
            await contender.close()
    finally:
        ctx.reset_server()
    return rows


# --- R4 ---------------------------------------------------------------------------------


def _rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _tracked_objects() -> int:
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


async def run_parents_dropped(ctx: Context) -> list[Row]:
    config = stability_config(ctx.config)
    rows = []
    ctx.reset_server()
    ctx.sts.set_latency(0.001)
    try:
        for contender in ctx.contenders:
            ctx.settle()
            arn = ctx.role("r4", contender)
            errors = 0
            for _ in range(config.parents_warm_up):  # caches a running service has filled
                await contender.fresh_parent_credentials(arn)
            await asyncio.sleep(0.05)  # let finished tasks and callbacks go
            objects_before = _tracked_objects()
            rss_before = _rss()
            made = 0
            cap = (
                config.parents_time_cap
                if contender.key == THIS
                else config.parents_time_cap_anchors
            )
            started = time.perf_counter()
            deadline = started + cap
            # A checkpoint halfway (in count, or in time if time bound): the growth from
            # there on is what keeps growing; bounded caches fill up in the first half.
            halfway_at = started + cap / 2
            made_at_half = objects_at_half = None
            for _ in range(config.parents):
                made += 1
                try:
                    await contender.fresh_parent_credentials(arn)
                except Exception:
                    errors += 1
                now = time.perf_counter()
                if made_at_half is None and (made * 2 >= config.parents or now > halfway_at):
                    await asyncio.sleep(0.05)
                    made_at_half, objects_at_half = made, _tracked_objects()
                if now > deadline:
                    break
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.05)
            objects_after = _tracked_objects()
            rss_after = _rss()
            assert made_at_half is not None
            assert objects_at_half is not None
            second_half = made - made_at_half
            per_parent = (objects_after - objects_at_half) / second_half if second_half else None
            workload = f"{_n(made)} parents in {elapsed:.1f} s"
            if made < config.parents:
                workload += f" of {_n(config.parents)} (time bound)"
            rows.append(
                Row(
                    "R4",
                    contender.key,
                    workload,
                    headline=per_parent,
                    sts_calls=len(ctx.sts.assume_role_calls(arn)),
                    failed=errors,
                    extra={
                        "parents": made,
                        "objects_before": objects_before,
                        "objects_at_half": objects_at_half,
                        "second_half": second_half,
                        "objects_after": objects_after,
                        "rss_before": rss_before,
                        "rss_after": rss_after,
                    },
                )
            )
            await contender.close()
    finally:
        ctx.reset_server()
    return rows


# --- the list ---------------------------------------------------------------------------


def _r4_met(row: Row) -> bool:
    return row.headline is not None and row.headline < 1 and not row.failed


def _r1_met(row: Row) -> bool:
    recovery = row.extra.get("recovery_seconds")
    return row.headline == 0 and recovery is not None and recovery <= 5 and not row.failed


STABILITY_SCENARIOS = [
    Scenario(
        "R1",
        "STS down from just after the first fetch until after expiry, steady traffic",
        "failed requests while the credentials were valid; seconds from STS recovery to "
        "fresh credentials (scenario time); STS attempts during the outage",
        "0 failed while valid, fresh credentials <= 5 s after recovery",
        _r1_met,
        run_outage_past_expiry,
        lambda c: (
            f"time compressed {stability_config(c).time_scale:g}x as in S6 and S7 "
            f"(credentials live {900 / stability_config(c).time_scale:g} s = 900 s; this "
            f"library's RefreshPolicy scaled the same way); a first request fetches the "
            f"credentials, then STS answers every AssumeRole with HTTP 500 until "
            f"{stability_config(c).outage_past_expiry:g} s (scenario time) after they "
            f"expire; {stability_config(c).outage_rate:,.0f} req/s throughout and "
            f"{stability_config(c).recovery_watch:g} s (scenario time) after STS is back; "
            f"each request gets its credentials the contender's way (no API call, whose "
            f"rejection after expiry would hide the figure); STS latency "
            f"{stability_config(c).outage_sts_latency * 1e3:g} ms real "
            f"({stability_config(c).outage_sts_latency * stability_config(c).time_scale:g} s "
            f"at scenario time; not scaled further). Recovery is the time from the fault "
            f"being lifted to the first request that got credentials STS issued after it, "
            f"multiplied back by the scale; failed while valid counts requests that raised, "
            f"started before the expiry, plus uses before the expiry of keys STS never "
            f"issued validly"
        ),
    ),
    Scenario(
        "R2",
        "AccessDenied for 4 s, then allowed: a retrying caller",
        "seconds from STS allowing again to the caller's first success (median of the "
        "runs; worst beside it)",
        "<= 5.5 s (met: every run)",
        lambda row: (row.extra.get("worst") or math.inf) <= 5.5 and not row.failed,
        run_denied_then_allowed,
        lambda c: (
            f"{stability_config(c).deny_repeats} runs for this library (its error memory is "
            f"jittered), {stability_config(c).deny_repeats_anchors} for each anchor, each on "
            f"a new role: STS answers every "
            f"AssumeRole with AccessDenied for {stability_config(c).deny_seconds:g} s, then "
            f"allows it; one caller tries to get credentials the contender's way (a "
            f"request as in S6), pausing {stability_config(c).retry_every * 1e3:g} ms after "
            f"each failure; real time, default RefreshPolicy"
            + (
                ""
                if stability_config(c).deny_scale == 1
                else f" with its error memory divided by {stability_config(c).deny_scale:g}"
            )
        ),
    ),
    Scenario(
        "R3",
        "one Throttling answer to the first fetch, steady traffic",
        "failed requests",
        "0 failed requests",
        lambda row: row.headline == 0,
        run_throttled_first_fetch,
        lambda c: (
            f"STS answers the first AssumeRole with Throttling (HTTP 400), then normally; "
            f"{stability_config(c).throttle_rate:g} req/s for "
            f"{stability_config(c).throttle_seconds:g} s from the start, each getting "
            f"credentials the contender's way, every {c.outage_send_every}th also sending "
            f"a signed GetCallerIdentity; real time, default RefreshPolicy"
        ),
    ),
    Scenario(
        "R4",
        "1,000 parents made, used and dropped in one running loop",
        "objects tracked by the garbage collector: growth per parent over the second half",
        "flat (< 1 object left per parent)",
        _r4_met,
        run_parents_dropped,
        lambda c: (
            f"after {stability_config(c).parents_warm_up} warm-up parents, "
            f"{_n(stability_config(c).parents)} times in a row (at most "
            f"{stability_config(c).parents_time_cap:g} s for this library, "
            f"{stability_config(c).parents_time_cap_anchors:g} s for each anchor): a new "
            f"parent session (sharing one botocore data loader, as a service making many "
            f"sessions would), a role session from it, one first fetch of its credentials, "
            f"everything dropped; "
            f"`gc.collect()` twice, then `len(gc.get_objects())` and RSS before and after "
            f"(objects frozen before the scenario are not counted) and halfway (in count, "
            f"or in time when time bound); the figure is the growth from halfway to the "
            f"end divided by the parents made in that second half (bounded caches fill "
            f"up in the first); STS latency 1 ms"
        ),
    ),
]


def format_stability(scenario: str, row: Row) -> str | None:
    """The headline cell of an R scenario (None: not one of them)."""
    value = row.headline
    if value is None:
        return "n/a" if scenario.startswith("R") else None
    if scenario == "R1":
        recovery = row.extra.get("recovery_seconds")
        back = "no fresh credentials" if recovery is None else f"fresh {recovery:.2f} s after"
        return (
            f"{value:,.0f} failed while valid, {back}, "
            f"{row.extra.get('outage_attempts', 0):,} attempts"
        )
    if scenario == "R2":
        worst = row.extra.get("worst")
        text = f"{value:.2f} s" + (f" (worst {worst:.2f} s)" if worst is not None else "")
        return text + (f", {row.failed} gave up" if row.failed else "")
    if scenario == "R3":
        return f"{value:,.0f} failed"
    if scenario == "R4":
        extra = row.extra
        rss = (extra["rss_after"] - extra["rss_before"]) / 2**20
        total = extra["objects_after"] - extra["objects_before"]
        return (
            f"{value:+.2f} objects per parent over the last {extra['second_half']:,} "
            f"({total:+,} for all {extra['parents']:,}), RSS {rss:+,.1f} MiB"
            + (f", {row.failed} failed" if row.failed else "")
        )
    return None

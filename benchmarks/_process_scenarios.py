"""Many worker processes on one host, sharing refreshes through ``JSONFileCache``.

* M1: 8 worker processes (real ones, each its own interpreter) under steady traffic for
  5 credential lifetimes of short credentials; AssumeRole calls per lifetime with a
  shared ``JSONFileCache`` directory (its lock on) vs no cache (each process alone).
* M2: the lock's cost on the hot path: the median ``get_frozen_credentials()`` on fresh
  credentials with ``JSONFileCache(lock=True)`` vs no cache, in this process. The lock
  is taken only to refresh, so the two should be the same.

This file is also the worker: ``python _process_scenarios.py --worker '<json>'``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, NamedTuple

from _scenarios import ACCOUNT, Config, Context, Row, Scenario
from _sections import Measured, comparison_section

SHARED = "shared-cache"
ALONE = "no-cache"
LOCKED = "lock-on"
LABELS = {
    SHARED: "shared JSONFileCache (lock on)",
    ALONE: "no cache (each process alone)",
    LOCKED: "JSONFileCache(lock=True)",
}
PROCESSES = 8


class _Settings(NamedTuple):
    processes: int
    lifetime: float  # of the credentials STS issues, seconds
    lifetimes: int  # how many the traffic lasts
    samples: int  # M2's hot-path calls


def _settings(config: Config) -> _Settings:
    if config.name == "smoke":
        return _Settings(processes=3, lifetime=2.0, lifetimes=2, samples=2_000)
    return _Settings(processes=PROCESSES, lifetime=5.0, lifetimes=5, samples=20_000)


# --- the worker process -----------------------------------------------------------------------


async def _worker(options: dict[str, Any]) -> dict[str, Any]:
    from aiobotocore.session import AioSession

    from aio_assume_role_lib import JSONFileCache, assume_role

    parent = AioSession()
    async with parent.create_client("sts"):  # load the model before the clock starts
        pass
    cache = JSONFileCache(options["cache"]) if options["cache"] else None
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every worker starts at once
    child = await assume_role(parent, options["role"], RoleSessionName="bench", cache=cache)
    credentials = await child.get_credentials()
    errors = 0
    end = time.monotonic() + options["run_seconds"]
    while time.monotonic() < end:
        try:
            await credentials.get_frozen_credentials()
        except Exception:
            errors += 1
        await asyncio.sleep(options["interval"])
    return {"errors": errors}


def _start(options: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps(options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _run_processes(options: dict[str, Any], count: int, within: float) -> tuple[float, int]:
    """Run ``count`` workers; return (the moment they were told to go, errors)."""
    processes = [_start(options) for _ in range(count)]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a benchmark worker process failed to start")
        went = time.time()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        errors = 0
        for process in processes:
            out, _ = process.communicate(timeout=within)
            errors += json.loads(out.strip().splitlines()[-1])["errors"]
        return went, errors
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def run_processes(context: Context) -> list[Row]:
    count, lifetime, lifetimes, _ = _settings(context.config)
    context.sts.set_credential_lifetime(lifetime)
    roles = {key: f"arn:aws:iam::{ACCOUNT}:role/bench-M1-{key}" for key in (SHARED, ALONE)}
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="aio-arl-bench-cache-") as directory:
            # Both sets of processes at once: the counts do not depend on the machine's
            # load, and the scenario takes half as long.
            outcomes = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        _run_processes,
                        {
                            "role": roles[key],
                            "cache": directory if key == SHARED else None,
                            "run_seconds": lifetime * lifetimes,
                            "interval": 0.05,
                        },
                        count,
                        lifetime * lifetimes + 60,
                    )
                    for key in (SHARED, ALONE)
                )
            )
        for key, (went, errors) in zip((SHARED, ALONE), outcomes, strict=True):
            calls = [c for c in context.sts.assume_role_calls(roles[key]) if c.outcome == "ok"]
            # The start-up's calls: those in the first half of the first lifetime.
            first = min((call.time for call in calls), default=went)
            cold = sum(1 for call in calls if call.time < first + lifetime / 2)
            rows.append(
                Row(
                    "M1",
                    key,
                    f"{count} processes, {lifetimes} lifetimes of {lifetime:g} s",
                    len(calls) / lifetimes,
                    sts_calls=len(calls),
                    failed=errors,
                    extra={"cold_start_calls": cold},
                )
            )
    finally:
        context.reset_server()
    return rows


# --- the hot path --------------------------------------------------------------------------


async def _hot_median(cache: Any, role: str, samples: int) -> float:
    from aiobotocore.session import AioSession

    from aio_assume_role_lib import assume_role

    child = await assume_role(AioSession(), role, RoleSessionName="bench", cache=cache)
    credentials = await child.get_credentials()
    get = credentials.get_frozen_credentials
    await get()  # the refresh: not on the hot path
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        await get()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def run_hot_path(context: Context) -> list[Row]:
    from aio_assume_role_lib import JSONFileCache

    samples = _settings(context.config).samples
    rows = []
    with tempfile.TemporaryDirectory(prefix="aio-arl-bench-cache-") as directory:
        for key, cache in ((LOCKED, JSONFileCache(directory)), (ALONE, None)):
            role = f"arn:aws:iam::{ACCOUNT}:role/bench-M2-{key}"
            context.settle()
            median = await _hot_median(cache, role, samples)
            rows.append(Row("M2", key, f"{samples:,} sequential calls, fresh credentials", median))
    return rows


PROCESS_SCENARIOS = [
    Scenario(
        "M1",
        f"{PROCESSES} worker processes, steady traffic, one role",
        "AssumeRole calls per credential lifetime (start-up included)",
        "1 per lifetime (vs 8 without the shared cache)",
        lambda row: row.headline is not None and row.headline <= 1.5 and not row.failed,
        run_processes,
        lambda c: (
            f"{_settings(c).processes} processes (each its own interpreter), each asking for "
            f"credentials every 50 ms for {_settings(c).lifetimes} lifetimes of "
            f"{_settings(c).lifetime:g} "
            "s credentials; all start at once on an empty cache directory"
        ),
    ),
    Scenario(
        "M2",
        "the lock's cost on the hot path",
        "median `get_frozen_credentials()`",
        "none: the same as without a cache",
        lambda row: True,  # judged against the no-cache row in the table
        run_hot_path,
        lambda c: f"{_settings(c).samples:,} sequential calls on fresh credentials",
    ),
]


def _cell(row: Row) -> str:
    if row.headline is None:
        return "n/a"
    if row.scenario == "M1":
        text = (
            f"{row.headline:.1f} per lifetime ({row.sts_calls} calls, "
            f"{row.extra.get('cold_start_calls')} at start-up)"
        )
        return text + (f", {row.failed} failed" if row.failed else "")
    return f"{row.headline * 1e6:.2f} µs"


def _verdict(scenario: Scenario, ours: list[Row], others: list[Row]) -> bool | None:
    if not ours:
        return None
    if scenario.id == "M2":  # no target of its own: the same as without a cache
        mine, alone = ours[0].headline, others[0].headline if others else None
        return mine is not None and alone is not None and mine <= alone * 1.2
    return all(scenario.met(row) for row in ours)


def render_process_section(measured: Measured, config: Config) -> list[str]:
    """The many-processes section of docs/benchmarks.md (nothing if no M scenario ran)."""
    return comparison_section(
        measured,
        config,
        heading="Many processes: one refresh per host",
        intro=(
            "Worker processes of one host sharing a `JSONFileCache` directory (see the "
            "guide *Many processes*), beside the same processes without a cache."
        ),
        scenarios=PROCESS_SCENARIOS,
        ours_header="this library, shared cache",
        is_ours=lambda row: row.contender in (SHARED, LOCKED),
        label=lambda row: LABELS[row.contender],
        cell=_cell,
        verdict=_verdict,
    )


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    print(json.dumps(asyncio.run(_worker(json.loads(sys.argv[2])))), flush=True)

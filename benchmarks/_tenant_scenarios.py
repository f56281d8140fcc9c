"""Group T: many tenants on one parent (issue 21), each contender in a fresh process.

* T1: TENANTS tenants x 3 rounds, each use fetching the tenant's credentials
  (``get_credentials()`` + ``get_frozen_credentials()``): AssumeRole calls, CPU per new
  tenant (round 1) beside the CPU of one bare AssumeRole request on a warm client (what
  every contender pays per new tenant: the STS round trip), CPU per known tenant (rounds
  2 and 3).
* T2: memory per cached tenant (tracemalloc, and RSS growth) after TENANTS tenants were
  made and used once, at 1,000 and 10,000.
* T4: 100,000 distinct tenants streamed once each (``assume_role`` only: 100,000 STS
  calls would take minutes): memory sampled every tenth of the way; it stops growing at
  the configured limits (10,000 by default).

Contenders: this library; this library before issue 21 (extracted from git at
``BASELINE_REF``, skipped where git or the commit is not available); a hand-written dict
of children, each an ``AioSession`` with aiobotocore's own deferred assume-role
credentials (what users write without this library). CPU is ``time.process_time()`` of
the contender's process; the STS endpoint runs in another process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aio_assume_role_lib
from _scenarios import Config, Context, Row, Scenario
from _sections import Measured, comparison_section

LIBRARY = "library"
BEFORE = "before"
DICT = "dict"
LABELS = {
    LIBRARY: "this library",
    BEFORE: "this library before issue 21",
    DICT: "hand-written dict of children",
}
# The last commit before issue 21's change (MAX_SHARED_PER_PARENT = 256, whole children).
BASELINE_REF = "14a38ede66e7604f7548691c3ec0674ebba3cf55"
ACCOUNT = "111111111111"
WORKER = Path(__file__).resolve().parent / "_tenant_worker.py"
_THIS_SRC = Path(aio_assume_role_lib.__file__).resolve().parent.parent


def _sizes(config: Config) -> dict[str, int]:
    if config.name == "smoke":
        return {"t1": 20, "t1_slow": 20, "t1_dict": 10, "t2": 20, "t2_large": 40, "t4": 400}
    # The contenders that make an STS call per use (the library before the change past
    # 256 tenants; a fresh STS client per fetch for the dict) run fewer tenants in T1.
    return {
        "t1": 10_000,
        "t1_slow": 1_000,
        "t1_dict": 200,
        "t2": 1_000,
        "t2_large": 10_000,
        "t4": 100_000,
    }


_baseline_dir: Path | None = None


def _baseline_src() -> Path | None:
    """The library before issue 21, extracted once per run (None if not available)."""
    global _baseline_dir
    if _baseline_dir is not None:
        return _baseline_dir
    root = Path(__file__).resolve().parent.parent
    target = Path(tempfile.mkdtemp(prefix="aio-arl-bench-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", BASELINE_REF, "src/aio_assume_role_lib"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    _baseline_dir = target / "src"
    return _baseline_dir


async def _run_worker(
    ctx: Context, mode: str, phase: str, tenants: int, rounds: int, role_arn: str
) -> dict[str, Any] | None:
    if mode == BEFORE:
        src = _baseline_src()
        if src is None:
            return None
    else:
        src = _THIS_SRC
    env = dict(os.environ, PYTHONPATH=str(src))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "library" if mode in (LIBRARY, BEFORE) else "dict",
        phase,
        str(tenants),
        str(rounds),
        role_arn,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), ctx.config.scenario_timeout)
    except asyncio.TimeoutError:
        process.kill()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"T worker {mode}/{phase} failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def _role(ctx: Context, scenario: str, mode: str) -> str:
    ctx._roles += 1
    return f"arn:aws:iam::{ACCOUNT}:role/bench-{scenario}-{mode}-{ctx._roles}"


async def run_t1(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx.config)
    ctx.reset_server()
    rows = []
    for mode in (LIBRARY, BEFORE, DICT):
        tenants = sizes[{LIBRARY: "t1", BEFORE: "t1_slow", DICT: "t1_dict"}[mode]]
        arn = _role(ctx, "t1", mode)
        result = await _run_worker(ctx, mode, "cpu", tenants, 3, arn)
        if result is None:
            continue
        # Less the warm-up's two tenants and the bare round trips'.
        calls = len(ctx.sts.assume_role_calls(arn)) - 2 - 1 - result["round_trips"]
        new, *known = result["cpu_per_round"]
        round_trip = result["sts_round_trip_cpu"]
        rows.append(
            Row(
                "T1",
                mode,
                f"{tenants:,} tenants x 3 rounds",
                headline=calls,
                sts_calls=calls,
                extra={
                    "tenants": tenants,
                    "new_cpu": new,
                    "new_cpu_beyond_sts": new - round_trip,
                    "sts_round_trip_cpu": round_trip,
                    "known_cpu": sum(known) / len(known),
                    "sharing": result.get("sharing"),
                },
            )
        )
    return rows


async def run_t2(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx.config)
    ctx.reset_server()
    rows = []
    runs = [(LIBRARY, sizes["t2"]), (LIBRARY, sizes["t2_large"])]
    runs += [(BEFORE, sizes["t2"]), (DICT, sizes["t2"])]
    if ctx.config.name == "smoke":  # a process each: keep the smoke run short
        runs = runs[:1]
    for mode, tenants in runs:
        result = await _run_worker(ctx, mode, "memory", tenants, 1, _role(ctx, "t2", mode))
        if result is None:
            continue
        rows.append(
            Row(
                "T2",
                f"{mode}@{tenants}",
                f"{tenants:,} tenants made and used once",
                headline=result["traced_per_tenant"],
                extra={"tenants": tenants, "rss_growth": result["rss_growth"]},
            )
        )
    return rows


async def run_t4(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx.config)
    ctx.reset_server()
    rows = []
    # Only this library: before issue 21 the tables held 256 entries, bounded too, but
    # each child was a whole AioSession (~10 ms, more under tracemalloc) to stream.
    for mode in (LIBRARY,):
        tenants = sizes["t4"]
        result = await _run_worker(ctx, mode, "stream", tenants, 1, _role(ctx, "t4", mode))
        if result is None:
            continue
        samples = result["samples"]
        # Growth in the second half, where the tables are full (limits <= half the stream).
        half = samples[len(samples) // 2 - 1]
        last = samples[-1]
        rows.append(
            Row(
                "T4",
                mode,
                f"{tenants:,} distinct tenants, assume_role only",
                headline=last[1],
                extra={
                    "samples": samples,
                    "second_half_growth": last[1] - half[1],
                    "rss_growth": last[2],
                },
            )
        )
    return rows


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"


def _t1_met(row: Row) -> bool:
    extra = row.extra
    return (
        row.headline == extra["tenants"]
        and extra["new_cpu_beyond_sts"] <= 3e-3
        and extra["known_cpu"] <= 100e-6
    )


TENANT_SCENARIOS = [
    Scenario(
        "T1",
        "10,000 tenants x 3 rounds, one parent",
        "AssumeRole calls; CPU per new tenant beyond its STS round trip; per known tenant",
        "10,000 calls; new <= 3 ms CPU beyond STS; known <= 100 µs",
        _t1_met,
        run_t1,
        lambda c: (
            f"{_sizes(c)['t1']:,} tenants (one ExternalId and session name each) x 3 rounds "
            f"for this library, {_sizes(c)['t1_slow']:,} for it before issue 21 and "
            f"{_sizes(c)['t1_dict']:,} for the dict (an STS client per fetch); each use "
            "`assume_role` (or a dict lookup) then the tenant's credentials; each "
            "contender in a fresh process"
        ),
    ),
    Scenario(
        "T2",
        "memory per cached tenant",
        "tracemalloc per tenant (RSS growth beside it)",
        "<= 32 KiB per cached tenant",
        lambda row: row.headline is not None and row.headline <= 32 * 1024,
        run_t2,
        lambda c: (
            f"{_sizes(c)['t2']:,} and {_sizes(c)['t2_large']:,} tenants made and used once "
            "(credentials fetched), traced from after a warm-up"
        ),
    ),
    Scenario(
        "T4",
        "100,000 distinct tenants streamed once",
        "traced memory at the end (growth over the second half beside it)",
        "bounded by the configured limits",
        lambda row: row.extra.get("second_half_growth", 1) < 0.05 * (row.headline or 1),
        run_t4,
        lambda c: (
            f"{_sizes(c)['t4']:,} distinct tenants, `assume_role` once each (no STS call), "
            "default limits (10,000 credentials and children)"
        ),
    ),
]


def _cell(row: Row) -> str:
    if row.scenario == "T1":
        extra = row.extra
        return (
            f"{row.headline:,.0f} calls for {extra['tenants']:,} tenants; new "
            f"{_us(extra['new_cpu'])} ({_us(extra['new_cpu_beyond_sts'])} beyond the "
            f"{_us(extra['sts_round_trip_cpu'])} STS round trip); known {_us(extra['known_cpu'])}"
        )
    if row.scenario == "T2":
        return (
            f"{_kib(row.headline or 0)} per tenant at {row.extra['tenants']:,} "
            f"(RSS +{_mib(row.extra['rss_growth'])})"
        )
    growth = row.extra["second_half_growth"] / 2**20
    return (
        f"{_mib(row.headline or 0)} traced, {growth:+,.1f} MiB over the second half "
        f"(RSS +{_mib(row.extra['rss_growth'])})"
    )


def _mode(row: Row) -> str:
    return row.contender.split("@")[0]


def render_tenant_section(measured: Measured, config: Config) -> list[str]:
    """The group T section of docs/benchmarks.md (nothing if no T scenario ran)."""
    return comparison_section(
        measured,
        config,
        heading="Many tenants on one parent",
        intro=(
            "One parent, a role session per tenant (one `ExternalId` each; see the guide "
            "*Many tenants*), each contender in a fresh process: this library, this "
            "library before issue 21 (whole children, 256 per parent), and a hand-written "
            "dict of children (an `AioSession` with aiobotocore's own assume-role "
            "credentials per tenant)."
        ),
        scenarios=TENANT_SCENARIOS,
        ours_header=LABELS[LIBRARY],
        is_ours=lambda row: _mode(row) == LIBRARY,
        label=lambda row: LABELS.get(_mode(row), _mode(row)),
        cell=_cell,
    )

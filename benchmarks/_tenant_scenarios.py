"""Group T: many tenants on one parent (issue 21), each contender in a fresh process.

* T1: TENANTS tenants x 3 rounds, each use fetching the tenant's credentials
  (``get_credentials()`` + ``get_frozen_credentials()``): AssumeRole calls, CPU per new
  tenant (round 1) beside the CPU of one bare AssumeRole request on a warm client (what
  every contender pays per new tenant: the STS round trip), CPU per known tenant (rounds
  2 and 3).
* T2: memory per cached tenant (tracemalloc, and RSS growth) after TENANTS tenants were
  made and used once, at 1,000 and 10,000.
* T3: one GetObject per request over HTTPS for TENANTS tenants round robin, each request
  ``assume_role`` + a client + the call: CPU per request in the steady state (rounds 2
  and 3) and peak RSS with ``ClientPool.tenant_client`` (one client shared by every
  tenant), beside ``ClientPool.client`` (a client per tenant) and a client made per
  request, each on a small sample (they open a client per request, ~50 ms each). The
  S3-like endpoint (``tests/_s3_loopback.py``, behind a TLS front) checks every
  signature and records which tenant signed: requests signed by another tenant than
  the one whose object they read are counted (0 expected).
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
import contextlib
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aio_assume_role_lib
from _pool_scenarios import TLSFront
from _scenarios import Config, Context, Row, Scenario
from _sections import Measured, comparison_section

LIBRARY = "library"
BEFORE = "before"
DICT = "dict"
AIOBOTO3_ASSUME = "aioboto3-assume"
POOL_CLIENT = "pool-client"
PER_REQUEST = "per-request"
FLOOR = "floor"
LABELS = {
    LIBRARY: "this library",
    BEFORE: "this library before issue 21",
    DICT: "hand-written dict of children",
    AIOBOTO3_ASSUME: "aioboto3-assume 0.1.2, one session per tenant in a dict",
    POOL_CLIENT: "ClientPool.client (a client per tenant, max_clients=64)",
    PER_REQUEST: "a client per request (create_client)",
    FLOOR: "floor: the call alone (one client reused, no assume_role, no lease)",
}
# The last commit before issue 21's change (MAX_SHARED_PER_PARENT = 256, whole children).
BASELINE_REF = "14a38ede66e7604f7548691c3ec0674ebba3cf55"
ACCOUNT = "111111111111"
WORKER = Path(__file__).resolve().parent / "_tenant_worker.py"
CLIENT_WORKER = Path(__file__).resolve().parent / "_tenant_client_worker.py"
ROOT = Path(__file__).resolve().parent.parent
_THIS_SRC = Path(aio_assume_role_lib.__file__).resolve().parent.parent


def _sizes(config: Config) -> dict[str, int]:
    if config.name == "smoke":
        return {
            "t1": 20,
            "t1_slow": 20,
            "t1_dict": 10,
            "t1_aioboto3_assume": 10,
            "t2": 20,
            "t2_large": 40,
            "t3": 20,
            "t3_sample": 4,
            "t3_rounds": 2,
            "t3_concurrency": 4,
            "t4": 400,
        }
    # The contenders that make an STS call per use (the library before the change past
    # 256 tenants; a fresh STS client per fetch for the dict) run fewer tenants in T1.
    return {
        "t1": 10_000,
        "t1_slow": 1_000,
        "t1_dict": 200,
        "t1_aioboto3_assume": 200,
        "t2": 1_000,
        "t2_large": 10_000,
        "t3": 10_000,
        "t3_sample": 100,  # the contenders that open a client per request
        "t3_rounds": 3,
        "t3_concurrency": 16,
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
    worker_mode = LIBRARY if mode in (LIBRARY, BEFORE) else mode
    arguments = [WORKER, worker_mode, phase, tenants, rounds, role_arn]
    return await _worker_result(ctx, f"T worker {mode}/{phase}", arguments, PYTHONPATH=str(src))


async def _worker_result(
    ctx: Context, name: str, arguments: list[Any], **environ: str
) -> dict[str, Any]:
    """Run a worker script with this interpreter; its JSON answer on stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *(str(argument) for argument in arguments),
        env=dict(os.environ, **environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), ctx.config.scenario_timeout)
    except asyncio.TimeoutError:
        process.kill()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def _has_aioboto3_assume() -> bool:
    return importlib.util.find_spec("aioboto3_assume") is not None


def _role(ctx: Context, scenario: str, mode: str) -> str:
    ctx._roles += 1
    return f"arn:aws:iam::{ACCOUNT}:role/bench-{scenario}-{mode}-{ctx._roles}"


async def run_t1(ctx: Context) -> list[Row]:
    sizes = _sizes(ctx.config)
    ctx.reset_server()
    rows = []
    # aioboto3-assume needs aioboto3: stack S2 (the bench environment) only.
    modes = (LIBRARY, BEFORE, DICT) + ((AIOBOTO3_ASSUME,) if _has_aioboto3_assume() else ())
    for mode in modes:
        size = {LIBRARY: "t1", BEFORE: "t1_slow", DICT: "t1_dict"}.get(mode, "t1_aioboto3_assume")
        tenants = sizes[size]
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


BUCKET = "tenants"
OBJECT = b"x" * 1024  # each tenant's object, read by every request


def _serve_sts_and_s3(conn: Connection, tenants: int) -> None:
    """Child process: a LoopbackSTS and the S3-like endpoint that checks signatures
    against the keys it issued (the T3 worker's STS and S3), until told to stop."""
    sys.path.insert(0, str(ROOT))  # tests/_s3_loopback.py, the project's S3-like endpoint
    from tests._s3_loopback import LoopbackS3

    from aio_assume_role_lib.testing import LoopbackSTS

    with LoopbackSTS() as sts, LoopbackS3(sts) as s3:
        for tenant in range(tenants):
            s3.objects[f"{BUCKET}/tenant-{tenant}/data"] = OBJECT
        conn.send((sts.environ(), s3.endpoint_url))
        seen = 0
        while conn.recv() == "report":
            calls = s3.calls[seen:]
            seen += len(calls)
            other_signer = failed = 0
            for call in calls:
                if call.outcome != "ok":
                    failed += 1
                elif not str(call.caller_arn).endswith("/" + call.path.split("/")[2]):
                    other_signer += 1
            conn.send({"requests": len(calls), "failed": failed, "other_signer": other_signer})


class _TenantEndpoints:
    """The T3 server process (STS and S3) and a TLS front for its S3 endpoint."""

    def __init__(self, tenants: int, directory: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve_sts_and_s3, args=(child_conn, tenants), name="t3-server", daemon=True
        )
        self._process.start()
        if not self._conn.poll(120):
            self._process.kill()
            raise RuntimeError("the T3 server did not start within 120 s")
        self.sts_environ, s3_url = self._conn.recv()
        self.front = TLSFront(s3_url, directory)

    def report(self) -> dict[str, int]:
        """The S3 requests since the last report: how many, failed, signed by another."""
        self._conn.send("report")
        result: dict[str, int] = self._conn.recv()
        return result

    def stop(self) -> None:
        self.front.stop()
        with contextlib.suppress(Exception):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


async def _run_client_worker(
    ctx: Context, endpoints: _TenantEndpoints, mode: str, tenants: int, rounds: int
) -> dict[str, Any]:
    sizes = _sizes(ctx.config)
    arguments = [
        CLIENT_WORKER,
        mode,
        tenants,
        rounds,
        sizes["t3_concurrency"],
        endpoints.front.endpoint_url,
        endpoints.front.ca_bundle,
        f"arn:aws:iam::{ACCOUNT}:role/bench-t3-{mode}",
    ]
    environ = dict(endpoints.sts_environ, PYTHONPATH=str(_THIS_SRC))
    result = await _worker_result(ctx, f"T3 worker {mode}", arguments, **environ)
    result["server"] = await asyncio.to_thread(endpoints.report)
    return result


async def run_t3(ctx: Context) -> list[Row]:
    try:
        import trustme  # noqa: F401  (the TLS front needs it)
    except ImportError:
        print("   T3 skipped: trustme is not installed in this environment", file=sys.stderr)
        return []
    sizes = _sizes(ctx.config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aio-arl-bench-t3-") as directory:
        endpoints = await asyncio.to_thread(_TenantEndpoints, sizes["t3"], Path(directory))
        try:
            runs = [
                (LIBRARY, sizes["t3"], sizes["t3_rounds"]),
                (POOL_CLIENT, sizes["t3_sample"], 2),
                (PER_REQUEST, sizes["t3_sample"], 2),
                (FLOOR, sizes["t3"], 2),
            ]
            if ctx.config.name == "smoke":  # a process each: keep the smoke run short
                runs = [run for run in runs if run[0] in (LIBRARY, PER_REQUEST)]
            results = {}
            for mode, tenants, rounds in runs:
                mode_name = {LIBRARY: "tenant", POOL_CLIENT: "pool"}.get(mode, mode)
                result = await _run_client_worker(ctx, endpoints, mode_name, tenants, rounds)
                results[mode] = result
                steady = result["cpu_per_round"][1:]
                rows.append(
                    Row(
                        "T3",
                        mode,
                        f"{tenants:,} tenants x {rounds} rounds, "
                        f"{sizes['t3_concurrency']} requests at a time",
                        headline=sum(steady) / len(steady),
                        failed=sum(result["errors"].values()) + result["server"]["failed"],
                        extra={"tenants": tenants, **result},
                    )
                )
        finally:
            await asyncio.to_thread(endpoints.stop)
    ours = rows[0]
    per_request = next(row for row in rows if row.contender == PER_REQUEST)
    if ours.headline and per_request.headline:
        ours.extra["ratio_per_request"] = per_request.headline / ours.headline
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


def _t3_met(row: Row) -> bool:
    extra = row.extra
    return (
        row.headline is not None
        and row.headline <= 1e-3
        and extra.get("ratio_per_request", 0) >= 20
        and extra["rss_peak"] <= 300 * 2**20
        and row.failed == 0
        and extra["server"]["other_signer"] == 0
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
            f"{_sizes(c)['t1_dict']:,} for the dict (an STS client per fetch) and for "
            "aioboto3-assume (stack S2); each use "
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
        "T3",
        "10,000 tenants round robin, one call per request over HTTPS",
        "CPU per request in the steady state; peak RSS; requests signed by another tenant",
        "<= 1 ms CPU per request; >= 20x less than a client per request; "
        "peak RSS <= 300 MiB; 0 signed by another tenant",
        _t3_met,
        run_t3,
        lambda c: (
            f"{_sizes(c)['t3']:,} tenants (one ExternalId and session name each) round "
            f"robin, {_sizes(c)['t3_rounds']} rounds, {_sizes(c)['t3_concurrency']} "
            "requests at a time, each `assume_role` + a client + one GetObject of the "
            "tenant's 1 KiB object over HTTPS (the S3-like endpoint checks each signature "
            "and records who signed); the client from `ClientPool.tenant_client`, or, on "
            f"{_sizes(c)['t3_sample']} tenants x 2 rounds, from `ClientPool.client` or "
            "made per request; the floor is one client reading every tenant's object "
            "(what aiobotocore's call alone costs, with as many distinct keys); each "
            "contender in a fresh process; CPU per request from round 2 on (round 1 "
            "fetches credentials from STS)"
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
    if row.scenario == "T3":
        extra = row.extra
        cell = (
            f"{_us(row.headline or 0)} CPU per request; peak RSS {_mib(extra['rss_peak'])}; "
            f"{extra['server']['other_signer']} of {extra['server']['requests']:,} requests "
            "signed by another tenant"
        )
        if row.contender in (LIBRARY, POOL_CLIENT):
            cell += f"; {extra['clients_opened']:,} clients opened"
        if row.contender == FLOOR:  # one client signs for every tenant there, on purpose
            cell = f"{_us(row.headline or 0)} CPU per request; peak RSS {_mib(extra['rss_peak'])}"
        if "ratio_per_request" in extra:
            cell += f"; {extra['ratio_per_request']:.0f}x less CPU than a client per request"
        if "lease_cpu" in extra:
            cell += (
                f"; a tenant's client (lease) {_us(extra['lease_cpu'])}, "
                f"{_kib(extra['lease_bytes'])}"
            )
        if row.failed:
            cell += f"; {row.failed} failed"
        return cell
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

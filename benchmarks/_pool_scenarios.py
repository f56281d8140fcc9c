"""Clients: ``ClientPool`` beside the patterns users write without it.

* P1, P2: per-request CPU of ``assume_role`` + a client + one signed GetCallerIdentity,
  over plain HTTP (P1) and HTTPS (P2), with a leased pooled client vs a client made and
  closed per request. CPU is ``time.process_time()`` of this process (the STS endpoint
  and the TLS front run in child processes, like a real AWS endpoint on another machine).
  HTTPS uses a certificate made for the run (``trustme``); the clients verify it against
  botocore's default CA bundle with the run's CA appended, so a new client loads a bundle
  of realistic size, as it would against AWS.
* P3: fan-out over many roles, each contender in a fresh child process (so the RSS of
  one does not hide in the other's): ``ClientPool(max_clients=32)`` vs an unbounded dict
  of clients kept until the end; peak open clients and peak RSS growth.
* P4: 1,000 concurrent first requests for the same role and service: clients opened by
  the pool vs a client per request. (A dict cache without a lock opened one client here
  too, by luck: on this stack a child's ``create_client`` never suspends, so no second
  task gets in before the first client is stored.)
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.session import AioSession

from _scenarios import Config, Context, Row, Scenario
from _sections import Measured, comparison_section
from aio_assume_role_lib import ClientPool, assume_role

POOL = "pool"
PER_REQUEST = "per-request"
DICT_CACHE = "dict-cache"
LABELS = {
    POOL: "ClientPool (this library)",
    PER_REQUEST: "client per request",
    DICT_CACHE: "unbounded dict cache",
}
ACCOUNT = "111111111111"


@dataclass(frozen=True)
class PoolConfig:
    requests: int  # P1, P2: measured requests per contender (after warm_up)
    warm_up: int  # P1, P2
    fanout_roles: int  # P3
    fanout_max_clients: int  # P3
    fanout_concurrency: int  # P3
    first_leases: int  # P4


FULL = PoolConfig(
    requests=300, warm_up=5, fanout_roles=500, fanout_max_clients=32, fanout_concurrency=32,
    first_leases=1_000,
)  # fmt: skip
SMOKE = PoolConfig(
    requests=10, warm_up=2, fanout_roles=12, fanout_max_clients=4, fanout_concurrency=4,
    first_leases=50,
)  # fmt: skip


def pool_config(config: Config) -> PoolConfig:
    return SMOKE if config.name == "smoke" else FULL


# --- HTTPS in front of the loopback STS -------------------------------------------------


def _tls_front(conn: Connection, cert_chain_pem: bytes, upstream_port: int) -> None:
    """Child process: terminate TLS on a free port and pass the bytes to the STS port."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def main() -> None:
        with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
            pem.write(cert_chain_pem)
            pem.flush()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(pem.name)
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        conn.send(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "stop"
        server.close()

    asyncio.run(main())


class TLSFront:
    """HTTPS on 127.0.0.1 in front of the loopback STS, with a CA bundle that trusts it."""

    def __init__(self, sts_endpoint: str, directory: Path) -> None:
        import trustme
        from botocore.httpsession import get_cert_path

        authority = trustme.CA()
        certificate = authority.issue_cert("127.0.0.1")
        self.ca_bundle = directory / "ca-bundle.pem"
        default_bundle = Path(get_cert_path(True)).read_bytes()
        self.ca_bundle.write_bytes(default_bundle + b"\n" + authority.cert_pem.bytes())
        upstream = urlsplit(sts_endpoint).port
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_tls_front,
            args=(child_conn, certificate.private_key_and_cert_chain_pem.bytes(), upstream),
            name="tls-front",
            daemon=True,
        )
        self._process.start()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the TLS front did not start within 60 s")
        self.endpoint_url = f"https://127.0.0.1:{self._conn.recv()}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


# --- P1, P2 -----------------------------------------------------------------------------


async def _per_request_rows(
    ctx: Context, scenario: str, client_kwargs: dict[str, Any]
) -> list[Row]:
    config = pool_config(ctx.config)
    ctx.reset_server()
    parent = AioSession()
    rows = []
    pool = ClientPool()
    role = f"arn:aws:iam::{ACCOUNT}:role/bench-{scenario.lower()}"

    async def pooled() -> None:
        child = await assume_role(parent, role, RoleSessionName="bench")
        async with pool.client(child, "sts", **client_kwargs) as sts:
            await sts.get_caller_identity()

    async def per_request() -> None:
        child = await assume_role(parent, role, RoleSessionName="bench")
        async with child.create_client("sts", **client_kwargs) as sts:
            await sts.get_caller_identity()

    try:
        contenders: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (POOL, pooled),
            (PER_REQUEST, per_request),
        ]
        for key, request in contenders:
            for _ in range(config.warm_up):
                await request()
            ctx.settle()
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(config.requests):
                cpu_start, wall_start = time.process_time(), time.perf_counter()
                await request()
                cpu.append(time.process_time() - cpu_start)
                wall.append(time.perf_counter() - wall_start)
            per_request_cpu = sum(cpu) / len(cpu)
            rows.append(
                Row(
                    scenario,
                    key,
                    f"{len(cpu)} sequential requests after {config.warm_up} warm-up ones",
                    headline=per_request_cpu,
                    median=statistics.median(wall),
                    p99=sorted(wall)[max(0, int(len(wall) * 0.99) - 1)],
                    extra={"cpu_per_request": per_request_cpu},
                )
            )
    finally:
        await pool.aclose()
    return rows


async def run_http(ctx: Context) -> list[Row]:
    return await _per_request_rows(ctx, "P1", {})


async def run_https(ctx: Context) -> list[Row]:
    try:
        import trustme  # noqa: F401  (the TLS front needs it)
    except ImportError:  # a stack installed without the bench extras: say so, do not crash
        print("   P2 skipped: trustme is not installed in this environment", file=sys.stderr)
        return []
    with tempfile.TemporaryDirectory(prefix="aio-arl-bench-tls-") as directory:
        front = TLSFront(ctx.sts.environ()["AWS_ENDPOINT_URL_STS"], Path(directory))
        try:
            kwargs = {"endpoint_url": front.endpoint_url, "verify": str(front.ca_bundle)}
            return await _per_request_rows(ctx, "P2", kwargs)
        finally:
            front.stop()


# --- P3 ---------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fanout_child(conn: Connection, mode: str, roles: int, max_clients: int, limit: int) -> None:
    """Child process: work on ``roles`` roles, one GetCallerIdentity each; report peaks."""
    import anyio

    async def main() -> dict[str, Any]:
        parent = AioSession()
        # Load what every contender needs anyway (service models, the STS client that
        # fetches credentials) before the baseline, so the growth is the clients'.
        warm = await assume_role(parent, f"arn:aws:iam::{ACCOUNT}:role/bench-p3-warm")
        async with warm.create_client("sts") as sts:
            await sts.get_caller_identity()
        baseline = peak_rss = _rss_bytes()
        peak_open = 0
        limiter = anyio.CapacityLimiter(limit)
        started = time.perf_counter()

        async def sample() -> None:
            nonlocal peak_rss
            while True:
                peak_rss = max(peak_rss, _rss_bytes())
                await anyio.sleep(0.005)

        pool = ClientPool(max_clients=max_clients)
        stack = contextlib.AsyncExitStack()
        cache: dict[Any, Any] = {}

        async def one(index: int) -> None:
            nonlocal peak_open
            async with limiter:
                role = await assume_role(
                    parent, f"arn:aws:iam::{200000000000 + index:012d}:role/bench-p3-{mode}"
                )
                if mode == POOL:
                    async with pool.client(role, "sts") as sts:
                        peak_open = max(peak_open, pool.open_clients)
                        await sts.get_caller_identity()
                else:
                    sts = cache.get(role)
                    if sts is None:
                        sts = cache[role] = await stack.enter_async_context(
                            role.create_client("sts")
                        )
                    peak_open = max(peak_open, len(cache))
                    await sts.get_caller_identity()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sample)
            async with anyio.create_task_group() as work:
                for index in range(roles):
                    work.start_soon(one, index)
            peak_rss = max(peak_rss, _rss_bytes())
            tasks.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        await pool.aclose()
        await stack.aclose()
        return {
            "peak_open": peak_open,
            "rss_growth": peak_rss - baseline,
            "baseline": baseline,
            "elapsed": elapsed,
        }

    try:
        conn.send(("ok", asyncio.run(main())))
    except BaseException as exc:
        conn.send(("error", repr(exc)))


async def run_fanout(ctx: Context) -> list[Row]:
    config = pool_config(ctx.config)
    ctx.reset_server()
    rows = []
    for mode in (POOL, DICT_CACHE):
        before = sum(ctx.sts.outcomes("AssumeRole").values())
        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe()
        process = context.Process(
            target=_fanout_child,
            args=(
                child_conn,
                mode,
                config.fanout_roles,
                config.fanout_max_clients,
                config.fanout_concurrency,
            ),
            name=f"fanout-{mode}",
            daemon=True,
        )
        process.start()
        # Wait in a thread: the loop must stay free (the scenario timeout runs on it).
        ready = await asyncio.to_thread(parent_conn.poll, ctx.config.scenario_timeout)
        if not ready:
            process.kill()
            raise RuntimeError(f"the {mode} fan-out did not finish")
        status, result = parent_conn.recv()
        process.join(10)
        if status != "ok":
            raise RuntimeError(f"the {mode} fan-out failed: {result}")
        calls = sum(ctx.sts.outcomes("AssumeRole").values()) - before
        bound = f"max_clients={config.fanout_max_clients}" if mode == POOL else "no bound"
        rows.append(
            Row(
                "P3",
                mode,
                f"{config.fanout_roles} roles, {config.fanout_concurrency} at a time, {bound}; "
                f"{result['elapsed']:.1f} s",
                headline=result["peak_open"],
                sts_calls=calls - 1,  # the warm-up role's
                extra={"rss_growth": result["rss_growth"], "baseline": result["baseline"]},
            )
        )
    return rows


# --- P4 ---------------------------------------------------------------------------------


async def _first_requests(parent: AioSession, mode: str, count: int) -> Row:
    role = await assume_role(parent, f"arn:aws:iam::{ACCOUNT}:role/bench-p4-{mode}")
    opened = 0
    real_create = role.create_client

    def counting_create(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return real_create(*args, **kwargs)

    role.create_client = counting_create
    pool = ClientPool()

    async def request() -> None:
        if mode == POOL:
            async with pool.client(role, "sts") as sts:
                await sts.get_caller_identity()
        else:
            async with role.create_client("sts") as sts:
                await sts.get_caller_identity()

    started = time.perf_counter()
    results = await asyncio.gather(*(request() for _ in range(count)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    await pool.aclose()
    return Row(
        "P4",
        mode,
        f"{count:,} concurrent first requests, each a GetCallerIdentity; {elapsed:.1f} s",
        headline=opened,
        failed=sum(isinstance(result, BaseException) for result in results),
    )


async def run_first_leases(ctx: Context) -> list[Row]:
    config = pool_config(ctx.config)
    ctx.reset_server()
    parent = AioSession()
    return [
        await _first_requests(parent, mode, config.first_leases) for mode in (POOL, PER_REQUEST)
    ]


# --- the list, the table, the chart -----------------------------------------------------


def _ratio(rows: dict[str, Row], ours: str, theirs: str) -> float | None:
    a, b = rows.get(ours), rows.get(theirs)
    if a is None or b is None or not a.headline or b.headline is None:
        return None
    return b.headline / a.headline


POOL_SCENARIOS = [
    Scenario(
        "P1",
        "per request: `assume_role` + client + one call, HTTP",
        "CPU per request",
        "none (HTTPS, P2, has one)",
        lambda row: True,
        run_http,
        lambda c: (
            f"{pool_config(c).requests} sequential requests per contender, each "
            "`await assume_role(parent, arn)` (warm), a client, one signed GetCallerIdentity "
            "to the loopback STS over plain HTTP; the client leased from a ClientPool, or "
            "made and closed for the request"
        ),
    ),
    Scenario(
        "P2",
        "per request: `assume_role` + pooled client + one call, HTTPS",
        "CPU per request",
        ">= 5x less CPU than a client per request",
        lambda row: (row.extra.get("ratio") or 0) >= 5,
        run_https,
        lambda c: (
            "as P1, over HTTPS: a TLS front (another process) with a certificate made for "
            "the run; clients verify it with botocore's default CA bundle plus the run's CA"
        ),
    ),
    Scenario(
        "P3",
        "fan-out over 500 roles with `ClientPool(max_clients=32)`",
        "peak open clients",
        "<= 32 open clients, RSS bounded",
        lambda row: row.headline is not None and row.headline <= 32,
        run_fanout,
        lambda c: (
            f"{pool_config(c).fanout_roles} roles, {pool_config(c).fanout_concurrency} at a "
            "time (anyio CapacityLimiter), each `assume_role` + a client + one "
            "GetCallerIdentity; each contender in a fresh process; RSS growth is the peak "
            "(sampled every 5 ms) above the RSS after a warm-up role"
        ),
    ),
    Scenario(
        "P4",
        "1,000 concurrent first requests, one role and service",
        "clients opened",
        "1 client opened",
        lambda row: row.headline == 1 and not row.failed,
        run_first_leases,
        lambda c: (
            f"{pool_config(c).first_leases:,} tasks at once each get the role's STS client "
            "(none open yet) and send a GetCallerIdentity"
        ),
    ),
]


def _finish(rows: list[Row]) -> dict[str, dict[str, Row]]:
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(row.scenario, {})[row.contender] = row
    for scenario in ("P1", "P2"):
        cells = table.get(scenario, {})
        if POOL in cells:
            cells[POOL].extra["ratio"] = _ratio(cells, POOL, PER_REQUEST)
    return table


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def _cell(scenario: str, row: Row) -> str:
    if row.headline is None:
        return "n/a"
    if scenario in ("P1", "P2"):
        return f"{row.headline * 1e3:.2f} ms CPU"
    if scenario == "P3":
        return f"{row.headline:,.0f} open, RSS +{_mib(row.extra['rss_growth'])}"
    text = f"{row.headline:,.0f} opened"
    return text + (f", {row.failed:,} failed" if row.failed else "")


def render_pool_section(measured: Measured, config: Config) -> list[str]:
    """The ClientPool section of docs/benchmarks.md (nothing if no P scenario ran)."""
    for _, rows in measured.stacks:
        _finish([row for row in rows if row.scenario.startswith("P")])  # P2's ratio
    return comparison_section(
        measured,
        config,
        heading="Clients: ClientPool",
        intro=(
            "This library's `ClientPool` beside what users write without it: a client made "
            "per request, or a dictionary of clients that only grows. In brackets, the other "
            "pattern's figure divided by the pool's."
        ),
        scenarios=POOL_SCENARIOS,
        ours_header=LABELS[POOL],
        is_ours=lambda row: row.contender == POOL,
        label=lambda row: LABELS[row.contender],
        cell=lambda row: _cell(row.scenario, row),
        no_target=("P1",),
        ratio=True,
    )

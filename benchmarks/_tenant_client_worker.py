"""One contender of T3 (a client per tenant request over HTTPS), run in a fresh process.

    python _tenant_client_worker.py MODE TENANTS ROUNDS CONCURRENCY ENDPOINT CA_BUNDLE ROLE_ARN

Prints one JSON object. Each request is what a web service does per tenant request:
``assume_role(parent, ROLE_ARN, RoleSessionName=..., ExternalId=...)`` for the tenant,
a client, and one GetObject of the tenant's object (read to the end) over HTTPS. The
client is, per MODE:

* ``tenant``: ``ClientPool.tenant_client`` (one client shared by every tenant);
* ``pool``: ``ClientPool.client`` with ``max_clients=64`` (one client per tenant, opened
  and closed as tenants come round);
* ``per-request``: ``child.create_client`` made and closed for the request;
* ``floor``: no ``assume_role`` and no lease: one client made once (on tenant 0's
  child) reads every tenant's object. What the call itself costs in aiobotocore, the
  floor under every contender (its requests are all signed by tenant 0).

TENANTS tenants round robin, ROUNDS times, CONCURRENCY requests at a time. Round 1
fetches each tenant's credentials from STS; later rounds are the steady state. The
environment points STS at the loopback endpoint (another process); ENDPOINT is the
S3-like endpoint behind TLS, trusted through CA_BUNDLE (botocore's bundle plus the
run's CA, so a new client loads a bundle of realistic size).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import sys
import time
import tracemalloc
from typing import Any

from aiobotocore.session import AioSession

from aio_assume_role_lib import ClientPool, assume_role

BUCKET = "tenants"


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _main(
    mode: str, tenants: int, rounds: int, concurrency: int, endpoint: str, bundle: str, role: str
) -> dict[str, Any]:
    parent = AioSession()
    kwargs = {"endpoint_url": endpoint, "verify": bundle, "region_name": "us-east-1"}
    pool = ClientPool(max_clients=64)
    errors: dict[str, int] = {}

    async def child_of(tenant: int) -> Any:
        return await assume_role(
            parent, role, RoleSessionName=f"tenant-{tenant}", ExternalId=f"external-{tenant}"
        )

    async def get(s3: Any, tenant: int) -> None:
        response = await s3.get_object(Bucket=BUCKET, Key=f"tenant-{tenant}/data")
        await response["Body"].read()

    floor_client: Any = None

    async def request(tenant: int) -> None:
        if mode == "floor":
            await get(floor_client, tenant)
            return
        child = await child_of(tenant)
        if mode == "tenant":
            async with pool.tenant_client(child, "s3", **kwargs) as s3:
                await get(s3, tenant)
        elif mode == "pool":
            async with pool.client(child, "s3", **kwargs) as s3:
                await get(s3, tenant)
        else:
            async with child.create_client("s3", **kwargs) as s3:
                await get(s3, tenant)

    peak = _rss()

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _rss())
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    exits = contextlib.AsyncExitStack()
    if mode == "floor":
        floor_client = await exits.enter_async_context(
            (await child_of(0)).create_client("s3", **kwargs)
        )
    # Warm up: service data, the parent's credentials, TLS, code paths (tenant 0's
    # credentials are fetched here, and again by nobody: round 1 finds them).
    await request(0)
    gc.collect()
    started_rss = _rss()
    cpu_per_round, wall_per_round = [], []
    for _ in range(rounds):

        async def worker(queue: Any) -> None:
            for tenant in queue:
                try:
                    await request(tenant)
                except Exception as exc:  # counted and reported: the run goes on
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        cpu, wall = time.process_time(), time.perf_counter()
        queue = iter(range(tenants))  # shared: each tenant taken by one worker, in order
        await asyncio.gather(*(worker(queue) for _ in range(concurrency)))
        cpu_per_round.append((time.process_time() - cpu) / tenants)
        wall_per_round.append(time.perf_counter() - wall)
        peak = max(peak, _rss())
    result: dict[str, Any] = {
        "cpu_per_round": cpu_per_round,
        "wall_per_round": wall_per_round,
        "rss_start": started_rss,
        "rss_peak": peak,
        "errors": errors,
        "clients_opened": pool.clients_opened,
    }
    if mode == "tenant":
        # What one tenant's client costs: a lease (with its view), alone, and the memory
        # of a view held open.
        children = [await child_of(tenant) for tenant in range(min(tenants, 1_000))]
        leases = 0
        cpu = time.process_time()
        for _ in range(5):
            for child in children:
                async with pool.tenant_client(child, "s3", **kwargs):
                    leases += 1
        result["lease_cpu"] = (time.process_time() - cpu) / leases
        gc.collect()
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        async with contextlib.AsyncExitStack() as stack:
            for child in children:
                await stack.enter_async_context(pool.tenant_client(child, "s3", **kwargs))
            held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["lease_bytes"] = (held - before) / len(children)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    await pool.aclose()
    await exits.aclose()
    return result


if __name__ == "__main__":
    mode, tenants, rounds, concurrency, endpoint, bundle, role = sys.argv[1:8]
    print(
        json.dumps(
            asyncio.run(
                _main(mode, int(tenants), int(rounds), int(concurrency), endpoint, bundle, role)
            )
        )
    )

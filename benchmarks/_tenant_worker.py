"""One contender of group T (many tenants on one parent), run in a fresh process.

    python _tenant_worker.py MODE PHASE TENANTS ROUNDS ROLE_ARN

Prints one JSON object. MODE is ``library`` (``aio_assume_role_lib`` as found on
PYTHONPATH: this checkout, or the library before the change that issue 21 made, which the
caller extracts from git) or ``dict`` (what users write without it: a dict of children,
each an ``AioSession`` with aiobotocore's own deferred assume-role credentials). PHASE is
``cpu`` (T1), ``memory`` (T2: tracemalloc and RSS) or ``stream`` (T4: TENANTS distinct
tenants once each, ``assume_role`` only, memory sampled as it goes). The environment
points STS at the loopback endpoint (another process).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from typing import Any

from aiobotocore.session import AioSession


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _tenant_args(tenant: int) -> dict[str, Any]:
    return {"RoleSessionName": f"tenant-{tenant}", "ExternalId": f"external-{tenant}"}


class _Library:
    def __init__(self, parent: AioSession, role_arn: str) -> None:
        from aio_assume_role_lib import assume_role

        self._assume_role = assume_role
        self._parent = parent
        self._role_arn = role_arn

    async def child(self, tenant: int) -> Any:
        return await self._assume_role(self._parent, self._role_arn, **_tenant_args(tenant))


class _DictOfChildren:
    """A hand-written dict of children with aiobotocore's own assume-role credentials."""

    def __init__(self, parent: AioSession, role_arn: str) -> None:
        self._parent = parent
        self._role_arn = role_arn
        self._children: dict[int, Any] = {}

    async def child(self, tenant: int) -> Any:
        child = self._children.get(tenant)
        if child is None:
            from aiobotocore.credentials import (
                AioAssumeRoleCredentialFetcher,
                AioDeferredRefreshableCredentials,
            )

            fetcher = AioAssumeRoleCredentialFetcher(
                client_creator=self._parent.create_client,
                source_credentials=await self._parent.get_credentials(),
                role_arn=self._role_arn,
                extra_args=_tenant_args(tenant),
            )
            child = AioSession()
            child.register_component("data_loader", self._parent.get_component("data_loader"))
            child._credentials = AioDeferredRefreshableCredentials(  # type: ignore[attr-defined]
                refresh_using=fetcher.fetch_credentials, method="assume-role"
            )
            self._children[tenant] = child
        return child


class _Aioboto3AssumePerTenant:
    """aioboto3-assume per tenant: ``aioboto3_assume.assume_role`` once per tenant, kept in
    a dict (stack S2 only: it needs aioboto3)."""

    def __init__(self, parent: AioSession, role_arn: str) -> None:
        import aioboto3

        self._source = aioboto3.Session(botocore_session=parent)
        self._role_arn = role_arn
        self._children: dict[int, Any] = {}

    async def child(self, tenant: int) -> Any:
        child = self._children.get(tenant)
        if child is None:
            from aioboto3_assume import assume_role

            kwargs = {"RoleArn": self._role_arn, **_tenant_args(tenant)}
            child = assume_role(source_session=self._source, assume_role_kwargs=kwargs)
            self._children[tenant] = child
        return child._session  # its botocore session, as the other contenders give


CONTENDERS = {
    "library": _Library,
    "dict": _DictOfChildren,
    "aioboto3-assume": _Aioboto3AssumePerTenant,
}


async def _use(child: Any) -> str:
    credentials = await child.get_credentials()
    return str((await credentials.get_frozen_credentials()).access_key)


async def _sts_round_trip_cpu(parent: AioSession, role_arn: str, count: int) -> float:
    """CPU of one AssumeRole request on a warm client: what any contender pays per tenant."""
    async with parent.create_client("sts") as sts:
        await sts.assume_role(RoleArn=role_arn, RoleSessionName="warm")
        started = time.process_time()
        for index in range(count):
            await sts.assume_role(RoleArn=role_arn, RoleSessionName=f"rt-{index}")
        return (time.process_time() - started) / count


async def _main(mode: str, phase: str, tenants: int, rounds: int, role_arn: str) -> dict[str, Any]:
    parent = AioSession()
    contender = CONTENDERS[mode](parent, role_arn)
    # Warm up: service data, the parent's credentials, the STS client, code paths.
    await _use(await contender.child(-1))
    await _use(await contender.child(-2))
    gc.collect()
    result: dict[str, Any] = {}
    if phase == "cpu":
        result["round_trips"] = min(tenants, 100)
        result["sts_round_trip_cpu"] = await _sts_round_trip_cpu(
            parent, role_arn, result["round_trips"]
        )
        per_round = []
        for _ in range(rounds):
            started = time.process_time()
            for tenant in range(tenants):
                await _use(await contender.child(tenant))
            per_round.append((time.process_time() - started) / tenants)
        result["cpu_per_round"] = per_round
    elif phase == "memory":
        rss_before = _rss()
        tracemalloc.start()
        for tenant in range(tenants):
            await _use(await contender.child(tenant))
        gc.collect()
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["traced_per_tenant"] = traced / tenants
        result["rss_growth"] = _rss() - rss_before
    else:  # stream
        samples = []
        tracemalloc.start()
        rss_before = _rss()
        step = max(tenants // 10, 1)
        for tenant in range(tenants):
            await contender.child(tenant)
            if (tenant + 1) % step == 0:
                gc.collect()  # what is kept, not garbage a collection has yet to free
                traced, _ = tracemalloc.get_traced_memory()
                samples.append((tenant + 1, traced, _rss() - rss_before))
        tracemalloc.stop()
        result["samples"] = samples
    if mode == "library":
        try:
            from aio_assume_role_lib import sharing_stats

            result["sharing"] = sharing_stats(parent)
        except ImportError:  # the library before the change
            pass
    return result


if __name__ == "__main__":
    mode, phase, tenants, rounds, role_arn = sys.argv[1:6]
    print(json.dumps(asyncio.run(_main(mode, phase, int(tenants), int(rounds), role_arn))))

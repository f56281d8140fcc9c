"""Benchmarks of the adapters (aio_assume_role_lib.adapters), against a loopback STS.

    python benchmarks/adapters.py           full run (about a minute and a half)
    python benchmarks/adapters.py --smoke   tiny counts and 6-second lifetimes (CI)

A1  CPU per signed request (or per credentials answer) through each adapter, beside the
    hand-written glue a user writes without it: ``get_frozen_credentials()`` and
    botocore's signer by hand (httpx), a dict built per call (obstore), an identity
    built per call (SDK v4), ``run_coroutine_threadsafe`` onto the app's loop (sync
    callers in threads). No network: the request is signed, not sent.
A2  AssumeRole calls per credential lifetime with every consumer calling side by side
    (httpx, obstore, the SDK v4 where installed, a sync client in a thread, the child's
    aiobotocore client).

Run it with the Python of dev.py's s3 environment to include the SDK v4 (Python >= 3.12).
Prints a Markdown table; figures, not pass/fail (the smoke run fails only on a crash).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from aiobotocore.session import AioSession
from botocore.auth import SigV4Auth as BotocoreSigV4Auth
from botocore.awsrequest import AWSRequest

from aio_assume_role_lib import assume_role
from aio_assume_role_lib.adapters.httpx import SigV4Auth
from aio_assume_role_lib.adapters.obstore import credential_provider
from aio_assume_role_lib.adapters.sync import SyncCredentials
from aio_assume_role_lib.testing import LoopbackSTS

HAS_SDK_V4 = importlib.util.find_spec("aws_sdk_sts") is not None
ROLE = "arn:aws:iam::123456789012:role/Bench"
GET_CALLER_IDENTITY = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}


def _cpu_per_call(run: Callable[[int], None], count: int, rounds: int) -> float:
    """Median CPU microseconds per call over ``rounds`` rounds of ``count`` calls."""
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        run(count)
        samples.append((time.process_time() - started) / count * 1e6)
    return statistics.median(samples)


async def _acpu_per_call(work: Callable[[], Awaitable[Any]], count: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(count):
            await work()
        samples.append((time.process_time() - started) / count * 1e6)
    return statistics.median(samples)


async def cpu_per_request(
    sts: LoopbackSTS, count: int, rounds: int
) -> list[tuple[str, float, float]]:
    """A1: (consumer, adapter us, glue us)."""
    child = await assume_role(AioSession(), ROLE)
    credentials = await child.get_credentials()
    await credentials.get_frozen_credentials()  # fetched: the hot path from here on
    rows = []

    # httpx: the auth flow up to the signed request, against botocore's signer by hand.
    auth = SigV4Auth(child, "sts", region="us-east-1")
    url = sts.endpoint_url + "/"

    def build() -> httpx.Request:
        return httpx.Request("POST", url, data=GET_CALLER_IDENTITY)

    async def via_adapter() -> None:
        flow = auth.async_auth_flow(build())
        await flow.__anext__()
        await flow.aclose()

    async def via_glue() -> None:
        request = build()
        body = await request.aread()
        frozen = await credentials.get_frozen_credentials()
        aws = AWSRequest(method="POST", url=url, data=body, headers=dict(request.headers))
        BotocoreSigV4Auth(frozen, "sts", "us-east-1").add_auth(aws)
        request.headers.update(dict(aws.headers.items()))

    async def build_only() -> None:
        await build().aread()

    base = await _acpu_per_call(build_only, count, rounds)
    rows.append(
        (
            "httpx SigV4Auth (sign one request; building it excluded)",
            await _acpu_per_call(via_adapter, count, rounds) - base,
            await _acpu_per_call(via_glue, count, rounds) - base,
        )
    )

    # obstore: one credentials answer.
    provider = credential_provider(child)

    async def obstore_glue() -> dict[str, Any]:
        frozen = await credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": credentials.expiry_time,
        }

    rows.append(
        (
            "obstore credential_provider (one answer)",
            await _acpu_per_call(provider, count, rounds),
            await _acpu_per_call(obstore_glue, count, rounds),
        )
    )

    if HAS_SDK_V4:
        from smithy_aws_core.identity import AWSCredentialsIdentity

        from aio_assume_role_lib.adapters.sdk_v4 import CredentialsResolver

        resolver = CredentialsResolver(child)

        async def resolve() -> Any:
            return await resolver.get_identity(properties={})

        async def sdk_glue() -> Any:
            frozen = await credentials.get_frozen_credentials()
            return AWSCredentialsIdentity(
                access_key_id=frozen.access_key,
                secret_access_key=frozen.secret_key,
                session_token=frozen.token,
                expiration=credentials.expiry_time,
            )

        rows.append(
            (
                "SDK v4 CredentialsResolver (one identity)",
                await _acpu_per_call(resolve, count, rounds),
                await _acpu_per_call(sdk_glue, count, rounds),
            )
        )

    # Sync callers in a worker thread: the adapter's lock-free read, against handing
    # get_frozen_credentials() to the app's loop and waiting (the usual glue).
    sync_credentials = SyncCredentials(child)
    loop = asyncio.get_running_loop()

    def sync_adapter(n: int) -> None:
        for _ in range(n):
            sync_credentials()

    def sync_glue(n: int) -> None:
        for _ in range(n):
            asyncio.run_coroutine_threadsafe(credentials.get_frozen_credentials(), loop).result()

    sync_count = max(count // 10, 10)
    adapter_us = await asyncio.to_thread(_cpu_per_call, sync_adapter, sync_count, rounds)
    glue_us = await asyncio.to_thread(_cpu_per_call, sync_glue, sync_count, rounds)
    rows.append(("SyncCredentials from a thread (one answer)", adapter_us, glue_us))
    return rows


async def calls_per_lifetime(
    sts: LoopbackSTS, lifetime: float, lifetimes: int
) -> tuple[int, float, int]:
    """A2: (AssumeRole calls, lifetimes covered, consumer calls) with all consumers."""
    sts.credential_lifetime = lifetime
    sts.reset()
    child = await assume_role(AioSession(), ROLE, RoleSessionName="all-consumers")
    stop_at = 0.0  # set once every consumer is ready
    period = lifetime / 40
    done = [0]
    failed: list[str] = []

    async def loop(call: Callable[[], Awaitable[Any]]) -> None:
        while time.monotonic() < stop_at:
            try:
                await call()
            except Exception as error:  # a figure to report (the target is none)
                failed.append(type(error).__name__)
            done[0] += 1
            await asyncio.sleep(period)

    consumers: list[Callable[[], Awaitable[Any]]] = []
    http = httpx.AsyncClient(auth=SigV4Auth(child, "sts"))

    async def via_httpx() -> None:
        (await http.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)).raise_for_status()

    consumers.append(via_httpx)
    provider = credential_provider(child)
    consumers.append(provider)  # obstore asks its provider this often at short lifetimes
    sync_client = httpx.Client(auth=SigV4Auth(child, "sts"))
    lock = threading.Lock()

    def sync_call() -> None:
        with lock:
            sync_client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY).raise_for_status()

    async def via_thread() -> None:
        await asyncio.to_thread(sync_call)

    consumers.append(via_thread)
    sdk_client = None
    if HAS_SDK_V4:
        from aws_sdk_sts.client import AsyncSTSClient
        from aws_sdk_sts.config import AsyncSTSConfig
        from aws_sdk_sts.models import GetCallerIdentityInput

        from aio_assume_role_lib.adapters.sdk_v4 import CredentialsResolver

        config = await AsyncSTSConfig.resolve(
            region="us-east-1",
            endpoint_uri=sts.endpoint_url,
            aws_credentials_identity_resolver=CredentialsResolver(child),
        )
        sdk_client = AsyncSTSClient(config=config)

        async def via_sdk() -> None:
            await sdk_client.get_caller_identity(GetCallerIdentityInput())

        consumers.append(via_sdk)
    async with child.create_client("sts") as botocore_sts:
        consumers.append(botocore_sts.get_caller_identity)
        started = time.monotonic()
        stop_at = started + lifetime * lifetimes
        await asyncio.gather(*(loop(call) for call in consumers))
        elapsed = time.monotonic() - started
    await http.aclose()
    sync_client.close()  # noqa: ASYNC212 - no request in flight: nothing to wait for
    if sdk_client is not None:
        await sdk_client.close()
    return sts.assume_role_count, elapsed / lifetime, done[0], failed


async def main(smoke: bool) -> None:
    count, rounds = (200, 3) if smoke else (5000, 7)
    # Smoke: 6 s lifetimes, so that a CI job starved at nice 19 still signs in time.
    lifetime, lifetimes = (6.0, 2) if smoke else (20.0, 4)
    with LoopbackSTS() as sts:
        # Only the loopback STS: no profile, config file or other AWS_* setting of the
        # machine running the benchmark.
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        os.environ.update(sts.environ())
        rows = await cpu_per_request(sts, count, rounds)
        calls, covered, consumer_calls, failed = await calls_per_lifetime(sts, lifetime, lifetimes)
    print(f"Python {platform.python_version()}; SDK v4: {'yes' if HAS_SDK_V4 else 'not installed'}")
    print()
    print("A1. CPU per call, median of rounds (us)")
    print()
    print("| consumer | adapter | hand-written glue |")
    print("|---|---:|---:|")
    for name, adapter_us, glue_us in rows:
        print(f"| {name} | {adapter_us:.1f} | {glue_us:.1f} |")
    print()
    print(
        f"A2. {len(rows) + 1} kinds of consumers side by side for {covered:.1f} lifetimes of "
        f"{lifetime:g} s ({consumer_calls} calls): {calls} AssumeRole calls "
        f"({calls / covered:.2f} per lifetime; the first fetch included); "
        f"{len(failed)} failed calls {sorted(set(failed))}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, 6 s lifetimes")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    asyncio.run(main(args.smoke))

"""aio-assume-role-lib in one minute, against a local STS endpoint (no AWS account needed).

Run it with ``python3 dev.py demo`` (which sets up a virtual environment), or with
``python examples/demo.py`` where the library is installed.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role, credentials_of, get_role_arn
from aio_assume_role_lib.testing import LoopbackSTS

READER = get_role_arn("111111111111", "Reader")
AUDITOR = get_role_arn("222222222222", "Auditor")
WORKER = get_role_arn("333333333333", "Worker")


def say(text: str) -> None:
    print(text, flush=True)


async def whoami(session: AioSession) -> str:
    async with session.create_client("sts") as sts:
        return str((await sts.get_caller_identity())["Arn"])


async def main() -> None:
    with LoopbackSTS() as sts:
        # Point botocore's standard settings at the local endpoint, as a test would.
        os.environ.update(sts.environ())
        parent = AioSession()
        say(f"Local STS endpoint on {sts.endpoint_url}; parent identity: {await whoami(parent)}")

        say("\n1. Assume a role. assume_role() itself makes no STS call:")
        reader = await assume_role(parent, READER, RoleSessionName="demo")
        say(f"   after assume_role(): {sts.assume_role_count} AssumeRole calls")
        say(f"   first use -> {await whoami(reader)}")
        say(f"   after first use:     {sts.assume_role_count} AssumeRole call")

        say("\n2. Chain a second role, in another account, from the first:")
        auditor = await assume_role(reader, AUDITOR, RoleSessionName="chained")
        say(f"   -> {await whoami(auditor)}")

        say("\n3. Region: by default the child follows its parent's region, live:")
        parent.set_config_variable("region", "eu-west-1")
        pinned = await assume_role(parent, READER, RoleSessionName="demo", region_name="us-west-2")
        say(
            f"   parent eu-west-1 -> child {reader.get_config_variable('region')}, pinned child {pinned.get_config_variable('region')}"
        )
        parent.set_config_variable("region", "ap-southeast-2")
        say(
            f"   parent ap-southeast-2 -> child {reader.get_config_variable('region')}, pinned child {pinned.get_config_variable('region')}"
        )

        say("\n4. 1,000 concurrent tasks, each calling assume_role() and signing a request:")
        before = sts.assume_role_count

        async def handle_request() -> str:
            child = await assume_role(parent, WORKER, RoleSessionName="per-request")
            credentials = credentials_of(child)
            # What aiobotocore's signer awaits before every request:
            return str((await credentials.get_frozen_credentials()).access_key)

        started = time.perf_counter()
        keys = await asyncio.gather(*(handle_request() for _ in range(1000)))
        elapsed = time.perf_counter() - started
        worker = await assume_role(parent, WORKER, RoleSessionName="per-request")
        say(
            f"   {len(keys)} tasks in {elapsed * 1000:.0f} ms, all with the same credentials: {len(set(keys)) == 1}"
        )
        say(f"   AssumeRole calls for all of them: {sts.assume_role_count - before}")
        say(f"   they act as {await whoami(worker)}")

        say("\n5. Refresh: credentials that live 6 seconds, steady traffic for 8 seconds,")
        say("   and an STS that takes 0.3 s to answer:")
        sts.credential_lifetime = 6.0
        short = await assume_role(parent, READER, RoleSessionName="short-lived")
        credentials = credentials_of(short)
        before = sts.assume_role_count
        longest_wait = 0.0
        async with short.create_client("sts") as client:
            await client.get_caller_identity()  # the first fetch waits for STS, once
            sts.latency = 0.3
            last_key = (await credentials.get_frozen_credentials()).access_key
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                key = (await credentials.get_frozen_credentials()).access_key
                longest_wait = max(longest_wait, time.perf_counter() - t0)
                await client.get_caller_identity()
                if key != last_key:
                    say(f"   {time.strftime('%H:%M:%S')} new credentials arrived in the background")
                    last_key = key
        expired = sum(1 for call in sts.calls if call.outcome == "ExpiredToken")
        stats = credentials.refresh_stats
        say(
            f"   {sts.assume_role_count - before} AssumeRole calls in ~8 s of traffic on 6-second credentials"
        )
        say(
            f"   {stats.advisory_refreshes} background refreshes; requests that met expired credentials: {expired}"
        )
        say(f"   longest time a request waited for credentials: {longest_wait * 1000:.1f} ms")
        say("\nDone: the local STS endpoint is stopped.")


if __name__ == "__main__":
    asyncio.run(main())

"""Issue 22's proof: one child, every kind of consumer side by side, across several
20-second credential lifetimes (a TIMED_TESTS file: it runs on real time).

Consumers of the one child: httpx (SigV4Auth, GetCallerIdentity at the loopback STS),
obstore (credential_provider, PUTs at the S3-like loopback endpoint), the AWS SDK for
Python v4 (CredentialsResolver, GetCallerIdentity; where Python >= 3.12 has it), a sync
httpx client in a worker thread (SyncCredentials' path), and the child's own aiobotocore
client. Every call must succeed, act as the child's role, follow each refresh, and all of
them together must cause one AssumeRole per lifetime.
"""

from __future__ import annotations

import importlib.util
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from ._s3_loopback import LoopbackS3
from .conftest import ROLE_A, caller_arn

httpx = pytest.importorskip("httpx")
obstore = pytest.importorskip("obstore")

from aio_assume_role_lib.adapters.httpx import SigV4Auth  # noqa: E402
from aio_assume_role_lib.adapters.obstore import credential_provider  # noqa: E402

HAS_SDK_V4 = importlib.util.find_spec("aws_sdk_sts") is not None

pytestmark = pytest.mark.anyio

LIFETIME = 20.0
LIFETIMES = 3
PERIOD = 0.5  # seconds between two calls of one consumer
GET_CALLER_IDENTITY = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}


def key_of(authorization: str) -> str:
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


def arn_in(body: str) -> str:
    return body.split("<Arn>", 1)[1].split("</Arn>", 1)[0]


async def test_all_consumers_of_one_child_share_one_refresh_per_lifetime(
    sts: LoopbackSTS,
) -> None:
    sts.credential_lifetime = LIFETIME
    child = await assume_role(AioSession(), ROLE_A)
    role_arn = await caller_arn(child)  # the first fetch
    # consumer -> [(access key, acting arn)] per call; failures as exceptions
    used: dict[str, list[tuple[str, str]]] = {}
    failures: list[tuple[str, BaseException]] = []
    stop_at = time.monotonic() + LIFETIME * LIFETIMES + 2.0

    async def loop(name: str, call: Callable[[], Awaitable[tuple[str, str]]]) -> None:
        used[name] = []
        while time.monotonic() < stop_at:
            try:
                used[name].append(await call())
            except Exception as error:  # recorded, asserted below
                failures.append((name, error))
            await anyio.sleep(PERIOD)

    with LoopbackS3(sts) as s3:
        async with httpx.AsyncClient(auth=SigV4Auth(child, "sts")) as http:

            async def via_httpx() -> tuple[str, str]:
                response = await http.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)
                assert response.status_code == 200, response.text
                return key_of(response.request.headers["Authorization"]), arn_in(response.text)

            from obstore.store import S3Store

            store = S3Store(
                "bucket",
                endpoint=s3.endpoint_url,
                region="us-east-1",
                credential_provider=credential_provider(child),
                client_options={"allow_http": True},
                virtual_hosted_style_request=False,
            )
            puts = 0

            async def via_obstore() -> tuple[str, str]:
                nonlocal puts
                puts += 1
                await obstore.put_async(store, f"object-{puts}", b"x")
                call = s3.calls[-1]
                assert call.outcome == "ok"
                assert call.access_key_id
                assert call.caller_arn
                return call.access_key_id, call.caller_arn

            sync_auth = SigV4Auth(child, "sts")
            sync_client = httpx.Client(auth=sync_auth)
            sync_lock = threading.Lock()

            def sync_call() -> tuple[str, str]:
                with sync_lock:
                    response = sync_client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)
                assert response.status_code == 200, response.text
                return key_of(response.request.headers["Authorization"]), arn_in(response.text)

            async def via_sync_thread() -> tuple[str, str]:
                return await anyio.to_thread.run_sync(sync_call)

            async with child.create_client("sts") as botocore_sts:

                async def via_aiobotocore() -> tuple[str, str]:
                    answer = await botocore_sts.get_caller_identity()
                    frozen = await (await child.get_credentials()).get_frozen_credentials()
                    return frozen.access_key, answer["Arn"]

                consumers: dict[str, Callable[[], Awaitable[tuple[str, str]]]] = {
                    "httpx": via_httpx,
                    "obstore": via_obstore,
                    "sync thread": via_sync_thread,
                    "aiobotocore": via_aiobotocore,
                }
                sdk_v4_client = None
                if HAS_SDK_V4:
                    consumers["sdk v4"], sdk_v4_client = await sdk_v4_consumer(sts, child)
                async with anyio.create_task_group() as group:
                    for name, call in consumers.items():
                        group.start_soon(loop, name, call)
                if sdk_v4_client is not None:
                    await sdk_v4_client.close()
            sync_client.close()

    assert failures == []
    assume_roles = [call for call in sts.calls if call.action == "AssumeRole"]
    issued = [call.issued_access_key_id for call in assume_roles]
    for name, calls in used.items():
        assert len(calls) >= LIFETIME * LIFETIMES / PERIOD / 2, name  # it kept calling
        assert {arn for _, arn in calls} == {role_arn}, name
        keys = list(dict.fromkeys(key for key, _ in calls))
        # It followed every refresh, in order, never back to older credentials.
        assert len(keys) >= LIFETIMES, (name, len(keys))
        assert keys == [key for key in issued if key in keys], name
    # One refresh per lifetime for all of them together: the first fetch plus one
    # advisory refresh about 16-17 s into each 20 s lifetime (never after expiry).
    started = [call.time for call in assume_roles]
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert all(call.outcome == "ok" for call in assume_roles)
    assert LIFETIMES <= len(assume_roles) <= LIFETIMES + 1, gaps
    assert all(LIFETIME * 0.7 <= gap < LIFETIME for gap in gaps), gaps


async def sdk_v4_consumer(
    sts: LoopbackSTS, child: Any
) -> tuple[Callable[[], Awaitable[tuple[str, str]]], Any]:
    from aws_sdk_sts.client import AsyncSTSClient
    from aws_sdk_sts.config import AsyncSTSConfig
    from aws_sdk_sts.models import GetCallerIdentityInput

    from aio_assume_role_lib.adapters.sdk_v4 import CredentialsResolver

    resolver = CredentialsResolver(child)
    signed_with: list[str] = []

    class Recording:
        """The adapter, noting the access key of each identity it hands the SDK."""

        async def get_identity(self, *, properties: Any) -> Any:
            identity = await resolver.get_identity(properties=properties)
            signed_with.append(identity.access_key_id)
            return identity

        def __deepcopy__(self, memo: dict[int, Any]) -> Recording:
            return self

    config = await AsyncSTSConfig.resolve(
        region="us-east-1",
        endpoint_uri=sts.endpoint_url,
        aws_credentials_identity_resolver=Recording(),
    )
    client = AsyncSTSClient(config=config)

    async def via_sdk_v4() -> tuple[str, str]:
        answer = await client.get_caller_identity(GetCallerIdentityInput())
        assert answer.arn is not None
        return signed_with[-1], answer.arn

    return via_sdk_v4, client

"""The adapters (aio_assume_role_lib.adapters) against the real packages, over loopback
HTTP: httpx / httpx2 SigV4Auth, obstore's credential_provider and SyncCredentials.

What a user sees: the identity each consumer acts as (GetCallerIdentity at the loopback
STS, or the key an S3-like loopback endpoint verified), the AssumeRole calls the
loopback STS counted, and the errors bad input gets. The AWS SDK for Python v4's
resolver is in test_adapters_sdk_v4.py (Python >= 3.12); the side-by-side proof over
several lifetimes in test_adapters_proof.py (timed).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import RefreshPolicy, RefreshTimeoutError, assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from ._s3_loopback import LoopbackS3
from .conftest import ASYNCIO_AND_TRIO, ROLE_A, caller_arn, httpx_parent

httpx = pytest.importorskip("httpx")
obstore = pytest.importorskip("obstore")

from aio_assume_role_lib.adapters import httpx as httpx_adapter  # noqa: E402
from aio_assume_role_lib.adapters import httpx2 as httpx2_adapter  # noqa: E402
from aio_assume_role_lib.adapters.obstore import credential_provider  # noqa: E402
from aio_assume_role_lib.adapters.sync import (  # noqa: E402
    EventLoopThreadError,
    SyncCredentials,
)

pytestmark = pytest.mark.anyio

GET_CALLER_IDENTITY = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
ROLE_A_SESSION_ARN_PREFIX = "arn:aws:sts::111111111111:assumed-role/Reader/"

# The two httpx flavours: httpx, and httpx2 (Pydantic's fork, same Auth API).
FLAVOURS = ["httpx", "httpx2"]


def flavour(name: str) -> tuple[Any, Any]:
    """(the HTTP library, its adapter module)."""
    if name == "httpx":
        return httpx, httpx_adapter
    return pytest.importorskip("httpx2"), httpx2_adapter


@pytest.fixture
def s3(sts: LoopbackSTS) -> Iterator[LoopbackS3]:
    with LoopbackS3(sts) as server:
        yield server


@pytest.fixture
async def child(sts: LoopbackSTS) -> Any:
    return await assume_role(AioSession(), ROLE_A)


def s3_store(s3: LoopbackS3, session: Any) -> Any:
    from obstore.store import S3Store

    return S3Store(
        "bucket",
        endpoint=s3.endpoint_url,
        region="us-east-1",
        credential_provider=credential_provider(session),
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )


def arn_in(body: str) -> str:
    return body.split("<Arn>", 1)[1].split("</Arn>", 1)[0]


# --- httpx / httpx2 SigV4Auth ---------------------------------------------------------


@pytest.mark.parametrize("name", FLAVOURS)
async def test_httpx_signs_as_the_childs_role(name: str, sts: LoopbackSTS, child: Any) -> None:
    lib, adapter = flavour(name)
    async with lib.AsyncClient(auth=adapter.SigV4Auth(child, "sts")) as client:
        posted = await client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)
        queried = await client.get(sts.endpoint_url + "/", params=GET_CALLER_IDENTITY)
    assert posted.status_code == 200, posted.text
    assert queried.status_code == 200, queried.text
    # The loopback STS verified both signatures; the identity is the child's role.
    assert arn_in(posted.text).startswith(ROLE_A_SESSION_ARN_PREFIX)
    assert arn_in(posted.text) == await caller_arn(child)
    assert sts.assume_role_count == 1  # shared with the child's own client


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_httpx2_async_client_on_asyncio_and_trio(
    anyio_backend: str, sts: LoopbackSTS
) -> None:
    """The adapter awaits the engine on whichever loop runs it (trio: stack S1, where the
    child's STS client uses aiobotocore's httpx backend)."""
    lib, adapter = flavour("httpx2")
    parent = httpx_parent() if anyio_backend == "trio" else AioSession()
    child = await assume_role(parent, ROLE_A)
    async with lib.AsyncClient(auth=adapter.SigV4Auth(child, "sts")) as client:
        responses = [
            await client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY) for _ in range(3)
        ]
    assert [r.status_code for r in responses] == [200] * 3
    assert arn_in(responses[0].text).startswith(ROLE_A_SESSION_ARN_PREFIX)
    assert sts.assume_role_count == 1


@pytest.mark.parametrize("name", FLAVOURS)
async def test_httpx_s3_signs_the_payload_or_sends_it_unsigned_when_streamed(
    name: str, s3: LoopbackS3, child: Any
) -> None:
    lib, adapter = flavour(name)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    async with lib.AsyncClient(auth=adapter.SigV4Auth(child, "s3")) as client:
        put = await client.put(s3.endpoint_url + "/bucket/a b+c~d.txt", content=b"in memory")
        streamed = await client.put(s3.endpoint_url + "/bucket/streamed", content=chunks())
        listed = await client.get(
            s3.endpoint_url + "/bucket/", params={"list-type": "2", "prefix": "a b+"}
        )
    assert (put.status_code, streamed.status_code, listed.status_code) == (200, 200, 200)
    assert "<Key>a b+c~d.txt</Key>" in listed.text
    assert s3.objects["bucket/streamed"] == b"streamed body"
    put_request, streamed_request = put.request, streamed.request
    assert put_request.headers["x-amz-content-sha256"] == hashlib.sha256(b"in memory").hexdigest()
    assert streamed_request.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert {call.caller_arn for call in s3.calls} == {await caller_arn(child)}


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidToken"])
async def test_httpx_rejected_token_invalidates_by_key_and_retries_once(
    code: str, sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    credentials = await child.get_credentials()
    async with httpx.AsyncClient(auth=httpx_adapter.SigV4Auth(child, "s3")) as client:
        first = await client.put(s3.endpoint_url + "/bucket/one", content=b"1")
        s3.reject_next(code)
        second = await client.put(s3.endpoint_url + "/bucket/two", content=b"2")
    assert (first.status_code, second.status_code) == (200, 200)
    keys = [call.access_key_id for call in s3.calls]
    outcomes = [call.outcome for call in s3.calls]
    assert outcomes == ["ok", code, "ok"]
    assert keys[0] == keys[1] != keys[2]  # rejected with the old key, retried with a new one
    assert sts.assume_role_count == 2
    assert credentials.refresh_stats.invalidations == 1


async def test_httpx_burst_of_rejections_makes_one_refresh(
    sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    async with httpx.AsyncClient(auth=httpx_adapter.SigV4Auth(child, "s3")) as client:
        warm = await client.put(s3.endpoint_url + "/bucket/warm", content=b"")
        old_key = warm.request.headers["Authorization"].split("Credential=")[1].split("/")[0]
        s3.reject_key(old_key, "ExpiredToken")

        async def put(n: int) -> None:
            response = await client.put(s3.endpoint_url + f"/bucket/{n}", content=b"x")
            assert response.status_code == 200

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(put, n)
    assert sts.assume_role_count == 2
    assert len(s3.objects) == 11  # every request succeeded in the end
    rejected = [call for call in s3.calls if call.outcome == "ExpiredToken"]
    assert len(rejected) == 10
    assert {call.access_key_id for call in rejected} == {old_key}


@pytest.mark.parametrize(
    ("code", "status"), [("AccessDenied", 403), ("RequestExpired", 400), ("SlowDown", 503)]
)
async def test_httpx_other_errors_are_returned_without_refresh(
    code: str, status: int, sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    async with httpx.AsyncClient(auth=httpx_adapter.SigV4Auth(child, "s3")) as client:
        await client.put(s3.endpoint_url + "/bucket/warm", content=b"")
        s3.reject_next(code, status)
        response = await client.put(s3.endpoint_url + "/bucket/x", content=b"x")
    assert response.status_code == status
    assert f"<Code>{code}</Code>" in response.text
    assert sts.assume_role_count == 1
    assert [call.outcome for call in s3.calls] == ["ok", code]


async def test_httpx_streamed_s3_body_is_not_retried(
    sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"once"

    async with httpx.AsyncClient(auth=httpx_adapter.SigV4Auth(child, "s3")) as client:
        s3.reject_next("ExpiredToken")
        response = await client.put(s3.endpoint_url + "/bucket/x", content=chunks())
    # A streamed body cannot be sent twice: the rejection reaches the caller.
    assert response.status_code == 400
    assert len(s3.calls) == 1


@pytest.mark.parametrize("name", FLAVOURS)
async def test_httpx_sync_client_works_from_a_worker_thread(
    name: str, sts: LoopbackSTS, child: Any
) -> None:
    lib, adapter = flavour(name)
    auth = adapter.SigV4Auth(child, "sts")

    def call() -> Any:
        with lib.Client(auth=auth) as client:
            return client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)

    # Nothing fetched yet: the worker thread's call makes the first fetch (on the
    # private loop), and the child's own clients then use the same credentials.
    response = await anyio.to_thread.run_sync(call)
    assert response.status_code == 200
    assert arn_in(response.text) == await caller_arn(child)
    assert sts.assume_role_count == 1


@pytest.mark.parametrize("name", FLAVOURS)
async def test_httpx_sync_client_on_the_event_loop_thread_says_use_async_client(
    name: str, sts: LoopbackSTS, child: Any
) -> None:
    lib, adapter = flavour(name)
    with (
        lib.Client(auth=adapter.SigV4Auth(child, "sts")) as client,
        pytest.raises(EventLoopThreadError, match=rf"use {name}\.AsyncClient"),
    ):
        client.post(sts.endpoint_url + "/", data=GET_CALLER_IDENTITY)
    assert sts.calls == []


@pytest.mark.parametrize(
    ("service", "region", "message"),
    [
        ("", None, "service must be an AWS signing name"),
        ("S3", None, "service must be an AWS signing name"),
        (None, None, "service must be an AWS signing name"),
        ("s3", "", "region must be a region name"),
    ],
)
async def test_httpx_bad_arguments_are_refused_before_any_request(
    service: Any, region: Any, message: str, sts: LoopbackSTS, child: Any
) -> None:
    with pytest.raises(ValueError, match=message):
        httpx_adapter.SigV4Auth(child, service, region=region)
    assert sts.calls == []


async def test_httpx_without_a_region_says_how_to_give_one(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    parent = AioSession()
    parent.set_config_variable("region", "eu-west-1")  # its STS calls need one (issue 19.10)
    child = await assume_role(parent, ROLE_A, region_name=False)  # the child has none
    with pytest.raises(ValueError, match=r"the session has no region; pass region="):
        httpx_adapter.SigV4Auth(child, "s3")
    auth = httpx_adapter.SigV4Auth(child, "s3", region="eu-west-1")
    assert repr(auth) == "<SigV4Auth service='s3' region='eu-west-1'>"


# --- which sessions the adapters take -------------------------------------------------


def adapter_factories() -> list[Any]:
    return [
        pytest.param(lambda s: httpx_adapter.SigV4Auth(s, "s3", region="us-east-1"), id="httpx"),
        pytest.param(lambda s: httpx2_adapter.SigV4Auth(s, "s3", region="us-east-1"), id="httpx2"),
        pytest.param(credential_provider, id="obstore"),
        pytest.param(SyncCredentials, id="sync"),
    ]


@pytest.mark.parametrize("make", adapter_factories())
async def test_adapters_refuse_sessions_the_library_does_not_refresh(
    make: Any, sts: LoopbackSTS
) -> None:
    plain = AioSession()
    await plain.get_credentials()  # credentials loaded, but nobody refreshes them
    for session in (plain, object(), None):
        with pytest.raises(TypeError, match=r"needs a session whose credentials"):
            make(session)
    assert sts.calls == []


@pytest.mark.parametrize("make", adapter_factories())
async def test_adapters_take_aioboto3_children(make: Any, sts: LoopbackSTS) -> None:
    aioboto3 = pytest.importorskip("aioboto3")
    child = await assume_role(aioboto3.Session(), ROLE_A)
    assert make(child) is not None
    assert sts.calls == []  # nothing fetched before first use


# --- obstore --------------------------------------------------------------------------


async def test_obstore_reads_and_writes_as_the_childs_role(
    sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    store = s3_store(s3, child)
    await obstore.put_async(store, "dir/hello world.txt", b"hello")
    got = await obstore.get_async(store, "dir/hello world.txt")
    assert bytes(await got.bytes_async()) == b"hello"
    assert [call.outcome for call in s3.calls] == ["ok", "ok"]
    assert {call.caller_arn for call in s3.calls} == {await caller_arn(child)}
    assert sts.assume_role_count == 1


async def test_obstore_provider_returns_the_credentials_with_their_expiry(
    sts: LoopbackSTS, child: Any
) -> None:
    answer = await credential_provider(child)()
    credentials = await child.get_credentials()
    frozen = await credentials.get_frozen_credentials()
    assert set(answer) == {"access_key_id", "secret_access_key", "token", "expires_at"}
    assert answer["access_key_id"] == frozen.access_key
    assert answer["secret_access_key"] == frozen.secret_key
    assert answer["token"] == frozen.token
    assert answer["expires_at"] == credentials.expiry_time
    assert answer["expires_at"].tzinfo is not None
    # The provider's repr shows no secret.
    assert frozen.secret_key not in repr(credential_provider(child))
    # obstore asks on every request within 5 min of expiry: each answer is a read of the
    # engine's cache, never a fetch of its own.
    provider = credential_provider(child)
    for _ in range(5):
        assert (await provider())["access_key_id"] == frozen.access_key
    assert sts.assume_role_count == 1


async def test_obstore_follows_an_invalidation(
    sts: LoopbackSTS, s3: LoopbackS3, child: Any
) -> None:
    sts.credential_lifetime = 200.0  # obstore re-asks 5 min before expiry: each request
    store = s3_store(s3, child)
    await obstore.put_async(store, "a", b"1")
    credentials = await child.get_credentials()
    assert credentials.invalidate()
    # obstore re-asks within 5 min of expires_at, but not for requests a few ms apart.
    await anyio.sleep(1.0)
    await obstore.put_async(store, "b", b"2")
    keys = [call.access_key_id for call in s3.calls]
    assert keys[0] != keys[1]
    assert sts.assume_role_count == 2


# --- SyncCredentials ------------------------------------------------------------------


async def test_sync_credentials_from_many_threads_make_one_fetch(
    sts: LoopbackSTS, child: Any
) -> None:
    credentials = SyncCredentials(child)
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        results.append(credentials())

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(anyio.to_thread.run_sync, call)
    assert sts.assume_role_count == 1
    assert len({r.access_key for r in results}) == 1
    frozen = await (await child.get_credentials()).get_frozen_credentials()
    assert results[0] == frozen  # the same credentials the child's clients sign with
    assert credentials.expiry_time == (await child.get_credentials()).expiry_time


async def test_sync_credentials_follow_an_invalidation(sts: LoopbackSTS, child: Any) -> None:
    credentials = SyncCredentials(child)
    first = await anyio.to_thread.run_sync(credentials)
    assert credentials.invalidate(first.access_key)
    assert not credentials.invalidate("ASIANOTTHEKEYHELD000")
    second = await anyio.to_thread.run_sync(credentials.get_frozen_credentials)
    assert second.access_key != first.access_key
    assert sts.assume_role_count == 2


async def test_sync_credentials_on_the_event_loop_thread_raise(
    sts: LoopbackSTS, child: Any
) -> None:
    credentials = SyncCredentials(child)
    await child.get_credentials()
    with pytest.raises(EventLoopThreadError, match=r"call it from a worker thread"):
        credentials()
    # Even with fresh credentials cached: the mistake shows at once, not once a lifetime.
    frozen = await (await child.get_credentials()).get_frozen_credentials()
    assert frozen.access_key
    with pytest.raises(EventLoopThreadError):
        credentials()


def test_sync_credentials_in_a_plain_program(sts: LoopbackSTS) -> None:
    """No event loop anywhere in the caller: the private loop does the fetching."""
    child = asyncio.run(assume_role(AioSession(), ROLE_A))
    credentials = SyncCredentials(child)
    first = credentials()
    assert credentials() is first  # the hot path: the cached value, no fetch
    assert sts.assume_role_count == 1
    assert repr(credentials).startswith("<SyncCredentials ")
    assert first.secret_key not in repr(credentials)


async def test_sync_credentials_raise_the_engines_timeout(sts: LoopbackSTS) -> None:
    policy = RefreshPolicy(attempt_timeout_seconds=1.0, try_timeout_seconds=0.5, max_tries=1)
    child = await assume_role(AioSession(), ROLE_A, refresh=policy)
    sts.fail_next("hang")
    with pytest.raises(RefreshTimeoutError):
        await anyio.to_thread.run_sync(SyncCredentials(child))


# --- missing extras -------------------------------------------------------------------


def _import_without(module: str, missing: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises
    monkeypatch.delitem(sys.modules, f"aio_assume_role_lib.adapters.{module}", raising=False)
    return importlib.import_module(f"aio_assume_role_lib.adapters.{module}")


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("httpx", "httpx", "httpx"),
        ("httpx2", "httpx2", "httpx2"),
        ("obstore", "obstore", "obstore"),
    ],
)
def test_adapter_without_its_package_names_the_extra(
    module: str, missing: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImportError, match=rf"pip install 'aio-assume-role-lib\[{extra}\]'"):
        _import_without(module, missing, monkeypatch)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the message for Python < 3.12")
def test_sdk_v4_adapter_on_old_python_says_it_needs_312() -> None:
    with pytest.raises(ImportError, match=r"needs Python >= 3.12.*\[sdk-v4\]"):
        importlib.import_module("aio_assume_role_lib.adapters.sdk_v4")

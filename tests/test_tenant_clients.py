"""SPEC §4 R14: ``ClientPool.tenant_client``, children that differ only in credentials
sharing one client, over real HTTP to an S3-like loopback endpoint that checks each
signature against the keys the loopback STS issued and records which identity signed.

Each tenant is a role session named ``tenant-<n>`` and touches only keys under
``tenant-<n>/``, so a request signed with another tenant's key shows as a path and a
signer that disagree. Opening and closing of shared clients is recorded by wrapping the
context that opens them; time is a hand-driven clock.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import random
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.lowlevel
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from aio_assume_role_lib import (
    ClientPool,
    RefreshPolicy,
    TenantClientError,
    _assume,
    assume_role,
    credentials_of,
)
from aio_assume_role_lib import _tenant_client as tenant_module
from aio_assume_role_lib.testing import LoopbackSTS

from ._s3_loopback import LoopbackS3, S3Call
from .conftest import (
    ASYNCIO_AND_TRIO,
    HANG_SECONDS,
    HAS_AIOBOTO3,
    ROLE_A,
    httpx_parent,
    make_parent,
)

pytestmark = pytest.mark.anyio

BUCKET = "tenants"
PATIENT = RefreshPolicy(try_timeout_seconds=HANG_SECONDS, attempt_timeout_seconds=HANG_SECONDS)


@pytest.fixture
def s3(sts: LoopbackSTS) -> Iterator[LoopbackS3]:
    with LoopbackS3(sts) as server:
        yield server


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every open and close of a shared client, in order: ("open"|"close", service)."""
    events: list[tuple[str, str]] = []
    context = tenant_module.SharedClientContext
    real_enter, real_exit = context.__aenter__, context.__aexit__

    async def enter(self: Any) -> Any:
        shared = await real_enter(self)
        events.append(("open", self._service_name))
        return shared

    async def exit_(self: Any, *exc: Any) -> None:
        await real_exit(self, *exc)
        events.append(("close", self._service_name))

    monkeypatch.setattr(context, "__aenter__", enter)
    monkeypatch.setattr(context, "__aexit__", exit_)
    return events


async def tenant(parent: Any, number: int) -> Any:
    return await assume_role(
        parent, ROLE_A, RoleSessionName=f"tenant-{number}", DurationSeconds=900, refresh=PATIENT
    )


async def key_of(child: Any) -> str:
    return str((await credentials_of(child).get_frozen_credentials()).access_key)


def owner(call: S3Call) -> str:
    """The tenant whose keys a request touches (a list request: its prefix's)."""
    if call.path == f"/{BUCKET}":
        return dict(parse_qsl(call.query))["prefix"].split("/")[0]
    return call.path.removeprefix(f"/{BUCKET}/").split("/")[0]


def signer(call: S3Call) -> str:
    return str(call.caller_arn).rsplit("/", 1)[-1]


def signed_by_their_tenant(s3: LoopbackS3) -> list[tuple[str, str | None, str]]:
    """The requests that failed or were signed by another tenant than the one whose
    keys they touch (empty when all is well)."""
    return [
        (call.path, call.caller_arn, call.outcome)
        for call in s3.calls
        if call.outcome != "ok" or signer(call) != owner(call)
    ]


# --- isolation ---------------------------------------------------------------------------

TENANTS = 200
TASKS = 100
ROUNDS = 2


async def test_every_request_is_signed_by_its_own_tenant_under_load(
    sts: LoopbackSTS, s3: LoopbackS3, opened: list[tuple[str, str]]
) -> None:
    """200 tenants x 2 rounds in a shuffled order, 100 tasks at once, each request
    through its tenant's view of one shared client; every third task also leases a
    second tenant inside the first's lease and sends both requests at once. The first
    round waits for each tenant's first credentials inside the call (an STS round trip
    while the other tasks run), the second finds them cached."""
    parent = AioSession()
    parent.set_default_client_config(AioConfig(max_pool_connections=50))
    work = [number for _ in range(ROUNDS) for number in range(TENANTS)]
    random.Random(21).shuffle(work)
    sent = 0

    async with ClientPool() as pool:

        async def put(view: Any, number: int) -> None:
            nonlocal sent
            sent += 1
            await view.put_object(Bucket=BUCKET, Key=f"tenant-{number}/{sent}", Body=b"x")

        async def yield_before_signing(**_: Any) -> None:
            await anyio.lowlevel.checkpoint()

        async def request(number: int, index: int) -> None:
            child = await tenant(parent, number)
            async with pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as view:
                view.meta.events.register(  # on the shared client, once (a unique id)
                    "before-sign.s3", yield_before_signing, unique_id="test.yield"
                )
                if index % 3:
                    await put(view, number)
                    return
                other = (number + 1) % TENANTS
                second = await tenant(parent, other)
                async with pool.tenant_client(
                    second, "s3", endpoint_url=s3.endpoint_url
                ) as other_view:
                    await asyncio.gather(put(view, number), put(other_view, other))

        async def worker() -> None:
            while work:
                index = len(work)
                await request(work.pop(), index)

        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                for _ in range(TASKS):
                    tasks.start_soon(worker)
        assert pool.clients_opened == 1
    assert opened == [("open", "s3"), ("close", "s3")]
    assert len(s3.calls) == sent > TENANTS * ROUNDS
    assert signed_by_their_tenant(s3) == []
    assert sts.assume_role_count == TENANTS


async def test_paginators_waiters_and_presigned_urls_are_their_tenants(
    sts: LoopbackSTS, s3: LoopbackS3
) -> None:
    """Two tenants leased in one task: their paginators interleaved page by page and
    run at once, a waiter each, presigned URLs and POSTs each."""
    parent = AioSession()
    first, second = await tenant(parent, 1), await tenant(parent, 2)
    async with (
        ClientPool() as pool,
        pool.tenant_client(first, "s3", endpoint_url=s3.endpoint_url) as one,
        pool.tenant_client(second, "s3", endpoint_url=s3.endpoint_url) as two,
    ):
        assert one.meta is two.meta  # one client
        for number, view in ((1, one), (2, two)):
            for index in range(7):
                await view.put_object(Bucket=BUCKET, Key=f"tenant-{number}/{index}", Body=b"")

        def pages(view: Any, number: int) -> AsyncIterator[Any]:
            paginator = view.get_paginator("list_objects_v2")
            return paginator.paginate(
                Bucket=BUCKET, Prefix=f"tenant-{number}/", PaginationConfig={"PageSize": 2}
            ).__aiter__()

        interleaved: list[list[str]] = []
        one_pages, two_pages = pages(one, 1), pages(two, 2)
        for _ in range(4):
            for iterator in (one_pages, two_pages):
                page = await iterator.__anext__()
                interleaved.append([item["Key"] for item in page["Contents"]])
        assert [keys[0].split("/")[0] for keys in interleaved] == ["tenant-1", "tenant-2"] * 4

        async def every_page(view: Any, number: int) -> int:
            return len([page async for page in pages(view, number)])

        assert await asyncio.gather(every_page(one, 1), every_page(two, 2)) == [4, 4]

        await one.get_waiter("object_exists").wait(Bucket=BUCKET, Key="tenant-1/0")
        await two.get_waiter("object_not_exists").wait(Bucket=BUCKET, Key="tenant-2/none")

        key_one, key_two = await key_of(first), await key_of(second)
        url = await one.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": "tenant-1/0"}
        )
        post = await two.generate_presigned_post(BUCKET, "tenant-2/0")
        assert key_one in url
        assert key_two not in url
        fields = " ".join(post["fields"].values())
        assert key_two in fields
        assert key_one not in fields

    assert signed_by_their_tenant(s3) == []
    lists = [owner(call) for call in s3.calls if call.method == "GET"]
    assert lists[:8] == ["tenant-1", "tenant-2"] * 4
    assert sorted(lists[8:]) == ["tenant-1"] * 4 + ["tenant-2"] * 4
    assert [signer(call) for call in s3.calls if call.method == "HEAD"] == ["tenant-1", "tenant-2"]


async def test_a_request_outside_its_tenants_call_is_refused_unsigned(
    sts: LoopbackSTS, s3: LoopbackS3
) -> None:
    parent = AioSession()
    child = await tenant(parent, 1)
    async with (
        ClientPool() as pool,
        pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as view,
        pool.tenant_client(
            child, "s3", endpoint_url=s3.endpoint_url, region_name="eu-west-1"
        ) as elsewhere,
    ):
        await view.put_object(Bucket=BUCKET, Key="tenant-1/0", Body=b"")
        shared = view._client
        # No tenant's call is running: the shared client itself signs nothing.
        with pytest.raises(TenantClientError, match="nothing was signed"):
            await shared.head_object(Bucket=BUCKET, Key="tenant-1/0")
        with pytest.raises(TenantClientError):
            await shared.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": "tenant-1/0"}
            )
        # A tenant of another shared client is not one of this client's.
        assert elsewhere._client is not shared
        token = tenant_module._current.set(elsewhere)
        try:
            with pytest.raises(TenantClientError):
                await shared.head_object(Bucket=BUCKET, Key="tenant-1/0")
        finally:
            tenant_module._current.reset(token)
    assert [call.method for call in s3.calls] == ["PUT"]


async def test_a_view_refuses_calls_once_its_lease_ended(sts: LoopbackSTS, s3: LoopbackS3) -> None:
    parent = AioSession()
    child = await tenant(parent, 1)
    async with ClientPool() as pool:
        lease = pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url)
        async with lease as view:
            paginator = view.get_paginator("list_objects_v2")
            with pytest.raises(TenantClientError, match="closed by its lease"):
                await view.close()
            assert not hasattr(view, "__aexit__")  # the shared client's is the pool's
            with pytest.raises(RuntimeError, match="entered twice"):
                async with lease:
                    pass
        assert "lease ended" in repr(view)
        with pytest.raises(TenantClientError, match="lease has ended"):
            await view.head_object(Bucket=BUCKET, Key="tenant-1/0")
        with pytest.raises(TenantClientError, match="lease has ended"):
            view.get_paginator("list_objects_v2")
        with pytest.raises(TenantClientError, match="lease has ended"):
            async for _ in paginator.paginate(Bucket=BUCKET):
                pass
        assert "tenant-1" not in repr(view)
        assert ROLE_A in repr(view)
    assert s3.calls == []


# --- which sessions share a client --------------------------------------------------------


async def test_only_children_that_differ_in_credentials_alone_share(
    sts: LoopbackSTS, s3: LoopbackS3, opened: list[tuple[str, str]]
) -> None:
    parent = AioSession()
    parent.set_config_variable("region", "eu-west-1")
    plain = await tenant(parent, 1)
    pinned = await assume_role(parent, ROLE_A, RoleSessionName="tenant-2", region_name="us-west-2")
    with_handler, with_setting = await tenant(parent, 3), await tenant(parent, 4)
    with_handler.register("before-send.s3", lambda **_: None)
    with_setting.set_config_variable("retry_mode", "adaptive")
    pool = ClientPool()
    with pytest.raises(ValueError, match="event handlers of its own"):
        pool.tenant_client(with_handler, "s3")
    with pytest.raises(ValueError, match=r"configuration of its own \(retry_mode\)"):
        pool.tenant_client(with_setting, "s3")
    with pytest.raises(TypeError, match="a session returned by assume_role"):
        pool.tenant_client(parent, "s3")
    with pytest.raises(TypeError, match=r"must be an aiobotocore\.session\.AioSession"):
        pool.tenant_client(object(), "s3")
    with pytest.raises(ValueError, match=r"do not pass \['aws_secret_access_key'\]"):
        pool.tenant_client(plain, "s3", aws_secret_access_key="x")
    with pytest.raises(TypeError, match="service_name"):
        pool.tenant_client(plain, "")
    async with pool:
        async with pool.tenant_client(plain, "s3", endpoint_url=s3.endpoint_url) as view:
            assert view.meta.region_name == "eu-west-1"
        async with pool.tenant_client(pinned, "s3", endpoint_url=s3.endpoint_url) as view:
            assert view.meta.region_name == "us-west-2"
        # The linked child follows its parent's region: a new shared client.
        parent.set_config_variable("region", "ap-south-1")
        async with pool.tenant_client(plain, "s3", endpoint_url=s3.endpoint_url) as view:
            assert view.meta.region_name == "ap-south-1"
        # Arguments make clients too; the same arguments share one.
        config = AioConfig(retries={"mode": "standard"})
        for _ in range(2):
            async with pool.tenant_client(plain, "s3", config=config, endpoint_url=s3.endpoint_url):
                pass
        assert pool.open_clients == 4
        assert [event for event, _ in opened] == ["open"] * 4


async def test_children_of_an_unknown_botocore_get_a_client_each(
    sts: LoopbackSTS, s3: LoopbackS3, caplog: pytest.LogCaptureFixture
) -> None:
    """Where children are whole sessions (a botocore whose sessions the library cannot
    copy lightly), a tenant client is a client of the child's own, as from client()."""
    parent = AioSession()
    await tenant(parent, 0)  # makes the parent's template
    parent.__dict__[_assume._SHARED_ATTRIBUTE].template.light = False
    caplog.set_level(logging.WARNING, "aio_assume_role_lib.pool")
    async with ClientPool() as pool:
        for number in (1, 2, 1):
            child = await tenant(parent, number)
            async with pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as own:
                await own.put_object(Bucket=BUCKET, Key=f"tenant-{number}/0", Body=b"")
        assert pool.clients_opened == 2
    assert len([r for r in caplog.records if "a client of its own" in r.getMessage()]) <= 1
    assert signed_by_their_tenant(s3) == []


@pytest.mark.parametrize("kind", ["aiobotocore", "aioboto3"] if HAS_AIOBOTO3 else ["aiobotocore"])
async def test_the_shared_client_is_the_one_the_child_would_make(
    sts: LoopbackSTS, s3: LoopbackS3, kind: str
) -> None:
    """Same region, endpoint, configuration and User-Agent as ``create_client`` on the
    child (the credentials aside), for both kinds of session."""
    parent = make_parent(kind)
    child = await tenant(parent, 1)
    make = child.create_client if kind == "aiobotocore" else child.client
    seen: list[dict[str, Any]] = []

    def capture(request: Any, **_: Any) -> None:
        headers = request.headers
        seen.append({"ua": headers["User-Agent"], "url": request.url})

    async with (
        ClientPool() as pool,
        pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as view,
        make("s3", endpoint_url=s3.endpoint_url) as own,
    ):
        for client in (view, own):
            client.meta.events.register("before-send.s3", capture)
            await client.put_object(Bucket=BUCKET, Key="tenant-1/0", Body=b"")
        assert view.meta.region_name == own.meta.region_name
        assert view.meta.config.retries == own.meta.config.retries
    assert seen[0] == seen[1]
    assert signed_by_their_tenant(s3) == []


async def test_refused_features_s3_express_sessions_and_endpoint_discovery(
    sts: LoopbackSTS, s3: LoopbackS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both keep per-client state that a shared client would hand from one tenant to the
    next: refused before anything is sent. (Timestream's endpoint comes from the
    environment, which keeps discovery on and any request on loopback.)"""
    monkeypatch.setenv("AWS_ENDPOINT_URL_TIMESTREAM_WRITE", s3.endpoint_url)
    child = await tenant(AioSession(), 1)
    async with ClientPool() as pool:
        async with pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as view:
            with pytest.raises(TenantClientError, match="disable_s3_express_session_auth"):
                await view.head_object(Bucket="directory--usw2-az1--x-s3", Key="k")
        async with pool.tenant_client(child, "timestream-write", region_name="us-east-1") as view:
            with pytest.raises(TenantClientError, match="endpoint discovery"):
                await view.list_databases()
    assert s3.calls == []


async def test_expired_token_invalidates_only_its_tenants_credentials(
    sts: LoopbackSTS, s3: LoopbackS3
) -> None:
    parent = AioSession()
    first, second = await tenant(parent, 1), await tenant(parent, 2)
    async with (
        ClientPool() as pool,
        pool.tenant_client(first, "s3", endpoint_url=s3.endpoint_url) as one,
        pool.tenant_client(second, "s3", endpoint_url=s3.endpoint_url) as two,
    ):
        await asyncio.gather(
            one.put_object(Bucket=BUCKET, Key="tenant-1/0", Body=b""),
            two.put_object(Bucket=BUCKET, Key="tenant-2/0", Body=b""),
        )
        old_one, old_two = await key_of(first), await key_of(second)
        s3.reject_key(old_one, "ExpiredToken")
        with pytest.raises(one.exceptions.ClientError, match="ExpiredToken"):
            await one.put_object(Bucket=BUCKET, Key="tenant-1/1", Body=b"")
        await two.put_object(Bucket=BUCKET, Key="tenant-2/1", Body=b"")
        await one.put_object(Bucket=BUCKET, Key="tenant-1/2", Body=b"")
        assert await key_of(first) != old_one
        assert await key_of(second) == old_two
        assert credentials_of(first).refresh_stats.invalidations == 1
        assert credentials_of(second).refresh_stats.invalidations == 0
    assert sts.assume_role_count == 3


# --- leases, closing, idle timeout ---------------------------------------------------------


async def test_the_shared_client_closes_when_its_last_lease_ends(
    sts: LoopbackSTS,
    s3: LoopbackS3,
    opened: list[tuple[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``aclose()`` with two tenants' leases out: both keep working, the client closes
    when the last one ends (not the first), with no unclosed HTTP session left."""
    parent = AioSession()
    first, second = await tenant(parent, 1), await tenant(parent, 2)
    pool = ClientPool()
    second_leased, second_done = anyio.Event(), anyio.Event()
    closed = anyio.Event()

    async def hold_second() -> None:
        async with pool.tenant_client(second, "s3", endpoint_url=s3.endpoint_url) as view:
            second_leased.set()
            await second_done.wait()
            await view.put_object(Bucket=BUCKET, Key="tenant-2/late", Body=b"")

    async def close() -> None:
        await pool.aclose()
        closed.set()

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                async with pool.tenant_client(first, "s3", endpoint_url=s3.endpoint_url) as one:
                    tasks.start_soon(hold_second)
                    await second_leased.wait()
                    tasks.start_soon(close)
                    await anyio.wait_all_tasks_blocked()
                    assert pool.closed
                    assert not closed.is_set()
                    second_done.set()
                    await anyio.wait_all_tasks_blocked()
                    assert opened == [("open", "s3")]  # the second lease ended: still open
                    await one.put_object(Bucket=BUCKET, Key="tenant-1/late", Body=b"")
                await closed.wait()
        assert opened == [("open", "s3"), ("close", "s3")]
        assert pool.open_clients == 0
        del one
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert not [r for r in caplog.records if "nclosed" in r.getMessage()]
    assert [call.path for call in s3.calls] == [
        f"/{BUCKET}/tenant-2/late",
        f"/{BUCKET}/tenant-1/late",
    ]
    assert signed_by_their_tenant(s3) == []


async def test_idle_timeout_and_room_for_other_clients(
    sts: LoopbackSTS, s3: LoopbackS3, opened: list[tuple[str, str]]
) -> None:
    now = [0.0]
    parent = AioSession()
    children = [await tenant(parent, number) for number in range(3)]
    async with ClientPool(max_clients=1, idle_timeout=60.0, clock=lambda: now[0]) as pool:
        for number, child in enumerate(children):  # one client for all three
            async with pool.tenant_client(child, "s3", endpoint_url=s3.endpoint_url) as view:
                await view.put_object(Bucket=BUCKET, Key=f"tenant-{number}/0", Body=b"")
        assert opened == [("open", "s3")]
        now[0] += 60.0  # idle for its timeout: closed, the next lease opens another
        async with pool.tenant_client(children[0], "s3", endpoint_url=s3.endpoint_url):
            assert opened == [("open", "s3"), ("close", "s3"), ("open", "s3")]
        # A client of another kind needs its room (max_clients=1): the idle one goes.
        async with pool.client(children[1], "s3", endpoint_url=s3.endpoint_url):
            assert opened[-1] == ("close", "s3")
            assert pool.open_clients == 1
        assert pool.clients_opened == 3
    assert signed_by_their_tenant(s3) == []


# --- both kinds of session, both event loops ---------------------------------------------


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="aioboto3 is installed on stack S2 only")
async def test_aioboto3_transfers_of_two_tenants_at_once(sts: LoopbackSTS, s3: LoopbackS3) -> None:
    """aioboto3's upload_fileobj / download_fileobj (methods it adds to S3 clients, which
    call the client's own methods) are their tenant's too."""
    parent = make_parent("aioboto3")
    first, second = await tenant(parent, 1), await tenant(parent, 2)
    async with (
        ClientPool() as pool,
        pool.tenant_client(first, "s3", endpoint_url=s3.endpoint_url) as one,
        pool.tenant_client(second, "s3", endpoint_url=s3.endpoint_url) as two,
    ):
        await asyncio.gather(
            one.upload_fileobj(io.BytesIO(b"one"), BUCKET, "tenant-1/file"),
            two.upload_fileobj(io.BytesIO(b"two"), BUCKET, "tenant-2/file"),
        )
        into = io.BytesIO()
        await two.download_fileobj(BUCKET, "tenant-2/file", into)
        assert into.getvalue() == b"two"
    assert len(s3.calls) >= 3
    assert signed_by_their_tenant(s3) == []


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_concurrent_tenants_on_each_event_loop(sts: LoopbackSTS, anyio_backend: str) -> None:
    """On trio too (the httpx backend): GetCallerIdentity through the views of one
    shared STS client answers each tenant's own identity."""
    parent = httpx_parent() if anyio_backend == "trio" else AioSession()
    children = [await tenant(parent, number) for number in range(10)]
    wrong: list[tuple[int, str]] = []
    async with ClientPool() as pool:

        async def identify(number: int) -> None:
            async with pool.tenant_client(children[number], "sts") as view:
                arn = (await view.get_caller_identity())["Arn"]
                if not arn.endswith(f"/tenant-{number}"):
                    wrong.append((number, arn))

        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                for _ in range(3):
                    for number in range(len(children)):
                        tasks.start_soon(identify, number)
        assert pool.clients_opened == 1
    assert wrong == []
    assert sum(call.action == "GetCallerIdentity" for call in sts.calls) == 30

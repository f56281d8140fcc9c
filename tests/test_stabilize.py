"""``stabilize(session)``: a parent's own credential source on the refresh engine (R13).

The refresher's part (seeding, serving cached credentials before they expire instead of
waiting past it) is driven by hand (``ManualClock``). The rest talks real HTTP to the
loopback STS, which also serves the parents' sources: ``AssumeRoleWithWebIdentity`` (an
EKS IRSA parent), a container-credentials endpoint (an ECS / EKS Pod Identity parent), an
SSO portal (a profile after ``aws sso login``) and instance metadata (an EC2 parent), on
both stacks and on trio where the stack has it; a profile's ``role_arn`` and environment
keys with ``AWS_CREDENTIAL_EXPIRATION`` sign their way through it. Where the code allows,
time is moved by hand there too (``time_travel``). The outage and recovery tests assert
durations: this file is in dev.py's TIMED_TESTS.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials, AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    InvalidConfigError,
    SSOTokenLoadError,
    UnauthorizedSSOTokenError,
)

from aio_assume_role_lib import (
    AssumeRoleCredentials,
    RefreshPolicy,
    assume_role,
    credentials_of,
    stabilize,
)
from aio_assume_role_lib._refresh import Refresher, UnusableCredentialsError
from aio_assume_role_lib._refreshed import refreshed_credentials
from aio_assume_role_lib._stabilize import SourceCredentials, _loader, classify_source_error
from aio_assume_role_lib.adapters.sync import SyncCredentials
from aio_assume_role_lib.testing import LoopbackSTS, time_travel

from ._manual_clock import ManualClock, settle
from .conftest import (
    ASYNCIO_AND_TRIO,
    HANG_SECONDS,
    HAS_AIOBOTO3,
    ROLE_A,
    ROLE_B,
    caller_arn,
    client,
)

pytestmark = pytest.mark.anyio

SOURCE_ACTION = {
    "web_identity": "AssumeRoleWithWebIdentity",
    "container": "ContainerCredentials",
    "sso": "GetRoleCredentials",
    "imds": "InstanceMetadata",
}
# Each instance metadata fetch starts with a session token: one per fetch.
IMDS_TOKEN_PATH = "/latest/api/token"


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


# --- the refresher's part, by hand ------------------------------------------------------


class _Source:
    """Issues values 1, 2, ... valid for ``lifetime``; can be held back by a gate."""

    def __init__(self, clock: ManualClock, lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.gate: anyio.Event | None = None

    async def __call__(self) -> tuple[int, float]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.calls, self.clock.wall() + self.lifetime


def _refresher(
    clock: ManualClock, source: _Source, margin: float | None = 1.0, **policy: Any
) -> Refresher[int]:
    return Refresher(
        source,
        policy=RefreshPolicy(jitter_fraction=0.0, **policy),
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.5,
        key_of=lambda value: value,
        expiry_margin_seconds=margin,
    )


async def test_seed_serves_credentials_in_hand_without_a_load() -> None:
    clock = ManualClock()
    source = _Source(clock, 30.0)
    refresher = _refresher(clock, source)
    assert refresher.seed(7, clock.wall() + 30.0)
    assert not refresher.seed(8, clock.wall() + 60.0)  # a value is cached: no change
    assert [await refresher.get() for _ in range(3)] == [7, 7, 7]
    assert source.calls == 0
    await clock.advance(29.5)  # the blocking window: a load now
    assert await refresher.get() == 1
    assert source.calls == 1


async def test_a_waiter_is_served_its_valid_credentials_before_they_expire() -> None:
    """The source hangs in the blocking window: a caller holding unexpired credentials
    waits until shortly before they expire, then gets them; the flight goes on and its
    result is the next caller's."""
    clock = ManualClock()
    source = _Source(clock, 30.0)
    refresher = _refresher(clock, source, try_timeout_seconds=100, attempt_timeout_seconds=100)
    refresher.seed(0, clock.wall() + 30.0)
    await clock.advance(28.0)  # 2 s left, in the blocking window (3 s)
    source.gate = anyio.Event()
    served: list[tuple[int, float]] = []

    async def caller() -> None:
        value = await refresher.get()
        served.append((value, clock.wall()))

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await clock.advance(0.9)
        assert served == []  # still waiting for the flight
        await clock.advance(0.2)  # margin: min(1 s, 2 s / 2) -> served at 1 s left
        assert served == [(0, 1_000_029.0)]
        assert refresher.stats.served_stale == 1
        # A request asking again while it is signed gets them at once, and is no waiter.
        waits = refresher.stats.waits
        assert await refresher.get() == 0
        assert (refresher.stats.waits, refresher.stats.served_stale) == (waits, 2)
        source.gate.set()
    await settle()
    assert await refresher.get() == 1  # the flight was not cancelled
    assert source.calls == 1


async def test_a_flight_whose_deadline_comes_first_is_waited_for() -> None:
    """With a refresh deadline before the moment the margin would serve the cached
    credentials, waiters get the flight's own outcome (here: its failure, served as the
    cached credentials by static stability), as without a margin."""
    clock = ManualClock()
    source = _Source(clock, 30.0)
    refresher = _refresher(clock, source, try_timeout_seconds=0.8, attempt_timeout_seconds=0.8)
    refresher.seed(0, clock.wall() + 30.0)
    await clock.advance(28.0)  # 2 s left: the margin would serve at 29, the deadline is 28.8
    source.gate = anyio.Event()
    served: list[tuple[int, float]] = []

    async def caller() -> None:
        served.append((await refresher.get(), clock.wall()))

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await clock.advance(0.7)
        assert served == []
        await clock.advance(0.2)
        # At the deadline: the failed refresh's answer (the cached value).
        assert [value for value, _ in served] == [0]
        assert served[0][1] == pytest.approx(1_000_028.8)
    assert refresher.stats.failures == 1
    assert refresher.stats.served_stale == 1
    source.gate.set()


async def test_without_a_margin_a_waiter_waits_for_the_flight() -> None:
    """The refresher's default (and what a wrapped source did): callers wait past expiry."""
    clock = ManualClock()
    source = _Source(clock, 30.0)
    refresher = _refresher(
        clock, source, margin=None, try_timeout_seconds=100, attempt_timeout_seconds=100
    )
    refresher.seed(0, clock.wall() + 30.0)
    await clock.advance(28.0)
    source.gate = anyio.Event()
    served: list[int] = []

    async def caller() -> None:
        served.append(await refresher.get())

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await clock.advance(5.0)  # past expiry, still waiting
        assert served == []
        source.gate.set()
    assert served == [1]


async def test_invalidated_credentials_are_not_served_early() -> None:
    clock = ManualClock()
    source = _Source(clock, 30.0)
    refresher = _refresher(clock, source, try_timeout_seconds=100, attempt_timeout_seconds=100)
    refresher.seed(0, clock.wall() + 30.0)
    assert refresher.invalidate(0, min_interval=0.0)
    source.gate = anyio.Event()
    served: list[int] = []

    async def caller() -> None:
        served.append(await refresher.get())

    async with anyio.create_task_group() as group:
        group.start_soon(caller)
        await clock.advance(29.5)  # a service rejected them: waiting is the only way
        assert served == []
        source.gate.set()
    assert served == [1]


# --- per-source parts, offline ----------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("InvalidIdentityToken"), "non_recoverable"),
        (_client_error("ExpiredTokenException"), "non_recoverable"),
        (_client_error("UnauthorizedException", 401), "non_recoverable"),
        (_client_error("AccessDenied", 403), "non_recoverable"),
        (UnauthorizedSSOTokenError(), "non_recoverable"),
        (_client_error("ForbiddenException", 403), "non_recoverable"),
        (SSOTokenLoadError(error_msg="Token for loopback does not exist"), "non_recoverable"),
        (_client_error("TooManyRequestsException", 429), "transient"),
        (InvalidConfigError(error_msg="no role"), "non_recoverable"),
        (_client_error("Throttling"), "transient"),
        (_client_error("InternalFailure", 500), "transient"),
        (_client_error("IDPCommunicationError"), "transient"),
        (CredentialRetrievalError(provider="container-role", error_msg="down"), "transient"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "transient"),
        (ConnectionRefusedError(), "transient"),
        (ValueError("?"), "failed"),
    ],
)
def test_source_errors_are_classified(error: BaseException, kind: str) -> None:
    assert classify_source_error(error) == kind


async def test_the_loader_turns_metadata_into_credentials_and_refuses_unusable_ones() -> None:
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    good = {
        "access_key": "AKIDEXAMPLE",
        "secret_key": "secret",
        "token": "token",
        "expiry_time": expiry.isoformat(),
    }
    value, when = await _loader(lambda: good, "container-role")()
    assert value == ReadOnlyCredentials("AKIDEXAMPLE", "secret", "token", None)
    assert when == expiry.timestamp()

    async def from_coroutine() -> dict[str, Any]:
        return {**good, "expiry_time": expiry}

    assert (await _loader(from_coroutine, "sso")())[1] == expiry.timestamp()
    with pytest.raises(CredentialRetrievalError):  # IMDS's "nothing" is a retrieval error
        await _loader(dict, "iam-role")()
    for broken in ({**good, "secret_key": ""}, {**good, "expiry_time": "soon"}):
        with pytest.raises(UnusableCredentialsError) as caught:
            await _loader(lambda b=broken: b, "env")()
        assert "secret" not in str(caught.value)


class _CountingSource:
    def __init__(self, lifetime: float = 3600.0) -> None:
        self.calls = 0
        self.lifetime = lifetime

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        expiry = datetime.now(timezone.utc) + timedelta(seconds=self.lifetime)
        return {
            "access_key": f"ASIA{self.calls:016d}",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": expiry.isoformat(),
        }


def _refreshable(source: _CountingSource, lifetime: float) -> AioRefreshableCredentials:
    metadata = source()
    source.calls = 0
    return AioRefreshableCredentials.create_from_metadata(
        {
            **metadata,
            "expiry_time": (datetime.now(timezone.utc) + timedelta(seconds=lifetime)).isoformat(),
        },
        refresh_using=source,
        method="custom-process",
    )


async def test_stabilize_seeds_from_resolved_credentials_and_is_idempotent() -> None:
    session = AioSession()
    source = _CountingSource()
    original = _refreshable(source, 3600.0)
    session._credentials = original
    assert stabilize(session) is session
    credentials = await session.get_credentials()
    assert isinstance(credentials, SourceCredentials)
    assert isinstance(credentials, AssumeRoleCredentials)
    assert credentials.method == "custom-process"
    frozen = await credentials.get_frozen_credentials()
    assert frozen.access_key == "ASIA0000000000000001"  # the resolved ones, no fetch
    assert source.calls == 0
    assert stabilize(session) is session
    assert await session.get_credentials() is credentials  # idempotent
    assert "secret" not in repr(credentials)


async def test_stabilized_credentials_refresh_once_for_many_callers() -> None:
    session = AioSession()
    source = _CountingSource()
    session._credentials = _refreshable(source, -1.0)  # expired: everybody waits
    stabilize(session)
    credentials = await session.get_credentials()
    results = []

    async def call() -> None:
        results.append((await credentials.get_frozen_credentials()).access_key)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(call)
    assert source.calls == 1
    assert set(results) == {"ASIA0000000000000001"}


async def test_static_keys_are_left_as_they_are() -> None:
    session = AioSession()
    session.set_credentials("AKIDEXAMPLE", "secret")
    before = await session.get_credentials()
    assert stabilize(session) is session
    after = await session.get_credentials()
    assert after is before
    assert type(after) is AioCredentials


def test_stabilize_refuses_what_is_not_a_session() -> None:
    with pytest.raises(TypeError, match="AioSession"):
        stabilize(object())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="refresh must be a RefreshPolicy"):
        stabilize(AioSession(), refresh=30)  # type: ignore[call-overload]


# --- real HTTP: web identity, container, SSO and instance metadata parents ---------------


@pytest.fixture(params=["web_identity", "container", "sso", "imds"])
def source_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Instance metadata is left out where short credentials are waited for: botocore moves
# the expiry of credentials it gets from there with under 17-25 minutes left to 17-25
# minutes from now (see the instance metadata tests below).
@pytest.fixture(params=["web_identity", "container", "sso"])
def short_lived_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["web_identity", "container"])
def slow_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _parent(request: pytest.FixtureRequest, kind: str, backend: str = "asyncio") -> AioSession:
    session: AioSession = request.getfixturevalue(f"loopback_{kind}_session")
    if backend == "trio":
        from aiobotocore.httpxsession import HttpxSession

        session.set_default_client_config(AioConfig(http_session_cls=HttpxSession))
    return session


def _source_calls(sts: LoopbackSTS, kind: str) -> list[Any]:
    """The source's fetches (for instance metadata: its token requests, one per fetch)."""
    return [
        call
        for call in sts.calls
        if call.action == SOURCE_ACTION[kind]
        and (kind != "imds" or call.params.get("path") == IMDS_TOKEN_PATH)
    ]


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_the_source_is_called_once_not_per_request(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, source_kind: str, anyio_backend: str
) -> None:
    loopback_sts.credential_lifetime = 20.0  # inside aiobotocore's 10-minute window
    parent = stabilize(_parent(request, source_kind, anyio_backend))
    async with parent.create_client("sts") as sts_client:
        for _ in range(30):
            await sts_client.get_caller_identity()
        async with anyio.create_task_group() as group:
            for _ in range(30):
                group.start_soon(sts_client.get_caller_identity)
    child = await assume_role(parent, ROLE_A)
    for _ in range(5):
        assert ":assumed-role/Reader/" in await caller_arn(child)
    assert len(_source_calls(loopback_sts, source_kind)) == 1
    assert loopback_sts.assume_role_count == 1
    assert all(call.outcome == "ok" for call in loopback_sts.calls)


async def test_a_stabilized_parent_is_found_by_credentials_of_and_the_adapters(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, source_kind: str
) -> None:
    parent = stabilize(_parent(request, source_kind))
    with pytest.raises(TypeError, match="resolved"):
        credentials_of(parent)  # nothing resolved yet: no network call here
    resolved = await parent.get_credentials()
    credentials = credentials_of(parent, SourceCredentials)
    assert credentials is resolved
    assert refreshed_credentials(parent, consumer="test") is credentials
    # A thread-side consumer reads through the same engine: no second source call.
    frozen = await anyio.to_thread.run_sync(SyncCredentials(parent))
    assert frozen.access_key == (await credentials.get_frozen_credentials()).access_key
    assert len(_source_calls(loopback_sts, source_kind)) == 1


async def test_without_stabilize_the_source_is_called_per_request(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, short_lived_kind: str
) -> None:
    """The baseline the test above is measured against: aiobotocore's own refresh."""
    loopback_sts.credential_lifetime = 20.0
    parent = _parent(request, short_lived_kind)
    async with parent.create_client("sts") as sts_client:
        for _ in range(10):
            await sts_client.get_caller_identity()
    assert len(_source_calls(loopback_sts, short_lived_kind)) >= 10


async def test_a_container_parent_resolved_before_stabilize_is_not_fetched_again(
    loopback_container_session: AioSession, loopback_sts: LoopbackSTS
) -> None:
    loopback_sts.credential_lifetime = 900.0
    resolved = await loopback_container_session.get_credentials()
    assert isinstance(resolved, AioRefreshableCredentials)
    assert len(_source_calls(loopback_sts, "container")) == 1
    stabilize(loopback_container_session)
    arn = await caller_arn(loopback_container_session)
    assert arn.endswith(":assumed-role/loopback-container/loopback-container")
    assert len(_source_calls(loopback_sts, "container")) == 1


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="aioboto3 is installed on stack S2 only")
async def test_an_aioboto3_session_is_stabilized_in_place(
    loopback_sts: LoopbackSTS, loopback_web_identity_session: AioSession
) -> None:
    import aioboto3

    del loopback_web_identity_session  # for its environment
    session = aioboto3.Session()
    assert stabilize(session) is session
    async with session.client("sts") as sts_client:
        for _ in range(5):
            await sts_client.get_caller_identity()
    assert len(_source_calls(loopback_sts, "web_identity")) == 1
    assert isinstance(await session.get_credentials(), SourceCredentials)


async def test_a_slow_source_is_not_cancelled_by_childrens_try_timeouts(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, source_kind: str
) -> None:
    """The parent's source takes longer than a child's try: each child's try gives up
    waiting, but the parent's one refresh runs on and completes, and the children's
    next tries use it."""
    # Instance metadata's requests time out after 1 s; a fetch is three of them.
    loopback_sts.source_latency = 0.8 if source_kind == "imds" else 1.5
    parent = stabilize(_parent(request, source_kind))
    policy = RefreshPolicy(try_timeout_seconds=0.5, max_tries=6, retry_delay_seconds=0.3)
    children = [
        await assume_role(parent, f"arn:aws:iam::123456789012:role/Child{n}", refresh=policy)
        for n in range(8)
    ]
    with anyio.fail_after(HANG_SECONDS):
        arns = []

        async def use(child: AioSession) -> None:
            arns.append(await caller_arn(child))

        async with anyio.create_task_group() as group:
            for child in children:
                group.start_soon(use, child)
    assert len(arns) == 8
    calls = _source_calls(loopback_sts, source_kind)
    assert [call.outcome for call in calls] == ["ok"]
    # The one fetch completed in one attempt: resolving the chain (the container
    # provider fetches then) or refreshing the credentials (web identity's are deferred).
    resolution = parent.get_component("credential_provider").resolution.stats
    credentials = await parent.get_credentials()
    assert isinstance(credentials, SourceCredentials)
    stats = credentials.refresh_stats
    assert (resolution.attempts, resolution.successes, resolution.timeouts) == (1, 1, 0)
    expected = (0, 0, 0) if source_kind in ("container", "imds") else (1, 1, 0)
    assert (stats.attempts, stats.successes, stats.timeouts) == expected


async def test_four_threads_with_their_own_loops_share_one_parent(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, source_kind: str
) -> None:
    loopback_sts.credential_lifetime = 20.0
    parent = stabilize(_parent(request, source_kind))
    errors: list[BaseException] = []
    done: list[int] = []
    start = threading.Barrier(4)

    async def traffic(number: int) -> None:
        child = await assume_role(parent, ROLE_B)
        async with parent.create_client("sts") as own, child.create_client("sts") as child_client:
            for _ in range(10):
                await own.get_caller_identity()
                await child_client.get_caller_identity()
        done.append(number)

    def thread_main(number: int) -> None:
        start.wait()
        try:
            asyncio.run(traffic(number))
        except BaseException as error:  # recorded for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await anyio.to_thread.run_sync(thread.join, HANG_SECONDS)
    assert errors == []
    assert sorted(done) == [0, 1, 2, 3]
    assert len(_source_calls(loopback_sts, source_kind)) == 1
    assert loopback_sts.assume_role_count == 1


async def _request(session: Any) -> BaseException | None:
    try:
        await caller_arn(session)
    except Exception as error:
        return error
    return None


Request = Callable[[Any], Awaitable[BaseException | None]]


@pytest.fixture
async def sts_request() -> AsyncIterator[Request]:
    """``_request`` through one STS client per session, kept open until the test ends.

    The traffic loops below make hundreds of requests over 20 s: a client made for
    each (what ``_request`` does) was most of their CPU (~25 ms a client; 5 s per test),
    in a CI run that has to fit in 10 minutes. A client signs each request with what its
    session's credentials object gives at that moment, so the loops see the same."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[int, Any] = {}

        async def request(session: Any) -> BaseException | None:
            try:
                if id(session) not in clients:
                    opened = await stack.enter_async_context(client(session, "sts"))
                    clients[id(session)] = opened
                await clients[id(session)].get_caller_identity()
            except Exception as error:
                return error
            return None

        yield request


# Each case waits 20 s or more: SSO's fetcher works like web identity's (a client of its
# own, made to try once), so it runs on trio in the shorter tests only.
_TRIO = ASYNCIO_AND_TRIO[1].marks
OUTAGE_CASES = [
    ("web_identity", "asyncio"),
    ("container", "asyncio"),
    ("sso", "asyncio"),
    pytest.param("web_identity", "trio", marks=_TRIO),
    pytest.param("container", "trio", marks=_TRIO),
]


@pytest.mark.parametrize(("short_lived_kind", "anyio_backend"), OUTAGE_CASES)
async def test_source_and_sts_down_no_failed_request_while_valid_then_recovery(
    request: pytest.FixtureRequest,
    loopback_sts: LoopbackSTS,
    short_lived_kind: str,
    anyio_backend: str,
    sts_request: Request,
) -> None:
    """20-second credentials (parent and child); after the first fetch the source and
    STS fail every request. Requests of the parent and of its child made while their
    credentials are valid all succeed (cached credentials, served before they expire,
    nobody waiting through the source's own retries); once both are back, fresh
    credentials come within 5 s."""
    loopback_sts.credential_lifetime = 20.0
    parent = stabilize(_parent(request, short_lived_kind, anyio_backend))
    child = await assume_role(parent, ROLE_A)
    assert await sts_request(parent) is None
    assert await sts_request(child) is None
    expiries = [call.expiration for call in loopback_sts.calls if call.expiration]
    assert len(expiries) == 2
    valid_until = min(expiries)  # type: ignore[type-var]
    loopback_sts.fail_next("5xx", 100_000, action=SOURCE_ACTION[short_lived_kind])
    loopback_sts.fail_next("5xx", 100_000)

    failures: list[tuple[float, BaseException]] = []
    made = 0
    while time.time() < valid_until - 1.0:
        for session in (parent, child):
            started = time.time()
            error = await sts_request(session)
            made += 1
            if error is not None and started < valid_until - 1.0:
                failures.append((valid_until - started, error))
        await anyio.sleep(0.2)
    assert made > 20  # traffic all along (fewer requests on a loaded machine)
    assert failures == []
    # It tried to refresh, one source request per try: none of the source's own retries.
    credentials = await parent.get_credentials()
    resolution = parent.get_component("credential_provider").resolution.stats
    tries = credentials.refresh_stats.tries + resolution.tries
    # (A try just started may not have reached the server yet.)
    assert 1 < len(_source_calls(loopback_sts, short_lived_kind)) <= tries

    await anyio.sleep(max(max(expiries) + 1.0 - time.time(), 0.0))  # type: ignore[type-var]
    loopback_sts.clear_faults()
    back = time.monotonic()
    parent_ok = child_ok = None
    while (parent_ok is None or child_ok is None) and time.monotonic() - back < 30:
        if parent_ok is None and await sts_request(parent) is None:
            parent_ok = time.monotonic() - back
        if child_ok is None and await sts_request(child) is None:
            child_ok = time.monotonic() - back
        await anyio.sleep(0.1)
    assert parent_ok is not None
    assert child_ok is not None
    assert parent_ok <= 5.0, parent_ok
    assert child_ok <= 5.0, child_ok


async def test_a_slow_failing_source_never_makes_a_request_wait_past_expiry(
    request: pytest.FixtureRequest, loopback_sts: LoopbackSTS, slow_kind: str, sts_request: Request
) -> None:
    """The source answers errors after 4 s (longer than the blocking window): requests of
    the parent and its child made while their credentials are valid are served them in
    time instead of waiting for the failing refresh and reaching the service after they
    expired (what a plain wrapper of the source did)."""
    loopback_sts.credential_lifetime = 20.0
    parent = stabilize(_parent(request, slow_kind))
    child = await assume_role(parent, ROLE_A)
    assert await sts_request(parent) is None
    assert await sts_request(child) is None
    valid_until = min(call.expiration for call in loopback_sts.calls if call.expiration)
    loopback_sts.source_latency = 4.0
    loopback_sts.fail_next("5xx", 100_000, action=SOURCE_ACTION[slow_kind])
    loopback_sts.fail_next("5xx", 100_000)
    failures: list[tuple[float, BaseException]] = []
    made = 0

    async def traffic(session: Any) -> None:
        nonlocal made
        while time.time() < valid_until - 1.0:
            started = time.time()
            error = await sts_request(session)
            made += 1
            if error is not None:
                failures.append((valid_until - started, error))
            await anyio.sleep(0.2)

    async with anyio.create_task_group() as group:
        group.start_soon(traffic, parent)
        group.start_soon(traffic, child)
    assert made > 50
    assert failures == []


async def test_a_hanging_sts_never_makes_a_childs_request_wait_past_expiry(
    loopback_parent_session: AioSession, loopback_sts: LoopbackSTS, sts_request: Request
) -> None:
    """The same for a child's own refresh: AssumeRole hangs (each try runs into its
    10-second timeout); the child's requests in its blocking window are served its valid
    credentials in time."""
    loopback_sts.credential_lifetime = 20.0
    child = await assume_role(loopback_parent_session, ROLE_A)
    assert await sts_request(child) is None
    valid_until = min(call.expiration for call in loopback_sts.calls if call.expiration)
    loopback_sts.fail_next("hang", 1000)
    failures: list[tuple[float, BaseException]] = []
    made = 0
    while time.time() < valid_until - 1.0:
        started = time.time()
        error = await sts_request(child)
        made += 1
        if error is not None:
            failures.append((valid_until - started, error))
        await anyio.sleep(0.2)
    assert made > 30
    assert failures == []
    assert loopback_sts.assume_role_count > 1  # it did try to refresh


# --- a profile's role_arn parent (botocore's AssumeRoleProvider) ---------------------------


def _profile_role_parent(loopback_sts: LoopbackSTS, home: Any, monkeypatch: Any) -> AioSession:
    """A session whose credentials are a profile's ``role_arn`` over a ``source_profile``
    with the loopback's root keys, as in ``~/.aws/config``."""
    access_key, secret_key = loopback_sts.root_credentials
    config = home / "role-profile-config"
    config.write_text(
        f"[profile worker]\nrole_arn = {ROLE_A}\nrole_session_name = worker\n"
        "source_profile = base\n\n"
        f"[profile base]\naws_access_key_id = {access_key}\n"
        f"aws_secret_access_key = {secret_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return AioSession(profile="worker")


async def test_a_profile_role_parent_assumes_once_per_lifetime_with_stabilize(
    loopback_sts: LoopbackSTS, isolated_aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_sts.credential_lifetime = 20.0  # inside aiobotocore's 10-minute window
    parent = stabilize(_profile_role_parent(loopback_sts, isolated_aws_env, monkeypatch))
    async with parent.create_client("sts") as sts_client:
        for _ in range(10):
            identity = await sts_client.get_caller_identity()
            assert identity["Arn"].endswith(":assumed-role/Reader/worker")
    child = await assume_role(parent, ROLE_B, RoleSessionName="child")
    assert (await caller_arn(child)).endswith(":assumed-role/Writer/child")
    # One AssumeRole for the profile's role (its first use), one for the child.
    assert loopback_sts.assume_role_count == 2


async def test_without_stabilize_a_profile_role_parent_assumes_per_request(
    loopback_sts: LoopbackSTS, isolated_aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline of the test above: aiobotocore's own refresh of short credentials."""
    loopback_sts.credential_lifetime = 20.0
    parent = _profile_role_parent(loopback_sts, isolated_aws_env, monkeypatch)
    async with parent.create_client("sts") as sts_client:
        for _ in range(10):
            await sts_client.get_caller_identity()
    assert loopback_sts.assume_role_count >= 10


# --- an SSO parent (IAM Identity Center, after `aws sso login`) -----------------------------


async def test_a_revoked_sso_login_is_not_retried_nor_raised_while_valid(
    loopback_sso_session: AioSession, loopback_sts: LoopbackSTS
) -> None:
    """The portal answers UnauthorizedException (the SSO login expired or was revoked),
    which no retry can fix: one portal request per refresh. Requests made while the
    credentials are valid are served them; once they have expired, requests get
    botocore's UnauthorizedSSOTokenError, those right after it without another request."""
    # Short credentials: botocore's SSO fetcher keeps an answer with over 15 minutes left
    # in a cache of its own, which time_travel does not move.
    loopback_sts.credential_lifetime = 20.0
    parent = stabilize(loopback_sso_session)
    assert "AWSReservedSSO_LoopbackSSO_" in await caller_arn(parent)
    loopback_sts.revoke_sso_access_token()
    time_travel(parent, "blocking")
    assert await _request(parent) is None  # the refresh failed; the valid ones are served
    portal = [call.outcome for call in _source_calls(loopback_sts, "sso")]
    assert portal == ["ok", "UnauthorizedException"]
    time_travel(parent, "expired")
    for _ in range(3):
        with pytest.raises(UnauthorizedSSOTokenError):
            await caller_arn(parent)
    assert len(_source_calls(loopback_sts, "sso")) == 2  # remembered: no new request
    stats = credentials_of(parent, SourceCredentials).refresh_stats
    # The first fetch and the failed refresh, one try each; three callers told at once.
    assert (stats.attempts, stats.tries, stats.fast_failures) == (2, 2, 3)


async def test_a_legacy_sso_profile_asks_the_portal_once_per_lifetime(
    loopback_sts: LoopbackSTS, isolated_aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The older SSO profile (``sso_start_url`` in the profile, its token cached under the
    start URL's SHA-1) goes through the same fetcher."""
    loopback_sts.credential_lifetime = 20.0
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    environ = loopback_sts.write_sso_profile(
        isolated_aws_env / "config", isolated_aws_env / ".aws" / "sso" / "cache", legacy=True
    )
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    parent = stabilize(AioSession())
    for _ in range(10):
        assert "AWSReservedSSO_LoopbackSSO_" in await caller_arn(parent)
    child = await assume_role(parent, ROLE_A)
    assert ":assumed-role/Reader/" in await caller_arn(child)
    assert len(_source_calls(loopback_sts, "sso")) == 1


# --- an EC2 parent (instance metadata, IMDSv2) -----------------------------------------------


async def _access_key(session: AioSession) -> str:
    credentials = await session.get_credentials()
    assert credentials is not None
    return str((await credentials.get_frozen_credentials()).access_key)


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_an_instance_parent_with_metadata_and_sts_down(
    request: pytest.FixtureRequest,
    loopback_sts: LoopbackSTS,
    monkeypatch: pytest.MonkeyPatch,
    anyio_backend: str,
) -> None:
    """Instance metadata and STS answer 500 while the parent's and its child's credentials
    pass through the blocking window and their expiry (moved by hand: time_travel). Every
    request succeeds (the cached credentials, which the endpoint still accepts); each try
    of the engine makes one token request, although the configuration asks instance
    metadata for 3 attempts of each; new credentials within 5 s once both are back."""
    loopback_sts.credential_lifetime = 1800.0  # botocore keeps their expiry as it is
    monkeypatch.setenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "3")
    parent = stabilize(_parent(request, "imds", anyio_backend))
    child = await assume_role(parent, ROLE_A)
    assert (await caller_arn(parent)).endswith(
        ":assumed-role/loopback-instance/i-0123456789abcdef0"
    )
    assert await _request(child) is None
    keys = (await _access_key(parent), await _access_key(child))
    loopback_sts.fail_next("5xx", 100_000, action="InstanceMetadata")
    loopback_sts.fail_next("5xx", 100_000)
    for window in ("blocking", "expired"):
        time_travel(parent, window)
        time_travel(child, window)
        for _ in range(5):
            assert await _request(parent) is None
            assert await _request(child) is None
    credentials = credentials_of(parent, SourceCredentials)
    assert credentials.refresh_stats.served_expired > 0
    assert 1 < len(_source_calls(loopback_sts, "imds")) <= credentials.refresh_stats.tries + 1

    loopback_sts.clear_faults()
    back = time.monotonic()
    while time.monotonic() - back < 30:
        assert await _request(parent) is None
        assert await _request(child) is None
        parent_key, child_key = await _access_key(parent), await _access_key(child)
        if parent_key != keys[0] and child_key != keys[1]:
            break
        await anyio.sleep(0.1)
    assert time.monotonic() - back <= 5.0


async def test_instance_credentials_botocore_keeps_past_expiry_are_renewed_on_expired_token(
    loopback_sts: LoopbackSTS, loopback_imds_session: AioSession
) -> None:
    """botocore takes instance metadata credentials with under 17-25 minutes left for an
    outage's stale ones and moves their expiry to 17-25 minutes from now. With 2-second
    credentials, left to aiobotocore every request after their real expiry fails
    (``ExpiredToken``) and instance metadata is not asked again; with ``stabilize`` the
    first ``ExpiredToken`` marks them stale and the next request gets new ones."""
    loopback_sts.credential_lifetime = 2.0
    legacy = loopback_imds_session
    stabilized = stabilize(AioSession())
    assert await _request(legacy) is None
    assert await _request(stabilized) is None
    assert len(_source_calls(loopback_sts, "imds")) == 2
    await anyio.sleep(max(c.expiration for c in loopback_sts.calls if c.expiration) - time.time())
    await anyio.sleep(0.2)

    legacy_errors = [await _request(legacy) for _ in range(3)]
    assert all("ExpiredToken" in str(error) for error in legacy_errors), legacy_errors
    assert len(_source_calls(loopback_sts, "imds")) == 2

    first = await _request(stabilized)
    assert "ExpiredToken" in str(first)  # the request that found out
    assert [await _request(stabilized) for _ in range(3)] == [None, None, None]
    assert len(_source_calls(loopback_sts, "imds")) == 3


# --- environment keys with AWS_CREDENTIAL_EXPIRATION --------------------------------------


async def _issued_environ(sts: LoopbackSTS, session_name: str) -> dict[str, str]:
    """Environment keys as a supervisor hands them to a process: temporary credentials of
    a role, with their expiry."""
    key, secret = sts.root_credentials
    async with AioSession().create_client(
        "sts",
        region_name="us-east-1",
        endpoint_url=sts.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    ) as sts_client:
        response = await sts_client.assume_role(
            RoleArn="arn:aws:iam::123456789012:role/Supervised", RoleSessionName=session_name
        )
    credentials = response["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": credentials["Expiration"].isoformat(),
    }


async def test_environment_keys_with_an_expiry_are_seeded_then_read_again(
    loopback_sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's environment provider gives refreshable credentials when
    ``AWS_CREDENTIAL_EXPIRATION`` is set, refreshed by reading the environment again. On
    the engine: the first keys are served as resolved (no refresh); keys put in the
    environment later are read when the refresh windows come; a child's AssumeRole is
    signed with the keys of the moment."""
    first = await _issued_environ(loopback_sts, "first")
    second = await _issued_environ(loopback_sts, "second")
    for name, value in first.items():
        monkeypatch.setenv(name, value)
    parent = stabilize(AioSession())
    assert (await caller_arn(parent)).endswith(":assumed-role/Supervised/first")
    credentials = credentials_of(parent, SourceCredentials)
    assert credentials.method == "env"
    assert credentials.refresh_stats.attempts == 0  # seeded with what the chain resolved
    child = await assume_role(parent, ROLE_A)
    assert ":assumed-role/Reader/" in await caller_arn(child)

    for name, value in second.items():
        monkeypatch.setenv(name, value)
    assert (await caller_arn(parent)).endswith("/first")  # an hour left: not read yet
    time_travel(parent, "blocking")
    assert (await caller_arn(parent)).endswith(":assumed-role/Supervised/second")
    assert (credentials.refresh_stats.attempts, credentials.refresh_stats.successes) == (1, 1)
    time_travel(child, "blocking")
    assert ":assumed-role/Reader/" in await caller_arn(child)
    signers = [
        call.access_key_id
        for call in loopback_sts.calls
        if call.action == "AssumeRole" and call.params.get("RoleArn") == ROLE_A
    ]
    assert signers == [first["AWS_ACCESS_KEY_ID"], second["AWS_ACCESS_KEY_ID"]]

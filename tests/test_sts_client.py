"""The library's own STS clients: they never follow a redirect (a redirect would carry the
parent's signed headers, session token included, to another origin); one per parent and
event loop, lent per request, opened once however many children ask at once, safe from
several threads, replaced when broken but never closed under a sibling's request, and
sharing one SSL context per TLS settings.

The children's tests run twice: over real HTTP with real time, and with the children's
refreshers on a hand clock (``tests/_hand_clock_fetch.py``), where a try's deadline comes
exactly when the test advances the clock, with a sibling's request held on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiobotocore.session import AioSession
from aiohttp import web
from botocore.exceptions import HTTPClientError

from aio_assume_role_lib import RefreshPolicy, _backend, assume_role
from aio_assume_role_lib._refresh import RefreshTimeoutError
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS

from ._hand_clock_fetch import hand_clock_child
from ._manual_clock import ManualClock
from ._threaded_server import ThreadedServer
from .conftest import (
    HANG_SECONDS,
    HAS_TRIO,
    ROLE_A,
    ROLE_B,
    Outcome,
    attempt,
    botocore_session,
    httpx_parent,
)

pytestmark = pytest.mark.anyio

PARENT_TOKEN = "parent-session-token-that-must-stay-home"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Servers(ThreadedServer):
    """Two loopback HTTP servers: ``redirector`` answers every request with a 307 to
    ``elsewhere``, which records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.redirector_port = _free_port()
        self.elsewhere_port = _free_port()
        self.reached_elsewhere: list[dict[str, str]] = []

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{self.elsewhere_port}/stolen")

    async def _record(self, request: web.Request) -> web.Response:
        self.reached_elsewhere.append(dict(request.headers))
        return web.Response(status=500)

    async def _start(self) -> None:
        await self._serve(self._redirect, self.redirector_port)
        await self._serve(self._record, self.elsewhere_port)


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    with Servers() as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{running.redirector_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEPARENTKEY")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
        monkeypatch.setenv("AWS_SESSION_TOKEN", PARENT_TOKEN)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield running


async def test_the_sts_client_never_follows_a_redirect(servers: Servers) -> None:
    child = await assume_role(
        AioSession(), ROLE_A, RoleSessionName="redirected", refresh=RefreshPolicy(max_tries=1)
    )
    credentials = await botocore_session(child).get_credentials()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever botocore makes of a 307
        await credentials.get_frozen_credentials()
    assert PARENT_TOKEN not in str(caught.value)
    assert servers.reached_elsewhere == []  # nothing, the token least of all, left home


# --- the table of clients: leases, threads, single flight, shared TLS (issue 20) -----------

_SHARED = "_aio_assume_role_lib_shared"
HTTP_STACKS = [
    pytest.param("asyncio", "aiohttp", id="asyncio-aiohttp"),
    pytest.param(
        "asyncio",
        "httpx",
        id="asyncio-httpx",
        marks=pytest.mark.skipif(not HAS_TRIO, reason="httpx is installed on stack S1 only"),
    ),
    pytest.param(
        "trio",
        "httpx",
        id="trio-httpx",
        marks=[
            pytest.mark.trio,
            pytest.mark.skipif(not HAS_TRIO, reason="trio is installed on stack S1 only"),
        ],
    ),
]


def _parent(http: str) -> AioSession:
    return httpx_parent() if http == "httpx" else AioSession()


def _table_of(parent: AioSession) -> StsClients:
    table: StsClients = parent.__dict__[_SHARED].sts_clients
    return table


@pytest.mark.parametrize(("anyio_backend", "http"), HTTP_STACKS)
async def test_concurrent_first_fetches_of_twenty_children_open_one_client(
    sts: LoopbackSTS, anyio_backend: str, http: str
) -> None:
    parent = _parent(http)
    children = [
        await assume_role(parent, ROLE_A, RoleSessionName=f"child-{index}") for index in range(20)
    ]
    frozen: list[Any] = []

    async def fetch(child: Any) -> None:
        credentials = await botocore_session(child).get_credentials()
        frozen.append(await credentials.get_frozen_credentials())

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            for child in children:
                tasks.start_soon(fetch, child)
    assert len({credentials.access_key for credentials in frozen}) == 20
    assert sts.assume_role_count == 20
    assert _table_of(parent).opened == 1  # one client for the loop, not one per child


@pytest.mark.parametrize(("anyio_backend", "http"), HTTP_STACKS)
async def test_a_broken_client_stays_open_for_the_requests_still_using_it(
    sts: LoopbackSTS, anyio_backend: str, http: str
) -> None:
    table = StsClients(_parent(http))
    async with table.lease() as sibling:
        async with table.lease() as failed:
            assert failed.client is sibling.client
            failed.broken = True  # its request met a broken connection, say
        async with table.lease() as later:
            assert later.client is not sibling.client  # new requests get a new client
        # The sibling's client was not closed under it.
        identity = await sibling.client.get_caller_identity()
    assert identity["Arn"] == sts.root_arn
    assert table.opened == 2


async def test_a_client_whose_http_session_was_closed_is_replaced(sts: LoopbackSTS) -> None:
    # (aiohttp: httpx's session opens a new pool after close(), so it never breaks this way)
    parent = AioSession()
    child = await assume_role(
        parent, ROLE_A, RoleSessionName="replaced", refresh=RefreshPolicy(retry_delay_seconds=0.01)
    )
    credentials = await botocore_session(child).get_credentials()
    first = await credentials.get_frozen_credentials()
    table = _table_of(parent)
    (held,) = table._held.values()
    # Broken under the library: its aiohttp session closed ("Session is closed" from now on).
    await held.client._endpoint.http_session._sessions[None].close()
    assert credentials._refresher.invalidate(first.access_key)
    second = await credentials.get_frozen_credentials()
    assert second.access_key != first.access_key  # new credentials, through a new client
    assert table.opened == 2


LOOP_KINDS = [
    pytest.param("asyncio", id="asyncio-aiohttp"),
    pytest.param(
        "trio",
        id="trio-httpx",
        marks=[
            pytest.mark.trio,
            pytest.mark.skipif(not HAS_TRIO, reason="trio is installed on stack S1 only"),
        ],
    ),
]


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
def test_one_table_serves_threads_each_running_event_loops(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, loop_kind: str
) -> None:
    """Six threads, each running an event loop three times on one parent's table; closed
    loops' clients are pruned while other threads add theirs.

    No hand clock here: the race is between threads inside the table's walk, where no
    clock is read and nothing awaits, so no clock can order it. Bounded counts drive it
    instead (6 threads x 3 loops x 50 leases), and asking a loop whether it is closed
    gives up the GIL, as any call may on a free-threaded build, so that threads
    interleave inside the walk unless it is locked (red every run without the lock)."""
    if loop_kind == "trio":
        import trio

        loop_class: Any = _backend._TrioLoop
        parent = httpx_parent()
        run: Callable[[Callable[[], Any]], Any] = trio.run
    else:
        loop_class = _backend._AsyncioLoop
        parent = AioSession()
        run = lambda main: asyncio.run(main())  # noqa: E731
    is_closed = loop_class.is_closed

    def is_closed_slowly(self: Any) -> bool:
        time.sleep(0)
        return bool(is_closed(self))

    monkeypatch.setattr(loop_class, "is_closed", is_closed_slowly)
    # Resolved once first: threads resolving the parent's credentials at the same time can
    # get two objects, and a client made from other credentials is replaced (rightly).
    asyncio.run(parent.get_credentials())
    table = StsClients(parent)
    errors: list[BaseException] = []

    async def leases() -> None:
        for _ in range(50):
            async with table.lease() as lease:
                assert lease.client is not None

    def worker() -> None:
        for _ in range(3):
            try:
                run(leases)
            except BaseException as error:  # every failure is the finding
                errors.append(error)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_SECONDS)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert table.opened == 18  # one client per event loop

    # Closed loops' clients are let go by the next lease (threads that finished at about
    # the same time may each have left their last one): one more loop, then only its own.
    async def one_lease() -> None:
        async with table.lease():
            pass

    run(one_lease)
    assert table.opened == 19
    assert len(table._held) <= 1  # the closed loops' clients were let go


async def _ssl_context_of(client: Any) -> ssl.SSLContext:
    http_session = client._endpoint.http_session
    if hasattr(http_session, "_sessions"):  # aiohttp: built with the first connection pool
        await http_session._get_session(None)
        context: ssl.SSLContext = http_session._sessions[None].connector._ssl
    else:  # httpx: built when the client opened
        context = http_session._verify
    return context


@pytest.fixture
def own_ca_bundle(tmp_path: Path) -> Path:
    import certifi

    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    return bundle


@pytest.mark.parametrize(("anyio_backend", "http"), HTTP_STACKS)
async def test_sts_clients_share_one_ssl_context_per_tls_settings(
    sts: LoopbackSTS, anyio_backend: str, http: str, own_ca_bundle: Path
) -> None:
    own_bundle = own_ca_bundle
    parents = [_parent(http) for _ in range(3)]
    parents[2].set_config_variable("ca_bundle", str(own_bundle))
    tables = [StsClients(parent) for parent in parents]
    contexts = []
    for table in tables:
        async with table.lease() as lease:
            contexts.append(await _ssl_context_of(lease.client))
    loaded = contexts[0].cert_store_stats()["x509_ca"]
    assert loaded > 0
    assert contexts[0].verify_mode == ssl.CERT_REQUIRED
    assert contexts[1] is contexts[0]  # two parents, one context (loaded once: ~1 MB)
    assert contexts[1].cert_store_stats()["x509_ca"] == loaded
    assert contexts[2] is not contexts[0]  # another CA bundle, another context


# --- the same with time by hand: a try's deadline comes when the test says so --------------


async def _until(condition: Callable[[], bool], rounds: int = 10_000) -> None:
    """Let the ready tasks run until ``condition`` holds (scheduler rounds, not time)."""
    for _ in range(rounds):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"not reached in {rounds} scheduler rounds")


async def _until_in(items: Any, item: object) -> None:
    """Wait for another thread (a server's) or for real I/O to put ``item`` in ``items``."""
    with anyio.fail_after(HANG_SECONDS):
        while item not in items:  # noqa: ASYNC110
            await anyio.sleep(0.005)


class _GatedOpening:
    """Holds every opening of a parent's STS client until :attr:`gate` is set: an async
    handler of botocore's ``creating-client-class.sts`` event, which aiobotocore awaits
    while it makes the client."""

    def __init__(self, parent: AioSession) -> None:
        self.entered = 0
        self.gate = anyio.Event()
        parent.register("creating-client-class.sts", self._hold)

    async def _hold(self, **kwargs: Any) -> None:
        self.entered += 1
        await self.gate.wait()


def _waiting_for_the_opening(table: StsClients) -> int:
    return sum(event.statistics().tasks_waiting for event in table._opening.values())


@pytest.mark.parametrize(("anyio_backend", "http"), HTTP_STACKS)
async def test_first_fetches_share_one_client_opening_even_when_its_opener_gives_up(
    sts: LoopbackSTS, anyio_backend: str, http: str
) -> None:
    # Twenty children's first fetches find the loop's client being opened and wait for
    # that opening. The child opening it reaches its try's deadline mid-opening: one of
    # the waiters opens the client instead, and the twenty share it.
    parent = _parent(http)
    opening = _GatedOpening(parent)
    table = StsClients(parent)
    clock = ManualClock(wall=time.time())
    hasty = RefreshPolicy(try_timeout_seconds=0.5, max_tries=1)
    impatient = hand_clock_child(table, clock, ROLE_A, RoleSessionName="impatient", policy=hasty)
    children = [
        hand_clock_child(table, clock, ROLE_A, RoleSessionName=f"child-{index}")
        for index in range(20)
    ]
    outcomes: dict[object, Outcome] = {}

    async def fetch(name: object, child: Any) -> None:
        outcomes[name] = await attempt(child.get)

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fetch, "impatient", impatient)
            await _until(lambda: opening.entered == 1)
            for index, child in enumerate(children):
                tasks.start_soon(fetch, index, child)
            await _until(lambda: _waiting_for_the_opening(table) == 20)
            assert opening.entered == 1  # one opening, twenty waiting for it
            await clock.advance(0.5)  # the impatient child's try ends mid-opening
            assert isinstance(outcomes["impatient"].error, RefreshTimeoutError)
            # A waiter took the opening over; the others wait for it: nobody is stranded.
            await _until(lambda: _waiting_for_the_opening(table) == 19)
            assert opening.entered == 2
            opening.gate.set()
    assert [outcomes[index].error for index in range(20)] == [None] * 20
    assert len({outcomes[index].value.access_key for index in range(20)}) == 20
    assert sts.assume_role_count == 20
    assert table.opened == 1


class GatedFront(ThreadedServer):
    """A loopback HTTP server in front of the loopback STS. It forwards each request and
    its answer as they are, except that the request of a session named in :meth:`hold`
    is kept, sent and unanswered, until :meth:`release`, and the connection of one named
    in :meth:`drop` is closed without an answer. :attr:`arrived` lists the session names
    of the requests held or dropped, in the order they came."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.port = _free_port()
        self.arrived: list[str] = []
        self._held: dict[str, asyncio.Event] = {}
        self._dropped: set[str] = set()
        self._stopping = False
        self._upstream: aiohttp.ClientSession | None = None

    def hold(self, *names: str) -> None:
        for name in names:
            self._held[name] = asyncio.Event()

    def release(self, name: str) -> None:
        self._loop.call_soon_threadsafe(self._held[name].set)

    def drop(self, name: str) -> None:
        self._dropped.add(name)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        name = urllib.parse.parse_qs(body.decode()).get("RoleSessionName", [""])[0]
        gate = self._held.get(name)
        if name in self._dropped or gate is not None:
            self.arrived.append(name)
        if gate is not None:
            await gate.wait()
        if name in self._dropped or self._stopping:
            if request.transport is not None:  # (None: the client went away first)
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        assert self._upstream is not None
        async with self._upstream.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as answer:
            kept = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
            kept.pop("Content-Encoding", None)
            kept.pop("Transfer-Encoding", None)
            return web.Response(status=answer.status, body=await answer.read(), headers=kept)

    async def _start(self) -> None:
        self._upstream = aiohttp.ClientSession()
        await self._serve(self._forward, self.port)

    async def _before_close(self) -> None:
        self._stopping = True
        for gate in self._held.values():
            gate.set()  # the requests still held lose their connection

    async def _after_close(self) -> None:
        assert self._upstream is not None
        await self._upstream.close()


@pytest.fixture
def front(sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedFront]:
    """The loopback STS behind a :class:`GatedFront`, which parents made now talk to."""
    with GatedFront(sts.endpoint_url) as running:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{running.port}")
        yield running


@pytest.mark.parametrize("failure", ["timed out", "connection lost"])
@pytest.mark.parametrize(("anyio_backend", "http"), HTTP_STACKS)
async def test_a_childs_failed_try_leaves_the_client_to_its_siblings_request_in_flight(
    front: GatedFront, sts: LoopbackSTS, anyio_backend: str, http: str, failure: str
) -> None:
    # Two children of one parent share its client. The patient child's request is sent
    # and held unanswered; meanwhile the impatient child's try on the same client fails,
    # at its deadline (the hand clock) or by losing its connection. The patient child's
    # request is still answered on that client.
    table = StsClients(_parent(http))
    clock = ManualClock(wall=time.time())
    hasty = RefreshPolicy(try_timeout_seconds=0.5, max_tries=1)
    patient = hand_clock_child(
        table, clock, ROLE_B, RoleSessionName="patient", policy=RefreshPolicy(max_tries=1)
    )
    impatient = hand_clock_child(table, clock, ROLE_A, RoleSessionName="impatient", policy=hasty)
    front.hold("patient")
    if failure == "timed out":
        front.hold("impatient")
    else:
        front.drop("impatient")
    outcomes: dict[str, Outcome] = {}

    async def fetch(name: str, child: Any) -> None:
        outcomes[name] = await attempt(child.get)

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fetch, "patient", patient)
            await _until_in(front.arrived, "patient")  # sent, and held unanswered
            tasks.start_soon(fetch, "impatient", impatient)
            await _until_in(front.arrived, "impatient")
            if failure == "timed out":
                await clock.advance(0.5)  # the impatient child's try ends
            await _until_in(outcomes, "impatient")
            assert "patient" not in outcomes  # still in flight on the same client
            front.release("patient")
    error = outcomes["impatient"].error
    if failure == "timed out":
        assert isinstance(error, RefreshTimeoutError), repr(error)
    else:
        assert isinstance(error, HTTPClientError), repr(error)  # the connection it lost
    assert outcomes["patient"].error is None, repr(outcomes["patient"].error)
    assert outcomes["patient"].value.access_key
    # A try that ran out of time says nothing against the client, which is kept; a lost
    # connection does, and the next request gets a new client.
    async with table.lease():
        pass
    assert table.opened == (1 if failure == "timed out" else 2)

"""The library's own STS clients: they never follow a redirect (a redirect would carry the
parent's signed headers, session token included, to another origin); one per parent and
event loop, lent per request, opened once however many children ask at once, safe from
several threads, replaced when broken but never closed under a sibling's request, and
sharing one SSL context per TLS settings."""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.session import AioSession
from aiohttp import web

from aio_assume_role_lib import RefreshPolicy, _backend, assume_role
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS, HAS_TRIO, ROLE_A, botocore_session, httpx_parent

pytestmark = pytest.mark.anyio

PARENT_TOKEN = "parent-session-token-that-must-stay-home"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Servers:
    """Two loopback HTTP servers: ``redirector`` answers every request with a 307 to
    ``elsewhere``, which records what reaches it."""

    def __init__(self) -> None:
        self.redirector_port = _free_port()
        self.elsewhere_port = _free_port()
        self.reached_elsewhere: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{self.elsewhere_port}/stolen")

    async def _record(self, request: web.Request) -> web.Response:
        self.reached_elsewhere.append(dict(request.headers))
        return web.Response(status=500)

    async def _start(self) -> None:
        for port, handler in (
            (self.redirector_port, self._redirect),
            (self.elsewhere_port, self._record),
        ):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)

    def __enter__(self) -> Servers:
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


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


def test_one_table_serves_threads_each_running_event_loops(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six threads, each running asyncio.run five times on one parent's table; closed
    # loops' clients are pruned while other threads add theirs. Asking a loop whether it
    # is closed gives up the GIL here, as any call may on a free-threaded build, so that
    # threads interleave inside the table walk unless it is locked.
    is_closed = _backend._AsyncioLoop.is_closed

    def is_closed_slowly(self: Any) -> bool:
        time.sleep(0)
        return is_closed(self)

    monkeypatch.setattr(_backend._AsyncioLoop, "is_closed", is_closed_slowly)
    parent = AioSession()
    # Resolved once first: threads resolving the parent's credentials at the same time can
    # get two objects, and a client made from other credentials is replaced (rightly).
    asyncio.run(parent.get_credentials())
    table = StsClients(parent)
    errors: list[BaseException] = []

    def worker() -> None:
        async def main() -> None:
            for _ in range(50):
                async with table.lease() as lease:
                    assert lease.client is not None

        for _ in range(5):
            try:
                asyncio.run(main())
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
    assert table.opened == 30  # one client per event loop

    # Closed loops' clients are let go by the next lease (threads that finished at about
    # the same time may each have left their last one): one more loop, then only its own.
    async def one_lease() -> None:
        async with table.lease():
            pass

    asyncio.run(one_lease())
    assert table.opened == 31
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

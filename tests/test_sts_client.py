"""The library's own STS client never follows a redirect (issue: a redirect would carry the
parent's signed headers, session token included, to another origin)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.session import AioSession
from aiohttp import web

from aio_assume_role_lib import RefreshPolicy, assume_role

from .conftest import ROLE_A, botocore_session

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

"""aiohttp applications on 127.0.0.1, served by a thread with an event loop of its own:
test servers that must keep answering while the test's own loop (asyncio or trio) is
the client, or is blocked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from .conftest import HANG_SECONDS

_Server = TypeVar("_Server", bound="ThreadedServer")


class ThreadedServer:
    """``with`` starts the thread and waits for :meth:`_start`; leaving stops the servers
    and the thread. A subclass serves its handlers from ``_start`` with :meth:`_serve`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread: threading.Thread | None = None

    async def _start(self) -> None:
        raise NotImplementedError

    async def _before_close(self) -> None:
        """In the servers' loop, before they close (release what requests wait for)."""

    async def _after_close(self) -> None:
        """In the servers' loop, after they closed (close what the handlers used)."""

    async def _serve(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]], port: int = 0
    ) -> int:
        """Serve ``handler`` for every method and path on ``port`` (0: a free one)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        self._runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def __enter__(self: _Server) -> _Server:
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(HANG_SECONDS)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self._before_close()
            for runner in self._runners:
                await runner.cleanup()
            await self._after_close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(HANG_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(HANG_SECONDS)
        self._loop.close()

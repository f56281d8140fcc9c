"""The STS clients that fetch credentials: one per parent session and event loop, kept open.

Opening an aiobotocore client is not cheap: aiobotocore 2.x builds its SSL context and
reads the CA bundle on the event loop (~50 ms, a stall for every task on the loop), and a
new client also means a new connection and TLS handshake. A refresh that opened a client
each time would stall its loop on every refresh, so each parent keeps one STS client per
event loop (a client is bound to the loop it was opened on) and every refresh of every
child of that parent uses it.

Each client is held open by a suspended async generator. Event loops finalize the async
generators they started when they shut down (``asyncio.run`` and ``trio.run`` both do),
which closes the client cleanly. When a parent is dropped while its loops run on, a
``weakref.finalize`` schedules the close on each client's loop. The open clients are kept
in a module-level table, outside the parent <-> child reference cycle, because the
garbage collector would otherwise finalize the aiohttp objects before anything could
close them, and aiohttp would warn of unclosed sessions.
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from aiobotocore.config import AioConfig

from ._backend import EventLoop, current_event_loop

# One AssumeRole request per attempt: the refresher owns retrying (with backoff and a
# deadline), so botocore's own retries would only multiply the attempts.
_STS_CLIENT_CONFIG = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})


async def _hold_open(parent: Any) -> AsyncGenerator[Any, None]:
    async with parent.create_client("sts", config=_STS_CLIENT_CONFIG) as client:
        yield client


class _Held:
    __slots__ = ("client", "holder", "loop", "settings")

    def __init__(
        self,
        loop: EventLoop,
        settings: tuple[Any, ...],
        holder: AsyncGenerator[Any, None],
        client: Any,
    ) -> None:
        self.loop = loop
        self.settings = settings
        self.holder = holder
        self.client = client


# owner id -> {event loop key -> the client held open on that loop}
_held_by_owner: dict[int, dict[object, _Held]] = {}
_held_lock = threading.Lock()
_owner_ids = itertools.count()


def _close_all(owner: int) -> None:
    """Close an owner's clients, each on its own loop (a loop that is gone closed it already)."""
    with _held_lock:
        held = _held_by_owner.pop(owner, {})
    for entry in held.values():
        entry.loop.call_soon_threadsafe(functools.partial(entry.loop.spawn, entry.holder.aclose))


class StsClients:
    """The open STS clients of one parent session, one per event loop."""

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self._owner = next(_owner_ids)
        with _held_lock:
            _held_by_owner[self._owner] = {}
        weakref.finalize(self, _close_all, self._owner)

    async def _settings(self) -> tuple[Any, ...]:
        # What the client was made from: if the parent's region, credentials or default
        # config change, the next attempt opens a client that uses the new ones.
        parent = self._parent
        return (
            parent.get_config_variable("region"),
            id(await parent.get_credentials()),
            id(parent.get_default_client_config()),
        )

    async def get(self) -> Any:
        """The open STS client for the running event loop, opening one if needed."""
        loop = current_event_loop()
        settings = await self._settings()
        with _held_lock:
            mine = _held_by_owner[self._owner]
            for key in [k for k, entry in mine.items() if entry.loop.is_closed()]:
                del mine[key]  # its loop finalized the holder when it shut down
            held = mine.get(loop.key)
        if held is not None and held.settings == settings:
            return held.client
        if held is not None:
            await self.discard()
        holder = _hold_open(self._parent)
        client = await holder.__anext__()
        with _held_lock:
            _held_by_owner[self._owner][loop.key] = _Held(loop, settings, holder, client)
        return client

    async def discard(self) -> None:
        """Close the running loop's client (after a broken connection, say)."""
        with _held_lock:
            held = _held_by_owner[self._owner].pop(current_event_loop().key, None)
        if held is not None:
            with anyio.CancelScope(shield=True):
                await held.holder.aclose()

"""The STS clients that fetch credentials: one per parent session and event loop, kept open.

Opening an aiobotocore client is not cheap (a new connection and TLS handshake, and on
aiobotocore 2.x an SSL context built on the event loop, ~50 ms), so each parent keeps one
STS client per event loop (a client is bound to the loop it was opened on) and every
refresh of every child of that parent uses it.

Who holds what, so that a dropped parent is collected with everything hanging off it and
its connections are still closed cleanly:

* the parent holds its :class:`StsClients` (through the table ``_assume`` keeps on it),
  which holds the clients; a client holds the parent's credentials and event hooks, so
  they form one reference cycle that the garbage collector reclaims as a whole;
* each client's HTTP session (the only part that needs an async close) is *also* held by
  a small async generator in a module-level table that references nothing else. The HTTP
  session therefore never dies inside the cycle, where aiohttp would finalize it unclosed
  and warn;
* when the event loop ends, it finalizes that generator (``asyncio.run`` and ``trio.run``
  both do), which closes the HTTP session on its own loop;
* when the parent is collected first, a ``weakref.finalize`` drops the generators from the
  table; the loop's async-generator hook then schedules their close on their loop. The
  finalizer takes no lock and touches no loop itself. A generator whose loop was closed
  without finalizing it (no ``shutdown_asyncgens()``) is closed synchronously instead,
  which for an idle HTTP session needs no loop.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import weakref
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession

from ._backend import EventLoop, current_event_loop


class _NoRedirects:
    """An aiohttp session that never follows redirects (STS does not redirect, and a
    redirect would carry the parent's signed headers, session token included, elsewhere)."""

    __slots__ = ("_session",)

    def __init__(self, session: Any) -> None:
        self._session = session

    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        return self._session.request(*args, **kwargs)


@functools.cache
def _no_redirect_class(base: type) -> type:
    async def _get_session(self: Any, proxy_url: Any) -> Any:
        return _NoRedirects(await base._get_session(self, proxy_url))  # type: ignore[attr-defined]

    return type(f"NoRedirect{base.__name__}", (base,), {"_get_session": _get_session})


def sts_client_config(parent: Any) -> AioConfig:
    """The STS client's config: one try per request (the refresher owns retrying, with its
    backoff and deadline) and no redirects. Everything else comes from the parent."""
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
    default = parent.get_default_client_config()
    session_class = getattr(default, "http_session_cls", AIOHTTPSession)
    # The httpx backend does not follow redirects unless told to.
    if isinstance(session_class, type) and issubclass(session_class, AIOHTTPSession):
        # cast: mypy does not see a narrowed type[AIOHTTPSession] as Hashable (it is).
        options["http_session_cls"] = _no_redirect_class(cast(type, session_class))
    return AioConfig(**options)


async def _keep_open(http_session: Any) -> AsyncGenerator[None, None]:
    # References the HTTP session only: never the client, never the parent.
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await http_session.close()


# token -> (event loop, the generator holding one HTTP session open)
_open: dict[int, tuple[EventLoop, AsyncGenerator[None, None]]] = {}
_tokens = itertools.count()


_inherited_at_fork: list[tuple[EventLoop, AsyncGenerator[None, None]]] = []


def _forget_after_fork() -> None:
    # A forked child shares the parent process's sockets: it must neither close them nor
    # schedule anything on the parent's loops. Keep the holders, unused, for good.
    _inherited_at_fork.extend(_open.values())
    _open.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _close_synchronously(holder: AsyncGenerator[None, None]) -> None:
    """Close a holder whose loop is gone: an idle HTTP session closes without awaiting."""
    closing = holder.aclose()
    with contextlib.suppress(BaseException):
        closing.send(None)
    with contextlib.suppress(BaseException):
        closing.close()


def _release(tokens: set[int]) -> None:
    """The parent's clients are gone: let go of their HTTP sessions (a GC callback)."""
    for token in list(tokens):
        entry = _open.pop(token, None)
        if entry is not None and entry[0].is_closed():
            _close_synchronously(entry[1])
        # Otherwise dropping the last reference lets the loop's async-generator hook
        # schedule the close on that loop.


class _Held:
    __slots__ = ("client", "loop", "settings", "token")

    def __init__(self, loop: EventLoop, settings: tuple[Any, ...], client: Any, token: int):
        self.loop = loop
        self.settings = settings
        self.client = client
        self.token = token


class StsClients:
    """The open STS clients of one parent session, one per event loop."""

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self._held: dict[object, _Held] = {}
        self._tokens: set[int] = set()
        weakref.finalize(self, _release, self._tokens)

    def __repr__(self) -> str:
        return f"<StsClients open on {len(self._held)} event loop(s)>"

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
        for key in [k for k, held in self._held.items() if held.loop.is_closed()]:
            self._drop(self._held.pop(key))
        settings = await self._settings()
        held = self._held.get(loop.key)
        if held is not None and held.settings == settings:
            return held.client
        if held is not None:
            await self.discard()
        context = self._parent.create_client("sts", config=sts_client_config(self._parent))
        client = await context.__aenter__()
        holder = _keep_open(client._endpoint.http_session)
        await holder.__anext__()  # registers it with this loop's async-generator hooks
        token = next(_tokens)
        _open[token] = (loop, holder)
        self._tokens.add(token)
        self._held[loop.key] = _Held(loop, settings, client, token)
        return client

    def _drop(self, held: _Held) -> None:
        self._tokens.discard(held.token)
        _release({held.token})

    async def discard(self) -> None:
        """Close the running loop's client (after a broken connection, say)."""
        held = self._held.pop(current_event_loop().key, None)
        if held is None:
            return
        self._tokens.discard(held.token)
        entry = _open.pop(held.token, None)
        if entry is not None:
            with anyio.CancelScope(shield=True):
                await entry[1].aclose()

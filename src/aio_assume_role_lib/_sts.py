"""The STS clients that fetch credentials: one per parent session and event loop, kept open.

Opening an aiobotocore client is not cheap (a new connection and TLS handshake, and on
aiobotocore 2.x an SSL context built on the event loop, ~50 ms), so each parent keeps one
STS client per event loop (a client is bound to the loop it was opened on) and every
refresh of every child of that parent uses it. The SSL context, the costly part (~1 MB
with the CA bundle loaded), is shared by all of them with the same TLS settings.

Clients are lent per request (:meth:`StsClients.lease`) and reference-counted: a client
that broke is replaced for new requests at once, but closed only by the last request
still on it, so one child's failure never breaks a sibling's request in flight. Opening
a loop's client is single-flight, and the table is changed only under a thread lock.

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
  which for an idle HTTP session needs no loop;
* a loop closed with refreshes still pending references them from its tasks, and an HTTP
  session references its loop: so the table references no loop, and at each full garbage
  collection the generators of closed loops are closed synchronously and dropped.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import os
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

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


# TLS settings -> what aiobotocore built for them. Loading the CA bundle into an
# SSLContext costs ~1 MB (outside Python's heap) and tens of milliseconds; every STS client
# with the same settings, on any loop and for any parent, shares one. Bounded by the
# number of distinct TLS settings in the process.
_tls_contexts: dict[tuple[Any, ...], Any] = {}
_tls_lock = threading.Lock()


def _tls_key(session: Any, *extra: Any) -> tuple[Any, ...] | None:
    """The settings aiobotocore builds a session's SSL context from, or None when they
    cannot be compared (then the session builds its own, as without this library)."""
    try:
        verify = session._verify
        proxy_settings = session._proxy_config.settings or {}
        key = (
            type(session).__mro__[1],
            verify,
            session._cert_file,
            session._key_file,
            tuple(sorted(proxy_settings.items())),
            *extra,
        )
        hash(key)
    except (AttributeError, TypeError):
        return None
    if isinstance(verify, ssl.SSLContext):
        return None  # the caller's own context, shared already
    return key


def _shared_tls(key: tuple[Any, ...] | None, build: Any) -> Any:
    if key is None:
        return build()
    with _tls_lock:
        found = _tls_contexts.get(key)
    if found is None:
        found = build()  # in a worker thread on aiobotocore 3.x: never under the lock
        with _tls_lock:
            found = _tls_contexts.setdefault(key, found)
    return found


def _frozen(value: Any) -> Any:
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


@functools.cache
def _sts_session_class(base: type) -> type:
    """``base`` (aiobotocore's HTTP session class) with its SSL contexts shared by every
    STS client with the same TLS settings and, for aiohttp, no redirects.

    The hook is the method that builds the contexts from the settings: aiobotocore 3.x's
    ``_build_ssl_contexts`` (aiohttp and httpx), returning the finished contexts; on 2.x,
    whose ``_create_connector`` configures a new context from ``_get_ssl_context()``,
    that context is shared when the connector has no proxy (configuring it again with the
    same settings changes nothing). Anything else keeps aiobotocore's behaviour.
    """
    namespace: dict[str, Any] = {}
    if hasattr(base, "_build_ssl_contexts"):

        def _build_ssl_contexts(self: Any, proxy: Any) -> Any:
            key = _tls_key(self, "contexts", _frozen(proxy))
            return _shared_tls(key, lambda: base._build_ssl_contexts(self, proxy))

        namespace["_build_ssl_contexts"] = _build_ssl_contexts
    elif hasattr(base, "_get_ssl_context") and hasattr(base, "_create_connector"):

        def _create_connector(self: Any, proxy_url: Any) -> Any:
            self._aio_arl_share_tls = not proxy_url
            try:
                return base._create_connector(self, proxy_url)
            finally:
                self._aio_arl_share_tls = False

        def _get_ssl_context(self: Any) -> Any:
            key = _tls_key(self, "context") if getattr(self, "_aio_arl_share_tls", False) else None
            return _shared_tls(key, lambda: base._get_ssl_context(self))

        namespace["_create_connector"] = _create_connector
        namespace["_get_ssl_context"] = _get_ssl_context
    if issubclass(base, AIOHTTPSession):

        async def _get_session(self: Any, proxy_url: Any) -> Any:
            return _NoRedirects(await base._get_session(self, proxy_url))  # type: ignore[attr-defined]

        namespace["_get_session"] = _get_session
    return type(f"Sts{base.__name__}", (base,), namespace)


def sts_client_config(parent: Any) -> AioConfig:
    """The STS client's config: one try per request (the refresher owns retrying, with its
    backoff and deadline), no redirects, and SSL contexts shared across clients.
    Everything else comes from the parent."""
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
    default = parent.get_default_client_config()
    session_class = getattr(default, "http_session_cls", AIOHTTPSession)
    if isinstance(session_class, type):
        options["http_session_cls"] = _sts_session_class(session_class)
    return AioConfig(**options)


async def _keep_open(http_session: Any) -> AsyncGenerator[None, None]:
    # References the HTTP session only: never the client, never the parent.
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await http_session.close()


# token -> (whether its event loop is closed, the generator holding one HTTP session open).
# The loop itself is not referenced: a loop closed without finalizing its tasks must be
# collectable, with the refreshes left in it.
_open: dict[int, tuple[Callable[[], bool], AsyncGenerator[None, None]]] = {}
_tokens = itertools.count()


_inherited_at_fork: list[tuple[Callable[[], bool], AsyncGenerator[None, None]]] = []


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
        if entry is not None and entry[0]():
            _close_synchronously(entry[1])
        # Otherwise dropping the last reference lets the loop's async-generator hook
        # schedule the close on that loop.


def _close_holders_of_closed_loops(phase: str, info: dict[str, Any]) -> None:
    """A garbage-collector callback: close the HTTP sessions of loops that were closed
    without finalizing them. An HTTP session references its loop, and a loop closed with
    refreshes pending references them (and their parents) from its tasks: held here,
    they would never be collected."""
    if phase != "start" or info.get("generation") != 2:
        return  # a full collection is the one that can reclaim such old objects
    for token, (is_closed, holder) in list(_open.items()):
        if is_closed() and _open.pop(token, None) is not None:
            _close_synchronously(holder)


gc.callbacks.append(_close_holders_of_closed_loops)


class _Held:
    """One open client and who is using it.

    ``users`` counts the requests in progress on it; a client that was replaced (broken,
    or the parent's settings changed) is ``retired``: nobody new gets it, and the last of
    its users closes it. A sibling's failed try therefore never closes the HTTP session
    under another flight's request."""

    __slots__ = ("client", "loop", "retired", "settings", "token", "users")

    def __init__(self, loop: EventLoop, settings: tuple[Any, ...], client: Any, token: int):
        self.loop = loop
        self.settings = settings
        self.client = client
        self.token = token
        self.users = 0
        self.retired = False


class Lease:
    """A client lent for one request. Set :attr:`broken` when the request failed in a way
    that says the client itself is unusable: it is then replaced (and closed once its
    other users are done)."""

    __slots__ = ("_held", "broken")

    def __init__(self, held: _Held) -> None:
        self._held = held
        self.broken = False

    @property
    def client(self) -> Any:
        return self._held.client


_all_tables: weakref.WeakSet[StsClients] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    # A lock held by a thread of the parent process would be held forever here, and an
    # opening in progress has no task left to finish it.
    global _tls_lock
    _tls_lock = threading.Lock()
    for table in list(_all_tables):
        table._lock = threading.Lock()
        table._opening.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


class StsClients:
    """The open STS clients of one parent session, one per event loop.

    Thread-safe: the table is only read and changed under a thread lock (never held
    across an await). Opening a loop's client is single-flight: concurrent first fetches
    of many children wait for one client instead of each opening its own.
    """

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self._lock = threading.Lock()
        self._held: dict[object, _Held] = {}
        # loop key -> set when the client being opened on that loop is there (or failed)
        self._opening: dict[object, anyio.Event] = {}
        self._tokens: set[int] = set()
        self.opened = 0  # clients opened so far (tests and benchmarks count them)
        weakref.finalize(self, _release, self._tokens)
        _all_tables.add(self)

    def __repr__(self) -> str:
        return f"<StsClients open on {len(self._held)} event loop(s)>"

    async def parent_credentials(self) -> Any:
        """The credentials object the parent's clients sign with (None: none found)."""
        return await self._parent.get_credentials()

    async def _settings(self) -> tuple[Any, ...]:
        # What the client was made from: if the parent's region, credentials or default
        # config change, the next attempt opens a client that uses the new ones.
        parent = self._parent
        return (
            parent.get_config_variable("region"),
            id(await parent.get_credentials()),
            id(parent.get_default_client_config()),
        )

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        """Lend the running loop's client (opening it if needed) for one request."""
        held = await self._acquire()
        lease = Lease(held)
        try:
            yield lease
        finally:
            await self._give_back(held, lease.broken)

    async def _acquire(self) -> _Held:
        loop = current_event_loop()
        while True:
            settings = await self._settings()
            gone: list[_Held] = []
            replaced: _Held | None = None
            opening: anyio.Event | None = None
            mine = False
            with self._lock:
                for key in [k for k, held in self._held.items() if held.loop.is_closed()]:
                    gone.append(self._held.pop(key))
                    self._tokens.discard(gone[-1].token)
                current = self._held.get(loop.key)
                if current is not None and current.settings == settings:
                    current.users += 1
                else:
                    opening = self._opening.get(loop.key)
                    if opening is None:
                        opening = self._opening[loop.key] = anyio.Event()
                        mine = True
                        if current is not None:  # made from settings the parent no longer has
                            replaced = self._retire(loop.key, current)
            for dropped in gone:
                _release({dropped.token})
            if opening is None:
                assert current is not None
                return current
            if not mine:
                await opening.wait()  # another task on this loop is opening the client
                continue
            try:
                if replaced is not None:
                    await self._close(replaced)
                return await self._open(loop, settings)
            finally:
                with self._lock:
                    if self._opening.get(loop.key) is opening:
                        del self._opening[loop.key]
                opening.set()

    async def _open(self, loop: EventLoop, settings: tuple[Any, ...]) -> _Held:
        context = self._parent.create_client("sts", config=sts_client_config(self._parent))
        client = await context.__aenter__()
        holder = _keep_open(client._endpoint.http_session)
        await holder.__anext__()  # registers it with this loop's async-generator hooks
        token = next(_tokens)
        held = _Held(loop, settings, client, token)
        held.users = 1
        with self._lock:
            _open[token] = (loop.closed_probe(), holder)
            self._tokens.add(token)
            self._held[loop.key] = held
            self.opened += 1
        return held

    def _retire(self, key: object, held: _Held) -> _Held | None:
        """Take ``held`` out of the table (under the lock); return it if it can be closed
        now, nobody using it."""
        if self._held.get(key) is held:
            del self._held[key]
        held.retired = True
        return held if held.users == 0 else None

    async def _give_back(self, held: _Held, broken: bool) -> None:
        with self._lock:
            held.users -= 1
            if broken and not held.retired:
                self._retire(held.loop.key, held)
            close = held.retired and held.users == 0
        if close:
            await self._close(held)

    async def _close(self, held: _Held) -> None:
        with self._lock:
            self._tokens.discard(held.token)
            entry = _open.pop(held.token, None)
        if entry is not None:
            with anyio.CancelScope(shield=True):
                await entry[1].aclose()

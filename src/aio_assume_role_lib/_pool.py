"""``ClientPool``: shared, bounded aiobotocore clients (and aioboto3 resources).

A client is expensive to open and cheap to reuse: ``create_client`` costs milliseconds of
CPU, and its first request builds a TLS context and a connection that later requests
reuse. A client kept per role forever is the opposite problem: tens of MB each when a
worker fans out over hundreds of accounts. The pool lends one shared client per
(event loop, session, service, client arguments), opens it once however many tasks ask
at the same moment, keeps at most ``max_clients`` open per event loop, closes the least
recently used idle one to make room, and never closes a client while it is lent out.

How a client is held open: by a suspended async generator started on the client's event
loop (the same device as ``_sts.py``). Event loops finalize the async generators they
started when they shut down (``asyncio.run`` and ``trio.run`` both do), so a pool that is
never closed, or used from a loop that has ended, still closes its clients cleanly on
their own loop, and aiohttp has no unclosed session to warn about.

Idle clients are closed by one small task per event loop (``_LoopClients._sweep``) that
sleeps until the least recently used idle client is due; it runs only while its loop has
clients, and the loop's end or ``aclose()`` cancels it.

Everything that touches a loop's clients runs on that loop: the per-loop state is only
ever changed from its own loop (one task at a time between checkpoints), and the table
of loops is guarded by a thread lock.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
from aiobotocore.session import AioSession

from ._backend import EventLoop, current_event_loop
from ._tenant_client import SharedClientContext, Tenant, TenantClient, tenant_of

if TYPE_CHECKING:
    from ._pool_types import ClientLender, ResourceLender

_log = logging.getLogger("aio_assume_role_lib.pool")

_T = TypeVar("_T")


class ClientPoolClosedError(RuntimeError):
    """A client was asked of a :class:`ClientPool` that is closed (or closing)."""


# --- keys -------------------------------------------------------------------------------


class _ByIdentity:
    """Compares by ``is``: for client arguments that are objects (an ``AioConfig``, say).

    It holds the object, so its ``id`` cannot be reused by another object while the key
    lives.
    """

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:  # client arguments never hold secrets we print: type only
        return f"<{type(self.value).__name__} at {id(self.value):#x}>"


_PLAIN = (str, int, float, bool, bytes, type(None))


def _canonical(value: Any) -> Any:
    """A hashable stand-in for one client argument: equal arguments, equal stand-ins.

    Plain values by value (tagged with their type, so ``1`` and ``True`` differ), mappings
    by their sorted items, lists and tuples element-wise, anything else (``AioConfig``
    objects above all) by identity: two configs with the same settings are two keys.
    """
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, Mapping):
        items = [(_canonical(k), _canonical(v)) for k, v in value.items()]
        return ("mapping", tuple(sorted(items, key=repr)))
    if isinstance(value, (list, tuple)):
        return ("sequence", tuple(_canonical(item) for item in value))
    return _ByIdentity(value)


def _canonical_kwargs(kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple((name, _canonical(kwargs[name])) for name in sorted(kwargs))


class _Key:
    """A client's key, hashed once: a lease looks its key up several times."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple[Any, ...]) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and other._hash == self._hash and other.parts == self.parts

    def __hash__(self) -> int:
        return self._hash


def _botocore_session(session: Any) -> AioSession:
    """The AioSession behind ``session`` (itself, or an aioboto3.Session's)."""
    if isinstance(session, AioSession):
        return session
    inner = getattr(session, "_session", None)
    if isinstance(inner, AioSession) and callable(getattr(session, "client", None)):
        return inner  # an aioboto3.Session
    raise TypeError(
        "session must be an aiobotocore.session.AioSession or an aioboto3.Session, "
        f"not {type(session).__name__}"
    )


# --- one open client --------------------------------------------------------------------


async def _hold_open(context: Any) -> AsyncGenerator[Any, None]:
    async with context as client:
        yield client


_CREATING, _OPEN, _FAILED = "creating", "open", "failed"


class _Entry:
    """One client of one loop: its key, state, leases and last use."""

    __slots__ = (
        "client",
        "error",
        "holder",
        "key",
        "last_used",
        "leases",
        "ready",
        "retired",
        "state",
    )

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.state = _CREATING
        self.client: Any = None
        self.holder: AsyncGenerator[Any, None] | None = None
        self.error: BaseException | None = None
        self.ready = anyio.Event()
        self.leases = 0
        self.last_used = 0.0
        # Out of the table (evicted, or its pool closing): closed when its last lease ends.
        self.retired = False


class _LoopClients:
    """The clients of one event loop. Touched only from that loop."""

    def __init__(self, pool: ClientPool, loop: EventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.entries: OrderedDict[_Key, _Entry] = OrderedDict()
        # Open clients plus clients being opened or closed: what max_clients bounds.
        self.slots = 0
        self.changed = anyio.Event()  # set (and replaced) whenever a slot or lease frees
        self.waiting = 0  # tasks waiting for `changed`
        self.credentials_lock = anyio.Lock()
        self.closing = False
        self.sweeping = False
        self.sweep_scope: anyio.CancelScope | None = None

    def notify(self) -> None:
        if self.waiting:  # (a new Event per release would be most of a lease's cost)
            self.changed.set()
            self.changed = anyio.Event()

    async def wait_for_change(self) -> None:
        self.waiting += 1
        try:
            await self.changed.wait()
        finally:
            self.waiting -= 1

    # --- leasing ------------------------------------------------------------------------

    async def acquire(self, key: _Key, open_client: Callable[[], Any]) -> _Entry:
        pool = self.pool
        while True:
            if self.closing:
                raise ClientPoolClosedError("this ClientPool is closed; leases are refused")
            await self.close_idle_expired()
            entry = self.entries.get(key)
            if entry is not None and entry.state == _OPEN:
                entry.leases += 1
                entry.last_used = pool._clock()
                self.entries.move_to_end(key)
                return entry
            if entry is not None:  # being opened by another task: wait for it (one flight)
                await entry.ready.wait()
                if entry.state == _FAILED:
                    assert entry.error is not None
                    # Every waiter raises that one error: fresh traceback each time, or it
                    # would collect every waiter's frames.
                    raise entry.error.with_traceback(None)
                continue  # open now (or already retired): look again
            if self.slots >= pool.max_clients:
                victim = self._least_recently_used_idle()
                if victim is None:
                    # Every client is lent out: wait for a lease to end (or a slot to free).
                    await self.wait_for_change()
                    continue
                # The victim's slot becomes ours: close it, then open ours in its place.
                self._retire(victim)
                entry = self._reserve(key)
                await self._close(victim, free_slot=False)
            else:
                self.slots += 1
                entry = self._reserve(key)
            await self._open(entry, open_client)
            if entry.state == _FAILED:
                assert entry.error is not None
                raise entry.error
            # Loop: the opener leases it like everyone else (unless the pool is closing).

    def _reserve(self, key: _Key) -> _Entry:
        entry = _Entry(key)
        entry.last_used = self.pool._clock()
        self.entries[key] = entry
        return entry

    async def _open(self, entry: _Entry, open_client: Callable[[], Any]) -> None:
        # Shielded: cancelling the task that happened to open the client must not fail
        # everyone else waiting for it (opening makes no network call).
        with anyio.CancelScope(shield=True):
            try:
                holder = _hold_open(open_client())
                client = await holder.__anext__()
            except BaseException as exc:
                entry.state, entry.error = _FAILED, exc
                if self.entries.get(entry.key) is entry:
                    del self.entries[entry.key]  # the next lease tries again
                self.slots -= 1
                self.notify()
                entry.ready.set()
                if not isinstance(exc, Exception):
                    raise
                return
            entry.holder, entry.client, entry.state = holder, client, _OPEN
            entry.last_used = self.pool._clock()
            self.pool._opened += 1
            entry.ready.set()
            if entry.retired:  # the pool began closing while it was being opened
                await self._close(entry)
            else:
                self._start_sweeper()

    async def release(self, entry: _Entry) -> None:
        entry.leases -= 1
        entry.last_used = self.pool._clock()
        if entry.leases == 0 and entry.retired:
            await self._close(entry)
        else:
            # Kept in order of last use, so the idle sweep can stop at the first fresh one.
            if self.entries.get(entry.key) is entry:
                self.entries.move_to_end(entry.key)
            if entry.leases == 0:
                self.notify()  # an idle client: room for a waiter, by eviction
        await self.close_idle_expired()

    # --- closing ------------------------------------------------------------------------

    def _least_recently_used_idle(self) -> _Entry | None:
        for entry in self.entries.values():  # oldest use first
            if entry.state == _OPEN and entry.leases == 0:
                return entry
        return None

    def _retire(self, entry: _Entry) -> None:
        entry.retired = True
        if self.entries.get(entry.key) is entry:
            del self.entries[entry.key]

    async def close_idle_expired(self) -> None:
        timeout = self.pool.idle_timeout
        if timeout is None or not self.entries:
            return
        now = self.pool._clock()
        if next(iter(self.entries.values())).last_used + timeout > now:
            return  # the least recently touched is still fresh: so is every other
        expired = []
        for entry in self.entries.values():  # least recently touched first
            if entry.last_used + timeout > now:
                break  # everything after it was touched later
            if entry.state == _OPEN and entry.leases == 0:
                expired.append(entry)
        for entry in expired:
            self._retire(entry)
            await self._close(entry)

    async def _close(self, entry: _Entry, *, free_slot: bool = True) -> None:
        holder, entry.holder, entry.client = entry.holder, None, None
        if holder is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await holder.aclose()
                except Exception:
                    _log.warning("closing a pooled client failed", exc_info=True)
            self.pool._closed_count += 1
        if free_slot:
            self.slots -= 1
            self.notify()

    # --- the idle sweeper ----------------------------------------------------------------

    def _start_sweeper(self) -> None:
        """Run ``_sweep`` on this loop, unless it runs already (or idle clients stay)."""
        if self.sweeping or self.closing or self.pool.idle_timeout is None:
            return
        self.sweeping = True
        self.loop.spawn(self._sweep)

    async def _sweep(self) -> None:
        """Close idle clients when their time is up, even if no lease comes to notice.

        A detached task (a system task on trio), so it keeps no task group open; it ends
        when this loop has no clients (the next one opened starts it again), when the
        pool closes, or when the loop ends (asyncio.run and trio.run cancel it).
        """
        timeout = self.pool.idle_timeout
        assert timeout is not None
        try:
            with anyio.CancelScope() as self.sweep_scope:
                while self.entries and not self.closing:
                    idle = next(
                        (e for e in self.entries.values() if e.state == _OPEN and e.leases == 0),
                        None,
                    )
                    # With no idle client, none can expire sooner than a full timeout.
                    due = timeout if idle is None else idle.last_used + timeout - self.pool._clock()
                    await anyio.sleep(max(due, 0.0))
                    await self.close_idle_expired()
        except Exception:  # never crash the loop (trio ends the run on a system task's error)
            _log.warning("the pool's idle sweeper failed", exc_info=True)
        finally:
            self.sweeping = False
            self.sweep_scope = None

    async def shutdown(self) -> None:
        """Refuse new leases, close idle clients now and lent ones when they come back."""
        self.closing = True
        if self.sweep_scope is not None:
            self.sweep_scope.cancel()
        self.notify()  # waiters for a slot wake up and raise ClientPoolClosedError
        for entry in list(self.entries.values()):
            self._retire(entry)
            if entry.state == _OPEN and entry.leases == 0:
                await self._close(entry)
        while self.slots > 0:  # lent-out clients, and ones still being opened
            await self.wait_for_change()


# --- the pool ---------------------------------------------------------------------------


class _Lease(Generic[_T]):
    """``async with pool.client(...) as client``: one lease of a shared client."""

    __slots__ = ("_entry", "_kwargs", "_loop_clients", "_pool", "_resource", "_service", "_session")

    def __init__(
        self, pool: ClientPool, session: Any, service: str, kwargs: dict[str, Any], resource: bool
    ) -> None:
        self._pool = pool
        self._session = session
        self._service = service
        self._kwargs = kwargs
        self._resource = resource
        self._entry: _Entry | None = None
        self._loop_clients: _LoopClients | None = None

    async def __aenter__(self) -> _T:
        if self._entry is not None:
            raise RuntimeError("a ClientPool lease cannot be entered twice; call client() again")
        loop_clients, entry = await self._pool._lease(
            self._session, self._service, self._kwargs, self._resource
        )
        self._loop_clients, self._entry = loop_clients, entry
        client: _T = entry.client
        return client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry, loop_clients = self._entry, self._loop_clients
        assert entry is not None
        assert loop_clients is not None
        self._entry = None
        # Not shielded here: release() changes its state before its first await, and its
        # only awaits are closes, which shield themselves.
        await loop_clients.release(entry)


class _TenantLease:
    """``async with pool.tenant_client(...) as client``: a tenant's view of a shared client."""

    __slots__ = ("_entry", "_kwargs", "_loop_clients", "_pool", "_service", "_tenant", "_view")

    def __init__(
        self, pool: ClientPool, tenant: Tenant, service: str, kwargs: dict[str, Any]
    ) -> None:
        self._pool = pool
        self._tenant = tenant
        self._service = service
        self._kwargs = kwargs
        self._entry: _Entry | None = None
        self._loop_clients: _LoopClients | None = None
        self._view: TenantClient | None = None

    async def __aenter__(self) -> Any:
        if self._entry is not None:
            raise RuntimeError(
                "a ClientPool lease cannot be entered twice; call tenant_client() again"
            )
        loop_clients, entry = await self._pool._lease_tenant(
            self._tenant, self._service, self._kwargs
        )
        self._loop_clients, self._entry = loop_clients, entry
        self._view = entry.client.lend(self._tenant.credentials)
        return self._view

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry, loop_clients, view = self._entry, self._loop_clients, self._view
        assert entry is not None
        assert loop_clients is not None
        assert view is not None
        self._entry = self._view = None
        view._open = False  # its calls raise from now on: the shared client may close
        await loop_clients.release(entry)


class ClientPool:
    """Shared, bounded aiobotocore clients and aioboto3 resources, lent per task.

    For example::

        pool = ClientPool(max_clients=64, idle_timeout=300.0)
        async with pool:                       # closes every client on exit
            async with pool.client(child, "s3", region_name="eu-west-1") as s3:
                await s3.list_buckets()

    ``pool.client(session, service_name, **create_client_kwargs)`` lends the one open
    client for (the running event loop, ``session``, ``service_name``, the arguments),
    opening it on first use; any number of tasks asking at once open it once. Sessions are
    ``AioSession`` or ``aioboto3.Session``; ``pool.resource(...)`` does the same for
    aioboto3 resources. For thousands of tenants, ``pool.tenant_client(child, ...)``
    lends each child of ``assume_role()`` a view of one client shared with every
    sibling that differs from it only in credentials (below).

    Args:
        max_clients: at most this many clients open **per event loop** (clients are
            bound to the loop they were opened on; most programs have one). When a new
            one is needed, the least recently used idle client is closed first; when
            every client is lent out, the lease waits until one comes back. A client is
            never closed while lent out.
        idle_timeout: seconds after which an idle client is closed, by a small task the
            pool runs on each event loop while that loop has clients; ``None``: never.
        clock: a monotonic clock in seconds (tests drive it by hand); default
            ``time.monotonic``.

    A session whose region or credentials object changes gets a new client for the new
    settings. Clients are keyed on the session object itself (``assume_role()`` returns
    the same child for the same arguments, so each role gets one client) and on the
    arguments: plain values by value, mappings by their items, other objects (an
    ``AioConfig``) by identity, so pass the same config object each time.

    ``await pool.aclose()`` (or leaving ``async with pool``) refuses new leases, closes
    idle clients at once and lent ones as their leases end, and returns when every
    client of the calling event loop is closed; a lease held by the task that calls it
    would wait forever, so return it first. Leasing from a closed pool raises
    :class:`ClientPoolClosedError`. A pool that is never closed still closes its clients
    cleanly when their event loop shuts down.
    """

    def __init__(
        self,
        max_clients: int = 64,
        idle_timeout: float | None = 300.0,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError(f"max_clients must be a positive integer, not {max_clients!r}")
        if idle_timeout is not None and (
            isinstance(idle_timeout, bool)
            or not isinstance(idle_timeout, (int, float))
            or not (idle_timeout > 0 and not math.isnan(idle_timeout))
        ):
            raise ValueError(
                f"idle_timeout must be a positive number of seconds or None, not {idle_timeout!r}"
            )
        if clock is not None and not callable(clock):
            raise TypeError("clock must be a callable returning monotonic seconds")
        self.max_clients = max_clients
        self.idle_timeout = None if idle_timeout is None else float(idle_timeout)
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._loops: dict[object, _LoopClients] = {}
        self._loops_lock = threading.Lock()
        self._closed = False
        self._opened = 0
        self._closed_count = 0

    # --- public -------------------------------------------------------------------------

    def _lend_client(
        self, session: Any, service_name: str, /, **create_client_kwargs: Any
    ) -> _Lease[Any]:
        """Lend the shared client for (loop, session, service, arguments): ``async with``."""
        return self._lease_for(session, service_name, create_client_kwargs, resource=False)

    def _lend_resource(
        self, session: Any, service_name: str, /, **resource_kwargs: Any
    ) -> _Lease[Any]:
        """Lend the shared aioboto3 resource for (loop, session, service, arguments)."""
        return self._lease_for(session, service_name, resource_kwargs, resource=True)

    def _lend_tenant_client(
        self, session: Any, service_name: str, /, **create_client_kwargs: Any
    ) -> _TenantLease | _Lease[Any]:
        """Lend ``session``'s view of the client it shares with its siblings: ``async with``."""
        if not isinstance(service_name, str) or not service_name:
            raise TypeError("service_name must be a non-empty string such as 's3'")
        tenant = tenant_of(session, create_client_kwargs)  # errors now, not at async with
        if tenant is None:  # a botocore whose children are not light: a client each
            return self._lease_for(session, service_name, create_client_kwargs, resource=False)
        return _TenantLease(self, tenant, service_name, create_client_kwargs)

    # Type checkers see one overload per service (``_pool_types.py``, generated from
    # types-aiobotocore), so that ``pool.client(child, "s3")`` lends an ``S3Client``
    # where types-aiobotocore-s3 is installed, as ``child.create_client("s3")`` does.
    if TYPE_CHECKING:
        client: ClientLender
        """``pool.client(session, service_name, **create_client_kwargs)``: lend the client
        of (this event loop, ``session``, ``service_name``, the arguments); ``async with``."""
        resource: ResourceLender
        """``pool.resource(session, service_name, **resource_kwargs)``: the same for an
        aioboto3 resource (``session`` an ``aioboto3.Session``)."""
        tenant_client: ClientLender
        """``pool.tenant_client(child, service_name, **create_client_kwargs)``: lend
        ``child``'s view of a client it shares with every child of the same parent that
        differs from it only in credentials; ``async with``.

        For many tenants (a role and ``ExternalId`` each), where a client per tenant
        costs ~30-50 ms of CPU to open and ~2 MiB to keep: one client, with its connection
        pool, TLS context and parsed service model, is opened per (parent, the child's
        region, default client config, service, arguments), and each lease makes a view
        of it in ~15 µs and under 1 KiB. Every request made through a view (its
        paginators, waiters, presigned URLs and aioboto3's transfer methods included) is
        signed with that child's credentials; a request that could be signed with
        another tenant's credentials, or nobody's, raises :class:`TenantClientError`.

        ``child`` must be a child of ``assume_role()`` (``AioSession`` or
        ``aioboto3.Session``) with nothing of its own but its credentials and region: a
        child with event handlers or configuration variables of its own raises
        ``ValueError`` (use :meth:`client` for it), and credentials arguments are
        refused. The shared client counts as one client for ``max_clients``; it is
        closed by the idle timeout, eviction or :meth:`aclose` only once no tenant's
        lease holds it, and a view refuses calls once its lease has ended. A view is not
        an aiobotocore client object: ``meta`` (its event hooks included),
        ``exceptions`` and ``can_paginate`` are the shared client's, so a handler
        registered on ``meta.events`` sees every tenant's requests; ``close()`` is
        refused (leave the ``async with``). Refused because their per-client caches
        would cross tenants: S3 Express One Zone session authentication (pass
        ``config=AioConfig(s3={"disable_s3_express_session_auth": True})``) and
        endpoint discovery (Timestream: pass ``endpoint_url``). With a botocore whose
        sessions the library cannot copy lightly, each child gets a client of its own,
        as from :meth:`client` (logged once as a warning)."""
    else:
        client = _lend_client
        resource = _lend_resource
        tenant_client = _lend_tenant_client

    @property
    def open_clients(self) -> int:
        """Clients (and resources) open now, on every event loop, being opened included."""
        with self._loops_lock:
            loops = list(self._loops.values())
        # A loop that has ended closed its clients as it shut down (module docstring).
        return sum(each.slots for each in loops if not each.loop.is_closed())

    @property
    def clients_opened(self) -> int:
        """How many clients (and resources) this pool has opened in total."""
        return self._opened

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    async def aclose(self) -> None:
        """Close every client (see the class docstring); later leases raise."""
        self._closed = True
        here = current_event_loop()
        with self._loops_lock:
            loops = list(self._loops.values())
        mine = None
        for loop_clients in loops:
            if loop_clients.loop.key == here.key:
                mine = loop_clients
            elif not loop_clients.loop.is_closed():
                # Another thread's loop: its clients are closed there, by that loop.
                loop_clients.loop.call_soon_threadsafe(
                    functools.partial(loop_clients.loop.spawn, loop_clients.shutdown)
                )
        if mine is not None:
            await mine.shutdown()

    async def __aenter__(self) -> ClientPool:
        if self._closed:
            raise ClientPoolClosedError("this ClientPool is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ClientPool {state} max_clients={self.max_clients} "
            f"idle_timeout={self.idle_timeout} open_clients={self.open_clients}>"
        )

    # --- private ------------------------------------------------------------------------

    def _lease_for(
        self, session: Any, service_name: str, kwargs: dict[str, Any], *, resource: bool
    ) -> _Lease[Any]:
        botocore_session = _botocore_session(session)  # TypeError now, not at async with
        if resource and botocore_session is session:
            raise TypeError("resource() needs an aioboto3.Session; an AioSession has none")
        if not isinstance(service_name, str) or not service_name:
            raise TypeError("service_name must be a non-empty string such as 's3'")
        return _Lease(self, session, service_name, kwargs, resource)

    def _loop_clients(self) -> _LoopClients:
        loop = current_event_loop()
        with self._loops_lock:
            found = self._loops.get(loop.key)
            if found is not None:
                return found
            # A new loop: forget loops that have ended (sequential asyncio.run calls). Their
            # clients were closed by the loop's own shutdown (see the module docstring);
            # they must not be touched from here.
            for key in [k for k, v in self._loops.items() if v.loop.is_closed()]:
                del self._loops[key]
            created = self._loops[loop.key] = _LoopClients(self, loop)
            return created

    async def _settings(self, session: Any, loop_clients: _LoopClients) -> tuple[Any, ...]:
        """What a client is made from besides the arguments: region, credentials, config."""
        core = _botocore_session(session)
        credentials = getattr(core, "_credentials", None)
        if credentials is None:
            # First load: AioSession.get_credentials() has no lock, and concurrent first
            # loads could make several credentials objects (and so several keys).
            async with loop_clients.credentials_lock:
                credentials = await core.get_credentials()
        # By identity, and held by the key, so that a replaced object's id is never reused.
        return (
            core.get_config_variable("region"),
            _ByIdentity(credentials),
            _ByIdentity(core.get_default_client_config()),
        )

    async def _lease_tenant(
        self, tenant: Tenant, service: str, kwargs: dict[str, Any]
    ) -> tuple[_LoopClients, _Entry]:
        if self._closed:
            raise ClientPoolClosedError("this ClientPool is closed; leases are refused")
        loop_clients = self._loop_clients()
        # Everything a client made on the tenant's child depends on but its credentials.
        group = tenant.group
        key = _Key(
            (
                "tenant",
                _ByIdentity(group.template),
                group.is_aioboto3,
                _ByIdentity(group.data_loader),
                _ByIdentity(group.default_config),
                group.region,
                group.user_agent,
                service,
                _canonical_kwargs(kwargs),
            )
        )
        open_client = functools.partial(SharedClientContext, group, service, kwargs)
        entry = await loop_clients.acquire(key, open_client)
        return loop_clients, entry

    async def _lease(
        self, session: Any, service: str, kwargs: dict[str, Any], resource: bool
    ) -> tuple[_LoopClients, _Entry]:
        if self._closed:
            raise ClientPoolClosedError("this ClientPool is closed; leases are refused")
        loop_clients = self._loop_clients()
        settings = await self._settings(session, loop_clients)
        key = _Key((_ByIdentity(session), resource, service, _canonical_kwargs(kwargs), settings))
        if resource:
            open_client = functools.partial(session.resource, service, **kwargs)
        elif isinstance(session, AioSession):
            open_client = functools.partial(session.create_client, service, **kwargs)
        else:
            open_client = functools.partial(session.client, service, **kwargs)
        entry = await loop_clients.acquire(key, open_client)
        return loop_clients, entry

"""The one seam between the refresher and the event loop it happens to run on.

The refresher needs three things that anyio does not offer across backends and threads:
start a task that outlives the task that asked for it (so cancelling a caller never
aborts a shared refresh), wake a waiter that sits on *another* event loop (one loop per
thread, or sequential ``asyncio.run`` calls sharing one credentials object), and tell
whether a loop is gone. Everything else uses anyio primitives directly.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# Background tasks are referenced here until they finish: asyncio keeps only weak
# references to tasks, and a collected task would be a refresh that silently vanished.
_running_tasks: set[asyncio.Task[None]] = set()


class EventLoop(Protocol):
    """The event loop the calling task runs on, in a form other threads may call into."""

    @property
    def key(self) -> object: ...

    def in_loop_thread(self) -> bool: ...

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> bool:
        """Schedule ``callback`` on this loop from any thread; False if the loop is gone."""
        ...

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        """Start ``task`` on this loop, detached from the calling task."""
        ...

    def is_closed(self) -> bool: ...

    def is_gone(self) -> bool:
        """True when tasks on this loop will not run again (closed, or not running)."""
        ...


class _AsyncioLoop:
    __slots__ = ("_loop", "_thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()

    @property
    def key(self) -> object:
        return self._loop

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await task()

        handle = self._loop.create_task(run())
        _running_tasks.add(handle)
        handle.add_done_callback(_running_tasks.discard)

    def is_closed(self) -> bool:
        return self._loop.is_closed()

    def is_gone(self) -> bool:
        # A loop stopped between run_until_complete() calls may run again; until then
        # its flights cannot finish, so waiters elsewhere start their own.
        return self._loop.is_closed() or not self._loop.is_running()


class _TrioLoop:
    __slots__ = ("_thread", "_token", "_trio")

    def __init__(self, trio: Any) -> None:
        self._trio = trio
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()

    @property
    def key(self) -> object:
        return self._token

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> bool:
        try:
            self._token.run_sync_soon(callback)
        except self._trio.RunFinishedError:
            return False
        return True

    def spawn(self, task: Callable[[], Awaitable[None]]) -> None:
        # A system task is not cancelled with the caller's scope; it is cancelled only
        # when the whole trio.run() ends, which the refresher treats as "abandoned".
        async def run() -> None:
            await task()

        self._trio.lowlevel.spawn_system_task(run)

    def is_closed(self) -> bool:
        try:
            self._token.run_sync_soon(lambda: None)
        except self._trio.RunFinishedError:
            return True
        return False

    def is_gone(self) -> bool:
        return self.is_closed()


def current_event_loop() -> EventLoop:
    """The event loop running the calling task (asyncio or trio)."""
    try:
        return _AsyncioLoop(asyncio.get_running_loop())
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return _TrioLoop(trio)
        except RuntimeError:
            pass
    raise RuntimeError("aio_assume_role_lib needs a running asyncio or trio event loop")

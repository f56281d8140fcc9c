"""The one seam between the refresher and the event loop it happens to run on.

The refresher needs three things that anyio does not offer across backends and threads:
start a task that outlives the task that asked for it (so cancelling a caller never
aborts a shared refresh), wake a waiter that sits on *another* event loop (one loop per
thread, or sequential ``asyncio.run`` calls sharing one credentials object), and tell
whether a loop is gone. Everything else uses anyio primitives directly.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

# Background tasks are referenced until they finish: asyncio keeps only weak references
# to tasks, and a collected task would be a refresh that silently vanished. They are
# referenced from their own event loop, so that a loop closed without cancelling them
# (``loop.close()`` after ``run_until_complete``) is collected with them, and with the
# refreshers and sessions they reference; a loop that takes no attribute (uvloop's) uses
# this table, pruned of closed loops' tasks at each spawn.
_TASKS_ATTRIBUTE = "_aio_assume_role_lib_tasks"
_running_tasks: set[asyncio.Task[None]] = set()


def _forget_tasks_of_closed_loops(phase: str, info: dict[str, Any]) -> None:
    """A garbage-collector callback: let go of anyio's records of tasks whose loop was
    closed while they ran.

    anyio keeps each task that is inside a cancel scope in a ``WeakKeyDictionary`` whose
    value references the task itself, so a task left pending in a closed loop is never
    collected, nor anything its frames hold (a refresher, its parent session). Its
    records are of no use once the loop is closed. If anyio's layout is not the expected
    one, this does nothing.
    """
    if phase != "start" or info.get("generation") != 2:
        return  # a full collection is the one that can reclaim such old objects
    backend = sys.modules.get("anyio._backends._asyncio")
    states = getattr(backend, "_task_states", None)
    if not isinstance(states, weakref.WeakKeyDictionary):
        return
    try:
        for task in [t for t in list(states.keys()) if t.get_loop().is_closed()]:
            states.pop(task, None)
    except Exception:  # best effort: never an error inside the collector
        pass


gc.callbacks.append(_forget_tasks_of_closed_loops)


def _task_set(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[None]]:
    try:
        tasks: set[asyncio.Task[None]] = vars(loop).setdefault(_TASKS_ATTRIBUTE, set())
    except TypeError:  # no __dict__
        for task in [t for t in _running_tasks if t.get_loop().is_closed()]:
            _running_tasks.discard(task)
        return _running_tasks
    return tasks


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

    def closed_probe(self) -> Callable[[], bool]:
        """``is_closed`` that does not keep the loop alive (True once it is collected)."""
        ...

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
        tasks = _task_set(self._loop)
        tasks.add(handle)
        handle.add_done_callback(tasks.discard)

    def is_closed(self) -> bool:
        return self._loop.is_closed()

    def closed_probe(self) -> Callable[[], bool]:
        loop = weakref.ref(self._loop)

        def is_closed() -> bool:
            alive = loop()
            return alive is None or alive.is_closed()

        return is_closed

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

    def closed_probe(self) -> Callable[[], bool]:
        return self.is_closed  # a trio token references no task, and trio.run ends them all

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

"""A private asyncio event loop in a daemon thread, for refreshes asked for by sync code.

Sync callers (an SDK's worker threads, httpx's sync ``Client``) cannot await the
refresher. When they need a refresh they hand ``Refresher.get()`` to this loop and wait
for its answer; the refresh then runs here, detached like any other, and callers on
other event loops wait for the same flight. One loop serves the whole process; it starts
on first need and is forgotten in a forked child (its thread does not exist there).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()


def _running_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve,
                args=(loop, ready),
                name="aio_assume_role_lib sync refresh",
                daemon=True,
            )
            thread.start()
            ready.wait()
            _loop = loop
        return _loop


def run(work: Callable[[], Awaitable[T]], timeout: float) -> T:
    """``await work()`` on the private loop; wait at most ``timeout`` seconds for it.

    Raises TimeoutError (from concurrent.futures) after ``timeout``; the work is then
    cancelled, which a refresher's detached flight survives.
    """

    async def call() -> T:
        return await work()

    future = asyncio.run_coroutine_threadsafe(call(), _running_loop())
    try:
        return future.result(timeout)
    finally:
        future.cancel()


def _forget_after_fork() -> None:
    global _lock, _loop
    _lock = threading.Lock()
    _loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def on_event_loop_thread() -> bool:
    """True when the calling thread is running an asyncio or trio event loop."""
    if asyncio._get_running_loop() is not None:
        return True
    import sys

    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return False
        return True
    return False

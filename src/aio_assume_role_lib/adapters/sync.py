"""Sync credentials for SDKs that ask for them from worker threads.

``SyncCredentials(session)()`` returns the session's current credentials, from any
thread, without an event loop: the hot path is a lock-free read; when a refresh is due
it runs on a private event loop (one per process) and this thread waits for it, within
the engine's deadline. On a thread that runs an event loop it raises, since waiting there
would stall every task of that loop: await the session there instead.
"""

from __future__ import annotations

import concurrent.futures
from datetime import datetime
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from .._refresh import Refresher, RefreshTimeoutError
from .._refreshed import refreshed_credentials
from . import _loop_thread
from ._core import expiry_of, fresh

__all__ = ["EventLoopThreadError", "SyncCredentials"]


class EventLoopThreadError(RuntimeError):
    """A sync credentials call on a thread running an event loop, where a refresh would
    block the loop: await the session's credentials there, or call from a worker thread."""


def get_blocking(refresher: Refresher[ReadOnlyCredentials]) -> ReadOnlyCredentials:
    """The refresher's credentials for a thread without an event loop: a lock-free read
    when fresh, else a wait for the refresh on the private loop (within its deadline)."""
    value = fresh(refresher)
    if value is not None:
        return value
    policy = refresher.policy
    # The engine's deadline bounds the refresh; a little more for the hand-over.
    allowance = policy.attempt_timeout_seconds + policy.token_code_timeout_seconds + 5.0
    try:
        return _loop_thread.run(refresher.get, allowance)
    except concurrent.futures.TimeoutError:
        raise RefreshTimeoutError(
            f"{refresher.description}: no credentials within {allowance:g} s"
        ) from None


class SyncCredentials:
    """A thread-safe sync callable returning a session's refreshed credentials.

    Args:
        session: a session whose credentials aio_assume_role_lib refreshes (what
            ``assume_role`` returns); a TypeError otherwise.

    Calling it returns botocore's ``ReadOnlyCredentials`` (``access_key``,
    ``secret_key``, ``token``); ``expiry_time`` says when they expire. Every call reads
    the session's one refresher: this adapter, the session's own clients and every other
    adapter on the session share one refresh per credential lifetime.

    Raises:
        EventLoopThreadError: when called on a thread that runs an asyncio or trio event
            loop (always, not only when a refresh is due, so that the mistake shows at
            once): call it from a worker thread (``asyncio.to_thread``,
            ``anyio.to_thread.run_sync``) or await the session's credentials.
        RefreshTimeoutError: when the refresh this call waits for does not end within the
            engine's deadline (``RefreshPolicy.attempt_timeout_seconds``, plus
            ``token_code_timeout_seconds`` for an MFA prompt).
    """

    __slots__ = ("_credentials", "_refresher")

    def __init__(self, session: Any) -> None:
        self._credentials = refreshed_credentials(session, consumer="SyncCredentials")
        self._refresher = self._credentials._refresher

    def __call__(self) -> ReadOnlyCredentials:
        if _loop_thread.on_event_loop_thread():
            raise EventLoopThreadError(
                "SyncCredentials was called on a thread that runs an event loop, where "
                "waiting for a refresh would block every task of that loop: await the "
                "session's credentials there (or use the async adapter, e.g. "
                "httpx.AsyncClient with adapters.httpx.SigV4Auth), or call it from a "
                "worker thread (asyncio.to_thread, anyio.to_thread.run_sync)"
            )
        return get_blocking(self._refresher)

    # The spelling botocore-style callers expect.
    get_frozen_credentials = __call__

    @property
    def expiry_time(self) -> datetime | None:
        """When the credentials held now expire (UTC), or None before the first fetch."""
        return expiry_of(self._refresher)

    def invalidate(self, access_key: str) -> bool:
        """A service rejected ``access_key`` as expired or invalid: refresh before the next
        call, if the credentials held still have that key. Returns whether it did."""
        return self._credentials.invalidate(access_key)

    def __repr__(self) -> str:
        return f"<SyncCredentials {self._refresher.description}>"

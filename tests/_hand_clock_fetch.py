"""A child's real fetch path under a hand-driven refresher.

:func:`hand_clock_child` builds what ``assume_role`` builds for one child (the
``AssumeRoleFetcher`` on the parent's STS client table, its cache, its MFA code source)
but gives the refresher a :class:`ManualClock`: a try's deadline, the MFA code's allowance
and every pause come only when the test advances the clock. The requests themselves are
real HTTP to a loopback server; their answers are awaited, never timed.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib._fetch import (
    AssumeRoleFetcher,
    classify_error,
    describe_error,
    error_code,
)
from aio_assume_role_lib._params import prepare_args
from aio_assume_role_lib._refresh import Refresher, RefreshTimeoutError
from aio_assume_role_lib._sts import StsClients

from ._manual_clock import ManualClock
from .conftest import HANG_SECONDS

# Room enough that the fetcher's own real-time bounds (its lock wait and cache reads,
# which assume_role sets to half a try) never act first: the hand clock decides.
NO_REAL_TIME_BOUND = 3600.0


def hand_clock_child(
    table: StsClients,
    clock: ManualClock,
    role_arn: str,
    *,
    policy: RefreshPolicy | None = None,
    cache: Any = None,
    lock_timeout: float = NO_REAL_TIME_BOUND,
    **assume_role_kwargs: Any,
) -> Refresher[Any]:
    """A child's refresher, as ``assume_role`` makes it, on ``clock``."""
    fetcher = AssumeRoleFetcher(
        table, prepare_args(role_arn, **assume_role_kwargs), cache=cache, lock_timeout=lock_timeout
    )
    return Refresher(
        fetcher,
        prepare=fetcher.prepare,
        after_success=fetcher.after_success,
        loaded_from_cache=fetcher.loaded_from_cache,
        policy=policy,
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.0,
        classify_error=classify_error,
        describe_error=describe_error,
        error_code=error_code,
        key_of=lambda credentials: credentials.access_key,
        description=fetcher.description,
        expiry_margin_seconds=1.0,
        retry_early=fetcher.parent_renewed,
    )


class UnansweredPrompt:
    """An MFA prompt nobody answers yet, as getpass blocks until someone types: ``asked``
    is set once it is up; it returns ``reply`` once ``answer`` is set (within
    ``HANG_SECONDS``, so that a failing run ends too). ``threads`` are those it ran in."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked, self.answer = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *getpass_arguments: Any, **getpass_keywords: Any) -> str:
        self.threads.append(threading.current_thread())
        self.asked.set()
        self.answer.wait(HANG_SECONDS)
        return self.reply


async def first_fetch_given_up(
    child: Refresher[Any], clock: ManualClock, prompt: UnansweredPrompt, *advances: float
) -> BaseException:
    """The child's first fetch, which waits for ``prompt``: once it is up, the clock moves
    by each of ``advances`` (the fetch must still wait after all but the last), then the
    fetch must end with RefreshTimeoutError without anything answering the prompt."""
    gave_up: list[BaseException] = []

    async def first_fetch() -> None:
        with pytest.raises(RefreshTimeoutError) as caught:
            await child.get()
        gave_up.append(caught.value)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first_fetch)
        with anyio.fail_after(HANG_SECONDS):
            while not prompt.asked.is_set():  # set by the prompt's thread  # noqa: ASYNC110
                await anyio.sleep(0.005)
        *within, last = advances
        for step in within:
            await clock.advance(step)
            assert gave_up == []  # within its allowance: still waiting for the code
        await clock.advance(last)
        for _ in range(1000):  # scheduler rounds, no time: nothing waits for the thread
            if gave_up:
                break
            await anyio.lowlevel.checkpoint()
        assert gave_up, "the refresh still waits for the prompt after its allowance"
    return gave_up[0]

"""An MFA prompt nobody answers, with time by hand (issue 20 D7).

A sync ``TokenCode`` callable is a prompt: it blocks until a human types the code. The
child's real fetch path runs on a hand-clock refresher (``tests/_hand_clock_fetch.py``),
so the prompt's allowance (``RefreshPolicy.token_code_timeout_seconds``) ends exactly when
the test advances the clock, while the prompt still waits. The process-level check (a
script whose prompt timed out exits when its main returns) is in test_refresh_engine.py,
with real time; the command line's own prompt is tested in test_cli.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS

from ._hand_clock_fetch import UnansweredPrompt, first_fetch_given_up, hand_clock_child
from ._manual_clock import ManualClock
from .conftest import ASYNCIO_AND_TRIO, HANG_SECONDS, ROLE_A, httpx_parent, make_parent

pytestmark = pytest.mark.anyio

MFA_SERIAL = "arn:aws:iam::123456789012:mfa/tester"


def threads_keeping_the_process_alive(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since ``before`` that the interpreter would wait for at exit."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if not t.daemon and t not in before and t is not main]


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_an_unanswered_prompt_ends_the_refresh_at_its_allowance_and_keeps_nothing_alive(
    sts: LoopbackSTS, anyio_backend: str
) -> None:
    before = set(threading.enumerate())
    prompt = UnansweredPrompt("123456")
    parent = httpx_parent() if anyio_backend == "trio" else make_parent()
    clock = ManualClock(wall=time.time())
    child = hand_clock_child(
        StsClients(parent),
        clock,
        ROLE_A,
        RoleSessionName="mfa",
        SerialNumber=MFA_SERIAL,
        TokenCode=prompt,
        policy=RefreshPolicy(token_code_timeout_seconds=60.0),
    )
    try:
        gave_up = await first_fetch_given_up(child, clock, prompt, 59.0, 1.0)
        assert "token_code_timeout_seconds" in str(gave_up)
        assert not prompt.answer.is_set()  # the prompt is still up...
        assert [thread.daemon for thread in prompt.threads] == [True]  # ...in a daemon thread,
        assert threads_keeping_the_process_alive(before) == []  # and nothing else waits on it
        assert sts.assume_role_count == 0

        # Answered late: the next refresh takes that answer instead of asking again.
        prompt.answer.set()
        await clock.advance(60.0)  # past the failed refresh's backoff
        with anyio.fail_after(HANG_SECONDS):
            credentials: Any = await child.get()
        assert credentials.access_key
        assert len(prompt.threads) == 1
        [call] = [call for call in sts.calls if call.action == "AssumeRole"]
        assert (call.params["SerialNumber"], call.params["TokenCode"]) == (MFA_SERIAL, "123456")
    finally:
        prompt.answer.set()

"""SPEC §4 R1-R10: the refresh engine seen from outside, over real HTTP.

Every test drives real aiobotocore / aioboto3 clients against the loopback STS
(``aio_assume_role_lib.testing``): call counts and outcomes come from what the server
received, identities from GetCallerIdentity. Time is real here (``test_refresh.py`` drives
the refresher with a hand clock), so lifetimes are seconds long and every load loop is
bounded both in the number of requests and in time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import anyio
import botocore.utils
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    RefreshWithMFAUnsupportedError,
)

from aio_assume_role_lib import JSONFileCache, RefreshPolicy, _cache, assume_role
from aio_assume_role_lib._refresh import Refresher, RefreshTimeoutError
from aio_assume_role_lib._stabilize import SourceCredentials, classify_source_error
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS, STSCall

from ._hand_clock_fetch import hand_clock_child
from ._manual_clock import ManualClock
from .conftest import (
    ASYNCIO_AND_TRIO,
    HANG_SECONDS,
    HAS_TRIO,
    ROLE_A,
    ROLE_B,
    Outcome,
    attempt,
    botocore_session,
    caller_arn,
    client,
    httpx_parent,
    make_parent,
)

pytestmark = pytest.mark.anyio

READER_ARN = "arn:aws:sts::111111111111:assumed-role/Reader/"
WRITER_ARN = "arn:aws:sts::222222222222:assumed-role/Writer/"
MFA_SERIAL = "arn:aws:iam::123456789012:mfa/tester"
TRAFFIC_INTERVAL = 0.02  # one request every 20 ms: "steady traffic"
# Botocore's own retries would hide what one request saw; the engine's retries are the point.
ONE_ATTEMPT = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
# Enough connections that no request waits for one (a request is signed before it waits,
# and a signature made long before sending is not what these tests are about).
TRAFFIC_CONFIG = AioConfig(
    retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=100
)


# --- helpers ----------------------------------------------------------------------------


def assume_role_calls(sts: LoopbackSTS) -> list[STSCall]:
    return [call for call in sts.calls if call.action == "AssumeRole"]


def identity_calls(sts: LoopbackSTS) -> list[STSCall]:
    return [call for call in sts.calls if call.action == "GetCallerIdentity"]


async def credentials_of(session: Any) -> Any:
    """The child's shared credentials object (what aiobotocore's signer awaits)."""
    return await botocore_session(session).get_credentials()


async def sleep_until(moment: float) -> None:
    await anyio.sleep(max(0.0, moment - time.time()))


def expiry_of(credentials: Any) -> float:
    expiry: datetime = credentials.expiry_time
    assert expiry is not None
    return expiry.timestamp()


async def traffic(
    operation: Callable[[], Awaitable[Any]],
    *,
    until: float,
    limit: int,
    interval: float = TRAFFIC_INTERVAL,
) -> list[Outcome]:
    """Start ``operation`` every ``interval`` s, each in its own task, until ``until``.

    At most ``limit`` operations; returns once all of them have finished (within a bound).
    """
    outcomes: list[Outcome] = []

    async def one() -> None:
        outcomes.append(await attempt(operation))

    first = time.time()
    with anyio.fail_after(max(until - first, 0.0) + 30.0):
        async with anyio.create_task_group() as tasks:
            for index in range(limit):
                if time.time() >= until:
                    break
                tasks.start_soon(one)
                await sleep_until(first + (index + 1) * interval)
    return sorted(outcomes, key=lambda outcome: outcome.started)


async def all_at_once(count: int, operation: Callable[[], Awaitable[Any]]) -> list[Outcome]:
    """Run ``count`` concurrent ``operation`` tasks; every result or error, in start order."""
    outcomes: list[Outcome | None] = [None] * count

    async def one(index: int) -> None:
        outcomes[index] = await attempt(operation)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for index in range(count):
                tasks.start_soon(one, index)
    return [outcome for outcome in outcomes if outcome is not None]


def errors_of(outcomes: Iterable[Outcome]) -> list[BaseException]:
    return [outcome.error for outcome in outcomes if outcome.error is not None]


def error_code(error: BaseException) -> str:
    assert isinstance(error, ClientError), repr(error)
    return str(error.response["Error"]["Code"])


def secrets_of(*frozen: Any) -> set[str]:
    return {value for item in frozen for value in (item.secret_key, item.token)}


def exception_texts(error: BaseException) -> Iterator[str]:
    """str() and repr() of an exception and of every exception chained to it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        current = current.__cause__ or current.__context__


def assert_no_secrets(texts: Iterable[str], secrets: set[str]) -> None:
    assert secrets, "no secrets to look for"
    for text in texts:
        for secret in secrets:
            assert secret not in text, "a secret access key or session token leaked"


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (state in the server's thread, which no event of ours can signal)."""
    with anyio.fail_after(5):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def settled(credentials: Any) -> Any:
    """Wait until no refresh is in flight (so counters and the server's record agree)."""
    stats = credentials.refresh_stats
    await wait_for(lambda: stats.attempts == stats.successes + stats.failures)
    return stats


# --- R1: single flight -------------------------------------------------------------------


async def test_r1_ten_thousand_concurrent_callers_make_one_assume_role_call(
    sts: LoopbackSTS,
) -> None:
    sts.credential_lifetime = 1.0
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="single-flight")
    credentials = await credentials_of(child)
    sts.latency = 0.1  # every caller is surely waiting before the one answer arrives
    seen_keys: list[str] = []

    async def crowd(reason: str) -> None:
        before = sts.assume_role_count
        outcomes = await all_at_once(10_000, credentials.get_frozen_credentials)
        assert errors_of(outcomes) == [], reason
        frozen = {outcome.value for outcome in outcomes}
        assert len(frozen) == 1, reason  # everyone got the very same credentials
        assert sts.assume_role_count == before + 1, reason
        (issued,) = frozen
        last_call = assume_role_calls(sts)[-1]
        assert last_call.outcome == "ok"
        assert issued.access_key == last_call.issued_access_key_id, reason
        seen_keys.append(issued.access_key)

    await crowd("first use")
    await sleep_until(expiry_of(credentials) + 0.05)
    await crowd("expired")  # (after an invalidation: the trio test and the MFA tests)

    assert len(set(seen_keys)) == 2
    assert sts.assume_role_count == 2
    assert credentials.refresh_stats.attempts == 2
    print(f"\nR1: 2 x 10,000 concurrent callers -> {sts.assume_role_count} AssumeRole calls")


# --- R2: shared across calls -----------------------------------------------------------


async def test_r2_ten_thousand_assume_role_calls_share_one_child_and_one_sts_call(
    parent: Any, sts: LoopbackSTS
) -> None:
    outcomes = await all_at_once(10_000, lambda: assume_role(parent, ROLE_A))
    assert errors_of(outcomes) == []
    children = {id(outcome.value) for outcome in outcomes}
    assert len(children) == 1  # the docstring says so: a repeat call returns the same child
    child = outcomes[0].value
    assert child.assume_role_parent_session is parent
    assert sts.assume_role_count == 0  # no STS call inside assume_role()

    # The per-request pattern: 190 requests through one shared client...
    async with client(child, "sts", config=TRAFFIC_CONFIG) as shared_client:
        shared = await all_at_once(190, shared_client.get_caller_identity)

    # ...and 10 that each call assume_role() and make their own client (~0.1 s apiece).
    async def per_request() -> str:
        again = await assume_role(parent, ROLE_A)
        assert again is child
        return await caller_arn(again)

    own = await all_at_once(10, per_request)
    assert errors_of(shared + own) == []
    arns = {outcome.value["Arn"] for outcome in shared} | {outcome.value for outcome in own}
    assert len(arns) == 1
    assert arns.pop().startswith(READER_ARN + "botocore-session-")
    assert sts.assume_role_count == 1
    print(
        f"\nR2: 10,000 assume_role() + 200 GetCallerIdentity -> "
        f"{sts.assume_role_count} AssumeRole call"
    )


async def test_r2_different_arguments_or_parents_never_share_credentials(
    parent: Any, session_kind: str, sts: LoopbackSTS
) -> None:
    other_parent = make_parent(session_kind)
    base = await assume_role(parent, ROLE_A, RoleSessionName="shared")
    variants = {
        "base": base,
        "same args again": await assume_role(parent, ROLE_A, RoleSessionName="shared"),
        "other session name": await assume_role(parent, ROLE_A, RoleSessionName="other"),
        "other role": await assume_role(parent, ROLE_B, RoleSessionName="shared"),
        "other parent": await assume_role(other_parent, ROLE_A, RoleSessionName="shared"),
    }
    assert variants["same args again"] is base
    distinct = {name: child for name, child in variants.items() if name != "same args again"}
    assert len({id(child) for child in distinct.values()}) == 4
    credentials = [await credentials_of(child) for child in distinct.values()]
    assert len({id(item) for item in credentials}) == 4

    arns = {name: await caller_arn(child) for name, child in distinct.items()}
    assert arns == {
        "base": READER_ARN + "shared",
        "other session name": READER_ARN + "other",
        "other role": WRITER_ARN + "shared",
        "other parent": READER_ARN + "shared",
    }
    # Same identity as "base", but its own credentials: the keys that signed differ.
    signing_keys = [call.access_key_id for call in identity_calls(sts)]
    issued_keys = [(await item.get_frozen_credentials()).access_key for item in credentials]
    assert signing_keys == issued_keys
    assert len(set(signing_keys)) == 4
    assert sts.assume_role_count == 4


# --- R3: windows scaled to the lifetime --------------------------------------------------


async def test_r3_steady_traffic_refreshes_about_once_per_lifetime(sts: LoopbackSTS) -> None:
    lifetime, duration = 6.0, 14.0
    sts.credential_lifetime = lifetime
    policy = RefreshPolicy()  # the defaults are what is under test
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="steady")
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        outcomes = await traffic(
            api.get_caller_identity, until=time.time() + duration, limit=int(duration / 0.02)
        )
    stats = await settled(await credentials_of(child))

    assert errors_of(outcomes) == []
    assert {call.outcome for call in identity_calls(sts)} == {"ok"}  # never ExpiredToken
    calls = assume_role_calls(sts)
    assert {call.outcome for call in calls} == {"ok"}
    elapsed = outcomes[-1].started - calls[0].time
    used_for = lifetime - policy.advisory_window(lifetime)  # 4.8 s of a 6 s lifetime
    # At least one call per lifetime (or some request would have met ExpiredToken)...
    fewest = 1 + math.floor(elapsed / lifetime)
    # ...and no refresh before the advisory window.
    most = 1 + math.ceil(elapsed / used_for)
    assert fewest <= len(calls) <= most
    for earlier, later in pairwise(calls):
        gap = later.time - earlier.time
        # Inside the advisory window (jittered), never as late as the blocking window.
        assert used_for - 0.05 <= gap < lifetime - policy.blocking_window(lifetime)
    assert stats.blocking_refreshes == 1  # the first use; every later one was advisory
    assert stats.advisory_refreshes == len(calls) - 1
    mean_gap = (calls[-1].time - calls[0].time) / (len(calls) - 1)
    print(
        f"\nR3: {len(outcomes)} requests over {elapsed:.1f} s of {lifetime:g} s credentials -> "
        f"{len(calls)} AssumeRole calls, one every {mean_gap:.2f} s "
        f"({lifetime / mean_gap:.2f} per lifetime)"
    )


async def test_r3_requests_during_the_advisory_refresh_do_not_wait(sts: LoopbackSTS) -> None:
    lifetime, latency = 3.0, 1.0
    sts.credential_lifetime = lifetime
    # The advisory window opens half-way (no jitter) so the test need not wait for it.
    policy = RefreshPolicy(advisory_window_seconds=1.5, min_use_seconds=0, jitter_fraction=0)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="advisory", refresh=policy)
    credentials = await credentials_of(child)
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        await api.get_caller_identity()
        first_key = (await credentials.get_frozen_credentials()).access_key
        expiry = expiry_of(credentials)
        advisory_opens = expiry - policy.advisory_window(lifetime)
        blocking_opens = expiry - policy.blocking_window(lifetime)

        await sleep_until(advisory_opens - 0.1)
        sts.latency = latency  # the refresh, and every request, now takes 1 s at STS
        until = blocking_opens - 0.1
        async with anyio.create_task_group() as tasks:
            results: dict[str, list[Outcome]] = {}

            async def run(name: str, operation: Callable[[], Awaitable[Any]]) -> None:
                results[name] = await traffic(operation, until=until, limit=100)

            tasks.start_soon(run, "requests", api.get_caller_identity)
            tasks.start_soon(run, "signer", credentials.get_frozen_credentials)

    requests, signer = results["requests"], results["signer"]
    assert errors_of(requests + signer) == []
    calls = assume_role_calls(sts)
    assert len(calls) == 2
    refresh = calls[1]
    assert refresh.outcome == "ok"
    assert advisory_opens - 0.05 <= refresh.time < blocking_opens  # started in advisory
    during = [o for o in requests if refresh.time <= o.started < refresh.time + latency]
    assert len(during) >= 10  # requests really were made while the refresh ran
    # A request that waited for the refresh would take latency (refresh) + latency (own).
    assert max(o.duration for o in requests) < latency + 0.5
    assert max(o.duration for o in signer) < 0.5
    # Those requests were signed with the still-valid credentials.
    by_key = {
        call.access_key_id
        for call in identity_calls(sts)
        if call.time < refresh.time + latency - 0.1
    }
    assert by_key == {first_key}
    assert {call.outcome for call in identity_calls(sts)} == {"ok"}


# --- R4: failure handling -----------------------------------------------------------------


async def test_r4_failed_advisory_refresh_keeps_serving_and_backs_off(sts: LoopbackSTS) -> None:
    lifetime, outage = 4.0, 2.0
    sts.credential_lifetime = lifetime
    # A wide advisory window (from 0.4 s after the fetch), no jitter, short backoffs.
    policy = RefreshPolicy(
        advisory_window_seconds=3.6,
        min_use_seconds=0.4,
        jitter_fraction=0.0,
        backoff_min_seconds=0.2,
        backoff_lifetime_fraction=0.2,
    )
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="outage", refresh=policy)
    credentials = await credentials_of(child)
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        await api.get_caller_identity()
        first_key = (await credentials.get_frozen_credentials()).access_key
        expiry = expiry_of(credentials)
        advisory_opens = expiry - policy.advisory_window(lifetime)
        blocking_opens = expiry - policy.blocking_window(lifetime)

        for _ in range(50):  # STS is down for the whole outage
            sts.fail_next("throttling")
            sts.fail_next("5xx")
        await sleep_until(advisory_opens)
        during_outage = await traffic(
            api.get_caller_identity, until=advisory_opens + outage, limit=200
        )
        await settled(credentials)  # no request is running, so no new attempt can start
        failed = assume_role_calls(sts)[1:]
        served = identity_calls(sts)
        sts.reset()  # STS is back
        recovery = await traffic(api.get_caller_identity, until=blocking_opens - 0.1, limit=200)
        stats = await settled(credentials)

    # Every request succeeded (none waited for a failing attempt), with the valid credentials.
    assert errors_of(during_outage + recovery) == []
    assert {call.access_key_id for call in served} == {first_key}
    assert {call.outcome for call in served} == {"ok"}
    # Advisory refreshes make one try each, and back off: not one per each of ~100 requests.
    assert {call.outcome for call in failed} <= {"throttling", "5xx"}
    assert 2 <= len(failed) <= 15
    # Once STS answers again, the next attempt succeeds before the blocking window.
    recovered = assume_role_calls(sts)
    assert {call.outcome for call in recovered} == {"ok"}
    assert recovered[0].time < blocking_opens
    later = [call for call in identity_calls(sts) if call.time > recovered[0].time + 0.1]
    assert later
    assert first_key not in {call.access_key_id for call in later}
    assert stats.failures == len(failed)
    assert stats.blocking_refreshes == 1
    print(f"\nR4: {outage:.0f} s STS outage in the advisory window -> {len(failed)} attempts")


async def test_r4_failed_blocking_refresh_serves_the_valid_credentials(sts: LoopbackSTS) -> None:
    sts.credential_lifetime = 6.0  # blocking window: the last 0.6 s
    policy = RefreshPolicy(retry_delay_seconds=0.05)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="blocking", refresh=policy)
    credentials = await credentials_of(child)
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        await api.get_caller_identity()
        first_key = (await credentials.get_frozen_credentials()).access_key
        await sleep_until(expiry_of(credentials) - 0.5)
        for _ in range(3):
            sts.fail_next("5xx")  # every try of the one refresh fails
        waiters = await all_at_once(20, api.get_caller_identity)
    assert errors_of(waiters) == []  # static stability: nobody sees the STS failure
    assert [call.outcome for call in assume_role_calls(sts)] == ["ok", "5xx", "5xx", "5xx"]
    assert {call.access_key_id for call in identity_calls(sts)} == {first_key}
    stats = await settled(credentials)
    assert stats.failures == 1
    assert stats.served_stale >= 1


async def test_r4_with_nothing_cached_every_waiter_gets_its_own_copy_of_the_error(
    sts: LoopbackSTS,
) -> None:
    policy = RefreshPolicy(backoff_min_seconds=0.3, max_tries=1)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="none", refresh=policy)
    credentials = await credentials_of(child)
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        sts.fail_next("5xx")
        sts.latency = 0.2
        waiters = await all_at_once(20, api.get_caller_identity)
        sts.latency = 0.0
        errors = errors_of(waiters)
        assert len(errors) == 20
        assert {error_code(error) for error in errors} == {"InternalFailure"}
        assert len({id(error) for error in errors}) == 20
        assert len({str(error) for error in errors}) == 1
        assert sts.assume_role_count == 1  # one attempt for the whole flight

        # Within the backoff: the same error at once, no new attempt.
        with pytest.raises(ClientError) as again:
            await api.get_caller_identity()
        assert str(again.value) == str(errors[0])
        assert sts.assume_role_count == 1

        await anyio.sleep(2 * policy.backoff_min_seconds + 0.05)
        assert (await api.get_caller_identity())["Arn"] == READER_ARN + "none"
    assert [call.outcome for call in assume_role_calls(sts)] == ["5xx", "ok"]
    frozen = await credentials.get_frozen_credentials()
    assert_no_secrets(
        (text for error in [*errors, again.value] for text in exception_texts(error)),
        secrets_of(frozen),
    )


async def test_r4_one_throttling_answer_on_the_first_fetch_fails_no_request(
    sts: LoopbackSTS,
) -> None:
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="throttled")
    sts.fail_next("throttling")
    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        outcomes = await all_at_once(50, api.get_caller_identity)
    assert errors_of(outcomes) == []
    assert [call.outcome for call in assume_role_calls(sts)] == ["throttling", "ok"]


async def test_r4_non_recoverable_error_is_remembered_briefly(sts: LoopbackSTS) -> None:
    policy = RefreshPolicy(error_memory_min_seconds=0.5, error_memory_max_seconds=1.0)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="denied", refresh=policy)
    sts.fail_next("access_denied")
    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        with pytest.raises(ClientError) as first:
            await api.get_caller_identity()
        failed_at = time.time()
        assert error_code(first.value) == "AccessDenied"
        assert "not authorized to perform: sts:AssumeRole" in str(first.value)

        outcomes = await all_at_once(200, api.get_caller_identity)
        if time.time() - failed_at < policy.error_memory_min_seconds:
            assert {error_code(error) for error in errors_of(outcomes)} == {"AccessDenied"}
            assert sts.assume_role_count == 1  # no further attempt while remembered
        assert identity_calls(sts) == [] or sts.assume_role_count == 2

        await sleep_until(failed_at + policy.error_memory_max_seconds + 0.05)
        assert (await api.get_caller_identity())["Arn"] == READER_ARN + "denied"
    assert [call.outcome for call in assume_role_calls(sts)] == ["access_denied", "ok"]
    stats = (await credentials_of(child)).refresh_stats
    assert stats.attempts == 2


# --- R5: cancellation -----------------------------------------------------------------------


async def test_r5_cancelling_the_task_that_triggered_a_refresh_does_not_abort_it(
    sts: LoopbackSTS,
) -> None:
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="cancelled")
    credentials = await credentials_of(child)
    sts.latency = 0.5
    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        with anyio.fail_after(10):
            with anyio.CancelScope() as disconnected:
                async with anyio.create_task_group() as trigger:
                    # The first use: this request starts the mandatory refresh...
                    trigger.start_soon(api.get_caller_identity)
                    await wait_for(lambda: sts.assume_role_count == 1)
                    disconnected.cancel()  # ...and its client goes away while STS works.
            assert disconnected.cancelled_caught
            assert assume_role_calls(sts) == []  # STS has not answered yet
            second = await attempt(credentials.get_frozen_credentials)
        assert second.error is None
        # The refresh finished, and the second request joined it instead of starting another.
        (call,) = assume_role_calls(sts)
        assert call.outcome == "ok"
        assert second.value.access_key == call.issued_access_key_id
        sts.latency = 0.0
        assert (await api.get_caller_identity())["Arn"] == READER_ARN + "cancelled"
    assert sts.assume_role_count == 1
    assert [call.access_key_id for call in identity_calls(sts)] == [call.issued_access_key_id]


# --- R6: an overall deadline per attempt --------------------------------------------------


async def test_r6_a_trickling_try_is_cut_off_and_retried(sts: LoopbackSTS) -> None:
    policy = RefreshPolicy(try_timeout_seconds=1.0, attempt_timeout_seconds=3.0)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="trickle", refresh=policy)
    sts.fail_next("trickle")
    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        started = time.perf_counter()
        assert (await api.get_caller_identity())["Arn"] == READER_ARN + "trickle"
        waited = time.perf_counter() - started
    assert 1.0 <= waited < 3.0  # the 1 s try deadline, not the ~30 s trickle
    assert [call.outcome for call in assume_role_calls(sts)] == ["trickle", "ok"]
    stats = (await credentials_of(child)).refresh_stats
    assert stats.timeouts == 1
    assert stats.successes == 1


async def test_r6_the_refresh_deadline_bounds_every_try(sts: LoopbackSTS) -> None:
    # A second try always starts (the first ends at 1 s, the pause before the next is
    # 0.25-0.5 s) and is always cut short by the 2.2 s refresh deadline, before its own
    # 1 s. (With a 1.5 s deadline, a pause drawn near 0.5 s left no room for a second
    # try: the refresh then gave up at 1 s, as it should, and the test failed on a loaded
    # machine; with 2.5 s, a second try that started early ended on its own.)
    policy = RefreshPolicy(try_timeout_seconds=1.0, attempt_timeout_seconds=2.2)
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="trickle", refresh=policy)
    for _ in range(3):
        sts.fail_next("trickle")
    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        started = time.perf_counter()
        with pytest.raises(TimeoutError) as caught:
            await api.get_caller_identity()
        waited = time.perf_counter() - started
    assert isinstance(caught.value, RefreshTimeoutError)
    # The 2.2 s deadline: not the ~30 s trickle, nor three whole 1 s tries and pauses.
    assert 2.1 <= waited < 3.2
    assert "attempt_timeout_seconds" in str(caught.value)


# --- R7: asyncio, trio, several event loops --------------------------------------------------


@pytest.mark.trio
@pytest.mark.skipif(not HAS_TRIO, reason="trio and httpx are installed on stack S1 only")
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_r7_child_works_on_trio_with_the_httpx_backend(sts: LoopbackSTS) -> None:
    child = await assume_role(httpx_parent(), ROLE_A, RoleSessionName="on-trio")
    assert await caller_arn(child) == READER_ARN + "on-trio"

    credentials = await credentials_of(child)
    credentials.invalidate()
    sts.latency = 0.1
    outcomes = await all_at_once(1_000, credentials.get_frozen_credentials)
    assert errors_of(outcomes) == []
    assert len({outcome.value for outcome in outcomes}) == 1
    assert sts.assume_role_count == 2
    assert {call.outcome for call in assume_role_calls(sts)} == {"ok"}


def test_r7_same_child_across_sequential_asyncio_run_calls(sts: LoopbackSTS) -> None:
    parent = make_parent()

    async def first_loop() -> tuple[Any, str]:
        child = await assume_role(parent, ROLE_A, RoleSessionName="loops")
        return child, await caller_arn(child)

    async def second_loop() -> None:
        # The loop ends while a refresh it started is still waiting for STS.
        (await credentials_of(child)).invalidate()
        sts.latency = 0.5
        asyncio.get_running_loop().create_task(caller_arn(child))
        await wait_for(lambda: sts.assume_role_count == 2)

    async def third_loop() -> str:
        sts.latency = 0.0
        return await caller_arn(child)

    child, arn = asyncio.run(first_loop())
    assert arn == READER_ARN + "loops"
    asyncio.run(second_loop())
    assert asyncio.run(third_loop()) == READER_ARN + "loops"
    assert asyncio.run(third_loop()) == READER_ARN + "loops"
    # The first fetch, the one abandoned with the second loop, and one for the third.
    assert sts.assume_role_count == 3


def test_r7_same_child_from_four_threads_each_with_its_own_loop(sts: LoopbackSTS) -> None:
    # 8 s credentials: a refresh 4-5.6 s after the first fetch (half-way, plus jitter),
    # then a 0.8 s blocking window, room for a request signed just before it to reach
    # STS on a loaded 2-core machine (with 6 s credentials, 0.6 s was not always enough
    # there: ExpiredToken).
    lifetime, duration, threads = 8.0, 9.0, 4
    sts.credential_lifetime = lifetime
    parent = make_parent()
    # Refresh half-way: each loop opens its own STS client on its first refresh, which
    # on a loaded 2-core machine takes over a second.
    policy = RefreshPolicy(min_use_fraction=0.5)
    child = asyncio.run(assume_role(parent, ROLE_A, RoleSessionName="threads", refresh=policy))
    until = time.time() + duration
    results: list[list[Outcome]] = []
    crashes: list[BaseException] = []

    async def worker() -> list[Outcome]:
        async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
            return await traffic(api.get_caller_identity, until=until, limit=300)

    def thread_main() -> None:
        try:
            results.append(asyncio.run(worker()))
        except BaseException as exc:
            crashes.append(exc)

    workers = [threading.Thread(target=thread_main) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(duration + 30)
    assert not any(thread.is_alive() for thread in workers)
    assert crashes == []
    outcomes = [outcome for per_thread in results for outcome in per_thread]
    errors = errors_of(outcomes)
    assert not any("different event loop" in str(error) for error in errors)
    assert errors == []
    assert len(outcomes) > threads * duration / TRAFFIC_INTERVAL * 0.5
    assert {call.outcome for call in identity_calls(sts)} == {"ok"}  # never ExpiredToken
    calls = assume_role_calls(sts)
    assert {call.outcome for call in calls} == {"ok"}
    elapsed = max(outcome.started for outcome in outcomes) - calls[0].time
    fewest = 1 + math.floor(elapsed / lifetime)
    most = 1 + math.ceil(elapsed / (lifetime - policy.advisory_window(lifetime)))
    # One call per lifetime for all threads together, not one per thread; and at least
    # one refresh while the four loops were sending.
    assert fewest <= len(calls) <= most
    assert len(calls) >= 2
    print(
        f"\nR7: {threads} threads x {duration:.0f} s of {lifetime:.0f} s credentials -> "
        f"{len(calls)} calls"
    )


# --- R8: MFA --------------------------------------------------------------------------------


async def test_r8_sync_token_code_runs_in_a_worker_thread_once_per_refresh(
    sts: LoopbackSTS,
) -> None:
    loop_thread = threading.get_ident()
    code_threads: list[int] = []
    prompt_times: list[tuple[float, float]] = []
    codes = iter(f"{n:06d}" for n in range(1, 100))

    def prompt() -> str:  # a blocking prompt, as getpass would be
        code_threads.append(threading.get_ident())
        started = time.perf_counter()
        time.sleep(0.2)
        prompt_times.append((started, time.perf_counter()))
        return next(codes)

    child = await assume_role(
        make_parent(),
        ROLE_A,
        RoleSessionName="mfa-sync",
        SerialNumber=MFA_SERIAL,
        TokenCode=prompt,
    )
    assert code_threads == []  # nothing is called inside assume_role()
    credentials = await credentials_of(child)
    ticks: list[float] = []

    async def tick() -> None:  # runs only while the event loop is free
        while True:
            await anyio.sleep(0.01)
            ticks.append(time.perf_counter())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        assert await caller_arn(child) == READER_ARN + "mfa-sync"
        credentials.invalidate()
        sts.fail_next("5xx")  # the refresh's second try reuses its code: one prompt a refresh
        assert await caller_arn(child, config=ONE_ATTEMPT) == READER_ARN + "mfa-sync"
        credentials.invalidate()
        assert await caller_arn(child) == READER_ARN + "mfa-sync"
        tasks.cancel_scope.cancel()

    calls = assume_role_calls(sts)
    codes = [call.params.get("TokenCode") for call in calls]
    assert codes == ["000001", "000002", "000002", "000003"]
    assert [call.params.get("SerialNumber") for call in calls] == [MFA_SERIAL] * 4
    assert len(code_threads) == 3
    assert loop_thread not in code_threads
    # The loop kept running while each 0.2 s prompt blocked its thread.
    for started, ended in prompt_times:
        assert sum(started < moment < ended for moment in ticks) >= 5


async def test_r8_async_token_code_is_called_once_per_refresh(
    parent: Any, sts: LoopbackSTS
) -> None:
    issued: list[str] = []

    async def token_code() -> str:
        await anyio.sleep(0.01)
        issued.append(f"{len(issued) + 1:06d}")
        return issued[-1]

    child = await assume_role(
        parent, ROLE_A, RoleSessionName="mfa-async", SerialNumber=MFA_SERIAL, TokenCode=token_code
    )
    credentials = await credentials_of(child)
    sts.latency = 0.1
    for _ in range(3):  # first use, then two refreshes, each awaited by 50 callers
        outcomes = await all_at_once(50, credentials.get_frozen_credentials)
        assert errors_of(outcomes) == []
        credentials.invalidate()
    assert issued == ["000001", "000002", "000003"]
    assert [call.params.get("TokenCode") for call in assume_role_calls(sts)] == issued


@pytest.mark.parametrize("stale_by", ["invalidate", "expiry"])
async def test_r8_static_token_code_serves_only_the_first_fetch(
    parent: Any, sts: LoopbackSTS, stale_by: str
) -> None:
    sts.credential_lifetime = 1.0
    child = await assume_role(
        parent, ROLE_A, RoleSessionName="mfa-static", SerialNumber=MFA_SERIAL, TokenCode="123456"
    )
    assert await caller_arn(child) == READER_ARN + "mfa-static"
    credentials = await credentials_of(child)
    frozen = await credentials.get_frozen_credentials()
    if stale_by == "invalidate":
        # Still valid: the failed refresh is logged and the credentials are served.
        credentials.invalidate()
        assert await caller_arn(child) == READER_ARN + "mfa-static"
        await sleep_until(expiry_of(credentials) + 0.05)
    else:
        await sleep_until(expiry_of(credentials) + 0.05)
    with pytest.raises(RefreshWithMFAUnsupportedError) as caught:
        await caller_arn(child)
    assert "TokenCode" in str(caught.value)
    assert "callable" in str(caught.value)
    assert [call.params.get("TokenCode") for call in assume_role_calls(sts)] == ["123456"]
    assert_no_secrets(exception_texts(caught.value), secrets_of(frozen))


async def test_r8_serial_number_without_token_code_fails_clearly_on_first_use(
    parent: Any, sts: LoopbackSTS
) -> None:
    child = await assume_role(parent, ROLE_A, RoleSessionName="no-code", SerialNumber=MFA_SERIAL)
    with pytest.raises(RefreshWithMFAUnsupportedError) as caught:
        await caller_arn(child)
    assert "TokenCode" in str(caught.value)
    assert "SerialNumber" in str(caught.value)
    assert sts.assume_role_count == 0


# --- R9: ExpiredToken from a service marks the credentials stale ------------------------------


class PreloadedCache(MutableMapping[str, Any]):
    """A cache left by an earlier process: one AssumeRole response, found under any key.

    The response holds real credentials from the loopback STS whose Expiration says an
    hour from now, while the server already treats them as expired (a revoked session,
    or a clock that disagrees with the service's): only the service's ExpiredToken tells.
    """

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.writes: list[dict[str, Any]] = []

    def __getitem__(self, key: str) -> Any:
        return self.response

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append(value)

    def __delitem__(self, key: str) -> None:
        pass

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 1


async def stale_cache(sts: LoopbackSTS, session_name: str) -> PreloadedCache:
    sts.credential_lifetime = 0.5
    async with AioSession().create_client("sts") as root:
        response = await root.assume_role(RoleArn=ROLE_A, RoleSessionName=session_name)
    sts.credential_lifetime = None  # new credentials from now on live an hour
    claimed = datetime.now(timezone.utc) + timedelta(hours=1)
    response["Credentials"]["Expiration"] = claimed.isoformat()
    await anyio.sleep(0.6)
    return PreloadedCache(response)


@pytest.mark.parametrize("loaded", ["before the request", "by the request"])
async def test_r9_expired_token_from_the_service_makes_the_next_request_refresh(
    sts: LoopbackSTS, loaded: str
) -> None:
    cache = await stale_cache(sts, "r9")
    stale_key = cache.response["Credentials"]["AccessKeyId"]
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="r9", cache=cache)
    credentials = await credentials_of(child)
    if loaded == "before the request":
        assert (await credentials.get_frozen_credentials()).access_key == stale_key
    assert sts.assume_role_count == 1  # only the one that filled the cache

    async with client(child, "sts", config=ONE_ATTEMPT) as api:
        with pytest.raises(ClientError) as caught:
            await api.get_caller_identity()
        assert error_code(caught.value) == "ExpiredToken"
        assert sts.assume_role_count == 1
        assert (await api.get_caller_identity())["Arn"] == READER_ARN + "r9"

    assert sts.assume_role_count == 2
    assert [(call.access_key_id == stale_key, call.outcome) for call in identity_calls(sts)] == [
        (True, "ExpiredToken"),
        (False, "ok"),
    ]
    assert credentials.refresh_stats.invalidations == 1
    assert len(cache.writes) == 1  # the new response replaced the stale one
    stale = cache.response["Credentials"]
    secrets = {stale["SecretAccessKey"], stale["SessionToken"]}
    assert_no_secrets(exception_texts(caught.value), secrets)


async def test_r9_a_late_expired_token_for_old_credentials_keeps_the_new_ones(
    sts: LoopbackSTS,
) -> None:
    cache = await stale_cache(sts, "r9-late")
    stale_key = cache.response["Credentials"]["AccessKeyId"]
    child = await assume_role(make_parent(), ROLE_A, RoleSessionName="r9-late", cache=cache)
    credentials = await credentials_of(child)
    assert (await credentials.get_frozen_credentials()).access_key == stale_key
    async with client(child, "sts", config=TRAFFIC_CONFIG) as api:
        async with anyio.create_task_group() as tasks:
            slow: list[Outcome] = []

            async def slow_request() -> None:
                slow.append(await attempt(api.get_caller_identity))

            sts.latency = 1.0  # this request is signed with the stale key, answered late
            tasks.start_soon(slow_request)
            await anyio.sleep(0.3)
            sts.latency = 0.0
            with pytest.raises(ClientError) as caught:  # marks the stale key stale...
                await api.get_caller_identity()
            assert error_code(caught.value) == "ExpiredToken"
            fresh = await api.get_caller_identity()  # ...so this one refreshes
            assert sts.assume_role_count == 2
        # The slow request's ExpiredToken came after the refresh: it must not discard it.
        (late,) = slow
        assert late.duration >= 0.9
        assert error_code(late.error) == "ExpiredToken"  # type: ignore[arg-type]
        assert (await api.get_caller_identity())["Arn"] == fresh["Arn"] == READER_ARN + "r9-late"
    assert sts.assume_role_count == 2
    assert credentials.refresh_stats.invalidations == 1
    stale_calls = [call.outcome for call in identity_calls(sts) if call.access_key_id == stale_key]
    fresh_calls = [call for call in identity_calls(sts) if call.access_key_id != stale_key]
    assert stale_calls == ["ExpiredToken", "ExpiredToken"]
    assert [call.outcome for call in fresh_calls] == ["ok", "ok"]
    assert {call.access_key_id for call in fresh_calls} == {
        assume_role_calls(sts)[-1].issued_access_key_id
    }


# --- a child whose AssumeRole is refused for its parent's expired credentials --------------
# (issue 20: an instance metadata parent, whose expiry botocore moves 17-25 minutes ahead,
# so that only STS's ExpiredToken tells; hand clock, real HTTP to the loopback STS)


class ParentSource:
    """A parent's source on a hand clock: hands out ``keys`` in order, each claimed valid
    for an hour (as botocore's instance metadata fetcher claims); raises while down."""

    def __init__(self, clock: ManualClock, keys: list[ReadOnlyCredentials]) -> None:
        self.clock = clock
        self.keys = keys
        self.up = True
        self.calls = 0

    async def __call__(self) -> tuple[ReadOnlyCredentials, float]:
        self.calls += 1
        if not self.up:
            raise CredentialRetrievalError(provider="test", error_msg="the source is down")
        return self.keys.pop(0), self.clock.wall() + 3600.0


async def parent_keys(sts: LoopbackSTS) -> list[ReadOnlyCredentials]:
    """Keys STS already treats as expired, then valid ones."""
    keys = []
    async with AioSession().create_client("sts") as root:
        for lifetime in (0.2, None):
            sts.credential_lifetime = lifetime
            issued = (await root.assume_role(RoleArn=ROLE_B, RoleSessionName="parent"))[
                "Credentials"
            ]
            keys.append(
                ReadOnlyCredentials(
                    issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
                )
            )
    await anyio.sleep(0.3)  # past the first keys' expiry at the server
    return keys


def hand_clock_parent(
    clock: ManualClock, source: ParentSource
) -> tuple[AioSession, Refresher[Any]]:
    """A parent session whose credentials are on the engine (as ``stabilize`` puts them),
    on ``clock``; one try per refresh, backoff 2 s."""
    refresher: Refresher[Any] = Refresher(
        source,
        policy=RefreshPolicy(max_tries=1),
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.0,
        classify_error=classify_source_error,
        key_of=lambda credentials: credentials.access_key,
        expiry_margin_seconds=1.0,
    )
    parent = AioSession()
    parent._credentials = SourceCredentials(refresher, "test")  # as stabilize() sets it
    return parent, refresher


def child_calls(sts: LoopbackSTS) -> list[STSCall]:
    return [call for call in assume_role_calls(sts) if call.params.get("RoleArn") == ROLE_A]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (real time: HTTP is answered meanwhile) until ``condition()``."""
    with anyio.fail_after(HANG_SECONDS):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.005)


async def test_a_child_refused_for_its_parents_expired_keys_waits_for_the_parents_renewal(
    sts: LoopbackSTS,
) -> None:
    """STS rejects the child's AssumeRole as ExpiredToken: the parent's keys are expired
    while the parent thinks them valid. The parent is invalidated, and the child's next
    try waits for the parent's renewal (through the parent's backoff) instead of signing
    with the rejected keys again; it has credentials the moment the parent has new ones."""
    clock = ManualClock(wall=time.time())
    expired, fresh = await parent_keys(sts)
    source = ParentSource(clock, [expired, fresh])
    parent, parent_refresher = hand_clock_parent(clock, source)
    child = hand_clock_child(StsClients(parent), clock, ROLE_A, RoleSessionName="waits")
    outcome: list[Outcome] = []
    async with anyio.create_task_group() as tasks:

        async def first_fetch() -> None:
            outcome.append(await attempt(child.get))

        tasks.start_soon(first_fetch)
        # Try 1: signed with the expired keys, ExpiredToken; the parent is marked stale.
        await until(lambda: len(child_calls(sts)) == 1 and len(clock._sleepers) == 1)
        assert child_calls(sts)[0].outcome == "ExpiredToken"
        assert parent_refresher.stats.invalidations == 1
        source.up = False
        await clock.advance(0.25)  # the pause before try 2
        # Try 2 asks the parent for new keys: the source is down, the parent backs off 2 s.
        await until(
            lambda: source.calls == 2 and (len(clock._sleepers) == 2 or len(child_calls(sts)) > 1)
        )
        await clock.advance(0.75)
        source.up = True
        await clock.advance(1.0)
        assert outcome == []
        assert len(child_calls(sts)) == 1  # the rejected keys were not used again
        await clock.advance(0.25)  # the parent's backoff is over: it renews, the child goes on
        await until(lambda: bool(outcome))
    assert outcome[0].error is None, outcome[0].error
    assert clock.mono_now == 2.25
    calls = child_calls(sts)
    assert [(c.access_key_id, c.outcome) for c in calls] == [
        (expired.access_key, "ExpiredToken"),
        (fresh.access_key, "ok"),
    ]
    assert outcome[0].value.access_key == calls[1].issued_access_key_id
    assert (child.stats.attempts, child.stats.failures, child.stats.tries) == (1, 0, 2)
    assert source.calls == 3
    # Keys the parent holds and nobody rejected: a child refused with them waits its own
    # backoff (asking again would meet the same refusal); replaced ones: it goes on.
    assert not parent_refresher.renewal_due(fresh.access_key)
    assert parent_refresher.renewal_due(expired.access_key)


async def test_a_child_backing_off_after_its_parents_keys_were_refused_goes_on_with_the_parent(
    sts: LoopbackSTS,
) -> None:
    """After a refresh failed because STS refused the parent's keys as expired, the child
    does not wait out its own backoff: while the parent holds the refused keys in its own
    backoff, callers get the remembered failure (no AssumeRole); once the parent may
    refresh, the next caller refreshes the parent and then the child at once."""
    clock = ManualClock(wall=time.time())
    expired, fresh = await parent_keys(sts)
    source = ParentSource(clock, [expired, fresh])
    parent, parent_refresher = hand_clock_parent(clock, source)
    policy = RefreshPolicy(max_tries=1, backoff_min_seconds=10.0)
    child = hand_clock_child(StsClients(parent), clock, ROLE_A, RoleSessionName="on", policy=policy)
    with anyio.fail_after(HANG_SECONDS), pytest.raises(ClientError) as caught:
        await child.get()
    assert error_code(caught.value) == "ExpiredToken"
    assert parent_refresher.stats.invalidations == 1
    source.up = False
    await clock.advance(0.1)
    assert (await parent_refresher.get()).access_key == expired.access_key  # backing off
    await clock.advance(0.1)
    # The remembered failure, at once (5 s of real time only catch a wait on the clock).
    with anyio.fail_after(5.0), pytest.raises(ClientError):
        await child.get()
    assert child.stats.fast_failures == 1
    assert len(child_calls(sts)) == 1
    source.up = True
    await clock.advance(2.0)  # the parent's backoff is over; the child's (10 s) is not
    with anyio.fail_after(HANG_SECONDS):
        credentials = await child.get()
    calls = child_calls(sts)
    assert [(c.access_key_id, c.outcome) for c in calls] == [
        (expired.access_key, "ExpiredToken"),
        (fresh.access_key, "ok"),
    ]
    assert credentials.access_key == calls[1].issued_access_key_id
    assert (child.stats.attempts, parent_refresher.stats.attempts) == (2, 3)


# --- R10: observability without leaks --------------------------------------------------------


async def test_r10_refresh_events_are_logged_counted_and_never_leak_secrets(
    parent: Any, sts: LoopbackSTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, botocore's included
    policy = RefreshPolicy(
        # Room for the first fetches (each level's first STS client, with every logger at
        # DEBUG) on a loaded machine, where 0.5 s was once not enough; the trickle fault
        # still ends in the one timeout counted below.
        try_timeout_seconds=2.0,
        max_tries=1,
        backoff_min_seconds=0.05,
        backoff_max_seconds=0.1,
        error_memory_min_seconds=0.05,
        error_memory_max_seconds=0.1,
    )
    child = await assume_role(parent, ROLE_A, RoleSessionName="observed", refresh=policy)
    chained = await assume_role(child, ROLE_B, RoleSessionName="chained", refresh=policy)
    credentials = [await credentials_of(child), await credentials_of(chained)]
    assert await caller_arn(chained) == WRITER_ARN + "chained"
    issued = [await item.get_frozen_credentials() for item in credentials]

    for fault in ["5xx", "throttling", "access_denied", "malformed", "drop", "trickle"]:
        credentials[1].invalidate()
        sts.fail_next(fault)  # type: ignore[arg-type]
        # Static stability: the refresh fails, the still-valid credentials are served.
        assert await caller_arn(chained, config=ONE_ATTEMPT) == WRITER_ARN + "chained"
        await anyio.sleep(0.15)  # past the backoff
    credentials[1].invalidate()
    assert await caller_arn(chained) == WRITER_ARN + "chained"
    issued.append(await credentials[1].get_frozen_credentials())
    credentials[0].invalidate()
    await anyio.sleep(0.05)
    assert await caller_arn(child) == READER_ARN + "observed"
    issued.append(await credentials[0].get_frozen_credentials())
    raised: list[BaseException] = []

    ours = [record for record in caplog.records if record.name.startswith("aio_assume_role_lib")]
    events = Counter(getattr(record, "refresh_event", None) for record in ours)
    assert {"start", "success", "failure", "invalidated"} <= set(events)
    stats = [item.refresh_stats for item in credentials]
    assert events["start"] == sum(s.attempts for s in stats) == sts.assume_role_count
    assert events["success"] == sum(s.successes for s in stats) == 4
    assert events["failure"] == sum(s.failures for s in stats) == 6
    failures = [r for r in ours if getattr(r, "refresh_event", None) == "failure"]
    assert {r.role_arn for r in failures} == {ROLE_B}  # type: ignore[attr-defined]
    assert {r.role_session_name for r in failures} == {"chained"}  # type: ignore[attr-defined]
    assert "AccessDenied" in {r.error_code for r in failures}  # type: ignore[attr-defined]
    assert all(r.seconds_left > 0 for r in failures)  # type: ignore[attr-defined]
    assert events["invalidated"] == sum(s.invalidations for s in stats)
    assert sum(s.timeouts for s in stats) == 1

    secrets = secrets_of(*issued)
    assert len(secrets) == 2 * len(issued)
    secrets.add(sts.root_credentials[1])  # the parent's own key must not show either
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    assert_no_secrets((formatter.format(record) for record in ours), secrets)
    assert_no_secrets([repr(item) for item in credentials] + [repr(child), repr(chained)], secrets)
    assert_no_secrets((text for error in raised for text in exception_texts(error)), secrets)


# --- R2: sharing never keeps parents alive, even after their children fetched ------------


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_r2_dropped_parents_are_collected_with_their_sts_clients(
    sts: LoopbackSTS,
    anyio_backend: str,
    recwarn: pytest.WarningsRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    new_parent = httpx_parent if anyio_backend == "trio" else make_parent

    async def use_and_drop(count: int) -> list[weakref.ref[Any]]:
        refs = []
        for index in range(count):
            parent = new_parent()
            child = await assume_role(parent, ROLE_A, RoleSessionName=f"dropped-{index}")
            # A fetch: the parent now holds an open STS client for this loop.
            await (await credentials_of(child)).get_frozen_credentials()
            refs.append(weakref.ref(parent))
        return refs

    async def collect() -> None:
        for _ in range(3):
            gc.collect()
            await anyio.sleep(0.05)  # the scheduled closes run on this loop

    await use_and_drop(5)  # warm up: service data, modules, first-use caches
    await collect()
    before = len(gc.get_objects())
    refs = await use_and_drop(25)
    await collect()
    after = len(gc.get_objects())
    assert [ref() for ref in refs] == [None] * 25  # every parent collected, loop running
    # A parent kept alive would keep ~27,000 objects; a few hundred in all is noise.
    assert after - before < 2_000, f"{after - before} objects left by 25 parents"
    assert sts.assume_role_count == 30
    assert [w for w in recwarn if "Unclosed" in str(w.message)] == []
    assert [r for r in caplog.records if "Unclosed" in r.getMessage()] == []


# --- issue 20: siblings, rejected credentials, hung file systems, prompts, loops, fork ----


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_a_childs_timed_out_try_leaves_its_siblings_request_alone(
    sts: LoopbackSTS, anyio_backend: str
) -> None:
    # Children of one parent share its STS client. The impatient child's try times out on
    # a hung request while its sibling's request is in flight on the same client: the
    # sibling's request must complete.
    parent = httpx_parent() if anyio_backend == "trio" else make_parent()
    warm = await assume_role(parent, ROLE_A, RoleSessionName="warm")
    await (await credentials_of(warm)).get_frozen_credentials()  # the client is open
    impatient = await assume_role(
        parent,
        ROLE_A,
        RoleSessionName="impatient",
        refresh=RefreshPolicy(try_timeout_seconds=0.5, max_tries=1),
    )
    patient = await assume_role(
        parent, ROLE_B, RoleSessionName="patient", refresh=RefreshPolicy(max_tries=1)
    )
    sts.fail_next("hang")
    outcomes: dict[str, Outcome] = {}

    async def fetch(name: str, child: Any) -> None:
        credentials = await credentials_of(child)
        outcomes[name] = await attempt(credentials.get_frozen_credentials)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fetch, "impatient", impatient)
            for _ in range(3000):  # until the impatient child's request holds the hang
                if not sts.pending_faults:
                    break
                await anyio.sleep(0.01)
            sts.latency = 1.0  # the sibling's request is in flight when the other times out
            tasks.start_soon(fetch, "patient", patient)
    assert isinstance(outcomes["impatient"].error, RefreshTimeoutError)
    assert outcomes["patient"].error is None, repr(outcomes["patient"].error)
    assert outcomes["patient"].duration > 0.5  # it was in flight when the other timed out


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_credentials_rejected_as_expired_are_renewed_within_seconds_of_sts_recovering(
    sts: LoopbackSTS, anyio_backend: str
) -> None:
    # 12-hour credentials rejected by a service while STS is down: the engine retries
    # every few seconds, not on a backoff sized for 11 more hours of validity.
    sts.credential_lifetime = 12 * 3600
    parent = httpx_parent() if anyio_backend == "trio" else make_parent()
    child = await assume_role(
        parent, ROLE_A, RoleSessionName="rejected", refresh=RefreshPolicy(max_tries=1)
    )
    credentials = await credentials_of(child)
    first = await credentials.get_frozen_credentials()
    sts.fail_next("5xx", 10_000)  # STS is down
    assert credentials._refresher.invalidate(first.access_key)  # what ExpiredToken does
    outage = await traffic(
        credentials.get_frozen_credentials, until=time.time() + 15, limit=200, interval=0.1
    )
    assert errors_of(outage) == []  # the rejected key is served meanwhile
    assert {outcome.value.access_key for outcome in outage} == {first.access_key}
    sts.reset()  # STS is back
    recovered = time.time()
    after = await traffic(
        credentials.get_frozen_credentials, until=recovered + 10, limit=100, interval=0.1
    )
    renewed = [o.started for o in after if o.value is not None and o.value != first]
    assert renewed, "no new credentials within 10 s of STS recovering"
    assert renewed[0] - recovered <= 6.0  # a 2-4 s backoff, then one request


class _HungReads(botocore.utils.JSONFileCache):  # type: ignore[misc]
    """botocore's cache on a file system whose reads hang for 3 s."""

    def __contains__(self, cache_key: object) -> bool:
        time.sleep(3)
        return bool(super().__contains__(cache_key))


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
@pytest.mark.parametrize("hung", ["lock file open", "botocore cache read"])
async def test_a_hung_cache_file_system_does_not_hold_the_first_fetch(
    sts: LoopbackSTS, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, hung: str, anyio_backend: str
) -> None:
    cache: Any
    if hung == "lock file open":
        take = _cache._try_lock

        def hung_open(path: str, held: list[int], created: list[str]) -> None:
            time.sleep(3)
            take(path, held, created)

        monkeypatch.setattr(_cache, "_try_lock", hung_open)
        cache = JSONFileCache(tmp_path)
    else:
        cache = _HungReads(working_dir=str(tmp_path))
    child = await assume_role(
        httpx_parent() if anyio_backend == "trio" else make_parent(),
        ROLE_A,
        RoleSessionName="hung-disk",
        cache=cache,
        refresh=RefreshPolicy(try_timeout_seconds=0.5),
    )
    credentials = await credentials_of(child)
    outcome = await attempt(credentials.get_frozen_credentials)
    assert outcome.error is None, repr(outcome.error)
    assert outcome.duration < 1.5  # not the 3 s the file system takes
    assert sts.assume_role_count == 1


@pytest.mark.parametrize("runner", ASYNCIO_AND_TRIO)
def test_a_token_code_prompt_that_timed_out_does_not_keep_the_process_alive(
    sts: LoopbackSTS, runner: str
) -> None:
    # (The same with time by hand, and the thread the prompt runs in: test_token_code_prompt.)
    if runner == "trio":
        parent = (
            "from aiobotocore.config import AioConfig\n"
            "from aiobotocore.httpxsession import HttpxSession\n"
            "parent = AioSession()\n"
            "parent.set_default_client_config(AioConfig(http_session_cls=HttpxSession))\n"
        )
        run = "import trio; trio.run(main)"
    else:
        parent, run = "parent = AioSession()\n", "asyncio.run(main())"
    script = textwrap.dedent(
        f"""
        import asyncio, threading
        from aiobotocore.session import AioSession
        from aio_assume_role_lib import RefreshPolicy, assume_role
        PARENT
        def prompt():
            threading.Event().wait()  # nobody answers

        async def main():
            child = await assume_role(
                parent, {ROLE_A!r}, RoleSessionName="mfa", SerialNumber={MFA_SERIAL!r},
                TokenCode=prompt, refresh=RefreshPolicy(token_code_timeout_seconds=0.2),
            )
            credentials = await child.get_credentials()
            try:
                await credentials.get_frozen_credentials()
            except Exception as error:
                print(type(error).__name__, flush=True)

        {run}
        print("main returned", flush=True)
        """
    ).replace("PARENT\n", parent)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, **sts.environ()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the process did not exit after main() returned: {output}")
    assert process.returncode == 0, output
    assert output.split() == ["RefreshTimeoutError", "main", "returned"]
    assert sts.assume_role_count == 0


# Destroying the tasks left pending makes asyncio and aiohttp complain: that is the point.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_flights_left_in_a_closed_loop_keep_neither_children_nor_parent(
    sts: LoopbackSTS,
) -> None:
    # asyncio only: trio.run() cannot end without cancelling every task it started.
    sts.fail_next("hang", 20)
    refs: list[weakref.ref[Any]] = []
    loop = asyncio.new_event_loop()

    async def start() -> None:
        parent = make_parent()
        refs.append(weakref.ref(parent))
        callers = []  # dropped when start() returns: only the loop references them
        for index in range(20):
            child = await assume_role(parent, ROLE_A, RoleSessionName=f"left-{index}")
            credentials = await credentials_of(child)
            refs.append(weakref.ref(credentials))
            callers.append(asyncio.ensure_future(credentials.get_frozen_credentials()))
        with anyio.fail_after(30):
            for _ in range(3000):  # until every flight is waiting for STS
                if not sts.pending_faults:
                    break
                await asyncio.sleep(0.01)

    loop.run_until_complete(start())
    loop.close()  # without cancelling the flights
    del loop
    for _ in range(3):
        gc.collect()
    assert [ref() for ref in refs] == [None] * 21


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_is_not_stuck_on_locks_or_a_prompt_of_the_parent_process(
    sts: LoopbackSTS,
) -> None:
    from aio_assume_role_lib import _assume

    parent_pid = os.getpid()
    answer = threading.Event()

    def prompt() -> str:
        if os.getpid() == parent_pid:
            answer.wait(HANG_SECONDS)  # the parent process's prompt is never answered
        return "123456"

    parent = make_parent()
    policy = RefreshPolicy(token_code_timeout_seconds=0.3, backoff_min_seconds=0.1)

    async def in_parent() -> None:
        child = await assume_role(
            parent, ROLE_A, SerialNumber=MFA_SERIAL, TokenCode=prompt, refresh=policy
        )
        with pytest.raises(RefreshTimeoutError):
            await (await credentials_of(child)).get_frozen_credentials()
        other = await assume_role(parent, ROLE_B, RoleSessionName="other")
        await (await credentials_of(other)).get_frozen_credentials()

    asyncio.run(in_parent())  # a prompt is left pending, the parent's STS client is open
    shared = parent.__dict__["_aio_assume_role_lib_shared"]
    held = [_assume._create_shared_lock, shared.lock, shared.sts_clients._lock]
    for lock in held:
        lock.acquire()  # as if other threads held them at the fork
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                signal.alarm(20)  # a lock still held would block the loop: end the child

                async def in_child() -> bool:
                    child = await assume_role(
                        parent, ROLE_A, SerialNumber=MFA_SERIAL, TokenCode=prompt, refresh=policy
                    )
                    credentials = await credentials_of(child)
                    await anyio.sleep(0.5)  # past the backoff of the parent's failure
                    mfa = await credentials.get_frozen_credentials()  # a new prompt
                    another = await assume_role(parent, ROLE_B, RoleSessionName="forked")
                    await (await credentials_of(another)).get_frozen_credentials()
                    new_parent = await assume_role(make_parent(), ROLE_B)  # a new table
                    await (await credentials_of(new_parent)).get_frozen_credentials()
                    return bool(mfa.access_key)

                code = 0 if asyncio.run(in_child()) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        for lock in held:
            lock.release()
        answer.set()

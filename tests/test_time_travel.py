"""``aio_assume_role_lib.testing.time_travel``: a service's behaviour in each refresh
window, without sleeping, over real HTTP to the loopback STS.

The "service" is a function that makes an AWS call with a child session, as a request
handler does; what it sees is read from the loopback server's record of calls (which key
signed each request) and from the credentials' counters.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import anyio
import pytest
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from aio_assume_role_lib import AssumeRoleCredentials, RefreshPolicy, assume_role, credentials_of
from aio_assume_role_lib.testing import LoopbackSTS, time_travel

from .conftest import HANG_SECONDS, ROLE_A, make_parent

pytestmark = pytest.mark.anyio


async def handle_request(session: AioSession) -> str:
    """The service under test: one AWS call as the role."""
    async with session.create_client("sts") as sts:
        return (await sts.get_caller_identity())["Arn"]


# Which refresh started and who waited: (advisory, blocking, callers that waited).
WINDOW_COUNTERS = ("advisory_refreshes", "blocking_refreshes", "waits")


def counted_since(credentials: AssumeRoleCredentials, before: dict[str, int]) -> dict[str, int]:
    """The counters that changed since ``before``, and by how much."""
    now = credentials.refresh_stats.as_dict()
    return {name: now[name] - before[name] for name in now if now[name] != before[name]}


def signing_keys(sts: LoopbackSTS) -> list[str | None]:
    return [call.access_key_id for call in sts.calls if call.action == "GetCallerIdentity"]


def issued_keys(sts: LoopbackSTS) -> list[str | None]:
    return [call.issued_access_key_id for call in sts.calls if call.action == "AssumeRole"]


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a background refresh (a bound that only catches a hang)."""
    with anyio.fail_after(HANG_SECONDS):
        while not condition():  # noqa: ASYNC110 - the refresh sets no event we can see
            await anyio.sleep(0.01)


async def test_advisory_one_background_refresh_and_nobody_waits(
    sts: LoopbackSTS, session_kind: str
) -> None:
    parent = make_parent(session_kind)
    child = await assume_role(parent, ROLE_A, RoleSessionName="service")
    botocore_child = child._session if session_kind == "aioboto3" else child
    await handle_request(botocore_child)
    credentials = credentials_of(child)
    (first,) = issued_keys(sts)
    before = credentials.refresh_stats.as_dict()

    moved = time_travel(child, "advisory")
    # The default hour: the advisory window starts 45 to 52 minutes in (jittered).
    earliest, _ = RefreshPolicy().windows(obtained_at=0, expiry=3600, rand=0.0)
    latest, _ = RefreshPolicy().windows(obtained_at=0, expiry=3600, rand=1.0)
    assert earliest - HANG_SECONDS < moved <= latest
    sts.latency = 0.3  # the refresh is slow: requests meanwhile must not wait for it
    await handle_request(botocore_child)
    counted = counted_since(credentials, before)
    assert [counted.get(name, 0) for name in WINDOW_COUNTERS] == [1, 0, 0]
    await until(lambda: credentials.refresh_stats.successes == 2)
    sts.latency = 0.0
    await handle_request(botocore_child)
    (_, second) = issued_keys(sts)
    assert sts.assume_role_count == 2  # one refresh, one STS call
    # The request in the window was signed with the old key, the next with the new one.
    assert signing_keys(sts) == [first, first, second]


async def test_blocking_the_next_request_waits_for_the_new_credentials(
    sts: LoopbackSTS,
) -> None:
    child = await assume_role(AioSession(), ROLE_A, RoleSessionName="service")
    await handle_request(child)
    credentials = credentials_of(child)
    before = credentials.refresh_stats.as_dict()
    time_travel(credentials, "blocking")  # the credentials object works too
    async with anyio.create_task_group() as requests:
        for _ in range(5):
            requests.start_soon(handle_request, child)
    (first, second) = issued_keys(sts)
    assert signing_keys(sts) == [first] + [second] * 5  # all five waited for it
    assert counted_since(credentials, before) == {
        "attempts": 1,
        "blocking_refreshes": 1,
        "tries": 1,
        "successes": 1,
        "waits": 5,
    }
    assert sts.assume_role_count == 2


async def test_expired_a_non_recoverable_error_reaches_the_caller(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A, RoleSessionName="service")
    await handle_request(child)
    time_travel(child, "expired")
    assert credentials_of(child).refresh_needed()
    sts.fail_next("access_denied")
    with pytest.raises(ClientError, match="AccessDenied"):
        await handle_request(child)
    assert [call.outcome for call in sts.calls] == ["ok", "ok", "access_denied"]


async def test_expired_a_transient_failure_serves_the_expired_credentials(
    sts: LoopbackSTS,
) -> None:
    policy = RefreshPolicy(max_tries=1)  # one try: no pause between tries to wait out
    child = await assume_role(AioSession(), ROLE_A, RoleSessionName="service", refresh=policy)
    await handle_request(child)
    time_travel(child, "expired")
    sts.fail_next("5xx")
    # Static stability: the expired credentials are served (the service decides; the
    # loopback STS, whose clock has not moved, accepts them).
    assert (await handle_request(child)).endswith(":assumed-role/Reader/service")
    stats = credentials_of(child).refresh_stats
    assert (stats.failures, stats.served_expired) == (1, 1)


async def test_in_advisory_a_failed_refresh_reaches_nobody(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A, RoleSessionName="service")
    await handle_request(child)
    credentials = credentials_of(child)
    time_travel(child, "advisory")
    sts.fail_next("5xx")
    await handle_request(child)  # starts the refresh in the background
    await until(lambda: credentials.refresh_stats.failures == 1)
    await handle_request(child)  # still fine: the cached credentials are served
    outcomes = [(call.action, call.outcome) for call in sts.calls]
    # (A starved run may reach the next advisory attempt, after the backoff: it succeeds.)
    assert [outcome for action, outcome in outcomes if action == "AssumeRole"][:2] == ["ok", "5xx"]
    assert [outcome for action, outcome in outcomes if action != "AssumeRole"] == ["ok"] * 3
    assert credentials.refresh_stats.served_expired == 0


async def test_travel_back_and_after_an_invalidation(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A, RoleSessionName="service")
    await handle_request(child)
    time_travel(child, "expired")
    assert time_travel(child, "advisory") < 0  # back from expiry to the advisory window
    credentials = credentials_of(child)
    credentials.invalidate()
    time_travel(child, "advisory")  # an invalidated value gets its windows back
    expiry = credentials.expiry_time
    assert expiry is not None
    assert 0 < (expiry - datetime.now(timezone.utc)).total_seconds() <= 3600
    before = credentials.refresh_stats.as_dict()
    await handle_request(child)
    counted = counted_since(credentials, before)
    assert [counted.get(name, 0) for name in WINDOW_COUNTERS] == [1, 0, 0]


async def test_what_cannot_travel_is_a_clear_error(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    with pytest.raises(ValueError, match="nothing is cached yet: make one call"):
        time_travel(child, "advisory")
    with pytest.raises(ValueError, match="advisory, blocking, expired, not 'later'"):
        time_travel(child, "later")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not refreshed by aio_assume_role_lib"):
        time_travel(AioSession(), "expired")
    assert sts.calls == []

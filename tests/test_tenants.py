"""Many tenants on one parent: credentials outlive children, bounds, the repeat-call table,
and every request signed with its own tenant's credentials under load.

Over real HTTP to the loopback STS, which counts AssumeRole calls and answers
GetCallerIdentity with the identity whose key signed the request.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import NoCredentialsError, ParamValidationError

from aio_assume_role_lib import (
    RefreshPolicy,
    _assume,
    assume_role,
    set_sharing_limits,
    sharing_stats,
)
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS, ROLE_A, caller_arn

pytestmark = pytest.mark.anyio


async def use(child: Any) -> str:
    """A tenant's use: its credentials, fetched (or served from cache)."""
    credentials = await child.get_credentials()
    return str((await credentials.get_frozen_credentials()).access_key)


async def test_credentials_outlive_children_no_sts_call_to_rebuild(sts: LoopbackSTS) -> None:
    parent = AioSession()
    set_sharing_limits(parent, max_credentials=100, max_children=5)
    keys: dict[int, str] = {}
    for _ in range(3):
        for tenant in range(30):
            child = await assume_role(parent, ROLE_A, ExternalId=f"tenant-{tenant}")
            key = await use(child)
            assert keys.setdefault(tenant, key) == key
    assert sts.assume_role_count == 30
    stats = sharing_stats(parent)
    assert stats["credentials"] == 30
    assert stats["children"] == 5
    assert stats["credentials_evicted"] == 0
    assert stats["children_evicted"] == 85
    assert stats["children_rebuilt"] == 60


async def test_credentials_beyond_their_limit_are_fetched_again(sts: LoopbackSTS) -> None:
    parent = AioSession()
    set_sharing_limits(parent, max_credentials=10, max_children=10)
    for _ in range(2):
        for tenant in range(15):
            await use(await assume_role(parent, ROLE_A, ExternalId=f"tenant-{tenant}"))
    assert sts.assume_role_count == 30
    stats = sharing_stats(parent)
    assert (stats["credentials"], stats["credentials_evicted"]) == (10, 20)


async def test_children_never_exceed_credentials(sts: LoopbackSTS) -> None:
    parent = AioSession()
    set_sharing_limits(parent, max_credentials=4, max_children=50)
    assert sharing_stats(parent)["max_children"] == 4
    for tenant in range(10):
        await assume_role(parent, ROLE_A, ExternalId=f"tenant-{tenant}")
    assert sharing_stats(parent)["children"] == 4
    # Lowering a limit trims at once.
    set_sharing_limits(parent, max_credentials=2)
    assert sharing_stats(parent)["credentials"] == 2
    assert sharing_stats(parent)["children"] == 2


async def test_default_limits_and_the_process_wide_setting(sts: LoopbackSTS) -> None:
    parent = AioSession()
    stats = sharing_stats(parent)
    assert (stats["max_credentials"], stats["max_children"]) == (10_000, 10_000)
    try:
        set_sharing_limits(max_credentials=300, max_children=20)
        stats = sharing_stats(AioSession())
        assert (stats["max_credentials"], stats["max_children"]) == (300, 20)
        set_sharing_limits(parent, max_children=7)  # a parent's own setting wins
        assert sharing_stats(parent)["max_children"] == 7
    finally:
        set_sharing_limits(
            max_credentials=_assume.DEFAULT_MAX_CREDENTIALS,
            max_children=_assume.DEFAULT_MAX_CHILDREN,
        )


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "10"])
def test_limits_must_be_whole_numbers(value: Any) -> None:
    with pytest.raises(ValueError, match="max_children must be a whole number >= 1"):
        set_sharing_limits(AioSession(), max_children=value)
    with pytest.raises(ValueError, match="max_credentials must be a whole number >= 1"):
        set_sharing_limits(max_credentials=value)


async def test_evictions_are_logged_once_per_burst(
    sts: LoopbackSTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "aio_assume_role_lib.sharing")
    parent = AioSession()
    set_sharing_limits(parent, max_credentials=3, max_children=3)
    for tenant in range(40):
        await assume_role(parent, ROLE_A, ExternalId=f"tenant-{tenant}")
    records = [r for r in caplog.records if r.name == "aio_assume_role_lib.sharing"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "sharing table is full" in records[0].getMessage()
    assert "tenant-" not in records[0].getMessage()


async def test_a_repeat_call_returns_the_same_child_through_the_front_table(
    sts: LoopbackSTS,
) -> None:
    parent = AioSession()
    common = {"RoleSessionName": "svc", "DurationSeconds": 900, "ExternalId": "e-1"}
    first = await assume_role(parent, ROLE_A, **common)
    shared = parent.__dict__[_assume._SHARED_ATTRIBUTE]
    assert len(shared.front) == 1
    assert await assume_role(parent, ROLE_A, **common) is first
    # Values equal in Python but not in meaning do not share an answer.
    with pytest.raises(ParamValidationError):
        await assume_role(parent, ROLE_A, **{**common, "DurationSeconds": 900.0})
    assert await assume_role(parent, ROLE_A, **common, region_name=True) is not first
    await assume_role(parent, ROLE_A, **common, region_name=False)
    with pytest.raises(TypeError, match="region_name"):
        await assume_role(parent, ROLE_A, **common, region_name=0)  # type: ignore[arg-type]
    # Unhashable arguments take the long way and still share the child.
    arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    listed = await assume_role(parent, ROLE_A, PolicyArns=arns)
    assert await assume_role(parent, ROLE_A, PolicyArns=list(arns)) is listed


async def test_a_repeat_call_still_needs_the_parents_credentials(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = AioSession()
    await assume_role(parent, ROLE_A, ExternalId="e-1")
    await assume_role(parent, ROLE_A, ExternalId="e-1")

    async def none() -> None:
        return None

    monkeypatch.setattr(parent, "get_credentials", none)
    with pytest.raises(NoCredentialsError):
        await assume_role(parent, ROLE_A, ExternalId="e-1")


async def test_a_repeat_call_with_region_true_follows_the_parents_region_now(
    sts: LoopbackSTS,
) -> None:
    parent = AioSession()
    parent.set_config_variable("region", "eu-west-1")
    first = await assume_role(parent, ROLE_A, region_name=True)
    assert await assume_role(parent, ROLE_A, region_name=True) is first
    parent.set_config_variable("region", "ap-south-1")
    moved = await assume_role(parent, ROLE_A, region_name=True)
    assert moved is not first
    assert moved.get_config_variable("region") == "ap-south-1"
    assert first.get_config_variable("region") == "eu-west-1"


async def test_a_repeat_call_validates_as_the_first_did(sts: LoopbackSTS) -> None:
    parent = AioSession()
    await assume_role(parent, ROLE_A, ExternalId="bad id!", validate=False)
    # Same arguments, now validated: the unvalidated call's entry is not an answer.
    with pytest.raises(ParamValidationError, match="ExternalId"):
        await assume_role(parent, ROLE_A, ExternalId="bad id!")


TENANTS = 600
PATIENT = RefreshPolicy(try_timeout_seconds=HANG_SECONDS, attempt_timeout_seconds=HANG_SECONDS)
TASKS = 200
ROUNDS = 2


async def test_every_request_is_signed_by_its_own_tenant_under_load(sts: LoopbackSTS) -> None:
    """600 tenants (a session name each; an ExternalId for each pair of them, so that a
    mix-up of either argument shows), 200 concurrent tasks, 2 rounds in a shuffled order, over small tables (credentials and children dropped and rebuilt while
    requests run): every GetCallerIdentity answers with the requesting tenant's identity,
    and STS saw each AssumeRole with that tenant's ExternalId. (The 10,000-tenant run is
    benchmark T1.)

    The first fetches of 200 tasks queue for the parent's STS client's connections; on a
    loaded machine that wait can pass the 10 s try timeout, and a timed-out try (issue
    20, D1) closes the STS client under its siblings' requests. This test is about who
    signs, not deadlines: tries get HANG_SECONDS.
    """
    parent = AioSession()
    parent.set_default_client_config(AioConfig(max_pool_connections=50))
    set_sharing_limits(parent, max_credentials=400, max_children=50)
    work = [tenant for _ in range(ROUNDS) for tenant in range(TENANTS)]
    random.Random(7).shuffle(work)
    wrong: list[tuple[int, str]] = []

    async def request(tenant: int) -> None:
        child = await assume_role(
            parent,
            ROLE_A,
            RoleSessionName=f"tenant-{tenant}",
            ExternalId=f"external-{tenant // 2}",
            DurationSeconds=900,
            refresh=PATIENT,
        )
        if tenant % 20 == 0:  # a real signed request now and then
            arn = await caller_arn(child)
            if not arn.endswith(f"/tenant-{tenant}"):
                wrong.append((tenant, arn))
        else:
            await use(child)

    async def worker(queue: list[int]) -> None:
        while queue:
            await request(queue.pop())

    async with anyio.create_task_group() as group:
        for _ in range(TASKS):
            group.start_soon(worker, work)
    assert wrong == []
    for call in sts.calls:
        if call.action == "AssumeRole":
            tenant = int(call.params["RoleSessionName"].removeprefix("tenant-"))
            assert call.params["ExternalId"] == f"external-{tenant // 2}"
    # Every tenant's key, each its own (pairs that share an ExternalId included), and a
    # tenant's key always signs as that tenant.
    keys = {}
    for tenant in [t for t in range(TENANTS) if t % 10 in (0, 1)]:
        child = await assume_role(
            parent,
            ROLE_A,
            RoleSessionName=f"tenant-{tenant}",
            ExternalId=f"external-{tenant // 2}",
            DurationSeconds=900,
            refresh=PATIENT,
        )
        keys[tenant] = await use(child)
    assert len(set(keys.values())) == len(keys)
    identities = {call.access_key_id: call.caller_arn for call in sts.calls}
    for tenant, key in keys.items():
        if key in identities:
            assert str(identities[key]).endswith(f"/tenant-{tenant}")

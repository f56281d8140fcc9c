"""``credentials_of()``: a session's credentials object, typed, without an await.

Over real HTTP to the loopback STS. The typing half (what mypy infers) is in
tests/typing/test_assume_role_types.py and tests/typing/test_aioboto3_types.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import AssumeRoleCredentials, RefreshStats, assume_role, credentials_of
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import ROLE_A, ROLE_B, make_parent

pytestmark = pytest.mark.anyio


async def test_the_object_every_request_of_the_child_is_signed_with(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await assume_role(make_parent(session_kind), ROLE_A, RoleSessionName="typed")
    credentials = credentials_of(child)
    assert isinstance(credentials, AssumeRoleCredentials)
    assert credentials.role_arn == ROLE_A
    # Nothing fetched yet: credentials_of() makes no STS call.
    assert credentials.expiry_time is None
    assert sts.assume_role_count == 0
    async with (
        child.client("sts") if session_kind == "aioboto3" else child.create_client("sts") as client
    ):
        identity = await client.get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/Reader/typed")
    assert credentials.refresh_stats.successes == 1
    assert credentials.expiry_time is not None
    # The same object the session's own (untyped) accessor gives.
    botocore_child = child._session if session_kind == "aioboto3" else child
    assert credentials is await botocore_child.get_credentials()
    assert credentials_of(child, AssumeRoleCredentials) is credentials


async def test_each_level_of_a_chain_has_its_own(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    grandchild = await assume_role(child, ROLE_B)
    assert credentials_of(grandchild).role_arn == ROLE_B
    assert credentials_of(child).role_arn == ROLE_A
    assert credentials_of(await assume_role(AioSession(), ROLE_A)) is not credentials_of(child)


async def test_a_session_the_library_does_not_refresh_is_a_type_error(
    sts: LoopbackSTS, session_kind: str
) -> None:
    parent = make_parent(session_kind)
    with pytest.raises(TypeError, match=r"not refreshed by aio_assume_role_lib.*assume_role\(\)"):
        credentials_of(parent)
    assert sts.calls == []


@pytest.mark.parametrize("not_a_session", [None, "default", object(), {"session": 1}])
def test_what_is_not_a_session_is_a_type_error(not_a_session: Any) -> None:
    with pytest.raises(TypeError, match=r"takes an aiobotocore.session.AioSession or an aioboto3"):
        credentials_of(not_a_session)


async def test_a_kind_other_than_the_session_has_is_a_type_error(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    with pytest.raises(TypeError, match=r"is of type AssumeRoleCredentials, not RefreshStats"):
        credentials_of(child, RefreshStats)

# mypy: warn-unreachable
"""What a user's ``mypy --strict`` infers from ``assume_role`` with an ``aioboto3.Session``.

Stack S2 only (aioboto3 does not install beside aiobotocore 3.x), with types-aioboto3 and
boto3-stubs; checked by mypy, not run by pytest (aioboto3 is imported for type checkers
only, so that pytest on stack S1 can import this module). See test_assume_role_types.py.

    mypy --strict src tests/typing/test_aioboto3_types.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiobotocore.session import AioSession
from typing_extensions import assert_type

from aio_assume_role_lib import (
    AssumeRoleCredentials,
    JSONFileCache,
    assume_role,
    credentials_of,
    patch_aioboto3,
)

if TYPE_CHECKING:
    import aioboto3
    from types_aiobotocore_s3.service_resource import S3ServiceResource
    from types_aiobotocore_sts.client import STSClient

ROLE = "arn:aws:iam::123456789012:role/Reader"


async def check_a_child_is_an_aioboto3_session(parent: aioboto3.Session) -> None:
    child = await assume_role(parent, ROLE)
    assert_type(child, aioboto3.Session)
    grandchild = await assume_role(child, ROLE, cache=JSONFileCache("cache"), region_name=True)
    assert_type(grandchild, aioboto3.Session)
    async with grandchild.client("sts") as sts:
        assert_type(sts, STSClient)
        assert_type((await sts.get_caller_identity())["Arn"], str)
    async with grandchild.resource("s3") as s3:
        assert_type(s3, S3ServiceResource)
    # types-aioboto3 15.5 types get_credentials() as returning the credentials; it returns
    # a coroutine (boto3's method, calling aiobotocore's async one). When the stubs are
    # fixed, this ignore becomes unused and mypy says so.
    credentials = await child.get_credentials()  # type: ignore[misc]
    assert_type(credentials, Any)
    # credentials_of() is the typed way to the same object, without an await.
    typed = credentials_of(child)
    assert_type(typed, AssumeRoleCredentials)
    assert_type(typed.refresh_stats.successes, int)


async def check_the_botocore_session_of_a_child(parent: aioboto3.Session) -> None:
    # aioboto3's own botocore session stays an AioSession, and makes AioSession children.
    child = await assume_role(parent, ROLE)
    assert_type(await assume_role(child._session, ROLE), AioSession)


async def check_the_patched_method(parent: aioboto3.Session) -> None:
    patch_aioboto3()
    # Added at run time: type checkers do not see it (docs/faq.md).
    child = await parent.assume_role(ROLE)  # type: ignore[attr-defined]
    assert_type(child, Any)


def check_stabilize_keeps_an_aioboto3_session(parent: aioboto3.Session) -> None:
    from aio_assume_role_lib import stabilize

    assert_type(stabilize(parent), aioboto3.Session)

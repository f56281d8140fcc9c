# mypy: warn-unreachable
"""What a user's ``mypy --strict`` infers from ``ClientPool`` with types-aiobotocore installed.

Checked by mypy, not run by pytest (nothing here is a test function, and the stub
packages are imported for type checkers only):

    python3 dev.py test               # runs mypy on both stacks, with the stub groups
    mypy --strict src tests/typing/test_pool_types.py
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiobotocore.session import AioSession
from typing_extensions import assert_type

from aio_assume_role_lib import ClientPool, assume_role

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.service_resource import S3ServiceResource
    from types_aiobotocore_sts.client import STSClient


async def check_clients_are_typed_per_service(parent: AioSession) -> None:
    child = await assume_role(parent, "arn:aws:iam::123456789012:role/Reader")
    assert_type(child, AioSession)
    async with ClientPool(max_clients=8) as pool:
        assert_type(pool, ClientPool)
        async with pool.client(child, "s3") as s3:
            assert_type(s3, S3Client)
            buckets = await s3.list_buckets()
            assert_type(buckets["Buckets"][0]["Name"], str)
        async with pool.client(child, "sts", region_name="eu-west-1") as sts:
            assert_type(sts, STSClient)
            identity = await sts.get_caller_identity()
            assert_type(identity["Arn"], str)
        async with pool.tenant_client(child, "s3", region_name="eu-west-1") as tenant_s3:
            assert_type(tenant_s3, S3Client)  # a view of a shared client, typed as one
            objects = await tenant_s3.list_objects_v2(Bucket="reports")
            assert_type(objects["KeyCount"], int)
            paginator = tenant_s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket="reports"):
                assert_type(page["KeyCount"], int)
        # A service name that is not a literal: the client is Any, as with create_client.
        service: str = "s3"
        async with pool.client(child, service) as anything:
            assert_type(anything, Any)
        async with pool.tenant_client(child, service) as anything_shared:
            assert_type(anything_shared, Any)


async def check_resources_are_typed_per_service(aioboto3_session: Any) -> None:
    async with ClientPool() as pool, pool.resource(aioboto3_session, "s3") as s3:
        assert_type(s3, S3ServiceResource)


def check_settings_are_typed() -> None:
    pool = ClientPool(max_clients=64, idle_timeout=None, clock=lambda: 0.0)
    assert_type(pool.open_clients, int)
    assert_type(pool.clients_opened, int)
    ClientPool(max_clients="64")  # type: ignore[arg-type]

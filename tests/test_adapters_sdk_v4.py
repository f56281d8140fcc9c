"""The AWS SDK for Python v4 adapter (``adapters.sdk_v4.CredentialsResolver``) against
the real SDK: ``aws-sdk-sts``'s ``AsyncSTSClient`` (query protocol) talking to the
loopback STS, which verifies every signature.

Python >= 3.12 only, like the SDK: dev.py runs this file in the s3 environment; on the
3.10/3.11 stacks it is skipped at import.
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from . import test_docs
from .conftest import ROLE_A, caller_arn

pytest.importorskip("aws_sdk_sts", reason="the AWS SDK for Python v4 needs Python >= 3.12")

from aws_sdk_sts.client import AsyncSTSClient
from aws_sdk_sts.config import AsyncSTSConfig
from aws_sdk_sts.models import GetCallerIdentityInput

from aio_assume_role_lib.adapters.sdk_v4 import CredentialsResolver

pytestmark = pytest.mark.anyio

# test_docs.py's fixture: the reader's environment (loopback STS and S3, ROLE_ARN, ...).
docs_environment = test_docs.docs_environment


async def sts_client(sts: LoopbackSTS, resolver: Any) -> AsyncSTSClient:
    config = await AsyncSTSConfig.resolve(
        region="us-east-1",
        endpoint_uri=sts.endpoint_url,
        aws_credentials_identity_resolver=resolver,
    )
    return AsyncSTSClient(config=config)


async def test_sdk_v4_client_acts_as_the_childs_role(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    async with await sts_client(sts, CredentialsResolver(child)) as client:
        first = await client.get_caller_identity(GetCallerIdentityInput())
        second = await client.get_caller_identity(GetCallerIdentityInput())
    assert first.arn == second.arn == await caller_arn(child)
    assert first.arn is not None
    assert first.arn.startswith("arn:aws:sts::111111111111:")
    # The SDK's client, and the child's own client, share one fetch.
    assert sts.assume_role_count == 1
    assert [c.outcome for c in sts.calls if c.action == "GetCallerIdentity"] == ["ok"] * 3


async def test_sdk_v4_identity_carries_the_expiry(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    resolver = CredentialsResolver(child)
    identity = await resolver.get_identity(properties={})
    credentials = await child.get_credentials()
    frozen = await credentials.get_frozen_credentials()
    assert identity.access_key_id == frozen.access_key
    assert identity.secret_access_key == frozen.secret_key
    assert identity.session_token == frozen.token
    assert identity.expiration == credentials.expiry_time
    assert not identity.is_expired
    # Same credentials, same identity object: no allocation per request.
    assert await resolver.get_identity(properties={}) is identity
    assert frozen.secret_key not in repr(resolver)


async def test_sdk_v4_config_copies_share_the_refresher(sts: LoopbackSTS) -> None:
    """The SDK deep-copies its config for each client: the copies must not fetch alone."""
    child = await assume_role(AioSession(), ROLE_A)
    resolver = CredentialsResolver(child)
    assert copy.deepcopy(resolver) is resolver
    assert copy.copy(resolver) is resolver
    for _ in range(3):
        async with await sts_client(sts, resolver) as client:
            await client.get_caller_identity(GetCallerIdentityInput())
    assert sts.assume_role_count == 1


async def test_sdk_v4_invalidate_brings_new_credentials(sts: LoopbackSTS) -> None:
    child = await assume_role(AioSession(), ROLE_A)
    resolver = CredentialsResolver(child)
    before = await resolver.get_identity(properties={})
    await resolver.invalidate()
    after = await resolver.get_identity(properties={})
    assert after.access_key_id != before.access_key_id
    assert sts.assume_role_count == 2
    # A burst of invalidations right after makes no further refresh (minimum interval).
    await resolver.invalidate()
    assert (await resolver.get_identity(properties={})).access_key_id == after.access_key_id
    assert sts.assume_role_count == 2


async def test_sdk_v4_refuses_sessions_the_library_does_not_refresh(sts: LoopbackSTS) -> None:
    with pytest.raises(TypeError, match=r"CredentialsResolver needs a session whose credentials"):
        CredentialsResolver(AioSession())
    assert sts.calls == []


def test_sdk_v4_without_smithy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smithy_aws_core.identity", None)
    monkeypatch.delitem(sys.modules, "aio_assume_role_lib.adapters.sdk_v4")
    with pytest.raises(ImportError, match=r"pip install 'aio-assume-role-lib\[sdk-v4\]'"):
        importlib.import_module("aio_assume_role_lib.adapters.sdk_v4")


def test_docs_sdk_v4_program_runs(docs_environment: LoopbackSTS) -> None:
    """docs/other-clients.md's SDK v4 program (``requires: aws_sdk_sts``: skipped by
    test_docs.py on the 3.10/3.11 stacks) runs here, where the SDK is installed."""
    blocks = [
        block
        for block in test_docs.BLOCKS_OF[test_docs.DOCS / "other-clients.md"]
        if "aws_sdk_sts" in block.requirements
    ]
    assert len(blocks) == 1
    test_docs.run_example(blocks[0], {"__name__": "__docs__"}, docs_environment)

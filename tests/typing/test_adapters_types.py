# mypy: warn-unreachable
"""What a user's ``mypy --strict`` sees of the adapters, against the real packages:
httpx's and httpx2's ``Auth``, obstore's ``S3CredentialProvider`` and the AWS SDK for
Python v4's ``IdentityResolver`` (stack s3, Python >= 3.12, where all of them install).

Checked by mypy, not run by pytest (nothing here is a test function).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing_extensions import assert_type

# Imported for mypy only: pytest collects this file on every stack, where most of these
# packages are missing (nothing here runs).
if TYPE_CHECKING:
    import httpx
    import httpx2
    from aiobotocore.session import AioSession
    from aws_sdk_sts.client import AsyncSTSClient
    from aws_sdk_sts.config import AsyncSTSConfig
    from aws_sdk_sts.models import GetCallerIdentityInput
    from botocore.credentials import ReadOnlyCredentials
    from obstore.store import S3Credential, S3CredentialProvider, S3Store
    from smithy_aws_core.identity import AWSCredentialsIdentity, AWSIdentityProperties
    from smithy_core.aio.interfaces.identity import IdentityResolver

    from aio_assume_role_lib import assume_role
    from aio_assume_role_lib.adapters import httpx as httpx_adapter
    from aio_assume_role_lib.adapters import httpx2 as httpx2_adapter
    from aio_assume_role_lib.adapters.obstore import credential_provider
    from aio_assume_role_lib.adapters.sdk_v4 import CredentialsResolver
    from aio_assume_role_lib.adapters.sync import SyncCredentials


async def check_adapters_fit_their_consumers(parent: AioSession) -> None:
    child = await assume_role(parent, "arn:aws:iam::123456789012:role/Reader")

    auth: httpx.Auth = httpx_adapter.SigV4Auth(child, "s3", region="us-east-1")
    async with httpx.AsyncClient(auth=auth) as client:
        assert_type(await client.get("https://example.com"), httpx.Response)
    auth2: httpx2.Auth = httpx2_adapter.SigV4Auth(child, "bedrock")
    async with httpx2.AsyncClient(auth=auth2) as client2:
        assert_type(await client2.get("https://example.com"), httpx2.Response)

    provider: S3CredentialProvider = credential_provider(child)
    S3Store("bucket", credential_provider=provider)
    assert_type(await credential_provider(child)(), S3Credential)

    resolver: IdentityResolver[AWSCredentialsIdentity, AWSIdentityProperties]
    resolver = CredentialsResolver(child)
    config = await AsyncSTSConfig.resolve(
        region="us-east-1", aws_credentials_identity_resolver=resolver
    )
    async with AsyncSTSClient(config=config) as sts:
        await sts.get_caller_identity(GetCallerIdentityInput())
    identity = await CredentialsResolver(child).get_identity(properties={})
    assert_type(identity, AWSCredentialsIdentity)

    credentials = SyncCredentials(child)
    assert_type(credentials(), ReadOnlyCredentials)

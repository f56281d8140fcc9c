"""An identity resolver for the AWS SDK for Python v4 (``pip install
'aio-assume-role-lib[sdk-v4]'``, Python >= 3.12): :class:`CredentialsResolver`.

The SDK's clients (``aws-sdk-sts``, ``aws-sdk-bedrock-runtime``, ...) take it as
``aws_credentials_identity_resolver=`` in their config::

    config = await AsyncSTSConfig.resolve(
        region="us-east-1", aws_credentials_identity_resolver=CredentialsResolver(child)
    )
"""

from __future__ import annotations

import sys
from typing import Any, cast

from ._core import get_with_expiry, missing_extra

if sys.version_info < (3, 12):  # pragma: no cover - tested on the 3.12+ stack only
    raise ImportError(
        "aio_assume_role_lib.adapters.sdk_v4 needs Python >= 3.12, like the AWS SDK for "
        "Python v4 (smithy-aws-core), and pip install 'aio-assume-role-lib[sdk-v4]'"
    )
try:
    from smithy_aws_core.identity import AWSCredentialsIdentity, AWSIdentityProperties
except ImportError as error:  # pragma: no cover - tested in a subprocess
    raise missing_extra("sdk_v4", "sdk-v4", "smithy-aws-core") from error

from botocore.credentials import ReadOnlyCredentials

from .._refreshed import refreshed_credentials

__all__ = ["CredentialsResolver"]


class CredentialsResolver:
    """The SDK v4's ``aws_credentials_identity_resolver``, fed by a session's refresher.

    Args:
        session: a session whose credentials aio_assume_role_lib refreshes (what
            ``assume_role`` returns); a TypeError otherwise.

    ``get_identity`` returns an ``AWSCredentialsIdentity`` with the credentials'
    ``expiration``; it awaits the session's one refresher, so the SDK's clients, the
    session's own clients and the other adapters share one refresh per lifetime.
    ``invalidate()`` (the SDK's hook to drop a cached identity) marks the credentials
    held stale, at most once per ``RefreshPolicy.invalidation_min_interval_seconds``.
    """

    __slots__ = ("_credentials", "_last", "_refresher")

    def __init__(self, session: Any) -> None:
        self._credentials = refreshed_credentials(session, consumer="CredentialsResolver")
        self._refresher = self._credentials._refresher
        # The identity built for the credentials returned last: the same credentials
        # give the same (immutable in practice) identity, without a new object per call.
        self._last: tuple[ReadOnlyCredentials, AWSCredentialsIdentity] | None = None

    async def get_identity(self, *, properties: AWSIdentityProperties) -> AWSCredentialsIdentity:
        last = self._last
        if last is not None:
            credentials = await self._refresher.get()
            if credentials is last[0]:
                return last[1]
        credentials, expiration = await get_with_expiry(self._refresher)
        identity = AWSCredentialsIdentity(
            # Never None: the engine refuses answers without both keys.
            access_key_id=cast(str, credentials.access_key),
            secret_access_key=cast(str, credentials.secret_key),
            session_token=credentials.token,
            expiration=expiration,
        )
        self._last = (credentials, identity)
        return identity

    async def invalidate(self) -> None:
        current = self._refresher._current
        if current is not None:
            self._refresher.invalidate(current.value.access_key)

    # The SDK's clients deep-copy their config (and with it this resolver) when they set
    # up: a copy must share the session's refresher, not make a second one.
    def __copy__(self) -> CredentialsResolver:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> CredentialsResolver:
        return self

    def __repr__(self) -> str:
        return f"<CredentialsResolver {self._refresher.description}>"

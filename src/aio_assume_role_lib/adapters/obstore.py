"""Credentials for obstore's ``S3Store`` (``pip install 'aio-assume-role-lib[obstore]'``).

``S3Store(bucket, credential_provider=credential_provider(session))``: obstore awaits the
provider when it needs credentials and asks again 5 minutes before the ``expires_at`` it
was given (on every request once inside those 5 minutes, where the engine's advisory
refresh is already under way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ._core import get_with_expiry, missing_extra

try:
    import obstore  # noqa: F401 - the extra's presence is what is checked
except ImportError as error:  # pragma: no cover - tested in a subprocess
    raise missing_extra("obstore", "obstore", "obstore") from error

from .._refreshed import refreshed_credentials

if TYPE_CHECKING:
    from obstore.store import S3Credential

__all__ = ["ObstoreCredentialProvider", "credential_provider"]


class ObstoreCredentialProvider:
    """An async credential provider for ``obstore.store.S3Store`` (see
    :func:`credential_provider`)."""

    __slots__ = ("_refresher",)

    def __init__(self, session: Any) -> None:
        credentials = refreshed_credentials(session, consumer="obstore credential_provider")
        self._refresher = credentials._refresher

    async def __call__(self) -> S3Credential:
        credentials, expires_at = await get_with_expiry(self._refresher)
        return {
            # Never None: the engine refuses answers without both keys.
            "access_key_id": cast(str, credentials.access_key),
            "secret_access_key": cast(str, credentials.secret_key),
            "token": credentials.token,
            "expires_at": expires_at,
        }

    def __repr__(self) -> str:
        return f"<obstore credential_provider {self._refresher.description}>"


def credential_provider(session: Any) -> ObstoreCredentialProvider:
    """An async callable for ``S3Store(credential_provider=...)`` that returns a session's
    refreshed credentials with their expiry.

    Args:
        session: a session whose credentials aio_assume_role_lib refreshes (what
            ``assume_role`` returns); a TypeError otherwise.

    It returns obstore's credential mapping (``access_key_id``, ``secret_access_key``,
    ``token``, ``expires_at``), read from the session's one refresher: obstore, the
    session's own clients and the other adapters share one refresh per lifetime.
    """
    return ObstoreCredentialProvider(session)

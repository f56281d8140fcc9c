"""The one door from a session to the credentials the library refreshes for it.

The adapters (``aio_assume_role_lib.adapters``) feed consumers other than botocore from a
session's refresher. They reach it only through :func:`refreshed_credentials`, so that a
new kind of refreshed session (a parent after ``stabilize``) plugs in here and nowhere
else.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from ._credentials import CREDENTIALS_ATTRIBUTE, AssumeRoleCredentials
from ._refresh import Refresher


class RefreshedCredentials(Protocol):
    """What an adapter needs from a session's credentials object."""

    @property
    def _refresher(self) -> Refresher[ReadOnlyCredentials]: ...

    def invalidate(self, access_key: str | None = None) -> bool: ...


# Credentials objects the library refreshes. (The credentials of a parent after
# stabilize() join this tuple when that lands.)
_REFRESHED_TYPES: tuple[type, ...] = (AssumeRoleCredentials,)


def _botocore_session(session: Any) -> AioSession | None:
    if isinstance(session, AioSession):
        return session
    inner = getattr(session, "_session", None)  # an aioboto3.Session
    return inner if isinstance(inner, AioSession) else None


def refreshed_credentials(session: Any, *, consumer: str) -> RefreshedCredentials:
    """The refresher-backed credentials object of ``session``.

    ``session`` is an ``AioSession`` or ``aioboto3.Session`` whose credentials the library
    refreshes (a child of ``assume_role``). Anything else is a TypeError naming
    ``consumer`` (the adapter asking) and what to pass instead: a plain session's
    credentials would not be refreshed by the engine, so silently reading them once
    would hand the consumer credentials that expire under it.
    """
    botocore_session = _botocore_session(session)
    if botocore_session is not None:
        # Where credentials_of() looks too: the resolver names the library's object.
        resolver = botocore_session.get_component("credential_provider")
        held = getattr(resolver, CREDENTIALS_ATTRIBUTE, None)
        if isinstance(held, _REFRESHED_TYPES):
            return cast(RefreshedCredentials, held)
    raise TypeError(
        f"{consumer} needs a session whose credentials aio_assume_role_lib refreshes "
        "(the session returned by `await assume_role(parent, role_arn)`), "
        f"not {type(session).__name__}"
        + (" with credentials the library does not refresh" if botocore_session else "")
    )

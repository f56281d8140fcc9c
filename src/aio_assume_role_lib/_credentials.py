"""The credentials object aiobotocore's signer sees, and the ExpiredToken hook (R9).

aiobotocore awaits ``get_frozen_credentials()`` on every request; here that is the
refresher's hot path and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from ._refresh import Refresher, RefreshPolicy, RefreshStats

# Error codes with which AWS services say "the security token is expired". Not
# RequestExpired: that one says the request's timestamp is off (clock skew), and new
# credentials would not help.
EXPIRED_TOKEN_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})


class AssumeRoleCredentials(AioRefreshableCredentials):
    """Refreshing credentials of an assumed role, shared by every child with the same arguments.

    Use ``await get_frozen_credentials()`` for a consistent access key, secret key and
    token. ``refresh_stats`` holds counters of refresh attempts, successes, failures and
    waits; ``expiry_time`` is when the current credentials expire.

    It is an ``AioRefreshableCredentials`` so that code which checks for one, or calls
    botocore's helpers on it, keeps working; the timing, locking and fetching are all the
    refresher's, none of botocore's. Like aiobotocore's, the plain ``access_key``,
    ``secret_key`` and ``token`` attributes raise: they could be stale.
    """

    method = "assume-role"

    def __init__(self, refresher: Refresher[ReadOnlyCredentials], role_arn: str) -> None:
        # botocore's __init__ would set up its own refresh timing, lock and values: none
        # of that is used here.
        self._refresher = refresher
        self.role_arn = role_arn

    # aiobotocore makes botocore's sync method a coroutine; its stubs ignore the same error.
    async def get_frozen_credentials(self) -> ReadOnlyCredentials:  # type: ignore[override]
        return await self._refresher.get()

    async def _refresh(self) -> None:
        await self._refresher.get()

    # ReadOnlyCredentials allows None for each field; an AssumeRole response (checked by
    # the fetcher) always has all three.
    async def get_access_key(self) -> str:
        return cast(str, (await self._refresher.get()).access_key)

    async def get_secret_key(self) -> str:
        return cast(str, (await self._refresher.get()).secret_key)

    async def get_token(self) -> str:
        return cast(str, (await self._refresher.get()).token)

    async def get_account_id(self) -> str | None:
        return getattr(await self._refresher.get(), "account_id", None)

    @property
    def expiry_time(self) -> datetime | None:
        """When the current credentials expire (UTC), or None before the first fetch."""
        expiry = self._refresher.expiry
        return None if expiry is None else datetime.fromtimestamp(expiry, timezone.utc)

    @property
    def refresh_policy(self) -> RefreshPolicy:
        return self._refresher.policy

    @property
    def refresh_stats(self) -> RefreshStats:
        return self._refresher.stats

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        """True when the credentials expire within ``refresh_in`` seconds (default: now)."""
        expiry = self._refresher.expiry
        return expiry is None or self._refresher.now() + (refresh_in or 0) >= expiry

    def invalidate(self, access_key: str | None = None) -> bool:
        """Make the next request wait for new credentials (and serve these if that fails).

        With ``access_key``, only if the credentials held have that access key (a service
        rejected it). Returns whether anything was invalidated.
        """
        current = self._refresher._current
        if current is None:
            return False
        if access_key is None:  # the caller's own decision: no minimum interval
            return self._refresher.invalidate(current.value.access_key, min_interval=0.0)
        return self._refresher.invalidate(access_key)

    def __repr__(self) -> str:
        expiry = self.expiry_time
        return (
            f"<AssumeRoleCredentials role={self.role_arn!r} "
            f"expires={expiry.isoformat() if expiry else None}>"
        )


# How credentials_of() finds the library's credentials object of a session, without an
# await: the session's ``credential_provider`` component (a child's fixed resolver, or
# what stabilize() installs) names it in this attribute. Any kind of credentials object
# the library makes plugs in by setting it; credentials_of(session, kind) checks the kind.
CREDENTIALS_ATTRIBUTE = "_aio_assume_role_lib_credentials"

C = TypeVar("C")

if TYPE_CHECKING:
    from ._assume import _Aioboto3SessionLike


@overload
def credentials_of(session: AioSession | _Aioboto3SessionLike) -> AssumeRoleCredentials: ...


@overload
def credentials_of(session: AioSession | _Aioboto3SessionLike, kind: type[C]) -> C: ...


def credentials_of(session: Any, kind: Any = AssumeRoleCredentials) -> Any:
    """The credentials object this library refreshes for ``session``, typed.

    For a child of ``assume_role()`` (an ``AioSession`` or an ``aioboto3.Session``) it is
    the :class:`AssumeRoleCredentials` that every request of the child is signed with,
    the same object ``await child.get_credentials()`` returns, without the ``await`` and
    with its real type (type stubs say ``AioCredentials | None``, and an
    ``isinstance()`` check against them makes type checkers skip what follows)::

        credentials = credentials_of(child)
        print(credentials.expiry_time, credentials.refresh_stats.attempts)

    No STS call is made: ``expiry_time`` is None until the first request fetches.

    Args:
        session: a session whose credentials this library refreshes.
        kind: the type of credentials object expected (default:
            :class:`AssumeRoleCredentials`).

    Raises:
        TypeError: ``session`` is not a session, or its credentials are not refreshed
            by this library (a session you made yourself, say), or not of ``kind``.
    """
    botocore_session: Any = session
    if not isinstance(botocore_session, AioSession):
        botocore_session = getattr(session, "_session", None)  # an aioboto3.Session
        if not isinstance(botocore_session, AioSession):
            raise TypeError(
                "credentials_of() takes an aiobotocore.session.AioSession or an "
                f"aioboto3.Session, not {type(session).__name__}"
            )
    try:
        resolver = botocore_session.get_component("credential_provider")
    except Exception:  # botocore raises ValueError for a component it does not know
        resolver = None
    credentials = getattr(resolver, CREDENTIALS_ATTRIBUTE, None)
    if credentials is None:
        raise TypeError(
            "credentials_of(): this session's credentials are not refreshed by "
            "aio_assume_role_lib; pass a session returned by assume_role(), or one given "
            "to stabilize() whose credentials were resolved (await "
            "session.get_credentials() first)"
        )
    if not isinstance(credentials, kind):
        raise TypeError(
            f"credentials_of(): this session's credentials object is of type "
            f"{type(credentials).__name__}, not {getattr(kind, '__name__', kind)}"
        )
    return credentials


_SIGNED_WITH = "aio_assume_role_lib.signed_with"
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/")


def register_expired_token_hook(
    session: Any,
    credentials: AssumeRoleCredentials | Callable[[], AssumeRoleCredentials | None],
) -> None:
    """Mark ``credentials`` stale when a service answers ExpiredToken (R9).

    Each request notes the access key it was signed with (its ``request-created`` handler
    runs after the signer's). An ExpiredToken answer then invalidates the credentials only
    if they still have that access key: a slow answer to a request signed with the
    previous credentials does not throw away the ones a refresh has just brought.
    ``credentials`` may be a function that names them at answer time (a shared client
    whose requests each sign with the calling tenant's: ``ClientPool.tenant_client``).
    """
    credentials_now = credentials if callable(credentials) else lambda: credentials

    def note_signed(request: Any, **_: Any) -> None:
        match = _CREDENTIAL_RE.search(str(request.headers.get("Authorization", "")))
        if match:
            request.context[_SIGNED_WITH] = match.group(1)

    def check_response(parsed: Any, context: dict[str, Any], **_: Any) -> None:
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        signed_with = context.get(_SIGNED_WITH)
        if error and signed_with and error.get("Code") in EXPIRED_TOKEN_CODES:
            held = credentials_now()
            if held is not None:
                held.invalidate(signed_with)

    events = session.get_component("event_emitter")
    events.register_last("request-created", note_signed, unique_id="aio_assume_role_lib.signed")
    events.register("after-call", check_response, unique_id="aio_assume_role_lib.expired")

"""``stabilize(session)``: a session's own credential source on the refresher (R13).

A parent session's credentials come from whatever botocore's provider chain resolves:
web identity (EKS IRSA), the container endpoint (ECS, EKS Pod Identity), SSO,
``credential_process``, instance metadata, a profile's ``role_arn``, or environment keys
with ``AWS_CREDENTIAL_EXPIRATION``. aiobotocore refreshes all of those the same legacy way
(an ``asyncio.Lock``, a fixed 10-minute mandatory window, errors raised in it, no backoff).

Each of them hands aiobotocore a refreshable credentials object with a *refresh function*
(``_refresh_using``) that returns botocore's credential metadata. This module keeps that
function and drops the rest: the session's credentials become a
:class:`~aio_assume_role_lib.AssumeRoleCredentials` (a private subclass) whose
``get_frozen_credentials()`` goes through a :class:`~._refresh.Refresher` whose loader
calls the refresh function. The refresher is seeded with the credentials already resolved.

The sources retry inside themselves; here each runs one request per try of ours, so the
refresher's tries, deadlines and backoff are the only ones:

* sources that call an AWS API through a client they create (web identity's STS, SSO, a
  profile's AssumeRole) get a client creator that sets ``total_max_attempts=1``; they run
  on a copy of their fetcher, and a profile role's own source credentials go on the
  engine too;
* the container endpoint's fetcher makes one request per call instead of three with a
  second's sleep between them;
* instance metadata's fetcher (a copy) makes one request of each kind per call, whatever
  ``metadata_service_num_attempts`` says.

Nothing here imports the session code of ``_assume``; ``_assume`` does not import this.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, overload

from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ContainerProvider, ReadOnlyCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    InvalidConfigError,
    MetadataRetrievalError,
    ParamValidationError,
    RefreshWithMFAUnsupportedError,
    SSOTokenLoadError,
    UnauthorizedSSOTokenError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.utils import ContainerMetadataFetcher, IMDSFetcher, parse_timestamp

from ._assume import Aioboto3Session, _botocore_session_of
from ._credentials import AssumeRoleCredentials, register_expired_token_hook
from ._fetch import NON_RECOVERABLE_ERROR_CODES, classify_error, describe_error, error_code
from ._metrics import RefreshMetrics
from ._refresh import ErrorKind, Refresher, RefreshPolicy, UnusableCredentialsError

logger = logging.getLogger("aio_assume_role_lib.stabilize")

# A caller that waits for a refresh while holding unexpired credentials is served them
# this long (or half the time left, if less) before they expire, so that its request
# reaches the service while they are valid.
EXPIRY_MARGIN_SECONDS = 1.0

_STABILIZED = "_aio_assume_role_lib_stabilized"

# Codes that say the source's own identity is refused: a retry a second later meets the
# same answer. ExpiredTokenException: the web identity token (the JWT) has expired;
# UnauthorizedException: SSO's access token is expired or revoked (botocore turns it into
# UnauthorizedSSOTokenError); ForbiddenException: the SSO user has no access to the role.
_NON_RECOVERABLE_SOURCE_CODES = NON_RECOVERABLE_ERROR_CODES | {
    "ExpiredTokenException",
    "UnauthorizedException",
    "AccessDeniedException",
    "ForbiddenException",
}
_NON_RECOVERABLE_SOURCE_ERRORS = (
    ParamValidationError,
    InvalidConfigError,
    RefreshWithMFAUnsupportedError,
    UnauthorizedSSOTokenError,
    SSOTokenLoadError,  # no SSO login cached: a person has to run `aws sso login`
)
_TRANSIENT_SOURCE_ERRORS = (
    CredentialRetrievalError,
    MetadataRetrievalError,
    HTTPClientError,
    BotocoreConnectionError,
    OSError,
)


def classify_source_error(error: BaseException) -> ErrorKind:
    """Whether asking the source again can help: at once, later, or not."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        if code in _NON_RECOVERABLE_SOURCE_CODES:
            return "non_recoverable"
        return classify_error(error)
    if isinstance(error, _NON_RECOVERABLE_SOURCE_ERRORS):
        return "non_recoverable"
    if isinstance(error, _TRANSIENT_SOURCE_ERRORS):
        return "transient"
    return classify_error(error)


def describe_source_error(error: BaseException) -> str:
    """Safe to log: AWS codes and messages, botocore's own messages (a container
    endpoint's or a process's message quotes its error output, never credentials)."""
    if isinstance(error, BotoCoreError) and not isinstance(error, _TRANSIENT_SOURCE_ERRORS):
        return describe_error(error)
    if isinstance(error, (CredentialRetrievalError, MetadataRetrievalError)):
        return f"{type(error).__name__}: {str(error)[:300]}"
    return describe_error(error)


class SourceCredentials(AssumeRoleCredentials):
    """A session's own credentials (web identity, container, SSO, ...) on the refresher.

    Everything an :class:`AssumeRoleCredentials` offers (``refresh_stats``,
    ``expiry_time``, ``invalidate()``); ``method`` is botocore's name of the source
    (``"assume-role-with-web-identity"``, ``"container-role"``, ``"sso"``, ...).
    """

    def __init__(self, refresher: Refresher[ReadOnlyCredentials], method: str) -> None:
        super().__init__(refresher, role_arn="")
        self.method = method

    def __repr__(self) -> str:
        expiry = self.expiry_time
        return (
            f"<SourceCredentials source={self.method!r} "
            f"expires={expiry.isoformat() if expiry else None}>"
        )


def _one_try_client_creator(client_creator: Callable[..., Any]) -> Callable[..., Any]:
    one_try = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})

    def create(service_name: str, **kwargs: Any) -> Any:
        config = kwargs.get("config")
        kwargs["config"] = one_try if config is None else config.merge(one_try)
        return client_creator(service_name, **kwargs)

    return create


def _one_try_source(refresh_using: Callable[[], Any], policy: RefreshPolicy | None) -> Any:
    """The source's refresh function, making one request per call (see the module doc)."""
    owner = getattr(refresh_using, "__self__", None)
    name = getattr(refresh_using, "__name__", None)
    if owner is not None and name and isinstance(owner, IMDSFetcher):
        # Instance metadata: each of its requests is tried num_attempts times in a row.
        instance_metadata: Any = copy.copy(owner)  # botocore's private field, set once
        instance_metadata._num_attempts = 1
        return getattr(instance_metadata, name)
    if owner is not None and name and hasattr(owner, "_client_creator"):
        # A fetcher of botocore's (web identity, AssumeRole, SSO): a copy of our own, so
        # that the original credentials object keeps working as it did.
        fetcher = copy.copy(owner)
        fetcher._client_creator = _one_try_client_creator(owner._client_creator)
        source = getattr(fetcher, "_source_credentials", None)
        if source is not None:
            fetcher._source_credentials = _on_engine(source, policy)
        return getattr(fetcher, name)
    code = getattr(refresh_using, "__code__", None)
    closure = getattr(refresh_using, "__closure__", None) or ()
    if code is not None:
        for variable, cell in zip(code.co_freevars, closure, strict=False):
            provider = cell.cell_contents
            if variable == "self" and isinstance(provider, ContainerProvider):
                fetcher = getattr(provider, "_fetcher", None)
                if isinstance(fetcher, ContainerMetadataFetcher):
                    # One request per call; its 2-second timeout stays.
                    fetcher.RETRY_ATTEMPTS = 1
    return refresh_using


def _expiry_seconds(value: Any) -> float:
    moment = value if isinstance(value, datetime) else parse_timestamp(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return float(moment.timestamp())


def _loader(
    source: Callable[[], Any], method: str
) -> Callable[[], Awaitable[tuple[ReadOnlyCredentials, float]]]:
    async def load() -> tuple[ReadOnlyCredentials, float]:
        metadata = source()
        if inspect.isawaitable(metadata):
            metadata = await metadata
        if not metadata:  # instance metadata answers {} when it cannot fetch
            raise CredentialRetrievalError(provider=method, error_msg="no credentials returned")
        if not isinstance(metadata, Mapping) or not all(
            metadata.get(key) for key in ("access_key", "secret_key", "expiry_time")
        ):
            raise UnusableCredentialsError(
                f"{method} credentials: the source's answer lacks a key or an expiry time"
            )
        try:
            expiry = _expiry_seconds(metadata["expiry_time"])
        except (ValueError, TypeError, OverflowError):
            raise UnusableCredentialsError(
                f"{method} credentials: the source returned an unusable expiry time"
            ) from None
        value = ReadOnlyCredentials(
            metadata["access_key"],
            metadata["secret_key"],
            metadata.get("token"),
            metadata.get("account_id"),
        )
        return value, expiry

    return load


def _access_key(credentials: ReadOnlyCredentials) -> object:
    return credentials.access_key


def _on_engine(credentials: Any, policy: RefreshPolicy | None) -> Any:
    """``credentials`` on the refresher, or as they are when there is nothing to refresh."""
    if isinstance(credentials, AssumeRoleCredentials):
        return credentials  # already on the engine (a child's, or stabilized)
    if not isinstance(credentials, AioRefreshableCredentials):
        return credentials  # static keys (or None): nothing to refresh
    refresh_using = getattr(credentials, "_refresh_using", None)
    if refresh_using is None:
        return credentials
    method = str(getattr(credentials, "method", None) or "credentials")
    role_arn = getattr(getattr(refresh_using, "__self__", None), "_role_arn", None)
    log_fields: dict[str, object] = {"credential_source": method}
    if isinstance(role_arn, str):
        log_fields["role_arn"] = role_arn
    refresher: Refresher[ReadOnlyCredentials] = Refresher(
        _loader(_one_try_source(refresh_using, policy), method),
        policy=policy,
        classify_error=classify_source_error,
        describe_error=describe_source_error,
        error_code=error_code,
        key_of=_access_key,
        description=f"{method} credentials",
        log_fields=log_fields,
        metrics=RefreshMetrics(role_arn if isinstance(role_arn, str) else method),
        expiry_margin_seconds=EXPIRY_MARGIN_SECONDS,
    )
    # Seed from what aiobotocore already resolved (a container's or an env's first
    # credentials; a deferred source such as web identity has none yet): no extra fetch.
    resolved: Any = credentials  # aiobotocore's private fields, read once
    expiry_time = getattr(resolved, "_expiry_time", None)
    access_key = getattr(resolved, "_access_key", None)
    if isinstance(expiry_time, datetime) and access_key and getattr(resolved, "_secret_key", None):
        refresher.seed(
            ReadOnlyCredentials(
                access_key,
                getattr(resolved, "_secret_key", None),
                getattr(resolved, "_token", None),
                getattr(resolved, "_account_id", None),
            ),
            _expiry_seconds(expiry_time),
        )
    return SourceCredentials(refresher, method)


# How long a resolved credential chain is kept: for good (a refresher needs an expiry).
_RESOLVED_FOR_SECONDS = 100 * 365 * 86400.0


class _StabilizingResolver:
    """The session's credential_provider component, putting what it resolves on the
    engine; every other attribute is the original resolver's.

    Resolving the chain can itself fetch (the container provider fetches at once), so it
    runs on a refresher of its own: once, in a detached flight shared by every task,
    event loop and thread, which a caller's cancellation (a child's try timing out)
    never aborts. What it resolves is kept for good; the credentials refresh themselves.
    """

    def __init__(self, resolver: Any, session: AioSession, policy: RefreshPolicy | None):
        self._resolver = resolver
        self._session = session
        self._policy = policy
        self.resolution: Refresher[Any] = Refresher(
            self._resolve,
            policy=policy,
            classify_error=classify_source_error,
            describe_error=describe_source_error,
            error_code=error_code,
            description="the credential provider chain",
            log_fields={"credential_source": "chain"},
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolver, name)

    @property
    def _aio_assume_role_lib_credentials(self) -> SourceCredentials | None:
        """What ``credentials_of()`` and the adapters read (``CREDENTIALS_ATTRIBUTE``): the
        source's credentials on the engine, once resolved; None before that, and for
        static keys, which the engine does not refresh."""
        current = self.resolution._current
        value = None if current is None else current.value
        return value if isinstance(value, SourceCredentials) else None

    def keep(self, credentials: Any) -> None:
        """Use ``credentials`` (already resolved) instead of resolving the chain."""
        self.resolution.seed(credentials, self.resolution.now() + _RESOLVED_FOR_SECONDS)

    async def _resolve(self) -> tuple[Any, float]:
        credentials = _on_engine(await self._resolver.load_credentials(), self._policy)
        if isinstance(credentials, AssumeRoleCredentials):
            register_expired_token_hook(self._session, credentials)
        return credentials, self.resolution.now() + _RESOLVED_FOR_SECONDS

    async def load_credentials(self) -> Any:
        return await self.resolution.get()


@overload
def stabilize(
    session: Aioboto3Session, *, refresh: RefreshPolicy | None = None
) -> Aioboto3Session: ...


@overload
def stabilize(session: AioSession, *, refresh: RefreshPolicy | None = None) -> AioSession: ...


def stabilize(session: Any, *, refresh: RefreshPolicy | None = None) -> Any:
    """Put ``session``'s own credential source on this library's refresh engine.

    Whatever botocore's provider chain resolves for the session (web identity as on EKS
    with IRSA, the container endpoint as on ECS and EKS Pod Identity, SSO,
    ``credential_process``, instance metadata, a profile's ``role_arn``, environment
    keys with ``AWS_CREDENTIAL_EXPIRATION``) is then refreshed the way
    ``assume_role``'s children are: one refresh at a time across tasks, event loops and
    threads (asyncio and trio), early in an advisory window nobody waits for, cached
    credentials served while the source is down, short memory of non-recoverable
    errors, deadlines, invalidation when a service answers ``ExpiredToken``, counters
    and log fields. Children made with ``assume_role`` sign their AssumeRole calls with
    it, so they get the same from their parent.

    Call it once, before making clients from the session (a client made earlier keeps
    the credentials object it was made with). It makes no network call: credentials the
    session already resolved are kept and reused, and a source not resolved yet is
    resolved on first use. Static keys have nothing to refresh and stay as they are.

    Args:
        session: an ``aiobotocore.session.AioSession`` or an ``aioboto3.Session``.
        refresh: a ``RefreshPolicy`` for the source's refresh timing, deadlines and
            backoff (the first call's policy stays; later calls change nothing).

    Returns:
        ``session`` itself (it is changed in place; calling again does nothing more).
    """
    botocore_session, _ = _botocore_session_of(session)
    if refresh is not None and not isinstance(refresh, RefreshPolicy):
        raise TypeError(f"refresh must be a RefreshPolicy, not {type(refresh).__name__}")
    if botocore_session.__dict__.get(_STABILIZED):
        return session
    botocore_session.__dict__[_STABILIZED] = True
    resolver = _StabilizingResolver(
        botocore_session.get_component("credential_provider"), botocore_session, refresh
    )
    resolved = botocore_session._credentials
    if resolved is not None:
        on_engine = _on_engine(resolved, refresh)
        resolver.keep(on_engine)
        if on_engine is not resolved:
            botocore_session._credentials = on_engine
            register_expired_token_hook(botocore_session, on_engine)
    botocore_session.register_component("credential_provider", resolver)
    return session

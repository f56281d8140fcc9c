"""``assume_role()``: parameters in, child session out.

Sharing across calls: every parent session carries a small table, stored on the parent
object itself, of the credentials objects and child sessions made from it. A repeat call
with the same arguments is a dictionary lookup and returns the same child; the table
lives and dies with the parent (a reference cycle the garbage collector reclaims), and
is bounded, so nothing global grows with the number of parents or argument sets.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from aiobotocore.session import AioSession
from botocore.exceptions import NoCredentialsError, ParamValidationError

from ._cache import CredentialCache
from ._credentials import AssumeRoleCredentials, register_expired_token_hook
from ._fetch import AssumeRoleFetcher, classify_error, describe_error, error_code
from ._metrics import RefreshMetrics
from ._names import is_region_name
from ._params import (
    AssumeRoleArgs,
    TokenCodeSource,
    is_usable_token_code,
    prepare_args,
    validate_args,
    validate_token_code,
)
from ._refresh import Refresher, RefreshPolicy
from ._region import apply_region_mode
from ._sts import StsClients

# Per parent, at most this many credentials objects and children are kept for reuse;
# the least recently used go first (and live on only while someone still holds them).
MAX_SHARED_PER_PARENT = 256

_SHARED_ATTRIBUTE = "_aio_assume_role_lib_shared"
_create_shared_lock = threading.Lock()


class _Entry:
    __slots__ = ("credentials", "fetcher", "validated")

    def __init__(self, credentials: AssumeRoleCredentials, fetcher: AssumeRoleFetcher) -> None:
        self.credentials = credentials
        self.fetcher = fetcher
        self.validated = False


class _Shared:
    """What one parent session shares between calls: credentials and children (both LRU),
    and the STS clients that fetch the credentials."""

    def __init__(self, parent: Any) -> None:
        self.sts_clients = StsClients(parent)
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self.children: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    @staticmethod
    def of(session: Any, parent: Any) -> _Shared:
        """The table of ``session`` (as passed), whose botocore session is ``parent``."""
        shared: _Shared | None = session.__dict__.get(_SHARED_ATTRIBUTE)
        if shared is None:
            with _create_shared_lock:
                shared = session.__dict__.get(_SHARED_ATTRIBUTE)
                if shared is None:
                    shared = session.__dict__[_SHARED_ATTRIBUTE] = _Shared(parent)
        return shared


def _lru_get(table: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...]) -> Any:
    value = table.get(key)
    if value is not None:
        table.move_to_end(key)
    return value


def _lru_put(table: OrderedDict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    table[key] = value
    if len(table) > MAX_SHARED_PER_PARENT:
        table.popitem(last=False)


def _aioboto3_session_class() -> type | None:
    module = sys.modules.get("aioboto3")
    return getattr(module, "Session", None) if module is not None else None


def _botocore_session_of(session: Any) -> tuple[Any, bool]:
    """Return ``(AioSession, is_aioboto3)`` for an AioSession or an aioboto3.Session."""
    if isinstance(session, AioSession):
        return session, False
    aioboto3_session = _aioboto3_session_class()
    if aioboto3_session is not None and isinstance(session, aioboto3_session):
        return session._session, True  # type: ignore[attr-defined]
    raise TypeError(
        "session must be an aiobotocore.session.AioSession or an aioboto3.Session, "
        f"not {type(session).__name__}"
    )


class _FixedCredentialResolver:
    """The child's credential_provider component: always the shared credentials object."""

    def __init__(self, credentials: AssumeRoleCredentials) -> None:
        self._credentials = credentials

    async def load_credentials(self) -> AssumeRoleCredentials:
        return self._credentials


def _check_options(region_name: Any, cache: Any, refresh: Any) -> None:
    if region_name is not None and not isinstance(region_name, (bool, str)):
        raise TypeError(
            "region_name must be None (follow the parent), True (copy the parent's), "
            f"False (implicit) or a region name, not {type(region_name).__name__}"
        )
    if isinstance(region_name, str):
        if not region_name:
            raise ValueError("region_name must not be an empty string")
        if not is_region_name(region_name):
            raise ValueError(
                f"region_name {region_name[:80]!r} is not a valid region name "
                "(letters, digits and hyphens, e.g. 'eu-west-1')"
            )
    # Any mapping-like store works (botocore's own JSONFileCache is not a MutableMapping).
    if cache is not None and (
        isinstance(cache, Sequence)
        or not all(hasattr(cache, name) for name in ("__getitem__", "__setitem__", "__contains__"))
    ):
        raise TypeError(
            "cache must be a mutable mapping (such as a dict) or a JSONFileCache, "
            f"not {type(cache).__name__}"
        )
    if refresh is not None and not isinstance(refresh, RefreshPolicy):
        raise TypeError(f"refresh must be a RefreshPolicy, not {type(refresh).__name__}")


def _credentials_key(
    args: AssumeRoleArgs, cache: Any, refresh: RefreshPolicy | None
) -> tuple[Any, ...]:
    """Arguments that make two calls share one credentials object."""
    try:
        canonical = json.dumps(dict(args.kwargs), sort_keys=True, default=repr)
    except (TypeError, ValueError):  # e.g. a mapping with keys of mixed types
        validate_args(args)  # names the problem, if validation can
        raise ParamValidationError(
            report="The AssumeRole parameters cannot be serialized: mappings need string keys."
        ) from None
    # The cache is compared by identity: two different caches are two different stores.
    cache_identity = id(cache) if cache is not None else None
    return (canonical, args.session_name_generated, cache_identity, refresh)


def _access_key(credentials: Any) -> object:
    return credentials.access_key


def _new_entry(
    shared: _Shared, args: AssumeRoleArgs, cache: Any, refresh: RefreshPolicy | None
) -> _Entry:
    policy = refresh or RefreshPolicy()
    # A shared cache's lock is waited for at most half a try, so the STS call still fits.
    lock_timeout = min(policy.try_timeout_seconds, policy.attempt_timeout_seconds) / 2
    fetcher = AssumeRoleFetcher(shared.sts_clients, args, cache=cache, lock_timeout=lock_timeout)
    refresher: Refresher[Any] = Refresher(
        fetcher,
        prepare=fetcher.prepare,
        after_success=fetcher.after_success,
        policy=refresh,
        classify_error=classify_error,
        describe_error=describe_error,
        error_code=error_code,
        key_of=_access_key,
        description=fetcher.description,
        log_fields={
            "role_arn": fetcher.kwargs["RoleArn"],
            "role_session_name": fetcher.kwargs["RoleSessionName"],
        },
        metrics=RefreshMetrics(fetcher.kwargs["RoleArn"]),
        expiry_margin_seconds=1.0,  # waiters are served valid credentials (R13)
    )
    return _Entry(AssumeRoleCredentials(refresher, args.kwargs["RoleArn"]), fetcher)


def _new_child(
    parent: Any, credentials: AssumeRoleCredentials, region_name: str | bool | None
) -> Any:
    child = AioSession()
    # Share the parent's loaded service data: a client made on the child then costs what
    # one made on the parent does, instead of loading every JSON model again.
    child.register_component("data_loader", parent.get_component("data_loader"))
    child.register_component("credential_provider", _FixedCredentialResolver(credentials))
    default_config = parent.get_default_client_config()
    if default_config is not None:  # e.g. the httpx backend, which trio needs
        child.set_default_client_config(default_config)
    register_expired_token_hook(child, credentials)
    apply_region_mode(child, parent, region_name)
    return child


def _wrap_aioboto3(child: Any) -> Any:
    session_class = _aioboto3_session_class()
    assert session_class is not None
    wrapped = session_class(botocore_session=child)
    # boto3 appends its resource data path to the (shared) loader on every Session.
    paths = child.get_component("data_loader").search_paths
    paths[:] = list(dict.fromkeys(paths))
    return wrapped


class _Aioboto3SessionLike(Protocol):
    """How type checkers recognize an ``aioboto3.Session`` (types-aioboto3 declares its
    ``_session``; an ``AioSession`` has none). A protocol rather than ``aioboto3.Session``
    itself: without aioboto3 installed that name would be ``Any`` and the overload would
    accept anything. It comes first: without boto3-stubs, ``aioboto3.Session`` derives
    from an unknown class, which would also match the ``AioSession`` overload."""

    @property
    def _session(self) -> AioSession: ...


# Named for the reference docs' signature, where it stands for aioboto3.Session.
Aioboto3Session = TypeVar("Aioboto3Session", bound=_Aioboto3SessionLike)


@overload
async def assume_role(
    session: Aioboto3Session,
    RoleArn: str,
    *,
    RoleSessionName: str | None = None,
    PolicyArns: Sequence[str | Mapping[str, str]] | None = None,
    Policy: str | Mapping[str, Any] | None = None,
    DurationSeconds: int | timedelta | None = None,
    Tags: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
    TransitiveTagKeys: Sequence[str] | None = None,
    ExternalId: str | None = None,
    SerialNumber: str | None = None,
    TokenCode: TokenCodeSource | None = None,
    SourceIdentity: str | None = None,
    region_name: str | bool | None = None,
    validate: bool = True,
    cache: CredentialCache | None = None,
    additional_kwargs: Mapping[str, Any] | None = None,
    refresh: RefreshPolicy | None = None,
) -> Aioboto3Session: ...


@overload
async def assume_role(
    session: AioSession,
    RoleArn: str,
    *,
    RoleSessionName: str | None = None,
    PolicyArns: Sequence[str | Mapping[str, str]] | None = None,
    Policy: str | Mapping[str, Any] | None = None,
    DurationSeconds: int | timedelta | None = None,
    Tags: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
    TransitiveTagKeys: Sequence[str] | None = None,
    ExternalId: str | None = None,
    SerialNumber: str | None = None,
    TokenCode: TokenCodeSource | None = None,
    SourceIdentity: str | None = None,
    region_name: str | bool | None = None,
    validate: bool = True,
    cache: CredentialCache | None = None,
    additional_kwargs: Mapping[str, Any] | None = None,
    refresh: RefreshPolicy | None = None,
) -> AioSession: ...


async def assume_role(
    session: Any,
    RoleArn: str,
    *,
    RoleSessionName: str | None = None,
    PolicyArns: Sequence[str | Mapping[str, str]] | None = None,
    Policy: str | Mapping[str, Any] | None = None,
    DurationSeconds: int | timedelta | None = None,
    Tags: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
    TransitiveTagKeys: Sequence[str] | None = None,
    ExternalId: str | None = None,
    SerialNumber: str | None = None,
    TokenCode: str | Callable[[], str | Awaitable[str]] | None = None,
    SourceIdentity: str | None = None,
    region_name: str | bool | None = None,
    validate: bool = True,
    cache: CredentialCache | None = None,
    additional_kwargs: Mapping[str, Any] | None = None,
    refresh: RefreshPolicy | None = None,
) -> Any:
    """Return a session that uses ``RoleArn``, assumed with ``session``'s credentials.

    The child is the same kind of session as the parent (an ``AioSession`` or an
    ``aioboto3.Session``) and has the parent in ``child.assume_role_parent_session``.
    No STS call happens here: credentials are fetched on first use and refreshed
    automatically, in the background, before they expire. Children can be chained:
    ``await assume_role(child, other_role_arn)``.

    **Repeat calls are cheap and return the same child.** Calling ``assume_role`` again
    with the same parent and the same arguments (per request in a web service, say)
    returns the *same* child session object, whose credentials are shared, so a service
    makes about one AssumeRole call per credential lifetime whatever its request rate.
    Sessions are safe to share between the tasks of an event loop; if you change a
    child's configuration, that change is seen by every caller that gets it.
    Different parents or arguments never share credentials.

    Args:
        session: the parent session; it must have credentials
            (``botocore.exceptions.NoCredentialsError`` otherwise, even with ``validate=False``).
        RoleArn: the role to assume (see ``get_role_arn``).
        RoleSessionName: defaults to ``SourceIdentity`` when that is given, else to a
            generated ``botocore-session-<epoch seconds>`` fixed for the child's life.
            ``AUTOMATIC_ROLE_SESSION_NAME`` forces the generated name.
        PolicyArns: managed policy ARNs as strings or ``{"arn": ...}`` dicts.
        Policy: a session policy, as a JSON string or a mapping.
        DurationSeconds: an ``int`` or a ``timedelta``.
        Tags: a list of ``{"Key": ..., "Value": ...}`` or a mapping of keys to values.
        TransitiveTagKeys: tag keys that pass on to chained sessions, as in AssumeRole.
        ExternalId: the external ID the role's trust policy may require.
        SerialNumber: the MFA device's serial number or ARN, as in AssumeRole.
        SourceIdentity: an identity that stays with the session and the roles chained
            from it (and the default ``RoleSessionName``).
        TokenCode: the MFA code: a string (used for the first fetch only) or a
            callable, sync or async, called for each AssumeRole call that needs a code.
            A sync callable runs in a worker thread, so a prompt never blocks the loop.
            The TokenCode of a repeat call is validated, but the shared credentials keep
            the code source they were created with (unless they had none); pass a
            callable to refresh with MFA.
        region_name: ``None`` (default) follows the parent's region, live, until the
            child's own region is set; ``True`` copies the parent's current region;
            ``False`` uses the child's implicit region (environment, config file);
            a string pins it.
        validate: check the parameters offline first, reporting every problem in one
            ``botocore.exceptions.ParamValidationError``.
        cache: a mutable mapping or a ``JSONFileCache`` holding AssumeRole responses
            under botocore's cache key, so that a restarted process reuses valid ones.
        additional_kwargs: further AssumeRole parameters; the named ones override them.
        refresh: a ``RefreshPolicy`` to tune refresh timing, deadlines and backoff.

    Returns:
        A child session of the same type as ``session``. Its clients use the parent's
        default client config (e.g. an httpx backend) and the parent's loaded service data.
    """
    parent, is_aioboto3 = _botocore_session_of(session)
    _check_options(region_name, cache, refresh)
    args = prepare_args(
        RoleArn,
        RoleSessionName=RoleSessionName,
        PolicyArns=PolicyArns,
        Policy=Policy,
        DurationSeconds=DurationSeconds,
        Tags=Tags,
        TransitiveTagKeys=TransitiveTagKeys,
        ExternalId=ExternalId,
        SerialNumber=SerialNumber,
        TokenCode=TokenCode,
        SourceIdentity=SourceIdentity,
        additional_kwargs=additional_kwargs,
    )
    if await parent.get_credentials() is None:
        raise NoCredentialsError()

    shared = _Shared.of(session, parent)
    key = _credentials_key(args, cache, refresh)
    with shared.lock:
        entry: _Entry | None = _lru_get(shared.entries, key)
    if validate:
        if entry is None or not entry.validated:
            validate_args(args)
        else:
            # The entry was validated with its first caller's TokenCode; this call's
            # code is its own and is checked every time (a regex at most).
            validate_token_code(args)
    if region_name is True:
        region_key: Any = ("copy", parent.get_config_variable("region"))
    else:
        region_key = region_name
    with shared.lock:
        entry = _lru_get(shared.entries, key)
        if entry is None:
            entry = _new_entry(shared, args, cache, refresh)
            _lru_put(shared.entries, key, entry)
        if validate:
            entry.validated = True
        # The shared credentials keep the code source they were made with: one caller's
        # code must never replace it for the others (R8). A usable code is taken only
        # by credentials that have none, which cannot fetch without one anyway.
        if entry.fetcher.token_code is None and is_usable_token_code(args):
            entry.fetcher.set_token_code(args.token_code)  # type: ignore[arg-type]
        child_key = (key, region_key, is_aioboto3)
        child = _lru_get(shared.children, child_key)
        if child is None:
            child_botocore = _new_child(parent, entry.credentials, region_name)
            child = _wrap_aioboto3(child_botocore) if is_aioboto3 else child_botocore
            child.assume_role_parent_session = session
            _lru_put(shared.children, child_key, child)
    return child


def _assume_role_method(self: Any, RoleArn: str, **kwargs: Any) -> Awaitable[Any]:
    return assume_role(self, RoleArn, **kwargs)


_assume_role_method.__doc__ = assume_role.__doc__


def patch_aiobotocore() -> None:
    """Add ``await session.assume_role(RoleArn, ...)`` to ``aiobotocore.session.AioSession``."""
    # A method added at run time, which no type checker sees (documented in docs/faq.md).
    AioSession.assume_role = _assume_role_method  # type: ignore[attr-defined]


def patch_aioboto3() -> None:
    """Add ``await session.assume_role(RoleArn, ...)`` to ``aioboto3.Session``."""
    import aioboto3

    # A method added at run time, which no type checker sees (documented in docs/faq.md).
    session_class: Any = aioboto3.Session
    session_class.assume_role = _assume_role_method

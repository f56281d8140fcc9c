"""``assume_role()``: parameters in, child session out.

Sharing across calls: every parent session carries a small table, stored on the parent
object itself, of the credentials objects and child sessions made from it. A repeat call
with the same arguments is a dictionary lookup and returns the same child; the table
lives and dies with the parent (a reference cycle the garbage collector reclaims), and
is bounded, so nothing global grows with the number of parents or argument sets.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar, overload

from aiobotocore.session import AioSession
from botocore.exceptions import NoCredentialsError, ParamValidationError

from ._cache import CredentialCache
from ._child import ChildTemplate
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
from ._region import LINKED_ATTRIBUTE, apply_region_mode, check_sts_region, link_region_in
from ._sts import StsClients

logger = logging.getLogger("aio_assume_role_lib.sharing")

# Per parent, at most this many credentials objects (each with its refresher and fetcher)
# and child sessions are kept for reuse, the least recently used dropped first (a dropped
# one lives on while someone holds it). A dropped child is rebuilt from its kept
# credentials without an STS call; children are as many as credentials by default, since a
# round robin over more tenants than children kept would rebuild a child on every use.
DEFAULT_MAX_CREDENTIALS = 10_000
DEFAULT_MAX_CHILDREN = 10_000
# Evictions are logged at most once per this many seconds per parent (once per burst).
EVICTION_LOG_INTERVAL_SECONDS = 60.0

_SHARED_ATTRIBUTE = "_aio_assume_role_lib_shared"
_create_shared_lock = threading.Lock()
_default_limits = {"credentials": DEFAULT_MAX_CREDENTIALS, "children": DEFAULT_MAX_CHILDREN}
_all_shared: weakref.WeakSet[_Shared] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    # Held by a thread of the parent process, they would be held forever in the child.
    global _create_shared_lock
    _create_shared_lock = threading.Lock()
    for shared in list(_all_shared):
        shared.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


class _Entry:
    __slots__ = ("credentials", "fetcher", "validated")

    def __init__(self, credentials: AssumeRoleCredentials, fetcher: AssumeRoleFetcher) -> None:
        self.credentials = credentials
        self.fetcher = fetcher
        self.validated = False


class _Shared:
    """What one parent session shares between calls: credentials and children (both LRU),
    the STS clients that fetch the credentials, and the template children are made from.

    ``front`` maps a repeat call's raw arguments straight to its child's key, skipping
    conversion and the canonical key (it only holds calls that succeeded before)."""

    def __init__(self, parent: Any) -> None:
        self.sts_clients = StsClients(parent)
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self.children: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.front: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()
        self.template: ChildTemplate | None = None
        self.limits: dict[str, int] = {}  # this parent's own, over _default_limits
        self.evicted = {"credentials": 0, "children": 0}
        self.children_rebuilt = 0
        self._evictions_logged_at: float | None = None
        _all_shared.add(self)

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

    def limit(self, table: str) -> int:
        credentials = self.limits.get("credentials", _default_limits["credentials"])
        if table == "credentials":
            return credentials
        # A child without its credentials kept would make a second credentials object.
        return min(self.limits.get("children", _default_limits["children"]), credentials)

    def touch(self, child_key: tuple[Any, ...]) -> Any:
        """The child under ``child_key``, now the most recently used with its credentials
        (or None). Called with the lock held."""
        child = self.children.get(child_key)
        if child is not None:
            try:
                self.entries.move_to_end(child_key[0])
            except KeyError:  # never while children <= credentials (see limit())
                return None
            self.children.move_to_end(child_key)
        return child

    def put(self, table: str, key: tuple[Any, ...], value: Any) -> None:
        """Add to ``table`` and drop its least recently used beyond the limit (lock held)."""
        self.table(table)[key] = value
        self.trim(table)

    def table(self, name: str) -> OrderedDict[tuple[Any, ...], Any]:
        return self.entries if name == "credentials" else self.children

    def trim(self, table: str) -> None:
        entries = self.table(table)
        limit = self.limit(table)
        dropped = 0
        while len(entries) > limit:
            entries.popitem(last=False)
            dropped += 1
        if table == "children":
            while len(self.front) > limit:
                self.front.popitem(last=False)
        if dropped:
            self.evicted[table] += dropped
            RefreshMetrics.evicted(table, dropped)
            now = _monotonic()
            logged_at = self._evictions_logged_at
            if logged_at is None or now - logged_at >= EVICTION_LOG_INTERVAL_SECONDS:
                self._evictions_logged_at = now
                logger.debug(
                    "A parent session's sharing table is full: dropping the least recently "
                    "used (%d credentials and %d children dropped so far; limits %d and %d; "
                    "further drops in the next %g s are not logged)",
                    self.evicted["credentials"],
                    self.evicted["children"],
                    self.limit("credentials"),
                    self.limit("children"),
                    EVICTION_LOG_INTERVAL_SECONDS,
                )


_monotonic = time.monotonic
_DEFAULT_POLICY = RefreshPolicy()


def _check_limit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")


def set_sharing_limits(
    session: Any = None, *, max_credentials: int | None = None, max_children: int | None = None
) -> None:
    """Set how many credentials objects and children a parent session keeps for reuse.

    ``await assume_role(parent, ...)`` keeps, per parent session, the credentials of each
    argument set (a tenant's role and ``ExternalId``, say) and the child made with them,
    so that a repeat call makes no STS call and returns the same child. Both tables are
    bounded, least recently used dropped first: at most ``max_credentials`` credentials
    objects (default 10,000) and ``max_children`` children (default 10,000, never more
    than ``max_credentials``). A dropped child whose credentials are kept is rebuilt from
    them in tens of microseconds, without an STS call; dropped credentials cost an STS
    call on their next use. Anything dropped lives on while you hold it.

    Args:
        session: the parent (an ``AioSession`` or an ``aioboto3.Session``), or None to
            set the default of every parent without limits of its own.
        max_credentials: credentials objects kept (None: leave unchanged).
        max_children: children kept (None: leave unchanged).
    """
    if max_credentials is not None:
        _check_limit("max_credentials", max_credentials)
    if max_children is not None:
        _check_limit("max_children", max_children)
    new = {
        name: value
        for name, value in (("credentials", max_credentials), ("children", max_children))
        if value is not None
    }
    if session is None:
        _default_limits.update(new)
        return
    parent, _ = _botocore_session_of(session)
    shared = _Shared.of(session, parent)
    with shared.lock:
        shared.limits.update(new)
        shared.trim("credentials")
        shared.trim("children")


def sharing_stats(session: Any) -> dict[str, int]:
    """Counters of a parent session's sharing tables, e.g. to export as metrics.

    Keys: ``credentials`` and ``children`` (how many are kept now), ``max_credentials``
    and ``max_children`` (the limits in force), ``credentials_evicted`` and
    ``children_evicted`` (how many were dropped to stay within the limits, ever), and
    ``children_rebuilt`` (children made again from kept credentials, without STS).
    """
    parent, _ = _botocore_session_of(session)
    shared = _Shared.of(session, parent)
    with shared.lock:
        return {
            "credentials": len(shared.entries),
            "children": len(shared.children),
            "max_credentials": shared.limit("credentials"),
            "max_children": shared.limit("children"),
            "credentials_evicted": shared.evicted["credentials"],
            "children_evicted": shared.evicted["children"],
            "children_rebuilt": shared.children_rebuilt,
        }


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
        self._aio_assume_role_lib_credentials = credentials  # credentials_of() reads it

    async def load_credentials(self) -> AssumeRoleCredentials:
        return self._aio_assume_role_lib_credentials


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
    policy = refresh or _DEFAULT_POLICY
    # A shared cache's lock is waited for at most half a try, so the STS call still fits.
    lock_timeout = min(policy.try_timeout_seconds, policy.attempt_timeout_seconds) / 2
    fetcher = AssumeRoleFetcher(shared.sts_clients, args, cache=cache, lock_timeout=lock_timeout)
    refresher: Refresher[Any] = Refresher(
        fetcher,
        prepare=fetcher.prepare,
        after_success=fetcher.after_success,
        loaded_from_cache=fetcher.loaded_from_cache,
        policy=policy,
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
        retry_early=fetcher.parent_renewed,
    )
    return _Entry(AssumeRoleCredentials(refresher, args.kwargs["RoleArn"]), fetcher)


def _new_child(
    shared: _Shared, parent: Any, credentials: AssumeRoleCredentials, region_name: str | bool | None
) -> Any:
    """A child session using ``credentials`` (called with ``shared.lock`` held)."""
    check_sts_region(parent)  # the credentials are fetched with the parent's STS client
    template = shared.template
    if template is None:
        template = shared.template = ChildTemplate(parent)
    # Share the parent's loaded service data: a client made on the child then costs what
    # one made on the parent does, instead of loading every JSON model again.
    data_loader = parent.get_component("data_loader")
    resolver = _FixedCredentialResolver(credentials)
    # Its default client config too: e.g. the httpx backend, which trio needs.
    default_config = parent.get_default_client_config()
    if template.light:
        link = None
        if region_name is None:  # the link is set when the child's config store is built

            def link(store: Any, child: Any) -> None:
                link_region_in(store, child, parent)

        child = template.new_session(resolver, data_loader, default_config, link)
        if link is not None:
            child.__dict__[LINKED_ATTRIBUTE] = True  # for current_region()
        if region_name is not None:
            apply_region_mode(child, parent, region_name)
    else:  # a botocore this module does not know: a whole session, as before
        child = AioSession()
        child.register_component("data_loader", data_loader)
        child.register_component("credential_provider", resolver)
        if default_config is not None:
            child.set_default_client_config(default_config)
        apply_region_mode(child, parent, region_name)
    register_expired_token_hook(child, credentials)
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
    shared: _Shared | None = session.__dict__.get(_SHARED_ATTRIBUTE)
    front_key: tuple[Any, ...] | None = None
    if TokenCode is None and additional_kwargs is None:
        # A repeat call: its raw arguments lead straight to its child. Only calls that
        # succeeded are in the table, so there is nothing to convert or validate again.
        # Types are part of the key where equal values of two types behave differently.
        front_key = (
            RoleArn,
            RoleSessionName,
            PolicyArns,
            Policy,
            DurationSeconds,
            type(DurationSeconds),
            Tags,
            TransitiveTagKeys,
            ExternalId,
            SerialNumber,
            SourceIdentity,
            region_name,
            type(region_name),
            validate,
            None if cache is None else id(cache),
            refresh,
            is_aioboto3,
        )
        if region_name is True:  # the child is the one made with the parent's region now
            front_key += (parent.get_config_variable("region"),)
        if shared is not None:
            try:
                with shared.lock:
                    child_key = shared.front.get(front_key)
                    child = None if child_key is None else shared.touch(child_key)
            except TypeError:  # unhashable arguments (a list of ARNs, a mapping)
                front_key = None
            else:
                if child is not None:
                    if await parent.get_credentials() is None:
                        raise NoCredentialsError()
                    return child
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
    with shared.lock:  # a look only: the entry becomes recent with its child, below
        entry: _Entry | None = shared.entries.get(key)
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
        entry = shared.entries.get(key)
        kept = entry is not None
        if entry is None:
            entry = _new_entry(shared, args, cache, refresh)
            shared.put("credentials", key, entry)
        if validate:
            entry.validated = True
        # The shared credentials keep the code source they were made with: one caller's
        # code must never replace it for the others (R8). A usable code is taken only
        # by credentials that have none, which cannot fetch without one anyway.
        if entry.fetcher.token_code is None and is_usable_token_code(args):
            entry.fetcher.set_token_code(args.token_code)  # type: ignore[arg-type]
        child_key = (key, region_key, is_aioboto3)
        child = shared.touch(child_key) if kept else None
        if child is None:
            if kept:
                shared.entries.move_to_end(key)
                shared.children_rebuilt += 1
            child_botocore = _new_child(shared, parent, entry.credentials, region_name)
            child = _wrap_aioboto3(child_botocore) if is_aioboto3 else child_botocore
            child.assume_role_parent_session = session
            shared.put("children", child_key, child)
        if front_key is not None:
            try:
                shared.front[front_key] = child_key
            except TypeError:  # unhashable arguments (a list of ARNs, a mapping)
                pass
            else:
                shared.front.move_to_end(front_key)
                while len(shared.front) > shared.limit("children"):
                    shared.front.popitem(last=False)
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

"""Tenant clients: one aiobotocore client shared by children that differ only in credentials.

A client per tenant costs ~30-50 ms of CPU to open (most of it loading the CA bundle into
a new TLS context) and ~2 MiB to keep, so thousands of tenants cannot each have one. Yet
the children of one parent differ only in their credentials: same service data, same
configuration, same event handlers. Here one client is opened per (children's template,
region, default config, service, client arguments); each lease lends a tenant a small
view of it (:class:`TenantClient`, ~100 bytes; the lease with it ~15 µs of CPU and under
1 KiB) whose calls are signed with that tenant's credentials.

How a call finds its tenant: the shared client is made on a session of its own whose
credentials object (:class:`_TenantCredentials`, installed the way every child gets its
credentials: as the session's ``credential_provider`` component) answers each request
with the credentials of the tenant in the :data:`_current` context variable.
aiobotocore's signer awaits ``get_frozen_credentials()`` inside the task that made the
call, and every signing method of a view (API calls, ``generate_presigned_url`` and
``_post``, aioboto3's transfers) sets the variable for exactly the duration of its
call; paginators and waiters are built by botocore's own ``get_paginator`` /
``get_waiter`` with the view as the client, so each of their requests is such a call.
Tasks started during a call (aioboto3's multipart transfers) copy the variable with the
context, as asyncio and trio both do. A request that reaches the signer with no tenant
set, or with a tenant of another shared client, raises :class:`TenantClientError`:
nothing is ever signed with a key that was not meant for it.

What cannot be shared safely is refused: S3 Express One Zone session authentication
caches a CreateSession identity per bucket in the client (it would serve one tenant's
session to the next), and endpoint discovery caches discovered endpoints per client
(Timestream's are per account). Both raise :class:`TenantClientError` before anything is
sent.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from aiobotocore.credentials import AioRefreshableCredentials
from botocore.configprovider import ConstantProvider
from botocore.credentials import ReadOnlyCredentials

from ._assume import _SHARED_ATTRIBUTE, _botocore_session_of, _FixedCredentialResolver
from ._assume import _wrap_aioboto3 as wrap_aioboto3
from ._child import ChildTemplate, LayeredEmitter
from ._credentials import (
    CREDENTIALS_ATTRIBUTE,
    AssumeRoleCredentials,
    register_expired_token_hook,
)
from ._region import current_region

_log = logging.getLogger("aio_assume_role_lib.pool")


class TenantClientError(RuntimeError):
    """A tenant client (``ClientPool.tenant_client``) was asked for something it cannot
    do safely: a request outside a call of its own tenant, a call after its lease ended,
    or a feature whose state the shared client would mix between tenants (S3 Express One
    Zone session authentication, endpoint discovery). Nothing was sent or signed."""


# The tenant whose call is running in this context (task): a TenantClient, or None.
_current: ContextVar[TenantClient | None] = ContextVar("aio_assume_role_lib_tenant", default=None)

_NO_TENANT = (
    "a request of a shared tenant client reached the signer outside a call of one of "
    "its tenant clients (a method of the client lent by ClientPool.tenant_client(), or "
    "a paginator, waiter or presigned URL made from it); nothing was signed"
)
_LEASE_ENDED = (
    "this tenant client's lease has ended; lease it again with "
    "`async with pool.tenant_client(session, service_name) as client`"
)
# Credentials arguments would make every tenant sign with them.
_CREDENTIAL_ARGUMENTS = frozenset(
    {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_account_id"}
)


class TenantClient:
    """One tenant's view of a shared client: its calls are signed with its credentials.

    Everything else (``meta``, ``exceptions``, ``can_paginate``...) is the shared
    client's. Each shared client gets a subclass of its own (so that a request of one
    shared client can never be signed for a tenant of another), which caches a wrapper
    per signing method on first use.
    """

    __slots__ = ("_client", "_credentials", "_open")

    def __init__(self, client: Any, credentials: AssumeRoleCredentials) -> None:
        self._client = client
        self._credentials = credentials
        self._open = True

    def __getattr__(self, name: str) -> Any:
        # Not set (only while being made), or special: ``view.__aenter__()`` must not
        # reach the shared client's, which only its pool enters and exits.
        if name in TenantClient.__slots__ or name.startswith("__"):
            raise AttributeError(name)
        client = self._client
        value = getattr(client, name)
        if _signs(client, name, value):
            method = _tenant_method(name)
            setattr(type(self), name, method)  # found directly from now on
            return method.__get__(self, type(self))
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._client)) | set(dir(type(self))))

    def get_paginator(self, operation_name: str) -> Any:
        """The shared client's paginator, each page requested through this tenant."""
        self._check_open()
        # botocore's own method, with this view as the client: the paginator calls
        # ``getattr(client, operation_name)``, a method of this view.
        return type(self._client).get_paginator(self, operation_name)

    def get_waiter(self, waiter_name: str) -> Any:
        """The shared client's waiter, each request made through this tenant."""
        self._check_open()
        return type(self._client).get_waiter(self, waiter_name)

    async def close(self) -> None:
        """Refused: the shared client is closed by the pool (leave the ``async with``)."""
        raise TenantClientError(
            "a tenant client is closed by its lease: leave its `async with` block"
        )

    def _check_open(self) -> None:
        if not self._open:
            raise TenantClientError(_LEASE_ENDED)

    def __repr__(self) -> str:
        state = "" if self._open else " (lease ended)"
        return (
            f"<tenant client {type(self._client).__name__} for role "
            f"{self._credentials.role_arn!r}{state}>"
        )


def _signs(client: Any, name: str, value: Any) -> bool:
    """Whether ``client.<name>`` can sign a request: an API method or a public coroutine
    function (``generate_presigned_url``, aioboto3's ``upload_fileobj``...)."""
    if name.startswith("_") or not callable(value):
        return False
    return name in client.meta.method_to_api_mapping or inspect.iscoroutinefunction(value)


def _tenant_method(name: str) -> Any:
    async def call(self: TenantClient, *args: Any, **kwargs: Any) -> Any:
        if not self._open:
            raise TenantClientError(_LEASE_ENDED)
        token = _current.set(self)
        try:
            return await getattr(self._client, name)(*args, **kwargs)
        finally:
            _current.reset(token)

    call.__name__ = call.__qualname__ = name
    return call


class _TenantCredentials(AioRefreshableCredentials):
    """The shared client's credentials: the calling tenant's, per request."""

    method = "assume-role"

    def __init__(self) -> None:
        # botocore's __init__ would set up refresh timing and values: none is used here.
        self.tenant_class: type[TenantClient] | None = None  # set once the client exists

    def _tenant(self) -> AssumeRoleCredentials:
        tenant = _current.get()
        if tenant is None or type(tenant) is not self.tenant_class:
            raise TenantClientError(_NO_TENANT)
        return tenant._credentials

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:  # type: ignore[override]
        return await self._tenant().get_frozen_credentials()

    async def get_account_id(self) -> str | None:
        return await self._tenant().get_account_id()

    async def _refresh(self) -> None:
        await self._tenant().get_frozen_credentials()

    def refresh_needed(self, refresh_in: float | None = None) -> bool:
        return self._tenant().refresh_needed(refresh_in)

    def __repr__(self) -> str:
        return "<credentials of the calling tenant>"


def _calling_tenants_credentials() -> AssumeRoleCredentials | None:
    """Whose credentials an ExpiredToken answer of the shared client concerns."""
    tenant = _current.get()
    return tenant._credentials if tenant is not None else None


def _refuse_s3_express_sessions(request: Any, **_: Any) -> None:
    if request.context.get("signing", {}).get("identity_cache") is not None:
        raise TenantClientError(
            "S3 Express One Zone session authentication keeps one CreateSession identity "
            "per bucket in the client, which a tenant client shares with other tenants; "
            "pass config=AioConfig(s3={'disable_s3_express_session_auth': True}) to sign "
            "each tenant's requests with its own credentials, or use pool.client()"
        )


def _refuse_endpoint_discovery(context: dict[str, Any], **_: Any) -> None:
    if context.get("discovery"):
        raise TenantClientError(
            "endpoint discovery keeps the discovered endpoints in the client, which a "
            "tenant client shares with other tenants (they can differ per account); "
            "pass endpoint_url=, turn discovery off "
            "(AioConfig(endpoint_discovery_enabled=False)), or use pool.client()"
        )


# --- which sessions share a client --------------------------------------------------------


class ClientGroup:
    """What a client made on a child depends on, its credentials aside: children with
    equal groups can share one client."""

    __slots__ = (
        "data_loader",
        "default_config",
        "is_aioboto3",
        "region",
        "template",
        "user_agent",
    )

    def __init__(self, core: Any, is_aioboto3: bool, template: ChildTemplate, parent: Any) -> None:
        self.template = template
        self.is_aioboto3 = is_aioboto3
        self.data_loader = core.get_component("data_loader")
        self.default_config = core.get_default_client_config()
        self.region = current_region(core, parent)
        self.user_agent = (core.user_agent_name, core.user_agent_version, core.user_agent_extra)

    def base_session(self, credentials: Any) -> Any:
        """A session like the group's children, with ``credentials``'s resolver: what the
        shared client is made on (aioboto3's ``Session`` for aioboto3 children)."""
        region = self.region

        def configure(store: Any, _session: Any) -> None:
            store.set_config_provider("region", ConstantProvider(region))

        base = self.template.new_session(
            _FixedCredentialResolver(credentials), self.data_loader, self.default_config, configure
        )
        register_expired_token_hook(base, _calling_tenants_credentials)
        session = wrap_aioboto3(base) if self.is_aioboto3 else base
        base.user_agent_name, base.user_agent_version, base.user_agent_extra = self.user_agent
        return session


class Tenant:
    """A child session as a tenant: its credentials and the group whose client it uses."""

    __slots__ = ("credentials", "group")

    def __init__(self, credentials: AssumeRoleCredentials, group: ClientGroup) -> None:
        self.credentials = credentials
        self.group = group


# Per template: how many handlers of its own a child has when nobody registered any
# (the library's ExpiredToken hook, and aioboto3's customizations on an aioboto3 child).
_pristine_handlers: weakref.WeakKeyDictionary[ChildTemplate, dict[bool, int]] = (
    weakref.WeakKeyDictionary()
)


def _handlers_of_a_pristine_child(group: ClientGroup) -> int:
    counts = _pristine_handlers.setdefault(group.template, {})
    count = counts.get(group.is_aioboto3)
    if count is None:
        base = group.base_session(_TenantCredentials())
        core, _ = _botocore_session_of(base)
        count = counts[group.is_aioboto3] = len(core._original_handler._ops)
    return count


_fallback_logged = False


def tenant_of(session: Any, kwargs: dict[str, Any]) -> Tenant | None:
    """``session`` as a tenant, or None if its client cannot be shared (a child of a
    botocore whose sessions are not light: it gets a client of its own).

    Raises TypeError if ``session`` is not a child of ``assume_role()``, ValueError if it
    has settings of its own that a shared client would ignore.
    """
    core, is_aioboto3 = _botocore_session_of(session)
    resolver = core.get_component("credential_provider")
    credentials = getattr(resolver, CREDENTIALS_ATTRIBUTE, None)
    parent = getattr(session, "assume_role_parent_session", None)
    if not isinstance(credentials, AssumeRoleCredentials) or parent is None:
        raise TypeError(
            "tenant_client() takes a session returned by assume_role() (its clients "
            "differ only in credentials); for any other session use pool.client()"
        )
    passed = sorted(_CREDENTIAL_ARGUMENTS.intersection(kwargs))
    if passed:
        raise ValueError(
            f"tenant_client() signs with the session's credentials: do not pass {passed}"
        )
    shared = parent.__dict__.get(_SHARED_ATTRIBUTE)
    template = shared.template if shared is not None else None
    emitter = getattr(core, "_original_handler", None)
    if (
        template is None
        or not isinstance(emitter, LayeredEmitter)
        or emitter._base is not template._emitter
    ):
        global _fallback_logged
        if not _fallback_logged:
            _fallback_logged = True
            _log.warning(
                "tenant_client(): this botocore's sessions are not the ones light "
                "children are made for; each tenant gets a client of its own"
            )
        return None
    own_settings = sorted(set(core.instance_variables()) - {"region"})
    if own_settings:
        raise ValueError(
            f"this child has configuration of its own ({', '.join(own_settings)}), which "
            "a tenant client shared with other tenants would not apply; use pool.client() "
            "for it"
        )
    parent_core, _ = _botocore_session_of(parent)
    group = ClientGroup(core, is_aioboto3, template, parent_core)
    own_handlers = -1 if emitter._plain is not None else len(emitter._ops)
    if own_handlers != _handlers_of_a_pristine_child(group):
        raise ValueError(
            "this child has event handlers of its own, which a tenant client shared with "
            "other tenants would not run; use pool.client() for it"
        )
    tenant = Tenant(credentials, group)
    return tenant


# --- the shared client ----------------------------------------------------------------


class SharedClient:
    """An open shared client, and the class of its tenants' views."""

    __slots__ = ("client", "tenant_class")

    def __init__(self, client: Any, tenant_class: type[TenantClient]) -> None:
        self.client = client
        self.tenant_class = tenant_class

    def lend(self, credentials: AssumeRoleCredentials) -> TenantClient:
        return self.tenant_class(self.client, credentials)


class SharedClientContext:
    """Opens (``async with``) the shared client of ``group`` for ``service_name``."""

    def __init__(self, group: ClientGroup, service_name: str, kwargs: dict[str, Any]) -> None:
        self._group = group
        self._service_name = service_name
        self._kwargs = kwargs
        self._context: Any = None

    async def __aenter__(self) -> SharedClient:
        credentials = _TenantCredentials()
        session = self._group.base_session(credentials)
        make = session.client if self._group.is_aioboto3 else session.create_client
        context = make(self._service_name, **self._kwargs)
        client = await context.__aenter__()
        self._context = context
        model = client.meta.service_model
        if model.service_name == "s3":
            client.meta.events.register_last("before-sign.s3", _refuse_s3_express_sessions)
        if model.endpoint_discovery_operation is not None:
            client.meta.events.register("before-call", _refuse_endpoint_discovery)
        tenant_class = type(f"Tenant{type(client).__name__}", (TenantClient,), {"__slots__": ()})
        credentials.tenant_class = tenant_class
        return SharedClient(client, tenant_class)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.__aexit__(exc_type, exc, tb)

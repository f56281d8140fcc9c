"""The contenders: this library and the anchors, each used the way its users use it.

Every contender offers the same operations, so a scenario is written once:

* ``role_handle(arn)``: one role session made once and kept; its ``credentials()`` is what
  aiobotocore's request signer awaits (``get_frozen_credentials()``);
* ``per_request_credentials(arn)``: the per-request pattern: get a role session for this
  request, then use its credentials for the first time;
* ``repeat_assume(arn)``: just the "get me a session for this role" call;
* ``parent_client()`` / ``role_client(arn)``: make and close an STS client on the parent,
  or on a role session obtained the per-request way;
* ``traffic_request(arn)``: one request of a service under steady traffic (credentials,
  and when asked a signed GetCallerIdentity, the stand-in for "the AWS API call");
* ``fresh_parent_credentials(arn)``: make a new parent session, get a role session from
  it, fetch its credentials once, and drop everything (a session per tenant or job). The
  new sessions share one botocore data loader (``_new_aio_session``): what a service
  making many sessions does, and it saves ~0.2 s of JSON loading per session.

How each anchor is used:

* aws-assume-role-lib 2.10.0 (sync, boto3): ``assume_role(boto3.Session(), arn)`` called
  per request, either inside the event loop ("in loop") or pushed to the default thread
  pool with ``asyncio.to_thread`` ("to_thread"). Its AWS call is a boto3 client call.
* aiobotocore 2.25.1's built-in AssumeRoleProvider: a profile with ``role_arn`` and
  ``source_profile`` in a temporary AWS config file, used through
  ``AioSession(profile=...)``. Per request (S2-S4) that means a new session per request;
  under steady traffic (S6, S7) one long-lived session and client, which is how profiles
  are used (a session per request would cap it at a few requests per second).
* aioboto3-assume 0.1.2: ``aioboto3_assume.assume_role(aioboto3.Session(), {RoleArn,
  RoleSessionName})``, which returns a new aioboto3 session with
  ``AioDeferredRefreshableCredentials``; used like the aiobotocore provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aws_assume_role_lib
import boto3
import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from _measure import Use

try:  # stack S2 only: aioboto3 cannot be installed beside aiobotocore 3.x (stack S1)
    import aioboto3
    import aioboto3_assume
except ImportError:
    aioboto3 = aioboto3_assume = None
from aio_assume_role_lib import RefreshPolicy, assume_role

# Long-lived clients that carry steady traffic need more than aiobotocore's default of 10
# pooled connections, or the pool, not the credentials, sets the pace.
TRAFFIC_CLIENT_CONFIG = AioConfig(max_pool_connections=200)

THIS = "this"
SYNC_LOOP = "sync-loop"
SYNC_THREAD = "sync-thread"
AIOBOTOCORE = "aiobotocore"
AIOBOTO3_ASSUME = "aioboto3-assume"

LABELS = {
    THIS: "aio-assume-role-lib (this library)",
    SYNC_LOOP: "aws-assume-role-lib 2.10.0, in loop",
    SYNC_THREAD: "aws-assume-role-lib 2.10.0, to_thread",
    AIOBOTOCORE: "aiobotocore's AssumeRoleProvider",
    AIOBOTO3_ASSUME: "aioboto3-assume 0.1.2",
}
SHORT_LABELS = {
    THIS: "this library",
    SYNC_LOOP: "sync lib, in loop",
    SYNC_THREAD: "sync lib, to_thread",
    AIOBOTOCORE: "aiobotocore provider",
    AIOBOTO3_ASSUME: "aioboto3-assume",
}
ORDER = [THIS, SYNC_LOOP, SYNC_THREAD, AIOBOTOCORE, AIOBOTO3_ASSUME]


class RoleHandle:
    """A role session made once; ``credentials()`` is one use of its shared credentials."""

    def __init__(
        self,
        credentials: Callable[[], Awaitable[Use]],
        hot_path: Callable[[], Awaitable[Any]] | None = None,
        hot_path_sync: Callable[[], Any] | None = None,
    ) -> None:
        self.credentials = credentials
        self.hot_path = hot_path
        """``get_frozen_credentials`` itself, for timing the hot path (async contenders)."""
        self.hot_path_sync = hot_path_sync
        """The same for a sync contender called inside the loop."""


_SHARED: dict[str, Any] = {}


def _shared_loader() -> Any:
    loader = _SHARED.get("loader")
    if loader is None:
        loader = _SHARED["loader"] = AioSession().get_component("data_loader")
    return loader


def _new_aio_session(**kwargs: Any) -> AioSession:
    session = AioSession(**kwargs)
    session.register_component("data_loader", _shared_loader())
    return session


def _new_botocore_session() -> Any:
    session = botocore.session.Session()
    session.register_component("data_loader", _shared_loader())
    return session


def _use(frozen: Any) -> Use:
    return Use(time.time(), frozen.access_key)


class _ClientKeeper:
    """Long-lived clients, made once per session (concurrent first requests share one)."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[int, Any] = {}
        self._lock = asyncio.Lock()

    async def get(self, key: Any, make: Callable[[], Any]) -> Any:
        client = self._clients.get(id(key))
        if client is None:
            async with self._lock:
                client = self._clients.get(id(key))
                if client is None:
                    client = await self._stack.enter_async_context(make())
                    self._clients[id(key)] = client
        return client

    async def close(self) -> None:
        self._clients.clear()
        await self._stack.aclose()


class Contender:
    key: str

    @property
    def label(self) -> str:
        return LABELS[self.key]

    async def warm_up(self) -> None:
        """Load the service data a running service would already have loaded."""
        await self.parent_client()

    async def role_handle(self, role_arn: str) -> RoleHandle:
        raise NotImplementedError

    async def per_request_credentials(self, role_arn: str) -> Use:
        raise NotImplementedError

    async def repeat_assume(self, role_arn: str) -> None:
        raise NotImplementedError

    async def parent_client(self) -> None:
        raise NotImplementedError

    async def role_client(self, role_arn: str) -> None:
        raise NotImplementedError

    def traffic_request(
        self, role_arn: str, refresh: RefreshPolicy | None
    ) -> Callable[[bool], Awaitable[Use]]:
        raise NotImplementedError

    async def fresh_parent_credentials(self, role_arn: str) -> Use:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class ThisLibrary(Contender):
    key = THIS

    def __init__(self) -> None:
        self.parent = AioSession()
        self._clients = _ClientKeeper()

    async def role_handle(self, role_arn: str) -> RoleHandle:
        child = await assume_role(self.parent, role_arn)
        creds = await child.get_credentials()

        async def credentials() -> Use:
            return _use(await creds.get_frozen_credentials())

        return RoleHandle(credentials, hot_path=creds.get_frozen_credentials)

    async def per_request_credentials(self, role_arn: str) -> Use:
        child = await assume_role(self.parent, role_arn)
        creds = await child.get_credentials()
        return _use(await creds.get_frozen_credentials())

    async def repeat_assume(self, role_arn: str) -> None:
        await assume_role(self.parent, role_arn)

    async def parent_client(self) -> None:
        async with self.parent.create_client("sts"):
            pass

    async def role_client(self, role_arn: str) -> None:
        child = await assume_role(self.parent, role_arn)
        async with child.create_client("sts"):
            pass

    def traffic_request(
        self, role_arn: str, refresh: RefreshPolicy | None
    ) -> Callable[[bool], Awaitable[Use]]:
        async def request(send: bool) -> Use:
            # The per-request pattern the library is built for: assume_role in the handler.
            child = await assume_role(self.parent, role_arn, refresh=refresh)
            creds = await child.get_credentials()
            use = _use(await creds.get_frozen_credentials())
            if send:
                client = await self._clients.get(
                    child, lambda: child.create_client("sts", config=TRAFFIC_CLIENT_CONFIG)
                )
                await client.get_caller_identity()
            return use

        return request

    async def fresh_parent_credentials(self, role_arn: str) -> Use:
        parent = _new_aio_session()
        child = await assume_role(parent, role_arn)
        creds = await child.get_credentials()
        return _use(await creds.get_frozen_credentials())

    async def close(self) -> None:
        await self._clients.close()


class SyncLibrary(Contender):
    """aws-assume-role-lib called per request, in the loop or in a worker thread."""

    def __init__(self, in_thread: bool) -> None:
        self.key = SYNC_THREAD if in_thread else SYNC_LOOP
        self._in_thread = in_thread
        self.parent = boto3.Session()

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._in_thread:
            return await asyncio.to_thread(function, *args)
        return function(*args)

    def _assume(self, role_arn: str) -> Any:
        return aws_assume_role_lib.assume_role(self.parent, role_arn)

    async def role_handle(self, role_arn: str) -> RoleHandle:
        child = await self._run(self._assume, role_arn)
        creds = child.get_credentials()  # deferred: no STS call yet

        def credentials_sync() -> Use:
            return _use(creds.get_frozen_credentials())

        async def credentials() -> Use:
            result: Use = await self._run(credentials_sync)
            return result

        if self._in_thread:

            async def hot_path() -> Any:
                return await asyncio.to_thread(creds.get_frozen_credentials)

            return RoleHandle(credentials, hot_path=hot_path)
        return RoleHandle(credentials, hot_path_sync=creds.get_frozen_credentials)

    def _per_request_sync(self, role_arn: str) -> Use:
        return _use(self._assume(role_arn).get_credentials().get_frozen_credentials())

    async def per_request_credentials(self, role_arn: str) -> Use:
        result: Use = await self._run(self._per_request_sync, role_arn)
        return result

    async def repeat_assume(self, role_arn: str) -> None:
        await self._run(self._assume, role_arn)

    async def parent_client(self) -> None:
        await self._run(lambda: self.parent.client("sts").close())

    async def role_client(self, role_arn: str) -> None:
        await self._run(lambda: self._assume(role_arn).client("sts").close())

    def traffic_request(
        self, role_arn: str, refresh: RefreshPolicy | None
    ) -> Callable[[bool], Awaitable[Use]]:
        def request_sync(send: bool) -> Use:
            child = self._assume(role_arn)
            use = _use(child.get_credentials().get_frozen_credentials())
            if send:
                client = child.client("sts")
                try:
                    client.get_caller_identity()
                finally:
                    client.close()
            return use

        async def request(send: bool) -> Use:
            result: Use = await self._run(request_sync, send)
            return result

        return request

    def _fresh_parent_sync(self, role_arn: str) -> Use:
        parent = boto3.Session(botocore_session=_new_botocore_session())
        child = aws_assume_role_lib.assume_role(parent, role_arn)
        return _use(child.get_credentials().get_frozen_credentials())

    async def fresh_parent_credentials(self, role_arn: str) -> Use:
        result: Use = await self._run(self._fresh_parent_sync, role_arn)
        return result


class _AsyncAnchor(Contender):
    """Shared code of the two async anchors: a role session, its credentials, its clients."""

    def __init__(self) -> None:
        self._clients = _ClientKeeper()

    def _role_session(self, role_arn: str) -> Any:
        raise NotImplementedError

    def _client(self, session: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def role_handle(self, role_arn: str) -> RoleHandle:
        session = self._role_session(role_arn)
        creds = await session.get_credentials()

        async def credentials() -> Use:
            return _use(await creds.get_frozen_credentials())

        return RoleHandle(credentials, hot_path=creds.get_frozen_credentials)

    async def per_request_credentials(self, role_arn: str) -> Use:
        creds = await self._role_session(role_arn).get_credentials()
        return _use(await creds.get_frozen_credentials())

    async def repeat_assume(self, role_arn: str) -> None:
        self._role_session(role_arn)

    async def role_client(self, role_arn: str) -> None:
        async with self._client(self._role_session(role_arn)):
            pass

    def traffic_request(
        self, role_arn: str, refresh: RefreshPolicy | None
    ) -> Callable[[bool], Awaitable[Use]]:
        session = self._role_session(role_arn)  # long-lived: see the module docstring

        async def request(send: bool) -> Use:
            creds = await session.get_credentials()
            use = _use(await creds.get_frozen_credentials())
            if send:
                client = await self._clients.get(
                    session, lambda: self._client(session, config=TRAFFIC_CLIENT_CONFIG)
                )
                await client.get_caller_identity()
            return use

        return request

    def _role_session_of_new_parent(self, role_arn: str) -> Any:
        raise NotImplementedError

    async def fresh_parent_credentials(self, role_arn: str) -> Use:
        creds = await self._role_session_of_new_parent(role_arn).get_credentials()
        return _use(await creds.get_frozen_credentials())

    async def close(self) -> None:
        await self._clients.close()


class AiobotocoreProvider(_AsyncAnchor):
    key = AIOBOTOCORE

    def __init__(self, config_file: Path) -> None:
        super().__init__()
        self.parent = AioSession()
        self._config_file = config_file
        self._profiles: dict[str, str] = {}

    def _profile(self, role_arn: str) -> str:
        """The config-file profile for ``role_arn`` (added to the file the first time)."""
        name = self._profiles.get(role_arn)
        if name is None:
            name = f"role-{len(self._profiles)}"
            with self._config_file.open("a") as config:
                config.write(
                    f"\n[profile {name}]\nrole_arn = {role_arn}\n"
                    f"source_profile = source\nrole_session_name = bench-{name}\n"
                )
            self._profiles[role_arn] = name
        return name

    def _role_session(self, role_arn: str) -> Any:
        return AioSession(profile=self._profile(role_arn))

    def _role_session_of_new_parent(self, role_arn: str) -> Any:
        # The profile session is its own parent.
        return _new_aio_session(profile=self._profile(role_arn))

    def _client(self, session: Any, **kwargs: Any) -> Any:
        return session.create_client("sts", **kwargs)

    async def parent_client(self) -> None:
        async with self.parent.create_client("sts"):
            pass


class Aioboto3Assume(_AsyncAnchor):
    key = AIOBOTO3_ASSUME

    def __init__(self) -> None:
        super().__init__()
        self.parent = aioboto3.Session()

    def _role_session(self, role_arn: str, parent: Any = None) -> Any:
        return aioboto3_assume.assume_role(
            source_session=self.parent if parent is None else parent,
            assume_role_kwargs={"RoleArn": role_arn, "RoleSessionName": "bench-aioboto3-assume"},
        )

    def _role_session_of_new_parent(self, role_arn: str) -> Any:
        return self._role_session(role_arn, aioboto3.Session(botocore_session=_new_aio_session()))

    def _client(self, session: Any, **kwargs: Any) -> Any:
        return session.client("sts", **kwargs)

    async def parent_client(self) -> None:
        async with self.parent.client("sts"):
            pass


def make_contenders(config_file: Path) -> list[Contender]:
    return [
        ThisLibrary(),
        SyncLibrary(in_thread=False),
        SyncLibrary(in_thread=True),
        AiobotocoreProvider(config_file),
        *([Aioboto3Assume()] if aioboto3_assume is not None else []),
    ]

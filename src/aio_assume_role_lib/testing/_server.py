"""The server: :class:`LoopbackSTS`, its thread, its controls and request dispatch.

The server runs aiohttp's low-level ``web.Server`` on its own event loop in a daemon
thread. Each request is parsed (``_protocol``), authenticated (``_sigv4``), routed to
``GetCallerIdentity`` or ``AssumeRole`` (checked by ``_validation``, issuing an identity
from ``_identities``), or answered with a queued fault (``_faults``). The sources a parent
session's own credentials may come from are served too: ``AssumeRoleWithWebIdentity``
(unsigned, as on EKS with IRSA) here, and at paths of their own (``_sources``) the
container-credentials endpoint (ECS, EKS Pod Identity), the SSO portal's
``GetRoleCredentials`` and instance metadata (EC2, IMDSv2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

from ._faults import FAULTS, Fault, Stopping, drop, respond, trickle
from ._identities import Identity, expiration, issue, root_identity
from ._protocol import (
    VERSION,
    STSError,
    assume_role_body,
    caller_identity_body,
    error_body,
    parse_request,
    web_identity_body,
    xml_response,
)
from ._sigv4 import authenticate
from ._sources import (
    CONTAINER_CREDENTIALS,
    CONTAINER_PATH,
    CONTAINER_ROLE,
    INSTANCE_METADATA,
    INSTANCE_ROLE,
    SSO_ROLE_CREDENTIALS,
    SourceEndpoints,
    sso_role_name,
)
from ._validation import AssumeRoleRequest, check_assume_role

__all__ = [
    "CONTAINER_CREDENTIALS",
    "INSTANCE_METADATA",
    "SSO_ROLE_CREDENTIALS",
    "WEB_IDENTITY",
    "LoopbackSTS",
    "STSCall",
]

WEB_IDENTITY = "AssumeRoleWithWebIdentity"
"""The action of a web identity (IRSA) parent's source, for ``fail_next(action=...)``."""
# CONTAINER_CREDENTIALS ("ContainerCredentials"), SSO_ROLE_CREDENTIALS
# ("GetRoleCredentials") and INSTANCE_METADATA ("InstanceMetadata"): the action names of
# the other sources' requests, in ``calls`` and for ``fail_next(action=...)``.
_FAULT_ACTIONS = (
    "AssumeRole",
    WEB_IDENTITY,
    CONTAINER_CREDENTIALS,
    SSO_ROLE_CREDENTIALS,
    INSTANCE_METADATA,
)

# The public module's name: what users configure logging for.
_log = logging.getLogger("aio_assume_role_lib.testing")


@dataclass(frozen=True)
class STSCall:
    """One request that :class:`LoopbackSTS` received, as recorded in ``calls``.

    It holds no secret access key and no session token.
    """

    action: str
    """``"AssumeRole"``, ``"GetCallerIdentity"``, ``"AssumeRoleWithWebIdentity"``,
    ``"ContainerCredentials"`` (the container endpoint), ``"GetRoleCredentials"`` (the SSO
    portal), ``"InstanceMetadata"`` (any instance metadata request), or whatever the
    request said."""
    params: Mapping[str, str]
    """The request's parameters as sent (``RoleArn``, ``RoleSessionName``,
    ``Tags.member.1.Key``, ...), without ``Action`` and ``Version``; for the SSO portal
    ``role_name`` and ``account_id``; for instance metadata the ``path``."""
    caller_arn: str | None
    """ARN of the identity whose key signed the request; None for an unknown key."""
    access_key_id: str | None
    """The access key id that signed the request; None when unsigned or unreadable."""
    time: float
    """When the request arrived (``time.time()``)."""
    outcome: str
    """``"ok"``, the error code returned (``"ExpiredToken"``, ``"ValidationError"``,
    ``"SignatureDoesNotMatch"``, ...), or the :data:`Fault` applied."""
    issued_access_key_id: str | None = None
    """For a request that issued credentials: their access key id."""
    expiration: float | None = None
    """For a request that issued credentials: their expiry (epoch seconds)."""


class LoopbackSTS:
    """An STS endpoint on ``127.0.0.1`` for tests (see the module docstring).

    Start it with :meth:`start` (or ``with LoopbackSTS() as sts:`` / ``async with``), point
    clients at :attr:`endpoint_url`, sign with :attr:`root_credentials`, stop it with
    :meth:`stop`. All attributes and methods are thread-safe and may be used at any time,
    from any thread or event loop.

    Args:
        credential_lifetime: lifetime in seconds of the credentials ``AssumeRole``
            issues (float allowed, e.g. ``6.0``); None (default) honours the request's
            ``DurationSeconds`` (3600 when absent).
        latency: seconds every request waits before it is processed (default 0).
        account_id: the 12-digit account of the root identity (default
            ``"123456789012"``). Assumed roles belong to the account in their role ARN.
        port: the port to bind on 127.0.0.1; 0 (default) picks a free one. A stopped
            server started again binds the same port again, so ``endpoint_url`` and
            clients built on it stay valid.
    """

    def __init__(
        self,
        *,
        credential_lifetime: float | None = None,
        latency: float = 0.0,
        account_id: str = "123456789012",
        port: int = 0,
    ) -> None:
        if not re.fullmatch(r"\d{12}", account_id, re.ASCII):
            raise ValueError("account_id must be 12 digits")
        if not 0 <= port <= 65535:
            raise ValueError("port must be in 0..65535")
        self._lock = threading.Lock()
        self._lifecycle = threading.Lock()
        self._credential_lifetime: float | None = None
        self._latency = 0.0
        self._source_latency = 0.0
        self.credential_lifetime = credential_lifetime
        self.latency = latency
        self._account_id = account_id
        self._port = port
        self._calls: list[STSCall] = []
        self._faults: dict[str, deque[str]] = {action: deque() for action in _FAULT_ACTIONS}
        self._assume_role_count = 0
        self._sources = SourceEndpoints(self)
        root = root_identity(account_id)
        self._root = root
        # Every identity that may sign a request, by access key id (guarded by _lock).
        self._identities: dict[str, Identity] = {root.access_key_id: root}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._web_server: web.Server | None = None
        self._stopping: asyncio.Event | None = None

    # --- settings -----------------------------------------------------------------

    @property
    def credential_lifetime(self) -> float | None:
        """Lifetime (seconds) of issued credentials; None honours ``DurationSeconds``.

        Settable at any time; applies to credentials issued afterwards.
        """
        return self._credential_lifetime

    @credential_lifetime.setter
    def credential_lifetime(self, value: float | None) -> None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError("credential_lifetime must be a positive number of seconds or None")
        self._credential_lifetime = None if value is None else float(value)

    @property
    def latency(self) -> float:
        """Seconds every request waits before it is processed. Settable at any time."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError("latency must be a non-negative number of seconds")
        self._latency = float(value)

    @property
    def source_latency(self) -> float:
        """Seconds the requests of a parent's source (``AssumeRoleWithWebIdentity``, the
        container endpoint, the SSO portal, instance metadata) wait on top of
        :attr:`latency` (a slow source). Settable at any time."""
        return self._source_latency

    @source_latency.setter
    def source_latency(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError("source_latency must be a non-negative number of seconds")
        self._source_latency = float(value)

    @property
    def account_id(self) -> str:
        """The root identity's account id."""
        return self._account_id

    # --- addresses and credentials ------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (0 until the first :meth:`start`)."""
        return self._port

    @property
    def endpoint_url(self) -> str:
        """``"http://127.0.0.1:<port>"``; valid once :meth:`start` has been called."""
        if self._port == 0:
            raise RuntimeError("LoopbackSTS has not been started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def root_credentials(self) -> tuple[str, str]:
        """``(access_key_id, secret_access_key)`` of the long-term key the server accepts.

        Its identity is :attr:`root_arn`. Different for each instance.
        """
        return self._root.access_key_id, self._root.secret_access_key

    @property
    def root_arn(self) -> str:
        """``arn:aws:iam::<account_id>:user/loopback-root``, the root key's identity."""
        return self._root.arn

    @property
    def container_credentials_url(self) -> str:
        """The container-credentials endpoint: what ``AWS_CONTAINER_CREDENTIALS_FULL_URI``
        holds on ECS or EKS Pod Identity. It answers a GET whose ``Authorization`` header
        is :attr:`container_authorization_token` with new credentials of
        :attr:`container_role_arn`, as JSON (``AccessKeyId``, ``SecretAccessKey``,
        ``Token``, ``Expiration``, ...), living ``credential_lifetime`` (else 1 hour)."""
        return self.endpoint_url + CONTAINER_PATH

    @property
    def container_authorization_token(self) -> str:
        """The token the container endpoint requires (``AWS_CONTAINER_AUTHORIZATION_TOKEN``)."""
        return self._sources.container_token

    @property
    def container_role_arn(self) -> str:
        """The role whose credentials the container endpoint serves."""
        return f"arn:aws:iam::{self._account_id}:role/{CONTAINER_ROLE}"

    @property
    def sso_access_token(self) -> str:
        """The access token of the SSO login the portal accepts (what ``aws sso login``
        leaves in ``~/.aws/sso/cache``). It is a credential: do not log it."""
        return self._sources.sso_access_token

    def revoke_sso_access_token(self) -> None:
        """End the SSO login: from now on the portal answers ``UnauthorizedException``
        (HTTP 401) to the current :attr:`sso_access_token` (which becomes a new one), as
        when the session has expired or an administrator has revoked it."""
        self._sources.revoke_sso_access_token()

    def sso_role_arn(self, permission_set: str = "LoopbackSSO") -> str:
        """The role whose credentials the SSO portal serves for ``permission_set``
        (the profile's ``sso_role_name``): ``role/AWSReservedSSO_<permission set>_<16 hex>``,
        the session named ``loopback-sso-user``."""
        return f"arn:aws:iam::{self._account_id}:role/{sso_role_name(permission_set)}"

    def write_sso_profile(
        self,
        config_file: str | Path,
        token_cache_dir: str | Path,
        *,
        profile: str = "loopback-sso",
        permission_set: str = "LoopbackSSO",
        legacy: bool = False,
    ) -> dict[str, str]:
        """Set up an SSO parent that gets its credentials from this server's SSO portal.

        Writes ``config_file`` (replacing it) with ``profile``: an ``sso_session``
        profile (``legacy=True``: the older form with ``sso_start_url`` in the profile)
        for this server's account and ``permission_set``, and writes the cached access
        token of an SSO login, valid 8 hours, into ``token_cache_dir`` as
        ``<sha1>.json``, the file botocore's ``SSOTokenLoader`` reads. botocore reads that
        cache in ``~/.aws/sso/cache``, a path it computes when it is imported: the pytest
        plugin's ``isolated_aws_env`` points it at the temporary home's
        ``.aws/sso/cache``; never pass your real one.

        Returns the environment of that parent: ``AWS_CONFIG_FILE``, ``AWS_PROFILE``,
        ``AWS_ENDPOINT_URL_SSO`` (the portal: this server), the STS endpoint and the
        region. Remove ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (they come
        first in the chain).
        """
        self._sources.write_sso_profile(
            Path(config_file),
            Path(token_cache_dir),
            profile=profile,
            permission_set=permission_set,
            legacy=legacy,
        )
        return {
            "AWS_CONFIG_FILE": str(config_file),
            "AWS_PROFILE": profile,
            "AWS_ENDPOINT_URL_SSO": self.endpoint_url,
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    @property
    def instance_role_arn(self) -> str:
        """The role of the instance profile whose credentials instance metadata serves
        (sessions named ``i-0123456789abcdef0``, the instance's id)."""
        return f"arn:aws:iam::{self._account_id}:role/{INSTANCE_ROLE}"

    def instance_metadata_environ(self) -> dict[str, str]:
        """Environment variables of an EC2 parent that gets its credentials from this
        server's instance metadata (IMDSv2: token first, then the role's credentials):
        ``AWS_EC2_METADATA_SERVICE_ENDPOINT``, the STS endpoint and the region. Remove
        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_EC2_METADATA_DISABLED``,
        and have no profile that gives credentials: instance metadata comes last.

        The credentials' ``Expiration`` is in whole seconds, as instance metadata's is, and
        botocore treats credentials it gets from there with less than about 17-25 minutes
        left as an outage's stale ones: it moves their expiry to 17-25 minutes from now.
        Give them a ``credential_lifetime`` of 30 minutes or more to see their own expiry.
        """
        return {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.endpoint_url + "/",
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def web_identity_environ(self, token_file: str, role_arn: str | None = None) -> dict[str, str]:
        """Environment variables of a web identity (EKS IRSA) parent that gets its
        credentials here: ``AWS_ROLE_ARN`` (default ``role/loopback-web-identity``),
        ``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_ROLE_SESSION_NAME``, the STS endpoint and
        the region. Write any non-empty token into ``token_file``; remove
        ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (they come first in the chain)."""
        return {
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ROLE_ARN": role_arn
            or f"arn:aws:iam::{self._account_id}:role/loopback-web-identity",
            "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
            "AWS_ROLE_SESSION_NAME": "loopback-web-identity",
        }

    def container_environ(self) -> dict[str, str]:
        """Environment variables of a container (ECS, EKS Pod Identity) parent that gets
        its credentials here: ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
        ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, the STS endpoint and the region. Remove
        ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (they come first in the chain)."""
        return {
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.container_credentials_url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": self._sources.container_token,
        }

    def environ(self) -> dict[str, str]:
        """Environment variables that send STS calls and the default credential chain here.

        ``AWS_ENDPOINT_URL_STS``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (the
        root key) and ``AWS_DEFAULT_REGION`` (``us-east-1``). Meant for a subprocess's
        environment or ``monkeypatch.setenv``; remove ``AWS_SESSION_TOKEN``,
        ``AWS_PROFILE`` and ``AWS_ENDPOINT_URL`` from that environment yourself if set.
        """
        key, secret = self.root_credentials
        return {
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    # --- faults and records -------------------------------------------------------

    def fail_next(self, fault: Fault, count: int = 1, *, action: str = "AssumeRole") -> None:
        """Make the next ``count`` ``AssumeRole`` requests fail with ``fault``.

        Faults queue up in order across calls; each authenticated ``AssumeRole`` request
        consumes one (requests rejected by authentication, and ``GetCallerIdentity``,
        consume none). A faulted request is recorded in :attr:`calls` with the fault's
        name as ``outcome``. See :data:`Fault` for what each one does.

        ``action="AssumeRoleWithWebIdentity"``, ``"ContainerCredentials"``,
        ``"GetRoleCredentials"`` (the SSO portal) or ``"InstanceMetadata"`` queues them for
        a parent's source instead (each has a queue of its own, and each request of the
        source consumes one), so that a test can take the source down while
        ``AssumeRole`` works, or the other way round.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if action not in _FAULT_ACTIONS:
            raise ValueError(f"action must be one of {list(_FAULT_ACTIONS)}, not {action!r}")
        with self._lock:
            self._faults[action].extend([fault] * count)

    def clear_faults(self, action: str | None = None) -> None:
        """Drop the faults queued for ``action`` (all actions when None)."""
        with self._lock:
            for name, queue in self._faults.items():
                if action is None or name == action:
                    queue.clear()

    @property
    def pending_faults(self) -> tuple[str, ...]:
        """``AssumeRole`` faults queued by :meth:`fail_next` and not yet consumed, next first."""
        with self._lock:
            return tuple(self._faults["AssumeRole"])

    @property
    def calls(self) -> list[STSCall]:
        """A snapshot of the recorded requests, oldest first.

        A request is recorded once its outcome is decided (a hanging or trickling one as
        soon as the fault is chosen). Nothing secret is recorded.
        """
        with self._lock:
            return list(self._calls)

    @property
    def assume_role_count(self) -> int:
        """How many ``AssumeRole`` requests arrived, failed ones included."""
        with self._lock:
            return self._assume_role_count

    def reset(self) -> None:
        """Forget recorded calls, pending faults and the ``AssumeRole`` count.

        Issued credentials stay valid until they expire.
        """
        with self._lock:
            self._calls.clear()
            for queue in self._faults.values():
                queue.clear()
            self._assume_role_count = 0

    # --- lifecycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._thread is not None

    def start(self) -> None:
        """Bind ``127.0.0.1`` and serve from a daemon thread; return once it accepts.

        Raises RuntimeError if it is already running, OSError if it cannot bind.
        """
        with self._lifecycle:
            if self._thread is not None:
                raise RuntimeError("LoopbackSTS is already running")
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._serve, args=(ready, failure), name="LoopbackSTS", daemon=True
            )
            thread.start()
            if not ready.wait(30):  # pragma: no cover - a machine in trouble
                raise RuntimeError("LoopbackSTS did not start within 30 s")
            if failure:
                thread.join(5)
                raise failure[0]
            self._thread = thread
            _log.debug("LoopbackSTS serving on %s", self.endpoint_url)

    def stop(self) -> None:
        """Stop serving and release the port; return within a couple of seconds.

        In-flight requests (hanging or trickling ones included) lose their connection,
        and idle keep-alive connections are closed. Does nothing if not running.
        """
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            if threading.current_thread() is thread:
                raise RuntimeError("LoopbackSTS.stop() called from its own server thread")
            try:
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
                future.result(timeout=5)
            except Exception:  # pragma: no cover - best effort; the loop stops anyway
                _log.debug("LoopbackSTS shutdown did not complete cleanly", exc_info=True)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            self._thread = None
            _log.debug("LoopbackSTS on port %d stopped", self._port)

    def __enter__(self) -> LoopbackSTS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LoopbackSTS:
        # start() takes a few milliseconds: it starts a thread and binds a socket.
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio or another framework: stop() is short anyway
            self.stop()
        else:
            await loop.run_in_executor(None, self.stop)

    def __repr__(self) -> str:
        where = f"http://127.0.0.1:{self._port}" if self._port else None
        with self._lock:
            calls, assume_roles = len(self._calls), self._assume_role_count
        return (
            f"<LoopbackSTS endpoint_url={where!r} running={self.running} "
            f"calls={calls} assume_role_count={assume_roles}>"
        )

    # --- server thread ------------------------------------------------------------

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=1))
            loop.run_until_complete(loop.shutdown_asyncgens())
            if self._loop is loop:
                self._loop = self._server = self._web_server = self._stopping = None
            loop.close()

    async def _setup(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._web_server = web.Server(self._handle, access_log=None)
        self._server = await loop.create_server(self._web_server, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        self._loop = loop

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        assert self._server is not None
        assert self._web_server is not None
        self._stopping.set()
        self._server.close()  # closes the listening socket: the port is free again
        for connection in self._web_server.connections:
            connection.close()  # idle keep-alive connections end now, busy ones after
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._web_server.shutdown(0.25), 2)
        for connection in self._web_server.connections:
            connection.force_close()
        await asyncio.sleep(0.01)  # let the transports close their sockets

    async def _pause(self, seconds: float) -> None:
        """Sleep, or raise Stopping as soon as the server stops."""
        stopping = self._stopping
        assert stopping is not None
        if stopping.is_set():
            raise Stopping
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise Stopping

    # --- request handling ---------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        received = time.time()
        try:
            return await self._dispatch(request, received)
        except (Stopping, ConnectionError):
            return drop(request)
        except Exception:
            _log.exception("LoopbackSTS: internal error")
            request_id = str(uuid.uuid4())
            return xml_response(
                500,
                error_body("InternalFailure", "Internal error in LoopbackSTS", request_id, 500),
                request_id,
            )

    def _record(
        self,
        action: str,
        params: dict[str, str],
        identity: Identity | None,
        access_key_id: str | None,
        received: float,
        outcome: str,
        issued: Identity | None = None,
    ) -> None:
        call = STSCall(
            action=action,
            params=params,
            caller_arn=identity.arn if identity is not None else None,
            access_key_id=access_key_id,
            time=received,
            outcome=outcome,
            issued_access_key_id=issued.access_key_id if issued is not None else None,
            expiration=issued.expiration if issued is not None else None,
        )
        with self._lock:
            self._calls.append(call)
        _log.debug(
            "LoopbackSTS %s by %s (%s): %s",
            action or "<no action>",
            call.caller_arn,
            access_key_id,
            outcome,
        )

    def _lookup(self, access_key_id: str) -> Identity | None:
        with self._lock:
            return self._identities.get(access_key_id)

    async def _dispatch(self, request: web.BaseRequest, received: float) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        body = await request.read()
        parsed = parse_request(request.method, request.raw_path, body)
        source = self._sources.handler(parsed.path)
        if source is not None:
            return await source(request, parsed, received, request_id)
        params = parsed.params
        action = parsed.action
        recorded = parsed.recorded_params
        if action == "AssumeRole":
            with self._lock:
                self._assume_role_count += 1

        await self._pause(self._latency)

        def fail(error: STSError) -> web.StreamResponse:
            self._record(
                action, recorded, error.identity, error.access_key_id, received, error.code
            )
            return xml_response(
                error.status,
                error_body(error.code, error.message, request_id, error.status),
                request_id,
            )

        if request.method not in ("GET", "POST"):
            return fail(STSError(405, "InvalidAction", f"Unsupported method {request.method}"))
        if action == WEB_IDENTITY and params.get("Version") == VERSION:
            return await self._web_identity(request, parsed.params, recorded, received, request_id)
        auth = authenticate(request.method, request.headers, parsed, body, received, self._lookup)
        if isinstance(auth, STSError):
            return fail(auth)
        caller = auth
        key_id = caller.access_key_id

        if not action:
            return fail(STSError(400, "MissingAction", "Missing Action", caller, key_id))
        if action not in ("AssumeRole", "GetCallerIdentity") or params.get("Version") != VERSION:
            message = f"Could not find operation {action} for version {params.get('Version')}"
            return fail(STSError(400, "InvalidAction", message, caller, key_id))

        if action == "GetCallerIdentity":
            self._record(action, recorded, caller, key_id, received, "ok")
            return xml_response(200, caller_identity_body(caller, request_id), request_id)

        with self._lock:
            queue = self._faults["AssumeRole"]
            fault = queue.popleft() if queue else None
        if fault is not None and fault != "trickle":
            self._record(action, recorded, caller, key_id, received, fault)
            return await respond(fault, request, caller, params, request_id, self._pause)

        result = self._assume_role(caller, params, received, request_id)
        if isinstance(result, STSError):
            if fault is None:
                return fail(result)
            # A trickle delivers whatever the real answer is, errors included.
            self._record(action, recorded, caller, key_id, received, fault)
            status = result.status
            payload = error_body(result.code, result.message, request_id, status)
            return await trickle(request, status, payload, request_id, self._pause)
        issued, payload = result
        self._record(action, recorded, caller, key_id, received, fault or "ok", issued)
        if fault is not None:
            return await trickle(request, 200, payload, request_id, self._pause)
        return xml_response(200, payload, request_id)

    def _next_fault(self, action: str) -> str | None:
        with self._lock:
            queue = self._faults[action]
            return queue.popleft() if queue else None

    async def _web_identity(
        self,
        request: web.BaseRequest,
        params: Mapping[str, str],
        recorded: dict[str, str],
        received: float,
        request_id: str,
    ) -> web.StreamResponse:
        """``AssumeRoleWithWebIdentity``: unsigned; the token is only checked for presence."""
        # Never record the token: it is a credential.
        recorded = {k: v for k, v in recorded.items() if k != "WebIdentityToken"}
        await self._pause(self._source_latency)
        fault = self._next_fault(WEB_IDENTITY)
        if fault is not None and fault != "trickle":
            self._record(WEB_IDENTITY, recorded, None, None, received, fault)
            return await respond(fault, request, None, params, request_id, self._pause)
        checked = check_assume_role(self._root, params)
        if not isinstance(checked, STSError) and not params.get("WebIdentityToken"):
            checked = STSError(
                400,
                "ValidationError",
                "1 validation error detected: Value null at 'webIdentityToken' failed to "
                "satisfy constraint: Member must not be null",
            )
        if isinstance(checked, STSError):
            self._record(WEB_IDENTITY, recorded, None, None, received, checked.code)
            payload = error_body(checked.code, checked.message, request_id, checked.status)
            return xml_response(checked.status, payload, request_id)
        issued = self._new_identity(
            checked.account,
            checked.role_name,
            checked.session_name,
            checked.partition,
            received,
            checked.duration,
        )
        payload = web_identity_body(issued, request_id, subject="system:serviceaccount:loopback")
        self._record(WEB_IDENTITY, recorded, None, None, received, fault or "ok", issued)
        if fault is not None:
            return await trickle(request, 200, payload, request_id, self._pause)
        return xml_response(200, payload, request_id)

    def _new_identity(
        self,
        account: str,
        role_name: str,
        session_name: str,
        partition: str,
        received: float,
        duration: int,
    ) -> Identity:
        issued = issue(
            partition=partition,
            account=account,
            role_name=role_name,
            session_name=session_name,
            expires=expiration(received, duration, self._credential_lifetime),
        )
        with self._lock:
            self._identities[issued.access_key_id] = issued
        return issued

    def _assume_role(
        self, caller: Identity, params: Mapping[str, str], received: float, request_id: str
    ) -> tuple[Identity, bytes] | STSError:
        """Check an ``AssumeRole`` request; issue (and remember) credentials if valid.

        Returns the issued identity and the response body, or the error to answer. Runs
        on the server's thread. Tests subclass LoopbackSTS and override this method
        (tests/test_reliability.py sets a per-role lifetime here): keep its signature.
        """
        checked = check_assume_role(caller, params)
        if isinstance(checked, STSError):
            return checked
        return self._issue(checked, received, request_id)

    def _issue(
        self, checked: AssumeRoleRequest, received: float, request_id: str
    ) -> tuple[Identity, bytes]:
        """Issue (and remember) credentials for a valid request; return them and the body."""
        issued = issue(
            partition=checked.partition,
            account=checked.account,
            role_name=checked.role_name,
            session_name=checked.session_name,
            expires=expiration(received, checked.duration, self._credential_lifetime),
        )
        body = assume_role_body(
            issued,
            request_id,
            source_identity=checked.source_identity,
            packed_policy_size=checked.packed_policy_size,
        )
        with self._lock:
            self._identities[issued.access_key_id] = issued
        return issued, body

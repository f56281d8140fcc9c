"""A loopback STS endpoint for tests: :class:`LoopbackSTS`.

``LoopbackSTS`` serves the two STS actions this library uses, ``AssumeRole`` and
``GetCallerIdentity``, on ``http://127.0.0.1:<free port>``, speaking the real AWS query
protocol (form-encoded requests, XML responses in the STS namespace), so unmodified
botocore / aiobotocore / aioboto3 clients talk to it. Point a client at it with
``endpoint_url=sts.endpoint_url`` and sign with :attr:`LoopbackSTS.root_credentials`::

    from aiobotocore.session import AioSession
    from aio_assume_role_lib.testing import LoopbackSTS

    with LoopbackSTS(credential_lifetime=6.0) as sts:
        key, secret = sts.root_credentials
        session = AioSession()
        async with session.create_client(
            "sts",
            region_name="us-east-1",
            endpoint_url=sts.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        ) as client:
            response = await client.assume_role(
                RoleArn="arn:aws:iam::123456789012:role/Reader", RoleSessionName="test"
            )
        assert sts.assume_role_count == 1

For subprocesses (or ``monkeypatch.setenv``), :meth:`LoopbackSTS.environ` gives the
environment variables that route the default credential chain and STS endpoint to it.

What it does like real STS:

- Every request must carry a SigV4 ``Authorization`` header made with a key it knows (the
  root key, or a key pair it issued); the signature is verified for real. Unknown keys,
  bad signatures, missing or wrong session tokens and **expired credentials**
  (``ExpiredToken``) are rejected with the real error codes and HTTP statuses.
- ``AssumeRole`` checks its parameters the way STS does (role ARN shape, session name,
  ``DurationSeconds`` 900..43200, external id, MFA serial and code, at most 10 policy ARNs
  and 50 tags, role chaining limited to one hour) and answers ``ValidationError`` or
  ``AccessDenied`` in the real wording style.
- Issued credentials work for further calls (role chaining), and ``GetCallerIdentity``
  shows the identity that signed.

What it does for tests:

- :attr:`~LoopbackSTS.credential_lifetime` shortens (or lengthens) the lifetime of the
  credentials it issues, e.g. to 6 seconds, whatever ``DurationSeconds`` says.
- :attr:`~LoopbackSTS.latency` delays every response (the server stays concurrent).
- :meth:`~LoopbackSTS.fail_next` makes the next ``AssumeRole`` calls fail: throttling,
  a 5xx, ``AccessDenied``, a dropped connection, a hang, a malformed body, or a response
  that trickles in over ~30 s.
- :attr:`~LoopbackSTS.calls` records every request (no secrets in it).

It does not: enforce trust or IAM policies (any known identity may assume any role),
check an MFA code's value (any 6 digits pass), support presigned (query-string) SigV4,
or limit the role's ``MaxSessionDuration`` below 12 hours.

The server runs in its own daemon thread with its own asyncio event loop, so it serves
code under test on asyncio, on trio, on several event loops in turn and in subprocesses
alike. Nothing in this module logs or shows a secret access key or a session token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import TracebackType
from typing import Literal, get_args
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

__all__ = ["FAULTS", "Fault", "LoopbackSTS", "STSCall"]

_log = logging.getLogger(__name__)

Fault = Literal["throttling", "5xx", "access_denied", "drop", "hang", "malformed", "trickle"]
"""A one-shot fault for :meth:`LoopbackSTS.fail_next`:

- ``"throttling"``: HTTP 400 ``Throttling`` "Rate exceeded".
- ``"5xx"``: HTTP 500 ``InternalFailure``.
- ``"access_denied"``: HTTP 403 ``AccessDenied`` "User: ... is not authorized to perform:
  sts:AssumeRole on resource: ...".
- ``"drop"``: the connection is closed without any HTTP response.
- ``"hang"``: no response until the server stops (at most 120 s); then the connection is
  closed without a response.
- ``"malformed"``: HTTP 200 with a body that is not XML.
- ``"trickle"``: HTTP 200 with a valid response (real, usable credentials) whose body is
  sent a few bytes every 0.5 s, so that the whole takes about 30 s. Each read returns
  data well within any read timeout; only an overall deadline catches it.
"""

FAULTS: frozenset[str] = frozenset(get_args(Fault))
"""Every valid :data:`Fault` name."""

_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
_VERSION = "2011-06-15"
_ALGORITHM = "AWS4-HMAC-SHA256"
_MAX_CLOCK_SKEW = 15 * 60.0
_HANG_CAP = 120.0
_TRICKLE_INTERVAL = 0.5
_TRICKLE_TOTAL = 30.0
_ID_ALPHABET = string.ascii_uppercase + string.digits

_ROLE_ARN_RE = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>\d{12}):role/"
    r"(?P<path>(?:[\x21-\x2e\x30-\x7e]+/)*)(?P<name>[\w+=,.@-]{1,64})",
    re.ASCII,
)
_TEXT_RE = re.compile(r"[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")
_TEXT_PATTERN = (
    r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+"
)
_POLICY_RE = re.compile(r"[\t\n\r\x20-\xff]+")
_POLICY_PATTERN = r"[\u0009\u000A\u000D\u0020-\u00FF]+"
_NAME_RE = re.compile(r"[\w+=,.@-]*", re.ASCII)
_NAME_PATTERN = r"[\w+=,.@-]*"
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]*", re.ASCII)
_EXTERNAL_ID_PATTERN = r"[\w+=,.@:\/-]*"
_SERIAL_RE = re.compile(r"[\w+=/:,.@-]*", re.ASCII)
_SERIAL_PATTERN = r"[\w+=/:,.@-]*"
_TOKEN_CODE_RE = re.compile(r"\d*", re.ASCII)
_TOKEN_CODE_PATTERN = r"[\d]*"
_TAG_KEY_RE = re.compile(r"[\w\s.:/=+\-@]+")
_TAG_KEY_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+"
_TAG_VALUE_RE = re.compile(r"[\w\s.:/=+\-@]*")
_TAG_VALUE_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
_MEMBER_RE = re.compile(
    r"(?P<list>PolicyArns|Tags|TransitiveTagKeys)\.member\.(?P<n>\d+)(?P<rest>.*)"
)


@dataclass(frozen=True)
class STSCall:
    """One request that :class:`LoopbackSTS` received, as recorded in ``calls``.

    It holds no secret access key and no session token.
    """

    action: str
    """``"AssumeRole"``, ``"GetCallerIdentity"``, or whatever the request said."""
    params: Mapping[str, str]
    """The request's parameters as sent (``RoleArn``, ``RoleSessionName``,
    ``Tags.member.1.Key``, ...), without ``Action`` and ``Version``."""
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
    """For an ``AssumeRole`` that issued credentials: their access key id."""
    expiration: float | None = None
    """For an ``AssumeRole`` that issued credentials: their expiry (epoch seconds)."""


@dataclass(frozen=True)
class _Identity:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(repr=False)
    expiration: float | None
    arn: str
    user_id: str
    account: str
    partition: str
    is_role_session: bool


@dataclass(frozen=True)
class _Error:
    status: int
    code: str
    message: str
    identity: _Identity | None = None
    access_key_id: str | None = None


class _Stopping(Exception):
    """The server is stopping: drop the connection."""


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _stable_id(prefix: str, seed: str, length: int = 17) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:length])


def _secret_key() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()


def _session_token() -> str:
    return "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(240)).decode()


def _iso8601(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _amz_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# --- SigV4 verification --------------------------------------------------------------


def _remove_dot_segments(path: str) -> str:
    segments: list[str] = []
    for part in path.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if segments:
                segments.pop()
        else:
            segments.append(part)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and segments else ""
    return first + "/".join(segments) + last


def _canonical_uri(path: str) -> str:
    # Non-S3 services: normalize, then URI-encode the (already encoded) path again.
    return quote(_remove_dot_segments(path) or "/", safe="/~")


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for pair in raw_query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _sigv4_signature(secret_access_key: str, scope: list[str], string_to_sign: str) -> str:
    key = ("AWS4" + secret_access_key).encode()
    for part in scope:
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_authorization(header: str) -> dict[str, str] | None:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != _ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


# --- request validation ---------------------------------------------------------------


class _Problems:
    """Collects violations and renders them the way STS (Coral) does."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: str | None, where: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{value}'"
        self.items.append(f"Value {shown} at '{where}' failed to satisfy constraint: {constraint}")

    def text(
        self,
        value: str | None,
        where: str,
        min_len: int,
        max_len: int,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        *,
        required: bool = False,
    ) -> None:
        if value is None:
            if required:
                self.add(None, where, "Member must not be null")
            return
        if pattern is not None and value and not pattern.fullmatch(value):
            self.add(
                value, where, f"Member must satisfy regular expression pattern: {pattern_text}"
            )
        if len(value) < min_len:
            self.add(value, where, f"Member must have length greater than or equal to {min_len}")
        if len(value) > max_len:
            self.add(value, where, f"Member must have length less than or equal to {max_len}")

    def message(self) -> str:
        count = len(self.items)
        plural = "error" if count == 1 else "errors"
        return f"{count} validation {plural} detected: " + "; ".join(self.items)


def _members(params: Mapping[str, str], name: str) -> list[dict[str, str]] | None:
    """Collect the members of a query-protocol list parameter (None if absent)."""
    found: dict[int, dict[str, str]] = {}
    present = name in params
    for key, value in params.items():
        match = _MEMBER_RE.fullmatch(key)
        if match is None or match["list"] != name:
            continue
        present = True
        found.setdefault(int(match["n"]), {})[match["rest"].lstrip(".")] = value
    if not present:
        return None
    return [found[index] for index in sorted(found)]


def _render(xml_body: str) -> bytes:
    return xml_body.encode()


def _error_body(code: str, message: str, request_id: str, status: int) -> bytes:
    kind = "Receiver" if status >= 500 else "Sender"
    return _render(
        f'<ErrorResponse xmlns="{_NAMESPACE}">\n'
        f"  <Error>\n"
        f"    <Type>{kind}</Type>\n"
        f"    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n"
        f"  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        f"</ErrorResponse>\n"
    )


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
        self.credential_lifetime = credential_lifetime
        self.latency = latency
        self._account_id = account_id
        self._port = port
        self._calls: list[STSCall] = []
        self._faults: deque[str] = deque()
        self._assume_role_count = 0
        root = _Identity(
            access_key_id=_random_id("AKIA", 16),
            secret_access_key=_secret_key(),
            session_token=None,
            expiration=None,
            arn=f"arn:aws:iam::{account_id}:user/loopback-root",
            user_id=_stable_id("AIDA", f"{account_id}:loopback-root"),
            account=account_id,
            partition="aws",
            is_role_session=False,
        )
        self._root = root
        self._identities: dict[str, _Identity] = {root.access_key_id: root}
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

    def fail_next(self, fault: Fault, count: int = 1) -> None:
        """Make the next ``count`` ``AssumeRole`` requests fail with ``fault``.

        Faults queue up in order across calls; each authenticated ``AssumeRole`` request
        consumes one (requests rejected by authentication, and ``GetCallerIdentity``,
        consume none). A faulted request is recorded in :attr:`calls` with the fault's
        name as ``outcome``. See :data:`Fault` for what each one does.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def pending_faults(self) -> tuple[str, ...]:
        """Faults queued by :meth:`fail_next` and not yet consumed, next first."""
        with self._lock:
            return tuple(self._faults)

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
            self._faults.clear()
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
        """Sleep, or raise _Stopping as soon as the server stops."""
        stopping = self._stopping
        assert stopping is not None
        if stopping.is_set():
            raise _Stopping
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise _Stopping

    # --- request handling ---------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        received = time.time()
        try:
            return await self._dispatch(request, received)
        except (_Stopping, ConnectionError):
            return self._drop(request)
        except Exception:
            _log.exception("LoopbackSTS: internal error")
            request_id = str(uuid.uuid4())
            return self._xml(
                500,
                _error_body("InternalFailure", "Internal error in LoopbackSTS", request_id, 500),
                request_id,
            )

    @staticmethod
    def _drop(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp cannot write this to the closed transport and treats the request as
        # a premature client disconnection: the client gets no response at all.
        return web.Response(status=500)

    @staticmethod
    def _xml(status: int, body: bytes, request_id: str) -> web.Response:
        return web.Response(
            status=status,
            body=body,
            headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
        )

    def _record(
        self,
        action: str,
        params: dict[str, str],
        identity: _Identity | None,
        access_key_id: str | None,
        received: float,
        outcome: str,
        issued: _Identity | None = None,
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

    async def _dispatch(self, request: web.BaseRequest, received: float) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        body = await request.read()
        target = request.raw_path
        if "://" in target.partition("?")[0]:
            # The absolute form (``POST http://host:port/ HTTP/1.1``), which httpx sends.
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, raw_query = target.partition("?")
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        if request.method == "POST":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        recorded = {k: v for k, v in params.items() if k not in ("Action", "Version")}
        if action == "AssumeRole":
            with self._lock:
                self._assume_role_count += 1

        await self._pause(self._latency)

        def fail(error: _Error) -> web.StreamResponse:
            self._record(
                action, recorded, error.identity, error.access_key_id, received, error.code
            )
            return self._xml(
                error.status,
                _error_body(error.code, error.message, request_id, error.status),
                request_id,
            )

        if request.method not in ("GET", "POST"):
            return fail(_Error(405, "InvalidAction", f"Unsupported method {request.method}"))
        auth = self._authenticate(request, path, raw_query, body, received)
        if isinstance(auth, _Error):
            return fail(auth)
        caller = auth
        key_id = caller.access_key_id

        if not action:
            return fail(_Error(400, "MissingAction", "Missing Action", caller, key_id))
        if action not in ("AssumeRole", "GetCallerIdentity") or params.get("Version") != _VERSION:
            message = f"Could not find operation {action} for version {params.get('Version')}"
            return fail(_Error(400, "InvalidAction", message, caller, key_id))

        if action == "GetCallerIdentity":
            self._record(action, recorded, caller, key_id, received, "ok")
            return self._xml(200, self._caller_identity_body(caller, request_id), request_id)

        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault != "trickle":
            self._record(action, recorded, caller, key_id, received, fault)
            return await self._apply_fault(request, fault, caller, params, request_id)

        result = self._assume_role(caller, params, received, request_id)
        if isinstance(result, _Error):
            if fault is None:
                return fail(result)
            self._record(action, recorded, caller, key_id, received, fault)
            status = result.status
            payload = _error_body(result.code, result.message, request_id, status)
            return await self._trickle(request, status, payload, request_id)
        issued, payload = result
        with self._lock:
            self._identities[issued.access_key_id] = issued
        self._record(action, recorded, caller, key_id, received, fault or "ok", issued)
        if fault is not None:
            return await self._trickle(request, 200, payload, request_id)
        return self._xml(200, payload, request_id)

    async def _apply_fault(
        self,
        request: web.BaseRequest,
        fault: str,
        caller: _Identity,
        params: Mapping[str, str],
        request_id: str,
    ) -> web.StreamResponse:
        if fault == "throttling":
            return self._xml(
                400, _error_body("Throttling", "Rate exceeded", request_id, 400), request_id
            )
        if fault == "5xx":
            message = (
                "The request processing has failed because of an unknown error, "
                "exception or failure."
            )
            return self._xml(
                500, _error_body("InternalFailure", message, request_id, 500), request_id
            )
        if fault == "access_denied":
            message = (
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole "
                f"on resource: {params.get('RoleArn', '')}"
            )
            return self._xml(403, _error_body("AccessDenied", message, request_id, 403), request_id)
        if fault == "malformed":
            return web.Response(
                status=200,
                body=b"upstream error: this is not an XML document {",
                headers={"Content-Type": "text/plain", "x-amzn-RequestId": request_id},
            )
        if fault == "hang":
            with contextlib.suppress(_Stopping):
                await self._pause(_HANG_CAP)
        return self._drop(request)  # "drop", and "hang" once it is over

    async def _trickle(
        self, request: web.BaseRequest, status: int, payload: bytes, request_id: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=status, headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
        )
        response.content_length = len(payload)
        await response.prepare(request)
        steps = int(_TRICKLE_TOTAL / _TRICKLE_INTERVAL)
        size = max(1, math.ceil(len(payload) / steps))
        for offset in range(0, len(payload), size):
            await self._pause(_TRICKLE_INTERVAL)
            await response.write(payload[offset : offset + size])
        await response.write_eof()
        return response

    def _authenticate(
        self,
        request: web.BaseRequest,
        path: str,
        raw_query: str,
        body: bytes,
        received: float,
    ) -> _Identity | _Error:
        header = request.headers.get("Authorization")
        if header is None:
            return _Error(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        fields = _parse_authorization(header)
        if fields is None:
            algorithm = header.strip().partition(" ")[0]
            return _Error(400, "IncompleteSignature", f"Unsupported AWS 'algorithm': '{algorithm}'")
        missing = [
            name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields
        ]
        amz_date = request.headers.get("X-Amz-Date")
        if missing or amz_date is None:
            parts = [f"Authorization header requires '{name}' parameter." for name in missing]
            if amz_date is None:
                parts.append("Authorization header requires existence of a 'X-Amz-Date' header.")
            return _Error(400, "IncompleteSignature", " ".join(parts))
        credential = fields["Credential"].split("/")
        if len(credential) != 5 or not all(credential):
            message = (
                f"Credential should be scoped to a valid region, not '{fields['Credential']}'."
            )
            return _Error(400, "IncompleteSignature", message)
        access_key_id, date, region, service, terminator = credential

        with self._lock:
            identity = self._identities.get(access_key_id)
        if identity is None:
            return _Error(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                access_key_id=access_key_id,
            )

        def reject(status: int, code: str, message: str) -> _Error:
            return _Error(status, code, message, identity, access_key_id)

        token = request.headers.get("X-Amz-Security-Token")
        if identity.session_token is None:
            token_ok = token is None
        else:
            token_ok = token is not None and hmac.compare_digest(
                token.encode(), identity.session_token.encode()
            )
        if not token_ok:
            return reject(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        if identity.expiration is not None and received >= identity.expiration:
            return reject(
                403, "ExpiredToken", "The security token included in the request is expired"
            )

        try:
            signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            message = f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
            return reject(400, "IncompleteSignature", message)
        if date != amz_date[:8]:
            message = (
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'."
            )
            return reject(403, "SignatureDoesNotMatch", message)
        if service != "sts":
            message = f"Credential should be scoped to correct service: 'sts'. Got '{service}'."
            return reject(403, "SignatureDoesNotMatch", message)
        if terminator != "aws4_request":
            message = (
                f"Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{terminator}'."
            )
            return reject(403, "SignatureDoesNotMatch", message)
        signed_headers = fields["SignedHeaders"].split(";")
        if "host" not in signed_headers:
            message = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
            return reject(400, "IncompleteSignature", message)
        skew = received - signed_at.timestamp()
        if skew > _MAX_CLOCK_SKEW:
            message = (
                f"Signature expired: {amz_date} is now earlier than "
                f"{_amz_date(received - _MAX_CLOCK_SKEW)} ({_amz_date(received)} - 15 min.)"
            )
            return reject(403, "SignatureDoesNotMatch", message)
        if skew < -_MAX_CLOCK_SKEW:
            message = (
                f"Signature not yet current: {amz_date} is still later than "
                f"{_amz_date(received + _MAX_CLOCK_SKEW)} ({_amz_date(received)} + 15 min.)"
            )
            return reject(403, "SignatureDoesNotMatch", message)

        canonical_headers = "".join(
            f"{name}:{','.join(' '.join(v.split()) for v in request.headers.getall(name, []))}\n"
            for name in signed_headers
        )
        if request.headers.get("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD":
            payload_hash = "UNSIGNED-PAYLOAD"
        else:
            payload_hash = hashlib.sha256(body).hexdigest()
        canonical_request = "\n".join(
            [
                request.method,
                _canonical_uri(path),
                _canonical_query(raw_query),
                canonical_headers,
                fields["SignedHeaders"],
                payload_hash,
            ]
        )
        scope = [date, region, service, terminator]
        string_to_sign = "\n".join(
            [
                _ALGORITHM,
                amz_date,
                "/".join(scope),
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        expected = _sigv4_signature(identity.secret_access_key, scope, string_to_sign)
        if not hmac.compare_digest(expected, fields["Signature"]):
            message = (
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method. Consult the "
                "service documentation for details."
            )
            return reject(403, "SignatureDoesNotMatch", message)
        return identity

    # --- actions --------------------------------------------------------------------

    def _caller_identity_body(self, caller: _Identity, request_id: str) -> bytes:
        return _render(
            f'<GetCallerIdentityResponse xmlns="{_NAMESPACE}">\n'
            f"  <GetCallerIdentityResult>\n"
            f"    <Arn>{escape(caller.arn)}</Arn>\n"
            f"    <UserId>{escape(caller.user_id)}</UserId>\n"
            f"    <Account>{caller.account}</Account>\n"
            f"  </GetCallerIdentityResult>\n"
            f"  <ResponseMetadata>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            f"  </ResponseMetadata>\n"
            f"</GetCallerIdentityResponse>\n"
        )

    def _assume_role(
        self, caller: _Identity, params: Mapping[str, str], received: float, request_id: str
    ) -> tuple[_Identity, bytes] | _Error:
        def error(status: int, code: str, message: str) -> _Error:
            return _Error(status, code, message, caller, caller.access_key_id)

        problems = _Problems()
        role_arn = params.get("RoleArn")
        session_name = params.get("RoleSessionName")
        problems.text(role_arn, "roleArn", 20, 2048, _TEXT_RE, _TEXT_PATTERN, required=True)
        role = _ROLE_ARN_RE.fullmatch(role_arn) if role_arn is not None else None
        if role_arn is not None and 20 <= len(role_arn) <= 2048 and role is None:
            problems.add(
                role_arn,
                "roleArn",
                "Member must be a valid IAM role ARN "
                "(arn:<partition>:iam::<12-digit account id>:role/<path/><role name>)",
            )
        problems.text(
            session_name, "roleSessionName", 2, 64, _NAME_RE, _NAME_PATTERN, required=True
        )
        duration_text = params.get("DurationSeconds")
        duration = 3600
        if duration_text is not None:
            try:
                duration = int(duration_text)
            except ValueError:
                problems.add(duration_text, "durationSeconds", "Member must be an integer")
            else:
                if duration < 900:
                    problems.add(
                        duration_text,
                        "durationSeconds",
                        "Member must have value greater than or equal to 900",
                    )
                if duration > 43200:
                    problems.add(
                        duration_text,
                        "durationSeconds",
                        "Member must have value less than or equal to 43200",
                    )
        external_id = params.get("ExternalId")
        problems.text(external_id, "externalId", 2, 1224, _EXTERNAL_ID_RE, _EXTERNAL_ID_PATTERN)
        serial = params.get("SerialNumber")
        problems.text(serial, "serialNumber", 9, 256, _SERIAL_RE, _SERIAL_PATTERN)
        token_code = params.get("TokenCode")
        problems.text(token_code, "tokenCode", 6, 6, _TOKEN_CODE_RE, _TOKEN_CODE_PATTERN)
        source_identity = params.get("SourceIdentity")
        problems.text(source_identity, "sourceIdentity", 2, 64, _NAME_RE, _NAME_PATTERN)
        policy = params.get("Policy")
        problems.text(policy, "policy", 1, 2048, _POLICY_RE, _POLICY_PATTERN)

        policy_arns = _members(params, "PolicyArns")
        if policy_arns is not None:
            if len(policy_arns) > 10:
                problems.add(
                    f"[{len(policy_arns)} members]",
                    "policyArns",
                    "Member must have length less than or equal to 10",
                )
            for index, member in enumerate(policy_arns, 1):
                problems.text(
                    member.get("arn"),
                    f"policyArns.{index}.member.arn",
                    20,
                    2048,
                    _TEXT_RE,
                    _TEXT_PATTERN,
                )
        tags = _members(params, "Tags")
        if tags is not None:
            if len(tags) > 50:
                problems.add(
                    f"[{len(tags)} members]",
                    "tags",
                    "Member must have length less than or equal to 50",
                )
            for index, member in enumerate(tags, 1):
                where = f"tags.{index}.member"
                problems.text(
                    member.get("Key"),
                    f"{where}.key",
                    1,
                    128,
                    _TAG_KEY_RE,
                    _TAG_KEY_PATTERN,
                    required=True,
                )
                problems.text(
                    member.get("Value"),
                    f"{where}.value",
                    0,
                    256,
                    _TAG_VALUE_RE,
                    _TAG_VALUE_PATTERN,
                    required=True,
                )
        transitive = _members(params, "TransitiveTagKeys")
        if transitive is not None:
            if len(transitive) > 50:
                problems.add(
                    f"[{len(transitive)} members]",
                    "transitiveTagKeys",
                    "Member must have length less than or equal to 50",
                )
            for index, member in enumerate(transitive, 1):
                problems.text(
                    member.get(""),
                    f"transitiveTagKeys.{index}.member",
                    1,
                    128,
                    _TAG_KEY_RE,
                    _TAG_KEY_PATTERN,
                )
        if problems.items:
            return error(400, "ValidationError", problems.message())
        assert role_arn is not None
        assert role is not None
        assert session_name is not None

        if policy is not None:
            try:
                json.loads(policy)
            except ValueError:
                return error(
                    400, "MalformedPolicyDocument", "The policy is not in the valid JSON format."
                )
        tag_keys = [member["Key"] for member in tags or []]
        if len({key.lower() for key in tag_keys}) != len(tag_keys):
            return error(
                400,
                "ValidationError",
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            )
        lowered = {key.lower() for key in tag_keys}
        for member in transitive or []:
            if member.get("", "").lower() not in lowered:
                return error(
                    400,
                    "ValidationError",
                    "The specified transitive tag key must be included in the requested tags.",
                )
        if caller.is_role_session and duration > 3600:
            return error(
                400,
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit "
                "for roles assumed by role chaining.",
            )
        if (serial is None) != (token_code is None):
            return error(
                403,
                "AccessDenied",
                "MultiFactorAuthentication failed, must provide both MFA serial number "
                "and one time pass code.",
            )

        lifetime = self._credential_lifetime
        seconds = float(duration) if lifetime is None else lifetime
        expiration = math.floor((received + seconds) * 1000) / 1000
        partition, account, role_name = role["partition"], role["account"], role["name"]
        role_id = _stable_id("AROA", f"{partition}:{account}:{role_name}")
        issued = _Identity(
            access_key_id=_random_id("ASIA", 16),
            secret_access_key=_secret_key(),
            session_token=_session_token(),
            expiration=expiration,
            arn=f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}",
            user_id=f"{role_id}:{session_name}",
            account=account,
            partition=partition,
            is_role_session=True,
        )
        extras = ""
        if source_identity is not None:
            extras += f"    <SourceIdentity>{escape(source_identity)}</SourceIdentity>\n"
        if policy is not None or policy_arns is not None or tags is not None:
            packed = len(policy or "") + sum(len(m.get("arn", "")) for m in policy_arns or [])
            packed += sum(len(m.get("Key", "")) + len(m.get("Value", "")) for m in tags or [])
            size = min(100, max(1, math.ceil(packed * 100 / 8192)))
            extras += f"    <PackedPolicySize>{size}</PackedPolicySize>\n"
        assert issued.session_token is not None
        body = _render(
            f'<AssumeRoleResponse xmlns="{_NAMESPACE}">\n'
            f"  <AssumeRoleResult>\n"
            f"{extras}"
            f"    <AssumedRoleUser>\n"
            f"      <Arn>{escape(issued.arn)}</Arn>\n"
            f"      <AssumedRoleId>{escape(issued.user_id)}</AssumedRoleId>\n"
            f"    </AssumedRoleUser>\n"
            f"    <Credentials>\n"
            f"      <AccessKeyId>{issued.access_key_id}</AccessKeyId>\n"
            f"      <SecretAccessKey>{escape(issued.secret_access_key)}</SecretAccessKey>\n"
            f"      <SessionToken>{escape(issued.session_token)}</SessionToken>\n"
            f"      <Expiration>{_iso8601(expiration)}</Expiration>\n"
            f"    </Credentials>\n"
            f"  </AssumeRoleResult>\n"
            f"  <ResponseMetadata>\n"
            f"    <RequestId>{request_id}</RequestId>\n"
            f"  </ResponseMetadata>\n"
            f"</AssumeRoleResponse>\n"
        )
        return issued, body

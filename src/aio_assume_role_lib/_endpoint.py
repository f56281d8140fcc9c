"""A container-credentials endpoint: a session's refreshing credentials for any process.

Every AWS SDK (and the AWS CLI, obstore, ...) reads credentials from a local HTTP
endpoint when ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and an authorization token
(``AWS_CONTAINER_AUTHORIZATION_TOKEN`` or ``..._TOKEN_FILE``) are set: the protocol ECS
and EKS Pod Identity use. :func:`serve_container_credentials` serves a session's
credentials that way, straight from the library's refresh engine: the first request
waits for the first fetch, every later one is answered from memory, and the engine's
single flight, windows and static stability hold for every process that asks.

The server is a small HTTP/1.1 server on anyio (asyncio and trio alike), written for
this one job: one ``GET`` with no body, a bounded request head, a bounded number of
connections, a token bucket, and nothing served without the token.
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.to_thread

__all__ = [
    "ContainerCredentialsEndpoint",
    "serve_container_credentials",
]

_log = logging.getLogger("aio_assume_role_lib.endpoint")

FULL_URI_VARIABLE = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
TOKEN_FILE_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"

PATH = "/credentials"
# The request line and headers of one request (an SDK sends ~200 bytes).
MAX_HEAD_BYTES = 8192
MAX_HEADERS = 32
# Connections open at once; more are closed at once, unanswered.
MAX_CONNECTIONS = 64
# How long a connection may take to send one request's head, and stay idle between two.
HEAD_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 30.0
# How long a request may wait for credentials (the first fetch, or a blocking refresh):
# the engine's own deadline (30 s per refresh) ends it sooner.
ANSWER_TIMEOUT_SECONDS = 60.0
DEFAULT_REQUESTS_PER_SECOND = 2000.0
# Over the rate, a request with the token waits for its turn this long at most (SDKs give
# up on the endpoint after 1-2 s); one without it is refused at once.
MAX_RATE_WAIT_SECONDS = 0.5
# Without a known expiry (credentials that never expire), SDKs still need an Expiration.
_UNKNOWN_EXPIRY_SECONDS = 3600.0
_TOKEN_BYTES = 32  # 256 bits
_MIN_TOKEN_LENGTH = 16

_LOOPBACK_NAMES = ("localhost",)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}


class _Credentials(Protocol):
    """What the endpoint needs of a credentials object (AssumeRoleCredentials has it)."""

    async def get_frozen_credentials(self) -> Any: ...


class _TokenBucket:
    """At most ``rate`` requests a second on average, ``rate`` at once (a 1-second burst).

    :meth:`take` hands out the next token even before it has been earned, when that
    moment is at most ``max_wait`` seconds away: the caller waits until then. Requests are
    then spread out at the rate instead of refused, as long as the queue is short.
    """

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()

    def take(self, max_wait: float = 0.0) -> float | None:
        """Seconds to wait before going on (0: at once), or None: refused."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        wait = max(0.0, (1.0 - self._tokens) / self._rate)
        if wait > max_wait:
            return None
        self._tokens -= 1.0
        return wait


class ContainerCredentialsEndpoint:
    """A running endpoint, as :func:`serve_container_credentials` yields it.

    Give a process :meth:`environ` (or set those variables yourself); its SDK then asks
    :attr:`url` for credentials with the token.

    Attributes:
        url: the full URI, ``http://HOST:PORT/credentials``.
        host: the address it is bound to.
        port: the port it is bound to (the free port picked, if 0 was asked for).
        token_file: the file holding the token, or None if none was asked for.
        requests_served: requests answered with credentials so far.
        requests_refused: requests refused so far (any status but 200).
    """

    def __init__(self, host: str, port: int, token: str, token_file: str | None) -> None:
        self.host = host
        self.port = port
        self.token_file = token_file
        self._token = token
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"http://{netloc}:{port}{PATH}"
        self.requests_served = 0
        self.requests_refused = 0

    @property
    def token(self) -> str:
        """The authorization token. Treat it as a secret: it gives the credentials."""
        return self._token

    def environ(self) -> dict[str, str]:
        """The variables that point a process's AWS SDK here.

        ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and, when a token file was asked for,
        ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` (the token stays out of the
        environment); otherwise ``AWS_CONTAINER_AUTHORIZATION_TOKEN``. Remove any other
        credential variable (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...) from that
        process's environment: they come before the container endpoint in every SDK's
        default chain.
        """
        variables = {FULL_URI_VARIABLE: self.url}
        if self.token_file is not None:
            variables[TOKEN_FILE_VARIABLE] = self.token_file
        else:
            variables[TOKEN_VARIABLE] = self._token
        return variables

    def __repr__(self) -> str:  # never the token
        return f"<ContainerCredentialsEndpoint {self.url} token_file={self.token_file!r}>"


@contextlib.asynccontextmanager
async def serve_container_credentials(
    session: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    allow_non_loopback: bool = False,
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
) -> AsyncIterator[ContainerCredentialsEndpoint]:
    """Serve ``session``'s credentials over the container-credentials protocol.

    ::

        child = await assume_role(session, "arn:aws:iam::123456789012:role/Reader")
        async with serve_container_credentials(child) as endpoint:
            env = {**clean_environment, **endpoint.environ()}
            await anyio.run_process(["aws", "s3", "ls"], env=env)

    Each answer comes from the session's credentials object
    (``await credentials.get_frozen_credentials()``): the first request waits for the
    first fetch, later ones are served from memory, and refreshes happen in the
    engine's windows, once for every process that asks. ``Expiration`` is the
    credentials' real expiry: SDKs ask again some minutes before it (their own buffer),
    and each of those asks is answered from memory.

    Args:
        session: an ``AioSession`` or ``aioboto3.Session`` whose credentials the library
            refreshes (a child of :func:`assume_role`), or such a credentials object.
        host: the IP address to bind; loopback (``127.0.0.1``, ``::1``) unless
            ``allow_non_loopback`` is true.
        port: the port to bind; 0 (default) picks a free one (see ``endpoint.port``).
        token: the authorization token (at least 16 characters); None (default) makes a
            random 256-bit one.
        token_file: if given, the token is written there (mode 0600, replaced
            atomically) and the file is removed when the endpoint stops; ``environ()``
            then names the file instead of holding the token.
        allow_non_loopback: allow binding an address other than loopback (any process
            that can reach it and has the token gets the credentials).
        requests_per_second: the token bucket: at most this many requests a second on
            average, with bursts of as many (default 2000). Over that, a request with
            the token waits its turn up to 0.5 s; others, and longer waits, get HTTP 429.

    Raises:
        ValueError: a bad argument, before anything is bound or fetched.
    """
    if not isinstance(host, str) or not host:
        raise ValueError("host must be an IP address, such as '127.0.0.1'")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"host must be an IP address, such as '127.0.0.1' (not a name): {host[:80]!r}"
        ) from None
    if not address.is_loopback and not allow_non_loopback:
        raise ValueError(
            f"host {host!r} is not a loopback address: any machine that reaches it could "
            "ask for the credentials; pass allow_non_loopback=True if that is what you want"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError("port must be a whole number in 0..65535")
    if token is None:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
    elif not isinstance(token, str) or len(token) < _MIN_TOKEN_LENGTH:
        raise ValueError(f"token must be a string of at least {_MIN_TOKEN_LENGTH} characters")
    elif not token.isascii() or not token.isprintable() or token != token.strip():
        raise ValueError("token must be printable ASCII without leading or trailing spaces")
    if (
        isinstance(requests_per_second, bool)
        or not isinstance(requests_per_second, (int, float))
        or not math.isfinite(requests_per_second)
        or requests_per_second <= 0
    ):
        raise ValueError("requests_per_second must be a finite number > 0")
    credentials = await _credentials_of(session)

    listener = await anyio.create_tcp_listener(local_host=str(address), local_port=port)
    try:
        bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        path = None if token_file is None else _absolute(token_file)
        endpoint = ContainerCredentialsEndpoint(str(address), bound_port, token, path)
        server = _Server(endpoint, credentials, requests_per_second)
        if path is not None:
            await anyio.to_thread.run_sync(_write_token_file, path, token)
        try:
            # What the caller's block raises is raised as it is, after the task group:
            # raised inside it, it would come out in an ExceptionGroup. (A cancellation
            # goes through the group, which knows what to do with it.)
            raised: BaseException | None = None
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(listener.serve, server.handle)
                _log.info("container-credentials endpoint serving on %s", endpoint.url)
                try:
                    yield endpoint
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as error:
                    raised = error
                finally:
                    tasks.cancel_scope.cancel()
            if raised is not None:
                raise raised
        finally:
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            _log.info("container-credentials endpoint on %s stopped", endpoint.url)
    finally:
        with anyio.CancelScope(shield=True):
            await listener.aclose()


async def _credentials_of(session: Any) -> _Credentials:
    if callable(getattr(session, "get_frozen_credentials", None)):
        return session  # type: ignore[no-any-return]
    get_credentials = getattr(session, "get_credentials", None)
    if not callable(get_credentials):
        raise TypeError(
            "session must be an AioSession or aioboto3.Session (or a credentials object), "
            f"not {type(session).__name__}"
        )
    credentials = await get_credentials()
    if credentials is None:
        raise ValueError("session has no credentials to serve")
    return credentials  # type: ignore[no-any-return]


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _write_token_file(path: str, token: str) -> None:
    """Write ``token`` to ``path`` (0600) atomically: a reader sees the old file or the new."""
    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(prefix=".token-", dir=directory)  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token)  # no newline: SDKs send the file's content as it is
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def expiration_of(credentials: Any, now: float) -> str:
    """The ``Expiration`` to report: the credentials' own expiry, ISO 8601 UTC with ``Z``.

    Honest on purpose. Each SDK asks again its own buffer before it (botocore 15 and 10
    minutes, most others 5), so an earlier time would only make them ask more often, and
    a later one would let them sign with credentials that have expired.
    """
    expiry = getattr(credentials, "expiry_time", None)
    if expiry is None:
        expiry = getattr(credentials, "_expiry_time", None)  # botocore's RefreshableCredentials
    if isinstance(expiry, str):
        with contextlib.suppress(ValueError):
            expiry = datetime.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    if isinstance(expiry, datetime.datetime):
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=datetime.timezone.utc)
        seconds = expiry.timestamp()
    else:
        seconds = now + _UNKNOWN_EXPIRY_SECONDS
    # Milliseconds, as STS writes it, truncated: never a moment later than the truth.
    # Whole seconds would move it up to 1 s earlier, and SDKs refuse credentials that
    # a refresh returned already "expired" (botocore raises): short lifetimes, whose
    # blocking window is a tenth of the lifetime, met that.
    moment = datetime.datetime.fromtimestamp(
        math.floor(seconds * 1000) / 1000, datetime.timezone.utc
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Request:
    __slots__ = ("headers", "keep_alive", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], keep_alive: bool) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.keep_alive = keep_alive


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _parse_head(head: bytes) -> _Request:
    """The request line and headers (``head`` without the blank line), or _BadRequest."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise _BadRequest(400) from None
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise _BadRequest(400)
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505 if version.startswith("HTTP/") else 400)
    if len(header_lines) > MAX_HEADERS:
        raise _BadRequest(431)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        name = name.lower()
        if not colon or not name or name != name.strip() or not name.isprintable():
            raise _BadRequest(400)
        if name in headers and name in ("host", "authorization", "content-length"):
            raise _BadRequest(400)  # two of them: which one would count?
        headers[name] = value.strip(" \t")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return _Request(method, target, headers, keep_alive)


class _Server:
    """Answers one endpoint's connections; every refusal has a status and no detail."""

    def __init__(
        self,
        endpoint: ContainerCredentialsEndpoint,
        credentials: _Credentials,
        requests_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint
        self._credentials = credentials
        self._token = endpoint.token.encode("ascii")
        self._bucket = _TokenBucket(requests_per_second, clock)
        self._wall_clock = wall_clock
        self._connections = 0
        port = endpoint.port
        names = {endpoint.host.lower(), *_LOOPBACK_NAMES}
        if ipaddress.ip_address(endpoint.host).is_loopback:
            names.update(("127.0.0.1", "[::1]"))
        if ":" in endpoint.host:
            names.add(f"[{endpoint.host.lower()}]")
        self._allowed_hosts = frozenset(
            {*names, *(f"{name}:{port}" for name in names)}
            if port == 80
            else {f"{name}:{port}" for name in names}
        )

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        if self._connections >= MAX_CONNECTIONS:
            await stream.aclose()
            return
        self._connections += 1
        try:
            async with stream:
                await self._serve_connection(stream)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the client went away
        except Exception as error:
            # One connection's bug must not stop the endpoint for every other process.
            _log.error(
                "container-credentials endpoint: a connection failed (%s)", type(error).__name__
            )
        finally:
            self._connections -= 1

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        buffer = b""
        first = True
        while True:
            # The first request's head must come within HEAD_TIMEOUT_SECONDS; an idle
            # keep-alive connection is closed after IDLE_TIMEOUT_SECONDS.
            timeout = HEAD_TIMEOUT_SECONDS if first else IDLE_TIMEOUT_SECONDS
            first = False
            head: bytes | None = None
            with anyio.move_on_after(timeout):
                while b"\r\n\r\n" not in buffer:
                    if len(buffer) > MAX_HEAD_BYTES:
                        break
                    try:
                        buffer += await stream.receive(4096)
                    except anyio.EndOfStream:
                        return
                if b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
            if head is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    await self._send(stream, 431, keep_alive=False)
                return  # timed out
            if len(head) > MAX_HEAD_BYTES:
                await self._send(stream, 431, keep_alive=False)
                return
            try:
                request = _parse_head(head)
            except _BadRequest as bad:
                await self._send(stream, bad.status, keep_alive=False)
                return
            status, body = await self._answer(request)
            keep_alive = request.keep_alive and status in (200, 401, 403, 404, 429)
            await self._send(stream, status, body, keep_alive=keep_alive)
            if not keep_alive:
                return

    async def _answer(self, request: _Request) -> tuple[int, bytes]:
        status = self._refusal(request)
        # Every request counts against the rate; only one with the token may wait.
        wait = self._bucket.take(MAX_RATE_WAIT_SECONDS if status is None else 0.0)
        if wait is None:
            status = 429
        if status is not None:
            self._endpoint.requests_refused += 1
            return status, b""
        if wait:
            await anyio.sleep(wait)
        try:
            with anyio.fail_after(ANSWER_TIMEOUT_SECONDS):
                body = await self._credentials_body()
        except Exception as error:
            self._endpoint.requests_refused += 1
            # The type and the AWS error code only: messages may quote a response body.
            response = getattr(error, "response", None)
            code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
            _log.warning(
                "container-credentials endpoint: no credentials to serve (%s%s)",
                type(error).__name__,
                f" {code}" if isinstance(code, str) else "",
            )
            return 500, b""
        self._endpoint.requests_served += 1
        return 200, body

    def _refusal(self, request: _Request) -> int | None:
        """The status refusing ``request``, or None to serve it. Order matters."""
        # DNS rebinding: a web page whose name now resolves to 127.0.0.1 sends its own
        # name as Host. Only our own address (and localhost) are accepted.
        if request.headers.get("host", "").lower() not in self._allowed_hosts:
            return 403
        authorization = request.headers.get("authorization")
        if authorization is None:
            return 401
        # Constant time: how long the comparison takes says nothing about the token.
        if not hmac.compare_digest(authorization.encode("ascii"), self._token):
            return 403
        if request.method != "GET":
            return 405
        if request.target != PATH:
            return 404
        if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in (
            request.headers
        ):
            return 413  # no body is accepted (and the connection is closed)
        return None

    async def _credentials_body(self) -> bytes:
        credentials = self._credentials
        # Keys and expiry must belong together: read the expiry between two reads of the
        # same keys (a refresh in between is seen and the pair read again).
        for _ in range(3):
            frozen = await credentials.get_frozen_credentials()
            expiration = expiration_of(credentials, self._wall_clock())
            again = await credentials.get_frozen_credentials()
            if again.access_key == frozen.access_key:
                break
        data = {
            "AccessKeyId": frozen.access_key,
            "SecretAccessKey": frozen.secret_key,
            "Token": frozen.token,
            "Expiration": expiration,
        }
        account_id = getattr(frozen, "account_id", None)
        if account_id:
            data["AccountId"] = account_id
        return json.dumps(data).encode("ascii")

    async def _send(
        self, stream: anyio.abc.SocketStream, status: int, body: bytes = b"", *, keep_alive: bool
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if status == 429:
            lines.append("Retry-After: 1")
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)

"""The container-credentials endpoint: ``serve_container_credentials`` and the CLI's
``--container-credentials``, with real SDK clients as its consumers.

Timed (dev.py TIMED_TESTS): the client test runs real processes over several 20-second
credential lifetimes, with an STS outage across a refresh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hmac
import http.server
import importlib.util
import json
import logging
import os
import re
import secrets
import select
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aio_assume_role_lib import (
    ContainerCredentialsEndpoint,
    RefreshPolicy,
    assume_role,
    serve_container_credentials,
)
from aio_assume_role_lib import _endpoint as endpoint_module
from aio_assume_role_lib.testing import LoopbackSTS, STSCall
from aio_assume_role_lib.testing._identities import ISSUED_KEY_PREFIX

from .conftest import HANG_SECONDS, HAS_TRIO, ROLE_A, httpx_parent, make_parent

pytestmark = pytest.mark.anyio

READER_ARN = "arn:aws:sts::111111111111:assumed-role/Reader/"
CLI = [sys.executable, "-m", "aio_assume_role_lib"]

# Every variable that could hand COMMAND other credentials than the endpoint's.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_CREDENTIALS_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)


# --- a raw HTTP client: the requests an SDK would never send ------------------------------

OWN = "<the endpoint's own>"  # request()'s default: the endpoint's own token or Host


async def request(
    endpoint: ContainerCredentialsEndpoint,
    *,
    token: str | None = OWN,
    host: str | None = OWN,
    method: str = "GET",
    path: str = "/credentials",
    extra: str = "",
    raw: bytes | None = None,
) -> tuple[int, bytes]:
    """Send one request on a new connection; return the status and the body."""
    if raw is None:
        lines = [f"{method} {path} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {f'127.0.0.1:{endpoint.port}' if host is OWN else host}")
        if token is not None:
            lines.append(f"Authorization: {endpoint.token if token is OWN else token}")
        raw = ("\r\n".join(lines) + "\r\n" + extra + "Connection: close\r\n\r\n").encode()
    with anyio.fail_after(HANG_SECONDS):
        async with await anyio.connect_tcp("127.0.0.1", endpoint.port) as stream:
            await stream.send(raw)
            response = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    response += await stream.receive()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def iso_milliseconds(epoch: float) -> str:
    """What STS writes: ``2026-12-07T01:12:45.929Z`` (truncated to the millisecond)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
async def child(sts: LoopbackSTS) -> Any:
    return await assume_role(make_parent(), ROLE_A, RoleSessionName="endpoint")


# --- what it serves -----------------------------------------------------------------------


async def test_first_request_waits_for_the_one_first_fetch_then_memory_serves(
    sts: LoopbackSTS, child: Any
) -> None:
    sts.latency = 0.3
    async with serve_container_credentials(child) as endpoint:
        assert sts.assume_role_count == 0  # nothing fetched before someone asks
        results: list[tuple[int, bytes]] = []

        async def ask() -> None:
            results.append(await request(endpoint))

        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(ask)
        assert sts.assume_role_count == 1
        for _ in range(20):
            results.append(await request(endpoint))
        assert sts.assume_role_count == 1
    assert {status for status, _ in results} == {200}
    bodies = {body for _, body in results}
    assert len(bodies) == 1
    served = json.loads(bodies.pop())
    assert set(served) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} | (
        {"AccountId"} & set(served)
    )
    frozen = await (await child.get_credentials()).get_frozen_credentials()
    assert (served["AccessKeyId"], served["SecretAccessKey"], served["Token"]) == (
        frozen.access_key,
        frozen.secret_key,
        frozen.token,
    )
    assert endpoint.requests_served == 40


async def test_expiration_is_the_credentials_real_expiry(sts: LoopbackSTS, child: Any) -> None:
    sts.credential_lifetime = 1800.0
    async with serve_container_credentials(child) as endpoint:
        status, body = await request(endpoint)
    assert status == 200
    issued = [call.expiration for call in sts.calls if call.action == "AssumeRole"]
    assert json.loads(body)["Expiration"] == iso_milliseconds(issued[0] or 0.0)


async def test_keys_and_expiration_served_together_across_a_refresh(sts: LoopbackSTS) -> None:
    """Every answer's Expiration is the one STS issued with that answer's access key."""
    sts.credential_lifetime = 2.0
    child = await assume_role(
        make_parent(), ROLE_A, refresh=RefreshPolicy(min_use_seconds=0.5, jitter_fraction=0)
    )
    answers = []
    async with serve_container_credentials(child) as endpoint:
        with anyio.fail_after(HANG_SECONDS):
            while sts.assume_role_count < 4:
                status, body = await request(endpoint)
                assert status == 200
                answers.append(json.loads(body))
    issued = {
        call.issued_access_key_id: iso_milliseconds(call.expiration or 0.0)
        for call in sts.calls
        if call.action == "AssumeRole"
    }
    assert len({answer["AccessKeyId"] for answer in answers}) >= 3
    for answer in answers:
        assert answer["Expiration"] == issued[answer["AccessKeyId"]]


async def test_keys_and_expiration_stay_paired_when_a_refresh_lands_in_between() -> None:
    """A refresh that completes between reading the keys and the expiry is seen."""

    class RefreshingWhileAsked:
        def __init__(self) -> None:
            self.current = ("KEY1", datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))

        async def get_frozen_credentials(self) -> Any:
            key = self.current[0]
            if key == "KEY1":  # the refresh lands just after the keys were handed out
                self.current = ("KEY2", datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc))
            return type("Frozen", (), {"access_key": key, "secret_key": "s", "token": "t"})()

        @property
        def expiry_time(self) -> datetime.datetime:
            return self.current[1]

    async with serve_container_credentials(RefreshingWhileAsked()) as endpoint:
        status, body = await request(endpoint)
    assert status == 200
    served = json.loads(body)
    assert (served["AccessKeyId"], served["Expiration"]) == ("KEY2", "2031-01-01T00:00:00.000Z")


class _StaticCredentials:
    async def get_frozen_credentials(self) -> Any:
        return type("Frozen", (), {"access_key": "KEY", "secret_key": "s", "token": "t"})()


@pytest.mark.parametrize(
    "anyio_backend",
    [
        "asyncio",
        pytest.param(
            "trio",
            marks=pytest.mark.skipif(not HAS_TRIO, reason="trio is installed on stack S1 only"),
        ),
    ],
)
@pytest.mark.parametrize("error", [ValueError("in the block"), KeyboardInterrupt()])
async def test_what_the_block_raises_comes_out_as_it_is(error: BaseException) -> None:
    """Not in an ExceptionGroup (the server's task group's), and the endpoint is stopped."""
    ports = []

    async def serve_then_raise() -> None:
        async with serve_container_credentials(_StaticCredentials()) as endpoint:
            ports.append(endpoint.port)
            assert (await request(endpoint))[0] == 200
            raise error

    with pytest.raises(type(error)) as raised:
        await serve_then_raise()
    assert raised.value is error
    assert not _listening(ports[0])
    with anyio.move_on_after(0.05) as scope:  # a cancellation goes through, and is caught
        async with serve_container_credentials(_StaticCredentials()) as endpoint:
            await anyio.sleep(HANG_SECONDS)
    assert scope.cancelled_caught
    assert not _listening(endpoint.port)


async def test_one_failing_connection_does_not_stop_the_endpoint(
    child: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parse_head = endpoint_module._parse_head

    def crash_on_marker(head: bytes) -> Any:
        if b"X-Crash" in head:
            raise RuntimeError("a bug in the handler")
        return parse_head(head)

    monkeypatch.setattr(endpoint_module, "_parse_head", crash_on_marker)
    async with serve_container_credentials(child) as endpoint:
        with pytest.raises(IndexError):  # closed without an answer
            await request(endpoint, extra="X-Crash: 1\r\n")
        assert (await request(endpoint))[0] == 200


@pytest.mark.skipif(not HAS_TRIO, reason="trio and httpx are installed on stack S1 only")
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serves_on_trio(sts: LoopbackSTS) -> None:
    child = await assume_role(httpx_parent(), ROLE_A, RoleSessionName="on-trio")
    async with serve_container_credentials(child) as endpoint:
        status, body = await request(endpoint)
    assert status == 200
    assert json.loads(body)["AccessKeyId"].startswith(ISSUED_KEY_PREFIX)


async def test_a_fetch_that_fails_is_a_500_without_detail(
    sts: LoopbackSTS, child: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sts.fail_next("access_denied")
    async with serve_container_credentials(child) as endpoint:
        status, body = await request(endpoint)
    assert (status, body) == (500, b"")
    assert "AccessDenied" in caplog.text


# --- security -----------------------------------------------------------------------------


async def test_token_missing_or_wrong_is_refused_and_nothing_served(child: Any) -> None:
    async with serve_container_credentials(child) as endpoint:
        wrong_tokens = [
            "",
            endpoint.token[:-1],
            endpoint.token + "x",
            endpoint.token.upper() if endpoint.token.upper() != endpoint.token else "x" * 43,
            f"Bearer {endpoint.token}",
            "x" * 43,
        ]
        assert await request(endpoint, token=None) == (401, b"")
        for wrong in wrong_tokens:
            assert await request(endpoint, token=wrong) == (403, b""), wrong
        assert (await request(endpoint))[0] == 200
        assert endpoint.requests_refused == 1 + len(wrong_tokens)
        assert endpoint.requests_served == 1


async def test_token_is_compared_in_constant_time(
    child: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr(endpoint_module.hmac, "compare_digest", spy)
    async with serve_container_credentials(child) as endpoint:
        assert (await request(endpoint, token="y" * 43))[0] == 403
        assert (await request(endpoint))[0] == 200
    token = endpoint.token.encode()
    assert [pair for pair in compared if token in pair] == [(b"y" * 43, token), (token, token)]


async def test_generated_token_is_256_bits_and_fresh_each_time(child: Any) -> None:
    tokens = set()
    for _ in range(3):
        async with serve_container_credentials(child) as endpoint:
            tokens.add(endpoint.token)
            assert len(endpoint.token) == 43  # 32 bytes, URL-safe base64
            assert endpoint.token not in repr(endpoint)
    assert len(tokens) == 3


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:{port}",
        "127.0.0.1.nip.io:{port}",
        "127.0.0.1:{other}",
        "",
        None,
    ],
)
async def test_foreign_host_header_is_refused(child: Any, host: str | None) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name."""
    async with serve_container_credentials(child) as endpoint:
        header = None if host is None else host.format(port=endpoint.port, other=endpoint.port + 1)
        assert await request(endpoint, host=header) == (403, b"")
        for good in ("127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"):
            assert (await request(endpoint, host=good.format(port=endpoint.port)))[0] == 200


async def test_requests_are_bounded(child: Any) -> None:
    async with serve_container_credentials(child) as endpoint:
        # no body
        assert (await request(endpoint, extra="Content-Length: 5\r\n"))[0] == 413
        assert (await request(endpoint, extra="Transfer-Encoding: chunked\r\n"))[0] == 413
        # a head of at most 8 KiB
        big = "X-Padding: " + "a" * 9000 + "\r\n"
        assert (await request(endpoint, extra=big))[0] == 431
        assert (await request(endpoint, extra="X-A: b\r\n" * 40))[0] == 431
        # a head that never ends is cut off at the bound, not buffered until the timeout
        endless = b"GET /credentials HTTP/1.1\r\nX-Padding: " + b"a" * 9_000
        with anyio.fail_after(endpoint_module.HEAD_TIMEOUT_SECONDS / 2):
            assert (await request(endpoint, raw=endless))[0] == 431
        # GET on the one path only (after the token: nothing is said to strangers)
        assert (await request(endpoint, method="POST"))[0] == 405
        assert (await request(endpoint, path="/other"))[0] == 404
        assert (await request(endpoint, path="/other", token=None))[0] == 401
        # garbage and duplicate credentials headers
        assert (await request(endpoint, raw=b"\x00\xff junk\r\n\r\n"))[0] == 400
        twice = f"Authorization: {endpoint.token}\r\n"
        assert (await request(endpoint, extra=twice))[0] == 400
        assert (await request(endpoint))[0] == 200


async def test_rate_is_bounded_by_a_token_bucket(child: Any) -> None:
    # 0.01 a second: a burst of one, then one every 100 s.
    async with serve_container_credentials(child, requests_per_second=0.01) as endpoint:
        assert (await request(endpoint))[0] == 200
        assert await request(endpoint) == (429, b"")
        assert await request(endpoint, token=None) == (429, b"")


def test_token_bucket_refills_at_its_rate_and_queues_a_short_wait() -> None:
    now = [0.0]
    bucket = endpoint_module._TokenBucket(1000.0, lambda: now[0])

    def taken(count: int, max_wait: float = 0.0) -> list[float]:
        return [w for w in (bucket.take(max_wait) for _ in range(count)) if w is not None]

    assert taken(1500) == [0.0] * 1000  # a burst of one second's worth
    now[0] += 0.1
    assert len(taken(1500)) == 100
    now[0] += 60.0
    assert len(taken(1500)) == 1000
    # With waiting allowed: the next ones are spread out at the rate, up to max_wait.
    waits = taken(1500, max_wait=0.5)
    assert len(waits) == 500
    assert waits[0] == pytest.approx(0.001)
    assert waits[-1] == pytest.approx(0.5)


async def test_over_the_rate_requests_with_the_token_wait_their_turn(child: Any) -> None:
    async with serve_container_credentials(child, requests_per_second=2) as endpoint:
        await request(endpoint)  # the first fetch, before the clock starts
        started = time.monotonic()
        statuses = [(await request(endpoint))[0] for _ in range(5)]
        elapsed = time.monotonic() - started
    assert statuses == [200] * 5
    # At most 2 (the burst) + 2 a second: 5 requests take at least 1.5 s.
    assert elapsed >= 1.45


async def test_connections_are_bounded(child: Any) -> None:
    async with serve_container_credentials(child) as endpoint:
        idle = [
            await anyio.connect_tcp("127.0.0.1", endpoint.port)
            for _ in range(endpoint_module.MAX_CONNECTIONS)
        ]
        try:
            with anyio.fail_after(HANG_SECONDS):
                async with await anyio.connect_tcp("127.0.0.1", endpoint.port) as extra:
                    with contextlib.suppress(anyio.BrokenResourceError):
                        await extra.send(b"GET /credentials HTTP/1.1\r\n\r\n")
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        await extra.receive()
        finally:
            for stream in idle:
                await stream.aclose()
        with anyio.fail_after(HANG_SECONDS):
            while (await request(endpoint))[0] != 200:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # the closed ones are being counted out


async def test_bind_address_is_checked_before_anything_starts(child: Any) -> None:
    for host in ("0.0.0.0", "192.0.2.1", "::"):
        with pytest.raises(ValueError, match=r"not a loopback address.*allow_non_loopback"):
            async with serve_container_credentials(child, host=host):
                pass
    with pytest.raises(ValueError, match="host must be an IP address"):
        async with serve_container_credentials(child, host="localhost"):
            pass
    with pytest.raises(ValueError, match="token must be a string of at least 16"):
        async with serve_container_credentials(
            child, host="0.0.0.0", allow_non_loopback=True, token="short"
        ):
            pass
    with pytest.raises(ValueError, match="port"):
        async with serve_container_credentials(child, port=70000):
            pass
    with pytest.raises(ValueError, match="requests_per_second"):
        async with serve_container_credentials(child, requests_per_second=0):
            pass


async def test_token_file_is_private_and_removed(child: Any, tmp_path: Path) -> None:
    path = tmp_path / "token"
    async with serve_container_credentials(child, token_file=path) as endpoint:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == endpoint.token
        assert endpoint.environ() == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(path),
        }
    assert not path.exists()


async def test_no_secret_in_logs(
    sts: LoopbackSTS, child: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aio_assume_role_lib")  # botocore logs bodies
    async with serve_container_credentials(child) as endpoint:
        for token in (None, "z" * 43, endpoint.token):
            await request(endpoint, token=token)
        sts.fail_next("malformed")
        (await child.get_credentials()).invalidate()
        await request(endpoint)
    frozen = await (await child.get_credentials()).get_frozen_credentials()
    for secret in (endpoint.token, frozen.secret_key, frozen.token):
        assert secret not in caplog.text


# --- the command line, with real SDK clients as COMMAND -----------------------------------

# A client loop: GetCallerIdentity every 0.2 s until DEADLINE (epoch seconds), with the
# SDK's default chain (the container provider, from the environment). Prints the failures.
BOTOCORE_LOOP = """
import sys, time, botocore.session
client = botocore.session.get_session().create_client("sts")
failures = 0
while time.time() < float(sys.argv[1]):
    try:
        client.get_caller_identity()
    except Exception as error:
        failures += 1
        print("botocore:", type(error).__name__, str(error)[:200], file=sys.stderr)
    time.sleep(0.2)
print("botocore failures", failures)
sys.exit(1 if failures else 0)
"""

AIOBOTOCORE_LOOP = """
import asyncio, sys, time
from aiobotocore.session import AioSession
async def main():
    failures = 0
    async with AioSession().create_client("sts") as client:
        while time.time() < float(sys.argv[1]):
            try:
                await client.get_caller_identity()
            except Exception as error:
                failures += 1
                print("aiobotocore:", type(error).__name__, str(error)[:200], file=sys.stderr)
            await asyncio.sleep(0.2)
    print("aiobotocore failures", failures)
    return 1 if failures else 0
sys.exit(asyncio.run(main()))
"""

OBSTORE_LOOP = """
import sys, time
import obstore
from obstore.store import S3Store
# S3Store reads the environment: the container endpoint's variables, nothing else.
store = S3Store("bucket", endpoint=sys.argv[2], region="us-east-1", client_options={"allow_http": True})
failures = 0
while time.time() < float(sys.argv[1]):
    try:
        assert bytes(obstore.get(store, "object").bytes()) == b"hello"
    except Exception as error:
        failures += 1
        print("obstore:", type(error).__name__, str(error)[:200], file=sys.stderr)
    time.sleep(0.2)
print("obstore failures", failures)
sys.exit(1 if failures else 0)
"""

HAS_OBSTORE = importlib.util.find_spec("obstore") is not None

# The AWS CLI v1: dev.py installs it in an environment of its own (.venv/awscli: it pins
# its dependencies) and names its `aws` in AIO_ARL_AWS_CLI, as it names moto's server.
AWS_CLI = os.environ.get("AIO_ARL_AWS_CLI") or None
NO_AWS_CLI = (
    "the AWS CLI is not installed here: AIO_ARL_AWS_CLI names its `aws` "
    "(`python3 dev.py test` installs it in .venv/awscli and sets the variable)"
)

# The AWS CLI as a client: one `aws sts get-caller-identity` per line read from stdin (the
# test picks the moments; each run starts a new CLI, ~0.4 s of CPU), until stdin closes.
# It prints one JSON line per run. --debug because nothing else says which access key
# the CLI signed with (its log's Authorization header does: Credential=<key id>/...);
# that log also holds the session token, so only the key id, the ARN and, after a
# failure, the CLI's last line leave this process.
AWS_CLI_RUNS = """
import json, re, subprocess, sys, time
for _ in sys.stdin:
    started = time.time()
    result = subprocess.run(
        [sys.argv[1], "--debug", "sts", "get-caller-identity", "--query", "Arn", "--output", "text"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    lines = result.stderr.strip().splitlines()
    print("aws-cli run", json.dumps({
        "started": started,
        "ended": time.time(),
        "exit": result.returncode,
        "arn": result.stdout.strip(),
        "keys": sorted(set(re.findall(r"Credential=(\\w+)/", result.stderr))),
        "error": lines[-1][:300] if result.returncode and lines else "",
    }), flush=True)
"""

# COMMAND: every client at once (obstore and the AWS CLI when given); fails if any did.
ALL_CLIENTS = f"""
import subprocess, sys
deadline, s3_url, aws = sys.argv[1:]
loops = [({BOTOCORE_LOOP!r}, deadline), ({AIOBOTOCORE_LOOP!r}, deadline)]
if s3_url:
    loops.append(({OBSTORE_LOOP!r}, deadline, s3_url))
if aws:
    loops.append(({AWS_CLI_RUNS!r}, aws))
workers = [subprocess.Popen([sys.executable, "-c", loop, *arguments]) for loop, *arguments in loops]
sys.exit(max(worker.wait() for worker in workers))
"""


class S3Stub:
    """GET of any object answers b"hello"; records (time, access key id) of each request.

    Signatures are not checked (LoopbackSTS checks those of the STS clients); the test
    checks that each key was issued by STS and used before it expired.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[float, str]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
                stub.requests.append((time.time(), found.group(1) if found else ""))
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.send_header("ETag", '"5d41402abc4b2a76b9719d911017c592"')
                self.send_header("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT")
                self.end_headers()
                self.wfile.write(b"hello")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> S3Stub:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def cli_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment (the loopback STS's root key) for the CLI."""
    environ = dict(os.environ)
    environ.update(extra or {})
    return environ


@dataclasses.dataclass
class ClientsRun:
    """What one run of every client as COMMAND, through an STS outage, left behind."""

    lifetime: float
    duration: float
    returncode: int  # COMMAND's: the SDK loops' (the AWS CLI's runs are in aws_runs)
    stdout: str
    stderr: str
    calls: list[STSCall]
    s3_requests: list[tuple[float, str]]
    outage: tuple[float, float]  # every AssumeRole failed between these (epoch seconds)
    aws_runs: list[dict[str, Any]]

    @property
    def assume_roles(self) -> list[STSCall]:
        return [call for call in self.calls if call.action == "AssumeRole"]

    @property
    def expiry_of(self) -> dict[str | None, float | None]:
        """Every issued access key id and its expiry."""
        return {
            c.issued_access_key_id: c.expiration for c in self.assume_roles if c.outcome == "ok"
        }


@pytest.fixture(scope="module")
def clients_through_an_outage(tmp_path_factory: pytest.TempPathFactory) -> ClientsRun:
    """Every client as COMMAND of one ``aio-assume-role --container-credentials`` for 50 s
    of 20 s credentials, STS down across the first refresh.

    One run for the tests below, each of which checks its clients: its real time is the
    cost. Module-scoped, it makes its own loopback STS and isolated environment (the
    plugin's fixtures are function-scoped).
    """
    lifetime, duration = 20.0, 50.0
    home = tmp_path_factory.mktemp("clients-home")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "XDG_"))}
    environ.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    with LoopbackSTS(credential_lifetime=lifetime) as sts, S3Stub() as s3:
        environ.update(sts.environ())
        deadline = time.time() + duration
        clients = [str(deadline), s3.url if HAS_OBSTORE else "", AWS_CLI or ""]
        command = [sys.executable, "-c", ALL_CLIENTS, *clients]
        process = subprocess.Popen(
            [*CLI, "--container-credentials", ROLE_A, "--", *command],
            env=environ,
            stdin=subprocess.PIPE if AWS_CLI else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with _reaped(process):
            first = _wait_for(lambda: _assume_roles(sts), "the first AssumeRole")[0].time

            def sleep_until(offset: float) -> None:
                time.sleep(max(0.0, first + offset - time.time()))

            def run_aws_cli() -> None:
                if AWS_CLI and process.stdin is not None:
                    process.stdin.write("run\n")
                    process.stdin.flush()

            # The AWS CLI runs twice in the first lifetime, once while STS is down, then
            # every 7 s: across three credentials.
            for offset in (1.0, 8.0):
                sleep_until(offset)
                run_aws_cli()
            # STS down across the first advisory refresh (at 16-17 s of a 20 s lifetime):
            # every AssumeRole fails from 15 s to 17.5 s after the first fetch. The AWS
            # CLI runs as soon as the endpoint met the outage (a failed AssumeRole).
            sleep_until(15.0)
            outage_from = time.time()
            sts.fail_next("5xx", 1000)
            while time.time() < first + 17.5:
                if any(call.outcome != "ok" for call in _assume_roles(sts)):
                    run_aws_cli()
                    break
                time.sleep(0.02)
            sleep_until(17.5)
            calls_before_recovery = sts.calls
            sts.reset()
            outage_to = time.time()
            for offset in (22.0, 29.0, 36.0, 43.0):
                sleep_until(offset)
                run_aws_cli()
            stdout, stderr = process.communicate(timeout=duration + HANG_SECONDS)
        calls = calls_before_recovery + sts.calls
    prefix = "aws-cli run "
    return ClientsRun(
        lifetime=lifetime,
        duration=duration,
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
        calls=calls,
        s3_requests=s3.requests,
        outage=(outage_from, outage_to),
        aws_runs=[
            json.loads(line[len(prefix) :])
            for line in stdout.splitlines()
            if line.startswith(prefix)
        ],
    )


def test_sdk_clients_as_command_through_an_sts_outage(
    clients_through_an_outage: ClientsRun,
) -> None:
    run = clients_through_an_outage
    assert run.returncode == 0, run.stderr[-3000:]
    assert "botocore failures 0" in run.stdout
    assert "aiobotocore failures 0" in run.stdout

    identity_calls = [call for call in run.calls if call.action == "GetCallerIdentity"]
    assert len(identity_calls) > 200  # two clients, 5 a second each, ~48 s
    assert {call.outcome for call in identity_calls} == {"ok"}
    keys_used = {call.access_key_id for call in identity_calls}
    expiry_of = run.expiry_of
    assert keys_used <= set(expiry_of)
    assert len(keys_used) >= 3  # 50 s of 20 s credentials: the first and two refreshes
    if HAS_OBSTORE:
        assert "obstore failures 0" in run.stdout
        assert len(run.s3_requests) > 100
        for moment, key in run.s3_requests:
            assert moment < (expiry_of[key] or 0.0)  # an issued key, used before it expired
        assert len({key for _, key in run.s3_requests}) >= 3
    failed = _assert_about_one_assume_role_per_lifetime(run)
    print(
        f"\nendpoint: {len(identity_calls)} STS calls by 2 SDKs and {len(run.s3_requests)} "
        f"obstore reads over {run.duration:.0f} s of {run.lifetime:.0f} s credentials, "
        f"{len(expiry_of)} AssumeRole, {len(failed)} failed in the outage, "
        f"{len(keys_used)} keys used"
    )


@pytest.mark.skipif(AWS_CLI is None, reason=NO_AWS_CLI)
def test_aws_cli_as_command_through_an_sts_outage(clients_through_an_outage: ClientsRun) -> None:
    run = clients_through_an_outage
    runs = run.aws_runs
    assert len(runs) == 7, run.stdout[-3000:]
    assert [r for r in runs if r["exit"] != 0 or not r["arn"].startswith(READER_ARN)] == []
    assert all(len(r["keys"]) == 1 for r in runs)  # one key signed each run's one call
    keys = [r["keys"][0] for r in runs]
    assert set(keys) <= set(run.expiry_of)  # issued by the endpoint's AssumeRole calls
    assert len(set(keys)) >= 2  # 43 s of 20 s credentials: the CLI saw them refreshed
    # One run started after the endpoint's refresh had failed, while STS was still down.
    first_failure = min(c.time for c in run.assume_roles if c.outcome != "ok")
    during = [r for r in runs if first_failure <= r["started"] <= run.outage[1]]
    assert len(during) == 1
    failed = _assert_about_one_assume_role_per_lifetime(run)
    wall = sum(r["ended"] - r["started"] for r in runs)
    print(
        f"\nAWS CLI: {len(runs)} runs of `aws sts get-caller-identity` over "
        f"{runs[-1]['ended'] - runs[0]['started']:.0f} s of {run.lifetime:.0f} s credentials, "
        f"0 failed, {len(set(keys))} keys, one run while STS was down (its key "
        f"{'issued before the outage' if keys[runs.index(during[0])] == keys[0] else 'new'}), "
        f"{len(run.expiry_of)} AssumeRole, {len(failed)} failed; the runs took {wall:.1f} s"
    )


def _assert_about_one_assume_role_per_lifetime(run: ClientsRun) -> list[STSCall]:
    """About one AssumeRole per lifetime, a few failed in the outage; returns those."""
    assume_roles = run.assume_roles
    failed = [call for call in assume_roles if call.outcome != "ok"]
    assert 1 <= len(failed) <= 3  # the outage was met, and retried only a few times
    # A refresh every 16-18 s, never more.
    elapsed = assume_roles[-1].time - assume_roles[0].time
    assert len(run.expiry_of) <= 2 + elapsed / (run.lifetime * 0.8)
    return failed


@pytest.mark.skipif(AWS_CLI is None, reason=NO_AWS_CLI)
async def test_aws_cli_with_a_wrong_or_no_token_fails_cleanly_showing_no_secret(
    sts: LoopbackSTS, child: Any
) -> None:
    async with serve_container_credentials(child) as endpoint:
        status, body = await request(endpoint)
        assert status == 200
        served = json.loads(body)  # what the CLI must never get, nor show
        wrong = secrets.token_urlsafe(32)  # as another endpoint's token would be
        # The endpoint's variables and nothing else (the root key would come first).
        environ = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
        environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = endpoint.url
        results: dict[str, Any] = {}

        async def run_aws(name: str, extra: dict[str, str]) -> None:
            assert AWS_CLI is not None
            results[name] = await anyio.run_process(
                [AWS_CLI, "sts", "get-caller-identity"], env={**environ, **extra}, check=False
            )

        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as runs:  # side by side: each retries ~2 s
                runs.start_soon(run_aws, "wrong", {"AWS_CONTAINER_AUTHORIZATION_TOKEN": wrong})
                runs.start_soon(run_aws, "missing", {})
    for name, code in (("wrong", 403), ("missing", 401)):
        result = results[name]
        stdout, stderr = result.stdout.decode(), result.stderr.decode()
        assert result.returncode == 255, stderr  # the CLI's exit for a failed command
        assert stdout == ""
        # The CLI's own message, one line, no traceback.
        assert stderr.strip() == (
            "Error when retrieving credentials from container-role: Error retrieving "
            f"metadata: Received non 200 response {code} from container metadata:"
        )
        for secret in (endpoint.token, wrong, served["SecretAccessKey"], served["Token"]):
            assert secret not in stdout + stderr
    assert endpoint.requests_served == 1  # ours; the CLIs' requests were all refused
    assert endpoint.requests_refused >= 2
    assert [call.action for call in sts.calls] == ["AssumeRole"]  # no STS call made


def test_command_gets_only_the_endpoint_and_its_exit_code_passes_through(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    # Keys in the shared credentials file come before the endpoint in the SDK's chain.
    key, secret = sts.root_credentials
    (tmp_path / "credentials").write_text(
        f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    )
    planted = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/Other",
        "AWS_ROLE_SESSION_NAME": "other",
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(tmp_path / "web-identity"),
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/other",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "an-older-endpoint-token",
        "AWS_CREDENTIALS_EXPIRATION": "2099-01-01T00:00:00Z",
    }
    script = textwrap.dedent(
        """
        import json, os, stat, sys, botocore.session
        names = sorted(k for k in os.environ if k.startswith("AWS_"))
        token_file = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
        mode = oct(stat.S_IMODE(os.stat(token_file).st_mode))
        arn = botocore.session.get_session().create_client("sts").get_caller_identity()["Arn"]
        print(json.dumps({"names": names, "mode": mode, "arn": arn, "file": token_file}))
        sys.exit(7)
        """
    )
    result = subprocess.run(
        [*CLI, "--container-credentials", ROLE_A, "--", sys.executable, "-c", script],
        env=cli_environ(planted),
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 7, result.stderr
    seen = json.loads(result.stdout)
    assert seen["arn"].startswith(READER_ARN)
    assert seen["mode"] == "0o600"
    assert not Path(seen["file"]).exists()  # removed when COMMAND ended
    assert not set(seen["names"]) & set(CREDENTIAL_VARIABLES)
    assert {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    } <= set(seen["names"])
    assert sts.assume_role_count == 1


def test_a_role_that_cannot_be_assumed_fails_before_command_runs(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    sts.fail_next("access_denied")
    marker = tmp_path / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    result = subprocess.run(
        [*CLI, "--container-credentials", ROLE_A, "--", *command],
        env=cli_environ(),
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 4
    assert "AccessDenied" in result.stderr
    assert not marker.exists()


# COMMAND for the signal and kill tests: prints its endpoint, then waits for a signal.
WAITING_COMMAND = textwrap.dedent(
    """
    import json, os, signal, sys, time
    def stop(*_):
        print("SIGTERM", flush=True)
        sys.exit(42)
    signal.signal(signal.SIGTERM, stop)
    token = open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read()
    url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    print(json.dumps({"url": url, "token": token, "pid": os.getpid()}), flush=True)
    time.sleep(600)
    """
)


def _start_waiting_command() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [*CLI, "--container-credentials", ROLE_A, "--", sys.executable, "-c", WAITING_COMMAND],
        env=cli_environ(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "COMMAND did not start"
    return process, json.loads(line)


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _ask(url: str, token: str) -> int:
    """The status of one request, as an SDK sends it (urllib: no aiohttp in the way)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"Authorization": token}), timeout=HANG_SECONDS
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_sigterm_is_forwarded_and_the_endpoint_stops_with_command(sts: LoopbackSTS) -> None:
    process, seen = _start_waiting_command()
    with _reaped(process):
        assert _ask(seen["url"], seen["token"]) == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG_SECONDS) == 42
    assert not _listening(_port_of(seen["url"]))


def test_kill_9_of_the_cli_takes_the_endpoint_away_and_command_is_told(sts: LoopbackSTS) -> None:
    process, seen = _start_waiting_command()
    try:
        assert _ask(seen["url"], seen["token"]) == 200
        process.kill()  # SIGKILL: no cleanup runs
        process.wait(timeout=HANG_SECONDS)
        # The port is closed (COMMAND did not inherit the listening socket)...
        assert not _listening(_port_of(seen["url"]))
        assert process.stdout is not None
        if sys.platform.startswith("linux"):
            # ...and Linux sends COMMAND a SIGTERM (PR_SET_PDEATHSIG, set by the CLI).
            ready, _, _ = select.select([process.stdout], [], [], HANG_SECONDS)
            assert ready, "COMMAND got no SIGTERM"
            assert process.stdout.readline() == "SIGTERM\n"
        else:
            os.kill(seen["pid"], 0)  # COMMAND lives on: nobody could tell it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(seen["pid"], signal.SIGKILL)


@pytest.mark.parametrize(
    ("program", "code", "message"),
    [
        ("no-such-program-here", 127, "command not found: no-such-program-here"),
        ("{not_executable}", 126, "cannot run {not_executable}: Permission denied"),
    ],
)
def test_command_that_cannot_run_is_named_with_the_shells_exit_code(
    sts: LoopbackSTS, tmp_path: Path, program: str, code: int, message: str
) -> None:
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\n")
    program = program.format(not_executable=not_executable)
    result = subprocess.run(
        [*CLI, "--container-credentials", ROLE_A, "--", program, "argument"],
        env=cli_environ(),
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == code
    assert result.stderr == f"aio-assume-role: {message.format(not_executable=not_executable)}\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_launcher_whose_cli_died_before_the_prctl_ends_itself() -> None:
    """The race the launcher closes: it runs COMMAND only while its parent is alive."""
    from aio_assume_role_lib import _cli

    report, report_to = os.pipe()
    another_parent = str(os.getpid() + 1)  # its parent is this process
    try:
        result = subprocess.run(
            [*_cli._LAUNCHER, another_parent, str(report_to), "echo", "ran"],
            pass_fds=(report_to,),
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS,
        )
    finally:
        os.close(report)
        os.close(report_to)
    assert (result.returncode, result.stdout) == (-signal.SIGTERM, "")


def test_sidecar_serves_until_sigterm(sts: LoopbackSTS, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    process = subprocess.Popen(
        [*CLI, "--container-credentials", "--token-file", str(token_file), ROLE_A],
        env=cli_environ(),
        stdout=subprocess.PIPE,
        text=True,
    )
    with _reaped(process):
        assert process.stdout is not None
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1)
            for line in (process.stdout.readline(), process.stdout.readline())
        )
        assert exports["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(token_file)
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        url = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        assert url.startswith("http://127.0.0.1:")
        assert _ask(url, token_file.read_text()) == 200
        assert _ask(url, "x" * 43) == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG_SECONDS) == 0
    assert not token_file.exists()
    assert not _listening(_port_of(url))


def test_cli_address_in_use_exits_1(sts: LoopbackSTS) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "--container-credentials", "--listen", f"127.0.0.1:{port}", ROLE_A],
            env=cli_environ(),
            capture_output=True,
            text=True,
            timeout=HANG_SECONDS,
        )
    assert result.returncode == 1
    assert f"cannot start the endpoint on 127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--container-credentials", "--listen", "0.0.0.0:9911"], "not a loopback address"),
        (["--container-credentials", "--listen", "localhost:9911"], "expected IP:PORT"),
        (["--container-credentials", "--listen", "127.0.0.1:99999"], "expected IP:PORT"),
        (["--container-credentials", "--json"], "cannot be used with --container-credentials"),
        (["--listen", "127.0.0.1:9911"], "--listen needs --container-credentials"),
        (["--token-file", "t"], "--token-file needs --container-credentials"),
        (["--allow-non-loopback"], "--allow-non-loopback needs --container-credentials"),
    ],
)
def test_cli_usage_errors(arguments: list[str], message: str) -> None:
    result = subprocess.run(
        [*CLI, *arguments, ROLE_A],
        env=cli_environ(),
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 2
    assert message in result.stderr


# --- helpers ------------------------------------------------------------------------------


def _assume_roles(sts: LoopbackSTS) -> list[Any]:
    return [call for call in sts.calls if call.action == "AssumeRole"]


def _wait_for(check: Any, what: str) -> Any:
    deadline = time.monotonic() + HANG_SECONDS
    while not (value := check()):
        assert time.monotonic() < deadline, f"no {what} within {HANG_SECONDS} s"
        time.sleep(0.05)
    return value


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(HANG_SECONDS)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _reaped(process: subprocess.Popen[str]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()

"""Tests of aio_assume_role_lib.testing.LoopbackSTS itself, with plain aiobotocore clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.parsers import ResponseParserError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from aio_assume_role_lib.testing import FAULTS, LoopbackSTS, STSCall, _faults, _serve

from .conftest import HANG_SECONDS

T = TypeVar("T")

ROLE = "arn:aws:iam::123456789012:role/Reader"
OTHER_ACCOUNT_ROLE = "arn:aws:iam::210987654321:role/team/ops/Deployer"
NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
ONE_ATTEMPT = {"retries": {"total_max_attempts": 1}}


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine in a fresh event loop (the server lives in its own thread)."""

    async def main() -> T:
        return await factory()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def session() -> AioSession:
    # One warm session: create_client on a fresh session costs ~250 ms.
    return AioSession()


@pytest.fixture
def sts() -> Iterator[LoopbackSTS]:
    with LoopbackSTS() as server:
        yield server


@contextlib.asynccontextmanager
async def client(
    session: AioSession,
    sts: LoopbackSTS,
    credentials: tuple[str, str] | dict[str, Any] | None = None,
    *,
    region: str = "us-east-1",
    **config: Any,
) -> AsyncIterator[Any]:
    """An STS client on ``sts``; ``credentials`` is a key pair or an AssumeRole result."""
    if credentials is None:
        credentials = sts.root_credentials
    if isinstance(credentials, dict):
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    else:
        keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
    async with session.create_client(
        "sts",
        region_name=region,
        endpoint_url=sts.endpoint_url,
        config=AioConfig(**{**ONE_ATTEMPT, **config}),
        **keys,
    ) as sts_client:
        yield sts_client


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = exc.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def assume(
    session: AioSession, sts: LoopbackSTS, role: str = ROLE, **kwargs: Any
) -> dict[str, Any]:
    async with client(session, sts) as c:
        response: dict[str, Any] = await c.assume_role(
            RoleArn=role, RoleSessionName=kwargs.pop("RoleSessionName", "test"), **kwargs
        )
    return response


# --- identities and credentials ------------------------------------------------------------


def test_root_get_caller_identity(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> dict[str, Any]:
        async with client(session, sts) as c:
            result: dict[str, Any] = await c.get_caller_identity()
        return result

    identity = run(main)
    assert identity["Arn"] == "arn:aws:iam::123456789012:user/loopback-root" == sts.root_arn
    assert identity["Account"] == "123456789012"
    assert identity["UserId"].startswith("AIDA")
    assert sts.endpoint_url.startswith("http://127.0.0.1:")
    assert sts.root_credentials[0].startswith("LOOPBACKROOT")
    assert_looks_fake_to_secret_scanners(*sts.root_credentials)


# What secret scanners match as an AWS access key id (gitleaks' and trufflehog's rules,
# with every prefix of a real AWS id besides), and a real session token's first bytes.
SCANNED_KEY_ID = re.compile(
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}"
)


def assert_looks_fake_to_secret_scanners(*credentials: str) -> None:
    """No part looks like a real AWS credential: a key id with no real prefix (before:
    AKIA and ASIA, which scanners report), a token not starting as real ones do."""
    for value in credentials:
        assert not SCANNED_KEY_ID.search(value), value[:20]
        assert value[:8].lower() == "loopback", value[:20]
        assert not value.startswith("IQoJ")


def test_account_id_and_keyword_only_arguments() -> None:
    with pytest.raises(TypeError):
        LoopbackSTS(10.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="12 digits"):
        LoopbackSTS(account_id="123")
    assert LoopbackSTS(account_id="000011112222").root_arn == (
        "arn:aws:iam::000011112222:user/loopback-root"
    )


def test_assume_role_returns_working_credentials(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        response = await assume(session, sts, RoleSessionName="alice@example.com")
        async with client(session, sts, response["Credentials"], region="eu-west-1") as c:
            identity: dict[str, Any] = await c.get_caller_identity()
        return response, identity

    before = time.time()
    response, identity = run(main)
    credentials = response["Credentials"]
    assert credentials["AccessKeyId"].startswith("LOOPBACKTEMP")
    assert len(credentials["AccessKeyId"]) == 20  # the real shape, which botocore takes
    assert credentials["AccessKeyId"].isupper()
    assert credentials["AccessKeyId"].isalnum()
    assert len(credentials["SecretAccessKey"]) == 40
    assert credentials["SessionToken"]
    assert_looks_fake_to_secret_scanners(
        credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"]
    )
    lifetime = credentials["Expiration"].timestamp() - before
    assert 3590 < lifetime < 3610  # DurationSeconds absent: one hour
    user = response["AssumedRoleUser"]
    assert user["Arn"] == "arn:aws:sts::123456789012:assumed-role/Reader/alice@example.com"
    assert user["AssumedRoleId"].startswith("AROA")
    assert user["AssumedRoleId"].endswith(":alice@example.com")
    assert "PackedPolicySize" not in response
    assert "SourceIdentity" not in response
    assert identity["Arn"] == user["Arn"]
    assert identity["UserId"] == user["AssumedRoleId"]
    assert identity["Account"] == "123456789012"


def test_cross_account_role_and_extras(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        response = await assume(
            session,
            sts,
            OTHER_ACCOUNT_ROLE,
            Tags=[{"Key": "team", "Value": "ops"}],
            Policy='{"Version": "2012-10-17", "Statement": []}',
            SourceIdentity="alice",
            ExternalId="ext-id:123/abc",
            DurationSeconds=900,
        )
        async with client(session, sts, response["Credentials"]) as c:
            identity: dict[str, Any] = await c.get_caller_identity()
        return response, identity

    before = time.time()
    response, identity = run(main)
    assert identity["Account"] == "210987654321"
    assert identity["Arn"] == "arn:aws:sts::210987654321:assumed-role/Deployer/test"
    assert 890 < response["Credentials"]["Expiration"].timestamp() - before < 910
    assert 1 <= response["PackedPolicySize"] <= 100
    assert response["SourceIdentity"] == "alice"


def test_role_chaining(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any], int]:
        first = await assume(session, sts, OTHER_ACCOUNT_ROLE)
        async with client(session, sts, first["Credentials"]) as c:
            second = await c.assume_role(
                RoleArn="arn:aws:iam::333333333333:role/Leaf", RoleSessionName="hop2"
            )
            with pytest.raises(ClientError) as too_long:
                await c.assume_role(RoleArn=ROLE, RoleSessionName="hop2", DurationSeconds=7200)
        async with client(session, sts, second["Credentials"]) as c:
            identity = await c.get_caller_identity()
        return second, identity, error_of(too_long)[0]

    second, identity, status = run(main)
    assert identity["Arn"] == "arn:aws:sts::333333333333:assumed-role/Leaf/hop2"
    assert status == 400
    chained = [c for c in sts.calls if c.params.get("RoleSessionName") == "hop2"]
    assert chained[0].caller_arn == "arn:aws:sts::210987654321:assumed-role/Deployer/test"
    assert chained[0].issued_access_key_id == second["Credentials"]["AccessKeyId"]
    assert chained[1].outcome == "ValidationError"


# --- authentication ------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(session: AioSession, sts: LoopbackSTS) -> None:
    key, _ = sts.root_credentials

    async def main() -> None:
        async with client(session, sts, (key, "not-the-secret")) as c:
            await c.get_caller_identity()

    with pytest.raises(ClientError) as exc:
        run(main)
    status, code, message = error_of(exc)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert "signature we calculated does not match" in message
    (call,) = sts.calls
    assert (call.outcome, call.access_key_id, call.caller_arn) == (
        "SignatureDoesNotMatch",
        key,
        sts.root_arn,
    )


def test_unknown_key_is_invalid_client_token_id(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> None:
        async with client(session, sts, ("AKIAUNKNOWNKEY000000", "secret")) as c:
            await c.get_caller_identity()

    with pytest.raises(ClientError) as exc:
        run(main)
    assert error_of(exc) == (
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    )
    assert sts.calls[0].caller_arn is None


def test_missing_or_wrong_session_token(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> list[str]:
        credentials = (await assume(session, sts))["Credentials"]
        codes = []
        bad_sets: list[tuple[str, str] | dict[str, Any]] = [
            (credentials["AccessKeyId"], credentials["SecretAccessKey"]),  # no token
            {**credentials, "SessionToken": credentials["SessionToken"][:-4] + "AAAA"},
            {**credentials, "AccessKeyId": sts.root_credentials[0]},  # root key + a token
        ]
        for bad in bad_sets:
            async with client(session, sts, bad) as c:
                with pytest.raises(ClientError) as exc:
                    await c.get_caller_identity()
            codes.append(error_of(exc)[1])
        return codes

    assert run(main) == ["InvalidClientTokenId"] * 3


def test_expired_credentials_get_expired_token(session: AioSession, sts: LoopbackSTS) -> None:
    sts.credential_lifetime = 1.0

    async def main() -> tuple[dict[str, Any], list[str]]:
        response = await assume(session, sts, DurationSeconds=3600)
        expiration = response["Credentials"]["Expiration"].timestamp()
        outcomes = []
        async with client(session, sts, response["Credentials"]) as c:
            if time.time() < expiration - 0.3:  # not a machine too busy to be this quick
                await c.get_caller_identity()  # still valid
                outcomes.append("ok")
            await asyncio.sleep(max(0.0, expiration + 0.2 - time.time()))  # ~1.2 s in all
            with pytest.raises(ClientError) as exc:
                await c.get_caller_identity()
        assert error_of(exc) == (
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        )
        return response, [*outcomes, "ExpiredToken"]

    response, outcomes = run(main)
    issued = sts.calls[0]
    assert issued.expiration is not None
    assert issued.expiration - issued.time == pytest.approx(1.0, abs=0.002)
    assert issued.expiration == pytest.approx(response["Credentials"]["Expiration"].timestamp())
    assert [c.outcome for c in sts.calls] == ["ok", *outcomes]


def test_unsigned_request_and_error_document(sts: LoopbackSTS) -> None:
    async def main() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                sts.endpoint_url,
                data={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
            ) as response,
        ):
            return response.status, await response.text()

    status, body = run(main)
    assert status == 403
    root = ET.fromstring(body)
    assert root.tag == f"{NS}ErrorResponse"
    assert root.findtext(f"{NS}Error/{NS}Type") == "Sender"
    assert root.findtext(f"{NS}Error/{NS}Code") == "MissingAuthenticationToken"
    assert root.findtext(f"{NS}Error/{NS}Message")
    assert root.findtext(f"{NS}RequestId")


def test_get_with_query_string_signed_by_botocore(sts: LoopbackSTS) -> None:
    """A GET request: the canonical query string is verified too."""
    params = {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "a+b=c,d@e.f-g_h",
        "ExternalId": "x/y:z=1",
    }
    url = f"{sts.endpoint_url}/?{urlencode(params, quote_via=quote)}"

    def signed(secret: str) -> dict[str, str]:
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(Credentials(sts.root_credentials[0], secret), "sts", "us-east-1").add_auth(
            request
        )
        return dict(request.headers.items())

    async def main() -> list[tuple[int, str]]:
        results = []
        async with aiohttp.ClientSession() as http:
            for secret in (sts.root_credentials[1], "wrong"):
                async with http.get(URL(url, encoded=True), headers=signed(secret)) as response:
                    results.append((response.status, await response.text()))
        return results

    (ok_status, ok_body), (bad_status, bad_body) = run(main)
    assert ok_status == 200, ok_body
    root = ET.fromstring(ok_body)
    assert root.findtext(f"{NS}AssumeRoleResult/{NS}AssumedRoleUser/{NS}Arn") == (
        "arn:aws:sts::123456789012:assumed-role/Reader/a+b=c,d@e.f-g_h"
    )
    assert bad_status == 403
    assert "SignatureDoesNotMatch" in bad_body
    assert sts.calls[0].params["ExternalId"] == "x/y:z=1"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session_name=st.text(alphabet="abcXYZ019_+=,.@-", min_size=2, max_size=64),
    external_id=st.text(min_size=1, max_size=40),
)
def test_any_query_string_verifies(sts: LoopbackSTS, session_name: str, external_id: str) -> None:
    """Whatever the parameter values, a correctly signed GET is never a signature mismatch."""
    params = {
        "Action": "AssumeRole",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": session_name,
        "ExternalId": external_id,
    }
    url = f"{sts.endpoint_url}/?{urlencode(params, quote_via=quote)}"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*sts.root_credentials), "sts", "us-east-1").add_auth(request)

    async def main() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.get(URL(url, encoded=True), headers=dict(request.headers.items())) as response,
        ):
            return response.status

    status = run(main)
    call = sts.calls[-1]
    assert call.outcome in {"ok", "ValidationError"}
    assert (status == 200) == (call.outcome == "ok")
    assert call.params["ExternalId"] == external_id


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("throttling", (400, "Throttling", "Rate exceeded")),
        ("5xx", (500, "InternalFailure", None)),
        ("access_denied", (403, "AccessDenied", None)),
        ("drop", ConnectionClosedError),
        ("malformed", ResponseParserError),
    ],
)
def test_fault(session: AioSession, sts: LoopbackSTS, fault: Any, expected: Any) -> None:
    sts.fail_next(fault)
    assert sts.pending_faults == (fault,)

    async def main() -> tuple[BaseException | None, dict[str, Any]]:
        error = None
        async with client(session, sts) as c:
            try:
                await c.assume_role(RoleArn=ROLE, RoleSessionName="faulty")
            except Exception as exc:
                error = exc
            await c.get_caller_identity()  # GetCallerIdentity never consumes a fault
            after: dict[str, Any] = await c.assume_role(RoleArn=ROLE, RoleSessionName="fine")
        return error, after

    error, after = run(main)
    if isinstance(expected, tuple):
        assert isinstance(error, ClientError)
        status, code, message = expected
        response = error.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response["Error"]["Code"] == code
        if message is not None:
            assert response["Error"]["Message"] == message
        if fault == "access_denied":
            assert response["Error"]["Message"] == (
                f"User: {sts.root_arn} is not authorized to perform: sts:AssumeRole "
                f"on resource: {ROLE}"
            )
    else:
        assert isinstance(error, expected)
    assert after["Credentials"]["AccessKeyId"].startswith("LOOPBACKTEMP")
    assert [(c.action, c.outcome) for c in sts.calls] == [
        ("AssumeRole", fault),
        ("GetCallerIdentity", "ok"),
        ("AssumeRole", "ok"),
    ]
    assert sts.assume_role_count == 2
    assert sts.pending_faults == ()


def test_faults_queue_in_order_and_reset(session: AioSession, sts: LoopbackSTS) -> None:
    sts.fail_next("throttling", count=2)
    sts.fail_next("5xx")
    assert sts.pending_faults == ("throttling", "throttling", "5xx")
    with pytest.raises(ValueError, match="unknown fault"):
        sts.fail_next("boom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        sts.fail_next("drop", count=0)
    assert {"throttling", "5xx", "access_denied", "drop", "hang", "malformed", "trickle"} == FAULTS

    async def main() -> list[str]:
        codes = []
        async with client(session, sts) as c:
            for _ in range(2):
                with pytest.raises(ClientError) as exc:
                    await c.assume_role(RoleArn=ROLE, RoleSessionName="queued")
                codes.append(error_of(exc)[1])
        return codes

    assert run(main) == ["Throttling", "Throttling"]
    assert sts.pending_faults == ("5xx",)
    sts.reset()
    assert (sts.pending_faults, sts.calls, sts.assume_role_count) == ((), [], 0)


def test_hang_trips_read_timeout(session: AioSession, sts: LoopbackSTS) -> None:
    sts.fail_next("hang")

    async def main() -> float:
        async with client(session, sts, read_timeout=0.5) as c:
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError):
                await c.assume_role(RoleArn=ROLE, RoleSessionName="hang")
            return time.monotonic() - started

    assert run(main) < 2
    assert sts.calls[-1].outcome == "hang"


def test_trickle_defeats_read_timeout(session: AioSession, sts: LoopbackSTS) -> None:
    """Each read returns within 0.5 s: read_timeout=1 never fires, only a deadline does."""
    sts.fail_next("trickle")

    async def main() -> float:
        async with client(session, sts, read_timeout=1) as c:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.assume_role(RoleArn=ROLE, RoleSessionName="slow"), 2)
            return time.monotonic() - started

    assert run(main) >= 1.9
    assert sts.calls[-1].outcome == "trickle"


def test_trickle_body_is_a_valid_response(
    session: AioSession, sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_faults, "TRICKLE_TOTAL", 1.0)
    monkeypatch.setattr(_faults, "TRICKLE_INTERVAL", 0.1)
    sts.fail_next("trickle")

    async def main() -> dict[str, Any]:
        response = await assume(session, sts)
        async with client(session, sts, response["Credentials"]) as c:
            identity: dict[str, Any] = await c.get_caller_identity()
        return identity

    started = time.monotonic()
    assert run(main)["Arn"].endswith(":assumed-role/Reader/test")
    assert time.monotonic() - started >= 0.9
    assert [c.outcome for c in sts.calls] == ["trickle", "ok"]


def test_stop_with_hung_request_is_prompt_and_releases_port(session: AioSession) -> None:
    sts = LoopbackSTS()
    sts.start()
    port = sts.port
    sts.fail_next("hang")

    async def main() -> tuple[float, BaseException | None]:
        async with client(session, sts, read_timeout=30) as c:
            await c.get_caller_identity()  # leaves an idle keep-alive connection too
            hung = asyncio.ensure_future(c.assume_role(RoleArn=ROLE, RoleSessionName="hung"))
            await wait_until(lambda: any(call.outcome == "hang" for call in sts.calls))
            started = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, sts.stop)
            elapsed = time.monotonic() - started
            try:
                await asyncio.wait_for(hung, 5)
            except Exception as exc:
                return elapsed, exc
            return elapsed, None

    elapsed, error = run(main)
    assert elapsed < 2
    assert isinstance(error, ConnectionClosedError)
    assert not sts.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sts.stop()  # idempotent
    sts.start()  # a restart binds the same port again
    try:
        assert sts.port == port
        assert run(lambda: assume(session, sts))["Credentials"]["AccessKeyId"]
    finally:
        sts.stop()


def test_latency_delays_every_request_concurrently(session: AioSession, sts: LoopbackSTS) -> None:
    sts.latency = 0.3

    async def main() -> float:
        async with client(session, sts) as c:
            await c.get_caller_identity()  # open the connection pool first
            started = time.monotonic()
            await asyncio.gather(*(c.get_caller_identity() for _ in range(10)))
            return time.monotonic() - started

    elapsed = run(main)
    assert 0.3 <= elapsed < 2.0  # one after the other would take 3 s
    with pytest.raises(ValueError, match="latency"):
        sts.latency = -1
    with pytest.raises(ValueError, match="credential_lifetime"):
        sts.credential_lifetime = 0


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "snippet"),
    [
        ({"RoleArn": "arn:aws:iam::123:role/Short"}, "roleArn", "valid IAM role ARN"),
        ({"RoleArn": "arn:aws:iam::123456789012:user/Bob"}, "roleArn", "valid IAM role ARN"),
        ({"RoleArn": "x"}, "roleArn", "length greater than or equal to 20"),
        ({"RoleSessionName": "a"}, "roleSessionName", "length greater than or equal to 2"),
        ({"RoleSessionName": "has space"}, "roleSessionName", "regular expression pattern"),
        ({"RoleSessionName": "x" * 65}, "roleSessionName", "length less than or equal to 64"),
        ({"DurationSeconds": 899}, "durationSeconds", "greater than or equal to 900"),
        ({"DurationSeconds": 43201}, "durationSeconds", "less than or equal to 43200"),
        ({"ExternalId": "bad id"}, "externalId", "regular expression pattern"),
        ({"ExternalId": "x"}, "externalId", "length greater than or equal to 2"),
        ({"SourceIdentity": "a b"}, "sourceIdentity", "regular expression pattern"),
        ({"SerialNumber": "short", "TokenCode": "123456"}, "serialNumber", "length"),
        (
            {"SerialNumber": "arn:aws:iam::123456789012:mfa/u", "TokenCode": "12345"},
            "tokenCode",
            "length greater than or equal to 6",
        ),
        (
            {"PolicyArns": [{"arn": f"arn:aws:iam::aws:policy/P{i}"} for i in range(11)]},
            "policyArns",
            "length less than or equal to 10",
        ),
        (
            {"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]},
            "tags",
            "length less than or equal to 50",
        ),
        ({"Tags": [{"Key": "", "Value": "v"}]}, "tags.1.member.key", "greater than or equal"),
    ],
)
def test_validation_errors(
    session: AioSession, sts: LoopbackSTS, kwargs: dict[str, Any], field: str, snippet: str
) -> None:
    arguments = {"RoleArn": ROLE, "RoleSessionName": "valid", **kwargs}

    async def main() -> None:
        # botocore itself only checks minimum lengths: switch that off to reach the server.
        async with client(session, sts, parameter_validation=False) as c:
            await c.assume_role(**arguments)

    with pytest.raises(ClientError) as exc:
        run(main)
    status, code, message = error_of(exc)
    assert (status, code) == (400, "ValidationError")
    assert message.startswith("1 validation error detected: Value ")
    assert f"at '{field}' failed to satisfy constraint: " in message
    assert snippet in message
    assert sts.calls[-1].outcome == "ValidationError"


@pytest.mark.parametrize(
    ("kwargs", "code", "snippet"),
    [
        ({"Policy": "{not json"}, "MalformedPolicyDocument", "valid JSON"),
        (
            {"Tags": [{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}]},
            "ValidationError",
            "Duplicate tag keys",
        ),
        (
            {"Tags": [{"Key": "a", "Value": "1"}], "TransitiveTagKeys": ["b"]},
            "ValidationError",
            "transitive tag key",
        ),
    ],
)
def test_semantic_errors(
    session: AioSession, sts: LoopbackSTS, kwargs: dict[str, Any], code: str, snippet: str
) -> None:
    async def main() -> None:
        await assume(session, sts, **kwargs)

    with pytest.raises(ClientError) as exc:
        run(main)
    assert error_of(exc)[:2] == (400, code)
    assert snippet in error_of(exc)[2]


def test_several_violations_are_listed(session: AioSession, sts: LoopbackSTS) -> None:
    async def main() -> None:
        async with client(session, sts, parameter_validation=False) as c:
            await c.assume_role(RoleArn=ROLE, RoleSessionName="a", DurationSeconds=1)

    with pytest.raises(ClientError) as exc:
        run(main)
    message = error_of(exc)[2]
    assert message.startswith("2 validation errors detected: ")
    assert "'roleSessionName'" in message
    assert "'durationSeconds'" in message


def test_mfa(session: AioSession, sts: LoopbackSTS) -> None:
    serial = "arn:aws:iam::123456789012:mfa/alice"

    async def main() -> tuple[tuple[int, str, str], tuple[int, str, str], dict[str, Any]]:
        async with client(session, sts) as c:
            with pytest.raises(ClientError) as no_code:
                await c.assume_role(RoleArn=ROLE, RoleSessionName="mfa", SerialNumber=serial)
            with pytest.raises(ClientError) as no_serial:
                await c.assume_role(RoleArn=ROLE, RoleSessionName="mfa", TokenCode="123456")
            ok: dict[str, Any] = await c.assume_role(
                RoleArn=ROLE, RoleSessionName="mfa", SerialNumber=serial, TokenCode="123456"
            )
        return error_of(no_code), error_of(no_serial), ok

    no_code, no_serial, ok = run(main)
    expected = (
        403,
        "AccessDenied",
        "MultiFactorAuthentication failed, must provide both MFA serial number and one time "
        "pass code.",
    )
    assert no_code == no_serial == expected
    assert ok["Credentials"]["AccessKeyId"].startswith("LOOPBACKTEMP")
    assert sts.calls[-1].params["TokenCode"] == "123456"


# --- records, secrets, environment, lifecycle ------------------------------------------------


def test_calls_log_counts_and_no_secrets(session: AioSession, sts: LoopbackSTS) -> None:
    sts.fail_next("throttling")

    async def main() -> dict[str, Any]:
        async with client(session, sts) as c:
            with pytest.raises(ClientError):
                await c.assume_role(RoleArn=ROLE, RoleSessionName="one")
            response: dict[str, Any] = await c.assume_role(
                RoleArn=ROLE,
                RoleSessionName="two",
                PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
                Tags=[{"Key": "k", "Value": "v"}],
                TransitiveTagKeys=["k"],
            )
        async with client(session, sts, response["Credentials"]) as c:
            await c.get_caller_identity()
        return response

    started = time.time()
    response = run(main)
    calls = sts.calls
    assert all(isinstance(call, STSCall) for call in calls)
    assert [(c.action, c.outcome) for c in calls] == [
        ("AssumeRole", "throttling"),
        ("AssumeRole", "ok"),
        ("GetCallerIdentity", "ok"),
    ]
    assert sts.assume_role_count == 2
    assert all(started <= c.time <= time.time() for c in calls)
    assert calls[1].params == {
        "RoleArn": ROLE,
        "RoleSessionName": "two",
        "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "Tags.member.1.Key": "k",
        "Tags.member.1.Value": "v",
        "TransitiveTagKeys.member.1": "k",
    }
    assert calls[1].caller_arn == sts.root_arn
    assert calls[1].access_key_id == sts.root_credentials[0]
    assert calls[2].access_key_id == response["Credentials"]["AccessKeyId"]
    with pytest.raises(AttributeError):
        calls[0].outcome = "changed"  # type: ignore[misc]

    secrets = [
        sts.root_credentials[1],
        response["Credentials"]["SecretAccessKey"],
        response["Credentials"]["SessionToken"],
    ]
    shown = repr(sts) + repr(calls) + str(sts)
    assert not [secret for secret in secrets if secret in shown]
    assert sts.endpoint_url in repr(sts)
    assert "calls=3" in repr(sts)


def test_environ_routes_the_default_chain(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    environ = sts.environ()
    assert set(environ) == {
        "AWS_ENDPOINT_URL_STS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    }
    assert environ["AWS_DEFAULT_REGION"] == "us-east-1"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    async def main() -> dict[str, Any]:
        async with AioSession().create_client("sts") as c:
            result: dict[str, Any] = await c.get_caller_identity()
        return result

    assert run(main)["Arn"] == sts.root_arn


def test_async_with_and_other_threads(session: AioSession) -> None:
    """``async with`` works, and one server serves several threads' event loops at once."""

    async def main() -> list[str]:
        async with LoopbackSTS(credential_lifetime=900.0) as sts:
            arns: list[str] = []

            def worker(name: str) -> None:
                response = asyncio.run(assume(session, sts, RoleSessionName=name))
                arns.append(response["AssumedRoleUser"]["Arn"])

            threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(3)]
            for thread in threads:
                thread.start()
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: [thread.join(30) for thread in threads]
            )
            assert sts.running
        assert not sts.running
        return sorted(arns)

    assert run(main) == [f"arn:aws:sts::123456789012:assumed-role/Reader/t{i}" for i in range(3)]


def test_lifecycle_errors() -> None:
    sts = LoopbackSTS()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = sts.endpoint_url
    assert "running=False" in repr(sts)
    with sts, pytest.raises(RuntimeError, match="already running"):
        sts.start()
    sts.stop()


def test_expiration_is_iso8601_utc(sts: LoopbackSTS) -> None:
    """The raw document carries Expiration as ISO 8601 UTC with a Z."""
    url = f"{sts.endpoint_url}/"
    body = urlencode(
        {
            "Action": "AssumeRole",
            "Version": "2011-06-15",
            "RoleArn": ROLE,
            "RoleSessionName": "raw",
        },
        quote_via=quote,
    )
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(*sts.root_credentials), "sts", "us-east-1").add_auth(request)

    async def main() -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=dict(request.headers.items())) as response,
        ):
            text = await response.text()
            assert response.status == 200, text
            return text

    root = ET.fromstring(run(main))
    expiration = root.findtext(f"{NS}AssumeRoleResult/{NS}Credentials/{NS}Expiration")
    assert expiration is not None
    assert expiration.endswith("Z")
    parsed = datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert 3590 < parsed.timestamp() - time.time() < 3610


def test_async_with_on_trio() -> None:
    trio = pytest.importorskip("trio")

    async def main() -> bytes:
        async with LoopbackSTS() as sts:
            stream = await trio.open_tcp_stream("127.0.0.1", sts.port)
            async with stream:
                await stream.send_all(
                    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: 43\r\n\r\nAction=GetCallerIdentity&Version=2011-06-15"
                )
                data = b""
                while chunk := await stream.receive_some():
                    data += chunk
        assert not sts.running
        return data

    response = trio.run(main)
    assert response.startswith(b"HTTP/1.1 403")
    assert b"<Code>MissingAuthenticationToken</Code>" in response


# --- python -m aio_assume_role_lib.testing serve -------------------------------------------


def test_serve_options_configure_the_server() -> None:
    server = _serve.make_server(["serve", "--lifetime", "6.5", "--latency", "0.25", "--port", "0"])
    assert (server.credential_lifetime, server.latency, server.running) == (6.5, 0.25, False)
    defaults = _serve.make_server(["serve"])
    assert (defaults.credential_lifetime, defaults.latency, defaults.port) == (None, 0.0, 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["serve", "--lifetime", "0"], "argument --lifetime: must be a positive number"),
        (["serve", "--lifetime", "nan"], "argument --lifetime: must be a positive number"),
        (["serve", "--latency", "-1"], "argument --latency: must be a non-negative number"),
        (["serve", "--port", "65536"], "argument --port: must be an integer in 0..65535"),
        (["serve", "--port", "-1"], "argument --port: must be an integer in 0..65535"),
    ],
)
def test_serve_rejects_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _serve.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _read_lines(stream: Any, count: int, timeout: float) -> list[str]:
    """``count`` lines from a subprocess's pipe, or fail after ``timeout`` seconds."""
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(stream.readline() for _ in range(count)), daemon=True
    )
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"no {count} lines within {timeout} s: {lines}"
    return [line.rstrip("\n") for line in lines]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


ROOT_ARN = "arn:aws:iam::123456789012:user/loopback-root"
# What a developer's shell may hold from earlier work.
STALE_SHELL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAOUTSIDESTALE0001",
    "AWS_SECURITY_TOKEN": "outside-stale-security-token",
    "AWS_SESSION_TOKEN": "outside-stale-session-token",
    "AWS_CREDENTIAL_EXPIRATION": "2020-01-01T00:00:00Z",
    "AWS_PROFILE": "outside",
    "AWS_DEFAULT_PROFILE": "outside",
    "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/Outside",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/outside/token",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/outside",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}
PRINT_CALLER_ARN = (
    "import botocore.session; "
    "print(botocore.session.get_session().create_client('sts').get_caller_identity()['Arn'])"
)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_command_prints_shell_lines_serves_and_stops_cleanly(
    session: AioSession, stop_signal: int
) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "aio_assume_role_lib.testing", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--lifetime", "1234"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _read_lines(process.stdout, 5, timeout=60)
        # What a POSIX shell makes of the lines: they must survive its quoting rules, and
        # leave nothing of the shell's own credentials (before, a stale AWS_SECURITY_TOKEN
        # was paired with the root key, and a stale AWS_CREDENTIAL_EXPIRATION kept).
        outside = {"PATH": os.environ.get("PATH", ""), **STALE_SHELL_CREDENTIALS}
        shell = subprocess.run(
            ["sh", "-c", "\n".join([*lines, "env"])],
            env=outside,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        environ = dict(line.split("=", 1) for line in shell.splitlines() if "=" in line)
        assert not set(environ) & (set(STALE_SHELL_CREDENTIALS) - {"AWS_ACCESS_KEY_ID"})
        # ... and a real botocore in that shell is the root user.
        who = subprocess.run(
            ["sh", "-c", "\n".join([*lines, f"exec {shlex.quote(sys.executable)} -c "
                                  f"{shlex.quote(PRINT_CALLER_ARN)}"])],
            env=outside, capture_output=True, text=True, timeout=HANG_SECONDS,
        )  # fmt: skip
        assert (who.returncode, who.stdout.strip()) == (0, ROOT_ARN), who.stderr[-2000:]
        assert environ["AWS_ENDPOINT_URL_STS"] == f"http://127.0.0.1:{port}"
        assert environ["AWS_DEFAULT_REGION"] == "us-east-1"

        async def main() -> tuple[dict[str, Any], dict[str, Any]]:
            async with session.create_client(
                "sts",
                region_name=environ["AWS_DEFAULT_REGION"],
                endpoint_url=environ["AWS_ENDPOINT_URL_STS"],
                aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
            ) as c:
                return await c.get_caller_identity(), await c.assume_role(
                    RoleArn=ROLE, RoleSessionName="serve"
                )

        identity, assumed = run(main)
        assert identity["Arn"] == ROOT_ARN
        lifetime = assumed["Credentials"]["Expiration"].timestamp() - time.time()
        assert 1234 - 60 < lifetime <= 1234  # --lifetime, not DurationSeconds' 3600

        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "LoopbackSTS stopped (3 requests served)" in process.stderr.read()
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))


def test_serve_shell_lines_quote_for_a_posix_shell() -> None:
    class Server:
        def environ(self) -> dict[str, str]:
            return {"AWS_ACCESS_KEY_ID": "a b'c\"$HOME;`x`\\"}

    lines = _serve.shell_lines(Server())  # type: ignore[arg-type]
    script = "\n".join([*lines, 'printf %s "$AWS_ACCESS_KEY_ID"'])
    shown = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert shown.stdout == "a b'c\"$HOME;`x`\\"


# --- the SSO portal and instance metadata (parents' sources) -------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (None, None),
        ("throttling", (429, "TooManyRequestsException")),
        ("5xx", (500, "InternalServerException")),
        ("access_denied", (403, "ForbiddenException")),
        ("malformed", "no credentials"),
    ],
)
def test_sso_portal_get_role_credentials(
    session: AioSession, sts: LoopbackSTS, fault: Any, expected: Any
) -> None:
    """botocore's own SSO client (unsigned, the token in ``x-amz-sso_bearer_token``)
    parses the portal's answers: credentials with their expiry in epoch milliseconds, and
    errors with the code in ``x-amzn-ErrorType``."""
    if fault is not None:
        sts.fail_next(fault, action="GetRoleCredentials")
    started = time.time()

    async def main() -> tuple[Any, list[tuple[int, str]]]:
        from botocore import UNSIGNED

        config = AioConfig(signature_version=UNSIGNED, **ONE_ATTEMPT)
        async with session.create_client(
            "sso", region_name="us-east-1", endpoint_url=sts.endpoint_url, config=config
        ) as sso:

            async def code_of(**kwargs: str) -> tuple[int, str]:
                with pytest.raises(ClientError) as caught:
                    await sso.get_role_credentials(**kwargs)
                return error_of(caught)[:2]

            try:
                outcome: Any = await sso.get_role_credentials(
                    roleName="Ops", accountId="210987654321", accessToken=sts.sso_access_token
                )
            except Exception as error:
                outcome = error
            errors = [
                await code_of(roleName="Ops", accountId="210987654321", accessToken="stale"),
                await code_of(roleName="Ops", accountId="21098", accessToken=sts.sso_access_token),
            ]
        return outcome, errors

    outcome, errors = run(main)
    assert errors == [(401, "UnauthorizedException"), (400, "InvalidRequestException")]
    if expected is None:
        credentials = outcome["roleCredentials"]
        assert credentials["accessKeyId"].startswith("LOOPBACKTEMP")
        assert isinstance(credentials["expiration"], int)
        assert started + 3599 < credentials["expiration"] / 1000 < time.time() + 3601
        issued = next(call for call in sts.calls if call.issued_access_key_id)
        assert issued.params == {"role_name": "Ops", "account_id": "210987654321"}
        assert issued.issued_access_key_id == credentials["accessKeyId"]
        assert sts.sso_role_arn("Ops").startswith(
            "arn:aws:iam::123456789012:role/AWSReservedSSO_Ops_"
        )
    elif expected == "no credentials":  # botocore takes a body that is not JSON as {}
        assert "roleCredentials" not in outcome
    else:
        assert isinstance(outcome, ClientError)
        metadata, error = outcome.response["ResponseMetadata"], outcome.response["Error"]
        assert (metadata["HTTPStatusCode"], error["Code"]) == expected
    assert [call.action for call in sts.calls] == ["GetRoleCredentials"] * 3
    assert sts.sso_access_token not in repr(sts.calls)
    before = sts.sso_access_token
    sts.revoke_sso_access_token()
    assert sts.sso_access_token != before


def test_instance_metadata_is_imdsv2_only(sts: LoopbackSTS) -> None:
    """A session token first (PUT, with a TTL of 1..21600 s), then the role's name and its
    credentials, each GET with the token; without one (IMDSv1) the answer is 401. Faults
    answer in plain text, one per request."""
    base = sts.instance_metadata_environ()["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    credentials_path = "latest/meta-data/iam/security-credentials/"

    async def main() -> list[tuple[int, str]]:
        answers = []
        async with aiohttp.ClientSession() as http:

            async def call(method: str, path: str, **headers: str) -> str:
                async with http.request(method, base + path, headers=headers) as response:
                    text = await response.text()
                    answers.append((response.status, text))
                    return text

            ttl = "x-aws-ec2-metadata-token-ttl-seconds"
            await call("GET", credentials_path)  # IMDSv1
            await call("PUT", "latest/api/token", **{ttl: "0"})
            token = await call("PUT", "latest/api/token", **{ttl: "21600"})
            role = await call("GET", credentials_path, **{"x-aws-ec2-metadata-token": token})
            await call("GET", credentials_path + role, **{"x-aws-ec2-metadata-token": token})
            await call("GET", credentials_path + role, **{"x-aws-ec2-metadata-token": "forged"})
            sts.fail_next("throttling", action="InstanceMetadata")
            await call("PUT", "latest/api/token", **{ttl: "60"})
        return answers

    answers = run(main)
    statuses = [status for status, _ in answers]
    assert statuses == [401, 400, 200, 200, 200, 401, 429]
    assert answers[3][1] == "loopback-instance"
    document = json.loads(answers[4][1])
    assert document["Code"] == "Success"
    assert document["Type"] == "AWS-HMAC"
    # Instance metadata's format, whole seconds: what botocore's expiry check parses.
    expiry = datetime.strptime(document["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(expiry.replace(tzinfo=timezone.utc).timestamp() - time.time() - 3600) < 5
    assert sts.instance_role_arn == "arn:aws:iam::123456789012:role/loopback-instance"
    recorded = [(call.params["path"], call.outcome) for call in sts.calls]
    assert recorded[-1] == ("/latest/api/token", "throttling")
    assert [outcome for _, outcome in recorded] == [
        "Unauthorized", "BadRequest", "ok", "ok", "ok", "Unauthorized", "throttling"
    ]  # fmt: skip
    assert answers[2][1] not in repr(sts.calls)  # the session token is not recorded

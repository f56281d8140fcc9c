"""Every claim docs/migrating.md and docs/cli.md make about aws-assume-role-lib 2.10.0, run.

One row per claim: its id (the pages cite it), what the page says, and a check that runs
the sync library (``aws_assume_role_lib``, its CLI included) and this library side by
side, against the loopback STS or offline, and asserts the difference or the sameness the
page states. ``test_every_claim_is_cited`` keeps the pages and this table in step: a row
the pages do not cite, or a cited id with no row, fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import getpass
import io
import json
import logging
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aws_assume_role_lib as sync
import boto3
import botocore.credentials
import botocore.endpoint
import pytest
from aiobotocore.session import AioSession
from aws_assume_role_lib import aws_assume_role_lib as sync_module
from botocore.exceptions import (
    NoCredentialsError,
    ParamValidationError,
    RefreshWithMFAUnsupportedError,
)

import aio_assume_role_lib as ours
from aio_assume_role_lib import _cli
from aio_assume_role_lib.testing import LoopbackSTS, STSCall

from .conftest import HANG_SECONDS

ROOT = Path(__file__).resolve().parent.parent
ROLE = "arn:aws:iam::123456789012:role/Reader"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
PROMPTED_CODE = "999999"  # what the patched getpass answers
GIVEN_CODE = "123456"  # what the caller passes as TokenCode


# --- the world both libraries run in ---------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackSTS]:
    with LoopbackSTS() as sts:
        yield sts


@dataclass
class World:
    sts: LoopbackSTS
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    prompts: list[str]

    def assume_role_calls(self) -> list[STSCall]:
        return [call for call in self.sts.calls if call.action == "AssumeRole"]

    def last_params(self) -> dict[str, str]:
        return dict(self.assume_role_calls()[-1].params)


@pytest.fixture
def world(server: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """STS and the default credential chain point at the loopback server; getpass answers."""
    server.reset()
    server.credential_lifetime = None
    server.latency = 0.0
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: Any = None) -> str:
        prompts.append(prompt)
        return PROMPTED_CODE

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return World(server, tmp_path, monkeypatch, prompts)


def run(coroutine_function: Callable[[], Any]) -> Any:
    """Run this library's side in a fresh event loop."""
    return asyncio.run(coroutine_function())


def our_assume(parent: Any = None, role: str = ROLE, **arguments: Any) -> Any:
    """``await assume_role(parent or a new AioSession, role, **arguments)``, run here."""
    return run(lambda: ours.assume_role(parent or AioSession(), role, **arguments))


def sync_access_key(child: boto3.Session) -> str:
    return str(child.get_credentials().get_frozen_credentials().access_key)


async def our_access_key(child: Any) -> str:
    credentials = await child.get_credentials()
    return str((await credentials.get_frozen_credentials()).access_key)


def raises(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except BaseException as error:
        return error
    return None


# --- migrating.md: names and parameters --------------------------------------------------------


def no_sts_call_in_assume_role(w: World) -> None:
    sync_child = sync.assume_role(boto3.Session(), ROLE)
    our_child = our_assume()
    assert w.sts.assume_role_count == 0
    sync_access_key(sync_child)
    assert w.sts.assume_role_count == 1
    run(lambda: our_access_key(our_child))
    assert w.sts.assume_role_count == 2


def name_helpers_same_output(w: World) -> None:
    arn_cases: list[tuple[Any, ...]] = [
        (123456789012, "Reader"),
        ("42", "path/to/Reader"),
        ("123456789012", "Reader", "/team/"),
        ("123456789012", "Reader", "", "aws-cn"),
    ]
    for case in arn_cases:
        assert ours.get_role_arn(*case) == sync.get_role_arn(*case)
    for case in [(1, "path/Reader", "s"), ("123456789012", "Reader", "session", "aws-us-gov")]:
        assert ours.get_assumed_role_session_arn(*case) == sync.get_assumed_role_session_arn(*case)
    lambda_cases = [
        ("my-function", "7", "abc123"),
        ("f" * 70, None, "id"),
        ("my function!", "$LATEST", "x" * 80),
    ]
    for function_name, version, identifier in lambda_cases:
        assert ours.generate_lambda_session_name(
            function_name, version, identifier
        ) == sync.generate_lambda_session_name(function_name, version, identifier)
    w.monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "from-env")
    w.monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "3")
    w.monkeypatch.setenv("AWS_LAMBDA_LOG_STREAM_NAME", "2020/01/31/[3]3893xmpl7fac4485b4")
    assert ours.generate_lambda_session_name() == sync.generate_lambda_session_name()


def automatic_session_name(w: World) -> None:
    assert ours.AUTOMATIC_ROLE_SESSION_NAME == sync.AUTOMATIC_ROLE_SESSION_NAME
    name = ours.AUTOMATIC_ROLE_SESSION_NAME
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, RoleSessionName=name))
    theirs = w.last_params()["RoleSessionName"]
    child = our_assume(RoleSessionName=name)
    run(lambda: our_access_key(child))
    mine = w.last_params()["RoleSessionName"]
    assert re.fullmatch(r"botocore-session-\d+", theirs)
    assert re.fullmatch(r"botocore-session-\d+", mine)


def session_name_defaults_to_source_identity(w: World) -> None:
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, SourceIdentity="alice"))
    theirs = w.last_params()
    child = our_assume(SourceIdentity="alice")
    run(lambda: our_access_key(child))
    mine = w.last_params()
    assert theirs["RoleSessionName"] == mine["RoleSessionName"] == "alice"
    assert theirs["SourceIdentity"] == mine["SourceIdentity"] == "alice"


def patch_adds_coroutine_methods(w: World) -> None:
    # Register the attributes first, so that undoing the test removes what the patches add.
    w.monkeypatch.setattr(boto3.Session, "assume_role", None, raising=False)
    w.monkeypatch.setattr(boto3, "assume_role", None, raising=False)
    w.monkeypatch.setattr(AioSession, "assume_role", None, raising=False)
    sync.patch_boto3()
    assert callable(boto3.assume_role)  # the sync library's default-session function
    assert isinstance(boto3.Session().assume_role(ROLE), boto3.Session)
    ours.patch_aiobotocore()

    async def call_the_method() -> Any:
        pending = AioSession().assume_role(ROLE)
        assert asyncio.iscoroutine(pending)
        return await pending

    assert isinstance(run(call_the_method), AioSession)
    assert not hasattr(sys.modules["aiobotocore"], "assume_role")


def session_type_checked(w: World) -> None:
    assert isinstance(sync.assume_role(boto3.Session(), ROLE), boto3.Session)
    error = raises(lambda: run(lambda: ours.assume_role(boto3.Session(), ROLE)))
    assert isinstance(error, TypeError)
    assert "AioSession" in str(error)
    assert "aioboto3.Session" in str(error)


def role_arn_shape_checked(w: World) -> None:
    not_a_role = "arn:aws:iam::123456789012:notarole/Reader"
    assert raises(lambda: sync.assume_role(boto3.Session(), not_a_role)) is None
    error = raises(lambda: run(lambda: ours.assume_role(AioSession(), not_a_role)))
    assert isinstance(error, ParamValidationError)
    assert "RoleArn" in str(error)


def policy_arns_bare_string(w: World) -> None:
    policy = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    sync_error = raises(lambda: sync.assume_role(boto3.Session(), ROLE, PolicyArns=policy))
    # Character by character: one one-letter "policy ARN" per character, each refused.
    assert isinstance(sync_error, ParamValidationError)
    assert f"PolicyArns[{len(policy) - 1}].arn, value: 1" in str(sync_error)
    error = raises(lambda: our_assume(PolicyArns=policy))
    assert isinstance(error, ParamValidationError)
    assert "PolicyArns" in str(error)
    assert "single str" in str(error)


def empty_narrowing_refused(w: World) -> None:
    # The sync library sends an empty PolicyArns: AssumeRole gets no policy ARN at all.
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, PolicyArns=[]))
    assert not any(name.startswith("PolicyArns.member") for name in w.last_params())
    calls = len(w.assume_role_calls())
    for arguments in (
        {"PolicyArns": []},
        {"Policy": {}},
        {"additional_kwargs": {"PolicyArns": []}},
    ):
        error = raises(lambda: our_assume(**arguments))  # noqa: B023 - called at once
        assert isinstance(error, ParamValidationError), arguments
        assert "it is empty" in str(error)
    assert len(w.assume_role_calls()) == calls
    run(lambda: our_access_key(our_assume(PolicyArns=[], validate=False)))  # sent, as there


def conversions_policy_and_duration(w: World) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}
    arguments: dict[str, Any] = {
        "Policy": policy,
        "DurationSeconds": timedelta(hours=1),
        "PolicyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
    }
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, **arguments))
    theirs = w.last_params()
    child = our_assume(**arguments)
    run(lambda: our_access_key(child))
    mine = w.last_params()
    for name in ("Policy", "DurationSeconds", "PolicyArns.member.1.arn"):
        assert theirs[name] == mine[name], name
    assert json.loads(mine["Policy"]) == policy
    assert mine["DurationSeconds"] == "3600"


def duration_range_checked(w: World) -> None:
    assert raises(lambda: sync.assume_role(boto3.Session(), ROLE, DurationSeconds=50_000)) is None
    error = raises(lambda: our_assume(DurationSeconds=50_000))
    assert isinstance(error, ParamValidationError)
    assert "43200" in str(error)
    for library in (sync.assume_role, None):  # both refuse below 900
        if library is None:
            error = raises(lambda: our_assume(DurationSeconds=60))
        else:
            error = raises(lambda: sync.assume_role(boto3.Session(), ROLE, DurationSeconds=60))
        assert isinstance(error, ParamValidationError)


def tags_as_mapping(w: World) -> None:
    error = raises(lambda: sync.assume_role(boto3.Session(), ROLE, Tags={"team": "data"}))
    assert isinstance(error, ParamValidationError)
    as_list = [{"Key": "team", "Value": "data"}]
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, Tags=as_list))
    theirs = w.last_params()
    for tags in (as_list, {"team": "data"}):
        child = our_assume(Tags=tags)
        run(lambda child=child: our_access_key(child))
        mine = w.last_params()
        assert mine["Tags.member.1.Key"] == theirs["Tags.member.1.Key"] == "team"
        assert mine["Tags.member.1.Value"] == theirs["Tags.member.1.Value"] == "data"


def transitive_tag_keys_bare_string(w: World) -> None:
    sync_error = raises(lambda: sync.assume_role(boto3.Session(), ROLE, TransitiveTagKeys="team"))
    our_error = raises(lambda: our_assume(TransitiveTagKeys="team"))
    assert isinstance(sync_error, ParamValidationError)
    assert isinstance(our_error, ParamValidationError)


def plain_parameters_sent(w: World) -> None:
    arguments = {"ExternalId": "partner-1234", "RoleSessionName": "job", "SourceIdentity": "bob"}
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, **arguments))
    theirs = w.last_params()
    child = our_assume(**arguments)
    run(lambda: our_access_key(child))
    mine = w.last_params()
    for name, value in arguments.items():
        assert theirs[name] == mine[name] == value


def sync_token_code_ignored_prompts_every_fetch(w: World) -> None:
    # 12-minute credentials: inside botocore's 15-minute window, so every use fetches.
    w.sts.credential_lifetime = 720
    child = sync.assume_role(boto3.Session(), ROLE, SerialNumber=SERIAL, TokenCode=GIVEN_CODE)
    credentials = child.get_credentials()
    credentials.get_frozen_credentials()
    credentials.get_frozen_credentials()
    sent = [call.params.get("TokenCode") for call in w.assume_role_calls()]
    assert sent == [PROMPTED_CODE, PROMPTED_CODE]  # the given code is never sent
    assert w.prompts == [f"Enter MFA code for {SERIAL}: "] * 2
    # This library sends the code it was given, and asks nobody.
    w.sts.reset()
    del w.prompts[:]
    our_child = our_assume(SerialNumber=SERIAL, TokenCode=GIVEN_CODE)
    run(lambda: our_access_key(our_child))
    assert [call.params.get("TokenCode") for call in w.assume_role_calls()] == [GIVEN_CODE]
    assert w.prompts == []


def token_code_string_first_fetch_only(w: World) -> None:
    w.sts.credential_lifetime = 1.0
    child = our_assume(SerialNumber=SERIAL, TokenCode=GIVEN_CODE)

    async def use_twice() -> BaseException | None:
        await our_access_key(child)
        await asyncio.sleep(1.2)  # the credentials expire
        try:
            await our_access_key(child)
        except Exception as error:
            return error
        return None

    error = run(use_twice)
    assert isinstance(error, RefreshWithMFAUnsupportedError)
    assert "TokenCode" in str(error)
    assert [call.params.get("TokenCode") for call in w.assume_role_calls()] == [GIVEN_CODE]


def token_code_callable_each_fetch(w: World) -> None:
    error = raises(
        lambda: sync.assume_role(boto3.Session(), ROLE, SerialNumber=SERIAL, TokenCode=lambda: "1")
    )
    assert isinstance(error, ParamValidationError)  # a str only
    w.sts.credential_lifetime = 1.0
    codes = iter(["111111", "222222", "333333"])

    async def next_code() -> str:
        return next(codes)

    async def use_twice() -> None:
        child = await ours.assume_role(AioSession(), ROLE, SerialNumber=SERIAL, TokenCode=next_code)
        await our_access_key(child)
        await asyncio.sleep(1.2)
        await our_access_key(child)

    run(use_twice)
    assert [call.params.get("TokenCode") for call in w.assume_role_calls()] == [
        "111111",
        "222222",
    ]


def missing_mfa_code(w: World) -> None:
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, SerialNumber=SERIAL))
    assert w.prompts == [f"Enter MFA code for {SERIAL}: "]  # the sync library prompts
    child = our_assume(SerialNumber=SERIAL)
    error = raises(lambda: run(lambda: our_access_key(child)))
    assert isinstance(error, RefreshWithMFAUnsupportedError)
    assert "TokenCode" in str(error)
    assert w.prompts == [f"Enter MFA code for {SERIAL}: "]  # this library does not
    assert w.sts.assume_role_count == 1


def region_modes(w: World) -> None:
    # The implicit region (environment) is us-east-1; the parents are set to eu-west-1.
    def region_of(child: Any) -> str | None:
        return (
            child.region_name
            if isinstance(child, boto3.Session)
            else child.get_config_variable("region")
        )

    sync_parent = boto3.Session(region_name="eu-west-1")
    our_parent = AioSession()
    our_parent.set_config_variable("region", "eu-west-1")
    results = {}
    for mode in (None, True, False, "ap-south-1"):
        sync_child = sync.assume_role(sync_parent, ROLE, region_name=mode)
        our_child = run(lambda mode=mode: ours.assume_role(our_parent, ROLE, region_name=mode))
        results[mode] = (sync_child, our_child)
        assert region_of(sync_child) == region_of(our_child), mode
    assert region_of(results[True][1]) == "eu-west-1"
    assert region_of(results[False][1]) == "us-east-1"
    assert region_of(results["ap-south-1"][1]) == "ap-south-1"
    # None follows the parent's later changes; True was a copy.
    sync_parent._session.set_config_variable("region", "sa-east-1")
    our_parent.set_config_variable("region", "sa-east-1")
    for mode, expected in ((None, "sa-east-1"), (True, "eu-west-1")):
        sync_child, our_child = results[mode]
        assert sync_child._session.get_config_variable("region") == expected, mode
        assert region_of(our_child) == expected, mode


def bad_option_types_raise_at_once(w: World) -> None:
    session = boto3.Session()
    # The sync library accepts these at the call (and fails later, or never).
    for arguments in ({"region_name": 5}, {"region_name": "not a region!"}, {"cache": []}):
        assert (
            raises(lambda arguments=arguments: sync.assume_role(session, ROLE, **arguments)) is None
        )
    expected: list[tuple[dict[str, Any], type[BaseException], str]] = [
        ({"region_name": 5}, TypeError, "region_name"),
        ({"region_name": "not a region!"}, ValueError, "region_name"),
        ({"cache": []}, TypeError, "cache"),
        ({"refresh": {}}, TypeError, "refresh"),
    ]
    for arguments, error_type, name in expected:
        error = raises(lambda arguments=arguments: our_assume(**arguments))
        assert isinstance(error, error_type), arguments
        assert name in str(error)
    assert w.sts.assume_role_count == 0


def validation_beyond_botocore(w: World) -> None:
    arguments: dict[str, Any] = {"RoleSessionName": "no spaces allowed", "DurationSeconds": 60}
    sync_error = raises(lambda: sync.assume_role(boto3.Session(), ROLE, **arguments))
    our_error = raises(lambda: our_assume(**arguments))
    assert isinstance(sync_error, ParamValidationError)
    assert isinstance(our_error, ParamValidationError)
    assert "DurationSeconds" in str(sync_error)
    assert "RoleSessionName" not in str(sync_error)  # botocore checks no pattern
    assert "DurationSeconds" in str(our_error)
    assert "RoleSessionName" in str(our_error)  # every problem, in one error


def repeat_calls(w: World) -> None:
    parent = boto3.Session()
    first, second = (sync.assume_role(parent, ROLE) for _ in range(2))
    assert first is not second
    sync_access_key(first)
    sync_access_key(second)
    assert w.sts.assume_role_count == 2  # a new provider (and dict cache) per call

    async def twice() -> None:
        our_parent = AioSession()
        one = await ours.assume_role(our_parent, ROLE)
        two = await ours.assume_role(our_parent, ROLE)
        assert one is two
        await our_access_key(one)
        await our_access_key(two)

    w.sts.reset()
    run(twice)
    assert w.sts.assume_role_count == 1


def additional_kwargs_overridden(w: World) -> None:
    extra = {"ExternalId": "from-extra", "RoleSessionName": "from-extra"}
    sync_access_key(
        sync.assume_role(boto3.Session(), ROLE, ExternalId="named", additional_kwargs=extra)
    )
    theirs = w.last_params()
    child = our_assume(ExternalId="named", additional_kwargs=extra)
    run(lambda: our_access_key(child))
    mine = w.last_params()
    assert theirs["ExternalId"] == mine["ExternalId"] == "named"
    assert theirs["RoleSessionName"] == mine["RoleSessionName"] == "from-extra"


def child_kind_and_parent(w: World) -> None:
    sync_parent = boto3.Session()
    sync_child = sync.assume_role(sync_parent, ROLE)
    assert sync_child.assume_role_parent_session is sync_parent
    our_parent = AioSession()
    our_child = run(lambda: ours.assume_role(our_parent, ROLE))
    assert type(our_child) is AioSession
    assert our_child.assume_role_parent_session is our_parent


def no_credentials_error(w: World) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        w.monkeypatch.delenv(name)
    for validate in (True, False):
        sync_error = raises(
            functools.partial(sync.assume_role, boto3.Session(), ROLE, validate=validate)
        )
        our_error = raises(functools.partial(our_assume, validate=validate))
        assert isinstance(sync_error, NoCredentialsError)
        assert isinstance(our_error, NoCredentialsError)


def sync_refresh_windows(w: World) -> None:
    child = sync.assume_role(boto3.Session(), ROLE)
    credentials = child.get_credentials()
    assert isinstance(credentials, botocore.credentials.RefreshableCredentials)
    assert credentials._advisory_refresh_timeout == 15 * 60
    assert credentials._mandatory_refresh_timeout == 10 * 60
    assert botocore.credentials.CachedCredentialFetcher.DEFAULT_EXPIRY_WINDOW_SECONDS == 15 * 60


def fewer_retries(w: World) -> None:
    # Five HTTP 500 answers in a row: botocore's legacy retry mode tries five times.
    w.sts.fail_next("5xx", 5)
    sleeps: list[float] = []
    with w.monkeypatch.context() as patch:  # botocore's back-off between tries, not waited
        patch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=sleeps.append))
        assert raises(lambda: sync_access_key(sync.assume_role(boto3.Session(), ROLE))) is not None
    assert w.sts.assume_role_count == 5
    assert len(sleeps) == 4
    w.sts.reset()
    w.sts.fail_next("5xx", 5)
    child = our_assume()
    assert raises(lambda: run(lambda: our_access_key(child))) is not None
    # botocore's retries are off; the refresh engine's own (see concepts.md) stay within 3.
    assert 1 <= w.sts.assume_role_count <= 3


# --- migrating.md: the cache ---------------------------------------------------------------------


class CountingCache(dict[str, Any]):
    """A dict cache that counts reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.writes = 0

    def __contains__(self, key: object) -> bool:
        self.reads += 1
        return super().__contains__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def cache_same_keys(w: World) -> None:
    for arguments in ({}, {"RoleSessionName": "job", "Policy": {"b": 1, "a": 2}}):
        sync_cache: dict[str, Any] = {}
        our_cache: dict[str, Any] = {}
        sync_access_key(sync.assume_role(boto3.Session(), ROLE, cache=sync_cache, **arguments))
        child = our_assume(cache=our_cache, **arguments)
        run(lambda child=child: our_access_key(child))
        assert list(sync_cache) == list(our_cache), arguments


def cache_entries(directory: Path) -> list[Path]:
    """The entries in a JSONFileCache directory, once there is one (writes may finish
    after the credentials reach their caller)."""
    deadline = time.monotonic() + HANG_SECONDS
    while not list(directory.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    return sorted(directory.glob("*.json"))


def cache_files_shared(w: World) -> None:
    directory = w.tmp / "cache"
    sync_key = sync_access_key(
        sync.assume_role(boto3.Session(), ROLE, cache=sync.JSONFileCache(str(directory)))
    )
    child = our_assume(cache=ours.JSONFileCache(directory))
    assert run(lambda: our_access_key(child)) == sync_key  # read what the sync library wrote
    assert w.sts.assume_role_count == 1
    for path in directory.glob("*.json"):
        path.unlink()
    child = our_assume(cache=ours.JSONFileCache(directory))
    our_key = run(lambda: our_access_key(child))
    cache_entries(directory)  # written
    again = sync.assume_role(boto3.Session(), ROLE, cache=sync.JSONFileCache(str(directory)))
    assert sync_access_key(again) == our_key  # and the other way round
    assert w.sts.assume_role_count == 2


def cache_key_with_token_code(w: World) -> None:
    sync_keys, our_keys = {}, {}
    for code in (None, GIVEN_CODE, "654321"):
        sync_cache: dict[str, Any] = {}
        sync_child = sync.assume_role(
            boto3.Session(), ROLE, cache=sync_cache, SerialNumber=SERIAL, TokenCode=code
        )
        sync_access_key(sync_child)
        [sync_keys[code]] = sync_cache
    for code in (GIVEN_CODE, "654321", "callable"):
        our_cache: dict[str, Any] = {}
        source: Any = (lambda: GIVEN_CODE) if code == "callable" else code
        child = our_assume(cache=our_cache, SerialNumber=SERIAL, TokenCode=source)
        run(lambda child=child: our_access_key(child))
        [our_keys[code]] = our_cache
    # The key includes a code given as a string, in both libraries: a new key per code ...
    assert len(set(sync_keys.values())) == 3
    assert our_keys[GIVEN_CODE] == sync_keys[GIVEN_CODE]
    assert our_keys["654321"] == sync_keys["654321"]
    # ... and a callable (which only this library takes) is left out of it.
    assert our_keys["callable"] == sync_keys[None]


def _cached_response(access_key: str, seconds_left: float) -> dict[str, Any]:
    expiration = datetime.now(timezone.utc) + timedelta(seconds=seconds_left)
    return {
        "Credentials": {
            "AccessKeyId": access_key,
            "SecretAccessKey": "cached-secret-placeholder",
            "SessionToken": "cached-token-placeholder",
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/Reader/cached"},
    }


def cache_reuse_threshold(w: World) -> None:
    key_cache: dict[str, Any] = {}
    sync_access_key(sync.assume_role(boto3.Session(), ROLE, cache=key_cache))
    [key] = key_cache
    for seconds_left, sync_reuses, we_reuse in ((600, False, True), (30, False, False)):
        cached = "ASIACACHEDEXAMPLE000"
        sync_cache = {key: _cached_response(cached, seconds_left)}
        our_cache = {key: _cached_response(cached, seconds_left)}
        theirs = sync_access_key(sync.assume_role(boto3.Session(), ROLE, cache=sync_cache))
        child = our_assume(cache=our_cache)
        mine = run(lambda child=child: our_access_key(child))
        assert (theirs == cached) is sync_reuses, seconds_left
        assert (mine == cached) is we_reuse, seconds_left


def cache_read_once(w: World) -> None:
    w.sts.credential_lifetime = 720  # the sync library fetches on every use
    sync_cache = CountingCache()
    child = sync.assume_role(boto3.Session(), ROLE, cache=sync_cache)
    sync_access_key(child)
    sync_access_key(child)
    assert (sync_cache.reads, sync_cache.writes) == (2, 2)
    w.sts.credential_lifetime = 1.0  # this library: refresh after expiry
    our_cache = CountingCache()

    async def use_twice() -> None:
        our_child = await ours.assume_role(AioSession(), ROLE, cache=our_cache)
        await our_access_key(our_child)
        await asyncio.sleep(1.2)
        await our_access_key(our_child)

    run(use_twice)
    assert our_cache.writes == 2  # every new response is written back
    assert our_cache.reads == 1  # but the cache is read once, at the first fetch


def cache_files_safe(w: World) -> None:
    directory = w.tmp / "new-cache"
    child = our_assume(cache=ours.JSONFileCache(directory))
    run(lambda: our_access_key(child))
    [entry] = cache_entries(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    # A damaged file: the sync library's fetch fails with KeyError; here it counts as absent.
    entry.write_text('{"Credentials": {"AccessKeyId": "ASIA')
    sync_child = sync.assume_role(boto3.Session(), ROLE, cache=sync.JSONFileCache(str(directory)))
    assert isinstance(raises(lambda: sync_access_key(sync_child)), KeyError)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("aio_assume_role_lib")
    logger.addHandler(handler)
    try:
        child = our_assume(cache=ours.JSONFileCache(directory))
        run(lambda: our_access_key(child))
    finally:
        logger.removeHandler(handler)
    assert entry.name in stream.getvalue()
    assert "ASIA" not in stream.getvalue()


# --- cli.md ------------------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_sync_cli(args: list[str]) -> CliResult:
    exits: list[int] = []
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            sync_module.main(args, exit=exits.append)
        except SystemExit as stop:  # argparse's usage errors
            exits.append(int(stop.code or 0))
    return CliResult(exits[0] if exits else 0, out.getvalue(), err.getvalue())


def run_our_cli(args: list[str]) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _cli.main(args)
    return CliResult(code, out.getvalue(), err.getvalue())


def _options_in_help(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", text))


def cli_every_sync_option(w: World) -> None:
    theirs = _options_in_help(run_sync_cli(["--help"]).stdout)
    mine = _options_in_help(run_our_cli(["--help"]).stdout)
    assert "--additional-kwargs" in theirs
    assert theirs - mine == set()


def cli_same_output(w: World) -> None:
    def shape(text: str) -> str:
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", text)
        return re.sub(r"(=|\": \")(?!<time>)[^\s\"]+", r"\1<value>", text)

    for output_format in ("--env", "--json"):
        theirs = run_sync_cli([output_format, ROLE])
        mine = run_our_cli([output_format, ROLE])
        assert (theirs.code, mine.code) == (0, 0), theirs.stderr + mine.stderr
        assert shape(theirs.stdout) == shape(mine.stdout)
        assert "<time>" in shape(mine.stdout)


def cli_exit_3_without_credentials(w: World) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        w.monkeypatch.delenv(name)
    assert run_sync_cli([ROLE]).code == run_our_cli([ROLE]).code == 3


def cli_exit_4_on_sts_error(w: World) -> None:
    w.sts.fail_next("access_denied")
    theirs = run_sync_cli([ROLE])
    w.sts.fail_next("access_denied")
    mine = run_our_cli([ROLE])
    assert theirs.code == mine.code == 4
    assert "AccessDenied" in theirs.stderr
    assert "AccessDenied" in mine.stderr
    assert theirs.stdout == mine.stdout == ""


def cli_invalid_parameter_exit_code(w: World) -> None:
    theirs = run_sync_cli(["--DurationSeconds", "10", ROLE])
    mine = run_our_cli(["--DurationSeconds", "10", ROLE])
    assert (theirs.code, mine.code) == (4, 2)
    assert "DurationSeconds" in theirs.stderr
    assert "DurationSeconds" in mine.stderr
    assert w.sts.assume_role_count == 0


def cli_usage_error(w: World) -> None:
    theirs = run_sync_cli(["--no-such-option", ROLE])
    mine = run_our_cli(["--no-such-option", ROLE])
    assert theirs.code == mine.code == 2
    assert theirs.stderr.startswith("usage:")  # argparse's usage block
    assert len(mine.stderr.strip().splitlines()) == 1
    assert mine.stderr.startswith("aio-assume-role:")


def cli_tags_key_value(w: World) -> None:
    for tags in ("team=data", '{"team": "data"}'):
        theirs = run_sync_cli(["--Tags", tags, ROLE])
        assert theirs.code == 4, tags
        assert "Tags" in theirs.stderr
        mine = run_our_cli(["--Tags", tags, ROLE])
        assert mine.code == 0, mine.stderr
        params = w.last_params()
        assert (params["Tags.member.1.Key"], params["Tags.member.1.Value"]) == ("team", "data")


def cli_policy_arns_object(w: World) -> None:
    policy = '{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}'
    theirs = run_sync_cli(["--PolicyArns", policy, ROLE])
    assert theirs.code == 4
    assert "PolicyArns" in theirs.stderr  # the object's key became the "ARN"
    mine = run_our_cli(["--PolicyArns", policy, ROLE])
    assert mine.code == 0, mine.stderr
    assert w.last_params()["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


def cli_no_abbreviations(w: World) -> None:
    theirs = run_sync_cli(["--Ext", "partner", ROLE])
    assert theirs.code == 0
    assert w.last_params()["ExternalId"] == "partner"
    mine = run_our_cli(["--Ext", "partner", ROLE])
    assert mine.code == 2


def cli_mfa_prompt(w: World) -> None:
    # The sync CLI prompts too (botocore's getpass), and ignores --TokenCode when it does.
    theirs = run_sync_cli(["--SerialNumber", SERIAL, "--TokenCode", GIVEN_CODE, ROLE])
    assert theirs.code == 0, theirs.stderr
    assert w.prompts == [f"Enter MFA code for {SERIAL}: "]
    assert w.last_params()["TokenCode"] == PROMPTED_CODE
    # Here --TokenCode is used as given, without a prompt ...
    mine = run_our_cli(["--SerialNumber", SERIAL, "--TokenCode", GIVEN_CODE, ROLE])
    assert mine.code == 0, mine.stderr
    assert w.last_params()["TokenCode"] == GIVEN_CODE
    assert len(w.prompts) == 1
    # ... and without it and without a terminal (stdin is not one here), exit 2.
    assert not sys.stdin.isatty()
    mine = run_our_cli(["--SerialNumber", SERIAL, ROLE])
    assert mine.code == 2
    assert "--TokenCode" in mine.stderr
    assert len(w.prompts) == 1


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: str
    page: str  # the page that makes the claim (docs/<page>.md)
    says: str
    check: Callable[[World], None]


CLAIMS = [
    Claim(
        "no-sts-call-in-assume-role",
        "migrating",
        "no STS call in assume_role(); the first use fetches",
        no_sts_call_in_assume_role,
    ),
    Claim(
        "name-helpers",
        "migrating",
        "get_role_arn, get_assumed_role_session_arn, generate_lambda_session_name: same output",
        name_helpers_same_output,
    ),
    Claim(
        "automatic-session-name",
        "migrating",
        "AUTOMATIC_ROLE_SESSION_NAME: the same string; a generated botocore-session-<epoch> name",
        automatic_session_name,
    ),
    Claim(
        "session-name-source-identity",
        "migrating",
        "RoleSessionName defaults to SourceIdentity",
        session_name_defaults_to_source_identity,
    ),
    Claim(
        "patch-methods",
        "migrating",
        "patch_boto3 adds boto3.assume_role; patch_aiobotocore adds a coroutine method only",
        patch_adds_coroutine_methods,
    ),
    Claim(
        "session-type",
        "migrating",
        "a boto3.Session parent is a TypeError here",
        session_type_checked,
    ),
    Claim(
        "role-arn-shape",
        "migrating",
        "the RoleArn's shape is checked offline here",
        role_arn_shape_checked,
    ),
    Claim(
        "policy-arns-string",
        "migrating",
        "a bare string PolicyArns is iterated there, an error here",
        policy_arns_bare_string,
    ),
    Claim(
        "empty-narrowing",
        "migrating",
        "an empty PolicyArns or Policy is sent there, a validation error here",
        empty_narrowing_refused,
    ),
    Claim(
        "conversions",
        "migrating",
        "Policy dict, DurationSeconds timedelta, PolicyArns strings: the same request",
        conversions_policy_and_duration,
    ),
    Claim(
        "duration-range",
        "migrating",
        "DurationSeconds 900..43200 checked offline (botocore checks 900 only)",
        duration_range_checked,
    ),
    Claim(
        "tags-mapping",
        "migrating",
        "Tags may be a mapping here; the list form is the same",
        tags_as_mapping,
    ),
    Claim(
        "transitive-tag-keys-string",
        "migrating",
        "a bare string TransitiveTagKeys is an error in both",
        transitive_tag_keys_bare_string,
    ),
    Claim(
        "plain-parameters",
        "migrating",
        "ExternalId, RoleSessionName, SourceIdentity sent as given",
        plain_parameters_sent,
    ),
    Claim(
        "sync-token-code",
        "migrating",
        "sync: with SerialNumber, botocore prompts on every fetch and ignores TokenCode",
        sync_token_code_ignored_prompts_every_fetch,
    ),
    Claim(
        "token-code-string",
        "migrating",
        "a TokenCode string is used for the first fetch only",
        token_code_string_first_fetch_only,
    ),
    Claim(
        "token-code-callable",
        "migrating",
        "a TokenCode callable is called for each fetch (a str only there)",
        token_code_callable_each_fetch,
    ),
    Claim(
        "missing-mfa-code",
        "migrating",
        "SerialNumber without a code: a clear error here, a prompt there",
        missing_mfa_code,
    ),
    Claim("region-modes", "migrating", "region_name: the same four modes", region_modes),
    Claim(
        "bad-option-types",
        "migrating",
        "bad region_name, cache, refresh: TypeError/ValueError at the call here",
        bad_option_types_raise_at_once,
    ),
    Claim(
        "validation",
        "migrating",
        "validation adds STS's rules and reports every problem at once",
        validation_beyond_botocore,
    ),
    Claim(
        "repeat-calls",
        "migrating",
        "repeat calls: a new session and fetch there, the same child here",
        repeat_calls,
    ),
    Claim(
        "additional-kwargs",
        "migrating",
        "named parameters override additional_kwargs",
        additional_kwargs_overridden,
    ),
    Claim(
        "child-parent",
        "migrating",
        "the child is the parent's kind and has assume_role_parent_session",
        child_kind_and_parent,
    ),
    Claim(
        "no-credentials",
        "migrating",
        "NoCredentialsError without parent credentials, also with validate=False",
        no_credentials_error,
    ),
    Claim(
        "sync-refresh-windows",
        "migrating",
        "sync: botocore's fixed 15/10-minute windows and 15-minute cache window",
        sync_refresh_windows,
    ),
    Claim(
        "fewer-retries",
        "migrating",
        "sync: botocore retries 5 times; here at most 3 requests per refresh",
        fewer_retries,
    ),
    Claim(
        "cache-same-keys",
        "migrating",
        "the same cache keys for the same arguments (no TokenCode)",
        cache_same_keys,
    ),
    Claim(
        "cache-files-shared",
        "migrating",
        "JSONFileCache entries are read by the other library",
        cache_files_shared,
    ),
    Claim(
        "cache-key-token-code",
        "migrating",
        "with a TokenCode string both keys include the code; a callable is left out",
        cache_key_with_token_code,
    ),
    Claim(
        "cache-reuse-threshold",
        "migrating",
        "cached entries reused with over 60 s left here, over 15 min there",
        cache_reuse_threshold,
    ),
    Claim(
        "cache-read-once",
        "migrating",
        "the cache is read at the first fetch only here, at every fetch there",
        cache_read_once,
    ),
    Claim(
        "cache-files-safe",
        "migrating",
        "0700 directory, 0600 files; a damaged file is absent here, a KeyError there",
        cache_files_safe,
    ),
    Claim("cli-options", "cli", "every option of the sync CLI", cli_every_sync_option),
    Claim("cli-output", "cli", "the same --env and --json output", cli_same_output),
    Claim(
        "cli-exit-3", "cli", "exit 3 without credentials, in both", cli_exit_3_without_credentials
    ),
    Claim("cli-exit-4", "cli", "exit 4 when AssumeRole fails, in both", cli_exit_4_on_sts_error),
    Claim(
        "cli-invalid-parameter",
        "cli",
        "an invalid parameter exits 2 here, 4 there",
        cli_invalid_parameter_exit_code,
    ),
    Claim(
        "cli-usage-error",
        "cli",
        "usage errors exit 2 in both; one line here, argparse's usage there",
        cli_usage_error,
    ),
    Claim(
        "cli-tags",
        "cli",
        "--Tags Key=Value and a JSON object work here, fail there",
        cli_tags_key_value,
    ),
    Claim(
        "cli-policy-arns-object",
        "cli",
        "a JSON-object --PolicyArns is one ARN here, fails there",
        cli_policy_arns_object,
    ),
    Claim(
        "cli-no-abbreviations",
        "cli",
        "options cannot be abbreviated here; they can there",
        cli_no_abbreviations,
    ),
    Claim(
        "cli-mfa-prompt",
        "cli",
        "both prompt; there even with --TokenCode (ignored); here only without it",
        cli_mfa_prompt,
    ),
]


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda claim: claim.id)
def test_claim(claim: Claim, world: World) -> None:
    claim.check(world)


def test_every_claim_is_cited() -> None:
    """Each page cites its claims' ids (`` `id` ``), and cites no id that has no row."""
    ids = {claim.id for claim in CLAIMS}
    assert len(ids) == len(CLAIMS), "duplicate claim ids"
    for page in ("migrating", "cli"):
        text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
        cited = set(re.findall(r"\[`([a-z0-9-]+)`\]\[checks\]", text))
        mine = {claim.id for claim in CLAIMS if claim.page == page}
        assert mine - cited == set(), f"docs/{page}.md does not cite these checks"
        assert cited - ids == set(), f"docs/{page}.md cites checks that do not exist"

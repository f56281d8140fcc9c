"""The pytest plugin (aio_assume_role_lib.testing.pytest_plugin), run in pytest's own pytester.

Each test writes a small test project, runs pytest on it in this process, and checks the
outcomes; the project's tests check what a user's tests would see.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiobotocore.session  # noqa: F401
import pytest

# An inner run forgets the modules it imported (pytester restores sys.modules): import the
# heavy ones here once, so that each run does not import them again.
import aio_assume_role_lib.testing.pytest_plugin  # noqa: F401
from aio_assume_role_lib import JSONFileCache
from aio_assume_role_lib._fetch import cache_key
from aio_assume_role_lib._params import prepare_args

pytest_plugins = ["pytester"]

ROLE = "arn:aws:iam::111111111111:role/Reader"
ENABLE = 'pytest_plugins = ["aio_assume_role_lib.testing.pytest_plugin"]\n'
# hypothesis's plugin imports all of hypothesis (seconds on a busy machine); not needed here.
OPTIONS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*OPTIONS, *args)


@pytest.fixture
def outside_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A developer's machine: a profile, keys, endpoints and config files of their own."""
    outside = {
        "AWS_PROFILE": "production",
        "AWS_DEFAULT_PROFILE": "production",
        "AWS_ACCESS_KEY_ID": "AKIAOUTSIDEEXAMPLE01",
        "AWS_SECRET_ACCESS_KEY": "outside-secret-placeholder",
        "AWS_SESSION_TOKEN": "outside-token-placeholder",
        "AWS_ENDPOINT_URL": "http://203.0.113.1:1",
        "AWS_CONFIG_FILE": "/nonexistent/outside/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/outside/credentials",
        "AWS_REGION": "eu-west-3",
        "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/Outside",
    }
    for name, value in outside.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    return outside


def test_loopback_sts_isolates_the_environment_and_points_at_the_server(
    pytester: pytest.Pytester, outside_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        ENABLE
        + """
import os
from pathlib import Path

import pytest


def test_environment(loopback_sts, isolated_aws_env):
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    key, secret = loopback_sts.root_credentials
    assert aws == {
        "AWS_CONFIG_FILE": str(isolated_aws_env / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(isolated_aws_env / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_STS": loopback_sts.endpoint_url,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert not Path(os.environ["AWS_CONFIG_FILE"]).exists()
    assert loopback_sts.running


def test_isolation_alone_starts_no_server(isolated_aws_env):
    assert "AWS_ENDPOINT_URL_STS" not in os.environ
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)
    # The test's changes are undone: the developer's environment is back.
    assert {name: os.environ.get(name) for name in outside_env} == outside_env


def test_the_developers_home_is_neither_read_nor_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Code under test that caches in ``Path.home() / ".aws/cli/cache"`` (as the docs
    suggest) must not use the developer's real cache: before, a planted entry there was
    used (0 loopback calls) and loopback credentials were written next to it."""
    real_home = tmp_path / "real-home"  # the developer's, as the plugin finds it
    cache_dir = real_home / ".aws" / "cli" / "cache"
    for name, value in {
        "HOME": real_home,
        "USERPROFILE": real_home,
        "XDG_CONFIG_HOME": real_home / ".config",
        "XDG_CACHE_HOME": real_home / ".cache",
        "XDG_DATA_HOME": real_home / ".local" / "share",
        "XDG_STATE_HOME": real_home / ".local" / "state",
    }.items():
        monkeypatch.setenv(name, str(value))
    key = cache_key(prepare_args(ROLE, RoleSessionName="isolated"))
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    JSONFileCache(cache_dir)[key] = {
        "Credentials": {
            "AccessKeyId": "ASIAPLANTEDINREALHOME",
            "SecretAccessKey": "planted-secret",
            "SessionToken": "planted-token",
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROAPLANTED:isolated",
            "Arn": "arn:aws:sts::111111111111:assumed-role/Reader/isolated",
        },
    }
    before = {path.name: path.read_bytes() for path in cache_dir.iterdir()}

    pytester.makepyfile(
        ENABLE
        + f"""
import os
from pathlib import Path

import pytest

from aio_assume_role_lib import JSONFileCache, assume_role


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_cached_in_home(loopback_sts, loopback_parent_session, isolated_aws_env):
    for name in ("HOME", "USERPROFILE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                 "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(os.environ[name]).is_relative_to(isolated_aws_env), name
    assert Path.home() == isolated_aws_env
    cache = JSONFileCache(Path.home() / ".aws/cli/cache")
    child = await assume_role(
        loopback_parent_session, {ROLE!r}, RoleSessionName="isolated", cache=cache
    )
    credentials = await (await child.get_credentials()).get_frozen_credentials()
    assert credentials.access_key != "ASIAPLANTEDINREALHOME"
    assert loopback_sts.assume_role_count == 1
    assert list((Path.home() / ".aws/cli/cache").glob("*.json"))  # written, but here
"""
    )
    run(pytester).assert_outcomes(passed=1)
    after = {path.name: path.read_bytes() for path in cache_dir.iterdir()}
    assert after == before  # nothing written to the developer's cache
    assert sorted(path.name for path in real_home.rglob("*")) == sorted(
        [".aws", "cli", "cache", *before]
    )


def test_loopback_sts_is_stopped_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        ENABLE
        + """
servers = []


def test_first(loopback_sts):
    servers.append(loopback_sts)


def test_second(loopback_sts):
    assert not servers[0].running
    assert loopback_sts is not servers[0] and loopback_sts.running
"""
    )
    run(pytester).assert_outcomes(passed=2)


def test_parent_session_assumes_a_role_through_the_server(
    pytester: pytest.Pytester, outside_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        ENABLE
        + """
import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_assume(loopback_sts, loopback_parent_session):
    assert isinstance(loopback_parent_session, AioSession)
    async with loopback_parent_session.create_client("sts") as client:
        assert (await client.get_caller_identity())["Arn"] == loopback_sts.root_arn
    child = await assume_role(
        loopback_parent_session, "arn:aws:iam::111111111111:role/Reader", RoleSessionName="test"
    )
    async with child.create_client("sts") as client:
        arn = (await client.get_caller_identity())["Arn"]
    assert arn == "arn:aws:sts::111111111111:assumed-role/Reader/test"
    assert loopback_sts.assume_role_count == 1
"""
    )
    run(pytester).assert_outcomes(passed=1)


def test_aioboto3_session_or_a_skip(pytester: pytest.Pytester) -> None:
    has_aioboto3 = True
    try:
        import aioboto3  # noqa: F401
    except ImportError:
        has_aioboto3 = False
    pytester.makepyfile(
        ENABLE
        + """
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_session(loopback_sts, loopback_aioboto3_session):
    async with loopback_aioboto3_session.client("sts") as client:
        assert (await client.get_caller_identity())["Arn"] == loopback_sts.root_arn
"""
    )
    result = run(pytester, "-rs")
    if has_aioboto3:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*aioboto3*"])


def test_aioboto3_session_skips_without_aioboto3(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aioboto3", None)  # not importable
    pytester.makepyfile(
        ENABLE
        + """
def test_session(loopback_aioboto3_session):
    raise AssertionError("not reached")
"""
    )
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*could not import 'aioboto3'*"])


def test_the_plugin_is_opt_in(pytester: pytest.Pytester) -> None:
    """Installing the library adds no fixture to a project that did not ask for it."""
    pytester.makepyfile(
        """
def test_needs_it(loopback_sts):
    pass
"""
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'loopback_sts' not found*"])


def test_sso_and_instance_metadata_parents_and_botocores_sso_cache(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``loopback_sso_session`` and ``loopback_imds_session`` get their credentials from
    the server's SSO portal and instance metadata; botocore's SSO token cache, a path
    botocore computed when imported (before: the developer's real ``~/.aws/sso/cache``,
    whatever HOME said), is the temporary home's during a test and the real one after."""
    import botocore.credentials
    import botocore.tokens

    real_cache = str(tmp_path / "real-home" / ".aws" / "sso" / "cache")
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", real_cache)
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", real_cache)
    pytester.makepyfile(
        ENABLE
        + """
import os
from pathlib import Path

import botocore.credentials
import botocore.tokens
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def who_am_i(session):
    async with session.create_client("sts") as client:
        return (await client.get_caller_identity())["Arn"]


def test_isolated_sso_cache(isolated_aws_env):
    expected = str(isolated_aws_env / ".aws" / "sso" / "cache")
    assert botocore.credentials.SSOProvider._SSO_TOKEN_CACHE_DIR == expected
    assert botocore.tokens.SSOTokenProvider._SSO_TOKEN_CACHE_DIR == expected


@pytest.mark.anyio
async def test_sso(loopback_sts, loopback_sso_session, isolated_aws_env):
    assert "AWSReservedSSO_LoopbackSSO_" in await who_am_i(loopback_sso_session)
    assert [c.action for c in loopback_sts.calls][:1] == ["GetRoleCredentials"]
    assert list((isolated_aws_env / ".aws" / "sso" / "cache").glob("*.json"))
    assert "AWS_ACCESS_KEY_ID" not in os.environ


@pytest.mark.anyio
async def test_instance_metadata(loopback_sts, loopback_imds_session):
    arn = await who_am_i(loopback_imds_session)
    assert arn.endswith(":assumed-role/loopback-instance/i-0123456789abcdef0")
    paths = [c.params["path"] for c in loopback_sts.calls if c.action == "InstanceMetadata"]
    assert paths[0] == "/latest/api/token"
    assert "AWS_EC2_METADATA_DISABLED" not in os.environ
"""
    )
    run(pytester).assert_outcomes(passed=3)
    after = (
        botocore.credentials.SSOProvider._SSO_TOKEN_CACHE_DIR,
        botocore.tokens.SSOTokenProvider._SSO_TOKEN_CACHE_DIR,
    )
    assert after == (real_cache, real_cache)
    assert not (tmp_path / "real-home").exists()

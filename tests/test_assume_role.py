"""SPEC §3: what `assume_role()` does, seen from outside, against real STS endpoints.

Identity-level behaviour runs against our loopback STS and against moto's server (`any_sts`).
"""

from __future__ import annotations

import gc
import json
import os
import stat
import time
import weakref
from datetime import timedelta
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.credentials import AssumeRoleCredentialFetcher
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

import aio_assume_role_lib
from aio_assume_role_lib import (
    AUTOMATIC_ROLE_SESSION_NAME,
    JSONFileCache,
    assume_role,
    patch_aioboto3,
    patch_aiobotocore,
    set_sharing_limits,
    sharing_stats,
)
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import (
    HAS_AIOBOTO3,
    ROLE_A,
    ROLE_B,
    ROLE_C,
    botocore_session,
    caller_arn,
    make_parent,
)

pytestmark = pytest.mark.anyio


def assume_role_calls(sts: LoopbackSTS) -> list[Any]:
    return [call for call in sts.calls if call.action == "AssumeRole"]


# --- §3.2: no STS call inside assume_role; the child; its parent ------------------------


async def test_no_sts_call_until_first_use(parent: Any, sts: LoopbackSTS) -> None:
    child = await assume_role(parent, ROLE_A, RoleSessionName="first-use")
    assert sts.assume_role_count == 0
    assert await caller_arn(child) == "arn:aws:sts::111111111111:assumed-role/Reader/first-use"
    assert sts.assume_role_count == 1


async def test_child_is_same_kind_and_knows_its_parent(parent: Any, sts: LoopbackSTS) -> None:
    child = await assume_role(parent, ROLE_A)
    assert type(child) is type(parent)
    assert child.assume_role_parent_session is parent


# --- §3.1: the order of checks ------------------------------------------------------------


@pytest.mark.parametrize("validate", [True, False])
async def test_parent_without_credentials_raises_no_credentials(
    session_kind: str, validate: bool
) -> None:
    parent = make_parent(session_kind)
    # Invalid parameters too: the credentials check comes before validation.
    with pytest.raises(NoCredentialsError):
        await assume_role(parent, ROLE_A, DurationSeconds=5, validate=validate)


async def test_conversion_errors_come_before_the_credentials_check(session_kind: str) -> None:
    parent = make_parent(session_kind)  # no credentials in this environment
    with pytest.raises(ParamValidationError, match="PolicyArns"):
        await assume_role(parent, ROLE_A, PolicyArns="arn:aws:iam::aws:policy/ReadOnlyAccess")  # type: ignore[arg-type]


async def test_validation_reports_every_problem_before_any_network_call(
    parent: Any, sts: LoopbackSTS
) -> None:
    with pytest.raises(ParamValidationError) as info:
        await assume_role(
            parent,
            "arn:aws:iam::12345:role/Bad",
            RoleSessionName="has spaces",
            DurationSeconds=60,
            ExternalId="x",
        )
    message = str(info.value)
    for name in ("RoleArn", "RoleSessionName", "DurationSeconds", "ExternalId"):
        assert name in message
    assert sts.calls == []


async def test_validate_false_lets_sts_judge(parent: Any, sts: LoopbackSTS) -> None:
    child = await assume_role(parent, ROLE_A, DurationSeconds=50_000, validate=False)
    assert sts.assume_role_count == 0
    with pytest.raises(ClientError, match="ValidationError"):
        await caller_arn(child)


async def test_bad_options_name_the_parameter(parent: Any, sts: LoopbackSTS) -> None:
    with pytest.raises(TypeError, match="region_name"):
        await assume_role(parent, ROLE_A, region_name=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache"):
        await assume_role(parent, ROLE_A, cache=[])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="refresh"):
        await assume_role(parent, ROLE_A, refresh={"advisory_fraction": 0.1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session"):
        await assume_role(object(), ROLE_A)  # type: ignore[call-overload]


# --- §3.3: conversions reach STS -----------------------------------------------------------


async def test_conversions_reach_sts(parent: Any, sts: LoopbackSTS) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    child = await assume_role(
        parent,
        ROLE_A,
        RoleSessionName="converted",
        Policy=policy,
        PolicyArns=[
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            {"arn": "arn:aws:iam::aws:policy/Other"},
        ],
        DurationSeconds=timedelta(hours=2),
        Tags={"team": "data", "env": "prod"},
        TransitiveTagKeys=["team"],
    )
    await caller_arn(child)
    (call,) = assume_role_calls(sts)
    params = call.params
    assert json.loads(params["Policy"]) == policy
    assert params["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert params["PolicyArns.member.2.arn"] == "arn:aws:iam::aws:policy/Other"
    assert params["DurationSeconds"] == "7200"
    tags = {params[f"Tags.member.{i}.Key"]: params[f"Tags.member.{i}.Value"] for i in (1, 2)}
    assert tags == {"team": "data", "env": "prod"}
    assert params["TransitiveTagKeys.member.1"] == "team"


async def test_named_parameters_override_additional_kwargs(parent: Any, sts: LoopbackSTS) -> None:
    child = await assume_role(
        parent,
        ROLE_A,
        RoleSessionName="named-wins",
        ExternalId="from-named",
        additional_kwargs={"ExternalId": "from-additional", "DurationSeconds": 1800},
    )
    await caller_arn(child)
    (call,) = assume_role_calls(sts)
    assert call.params["ExternalId"] == "from-named"
    assert call.params["DurationSeconds"] == "1800"


# --- §3.4: session names ---------------------------------------------------------------------


async def test_session_name_rules(any_sts: Any, session_kind: str) -> None:
    parent = make_parent(session_kind)
    by_source = await assume_role(parent, ROLE_A, SourceIdentity="alice")
    assert (await caller_arn(by_source)).endswith("/Reader/alice")

    forced = await assume_role(
        parent, ROLE_A, RoleSessionName=AUTOMATIC_ROLE_SESSION_NAME, SourceIdentity="alice"
    )
    before = int(time.time())
    arn = await caller_arn(forced)
    name = arn.rsplit("/", 1)[1]
    assert name.startswith("botocore-session-")
    assert abs(int(name.removeprefix("botocore-session-")) - before) <= 5

    explicit = await assume_role(parent, ROLE_A, RoleSessionName="explicit")
    assert (await caller_arn(explicit)).endswith("/Reader/explicit")


async def test_generated_session_name_is_fixed_for_the_life_of_the_child(
    parent: Any, sts: LoopbackSTS
) -> None:
    child = await assume_role(parent, ROLE_A)
    first = await caller_arn(child)
    credentials = await botocore_session(child).get_credentials()
    credentials.invalidate()  # force a refresh
    await anyio.sleep(1.1)  # a new epoch second, so a regenerated name would differ
    assert await caller_arn(child) == first
    assert sts.assume_role_count == 2


def botocore_cache_key(**kwargs: Any) -> str:
    """The key botocore's own AssumeRoleCredentialFetcher uses for these arguments."""
    role_arn = kwargs.pop("RoleArn")
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=None, source_credentials=None, role_arn=role_arn, extra_args=kwargs
    )
    return str(fetcher._cache_key)


async def test_cache_holds_the_raw_response_under_botocores_key(
    parent: Any, sts: LoopbackSTS
) -> None:
    cache: dict[str, Any] = {}
    policy = {
        "Statement": [{"Resource": "*", "Effect": "Allow", "Action": "sts:*"}],
        "Version": "2012-10-17",
    }
    child = await assume_role(parent, ROLE_A, Policy=policy, DurationSeconds=900, cache=cache)
    await caller_arn(child)
    # A generated session name is not part of the key.
    expected_key = botocore_cache_key(
        RoleArn=ROLE_A, Policy=json.dumps(policy), DurationSeconds=900
    )
    assert list(cache) == [expected_key]
    assert cache[expected_key]["AssumedRoleUser"]["Arn"].startswith(
        "arn:aws:sts::111111111111:assumed-role/Reader/botocore-session-"
    )
    assert set(cache[expected_key]["Credentials"]) >= {
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }


async def test_a_restarted_process_reuses_cached_credentials(
    session_kind: str, sts: LoopbackSTS, tmp_path: Any
) -> None:
    cache_dir = tmp_path / "cache"
    child = await assume_role(
        make_parent(session_kind), ROLE_A, RoleSessionName="cached", cache=JSONFileCache(cache_dir)
    )
    first = await caller_arn(child)
    (entry,) = list(cache_dir.iterdir())
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600

    # A new parent and a new cache object stand for a new process.
    again = await assume_role(
        make_parent(session_kind), ROLE_A, RoleSessionName="cached", cache=JSONFileCache(cache_dir)
    )
    assert await caller_arn(again) == first
    assert sts.assume_role_count == 1


# --- §3.5: regions -----------------------------------------------------------------------------


def region_of(session: Any) -> str | None:
    return botocore_session(session).get_config_variable("region")  # type: ignore[no-any-return]


async def test_region_modes(parent: Any, sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch) -> None:
    parent_botocore = botocore_session(parent)
    parent_botocore.set_config_variable("region", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")  # the implicit region

    linked = await assume_role(parent, ROLE_A, RoleSessionName="linked")
    copied = await assume_role(parent, ROLE_A, RoleSessionName="linked", region_name=True)
    implicit = await assume_role(parent, ROLE_A, RoleSessionName="linked", region_name=False)
    pinned = await assume_role(parent, ROLE_A, RoleSessionName="linked", region_name="us-west-2")
    assert [region_of(s) for s in (linked, copied, implicit, pinned)] == [
        "eu-west-1",
        "eu-west-1",
        "ap-south-1",
        "us-west-2",
    ]

    parent_botocore.set_config_variable("region", "eu-central-1")
    assert region_of(linked) == "eu-central-1"  # the link is live
    assert region_of(copied) == "eu-west-1"
    async with botocore_session(linked).create_client("sts") as client:
        assert client.meta.region_name == "eu-central-1"  # and new clients see it

    botocore_session(linked).set_config_variable("region", "sa-east-1")
    assert region_of(linked) == "sa-east-1"  # the child's own setting overrides the link

    # Different region modes share one credentials object: one STS call for all four.
    for child in (linked, copied, implicit, pinned):
        await caller_arn(child)
    assert sts.assume_role_count == 1


async def test_linked_region_follows_the_parents_implicit_sources(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = AioSession()
    child = await assume_role(parent, ROLE_A)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert region_of(child) == "ca-central-1"


async def test_no_region_for_a_configured_sts_endpoint_is_an_error_at_the_call(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's STS client has no region to sign for: a clear NoRegionError at the
    call (users' `except NoRegionError` still works), not at the first use."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # botocore does not read it
    parent = AioSession()
    # The child's region does not help: its credentials come from the parent's STS client.
    for region_name in (None, "eu-west-1", True, False):
        with pytest.raises(NoRegionError) as raised:
            await assume_role(parent, ROLE_A, region_name=region_name)
    message = str(raised.value)
    assert message.startswith("You must specify a region")  # botocore's own words, first
    for fix in ("set_config_variable('region'", "region_name=", "AWS_DEFAULT_REGION"):
        assert fix in message
    assert "AWS_ENDPOINT_URL_STS" in message  # why a region is needed here
    assert sts.calls == []

    parent.set_config_variable("region", "eu-west-1")  # the fix the message names first
    assert await caller_arn(await assume_role(parent, ROLE_A, RoleSessionName="fixed")) == (
        "arn:aws:sts::111111111111:assumed-role/Reader/fixed"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")  # and the variable
    assert await caller_arn(await assume_role(AioSession(), ROLE_A, RoleSessionName="env"))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    config = AioConfig(region_name="eu-west-3")  # a default client config's region counts
    configured = AioSession()
    configured.set_default_client_config(config)
    assert await caller_arn(await assume_role(configured, ROLE_A, RoleSessionName="config"))


async def test_no_region_and_no_endpoint_url_uses_the_global_sts_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in botocore and the sync library: STS needs no region for sts.amazonaws.com."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLENOREGION0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "no-region-secret")
    parent = AioSession()
    assert parent.get_config_variable("region") is None
    await assume_role(parent, ROLE_A)  # no error
    async with parent.create_client("sts") as client:  # what the credentials are fetched with
        assert client.meta.endpoint_url == "https://sts.amazonaws.com"
    # An ignored endpoint URL is no endpoint URL.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    await assume_role(AioSession(), ROLE_A)


# --- §3.6: chaining -----------------------------------------------------------------------------


async def test_chaining_across_accounts(any_sts: Any, session_kind: str) -> None:
    parent = make_parent(session_kind)
    first = await assume_role(parent, ROLE_A, RoleSessionName="one")
    second = await assume_role(first, ROLE_B, RoleSessionName="two")
    third = await assume_role(second, ROLE_C, RoleSessionName="three")
    assert await caller_arn(third) == "arn:aws:sts::333333333333:assumed-role/Auditor/three"
    assert await caller_arn(second) == "arn:aws:sts::222222222222:assumed-role/Writer/two"
    assert third.assume_role_parent_session is second


async def test_each_level_refreshes_from_its_parents_current_credentials(
    parent: Any, sts: LoopbackSTS
) -> None:
    first = await assume_role(parent, ROLE_A, RoleSessionName="one")
    second = await assume_role(first, ROLE_B, RoleSessionName="two")
    await caller_arn(second)
    sts.credential_lifetime = 1.0  # the next credentials of both levels expire fast
    (await botocore_session(second).get_credentials()).invalidate()
    (await botocore_session(first).get_credentials()).invalidate()
    await caller_arn(second)
    await anyio.sleep(1.2)  # both levels expired: the chain refreshes bottom-up
    assert await caller_arn(second) == "arn:aws:sts::222222222222:assumed-role/Writer/two"
    callers = [call.caller_arn for call in assume_role_calls(sts)]
    assert callers[-1].endswith("assumed-role/Reader/one")  # signed with the fresh parent
    assert not [c for c in sts.calls if c.outcome == "ExpiredToken"]


# --- §2: sharing, patching, the aioboto3 kind -----------------------------------------------------


async def test_repeat_calls_share_one_child_and_one_credentials(
    parent: Any, sts: LoopbackSTS
) -> None:
    children = [await assume_role(parent, ROLE_A) for _ in range(100)]
    assert all(c is children[0] for c in children)
    other_name = await assume_role(parent, ROLE_A, RoleSessionName="other")
    other_role = await assume_role(parent, ROLE_B)
    other_parent = await assume_role(make_parent("aiobotocore"), ROLE_A)
    arns = {await caller_arn(c) for c in (children[0], other_name, other_role, other_parent)}
    assert len(arns) == 4 or sts.assume_role_count == 4
    assert sts.assume_role_count == 4


async def test_child_shares_loaded_service_data_and_default_config(sts: LoopbackSTS) -> None:
    parent = AioSession()
    config = AioConfig(connect_timeout=7)
    parent.set_default_client_config(config)
    child = await assume_role(parent, ROLE_A)
    assert child.get_component("data_loader") is parent.get_component("data_loader")
    assert child.get_default_client_config() is config


async def test_sharing_never_keeps_parents_alive(sts: LoopbackSTS) -> None:
    refs = []
    for _ in range(50):
        parent = AioSession()
        child = await assume_role(parent, ROLE_A)
        refs.append((weakref.ref(parent), weakref.ref(child)))
    del parent, child
    gc.collect()
    assert all(p() is None and c() is None for p, c in refs)


async def test_sharing_per_parent_is_bounded(sts: LoopbackSTS) -> None:
    parent = AioSession()
    set_sharing_limits(parent, max_credentials=8, max_children=8)
    first = weakref.ref(await assume_role(parent, ROLE_A, RoleSessionName="n-0"))
    for i in range(1, 40):
        await assume_role(parent, ROLE_A, RoleSessionName=f"n-{i}")
    gc.collect()
    assert first() is None
    stats = sharing_stats(parent)
    assert (stats["credentials"], stats["children"]) == (8, 8)
    assert (stats["credentials_evicted"], stats["children_evicted"]) == (32, 32)


async def test_patch_aiobotocore_adds_a_method(sts: LoopbackSTS) -> None:
    patch_aiobotocore()
    child = await AioSession().assume_role(ROLE_A, RoleSessionName="patched")  # type: ignore[attr-defined]
    assert (await caller_arn(child)).endswith("/Reader/patched")


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="aioboto3 is installed on stack s2")
async def test_aioboto3_session_in_aioboto3_session_out(sts: LoopbackSTS) -> None:
    import aioboto3

    patch_aioboto3()
    parent = aioboto3.Session(region_name="eu-west-1")
    child = await parent.assume_role(ROLE_A, RoleSessionName="boto3")  # type: ignore[attr-defined]
    assert isinstance(child, aioboto3.Session)
    assert child.region_name == "eu-west-1"
    assert await caller_arn(child) == "arn:aws:sts::111111111111:assumed-role/Reader/boto3"
    # boto3's resource data path is not appended again for every child.
    paths = child._session.get_component("data_loader").search_paths
    assert len(paths) == len(set(paths))


def test_public_names() -> None:
    assert sorted(aio_assume_role_lib.__all__) == sorted(
        [
            "AUTOMATIC_ROLE_SESSION_NAME",
            "ClientPool",
            "ClientPoolClosedError",
            "AssumeRoleCredentials",
            "ContainerCredentialsEndpoint",
            "JSONFileCache",
            "RefreshPolicy",
            "RefreshStats",
            "RefreshTimeoutError",
            "TenantClientError",
            "UnusableCredentialsError",
            "__version__",
            "assume_role",
            "configure_telemetry",
            "credentials_of",
            "generate_lambda_session_name",
            "get_assumed_role_session_arn",
            "get_role_arn",
            "patch_aioboto3",
            "patch_aiobotocore",
            "serve_container_credentials",
            "set_sharing_limits",
            "sharing_stats",
            "stabilize",
        ]
    )
    assert os.path.exists(os.path.join(os.path.dirname(aio_assume_role_lib.__file__), "py.typed"))


async def test_botocores_own_json_file_cache_works_too(sts: LoopbackSTS, tmp_path: Any) -> None:
    import botocore.utils

    cache = botocore.utils.JSONFileCache(str(tmp_path))
    first = await assume_role(AioSession(), ROLE_A, RoleSessionName="plain", cache=cache)
    arn = await caller_arn(first)
    again = await assume_role(AioSession(), ROLE_A, RoleSessionName="plain", cache=cache)
    assert await caller_arn(again) == arn
    assert sts.assume_role_count == 1


# --- hardening: one caller's input never reaches the others' credentials (issue 12) -------

MFA_SERIAL = "arn:aws:iam::111111111111:mfa/alice"

BAD_TOKEN_CODES = {
    "letters": "abcdef",
    "empty": "",
    "huge": "1" * 100_000,
    "nul": "12345\x00",
    "lone-surrogate": "123\ud80056",
    "trailing-newline": "123456\n",
}


@pytest.mark.parametrize("code", list(BAD_TOKEN_CODES.values()), ids=list(BAD_TOKEN_CODES))
async def test_a_repeat_calls_token_code_is_validated(parent: Any, code: str) -> None:
    first = await assume_role(
        parent, ROLE_A, RoleSessionName="mfa", SerialNumber=MFA_SERIAL, TokenCode="123456"
    )
    # Same arguments, so the same (already validated) entry: the code is checked anyway.
    with pytest.raises(ParamValidationError, match="TokenCode") as caught:
        await assume_role(
            parent, ROLE_A, RoleSessionName="mfa", SerialNumber=MFA_SERIAL, TokenCode=code
        )
    assert len(str(caught.value)) < 500  # the code is never quoted
    assert (
        await assume_role(
            parent, ROLE_A, RoleSessionName="mfa", SerialNumber=MFA_SERIAL, TokenCode="654321"
        )
        is first
    )


async def test_a_repeat_calls_token_code_of_the_wrong_type_is_refused(parent: Any) -> None:
    await assume_role(parent, ROLE_A, RoleSessionName="mfa", SerialNumber=MFA_SERIAL)
    with pytest.raises(ParamValidationError, match="TokenCode"):
        await assume_role(
            parent, ROLE_A, RoleSessionName="mfa", SerialNumber=MFA_SERIAL, TokenCode=123456
        )  # type: ignore[arg-type]


async def test_a_repeat_calls_token_code_never_replaces_the_shared_code_source(
    parent: Any, sts: LoopbackSTS
) -> None:
    issued: list[str] = []

    async def good_code() -> str:
        issued.append(f"{len(issued) + 1:06d}")
        return issued[-1]

    def call(code: Any, validate: bool = True) -> Any:
        return assume_role(
            parent,
            ROLE_A,
            RoleSessionName="mfa-shared",
            SerialNumber=MFA_SERIAL,
            TokenCode=code,
            validate=validate,
        )

    child = await call(good_code)
    assert await caller_arn(child) == "arn:aws:sts::111111111111:assumed-role/Reader/mfa-shared"
    # Later callers bring codes of their own: a valid one, and garbage without validation.
    assert await call("654321") is child
    for bad in BAD_TOKEN_CODES.values():
        assert await call(bad, validate=False) is child
    credentials = await botocore_session(child).get_credentials()
    credentials.invalidate()  # force a refresh: it must use the first caller's callable
    await caller_arn(child)
    sent = [call.params.get("TokenCode") for call in assume_role_calls(sts)]
    assert sent == ["000001", "000002"]


async def test_credentials_without_a_code_source_take_a_later_usable_one(
    parent: Any, sts: LoopbackSTS
) -> None:
    kwargs: dict[str, Any] = {"RoleSessionName": "mfa-late", "SerialNumber": MFA_SERIAL}
    child = await assume_role(parent, ROLE_A, **kwargs)
    # Not usable: refused by validation, or (validate=False) not taken.
    assert await assume_role(parent, ROLE_A, TokenCode="abcdef", validate=False, **kwargs) is child
    assert await assume_role(parent, ROLE_A, TokenCode="123456", **kwargs) is child
    assert await assume_role(parent, ROLE_A, TokenCode="999999", **kwargs) is child  # kept
    await caller_arn(child)
    assert [call.params.get("TokenCode") for call in assume_role_calls(sts)] == ["123456"]


@pytest.mark.parametrize("source", ["named", "additional_kwargs"])
async def test_an_empty_role_session_name_without_validation_is_generated(
    parent: Any, sts: LoopbackSTS, source: str
) -> None:
    # As botocore (and so the sync library) does: "" is no name, and one is generated.
    if source == "named":
        child = await assume_role(parent, ROLE_A, RoleSessionName="", validate=False)
    else:
        child = await assume_role(
            parent, ROLE_A, additional_kwargs={"RoleSessionName": ""}, validate=False
        )
    arn = await caller_arn(child)
    assert arn.startswith("arn:aws:sts::111111111111:assumed-role/Reader/botocore-session-")
    (call,) = assume_role_calls(sts)
    assert call.params["RoleSessionName"].startswith("botocore-session-")


async def test_an_empty_role_session_name_is_still_a_validation_error(parent: Any) -> None:
    # The sync library's validation refuses it too (botocore: at least 2 characters).
    with pytest.raises(ParamValidationError, match="RoleSessionName"):
        await assume_role(parent, ROLE_A, RoleSessionName="")


@pytest.mark.parametrize(
    "region", ["us-east-1\n", "us-east-1\r\n", "\nus-east-1", "us-east-1 ", "-us", "123", "a" * 64]
)
async def test_a_region_name_with_trailing_whitespace_is_refused(parent: Any, region: str) -> None:
    with pytest.raises(ValueError, match="region_name"):
        await assume_role(parent, ROLE_A, region_name=region)


async def test_valid_region_names_pass(parent: Any) -> None:
    for region in ("us-east-1", "eu-west-3", "us-gov-west-1", "cn-north-1", "a" * 63, "local"):
        await assume_role(parent, ROLE_A, region_name=region)

"""Bad input, fuzzed: every parameter of ``assume_role()`` and every option of the CLI.

The outcome of any input is one of:

- a child whose first use works: the AssumeRole request reached the loopback STS and
  was accepted (so it was a valid request), and its region is one a client can be made
  with (botocore's own check, which ``create_client`` runs);
- a clear ``botocore.exceptions.ParamValidationError`` naming a parameter, or, for the
  options that are not AssumeRole parameters (``session``, ``region_name``, ``cache``,
  ``refresh``), a ``TypeError``/``ValueError`` naming the option;
- for the CLI: exit 0 with credentials on stdout, or a usage error (exit 2), a missing
  profile (exit 3, only with ``--profile``), or an AssumeRole failure STS decided (exit
  4, only with an endpoint that refuses connections): each with one line on stderr and
  nothing on stdout.

Never another exception type, and never a request STS rejects after validation said
yes. ``test_params.py`` fuzzes the conversion and validation functions alone (and
compares them with the sync library); here the whole call is fuzzed, and the request it
makes is judged by a server. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError
from botocore.utils import validate_region_name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aio_assume_role_lib import (
    AUTOMATIC_ROLE_SESSION_NAME,
    JSONFileCache,
    RefreshPolicy,
    _cli,
    assume_role,
)
from aio_assume_role_lib._fetch import MFACodeUnavailableError
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS, ROLE_A, ROLE_B, ROLE_C, botocore_session
from .test_security import find_leaks, issued_secrets

ONE_ATTEMPT = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
_WARM = AioSession()


def warm_session(profile: str | None = None) -> AioSession:
    """An AioSession sharing service data already loaded: new clients are cheap."""
    session = AioSession(profile=profile)
    session.register_component("data_loader", _WARM.get_component("data_loader"))
    return session


# --- values ---------------------------------------------------------------------------------

NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@-"
TAG_KEYS = ["team", "env", "Project", "cost center"]


async def _async_code() -> str:
    return "123456"


def _sync_code() -> str:
    return "654321"


def _self_containing_list() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


class _Opaque:
    """An object of no known kind (its repr is all a message can show of it)."""


def _returns_none() -> None:
    return None


def _returns_int() -> int:
    return 123456


def _returns_bad_code() -> str:
    return "12a456"


huge_text = st.sampled_from(["x" * 100_000, "é" * 30_000, "\U0001f600" * 10_000, "a," * 20_000])
odd_text = st.sampled_from(["", " ", "\t", "\n", "\x00", "\ud800", "\udcff", "null", "None"])
any_text = st.text(st.characters(exclude_categories=()), max_size=40) | odd_text | huge_text
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | any_text
    | st.binary(max_size=20)
    | st.binary(max_size=20).map(bytearray)
    | st.timedeltas()
    | st.datetimes(timezones=st.just(timezone.utc))
    | st.decimals(allow_nan=True)
    | st.complex_numbers()
    | st.builds(_Opaque)
    | st.builds(object)
    | st.sampled_from([AUTOMATIC_ROLE_SESSION_NAME, ROLE_A, "123456", "Key", "arn"])
    | st.sampled_from([_returns_none, _returns_int, _returns_bad_code, _async_code])
)
garbage = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.text(max_size=3), max_size=3)
        | st.dictionaries(
            st.sampled_from(["arn", "Key", "Value", "Version"])
            | st.text(max_size=4)
            | st.integers(),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
) | st.builds(_self_containing_list)

session_names = st.text(NAME_CHARS, min_size=2, max_size=64)
valid = {
    "RoleArn": st.sampled_from([ROLE_A, ROLE_B, ROLE_C]),
    "RoleSessionName": session_names | st.just(AUTOMATIC_ROLE_SESSION_NAME),
    "PolicyArns": st.lists(
        st.sampled_from(
            [
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::123456789012:policy/team/Extra",
            ]
        ).flatmap(lambda arn: st.sampled_from([arn, {"arn": arn}])),
        max_size=10,
    ),
    "Policy": st.just(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}
    ).flatmap(lambda policy: st.sampled_from([policy, json.dumps(policy)])),
    "DurationSeconds": st.integers(900, 3600)
    | st.timedeltas(timedelta(seconds=900), timedelta(hours=1)),
    "Tags": st.dictionaries(
        st.sampled_from(TAG_KEYS), st.text(NAME_CHARS + " ", max_size=20), max_size=4
    ).flatmap(
        lambda tags: st.sampled_from([tags, [{"Key": k, "Value": v} for k, v in tags.items()]])
    ),
    "TransitiveTagKeys": st.lists(st.sampled_from(TAG_KEYS), max_size=2, unique=True),
    "ExternalId": st.text(NAME_CHARS + ":/", min_size=2, max_size=100),
    "SerialNumber": st.just("arn:aws:iam::123456789012:mfa/fuzzer"),
    "TokenCode": st.sampled_from(["123456", _sync_code, _async_code]),
    "SourceIdentity": session_names,
    "region_name": st.sampled_from([None, True, False, "us-east-1", "eu-west-3"]),
    "validate": st.booleans(),
    "cache": st.sampled_from(["dict", "JSONFileCache", None]),
    "additional_kwargs": st.fixed_dictionaries(
        {},
        optional={
            "ExternalId": st.text(NAME_CHARS, min_size=2, max_size=20),
            # A parameter newer than the named ones: only the model's limits apply.
            "ProvidedContexts": st.lists(
                st.fixed_dictionaries(
                    {
                        "ProviderArn": st.just("arn:aws:iam::aws:contextProvider/IdentityCenter"),
                        "ContextAssertion": st.text(
                            st.characters(exclude_categories=()), min_size=4, max_size=40
                        ),
                    }
                ),
                max_size=1,
            ),
        },
    ),
    "refresh": st.sampled_from([None, RefreshPolicy(), RefreshPolicy(attempt_timeout_seconds=5)]),
}
NAMED = [name for name in valid if name != "RoleArn"]
OPTIONS = {"session", "region_name", "cache", "refresh"}  # not AssumeRole parameters


@dataclass
class Call:
    session: Any = "parent"
    role_arn: Any = ROLE_A
    kwargs: dict[str, Any] = field(default_factory=dict)
    garbled: set[str] = field(default_factory=set)

    def names(self) -> set[str]:
        """Every parameter name an error may rightly name."""
        names = {"RoleArn", "RoleSessionName", *self.kwargs}
        extra = self.kwargs.get("additional_kwargs")
        if isinstance(extra, dict):
            names.update(str(key) for key in extra)
        if "additional_kwargs" in self.kwargs:
            names.add("additional_kwargs")
        return names


@st.composite
def calls(draw: st.DrawFn) -> Call:
    everything = ["session", "RoleArn", *NAMED]
    garbled = draw(st.sets(st.sampled_from(everything), max_size=3))
    call = Call(garbled=garbled)
    if "session" in garbled:
        call.session = draw(garbage)
    call.role_arn = draw(garbage if "RoleArn" in garbled else valid["RoleArn"])
    for name in NAMED:
        if name in garbled:
            call.kwargs[name] = draw(garbage)
        elif draw(st.booleans()):
            call.kwargs[name] = draw(valid[name])
    return call


# --- assume_role() ---------------------------------------------------------------------------


def _materialize(call: Call, parent: Any, cache_root: Path) -> tuple[Any, dict[str, Any]]:
    session = parent if call.session == "parent" else call.session
    kwargs = dict(call.kwargs)
    if kwargs.get("cache") == "dict":
        kwargs["cache"] = {}
    elif kwargs.get("cache") == "JSONFileCache":
        kwargs["cache"] = JSONFileCache(tempfile.mkdtemp(dir=cache_root))
    return session, kwargs


@dataclass
class Verdict:
    accepted: bool
    error: BaseException | None = None  # raised by assume_role, or by the first use
    at: str = ""  # "assume_role" or "first use"
    sts_outcomes: list[str] = field(default_factory=list)


async def run_call(call: Call, sts: LoopbackSTS, parent: Any, cache_root: Path) -> Verdict:
    session, kwargs = _materialize(call, parent, cache_root)
    try:
        child = await assume_role(session, call.role_arn, **kwargs)
    except Exception as error:
        return Verdict(False, error, "assume_role")
    before = len(sts.calls)
    try:
        with anyio.fail_after(HANG_SECONDS):
            # What a client made on the child needs: a usable region, then credentials.
            validate_region_name(botocore_session(child).get_config_variable("region"))
            await (await child.get_credentials()).get_frozen_credentials()
    except Exception as error:
        outcomes = [c.outcome for c in sts.calls[before:] if c.action == "AssumeRole"]
        return Verdict(True, error, "first use", outcomes)
    outcomes = [c.outcome for c in sts.calls[before:] if c.action == "AssumeRole"]
    return Verdict(True, None, "first use", outcomes)


def judge(call: Call, verdict: Verdict) -> None:
    error = verdict.error
    if not verdict.accepted:
        assert error is not None
        if isinstance(error, ParamValidationError):
            text = str(error)
            assert text.startswith("Parameter validation failed:"), text[:200]
            assert any(name in text for name in call.names()), text[:500]
        elif isinstance(error, (TypeError, ValueError)):
            assert any(option in str(error) for option in OPTIONS), repr(error)[:500]
        else:
            raise AssertionError(f"assume_role raised {type(error).__name__}: {error!r:.500}")
        return

    validated = bool(call.kwargs.get("validate", True))
    if error is None:
        # One accepted request; or none: the same arguments came before, and their
        # credentials are shared (SPEC R2).
        assert verdict.sts_outcomes in (["ok"], []), verdict.sts_outcomes
        return
    # The first use failed. Only what no offline check can know is acceptable:
    token_code = call.kwargs.get("TokenCode", (call.kwargs.get("additional_kwargs") or {}))
    serial = "SerialNumber" in call.kwargs or "SerialNumber" in (
        call.kwargs.get("additional_kwargs") or {}
    )
    if isinstance(error, MFACodeUnavailableError) and serial:
        return  # an MFA device and no code to give (SPEC R8), or a callable's non-code
    if isinstance(error, ClientError) and callable(token_code):
        message = str(error)
        if "tokenCode" in message:
            return  # the code a TokenCode callable returned: known only when called
    if not validated and isinstance(error, (ClientError, ParamValidationError)):
        return  # validate=False: STS judges (its errors), or botocore's own validator does
    raise AssertionError(
        f"accepted (validate={validated}), then the first use failed: "
        f"{type(error).__name__}: {error!r:.500}; AssumeRole outcomes: {verdict.sts_outcomes}"
    )


@pytest.fixture
def parent(sts: LoopbackSTS) -> AioSession:
    """One parent for every example of a test (a new session costs ~15 ms)."""
    return warm_session()


@FUZZ
@given(call=calls())
def test_assume_role_with_any_input_makes_a_valid_request_or_raises_a_clear_error(
    sts: LoopbackSTS, parent: AioSession, tmp_path: Path, call: Call
) -> None:
    """Bound: at most 100 examples; each makes at most one AssumeRole request."""
    verdict = anyio.run(run_call, call, sts, parent, tmp_path)
    judge(call, verdict)


refresh_fields = st.sampled_from(
    [
        "advisory_window_seconds",
        "blocking_window_seconds",
        "min_use_seconds",
        "min_use_fraction",
        "jitter_fraction",
        "attempt_timeout_seconds",
        "try_timeout_seconds",
        "max_tries",
        "backoff_min_seconds",
        "backoff_max_seconds",
        "backoff_lifetime_fraction",
        "error_memory_min_seconds",
        "error_memory_max_seconds",
    ]
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(refresh_fields, garbage | st.floats() | st.integers(-5, 50_000)))
def test_refresh_policy_with_any_values_is_built_or_names_the_field(values: dict[str, Any]) -> None:
    """The ``refresh`` argument's own constructor: a policy, or a ValueError naming fields."""
    try:
        policy = RefreshPolicy(**values)
    except ValueError as error:
        check_refresh_policy_error(str(error), values)
        return
    # Whatever was accepted gives windows and backoffs that are numbers, in order.
    advisory_at, blocking_at = policy.windows(0.0, 900.0, 0.5)
    assert advisory_at <= blocking_at <= 900.0
    assert 0 <= policy.backoff(3, 900.0, 100.0, rand=0.5) <= policy.backoff_max_seconds
    assert policy.error_memory_min_seconds <= policy.error_memory(0.5)


def check_refresh_policy_error(message: str, values: dict[str, Any]) -> None:
    assert message.startswith("Invalid RefreshPolicy: "), message
    for problem in message.removeprefix("Invalid RefreshPolicy: ").split("; "):
        assert any(name in problem for name in values) or "fraction" in problem, message


# Inputs found by the fuzzers above (or feared), run on every run: each names what it is.
EDGE_CALLS = {
    "TokenCode without SerialNumber": Call(kwargs={"TokenCode": "123456"}),
    "TransitiveTagKeys without Tags": Call(kwargs={"TransitiveTagKeys": ["team"]}),
    "a lone surrogate in a parameter without a pattern": Call(
        kwargs={
            "additional_kwargs": {
                "ProvidedContexts": [
                    {
                        "ProviderArn": "arn:aws:iam::aws:contextProvider/IdentityCenter",
                        "ContextAssertion": "ab\ud800cd",
                    }
                ]
            }
        }
    ),
    "a region_name no client accepts": Call(kwargs={"region_name": "not a region"}),
    "RoleArn containing itself": Call(role_arn=_self_containing_list()),
    "DurationSeconds containing itself": Call(kwargs={"DurationSeconds": _self_containing_list()}),
    "Tags containing itself": Call(kwargs={"Tags": _self_containing_list()}),
    "a mapping with keys of two types": Call(kwargs={"SourceIdentity": {1: "a", "b": 2}}),
    "validate=False and a value JSON cannot hold": Call(
        kwargs={"validate": False, "RoleSessionName": {1, 2}}
    ),
    "validate=False and a lone surrogate": Call(
        kwargs={"validate": False, "RoleSessionName": "ab\ud800"}
    ),
    "a huge RoleSessionName": Call(kwargs={"RoleSessionName": "x" * 100_000}),
    "bytes for a string": Call(kwargs={"ExternalId": b"external-id"}),
    "NaN DurationSeconds": Call(kwargs={"DurationSeconds": float("nan")}),
    "a session that is not one": Call(session="not a session"),
    "a cache that is a list": Call(kwargs={"cache": []}),
    "a refresh that is a dict": Call(kwargs={"refresh": {"attempt_timeout_seconds": 1}}),
}


@pytest.mark.parametrize("call", list(EDGE_CALLS.values()), ids=list(EDGE_CALLS))
def test_assume_role_with_an_edge_input(
    sts: LoopbackSTS, parent: AioSession, tmp_path: Path, call: Call
) -> None:
    """The same verdict as the fuzzer's, on inputs kept: one AssumeRole request at most."""
    judge(call, anyio.run(run_call, call, sts, parent, tmp_path))


# --- the command line -------------------------------------------------------------------------

CLI_OPTIONS = [
    "--profile",
    "--region",
    "--endpoint-url",
    "--RoleSessionName",
    "--PolicyArns",
    "--Policy",
    "--DurationSeconds",
    "--Tags",
    "--TransitiveTagKeys",
    "--ExternalId",
    "--SerialNumber",
    "--TokenCode",
    "--SourceIdentity",
    "--additional-kwargs",
]
REFUSING_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens on it

# What argv can hold: any text but NUL; undecodable bytes arrive as U+DC80..U+DCFF.
argv_text = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
    | st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    max_size=30,
) | st.sampled_from(["", "-", "--", "x" * 50_000, "=", ",", "k=", "=v", "a=b,c=d"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["arn", "Key", "Value", "ExternalId", "DurationSeconds"])
            | st.text(max_size=5),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
).map(json.dumps)
cli_valid = {
    "--RoleSessionName": session_names,
    "--PolicyArns": st.sampled_from(
        ["arn:aws:iam::aws:policy/ReadOnlyAccess", '[{"arn": "arn:aws:iam::aws:policy/A1"}]']
    ),
    "--Policy": st.just('{"Version": "2012-10-17", "Statement": []}'),
    "--DurationSeconds": st.integers(900, 3600).map(str),
    "--Tags": st.sampled_from(["team=data,env=dev", '{"team": "data"}']),
    "--TransitiveTagKeys": st.sampled_from(["team", '["team"]']),
    "--ExternalId": st.text(NAME_CHARS, min_size=2, max_size=20),
    "--SerialNumber": st.just("arn:aws:iam::123456789012:mfa/fuzzer"),
    "--TokenCode": st.sampled_from(["123456", "000000"]),
    "--SourceIdentity": session_names,
    "--additional-kwargs": st.sampled_from(['{"ExternalId": "from-json"}', "{}"]),
    "--region": st.sampled_from(["us-east-1", "eu-west-3"]),
    # only 127.0.0.1, or text that is no URL at all: never another host
    "--endpoint-url": st.sampled_from(["<sts>", REFUSING_ENDPOINT]),
    "--profile": argv_text,
}


@st.composite
def cli_arguments(draw: st.DrawFn) -> list[str]:
    arguments: list[str] = []
    for _ in range(draw(st.integers(0, 2)) + 1):
        arguments.append(draw(st.sampled_from([ROLE_A, ROLE_B]) | argv_text))
    for option in draw(st.lists(st.sampled_from(CLI_OPTIONS), max_size=5)):
        if option == "--endpoint-url" and draw(st.booleans()):
            value = draw(argv_text.filter(lambda text: "//" not in text))
        elif draw(st.booleans()):
            value = draw(cli_valid[option])
        else:
            value = draw(argv_text | json_values)
        if draw(st.booleans()):
            arguments.append(f"{option}={value}")
        else:
            arguments += [option, value]
    arguments += draw(st.lists(st.sampled_from(["--env", "--json"]), max_size=2))
    return draw(st.permutations(arguments))


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever endpoint setting an input manages to drop, STS stays on 127.0.0.1.

    botocore falls back from AWS_ENDPOINT_URL_STS to AWS_ENDPOINT_URL, then to the public
    endpoint: the fallback here is a port that refuses connections.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", REFUSING_ENDPOINT)


@pytest.fixture
def cli_sessions_share_service_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's sessions load service data once, not once per run (~0.1 s each)."""
    monkeypatch.setattr(_cli, "AioSession", warm_session)


@FUZZ
@given(arguments=cli_arguments())
@pytest.mark.usefixtures("cli_sessions_share_service_data")
def test_cli_with_any_arguments_prints_credentials_or_one_clear_error_line(
    sts: LoopbackSTS, arguments: list[str]
) -> None:
    """Bound: at most 100 runs of ``main(argv)`` in this process; each makes at most three
    AssumeRole requests (a chain of up to three roles), to 127.0.0.1 only."""
    check_cli_run(sts, arguments)


def check_cli_run(sts: LoopbackSTS, arguments: list[str]) -> None:
    """Run ``main(arguments)`` in this process and judge its exit code and output."""
    argv = [sts.endpoint_url if a.endswith("<sts>") and "=" not in a else a for a in arguments]
    argv = [a.replace("=<sts>", "=" + sts.endpoint_url) for a in argv]
    before = len(sts.calls)
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = _cli.main(argv)
        except BaseException as error:
            raise AssertionError(f"main() raised {type(error).__name__}: {error!r:.300}") from None
    out, err = stdout.getvalue(), stderr.getvalue()
    outcomes = [c.outcome for c in sts.calls[before:] if c.action == "AssumeRole"]
    assert not find_leaks([("stderr", err)], issued_secrets(sts)), err
    err = without_region_warning(err, argv)

    if code == 0:
        assert err == ""
        if "--help" in argv or "--version" in argv:
            return
        assert out.startswith(("AWS_ACCESS_KEY_ID=", "{")), out[:200]
        assert outcomes, "credentials printed without an AssumeRole call"
        assert set(outcomes) == {"ok"}, outcomes
        return
    assert out == "", out[:200]
    assert err.startswith("aio-assume-role: "), err[:300]
    assert err.count("\n") == 1, err[:500]
    if code == 2:
        assert err.startswith("aio-assume-role: error: "), err[:300]
        assert outcomes == [], outcomes  # rejected before any request
    elif code == 3:
        assert any(a.startswith("--profile") for a in argv), err[:300]
    elif code == 4:
        # Only STS, or an endpoint that refuses connections, can make AssumeRole fail
        # once the input has been checked.
        refusing = any(REFUSING_ENDPOINT in a for a in argv)
        assert refusing or (outcomes and outcomes[-1] != "ok"), err[:300]
        assert refusing, f"validation let through a request STS rejected: {err[:300]}"
    elif code in (126, 127):
        # Whatever follows "--" is run as a command; one that cannot be run is reported.
        assert "--" in argv, err[:300]
    else:
        raise AssertionError(f"exit code {code}: {err[:300]}")


def without_region_warning(err: str, argv: list[str]) -> str:
    """stderr without the one warning a --region botocore does not know may give, first."""
    warning = "aio-assume-role: warning: --region "
    if not err.startswith(warning):
        assert warning not in err, err[:500]
        return err
    assert any(argument.startswith("--region") for argument in argv), err[:300]
    assert " is not a region botocore " in err.splitlines()[0], err[:300]
    return err.split("\n", 1)[1]


EDGE_ARGUMENTS = {
    "--endpoint-url=-- (argparse makes it an empty list)": [ROLE_A, "--endpoint-url=--"],
    "an empty --endpoint-url": [ROLE_A, "--endpoint-url", ""],
    "an --endpoint-url that is no URL": [ROLE_A, "--endpoint-url", "not a url"],
    "a --region no client accepts": [ROLE_A, "--region", "not a region"],
    "--TransitiveTagKeys without --Tags": [ROLE_A, "--TransitiveTagKeys", "team"],
    "--TokenCode without --SerialNumber": [ROLE_A, "--TokenCode", "123456"],
    "a huge --ExternalId": [ROLE_A, "--ExternalId", "x" * 100_000],
    "undecodable bytes in an ARN": [ROLE_A + "\udcff"],
    "a NUL in COMMAND (main(argv) can hold one)": [ROLE_A, "--", "echo", "a\x00b"],
    "a NUL in an option": [ROLE_A, "--profile", "a\x00"],
    "a kebab-case AssumeRole option": [ROLE_A, "--role-session-name", "x"],
    "a region botocore does not know": [ROLE_A, "--region", "xx-nowhere-9"],
    "an empty --Policy object": [ROLE_A, "--Policy", "{}"],
}


@pytest.mark.parametrize("arguments", list(EDGE_ARGUMENTS.values()), ids=list(EDGE_ARGUMENTS))
@pytest.mark.usefixtures("cli_sessions_share_service_data")
def test_cli_with_edge_arguments(sts: LoopbackSTS, arguments: list[str]) -> None:
    """The same verdict as the CLI fuzzer's, on arguments kept."""
    check_cli_run(sts, arguments)


# --- offline, thousands of cases: assume_role() with validation, and the CLI's parsing ------
#
# No request is made here: what is fuzzed is everything before the first STS call, which
# is what a caller's input can reach. Thousands of examples fit in seconds because the
# parent and the event loop are made once.

# An example of these strategies (drawn and run) costs 10-15 ms here. `python3 dev.py
# test` (CI) sets AIO_ARL_FUZZ_EXAMPLES: 2,000 on stack S1, 500 on S2 (FUZZ_EXAMPLES in
# dev.py); the defaults below are for pytest run by hand.
_OFFLINE_EXAMPLES = os.environ.get("AIO_ARL_FUZZ_EXAMPLES")


def _offline(default_examples: int) -> Any:
    return settings(
        max_examples=int(_OFFLINE_EXAMPLES or default_examples),
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


bad_token_codes = st.sampled_from(
    ["", "abcdef", "1" * 100_000, "12345\x00", "123\ud80056", "123456\n", " 123456", "\uff11" * 6]
)


@st.composite
def repeat_calls(draw: st.DrawFn) -> tuple[Call, Any]:
    """A call with validation, and the TokenCode a second, otherwise equal call brings."""
    call = draw(calls())
    call.kwargs.pop("validate", None)  # validation on: what it lets through is judged
    second_code = draw(bad_token_codes | valid["TokenCode"] | garbage | st.none())
    return call, second_code


@pytest.fixture(scope="module")
def offline_parent() -> AioSession:
    """A parent with credentials (static, made up) and no use for the network."""
    session = warm_session()
    session.set_credentials("AKIAOFFLINEFUZZ00000", "offline-fuzz-secret")
    session.set_config_variable("region", "us-east-1")
    return session


@pytest.fixture(scope="module")
def event_loop_for_examples() -> Any:
    import asyncio

    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


DOCUMENTED_ERRORS = (ParamValidationError, TypeError, ValueError, NoCredentialsError)


@_offline(700)
@given(case=repeat_calls())
def test_assume_role_offline_ends_in_a_child_or_a_documented_error(
    offline_parent: AioSession, event_loop_for_examples: Any, tmp_path: Path, case: tuple[Call, Any]
) -> None:
    """Bound: 700 examples (by default), no request; a repeat call's TokenCode is checked
    every time."""
    call, second_code = case

    async def twice() -> tuple[Any, Any]:
        session, kwargs = _materialize(call, offline_parent, tmp_path)
        first = await assume_role(session, call.role_arn, **kwargs)
        kwargs["TokenCode"] = second_code
        try:
            return first, await assume_role(session, call.role_arn, **kwargs)
        except DOCUMENTED_ERRORS as error:
            return first, error

    try:
        first, second = event_loop_for_examples.run_until_complete(twice())
    except DOCUMENTED_ERRORS as error:
        judge(call, Verdict(False, error, "assume_role"))
        return
    except BaseException as error:
        raise AssertionError(f"assume_role raised {type(error).__name__}: {error!r:.500}") from None
    # The first call passed validation; the second differs only in its TokenCode, which
    # is checked on every call: a 6-digit string or a callable, with a SerialNumber.
    extra = call.kwargs.get("additional_kwargs")
    serial = call.kwargs.get("SerialNumber") or (extra or {}).get("SerialNumber")
    usable = (isinstance(second_code, str) and re.fullmatch("[0-9]{6}", second_code, re.ASCII)) or (
        callable(second_code) and not isinstance(second_code, str)
    )
    if second_code is not None and not (usable and isinstance(serial, str)):
        assert isinstance(second, ParamValidationError), repr(second)[:500]
        assert "TokenCode" in str(second), str(second)[:500]
        assert len(str(second)) < 2000  # a huge code is never quoted
    else:
        assert second is first, repr(second)[:500]  # same arguments: the same child


class _OfflineCredentials:
    """Stands in for a child's credentials: made up, valid for an hour, never fetched."""

    method = "offline-fuzz"

    def __init__(self) -> None:
        self.expiry_time = datetime.now(timezone.utc) + timedelta(hours=1)

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials("ASIAOFFLINEFUZZ00000", "offline-secret", "offline-token")


class _OfflineCredentialResolver:
    async def load_credentials(self) -> _OfflineCredentials:
        return _OfflineCredentials()


@pytest.fixture
def offline_cli(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The CLI as it is, up to the STS call: parsing, conversion, validation, chaining.

    Each child it makes gets made-up credentials instead of fetching any, and parents
    are made once per profile name (with a made-up key), so thousands of runs fit in
    seconds.
    """
    parents: dict[str | None, AioSession] = {}

    def parent_for(profile: str | None = None) -> AioSession:
        if profile not in parents:
            session = warm_session(profile)
            if profile is None:
                session.set_credentials("AKIAOFFLINEFUZZ00000", "offline-fuzz-secret")
            parents[profile] = session
        return parents[profile]

    accepted: list[dict[str, Any]] = []  # the arguments of each call that made a child

    async def offline_assume_role(session: Any, role_arn: Any, **kwargs: Any) -> Any:
        child = await assume_role(session, role_arn, **kwargs)
        accepted.append(kwargs)
        child.register_component("credential_provider", _OfflineCredentialResolver())
        return child

    monkeypatch.setattr(_cli, "AioSession", parent_for)
    monkeypatch.setattr(_cli, "assume_role", offline_assume_role)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return accepted


# Values that broke the CLI once (issue 12): each must end in one line and exit 2.
hostile_values = st.sampled_from(
    [
        "[" * 5_000 + "]" * 5_000,
        '{"a": ' * 5_000 + "1" + "}" * 5_000,
        "http://[::1",
        "http://127.0.0.1:99999",
        "us-east-1\n",
        "",
        ",",
        "[]",
    ]
)


@st.composite
def hostile_cli_arguments(draw: st.DrawFn) -> list[str]:
    arguments = draw(cli_arguments())
    for option in draw(st.lists(st.sampled_from(CLI_OPTIONS), max_size=2)):
        arguments += [option, draw(hostile_values)]
    return draw(st.permutations(arguments))


@_offline(1000)
@given(arguments=hostile_cli_arguments())
def test_cli_offline_ends_in_a_documented_exit_code_and_one_line(
    offline_cli: list[dict[str, Any]], arguments: list[str]
) -> None:
    """Bound: 1000 runs (by default) of ``main(argv)`` in this process; none reaches STS.

    Also: an option that narrows the session's permissions is never sent empty.
    """
    offline_cli.clear()
    argv = [a.replace("<sts>", REFUSING_ENDPOINT) for a in arguments]
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            code = _cli.main(argv)
        except BaseException as error:
            raise AssertionError(f"main() raised {type(error).__name__}: {error!r:.300}") from None
    out, err = stdout.getvalue(), stderr.getvalue()
    err = without_region_warning(err, argv)
    for kwargs in offline_cli:
        extra = kwargs.get("additional_kwargs") or {}
        for narrowing in ("PolicyArns", "Policy"):
            if narrowing in kwargs or narrowing in extra:
                assert kwargs.get(narrowing, extra.get(narrowing)), (code, argv)
    if code == 0:
        assert err == ""
        if "--help" not in argv and "--version" not in argv:
            assert "ASIAOFFLINEFUZZ00000" in out, out[:200]
        return
    assert out == "", out[:200]
    assert err.startswith("aio-assume-role: "), err[:300]
    assert err.count("\n") == 1, err[:500]
    if code == 2:
        assert err.startswith("aio-assume-role: error: "), err[:300]
    elif code == 3:
        assert any(a.startswith("--profile") for a in argv), err[:300]
    elif code in (126, 127):
        assert "--" in argv, err[:300]
    else:
        raise AssertionError(f"exit code {code}: {err[:300]}")

"""ARNs and session names: the same output as aws-assume-role-lib 2.10.0, and valid for STS."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest import mock

import aws_assume_role_lib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_assume_role_lib._names import (
    AUTOMATIC_ROLE_SESSION_NAME,
    generate_lambda_session_name,
    get_assumed_role_session_arn,
    get_role_arn,
)

LAMBDA_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_STREAM_NAME",
)
# What STS accepts as a role session name ("\w" is ASCII there).
SESSION_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
LOG_STREAM = "2020/01/31/[$LATEST]3893xmpl7fac4485b47bb75b671a283c"


@contextmanager
def lambda_environment(**variables: str) -> Iterator[None]:
    """Exactly the given Lambda variables set (usable inside hypothesis tests)."""
    with mock.patch.dict(os.environ):
        for name in LAMBDA_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(variables)
        yield


def outcome(function: Callable[..., str], *args: Any, **kwargs: Any) -> tuple[str, object]:
    """("ok", result) or ("error", exception type), to compare two implementations."""
    try:
        return ("ok", function(*args, **kwargs))
    except Exception as error:
        return ("error", type(error))


def test_automatic_role_session_name_is_the_sync_librarys() -> None:
    assert AUTOMATIC_ROLE_SESSION_NAME == aws_assume_role_lib.AUTOMATIC_ROLE_SESSION_NAME


# --- get_role_arn ----------------------------------------------------------------------

ROLE_ARN_CASES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((123456789012, "Reader"), {}),
    (("123456789012", "Reader"), {}),
    ((123, "Reader"), {}),
    (("123", "Reader"), {}),
    ((0, "Reader"), {}),
    (("0123456789012", "Reader"), {}),  # longer than 12: left alone
    ((1234567890123, "Reader"), {}),
    ((12.0, "Reader"), {}),
    ((Decimal("42"), "Reader"), {}),
    ((True, "Reader"), {}),
    ((-5, "Reader"), {}),
    (("", "Reader"), {}),
    ((123456789012, "Reader"), {"path": ""}),
    ((123456789012, "Reader"), {"path": "/"}),
    ((123456789012, "Reader"), {"path": "team"}),
    ((123456789012, "Reader"), {"path": "/team"}),
    ((123456789012, "Reader"), {"path": "team/"}),
    ((123456789012, "Reader"), {"path": "/team/"}),
    ((123456789012, "Reader"), {"path": "/a/b/c/"}),
    ((123456789012, "Reader"), {"path": "//a"}),
    ((123456789012, "team/Reader"), {}),
    ((123456789012, "/team/Reader"), {}),
    ((123456789012, "/a/b/Reader"), {}),
    ((123456789012, "/Reader"), {}),
    ((123456789012, "Reader/"), {}),
    ((123456789012, "Reader"), {"partition": "aws-cn"}),
    ((123456789012, "Reader"), {"partition": "aws-us-gov"}),
    ((123456789012, "Reader"), {"partition": "aws-iso-b"}),
    ((123456789012, "Reader"), {"path": "p", "partition": "aws-iso"}),
    ((123456789012, "Role With Spaces!"), {}),  # not validated, as in the sync library
    ((123456789012, "R" * 200), {}),
    # the path given twice: ValueError in both
    ((123456789012, "team/Reader"), {"path": "team"}),
    ((123456789012, "team/Reader"), {"path": "/"}),
]


@pytest.mark.parametrize(("args", "kwargs"), ROLE_ARN_CASES)
def test_get_role_arn_matches_the_sync_library(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert outcome(get_role_arn, *args, **kwargs) == outcome(
        aws_assume_role_lib.get_role_arn, *args, **kwargs
    )


def test_get_role_arn_examples() -> None:
    assert get_role_arn(123, "Reader") == "arn:aws:iam::000000000123:role/Reader"
    assert get_role_arn("123456789012", "/a/b/R") == "arn:aws:iam::123456789012:role/a/b/R"
    assert get_role_arn(1, "R", path="/p", partition="aws-cn") == (
        "arn:aws-cn:iam::000000000001:role/p/R"
    )


def test_get_role_arn_rejects_a_path_given_twice_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="path was given twice"):
        get_role_arn(123456789012, "team/Reader", path="/team/")


# --- get_assumed_role_session_arn ------------------------------------------------------

SESSION_ARN_CASES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((123456789012, "Reader", "alice"), {}),
    (("123", "Reader", "alice"), {}),
    ((7, "Reader", "alice"), {}),
    (("0123456789012", "Reader", "alice"), {}),
    ((123456789012, "team/Reader", "alice"), {}),
    ((123456789012, "/a/b/Reader", "alice"), {}),
    ((123456789012, "Reader/", "alice"), {}),
    ((123456789012, "Reader", "botocore-session-1700000000"), {}),
    ((123456789012, "Reader", "odd name!"), {}),
    ((123456789012, "Reader", "alice"), {"partition": "aws-cn"}),
    ((123456789012, "Reader", "alice"), {"partition": "aws-us-gov"}),
]


@pytest.mark.parametrize(("args", "kwargs"), SESSION_ARN_CASES)
def test_get_assumed_role_session_arn_matches_the_sync_library(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert outcome(get_assumed_role_session_arn, *args, **kwargs) == outcome(
        aws_assume_role_lib.get_assumed_role_session_arn, *args, **kwargs
    )


def test_get_assumed_role_session_arn_drops_the_path() -> None:
    assert get_assumed_role_session_arn(123, "/team/Reader", "alice") == (
        "arn:aws:sts::000000000123:assumed-role/Reader/alice"
    )


# --- generate_lambda_session_name ------------------------------------------------------

# (keyword arguments, environment); every case is deterministic: it has an identifier,
# a log stream name, or a function name too long for an identifier.
LAMBDA_CASES: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"function_name": "fn", "identifier": "abc"}, {}),
    ({"function_name": "fn", "function_version": "5", "identifier": "abc"}, {}),
    ({"function_name": "fn", "function_version": "$LATEST", "identifier": "abc"}, {}),
    ({"function_name": "fn", "function_version": "", "identifier": "abc"}, {}),
    ({"function_name": "fn", "identifier": "i" * 100}, {}),  # identifier truncated
    ({"function_name": "fn", "function_version": "12", "identifier": "i" * 100}, {}),
    ({"function_name": "f" * 58, "identifier": "abcdef"}, {}),
    ({"function_name": "f" * 59, "identifier": "abcdef"}, {}),
    ({"function_name": "f" * 60}, {}),  # too long for an identifier
    ({"function_name": "f" * 64}, {}),
    ({"function_name": "f" * 100}, {}),
    ({"function_name": "f" * 55, "function_version": "1234", "identifier": "abc"}, {}),
    ({"function_name": "f" * 55, "function_version": "12345", "identifier": "abc"}, {}),
    ({"function_name": "my fn+x!!", "identifier": "a b"}, {}),  # invalid characters
    ({"function_name": "fñ€", "identifier": "ïd"}, {}),
    ({"function_name": "fn", "identifier": "abc"}, {"AWS_LAMBDA_FUNCTION_VERSION": "7"}),
    ({"function_name": "fn", "identifier": "a"}, {"AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"}),
    (
        {"function_name": "fn", "function_version": "3", "identifier": "a"},
        {"AWS_LAMBDA_FUNCTION_VERSION": "7"},
    ),
    ({"identifier": "abc"}, {"AWS_LAMBDA_FUNCTION_NAME": "from-env"}),
    ({"function_name": "", "identifier": "abc"}, {"AWS_LAMBDA_FUNCTION_NAME": "from-env"}),
    ({}, {"AWS_LAMBDA_FUNCTION_NAME": "from-env", "AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM}),
    (
        {},
        {
            "AWS_LAMBDA_FUNCTION_NAME": "from-env",
            "AWS_LAMBDA_FUNCTION_VERSION": "42",
            "AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM,
        },
    ),
    ({"function_name": "f" * 50}, {"AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM}),  # truncated
    ({"function_name": "fn"}, {"AWS_LAMBDA_LOG_STREAM_NAME": "trailing-newline\n"}),
    ({"function_name": "fn", "identifier": "explicit"}, {"AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM}),
    ({"function_name": "fn", "identifier": ""}, {"AWS_LAMBDA_LOG_STREAM_NAME": LOG_STREAM}),
    # no function name anywhere: KeyError in both
    ({"identifier": "abc"}, {}),
    ({"function_name": "", "identifier": "abc"}, {}),
]


@pytest.mark.parametrize(("kwargs", "environment"), LAMBDA_CASES)
def test_generate_lambda_session_name_matches_the_sync_library(
    kwargs: dict[str, Any], environment: dict[str, str]
) -> None:
    with lambda_environment(**environment):
        ours = outcome(generate_lambda_session_name, **kwargs)
        theirs = outcome(aws_assume_role_lib.generate_lambda_session_name, **kwargs)
    assert ours == theirs
    if ours[0] == "ok":
        assert isinstance(ours[1], str)
        assert SESSION_NAME.fullmatch(ours[1])


def test_generate_lambda_session_name_examples() -> None:
    with lambda_environment(AWS_LAMBDA_LOG_STREAM_NAME=LOG_STREAM):
        assert generate_lambda_session_name("fn", "3") == "fn.3.3893xmpl7fac4485b47bb75b671a283c"
    with lambda_environment():
        assert generate_lambda_session_name("my fn", "$LATEST", "x") == "my_fn.x"


def test_generate_lambda_session_name_needs_a_function_name() -> None:
    with lambda_environment(), pytest.raises(KeyError, match="AWS_LAMBDA_FUNCTION_NAME"):
        generate_lambda_session_name(identifier="abc")


@pytest.mark.parametrize(
    ("function_name", "function_version", "identifier_pattern"),
    [
        ("fn", None, r"[0-9]{20}"),  # timestamp with microseconds: room for all of it
        ("fn", "$LATEST", r"[0-9]{20}"),
        ("f" * 40, "1", r"[0-9]{20}"),
        ("f" * 45, None, r"[0-9]{18}"),  # timestamp, truncated to the room left
        ("f" * 49, None, r"[0-9]{14}"),  # just enough room for second precision
        ("f" * 50, None, r"[a-z0-9]{13}"),  # no room for a timestamp: random
        ("f" * 55, "12", r"[a-z0-9]{5}"),
        ("f" * 59, None, r"[a-z0-9]{4}"),
    ],
)
def test_generate_lambda_session_name_without_identifier_has_the_sync_shape(
    function_name: str, function_version: str | None, identifier_pattern: str
) -> None:
    with lambda_environment():
        ours = generate_lambda_session_name(function_name, function_version)
        theirs = aws_assume_role_lib.generate_lambda_session_name(function_name, function_version)
    shown_version = function_version not in (None, "$LATEST")
    prefix = function_name + (f".{function_version}" if shown_version else "") + "."
    for name in (ours, theirs):
        assert name.startswith(prefix)
        assert re.fullmatch(identifier_pattern, name[len(prefix) :])
    assert len(ours) == len(theirs)
    assert SESSION_NAME.fullmatch(ours)


def test_generate_lambda_session_name_ignores_a_log_stream_without_an_id() -> None:
    with lambda_environment(AWS_LAMBDA_LOG_STREAM_NAME="stream ending in a space "):
        name = generate_lambda_session_name("fn")
    assert re.fullmatch(r"fn\.[0-9]{20}", name)


@pytest.mark.parametrize("name_length", [50, 55, 59])
def test_generate_lambda_session_name_random_identifiers_differ(name_length: int) -> None:
    # Less than 14 characters of room: random, not a timestamp (which would repeat
    # within the same second).
    with lambda_environment():
        names = {generate_lambda_session_name("f" * name_length) for _ in range(20)}
    assert len(names) > 1


# --- properties ------------------------------------------------------------------------

ascii_names = st.from_regex(r"[A-Za-z0-9_+=,.@-]{1,64}", fullmatch=True)
path_segments = st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True), max_size=4)
account_ids = st.integers(min_value=0, max_value=999_999_999_999) | st.from_regex(
    r"[0-9]{1,12}", fullmatch=True
)
partitions = st.sampled_from(["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"])
role_arn_pattern = re.compile(
    r"arn:(?P<partition>[a-z-]+):iam::(?P<account>[0-9]{12}):role/(?P<path>(?:.*/)?)(?P<name>[^/]+)"
)


@given(account_ids, ascii_names, path_segments, st.booleans(), partitions)
def test_get_role_arn_round_trips(
    account_id: int | str,
    role_name: str,
    segments: list[str],
    path_in_name: bool,
    partition: str,
) -> None:
    path = "".join(f"{segment}/" for segment in segments)
    if path_in_name:
        arn = get_role_arn(account_id, "/" + path + role_name, partition=partition)
    else:
        arn = get_role_arn(account_id, role_name, path="/" + path, partition=partition)
    match = role_arn_pattern.fullmatch(arn)
    assert match is not None
    assert match["partition"] == partition
    assert int(match["account"]) == int(account_id)
    assert match["path"] == path
    assert match["name"] == role_name


@given(account_ids, ascii_names, path_segments, ascii_names, partitions)
def test_get_assumed_role_session_arn_round_trips(
    account_id: int | str, role_name: str, segments: list[str], session: str, partition: str
) -> None:
    path = "".join(f"{segment}/" for segment in segments)
    arn = get_assumed_role_session_arn(account_id, path + role_name, session, partition)
    prefix, _, rest = arn.partition(":assumed-role/")
    assert prefix == f"arn:{partition}:sts::{int(account_id):012d}"
    assert rest == f"{role_name}/{session}"


@given(
    st.integers(min_value=0, max_value=10**14) | st.text(max_size=16),
    st.text(min_size=1, max_size=40),
    st.text(max_size=20),
    partitions,
)
def test_arn_helpers_match_the_sync_library_on_any_text(
    account_id: int | str, role_name: str, path: str, partition: str
) -> None:
    assert outcome(get_role_arn, account_id, role_name, path, partition) == outcome(
        aws_assume_role_lib.get_role_arn, account_id, role_name, path, partition
    )
    assert outcome(get_assumed_role_session_arn, account_id, role_name, path, partition) == (
        outcome(
            aws_assume_role_lib.get_assumed_role_session_arn, account_id, role_name, path, partition
        )
    )


versions = st.none() | st.just("$LATEST") | st.text(max_size=12)


@given(st.text(min_size=1, max_size=80), versions, st.text(min_size=1, max_size=80))
def test_lambda_session_name_with_identifier_matches_and_is_valid(
    function_name: str, function_version: str | None, identifier: str
) -> None:
    with lambda_environment():
        ours = generate_lambda_session_name(function_name, function_version, identifier)
        theirs = aws_assume_role_lib.generate_lambda_session_name(
            function_name, function_version, identifier
        )
    assert ours == theirs
    assert SESSION_NAME.fullmatch(ours)


environment_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60)


@given(st.text(min_size=1, max_size=80), versions, environment_text)
def test_lambda_session_name_from_the_environment_is_valid(
    function_name: str, function_version: str | None, log_stream: str
) -> None:
    with lambda_environment(AWS_LAMBDA_LOG_STREAM_NAME=log_stream):
        ours = generate_lambda_session_name(function_name, function_version)
        theirs = aws_assume_role_lib.generate_lambda_session_name(function_name, function_version)
    assert SESSION_NAME.fullmatch(ours)
    assert len(ours) == len(theirs)
    if re.search(r"\w+$", log_stream) or len(function_name) > 59:
        assert ours == theirs  # no clock or randomness involved

"""AssumeRole parameters: conversions, precedence and offline validation."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import types
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import boto3
import botocore.credentials
import pytest
from aws_assume_role_lib import aws_assume_role_lib as sync_lib
from botocore.exceptions import ParamValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aio_assume_role_lib._fetch import cache_key
from aio_assume_role_lib._names import AUTOMATIC_ROLE_SESSION_NAME
from aio_assume_role_lib._params import AssumeRoleArgs, prepare_args, validate_args

ROLE_ARN = "arn:aws:iam::123456789012:role/Reader"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
CONTEXT = {
    "ProviderArn": "arn:aws:iam::aws:contextProvider/IdentityCenter",
    "ContextAssertion": "abcd",
}
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}


def problems(RoleArn: str = ROLE_ARN, **kwargs: Any) -> list[str]:
    """The report lines of prepare_args + validate_args; [] when the input is valid."""
    try:
        validate_args(prepare_args(RoleArn, **kwargs))
    except ParamValidationError as error:
        report: str = error.kwargs["report"]
        return report.splitlines()
    return []


def about(lines: list[str], parameter: str) -> list[str]:
    """The lines naming ``parameter`` (or one of its items) as the parameter at fault."""
    pattern = re.compile(rf"parameter (?:in )?{re.escape(parameter)}[:,]")
    return [line for line in lines if pattern.search(line)]


def request(args: AssumeRoleArgs) -> dict[str, Any]:
    """The request as sent: kwargs plus a string TokenCode."""
    sent = dict(args.kwargs)
    if args.token_code is not None:
        sent["TokenCode"] = args.token_code
    return sent


# --- the sync library as a reference ---------------------------------------------------


class _Captured(Exception):
    def __init__(self, role_arn: str, extra_args: dict[str, Any]) -> None:
        self.request = {**copy.deepcopy(extra_args), "RoleArn": role_arn}


class _CapturingProvider:
    """Stands in for the sync library's provider: records its AssumeRole arguments."""

    def __init__(self, client_creator: Any, loader: Any, role_arn: str, **kwargs: Any) -> None:
        raise _Captured(role_arn, kwargs["extra_args"])


@pytest.fixture(scope="module")
def sync_request() -> Iterator[Any]:
    """sync_request(RoleArn, **kwargs): the request aws-assume-role-lib would send.

    Raises what it raises (ParamValidationError when its validation fails).
    """
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )
    sts = session.client("sts")
    with (
        mock.patch.object(session, "client", return_value=sts),
        mock.patch.object(sync_lib, "ProgrammaticAssumeRoleProvider", _CapturingProvider),
    ):

        def run(RoleArn: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                sync_lib.assume_role(session, RoleArn, **kwargs)
            except _Captured as captured:
                return captured.request
            raise AssertionError("the sync library did not build a provider")

        yield run


# --- defaults and precedence -----------------------------------------------------------

PARITY_CASES: list[dict[str, Any]] = [
    {},
    {"RoleSessionName": "alice"},
    {"SourceIdentity": "alice"},
    {"RoleSessionName": "", "SourceIdentity": "alice"},
    {"RoleSessionName": "bob", "SourceIdentity": "alice"},
    {"RoleSessionName": AUTOMATIC_ROLE_SESSION_NAME},
    {"RoleSessionName": AUTOMATIC_ROLE_SESSION_NAME, "SourceIdentity": "alice"},
    {"PolicyArns": [READ_ONLY, {"arn": "arn:aws:iam::123456789012:policy/Mine"}]},
    {"PolicyArns": (READ_ONLY,)},
    {"Policy": POLICY},
    {"Policy": json.dumps(POLICY, indent=2)},
    {"DurationSeconds": 1800},
    {"DurationSeconds": timedelta(hours=1, seconds=0.75)},
    {"Tags": [{"Key": "Project", "Value": "Alpha"}], "TransitiveTagKeys": ["Project"]},
    {"ExternalId": "ext-id", "SerialNumber": "GAHT12345678", "TokenCode": "123456"},
    {"additional_kwargs": {"ExternalId": "from-extra", "DurationSeconds": 1000}},
    {"additional_kwargs": {"DurationSeconds": 1000}, "DurationSeconds": 2000},
    {"SerialNumber": "GAHT12345678", "additional_kwargs": {"TokenCode": "123456"}},
    {
        "SerialNumber": "GAHT12345678",
        "additional_kwargs": {"TokenCode": "111111"},
        "TokenCode": "222222",
    },
    {"additional_kwargs": {"RoleSessionName": "from-extra"}},
    # the sync library's order: SourceIdentity fills the named RoleSessionName, which
    # then overrides additional_kwargs
    {"additional_kwargs": {"RoleSessionName": "from-extra"}, "SourceIdentity": "alice"},
    {"additional_kwargs": {"SourceIdentity": "alice"}},  # not used as the session name
    {"additional_kwargs": {"RoleArn": "arn:aws:iam::123456789012:role/Other"}},
]


@pytest.mark.parametrize("kwargs", PARITY_CASES)
def test_request_is_what_the_sync_library_sends(kwargs: dict[str, Any], sync_request: Any) -> None:
    expected = sync_request(ROLE_ARN, **kwargs)
    args = prepare_args(ROLE_ARN, **kwargs)
    validate_args(args)
    assert request(args) == json.loads(json.dumps(expected))  # tuples as lists
    assert args.session_name_generated == ("RoleSessionName" not in expected)


def test_source_identity_is_the_default_session_name() -> None:
    args = prepare_args(ROLE_ARN, SourceIdentity="alice")
    assert args.kwargs["RoleSessionName"] == "alice"
    assert args.kwargs["SourceIdentity"] == "alice"
    assert not args.session_name_generated
    assert prepare_args(ROLE_ARN, RoleSessionName="", SourceIdentity="al").kwargs[
        "RoleSessionName"
    ] == ("al")


def test_automatic_role_session_name_generates_even_with_source_identity() -> None:
    args = prepare_args(
        ROLE_ARN, RoleSessionName=AUTOMATIC_ROLE_SESSION_NAME, SourceIdentity="alice"
    )
    assert "RoleSessionName" not in args.kwargs
    assert args.kwargs["SourceIdentity"] == "alice"
    assert args.session_name_generated
    validate_args(args)  # the placeholder name passes validation


def test_automatic_role_session_name_in_additional_kwargs_generates_too() -> None:
    # The sync library would send this string to STS, which rejects it.
    args = prepare_args(
        ROLE_ARN, additional_kwargs={"RoleSessionName": AUTOMATIC_ROLE_SESSION_NAME}
    )
    assert "RoleSessionName" not in args.kwargs
    assert args.session_name_generated


def test_no_session_name_means_generated() -> None:
    args = prepare_args(ROLE_ARN)
    assert args.kwargs == {"RoleArn": ROLE_ARN}
    assert args.session_name_generated
    assert args.token_code is None


def test_named_parameters_override_additional_kwargs() -> None:
    args = prepare_args(
        ROLE_ARN,
        ExternalId="named",
        additional_kwargs={"ExternalId": "extra", "SerialNumber": "GAHT12345678"},
    )
    assert args.kwargs["ExternalId"] == "named"
    assert args.kwargs["SerialNumber"] == "GAHT12345678"


def test_role_arn_always_wins() -> None:
    args = prepare_args(ROLE_ARN, additional_kwargs={"RoleArn": "arn:aws:iam::1:role/X"})
    assert args.kwargs["RoleArn"] == ROLE_ARN


def test_none_named_parameters_do_not_override() -> None:
    args = prepare_args(ROLE_ARN, Policy=None, additional_kwargs={"Policy": '{"a": 1}'})
    assert args.kwargs["Policy"] == '{"a": 1}'


# --- TokenCode ---------------------------------------------------------------------------


def test_token_code_string_is_kept_out_of_kwargs() -> None:
    args = prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode="123456")
    assert args.token_code == "123456"
    assert "TokenCode" not in args.kwargs


def test_token_code_from_additional_kwargs() -> None:
    args = prepare_args(ROLE_ARN, additional_kwargs={"TokenCode": "123456"})
    assert args.token_code == "123456"
    assert "TokenCode" not in args.kwargs


def test_named_token_code_overrides_additional_kwargs() -> None:
    args = prepare_args(ROLE_ARN, TokenCode="222222", additional_kwargs={"TokenCode": "111111"})
    assert args.token_code == "222222"


class _MfaDevice:
    """A stateful code source whose bound method must be passed on as it is."""

    def __init__(self) -> None:
        self.calls = 0

    def code(self) -> str:
        self.calls += 1
        return "123456"


async def _async_code() -> str:
    raise AssertionError("validation must not call the TokenCode source")


@pytest.mark.parametrize("where", ["named", "additional_kwargs"])
def test_token_code_callables_are_kept_and_never_called(where: str) -> None:
    device = _MfaDevice()
    for source in (device.code, _async_code):
        if where == "named":
            args = prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode=source)
        else:
            args = prepare_args(
                ROLE_ARN, additional_kwargs={"SerialNumber": "GAHT12345678", "TokenCode": source}
            )
        assert args.token_code is source
        assert "TokenCode" not in args.kwargs
        validate_args(args)
    assert device.calls == 0


@pytest.mark.parametrize("bad", [123456, b"123456", ["123456"], None])
def test_token_code_of_another_type_is_rejected_without_echo(bad: object) -> None:
    if bad is None:
        lines = problems(additional_kwargs={"TokenCode": None})  # sync: "Invalid type"
    else:
        lines = problems(TokenCode=bad)
    assert len(lines) == 1
    assert "TokenCode" in lines[0]
    assert "123456" not in lines[0]


def test_repr_hides_the_token_code() -> None:
    args = prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode="987654")
    assert "987654" not in repr(args)
    assert "token_code=<str>" in repr(args)
    assert "token_code=<callable>" in repr(prepare_args(ROLE_ARN, TokenCode=_async_code))


# --- conversions -------------------------------------------------------------------------


def test_policy_mapping_is_dumped_to_json() -> None:
    args = prepare_args(ROLE_ARN, Policy=POLICY)
    assert args.kwargs["Policy"] == json.dumps(POLICY)
    read_only_view = types.MappingProxyType(POLICY)  # not a dict: json.dumps alone fails
    assert json.loads(prepare_args(ROLE_ARN, Policy=read_only_view).kwargs["Policy"]) == POLICY


def test_policy_string_is_kept_as_is() -> None:
    text = json.dumps(POLICY, indent=4)
    assert prepare_args(ROLE_ARN, Policy=text).kwargs["Policy"] == text


def test_policy_that_is_not_json_serializable_is_a_validation_error() -> None:
    lines = problems(Policy={"Statement": {1, 2}})
    assert len(about(lines, "Policy")) == 1
    assert "JSON" in lines[0]


def test_policy_arns_strings_become_descriptors() -> None:
    mine = {"arn": "arn:aws:iam::123456789012:policy/Mine"}
    args = prepare_args(ROLE_ARN, PolicyArns=[READ_ONLY, mine])
    assert args.kwargs["PolicyArns"] == [{"arn": READ_ONLY}, mine]
    generated = prepare_args(ROLE_ARN, PolicyArns=(arn for arn in [READ_ONLY]))
    assert generated.kwargs["PolicyArns"] == [{"arn": READ_ONLY}]
    validate_args(args)


def test_duration_timedelta_becomes_whole_seconds() -> None:
    args = prepare_args(ROLE_ARN, DurationSeconds=timedelta(minutes=30, microseconds=900_000))
    assert args.kwargs["DurationSeconds"] == 1800
    assert type(args.kwargs["DurationSeconds"]) is int
    validate_args(args)


def test_tags_mapping_becomes_key_value_list() -> None:
    args = prepare_args(ROLE_ARN, Tags={"Project": "Alpha", "Team": ""})
    assert args.kwargs["Tags"] == [
        {"Key": "Project", "Value": "Alpha"},
        {"Key": "Team", "Value": ""},
    ]
    validate_args(args)


@pytest.mark.parametrize("parameter", ["PolicyArns", "Tags", "TransitiveTagKeys"])
@pytest.mark.parametrize("bare", ["arn:aws:iam::aws:policy/ReadOnlyAccess", b"Project", ""])
def test_a_bare_string_for_a_list_parameter_is_an_error(parameter: str, bare: object) -> None:
    with pytest.raises(ParamValidationError) as raised:
        prepare_args(ROLE_ARN, **{parameter: bare})
    report = raised.value.kwargs["report"]
    assert len(report.splitlines()) == 1
    assert f"parameter {parameter}:" in report
    assert "list" in report


def test_bare_string_errors_are_reported_together() -> None:
    with pytest.raises(ParamValidationError) as raised:
        prepare_args(ROLE_ARN, PolicyArns="x", Tags="y", TransitiveTagKeys="z", TokenCode=1)
    lines = raised.value.kwargs["report"].splitlines()
    for name in ("PolicyArns", "Tags", "TransitiveTagKeys", "TokenCode"):
        assert len(about(lines, name)) == 1


def test_additional_kwargs_must_be_a_mapping() -> None:
    with pytest.raises(ParamValidationError, match="additional_kwargs"):
        prepare_args(ROLE_ARN, additional_kwargs=[("ExternalId", "x")])  # type: ignore[arg-type]


# --- copying -------------------------------------------------------------------------------


def test_kwargs_do_not_change_when_the_callers_objects_do() -> None:
    policy = copy.deepcopy(POLICY)
    policy_arns: list[Any] = [READ_ONLY, {"arn": "arn:aws:iam::123456789012:policy/Mine"}]
    tags = [{"Key": "Project", "Value": "Alpha"}]
    tag_map = {"Team": "Blue"}
    keys = ["Project"]
    extra = {
        "ProvidedContexts": [{"ProviderArn": "arn:aws:iam::aws:contextProvider/IdentityCenter"}]
    }
    args = prepare_args(
        ROLE_ARN, Policy=policy, PolicyArns=policy_arns, Tags=tags, TransitiveTagKeys=keys,
        additional_kwargs=extra,
    )  # fmt: skip
    tagged = prepare_args(ROLE_ARN, Tags=tag_map)
    before = json.dumps([args.kwargs, tagged.kwargs], sort_keys=True)

    policy["Statement"].append({"Effect": "Deny"})
    policy_arns[1]["arn"] = "changed"
    policy_arns.append(READ_ONLY)
    tags[0]["Value"] = "changed"
    tags.append({"Key": "More", "Value": "x"})
    tag_map["Team"] = "changed"
    keys.append("More")
    extra["ProvidedContexts"][0]["ProviderArn"] = "changed"
    extra["ExternalId"] = "added"  # type: ignore[assignment]

    assert json.dumps([args.kwargs, tagged.kwargs], sort_keys=True) == before


def _nested(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def test_values_nested_over_100_levels_are_refused_before_any_copy_of_them() -> None:
    """No parameter's shape is over three levels deep; a hundred is the bound, and a
    value that contains itself meets it at once (not at the interpreter's limit)."""
    prepare_args(ROLE_ARN, ExternalId=_nested(100))  # copied; validation rejects its type
    for value in (_nested(101), _nested(5_000)):
        with pytest.raises(ParamValidationError, match="ExternalId: nested too deeply"):
            prepare_args(ROLE_ARN, ExternalId=value)
    itself: list[Any] = []
    itself.append(itself)
    with pytest.raises(ParamValidationError, match="Tags: nested too deeply"):
        prepare_args(ROLE_ARN, Tags=[{"Key": "k", "Value": itself}])


def test_kwargs_are_plain_json_types() -> None:
    args = prepare_args(
        ROLE_ARN,
        PolicyArns=(READ_ONLY,),
        Tags=(types.MappingProxyType({"Key": "K", "Value": "V"}),),
        TransitiveTagKeys=("K",),
        additional_kwargs=types.MappingProxyType({"ExternalId": "abc"}),
    )
    assert args.kwargs["PolicyArns"] == [{"arn": READ_ONLY}]
    assert type(args.kwargs["Tags"]) is list
    assert type(args.kwargs["Tags"][0]) is dict
    assert type(args.kwargs["TransitiveTagKeys"]) is list
    json.dumps(args.kwargs)
    validate_args(args)


# --- validation: one rule at a time ----------------------------------------------------------

# (parameters, the parameter that must be named); each fails validation.
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"TokenCode": "123456"}, "TokenCode"),  # no SerialNumber: STS cannot check the code
    # STS: "The specified transitive tag key must be included in the requested tags."
    ({"TransitiveTagKeys": ["Project"]}, "TransitiveTagKeys"),
    ({"RoleArn": "arn:aws:iam::123456789012:user/Bob"}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::12345:role/Reader"}, "RoleArn"),
    ({"RoleArn": "arn:aws:sts::123456789012:role/Reader"}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::123456789012:role/"}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::123456789012:role//Reader"}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::123456789012:role/Has Space"}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::123456789012:role/" + "R" * 65}, "RoleArn"),
    ({"RoleArn": "arn:aws:iam::123456789012:role/" + "p/" * 1020 + "R"}, "RoleArn"),
    ({"RoleArn": "arn:notaws:iam::123456789012:role/Reader"}, "RoleArn"),
    ({"RoleSessionName": "has space"}, "RoleSessionName"),
    ({"RoleSessionName": "x" * 65}, "RoleSessionName"),
    ({"RoleSessionName": "a"}, "RoleSessionName"),
    ({"RoleSessionName": "ünïcode"}, "RoleSessionName"),
    ({"SourceIdentity": "aws:reserved"}, "SourceIdentity"),
    ({"SourceIdentity": "x" * 65}, "SourceIdentity"),
    ({"DurationSeconds": 60}, "DurationSeconds"),
    ({"DurationSeconds": 899}, "DurationSeconds"),
    ({"DurationSeconds": 43201}, "DurationSeconds"),
    ({"DurationSeconds": timedelta(hours=13)}, "DurationSeconds"),
    ({"DurationSeconds": True}, "DurationSeconds"),
    ({"DurationSeconds": 3600.0}, "DurationSeconds"),
    ({"ExternalId": "a"}, "ExternalId"),
    ({"ExternalId": "x" * 1225}, "ExternalId"),
    ({"ExternalId": "has space"}, "ExternalId"),
    ({"SerialNumber": "12345678"}, "SerialNumber"),
    ({"SerialNumber": "x" * 257}, "SerialNumber"),
    ({"SerialNumber": "GAHT 1234 5678"}, "SerialNumber"),
    ({"TokenCode": "12345"}, "TokenCode"),
    ({"TokenCode": "1234567"}, "TokenCode"),
    ({"TokenCode": "12345a"}, "TokenCode"),
    ({"TokenCode": "١٢٣٤٥٦"}, "TokenCode"),  # digits, but not 0-9
    ({"PolicyArns": [READ_ONLY] * 11}, "PolicyArns"),
    ({"PolicyArns": ["arn:aws:iam::aws:policy/" + "P" * 2030]}, "PolicyArns[0].arn"),
    ({"PolicyArns": [{}]}, "PolicyArns[0]"),
    ({"PolicyArns": [{"Arn": READ_ONLY}]}, "PolicyArns[0]"),
    ({"PolicyArns": ["ReadOnlyAccessPolicyName"]}, "PolicyArns[0].arn"),
    ({"PolicyArns": [READ_ONLY, "arn:aws:iam::123456789012:role/NotAPolicy"]}, "PolicyArns[1].arn"),
    ({"PolicyArns": {"arn": READ_ONLY}}, "PolicyArns"),
    ({"Policy": {"Statement": [{"Sid": "x" * 2100}]}}, "Policy"),
    ({"Policy": '{"Sid": "€"}'}, "Policy"),
    ({"Policy": "not json"}, "Policy"),
    ({"Policy": "[]"}, "Policy"),
    ({"Policy": ""}, "Policy"),
    ({"Policy": {}}, "Policy"),
    ({"PolicyArns": []}, "PolicyArns"),
    ({"Tags": {f"k{i}": "v" for i in range(51)}}, "Tags"),
    ({"Tags": {"k" * 129: "v"}}, "Tags[0].Key"),
    ({"Tags": {"": "v"}}, "Tags[0].Key"),
    ({"Tags": {"k": "v" * 257}}, "Tags[0].Value"),
    ({"Tags": {"k!": "v"}}, "Tags[0].Key"),
    ({"Tags": {"k": "v#"}}, "Tags[0].Value"),
    ({"Tags": {"k": "tab\there"}}, "Tags[0].Value"),
    ({"Tags": {"Env": "a", "env": "b"}}, "Tags[1].Key"),
    ({"Tags": [{"Key": "k"}]}, "Tags[0]"),
    ({"Tags": [("k", "v")]}, "Tags[0]"),
    ({"TransitiveTagKeys": [f"k{i}" for i in range(51)]}, "TransitiveTagKeys"),
    ({"TransitiveTagKeys": ["k" * 129]}, "TransitiveTagKeys[0]"),
    ({"TransitiveTagKeys": ["k!"]}, "TransitiveTagKeys[0]"),
    ({"TransitiveTagKeys": {"k"}}, "TransitiveTagKeys"),
    ({"Tags": {"Project": "x"}, "TransitiveTagKeys": ["Team"]}, "TransitiveTagKeys[0]"),
    ({"additional_kwargs": {"Unknown": 1}}, "input"),
    ({"additional_kwargs": {"ExternalId": None}}, "ExternalId"),
    ({"additional_kwargs": {"ProvidedContexts": [CONTEXT] * 6}}, "ProvidedContexts"),
    (
        {"additional_kwargs": {"ProvidedContexts": [{**CONTEXT, "ContextAssertion": "a" * 2049}]}},
        "ProvidedContexts[0].ContextAssertion",
    ),
]  # fmt: skip

# (parameters); each is valid, most at a boundary of a rule above.
VALID: list[dict[str, Any]] = [
    {"RoleArn": "arn:aws:iam::123456789012:role/team/sub/Reader"},
    {"RoleArn": "arn:aws-cn:iam::123456789012:role/Reader"},
    {"RoleArn": "arn:aws-us-gov:iam::123456789012:role/Reader"},
    {"RoleArn": "arn:aws-iso-b:iam::123456789012:role/Reader"},
    {"RoleArn": "arn:aws:iam::123456789012:role/aws-service-role/"
                "elasticbeanstalk.amazonaws.com/AWSServiceRoleForElasticBeanstalk"},
    {"RoleArn": "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
                "AWSReservedSSO_Admin_0123456789abcdef"},
    {"RoleArn": "arn:aws:iam::123456789012:role/" + "R+=,.@_-" * 8},
    {"RoleSessionName": "ab"},
    {"RoleSessionName": "x" * 64},
    {"RoleSessionName": "a+=,.@-_Z9"},
    {"SourceIdentity": "alice@example.com"},
    {"SourceIdentity": "x" * 64},
    {"DurationSeconds": 900},
    {"DurationSeconds": 43200},
    {"DurationSeconds": timedelta(hours=12)},
    {"ExternalId": "ab"},
    {"ExternalId": "x" * 1224},
    {"ExternalId": "a+=,.@:/-_"},
    {"SerialNumber": "GAHT12345678"},
    {"SerialNumber": "arn:aws:iam::123456789012:mfa/alice"},
    {"SerialNumber": "x" * 256},
    {"SerialNumber": "GAHT12345678", "TokenCode": "000000"},
    {"SerialNumber": "GAHT12345678", "TokenCode": "123456"},
    {"PolicyArns": [READ_ONLY] * 10},
    {"PolicyArns": ["arn:aws:iam::123456789012:policy/team/Mine",
                    {"arn": "arn:aws-cn:iam::aws:policy/X"}]},
    {"Policy": POLICY},
    {"Policy": {"Sid": "ünïcode €"}},  # json.dumps escapes it to ASCII
    {"Policy": '{"Sid": "é"}'},
    {"Policy": json.dumps({"Sid": "x" * (2048 - 11)})},  # exactly 2048 characters
    {"Tags": {f"k{i}": "v" for i in range(50)}},
    {"Tags": {"k" * 128: "v" * 256}},
    {"Tags": {"k": ""}},
    {"Tags": {"Ünïcødé 値 ٣": "spaces and _.:/=+-@"}},
    {"Tags": [{"Key": "Project", "Value": "Alpha"}], "TransitiveTagKeys": ["Project"]},
    {"Tags": {f"k{i}": "v" for i in range(50)}, "TransitiveTagKeys": [f"k{i}" for i in range(50)]},
    {"additional_kwargs": {"ProvidedContexts": [CONTEXT] * 5}},
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "parameter"), INVALID)
def test_invalid_parameter_is_named_once(kwargs: dict[str, Any], parameter: str) -> None:
    lines = problems(**kwargs)
    assert lines, "expected a problem"
    named = about(lines, parameter) if parameter != "input" else lines
    # exactly one complaint per rule broken: botocore's and ours never both say the same
    assert len(named) == 1, lines
    assert len(lines) <= 2, lines


@pytest.mark.parametrize("kwargs", VALID)
def test_valid_parameters_pass(kwargs: dict[str, Any]) -> None:
    assert problems(**kwargs) == []


def test_policy_size_counts_the_dumped_text() -> None:
    at_limit = {"Sid": "x" * (2048 - 11)}
    assert len(json.dumps(at_limit)) == 2048
    assert problems(Policy=at_limit) == []
    assert about(problems(Policy={"Sid": "x" * (2048 - 10)}), "Policy")


def test_duration_message_states_the_range() -> None:
    assert problems(DurationSeconds=50000) == [
        "Invalid value for parameter DurationSeconds: 50000; it must be between 900 and 43200 "
        "seconds (15 minutes to 12 hours, and no more than the role's maximum)."
    ]


def test_too_short_values_are_reported_once_by_botocore() -> None:
    lines = problems(
        RoleSessionName="a",
        DurationSeconds=60,
        ExternalId="a",
        SerialNumber="12345678",
        TokenCode="12345",
        Tags={"": "v"},
    )
    assert len(lines) == 6, lines
    assert all("valid min" in line for line in lines)


@pytest.mark.parametrize("code", ["9876543", "98765x", "98x", "Яблоко", "987 654"])
def test_token_code_messages_never_show_the_code(code: str) -> None:
    lines = problems(SerialNumber="GAHT12345678", TokenCode=code)
    assert about(lines, "TokenCode")
    report = "\n".join(lines)
    assert code not in report
    assert not any(char in report for char in "Яб")
    assert "6 digits" in report or "valid min length: 6" in report


def test_generated_session_name_and_callable_token_code_are_not_validated() -> None:
    args = prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode=lambda: "bad code")
    assert args.session_name_generated
    validate_args(args)


def test_all_problems_are_reported_at_once() -> None:
    lines = problems(
        RoleSessionName="bad name",
        DurationSeconds=50000,
        ExternalId="x" * 1225,
        Tags={"k!": "v"},
    )
    assert len(lines) == 4, lines
    for parameter in ("RoleSessionName", "DurationSeconds", "ExternalId", "Tags[0].Key"):
        assert len(about(lines, parameter)) == 1, (parameter, lines)


def test_botocores_problems_and_ours_are_reported_together() -> None:
    lines = problems(
        RoleArn="Reader",
        RoleSessionName="a",  # botocore: too short
        TokenCode="abcdef",  # ours: not digits
        Policy="[]",  # ours: not an object
        additional_kwargs={"Unknown": 1},  # botocore: unknown parameter
    )
    assert any('Unknown parameter in input: "Unknown"' in line for line in lines)
    for parameter in ("RoleArn", "RoleSessionName", "TokenCode", "Policy"):
        assert about(lines, parameter), (parameter, lines)
    with pytest.raises(ParamValidationError) as raised:
        validate_args(prepare_args("Reader"))
    assert str(raised.value).startswith("Parameter validation failed:\n")


# --- agreement with the sync library -------------------------------------------------------

SYNC_REJECTS: list[dict[str, Any]] = [
    {"RoleSessionName": "a"},
    {"SourceIdentity": "a"},
    {"DurationSeconds": 10},
    {"DurationSeconds": 3600.0},
    {"ExternalId": "a"},
    {"SerialNumber": "short"},
    {"TokenCode": 123456},
    {"TokenCode": "123"},
    {"Tags": [{"Key": "k"}]},
    {"Tags": "Project=Alpha"},
    {"Tags": ({"Key": "k", "Value": "v"}, "x")},
    {"PolicyArns": READ_ONLY},
    {"PolicyArns": ["short"]},
    {"Policy": ""},
    {"TransitiveTagKeys": {"k"}},
    {"TransitiveTagKeys": "k"},
    {"additional_kwargs": {"Unknown": "x"}},
    {"additional_kwargs": {"Policy": None}},
    {"additional_kwargs": {"TokenCode": None}},
    {"additional_kwargs": {"PolicyArns": [READ_ONLY]}},  # not converted when in extra
    {"RoleArn": None},
    {"RoleArn": "short"},
]


@pytest.mark.parametrize("kwargs", SYNC_REJECTS)
def test_what_the_sync_library_rejects_we_reject(kwargs: dict[str, Any], sync_request: Any) -> None:
    kwargs = {"RoleArn": ROLE_ARN, **kwargs}
    with pytest.raises(ParamValidationError):
        sync_request(**kwargs)
    assert problems(**kwargs)


# Deliberate differences: what the sync library sends and we refuse, with a reason.
EMPTY_NARROWING: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "PolicyArns=[]": (lambda: {"PolicyArns": []}, "PolicyArns"),
    "PolicyArns=()": (lambda: {"PolicyArns": ()}, "PolicyArns"),
    "PolicyArns=empty generator": (lambda: {"PolicyArns": (a for a in ())}, "PolicyArns"),
    "Policy={}": (lambda: {"Policy": {}}, "Policy"),
    "Policy='{ }'": (lambda: {"Policy": "{ }"}, "Policy"),
    "PolicyArns=[] in additional_kwargs": (
        lambda: {"additional_kwargs": {"PolicyArns": []}},
        "PolicyArns",
    ),
    "Policy='{}' in additional_kwargs": (lambda: {"additional_kwargs": {"Policy": "{}"}}, "Policy"),
}


@pytest.mark.parametrize(("kwargs", "parameter"), EMPTY_NARROWING.values(), ids=EMPTY_NARROWING)
def test_an_empty_narrowing_parameter_is_refused_which_the_sync_library_sends(
    kwargs: Callable[[], dict[str, Any]], parameter: str, sync_request: Any
) -> None:
    """An empty PolicyArns or Policy narrows nothing: the session would get the role's full
    permissions where the caller meant to narrow them (say, from a list that came out
    empty). The sync library sends it; we refuse it and say why (docs/migrating.md)."""
    sent = sync_request(ROLE_ARN, **kwargs())[parameter]
    assert json.loads(sent) == {} if isinstance(sent, str) else list(sent) == []
    with pytest.raises(ParamValidationError) as raised:
        validate_args(prepare_args(ROLE_ARN, **kwargs()))
    [line] = about(str(raised.value).splitlines(), parameter)
    assert "it is empty" in line
    assert "narrows the session's permissions" in line
    assert "full permissions" in line


def test_an_empty_policy_string_is_refused_saying_why_once() -> None:
    lines = problems(Policy="")
    assert len(lines) == 1, lines  # ours, not also botocore's "valid min length: 1"
    assert "it is empty" in lines[0]


# --- properties ------------------------------------------------------------------------------

NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@-"
session_names = st.text(NAME_CHARS, min_size=2, max_size=64)
role_arns = st.builds(
    "arn:{}:iam::{}:role/{}{}".format,
    st.sampled_from(["aws", "aws-cn", "aws-us-gov", "aws-iso-b"]),
    st.from_regex(r"[0-9]{12}", fullmatch=True),
    st.lists(st.text(NAME_CHARS + "/!~", min_size=1, max_size=10), max_size=3).map(
        lambda segments: "".join(f"{s.strip('/') or 'p'}/" for s in segments)
    ),
    st.text(NAME_CHARS, min_size=1, max_size=64),
)
policy_arns = st.builds(
    "arn:aws:iam::{}:policy/{}".format,
    st.just("aws") | st.from_regex(r"[0-9]{12}", fullmatch=True),
    st.text(NAME_CHARS, min_size=1, max_size=50),
)
tag_chars = st.characters(categories=["L", "N", "Zs"], include_characters="_.:/=+-@")
tag_keys = st.text(tag_chars, min_size=1, max_size=128)
token_codes = st.from_regex(r"[0-9]{6}", fullmatch=True)


@st.composite
def tags_and_transitive_keys(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(tag_keys, max_size=50, unique_by=str.lower))
    values = [draw(st.text(tag_chars, max_size=256)) for _ in keys]
    pairs = dict(zip(keys, values, strict=True))
    chosen: dict[str, Any] = {}
    if keys or draw(st.booleans()):
        chosen["Tags"] = draw(
            st.sampled_from([pairs, [{"Key": key, "Value": value} for key, value in pairs.items()]])
        )
    if keys and draw(st.booleans()):
        chosen["TransitiveTagKeys"] = draw(st.lists(st.sampled_from(keys), max_size=50))
    return chosen


def _sync_code() -> str:
    return "123456"


valid_parameters = st.fixed_dictionaries(
    {},
    optional={
        "RoleSessionName": session_names | st.just(AUTOMATIC_ROLE_SESSION_NAME),
        "SourceIdentity": session_names,
        "PolicyArns": st.lists(
            policy_arns | policy_arns.map(lambda arn: {"arn": arn}), min_size=1, max_size=10
        ),
        "Policy": st.dictionaries(
            st.text(max_size=10), st.text(max_size=20), min_size=1, max_size=4
        )
        | st.just(POLICY),
        "DurationSeconds": st.integers(900, 43200)
        | st.timedeltas(timedelta(seconds=900), timedelta(seconds=43200)),
        "ExternalId": st.text(NAME_CHARS + ":/", min_size=2, max_size=1224),
        "SerialNumber": st.text(NAME_CHARS + ":/", min_size=9, max_size=256),
        "TokenCode": token_codes | st.just(_sync_code) | st.just(_async_code),
        "additional_kwargs": st.fixed_dictionaries(
            {}, optional={"ExternalId": st.text(NAME_CHARS, min_size=2, max_size=20)}
        ),
    },
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(role_arns, valid_parameters, tags_and_transitive_keys())
def test_valid_inputs_never_raise(
    role_arn: str, parameters: dict[str, Any], tags: dict[str, Any]
) -> None:
    if "TokenCode" in parameters:  # an MFA code needs its device
        parameters.setdefault("SerialNumber", "GAHT12345678")
    args = prepare_args(role_arn, **parameters, **tags)
    validate_args(args)
    json.dumps(args.kwargs)


class _ForbiddenCallable:
    def __call__(self) -> str:
        raise AssertionError("validation must not call the TokenCode source")


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=10)
    | st.timedeltas()
    | st.sampled_from([AUTOMATIC_ROLE_SESSION_NAME, "123456", READ_ONLY, ROLE_ARN, "Key"])
)
garbage = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=3)
        | st.dictionaries(st.sampled_from(["arn", "Key", "Value"]) | st.text(max_size=5), children)
    ),
    max_leaves=15,
)
PARAMETER_NAMES = [
    "RoleSessionName",
    "PolicyArns",
    "Policy",
    "DurationSeconds",
    "Tags",
    "TransitiveTagKeys",
    "ExternalId",
    "SerialNumber",
    "TokenCode",
    "SourceIdentity",
]
garbage_parameters = st.fixed_dictionaries(
    {},
    optional={
        **{name: garbage for name in PARAMETER_NAMES},
        "TokenCode": garbage | st.builds(_ForbiddenCallable),
        "additional_kwargs": garbage
        | st.dictionaries(
            st.sampled_from([*PARAMETER_NAMES, "RoleArn", "ProvidedContexts"])
            | st.text(max_size=5),
            garbage | st.builds(_ForbiddenCallable),
        ),
    },
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(garbage | role_arns, garbage_parameters)
def test_garbage_raises_only_param_validation_error(
    role_arn: Any, parameters: dict[str, Any]
) -> None:
    try:
        validate_args(prepare_args(role_arn, **parameters))
    except ParamValidationError as error:
        report = error.kwargs["report"]
        assert report.strip()


@given(
    st.dictionaries(st.sampled_from([*PARAMETER_NAMES, "RoleArn"]) | st.text(max_size=5), garbage),
    garbage | st.builds(_ForbiddenCallable),
    st.booleans(),
)
def test_validate_args_on_any_args_raises_only_param_validation_error(
    kwargs: dict[str, Any], token_code: Any, session_name_generated: bool
) -> None:
    args = AssumeRoleArgs(kwargs, token_code, session_name_generated)
    with contextlib.suppress(ParamValidationError):
        validate_args(args)


plausible_parameters = st.fixed_dictionaries(
    {},
    optional={
        "RoleSessionName": session_names
        | st.sampled_from(["", "a", "bad name", AUTOMATIC_ROLE_SESSION_NAME]),
        "SourceIdentity": session_names | st.sampled_from(["", "a", "bad name"]),
        "PolicyArns": st.lists(
            policy_arns | st.just("short") | policy_arns.map(lambda arn: {"arn": arn}),
            max_size=12,
        )
        | st.sampled_from([READ_ONLY, 5]),
        "Policy": st.sampled_from([POLICY, "", "x", "[]", '{"a": 1}', {1, 2}]),
        "DurationSeconds": st.integers(0, 50000)
        | st.just(3600.0)
        | st.timedeltas(timedelta(0), timedelta(hours=13)),
        "Tags": st.lists(
            st.fixed_dictionaries(
                {"Key": tag_keys}, optional={"Value": st.text(tag_chars, max_size=5)}
            ),
            max_size=3,
        )
        | st.just("k=v"),
        "TransitiveTagKeys": st.lists(tag_keys, max_size=3) | st.sampled_from(["k", {"k"}]),
        "ExternalId": st.text(NAME_CHARS + " ", max_size=10),
        "SerialNumber": st.text(NAME_CHARS, max_size=12),
        "TokenCode": token_codes | st.sampled_from(["", "12345", "1234567", "abcdef", 123456]),
        "additional_kwargs": st.dictionaries(
            st.sampled_from(
                ["ExternalId", "DurationSeconds", "TokenCode", "Unknown", "RoleSessionName"]
            ),
            st.none() | st.integers(0, 5000) | session_names,
            max_size=3,
        ),
    },
)


@settings(deadline=None, max_examples=150)
@given(
    role_arn=role_arns | st.sampled_from(["short", "arn:aws:iam::123:role/X"]),
    parameters=plausible_parameters,
)
def test_agrees_with_the_sync_library(
    role_arn: str, parameters: dict[str, Any], sync_request: Any
) -> None:
    try:
        expected = sync_request(role_arn, **parameters)
    except Exception:  # rejected by its validation, or crashed on the input
        assert problems(role_arn, **parameters), "the sync library rejects this; so must we"
        return
    try:
        args = prepare_args(role_arn, **parameters)
        validate_args(args)
    except ParamValidationError:
        return  # we check more than the sync library does
    assert request(args) == json.loads(json.dumps(expected))


# --- the cache key: what aws-assume-role-lib (through botocore) computes -----------------

CACHE_KEY_CASES: list[dict[str, Any]] = [
    *PARITY_CASES,
    {"PolicyArns": [], "validate": False},
    {"SerialNumber": "GAHT12345678", "TokenCode": "654321"},
    {"RoleSessionName": "", "validate": False},
    {"additional_kwargs": {"RoleSessionName": ""}, "validate": False},
    {"Policy": '{"b": 1, "a": [2, 1]}', "validate": False},
]


@pytest.mark.parametrize("kwargs", CACHE_KEY_CASES)
def test_cache_key_is_the_sync_librarys(kwargs: dict[str, Any], sync_request: Any) -> None:
    sent = sync_request(ROLE_ARN, **kwargs)
    role_arn = sent.pop("RoleArn")
    # The fetcher the sync library hands these arguments to, and its key.
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=None, source_credentials=None, role_arn=role_arn, extra_args=sent
    )
    ours = {name: value for name, value in kwargs.items() if name != "validate"}
    assert cache_key(prepare_args(ROLE_ARN, **ours)) == fetcher._cache_key


def test_cache_key_leaves_out_a_callable_token_code() -> None:
    without = cache_key(prepare_args(ROLE_ARN, SerialNumber="GAHT12345678"))
    assert cache_key(prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode=str)) == without
    with_code = cache_key(prepare_args(ROLE_ARN, SerialNumber="GAHT12345678", TokenCode="123456"))
    assert with_code != without


def test_empty_role_session_name_is_generated_but_still_validated() -> None:
    for args in (
        prepare_args(ROLE_ARN, RoleSessionName=""),
        prepare_args(ROLE_ARN, additional_kwargs={"RoleSessionName": ""}),
        prepare_args(ROLE_ARN, additional_kwargs={"RoleSessionName": None}),
    ):
        assert args.session_name_generated
        with pytest.raises(ParamValidationError, match="RoleSessionName"):
            validate_args(args)

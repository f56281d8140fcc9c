"""The ``aio-assume-role`` command line, run as the installed console script.

Against the loopback STS (every option, exit code and output format) and against moto's
STS server (the conformance peer). Each run gets a clean environment: HOME in a temporary
directory and no AWS_* variable from the developer's machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import RefreshPolicy, __version__, _cli
from aio_assume_role_lib._cli import main
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS, STSCall

from ._hand_clock_fetch import UnansweredPrompt, first_fetch_given_up, hand_clock_child
from ._manual_clock import ManualClock
from .conftest import HANG_SECONDS, MotoServer

CLI = Path(sys.executable).parent / ("aio-assume-role" + (".exe" if os.name == "nt" else ""))
ROLE = "arn:aws:iam::123456789012:role/Reader"
SECOND_ROLE = "arn:aws:iam::210987654321:role/path/Deployer"
EXPIRATION_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# A command that prints the AWS_* part of its environment as JSON.
PRINT_AWS_ENVIRON = [
    sys.executable,
    "-c",
    "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k[:4] == 'AWS_'}))",
]

# A command that asks STS who it is, with botocore's default credential chain.
PRINT_CALLER_ARN = [
    sys.executable,
    "-c",
    "import botocore.session; "
    "print(botocore.session.get_session().create_client('sts').get_caller_identity()['Arn'])",
]


# --- running the console script -----------------------------------------------------------


def clean_environ(home: Path, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The test process's environment without any AWS_* variable, HOME in ``home``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(
        HOME=str(home),
        USERPROFILE=str(home),
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",  # no instance-metadata lookups off this machine
    )
    environ.update(extra)
    return environ


def _secrets_in(text: str) -> set[str]:
    """Secret keys and tokens printed in ``text`` (env lines or JSON)."""
    found = set(
        re.findall(r"(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)[=\"': ]+([^\s\"',}]+)", text)
    )
    found.update(re.findall(r"\"(?:SecretAccessKey|SessionToken)\": \"([^\"]+)\"", text))
    return found


def run(
    args: Sequence[str],
    environ: Mapping[str, str],
    *,
    program: Sequence[str] = (str(CLI),),
    known_secrets: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the CLI; check that no secret it printed or was given appears on stderr."""
    result = subprocess.run(
        [*program, *args],
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    secrets = _secrets_in(result.stdout) | set(known_secrets)
    if environ.get("AWS_SECRET_ACCESS_KEY"):
        secrets.add(environ["AWS_SECRET_ACCESS_KEY"])
    for secret in secrets:
        assert secret not in result.stderr, "a secret was printed to stderr"
    return result


@pytest.fixture
def run_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``main(args)`` in this process, for the many cases that need no console script.

    The same checks as :func:`run`, in a fraction of the time.
    """

    def run_main(
        args: Sequence[str], environ: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as patch:
            for name in os.environ:
                if name.startswith("AWS_"):
                    patch.delenv(name)
            for name, value in environ.items():
                patch.setenv(name, value)
            capsys.readouterr()
            returncode = main(list(args))
        stdout, stderr = capsys.readouterr()
        secrets = _secrets_in(stdout) | {environ.get("AWS_SECRET_ACCESS_KEY", "")} - {""}
        for secret in secrets:
            assert secret not in stderr, "a secret was printed to stderr"
        return subprocess.CompletedProcess(list(args), returncode, stdout, stderr)

    return run_main


def parse_env_output(stdout: str) -> dict[str, str]:
    lines = stdout.splitlines()
    assert all("=" in line for line in lines), stdout
    return dict(line.split("=", 1) for line in lines)


def assume_role_calls(sts: LoopbackSTS) -> list[STSCall]:
    return [call for call in sts.calls if call.action == "AssumeRole"]


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sts() -> Iterator[LoopbackSTS]:
    with LoopbackSTS() as server:
        yield server


@pytest.fixture
def environ(sts: LoopbackSTS, tmp_path: Path) -> dict[str, str]:
    """A clean environment whose default credentials are the loopback STS's root key."""
    sts.reset()
    return clean_environ(tmp_path, sts.environ())


def test_the_console_script_is_installed() -> None:
    assert CLI.exists(), f"{CLI} is missing: is the package installed in this environment?"


# --- output formats -----------------------------------------------------------------------


def test_env_output_is_the_sync_librarys(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    result = run([ROLE], environ)
    assert (result.returncode, result.stderr) == (0, "")

    [call] = assume_role_calls(sts)
    assert call.params["RoleArn"] == ROLE
    assert call.caller_arn == sts.root_arn
    assert call.expiration is not None
    variables = parse_env_output(result.stdout)
    assert list(variables) == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIALS_EXPIRATION",
    ]
    assert variables["AWS_ACCESS_KEY_ID"] == call.issued_access_key_id
    assert variables["AWS_CREDENTIALS_EXPIRATION"] == utc(call.expiration)


def test_json_output_is_the_credential_process_format(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    result = run(["--json", ROLE], environ)
    assert (result.returncode, result.stderr) == (0, "")

    [call] = assume_role_calls(sts)
    assert call.expiration is not None
    data = json.loads(result.stdout)
    assert list(data) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert data["Version"] == 1
    assert data["AccessKeyId"] == call.issued_access_key_id
    assert data["Expiration"] == utc(call.expiration)
    assert result.stdout.startswith('{\n  "Version": 1,\n')  # indented, as the sync library


def test_output_matches_the_sync_librarys_cli(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    """The same lines and keys, in the same order and layout, as aws_assume_role_lib's CLI."""
    sync_cli = (sys.executable, "-m", "aws_assume_role_lib")

    def shape(stdout: str) -> str:
        stdout = re.sub(EXPIRATION_RE, "<time>", stdout)
        return re.sub(r"(=|\": \")(?!<time>)[^\s\"]+", r"\1<value>", stdout)

    for output_format in ("--env", "--json"):
        ours = run([output_format, ROLE], environ)
        theirs = run([output_format, ROLE], environ, program=sync_cli)
        assert (ours.returncode, theirs.returncode) == (0, 0), theirs.stderr
        assert shape(ours.stdout) == shape(theirs.stdout)
        assert "<time>" in shape(ours.stdout)


def test_python_dash_m_runs_the_same_cli(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    result = run(["--json", ROLE], environ, program=(sys.executable, "-m", "aio_assume_role_lib"))
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        json.loads(result.stdout)["AccessKeyId"] == assume_role_calls(sts)[0].issued_access_key_id
    )


def test_help(environ: dict[str, str]) -> None:
    result = run(["--help"], environ)
    assert (result.returncode, result.stderr) == (0, "")
    for text in ("ROLE_ARN", "-- COMMAND", "LAST role", "examples:", "credential_process"):
        assert text in result.stdout
    options = (
        "--profile --region --endpoint-url --env --json --RoleSessionName --PolicyArns --Policy "
        "--DurationSeconds --Tags --TransitiveTagKeys --ExternalId --SerialNumber --TokenCode "
        "--SourceIdentity --additional-kwargs"
    )
    for option in options.split(" "):
        assert option in result.stdout


def test_version(environ: dict[str, str], run_in_process: Callable[..., Any]) -> None:
    result = run_in_process(["--version"], environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"aio-assume-role {__version__}\n"


# --- AssumeRole parameters ----------------------------------------------------------------

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
POLICY_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"
OTHER_POLICY_ARN = "arn:aws:iam::123456789012:policy/Extra"


def test_every_assume_role_option_reaches_sts(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    result = run(
        [
            ROLE,
            "--RoleSessionName=cli-session",
            f"--PolicyArns={POLICY_ARN},{OTHER_POLICY_ARN}",
            f"--Policy={json.dumps(POLICY)}",
            "--DurationSeconds=900",
            "--Tags=team=data,env=dev",
            "--TransitiveTagKeys=team,env",
            "--ExternalId=ext-1234",
            "--SerialNumber=arn:aws:iam::123456789012:mfa/alice",
            "--TokenCode=123456",
            "--SourceIdentity=alice",
        ],
        environ,
        known_secrets=["123456"],
    )
    assert (result.returncode, result.stderr) == (0, "")

    [call] = assume_role_calls(sts)
    assert call.outcome == "ok"
    params = dict(call.params)
    assert json.loads(params.pop("Policy")) == POLICY
    assert params == {
        "RoleArn": ROLE,
        "RoleSessionName": "cli-session",
        "PolicyArns.member.1.arn": POLICY_ARN,
        "PolicyArns.member.2.arn": OTHER_POLICY_ARN,
        "DurationSeconds": "900",
        "Tags.member.1.Key": "team",
        "Tags.member.1.Value": "data",
        "Tags.member.2.Key": "env",
        "Tags.member.2.Value": "dev",
        "TransitiveTagKeys.member.1": "team",
        "TransitiveTagKeys.member.2": "env",
        "ExternalId": "ext-1234",
        "SerialNumber": "arn:aws:iam::123456789012:mfa/alice",
        "TokenCode": "123456",
        "SourceIdentity": "alice",
    }
    assert call.expiration is not None
    assert abs(call.expiration - call.time - 900) < 5


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--Tags", '{"team": "data", "env": "dev"}', None),
        ("--Tags", '[{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "dev"}]', None),
        ("--PolicyArns", json.dumps([POLICY_ARN]), {"PolicyArns.member.1.arn": POLICY_ARN}),
        (
            "--PolicyArns",
            json.dumps([{"arn": POLICY_ARN}, OTHER_POLICY_ARN]),
            {"PolicyArns.member.1.arn": POLICY_ARN, "PolicyArns.member.2.arn": OTHER_POLICY_ARN},
        ),
        ("--PolicyArns", json.dumps({"arn": POLICY_ARN}), {"PolicyArns.member.1.arn": POLICY_ARN}),
        ("--TransitiveTagKeys", '["team"]', {"TransitiveTagKeys.member.1": "team"}),
    ],
    ids=["tags-object", "tags-list", "arns-list", "arns-mixed", "arns-object", "keys-list"],
)
def test_json_forms_of_list_options(
    sts: LoopbackSTS,
    environ: dict[str, str],
    run_in_process: Callable[..., Any],
    option: str,
    value: str,
    expected: dict[str, str] | None,
) -> None:
    tags = ["--Tags", "team=data,env=dev"] if option == "--TransitiveTagKeys" else []
    result = run_in_process([ROLE, *tags, option, value], environ)
    assert (result.returncode, result.stderr) == (0, "")
    [call] = assume_role_calls(sts)
    if expected is None:
        expected = {
            "Tags.member.1.Key": "team",
            "Tags.member.1.Value": "data",
            "Tags.member.2.Key": "env",
            "Tags.member.2.Value": "dev",
        }
    assert expected.items() <= dict(call.params).items()


def test_additional_kwargs_are_sent_and_named_options_win(
    sts: LoopbackSTS, environ: dict[str, str], run_in_process: Callable[..., Any]
) -> None:
    extra = {"ExternalId": "from-json", "SourceIdentity": "json-source"}
    result = run_in_process(
        [ROLE, "--additional-kwargs", json.dumps(extra), "--ExternalId=named"], environ
    )
    assert (result.returncode, result.stderr) == (0, "")
    [call] = assume_role_calls(sts)
    assert call.params["ExternalId"] == "named"
    assert call.params["SourceIdentity"] == "json-source"


def test_source_identity_names_the_session(
    sts: LoopbackSTS, environ: dict[str, str], run_in_process: Callable[..., Any]
) -> None:
    result = run_in_process([ROLE, "--SourceIdentity", "alice"], environ)
    assert result.returncode == 0, result.stderr
    [call] = assume_role_calls(sts)
    assert call.params["RoleSessionName"] == "alice"


# --- running a command --------------------------------------------------------------------


def test_command_runs_with_the_credentials_and_region(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    result = run([ROLE, "--region", "eu-west-2", "--", *PRINT_AWS_ENVIRON], environ)
    assert (result.returncode, result.stderr) == (0, "")

    [call] = assume_role_calls(sts)
    assert call.expiration is not None
    child = json.loads(result.stdout)  # only the command's output on stdout
    assert child["AWS_ACCESS_KEY_ID"] == call.issued_access_key_id
    assert child["AWS_SECRET_ACCESS_KEY"] != environ["AWS_SECRET_ACCESS_KEY"]
    assert child["AWS_SESSION_TOKEN"]
    # botocore's name for the expiry (the sync CLI's plural one is for --env only)
    assert child["AWS_CREDENTIAL_EXPIRATION"] == utc(call.expiration)
    assert "AWS_CREDENTIALS_EXPIRATION" not in child
    assert child["AWS_REGION"] == child["AWS_DEFAULT_REGION"] == "eu-west-2"


# What a shell may hold from an earlier role, profile, container or web identity: each
# could make the command's SDK use other credentials, or break the ones it is given.
OUTSIDE_CREDENTIAL_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "AKIAOUTSIDESTALE0001",
    "AWS_SECRET_ACCESS_KEY": "outside-stale-secret",
    "AWS_SESSION_TOKEN": "outside-stale-session-token",
    "AWS_SECURITY_TOKEN": "outside-stale-security-token",  # botocore reads it first
    "AWS_CREDENTIAL_EXPIRATION": "2020-01-01T00:00:00Z",  # long past
    "AWS_CREDENTIALS_EXPIRATION": "2020-01-01T00:00:00Z",
    "AWS_SESSION_EXPIRATION": "2020-01-01T00:00:00Z",
    "AWS_ACCOUNT_ID": "999999999999",
    "AWS_PROFILE": "outside",  # a profile that does not exist
    "AWS_DEFAULT_PROFILE": "outside",
    "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/Outside",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/outside/token",
    "AWS_ROLE_SESSION_NAME": "outside",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/outside",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/outside",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "outside-token",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/nonexistent/outside/authorization",
    "AWS_CREDENTIAL_FILE": "/nonexistent/outside/ec2-credentials",
}
# A command that asks STS who it is with botocore's default chain, and lists its AWS_*.
PRINT_CALLER_ARN_AND_AWS_NAMES = [
    sys.executable,
    "-c",
    "import json, os, botocore.session; "
    "arn = botocore.session.get_session().create_client('sts').get_caller_identity()['Arn']; "
    "print(json.dumps([arn, sorted(k for k in os.environ if k[:4] == 'AWS_')]))",
]


@pytest.mark.parametrize("outside", ["stale expiry", "every credential variable"])
def test_command_gets_only_the_assumed_credentials(
    sts: LoopbackSTS, environ: dict[str, str], outside: str
) -> None:
    """Nothing from the outer environment that could choose or break credentials reaches
    the command (a real botocore in a real child process): before, a stale outer
    AWS_CREDENTIAL_EXPIRATION made its botocore refuse the fresh credentials."""
    # The CLI's own parent comes from --profile, which botocore reads instead of the
    # environment's credential variables; the command must see none of those.
    key, secret = sts.root_credentials
    del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    Path(environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[dev]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    )
    if outside == "stale expiry":
        environ["AWS_CREDENTIAL_EXPIRATION"] = "2020-01-01T00:00:00Z"
    else:
        environ.update(OUTSIDE_CREDENTIAL_VARIABLES)
    args = ["--profile", "dev", "--RoleSessionName", "only-these", ROLE]
    args += ["--", *PRINT_CALLER_ARN_AND_AWS_NAMES]
    result = run(args, environ, known_secrets=[sts.root_credentials[1]])
    assert (result.returncode, result.stderr) == (0, ""), result.stderr[-2000:]
    arn, names = json.loads(result.stdout)
    assert arn == "arn:aws:sts::123456789012:assumed-role/Reader/only-these"
    credential_names = set(names) & {*OUTSIDE_CREDENTIAL_VARIABLES, "AWS_CREDENTIAL_EXPIRATION"}
    assert credential_names == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
    }


def test_command_gets_the_parent_region_and_acts_as_the_role(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    result = run([ROLE, "--RoleSessionName", "as-role", "--", *PRINT_CALLER_ARN], environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "arn:aws:sts::123456789012:assumed-role/Reader/as-role"


def test_command_exit_code_and_arguments_pass_through(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    script = "import sys; print(sys.argv[1:]); sys.exit(7)"
    result = run([ROLE, "--", sys.executable, "-c", script, "--json", "--", "x y"], environ)
    assert result.returncode == 7
    assert result.stdout.strip() == "['--json', '--', 'x y']"
    assert result.stderr == ""


def test_command_not_found(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    result = run([ROLE, "--", "no-such-command-aio-arl"], environ)
    assert result.returncode == 127
    assert result.stdout == ""
    assert "no-such-command-aio-arl" in result.stderr


# --- chaining, region, endpoint, profile --------------------------------------------------


def test_two_roles_chain_and_options_apply_to_the_last(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    result = run(["--json", "--ExternalId=for-second", ROLE, SECOND_ROLE], environ)
    assert (result.returncode, result.stderr) == (0, "")

    first, second = assume_role_calls(sts)
    assert first.params["RoleArn"] == ROLE
    assert first.caller_arn == sts.root_arn
    assert "ExternalId" not in first.params
    assert second.params["RoleArn"] == SECOND_ROLE
    assert second.access_key_id == first.issued_access_key_id  # signed as the first role
    assert second.params["ExternalId"] == "for-second"
    assert json.loads(result.stdout)["AccessKeyId"] == second.issued_access_key_id


def test_endpoint_url_applies_to_every_call_of_the_chain(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    del environ["AWS_ENDPOINT_URL_STS"]
    args = ["--endpoint-url", sts.endpoint_url, ROLE, SECOND_ROLE, "--", *PRINT_AWS_ENVIRON]
    result = run(args, environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert [c.params["RoleArn"] for c in assume_role_calls(sts)] == [ROLE, SECOND_ROLE]
    assert json.loads(result.stdout)["AWS_ENDPOINT_URL_STS"] == sts.endpoint_url


def test_profile_supplies_credentials_and_region(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    key, secret = sts.root_credentials
    del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    del environ["AWS_DEFAULT_REGION"]
    Path(environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        f"[dev]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    )
    Path(environ["AWS_CONFIG_FILE"]).write_text("[profile dev]\nregion = ap-southeast-2\n")
    environ["AWS_PROFILE"] = "dev"

    result = run(
        ["--profile", "dev", ROLE, "--", *PRINT_AWS_ENVIRON], environ, known_secrets=[secret]
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert [c.caller_arn for c in assume_role_calls(sts)] == [sts.root_arn]
    assert json.loads(result.stdout)["AWS_REGION"] == "ap-southeast-2"

    result = run(["--profile", "missing", ROLE], environ)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith("aio-assume-role: Unable to locate credentials")
    assert "missing" in result.stderr


def test_credential_process_profile(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    """A plain aiobotocore session reads credentials from ``credential_process``."""
    command = f"{CLI} --json --RoleSessionName via-process {ROLE}"
    Path(environ["AWS_CONFIG_FILE"]).write_text(
        f"[profile assumed]\ncredential_process = {command}\nregion = us-east-1\n"
    )
    script = textwrap.dedent(
        """
        import asyncio
        from aiobotocore.session import AioSession

        async def main():
            session = AioSession(profile="assumed")
            async with session.create_client("sts") as client:
                print((await client.get_caller_identity())["Arn"])

        asyncio.run(main())
        """
    )
    result = run(["-c", script], environ, program=(sys.executable,))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "arn:aws:sts::123456789012:assumed-role/Reader/via-process"
    assert len(assume_role_calls(sts)) == 1


# --- errors -------------------------------------------------------------------------------


def test_no_credentials_exits_3(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    result = run([ROLE], environ)
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == "aio-assume-role: Unable to locate credentials\n"
    assert assume_role_calls(sts) == []


def test_assume_role_error_exits_4(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    sts.fail_next("access_denied")
    result = run([ROLE, "--", *PRINT_AWS_ENVIRON], environ)
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr.startswith("aio-assume-role: Error when assuming role [AccessDenied]: ")
    assert ROLE in result.stderr
    assert result.stderr.count("\n") == 1
    assert len(assume_role_calls(sts)) == 1  # no retry of a permanent error


def test_unknown_key_exits_4(
    sts: LoopbackSTS, environ: dict[str, str], run_in_process: Callable[..., Any]
) -> None:
    environ["AWS_ACCESS_KEY_ID"] = "AKIAUNKNOWNKEY000000"
    result = run_in_process([ROLE], environ)
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr.startswith("aio-assume-role: Error when assuming role [")


def test_unparsable_response_exits_4_without_quoting_it(
    sts: LoopbackSTS, environ: dict[str, str], run_in_process: Callable[..., Any]
) -> None:
    sts.fail_next("malformed", 3)  # every try of the one refresh
    result = run_in_process([ROLE], environ)
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr.startswith("aio-assume-role: Error when assuming role: ")
    assert result.stderr.count("\n") == 1
    assert "not an XML document" not in result.stderr  # the body the server sent


BAD_INPUT = {
    "invalid-json-policy": [ROLE, "--Policy", "{not json"],
    "policy-not-object": [ROLE, "--Policy", "[1, 2]"],
    "additional-kwargs-not-object": [ROLE, "--additional-kwargs", '"x"'],
    "policy-arns-json-number": [ROLE, "--PolicyArns", "42"],
    "tags-without-equals": [ROLE, "--Tags", "team"],
    "transitive-keys-object": [ROLE, "--TransitiveTagKeys", '{"a": 1}'],
    "duration-not-int": [ROLE, "--DurationSeconds", "ten"],
    "unknown-option": [ROLE, "--NoSuchOption", "x"],
    "abbreviated-option": [ROLE, "--Exte", "x"],
    "no-role": ["--json"],
    "env-and-json": [ROLE, "--env", "--json"],
    "format-with-command": ["--json", ROLE, "--", "true"],
    "nothing-after-dashes": [ROLE, "--"],
    "bad-arn": ["not-an-arn"],
    "bad-second-arn": [ROLE, "arn:aws:iam::123:role/x"],
    "duration-too-short": [ROLE, "--DurationSeconds", "10"],
    "bad-session-name": [ROLE, "--RoleSessionName", "has spaces!"],
    "unknown-additional-kwarg": [ROLE, "--additional-kwargs", '{"NoSuchParameter": 1}'],
    "mfa-code-without-terminal": [ROLE, "--SerialNumber", "arn:aws:iam::123456789012:mfa/a"],
}


@pytest.mark.parametrize("args", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(
    sts: LoopbackSTS,
    environ: dict[str, str],
    run_in_process: Callable[..., Any],
    args: list[str],
) -> None:
    result = run_in_process(args, environ)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("aio-assume-role: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert sts.calls == []  # rejected before any network call


def test_bad_input_from_the_console_script(sts: LoopbackSTS, environ: dict[str, str]) -> None:
    for args, message in [
        ([ROLE, "--NoSuchOption", "x"], "unrecognized arguments: --NoSuchOption x"),
        ([ROLE, "--DurationSeconds", "10"], "DurationSeconds"),
        ([ROLE, "--SerialNumber", "arn:aws:iam::123456789012:mfa/a"], "needs --TokenCode"),
    ]:
        result = run(args, environ)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.startswith("aio-assume-role: error: ")
        assert result.stderr.count("\n") == 1
        assert message in result.stderr
    assert sts.calls == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_mfa_code_is_prompted_for_on_the_terminal(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    import pty

    serial = "arn:aws:iam::123456789012:mfa/alice"
    pid, terminal = pty.fork()
    if pid == 0:  # pragma: no cover - the child process
        os.execve(str(CLI), [str(CLI), "--json", "--SerialNumber", serial, ROLE], environ)

    def read_until(marker: bytes, output: bytearray) -> None:
        deadline = time.monotonic() + HANG_SECONDS
        while marker not in output:
            ready, _, _ = select.select([terminal], [], [], deadline - time.monotonic())
            if not ready:
                raise AssertionError(f"timed out waiting for {marker!r}; got {bytes(output)!r}")
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"no {marker!r} before the end; got {bytes(output)!r}")
            output.extend(chunk)

    output = bytearray()
    try:
        read_until(f"MFA code for {serial}: ".encode(), output)
        os.write(terminal, b"654321\n")
        read_until(b'"Expiration"', output)
        read_until(b"}", output)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"654321" not in output  # not echoed
    [call] = assume_role_calls(sts)
    assert call.params["SerialNumber"] == serial
    assert call.params["TokenCode"] == "654321"


# --- moto's STS server --------------------------------------------------------------------


@pytest.fixture
def moto_environ(moto_server: MotoServer, tmp_path: Path) -> dict[str, str]:
    """A clean environment whose STS is moto's (started once per test session)."""
    return clean_environ(tmp_path, moto_server.environ())


@pytest.mark.moto
def test_moto_env_and_json(moto_environ: dict[str, str]) -> None:
    result = run(["--DurationSeconds", "1800", ROLE], moto_environ)
    assert (result.returncode, result.stderr) == (0, "")
    variables = parse_env_output(result.stdout)
    assert list(variables)[:3] == [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    expiration = datetime.strptime(variables["AWS_CREDENTIALS_EXPIRATION"], "%Y-%m-%dT%H:%M:%SZ")
    lifetime = expiration.replace(tzinfo=timezone.utc).timestamp() - time.time()
    assert 1700 < lifetime <= 1800  # moto issues exactly DurationSeconds

    result = run(["--json", ROLE], moto_environ)
    assert (result.returncode, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert data["Version"] == 1
    assert data["AccessKeyId"] != variables["AWS_ACCESS_KEY_ID"]
    assert EXPIRATION_RE.fullmatch(data["Expiration"])


@pytest.mark.moto
def test_moto_chain_and_command(moto_environ: dict[str, str]) -> None:
    args = ["--RoleSessionName", "moto-chain", "--Tags", "team=data", ROLE, SECOND_ROLE]
    result = run([*args, "--", *PRINT_CALLER_ARN], moto_environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "arn:aws:sts::210987654321:assumed-role/Deployer/moto-chain"


@pytest.mark.moto
def test_moto_credential_process(moto_environ: dict[str, str]) -> None:
    command = f"{CLI} --json --RoleSessionName via-process {ROLE}"
    Path(moto_environ["AWS_CONFIG_FILE"]).write_text(
        f"[profile assumed]\ncredential_process = {command}\n"
    )
    script = (
        "import botocore.session; "
        "s = botocore.session.Session(profile='assumed'); "
        "print(s.create_client('sts').get_caller_identity()['Arn'])"
    )
    result = run(["-c", script], moto_environ, program=(sys.executable,))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "arn:aws:sts::123456789012:assumed-role/Reader/via-process"


@pytest.mark.moto
def test_moto_bad_input_and_no_credentials(moto_environ: dict[str, str]) -> None:
    result = run([ROLE, "--DurationSeconds", "60"], moto_environ)
    assert (result.returncode, result.stdout) == (2, "")
    del moto_environ["AWS_ACCESS_KEY_ID"], moto_environ["AWS_SECRET_ACCESS_KEY"]
    result = run([ROLE], moto_environ)
    assert (result.returncode, result.stdout) == (3, "")


# --- hardening (issue 12): one line and the documented exit code, always -----------------

DEEP = "[" * 20_000 + "]" * 20_000  # (one argument may be at most 128 KiB)
DEEP_OBJECT = '{"a": ' * 10_000 + "1" + "}" * 10_000

ONE_LINE_USAGE_ERRORS = {
    "deep --Policy": [ROLE, "--Policy", DEEP_OBJECT],
    "deep --PolicyArns": [ROLE, "--PolicyArns", DEEP],
    "deep --Tags": [ROLE, "--Tags", DEEP],
    "deep --TransitiveTagKeys": [ROLE, "--TransitiveTagKeys", DEEP],
    "deep --additional-kwargs": [ROLE, "--additional-kwargs", DEEP_OBJECT],
    "unclosed IPv6 endpoint": [ROLE, "--endpoint-url", "http://[::1"],
    "endpoint port out of range": [ROLE, "--endpoint-url", "http://127.0.0.1:99999"],
    "region with a newline": [ROLE, "--region", "us-east-1\n"],
    "region with a space": [ROLE, "--region", "us-east-1 "],
    # options that narrow permissions: empty is refused, nothing is sent (item 13)
    "empty --PolicyArns": [ROLE, "--PolicyArns", ""],
    "commas-only --PolicyArns": [ROLE, "--PolicyArns", ","],
    "empty JSON --PolicyArns": [ROLE, "--PolicyArns", "[]"],
    "empty --Policy": [ROLE, "--Policy", ""],
    "empty PolicyArns in --additional-kwargs": [ROLE, "--additional-kwargs", '{"PolicyArns": []}'],
    "empty Policy in --additional-kwargs": [ROLE, "--additional-kwargs", '{"Policy": ""}'],
}


@pytest.mark.parametrize(
    "args", list(ONE_LINE_USAGE_ERRORS.values()), ids=list(ONE_LINE_USAGE_ERRORS)
)
def test_hostile_input_is_one_usage_line_and_nothing_is_sent(
    sts: LoopbackSTS, environ: dict[str, str], args: list[str]
) -> None:
    result = run(args, environ)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-1000:]
    assert result.stderr.startswith("aio-assume-role: error: ")
    assert result.stderr.count("\n") == 1, result.stderr[-1000:]
    assert len(result.stderr) < 1000
    assert sts.calls == []


def test_empty_policy_arns_says_why(
    sts: LoopbackSTS, environ: dict[str, str], run_in_process: Callable[..., Any]
) -> None:
    result = run_in_process([ROLE, "--PolicyArns", ""], environ)
    assert result.returncode == 2
    assert "--PolicyArns" in result.stderr
    assert "must not be empty" in result.stderr


BROKEN_PROFILES = {
    "malformed config": ("[default\nregion = us-east-1\n", "", "Unable to parse config file"),
    "binary config": ("\udcff\udcfe\x00garbage", "", "Unable to parse config file"),
    "malformed credentials": ("", "[default\naws_access_key_id = A\n", "Unable to parse"),
    "source_profile loop": (
        textwrap.dedent(
            """
            [profile a]
            source_profile = b
            role_arn = arn:aws:iam::123456789012:role/A
            [profile b]
            source_profile = a
            role_arn = arn:aws:iam::123456789012:role/B
            """
        ),
        "",
        "Infinite loop",
    ),
}


@pytest.mark.parametrize(
    ("config", "credentials", "message"), list(BROKEN_PROFILES.values()), ids=list(BROKEN_PROFILES)
)
def test_a_broken_profile_exits_3_with_one_line(
    sts: LoopbackSTS,
    environ: dict[str, str],
    tmp_path: Path,
    config: str,
    credentials: str,
    message: str,
) -> None:
    Path(environ["AWS_CONFIG_FILE"]).write_bytes(config.encode("utf-8", "surrogateescape"))
    Path(environ["AWS_SHARED_CREDENTIALS_FILE"]).write_text(credentials)
    profile = ["--profile", "a"] if "loop" in message.lower() else []
    if credentials:  # the credentials file is read only when the environment has no key
        del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    result = run([*profile, ROLE], environ)
    assert (result.returncode, result.stdout) == (3, ""), result.stderr[-2000:]
    assert result.stderr.startswith("aio-assume-role: Unable to locate credentials: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert sts.calls == []


# Already-expired credentials (item 14): a clock that runs ahead of STS's. The CLI's own
# clock is moved; the library and the loopback STS keep the real one.
_CLOCK_AHEAD = textwrap.dedent(
    """
    import sys, time
    from aio_assume_role_lib import _cli
    _cli._now = lambda: time.time() + 2 * 3600
    sys.exit(_cli.main())
    """
)


@pytest.mark.parametrize("output", [["--env"], ["--json"], ["--", "true"]])
def test_already_expired_credentials_exit_4_and_blame_the_clock(
    sts: LoopbackSTS, environ: dict[str, str], output: list[str]
) -> None:
    result = run([ROLE, *output], environ, program=(sys.executable, "-c", _CLOCK_AHEAD))
    assert (result.returncode, result.stdout) == (4, ""), result.stderr
    assert result.stderr.startswith("aio-assume-role: Error when assuming role: ")
    assert "expired" in result.stderr
    assert "clock" in result.stderr
    assert result.stderr.count("\n") == 1


# Signals in `-- COMMAND` mode (item 15): each one a shell user may send reaches COMMAND
# once, and aio-assume-role exits with COMMAND's status.

_SIGNAL_NOTER = textwrap.dedent(
    """
    import os, signal, sys
    def note(signum, frame):
        print("got", signal.Signals(signum).name, flush=True)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGWINCH"):
        signal.signal(getattr(signal, name), note)
    signal.signal(signal.SIGUSR2, lambda signum, frame: sys.exit(7))
    print("ready", os.getpid(), flush=True)
    while True:
        signal.pause()
    """
)
_SLEEPER = textwrap.dedent(
    """
    import os, time
    print("ready", os.getpid(), flush=True)
    time.sleep(60)
    """
)
needs_signals = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


class _Lines:
    """Lines from a pipe or a terminal, with a timeout; for a running CLI's COMMAND."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, timeout: float = HANG_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"no line within {timeout} s; got {self.buffer!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the terminal's other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"end of output; got {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().strip()

    def until(self, prefix: str) -> str:
        """The next line with ``prefix`` in it, from there (a terminal echoes "^C" first)."""
        while prefix not in (line := self.next()):
            pass
        return line[line.index(prefix) :]


def _start_cli(environ: dict[str, str], script: str, **popen: Any) -> subprocess.Popen[bytes]:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(
        [str(CLI), ROLE, "--", sys.executable, "-c", script], env=environ, **popen
    )


def _stop(process: subprocess.Popen[bytes], command_pid: int | None) -> None:
    """Clean up after a failed test: COMMAND may have been orphaned."""
    for pid in (process.pid, command_pid):
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    process.wait(timeout=HANG_SECONDS)


@needs_signals
def test_every_signal_a_shell_user_sends_reaches_the_command_once(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    cli = _start_cli(environ, _SIGNAL_NOTER)
    assert cli.stdout is not None
    lines, command_pid = _Lines(cli.stdout.fileno()), None
    try:
        command_pid = int(lines.until("ready").split()[1])
        for signum in (
            signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
            signal.SIGUSR1, signal.SIGWINCH, signal.SIGINT,
        ):  # fmt: skip
            os.kill(cli.pid, signum)  # to aio-assume-role alone, as `kill PID` does
            assert lines.next() == f"got {signal.Signals(signum).name}"
        os.kill(cli.pid, signal.SIGUSR2)  # COMMAND exits 7 on this one
        assert cli.wait(timeout=HANG_SECONDS) == 7
        assert cli.stdout.read() == b""  # no signal arrived twice
    finally:
        _stop(cli, command_pid)


@needs_signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP])
def test_a_command_killed_by_a_forwarded_signal_gives_128_plus_its_number(
    sts: LoopbackSTS, environ: dict[str, str], signum: int
) -> None:
    cli = _start_cli(environ, _SLEEPER)
    assert cli.stdout is not None
    command_pid = None
    try:
        command_pid = int(_Lines(cli.stdout.fileno()).until("ready").split()[1])
        os.kill(cli.pid, signum)
        assert cli.wait(timeout=HANG_SECONDS) == 128 + signum
        with pytest.raises(ProcessLookupError):  # not orphaned: it is gone
            _wait_gone(command_pid)
    finally:
        _stop(cli, command_pid)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + HANG_SECONDS
    while time.monotonic() < deadline:
        os.kill(pid, 0)  # raises ProcessLookupError once it is gone (and reaped)
        time.sleep(0.02)


_ON_A_TERMINAL = textwrap.dedent(
    """
    import fcntl, os, signal, sys, termios
    os.setsid()  # a session of its own, with the terminal on fd 0 as its controlling one
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # What a shell gives the job it runs in the foreground. A test run started in the
    # background (`cmd &` in a script) has SIGINT and SIGQUIT ignored, and an ignored
    # signal stays ignored across exec: Ctrl-C would then never reach the command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


@needs_signals
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux terminal semantics")
def test_terminal_signals_reach_the_command_once_not_twice(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    """Ctrl-C and a resize go to the terminal's whole foreground group, COMMAND included:
    passing them on too would deliver them twice (a second Ctrl-C means "stop now")."""
    import fcntl
    import pty
    import struct
    import termios

    main_fd, terminal_fd = pty.openpty()
    cli = subprocess.Popen(
        [sys.executable, "-c", _ON_A_TERMINAL, str(CLI), ROLE, "--", sys.executable, "-c",
         _SIGNAL_NOTER],
        env=environ, stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd,
    )  # fmt: skip
    os.close(terminal_fd)
    lines, command_pid = _Lines(main_fd), None
    try:
        command_pid = int(lines.until("ready").split()[1])
        os.write(main_fd, b"\x03")  # Ctrl-C
        assert lines.until("got") == "got SIGINT"
        fcntl.ioctl(main_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        assert lines.until("got") == "got SIGWINCH"
        os.kill(cli.pid, signal.SIGUSR1)  # one sent to aio-assume-role alone: passed on
        assert lines.until("got") == "got SIGUSR1"
        os.kill(cli.pid, signal.SIGUSR2)
        assert cli.wait(timeout=HANG_SECONDS) == 7
        rest = b""
        with contextlib.suppress(AssertionError):
            while True:
                rest += lines.next(timeout=1).encode() + b"\n"
        assert b"got" not in rest + lines.buffer  # nothing arrived twice
    finally:
        os.close(main_fd)
        _stop(cli, command_pid)


# --- an MFA prompt nobody answers (issue 20 D7) ---------------------------------------------


@pytest.mark.anyio
async def test_the_mfa_prompt_is_given_up_at_its_allowance_and_keeps_nothing_alive(
    sts: LoopbackSTS, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line's own prompt, on a child's real fetch path with time by hand
    (``tests/_hand_clock_fetch.py``): when its allowance ends, the refresh ends too, and
    the prompt left on the terminal is in a daemon thread, which no exit waits for.
    Before: getpass ran in a worker thread that a cancelled refresh waited for, so the
    refresh ended only when someone pressed Enter, and the process stayed alive until
    then."""
    unanswered = UnansweredPrompt("123456\n")
    monkeypatch.setattr(_cli.getpass, "getpass", unanswered)  # nobody at the terminal
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    before = set(threading.enumerate())
    clock = ManualClock(wall=time.time())
    serial = "arn:aws:iam::123456789012:mfa/alice"
    child = hand_clock_child(
        StsClients(AioSession()),
        clock,
        ROLE,
        SerialNumber=serial,
        TokenCode=_cli._token_code_prompt(serial),
        policy=RefreshPolicy(token_code_timeout_seconds=60.0),
    )
    try:
        await first_fetch_given_up(child, clock, unanswered, 60.0)
        assert not unanswered.answer.is_set()  # the prompt is still up, in a daemon thread
        assert [thread.daemon for thread in unanswered.threads] == [True]
        alive = [t for t in threading.enumerate() if not t.daemon and t not in before]
        assert alive == []  # nothing the interpreter would wait for at exit
        assert sts.calls == []
    finally:
        unanswered.answer.set()


@needs_signals
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux terminal semantics")
def test_an_interrupted_mfa_prompt_exits_and_gives_the_terminal_its_echo_back(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    """Ctrl-C at the prompt: the process ends with 130, and the terminal echoes again
    (getpass turned echo off and cannot turn it back on from a thread the exit ends).
    Before: "interrupted" was printed and the process stayed alive, its worker thread
    in getpass, until someone pressed Enter."""
    import pty
    import termios

    main_fd, terminal_fd = pty.openpty()
    assert termios.tcgetattr(terminal_fd)[3] & termios.ECHO
    serial = "arn:aws:iam::123456789012:mfa/alice"
    cli = subprocess.Popen(
        [sys.executable, "-c", _ON_A_TERMINAL, str(CLI), "--SerialNumber", serial, ROLE],
        env=environ, stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd,
    )  # fmt: skip
    output = b""
    try:
        deadline = time.monotonic() + HANG_SECONDS
        while f"MFA code for {serial}: ".encode() not in output:
            ready, _, _ = select.select([main_fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no prompt; got {output!r}"
            output += os.read(main_fd, 4096)
        assert not termios.tcgetattr(terminal_fd)[3] & termios.ECHO  # getpass turned it off
        os.write(main_fd, b"\x03")  # Ctrl-C
        assert cli.wait(timeout=HANG_SECONDS) == 130
        while select.select([main_fd], [], [], 0)[0]:
            output += os.read(main_fd, 4096)
        assert b"aio-assume-role: interrupted" in output
        assert termios.tcgetattr(terminal_fd)[3] & termios.ECHO  # echo is back
        assert sts.calls == []
    finally:
        _stop(cli, None)
        os.close(main_fd)
        os.close(terminal_fd)


# --- hardening (issue 19) and CLI habits (issue 24) ----------------------------------------


@pytest.mark.parametrize(
    "credential_process",
    [
        "/nonexistent/aio-arl-credential-helper",
        f"{sys.executable} -c \"print('this is not JSON')\"",
    ],
    ids=["not found", "unparsable output"],
)
def test_a_credential_process_that_gives_no_credentials_exits_3_with_one_line(
    sts: LoopbackSTS, environ: dict[str, str], credential_process: str
) -> None:
    """Before: a 61-line traceback and exit 1 (not found), exit 2 (unparsable)."""
    del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    Path(environ["AWS_CONFIG_FILE"]).write_text(
        f"[profile helper]\ncredential_process = {credential_process}\n"
    )
    result = run(["--profile", "helper", ROLE], environ)
    assert (result.returncode, result.stdout) == (3, ""), result.stderr[-2000:]
    assert result.stderr.startswith("aio-assume-role: Unable to locate credentials: ")
    assert result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "this is not JSON" not in result.stderr  # the helper's output is not quoted
    assert sts.calls == []


@pytest.mark.parametrize(
    "args",
    [
        [ROLE, "--", "echo", "a\x00b"],
        [ROLE, "--", "ech\x00o"],
        [ROLE, "--ExternalId", "ext\x00ernal"],
        [ROLE, "--endpoint-url", "http://127.0.0.1:9/\x00"],
    ],
    ids=["in an argument", "in the program", "in an option", "in --endpoint-url"],
)
def test_a_nul_character_exits_2_with_one_line_before_any_credentials(
    sts: LoopbackSTS, environ: dict[str, str], args: list[str]
) -> None:
    """main(argv) with a NUL (no OS argv can hold one): before, a ValueError escaped
    main() from Popen, with the issued credentials in the raising frame's locals."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(args)
    assert (code, stdout.getvalue()) == (2, "")
    assert stderr.getvalue().startswith("aio-assume-role: error: ")
    assert "NUL" in stderr.getvalue()
    assert stderr.getvalue().count("\n") == 1
    assert sts.calls == []  # refused before any credentials were fetched


def test_no_region_with_an_sts_endpoint_exits_2_naming_region(
    sts: LoopbackSTS, environ: dict[str, str]
) -> None:
    """Before: "You must specify a region." and exit 4 ("AssumeRole failed"), no call."""
    del environ["AWS_DEFAULT_REGION"]
    result = run([ROLE], environ)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("aio-assume-role: error: no region to call STS in")
    assert "--region" in result.stderr
    assert "AWS_DEFAULT_REGION" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sts.calls == []

    result = run(["--region", "eu-west-1", ROLE], environ)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("spelled", "meant"),
    [
        ("--role-session-name", "--RoleSessionName"),
        ("--role_session_name=x", "--RoleSessionName"),
        ("--rolesessionname", "--RoleSessionName"),
        ("--duration-seconds", "--DurationSeconds"),
        ("--policy-arns", "--PolicyArns"),
        ("--additional_kwargs", "--additional-kwargs"),
        ("--additionalKwargs", "--additional-kwargs"),
        ("--EndpointUrl", "--endpoint-url"),
        ("--Profile", "--profile"),
    ],
)
def test_another_spelling_of_an_option_names_the_option(
    environ: dict[str, str], run_in_process: Callable[..., Any], spelled: str, meant: str
) -> None:
    args = [ROLE, spelled] if "=" in spelled else [ROLE, spelled, "value"]
    result = run_in_process(args, environ)
    assert (result.returncode, result.stdout) == (2, "")
    assert f"did you mean {meant}?" in result.stderr
    assert result.stderr.count("\n") == 1
    camel_case = meant[2:3].isupper()
    assert ("CamelCase" in result.stderr) == camel_case


@pytest.mark.parametrize(
    ("region", "suggestion"),
    [("eu-wset-1", "eu-west-1"), ("xx-nowhere-9", None)],
)
def test_a_region_botocore_does_not_know_is_a_warning(
    sts: LoopbackSTS,
    environ: dict[str, str],
    run_in_process: Callable[..., Any],
    region: str,
    suggestion: str | None,
) -> None:
    result = run_in_process(["--region", region, "--json", ROLE], environ)
    assert result.returncode == 0  # a warning, not an error: botocore may be older
    assert json.loads(result.stdout)["AccessKeyId"]
    [warning] = result.stderr.splitlines()
    assert warning.startswith(f"aio-assume-role: warning: --region {region!r} is not a region")
    assert (f"did you mean {suggestion}?" in warning) == (suggestion is not None)

    known = run_in_process(["--region", "ap-southeast-2", "--json", ROLE], environ)
    assert (known.returncode, known.stderr) == (0, "")


# Errors whose library message speaks to Python callers (a function to call, a mapping,
# a callable, None): the CLI says what to type instead.
PYTHON_WORDED = {
    "a role name for ROLE_ARN": ([["Reader"]], "ROLE_ARN is the role's whole ARN"),
    "TokenCode of another type": (
        [[ROLE, "--additional-kwargs"],
         ['{"SerialNumber": "arn:aws:iam::123456789012:mfa/a", "TokenCode": 123456}']],
        "6 digits (--TokenCode)",
    ),
    "Policy that is not JSON": (
        [[ROLE, "--additional-kwargs", '{"Policy": "not json"}']], "a JSON object (--Policy)"
    ),
    "Policy with text beyond Latin-1": (
        [[ROLE, "--additional-kwargs", '{"Policy": "{\\"Sid\\": \\"\\u20ac\\"}"}']],
        "(--Policy escapes the rest)",
    ),
    "an empty --Policy": ([[ROLE, "--Policy", "{}"]], "leave the option out"),
    "an MFA device in --additional-kwargs and no code": (
        [[ROLE, "--additional-kwargs", '{"SerialNumber": "arn:aws:iam::123456789012:mfa/a"}']],
        "needs --TokenCode",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("parts", "wording"), list(PYTHON_WORDED.values()), ids=list(PYTHON_WORDED)
)
def test_error_hints_name_cli_options_not_python(
    sts: LoopbackSTS,
    environ: dict[str, str],
    run_in_process: Callable[..., Any],
    parts: list[list[str]],
    wording: str,
) -> None:
    result = run_in_process([part for group in parts for part in group], environ)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert wording in result.stderr
    assert not re.search(r"\w\(\)", result.stderr), result.stderr  # get_role_arn()
    for python in ("callable", "mapping", "json.dumps", "None", "additional_kwargs"):
        assert python not in result.stderr
    assert sts.calls == []

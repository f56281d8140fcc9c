"""The ``aio-assume-role`` command line (also ``python -m aio_assume_role_lib``).

It does what ``python -m aws_assume_role_lib`` does, with the same options, output and
exit codes, and also runs a command with the credentials, chains roles, and takes
``--region`` and ``--endpoint-url``. It uses only the package's public API, and what it
shares with the library (one rule, one place): the region-name check ``assume_role()``
uses, the list of credential variables (``_environ``), and the Python-only phrases of
the validation messages, which it words for a command line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import difflib
import getpass
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn, cast

import anyio
import anyio.from_thread
import anyio.to_thread
import botocore
import botocore.exceptions
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from aio_assume_role_lib import __version__, assume_role, serve_container_credentials
from aio_assume_role_lib._credentials import AssumeRoleCredentials
from aio_assume_role_lib._environ import CREDENTIAL_VARIABLES
from aio_assume_role_lib._names import is_region_name
from aio_assume_role_lib._params import PYTHON_WORDING

__all__ = ["main"]

PROG = "aio-assume-role"

EXIT_USAGE = 2
EXIT_NO_CREDENTIALS = 3
EXIT_ASSUME_ROLE_FAILED = 4
# The shell's conventions for a command that cannot be run.
EXIT_COMMAND_NOT_EXECUTABLE = 126
EXIT_COMMAND_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

# The sync library's format: UTC, no fraction, 'Z'.
_EXPIRATION_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_DESCRIPTION = """\
Assume an IAM role and print its credentials, or run a command with them.

With several ROLE_ARNs, each role is assumed with the credentials of the one before
it (role chaining), starting from the credentials of --profile (or the default
credential chain). The AssumeRole options (--RoleSessionName ... --additional-kwargs)
apply to the LAST role only; the roles before it are assumed with default parameters.
--region and --endpoint-url apply to every AssumeRole call of the chain.

Without a COMMAND, the credentials are printed: as environment variables (--env, the
default) or in the credential_process format (--json). After `--`, COMMAND runs with
the credentials (and AWS_REGION/AWS_DEFAULT_REGION, when a region is known) in its
environment, and its exit code is aio-assume-role's.
"""

_EPILOG = """\
examples:
  # put a role's credentials into the current shell
  export $(aio-assume-role arn:aws:iam::123456789012:role/Reader)

  # run a command as the role
  aio-assume-role arn:aws:iam::123456789012:role/Reader -- aws s3 ls

  # chain two roles; --ExternalId and --DurationSeconds apply to Deployer only
  aio-assume-role --profile hub --ExternalId 8f2c --DurationSeconds 900 \\
      arn:aws:iam::111111111111:role/Hub arn:aws:iam::222222222222:role/Deployer \\
      -- ./deploy.sh --stage prod

  # session policy, tags and policy ARNs
  aio-assume-role --Tags team=data,env=dev --TransitiveTagKeys team \\
      --PolicyArns arn:aws:iam::aws:policy/ReadOnlyAccess \\
      --Policy '{"Version": "2012-10-17", "Statement": [...]}' ROLE_ARN

  # MFA: prompts for the code on the terminal (or pass --TokenCode 123456)
  aio-assume-role --SerialNumber arn:aws:iam::123456789012:mfa/alice ROLE_ARN -- bash

  # use it as a credential_process in ~/.aws/config
  [profile reader]
  credential_process = aio-assume-role --json --profile base arn:aws:iam::123456789012:role/Reader

exit codes:
  0         success; with a COMMAND, the COMMAND's exit code
  2         bad usage or invalid AssumeRole parameters (nothing on stdout), or no
            region for an STS endpoint URL
  3         no credentials to assume the first role with, a broken profile, or a
            credential_process that gave none
  4         AssumeRole failed, or its credentials had expired on arrival
  126, 127  COMMAND cannot be run, or is not found
"""


class _UsageError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


class _Failure(Exception):
    """An error reported as one line on stderr with its own exit code."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and the message on several lines; we print one.
        raise _UsageError(message)


# --- option values ------------------------------------------------------------------------


def _json_or_none(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except json.JSONDecodeError:
        return False, None
    except RecursionError:
        raise argparse.ArgumentTypeError("JSON value is nested too deeply") from None


def _json_object(text: str) -> dict[str, Any]:
    is_json, value = _json_or_none(text)
    if not is_json:
        raise argparse.ArgumentTypeError("must be a valid JSON object")
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("JSON value must be an object")
    return value


def _policy_arns(text: str) -> list[Any]:
    """``Arn1,Arn2``, a JSON list of ARNs or ``{"arn": ...}`` objects, or one such object.

    An empty value is an error, not an empty list: the session would get the role's
    full permissions, when what was meant (say, ``--PolicyArns "$ARNS"`` with the
    variable unset) was to narrow them.
    """
    is_json, value = _json_or_none(text)
    if not is_json:
        value = _comma_list(text)
    elif isinstance(value, dict):
        value = [value]
    elif not isinstance(value, list):
        raise argparse.ArgumentTypeError("JSON value must be a list or an object")
    if not value:
        raise argparse.ArgumentTypeError(_EMPTY_NARROWING_VALUE)
    return value


_EMPTY_NARROWING_VALUE = (
    "must not be empty: it narrows the session's permissions, and an empty value would "
    "leave the role's full permissions (leave the option out if that is what you want)"
)


def _tags(text: str) -> dict[str, Any] | list[Any]:
    """``Key1=Value1,Key2=Value2``, a JSON object, or a JSON list of {"Key", "Value"}."""
    is_json, value = _json_or_none(text)
    if is_json:
        if not isinstance(value, (dict, list)):
            raise argparse.ArgumentTypeError("JSON value must be an object or a list")
        return value
    tags = {}
    for item in text.split(","):
        key, equals, tag_value = item.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(
                f"expected Key=Value pairs separated by commas or a JSON object, got {item!r}"
            )
        tags[key] = tag_value
    return tags


def _string_list(text: str) -> list[Any]:
    """``Key1,Key2`` or a JSON list."""
    is_json, value = _json_or_none(text)
    if not is_json:
        return _comma_list(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError("JSON value must be a list")
    return value


def _comma_list(text: str) -> list[Any]:
    return [item for item in text.split(",") if item]


# --- parsing ------------------------------------------------------------------------------

# The option names are AssumeRole's parameter names, as in the sync library's CLI.
_ASSUME_ROLE_OPTIONS: tuple[tuple[str, Any, str | None, str | None], ...] = (
    # (parameter, type, metavar, help)
    (
        "RoleSessionName",
        str,
        "ROLE_SESSION_NAME",
        "default: SourceIdentity if given, else generated",
    ),
    ("PolicyArns", _policy_arns, "POLICY_ARNS", 'Arn1,Arn2, a JSON list, or {"arn": ...}'),
    ("Policy", _json_object, "POLICY", "session policy, a JSON object"),
    ("DurationSeconds", int, "DURATION_SECONDS", None),
    ("Tags", _tags, "TAGS", "Key1=Value1,Key2=Value2 or a JSON object"),
    ("TransitiveTagKeys", _string_list, "TRANSITIVE_TAG_KEYS", "Key1,Key2 or a JSON list"),
    ("ExternalId", str, "EXTERNAL_ID", None),
    ("SerialNumber", str, "SERIAL_NUMBER", "MFA device; prompts for the code if needed"),
    ("TokenCode", str, "TOKEN_CODE", "MFA code"),
    ("SourceIdentity", str, "SOURCE_IDENTITY", None),
)


_ASSUME_ROLE_PARAMETERS = frozenset(name for name, *_ in _ASSUME_ROLE_OPTIONS)


def _build_parser() -> _ArgumentParser:
    parser = _ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [options] ROLE_ARN [ROLE_ARN ...] [-- COMMAND [ARG ...]]",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "role_arns",
        nargs="+",
        metavar="ROLE_ARN",
        help="the role to assume; several: chain them, in order",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    source = parser.add_argument_group("where the first role is assumed from")
    source.add_argument("--profile", help="the AWS config profile to use")
    source.add_argument("--region", help="the region for STS and for COMMAND")
    source.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="the STS endpoint for every AssumeRole call (sets AWS_ENDPOINT_URL_STS)",
    )

    output = parser.add_argument_group("output (when no COMMAND is given)")
    formats = output.add_mutually_exclusive_group()
    formats.add_argument(
        "--env",
        action="store_const",
        const="env",
        dest="format",
        help="print as environment variables (default)",
    )
    formats.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="format",
        help="print credential_process-formatted JSON",
    )

    assume = parser.add_argument_group("AssumeRole parameters (for the last ROLE_ARN)")
    for name, value_type, metavar, help_text in _ASSUME_ROLE_OPTIONS:
        assume.add_argument(f"--{name}", type=value_type, metavar=metavar, help=help_text)
    assume.add_argument(
        "--additional-kwargs",
        type=_json_object,
        metavar="JSON",
        help="more AssumeRole parameters, a JSON object (the options above win)",
    )
    _add_container_options(parser)
    return parser


@dataclasses.dataclass(frozen=True)
class _Invocation:
    role_arns: list[str]
    profile: str | None
    region: str | None
    endpoint_url: str | None
    output_format: str
    command: list[str]
    assume_role_kwargs: dict[str, Any]
    mfa_serial_number: Any  # set when the MFA code is to be asked for on the terminal
    container: _ContainerOptions | None = None


def _parse(argv: Sequence[str]) -> _Invocation:
    arguments, command = list(argv), []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, command = arguments[:split], arguments[split + 1 :]
        if not command:
            raise _UsageError("expected a COMMAND after '--'")
    # A NUL ends a C string: no program can be given one (Popen would raise ValueError),
    # and no option value holds one. Refused before any credentials exist.
    for index, argument in enumerate(command):
        if "\x00" in argument:
            raise _UsageError(f"COMMAND argument {index} contains a NUL character")
    if any("\x00" in argument for argument in arguments):
        raise _UsageError("an argument contains a NUL character")

    parser = _build_parser()
    for argument in arguments:
        # argparse would turn the value of --region=-- into an empty list.
        if argument.startswith("--") and argument.endswith("=--"):
            raise _UsageError(f"{argument[:-3]} needs a value")
        _check_spelling(parser, argument)
    options = parser.parse_intermixed_args(arguments)
    if options.endpoint_url is not None and not _is_http_url(options.endpoint_url):
        raise _UsageError("--endpoint-url must be an http:// or https:// URL with a host")
    if options.region is not None:
        if not options.region:
            raise _UsageError("--region needs a value")
        if not is_region_name(options.region):
            raise _UsageError(
                f"--region {options.region[:80]!r} is not a valid region name "
                "(letters, digits and hyphens, e.g. eu-west-1)"
            )
    if command and options.format is not None:
        raise _UsageError(
            f"--{options.format} prints credentials; it cannot be used with a COMMAND"
        )

    assume_role_kwargs = {
        name: getattr(options, name)
        for name, *_ in _ASSUME_ROLE_OPTIONS
        if getattr(options, name) is not None
    }
    if options.additional_kwargs is not None:
        assume_role_kwargs["additional_kwargs"] = options.additional_kwargs
        if options.PolicyArns is None and options.additional_kwargs.get("PolicyArns") == []:
            raise _UsageError(f"PolicyArns in --additional-kwargs {_EMPTY_NARROWING_VALUE}")

    # An MFA device without a code: the code is asked for, whichever option named the
    # device (otherwise the first fetch would fail, telling to pass a Python callable).
    extra = options.additional_kwargs or {}
    mfa_serial_number = assume_role_kwargs.get("SerialNumber", extra.get("SerialNumber"))
    prompt_for_token_code = mfa_serial_number is not None and not (
        "TokenCode" in assume_role_kwargs or "TokenCode" in extra
    )
    if prompt_for_token_code and not (sys.stdin is not None and sys.stdin.isatty()):
        raise _UsageError(
            "an MFA --SerialNumber needs --TokenCode when standard input is not a terminal"
        )

    container = _container_options(options, command)
    return _Invocation(
        role_arns=options.role_arns,
        profile=options.profile,
        region=options.region,
        endpoint_url=options.endpoint_url,
        output_format=options.format or "env",
        command=command,
        assume_role_kwargs=assume_role_kwargs,
        mfa_serial_number=mfa_serial_number if prompt_for_token_code else None,
        container=container,
    )


def _spelling_key(option: str) -> str:
    return option.lstrip("-").replace("-", "").replace("_", "").lower()


def _check_spelling(parser: argparse.ArgumentParser, argument: str) -> None:
    """Name the option meant by another spelling of it (``--role-session-name``)."""
    if not argument.startswith("--") or argument == "--":
        return
    name = argument.split("=", 1)[0]
    known = [option for action in parser._actions for option in action.option_strings]
    if name in known:
        return
    meant = [option for option in known if _spelling_key(option) == _spelling_key(name)]
    if meant:
        how = ""
        if meant[0][2:] in _ASSUME_ROLE_PARAMETERS:
            how = " (AssumeRole options are spelled as AssumeRole's parameters, in CamelCase)"
        raise _UsageError(f"unrecognized option {name[:80]!r}: did you mean {meant[0]}?{how}")


def _is_http_url(text: str) -> bool:
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        return False
    return url.scheme in ("http", "https") and bool(url.hostname)


# --- assuming the roles -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Credentials:
    access_key: str
    secret_key: str
    token: str | None
    expiration: str | None
    region: str | None

    def __repr__(self) -> str:  # never show the secrets
        return f"_Credentials(access_key={self.access_key!r}, expiration={self.expiration!r})"


def _token_code_prompt(serial_number: str) -> Callable[[], str]:
    """The MFA code, asked for on the terminal.

    A sync callable, which the library runs in a daemon thread of its own and stops
    waiting for when the refresh's allowance ends (a late answer goes to the next
    refresh): a prompt nobody answers, timed out or interrupted, never keeps the process
    alive. getpass turns the terminal's echo off while it reads, and a thread ended by
    the process's exit cannot turn it back on: :func:`main` does (``_restore_terminals``).
    """

    def prompt() -> str:
        saved = _terminal_settings()
        try:
            return getpass.getpass(f"MFA code for {serial_number}: ").strip()
        finally:
            if saved is not None:
                with _terminal_lock:
                    del _saved_terminals[saved]
                    os.close(saved)

    return prompt


# The settings of the terminals that prompts in progress changed (descriptor -> settings).
_saved_terminals: dict[int, Any] = {}
_terminal_lock = threading.Lock()


def _terminal_settings() -> int | None:
    """Keep the controlling terminal's settings before a prompt changes them; the
    descriptor they are kept under, or None (no terminal, or not a POSIX one)."""
    try:
        import termios
    except ImportError:  # Windows: getpass leaves the console's settings alone
        return None
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        settings = termios.tcgetattr(fd)
    except termios.error:
        os.close(fd)
        return None
    with _terminal_lock:
        _saved_terminals[fd] = settings
    return fd


def _restore_terminals() -> None:
    """Give the terminal back the settings a prompt still in progress changed."""
    with _terminal_lock:
        if not _saved_terminals:
            return
        import termios

        for fd, settings in _saved_terminals.items():
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(fd, termios.TCSANOW, settings)


def _format_expiration(expiry_time: object) -> str | None:
    if isinstance(expiry_time, datetime.datetime):
        if expiry_time.tzinfo is not None:
            expiry_time = expiry_time.astimezone(datetime.timezone.utc)
        return expiry_time.strftime(_EXPIRATION_FORMAT)
    if isinstance(expiry_time, str):
        return expiry_time
    return None


def _one_line(error: BaseException | str) -> str:
    """The message on one line (botocore's validation errors have one problem a line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {'; '.join(lines[1:])}"
    return "; ".join(lines)


_CREDENTIAL_SOURCE_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.ConfigNotFound,
    botocore.exceptions.ConfigParseError,  # a malformed config or credentials file
    botocore.exceptions.InvalidConfigError,  # a source_profile loop, among others
    botocore.exceptions.CredentialRetrievalError,
)
_BAD_PARAMETER_ERRORS = (botocore.exceptions.ParamValidationError, ValueError, TypeError)

# The library's messages speak to Python callers in places; these say it for the CLI.
_CLI_WORDING = {
    PYTHON_WORDING["role_arn_builder"]: " (ROLE_ARN is the role's whole ARN, not its name)",
    PYTHON_WORDING["token_code_callable"]: " (--TokenCode)",
    PYTHON_WORDING["policy_forms"]: "a JSON object (--Policy)",
    PYTHON_WORDING["policy_escapes"]: "(--Policy escapes the rest)",
    PYTHON_WORDING["leave_out"]: "leave the option out",
    "parameter additional_kwargs": "--additional-kwargs",
}

_NO_REGION_FOR_STS = (
    "no region to call STS in: with an STS endpoint URL (--endpoint-url, "
    "AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or the config file), requests are signed for a "
    "region; give --region, or set AWS_DEFAULT_REGION or the profile's region"
)


def _cli_wording(message: str) -> str:
    for python, cli in _CLI_WORDING.items():
        message = message.replace(python, cli)
    return message


def _first_line(error: BaseException) -> str:
    return next(iter(str(error).splitlines()), "").strip()[:300] or type(error).__name__


def _warn_if_unknown_region(session: AioSession, region: str) -> None:
    """A warning, not an error: a region newer than this botocore is still a region."""
    endpoints = session.get_data("endpoints")
    known = {
        name
        for partition in endpoints.get("partitions", [])
        for name in partition.get("regions", {})
    }
    if region in known:
        return
    close = difflib.get_close_matches(region, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    _report(
        f"warning: --region {region!r} is not a region botocore {botocore.__version__} "
        f"knows; {hint}using it anyway"
    )


async def _parent_session(invocation: _Invocation) -> AioSession:
    """The session that assumes the first role, with its credentials loaded."""
    session = AioSession(profile=invocation.profile)
    if invocation.region:
        session.set_config_variable("region", invocation.region)
        _warn_if_unknown_region(session, invocation.region)
    try:
        await session.get_credentials()
    except _CREDENTIAL_SOURCE_ERRORS:
        raise
    except Exception as error:
        # A credential_process that is not found or prints no JSON, say: whatever the
        # source, it gave no credentials. First line only, as it may quote its output.
        raise _Failure(
            EXIT_NO_CREDENTIALS,
            f"Unable to locate credentials: {type(error).__name__}: {_first_line(error)}",
        ) from None
    return session


async def _assumed_session(
    invocation: _Invocation,
) -> tuple[Any, AssumeRoleCredentials, ReadOnlyCredentials]:
    """The last role's session, its credentials object and its first credentials, fetched
    now (so that a role that cannot be assumed fails before anything else happens), with
    every error turned into the CLI's exit codes."""
    kwargs = dict(invocation.assume_role_kwargs)
    if invocation.mfa_serial_number is not None:
        kwargs["TokenCode"] = _token_code_prompt(str(invocation.mfa_serial_number))

    try:
        session = await _parent_session(invocation)
        # assume_role checks the parameters and the parent's credentials; no STS call yet.
        last = len(invocation.role_arns) - 1
        for index, role_arn in enumerate(invocation.role_arns):
            session = await assume_role(session, role_arn, **(kwargs if index == last else {}))
    except _CREDENTIAL_SOURCE_ERRORS as error:
        message = "Unable to locate credentials"
        if not isinstance(error, botocore.exceptions.NoCredentialsError):
            message += f": {_one_line(error)}"
        raise _Failure(EXIT_NO_CREDENTIALS, message) from None
    except botocore.exceptions.NoRegionError:
        raise _UsageError(_NO_REGION_FOR_STS) from None
    except _BAD_PARAMETER_ERRORS as error:
        raise _UsageError(_cli_wording(_one_line(error))) from None

    try:
        # A child's credentials are always its AssumeRoleCredentials (never None).
        credentials = cast(AssumeRoleCredentials, await session.get_credentials())
        frozen = await credentials.get_frozen_credentials()
    except botocore.exceptions.NoCredentialsError:
        raise _Failure(EXIT_NO_CREDENTIALS, "Unable to locate credentials") from None
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        raise _Failure(
            EXIT_ASSUME_ROLE_FAILED, f"Error when assuming role [{code}]: {_one_line(message)}"
        ) from None
    except Exception as error:
        # First line only: botocore's parser errors go on to quote the response body,
        # which may hold credentials.
        raise _Failure(
            EXIT_ASSUME_ROLE_FAILED, f"Error when assuming role: {_first_line(error)}"
        ) from None
    return session, credentials, frozen


async def _assume_roles(invocation: _Invocation) -> _Credentials:
    session, credentials, frozen = await _assumed_session(invocation)
    region = session.get_config_variable("region")
    expiration = _format_expiration(credentials.expiry_time)
    expiry = _epoch_seconds(credentials.expiry_time)
    now = _now()
    if expiry is not None and expiry <= now:
        raise _Failure(
            EXIT_ASSUME_ROLE_FAILED,
            f"Error when assuming role: the credentials expired at {expiration}, before they "
            f"could be used; this machine's clock reads {_utc(now)}: is it right?",
        )
    # ReadOnlyCredentials allows None; credentials from AssumeRole always have both keys.
    access_key, secret_key = cast(str, frozen.access_key), cast(str, frozen.secret_key)
    return _Credentials(access_key, secret_key, frozen.token, expiration, region)


def _now() -> float:
    return time.time()


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        _EXPIRATION_FORMAT
    )


def _epoch_seconds(expiry_time: object) -> float | None:
    if isinstance(expiry_time, str):
        with contextlib.suppress(ValueError, OverflowError):
            expiry_time = datetime.datetime.fromisoformat(expiry_time.replace("Z", "+00:00"))
    if isinstance(expiry_time, datetime.datetime):
        if expiry_time.tzinfo is None:
            expiry_time = expiry_time.replace(tzinfo=datetime.timezone.utc)
        return expiry_time.timestamp()
    return None


@contextlib.contextmanager
def _sts_endpoint(endpoint_url: str | None) -> Iterator[None]:
    """Point every STS client of this process at ``endpoint_url``, for the duration."""
    if endpoint_url is None:
        yield
        return
    # botocore's service-specific endpoint variable reaches the STS client of every
    # session in the chain, however deep, with no hook into how they are made.
    previous = os.environ.get("AWS_ENDPOINT_URL_STS")
    os.environ["AWS_ENDPOINT_URL_STS"] = endpoint_url
    try:
        yield
    finally:
        if previous is None:
            del os.environ["AWS_ENDPOINT_URL_STS"]
        else:
            os.environ["AWS_ENDPOINT_URL_STS"] = previous


# --- output and COMMAND -------------------------------------------------------------------


def _credential_variables(credentials: _Credentials) -> dict[str, str]:
    """The variables --env prints, in the sync library's order and names."""
    variables = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    if credentials.token is not None:
        variables["AWS_SESSION_TOKEN"] = credentials.token
    if credentials.expiration:
        variables["AWS_CREDENTIALS_EXPIRATION"] = credentials.expiration
    return variables


def _credential_process_json(credentials: _Credentials) -> str:
    data: dict[str, Any] = {
        "Version": 1,
        "AccessKeyId": credentials.access_key,
        "SecretAccessKey": credentials.secret_key,
        "SessionToken": credentials.token,
    }
    if credentials.expiration:
        data["Expiration"] = credentials.expiration
    return json.dumps(data, indent=2)


def _command_environment(invocation: _Invocation, credentials: _Credentials) -> dict[str, str]:
    """COMMAND's environment: this one without any credential source, plus the role's.

    The expiry goes under botocore's name for it, ``AWS_CREDENTIAL_EXPIRATION`` (not the
    sync CLI's ``AWS_CREDENTIALS_EXPIRATION``, which no SDK reads).
    """
    environment = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    environment["AWS_ACCESS_KEY_ID"] = credentials.access_key
    environment["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key
    if credentials.token is not None:
        environment["AWS_SESSION_TOKEN"] = credentials.token
    if credentials.expiration:
        environment["AWS_CREDENTIAL_EXPIRATION"] = credentials.expiration
    if credentials.region:
        environment["AWS_REGION"] = environment["AWS_DEFAULT_REGION"] = credentials.region
    if invocation.endpoint_url:
        environment["AWS_ENDPOINT_URL_STS"] = invocation.endpoint_url
    return environment


_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers

# What a shell user may send to aio-assume-role meaning COMMAND: each is passed on.
_FORWARDED_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")
    if hasattr(signal, name)
)
# The ones a terminal sends to its whole foreground process group (Ctrl-C, Ctrl-\, a
# resize), COMMAND included: passing those on too would deliver them twice (and a second
# Ctrl-C means "stop now, skip the cleanup" to many programs).
_TERMINAL_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGQUIT", "SIGWINCH") if hasattr(signal, name)
)
# Linux tells who sent a signal (as sudo uses it): si_code SI_KERNEL for one the kernel
# generated, which a terminal's signals are.
_HAS_SIGINFO = sys.platform.startswith("linux") and hasattr(signal, "sigtimedwait")
_SI_KERNEL = 0x80


class _SignalForwarder:
    """While COMMAND runs, pass each signal meant for it on, once; wait for its exit.

    On Linux the signals are blocked and taken with ``sigtimedwait``, whose sender
    information tells a terminal's signals (COMMAND has them already) from one sent to
    aio-assume-role alone, by ``kill`` or a supervisor. Elsewhere, handlers guess: a
    terminal signal while we are in the terminal's foreground process group came from
    the terminal.
    """

    def __init__(self) -> None:
        self._active = os.name == "posix" and _in_main_thread()
        self._process: subprocess.Popen[bytes] | None = None
        self._early: list[int] = []
        self._previous: dict[int, _SignalHandler | None] = {}

    def __enter__(self) -> _SignalForwarder:
        # Installed before COMMAND starts, so that no signal meant for it is lost or
        # kills aio-assume-role alone (which would leave COMMAND orphaned).
        if self._active:
            for signum in _FORWARDED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            # None: a handler not installed from Python, which Python cannot reinstall.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum in _TERMINAL_SIGNALS and _in_terminal_foreground():
            return  # COMMAND, in our process group, got it from the terminal too
        if self._process is None:
            self._early.append(signum)
        else:
            self._process.send_signal(signum)  # a no-op once COMMAND has exited

    def wait(self, process: subprocess.Popen[bytes]) -> int:
        """COMMAND's exit status (negative: killed by that signal), passing signals on."""
        self._process = process
        for signum in self._early:
            process.send_signal(signum)
        if not (self._active and _HAS_SIGINFO):
            return process.wait()
        watched = {*_FORWARDED_SIGNALS, signal.SIGCHLD}
        previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        try:
            while (returncode := process.poll()) is None:
                info = signal.sigtimedwait(watched, 1.0)  # SIGCHLD ends the wait at once
                if info is None or info.si_signo == signal.SIGCHLD:
                    continue
                if info.si_code == _SI_KERNEL or info.si_pid == process.pid:
                    continue  # the terminal's (COMMAND has it), or COMMAND's own
                process.send_signal(info.si_signo)
            return returncode
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _in_terminal_foreground() -> bool:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
    return False


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run_command(
    command: list[str], environment: dict[str, str], *, die_with_us: bool = False
) -> int:
    """Run COMMAND to its end, passing signals on; its exit code, as a shell gives it.

    ``die_with_us``: on Linux, COMMAND gets SIGTERM if aio-assume-role dies first
    (``_start_dying_with_us``).
    """
    with _SignalForwarder() as forwarder:
        try:
            if die_with_us and _CAN_DIE_WITH_US:
                process = _start_dying_with_us(command, environment)
            else:
                process = subprocess.Popen(command, env=environment)
        except FileNotFoundError:
            raise _Failure(EXIT_COMMAND_NOT_FOUND, f"command not found: {command[0]}") from None
        except OSError as error:
            raise _Failure(
                EXIT_COMMAND_NOT_EXECUTABLE,
                f"cannot run {command[0]}: {error.strerror or type(error).__name__}",
            ) from None
        returncode = forwarder.wait(process)
    # A command killed by signal N exits 128 + N, as in a shell.
    return 128 - returncode if returncode < 0 else returncode


# Linux: with --container-credentials, COMMAND gets SIGTERM when aio-assume-role dies,
# even by SIGKILL (its endpoint dies with it, and COMMAND would go on until its next
# refresh failed): prctl(PR_SET_PDEATHSIG), which survives exec. A small launcher sets
# it, then execs COMMAND in its own place (same process id), or reports why it could not
# through a pipe that a successful exec closes. (Set in a preexec_fn instead, it would
# run Python in the forked child of a process with threads, the endpoint's event loop's:
# CPython documents that as unsafe.) The signal comes when the thread that started the
# launcher ends: the main thread, which lives as long as aio-assume-role does. Not for
# set-user-ID programs, for which Linux clears it at exec.
_CAN_DIE_WITH_US = (
    sys.platform.startswith("linux") and bool(sys.executable) and os.access(sys.executable, os.X_OK)
)
_PR_SET_PDEATHSIG = 1
_DYING_WITH_US_LAUNCHER = f"""
import os, signal, sys
parent, report, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM)
except (ImportError, OSError, AttributeError):
    pass  # a Python without ctypes: COMMAND runs, without the signal
if os.getppid() != parent:  # aio-assume-role died before the prctl
    os.kill(os.getpid(), signal.SIGTERM)
os.set_inheritable(report, False)
try:
    os.execvp(command[0], command)
except OSError as error:
    os.write(report, str(error.errno).encode())
    sys.exit(127)
"""
# -I: no PYTHON* variable nor user site changes the launcher; -S: no site (faster).
_LAUNCHER = (sys.executable, "-I", "-S", "-c", _DYING_WITH_US_LAUNCHER)


def _start_dying_with_us(
    command: list[str], environment: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start COMMAND through the launcher; raise OSError as Popen would if it cannot."""
    report, report_to = os.pipe()
    with open(report, "rb") as reported:
        try:
            process = subprocess.Popen(
                [*_LAUNCHER, str(os.getpid()), str(report_to), *command],
                env=environment,
                pass_fds=(report_to,),
            )
        finally:
            os.close(report_to)
        failure = reported.read()  # nothing: COMMAND runs (the exec closed the pipe)
    if failure:
        process.wait()
        number = int(failure)
        raise OSError(number, os.strerror(number))  # FileNotFoundError for ENOENT
    return process


# --- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        _restore_terminals()  # an MFA prompt left unanswered turned the echo off


def _main(arguments: list[str]) -> int:
    try:
        invocation = _parse(arguments)
        if invocation.container is not None:
            return _serve_container_credentials(invocation, invocation.container)
        with _sts_endpoint(invocation.endpoint_url):
            credentials = anyio.run(_assume_roles, invocation)
        if invocation.command:
            return _run_command(invocation.command, _command_environment(invocation, credentials))
    except SystemExit as stop:  # argparse, after printing --help or --version
        return stop.code if isinstance(stop.code, int) else 0
    except _UsageError as error:
        _report(f"error: {error} (see {PROG} --help)")
        return EXIT_USAGE
    except _Failure as failure:
        _report(str(failure))
        return failure.exit_code
    except KeyboardInterrupt:
        _report("interrupted")
        return EXIT_INTERRUPTED

    if invocation.output_format == "json":
        print(_credential_process_json(credentials))
    else:
        print(
            "\n".join(
                f"{name}={value}" for name, value in _credential_variables(credentials).items()
            )
        )
    return 0


def _report(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# --- --container-credentials: serve the role to COMMAND, or as a sidecar ----------------

_DEFAULT_LISTEN = ("127.0.0.1", 0)
EXIT_CANNOT_LISTEN = 1


@dataclasses.dataclass(frozen=True)
class _ContainerOptions:
    host: str
    port: int
    allow_non_loopback: bool
    token_file: str | None


def _add_container_options(parser: _ArgumentParser) -> None:
    group = parser.add_argument_group(
        "container credentials (serve the role over the protocol every AWS SDK reads)"
    )
    group.add_argument(
        "--container-credentials",
        action="store_true",
        help="serve the last role's refreshing credentials on a local endpoint: to COMMAND "
        "(through AWS_CONTAINER_CREDENTIALS_FULL_URI and a token file), or without a "
        "COMMAND as a sidecar until SIGTERM, printing the variables to export",
    )
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="the address to serve on (default 127.0.0.1 and a free port); loopback only "
        "unless --allow-non-loopback",
    )
    group.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow --listen on an address other processes or machines can reach",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help="write the authorization token there (mode 0600; removed on exit); default "
        "with a COMMAND: a file in a private temporary directory",
    )


def _container_options(options: argparse.Namespace, command: list[str]) -> _ContainerOptions | None:
    if not options.container_credentials:
        for flag, value in (
            ("--listen", options.listen),
            ("--allow-non-loopback", options.allow_non_loopback or None),
            ("--token-file", options.token_file),
        ):
            if value is not None:
                raise _UsageError(f"{flag} needs --container-credentials")
        return None
    if options.format is not None:
        raise _UsageError(f"--{options.format} cannot be used with --container-credentials")
    host, port = _DEFAULT_LISTEN
    if options.listen is not None:
        host, port = _listen_address(options.listen)
    if not ipaddress.ip_address(host).is_loopback and not options.allow_non_loopback:
        raise _UsageError(
            f"--listen {options.listen}: not a loopback address; any process or machine that "
            "reaches it could ask for the credentials (add --allow-non-loopback if meant)"
        )
    if options.token_file is not None and not options.token_file:
        raise _UsageError("--token-file needs a value")
    return _ContainerOptions(host, port, options.allow_non_loopback, options.token_file)


def _listen_address(text: str) -> tuple[str, int]:
    host, colon, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text, 10)
    except ValueError:
        address, port = None, -1
    if not colon or address is None or not 0 <= port <= 65535 or not port_text.isdigit():
        raise _UsageError(
            f"--listen {text[:80]!r}: expected IP:PORT, such as 127.0.0.1:9911 or [::1]:9911"
        )
    return str(address), port


async def _container_session(invocation: _Invocation) -> Any:
    """The last role's session, its first credentials fetched (errors as the CLI's)."""
    session, _, _ = await _assumed_session(invocation)
    return session


def _serve_arguments(options: _ContainerOptions, token_file: str | None) -> dict[str, Any]:
    return {
        "host": options.host,
        "port": options.port,
        "allow_non_loopback": options.allow_non_loopback,
        "token_file": token_file,
    }


@contextlib.contextmanager
def _listening(options: _ContainerOptions) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        raise _Failure(
            EXIT_CANNOT_LISTEN,
            f"cannot start the endpoint on {options.host}:{options.port}: "
            + (f"{error.filename}: " if error.filename else "")
            + (error.strerror or type(error).__name__),
        ) from None


def _container_command_environment(invocation: _Invocation) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    # The shared credentials file comes before the container endpoint in every SDK's
    # chain: a [default] profile there would win over the role.
    environment["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    if invocation.region:
        environment["AWS_REGION"] = environment["AWS_DEFAULT_REGION"] = invocation.region
    if invocation.endpoint_url:
        environment["AWS_ENDPOINT_URL_STS"] = invocation.endpoint_url
    return environment


def _serve_container_credentials(invocation: _Invocation, options: _ContainerOptions) -> int:
    environment = _container_command_environment(invocation)
    # The STS endpoint stays set while the endpoint serves: every refresh needs it.
    with _sts_endpoint(invocation.endpoint_url):
        if not invocation.command:
            return anyio.run(_serve_sidecar, invocation, options)
        # The endpoint's event loop runs in a thread; this one runs COMMAND and passes
        # signals on to it (only the main thread gets signals).
        with anyio.from_thread.start_blocking_portal() as portal:
            session = portal.call(_container_session, invocation)
            with tempfile.TemporaryDirectory(prefix="aio-assume-role-") as directory:
                token_file = options.token_file or os.path.join(directory, "token")
                with (
                    _listening(options),
                    portal.wrap_async_context_manager(
                        serve_container_credentials(
                            session, **_serve_arguments(options, token_file)
                        )
                    ) as endpoint,
                ):
                    environment.update(endpoint.environ())
                    return _run_command(invocation.command, environment, die_with_us=True)


async def _serve_sidecar(invocation: _Invocation, options: _ContainerOptions) -> int:
    stop_signals = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP"):
        stop_signals.append(signal.SIGHUP)
    with anyio.open_signal_receiver(*stop_signals) as received:
        session = await _container_session(invocation)
        with _listening(options):
            server = serve_container_credentials(
                session, **_serve_arguments(options, options.token_file)
            )
            async with server as endpoint:
                exports = [
                    f"export {name}={shlex.quote(value)}"
                    for name, value in endpoint.environ().items()
                ]
                print("\n".join(exports), flush=True)
                async for _ in received:
                    break
    return 0

"""ARNs and role session names: pure functions.

Every function here returns exactly what the same function of aws-assume-role-lib 2.10.0
returns for the same input, so names, ARNs and IAM policy conditions written for the
sync library keep matching after a move to this one.
"""

from __future__ import annotations

import numbers
import os
import random
import re
import string
from datetime import datetime, timezone

__all__ = [
    "AUTOMATIC_ROLE_SESSION_NAME",
    "generate_lambda_session_name",
    "get_assumed_role_session_arn",
    "get_role_arn",
]

AUTOMATIC_ROLE_SESSION_NAME = "AUTOMATIC_ROLE_SESSION_NAME_!#$%^&*()"
"""Pass as ``RoleSessionName`` to have a name generated (``botocore-session-<epoch>``).

A generated name is used anyway when neither ``RoleSessionName`` nor ``SourceIdentity``
is given; this value forces one even when ``SourceIdentity`` is given (which would
otherwise become the session name). It contains characters STS never accepts, so it
cannot clash with a real name, and it is the same string as the sync library's
constant, so a value taken from either library works with both.
"""

# Lambda's role session name budget: STS allows 64 characters; an identifier is only
# worth adding if at least 4 of its characters fit after the name and a "." separator.
_MAX_SESSION_NAME_LENGTH = 64
_LONGEST_NAME_WITH_IDENTIFIER = _MAX_SESSION_NAME_LENGTH - 5
# A timestamp identifier needs 14 characters (YYYYmmddHHMMSS) for second precision.
_TIMESTAMP_PRECISION_LENGTH = 14
_RANDOM_IDENTIFIER_CHARS = string.ascii_lowercase + string.digits
# Runs of characters STS rejects in a session name become one "_". ("+" is valid for
# STS, but the sync library replaces it too, and we produce the same names.)
_NOT_SESSION_NAME_CHARS = re.compile(r"[^A-Za-z0-9_=,.@-]+")
# The log stream name ends with the execution environment's unique ID, as in
# "2020/01/31/[$LATEST]3893xmpl7fac4485b47bb75b671a283c".
_LOG_STREAM_ID = re.compile(r"\w+$")


# A region name is a DNS label, as botocore's validate_region_name checks; botocore's
# pattern ends in "$", which also matches before a trailing newline, so its check passes
# "us-east-1\n" (and the request then fails on a header). Matched whole here.
_REGION_NAME = re.compile(r"(?![0-9]+\Z)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")


def is_region_name(value: str) -> bool:
    """True if ``value`` is a valid region name (a DNS label, not all digits)."""
    return _REGION_NAME.fullmatch(value) is not None


def _account_id_text(account_id: str | int) -> object:
    """Render an account ID as its 12-digit form, zero-padded on the left."""
    if isinstance(account_id, numbers.Number):
        account_id = str(int(account_id))
    if isinstance(account_id, str):
        return account_id.rjust(12, "0")
    return account_id


def get_role_arn(
    account_id: str | int,
    role_name: str,
    path: str = "",
    partition: str = "aws",
) -> str:
    """Build the ARN of an IAM role.

    ``account_id`` may be an int or a string; either is zero-padded to 12 digits
    (``123`` -> ``000000000123``). The role's path may be given in ``path`` or as part
    of ``role_name`` (``"team/Reader"``), not both; a path is written with exactly one
    ``/`` after it and none before it, whichever form it was given in.

    >>> get_role_arn(123456789012, "Reader")
    'arn:aws:iam::123456789012:role/Reader'
    >>> get_role_arn("123456789012", "Reader", path="/team/")
    'arn:aws:iam::123456789012:role/team/Reader'
    >>> get_role_arn("123456789012", "team/Reader", partition="aws-cn")
    'arn:aws-cn:iam::123456789012:role/team/Reader'

    Raises:
        ValueError: ``role_name`` contains a path and ``path`` is given too.
    """
    if "/" in role_name:
        if path:
            raise ValueError(
                f"the role's path was given twice, in role_name ({role_name!r}) and in "
                f"path ({path!r}); give it in only one of them"
            )
        path, _, role_name = role_name.rpartition("/")
    path = path.removeprefix("/")
    if path and not path.endswith("/"):
        path += "/"
    return f"arn:{partition}:iam::{_account_id_text(account_id)}:role/{path}{role_name}"


def get_assumed_role_session_arn(
    account_id: str | int,
    role_name: str,
    role_session_name: str,
    partition: str = "aws",
) -> str:
    """Build the ARN of an assumed-role session (the identity the child session has).

    This is what ``GetCallerIdentity`` reports for the child session, and what to put
    in a resource policy to grant access to one particular session. An assumed-role
    ARN never contains the role's path: if ``role_name`` includes one, it is dropped.
    ``account_id`` is zero-padded to 12 digits as in :func:`get_role_arn`.

    >>> get_assumed_role_session_arn(123456789012, "team/Reader", "alice")
    'arn:aws:sts::123456789012:assumed-role/Reader/alice'
    """
    if "/" in role_name:
        role_name = role_name.rpartition("/")[2]
    return (
        f"arn:{partition}:sts::{_account_id_text(account_id)}:"
        f"assumed-role/{role_name}/{role_session_name}"
    )


def _session_identifier(identifier: str | None, max_length: int) -> object:
    """The identifier part of a Lambda session name, at most ``max_length`` long.

    An explicit identifier is used whole (the caller truncates the finished name). Then
    the execution environment ID from the log stream name; then, when there is room
    for second precision, a UTC timestamp; otherwise random characters.
    """
    if identifier:
        return identifier
    log_stream_id = _LOG_STREAM_ID.search(os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""))
    if log_stream_id:
        return log_stream_id.group()[:max_length]
    if max_length >= _TIMESTAMP_PRECISION_LENGTH:
        return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S%f")[:max_length]
    return "".join(random.choices(_RANDOM_IDENTIFIER_CHARS, k=max_length))


def generate_lambda_session_name(
    function_name: str | None = None,
    function_version: str | None = None,
    identifier: str | None = None,
) -> str:
    """Generate a role session name that says which Lambda function assumed the role.

    The name has one of these forms, at most 64 characters::

        {function_name}
        {function_name}.{identifier}
        {function_name}.{function_version}.{identifier}

    - ``function_name`` defaults to the ``AWS_LAMBDA_FUNCTION_NAME`` environment
      variable (set inside Lambda); outside Lambda it must be given.
    - ``function_version`` defaults to ``AWS_LAMBDA_FUNCTION_VERSION``; ``$LATEST`` is
      treated as no version.
    - ``identifier`` defaults to the execution environment's ID taken from the end of
      ``AWS_LAMBDA_LOG_STREAM_NAME``, so every session of one warm Lambda instance has
      the same name. Without that variable it is a UTC timestamp (``YYYYmmddHHMMSS...``)
      when at least 14 characters fit, otherwise random lowercase letters and digits.

    To fit in 64 characters: a function name longer than 59 characters is used alone
    (truncated to 64); if the name plus the version is longer than 59 characters the
    version is left out; the identifier is truncated to whatever room is left. Finally
    each run of characters other than ``A-Z a-z 0-9 _ = , . @ -`` becomes one ``_``.

    Raises:
        KeyError: ``function_name`` was not given and ``AWS_LAMBDA_FUNCTION_NAME``
            is not set.
    """
    if not function_name:
        try:
            function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        except KeyError:
            raise KeyError(
                "AWS_LAMBDA_FUNCTION_NAME is not set (are we outside Lambda?); pass function_name"
            ) from None
    if not function_version:
        function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")

    if len(function_name) > _LONGEST_NAME_WITH_IDENTIFIER:
        session_name = function_name[:_MAX_SESSION_NAME_LENGTH]
    else:
        version_part = ""
        if function_version and function_version != "$LATEST":
            version_part = f".{function_version}"
        if len(function_name) + len(version_part) > _LONGEST_NAME_WITH_IDENTIFIER:
            version_part = ""
        # room for the identifier after the name, the version and the "." before it
        room = _MAX_SESSION_NAME_LENGTH - 1 - len(function_name) - len(version_part)
        identifier_part = _session_identifier(identifier, room)
        session_name = f"{function_name}{version_part}.{identifier_part}"
        session_name = session_name[:_MAX_SESSION_NAME_LENGTH]
    return _NOT_SESSION_NAME_CHARS.sub("_", session_name)

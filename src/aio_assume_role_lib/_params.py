"""Conversion and offline validation of AssumeRole parameters.

:func:`prepare_args` turns what the user passed to ``assume_role()`` into the AssumeRole
request, with the sync library's defaults and conversions (and a few of ours).
:func:`validate_args` checks that request without calling AWS: first with botocore's
own validator (types, required parameters, minimum lengths), then with the rules STS
enforces that botocore does not check (maximum lengths, allowed characters, ranges,
counts, ARN shapes). Both raise :class:`botocore.exceptions.ParamValidationError`.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias, TypeGuard, cast

import botocore.loaders
import botocore.model
import botocore.validate
from botocore.exceptions import ParamValidationError

from ._names import AUTOMATIC_ROLE_SESSION_NAME

__all__ = [
    "PYTHON_WORDING",
    "AssumeRoleArgs",
    "TokenCodeSource",
    "is_usable_token_code",
    "prepare_args",
    "validate_args",
    "validate_token_code",
]

TokenCodeSource: TypeAlias = str | Callable[[], str | Awaitable[str]]
"""An MFA code: a string (good for one STS call), or a sync or async callable that
returns a fresh code each time one is needed."""


@dataclass(frozen=True, repr=False)
class AssumeRoleArgs:
    """The AssumeRole request for one child session, ready to send (or to validate).

    ``kwargs`` holds plain dicts, lists and scalars, copied from the caller's input
    (later changes to the caller's objects do not show here), so it can be JSON-dumped
    for a cache key. It always has ``RoleArn``; it never has ``TokenCode``, which may be
    a callable and is kept in ``token_code``. When ``session_name_generated`` is true
    the fetcher uses ``botocore-session-<epoch seconds>``; ``kwargs`` then has no
    ``RoleSessionName``, or the empty one the caller gave (kept so that validation
    reports it; botocore and the sync library treat an empty name as absent).
    """

    kwargs: Mapping[str, Any]
    token_code: TokenCodeSource | None
    session_name_generated: bool

    def __repr__(self) -> str:
        # The MFA code is a secret (R10): say what kind of source it is, never the code.
        if self.token_code is None:
            token = "None"
        elif isinstance(self.token_code, str):
            token = "<str>"
        else:
            token = "<callable>"
        return (
            f"AssumeRoleArgs(kwargs={self.kwargs!r}, token_code={token}, "
            f"session_name_generated={self.session_name_generated!r})"
        )


# Stand-ins given to botocore's validator for values that are not known yet: a name to
# be generated at fetch time, and a code that a callable will supply at fetch time.
_GENERATED_SESSION_NAME_PLACEHOLDER = "botocore-session-0000000000"
_TOKEN_CODE_PLACEHOLDER = "000000"


def prepare_args(
    RoleArn: str,
    *,
    RoleSessionName: str | None = None,
    PolicyArns: Iterable[str | Mapping[str, str]] | None = None,
    Policy: str | Mapping[str, Any] | None = None,
    DurationSeconds: int | timedelta | None = None,
    Tags: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
    TransitiveTagKeys: Sequence[str] | None = None,
    ExternalId: str | None = None,
    SerialNumber: str | None = None,
    TokenCode: TokenCodeSource | None = None,
    SourceIdentity: str | None = None,
    additional_kwargs: Mapping[str, Any] | None = None,
) -> AssumeRoleArgs:
    """Build the AssumeRole request from ``assume_role()``'s parameters.

    In this order, as aws-assume-role-lib does:

    1. RoleSessionName: if it is not given (or empty) and ``SourceIdentity`` is, the
       source identity is the session name. :data:`AUTOMATIC_ROLE_SESSION_NAME` means
       "generate one", even when ``SourceIdentity`` is given. (That value is honoured
       in ``additional_kwargs`` too, where the sync library would send it to STS.)
    2. Conversions: ``Policy`` other than a string is dumped to JSON; strings in
       ``PolicyArns`` become ``{"arn": s}``; a ``timedelta`` ``DurationSeconds`` becomes
       whole seconds; a mapping ``Tags`` becomes ``[{"Key": k, "Value": v}, ...]``.
    3. ``additional_kwargs`` first, then every named parameter that is not None on top.
       ``RoleArn`` always wins.

    ``TokenCode`` (named, or from ``additional_kwargs``) is kept apart, in
    ``token_code``, and never called here.

    Values are not checked here beyond what the conversions need; that is
    :func:`validate_args`'s job.

    Raises:
        ParamValidationError: a list parameter (``PolicyArns``, ``Tags``,
            ``TransitiveTagKeys``) was given a single string; ``Policy`` cannot be
            dumped to JSON; ``TokenCode`` is neither a string nor a callable;
            ``additional_kwargs`` is not a mapping. All such problems are reported
            in one error.
    """
    problems: list[str] = []

    if not RoleSessionName and SourceIdentity:
        RoleSessionName = SourceIdentity
    elif RoleSessionName == AUTOMATIC_ROLE_SESSION_NAME:
        RoleSessionName = None

    try:
        named: dict[str, object] = {
            "RoleSessionName": _plain_copy(RoleSessionName),
            "PolicyArns": _convert_policy_arns(PolicyArns, problems),
            "Policy": _convert_policy(Policy, problems),
            "DurationSeconds": _convert_duration(DurationSeconds),
            "Tags": _convert_tags(Tags, problems),
            "TransitiveTagKeys": _convert_tag_keys(TransitiveTagKeys, problems),
            "ExternalId": _plain_copy(ExternalId),
            "SerialNumber": _plain_copy(SerialNumber),
            "SourceIdentity": _plain_copy(SourceIdentity),
        }
        extra: dict[Any, object] = {}
        if additional_kwargs is not None:
            if isinstance(additional_kwargs, Mapping):
                extra = dict(additional_kwargs)
            else:
                problems.append(
                    f"Invalid type for parameter additional_kwargs: "
                    f"{type(additional_kwargs).__name__}; it must be a mapping of "
                    f"AssumeRole parameter names to values."
                )
        # TokenCode may be a callable (bound to some MFA helper): take it out before
        # copying, so it is passed on as the very object the caller gave.
        extra_has_token_code = "TokenCode" in extra
        extra_token_code = extra.pop("TokenCode", None)
        # RoleArn first only so that reprs read naturally; it is set for real below.
        kwargs: dict[Any, Any] = {"RoleArn": None}
        kwargs.update((name, _plain_copy(value)) for name, value in extra.items())
        kwargs["RoleArn"] = _plain_copy(RoleArn)
    except RecursionError:
        raise ParamValidationError(report=_nesting_problem(locals())) from None

    kwargs.update((name, value) for name, value in named.items() if value is not None)
    if kwargs.get("RoleSessionName") == AUTOMATIC_ROLE_SESSION_NAME:
        del kwargs["RoleSessionName"]

    token_code = TokenCode if TokenCode is not None else extra_token_code
    if (token_code is not None or extra_has_token_code) and not _is_token_code_source(token_code):
        problems.append(_token_code_type_problem(token_code))

    if problems:
        raise ParamValidationError(report="\n".join(problems))
    # An empty name (say, from an unset variable) is absent for botocore, which then
    # generates one; with validate=False we do the same rather than send "" to STS.
    session_name = kwargs.get("RoleSessionName")
    return AssumeRoleArgs(
        kwargs=kwargs,
        token_code=cast("TokenCodeSource | None", token_code),
        session_name_generated=session_name is None
        or (isinstance(session_name, str) and not session_name),
    )


def _nesting_problem(arguments: Mapping[str, Any]) -> str:
    """Name the parameters that are nested too deeply (or contain themselves)."""
    names = []
    for name in (
        "RoleArn", "RoleSessionName", "PolicyArns", "Policy", "DurationSeconds", "Tags",
        "TransitiveTagKeys", "ExternalId", "SerialNumber", "SourceIdentity", "additional_kwargs",
    ):  # fmt: skip
        try:
            _plain_copy(arguments.get(name))
        except RecursionError:
            names.append(name)
    return (
        f"Invalid value for parameter {', '.join(names) or 'additional_kwargs'}: nested too "
        "deeply (or it contains itself)."
    )


def _is_token_code_source(value: object) -> bool:
    return isinstance(value, str) or callable(value)


def _token_code_type_problem(value: object) -> str:
    return (
        f"Invalid type for parameter TokenCode: {type(value).__name__}; it must be a "
        f"string of 6 digits{_TOKEN_CODE_CALLABLE}."
    )


# The parts of the messages that speak of Python (functions, mappings, callables): the
# command line, where none of them exists, words them its own way (see _cli).
_ROLE_ARN_BUILDER = " (get_role_arn() builds one)"
_TOKEN_CODE_CALLABLE = ", or a callable (sync or async) that returns one"
_POLICY_FORMS = "as a mapping or as JSON text"
_POLICY_ESCAPES = "(json.dumps escapes the rest)"
_LEAVE_OUT = "leave it out, or None,"
PYTHON_WORDING = {
    "role_arn_builder": _ROLE_ARN_BUILDER,
    "token_code_callable": _TOKEN_CODE_CALLABLE,
    "policy_forms": _POLICY_FORMS,
    "policy_escapes": _POLICY_ESCAPES,
    "leave_out": _LEAVE_OUT,
}
"""Each Python-only phrase of the validation messages, by what it says."""


# Deeper than any AssumeRole parameter's shape (three levels at most) by far; a value
# that contains itself gets there at once, rather than at the interpreter's recursion
# limit (ten times deeper, and ten times slower to refuse).
_MAX_NESTING = 100


def _plain_copy(value: Any, depth: int = 0) -> Any:
    """Copy mappings, lists and tuples (as dicts and lists), recursively.

    Other values (strings, numbers, and anything odd, which validation will reject)
    are kept as they are. Raises ``RecursionError`` past ``_MAX_NESTING`` levels.
    """
    is_list = isinstance(value, (list, tuple))
    if not is_list and not isinstance(value, Mapping):
        return value
    if depth >= _MAX_NESTING:
        raise RecursionError("nested too deeply")
    if is_list:
        return [_plain_copy(item, depth + 1) for item in value]
    return {key: _plain_copy(item, depth + 1) for key, item in value.items()}


def _is_bare_string(value: object) -> bool:
    return isinstance(value, (str, bytes, bytearray, memoryview))


def _bare_string_problem(name: str, value: object, example: str) -> str:
    return (
        f"Invalid type for parameter {name}: a single {type(value).__name__}; it must "
        f"be a list, e.g. {name}={example}."
    )


def _convert_policy_arns(value: object, problems: list[str]) -> object:
    if value is None:
        return None
    if _is_bare_string(value):
        # Iterating it would make one "policy ARN" per character.
        problems.append(
            _bare_string_problem("PolicyArns", value, '["arn:aws:iam::aws:policy/ReadOnlyAccess"]')
        )
        return None
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        return _plain_copy(value)  # left for validation to reject
    return [{"arn": item} if isinstance(item, str) else _plain_copy(item) for item in value]


def _convert_policy(value: object, problems: list[str]) -> object:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(_plain_copy(value))
    except (TypeError, ValueError) as error:
        problems.append(
            f"Invalid value for parameter Policy: it cannot be converted to JSON ({error}); "
            f"it must be a policy document, as a mapping or as JSON text."
        )
        return None


def _convert_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return _plain_copy(value)


def _convert_tags(value: object, problems: list[str]) -> object:
    if value is None:
        return None
    if _is_bare_string(value):
        problems.append(
            _bare_string_problem("Tags", value, '[{"Key": "Project", "Value": "Alpha"}]')
            + ' A mapping also works: Tags={"Project": "Alpha"}.'
        )
        return None
    if isinstance(value, Mapping):
        return [{"Key": _plain_copy(k), "Value": _plain_copy(v)} for k, v in value.items()]
    return _plain_copy(value)


def _convert_tag_keys(value: object, problems: list[str]) -> object:
    if value is None:
        return None
    if _is_bare_string(value):
        problems.append(_bare_string_problem("TransitiveTagKeys", value, '["Project"]'))
        return None
    return _plain_copy(value)


# --- validation ------------------------------------------------------------------------


def validate_args(args: AssumeRoleArgs) -> None:
    """Check an AssumeRole request offline, as far as that is possible.

    Reports every problem found, each on its own line of one error's report: first
    what botocore's validator finds against STS's ``AssumeRoleRequest`` model (types,
    required parameters, unknown parameters, minimum lengths), then what STS would
    reject beyond that (see the STS API reference for AssumeRole):

    - ``RoleArn``: ``arn:<partition>:iam::<12-digit account>:role/[path/]<name>``,
      at most 2048 characters;
    - ``RoleSessionName``, ``SourceIdentity``: 2 to 64 of ``A-Z a-z 0-9 _+=,.@-``;
    - ``DurationSeconds``: 900 to 43200;
    - ``ExternalId``: 2 to 1224 of ``A-Z a-z 0-9 _+=,.@:/-``;
    - ``SerialNumber``: 9 to 256 of ``A-Z a-z 0-9 _+=/:,.@-``;
    - ``TokenCode``: exactly 6 digits (a callable is not called);
    - ``PolicyArns``: at most 10, each ``{"arn": <IAM policy ARN, 20 to 2048 chars>}``;
    - ``Policy``: a JSON object, at most 2048 characters of tab, newline, carriage
      return and U+0020 to U+00FF;
    - ``Tags``: at most 50; keys 1 to 128 and values 0 to 256 of letters, digits,
      spaces and ``_.:/=+-@``; no two keys equal ignoring case;
    - ``TransitiveTagKeys``: at most 50 keys like tag keys, each a key in ``Tags``
      (when ``Tags`` is given);
    - any other parameter of the model: its maximum length, count or value.

    STS also limits the size of the policies and tags once packed; that cannot be
    checked offline. A ``TokenCode`` value never appears in a message.

    Raises:
        ParamValidationError: with one line per problem.
    """
    shape = _assume_role_request_shape()
    params = dict(args.kwargs)
    if args.session_name_generated and "RoleSessionName" not in params:
        params["RoleSessionName"] = _GENERATED_SESSION_NAME_PLACEHOLDER
    token_code = args.token_code
    if token_code is not None:
        params["TokenCode"] = token_code if isinstance(token_code, str) else _TOKEN_CODE_PLACEHOLDER
    if params.get("Policy") == "":
        del params["Policy"]  # ours says why it may not be empty; botocore's gives a length

    reports: list[str] = []
    botocore_errors = botocore.validate.ParamValidator().validate(params, shape)
    if botocore_errors.has_errors():
        reports.append(botocore_errors.generate_report())
    rule_params = dict(args.kwargs)
    if token_code is not None and not _is_token_code_source(token_code):
        reports.append(_token_code_type_problem(token_code))
    elif isinstance(token_code, str):
        rule_params["TokenCode"] = token_code
    reports.extend(_StsRules().check(rule_params))
    already_named = any("parameter TokenCode" in line for line in reports)
    if token_code is not None and args.kwargs.get("SerialNumber") is None and not already_named:
        reports.append(
            "Invalid value for parameter TokenCode: given without SerialNumber; "
            "an MFA code needs the MFA device's SerialNumber."
        )
    if reports:
        raise ParamValidationError(report="\n".join(reports))


def is_usable_token_code(args: AssumeRoleArgs) -> bool:
    """True if ``args`` has a code source that can be sent as it is: a 6-digit string or
    a callable, with a ``SerialNumber`` to go with it. Cheap (a regex at most)."""
    token_code = args.token_code
    if token_code is None or not isinstance(args.kwargs.get("SerialNumber"), str):
        return False
    if isinstance(token_code, str):
        return _TOKEN_CODE.fullmatch(token_code) is not None
    return callable(token_code)


def validate_token_code(args: AssumeRoleArgs) -> None:
    """Check the ``TokenCode`` of a call whose other parameters were validated before.

    A repeat call of ``assume_role()`` shares a validated entry but brings its own code;
    this checks that code on every call, as cheaply as the common case allows, and
    reports problems with :func:`validate_args`'s messages.

    Raises:
        ParamValidationError: the code is not a 6-digit string or a callable, or there
            is no ``SerialNumber``.
    """
    if args.token_code is not None and not is_usable_token_code(args):
        validate_args(args)  # names the problem; the other parameters passed before


@functools.cache
def _assume_role_request_shape() -> Any:
    """STS's AssumeRoleRequest shape, from botocore's bundled model (loaded once)."""
    loader = botocore.loaders.create_loader()
    service_model = botocore.model.ServiceModel(
        loader.load_service_model("sts", "service-2"), service_name="sts"
    )
    return service_model.operation_model("AssumeRole").input_shape


@functools.cache
def _model_shape(*path: str) -> Any:
    """The request model's shape at ``path`` ("[]" steps into a list), or None."""
    shape = _assume_role_request_shape()
    for step in path:
        if step == "[]":
            shape = getattr(shape, "member", None)
        else:
            shape = getattr(shape, "members", {}).get(step)
        if shape is None:
            return None
    return shape


@functools.cache
def _model_min(*path: str) -> int | None:
    """The minimum the model gives at ``path``: botocore's validator reports values below it."""
    shape = _model_shape(*path)
    minimum = shape.metadata.get("min") if shape is not None else None
    return minimum if isinstance(minimum, int) else None


# STS's patterns are Java regular expressions, where \w is ASCII only.
_NOT_SESSION_NAME_CHAR = re.compile(r"[^A-Za-z0-9_+=,.@-]")
_NOT_EXTERNAL_ID_CHAR = re.compile(r"[^A-Za-z0-9_+=,.@:/-]")
_NOT_SERIAL_NUMBER_CHAR = re.compile(r"[^A-Za-z0-9_+=/:,.@-]")
_NOT_POLICY_CHAR = re.compile(r"[^\t\n\r\x20-\xff]")
_NOT_ARN_CHAR = re.compile(r"[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TOKEN_CODE = re.compile(r"[0-9]{6}")
_PARTITION = r"aws(?:-[a-z0-9]+)*"
# An IAM path is "/" or "/segments/" (at most 512 characters); in an ARN it follows
# "role" and so its leading "/" is the one after "role". Role names: 1 to 64 characters.
_ROLE_ARN = re.compile(
    rf"arn:{_PARTITION}:iam::[0-9]{{12}}:role/(?:[\x21-\x7e]{{1,510}}/)?[A-Za-z0-9_+=,.@-]{{1,64}}"
)
_POLICY_ARN = re.compile(rf"arn:{_PARTITION}:iam::(?:[0-9]{{12}}|aws):policy/.+", re.DOTALL)
_TAG_PUNCTUATION = frozenset("_.:/=+-@")

_SESSION_NAME_CHARS_TEXT = "letters A-Z a-z, digits and _+=,.@-"
_TAG_CHARS_TEXT = "letters, digits, spaces and _.:/=+-@"

_MAX_POLICY_ARNS = 10
_MAX_POLICY_LENGTH = 2048
_MIN_DURATION_SECONDS = 900
_MAX_DURATION_SECONDS = 43200
_MAX_TAGS = 50

# Parameters _StsRules checks explicitly; any other member of the model gets the
# generic maximum checks, so parameters added to STS later are covered too.
_EXPLICITLY_CHECKED = frozenset(
    {
        "RoleArn",
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
    }
)


def _shown(value: str, limit: int = 80) -> str:
    """A value for a message: its repr, shortened if long."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def _tag_bad_chars(value: str) -> list[str]:
    # STS: [\p{L}\p{Z}\p{N}_.:/=+\-@] -- Unicode letters, separators and numbers.
    return list(
        dict.fromkeys(
            char
            for char in value
            if char not in _TAG_PUNCTUATION and unicodedata.category(char)[0] not in "LZN"
        )
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_unencodable_text(value: object, depth: int = 0) -> bool:
    """True if a string somewhere in ``value`` cannot be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 20:
        return False
    if isinstance(value, dict):
        return any(_has_unencodable_text(v, depth + 1) for pair in value.items() for v in pair)
    if isinstance(value, (list, tuple)):
        return any(_has_unencodable_text(v, depth + 1) for v in value)
    return False


def _empty_narrowing_problem(name: str) -> str:
    # The sync library sends these (an empty list, "{}"): a caller who meant to narrow the
    # session, say from a list that came out empty, would get the role's full permissions.
    return (
        f"Invalid value for parameter {name}: it is empty; {name} narrows the session's "
        f"permissions, and an empty one narrows nothing ({_LEAVE_OUT} if the role's full "
        f"permissions are what you want)."
    )


class _StsRules:
    """Collects the problems STS would find that botocore's validator does not.

    Values of the wrong type are skipped: botocore has reported them. A minimum is only
    reported where the model has none that botocore already checked.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, params: Mapping[str, Any]) -> list[str]:
        """The problems with ``params`` (the request, with a string TokenCode if any)."""
        self._check_role_arn(params.get("RoleArn"))
        for name in ("RoleSessionName", "SourceIdentity"):
            self._check_string(
                name, params.get(name), 2, 64, _NOT_SESSION_NAME_CHAR, _SESSION_NAME_CHARS_TEXT
            )
        self._check_string(
            "ExternalId",
            params.get("ExternalId"),
            2,
            1224,
            _NOT_EXTERNAL_ID_CHAR,
            "letters A-Z a-z, digits and _+=,.@:/-",
        )
        self._check_string(
            "SerialNumber",
            params.get("SerialNumber"),
            9,
            256,
            _NOT_SERIAL_NUMBER_CHAR,
            "letters A-Z a-z, digits and _+=/:,.@- (a device serial number or an MFA ARN)",
        )
        self._check_token_code(params.get("TokenCode"))
        self._check_duration(params.get("DurationSeconds"))
        self._check_policy_arns(params.get("PolicyArns"))
        self._check_policy(params.get("Policy"))
        tags = params.get("Tags")
        self._check_tags(tags)
        self._check_transitive_tag_keys(params.get("TransitiveTagKeys"), tags)
        members = _assume_role_request_shape().members
        for name, value in params.items():
            if name not in _EXPLICITLY_CHECKED and name in members:
                self._check_model_maxima(name, value, members[name])
            if _has_unencodable_text(value):
                self.problems.append(
                    f"Invalid value for parameter {name}: it holds text that is not valid "
                    "Unicode (a lone surrogate) and cannot be sent."
                )
        return self.problems

    # -- helpers ---------------------------------------------------------------------

    def _check_size(
        self,
        name: str,
        size: int,
        low: int,
        high: int,
        model_path: tuple[str, ...],
        rule: str | None = None,
    ) -> None:
        """Report a length outside low..high, unless botocore reported it (too short)."""
        model_min = _model_min(*model_path)
        reported_by_botocore = model_min is not None and size < model_min
        if size > high or (size < low and not reported_by_botocore):
            if rule is None:
                limits = f"at most {high}" if low == 0 else f"{low} to {high}"
                rule = f"it must be {limits} characters"
            self.problems.append(f"Invalid length for parameter {name}: {size} characters; {rule}.")

    def _check_chars(self, name: str, bad_chars: Iterable[str], allowed: str) -> None:
        bad = list(dict.fromkeys(bad_chars))
        if not bad:
            return
        listed = ", ".join(repr(char) for char in bad[:5])
        if len(bad) > 5:
            listed += f" and {len(bad) - 5} more"
        self.problems.append(
            f"Invalid value for parameter {name}: it contains {listed}; "
            f"it may contain only {allowed}."
        )

    def _check_string(
        self,
        name: str,
        value: object,
        low: int,
        high: int,
        not_allowed: re.Pattern[str],
        allowed: str,
    ) -> None:
        if not isinstance(value, str):
            return
        self._check_size(name, len(value), low, high, (name,))
        self._check_chars(name, not_allowed.findall(value), allowed)

    # -- parameters ------------------------------------------------------------------

    def _check_role_arn(self, value: object) -> None:
        if not isinstance(value, str):
            return
        if len(value) > 2048:
            # Too long to be a role ARN at all (path and name are at most 576 characters).
            self._check_size("RoleArn", len(value), 20, 2048, ("RoleArn",))
        elif not _ROLE_ARN.fullmatch(value):
            hint = "" if value.startswith("arn:") else _ROLE_ARN_BUILDER
            self.problems.append(
                f"Invalid value for parameter RoleArn: {_shown(value)} is not an IAM role "
                f"ARN; it must look like arn:aws:iam::123456789012:role/RoleName or "
                f"arn:aws:iam::123456789012:role/path/RoleName{hint}."
            )

    def _check_duration(self, value: object) -> None:
        if not _is_int(value):
            return  # botocore reports other types (a bool is always below its minimum)
        model_min = _model_min("DurationSeconds")
        reported_by_botocore = model_min is not None and value < model_min
        too_short = value < _MIN_DURATION_SECONDS and not reported_by_botocore
        if too_short or value > _MAX_DURATION_SECONDS:
            self.problems.append(
                f"Invalid value for parameter DurationSeconds: {value}; it must be between "
                f"{_MIN_DURATION_SECONDS} and {_MAX_DURATION_SECONDS} seconds "
                f"(15 minutes to 12 hours, and no more than the role's maximum)."
            )

    def _check_token_code(self, value: object) -> None:
        # Never show the code, nor its characters: it is a secret until it expires.
        if not isinstance(value, str):
            return
        model_min = _model_min("TokenCode")
        only_too_short = value.isascii() and value.isdigit() and len(value) < 6
        if model_min is not None and model_min >= 6 and only_too_short:
            return  # botocore reported the length, and that is the only problem
        if not _TOKEN_CODE.fullmatch(value):
            self.problems.append("Invalid value for parameter TokenCode: it must be 6 digits.")

    def _check_policy_arns(self, value: object) -> None:
        if not isinstance(value, (list, tuple)):
            return
        if not value:
            self.problems.append(_empty_narrowing_problem("PolicyArns"))
        if len(value) > _MAX_POLICY_ARNS:
            self.problems.append(
                f"Invalid length for parameter PolicyArns: {len(value)} ARNs; at most "
                f"{_MAX_POLICY_ARNS} managed policy ARNs are allowed."
            )
        for index, item in enumerate(value):
            name = f"PolicyArns[{index}]"
            if not isinstance(item, dict):
                continue
            if not item:  # (other keys than "arn": botocore reports them, naming "arn")
                self.problems.append(
                    f"Invalid value for parameter {name}: it is empty; it must be "
                    f'{{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}} or a plain ARN string.'
                )
                continue
            arn = item.get("arn")
            if not isinstance(arn, str):
                continue
            self._check_size(f"{name}.arn", len(arn), 20, 2048, ("PolicyArns", "[]", "arn"))
            self._check_chars(f"{name}.arn", _NOT_ARN_CHAR.findall(arn), "printable characters")
            if not _POLICY_ARN.fullmatch(arn):
                self.problems.append(
                    f"Invalid value for parameter {name}.arn: {_shown(arn)} is not an IAM "
                    f"policy ARN; it must look like arn:aws:iam::aws:policy/ReadOnlyAccess or "
                    f"arn:aws:iam::123456789012:policy/MyPolicy."
                )

    def _check_policy(self, value: object) -> None:
        if value == "":
            self.problems.append(_empty_narrowing_problem("Policy"))
            return
        if not isinstance(value, str):
            return  # botocore reports the type
        self._check_size(
            "Policy",
            len(value),
            1,
            _MAX_POLICY_LENGTH,
            ("Policy",),
            rule=f"a session policy may be at most {_MAX_POLICY_LENGTH} characters of plain text",
        )
        self._check_chars(
            "Policy",
            _NOT_POLICY_CHAR.findall(value),
            f"tab, newline, carriage return and U+0020 to U+00FF {_POLICY_ESCAPES}",
        )
        try:
            document = json.loads(value)
        except ValueError as error:
            self.problems.append(
                f"Invalid value for parameter Policy: it is not valid JSON ({error}); it must "
                f"be a policy document, {_POLICY_FORMS}."
            )
            return
        if not isinstance(document, dict):
            self.problems.append(
                f"Invalid value for parameter Policy: it is JSON {type(document).__name__}, "
                f"not an object; it must be a policy document, {_POLICY_FORMS}."
            )
        elif not document:
            self.problems.append(_empty_narrowing_problem("Policy"))

    def _check_tag_key(self, name: str, key: str, model_path: tuple[str, ...]) -> None:
        self._check_size(name, len(key), 1, 128, model_path)
        self._check_chars(name, _tag_bad_chars(key), _TAG_CHARS_TEXT)

    def _check_tags(self, value: object) -> None:
        if not isinstance(value, (list, tuple)):
            return
        if len(value) > _MAX_TAGS:
            self.problems.append(
                f"Invalid length for parameter Tags: {len(value)} tags; at most {_MAX_TAGS} "
                f"session tags are allowed."
            )
        first_index_of_key: dict[str, int] = {}
        for index, tag in enumerate(value):
            if not isinstance(tag, dict):
                continue
            key = tag.get("Key")
            if isinstance(key, str):
                self._check_tag_key(f"Tags[{index}].Key", key, ("Tags", "[]", "Key"))
                folded = key.lower()
                if folded in first_index_of_key:
                    first = first_index_of_key[folded]
                    self.problems.append(
                        f"Invalid value for parameter Tags[{index}].Key: {_shown(key)} repeats "
                        f"the key of Tags[{first}]; tag keys must be unique, ignoring case."
                    )
                else:
                    first_index_of_key[folded] = index
            tag_value = tag.get("Value")
            if isinstance(tag_value, str):
                name = f"Tags[{index}].Value"
                self._check_size(name, len(tag_value), 0, 256, ("Tags", "[]", "Value"))
                self._check_chars(name, _tag_bad_chars(tag_value), _TAG_CHARS_TEXT)

    def _check_transitive_tag_keys(self, value: object, tags: object) -> None:
        if not isinstance(value, (list, tuple)):
            return
        if len(value) > _MAX_TAGS:
            self.problems.append(
                f"Invalid length for parameter TransitiveTagKeys: {len(value)} keys; at most "
                f"{_MAX_TAGS} are allowed."
            )
        tag_keys: set[str] | None = None
        already_named = any("parameter TransitiveTagKeys" in line for line in self.problems)
        if value and tags is None and not already_named:
            self.problems.append(
                "Invalid value for parameter TransitiveTagKeys: given without Tags; "
                "transitive tag keys must name session tags."
            )
        if isinstance(tags, (list, tuple)):
            tag_keys = {
                tag["Key"].lower()
                for tag in tags
                if isinstance(tag, dict) and isinstance(tag.get("Key"), str)
            }
        for index, key in enumerate(value):
            if not isinstance(key, str):
                continue
            name = f"TransitiveTagKeys[{index}]"
            self._check_tag_key(name, key, ("TransitiveTagKeys", "[]"))
            if tag_keys is not None and key.lower() not in tag_keys:
                self.problems.append(
                    f"Invalid value for parameter {name}: {_shown(key)} is not a key in Tags; "
                    f"a transitive tag key must name one of the session tags."
                )

    def _check_model_maxima(self, name: str, value: object, shape: Any) -> None:
        """The model's maxima (which botocore does not check) for any other parameter."""
        maximum = shape.metadata.get("max")
        type_name = shape.type_name
        if type_name == "string" and isinstance(value, str):
            if maximum is not None and len(value) > maximum:
                self.problems.append(
                    f"Invalid length for parameter {name}: {len(value)} characters; it must "
                    f"be at most {maximum} characters."
                )
        elif type_name in ("integer", "long") and _is_int(value):
            if maximum is not None and value > maximum:
                self.problems.append(
                    f"Invalid value for parameter {name}: {value}; it must be at most {maximum}."
                )
        elif type_name == "list" and isinstance(value, (list, tuple)):
            if maximum is not None and len(value) > maximum:
                self.problems.append(
                    f"Invalid length for parameter {name}: {len(value)} items; it must have at "
                    f"most {maximum} items."
                )
            for index, item in enumerate(value):
                self._check_model_maxima(f"{name}[{index}]", item, shape.member)
        elif type_name == "structure" and isinstance(value, dict):
            for member_name, item in value.items():
                member = shape.members.get(member_name)
                if member is not None:
                    self._check_model_maxima(f"{name}.{member_name}", item, member)

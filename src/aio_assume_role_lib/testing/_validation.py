"""``AssumeRole`` parameter checks, in the order and wording of real STS.

:func:`check_assume_role` first collects every constraint violation (length, pattern,
range, list size) into one ``ValidationError`` message the way STS's framework does, then
applies the semantic rules one at a time (policy JSON, duplicate tag keys, transitive tag
keys, the one-hour limit of role chaining, MFA serial and code together).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._identities import Identity
from ._protocol import STSError, members

__all__ = ["AssumeRoleRequest", "check_assume_role"]

_ROLE_ARN_RE = re.compile(
    r"arn:(?P<partition>aws(?:-[a-z]+)*):iam::(?P<account>\d{12}):role/"
    r"(?P<path>(?:[\x21-\x2e\x30-\x7e]+/)*)(?P<name>[\w+=,.@-]{1,64})",
    re.ASCII,
)
# Each check pairs a Python regular expression with the pattern STS quotes in its
# message (Java syntax, which Python's re cannot compile as is).
_TEXT_RE = re.compile(r"[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")
_TEXT_PATTERN = (
    r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+"
)
_POLICY_RE = re.compile(r"[\t\n\r\x20-\xff]+")
_POLICY_PATTERN = r"[\u0009\u000A\u000D\u0020-\u00FF]+"
_NAME_RE = re.compile(r"[\w+=,.@-]*", re.ASCII)
_NAME_PATTERN = r"[\w+=,.@-]*"
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]*", re.ASCII)
_EXTERNAL_ID_PATTERN = r"[\w+=,.@:\/-]*"
_SERIAL_RE = re.compile(r"[\w+=/:,.@-]*", re.ASCII)
_SERIAL_PATTERN = r"[\w+=/:,.@-]*"
_TOKEN_CODE_RE = re.compile(r"\d*", re.ASCII)
_TOKEN_CODE_PATTERN = r"[\d]*"
_TAG_KEY_RE = re.compile(r"[\w\s.:/=+\-@]+")
_TAG_KEY_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+"
_TAG_VALUE_RE = re.compile(r"[\w\s.:/=+\-@]*")
_TAG_VALUE_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"


@dataclass(frozen=True)
class AssumeRoleRequest:
    """A valid ``AssumeRole`` request: what the response and the issued identity need."""

    partition: str
    account: str
    role_name: str
    session_name: str
    duration: int
    source_identity: str | None
    packed_policy_size: int | None
    """Percent of the session policy allowance used; None when no policy, ARN or tag."""


class _Problems:
    """Collects violations and renders them the way STS (Coral) does."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: str | None, where: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{value}'"
        self.items.append(f"Value {shown} at '{where}' failed to satisfy constraint: {constraint}")

    def text(
        self,
        value: str | None,
        where: str,
        min_len: int,
        max_len: int,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
        *,
        required: bool = False,
    ) -> None:
        if value is None:
            if required:
                self.add(None, where, "Member must not be null")
            return
        if pattern is not None and value and not pattern.fullmatch(value):
            self.add(
                value, where, f"Member must satisfy regular expression pattern: {pattern_text}"
            )
        if len(value) < min_len:
            self.add(value, where, f"Member must have length greater than or equal to {min_len}")
        if len(value) > max_len:
            self.add(value, where, f"Member must have length less than or equal to {max_len}")

    def message(self) -> str:
        count = len(self.items)
        plural = "error" if count == 1 else "errors"
        return f"{count} validation {plural} detected: " + "; ".join(self.items)


def check_assume_role(caller: Identity, params: Mapping[str, str]) -> AssumeRoleRequest | STSError:
    """The request ``caller`` sent, checked; or the error STS would answer."""

    def error(status: int, code: str, message: str) -> STSError:
        return STSError(status, code, message, caller, caller.access_key_id)

    problems = _Problems()
    role_arn = params.get("RoleArn")
    session_name = params.get("RoleSessionName")
    problems.text(role_arn, "roleArn", 20, 2048, _TEXT_RE, _TEXT_PATTERN, required=True)
    role = _ROLE_ARN_RE.fullmatch(role_arn) if role_arn is not None else None
    if role_arn is not None and 20 <= len(role_arn) <= 2048 and role is None:
        problems.add(
            role_arn,
            "roleArn",
            "Member must be a valid IAM role ARN "
            "(arn:<partition>:iam::<12-digit account id>:role/<path/><role name>)",
        )
    problems.text(session_name, "roleSessionName", 2, 64, _NAME_RE, _NAME_PATTERN, required=True)
    duration_text = params.get("DurationSeconds")
    duration = 3600
    if duration_text is not None:
        try:
            duration = int(duration_text)
        except ValueError:
            problems.add(duration_text, "durationSeconds", "Member must be an integer")
        else:
            if duration < 900:
                problems.add(
                    duration_text,
                    "durationSeconds",
                    "Member must have value greater than or equal to 900",
                )
            if duration > 43200:
                problems.add(
                    duration_text,
                    "durationSeconds",
                    "Member must have value less than or equal to 43200",
                )
    external_id = params.get("ExternalId")
    problems.text(external_id, "externalId", 2, 1224, _EXTERNAL_ID_RE, _EXTERNAL_ID_PATTERN)
    serial = params.get("SerialNumber")
    problems.text(serial, "serialNumber", 9, 256, _SERIAL_RE, _SERIAL_PATTERN)
    token_code = params.get("TokenCode")
    problems.text(token_code, "tokenCode", 6, 6, _TOKEN_CODE_RE, _TOKEN_CODE_PATTERN)
    source_identity = params.get("SourceIdentity")
    problems.text(source_identity, "sourceIdentity", 2, 64, _NAME_RE, _NAME_PATTERN)
    policy = params.get("Policy")
    problems.text(policy, "policy", 1, 2048, _POLICY_RE, _POLICY_PATTERN)

    policy_arns = members(params, "PolicyArns")
    if policy_arns is not None:
        if len(policy_arns) > 10:
            problems.add(
                f"[{len(policy_arns)} members]",
                "policyArns",
                "Member must have length less than or equal to 10",
            )
        for index, member in enumerate(policy_arns, 1):
            problems.text(
                member.get("arn"),
                f"policyArns.{index}.member.arn",
                20,
                2048,
                _TEXT_RE,
                _TEXT_PATTERN,
            )
    tags = members(params, "Tags")
    if tags is not None:
        if len(tags) > 50:
            problems.add(
                f"[{len(tags)} members]",
                "tags",
                "Member must have length less than or equal to 50",
            )
        for index, member in enumerate(tags, 1):
            where = f"tags.{index}.member"
            problems.text(
                member.get("Key"),
                f"{where}.key",
                1,
                128,
                _TAG_KEY_RE,
                _TAG_KEY_PATTERN,
                required=True,
            )
            problems.text(
                member.get("Value"),
                f"{where}.value",
                0,
                256,
                _TAG_VALUE_RE,
                _TAG_VALUE_PATTERN,
                required=True,
            )
    transitive = members(params, "TransitiveTagKeys")
    if transitive is not None:
        if len(transitive) > 50:
            problems.add(
                f"[{len(transitive)} members]",
                "transitiveTagKeys",
                "Member must have length less than or equal to 50",
            )
        for index, member in enumerate(transitive, 1):
            problems.text(
                member.get(""),
                f"transitiveTagKeys.{index}.member",
                1,
                128,
                _TAG_KEY_RE,
                _TAG_KEY_PATTERN,
            )
    if problems.items:
        return error(400, "ValidationError", problems.message())
    assert role_arn is not None
    assert role is not None
    assert session_name is not None

    if policy is not None:
        try:
            json.loads(policy)
        except ValueError:
            return error(
                400, "MalformedPolicyDocument", "The policy is not in the valid JSON format."
            )
    tag_keys = [member["Key"] for member in tags or []]
    if len({key.lower() for key in tag_keys}) != len(tag_keys):
        return error(
            400,
            "ValidationError",
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        )
    lowered = {key.lower() for key in tag_keys}
    for member in transitive or []:
        if member.get("", "").lower() not in lowered:
            return error(
                400,
                "ValidationError",
                "The specified transitive tag key must be included in the requested tags.",
            )
    if caller.is_role_session and duration > 3600:
        return error(
            400,
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit "
            "for roles assumed by role chaining.",
        )
    if (serial is None) != (token_code is None):
        return error(
            403,
            "AccessDenied",
            "MultiFactorAuthentication failed, must provide both MFA serial number "
            "and one time pass code.",
        )

    packed_policy_size = None
    if policy is not None or policy_arns is not None or tags is not None:
        packed = len(policy or "") + sum(len(m.get("arn", "")) for m in policy_arns or [])
        packed += sum(len(m.get("Key", "")) + len(m.get("Value", "")) for m in tags or [])
        packed_policy_size = min(100, max(1, math.ceil(packed * 100 / 8192)))
    return AssumeRoleRequest(
        partition=role["partition"],
        account=role["account"],
        role_name=role["name"],
        session_name=session_name,
        duration=duration,
        source_identity=source_identity,
        packed_policy_size=packed_policy_size,
    )

"""The STS query protocol: reading requests, and the XML of responses and errors.

Requests are form-encoded (``Action=AssumeRole&Version=2011-06-15&...``, in the body of a
POST or the query string of a GET); responses are XML in the STS namespace. Everything
here is pure except :func:`xml_response`, which wraps a body for aiohttp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from ._identities import Identity

__all__ = [
    "NAMESPACE",
    "VERSION",
    "Request",
    "STSError",
    "assume_role_body",
    "caller_identity_body",
    "container_credentials_body",
    "error_body",
    "instance_metadata_credentials_body",
    "json_response",
    "members",
    "parse_request",
    "rest_json_error",
    "sso_role_credentials_body",
    "text_response",
    "web_identity_body",
    "xml_response",
]

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"

_MEMBER_RE = re.compile(
    r"(?P<list>PolicyArns|Tags|TransitiveTagKeys)\.member\.(?P<n>\d+)(?P<rest>.*)"
)


@dataclass(frozen=True)
class STSError:
    """An error response: HTTP status, STS error code and message, and who asked."""

    status: int
    code: str
    message: str
    identity: Identity | None = None
    access_key_id: str | None = None


@dataclass(frozen=True)
class Request:
    """What a request says, read from its target and body."""

    path: str
    """The path as sent (still percent-encoded), for the SigV4 canonical request."""
    raw_query: str
    """The query string as sent, for the SigV4 canonical request."""
    params: dict[str, str]
    """Query and form parameters together, ``Action`` and ``Version`` included."""

    @property
    def action(self) -> str:
        return self.params.get("Action", "")

    @property
    def recorded_params(self) -> dict[str, str]:
        """The parameters as :class:`STSCall` records them (no ``Action``/``Version``)."""
        return {k: v for k, v in self.params.items() if k not in ("Action", "Version")}


def parse_request(method: str, raw_path: str, body: bytes) -> Request:
    target = raw_path
    if "://" in target.partition("?")[0]:
        # The absolute form (``POST http://host:port/ HTTP/1.1``), which httpx sends.
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, raw_query = target.partition("?")
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    if method == "POST":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return Request(path=path, raw_query=raw_query, params=params)


def members(params: Mapping[str, str], name: str) -> list[dict[str, str]] | None:
    """Collect the members of a query-protocol list parameter (None if absent)."""
    found: dict[int, dict[str, str]] = {}
    present = name in params
    for key, value in params.items():
        match = _MEMBER_RE.fullmatch(key)
        if match is None or match["list"] != name:
            continue
        present = True
        found.setdefault(int(match["n"]), {})[match["rest"].lstrip(".")] = value
    if not present:
        return None
    return [found[index] for index in sorted(found)]


def _iso8601(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _iso8601_seconds(epoch: float) -> str:
    # Instance metadata's format: whole seconds (rounded down: never later than the truth).
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render(xml_body: str) -> bytes:
    return xml_body.encode()


def error_body(code: str, message: str, request_id: str, status: int) -> bytes:
    kind = "Receiver" if status >= 500 else "Sender"
    return _render(
        f'<ErrorResponse xmlns="{NAMESPACE}">\n'
        f"  <Error>\n"
        f"    <Type>{kind}</Type>\n"
        f"    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n"
        f"  </Error>\n"
        f"  <RequestId>{request_id}</RequestId>\n"
        f"</ErrorResponse>\n"
    )


def caller_identity_body(caller: Identity, request_id: str) -> bytes:
    return _render(
        f'<GetCallerIdentityResponse xmlns="{NAMESPACE}">\n'
        f"  <GetCallerIdentityResult>\n"
        f"    <Arn>{escape(caller.arn)}</Arn>\n"
        f"    <UserId>{escape(caller.user_id)}</UserId>\n"
        f"    <Account>{caller.account}</Account>\n"
        f"  </GetCallerIdentityResult>\n"
        f"  <ResponseMetadata>\n"
        f"    <RequestId>{request_id}</RequestId>\n"
        f"  </ResponseMetadata>\n"
        f"</GetCallerIdentityResponse>\n"
    )


def assume_role_body(
    issued: Identity,
    request_id: str,
    *,
    source_identity: str | None,
    packed_policy_size: int | None,
) -> bytes:
    assert issued.session_token is not None
    assert issued.expiration is not None
    extras = ""
    if source_identity is not None:
        extras += f"    <SourceIdentity>{escape(source_identity)}</SourceIdentity>\n"
    if packed_policy_size is not None:
        extras += f"    <PackedPolicySize>{packed_policy_size}</PackedPolicySize>\n"
    return _render(
        f'<AssumeRoleResponse xmlns="{NAMESPACE}">\n'
        f"  <AssumeRoleResult>\n"
        f"{extras}"
        f"    <AssumedRoleUser>\n"
        f"      <Arn>{escape(issued.arn)}</Arn>\n"
        f"      <AssumedRoleId>{escape(issued.user_id)}</AssumedRoleId>\n"
        f"    </AssumedRoleUser>\n"
        f"    <Credentials>\n"
        f"      <AccessKeyId>{issued.access_key_id}</AccessKeyId>\n"
        f"      <SecretAccessKey>{escape(issued.secret_access_key)}</SecretAccessKey>\n"
        f"      <SessionToken>{escape(issued.session_token)}</SessionToken>\n"
        f"      <Expiration>{_iso8601(issued.expiration)}</Expiration>\n"
        f"    </Credentials>\n"
        f"  </AssumeRoleResult>\n"
        f"  <ResponseMetadata>\n"
        f"    <RequestId>{request_id}</RequestId>\n"
        f"  </ResponseMetadata>\n"
        f"</AssumeRoleResponse>\n"
    )


def _credentials_xml(issued: Identity) -> str:
    assert issued.session_token is not None
    assert issued.expiration is not None
    return (
        f"    <Credentials>\n"
        f"      <AccessKeyId>{issued.access_key_id}</AccessKeyId>\n"
        f"      <SecretAccessKey>{escape(issued.secret_access_key)}</SecretAccessKey>\n"
        f"      <SessionToken>{escape(issued.session_token)}</SessionToken>\n"
        f"      <Expiration>{_iso8601(issued.expiration)}</Expiration>\n"
        f"    </Credentials>\n"
    )


def web_identity_body(issued: Identity, request_id: str, *, subject: str) -> bytes:
    """The XML of an ``AssumeRoleWithWebIdentity`` answer that issued ``issued``."""
    return _render(
        f'<AssumeRoleWithWebIdentityResponse xmlns="{NAMESPACE}">\n'
        f"  <AssumeRoleWithWebIdentityResult>\n"
        f"    <SubjectFromWebIdentityToken>{escape(subject)}</SubjectFromWebIdentityToken>\n"
        f"    <Audience>sts.amazonaws.com</Audience>\n"
        f"    <AssumedRoleUser>\n"
        f"      <Arn>{escape(issued.arn)}</Arn>\n"
        f"      <AssumedRoleId>{escape(issued.user_id)}</AssumedRoleId>\n"
        f"    </AssumedRoleUser>\n"
        f"{_credentials_xml(issued)}"
        f"    <Provider>loopback</Provider>\n"
        f"  </AssumeRoleWithWebIdentityResult>\n"
        f"  <ResponseMetadata>\n"
        f"    <RequestId>{request_id}</RequestId>\n"
        f"  </ResponseMetadata>\n"
        f"</AssumeRoleWithWebIdentityResponse>\n"
    )


def container_credentials_body(issued: Identity, role_arn: str) -> bytes:
    """The JSON the container-credentials endpoint (ECS, EKS Pod Identity) answers."""
    assert issued.expiration is not None
    return json.dumps(
        {
            "RoleArn": role_arn,
            "AccessKeyId": issued.access_key_id,
            "SecretAccessKey": issued.secret_access_key,
            "Token": issued.session_token,
            "Expiration": _iso8601(issued.expiration),
            "AccountId": issued.account,
        }
    ).encode()


def sso_role_credentials_body(issued: Identity) -> bytes:
    """The JSON of an SSO portal's ``GetRoleCredentials`` answer (expiry in epoch ms)."""
    assert issued.expiration is not None
    return json.dumps(
        {
            "roleCredentials": {
                "accessKeyId": issued.access_key_id,
                "secretAccessKey": issued.secret_access_key,
                "sessionToken": issued.session_token,
                "expiration": int(issued.expiration * 1000),
            }
        }
    ).encode()


def instance_metadata_credentials_body(issued: Identity, last_updated: float) -> bytes:
    """The JSON instance metadata serves at ``iam/security-credentials/<role>``."""
    assert issued.expiration is not None
    return json.dumps(
        {
            "Code": "Success",
            "LastUpdated": _iso8601_seconds(last_updated),
            "Type": "AWS-HMAC",
            "AccessKeyId": issued.access_key_id,
            "SecretAccessKey": issued.secret_access_key,
            "Token": issued.session_token,
            "Expiration": _iso8601_seconds(issued.expiration),
        },
        indent=2,
    ).encode()


def rest_json_error(status: int, code: str, message: str, request_id: str) -> web.Response:
    """An error of a REST-JSON service (the SSO portal): the code in ``x-amzn-ErrorType``,
    in the form the portal sends it."""
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode(),
        headers={
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws.switchboard.portal/",
        },
    )


def text_response(status: int, body: bytes) -> web.Response:
    """A plain-text answer, as instance metadata gives (tokens, role names, errors)."""
    return web.Response(status=status, body=body, headers={"Content-Type": "text/plain"})


def json_response(status: int, body: bytes, request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        headers={"Content-Type": "application/json", "x-amzn-RequestId": request_id},
    )


def xml_response(status: int, body: bytes, request_id: str) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        headers={"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
    )

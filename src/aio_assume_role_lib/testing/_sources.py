"""The sources of a parent's own credentials that are not STS's query API, served over HTTP.

Besides ``AssumeRole`` (and ``AssumeRoleWithWebIdentity``, an EKS IRSA parent's source, which
is part of STS), :class:`~._server.LoopbackSTS` serves the other sources botocore's
credential chain fetches over HTTP, each at its own path on the same port:

* the container-credentials endpoint (ECS, EKS Pod Identity): ``GET /container-credentials``
  with its token in ``Authorization``;
* the SSO portal's ``GetRoleCredentials`` (a profile with ``sso_session`` or the legacy
  ``sso_start_url``): ``GET /federation/credentials?role_name=..&account_id=..`` with the
  access token of the SSO login in ``x-amz-sso_bearer_token``, answered in REST-JSON with the
  expiry in epoch milliseconds;
* instance metadata, IMDSv2 only (EC2): ``PUT /latest/api/token``, then
  ``GET /latest/meta-data/iam/security-credentials/`` (the role's name) and
  ``GET .../security-credentials/<role name>`` (its credentials, expiry in whole seconds),
  each GET with the session token in ``x-aws-ec2-metadata-token``.

Each source has its own fault queue, consumed one per request (instance metadata's three
requests of a fetch consume one each), and records every request in ``calls``; all take
the server's ``credential_lifetime``, ``latency`` and ``source_latency``. Nothing secret is
recorded (no token, no key).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from ._faults import respond_container, respond_instance_metadata, respond_sso, trickle
from ._identities import Identity
from ._protocol import (
    Request,
    container_credentials_body,
    instance_metadata_credentials_body,
    json_response,
    rest_json_error,
    sso_role_credentials_body,
    text_response,
)

if TYPE_CHECKING:
    from ._server import LoopbackSTS

__all__ = [
    "CONTAINER_CREDENTIALS",
    "INSTANCE_METADATA",
    "SSO_ROLE_CREDENTIALS",
    "SourceEndpoints",
]

CONTAINER_CREDENTIALS = "ContainerCredentials"
SSO_ROLE_CREDENTIALS = "GetRoleCredentials"
INSTANCE_METADATA = "InstanceMetadata"

CONTAINER_PATH = "/container-credentials"
SSO_PATH = "/federation/credentials"
IMDS_TOKEN_PATH = "/latest/api/token"
IMDS_CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"

CONTAINER_ROLE = "loopback-container"
INSTANCE_ROLE = "loopback-instance"
INSTANCE_ID = "i-0123456789abcdef0"  # the session name of an instance profile's role
SSO_START_URL = "https://loopback.awsapps.com/start"
SSO_SESSION = "loopback"
SSO_REGION = "us-east-1"
SSO_USER = "loopback-sso-user"
_IMDS_TOKEN_TTL_MAX = 21600
_IMDS_TOKENS_KEPT = 1000

Handler = Callable[[web.BaseRequest, Request, float, str], Awaitable[web.StreamResponse]]


def sso_role_name(permission_set: str) -> str:
    """The IAM role an SSO permission set gives in an account (``AWSReservedSSO_..``)."""
    suffix = hashlib.sha256(permission_set.encode()).hexdigest()[:16]
    return f"AWSReservedSSO_{permission_set}_{suffix}"


class SourceEndpoints:
    """The container endpoint, the SSO portal and instance metadata of one server."""

    def __init__(self, server: LoopbackSTS) -> None:
        self._server = server
        self._lock = threading.Lock()
        self.container_token = secrets.token_urlsafe(24)
        self.sso_access_token = secrets.token_urlsafe(32)
        # Instance metadata session tokens -> when they expire (monotonic), oldest first.
        self._imds_tokens: dict[str, float] = {}

    def handler(self, path: str) -> Handler | None:
        """The handler of a request for ``path``, or None when it is not a source's."""
        if path == CONTAINER_PATH:
            return self.container_credentials
        if path == SSO_PATH:
            return self.sso_role_credentials
        if path.startswith("/latest/"):
            return self.instance_metadata
        return None

    def revoke_sso_access_token(self) -> None:
        with self._lock:
            self.sso_access_token = secrets.token_urlsafe(32)

    # --- the container endpoint (ECS, EKS Pod Identity) ---------------------------------

    async def container_credentials(
        self, request: web.BaseRequest, parsed: Request, received: float, request_id: str
    ) -> web.StreamResponse:
        server = self._server
        await server._pause(server.latency + server.source_latency)
        fault = server._next_fault(CONTAINER_CREDENTIALS)
        if fault is not None and fault != "trickle":
            server._record(CONTAINER_CREDENTIALS, {}, None, None, received, fault)
            return await respond_container(fault, request, request_id, server._pause)
        token = request.headers.get("Authorization", "")
        if request.method != "GET" or not secrets.compare_digest(token, self.container_token):
            outcome = "InvalidAuthorizationToken" if request.method == "GET" else "InvalidAction"
            server._record(CONTAINER_CREDENTIALS, {}, None, None, received, outcome)
            message = b'{"code": "%s", "message": "Unauthorized"}' % outcome.encode()
            return json_response(401 if request.method == "GET" else 405, message, request_id)
        issued = server._new_identity(
            server.account_id, CONTAINER_ROLE, CONTAINER_ROLE, "aws", received, 3600
        )
        payload = container_credentials_body(issued, server.container_role_arn)
        server._record(CONTAINER_CREDENTIALS, {}, None, None, received, fault or "ok", issued)
        if fault is not None:
            return await trickle(request, 200, payload, request_id, server._pause)
        return json_response(200, payload, request_id)

    # --- the SSO portal ------------------------------------------------------------------

    async def sso_role_credentials(
        self, request: web.BaseRequest, parsed: Request, received: float, request_id: str
    ) -> web.StreamResponse:
        server = self._server
        await server._pause(server.latency + server.source_latency)
        role_name = parsed.params.get("role_name", "")
        account_id = parsed.params.get("account_id", "")
        recorded = {"role_name": role_name, "account_id": account_id}
        fault = server._next_fault(SSO_ROLE_CREDENTIALS)
        if fault is not None and fault != "trickle":
            server._record(SSO_ROLE_CREDENTIALS, recorded, None, None, received, fault)
            return await respond_sso(fault, request, request_id, server._pause)

        def fail(status: int, code: str, message: str) -> web.StreamResponse:
            server._record(SSO_ROLE_CREDENTIALS, recorded, None, None, received, code)
            return rest_json_error(status, code, message, request_id)

        if request.method != "GET":
            return fail(405, "MethodNotAllowedException", f"Unsupported method {request.method}")
        token = request.headers.get("x-amz-sso_bearer_token", "")
        with self._lock:
            expected = self.sso_access_token
        if not secrets.compare_digest(token.encode(), expected.encode()):
            return fail(401, "UnauthorizedException", "Session token not found or invalid")
        if not role_name or not re.fullmatch(r"\d{12}", account_id, re.ASCII):
            return fail(400, "InvalidRequestException", "Invalid role_name or account_id")
        issued = server._new_identity(
            account_id, sso_role_name(role_name), SSO_USER, "aws", received, 3600
        )
        payload = sso_role_credentials_body(issued)
        server._record(SSO_ROLE_CREDENTIALS, recorded, None, None, received, fault or "ok", issued)
        if fault is not None:
            return await trickle(request, 200, payload, request_id, server._pause)
        return json_response(200, payload, request_id)

    def write_sso_profile(
        self,
        config_file: Path,
        token_cache_dir: Path,
        *,
        profile: str,
        permission_set: str,
        legacy: bool,
    ) -> None:
        server = self._server
        account = server.account_id
        if legacy:
            config = (
                f"[profile {profile}]\nsso_start_url = {SSO_START_URL}\n"
                f"sso_region = {SSO_REGION}\nsso_account_id = {account}\n"
                f"sso_role_name = {permission_set}\nregion = us-east-1\n"
            )
        else:
            config = (
                f"[profile {profile}]\nsso_session = {SSO_SESSION}\n"
                f"sso_account_id = {account}\nsso_role_name = {permission_set}\n"
                f"region = us-east-1\n\n"
                f"[sso-session {SSO_SESSION}]\nsso_start_url = {SSO_START_URL}\n"
                f"sso_region = {SSO_REGION}\nsso_registration_scopes = sso:account:access\n"
            )
        config_file.write_text(config)
        # botocore's SSOTokenLoader: the file is named by the SHA-1 of the sso-session's
        # name, or of the start URL for a legacy profile.
        key = hashlib.sha1((SSO_START_URL if legacy else SSO_SESSION).encode()).hexdigest()
        expires = datetime.now(timezone.utc) + timedelta(hours=8)
        with self._lock:
            token = self.sso_access_token
        entry = {
            "startUrl": SSO_START_URL,
            "region": SSO_REGION,
            "accessToken": token,
            "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        token_cache_dir.mkdir(parents=True, exist_ok=True)
        (token_cache_dir / f"{key}.json").write_text(json.dumps(entry))

    # --- instance metadata (IMDSv2) ------------------------------------------------------

    async def instance_metadata(
        self, request: web.BaseRequest, parsed: Request, received: float, request_id: str
    ) -> web.StreamResponse:
        server = self._server
        await server._pause(server.latency + server.source_latency)
        path = parsed.path
        recorded = {"path": path}
        fault = server._next_fault(INSTANCE_METADATA)
        if fault is not None and fault != "trickle":
            server._record(INSTANCE_METADATA, recorded, None, None, received, fault)
            return await respond_instance_metadata(fault, request, request_id, server._pause)

        async def answer(
            status: int, body: bytes, outcome: str, issued: Identity | None = None
        ) -> web.StreamResponse:
            server._record(INSTANCE_METADATA, recorded, None, None, received, outcome, issued)
            if fault is not None:  # a trickle delivers whatever the real answer is
                content_type = "application/json" if issued is not None else "text/plain"
                return await trickle(request, status, body, request_id, server._pause, content_type)
            return text_response(status, body)

        if path == IMDS_TOKEN_PATH:
            if request.method != "PUT":
                return await answer(405, b"Method Not Allowed", "MethodNotAllowed")
            ttl = request.headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= _IMDS_TOKEN_TTL_MAX:
                return await answer(400, b"Bad Request", "BadRequest")
            return await answer(200, self._new_imds_token(int(ttl)).encode(), "ok")
        if request.method != "GET":
            return await answer(405, b"Method Not Allowed", "MethodNotAllowed")
        if not self._imds_token_valid(request.headers.get("x-aws-ec2-metadata-token", "")):
            return await answer(401, b"Unauthorized", "Unauthorized")
        if path == IMDS_CREDENTIALS_PATH:
            return await answer(200, INSTANCE_ROLE.encode(), "ok")
        if path == IMDS_CREDENTIALS_PATH + INSTANCE_ROLE:
            issued = server._new_identity(
                server.account_id, INSTANCE_ROLE, INSTANCE_ID, "aws", received, 3600
            )
            body = instance_metadata_credentials_body(issued, received)
            return await answer(200, body, "ok", issued)
        return await answer(404, b"Not Found", "NotFound")

    def _new_imds_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._imds_tokens[token] = time.monotonic() + ttl
            while len(self._imds_tokens) > _IMDS_TOKENS_KEPT:
                del self._imds_tokens[next(iter(self._imds_tokens))]
        return token

    def _imds_token_valid(self, token: str) -> bool:
        with self._lock:
            expires = self._imds_tokens.get(token)
        return expires is not None and time.monotonic() < expires

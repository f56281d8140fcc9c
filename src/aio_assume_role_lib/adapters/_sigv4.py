"""SigV4 signing of an HTTP request with botocore's signer, for the httpx adapters.

The request is copied into a botocore ``AWSRequest`` (method, URL, the headers worth
signing, the body or an unsigned payload), signed by ``botocore.auth.SigV4Auth`` (or
``S3SigV4Auth`` for S3, which adds ``X-Amz-Content-SHA256``), and the headers the signer
set are copied back. Nothing here knows about httpx: the two httpx modules pass in what
they read from their request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote

from botocore.auth import S3SigV4Auth
from botocore.auth import SigV4Auth as BotocoreSigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from .._refreshed import refreshed_credentials

# Headers a client or a proxy may add, drop or rewrite on the way: signing them could
# break the signature for no gain (botocore leaves out user-agent and expect too).
_UNSIGNED_HEADERS = frozenset(
    {
        "accept-encoding",
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# The headers the signer sets, copied back to the request.
_SIGNATURE_HEADERS = (
    "Authorization",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-SHA256",
)
_S3_SIGN_PAYLOAD = Config(s3={"payload_signing_enabled": True})
_S3_UNSIGNED_PAYLOAD = Config(s3={"payload_signing_enabled": False})
_SERVICE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}", re.ASCII)
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/")


def region_of(session: Any) -> str | None:
    """The session's region (an AioSession's config, or an aioboto3.Session's)."""
    inner = getattr(session, "_session", session)
    region = inner.get_config_variable("region")
    return region if isinstance(region, str) and region else None


class Signer:
    """Signs requests for one (session, service, region) with its refreshed credentials."""

    __slots__ = ("credentials", "refresher", "region", "s3", "service")

    def __init__(self, session: Any, service: Any, region: Any, consumer: str) -> None:
        if not isinstance(service, str) or not _SERVICE_RE.fullmatch(service):
            raise ValueError(
                f"service must be an AWS signing name such as 's3', 'sts' or 'bedrock', "
                f"not {service!r}"
            )
        if region is not None and (not isinstance(region, str) or not region):
            raise ValueError(f"region must be a region name such as 'us-east-1', not {region!r}")
        self.credentials = refreshed_credentials(session, consumer=consumer)
        self.refresher = self.credentials._refresher
        resolved = region if region is not None else region_of(session)
        if resolved is None:
            raise ValueError(
                f"{consumer}: the session has no region; pass region='us-east-1' (or "
                "another) or set the session's region"
            )
        self.service = service
        self.region = resolved
        self.s3 = service == "s3"

    def sign(
        self,
        credentials: ReadOnlyCredentials,
        method: str,
        url: str,
        params: list[tuple[str, str]],
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
    ) -> dict[str, str]:
        """The signature headers for the request; ``body`` None means a streamed body,
        sent with an unsigned payload (S3 only; other services need the body)."""
        # A list of pairs keeps repeated query keys; botocore's canonical query takes one
        # (its stubs say Mapping).
        request = AWSRequest(method=method, url=url, data=body or b"", params=cast(Any, params))
        for name, value in headers:
            if name.lower() not in _UNSIGNED_HEADERS:
                request.headers[name] = value  # HTTPHeaders: a repeated name adds a value
        if self.s3:
            signer: BotocoreSigV4Auth = S3SigV4Auth(credentials, self.service, self.region)
            request.context["client_config"] = (
                _S3_SIGN_PAYLOAD if body is not None else _S3_UNSIGNED_PAYLOAD
            )
        else:
            signer = BotocoreSigV4Auth(credentials, self.service, self.region)
        signer.add_auth(request)
        return {
            name: request.headers[name] for name in _SIGNATURE_HEADERS if name in request.headers
        }


def canonical_query(params: list[tuple[str, str]]) -> str:
    """A query string in SigV4's canonical encoding (what botocore signs)."""
    return "&".join(
        f"{quote(key, safe='-_.~')}={quote(value, safe='-_.~')}" for key, value in sorted(params)
    )


def signed_with(authorization: str | None) -> str | None:
    """The access key id in a SigV4 ``Authorization`` header."""
    match = _CREDENTIAL_RE.search(authorization or "")
    return match.group(1) if match else None

"""SigV4 verification of incoming requests, with the error codes and wording of STS.

:func:`authenticate` finds the identity whose access key signed a request and checks the
signature for real (canonical request, string to sign, derived key), the session token,
the credentials' expiry and the clock skew. Presigned (query-string) SigV4 is not
supported.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import quote, unquote

from multidict import CIMultiDictProxy

from ._identities import Identity
from ._protocol import Request, STSError

__all__ = ["authenticate"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_MAX_CLOCK_SKEW = 15 * 60.0


def _amz_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _remove_dot_segments(path: str) -> str:
    segments: list[str] = []
    for part in path.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if segments:
                segments.pop()
        else:
            segments.append(part)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and segments else ""
    return first + "/".join(segments) + last


def _canonical_uri(path: str) -> str:
    # Non-S3 services: normalize, then URI-encode the (already encoded) path again.
    return quote(_remove_dot_segments(path) or "/", safe="/~")


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for pair in raw_query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _sigv4_signature(secret_access_key: str, scope: list[str], string_to_sign: str) -> str:
    key = ("AWS4" + secret_access_key).encode()
    for part in scope:
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_authorization(header: str) -> dict[str, str] | None:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != _ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def authenticate(
    method: str,
    headers: CIMultiDictProxy[str],
    request: Request,
    body: bytes,
    received: float,
    lookup: Callable[[str], Identity | None],
) -> Identity | STSError:
    """The identity that signed the request, or the error STS would answer.

    ``lookup`` maps an access key id to the identity it belongs to (None if unknown).
    """
    header = headers.get("Authorization")
    if header is None:
        return STSError(
            403, "MissingAuthenticationToken", "Request is missing Authentication Token"
        )
    fields = _parse_authorization(header)
    if fields is None:
        algorithm = header.strip().partition(" ")[0]
        return STSError(400, "IncompleteSignature", f"Unsupported AWS 'algorithm': '{algorithm}'")
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields]
    amz_date = headers.get("X-Amz-Date")
    if missing or amz_date is None:
        parts = [f"Authorization header requires '{name}' parameter." for name in missing]
        if amz_date is None:
            parts.append("Authorization header requires existence of a 'X-Amz-Date' header.")
        return STSError(400, "IncompleteSignature", " ".join(parts))
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        message = f"Credential should be scoped to a valid region, not '{fields['Credential']}'."
        return STSError(400, "IncompleteSignature", message)
    access_key_id, date, region, service, terminator = credential

    identity = lookup(access_key_id)
    if identity is None:
        return STSError(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            access_key_id=access_key_id,
        )

    def reject(status: int, code: str, message: str) -> STSError:
        return STSError(status, code, message, identity, access_key_id)

    token = headers.get("X-Amz-Security-Token")
    if identity.session_token is None:
        token_ok = token is None
    else:
        token_ok = token is not None and hmac.compare_digest(
            token.encode(), identity.session_token.encode()
        )
    if not token_ok:
        return reject(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    if identity.expiration is not None and received >= identity.expiration:
        return reject(403, "ExpiredToken", "The security token included in the request is expired")

    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        message = f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        return reject(400, "IncompleteSignature", message)
    if date != amz_date[:8]:
        message = (
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
            f"date from HTTP: '{date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
        return reject(403, "SignatureDoesNotMatch", message)
    if service != "sts":
        message = f"Credential should be scoped to correct service: 'sts'. Got '{service}'."
        return reject(403, "SignatureDoesNotMatch", message)
    if terminator != "aws4_request":
        message = (
            f"Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{terminator}'."
        )
        return reject(403, "SignatureDoesNotMatch", message)
    signed_headers = fields["SignedHeaders"].split(";")
    if "host" not in signed_headers:
        message = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        return reject(400, "IncompleteSignature", message)
    skew = received - signed_at.timestamp()
    if skew > _MAX_CLOCK_SKEW:
        message = (
            f"Signature expired: {amz_date} is now earlier than "
            f"{_amz_date(received - _MAX_CLOCK_SKEW)} ({_amz_date(received)} - 15 min.)"
        )
        return reject(403, "SignatureDoesNotMatch", message)
    if skew < -_MAX_CLOCK_SKEW:
        message = (
            f"Signature not yet current: {amz_date} is still later than "
            f"{_amz_date(received + _MAX_CLOCK_SKEW)} ({_amz_date(received)} + 15 min.)"
        )
        return reject(403, "SignatureDoesNotMatch", message)

    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in headers.getall(name, []))}\n"
        for name in signed_headers
    )
    if headers.get("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD":
        payload_hash = "UNSIGNED-PAYLOAD"
    else:
        payload_hash = hashlib.sha256(body).hexdigest()
    canonical_request = "\n".join(
        [
            method,
            _canonical_uri(request.path),
            _canonical_query(request.raw_query),
            canonical_headers,
            fields["SignedHeaders"],
            payload_hash,
        ]
    )
    scope = [date, region, service, terminator]
    string_to_sign = "\n".join(
        [
            _ALGORITHM,
            amz_date,
            "/".join(scope),
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    expected = _sigv4_signature(identity.secret_access_key, scope, string_to_sign)
    if not hmac.compare_digest(expected, fields["Signature"]):
        message = (
            "The request signature we calculated does not match the signature you "
            "provided. Check your AWS Secret Access Key and signing method. Consult the "
            "service documentation for details."
        )
        return reject(403, "SignatureDoesNotMatch", message)
    return identity

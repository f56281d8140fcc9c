"""What every adapter shares: reading the refresher, error codes, missing extras."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone

from botocore.credentials import ReadOnlyCredentials

from .._credentials import EXPIRED_TOKEN_CODES
from .._refresh import Refresher

# Error codes with which a service says the security token is expired or not (or no
# longer) valid: new credentials may help, so the adapter invalidates the ones that
# signed and retries once. Not RequestExpired (clock skew) nor SignatureDoesNotMatch.
INVALID_TOKEN_CODES = EXPIRED_TOKEN_CODES | frozenset(
    {"InvalidToken", "InvalidClientTokenId", "UnrecognizedClientException"}
)

_XML_CODE = re.compile(rb"<Code>\s*([A-Za-z0-9.#:_-]{1,128})\s*</Code>")


def fresh(refresher: Refresher[ReadOnlyCredentials]) -> ReadOnlyCredentials | None:
    """The cached credentials if nothing is due (no lock, one clock call), else None.

    The same test as ``Refresher.get``'s fast path, for callers that cannot await.
    """
    current = refresher._current
    if current is not None and refresher._clock() < current.advisory_at:
        return current.value
    return None


def expiry_of(refresher: Refresher[ReadOnlyCredentials]) -> datetime | None:
    """When the credentials the refresher holds expire (UTC), None before the first fetch."""
    expiry = refresher.expiry
    return None if expiry is None else datetime.fromtimestamp(expiry, timezone.utc)


async def get_with_expiry(
    refresher: Refresher[ReadOnlyCredentials],
) -> tuple[ReadOnlyCredentials, datetime | None]:
    """The refresher's credentials and *their* expiry (UTC).

    Read as one pair after ``get()``: a refresh that lands in between must not pair the
    older credentials with the newer expiry (a consumer would keep them past their end).
    """
    value = await refresher.get()
    current = refresher._current
    if current is None:  # pragma: no cover - get() returned, so something is cached
        return value, None
    return current.value, datetime.fromtimestamp(current.expiry, timezone.utc)


def error_code(headers: Mapping[str, str], body: bytes) -> str | None:
    """The AWS error code of an error response: XML ``<Code>``, JSON ``__type`` or
    ``code``, or the ``x-amzn-ErrorType`` header."""
    header = headers.get("x-amzn-errortype")
    if header:
        return header.split(":", 1)[0].rsplit("#", 1)[-1] or None
    match = _XML_CODE.search(body[:8192])
    if match:
        return match.group(1).decode()
    if body[:1] == b"{":
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if isinstance(parsed, dict):
            code = parsed.get("__type") or parsed.get("code") or parsed.get("Code")
            if isinstance(code, str):
                return code.split(":", 1)[0].rsplit("#", 1)[-1] or None
    return None


def missing_extra(module: str, extra: str, package: str) -> ImportError:
    """The ImportError an adapter module raises when its extra is not installed."""
    return ImportError(
        f"aio_assume_role_lib.adapters.{module} needs {package}: "
        f"pip install 'aio-assume-role-lib[{extra}]'"
    )

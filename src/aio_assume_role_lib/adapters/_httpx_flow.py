"""The SigV4 auth flow shared by the httpx and httpx2 adapters (same request API).

Async: read the body (S3 may stream it unsigned), await the refresher, sign, send; on an
error response whose code says the token is expired or invalid, invalidate the
credentials by the access key that signed it and, if that brings other credentials,
sign again and retry once. Sync: the same, with the credentials read as
:class:`~aio_assume_role_lib.adapters.sync.SyncCredentials` reads them, which is refused
on an event loop's thread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from botocore.credentials import ReadOnlyCredentials

from . import _loop_thread
from ._core import INVALID_TOKEN_CODES, error_code
from ._sigv4 import Signer, canonical_query
from .sync import EventLoopThreadError, get_blocking

# Statuses of "your token is expired or invalid": 403 (STS, S3, most query and XML
# services) and 400 (JSON services such as DynamoDB's ExpiredTokenException).
_RETRY_STATUSES = frozenset({400, 403})


class Flow:
    """One adapter instance's signing flow; ``byte_stream`` is the library's
    in-memory stream type (a body already in memory, safe to sign and resend)."""

    __slots__ = ("byte_stream", "client_name", "signer")

    def __init__(self, signer: Signer, byte_stream: type, client_name: str) -> None:
        self.signer = signer
        self.byte_stream = byte_stream
        self.client_name = client_name

    def _sign(self, request: Any, credentials: ReadOnlyCredentials, body: bytes | None) -> None:
        url = request.url
        params = list(url.params.multi_items()) if url.query else []
        if params:
            # The query goes out in SigV4's own encoding (RFC 3986, a space as %20, not
            # httpx's "+"), so that the service reads back exactly what was signed.
            request.url = url.copy_with(query=canonical_query(params).encode())
        headers = self.signer.sign(
            credentials,
            request.method,
            str(url).partition("?")[0],  # (copy_with(query=None) parses the URL again)
            params,
            request.headers.multi_items(),
            body,
        )
        for name, value in headers.items():
            request.headers[name] = value

    def _in_memory(self, request: Any) -> bool:
        return isinstance(request.stream, self.byte_stream)

    def _rejected_token(self, response: Any) -> bool:
        if response.status_code not in _RETRY_STATUSES:
            return False
        return error_code(response.headers, response.content) in INVALID_TOKEN_CODES

    async def run_async(self, request: Any) -> AsyncGenerator[Any, Any]:
        refresher = self.signer.refresher
        body: bytes | None = None
        if self._in_memory(request) or not self.signer.s3:
            body = await request.aread()  # a stream is read into memory: resendable
        credentials = await refresher.get()
        self._sign(request, credentials, body)
        response = yield request
        if body is None or response.status_code not in _RETRY_STATUSES:
            return
        await response.aread()
        if not self._rejected_token(response):
            return
        self.signer.credentials.invalidate(credentials.access_key)
        renewed = await refresher.get()
        if renewed.access_key == credentials.access_key:
            return  # nothing newer to sign with: the service's answer stands
        self._sign(request, renewed, body)
        yield request

    def run_sync(self, request: Any) -> Generator[Any, Any, None]:
        if _loop_thread.on_event_loop_thread():
            raise EventLoopThreadError(
                f"SigV4Auth with a sync {self.client_name}.Client on a thread that runs an "
                "event loop would block the loop while credentials refresh: use "
                f"{self.client_name}.AsyncClient there (or the sync Client from a worker "
                "thread)"
            )
        refresher = self.signer.refresher
        body: bytes | None = None
        if self._in_memory(request) or not self.signer.s3:
            body = request.read()
        credentials = get_blocking(refresher)
        self._sign(request, credentials, body)
        response = yield request
        if body is None or response.status_code not in _RETRY_STATUSES:
            return
        response.read()
        if not self._rejected_token(response):
            return
        self.signer.credentials.invalidate(credentials.access_key)
        renewed = get_blocking(refresher)
        if renewed.access_key == credentials.access_key:
            return
        self._sign(request, renewed, body)
        yield request

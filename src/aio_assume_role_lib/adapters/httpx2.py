"""SigV4 for httpx2, the maintained fork of httpx (``pip install 'aio-assume-role-lib[httpx2]'``): :class:`SigV4Auth`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from ._core import missing_extra

try:
    import httpx2
except ImportError as error:  # pragma: no cover - tested in a subprocess
    raise missing_extra("httpx2", "httpx2", "httpx2") from error

from ._httpx_flow import Flow
from ._sigv4 import Signer

__all__ = ["SigV4Auth"]


class SigV4Auth(httpx2.Auth):
    """Signs httpx2 requests with SigV4 and a session's refreshed credentials.

    Args:
        session: a session whose credentials aio_assume_role_lib refreshes (what
            ``assume_role`` returns); a TypeError otherwise.
        service: the AWS signing name (``"s3"``, ``"sts"``, ``"execute-api"``, ...).
            For ``"s3"`` the S3 variant signs: ``X-Amz-Content-SHA256`` is set, and a
            streamed body (not in memory) is sent with an unsigned payload.
        region: the signing region; default the session's region (a ValueError if it
            has none).

    With ``httpx2.AsyncClient`` each request awaits the session's refresher (a dict
    lookup when fresh; one shared refresh with every other consumer of the session
    when due). An answer of 400/403 whose error code says the token is expired or
    invalid (``ExpiredToken``, ``ExpiredTokenException``, ``InvalidToken``,
    ``InvalidClientTokenId``, ``UnrecognizedClientException``) invalidates the
    credentials that signed it and, if that brings new ones, the request is signed
    again and retried once (not a streamed S3 body, which cannot be sent twice).

    With the sync ``httpx2.Client`` it works from threads without an event loop (a
    refresh runs on a private event loop); on a thread that runs an event loop it raises
    :class:`~aio_assume_role_lib.adapters.sync.EventLoopThreadError`: use
    ``AsyncClient`` there.
    """

    def __init__(self, session: Any, service: str, *, region: str | None = None) -> None:
        self._flow = Flow(
            Signer(session, service, region, "SigV4Auth"), httpx2.ByteStream, "httpx2"
        )

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self._flow.run_async(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
        finally:
            await flow.aclose()  # closed early by the client: close the inner flow too

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        yield from self._flow.run_sync(request)

    def __repr__(self) -> str:
        signer = self._flow.signer
        return f"<SigV4Auth service={signer.service!r} region={signer.region!r}>"

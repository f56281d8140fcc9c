"""A tiny S3-like endpoint on 127.0.0.1 for the adapters' tests: it checks SigV4 for
real (S3's rules: path not normalized, ``X-Amz-Content-SHA256`` payload hash or
``UNSIGNED-PAYLOAD``) against the keys a LoopbackSTS issued, and records which access
key and which identity signed each request.

It also plays Amazon Bedrock's runtime for the recipes' tests (service ``bedrock``, the
path URI-encoded once more as for every service but S3): ``POST /model/<id>/invoke``
(Anthropic's Messages shape) and ``POST .../chat/completions`` (OpenAI's), each answering
a fixed "hello".

Objects live in memory; PUT, GET, HEAD and a ListObjectsV2 (paged by ``max-keys``) are enough for
obstore, s3fs and hand-written httpx requests. Errors come in S3's XML shape with S3's
codes (``ExpiredToken``, ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

from aio_assume_role_lib.testing import LoopbackSTS


@dataclass(frozen=True)
class S3Call:
    method: str
    path: str
    access_key_id: str | None
    caller_arn: str | None
    outcome: str
    time: float
    query: str = ""


_ANTHROPIC_MESSAGE = {
    "id": "msg_loopback",
    "type": "message",
    "role": "assistant",
    "model": "loopback",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
_OPENAI_COMPLETION = {
    "id": "chatcmpl-loopback",
    "object": "chat.completion",
    "created": 0,
    "model": "loopback",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
}


def _error(status: int, code: str, message: str) -> web.Response:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


def _canonical_query(raw_query: str) -> str:
    pairs = []
    for pair in raw_query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class LoopbackS3:
    """``with LoopbackS3(sts) as s3:``; ``s3.endpoint_url``; ``s3.calls``."""

    def __init__(self, sts: LoopbackSTS) -> None:
        self._sts = sts
        self._lock = threading.Lock()
        self._calls: list[S3Call] = []
        self.objects: dict[str, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._rejections: list[tuple[int, str]] = []
        self._rejected_keys: dict[str, tuple[int, str]] = {}

    def reject_key(self, access_key_id: str, code: str = "ExpiredToken", status: int = 400) -> None:
        """Answer every request signed with ``access_key_id`` with this S3 error."""
        with self._lock:
            self._rejected_keys[access_key_id] = (status, code)

    def reject_next(self, code: str, status: int = 400, count: int = 1) -> None:
        """Answer the next ``count`` authenticated requests with this S3 error."""
        with self._lock:
            self._rejections += [(status, code)] * count

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[S3Call]:
        with self._lock:
            return list(self._calls)

    def _record(
        self, request: web.BaseRequest, key: str | None, arn: str | None, outcome: str
    ) -> None:
        with self._lock:
            self._calls.append(
                S3Call(
                    request.method,
                    request.path,
                    key,
                    arn,
                    outcome,
                    time.time(),
                    request.rel_url.query_string,
                )
            )

    def _authenticate(
        self, request: web.BaseRequest, body: bytes
    ) -> tuple[str, str] | web.Response:
        header = request.headers.get("Authorization", "")
        algorithm, _, rest = header.partition(" ")
        if algorithm != "AWS4-HMAC-SHA256":
            return _error(403, "AccessDenied", "Access Denied")
        fields = dict(item.strip().partition("=")[::2] for item in rest.split(",") if "=" in item)
        access_key, date, region, service, _ = (fields.get("Credential", "") + "////").split("/")[
            :5
        ]
        identity = self._sts._lookup(access_key)
        if identity is None:
            return _error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        token = request.headers.get("X-Amz-Security-Token")
        if (token or None) != identity.session_token:
            return _error(
                400, "InvalidToken", "The provided token is malformed or otherwise invalid."
            )
        if identity.expiration is not None and time.time() >= identity.expiration:
            return _error(400, "ExpiredToken", "The provided token has expired.")
        if service not in ("s3", "bedrock"):
            return _error(403, "SignatureDoesNotMatch", f"scoped to {service!r}")
        payload = request.headers.get("X-Amz-Content-SHA256", "")
        if service != "s3" and not payload:
            payload = hashlib.sha256(body).hexdigest()
        if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
            return _error(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        signed = fields.get("SignedHeaders", "").split(";")
        path = request.raw_path.split("?", 1)[0]
        amz_date = request.headers.get("X-Amz-Date", "")
        canonical = "\n".join(
            [
                request.method,
                path if service == "s3" else quote(path, safe="/~"),
                _canonical_query(request.rel_url.raw_query_string),
                "".join(
                    f"{h}:{','.join(' '.join(v.split()) for v in request.headers.getall(h, []))}\n"
                    for h in signed
                ),
                fields.get("SignedHeaders", ""),
                payload,
            ]
        )
        scope = [date, region, service, "aws4_request"]
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                "/".join(scope),
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("AWS4" + identity.secret_access_key).encode()
        for part in scope:
            key = _hmac(key, part)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if "host" not in signed or not hmac.compare_digest(expected, fields.get("Signature", "")):
            return _error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return access_key, identity.arn

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Expect", "").lower() == "100-continue":
            # botocore's PutObject waits for it (aiohttp's low-level server sends none).
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await request.read()
        auth = self._authenticate(request, body)
        if isinstance(auth, web.Response):
            code = auth.text.split("<Code>", 1)[1].split("</Code>", 1)[0] if auth.text else "?"
            self._record(request, None, None, code)
            return auth
        access_key, arn = auth
        with self._lock:
            rejection = self._rejected_keys.get(access_key)
            if rejection is None and self._rejections:
                rejection = self._rejections.pop(0)
        if rejection is not None:
            self._record(request, access_key, arn, rejection[1])
            return _error(rejection[0], rejection[1], "Rejected by the test.")
        self._record(request, access_key, arn, "ok")
        if request.method == "POST" and request.path.startswith("/model/"):
            return web.json_response(_ANTHROPIC_MESSAGE)
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            return web.json_response(_OPENAI_COMPLETION)
        bucket, _, key = unquote(request.path.lstrip("/")).partition("/")
        if request.method == "PUT":
            with self._lock:
                self.objects[f"{bucket}/{key}"] = body
            etag = hashlib.md5(body).hexdigest()
            return web.Response(status=200, headers={"ETag": f'"{etag}"'})
        if request.method in ("GET", "HEAD") and key:
            with self._lock:
                data = self.objects.get(f"{bucket}/{key}")
            if data is None:
                return _error(404, "NoSuchKey", "The specified key does not exist.")
            headers = {
                "ETag": f'"{hashlib.md5(data).hexdigest()}"',
                "Last-Modified": datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
                "Content-Length": str(len(data)),
            }
            if request.method == "HEAD":
                return web.Response(status=200, headers=headers)
            return web.Response(status=200, body=data, headers=headers)
        if request.method == "GET":
            prefix = request.query.get("prefix", "")
            with self._lock:
                names = sorted(
                    k.partition("/")[2] for k in self.objects if k.startswith(f"{bucket}/{prefix}")
                )
                sizes = {n: len(self.objects[f"{bucket}/{n}"]) for n in names}
            # Pages of max-keys, the continuation token being the last key sent.
            after = request.query.get("continuation-token", "")
            names = [n for n in names if n > after]
            max_keys = int(request.query.get("max-keys", "1000"))
            page, truncated = names[:max_keys], len(names) > max_keys
            contents = "".join(
                f'<Contents><Key>{escape(n)}</Key><Size>{sizes[n]}</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"x"</ETag><StorageClass>STANDARD</StorageClass></Contents>'
                for n in page
            )
            following = (
                f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>"
                if truncated
                else ""
            )
            xml = (
                "<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>{str(truncated).lower()}</IsTruncated>"
                f"{following}{contents}</ListBucketResult>"
            )
            return web.Response(status=200, body=xml.encode(), content_type="application/xml")
        return _error(405, "MethodNotAllowed", "The specified method is not allowed.")

    def __enter__(self) -> LoopbackS3:
        ready = threading.Event()

        async def setup() -> None:
            self._runner = web.ServerRunner(web.Server(self._handle, access_log=None))
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(setup())
            finally:
                ready.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="LoopbackS3", daemon=True)
        self._thread.start()
        if not ready.wait(30) or not self.port:
            raise RuntimeError("LoopbackS3 did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

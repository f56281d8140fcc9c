"""The faults :meth:`LoopbackSTS.fail_next` can inject, and how each one answers.

To add a fault: name it in :data:`Fault` (and its docstring), then answer it in
:func:`respond` (a fault that replaces the response) or, like ``"trickle"``, in the
server's dispatch (a fault that changes how a real response is delivered).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, get_args

from aiohttp import web

from ._identities import Identity
from ._protocol import error_body, json_response, rest_json_error, text_response, xml_response

__all__ = [
    "FAULTS",
    "HANG_CAP",
    "TRICKLE_INTERVAL",
    "TRICKLE_TOTAL",
    "Fault",
    "Pause",
    "Stopping",
    "drop",
    "respond",
    "respond_container",
    "respond_instance_metadata",
    "respond_sso",
    "trickle",
]

Fault = Literal["throttling", "5xx", "access_denied", "drop", "hang", "malformed", "trickle"]
"""A one-shot fault for :meth:`LoopbackSTS.fail_next`:

- ``"throttling"``: HTTP 400 ``Throttling`` "Rate exceeded".
- ``"5xx"``: HTTP 500 ``InternalFailure``.
- ``"access_denied"``: HTTP 403 ``AccessDenied`` "User: ... is not authorized to perform:
  sts:AssumeRole on resource: ...".
- ``"drop"``: the connection is closed without any HTTP response.
- ``"hang"``: no response until the server stops (at most 120 s); then the connection is
  closed without a response.
- ``"malformed"``: HTTP 200 with a body that is not XML.
- ``"trickle"``: HTTP 200 with a valid response (real, usable credentials) whose body is
  sent a few bytes every 0.5 s, so that the whole takes about 30 s. Each read returns
  data well within any read timeout; only an overall deadline catches it.

The same faults apply to the sources of a parent's credentials (``fail_next(fault,
action=...)``), each answering in its own format: ``AssumeRoleWithWebIdentity`` as
``AssumeRole``; the container-credentials endpoint with HTTP 429, 500 and 403 and a
``{"code": ..., "message": ...}`` body; the SSO portal (``GetRoleCredentials``) with 429
``TooManyRequestsException``, 500 ``InternalServerException`` and 403
``ForbiddenException``, its code in the ``x-amzn-ErrorType`` header; instance metadata with
HTTP 429, 500 and 403 in plain text. ``"malformed"`` is then a 200 whose body is not JSON.
"""

FAULTS: frozenset[str] = frozenset(get_args(Fault))
"""Every valid :data:`Fault` name."""

HANG_CAP = 120.0
"""Seconds a ``"hang"`` lasts at most (the server stopping ends it sooner)."""
TRICKLE_INTERVAL = 0.5
"""Seconds between two pieces of a ``"trickle"`` body."""
TRICKLE_TOTAL = 30.0
"""Seconds a ``"trickle"`` body takes in all."""


class Stopping(Exception):
    """The server is stopping: drop the connection."""


Pause = Callable[[float], Awaitable[None]]
"""Sleep for so many seconds, or raise :class:`Stopping` as soon as the server stops."""


def drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection without an HTTP response."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # aiohttp cannot write this to the closed transport and treats the request as
    # a premature client disconnection: the client gets no response at all.
    return web.Response(status=500)


async def respond(
    fault: str,
    request: web.BaseRequest,
    caller: Identity | None,
    params: Mapping[str, str],
    request_id: str,
    pause: Pause,
) -> web.StreamResponse:
    """Answer an ``AssumeRole`` (or, with no ``caller``, an ``AssumeRoleWithWebIdentity``)
    request with ``fault`` instead of its real response."""
    if fault == "throttling":
        return xml_response(
            400, error_body("Throttling", "Rate exceeded", request_id, 400), request_id
        )
    if fault == "5xx":
        message = (
            "The request processing has failed because of an unknown error, exception or failure."
        )
        return xml_response(
            500, error_body("InternalFailure", message, request_id, 500), request_id
        )
    if fault == "access_denied":
        if caller is None:  # AssumeRoleWithWebIdentity is unsigned
            message = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
        else:
            message = (
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole "
                f"on resource: {params.get('RoleArn', '')}"
            )
        return xml_response(403, error_body("AccessDenied", message, request_id, 403), request_id)
    if fault == "malformed":
        return web.Response(
            status=200,
            body=b"upstream error: this is not an XML document {",
            headers={"Content-Type": "text/plain", "x-amzn-RequestId": request_id},
        )
    if fault == "hang":
        with contextlib.suppress(Stopping):
            await pause(HANG_CAP)
    return drop(request)  # "drop", and "hang" once it is over


_CONTAINER_ERRORS = {
    "throttling": (429, "TooManyRequestsException", "Rate exceeded"),
    "5xx": (500, "InternalFailure", "Internal error in the credentials endpoint"),
    "access_denied": (403, "AccessDeniedException", "Not authorized to get credentials"),
}


_SSO_ERRORS = {
    "throttling": (429, "TooManyRequestsException", "Rate exceeded"),
    "5xx": (500, "InternalServerException", "An internal error occurred"),
    "access_denied": (403, "ForbiddenException", "No access"),
}

_INSTANCE_METADATA_ERRORS = {
    "throttling": (429, b"Too Many Requests"),
    "5xx": (500, b"Internal Server Error"),
    "access_denied": (403, b"Forbidden"),
}


async def _malformed_or_drop(
    fault: str, request: web.BaseRequest, request_id: str, pause: Pause
) -> web.StreamResponse:
    """The faults a JSON source answers alike: a body that is not JSON, a hang, a drop."""
    if fault == "malformed":
        return web.Response(
            status=200,
            body=b"upstream error: this is not a JSON document {",
            headers={"Content-Type": "text/plain", "x-amzn-RequestId": request_id},
        )
    if fault == "hang":
        with contextlib.suppress(Stopping):
            await pause(HANG_CAP)
    return drop(request)


async def respond_container(
    fault: str, request: web.BaseRequest, request_id: str, pause: Pause
) -> web.StreamResponse:
    """Answer a container-credentials request with ``fault`` instead of its credentials."""
    if fault in _CONTAINER_ERRORS:
        status, code, message = _CONTAINER_ERRORS[fault]
        body = json.dumps({"code": code, "message": message}).encode()
        return json_response(status, body, request_id)
    return await _malformed_or_drop(fault, request, request_id, pause)


async def respond_sso(
    fault: str, request: web.BaseRequest, request_id: str, pause: Pause
) -> web.StreamResponse:
    """Answer an SSO portal ``GetRoleCredentials`` request with ``fault``."""
    if fault in _SSO_ERRORS:
        status, code, message = _SSO_ERRORS[fault]
        return rest_json_error(status, code, message, request_id)
    return await _malformed_or_drop(fault, request, request_id, pause)


async def respond_instance_metadata(
    fault: str, request: web.BaseRequest, request_id: str, pause: Pause
) -> web.StreamResponse:
    """Answer an instance metadata request (token, role name or credentials) with ``fault``."""
    if fault in _INSTANCE_METADATA_ERRORS:
        status, body = _INSTANCE_METADATA_ERRORS[fault]
        return text_response(status, body)
    return await _malformed_or_drop(fault, request, request_id, pause)


async def trickle(
    request: web.BaseRequest,
    status: int,
    payload: bytes,
    request_id: str,
    pause: Pause,
    content_type: str | None = None,
) -> web.StreamResponse:
    """Send ``payload`` a few bytes every ``TRICKLE_INTERVAL`` over ``TRICKLE_TOTAL``."""
    if content_type is None:
        content_type = "application/json" if payload[:1] == b"{" else "text/xml"
    response = web.StreamResponse(
        status=status, headers={"Content-Type": content_type, "x-amzn-RequestId": request_id}
    )
    response.content_length = len(payload)
    await response.prepare(request)
    steps = int(TRICKLE_TOTAL / TRICKLE_INTERVAL)
    size = max(1, math.ceil(len(payload) / steps))
    for offset in range(0, len(payload), size):
        await pause(TRICKLE_INTERVAL)
        await response.write(payload[offset : offset + size])
    await response.write_eof()
    return response

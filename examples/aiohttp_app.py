"""An aiohttp service that acts as an assumed role on every request.

The parent session is made once, at startup (a ``cleanup_ctx``). Each request gets its
child session from ``await assume_role(parent, ROLE_ARN)``: a repeat call with the same
arguments is a dictionary lookup that returns the same child, so the service makes about
one AssumeRole call per credential lifetime, whatever its request rate.

Run it (the parent's credentials come from the usual places: environment, profile, ...)::

    pip install "aio-assume-role-lib"
    ROLE_ARN=arn:aws:iam::123456789012:role/Reader python examples/aiohttp_app.py
    curl http://127.0.0.1:8080/whoami

Its test, ``tests/test_examples.py``, runs it against a loopback STS endpoint.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.session import AioSession
from aiohttp import web

from aio_assume_role_lib import assume_role

DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/Reader"
ROLE_SESSION_NAME = "aiohttp-example"


class ClientCache:
    """One aiobotocore client per (session, service), kept for the life of the app.

    A new client's first request sets up its HTTP session: a TLS context with the CA
    bundle loaded (tens of milliseconds of CPU, 50-100 ms) and a connection pool. A client
    per request would pay that on every request and never reuse a connection. Since
    ``assume_role()`` returns the same child for the same arguments, keying on the child
    session gives each role one client, made on first use and closed at shutdown.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[AioSession, str], Any] = {}
        self._lock = asyncio.Lock()  # so that concurrent first requests make one client
        self._exit_stack = AsyncExitStack()

    async def get(self, session: AioSession, service: str) -> Any:
        client = self._clients.get((session, service))
        if client is None:
            async with self._lock:
                client = self._clients.get((session, service))
                if client is None:
                    client = await self._exit_stack.enter_async_context(
                        session.create_client(service)
                    )
                    self._clients[session, service] = client
        return client

    async def aclose(self) -> None:
        self._clients.clear()
        await self._exit_stack.aclose()


# --8<-- [start:app]
PARENT = web.AppKey("parent", AioSession)
ROLE_ARN = web.AppKey("role_arn", str)
CLIENTS = web.AppKey("clients", ClientCache)


async def aws_context(app: web.Application) -> AsyncIterator[None]:
    # The parent session: its credentials (and region) come from the environment, a
    # profile, an instance role...; every child refreshes its own from them.
    app[PARENT] = AioSession()
    app[ROLE_ARN] = os.environ.get("ROLE_ARN", DEFAULT_ROLE_ARN)
    app[CLIENTS] = ClientCache()
    yield
    await app[CLIENTS].aclose()


async def whoami(request: web.Request) -> web.Response:
    app = request.app
    # The same child (and credentials) for every request: a dictionary lookup.
    session = await assume_role(app[PARENT], app[ROLE_ARN], RoleSessionName=ROLE_SESSION_NAME)
    sts = await app[CLIENTS].get(session, "sts")
    identity = await sts.get_caller_identity()
    return web.json_response({"arn": identity["Arn"], "account": identity["Account"]})


def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(aws_context)
    app.router.add_get("/whoami", whoami)
    return app


# --8<-- [end:app]


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)

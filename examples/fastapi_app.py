"""A FastAPI service that acts as an assumed role on every request.

The parent session is made once, at startup. Each request gets its child session from
``await assume_role(parent, ROLE_ARN)``: a repeat call with the same arguments is a
dictionary lookup that returns the same child, so the service makes about one AssumeRole
call per credential lifetime, whatever its request rate.

Run it (the parent's credentials come from the usual places: environment, profile, ...)::

    pip install "aio-assume-role-lib" fastapi uvicorn
    ROLE_ARN=arn:aws:iam::123456789012:role/Reader python examples/fastapi_app.py
    curl http://127.0.0.1:8000/whoami

Its test, ``tests/test_examples.py``, runs it against a loopback STS endpoint.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from aiobotocore.session import AioSession
from fastapi import Depends, FastAPI, Request

from aio_assume_role_lib import assume_role

DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/Reader"
ROLE_SESSION_NAME = "fastapi-example"


# --8<-- [start:clients]
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


# --8<-- [end:clients]


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The parent session: its credentials (and region) come from the environment, a
    # profile, an instance role...; every child refreshes its own from them.
    app.state.parent = AioSession()
    app.state.role_arn = os.environ.get("ROLE_ARN", DEFAULT_ROLE_ARN)
    app.state.clients = ClientCache()
    try:
        yield
    finally:
        await app.state.clients.aclose()


app = FastAPI(lifespan=lifespan)
# --8<-- [end:lifespan]


# --8<-- [start:dependency]
async def role_session(request: Request) -> AioSession:
    """The request's session as ROLE_ARN: the same child (and credentials) every time."""
    state = request.app.state
    return await assume_role(state.parent, state.role_arn, RoleSessionName=ROLE_SESSION_NAME)


RoleSession = Annotated[AioSession, Depends(role_session)]


@app.get("/whoami")
async def whoami(request: Request, session: RoleSession) -> dict[str, str]:
    sts = await request.app.state.clients.get(session, "sts")
    identity = await sts.get_caller_identity()
    return {"arn": identity["Arn"], "account": identity["Account"]}


# --8<-- [end:dependency]


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)

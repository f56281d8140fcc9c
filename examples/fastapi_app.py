"""A FastAPI service that acts as an assumed role on every request.

The parent session is made once, at startup. Each request gets its child session from
``await assume_role(parent, ROLE_ARN)``: a repeat call with the same arguments is a
dictionary lookup that returns the same child, so the service makes about one AssumeRole
call per credential lifetime, whatever its request rate. Its clients come from a
``ClientPool``: one per role and service, shared by all requests.

Run it (the parent's credentials come from the usual places: environment, profile, ...)::

    pip install "aio-assume-role-lib" fastapi uvicorn
    ROLE_ARN=arn:aws:iam::123456789012:role/Reader python fastapi_app.py
    curl http://127.0.0.1:8000/whoami

With several workers (``uvicorn --workers 4 fastapi_app:app``), set ``ROLE_CACHE_DIR`` to
a directory they share: the workers then make one AssumeRole call per lifetime between
them (see docs/guides/processes.md).

Its test, ``tests/test_examples.py``, runs it against a loopback STS endpoint.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from aiobotocore.session import AioSession
from fastapi import Depends, FastAPI, Request

from aio_assume_role_lib import ClientPool, JSONFileCache, assume_role

ROLE_SESSION_NAME = "fastapi-example"


def role_arn_from_environment() -> str:
    """The role this service acts as, from ``ROLE_ARN``; a clear error when it is unset."""
    role_arn = os.environ.get("ROLE_ARN", "").strip()
    if not role_arn:
        raise RuntimeError(
            "ROLE_ARN is not set: set it to the ARN of the role this service acts as, "
            "for example ROLE_ARN=arn:aws:iam::123456789012:role/Reader"
        )
    return role_arn


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The parent session: its credentials (and region) come from the environment, a
    # profile, an instance role...; every child refreshes its own from them.
    app.state.parent = AioSession()
    app.state.role_arn = role_arn_from_environment()
    # Worker processes share each refresh through a cache directory, if one is given.
    cache_dir = os.environ.get("ROLE_CACHE_DIR")
    app.state.cache = JSONFileCache(cache_dir) if cache_dir else None
    # Clients shared by every request: one per role and service, made on first use,
    # at most 64 open (the least recently used idle one goes first), all closed on exit.
    async with ClientPool(max_clients=64, idle_timeout=300) as clients:
        app.state.clients = clients
        yield


app = FastAPI(lifespan=lifespan)
# --8<-- [end:lifespan]


# --8<-- [start:dependency]
async def role_session(request: Request) -> AioSession:
    """The request's session as ROLE_ARN: the same child (and credentials) every time."""
    state = request.app.state
    parent: AioSession = state.parent  # app.state is untyped: say what it holds
    return await assume_role(
        parent, state.role_arn, RoleSessionName=ROLE_SESSION_NAME, cache=state.cache
    )


RoleSession = Annotated[AioSession, Depends(role_session)]


@app.get("/whoami")
async def whoami(request: Request, session: RoleSession) -> dict[str, str]:
    async with request.app.state.clients.client(session, "sts") as sts:
        identity = await sts.get_caller_identity()
    return {"arn": identity["Arn"], "account": identity["Account"]}


# --8<-- [end:dependency]


if __name__ == "__main__":
    import uvicorn

    try:  # fail before serving, in one line, rather than at startup with a traceback
        role_arn_from_environment()
    except RuntimeError as error:
        raise SystemExit(f"fastapi_app.py: {error}") from None
    uvicorn.run(app, host="127.0.0.1", port=8000)

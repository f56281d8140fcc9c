"""An aiohttp service that acts as an assumed role on every request.

The parent session is made once, at startup (a ``cleanup_ctx``). Each request gets its
child session from ``await assume_role(parent, ROLE_ARN)``: a repeat call with the same
arguments is a dictionary lookup that returns the same child, so the service makes about
one AssumeRole call per credential lifetime, whatever its request rate. Its clients come
from a ``ClientPool``: one per role and service, shared by all requests.

Run it (the parent's credentials come from the usual places: environment, profile, ...)::

    pip install "aio-assume-role-lib"
    ROLE_ARN=arn:aws:iam::123456789012:role/Reader python aiohttp_app.py
    curl http://127.0.0.1:8080/whoami

Its test, ``tests/test_examples.py``, runs it against a loopback STS endpoint.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiobotocore.session import AioSession
from aiohttp import web

from aio_assume_role_lib import ClientPool, assume_role

ROLE_SESSION_NAME = "aiohttp-example"


def role_arn_from_environment() -> str:
    """The role this service acts as, from ``ROLE_ARN``; a clear error when it is unset."""
    role_arn = os.environ.get("ROLE_ARN", "").strip()
    if not role_arn:
        raise RuntimeError(
            "ROLE_ARN is not set: set it to the ARN of the role this service acts as, "
            "for example ROLE_ARN=arn:aws:iam::123456789012:role/Reader"
        )
    return role_arn


# --8<-- [start:app]
PARENT = web.AppKey("parent", AioSession)
ROLE_ARN = web.AppKey("role_arn", str)
CLIENTS = web.AppKey("clients", ClientPool)


async def aws_context(app: web.Application) -> AsyncIterator[None]:
    # The parent session: its credentials (and region) come from the environment, a
    # profile, an instance role...; every child refreshes its own from them.
    app[PARENT] = AioSession()
    app[ROLE_ARN] = role_arn_from_environment()
    # Clients shared by every request: one per role and service, made on first use,
    # at most 64 open (the least recently used idle one goes first), all closed on exit.
    async with ClientPool(max_clients=64, idle_timeout=300) as clients:
        app[CLIENTS] = clients
        yield


async def whoami(request: web.Request) -> web.Response:
    app = request.app
    # The same child (and credentials) for every request: a dictionary lookup.
    session = await assume_role(app[PARENT], app[ROLE_ARN], RoleSessionName=ROLE_SESSION_NAME)
    async with app[CLIENTS].client(session, "sts") as sts:
        identity = await sts.get_caller_identity()
    return web.json_response({"arn": identity["Arn"], "account": identity["Account"]})


def create_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(aws_context)
    app.router.add_get("/whoami", whoami)
    return app


# --8<-- [end:app]


if __name__ == "__main__":
    try:  # fail before serving, in one line, rather than at startup with a traceback
        role_arn_from_environment()
    except RuntimeError as error:
        raise SystemExit(f"aiohttp_app.py: {error}") from None
    web.run_app(create_app(), host="127.0.0.1", port=8080)

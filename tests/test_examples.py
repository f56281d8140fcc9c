"""The example services in examples/, run under real servers against the loopback STS.

Each app is started on 127.0.0.1 (uvicorn for FastAPI, aiohttp's own runner), sent
REQUESTS concurrent requests, and must answer every one as the assumed role while the
STS endpoint sees exactly one AssumeRole call.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import anyio
import pytest
import uvicorn
from aiobotocore.session import AioSession
from aiohttp import web

from aio_assume_role_lib import get_assumed_role_session_arn
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
REQUESTS = 500
ROLE_ARN = "arn:aws:iam::111111111111:role/ExampleReader"


def load_example(name: str) -> ModuleType:
    """A fresh copy of examples/<name>.py (so every test gets its own app object)."""
    module_name = f"_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[module_name]
    return module


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving_with_uvicorn(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free port; always shut it down."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(HANG_SECONDS):
            while not server.started:
                if task.done():  # failed at startup (the lifespan raised, say)
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with anyio.fail_after(HANG_SECONDS):
            await task
        sock.close()


@asynccontextmanager
async def serving_with_aiohttp(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp app with its runner on a free port; always clean it up."""
    runner = web.AppRunner(app)
    await runner.setup()  # runs the app's startup and cleanup_ctx
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        with anyio.fail_after(HANG_SECONDS):
            await runner.cleanup()


async def get_whoami(http: aiohttp.ClientSession) -> tuple[int, Any]:
    async with http.get("/whoami") as response:
        return response.status, await response.json()


async def many_concurrent_requests(base_url: str, count: int) -> list[tuple[int, Any]]:
    """``count`` GET /whoami at once, each on its own connection.

    (aiohttp's client, not httpx's: httpx's pool slows down badly with hundreds of
    connections and spends most of the test's time in its own bookkeeping.)
    """
    connector = aiohttp.TCPConnector(limit=count)
    timeout = aiohttp.ClientTimeout(total=HANG_SECONDS)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:
        return await asyncio.gather(*(get_whoami(http) for _ in range(count)))


def check_answers(responses: list[tuple[int, Any]], sts: LoopbackSTS, session_name: str) -> None:
    expected_arn = get_assumed_role_session_arn("111111111111", "ExampleReader", session_name)
    assert len(responses) == REQUESTS
    assert {status for status, _ in responses} == {200}
    assert {body["arn"] for _, body in responses} == {expected_arn}

    # One AssumeRole call for all of them, and every GetCallerIdentity signed with the
    # credentials it issued.
    assert sts.assume_role_count == 1
    (assume_role_call,) = [call for call in sts.calls if call.action == "AssumeRole"]
    assert assume_role_call.outcome == "ok"
    assert assume_role_call.params["RoleArn"] == ROLE_ARN
    identity_calls = [call for call in sts.calls if call.action == "GetCallerIdentity"]
    assert len(identity_calls) == REQUESTS
    assert {call.outcome for call in identity_calls} == {"ok"}
    assert {call.access_key_id for call in identity_calls} == {
        assume_role_call.issued_access_key_id
    }


async def test_fastapi_app(sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLE_ARN", ROLE_ARN)
    example = load_example("fastapi_app")
    with anyio.fail_after(HANG_SECONDS):
        async with serving_with_uvicorn(example.app) as base_url:
            responses = await many_concurrent_requests(base_url, REQUESTS)
    check_answers(responses, sts, example.ROLE_SESSION_NAME)


async def test_aiohttp_app(sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLE_ARN", ROLE_ARN)
    example = load_example("aiohttp_app")
    with anyio.fail_after(HANG_SECONDS):
        async with serving_with_aiohttp(example.create_app()) as base_url:
            responses = await many_concurrent_requests(base_url, REQUESTS)
    check_answers(responses, sts, example.ROLE_SESSION_NAME)


@pytest.mark.parametrize("value", [None, "", "  "], ids=["unset", "empty", "blank"])
async def test_the_apps_refuse_to_start_without_a_role(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """No made-up default role: startup fails, naming ROLE_ARN, and STS is never called."""
    if value is None:
        monkeypatch.delenv("ROLE_ARN", raising=False)
    else:
        monkeypatch.setenv("ROLE_ARN", value)
    with pytest.raises(RuntimeError, match=r"^ROLE_ARN is not set: set it to the ARN"):
        async with serving_with_aiohttp(load_example("aiohttp_app").create_app()):
            pass
    fastapi_app = load_example("fastapi_app")
    with pytest.raises(RuntimeError, match=r"^ROLE_ARN is not set: set it to the ARN"):
        async with fastapi_app.lifespan(fastapi_app.app):  # what uvicorn runs at startup
            pass
    assert sts.calls == []


@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
def test_the_apps_run_as_scripts_say_so_in_one_line(name: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "ROLE_ARN"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{name}.py: ROLE_ARN is not set: set it to the ARN of the role this service acts as, "
        "for example ROLE_ARN=arn:aws:iam::123456789012:role/Reader"
    ]


def one_certificate_bundle(directory: Path) -> Path:
    """A CA bundle of one certificate (the first of botocore's default bundle).

    Every new aiobotocore client loads its CA bundle, HTTP or not: ~100 ms of CPU for the
    full bundle, most of the fan-out test's time. The test talks plain HTTP, so which
    certificates are trusted does not matter, only how long loading them takes.
    """
    from botocore.httpsession import get_cert_path

    text = Path(get_cert_path(True)).read_text()
    end = "-----END CERTIFICATE-----"
    first = text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)]
    bundle = directory / "one-ca.pem"
    bundle.write_text(first + "\n")
    return bundle


FANOUT_ROLES = 160  # five times the pool's bound: plenty of evictions


async def test_etl_fanout_over_160_roles_keeps_at_most_32_clients_open(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(one_certificate_bundle(tmp_path)))
    example = load_example("etl_fanout")
    accounts = [f"{100000000000 + n:012d}" for n in range(FANOUT_ROLES)]
    lines: list[str] = []
    with anyio.fail_after(240):
        report = await example.fan_out(
            AioSession(), accounts, "EtlReader", max_clients=32, progress=lines.append
        )
    assert report.failed == {}
    assert sorted(report.done) == accounts
    assert report.done[accounts[7]] == get_assumed_role_session_arn(
        accounts[7], "EtlReader", example.ROLE_SESSION_NAME
    )
    assert report.clients_opened == FANOUT_ROLES  # one client per role...
    assert report.peak_open_clients == 32  # ...at most 32 of them open at once
    assert sts.assume_role_count == FANOUT_ROLES
    # Progress every 10%, the last line when all are done.
    assert len(lines) == 10
    assert lines[-1].startswith(f"{FANOUT_ROLES}/{FANOUT_ROLES} accounts, 0 failed")

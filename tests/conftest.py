"""Shared fixtures: a clean AWS environment, the loopback STS, moto's server, parent sessions.

The AWS environment and the loopback STS come from the plugin the library ships
(``aio_assume_role_lib.testing.pytest_plugin``). Every test runs with HOME,
AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE pointing into a temporary directory and
every other AWS_* variable removed, so the developer's own AWS configuration never leaks
in. STS is reached through ``AWS_ENDPOINT_URL_STS`` (SPEC §3.10).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import botocore.loaders
import botocore.session
import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib.testing import LoopbackSTS

HAS_AIOBOTO3 = importlib.util.find_spec("aioboto3") is not None
HAS_TRIO = importlib.util.find_spec("trio") is not None and any(
    importlib.util.find_spec(name) is not None for name in ("httpx2", "httpx")
)

# A bound on a wait that only catches a hang (a failing run ends too). dev.py runs the
# untimed test files in the background at the lowest CPU priority, where a process can
# be starved for tens of seconds while the timed tests run: a bound of a few seconds
# there would fail for that, not for a hang.
HANG_SECONDS = 120.0

ROLE_A = "arn:aws:iam::111111111111:role/Reader"
ROLE_B = "arn:aws:iam::222222222222:role/Writer"
ROLE_C = "arn:aws:iam::333333333333:role/path/to/Auditor"

# The project's own tests use the plugin it ships (docs/testing.md).
pytest_plugins = ["aio_assume_role_lib.testing.pytest_plugin"]

SESSION_KINDS = ["aiobotocore", "aioboto3"] if HAS_AIOBOTO3 else ["aiobotocore"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _SharedCacheLoader(botocore.loaders.Loader):
    """botocore's data loader, with one cache per search path for the whole test run.

    Every session still gets its own loader (tests that check which loader a child uses
    stay meaningful), but the JSON it loads (service models, endpoints: ~80 ms of CPU per
    new session) is parsed once per search path, as in a service that keeps its sessions.
    boto3 and aioboto3 sessions add a search path, so they get a cache of their own.
    """

    _caches: ClassVar[dict[tuple[str, ...], dict[Any, Any]]] = {}

    @property  # type: ignore[override]
    def _cache(self) -> dict[Any, Any]:
        return self._caches.setdefault(tuple(self.search_paths), {})

    @_cache.setter
    def _cache(self, value: dict[Any, Any]) -> None:
        del value  # Loader.__init__ sets an empty cache: the shared one stands


def _create_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    """What botocore.loaders.create_loader does, with the shared cache."""
    if search_path_string is None:
        return _SharedCacheLoader()
    paths = search_path_string.split(os.pathsep)
    return _SharedCacheLoader([os.path.expanduser(os.path.expandvars(p)) for p in paths])


@pytest.fixture(scope="session", autouse=True)
def service_data_parsed_once() -> Iterator[None]:
    """Sessions made in this process share loaded service data (see _SharedCacheLoader)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", _create_loader)
        yield


@pytest.fixture(autouse=True)
def clean_aws_env(isolated_aws_env: Path) -> Path:
    """Every test runs in the plugin's isolated AWS environment (HOME there too)."""
    return isolated_aws_env


@pytest.fixture
def sts(loopback_sts: LoopbackSTS) -> LoopbackSTS:
    """A running loopback STS; the process environment points at it with its root key."""
    return loopback_sts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    def __init__(self, executable: str) -> None:
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def environ(self) -> dict[str, str]:
        # moto accepts any key; these are placeholders, not secrets.
        return {
            "AWS_ENDPOINT_URL_STS": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "AKIAMOTOROOTEXAMPLE1",
            "AWS_SECRET_ACCESS_KEY": "moto-root-secret-placeholder",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _moto_executable() -> str | None:
    configured = os.environ.get("AIO_ARL_MOTO_SERVER")
    if configured:
        return configured
    return shutil.which("moto_server")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    executable = _moto_executable()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("moto's server is required in CI: set AIO_ARL_MOTO_SERVER (dev.py does)")
        pytest.skip("moto's server is not installed; run the suite through `python3 dev.py test`")
    server = MotoServer(executable)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    for name, value in moto_server.environ().items():
        monkeypatch.setenv(name, value)
    return moto_server


@pytest.fixture(params=["loopback", "moto"])
def any_sts(request: pytest.FixtureRequest) -> Any:
    """The same test against our loopback STS and against moto's (the conformance peer)."""
    name = "sts" if request.param == "loopback" else "moto"
    return request.getfixturevalue(name)


@pytest.fixture(params=SESSION_KINDS)
def session_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_parent(kind: str = "aiobotocore") -> Any:
    """A parent session reading credentials and region from the environment."""
    if kind == "aioboto3":
        import aioboto3

        return aioboto3.Session()
    return AioSession()


def httpx_parent() -> AioSession:
    """An AioSession whose clients (and its children's) use aiobotocore's httpx backend,
    the one trio needs (stack S1)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.httpxsession import HttpxSession

    parent = AioSession()
    parent.set_default_client_config(AioConfig(http_session_cls=HttpxSession))
    return parent


# For tests that run on asyncio and, where it is installed, on trio.
ASYNCIO_AND_TRIO = [
    "asyncio",
    pytest.param(
        "trio",
        marks=[
            pytest.mark.trio,
            pytest.mark.skipif(not HAS_TRIO, reason="trio is installed on stack S1 only"),
        ],
    ),
]


def botocore_session(session: Any) -> AioSession:
    return session if isinstance(session, AioSession) else session._session


@pytest.fixture
def parent(session_kind: str, request: pytest.FixtureRequest) -> Any:
    """A parent session of each kind, signing with the loopback STS's root key."""
    if session_kind == "aioboto3":
        return request.getfixturevalue("loopback_aioboto3_session")
    return request.getfixturevalue("loopback_parent_session")


def client(session: Any, service: str, **kwargs: Any) -> Any:
    """An async client context manager from either kind of session."""
    if isinstance(session, AioSession):
        return session.create_client(service, **kwargs)
    return session.client(service, **kwargs)


async def caller_arn(session: Any, **client_kwargs: Any) -> str:
    """The ARN GetCallerIdentity reports for a session."""
    async with client(session, "sts", **client_kwargs) as sts_client:
        return str((await sts_client.get_caller_identity())["Arn"])


@dataclass
class Outcome:
    """What one operation of a traffic loop did (tests/test_refresh_engine, test_reliability)."""

    started: float  # time.time() when the operation began
    duration: float  # seconds
    value: Any = None
    error: BaseException | None = None


async def attempt(operation: Callable[[], Awaitable[Any]]) -> Outcome:
    """Run ``operation`` and record its outcome instead of raising."""
    started, clock = time.time(), time.perf_counter()
    try:
        value = await operation()
    except Exception as exc:
        return Outcome(started, time.perf_counter() - clock, error=exc)
    return Outcome(started, time.perf_counter() - clock, value=value)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    del config
    for item in items:
        if "moto" in getattr(item, "fixturenames", ()) or "any_sts" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.moto)

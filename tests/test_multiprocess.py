"""Processes of one host share each refresh through ``JSONFileCache`` (issue 14).

Real worker processes (``tests/_process_worker.py``, and a real ``uvicorn --workers 4``)
talk to the loopback STS running in this process, through its ``environ()``; a shared
cache directory and its lock files are all that connects them. Timing-sensitive: these
tests are in dev.py's TIMED_TESTS (run one file at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import botocore.utils
import pytest

import aio_assume_role_lib
from aio_assume_role_lib import JSONFileCache, RefreshPolicy, _cache, assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS, botocore_session, make_parent

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "win32", reason="flock and POSIX processes"
)

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_process_worker.py")
SRC = Path(aio_assume_role_lib.__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/Shared"
PROCESSES = 8


def _environ(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # the isolated AWS environment, pointed at the loopback STS
    # The children import the package this process imported (a worktree's, say).
    env["PYTHONPATH"] = os.pathsep.join(part for part in (str(SRC), env.get("PYTHONPATH")) if part)
    env.update(extra)
    return env


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The next stdout line of ``process``, failing the test at ``deadline``."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(max(deadline - time.monotonic(), 0)):
            raise AssertionError("a worker process did not answer in time")
    return process.stdout.readline().strip()


@contextlib.contextmanager
def _workers(count: int, **options: Any) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` worker processes, imports done, each waiting for "go" on its stdin."""
    options = {"role": ROLE, **options}
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_environ(),
        )
        for _ in range(count)
    ]
    try:
        deadline = time.monotonic() + 60
        for process in processes:
            assert _read_line(process, deadline) == "ready"
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _go(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()


def _results(processes: list[subprocess.Popen[str]], within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    results = []
    for process in processes:
        line = _read_line(process, deadline)
        assert line.startswith("{"), "a worker process failed (see its stderr above)"
        results.append(json.loads(line))
        assert process.wait(timeout=max(deadline - time.monotonic(), 1)) == 0
    return results


def _issued(sts: LoopbackSTS) -> list[Any]:
    """AssumeRole calls that issued credentials."""
    return [call for call in sts.calls if call.action == "AssumeRole" and call.outcome == "ok"]


def _lock_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.lock"))


def _the_entry(directory: Path) -> Path:
    (entry,) = directory.glob("*.json")
    return entry


# --- start-up and steady traffic -------------------------------------------------------------


def test_eight_processes_started_at_once_make_one_assume_role(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    sts.latency = 0.2  # a window wide enough for every process to find the cache empty
    cache_dir = tmp_path / "cache"
    with _workers(PROCESSES, cache=str(cache_dir), go=True) as processes:
        _go(processes)
        results = _results(processes, within=60)
    assert sts.assume_role_count == 1
    assert all(result["errors"] == 0 for result in results)
    assert sorted(p.name for p in cache_dir.iterdir()) == [
        p.name for p in cache_dir.glob("*.json")
    ]  # one entry, no lock file left
    assert len(list(cache_dir.iterdir())) == 1


def test_without_the_lock_each_process_refreshes_on_its_own(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    """The contrast: ``lock=False`` is the old behaviour (a read at start-up only)."""
    sts.latency = 0.2
    with _workers(4, cache=str(tmp_path), lock=False, go=True) as processes:
        _go(processes)
        _results(processes, within=60)
    assert sts.assume_role_count > 1


def test_eight_processes_under_steady_traffic_make_about_one_call_per_lifetime(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    lifetime, lifetimes = 4.0, 3
    sts.credential_lifetime = lifetime
    with _workers(
        PROCESSES,
        cache=str(tmp_path),
        go=True,
        run_seconds=lifetime * lifetimes,
        interval=0.05,
    ) as processes:
        _go(processes)
        results = _results(processes, within=lifetime * lifetimes + 60)
    assert all(result["errors"] == 0 for result in results)
    # Every process followed the renewals (it saw a key per lifetime, or about).
    assert all(result["keys"] >= lifetimes - 1 for result in results)
    # One at start-up, then one per lifetime, plus a margin for a renewal that lands
    # just as another process's window opens; each process on its own would make 8x.
    calls = len(_issued(sts))
    assert calls <= 1 + lifetimes + 2, calls
    assert calls < PROCESSES * lifetimes / 3


# --- a lock holder that dies or hangs ----------------------------------------------------------

# Short deadlines, so the wait for a held lock (half a try) is 5 s; generous for a
# loaded 2-core machine, where a first STS client alone can take seconds.
QUICK = {"attempt_timeout_seconds": 10.0, "try_timeout_seconds": 10.0, "max_tries": 1}
LOCK_WAIT = 5.0
PATIENT = {"attempt_timeout_seconds": 100.0, "try_timeout_seconds": 100.0, "max_tries": 1}


@contextlib.contextmanager
def _holder_stuck_in_sts(sts: LoopbackSTS, cache_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A worker that holds the key's lock while its AssumeRole hangs."""
    sts.fail_next("hang")
    with _workers(1, cache=str(cache_dir), go=True, policy=PATIENT) as (holder,):
        _go([holder])
        deadline = time.monotonic() + 30
        while not _lock_files(cache_dir):
            assert time.monotonic() < deadline, "the holder never took the lock"
            assert holder.poll() is None
            time.sleep(0.02)
        yield holder


def test_a_process_killed_while_holding_the_lock_does_not_hold_up_the_others(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    with (
        _holder_stuck_in_sts(sts, tmp_path) as holder,
        _workers(4, cache=str(tmp_path), go=True, policy=QUICK) as processes,
    ):
        _go(processes)
        time.sleep(0.3)
        os.kill(holder.pid, signal.SIGKILL)  # the kernel releases its flock
        results = _results(processes, within=30)
    # Freed at the kill, not at the end of the wait, and one of them refreshed for all.
    waits = [result["first_seconds"] for result in results]
    assert all(wait < LOCK_WAIT for wait in waits), waits
    assert len(_issued(sts)) == 1


def test_a_lock_holder_stuck_in_sts_delays_the_others_at_most_the_attempt_deadline(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    with (
        _holder_stuck_in_sts(sts, tmp_path),
        _workers(3, cache=str(tmp_path), go=True, policy=QUICK) as processes,
    ):
        _go(processes)
        results = _results(processes, within=30)
    # Each waited its bound (half a try), then refreshed without the lock, well within
    # the attempt deadline.
    waits = [result["first_seconds"] for result in results]
    assert all(LOCK_WAIT - 0.1 <= wait < QUICK["attempt_timeout_seconds"] for wait in waits), waits
    assert 1 <= len(_issued(sts)) <= 3


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_damaged_or_half_written_entries_are_a_miss(sts: LoopbackSTS, tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    child = await assume_role(make_parent(), ROLE, RoleSessionName="multiprocess", cache=cache)
    await (await botocore_session(child).get_credentials()).get_frozen_credentials()
    entry = _the_entry(tmp_path)
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", b"\x00" * 64, b'{"Credentials": 1}'):
        entry.write_bytes(damaged)
        fresh = JSONFileCache(tmp_path)  # another process's view, with its own lock
        child = await assume_role(make_parent(), ROLE, RoleSessionName="multiprocess", cache=fresh)
        credentials = await botocore_session(child).get_credentials()
        assert (await credentials.get_frozen_credentials()).access_key
    assert sts.assume_role_count == 5  # each damaged entry was a miss, and was replaced
    assert json.loads(entry.read_bytes())["Credentials"]["AccessKeyId"]


@pytest.mark.anyio
async def test_lock_files_do_not_disturb_botocore_and_modes_stay_private(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "new" / "cache"
    cache = JSONFileCache(cache_dir)
    child = await assume_role(make_parent(), ROLE, RoleSessionName="multiprocess", cache=cache)
    await (await botocore_session(child).get_credentials()).get_frozen_credentials()
    entry = _the_entry(cache_dir)
    key = entry.stem
    async with cache.alock(key, 1.0) as held:
        assert held
        (lock,) = _lock_files(cache_dir)
        assert lock.name == f".{key}.lock"
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        # botocore's own cache (what the AWS CLI uses) reads the entry as before.
        theirs = botocore.utils.JSONFileCache(working_dir=str(cache_dir))
        assert key in theirs
        assert theirs[key]["Credentials"]["AccessKeyId"]
        # A second taker (another process's descriptor) waits, then goes without.
        async with JSONFileCache(cache_dir).alock(key, 0.1) as second:
            assert not second
    assert _lock_files(cache_dir) == []  # removed on release
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    for directory in (cache_dir, cache_dir.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.anyio
async def test_lock_false_takes_no_lock(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path, lock=False)
    assert not cache.locking
    assert "lock=False" in repr(cache)
    async with cache.alock("key", 1.0) as held:
        assert not held
        assert _lock_files(tmp_path) == []
    with pytest.raises(TypeError, match="lock must be True or False"):
        JSONFileCache(tmp_path, lock="yes")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_waiting_for_the_lock_never_blocks_the_event_loop(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with cache.alock("key", 1.0) as held:
        assert held
        task = asyncio.ensure_future(ticker())
        try:
            async with JSONFileCache(tmp_path).alock("key", 0.5) as second:
                assert not second
        finally:
            task.cancel()
    assert ticks >= 10  # the loop ran all through the 0.5 s wait


@pytest.mark.anyio
async def test_a_held_lock_and_a_failing_sts_never_discard_credentials_in_hand(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    """Static stability across processes: a lock timeout then an STS failure serve what
    the process has."""
    sts.credential_lifetime = 4.0
    cache = JSONFileCache(tmp_path)
    policy = RefreshPolicy(attempt_timeout_seconds=2, try_timeout_seconds=2, max_tries=1)
    parent = make_parent()
    async with parent.create_client("sts"):  # the model loaded before the short deadlines
        pass
    child = await assume_role(
        parent, ROLE, RoleSessionName="multiprocess", cache=cache, refresh=policy
    )
    credentials = await botocore_session(child).get_credentials()
    first = await credentials.get_frozen_credentials()
    entry = _the_entry(tmp_path)
    async with JSONFileCache(tmp_path).alock(entry.stem, 1.0) as held:
        assert held  # "another process" holds the lock from now on
        sts.fail_next("5xx", 10)
        deadline = time.monotonic() + 10
        while credentials.refresh_stats.failures == 0:
            assert time.monotonic() < deadline
            assert (await credentials.get_frozen_credentials()).access_key == first.access_key
            await asyncio.sleep(0.05)
    assert (await credentials.get_frozen_credentials()).access_key == first.access_key


# --- a real server with worker processes -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _uvicorn(workers: int, **environ: str) -> Iterator[str]:
    """``uvicorn --workers N`` serving the FastAPI example; yields its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(ROOT / "examples"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "fastapi_app:app",
        ],
        env=_environ(**environ),
    )
    try:
        yield f"http://127.0.0.1:{port}"
        assert server.poll() is None, "uvicorn stopped"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.mark.anyio
async def test_uvicorn_with_four_workers_makes_one_assume_role(
    sts: LoopbackSTS, tmp_path: Path
) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    with _uvicorn(4, ROLE_ARN=ROLE, ROLE_CACHE_DIR=str(tmp_path / "cache")) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:  # until the workers accept connections (none calls STS yet)
                assert time.monotonic() < deadline, "uvicorn did not start"
                try:
                    await client.get("/docs")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            assert sts.assume_role_count == 0
            limit = asyncio.Semaphore(50)

            async def whoami() -> str:
                async with limit:
                    response = await client.get("/whoami")
                    response.raise_for_status()
                    return str(response.json()["arn"])

            arns = await asyncio.gather(*(whoami() for _ in range(2000)))
    assert len(arns) == 2000
    assert all(":assumed-role/Shared/" in arn for arn in arns)
    assert sts.assume_role_count == 1
    signers = {call.access_key_id for call in sts.calls if call.action == "GetCallerIdentity"}
    assert len(signers) == 1  # every worker used the one set of credentials


@pytest.mark.anyio
async def test_a_lock_on_a_lock_file_removed_meanwhile_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: a process opens the lock file; its holder removes it as it lets go, and a
    # third process creates and locks a new one. The first process's flock on the old,
    # removed file succeeds, but protects nothing: it must not count as holding the lock.
    cache = JSONFileCache(tmp_path)
    async with cache.alock("key", 1.0) as first:  # the third process, on the new file
        assert first
        old = tmp_path / "removed.lock"
        old.write_bytes(b"")
        old_fd = os.open(old, os.O_RDWR)
        old.unlink()
        lock_path = str(tmp_path / ".key.lock")
        real_open = os.open

        def opened_before_the_removal(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if os.fspath(path) == lock_path:
                return os.dup(old_fd)
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(_cache.os, "open", opened_before_the_removal)
        try:
            async with JSONFileCache(tmp_path).alock("key", 0.2) as second:
                assert not second  # never two holders
        finally:
            monkeypatch.undo()
            os.close(old_fd)


@pytest.mark.anyio
async def test_a_hung_lock_file_open_is_abandoned_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening the lock file hangs (a stuck network file system): the wait ends on time,
    # and when the file system answers, the lock the abandoned attempt took is let go.
    answered = threading.Event()
    take = _cache._try_lock

    def hung_open(path: str, held: list[int], created: list[str]) -> None:
        answered.wait(3)
        take(path, held, created)

    monkeypatch.setattr(_cache, "_try_lock", hung_open)
    started = time.monotonic()
    async with JSONFileCache(tmp_path).alock("key", 0.3) as held:
        assert not held
    assert time.monotonic() - started < 2.0
    answered.set()
    monkeypatch.undo()
    for _ in range(int(HANG_SECONDS * 100)):
        if not _lock_files(tmp_path):
            break
        await anyio.sleep(0.01)
    async with JSONFileCache(tmp_path).alock("key", 1.0) as again:
        assert again  # nobody kept it


class _ExactSharedCache(dict):  # type: ignore[type-arg]
    """A shared cache that keeps expiry times exactly (the file cache drops fractions of a
    second, as botocore's does): an entry it hands back can be *equal* to ours."""

    locking = True

    @contextlib.asynccontextmanager
    async def alock(self, cache_key: str, wait_seconds: float) -> Any:
        yield True

    async def aget(self, cache_key: str) -> Any:
        return self.get(cache_key)

    async def aset(self, cache_key: str, value: Any) -> None:
        self[cache_key] = value


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["file", "exact"])
async def test_an_advisory_refresh_through_a_shared_cache_gets_new_credentials(
    sts: LoopbackSTS, tmp_path: Path, kind: str
) -> None:
    # The cache holds the credentials this process wrote itself: an advisory refresh must
    # not take them back from there as if another process had renewed them.
    sts.credential_lifetime = 900
    early = RefreshPolicy(min_use_seconds=1, advisory_window_seconds=899, jitter_fraction=0)
    cache: Any = JSONFileCache(tmp_path) if kind == "file" else _ExactSharedCache()
    child = await assume_role(
        make_parent(), ROLE, RoleSessionName="own-entry", cache=cache, refresh=early
    )
    credentials = await botocore_session(child).get_credentials()
    first = await credentials.get_frozen_credentials()
    assert len(cache) == 1 if kind == "exact" else _the_entry(tmp_path).exists()
    await anyio.sleep(1.2)  # into the advisory window
    assert await credentials.get_frozen_credentials() == first  # starts the refresh
    for _ in range(int(HANG_SECONDS * 100)):
        if credentials.refresh_stats.attempts >= 2 and credentials._refresher._flight is None:
            break
        await anyio.sleep(0.01)
    second = await credentials.get_frozen_credentials()
    assert sts.assume_role_count == 2
    assert second.access_key != first.access_key

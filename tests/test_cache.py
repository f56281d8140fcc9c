"""JSONFileCache: botocore/AWS CLI file format, atomic private writes, corruption, async IO."""

from __future__ import annotations

import datetime
import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import botocore.credentials
import botocore.utils
import pytest
from dateutil.parser import parse
from dateutil.tz import tzutc

from aio_assume_role_lib import JSONFileCache, _cache

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

_BACKENDS = [pytest.param("asyncio")]
if importlib.util.find_spec("trio") is not None:
    _BACKENDS.append(pytest.param("trio", marks=pytest.mark.trio))


@pytest.fixture(params=_BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def _assume_role_response(expiration: datetime.datetime) -> dict[str, Any]:
    """What botocore's STS client returns for AssumeRole (Expiration parsed to a datetime)."""
    return {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLEKEYID0001",
            "SecretAccessKey": SECRET,
            "SessionToken": "FwoGZXIvYXdzEXAMPLETOKEN",
            "Expiration": expiration,
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROAEXAMPLEID:session",
            "Arn": "arn:aws:sts::123456789012:assumed-role/Reader/session",
        },
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def _future(hours: int = 1) -> datetime.datetime:
    now = datetime.datetime.now(tzutc()).replace(microsecond=0)
    return now + datetime.timedelta(hours=hours)


@pytest.fixture
def private_umask() -> Any:
    """umask 0, so any restriction on the modes can only come from the cache itself."""
    previous = os.umask(0)
    yield
    os.umask(previous)


needs_posix_modes = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


# --- format compatibility with botocore / the AWS CLI ------------------------------------


def test_files_are_byte_identical_to_botocores(tmp_path: Path) -> None:
    value = _assume_role_response(_future())
    JSONFileCache(tmp_path / "ours")["key"] = value
    botocore.utils.JSONFileCache(working_dir=str(tmp_path / "botocore"))["key"] = value

    ours = (tmp_path / "ours" / "key.json").read_bytes()
    assert ours == (tmp_path / "botocore" / "key.json").read_bytes()
    # datetimes are written the way botocore writes them
    expiration = value["Credentials"]["Expiration"].strftime("%Y-%m-%dT%H:%M:%S")
    assert json.loads(ours)["Credentials"]["Expiration"] == expiration + "UTC"


def test_each_reads_what_the_other_wrote(tmp_path: Path) -> None:
    ours, theirs = JSONFileCache(tmp_path), botocore.utils.JSONFileCache(working_dir=str(tmp_path))
    ours["written-by-us"] = {"a": [1, "two"], "b": None}
    theirs["written-by-botocore"] = {"c": {"d": 4.5}}

    assert theirs["written-by-us"] == {"a": [1, "two"], "b": None}
    assert ours["written-by-botocore"] == {"c": {"d": 4.5}}
    assert "written-by-botocore" in ours
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "written-by-botocore.json",
        "written-by-us.json",
    ]


def test_botocores_assume_role_fetcher_uses_the_cache_both_ways(tmp_path: Path) -> None:
    """The AWS CLI's fetcher saves into our cache, and reuses what is there without STS."""
    sts_calls: list[dict[str, Any]] = []

    class FakeSTS:
        def assume_role(self, **kwargs: Any) -> dict[str, Any]:
            sts_calls.append(kwargs)
            return _assume_role_response(_future())

    def fetcher(cache: Any) -> Any:
        return botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=lambda *args, **kwargs: FakeSTS(),
            source_credentials=botocore.credentials.Credentials("AKIDSOURCE", "source-secret"),
            role_arn="arn:aws:iam::123456789012:role/Reader",
            extra_args={"RoleSessionName": "session"},
            cache=cache,
        )

    def identity(credentials: dict[str, str]) -> tuple[str, ...]:
        expiry = parse(credentials["expiry_time"])
        return credentials["access_key"], credentials["secret_key"], credentials["token"], expiry

    first = identity(fetcher(JSONFileCache(tmp_path)).fetch_credentials())
    assert len(sts_calls) == 1
    # a new process: a fresh cache object over the same directory, ours and botocore's
    assert identity(fetcher(JSONFileCache(tmp_path)).fetch_credentials()) == first
    theirs = botocore.utils.JSONFileCache(working_dir=str(tmp_path))
    assert identity(fetcher(theirs).fetch_credentials()) == first
    assert len(sts_calls) == 1


def test_mapping_interface(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    assert "key" not in cache
    with pytest.raises(KeyError):
        cache["key"]
    cache["key"] = {"a": 1}
    assert "key" in cache
    assert cache["key"] == {"a": 1}
    cache["key"] = {"a": 2}
    assert cache["key"] == {"a": 2}
    del cache["key"]
    assert "key" not in cache
    with pytest.raises(KeyError):
        del cache["key"]
    assert 42 not in cache


def test_a_pathlike_directory_is_created_on_first_write(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()
    cache["key"] = {"a": 1}
    assert json.loads((tmp_path / "a" / "b" / "key.json").read_text()) == {"a": 1}


def test_repr_shows_the_directory_only(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    cache["key"] = _assume_role_response(_future())
    assert repr(cache) == f"JSONFileCache({str(tmp_path)!r})"


def test_unserializable_value_is_refused_without_showing_it(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    with pytest.raises(ValueError, match="not JSON serializable") as raised:
        cache["key"] = {"SecretAccessKey": SECRET, "bad": object()}
    assert SECRET not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


# --- atomic, private writes ---------------------------------------------------------------


def _raw_read(path: Path) -> Any:
    """Read like an independent reader would: no tolerance for partial files."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return json.loads(data)  # raises on a partial file


def test_threads_writing_one_key_never_expose_a_partial_file(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    values = [{"writer": n, "padding": str(n) * 200_000} for n in range(2)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(value: dict[str, Any]) -> None:
        try:
            while not stop.is_set():
                cache["key"] = value
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    writers = [threading.Thread(target=write, args=(value,)) for value in values]
    for writer in writers:
        writer.start()
    seen = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            value = _raw_read(tmp_path / "key.json")
            if value is not None:
                assert value in values
                seen += 1
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    assert not errors
    assert seen > 0
    assert cache["key"] in values
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]  # no temporary file left


_WRITER = textwrap.dedent(
    """
    import sys, time
    from aio_assume_role_lib._cache import JSONFileCache
    cache = JSONFileCache(sys.argv[1])
    value = {"writer": sys.argv[2], "padding": sys.argv[2] * 200_000}
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        cache["key"] = value
    """
)


def test_processes_writing_one_key_never_expose_a_partial_file(tmp_path: Path) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), name]) for name in "xy"
    ]
    seen = set()
    try:
        while any(writer.poll() is None for writer in writers):
            value = _raw_read(tmp_path / "key.json")
            if value is not None:
                assert value["padding"] == value["writer"] * 200_000
                seen.add(value["writer"])
    finally:
        for writer in writers:
            if writer.poll() is None:  # pragma: no cover - only on a failed assertion
                writer.kill()
            writer.wait()
    assert [writer.returncode for writer in writers] == [0, 0]
    assert seen
    assert JSONFileCache(tmp_path)["key"]["writer"] in {"x", "y"}
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]


@needs_posix_modes
@pytest.mark.usefixtures("private_umask")
def test_modes_are_private_from_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("modes must be set when creating, not changed afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    directory = tmp_path / "cache"
    JSONFileCache(directory)["key"] = {"a": 1}

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "key.json").stat().st_mode) == 0o600


@needs_posix_modes
@pytest.mark.usefixtures("private_umask")
def test_rewriting_a_world_readable_file_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text("{}")
    path.chmod(0o644)
    JSONFileCache(tmp_path)["key"] = {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@needs_posix_modes
def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    JSONFileCache(tmp_path)["key"] = {"a": 1}
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


# --- corrupted and unreadable files -------------------------------------------------------

_GOOD = json.dumps(_assume_role_response(_future()), default=str)
_CORRUPTIONS = {
    "empty": b"",
    "truncated": _GOOD[: len(_GOOD) // 2].encode(),
    "not json": f"SecretAccessKey={SECRET}".encode(),
    "not utf-8": b'{"SecretAccessKey": "' + SECRET.encode() + b'\xff\xfe"}',
    "whitespace": b" \n",
}


@pytest.mark.parametrize("content", list(_CORRUPTIONS.values()), ids=list(_CORRUPTIONS))
def test_a_corrupted_file_is_absent_and_logged_without_its_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    path = tmp_path / "key.json"
    path.write_bytes(content)
    cache = JSONFileCache(tmp_path)

    assert "key" not in cache
    with pytest.raises(KeyError):
        cache["key"]

    records = [r for r in caplog.records if r.name == "aio_assume_role_lib"]
    assert len(records) == 2
    assert all(r.levelno == logging.WARNING for r in records)
    assert all(str(path) in r.getMessage() for r in records)
    assert SECRET not in caplog.text
    assert "SecretAccessKey" not in caplog.text

    cache["key"] = {"a": 1}  # a later write replaces it
    assert cache["key"] == {"a": 1}


def test_an_unreadable_path_is_absent_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    (tmp_path / "key.json").mkdir()  # opening it fails with IsADirectoryError
    cache = JSONFileCache(tmp_path)
    assert "key" not in cache
    assert str(tmp_path / "key.json") in caplog.text


@needs_posix_modes
@pytest.mark.skipif(
    os.name == "posix" and os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_a_file_without_read_permission_is_absent_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # pragma: no cover - not run as root
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"SecretAccessKey": SECRET}))
    path.chmod(0)
    cache = JSONFileCache(tmp_path)
    assert "key" not in cache
    assert str(path) in caplog.text
    assert SECRET not in caplog.text
    cache["key"] = {"a": 1}
    assert cache["key"] == {"a": 1}


def test_a_missing_file_is_absent_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aio_assume_role_lib")
    cache = JSONFileCache(tmp_path / "does-not-exist")
    assert "key" not in cache
    assert caplog.records == []


# --- async access -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_aget_and_aset(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    assert await cache.aget("key") is None
    value = _assume_role_response(_future())
    await cache.aset("key", value)
    stored = await cache.aget("key")
    expiration = value["Credentials"]["Expiration"].strftime("%Y-%m-%dT%H:%M:%SUTC")
    assert stored["Credentials"] == {**value["Credentials"], "Expiration": expiration}
    # shared with the sync interface and with botocore
    assert cache["key"] == stored
    assert botocore.utils.JSONFileCache(working_dir=str(tmp_path))["key"] == stored


@pytest.mark.anyio
@pytest.mark.parametrize("content", list(_CORRUPTIONS.values()), ids=list(_CORRUPTIONS))
async def test_aget_returns_none_for_a_corrupted_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    (tmp_path / "key.json").write_bytes(content)
    cache = JSONFileCache(tmp_path)
    assert await cache.aget("key") is None
    assert str(tmp_path / "key.json") in caplog.text
    assert SECRET not in caplog.text
    await cache.aset("key", {"a": 1})
    assert await cache.aget("key") == {"a": 1}


@pytest.mark.anyio
async def test_aset_writes_the_value_as_it_was_when_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = JSONFileCache(tmp_path)
    write_file = _cache._write_file_atomically
    writing, release = threading.Event(), threading.Event()

    def paused_write(path: str, data: bytes) -> None:
        writing.set()
        release.wait(timeout=5)
        write_file(path, data)

    monkeypatch.setattr(_cache, "_write_file_atomically", paused_write)
    value = {"a": 1}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(cache.aset, "key", value)
        assert await anyio.to_thread.run_sync(writing.wait, 5)
        value["a"] = 2  # the caller reuses its dict while the write is in flight
        release.set()
    assert cache["key"] == {"a": 1}
    with pytest.raises(ValueError, match="not JSON serializable"):
        await cache.aset("key", {"bad": object()})


def _wait_for_the_loop(release: threading.Event) -> None:
    # Runs where the cache does its file IO. On the event loop's own thread this would
    # wait forever: the loop could never reach release.set().
    if not release.wait(timeout=5):
        raise AssertionError("the file IO ran on the event loop's thread and blocked it")


@pytest.mark.anyio
async def test_aget_and_aset_do_not_block_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = JSONFileCache(tmp_path)
    cache["key"] = {"a": 1}
    read_file, write_file = _cache._read_file, _cache._write_file_atomically
    release = threading.Event()

    def slow_read(path: str) -> bytes:
        _wait_for_the_loop(release)
        return read_file(path)

    def slow_write(path: str, data: bytes) -> None:
        _wait_for_the_loop(release)
        write_file(path, data)

    monkeypatch.setattr(_cache, "_read_file", slow_read)
    monkeypatch.setattr(_cache, "_write_file_atomically", slow_write)
    results: dict[str, Any] = {}

    async def get() -> None:
        results["get"] = await cache.aget("key")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(get)
        tasks.start_soon(cache.aset, "other", {"b": 2})
        await anyio.sleep(0.05)  # the loop keeps running while both wait in threads
        release.set()

    assert results["get"] == {"a": 1}
    assert cache["other"] == {"b": 2}

"""JSONFileCache: botocore/AWS CLI file format, atomic private writes, corruption, async IO."""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import botocore.credentials
import botocore.exceptions
import botocore.utils
import pytest
from dateutil.parser import parse
from dateutil.tz import tzutc

from aio_assume_role_lib import JSONFileCache, RefreshPolicy, _assume, _cache, assume_role
from aio_assume_role_lib._refresh import RefreshTimeoutError
from aio_assume_role_lib._sts import StsClients
from aio_assume_role_lib.testing import LoopbackSTS

from ._hand_clock_fetch import hand_clock_child
from ._manual_clock import ManualClock
from .conftest import HANG_SECONDS, caller_arn, make_parent

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

_BACKENDS = [pytest.param("asyncio")]
if importlib.util.find_spec("trio") is not None:
    _BACKENDS.append(pytest.param("trio", marks=pytest.mark.trio))


@pytest.fixture(autouse=True)
def _hang_only_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children made here without ``refresh=`` get deadlines that only catch a hang.

    dev.py runs this file in the background at the lowest CPU priority, where a process
    can be starved for tens of seconds. With the default deadlines (10 s a try, 5 s for
    the cache lock and the parent's identity), a starved refresh timed out and tried
    again, or went on without the cache: one AssumeRole more than a test counts. No test
    here is about those deadlines (test_security.py and the hand-clock tests give theirs).
    """
    patient = RefreshPolicy(try_timeout_seconds=HANG_SECONDS, attempt_timeout_seconds=HANG_SECONDS)
    monkeypatch.setattr(_assume, "_DEFAULT_POLICY", patient)


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
    # Big enough to be written in several pieces, below the size the cache reads back.
    values = [{"writer": n, "padding": str(n) * 50_000} for n in range(2)]
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
        # A second of reads, and on until the first one that finds the file (a process
        # starved in dev.py's background can miss that second whole).
        deadline, give_up = time.monotonic() + 1.0, time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline or (seen == 0 and time.monotonic() < give_up):
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
    value = {"writer": sys.argv[2], "padding": sys.argv[2] * 50_000}
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
                assert value["padding"] == value["writer"] * 50_000
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

    def paused_write(path: str, data: bytes, *args: Any) -> None:
        writing.set()
        release.wait(timeout=HANG_SECONDS)
        write_file(path, data, *args)

    monkeypatch.setattr(_cache, "_write_file_atomically", paused_write)
    value = {"a": 1}
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(cache.aset, "key", value)
        assert await anyio.to_thread.run_sync(writing.wait, HANG_SECONDS)
        value["a"] = 2  # the caller reuses its dict while the write is in flight
        release.set()
    assert cache["key"] == {"a": 1}
    with pytest.raises(ValueError, match="not JSON serializable"):
        await cache.aset("key", {"bad": object()})


def _wait_for_the_loop(release: threading.Event) -> None:
    # Runs where the cache does its file IO. On the event loop's own thread this would
    # wait forever: the loop could never reach release.set().
    if not release.wait(timeout=HANG_SECONDS):
        raise AssertionError("the file IO ran on the event loop's thread and blocked it")


@pytest.mark.anyio
async def test_aget_and_aset_do_not_block_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = JSONFileCache(tmp_path)
    cache["key"] = {"a": 1}
    read_file, write_file = _cache._read_file, _cache._write_file_atomically
    release = threading.Event()

    def slow_read(path: str, *args: Any) -> bytes:
        _wait_for_the_loop(release)
        return read_file(path, *args)

    def slow_write(path: str, data: bytes, *args: Any) -> None:
        _wait_for_the_loop(release)
        write_file(path, data, *args)

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


# --- hardening: the cache trusts only what the current user wrote (issue 12) --------------

ROLE = "arn:aws:iam::123456789012:role/Reader"
ADMIN = "arn:aws:iam::123456789012:role/Admin"
IS_ROOT = os.name == "posix" and os.geteuid() == 0
# Another user, for files a test gives away (as root): nobody.
NOBODY = 65534


def make_foreign(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` look owned by another user: for real as root, else by our uid's look."""
    if IS_ROOT:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    else:  # pragma: no cover - CI runs as a user, this box as root
        real_uid = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real_uid + 1)


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aio_assume_role_lib"
        and r.levelno == logging.WARNING
        and str(path) in r.getMessage()
    ]


@needs_posix_modes
def test_a_file_owned_by_another_user_is_absent_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    cache = JSONFileCache(tmp_path)
    cache["key"] = _assume_role_response(_future())
    make_foreign(tmp_path / "key.json", monkeypatch)
    assert "key" not in cache
    (message,) = warnings_about(caplog, tmp_path / "key.json")
    assert "owned by another user" in message
    assert SECRET not in caplog.text


def share_with_a_group(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``directory`` a group other users are in (for real as root)."""
    if IS_ROOT:
        os.chown(directory, -1, 54321)
    else:  # pragma: no cover - CI runs as a user, this box as root
        monkeypatch.setattr(_cache, "_is_private_group", lambda gid, euid: False)


@needs_posix_modes
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722, 0o702])
def test_a_directory_others_may_write_to_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "shared"
    cache = JSONFileCache(directory)
    cache["key"] = {"a": 1}
    share_with_a_group(directory, monkeypatch)
    directory.chmod(mode)
    assert "key" not in cache
    (message,) = warnings_about(caplog, directory / "key.json")
    assert "writable by other users" in message
    with pytest.raises(PermissionError, match="writable by other users"):
        cache["other"] = {"SecretAccessKey": SECRET}
    assert sorted(p.name for p in directory.iterdir()) == ["key.json"]  # nothing written


@needs_posix_modes
def test_a_directory_writable_by_the_users_private_group_is_trusted(tmp_path: Path) -> None:
    """The umask 002 of systems with a group per user (the AWS CLI makes its cache so)."""
    import grp
    import pwd

    user = pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(user.pw_gid)
    if group.gr_name != user.pw_name or set(group.gr_mem) - {user.pw_name}:  # pragma: no cover
        pytest.skip("this user's primary group is not a private one")
    directory = tmp_path / "cli-cache"
    cache = JSONFileCache(directory)
    cache["key"] = {"a": 1}
    os.chown(directory, -1, user.pw_gid)
    directory.chmod(0o775)
    assert cache["key"] == {"a": 1}
    cache["key"] = {"a": 2}
    assert cache["key"] == {"a": 2}


@needs_posix_modes
def test_only_a_group_of_the_user_alone_is_private() -> None:
    import grp
    import pwd

    user = pwd.getpwuid(os.geteuid())
    assert not _cache._is_private_group(54321, os.geteuid())  # no such group
    for group in grp.getgrall():
        if group.gr_gid == user.pw_gid:
            continue
        assert not _cache._is_private_group(group.gr_gid, os.geteuid()), group.gr_name


@needs_posix_modes
@pytest.mark.parametrize("owner", ["ours", "root's, like /tmp"])
def test_a_sticky_shared_directory_is_never_a_cache_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, owner: str
) -> None:
    """Issue 19: the owner of a sticky directory can still rename the entries in it."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "like-tmp"
    cache = JSONFileCache(directory)
    cache["ours"] = {"a": 1}
    directory.chmod(0o1777)
    if owner != "ours":
        if not IS_ROOT:  # pragma: no cover - CI runs as a user, this box as root
            pytest.skip("a root-owned directory of our own needs root")
        monkeypatch.setattr(os, "geteuid", lambda: NOBODY)  # root's directory, not ours
        monkeypatch.setattr(_cache, "_is_private_group", lambda gid, euid: False)
    assert "ours" not in cache
    (message,) = warnings_about(caplog, directory / "ours.json")
    assert "sticky" in message
    with pytest.raises(PermissionError, match="sticky"):
        cache["ours"] = {"SecretAccessKey": SECRET}
    assert SECRET not in caplog.text


def _plant_as_another_user(directory: Path) -> Path:
    """Make the one entry in ``directory`` another user's, with a key of theirs in it."""
    (planted,) = directory.iterdir()
    entry = json.loads(planted.read_text())
    entry["Credentials"]["AccessKeyId"] = "ASIAPLANTEDBYANOTHER"
    planted.write_text(json.dumps(entry))
    os.chown(planted, 54321, 54321)
    return planted


@needs_posix_modes
@pytest.mark.skipif(not IS_ROOT, reason="planting a file of another user needs root")
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_planted_entry_of_another_user_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sts: LoopbackSTS
) -> None:
    """The issue's case: a root process used a key planted by another user, 0 STS calls."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    child = await assume_role(
        make_parent(), ROLE, RoleSessionName="planted", cache=JSONFileCache(tmp_path)
    )
    await caller_arn(child)
    planted = _plant_as_another_user(tmp_path)

    # A new process (parent and cache object) with the same arguments.
    again = await assume_role(
        make_parent(), ROLE, RoleSessionName="planted", cache=JSONFileCache(tmp_path)
    )
    assert await caller_arn(again) == await caller_arn(child)
    assert sts.assume_role_count == 2  # the planted entry did not save a call
    assert "owned by another user" in caplog.text
    assert planted.stat().st_uid == os.geteuid()  # replaced by our own fresh entry


# --- hardening 3: whose directory, which entry, whose lock (issue 19) ----------------------


@needs_posix_modes
@pytest.mark.parametrize("mode", [0o755, 0o700])
def test_a_directory_owned_by_another_user_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    """Issue 19: its owner can rename our 0600 entries, whatever its mode says."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "theirs"
    cache = JSONFileCache(directory)
    cache["key"] = _assume_role_response(_future())
    directory.chmod(mode)
    make_foreign(directory, monkeypatch)
    assert "key" not in cache
    (message,) = warnings_about(caplog, directory / "key.json")
    assert "directory" in message
    assert "owned by another user" in message
    with pytest.raises(PermissionError, match="owned by another user"):
        cache["other"] = {"SecretAccessKey": SECRET}
    assert sorted(p.name for p in directory.iterdir()) == ["key.json"]  # nothing written
    assert SECRET not in caplog.text


@needs_posix_modes
def test_a_root_owned_directory_is_trusted_only_if_others_cannot_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like /tmp's parents: a user may keep a cache in a directory root made for it."""
    if not IS_ROOT:  # pragma: no cover - CI runs as a user, this box as root
        pytest.skip("making a root-owned directory needs root")
    directory = tmp_path / "made-by-root"
    directory.mkdir(mode=0o755)
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)  # we are now a user, not root
    assert _cache._directory_problem(str(directory)) is None
    directory.chmod(0o775)  # root's group is not the user's private group
    assert "writable by other users" in str(_cache._directory_problem(str(directory)))
    directory.chmod(0o1777)
    assert "sticky" in str(_cache._directory_problem(str(directory)))
    directory.chmod(0o755)
    os.chown(directory, 54321, 54321)  # neither root nor us
    assert "owned by another user" in str(_cache._directory_problem(str(directory)))


@needs_posix_modes
@pytest.mark.parametrize("damage", ["writable by others", "owned by another user"])
def test_a_parent_directory_the_cache_created_must_stay_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """Whoever can write to a parent can move our directory away and put another there."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "made" / "by-us" / "cache"
    cache = JSONFileCache(directory)
    cache["key"] = {"a": 1}
    assert cache["key"] == {"a": 1}
    parent = tmp_path / "made"
    if damage == "writable by others":
        parent.chmod(0o777)
    elif IS_ROOT:
        os.chown(parent, NOBODY, NOBODY)
    else:  # pragma: no cover - CI runs as a user, this box as root
        pytest.skip("giving a directory to another user needs root")
    assert "key" not in cache
    (message,) = warnings_about(caplog, directory / "key.json")
    assert f"parent directory {parent}" in message
    assert damage.split()[0] in message
    with pytest.raises(PermissionError, match="parent directory"):
        cache["key"] = {"a": 2}
    # A parent that was there before (tmp_path) is not the cache's to judge.
    tmp_path.chmod(0o777)
    parent.chmod(0o700)
    os.chown(parent, os.geteuid(), -1)
    assert cache["key"] == {"a": 1}


def _names(directory: Path) -> set[str]:
    return set(os.listdir(directory)) if os.path.isdir(directory) else set()


async def _entry_of(directory: Path, role_arn: str, session_name: str | None) -> Path:
    """Assume ``role_arn`` through a cache in ``directory``; return the file it wrote."""
    before = _names(directory)
    kwargs: dict[str, Any] = {} if session_name is None else {"RoleSessionName": session_name}
    child = await assume_role(make_parent(), role_arn, cache=JSONFileCache(directory), **kwargs)
    await caller_arn(child)
    (written,) = _names(directory) - before
    return directory / written


@needs_posix_modes
@pytest.mark.skipif(not IS_ROOT, reason="giving a directory to another user needs root")
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_entry_renamed_by_the_directorys_owner_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sts: LoopbackSTS
) -> None:
    """The issue's case: an entry for Admin renamed onto the key of Reader with a narrowing
    Policy was used with 0 STS calls; the child acted as Admin."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "cache"
    admin_entry = await _entry_of(directory, ADMIN, "worker")
    narrow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}],
    }
    reader_entry = await _entry_of_policy(directory, narrow)
    # The directory's owner (another user now) swaps the entries.
    os.chown(directory, NOBODY, NOBODY)
    os.replace(admin_entry, reader_entry)
    calls = sts.assume_role_count

    again = await assume_role(
        make_parent(), ROLE, RoleSessionName="worker", Policy=narrow, cache=JSONFileCache(directory)
    )
    assert await caller_arn(again) == "arn:aws:sts::123456789012:assumed-role/Reader/worker"
    assert sts.assume_role_count == calls + 1
    assert "owned by another user" in caplog.text


async def _entry_of_policy(directory: Path, policy: dict[str, Any]) -> Path:
    before = _names(directory)
    child = await assume_role(
        make_parent(), ROLE, RoleSessionName="worker", Policy=policy, cache=JSONFileCache(directory)
    )
    await caller_arn(child)
    (written,) = _names(directory) - before
    return directory / written


_SWAPS = {
    # what the entry was written for -> what it was then renamed to answer
    "another role": ((ADMIN, "worker"), (ROLE, "worker")),
    "another session name": ((ROLE, "alice"), (ROLE, "bob")),
    "a generated name for a named session": ((ROLE, None), (ROLE, "bob")),
}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("written_for", "asked_for"), list(_SWAPS.values()), ids=list(_SWAPS))
async def test_an_entry_that_does_not_answer_the_request_is_ignored_and_rewritten(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    sts: LoopbackSTS,
    written_for: tuple[str, str | None],
    asked_for: tuple[str, str],
) -> None:
    """Issue 19: an entry renamed onto another key (in a directory we trust) is a miss."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "cache"
    wrong = await _entry_of(directory, *written_for)
    right = await _entry_of(directory, *asked_for)
    os.replace(wrong, right)
    calls = sts.assume_role_count

    role_arn, session_name = asked_for
    again = await assume_role(
        make_parent(), role_arn, RoleSessionName=session_name, cache=JSONFileCache(directory)
    )
    wanted = f"arn:aws:sts::123456789012:assumed-role/{role_arn.rsplit('/', 1)[1]}/{session_name}"
    assert await caller_arn(again) == wanted
    assert sts.assume_role_count == calls + 1
    # (Read at start-up, and again around the lock: one warning each.)
    messages = [
        r.getMessage() for r in caplog.records if "ignoring the cache entry" in r.getMessage()
    ]
    assert messages
    assert all("not for the requested" in message for message in messages)
    assert SECRET not in caplog.text
    # Rewritten with the answer to the request.
    assert json.loads(right.read_text())["AssumedRoleUser"]["Arn"] == wanted


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("session_name", ["cli-session", None], ids=["named", "generated"])
async def test_an_entry_the_aws_cli_wrote_is_used(
    tmp_path: Path, sts: LoopbackSTS, session_name: str | None
) -> None:
    """botocore's AssumeRoleCredentialFetcher (the AWS CLI's) writes the entry, over real
    HTTP to the loopback STS; a later process of ours uses it without calling STS."""
    import botocore.session

    cli = botocore.session.get_session()
    extra_args = {} if session_name is None else {"RoleSessionName": session_name}
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=cli.create_client,
        source_credentials=cli.get_credentials(),
        role_arn=ROLE_WITH_PATH,
        extra_args=extra_args,
        cache=botocore.utils.JSONFileCache(working_dir=str(tmp_path)),
    )
    written = fetcher.fetch_credentials()
    assert sts.assume_role_count == 1

    kwargs: dict[str, Any] = {} if session_name is None else {"RoleSessionName": session_name}
    child = await assume_role(
        make_parent(), ROLE_WITH_PATH, cache=JSONFileCache(tmp_path), **kwargs
    )
    credentials = await (await child.get_credentials()).get_frozen_credentials()
    assert credentials.access_key == written["access_key"]
    assert (await caller_arn(child)).startswith("arn:aws:sts::123456789012:assumed-role/Auditor/")
    assert sts.assume_role_count == 1


ROLE_WITH_PATH = "arn:aws:iam::123456789012:role/path/to/Auditor"


# Lock files and keys: nothing outside the cache's own files in its own directory.


@needs_posix_modes
@pytest.mark.skipif(not IS_ROOT, reason="giving a lock file to another user needs root")
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("held", [True, False], ids=["held by its owner", "not held"])
async def test_a_lock_file_of_another_user_is_never_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, held: bool
) -> None:
    """Issue 19: a 0666 lock file another user made (and held) made every refresh wait the
    whole bound; one not held was taken, and then removed."""
    import fcntl

    caplog.set_level(logging.INFO, logger="aio_assume_role_lib")
    cache = JSONFileCache(tmp_path / "cache")
    cache["key"] = {"a": 1}
    lock = tmp_path / "cache" / ".key.lock"
    lock.touch()
    lock.chmod(0o666)
    os.chown(lock, NOBODY, NOBODY)
    theirs = os.open(lock, os.O_RDONLY)
    try:
        if held:
            fcntl.flock(theirs, fcntl.LOCK_EX)
        # The bound is long: with the bug, the test would wait all of it.
        async with cache.alock("key", 30.0) as taken:
            assert not taken
    finally:
        os.close(theirs)
    (message,) = warnings_about(caplog, lock)
    assert "owned by another user" in message
    assert "still held" not in caplog.text
    assert lock.stat().st_uid == NOBODY  # left to its owner


def _tree(directory: Path) -> list[str]:
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(directory) for name in names
    )


_ESCAPING_KEYS = ["../outside", "a/b", "/etc/passwd", "..", ".", "a\\b", "nul\x00byte", ""]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("key", _ESCAPING_KEYS)
async def test_a_key_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, key: str) -> None:
    """Issue 19: a caller-chosen key with "/../" in it reached files outside the directory."""
    directory = tmp_path / "cache"
    cache = JSONFileCache(directory)
    cache["good"] = {"a": 1}
    before = _tree(tmp_path)
    operations: list[Any] = [
        lambda: key in cache,
        lambda: cache[key],
        lambda: cache.__setitem__(key, {"SecretAccessKey": SECRET}),
        lambda: cache.__delitem__(key),
    ]
    for operation in operations:
        with pytest.raises(ValueError, match="cache key") as raised:
            operation()
        assert SECRET not in str(raised.value)
    with pytest.raises(ValueError, match="cache key"):
        await cache.aget(key)
    with pytest.raises(ValueError, match="cache key"):
        await cache.aset(key, {"a": 2})
    with pytest.raises(ValueError, match="cache key"):
        async with cache.alock(key, 1.0):
            pass
    assert _tree(tmp_path) == before


def test_ordinary_keys_still_work(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    for key in ["0123abcd" * 5, "written-by-us", "a.b", "with space", "ünïcode"]:
        cache[key] = {"k": key}
        assert cache[key] == {"k": key}
        assert key in cache


# A cache hit is its own event (issue 19, item 11).


def _refresh_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "refresh_event")]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cache_hit_is_logged_and_counted_as_its_own_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sts: LoopbackSTS
) -> None:
    """Two processes' views of one directory: what one renews the other reads, at start-up
    and in a later refresh; each read is a cache hit, not an STS refresh."""
    caplog.set_level(logging.INFO, logger="aio_assume_role_lib")
    first = await assume_role(
        make_parent(), ROLE, RoleSessionName="hits", cache=JSONFileCache(tmp_path)
    )
    second = await assume_role(
        make_parent(), ROLE, RoleSessionName="hits", cache=JSONFileCache(tmp_path)
    )
    one, two = await first.get_credentials(), await second.get_credentials()
    # (Cache files keep whole seconds: a renewal counts as newer only if it expires later
    # by a second or more, as one made minutes later does.)
    sts.credential_lifetime = 3000
    issued = await one.get_frozen_credentials()  # STS
    assert (await two.get_frozen_credentials()).access_key == issued.access_key  # start-up hit
    sts.credential_lifetime = 3600
    one.invalidate()
    renewed = await one.get_frozen_credentials()  # STS again
    two.invalidate()
    assert (await two.get_frozen_credentials()).access_key == renewed.access_key  # a hit again
    assert sts.assume_role_count == 2

    assert (one.refresh_stats.cache_hits, one.refresh_stats.successes) == (0, 2)
    assert (two.refresh_stats.cache_hits, two.refresh_stats.successes) == (2, 2)
    events = _refresh_events(caplog)
    hits = [r for r in events if r.refresh_event == "cache_hit"]  # type: ignore[attr-defined]
    assert len(hits) == 2
    assert len([r for r in events if r.refresh_event == "success"]) == 2  # type: ignore[attr-defined]
    for record in hits:
        assert record.levelno == logging.INFO
        assert record.role_arn == ROLE  # type: ignore[attr-defined]
        assert record.role_session_name == "hits"  # type: ignore[attr-defined]
        assert "cache" in record.getMessage()
    for secret in (issued.secret_key, issued.token, renewed.secret_key, renewed.token):
        assert secret not in caplog.text


class _RenewedWhileWaiting(JSONFileCache):
    """A cache whose lock, once taken, finds the entry renewed by "another process"."""

    @contextlib.asynccontextmanager
    async def alock(self, cache_key: str, wait_seconds: float) -> AsyncIterator[bool]:
        entry = self[cache_key]
        credentials = entry["Credentials"]
        credentials["AccessKeyId"] = "ASIARENEWEDBYANOTHER"
        later = parse(credentials["Expiration"]) + datetime.timedelta(minutes=10)
        credentials["Expiration"] = later
        self[cache_key] = entry
        async with super().alock(cache_key, wait_seconds) as held:
            yield held


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_renewal_found_once_the_lock_is_held_is_a_cache_hit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sts: LoopbackSTS
) -> None:
    caplog.set_level(logging.INFO, logger="aio_assume_role_lib")
    first = await assume_role(
        make_parent(), ROLE, RoleSessionName="hits", cache=JSONFileCache(tmp_path)
    )
    await caller_arn(first)
    child = await assume_role(
        make_parent(), ROLE, RoleSessionName="hits", cache=_RenewedWhileWaiting(tmp_path)
    )
    credentials = await child.get_credentials()
    await credentials.get_frozen_credentials()  # a start-up hit
    credentials.invalidate()
    assert (await credentials.get_frozen_credentials()).access_key == "ASIARENEWEDBYANOTHER"
    assert sts.assume_role_count == 1
    assert credentials.refresh_stats.cache_hits == 2
    events = [getattr(r, "refresh_event", None) for r in caplog.records]
    assert events.count("cache_hit") == 2


# The cache key leaves out the parent's identity, as botocore's does; opt-in to add it.


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_by_default_parents_of_other_identities_share_a_directorys_entries(
    tmp_path: Path, sts: LoopbackSTS
) -> None:
    """As designed (and as in botocore): one cache directory per trust boundary."""
    root_child = await assume_role(
        make_parent(), ROLE, RoleSessionName="shared", cache=JSONFileCache(tmp_path)
    )
    await caller_arn(root_child)
    other_parent = await assume_role(make_parent(), ADMIN, RoleSessionName="other-parent")
    other_child = await assume_role(
        other_parent, ROLE, RoleSessionName="shared", cache=JSONFileCache(tmp_path)
    )
    await caller_arn(other_child)
    # The other parent's child used the root child's entry: the other parent was not even
    # asked for its credentials.
    assert sts.assume_role_count == 1
    assert await caller_arn(other_child) == await caller_arn(root_child)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_key_by_parent_identity_keeps_parents_of_other_identities_apart(
    tmp_path: Path, sts: LoopbackSTS
) -> None:
    def cache() -> JSONFileCache:
        return JSONFileCache(tmp_path, key_by_parent_identity=True)

    # (The parent's identity is looked up within half the try deadline: hang-only here,
    # see _hang_only_deadlines; 5 s was once not enough, and the refresh skipped the cache.)
    root_child = await assume_role(make_parent(), ROLE, RoleSessionName="shared", cache=cache())
    await caller_arn(root_child)
    other_parent = await assume_role(make_parent(), ADMIN, RoleSessionName="other-parent")
    other_child = await assume_role(other_parent, ROLE, RoleSessionName="shared", cache=cache())
    await caller_arn(other_child)
    assert sts.assume_role_count == 3  # each child called STS: no entry was shared
    assert len([name for name in os.listdir(tmp_path) if name.endswith(".json")]) == 2

    # A later process of either parent's identity still finds its own entry, for one
    # GetCallerIdentity of its parent.
    def parent_identity_calls() -> int:
        return sum(
            1
            for call in sts.calls
            if call.action == "GetCallerIdentity" and call.caller_arn == sts.root_arn
        )

    asked = parent_identity_calls()
    again = await assume_role(make_parent(), ROLE, RoleSessionName="shared", cache=cache())
    await (await again.get_credentials()).get_frozen_credentials()
    assert sts.assume_role_count == 3
    assert parent_identity_calls() == asked + 1
    # Not the keys botocore and the AWS CLI use (they leave the parent out).
    plain = JSONFileCache(tmp_path / "plain")
    await caller_arn(await assume_role(make_parent(), ROLE, RoleSessionName="shared", cache=plain))
    (plain_entry,) = os.listdir(tmp_path / "plain")
    assert plain_entry not in os.listdir(tmp_path)
    assert "key_by_parent_identity=True" in repr(cache())
    with pytest.raises(TypeError, match="key_by_parent_identity must be True or False"):
        JSONFileCache(tmp_path, key_by_parent_identity="yes")  # type: ignore[arg-type]


# entry_problem: what any cache may hold that must not be used.


def _entry(**credentials: Any) -> dict[str, Any]:
    entry = _assume_role_response(_future())
    entry["Credentials"].update(credentials)
    return entry


def _other_account() -> dict[str, Any]:
    entry = _assume_role_response(_future())
    entry["AssumedRoleUser"]["Arn"] = "arn:aws:sts::999999999999:assumed-role/Reader/x"
    return entry


def _assumed_as(role_and_session: str, partition: str = "aws", kind: str = "assumed-role") -> Any:
    entry = _assume_role_response(_future())
    arn = f"arn:{partition}:sts::123456789012:{kind}/{role_and_session}"
    entry["AssumedRoleUser"]["Arn"] = arn
    return entry


_BAD_ENTRIES: dict[str, tuple[Any, str]] = {
    "a list": ([], "not an object"),
    "no credentials": ({"AssumedRoleUser": {}}, "no Credentials"),
    "integer key id": (_entry(AccessKeyId=123), "AccessKeyId"),
    "integer secret": (_entry(SecretAccessKey=123), "SecretAccessKey"),
    "empty token": (_entry(SessionToken=""), "SessionToken"),
    "no token": (
        {**_entry(), "Credentials": {"AccessKeyId": "A", "SecretAccessKey": "S"}},
        "SessionToken",
    ),
    "year 9999": (_entry(Expiration="9999-12-31T23:59:59UTC"), "12 hours"),
    "13 hours away": (_entry(Expiration=_future(13)), "12 hours"),
    "unparsable expiration": (_entry(Expiration="next Tuesday"), "Expiration"),
    "numeric expiration": (_entry(Expiration=1e18), "Expiration"),
    "odd expiration": (_entry(Expiration="1" * 60), "Expiration"),
    "another account": (_other_account(), "account 999999999999"),
    "no assumed role user": (
        {"Credentials": _entry()["Credentials"]},
        "AssumedRoleUser",
    ),
    "account id mismatch": (_entry(AccountId="999999999999"), "AccountId"),
    "another role": (_assumed_as("Admin/session"), "not for the requested role Reader"),
    "another partition": (
        _assumed_as("Reader/session", partition="aws-cn"),
        "not for the requested role",
    ),
    "a user, not a role session": (
        _assumed_as("Reader/session", kind="user"),
        "AssumedRoleUser.Arn of an assumed role",
    ),
}


@pytest.mark.parametrize(("value", "named"), list(_BAD_ENTRIES.values()), ids=list(_BAD_ENTRIES))
def test_entry_problem_names_what_is_wrong_without_quoting_secrets(value: Any, named: str) -> None:
    problem = _cache.entry_problem(value, ROLE, time.time())
    assert problem is not None
    assert named in problem
    assert SECRET not in problem


def test_entry_problem_accepts_real_entries() -> None:
    now = time.time()
    entry = _assume_role_response(_future(12))  # the longest STS lifetime
    assert _cache.entry_problem(entry, ROLE, now) is None
    # as read back from a file: Expiration as botocore writes it, and AccountId added
    from_file = json.loads(_cache._dumps(entry))
    from_file["Credentials"]["AccountId"] = "123456789012"
    assert _cache.entry_problem(from_file, ROLE, now) is None
    # expired is not this function's business (the caller refreshes)
    assert _cache.entry_problem(_assume_role_response(_future(-1)), ROLE, now) is None
    # the role name is the last segment of the role ARN's path, compared as IAM does
    assert _cache.entry_problem(_assumed_as("Auditor/s"), ROLE_WITH_PATH, now) is None
    assert _cache.entry_problem(_assumed_as("auditor/s"), ROLE_WITH_PATH, now) is None
    assert _cache.entry_problem(_assumed_as("to/s"), ROLE_WITH_PATH, now) is not None
    # without a role ARN to compare with (validate=False and garbage), no account check
    assert _cache.entry_problem(_other_account(), "not-an-arn", now) is None
    assert _cache.entry_problem(_other_account(), None, now) is None


def test_entry_problem_checks_the_session_name_where_it_is_known() -> None:
    now = time.time()
    entry = _assume_role_response(_future())  # .../assumed-role/Reader/session
    assert _cache.entry_problem(entry, ROLE, now, session_name="session") is None
    problem = _cache.entry_problem(entry, ROLE, now, session_name="other")
    assert problem is not None
    assert "not for the requested session name other" in problem
    assert SECRET not in problem
    # a generated name is not known (it changes with every process): any session will do
    assert _cache.entry_problem(entry, ROLE, now, session_name=None) is None
    # a session name with a slash cannot be faked by the role's name
    tricky = _assumed_as("Reader/a/b")
    assert _cache.entry_problem(tricky, ROLE, now, session_name="b") is not None


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("damage", ["integer keys", "year 9999", "another account"])
async def test_an_implausible_cached_entry_is_a_miss(
    sts: LoopbackSTS, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """Any cache, a dict too: the integer case broke every request until expiry."""
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    cache: dict[str, Any] = {}
    first = await assume_role(make_parent(), ROLE, RoleSessionName="damaged", cache=cache)
    await caller_arn(first)
    (entry,) = cache.values()
    if damage == "integer keys":
        entry["Credentials"].update(AccessKeyId=1, SecretAccessKey=2, SessionToken=3)
    elif damage == "year 9999":
        entry["Credentials"]["Expiration"] = "9999-12-31T23:59:59UTC"
    else:
        entry["AssumedRoleUser"]["Arn"] = "arn:aws:sts::999999999999:assumed-role/Reader/x"
        entry["Credentials"]["AccountId"] = "999999999999"
    again = await assume_role(make_parent(), ROLE, RoleSessionName="damaged", cache=cache)
    assert await caller_arn(again) == await caller_arn(first)
    assert sts.assume_role_count == 2
    assert "ignoring the cache entry" in caplog.text


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_without_the_parents_identity_the_refresh_goes_on_without_the_cache(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    sts: LoopbackSTS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GetCallerIdentity failing (once) costs the cache, never the credentials."""
    from aio_assume_role_lib import _fetch

    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    real_parent_arn = _fetch.AssumeRoleFetcher._parent_arn
    failures = [botocore.exceptions.ClientError({"Error": {"Code": "Throttling"}}, "x")]

    async def flaky_parent_arn(self: Any) -> str:
        if failures:
            raise failures.pop()
        return await real_parent_arn(self)

    monkeypatch.setattr(_fetch.AssumeRoleFetcher, "_parent_arn", flaky_parent_arn)
    cache = JSONFileCache(tmp_path, key_by_parent_identity=True)
    child = await assume_role(make_parent(), ROLE, RoleSessionName="who", cache=cache)
    credentials = await child.get_credentials()
    await credentials.get_frozen_credentials()
    assert sts.assume_role_count == 1
    assert "cannot tell the parent's identity (Throttling" in caplog.text
    assert os.listdir(tmp_path) == []  # no key to write under
    credentials.invalidate()
    await credentials.get_frozen_credentials()  # the next refresh asks again, and writes
    assert sts.assume_role_count == 2
    assert len(os.listdir(tmp_path)) == 1


# Reading never blocks, never follows a link, never reads more than MAX_FILE_BYTES. Run
# in a child process with a memory limit and a timeout: today's failure modes are a
# thread blocked forever on a FIFO and reading /dev/zero until MemoryError.
_READER = textwrap.dedent(
    """
    import logging, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from aio_assume_role_lib._cache import JSONFileCache
    print("key" in JSONFileCache(sys.argv[1]))
    """
)


def _read_in_a_child(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _READER, str(directory)],
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )


_ODD_FILES = {
    "fifo": "not a regular file",
    "symlink to /dev/zero": "symbolic link",
    "symlink to a good entry": "symbolic link",
    "3 GiB sparse file": "larger than 65536 bytes",
    "just over the cap": "larger than 65536 bytes",
    "deeply nested JSON": "not JSON",
}


@needs_posix_modes
@pytest.mark.parametrize(("kind", "reason"), list(_ODD_FILES.items()), ids=list(_ODD_FILES))
def test_odd_files_are_refused_at_once_with_a_warning(
    tmp_path: Path, kind: str, reason: str
) -> None:
    path = tmp_path / "key.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "symlink to a good entry":
        good = tmp_path / "elsewhere.json"
        good.write_text(_GOOD)
        path.symlink_to(good)
    elif kind == "3 GiB sparse file":  # more than the child's memory limit
        with open(path, "wb") as file:
            file.truncate(3 << 30)
    elif kind == "just over the cap":
        path.write_text(json.dumps({"padding": "x" * _cache.MAX_FILE_BYTES}))
    else:
        path.write_text("[" * 30_000 + "]" * 30_000)  # within the cap
    result = _read_in_a_child(tmp_path)
    assert (result.returncode, result.stdout) == (0, "False\n"), result.stderr[-2000:]
    assert str(path) in result.stderr
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1  # one warning line, no traceback


def test_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    cache = JSONFileCache(tmp_path)
    padding = "x" * (_cache.MAX_FILE_BYTES - len('{"p": ""}'))
    cache["key"] = {"p": padding}
    assert (tmp_path / "key.json").stat().st_size == _cache.MAX_FILE_BYTES
    assert cache["key"] == {"p": padding}
    with pytest.raises(ValueError, match="more than the 65536"):
        cache["key"] = {"p": padding + "x"}
    assert cache["key"] == {"p": padding}


# Temporary files left by a crash hold a secret key: the next write removes them.


def _temp_file(directory: Path, key: str, age_seconds: float) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{key}.json.", suffix=".tmp")
    os.write(fd, json.dumps({"SecretAccessKey": SECRET}).encode())
    os.close(fd)
    then = time.time() - age_seconds
    os.utime(name, (then, then))
    return Path(name)


@needs_posix_modes
def test_stale_temporary_files_of_ours_are_removed_on_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = JSONFileCache(tmp_path)
    stale_same_key = _temp_file(tmp_path, "key", 3600)
    stale_other_key = _temp_file(tmp_path, "other", 3600)
    in_progress = _temp_file(tmp_path, "key", 5)  # another writer, a moment ago
    not_ours_by_name = tmp_path / ".notes.tmp"
    not_ours_by_name.write_text("keep")
    os.utime(not_ours_by_name, (0, 0))
    foreign = _temp_file(tmp_path, "foreign", 3600) if IS_ROOT else None
    if foreign is not None:
        os.chown(foreign, 54321, 54321)

    cache["key"] = {"a": 1}
    left = {p.name for p in tmp_path.iterdir()}
    assert stale_same_key.name not in left
    assert stale_other_key.name not in left
    assert {in_progress.name, not_ours_by_name.name, "key.json"} <= left
    if foreign is not None:
        assert foreign.name in left  # its owner's business


@needs_posix_modes
def test_a_crash_between_write_and_rename_leaves_nothing_after_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = JSONFileCache(tmp_path)

    def crash(*args: object) -> None:
        raise KeyboardInterrupt  # stands for a kill between write and rename

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            cache["key"] = {"SecretAccessKey": SECRET}
    assert list(tmp_path.iterdir()) == []  # an interrupted write cleans up after itself
    # A real kill cannot clean up: the leftover is removed by a later write.
    leftover = _temp_file(tmp_path, "key", _cache._STALE_TEMP_SECONDS + 1)
    cache["other"] = {"a": 1}
    assert not leftover.exists()
    assert all(SECRET not in p.read_text() for p in tmp_path.iterdir())


@needs_posix_modes
@pytest.mark.usefixtures("private_umask")
def test_every_directory_the_cache_creates_is_private(tmp_path: Path) -> None:
    JSONFileCache(tmp_path / "a" / "b" / "c")["key"] = {"a": 1}
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.mark.anyio
async def test_a_hanging_read_does_not_hold_the_caller_past_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that hangs (a dead network mount, say): the caller's deadline wins."""
    cache = JSONFileCache(tmp_path)
    cache["key"] = {"a": 1}
    release = threading.Event()

    def hanging_read(path: str, *args: object) -> bytes:
        release.wait(timeout=10)  # (bounded: a failing run ends too)
        return b"{}"

    monkeypatch.setattr(_cache, "_read_file", hanging_read)
    try:
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.2):
                await cache.aget("key")
        assert not release.is_set()  # the deadline came while the read still hung
    finally:
        release.set()


# --- a hung file system under a refresh's deadline, with time by hand (issue 20 D5) -------


class _HungContains(botocore.utils.JSONFileCache):  # type: ignore[misc]
    """botocore's own cache, on a file system whose reads hang until released."""

    def __init__(self, working_dir: str, hang: Any) -> None:
        super().__init__(working_dir=working_dir)
        self._hang = hang

    def __contains__(self, cache_key: object) -> bool:
        self._hang()
        return bool(super().__contains__(cache_key))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("hung", "deadline"),
    [
        # A shared refresh opens the key's lock file inside its try.
        ("lock file open", "try_timeout_seconds"),
        # The first refresh reads the cache before its tries, within their allowance.
        ("botocore cache read", "token_code_timeout_seconds"),
        ("cache read", "token_code_timeout_seconds"),
    ],
)
async def test_a_hung_file_system_hop_is_abandoned_at_the_refresh_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str, hung: str, deadline: str
) -> None:
    """Every hop of a refresh into a worker thread (the lock file's open, a cache read)
    is let go when the refresh's deadline comes, by the refresher's clock: here a hand
    clock, so the hop hangs for as long as the test likes and the deadline comes exactly
    when the clock says (the fetcher's own real-time bounds are set far out)."""
    entered, release = threading.Event(), threading.Event()

    def hang(*args: object) -> None:
        entered.set()
        release.wait(HANG_SECONDS)  # (bounded: a failing run ends too)

    cache: Any
    if hung == "lock file open":
        take = _cache._try_lock

        def hung_open(path: str, held: list[int], created: list[str]) -> None:
            hang()
            take(path, held, created)

        monkeypatch.setattr(_cache, "_try_lock", hung_open)
        cache = JSONFileCache(tmp_path)
    elif hung == "botocore cache read":
        cache = _HungContains(str(tmp_path), hang)
    else:
        read = _cache._read_file

        def hung_read(path: str, *args: Any) -> bytes:
            hang()
            return read(path, *args)

        monkeypatch.setattr(_cache, "_read_file", hung_read)
        cache = JSONFileCache(tmp_path)
    policy = RefreshPolicy(try_timeout_seconds=0.5, token_code_timeout_seconds=1.0, max_tries=1)
    seconds = getattr(policy, deadline)
    clock = ManualClock(wall=time.time())
    child = hand_clock_child(
        StsClients(make_parent()), clock, ROLE, RoleSessionName="hung", cache=cache, policy=policy
    )
    outcome: list[BaseException] = []

    async def first_fetch() -> None:
        with pytest.raises(RefreshTimeoutError) as caught:
            await child.get()
        outcome.append(caught.value)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first_fetch)
            with anyio.fail_after(HANG_SECONDS):
                while not entered.is_set():  # the hop is in its worker thread  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            await clock.advance(seconds * 0.9)
            assert outcome == []  # before the deadline: still waiting for the hop
            await clock.advance(seconds * 0.1)
            for _ in range(1000):  # scheduler rounds, no time: the hop is let go at once
                if outcome:
                    break
                await anyio.lowlevel.checkpoint()
            assert outcome, "the refresh still waits for the hung hop after its deadline"
            assert not release.is_set()  # the hop hangs on: it was abandoned, not waited for
    finally:
        release.set()

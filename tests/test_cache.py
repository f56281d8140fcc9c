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
import tempfile
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

from aio_assume_role_lib import JSONFileCache, _cache, assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import HANG_SECONDS, caller_arn, make_parent

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

    def paused_write(path: str, data: bytes) -> None:
        writing.set()
        release.wait(timeout=HANG_SECONDS)
        write_file(path, data)

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


# --- hardening: the cache trusts only what the current user wrote (issue 12) --------------

ROLE = "arn:aws:iam::123456789012:role/Reader"
IS_ROOT = os.name == "posix" and os.geteuid() == 0


def make_foreign(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` look owned by another user: for real as root, else by our uid's look."""
    if IS_ROOT:
        os.chown(path, 54321, 54321, follow_symlinks=False)
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
def test_a_sticky_shared_directory_is_trusted_for_our_own_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="aio_assume_role_lib")
    directory = tmp_path / "like-tmp"
    cache = JSONFileCache(directory)
    cache["ours"] = {"a": 1}
    cache["theirs"] = {"b": 2}
    directory.chmod(0o1777)
    assert cache["ours"] == {"a": 1}
    cache["ours"] = {"a": 3}  # writing there is fine too
    assert cache["ours"] == {"a": 3}
    if IS_ROOT:  # (without root, the foreign look applies to every file)
        make_foreign(directory / "theirs.json", monkeypatch)
        assert "theirs" not in cache
        assert "owned by another user" in caplog.text


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


# entry_problem: what any cache may hold that must not be used.


def _entry(**credentials: Any) -> dict[str, Any]:
    entry = _assume_role_response(_future())
    entry["Credentials"].update(credentials)
    return entry


def _other_account() -> dict[str, Any]:
    entry = _assume_role_response(_future())
    entry["AssumedRoleUser"]["Arn"] = "arn:aws:sts::999999999999:assumed-role/Reader/x"
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
    # without a role ARN to compare with (validate=False and garbage), no account check
    assert _cache.entry_problem(_other_account(), "not-an-arn", now) is None
    assert _cache.entry_problem(_other_account(), None, now) is None


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

    def hanging_read(path: str) -> bytes:
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

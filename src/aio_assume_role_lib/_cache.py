"""A credential cache on disk that botocore and the AWS CLI can share.

`JSONFileCache` stores each value as ``<dir>/<key>.json`` in the same JSON format as
botocore's (and so the AWS CLI's ``~/.aws/cli/cache``), so entries written by either
are read by the other. Beyond botocore it:

- writes atomically (a temporary file in the same directory, then ``os.replace``),
  so a concurrent reader sees the old file or the new one, never a partial one;
- creates files with mode 0600 and the directory with mode 0700 (at creation, so
  there is no moment when a file with credentials in it is readable by others);
- treats a corrupted, truncated, empty or unreadable file as absent, with a warning
  that names the file but never its content;
- trusts only what the current user could have written (as ssh does with its files): a
  file owned by another user is absent, with a warning, and so is every file of a
  directory that another user owns (root excepted) or may write to (unless only the
  user's private group may); a sticky shared directory like ``/tmp`` is never a cache
  directory (its owner could rename the entries), nor is one whose parents the cache
  created stopped being private. Nothing is written to a directory it does not trust;
- takes its keys as plain file names: a key that could name a file elsewhere (``/``,
  ``\\``, ``..``, NUL, empty) is a ``ValueError``;
- reads only regular files, without following a symbolic link, without blocking on a
  FIFO or a device, and at most ``MAX_FILE_BYTES`` (a real entry is about 2 KB);
- removes stale temporary files of its own (left by a process killed mid-write, with
  a secret in them) when it writes;
- creates every directory it makes, intermediate ones included, with mode 0700;
- offers ``aget``/``aset``, which run the file IO in a worker thread so the event loop
  (asyncio or trio) never waits on the disk;
- offers ``alock``, a per-key lock (``<dir>/.<key>.lock``, present only while held) that
  lets the processes of a host share one refresh (see ``_fetch``): taken by non-blocking
  attempts with an async sleep between them, given up after a bound, released by the
  kernel if its holder dies, and never taken on a lock file of another user's (the
  refresh then goes ahead at once, without it).

The lock is ``flock(2)`` used directly rather than the ``filelock`` package: it needs one
non-blocking call and one ``close``, while ``filelock`` keeps per-thread state by default
(our attempts run in worker threads), creates missing directories with the default mode
(ours must be 0700) and adds a dependency. Where there is no ``flock`` (Windows), the
cache works as before, unlocked.

:func:`entry_problem` checks that a cached AssumeRole response is plausible and answers
the request before anyone uses it (types, expiration, account, role, session name),
whatever cache it came from.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import functools
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

try:
    import fcntl
except ImportError:  # Windows: no flock, the cache is not locked
    fcntl = None  # type: ignore[assignment]

import anyio.to_thread
import botocore.utils
from botocore.utils import parse_timestamp

__all__ = ["MAX_FILE_BYTES", "CredentialCache", "JSONFileCache", "entry_problem"]

logger = logging.getLogger("aio_assume_role_lib")

_FILE_SUFFIX = ".json"
# Not "*.json": botocore and the AWS CLI read "<key>.json" only, and never see these.
_LOCK_SUFFIX = ".lock"
# Between two attempts to take a held lock: short next to an STS call (~100 ms).
_LOCK_POLL_SECONDS = 0.05

MAX_FILE_BYTES = 64 * 1024
"""Cache files larger than this are not read (an AssumeRole entry is about 2 KB)."""

# A temporary file older than this cannot belong to a write still in progress (a write
# takes milliseconds); one left that long is a crash's leftover, holding a secret.
_STALE_TEMP_SECONDS = 10 * 60
# What tempfile.mkstemp names ours: ".<key>.json.<8 random characters>.tmp".
_TEMP_NAME = re.compile(r"\..+\.json\.[a-z0-9_]{8}\.tmp")

_IS_POSIX = os.name == "posix"
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)  # a symbolic link (to /dev/zero, say) is not ours
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once, and fstat then refuses it
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class UntrustedCacheError(PermissionError):
    """The cache directory is writable by other users, so its files cannot be trusted."""


class _Missing:
    """Marks an absent or unusable cache entry (``None`` is a valid JSON value)."""


_MISSING = _Missing()


def _serialize_datetime(value: object) -> object:
    # The format botocore's JSONFileCache writes (e.g. "2024-05-01T12:00:00UTC"); its
    # AssumeRoleCredentialFetcher parses it back with dateutil.
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S%Z")
    # json.dumps calls this only for values it cannot serialize: refuse them by type
    # only, since the value may hold secrets.
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_serialize_datetime)


class _Refused(Exception):
    """A cache file that exists but is not to be read; the message says why."""


# What a key may not contain: it names one file in the directory, nothing else.
_KEY_SEPARATORS = tuple({"/", "\\", os.sep, os.altsep or "/"})


def _checked_key(cache_key: str) -> str:
    """``cache_key`` if it is a plain file name (botocore's are hex digests); else raise."""
    if not isinstance(cache_key, str):
        raise TypeError(f"a cache key must be a string, not {type(cache_key).__name__}")
    if (
        not cache_key
        or ".." in cache_key
        or cache_key == "."
        or "\0" in cache_key
        or any(separator in cache_key for separator in _KEY_SEPARATORS)
    ):
        shown = cache_key if len(cache_key) <= 80 else cache_key[:80] + "..."
        raise ValueError(
            f"invalid cache key {shown!r}: a cache key must be a plain file name, not empty "
            "and without '/', '\\', '..' or NUL"
        )
    return cache_key


def _trust_problem(status: os.stat_result, euid: int) -> str | None:
    """Why a directory with ``status`` cannot hold files the user ``euid`` trusts, or None.

    Another user who can write to a directory can rename, replace or remove any file in
    it; the sticky bit stops them only for files they do not own, and the directory's
    owner can still rename everything (and make it writable again). So the directory
    must be the user's own, or root's, and writable by no one else. A group-writable
    directory is fine when that group is the user's private group (see
    :func:`_is_private_group`).
    """
    mode = status.st_mode
    group_writable = mode & stat.S_IWGRP and not _is_private_group(status.st_gid, euid)
    if group_writable or mode & stat.S_IWOTH:
        if mode & stat.S_ISVTX:
            return (
                "is a shared directory like /tmp (writable by other users, sticky); "
                "make a directory of your own in it"
            )
        return "is writable by other users"
    if status.st_uid not in (euid, 0):
        return f"is owned by another user (uid {status.st_uid})"
    return None


def _directory_problem(directory: str, created_parents: Iterable[str] = ()) -> str | None:
    """Why files in ``directory`` cannot be trusted, or None.

    ``directory`` must be the current user's (or root's) and writable by no one else
    (see :func:`_trust_problem`); so must each of ``created_parents`` (the parents the
    cache made for it) that still exists: whoever can write to one of those can move the
    directory away and put another in its place.

    Raises:
        OSError: ``directory`` cannot be examined (FileNotFoundError: there is none).
    """
    if not _IS_POSIX:
        return None
    euid = os.geteuid()
    problem = _trust_problem(os.stat(directory), euid)
    if problem is not None:
        return f"its directory {problem}"
    for parent in created_parents:
        try:
            status = os.stat(parent)
        except FileNotFoundError:
            continue
        problem = _trust_problem(status, euid)
        if problem is not None:
            return f"its parent directory {parent} {problem}"
    return None


@functools.lru_cache(maxsize=8)  # (user and group lookups may ask a directory service)
def _is_private_group(gid: int, euid: int) -> bool:
    """True if ``gid`` is user ``euid``'s own group, of which no one else is a member.

    Many Linux systems give each user a group of the same name and a umask of 002, so
    the directories they make (the AWS CLI's ``~/.aws/cli/cache`` among them) are
    group-writable; as Debian's ssh does, that is no reason to distrust them.
    """
    try:
        import grp
        import pwd

        user = pwd.getpwuid(euid)
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):  # no such group: no one to vouch for it
        return False
    return (
        group.gr_gid == user.pw_gid
        and group.gr_name == user.pw_name
        and set(group.gr_mem) <= {user.pw_name}
    )


def _read_file(path: str, created_parents: Iterable[str] = ()) -> bytes:
    """The content of the regular file ``path``, if the current user may trust it.

    ``created_parents``: the parents of its directory that the cache created (see
    :func:`_directory_problem`).

    Raises:
        FileNotFoundError: there is no file.
        _Refused: the file is not one to read.
        OSError: it cannot be read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _Refused("it is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as file:
        # The directory first: in one that is not trusted, whose the file is says nothing.
        problem = _directory_problem(os.path.dirname(path) or os.curdir, created_parents)
        if problem is not None:
            raise _Refused(problem)
        # Checked on the open file, so it cannot be swapped between the check and the read.
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _Refused("it is not a regular file")
        if _IS_POSIX and status.st_uid != os.geteuid():
            raise _Refused(f"it is owned by another user (uid {status.st_uid})")
        data = file.read(MAX_FILE_BYTES + 1)  # bounded, whatever the size says
        if len(data) > MAX_FILE_BYTES:
            raise _Refused(f"it is larger than {MAX_FILE_BYTES} bytes")
        return data


def _make_private_directories(directory: str, created: list[str]) -> None:
    """Create ``directory`` and any missing parent with mode 0700, adding to ``created``
    each one made (so that the cache checks they stay private).

    ``os.makedirs`` gives the parents it creates the default mode (0777 less the umask,
    so 0777 under umask 000); each is made here with 0700 instead. The umask can only
    narrow that. A directory that already exists keeps its mode.
    """
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # made meanwhile by another writer
            continue
        if path not in created:
            created.append(path)


def _remove_stale_temp_files(directory: str, now: float) -> None:
    """Remove our temporary files that a process killed mid-write left behind."""
    uid = os.geteuid() if _IS_POSIX else None
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _TEMP_NAME.fullmatch(entry.name):
            continue
        try:
            status = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(status.st_mode) or (uid is not None and status.st_uid != uid):
                continue  # not ours: leave it to its owner
            if now - status.st_mtime > _STALE_TEMP_SECONDS:
                os.unlink(entry.path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove


def _write_file_atomically(path: str, data: bytes, created: list[str]) -> None:
    directory = os.path.dirname(path) or os.curdir
    _make_private_directories(directory, created)
    problem = _directory_problem(directory, tuple(created))
    if problem is not None:
        # What others may replace is never read back: do not leave credentials there.
        raise UntrustedCacheError(f"not writing credential cache file {path}: {problem}")
    _remove_stale_temp_files(directory, time.time())
    # mkstemp creates the file with mode 0600, so the content is never readable by others.
    fd, temp_path = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_path)
        raise


class CredentialCache(Protocol):
    """What ``assume_role(..., cache=...)`` accepts: a ``dict`` or any ``MutableMapping``
    with string keys, this module's :class:`JSONFileCache`, or botocore's (which is not a
    ``MutableMapping``). The parameters are positional-only so that any names match."""

    def __contains__(self, key: str, /) -> bool: ...
    def __getitem__(self, key: str, /) -> Any: ...
    def __setitem__(self, key: str, value: Any, /) -> None: ...


class _ForeignLockError(PermissionError):
    """The lock file is not one of ours: another user made it, or it is not a file."""


def _try_lock(path: str, held: list[int], created: list[str]) -> None:
    """Take the exclusive lock on ``path`` if it is free, appending its descriptor to ``held``.

    The descriptor goes into ``held`` (not a return value) so that a caller cancelled
    while this ran in a worker thread still finds, and closes, a lock it took.
    """
    directory = os.path.dirname(path) or os.curdir
    _make_private_directories(directory, created)
    problem = _directory_problem(directory, tuple(created))
    if problem is not None:  # its entries are not read either: nothing to share
        raise UntrustedCacheError(errno.EPERM, problem)
    fd = os.open(
        path,
        os.O_RDWR
        | os.O_CREAT
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once, and fstat then refuses it
        | getattr(os, "O_CLOEXEC", 0),
        0o600,
    )
    try:
        # Checked on the open descriptor: another user's lock file (which they may hold
        # for ever, or take from us at will) is never used, and never removed.
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise _ForeignLockError(errno.EPERM, "it is not a regular file")
        if opened.st_uid != os.geteuid():
            raise _ForeignLockError(
                errno.EPERM, f"it is owned by another user (uid {opened.st_uid})"
            )
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder removes the file as it lets go, so a lock taken on a file that was
        # opened before that protects nothing: it counts only if it is still the file
        # at ``path`` (the usual check of lock files that are removed).
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            raise BlockingIOError(errno.EAGAIN, "the lock file was replaced")
    except BaseException:
        os.close(fd)
        raise
    held.append(fd)


def _unlock(fd: int, path: str) -> None:
    # Removed while still locked (see _try_lock), so the directory holds only the
    # entries botocore and the AWS CLI know, except during a refresh; closing the
    # descriptor releases the lock.
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.close(fd)


class _Taking:
    """One ``alock``'s attempts, which may run on in worker threads after the caller
    stopped waiting for them: a lock taken by an abandoned attempt is let go at once."""

    __slots__ = ("_created", "_guard", "_path", "abandoned", "held")

    def __init__(self, held: list[int], path: str, created: list[str]) -> None:
        self._guard = threading.Lock()
        self._path = path
        self._created = created
        self.held = held
        self.abandoned = False

    def attempt(self) -> None:  # in a worker thread
        mine: list[int] = []
        try:
            _try_lock(self._path, mine, self._created)
        finally:
            with self._guard:
                late = self.abandoned
                if not late:
                    self.held.extend(mine)
            if late:
                for fd in mine:
                    _unlock(fd, self._path)

    def abandon(self) -> list[int]:
        """Stop taking; return the descriptors held (to let go of)."""
        with self._guard:
            self.abandoned = True
            return list(self.held)


class JSONFileCache(botocore.utils.JSONFileCache):
    """A directory of JSON files, one per cache key, shared with botocore and the AWS CLI.

    Use it as the ``cache`` of :func:`assume_role` to reuse still-valid credentials across
    process restarts::

        cache = JSONFileCache(Path.home() / ".aws" / "cli" / "cache")
        child = await assume_role(session, role_arn, cache=cache)

    It is a mapping (``key in cache``, ``cache[key]``, ``cache[key] = value``,
    ``del cache[key]``) like botocore's, plus :meth:`aget` and :meth:`aset`, which do the
    file IO in a worker thread. A key is a plain file name (``ValueError`` for one with
    ``/``, ``\\``, ``..`` or NUL in it). An entry whose file cannot be read or parsed is
    absent, and so is one the current user cannot trust: a file owned by another user,
    anything but a regular file, a file larger than ``MAX_FILE_BYTES``, or any file when
    the directory is not the user's own (or root's), is writable by other users (a
    sticky one like ``/tmp`` included: make a directory of your own in it), or sits in a
    directory this cache created that has stopped being private. Writing to such a
    directory raises ``PermissionError``. :func:`assume_role` also ignores (and, after
    its refresh, replaces) an entry that does not answer its request: one whose
    ``AssumedRoleUser`` is another role's, or another session name's.

    **One cache directory per trust boundary.** As in botocore and the AWS CLI, the cache
    key is made of the AssumeRole arguments only: two parent sessions with different
    credentials (or identities) that ask for the same role with the same arguments
    share one entry, so a process whose parent may not assume the role still gets the
    credentials another parent cached. Give each set of parents that must not share
    credentials a directory of its own, or pass ``key_by_parent_identity=True``: the key
    then also holds the parent's identity (the ARN ``sts:GetCallerIdentity`` gives for its
    credentials, asked once per credentials object; never its access key, which rotates),
    so only parents of the same identity share entries. Those keys are not the AWS CLI's,
    which then neither reads nor writes them. A parent that is itself an assumed role
    has its session name in that ARN: with a generated one, each process has an identity
    of its own.

    With ``lock=True`` (the default) the processes of a host that use the same role
    share one refresh: the one that refreshes holds the key's lock file
    (``<dir>/.<key>.lock``, mode 0600) until it has written the new credentials, and the
    others, once they have the lock, find them in the file instead of calling STS. The
    wait is bounded; a holder that dies releases the lock at once. ``lock=False`` turns
    this off (each process refreshes on its own and only reads the file at start-up).
    """

    def __init__(
        self,
        dir_path: str | os.PathLike[str],
        *,
        lock: bool = True,
        key_by_parent_identity: bool = False,
    ) -> None:
        for name, value in (("lock", lock), ("key_by_parent_identity", key_by_parent_identity)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
        self._dir_path = os.fspath(dir_path)
        self._lock = lock
        self._key_by_parent_identity = key_by_parent_identity
        # The directories this object made (the cache's and its missing parents): they
        # must stay private for their files to be trusted.
        self._created: list[str] = []
        super().__init__(working_dir=self._dir_path, dumps_func=_dumps)

    def __repr__(self) -> str:
        suffix = "" if self._lock else ", lock=False"
        if self._key_by_parent_identity:
            suffix += ", key_by_parent_identity=True"
        return f"{type(self).__name__}({self._dir_path!r}{suffix})"

    @property
    def key_by_parent_identity(self) -> bool:
        """Whether :func:`assume_role` adds the parent's identity to the cache key."""
        return self._key_by_parent_identity

    @property
    def locking(self) -> bool:
        """Whether refreshes through this cache are coordinated by its lock files."""
        return self._lock and fcntl is not None

    def _lock_path_for(self, cache_key: str) -> str:
        return os.path.join(self._dir_path, "." + _checked_key(cache_key) + _LOCK_SUFFIX)

    @contextlib.asynccontextmanager
    async def alock(self, cache_key: str, wait_seconds: float) -> AsyncIterator[bool]:
        """Hold the lock of ``cache_key`` for the body; the value says whether it is held.

        The event loop never waits on the lock: each attempt is non-blocking (in a worker
        thread, since opening a file can touch a slow disk) and an async sleep separates
        them. After ``wait_seconds``, or if the lock file cannot be opened or is another
        user's, the body runs without the lock (``False``): a holder stuck in a slow STS
        call delays the others by at most that. An attempt stuck in the file system (a
        hung ``open``) is abandoned at ``wait_seconds`` too, or when the caller is
        cancelled; a lock it takes after that is let go at once. ``False`` at once when
        :attr:`locking` is off. Raises ``ValueError`` for a key that is not a plain file
        name.
        """
        path = self._lock_path_for(cache_key)  # checks the key, whether locking or not
        held: list[int] = []
        taking = _Taking(held, path, self._created)
        try:
            if self.locking:
                await self._acquire(path, wait_seconds, taking)
            yield bool(held)
        finally:
            for fd in taking.abandon():
                _unlock(fd, path)

    async def _acquire(self, path: str, wait_seconds: float, taking: _Taking) -> None:
        deadline = time.monotonic() + wait_seconds
        while True:
            with anyio.move_on_after(max(deadline - time.monotonic(), 0.0)) as attempt:
                try:
                    await anyio.to_thread.run_sync(taking.attempt, abandon_on_cancel=True)
                except BlockingIOError:  # held by another process (or another refresh)
                    pass
                except OSError as error:
                    logger.warning(
                        "cannot take the lock %s (%s); refreshing without it",
                        path,
                        error.strerror or type(error).__name__,
                    )
                    return
            if attempt.cancelled_caught:
                logger.warning(
                    "taking the lock %s did not finish within %.3g s (a slow file "
                    "system?); refreshing without it",
                    path,
                    wait_seconds,
                )
                return
            if taking.held:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.info(
                    "the lock %s is still held after %.3g s; refreshing without it",
                    path,
                    wait_seconds,
                )
                return
            await anyio.sleep(min(_LOCK_POLL_SECONDS, remaining))

    def _path_for(self, cache_key: str) -> str:
        return os.path.join(self._dir_path, _checked_key(cache_key) + _FILE_SUFFIX)

    def _load(self, cache_key: str) -> Any:
        """The value stored under ``cache_key``, or ``_MISSING`` if there is none usable."""
        path = self._path_for(cache_key)
        try:
            data = _read_file(path, tuple(self._created))
        except FileNotFoundError:
            return _MISSING
        except _Refused as refusal:
            logger.warning("ignoring credential cache file %s: %s", path, refusal)
            return _MISSING
        except OSError as error:
            logger.warning(
                "ignoring credential cache file %s: cannot read it (%s)",
                path,
                error.strerror or type(error).__name__,
            )
            return _MISSING
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
            # The error's message can quote the file's content: name its type only.
            logger.warning(
                "ignoring credential cache file %s: it is empty, truncated or not JSON (%s)",
                path,
                type(error).__name__,
            )
            return _MISSING

    def __contains__(self, cache_key: object) -> bool:
        if not isinstance(cache_key, str):
            return False
        return self._load(cache_key) is not _MISSING

    def __getitem__(self, cache_key: str) -> Any:
        value = self._load(cache_key)
        if value is _MISSING:
            raise KeyError(cache_key)
        return value

    def __setitem__(self, cache_key: str, value: Any) -> None:
        _write_file_atomically(self._path_for(cache_key), self._encode(value), self._created)

    def __delitem__(self, cache_key: str) -> None:
        try:
            os.unlink(self._path_for(cache_key))
        except FileNotFoundError:
            raise KeyError(cache_key) from None

    @staticmethod
    def _encode(value: Any) -> bytes:
        try:
            data = _dumps(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as error:
            # Never put the value in the message: it holds credentials.
            raise ValueError(
                f"value cannot be cached, it is not JSON serializable: {error}"
            ) from None
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(
                f"value cannot be cached: {len(data)} bytes of JSON, more than the "
                f"{MAX_FILE_BYTES} a cache file may hold"
            )
        return data

    async def aget(self, cache_key: str) -> Any | None:
        """The value stored under ``cache_key``, or ``None`` if it is absent or unusable.

        The file is read in a worker thread. Cancelling the caller (a refresh's deadline,
        say) does not wait for the read to end: a file system that hangs cannot hold the
        caller past its deadline, and the read's result is dropped.
        """
        self._path_for(cache_key)  # a bad key is the caller's error, raised here
        value = await anyio.to_thread.run_sync(self._load, cache_key, abandon_on_cancel=True)
        return None if value is _MISSING else value

    async def aset(self, cache_key: str, value: Any) -> None:
        """Store ``value`` under ``cache_key``, writing the file in a worker thread.

        The value is serialized before this returns control to the event loop, so a
        later change to ``value`` does not change what is written.
        """
        path = self._path_for(cache_key)
        data = self._encode(value)
        await anyio.to_thread.run_sync(_write_file_atomically, path, data, self._created)


# --- what a cached AssumeRole response must look like ---------------------------------------

# STS issues credentials for at most 12 hours. The margin allows for a local clock that
# runs behind STS's; an entry further out than that was not written by STS's answer.
_LONGEST_LIFETIME_SECONDS = 12 * 3600
_EXPIRATION_MARGIN_SECONDS = 15 * 60
# A role ARN: partition, account, and the role's name (the last segment of its path).
_ROLE_ARN = re.compile(r"arn:([^:]+):iam::([0-9]{12}):role/(?:.*/)?([^/]+)", re.DOTALL)
# What STS puts in AssumedRoleUser.Arn: partition, account, role name, session name.
_ASSUMED_ROLE_ARN = re.compile(r"arn:([^:]+):sts::([0-9]{12}):assumed-role/([^/]+)/(.+)", re.DOTALL)


def entry_problem(
    value: object, role_arn: object, now: float, session_name: str | None = None
) -> str | None:
    """Why the cached AssumeRole response ``value`` must not be used, or None if it may.

    Checks what any cache (a file, a dict, a store of the user's) can get wrong or be
    made to hold: the credentials are non-empty strings; ``Expiration`` parses and is
    no later than the longest lifetime STS gives (12 hours) plus a margin from ``now``
    (epoch seconds); and, when ``role_arn`` is a role ARN, the entry answers the request:
    its ``AssumedRoleUser.Arn`` (``arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION``)
    names the role's partition, account and name (the last segment of the role's path,
    compared without case, as IAM compares role names) and, if ``session_name`` is given
    (it is None when the name was generated, and so unknown), that session name. An
    entry renamed onto another key's file (for another role, or the same role with
    another session name) is caught this way; one for the same role and session name
    with other arguments (a ``Policy``) cannot be, which is why only trusted
    directories are read. An expiration in the past is not a problem here: the caller
    decides what is too short. The message never quotes a credential.
    """
    if not isinstance(value, Mapping):
        return f"it is a JSON {type(value).__name__}, not an object"
    credentials = value.get("Credentials")
    if not isinstance(credentials, Mapping):
        return "it has no Credentials object"
    for name in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        item = credentials.get(name)
        if not isinstance(item, str) or not item:
            return f"Credentials.{name} is not a non-empty string"
    expiration = credentials.get("Expiration")
    try:
        if isinstance(expiration, datetime.datetime):
            expires = expiration
        elif isinstance(expiration, str) and len(expiration) <= 64:
            expires = parse_timestamp(expiration)
        else:
            return "Credentials.Expiration is not a timestamp"
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.timezone.utc)
        expiry = expires.timestamp()
    except Exception:  # dateutil raises several types for odd text; none is quoted
        return "Credentials.Expiration is not a timestamp"
    if expiry > now + _LONGEST_LIFETIME_SECONDS + _EXPIRATION_MARGIN_SECONDS:
        return "Credentials.Expiration is further away than STS ever issues (12 hours)"
    role_match = _ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
    if role_match is None:
        return None
    partition, account, role_name = role_match.groups()
    user = value.get("AssumedRoleUser")
    arn = user.get("Arn") if isinstance(user, Mapping) else None
    user_match = _ASSUMED_ROLE_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if user_match is None:
        return "it has no AssumedRoleUser.Arn of an assumed role"
    user_partition, user_account, user_role, user_session = user_match.groups()
    if user_account != account:
        return f"it is for account {user_account}, not the role's account {account}"
    account_id = credentials.get("AccountId")
    if account_id is not None and account_id != account:
        return "Credentials.AccountId is not the role's account"
    # Role and session names are no secrets (CloudTrail records them), but what the file
    # says is quoted short and escaped: it may be anything.
    if user_partition != partition or user_role.lower() != role_name.lower():
        return (
            f"it is not for the requested role {role_name} (it is for {_short(user_role)} "
            f"in partition {_short(user_partition)})"
        )
    if session_name is not None and user_session != session_name:
        return (
            f"it is not for the requested session name {session_name} (it is for "
            f"{_short(user_session)})"
        )
    return None


def _short(text: str) -> str:
    return repr(text if len(text) <= 64 else text[:64] + "...")

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
- offers ``aget``/``aset``, which run the file IO in a worker thread so the event loop
  (asyncio or trio) never waits on the disk.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import tempfile
from typing import Any

import anyio.to_thread
import botocore.utils

__all__ = ["JSONFileCache"]

logger = logging.getLogger("aio_assume_role_lib")

_FILE_SUFFIX = ".json"


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


def _read_file(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _write_file_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    # mode applies to the directory this call creates (not to one that already exists);
    # the umask can only narrow it.
    os.makedirs(directory, mode=0o700, exist_ok=True)
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


class JSONFileCache(botocore.utils.JSONFileCache):  # type: ignore[misc]
    """A directory of JSON files, one per cache key, shared with botocore and the AWS CLI.

    Use it as the ``cache`` of :func:`assume_role` to reuse still-valid credentials across
    process restarts::

        cache = JSONFileCache(Path.home() / ".aws" / "cli" / "cache")
        child = await assume_role(session, role_arn, cache=cache)

    It is a mapping (``key in cache``, ``cache[key]``, ``cache[key] = value``,
    ``del cache[key]``) like botocore's, plus :meth:`aget` and :meth:`aset`, which do the
    file IO in a worker thread. An entry whose file cannot be read or parsed is absent.
    """

    def __init__(self, dir_path: str | os.PathLike[str]) -> None:
        self._dir_path = os.fspath(dir_path)
        super().__init__(working_dir=self._dir_path, dumps_func=_dumps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._dir_path!r})"

    def _path_for(self, cache_key: str) -> str:
        return os.path.join(self._dir_path, cache_key + _FILE_SUFFIX)

    def _load(self, cache_key: str) -> Any:
        """The value stored under ``cache_key``, or ``_MISSING`` if there is none usable."""
        path = self._path_for(cache_key)
        try:
            data = _read_file(path)
        except FileNotFoundError:
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
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
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
        _write_file_atomically(self._path_for(cache_key), self._encode(value))

    def __delitem__(self, cache_key: str) -> None:
        try:
            os.unlink(self._path_for(cache_key))
        except FileNotFoundError:
            raise KeyError(cache_key) from None

    @staticmethod
    def _encode(value: Any) -> bytes:
        try:
            return _dumps(value).encode("utf-8")
        except (TypeError, ValueError) as error:
            # Never put the value in the message: it holds credentials.
            raise ValueError(
                f"value cannot be cached, it is not JSON serializable: {error}"
            ) from None

    async def aget(self, cache_key: str) -> Any | None:
        """The value stored under ``cache_key``, or ``None`` if it is absent or unusable.

        The file is read in a worker thread.
        """
        value = await anyio.to_thread.run_sync(self._load, cache_key)
        return None if value is _MISSING else value

    async def aset(self, cache_key: str, value: Any) -> None:
        """Store ``value`` under ``cache_key``, writing the file in a worker thread.

        The value is serialized before this returns control to the event loop, so a
        later change to ``value`` does not change what is written.
        """
        data = self._encode(value)
        await anyio.to_thread.run_sync(_write_file_atomically, self._path_for(cache_key), data)

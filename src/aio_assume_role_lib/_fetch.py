"""Fetching one set of assumed-role credentials: the cache, the MFA code, the STS call.

:class:`AssumeRoleFetcher` is the loader given to the refresher. Each call makes at most
one AssumeRole request (botocore's own retries are off: the refresher owns retrying, so
a flight is exactly one attempt), through the parent session's STS client for the
running event loop (see ``_sts``), which follows the parent's region, credentials and
endpoint settings.

With a cache that can lock (:class:`~aio_assume_role_lib.JSONFileCache`, by default),
every refresh is shared by the processes of a host: the cache is read first (another
process may have renewed already), then the key's lock is taken, the cache read again,
and only then is STS called, the new credentials written before the lock is let go.
The waiting is bounded and never discards credentials in hand: whatever goes wrong with
the lock or the file, the fetcher just calls STS, and the refresher's static stability
covers that call failing.

Credentials taken from the cache instead of STS are reported to the refresher
(:meth:`AssumeRoleFetcher.loaded_from_cache`), which logs and counts them as cache hits.
With ``JSONFileCache(key_by_parent_identity=True)`` the cache key also holds the parent's
identity, asked of STS (``GetCallerIdentity``) once, before the cache is first read.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import email.utils
import hashlib
import inspect
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import anyio
import anyio.to_thread
import botocore.utils
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    ParamValidationError,
    RefreshWithMFAUnsupportedError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp

from ._backend import current_event_loop
from ._cache import CredentialCache, entry_problem
from ._credentials import EXPIRED_TOKEN_CODES, AssumeRoleCredentials
from ._params import AssumeRoleArgs, TokenCodeSource
from ._refresh import ErrorKind, Refresher, RefreshTimeoutError, UnusableCredentialsError
from ._sts import StsClients

logger = logging.getLogger("aio_assume_role_lib.fetch")

# Errors that the same request will meet again: retrying them soon only adds load.
NON_RECOVERABLE_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "ValidationError",
        "MalformedPolicyDocument",
        "PackedPolicyTooLarge",
        "RegionDisabledException",
        "InvalidClientTokenId",
        "InvalidParameterValue",
        "SignatureDoesNotMatch",
        "InvalidIdentityToken",
    }
)

# Errors that a second try, a moment later, can get past. ExpiredToken is here: it means
# the *parent's* credentials are expired, and a parent of ours refreshes them at once.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "IDPCommunicationError",
        "ExpiredToken",
    }
)

# A response read back from the cache is used only if it still has this long to live,
# a tenth of its lifetime for short ones (the refresher's default blocking window):
# anything shorter would be refreshed at once anyway.
_CACHE_MIN_REMAINING_SECONDS = 60.0
_CACHE_MIN_REMAINING_FRACTION = 0.1
# When a cached response does not say when it was issued (its Date header), its lifetime
# is taken to be the one asked for, or STS's default.
_DEFAULT_LIFETIME_SECONDS = 3600.0
_LONGEST_LIFETIME_SECONDS = 12 * 3600.0 + 15 * 60.0
# How long a shared refresh waits for the key's lock by default (the caller passes half
# of a try's deadline, so the STS call still fits in it).
_DEFAULT_LOCK_TIMEOUT_SECONDS = 5.0
# How long a shared refresh, holding the lock, waits for its cache write: a hung disk
# must neither fail the refresh nor keep the lock.
_SHARED_WRITE_TIMEOUT_SECONDS = 2.0


class MFACodeUnavailableError(RefreshWithMFAUnsupportedError):
    """AssumeRole needs an MFA code (SerialNumber is set) and there is none to give it."""

    fmt = "{error_msg}"


class _UnparsableResponseError(CredentialRetrievalError):
    """STS (or something in between) sent a body that is not an STS response."""


# botocore's own messages (not ResponseParserError's) and ours carry no response data.
_OWN_MESSAGE_ERRORS = (
    RefreshTimeoutError,
    UnusableCredentialsError,
    ParamValidationError,
    RefreshWithMFAUnsupportedError,
    CredentialRetrievalError,
    BotoCoreError,
)


def classify_error(error: BaseException) -> ErrorKind:
    """Whether retrying the same AssumeRole request can help: at once, later, or not."""
    if isinstance(error, (ParamValidationError, MFACodeUnavailableError)):
        return "non_recoverable"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in NON_RECOVERABLE_ERROR_CODES:
            return "non_recoverable"
        if code in TRANSIENT_ERROR_CODES or status >= 500:
            return "transient"
        return "failed"
    if isinstance(
        error,
        (HTTPClientError, BotocoreConnectionError, _UnparsableResponseError, OSError),
    ):
        return "transient"
    return "failed"


def error_code(error: BaseException) -> str:
    """The AWS error code, or the exception's type name (a log field)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def describe_error(error: BaseException) -> str:
    """A one-line description of a failed attempt that is safe to log (R10).

    STS error codes and messages, and this library's and botocore's own messages, carry
    no secrets; other errors are named by type only, since their text can quote a
    response body.
    """
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Unknown')}: {details.get('Message', '')}"
    if isinstance(error, _OWN_MESSAGE_ERRORS):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


# Where the parent's identity goes in the key's arguments: no AssumeRole parameter has a
# colon in its name, so it can never collide with one.
_PARENT_ARN_KEY = "aio_assume_role_lib:parent_arn"


def cache_key(args: AssumeRoleArgs, parent_arn: str | None = None) -> str:
    """The cache key botocore and the AWS CLI use for the same AssumeRole arguments.

    A generated RoleSessionName is left out (it changes with every process) and the
    policy is parsed so that its key order does not matter, as botocore does. A string
    TokenCode is part of the key, as in aws-assume-role-lib (which passes it to
    botocore's fetcher with the other arguments); a callable one cannot be and is not.
    With ``parent_arn`` (``JSONFileCache(key_by_parent_identity=True)``) the key also
    holds the parent's identity, and is no longer botocore's.
    """
    key_args: dict[str, Any] = dict(args.kwargs)
    if parent_arn is not None:
        key_args[_PARENT_ARN_KEY] = parent_arn
    if isinstance(args.token_code, str):
        key_args["TokenCode"] = args.token_code
    if args.session_name_generated:
        key_args.pop("RoleSessionName", None)
    if isinstance(key_args.get("Policy"), str):
        with contextlib.suppress(ValueError):  # validation reports a bad policy
            key_args["Policy"] = json.loads(key_args["Policy"])
    dumped = json.dumps(key_args, sort_keys=True, default=repr)
    digest = hashlib.sha1(dumped.encode("utf-8")).hexdigest()
    return digest.replace(":", "_").replace("/", "_")


def _parse_expiration(value: Any) -> float:
    # A datetime from botocore's parser, or a string as botocore's JSONFileCache writes it.
    expiration = value if isinstance(value, datetime) else parse_timestamp(value)
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=timezone.utc)
    return expiration.timestamp()


def _account_of(response: Mapping[str, Any]) -> str | None:
    arn = response.get("AssumedRoleUser", {}).get("Arn", "")
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def make_frozen(response: Any) -> tuple[ReadOnlyCredentials, float]:
    """The credentials and expiry (epoch seconds) in an AssumeRole response.

    Raises :class:`UnusableCredentialsError`, naming what is wrong but never quoting a
    value, when the response has no usable credentials.
    """
    creds = response.get("Credentials") if isinstance(response, Mapping) else None
    if not isinstance(creds, Mapping):
        raise UnusableCredentialsError(
            "the AssumeRole answer has no Credentials (an error body with a success status?)"
        )
    values: list[str | None] = []
    for name in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
        value = creds.get(name)
        if not isinstance(value, str) or not value:
            raise UnusableCredentialsError(f"the AssumeRole answer has no usable {name}")
        values.append(value)
    try:
        expiry = _parse_expiration(creds["Expiration"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise UnusableCredentialsError(
            "the AssumeRole answer has a missing or unparsable Expiration"
        ) from None
    if "account_id" in ReadOnlyCredentials._fields:  # botocore >= 1.37
        values.append(creds.get("AccountId") or _account_of(response))
    return ReadOnlyCredentials(*values), expiry


def _issued_at(response: Mapping[str, Any]) -> float | None:
    """When STS sent ``response`` (its Date header, as botocore keeps it), or None."""
    metadata = response.get("ResponseMetadata")
    headers = metadata.get("HTTPHeaders") if isinstance(metadata, Mapping) else None
    date = headers.get("date") if isinstance(headers, Mapping) else None
    if not isinstance(date, str) or len(date) > 64:
        return None
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None


class AssumeRoleFetcher:
    """Loads credentials for one role: from the cache at start-up, otherwise from STS.

    The refresher calls :meth:`prepare` once per refresh (reading the cache the first
    time, then getting an MFA code if one is needed: a human may be typing it, so it has
    its own allowance) and then :meth:`__call__` for each try (one AssumeRole request,
    unless a shared cache already holds newer credentials).

    ``lock_timeout`` bounds the wait for a shared cache's lock in each try; after it the
    try calls STS without the lock. It also bounds the ``GetCallerIdentity`` call that a
    cache keyed by the parent's identity needs; if that fails, the refresh goes on
    without the cache, and the next one asks again.
    """

    def __init__(
        self,
        sts_clients: StsClients,
        args: AssumeRoleArgs,
        *,
        cache: CredentialCache | None = None,
        lock_timeout: float = _DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self._sts_clients = sts_clients
        self.kwargs: dict[str, Any] = dict(args.kwargs)
        if args.session_name_generated:
            # Fixed for the life of this fetcher, like botocore's, and not in the cache key.
            self.kwargs["RoleSessionName"] = f"botocore-session-{int(time.time())}"
        self.token_code = args.token_code
        self._static_code_used = False
        self._cache = cache
        self._args = args
        self._by_parent_identity = getattr(cache, "key_by_parent_identity", False) is True
        # None while unknown (a key with the parent's identity, before it is known): the
        # cache is then neither read nor written.
        self._cache_key: str | None = (
            cache_key(args) if cache is not None and not self._by_parent_identity else None
        )
        # What an entry must be for (a generated name is not known: it is not in the key).
        self._session_name: str | None = (
            None if args.session_name_generated else self.kwargs["RoleSessionName"]
        )
        self._cache_checked = cache is None
        self._last_from_cache = False
        self._from_cache: tuple[ReadOnlyCredentials, float] | None = None
        self._unwritten: dict[str, Any] | None = None
        # Refreshes are shared with other processes through caches that can lock.
        self._shared = bool(getattr(cache, "locking", False)) and callable(
            getattr(cache, "alock", None)
        )
        self._lock_timeout = lock_timeout
        # The expiry of the credentials last handed to the refresher: a cached entry is
        # taken instead of calling STS only if it is newer.
        self._held_expiry: float | None = None
        self._code: str | None = None
        # A sync TokenCode callable's call in progress (a prompt): a refresh that gave up
        # waiting for it leaves it to the next refresh, which never opens a second one.
        self._pending_prompt: concurrent.futures.Future[object] | None = None
        # The parent's refresher and the access key STS rejected as expired when the last
        # AssumeRole was signed with it: the next try waits for the parent to renew them.
        self._rejected_parent: tuple[Refresher[Any], object] | None = None
        _all_fetchers.add(self)

    def __repr__(self) -> str:
        return f"<AssumeRoleFetcher {self.description}>"

    def set_token_code(self, source: TokenCodeSource) -> None:
        """Use ``source`` for the MFA code from now on (credentials that had none)."""
        self.token_code = source
        self._static_code_used = False

    @property
    def description(self) -> str:
        return f"role {self.kwargs['RoleArn']} (session {self.kwargs['RoleSessionName']})"

    def loaded_from_cache(self) -> bool:
        """Whether the credentials the last call returned came from the cache, not STS."""
        return self._last_from_cache

    async def prepare(self) -> None:
        """Before a refresh: the cache (first time only), then the MFA code if needed."""
        self._code = None
        if self._cache is not None and self._cache_key is None:
            await self._learn_parent_identity()
        if not self._cache_checked and self._cache_key is not None:
            self._cache_checked = True
            found = await self._usable_from_cache()
            if found is not None:
                logger.debug("%s: using credentials from the cache", self.description)
                self._from_cache = found
                return
        self._code = await self._next_token_code()

    def parent_renewed(self) -> bool:
        """Whether the parent's credentials that STS rejected, failing the last refresh,
        have been renewed or can be now (the refresher's ``retry_early``): the next
        refresh then need not wait out the backoff. False when no rejection is pending."""
        rejected = self._rejected_parent
        return rejected is not None and rejected[0].renewal_due(rejected[1])

    async def _wait_for_parent(self) -> None:
        """If STS rejected the parent's credentials the last time, wait for the parent to
        renew them (starting its refresh as its backoff allows) instead of signing with
        them again; bounded by this try's deadline (the refresher cancels the wait)."""
        rejected = self._rejected_parent
        if rejected is None:
            return
        parent, key = rejected
        if not parent.renewal_due(key):
            logger.info(
                "%s: waiting for the parent's credentials to be renewed (STS rejected "
                "them as expired)",
                self.description,
            )
        await parent.renewed(key)
        self._rejected_parent = None  # one wait per rejection: the next try signs

    async def __call__(self) -> tuple[ReadOnlyCredentials, float]:
        self._last_from_cache = False
        if self._from_cache is not None:
            found, self._from_cache = self._from_cache, None
            self._last_from_cache = True
        else:
            await self._wait_for_parent()  # before any cache lock is taken
            if self._shared and self._cache_key is not None:
                found = await self._shared_refresh()
            else:
                response = await self._assume_role()
                found = make_frozen(response)
                # Written by after_success(), once the callers have the credentials.
                self._unwritten = response if self._cache_key is not None else None
        self._held_expiry = found[1]
        return found

    async def _learn_parent_identity(self) -> None:
        """Make the cache key, with the parent's identity in it (its caller ARN)."""
        try:
            with anyio.fail_after(self._lock_timeout):
                arn = await self._parent_arn()
        except Exception as error:
            logger.warning(
                "%s: not using the credential cache for this refresh: cannot tell the "
                "parent's identity (%s)",
                self.description,
                describe_error(error),
            )
            return
        self._cache_key = cache_key(self._args, parent_arn=arn)

    async def _parent_arn(self) -> str:
        async with self._sts_clients.lease() as lease:
            try:
                response = await lease.client.get_caller_identity()
            except ClientError:
                raise  # STS answered: the client is fine
            except Exception:
                lease.broken = True  # as after a failed AssumeRole
                raise
        arn = response.get("Arn")
        if not isinstance(arn, str) or not arn:
            raise UnusableCredentialsError("GetCallerIdentity answered without an Arn")
        return arn

    async def _shared_refresh(self) -> tuple[ReadOnlyCredentials, float]:
        """One try through a shared cache: its credentials if another process renewed,
        otherwise STS's, written to the cache before the lock is released."""
        # Another process may have renewed already: then no lock is needed at all.
        found = await self._usable_from_cache()
        if found is not None:
            logger.debug("%s: another process renewed the credentials", self.description)
            self._last_from_cache = True
            return found
        assert self._cache is not None
        async with self._cache.alock(self._cache_key, self._lock_timeout):  # type: ignore[attr-defined]
            # Held (or given up on): whoever held it may have renewed meanwhile.
            found = await self._usable_from_cache()
            if found is not None:
                logger.debug("%s: another process renewed the credentials", self.description)
                self._last_from_cache = True
                return found
            response = await self._assume_role()
            found = make_frozen(response)
            # Written while the lock is held, so whoever takes it next finds it; bounded,
            # and a failure is only logged (the credentials are good either way).
            await self._write_cache(response, within_seconds=_SHARED_WRITE_TIMEOUT_SECONDS)
            return found

    async def _usable_from_cache(self) -> tuple[ReadOnlyCredentials, float] | None:
        """The cached credentials if they are newer than ours and not about to expire."""
        cached = await self._read_cache()
        if cached is None:
            return None
        try:
            frozen, expiry = make_frozen(cached)
        except UnusableCredentialsError:
            return None
        if self._held_expiry is not None and expiry <= self._held_expiry:
            return None  # ours, or older: this process is the one to renew them
        issued = _issued_at(cached)
        lifetime = expiry - issued if issued is not None else 0.0
        if not 0 < lifetime <= _LONGEST_LIFETIME_SECONDS:
            duration = self.kwargs.get("DurationSeconds")
            lifetime = float(duration) if isinstance(duration, int) else _DEFAULT_LIFETIME_SECONDS
        min_remaining = min(_CACHE_MIN_REMAINING_SECONDS, _CACHE_MIN_REMAINING_FRACTION * lifetime)
        if expiry - time.time() <= min_remaining:
            return None
        return frozen, expiry

    async def after_success(self) -> None:
        """Write the new response to the cache (the refresher calls this after the callers
        have the credentials, so a slow or failing write can neither delay nor fail it)."""
        response, self._unwritten = self._unwritten, None
        if response is not None:
            await self._write_cache(response)

    async def _assume_role(self) -> dict[str, Any]:
        request = dict(self.kwargs)
        if self._code is not None:
            request["TokenCode"] = self._code
        unparsable = False
        # The parent's refresher and the key its credentials have now (the signer asks
        # for them next): if STS says they are expired, the parent is told and the next
        # try waits for it.
        parent = await self._sts_clients.parent_credentials()
        signer: Refresher[Any] | None = None
        signed_with: object = None
        if isinstance(parent, AssumeRoleCredentials):
            signer = parent._refresher
            signed_with = (await signer.get()).access_key
        self._rejected_parent = None
        async with self._sts_clients.lease() as lease:
            try:
                response: dict[str, Any] = await lease.client.assume_role(**request)
            except ClientError as error:
                if signer is not None and error_code(error) in EXPIRED_TOKEN_CODES:
                    # The parent's credentials, not ours: mark them stale (only if it
                    # still holds that key) and have the next try wait for new ones.
                    signer.invalidate(signed_with)
                    self._rejected_parent = (signer, signed_with)
                raise  # STS answered: the client is fine
            except UnicodeEncodeError:
                # Only reachable with validate=False, which skipped the check for this.
                raise ParamValidationError(
                    report="An AssumeRole parameter holds text that is not valid Unicode "
                    "(a lone surrogate) and cannot be sent."
                ) from None
            except (ResponseParserError, KeyError, ValueError, TypeError):
                # botocore's parser raises these too, for a body that is XML but not an
                # AssumeRole answer (an error body with a success status, a bad timestamp).
                unparsable = True
            except Exception:
                # A broken connection or a closed HTTP session: the next try gets a fresh
                # client, and this one is closed once the requests still on it are done.
                # (A try's deadline is a cancellation, not a sign of a broken client.)
                lease.broken = True
                raise
        if unparsable:
            # Raised outside the handler so that botocore's error, whose message quotes
            # the body (which may hold credentials), is not even its __context__.
            raise _UnparsableResponseError(
                provider="assume-role",
                error_msg="STS sent a response that could not be parsed (botocore's DEBUG "
                "logging shows the body; it may contain credentials)",
            )
        account = _account_of(response)
        credentials = response.get("Credentials")
        if account is not None and isinstance(credentials, dict):
            credentials["AccountId"] = account  # as botocore's fetcher adds it
        return response

    async def _next_token_code(self) -> str | None:
        source = self.token_code
        if source is None:
            if "SerialNumber" in self.kwargs:
                raise MFACodeUnavailableError(
                    error_msg="AssumeRole needs an MFA code (SerialNumber is set) but no "
                    "TokenCode was given; pass TokenCode as a callable to refresh with MFA."
                )
            return None
        if isinstance(source, str):
            if self._static_code_used:
                raise MFACodeUnavailableError(
                    error_msg="Credentials need refreshing but the TokenCode string was a "
                    "one-time code, already used; pass TokenCode as a callable (sync or "
                    "async) that returns a fresh code."
                )
            self._static_code_used = True
            return source
        try:
            if inspect.iscoroutinefunction(source) or inspect.iscoroutinefunction(
                getattr(source, "__call__", None)  # noqa: B004 - async callable objects
            ):
                result: Any = await source()  # type: ignore[misc]
            else:
                result = await self._call_in_thread(source)
                if inspect.isawaitable(result):
                    result = await result
        except (anyio.get_cancelled_exc_class(), MFACodeUnavailableError):
            raise
        except Exception as error:
            raise MFACodeUnavailableError(
                error_msg=f"The TokenCode callable raised {type(error).__name__}."
            ) from None
        if not isinstance(result, str) or not result:
            raise MFACodeUnavailableError(
                error_msg=f"The TokenCode callable returned {type(result).__name__}, "
                "not a non-empty string."
            )
        return result

    async def _call_in_thread(self, source: Callable[[], object]) -> object:
        """Run a sync TokenCode callable (a prompt) in its own thread, one at a time.

        If the refresh stops waiting (its allowance ran out, its loop ended), the call
        goes on, and the next refresh takes its result instead of calling again.
        """
        pending = self._pending_prompt
        if pending is None:
            pending = self._pending_prompt = concurrent.futures.Future()
            # A daemon thread: a prompt nobody answers must not keep the process alive
            # once the program is done.
            threading.Thread(
                target=_run_into,
                args=(source, pending),
                name="aio-assume-role TokenCode",
                daemon=True,
            ).start()
        try:
            # Woken from the prompt's thread: no worker thread sits blocked on the prompt.
            loop = current_event_loop()
            answered = anyio.Event()

            def wake(_: object) -> None:
                if loop.in_loop_thread():
                    answered.set()
                else:
                    loop.call_soon_threadsafe(answered.set)

            pending.add_done_callback(wake)
            await answered.wait()
            return pending.result()
        finally:
            if pending.done() and self._pending_prompt is pending:
                self._pending_prompt = None

    async def _read_cache(self) -> Mapping[str, Any] | None:
        cache = self._cache
        if cache is None or self._cache_key is None:
            return None
        try:
            # Bounded like the lock wait, and abandoned (not waited for) after that: a
            # hung file system delays a refresh by at most this, never past its deadline.
            with anyio.move_on_after(self._lock_timeout) as scope:
                aget = getattr(cache, "aget", None)
                if aget is not None:
                    value = await aget(self._cache_key)
                elif isinstance(cache, botocore.utils.JSONFileCache):  # file IO: off the loop
                    value = await anyio.to_thread.run_sync(
                        self._read_sync, cache, abandon_on_cancel=True
                    )
                else:
                    value = self._read_sync(cache)
            if scope.cancelled_caught:
                logger.warning(
                    "%s: the credential cache did not answer within %g s; going on without it",
                    self.description,
                    self._lock_timeout,
                )
                return None
            problem = (
                None
                if value is None
                else entry_problem(
                    value, self.kwargs["RoleArn"], time.time(), session_name=self._session_name
                )
            )
            if problem is not None:
                logger.warning("%s: ignoring the cache entry: %s", self.description, problem)
                return None
            return value  # type: ignore[no-any-return]
        except Exception as exc:
            logger.warning(
                "%s: ignoring an unreadable cache entry (%s)", self.description, type(exc).__name__
            )
            return None

    def _read_sync(self, cache: Any) -> Any:
        # The protocol botocore's own caches follow (botocore's JSONFileCache has no .get).
        key = self._cache_key
        return cache[key] if key is not None and key in cache else None

    async def _write_cache(
        self, response: dict[str, Any], within_seconds: float | None = None
    ) -> None:
        """Write ``response`` to the cache, logging a failure; give up after ``within_seconds``."""
        cache = self._cache
        if cache is None or self._cache_key is None:
            return
        value = copy.deepcopy(response)  # the raw response, as botocore caches it
        if isinstance(cache, botocore.utils.JSONFileCache) and within_seconds is None:
            # A thread of its own, started before anything awaits: the file is written
            # even if the event loop ends right after the callers got the credentials
            # (a short script's asyncio.run()), and never on the loop.
            threading.Thread(
                target=self._write_sync, args=(cache, value), name="aio-assume-role cache"
            ).start()
            return
        if isinstance(cache, botocore.utils.JSONFileCache):
            # Inside a shared refresh's lock: bounded, so that a hung disk neither fails
            # the refresh nor keeps the lock. The write is atomic, so one left to finish
            # in its thread is harmless.
            with anyio.move_on_after(within_seconds) as scope:
                await anyio.to_thread.run_sync(
                    self._write_sync, cache, value, abandon_on_cancel=True
                )
            if scope.cancelled_caught:
                logger.warning(
                    "%s: the credential cache write did not finish within %g s",
                    self.description,
                    within_seconds,
                )
            return
        aset = getattr(cache, "aset", None)
        try:
            if aset is not None:
                await aset(self._cache_key, value)
            else:
                cache[self._cache_key] = value
        except Exception as exc:
            self._write_failed(exc)

    def _write_sync(self, cache: Any, value: dict[str, Any]) -> None:
        try:
            cache[self._cache_key] = value  # (known: checked by _write_cache)
        except Exception as exc:
            self._write_failed(exc)

    def _write_failed(self, error: Exception) -> None:
        logger.warning(
            "%s: could not write the credential cache (%s)",
            self.description,
            type(error).__name__,
        )


_all_fetchers: weakref.WeakSet[AssumeRoleFetcher] = weakref.WeakSet()


def _forget_prompts_after_fork() -> None:
    # A prompt's thread does not exist in a forked child: its answer would never come.
    for fetcher in list(_all_fetchers):
        fetcher._pending_prompt = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_prompts_after_fork)


def _run_into(function: Callable[[], object], future: concurrent.futures.Future[object]) -> None:
    try:
        result = function()
    except BaseException as error:
        future.set_exception(error)
    else:
        future.set_result(result)

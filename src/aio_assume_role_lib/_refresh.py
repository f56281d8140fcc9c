"""The single-flight refresher: a loader, two clocks, a sleeper and a random source in;
the current value out.

It knows nothing about sessions or STS. It is given:

* ``load``: an async function returning ``(value, expiry)``, expiry in wall-clock seconds;
* ``prepare`` (optional): an async function run once before each refresh's first try, with
  its own allowance instead of the network deadline (a human typing an MFA code);
* ``after_success`` (optional): an async function run after the callers have the new value
  (a cache write), outside the deadline;
* ``loaded_from_cache`` (optional): whether the value the last ``load`` returned came from
  a cache (another process's refresh, an earlier run's) rather than from the source: such
  a refresh is logged and counted as a cache hit;
* ``wall_clock``: wall-clock seconds, used only to compare with an expiry;
* ``monotonic``: a monotonic clock for backoff, error memory and deadlines;
* ``sleep``: how to wait (deadlines and the pauses between tries are built on it);
* ``random``: floats in [0, 1) for jitter;
* ``classify_error``: ``"transient"`` (retried inside the refresh), ``"non_recoverable"``
  (remembered for a few seconds, raised to callers that need new credentials) or
  ``"failed"`` (neither: the refresh fails and backs off);
* ``retry_early`` (optional): during the backoff after a failed refresh, whether what made
  it fail has gone (a child's parent renewed the credentials STS refused), so that the
  next caller refreshes at once;
* a :class:`RefreshPolicy` with the named knobs.

Tests give it hand-driven clocks and sleep; production gives it ``time.time``,
``time.monotonic`` and ``anyio.sleep``.

The behaviour is the one the AWS SDKs adopted in 2026 (static stability, lifetime-tiered
early refresh, short memory of non-recoverable errors, invalidation by access key), with
two deliberate differences, both documented in ``docs/conformance.md``: the backoff after
a failure is bounded by the credentials' remaining life (so they never expire unrenewed
once the source is back), and a non-recoverable error is not raised to callers while the
cached value is still unexpired.

The hot path, :meth:`Refresher.get` on a fresh value, is one clock call and one comparison.
Refreshes run as detached tasks (see ``_backend``) so that no caller's cancellation can
abort them, and every caller that needs the value waits on the same flight.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from random import random as _default_random
from typing import Any, Generic, Literal, TypeVar

import anyio

from ._backend import EventLoop, current_event_loop
from ._metrics import RefreshMetrics

logger = logging.getLogger("aio_assume_role_lib.refresh")

T = TypeVar("T")
R = TypeVar("R")
Loader = Callable[[], Awaitable[tuple[T, float]]]
ErrorKind = Literal["transient", "non_recoverable", "failed"]


@dataclass(frozen=True)
class RefreshPolicy:
    """When and how credentials are refreshed. Every duration is in seconds.

    **Windows.** Credentials are refreshed early, in an *advisory window* before they
    expire: the first request to notice starts one refresh in the background and nobody
    waits. Only in the *blocking window* (the last minute) do requests wait for new
    credentials. The advisory window follows the credential lifetime, as the AWS SDKs do:

    | credential lifetime | advisory window | blocking window |
    |---|---|---|
    | up to 20 min (STS's shortest is 15 min) | 5 min | 1 min |
    | 20 to 90 min | 15 min | 1 min |
    | 90 min and longer (1 h role chains excepted: 15 min) | 60 min | 1 min |

    Both windows are capped for short lifetimes (a test's 6-second credentials, a custom
    broker's 60-second ones): an early refresh never starts before the credentials have
    been used for ``min(min_use_seconds, min_use_fraction * lifetime)``, and the blocking
    window is at most a tenth of the lifetime. The start of the advisory window is
    jittered later by up to ``jitter_fraction`` of the time between the two windows, so a
    fleet does not refresh in lockstep.

    **Failures.** While credentials are cached, a failed refresh never reaches a caller:
    the cached credentials are served, even past their expiry (the service decides), and
    the failure is logged and counted. Transient errors (throttling, 5xx, connection
    errors, a try's timeout) are retried inside the refresh, at most ``max_tries`` tries,
    when requests are waiting for it. After a failed refresh the next one waits a
    jittered backoff that grows from ``backoff_min_seconds`` but never beyond
    ``backoff_lifetime_fraction`` of the lifetime, half the time the credentials have
    left, or ``backoff_max_seconds``; with the credentials expired, rejected by a service
    as expired (:meth:`Refresher.invalidate`), or none, it is ``backoff_min_seconds`` to
    twice that, so fresh credentials come within a few seconds of the source recovering.
    A non-recoverable error (AccessDenied, invalid parameters, a missing MFA code) is
    remembered for a jittered ``error_memory_min_seconds`` to
    ``error_memory_max_seconds``: callers that need new credentials get it at once, and
    callers with unexpired credentials keep them.

    Attributes:
        advisory_window_seconds: a fixed advisory window instead of the lifetime tiers
            (None: the tiers above).
        blocking_window_seconds: the blocking window (default: the last minute).
        min_use_seconds: an early refresh never starts before the credentials were used
            this long...
        min_use_fraction: ...or this fraction of their lifetime, whichever is shorter.
        jitter_fraction: how far the start of the advisory window is moved later, at
            most, as a fraction of the time between the two windows.
        attempt_timeout_seconds: overall deadline of one refresh, every try and the pauses
            between them included (aiobotocore's read timeout does not bound a response
            that trickles in).
        try_timeout_seconds: deadline of one try (one STS request).
        max_tries: tries in one refresh when requests wait for it (transient errors only).
        retry_delay_seconds: pause before the second try; doubled for the third; jittered.
        token_code_timeout_seconds: how long a ``TokenCode`` callable (an MFA prompt) may
            take, apart from the network deadline.
        backoff_min_seconds: shortest wait after a failed refresh.
        backoff_max_seconds: longest wait after a failed refresh.
        backoff_lifetime_fraction: while unexpired credentials are served, the wait is
            at most this fraction of their lifetime, so a source that recovers well
            before expiry is used before expiry.
        error_memory_min_seconds: a non-recoverable error is remembered at least this
            long...
        error_memory_max_seconds: ...and at most this long (jittered in between).
        invalidation_min_interval_seconds: after the credentials were marked stale because
            a service rejected them as expired, further rejections are ignored this long.
    """

    advisory_window_seconds: float | None = None
    blocking_window_seconds: float = 60.0
    min_use_seconds: float = 300.0
    min_use_fraction: float = 0.8
    jitter_fraction: float = 0.5
    attempt_timeout_seconds: float = 30.0
    try_timeout_seconds: float = 10.0
    max_tries: int = 3
    retry_delay_seconds: float = 0.5
    token_code_timeout_seconds: float = 120.0
    backoff_min_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    backoff_lifetime_fraction: float = 0.05
    error_memory_min_seconds: float = 1.0
    error_memory_max_seconds: float = 5.0
    invalidation_min_interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "advisory_window_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{f.name} must be a number, not {type(value).__name__}")
            elif not math.isfinite(value) or value < 0:
                problems.append(f"{f.name} must be a finite number >= 0, not {value!r}")
        if not problems:
            if not 0 < self.min_use_fraction <= 1:
                problems.append("min_use_fraction must be > 0 and <= 1")
            if self.jitter_fraction >= 1:
                problems.append("jitter_fraction must be < 1")
            if self.backoff_lifetime_fraction > 1:
                problems.append("backoff_lifetime_fraction must be <= 1")
            for name in ("attempt_timeout_seconds", "try_timeout_seconds"):
                if getattr(self, name) <= 0:
                    problems.append(f"{name} must be > 0")
            if not isinstance(self.max_tries, int) or self.max_tries < 1:
                problems.append("max_tries must be a whole number >= 1")
            if self.backoff_min_seconds > self.backoff_max_seconds:
                problems.append("backoff_min_seconds must be <= backoff_max_seconds")
            if self.error_memory_min_seconds > self.error_memory_max_seconds:
                problems.append("error_memory_min_seconds must be <= error_memory_max_seconds")
        if problems:
            raise ValueError("Invalid RefreshPolicy: " + "; ".join(problems))

    # One place decides each timing; every function below is pure.

    def advisory_window(self, lifetime: float) -> float:
        """Seconds before expiry at which the advisory window starts (before jitter)."""
        if self.advisory_window_seconds is not None:
            window = self.advisory_window_seconds
        elif lifetime <= 20 * 60:
            window = 5 * 60.0
        elif lifetime < 90 * 60:
            window = 15 * 60.0
        else:
            window = 60 * 60.0
        min_use = min(self.min_use_seconds, self.min_use_fraction * lifetime)
        return max(min(window, lifetime - min_use), 0.0)

    def blocking_window(self, lifetime: float) -> float:
        """Seconds before expiry at which callers start to wait for new credentials."""
        return min(self.blocking_window_seconds, 0.1 * lifetime, self.advisory_window(lifetime))

    def windows(self, obtained_at: float, expiry: float, rand: float) -> tuple[float, float]:
        """Return ``(advisory_at, blocking_at)`` in the clock of ``expiry``."""
        lifetime = max(expiry - obtained_at, 0.0)
        advisory = self.advisory_window(lifetime)
        blocking = self.blocking_window(lifetime)
        # Jitter moves the advisory start later, never into the blocking window.
        advisory_at = expiry - advisory + (advisory - blocking) * self.jitter_fraction * rand
        return advisory_at, expiry - blocking

    def retry_delay(self, tries_done: int, rand: float) -> float:
        """Pause after ``tries_done`` failed tries of one refresh ("equal jitter")."""
        ceiling = self.retry_delay_seconds * 2.0 ** (tries_done - 1)
        return ceiling * (0.5 + 0.5 * rand)

    def backoff(
        self, failures: int, lifetime: float | None, seconds_left: float | None, rand: float
    ) -> float:
        """Wait after ``failures`` failed refreshes in a row before the next one.

        ``seconds_left`` is None when nothing is cached, negative when it has expired.
        """
        if lifetime is None or seconds_left is None or seconds_left <= 0:
            return self.backoff_min_seconds * (1.0 + rand)
        ceiling = min(
            self.backoff_max_seconds,
            self.backoff_lifetime_fraction * lifetime,
            seconds_left / 2.0,
            self.backoff_min_seconds * 2.0 ** (failures - 1),
        )
        ceiling = max(ceiling, self.backoff_min_seconds)
        return ceiling * (0.5 + 0.5 * rand)

    def error_memory(self, rand: float) -> float:
        """How long a non-recoverable error is remembered."""
        low, high = self.error_memory_min_seconds, self.error_memory_max_seconds
        return low + (high - low) * rand


class RefreshStats:
    """Exact counters a service can export (e.g. to Prometheus). They only increase.

    Attributes:
        attempts: refreshes started (each makes one to ``max_tries`` requests).
        tries: requests made (tries of all refreshes).
        successes: refreshes that brought new credentials (cache hits included).
        cache_hits: of those, the ones whose credentials came from the cache (written by
            another process's refresh, or by an earlier run) rather than from the source
            (STS, for an assumed role); each is logged as its own event, ``cache_hit``.
        failures: refreshes that failed, whatever happened to callers.
        advisory_refreshes: refreshes started in the advisory window (nobody waited).
        blocking_refreshes: refreshes started with callers waiting.
        timeouts: tries that hit ``try_timeout_seconds`` or the refresh deadline.
        waits: callers that waited for a refresh.
        served_stale: cached credentials served in place of new ones (static stability):
            once for each failed blocking refresh (whatever the number of its waiters),
            and once for each call during the backoff that followed one.
        served_expired: of those, the ones past their expiry.
        fast_failures: callers given a remembered error without a new request.
        invalidations: times a service's ``ExpiredToken`` marked the credentials stale.
    """

    __slots__ = (
        "advisory_refreshes",
        "attempts",
        "blocking_refreshes",
        "cache_hits",
        "failures",
        "fast_failures",
        "invalidations",
        "served_expired",
        "served_stale",
        "successes",
        "timeouts",
        "tries",
        "waits",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"RefreshStats({counts})"

    # Typed attributes for readers and type checkers (set in __init__).
    attempts: int
    tries: int
    successes: int
    cache_hits: int
    failures: int
    advisory_refreshes: int
    blocking_refreshes: int
    timeouts: int
    waits: int
    served_stale: int
    served_expired: int
    fast_failures: int
    invalidations: int


class RefreshTimeoutError(TimeoutError):
    """A refresh, one of its tries, or a ``TokenCode`` callable took longer than allowed."""


class _Abandoned(Exception):
    """The flight's event loop went away before it finished; callers start a new one."""


def error_for_caller(error: BaseException) -> BaseException:
    """A copy of ``error`` for one caller: same type, code and message, nobody else's
    traceback, context or notes (R10)."""
    try:
        mine = copy.copy(error)
    except Exception:  # an exception type that cannot be copied: share it, cleaned
        mine = error
    if type(mine) is not type(error):
        mine = error
    mine.__traceback__ = None
    mine.__context__ = None
    mine.__cause__ = None
    mine.__suppress_context__ = False
    vars(mine).pop("__notes__", None)
    return mine


class _Flight:
    """One refresh, which any number of callers on any event loops can wait for.

    Its outcome is decided once, by the refresh: the new value, the cached value (static
    stability) or an error. A waiter on another event loop also watches the owner loop:
    if that loop is gone (closed, or stopped without cancelling its tasks), the flight is
    abandoned and the waiters start a new one. Nothing is decided by a timer.
    """

    __slots__ = (
        "_done",
        "_error",
        "_events",
        "_mutex",
        "_value",
        "blocking",
        "owner",
        "serve_cached_at",
    )

    def __init__(self, owner: EventLoop, blocking: bool) -> None:
        self.owner = owner
        self.blocking = blocking
        # With an expiry margin: when (wall clock) its waiters stop waiting for it and
        # are served the cached value (see Refresher._wait_bounded); None: never.
        self.serve_cached_at: float | None = None
        self._mutex = threading.Lock()
        self._done = False
        self._value: object = None
        self._error: BaseException | None = None
        self._events: dict[object, tuple[EventLoop, anyio.Event]] = {}

    def __repr__(self) -> str:
        state = "done" if self._done else "running"
        return f"<refresh flight {state}, {'blocking' if self.blocking else 'advisory'}>"

    @property
    def done(self) -> bool:
        return self._done

    def finish(self, value: object = None, error: BaseException | None = None) -> None:
        with self._mutex:
            if self._done:
                return
            self._done, self._value, self._error = True, value, error
            waiting, self._events = list(self._events.values()), {}
        for loop, event in waiting:
            if loop.in_loop_thread():
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)

    async def wait(self, owner_check_interval: float) -> object:
        """Wait for the outcome; return the value or raise a copy of the error."""
        event: anyio.Event | None = None
        loop = current_event_loop()
        with self._mutex:
            if not self._done:
                entry = self._events.get(loop.key)
                if entry is None:
                    entry = self._events[loop.key] = (loop, anyio.Event())
                event = entry[1]
        if event is not None:
            if loop.key == self.owner.key:
                await event.wait()  # the owner loop runs: the flight will end
            else:
                while not event.is_set():
                    with anyio.move_on_after(owner_check_interval):
                        await event.wait()
                    if not event.is_set() and self.owner.is_gone():
                        self.finish(error=_Abandoned())
        if self._error is not None:
            raise error_for_caller(self._error)
        return self._value


class _Current(Generic[T]):
    """What is cached: the value and its timings. Its repr never shows the value."""

    __slots__ = ("advisory_at", "blocking_at", "expiry", "lifetime", "stale", "value")

    def __init__(
        self,
        value: T,
        expiry: float,
        lifetime: float,
        advisory_at: float,
        blocking_at: float,
        stale: bool = False,
    ) -> None:
        self.value = value
        self.expiry = expiry
        self.lifetime = lifetime
        self.advisory_at = advisory_at
        self.blocking_at = blocking_at
        self.stale = stale

    def marked_stale(self) -> _Current[T]:
        return _Current(self.value, self.expiry, self.lifetime, -math.inf, -math.inf, True)

    def __repr__(self) -> str:
        return f"<cached value expiring at {self.expiry:.0f}{', stale' if self.stale else ''}>"


class _Failure:
    """The last failed refresh: its error, its kind and when the next may start."""

    __slots__ = ("error", "kind", "retry_at")

    def __init__(self, error: BaseException, kind: ErrorKind, retry_at: float) -> None:
        self.error = error
        self.kind = kind
        self.retry_at = retry_at

    def __repr__(self) -> str:
        return f"<last refresh failed: {type(self.error).__name__} ({self.kind})>"


_all_refreshers: weakref.WeakSet[Refresher[Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # A flight in the parent process has no task in the child; its locks may be held by
    # threads that do not exist here.
    for refresher in list(_all_refreshers):
        refresher._forget_flight_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class Refresher(Generic[T]):
    """Keeps one value fresh for any number of tasks, event loops and threads.

    * fresh: :meth:`get` returns the cached value (one clock call, one comparison);
    * advisory window: the first caller to notice starts one background refresh; every
      caller, that one included, keeps getting the cached value without waiting;
    * blocking window, expired, invalidated, or nothing yet: callers wait for the one
      refresh in flight (starting it if none is) and all get its outcome;
    * a failed refresh gives the waiters the cached value if there is one (static
      stability), and only otherwise (or for a non-recoverable error with the cached value
      expired) its error; until the backoff has passed nobody starts another.
    """

    def __init__(
        self,
        load: Loader[T],
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
        after_success: Callable[[], Awaitable[None]] | None = None,
        loaded_from_cache: Callable[[], bool] | None = None,
        policy: RefreshPolicy | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _default_random,
        classify_error: Callable[[BaseException], ErrorKind] = lambda error: "failed",
        describe_error: Callable[[BaseException], str] = lambda error: type(error).__name__,
        error_code: Callable[[BaseException], str] = lambda error: type(error).__name__,
        key_of: Callable[[T], object] = id,
        description: str = "credentials",
        log_fields: Mapping[str, object] | None = None,
        owner_check_interval: float = 1.0,
        metrics: RefreshMetrics | None = None,
        expiry_margin_seconds: float | None = None,
        retry_early: Callable[[], bool] | None = None,
    ) -> None:
        self._load = load
        self._prepare = prepare
        self._after_success = after_success
        self._loaded_from_cache = loaded_from_cache
        self.policy = policy or RefreshPolicy()
        self._clock = wall_clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._random = random
        self._classify_error = classify_error
        # Error text can quote a response body; only the loader's side knows what is safe.
        self._describe_error = describe_error
        self._error_code = error_code
        self._key_of = key_of
        self.description = description
        self._log_fields = dict(log_fields or {})
        self._owner_check_interval = owner_check_interval
        self._metrics = metrics
        # None: a caller waits for the flight's outcome. A number: a caller holding an
        # unexpired value waits at most until that much (or half the time left) before its
        # expiry, and is then served it while the flight goes on (see _wait_bounded).
        self._expiry_margin = expiry_margin_seconds
        # During the backoff after a failed refresh (not the memory of a non-recoverable
        # error): whether what made it fail has gone, so that the next caller may start a
        # refresh at once (a child's parent renewed the credentials STS rejected).
        self._retry_early = retry_early
        if metrics is not None:
            metrics.watch(functools.partial(_seconds_to_expiry, weakref.ref(self)))
        self.stats = RefreshStats()
        self._current: _Current[T] | None = None
        self._mutex = threading.Lock()
        self._flight: _Flight | None = None
        self._failure: _Failure | None = None
        self._consecutive_failures = 0
        self._last_invalidation = -math.inf
        _all_refreshers.add(self)

    def __repr__(self) -> str:
        return f"<Refresher {self.description}: {self._current!r}>"

    def now(self) -> float:
        """Wall-clock seconds (the clock expiries are in)."""
        return float(self._clock())

    @property
    def expiry(self) -> float | None:
        """When the cached value expires (wall-clock seconds), or None before the first load."""
        current = self._current
        return None if current is None else current.expiry

    async def get(self) -> T:
        current = self._current
        if current is not None and self._clock() < current.advisory_at:
            return current.value
        return await self._get_slow()

    def invalidate(self, rejected_key: object, *, min_interval: float | None = None) -> bool:
        """A service rejected ``rejected_key`` as expired: make callers wait for a refresh.

        Only the cached value with that key is invalidated (a burst of rejections of the
        previous credentials leaves the new ones alone), at most once per
        ``invalidation_min_interval_seconds`` (or ``min_interval``). Backoff still applies, and if the refresh
        fails the invalidated value is served. Returns whether anything was invalidated.
        """
        with self._mutex:
            current = self._current
            if current is None or current.stale or self._key_of(current.value) != rejected_key:
                return False
            now = self._monotonic()
            if min_interval is None:
                min_interval = self.policy.invalidation_min_interval_seconds
            if now - self._last_invalidation < min_interval:
                return False
            self._last_invalidation = now
            self._current = current.marked_stale()
            self.stats.invalidations += 1
        self._log(
            logging.INFO,
            "invalidated",
            "%s: marked stale after a service rejected them as expired",
            self.description,
        )
        return True

    def renewal_due(self, rejected_key: object) -> bool:
        """Whether a caller waiting for the value with ``rejected_key`` to be replaced can
        go on now: another value is cached, or the rejected one was invalidated and no
        backoff holds its refresh back (one is running, or the next caller starts one).
        False while that value is held invalidated during a backoff, and while it is held
        *not* invalidated (the same credentials refreshed again, say): asking again then
        would only meet the same rejection."""
        current = self._current  # read without the mutex: a caller's hint, not a decision
        if current is None or self._key_of(current.value) != rejected_key:
            return True
        if not current.stale:
            return False
        failure = self._failure
        return self._flight is not None or failure is None or self._monotonic() >= failure.retry_at

    async def renewed(self, rejected_key: object) -> None:
        """Wait while the cached value is the one with ``rejected_key`` and invalidated
        (a service rejected it): until a refresh replaces it, starting one whenever the
        backoff allows. Returns at once when another value is cached, or that one was not
        invalidated. The caller bounds the wait (cancel it); the refreshes it joins or
        starts are detached flights, which no cancellation aborts."""
        while True:
            with self._mutex:
                current = self._current
                if (
                    current is None
                    or not current.stale
                    or self._key_of(current.value) != rejected_key
                ):
                    return
                failure = self._failure
                pause = 0.0
                if self._flight is None and failure is not None:
                    pause = failure.retry_at - self._monotonic()
            if pause > 0:
                await self._sleep(pause)  # backing off: nobody may start a refresh yet
            else:
                await self.get()  # joins the refresh in flight, or starts one

    def seed(self, value: T, expiry: float) -> bool:
        """Start from a value already in hand (no load), timed as if it had just been
        loaded. Does nothing (returns False) once a value is cached."""
        now = self._clock()
        advisory_at, blocking_at = self.policy.windows(now, expiry, self._random())
        with self._mutex:
            if self._current is not None:
                return False
            self._current = _Current(value, expiry, expiry - now, advisory_at, blocking_at)
        return True

    def _travel_to(self, window: Literal["advisory", "blocking", "expired"]) -> float:
        """For tests (``aio_assume_role_lib.testing.time_travel``): move the cached value's
        expiry and windows earlier, as if time had passed, so that now is the start of
        ``window``. Nothing sleeps; the next value fetched has its own timings. Returns
        the seconds moved (negative: back)."""
        with self._mutex:
            current = self._current
            if current is None:
                raise ValueError("nothing is cached yet: make one call with the session first")
            advisory_at, blocking_at = current.advisory_at, current.blocking_at
            if current.stale:  # invalidated: its windows were set to -inf
                obtained_at = current.expiry - current.lifetime
                advisory_at, blocking_at = self.policy.windows(obtained_at, current.expiry, 0.0)
            target = {"advisory": advisory_at, "blocking": blocking_at, "expired": current.expiry}
            shift = target[window] - self._clock()
            self._current = _Current(
                current.value,
                current.expiry - shift,
                current.lifetime,
                advisory_at - shift,
                blocking_at - shift,
            )
        return shift

    def _forget_flight_after_fork(self) -> None:
        self._mutex = threading.Lock()
        self._flight = None

    # The slow path.

    async def _get_slow(self) -> T:
        while True:
            wall = self._clock()
            start: _Flight | None = None
            with self._mutex:
                current = self._current
                if current is not None and wall < current.advisory_at:
                    return current.value
                blocking = current is None or wall >= current.blocking_at
                flight = self._flight
                if flight is None:
                    failure = self._failure
                    if (
                        failure is not None
                        and self._monotonic() < failure.retry_at
                        and not self._may_retry_early(failure)
                    ):
                        # Backing off, or remembering a non-recoverable error.
                        if current is None or (
                            failure.kind == "non_recoverable" and wall >= current.expiry
                        ):
                            self.stats.fast_failures += 1
                            if self._metrics is not None:
                                self._metrics.fast_failure()
                            raise error_for_caller(failure.error)
                        if blocking:
                            self._count_served_stale(current, wall)
                        return current.value
                    start = flight = self._flight = _Flight(current_event_loop(), blocking)
                    if self._expiry_margin is not None and current is not None:
                        flight.serve_cached_at = self._serve_cached_at(current, wall)
                    self.stats.attempts += 1
                    if blocking:
                        self.stats.blocking_refreshes += 1
                    else:
                        self.stats.advisory_refreshes += 1
                elif (
                    blocking
                    and current is not None
                    and flight.serve_cached_at is not None
                    and flight.serve_cached_at <= wall < current.expiry
                    and not current.stale
                ):
                    # The flight's waiters were already served the cached value: so is
                    # this caller, at once (a request asking again while it is signed).
                    self._count_served_stale(current, wall)
                    return current.value
                if blocking:
                    self.stats.waits += 1
            if blocking and self._metrics is not None:
                self._metrics.waited()
            if start is not None:
                start.owner.spawn(functools.partial(self._run_flight, start))
            if not blocking:
                assert current is not None
                return current.value
            try:
                if flight.serve_cached_at is not None and current is not None:
                    result = await self._wait_bounded(flight, current, wall)
                else:
                    result = await flight.wait(self._owner_check_interval)
            except _Abandoned:
                with self._mutex:
                    if self._flight is flight:
                        self._flight = None
                continue
            return result  # type: ignore[return-value]

    def _may_retry_early(self, failure: _Failure) -> bool:
        return (
            self._retry_early is not None
            and failure.kind != "non_recoverable"
            and self._retry_early()
        )

    def _serve_cached_at(self, current: _Current[T], wall: float) -> float | None:
        """When the waiters of a flight starting now stop waiting and are served
        ``current``: the expiry minus the margin (half the time left, if less);
        None when the flight's own deadline comes first, or ``current`` cannot be served
        (expired, or invalidated: a service already rejected it)."""
        assert self._expiry_margin is not None
        left = current.expiry - wall
        if current.stale or left <= 0:
            return None
        serve_at = current.expiry - min(self._expiry_margin, left / 2)
        longest = self.policy.attempt_timeout_seconds
        if self._prepare is not None:
            longest += self.policy.token_code_timeout_seconds
        return None if wall + longest <= serve_at else serve_at

    async def _wait_bounded(self, flight: _Flight, current: _Current[T], wall: float) -> object:
        """Wait for ``flight``, but serve ``current`` before it expires if the flight is
        still running then: the caller's request must reach the service while the
        credentials it is signed with are valid. The moment is the flight's (see
        _serve_cached_at), the same for all its waiters, so a request that asks again
        while signing is not held a second time. The flight itself goes on (it is a detached task; only this
        caller's wait is cancelled). An invalidated value (a service already rejected it)
        and an expired one are not served early."""
        assert flight.serve_cached_at is not None
        if current.stale or wall >= current.expiry:
            return await flight.wait(self._owner_check_interval)
        budget = flight.serve_cached_at - wall
        if budget <= 0:
            with self._mutex:
                self._count_served_stale(current, wall)
            return current.value
        try:
            return await self._within(
                functools.partial(flight.wait, self._owner_check_interval), budget, "{:g}"
            )
        except RefreshTimeoutError:
            with self._mutex:
                self._count_served_stale(current, self._clock())
            return current.value

    def _count_served_stale(self, current: _Current[T], wall: float) -> None:
        self.stats.served_stale += 1
        if wall >= current.expiry:
            self.stats.served_expired += 1

    async def _run_flight(self, flight: _Flight) -> None:
        if self._metrics is not None:
            self._metrics.started("blocking" if flight.blocking else "advisory", self.stats)
        # Looked up now: a flight collected with its closed loop has no backend to ask.
        cancelled = anyio.get_cancelled_exc_class()
        self._log(
            logging.INFO,
            "start",
            "%s: %s refresh started",
            self.description,
            "blocking" if flight.blocking else "advisory",
        )
        try:
            value, expiry = await self._refresh(flight)
        except cancelled:
            # Only the end of its event loop cancels a detached flight.
            self._end_flight(flight)
            flight.finish(error=_Abandoned())
            raise
        except Exception as error:
            self._failed(flight, error)
        else:
            self._succeeded(flight, value, expiry)
            if self._after_success is not None:
                # After the callers have the value: slow work here (a cache write) can
                # neither delay nor fail the refresh.
                try:
                    await self._after_success()
                except Exception as error:
                    self._log(
                        logging.WARNING,
                        "after_success",
                        "%s: %s",
                        self.description,
                        self._describe(error),
                        error=error,
                    )
        finally:
            if not flight.done:  # a BaseException we did not expect
                self._end_flight(flight)
                flight.finish(error=_Abandoned())

    async def _refresh(self, flight: _Flight) -> tuple[T, float]:
        """One refresh: ``prepare`` once, then up to ``max_tries`` tries within the deadline."""
        policy = self.policy
        if self._prepare is not None:
            await self._within(
                self._prepare,
                policy.token_code_timeout_seconds,
                "the TokenCode callable did not return a code within {:g} s "
                "(RefreshPolicy.token_code_timeout_seconds)",
            )
        deadline = self._monotonic() + policy.attempt_timeout_seconds
        # Retrying inside a refresh is for callers that wait; in the advisory window the
        # backoff schedule brings the next attempt soon enough.
        max_tries = policy.max_tries if flight.blocking or self._current is None else 1
        tries = 0
        while True:
            tries += 1
            with self._mutex:
                self.stats.tries += 1
            remaining = deadline - self._monotonic()
            try_timeout = min(policy.try_timeout_seconds, remaining)
            try:
                value, expiry = await self._within(
                    self._load,
                    try_timeout,
                    "no answer within {:g} s (RefreshPolicy.try_timeout_seconds, "
                    "attempt_timeout_seconds)",
                )
                self._check_usable(expiry)
                return value, expiry
            except Exception as error:
                if isinstance(error, RefreshTimeoutError):
                    with self._mutex:
                        self.stats.timeouts += 1
                if tries >= max_tries or self._kind(error) != "transient":
                    raise
                delay = policy.retry_delay(tries, self._random())
                if self._monotonic() + delay >= deadline:
                    raise
                self._log(
                    logging.INFO,
                    "retry",
                    "%s: try %d failed (%s); trying again in %.2f s",
                    self.description,
                    tries,
                    self._describe(error),
                    delay,
                    error=error,
                )
                await self._sleep(delay)

    def _check_usable(self, expiry: float) -> None:
        now = self._clock()
        if not math.isfinite(expiry) or expiry <= now:
            raise UnusableCredentialsError(
                f"{self.description}: the source returned credentials that had already "
                f"expired ({now - expiry:.0f} s ago by this machine's clock; if they are "
                "fresh, the local clock is wrong by about that much)"
                if math.isfinite(expiry)
                else f"{self.description}: the source returned an unusable expiry time"
            )

    async def _within(self, work: Callable[[], Awaitable[R]], seconds: float, message: str) -> R:
        """``await work()``, cancelled after ``seconds`` of the injected sleep."""
        outcome: list[R] = []
        errors: list[Exception] = []
        timed_out = False
        async with anyio.create_task_group() as group:

            async def alarm() -> None:
                nonlocal timed_out
                await self._sleep(seconds)
                timed_out = True
                group.cancel_scope.cancel()

            group.start_soon(alarm)
            try:
                outcome.append(await work())
            except Exception as error:  # kept out of the task group's exception group
                errors.append(error)
            finally:
                if not timed_out:
                    group.cancel_scope.cancel()
        if outcome:
            return outcome[0]
        if errors:
            raise errors[0]
        raise RefreshTimeoutError(f"{self.description}: " + message.format(seconds))

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, (RefreshTimeoutError, UnusableCredentialsError)):
            return f"{type(error).__name__}: {error}"  # our own words, no response data
        return self._describe_error(error)

    def _kind(self, error: BaseException) -> ErrorKind:
        if isinstance(error, RefreshTimeoutError):
            return "transient"
        if isinstance(error, UnusableCredentialsError):
            return "failed"
        return self._classify_error(error)

    def _end_flight(self, flight: _Flight) -> None:
        with self._mutex:
            if self._flight is flight:
                self._flight = None

    def _succeeded(self, flight: _Flight, value: T, expiry: float) -> None:
        now = self._clock()
        advisory_at, blocking_at = self.policy.windows(now, expiry, self._random())
        # (Single flight: no other load ran since this one.)
        from_cache = self._loaded_from_cache is not None and self._loaded_from_cache()
        with self._mutex:
            self._current = _Current(value, expiry, expiry - now, advisory_at, blocking_at)
            self._consecutive_failures = 0
            self._failure = None
            if self._flight is flight:
                self._flight = None
            self.stats.successes += 1
            if from_cache:
                self.stats.cache_hits += 1
        if self._metrics is not None:
            self._metrics.refreshed("blocking" if flight.blocking else "advisory", None)
        self._log(
            logging.INFO,
            "cache_hit" if from_cache else "success",
            "%s: %s; valid for %.0f s, next refresh in %.0f s",
            self.description,
            "taken from the cache, not refreshed from the source" if from_cache else "refreshed",
            expiry - now,
            max(advisory_at - now, 0.0),
            seconds_left=expiry - now,
        )
        flight.finish(value=value)

    def _failed(self, flight: _Flight, error: Exception) -> None:
        wall = self._clock()
        kind = self._kind(error)
        rand = self._random()
        with self._mutex:
            current = self._current
            self._consecutive_failures += 1
            seconds_left = None if current is None else current.expiry - wall
            if kind == "non_recoverable":
                delay = self.policy.error_memory(rand)
            else:
                # Credentials a service rejected as expired count as expired here: new
                # ones must come within seconds of the source recovering.
                delay = self.policy.backoff(
                    self._consecutive_failures,
                    None if current is None else current.lifetime,
                    0.0 if current is not None and current.stale else seconds_left,
                    rand,
                )
            self._failure = _Failure(error, kind, self._monotonic() + delay)
            if self._flight is flight:
                self._flight = None
            self.stats.failures += 1
            expired = seconds_left is not None and seconds_left <= 0
            raise_it = current is None or (kind == "non_recoverable" and expired)
            if not raise_it and flight.blocking:
                self.stats.served_stale += 1
                if expired:
                    self.stats.served_expired += 1
        if self._metrics is not None:
            window = "blocking" if flight.blocking else "advisory"
            self._metrics.refreshed(window, self._error_code(error))
        if raise_it:
            outcome = "callers that need credentials get this error"
            level = logging.WARNING
        elif expired:
            outcome = f"serving the cached credentials, expired {-seconds_left:.0f} s ago"  # type: ignore[operator]
            level = logging.ERROR
        else:
            outcome = f"serving the cached credentials, valid for {seconds_left:.0f} s more"
            level = logging.WARNING
        self._log(
            level,
            "failure",
            "%s: %s refresh failed (%s%s); %s; next attempt in %.1f s at the earliest",
            self.description,
            "blocking" if flight.blocking else "advisory",
            self._describe(error),
            ", not recoverable" if kind == "non_recoverable" else "",
            outcome,
            delay,
            error=error,
            seconds_left=seconds_left,
            backoff_seconds=delay,
        )
        if raise_it:
            flight.finish(error=error)
        else:
            assert current is not None
            flight.finish(value=current.value)

    def _log(
        self,
        level: int,
        event: str,
        message: str,
        *args: object,
        error: BaseException | None = None,
        seconds_left: float | None = None,
        backoff_seconds: float | None = None,
    ) -> None:
        if not logger.isEnabledFor(level):
            return
        extra: dict[str, object] = {"refresh_event": event, **self._log_fields}
        if error is not None:
            extra["error_code"] = self._error_code(error)
        if seconds_left is not None:
            extra["seconds_left"] = round(seconds_left, 3)
        if backoff_seconds is not None:
            extra["backoff_seconds"] = round(backoff_seconds, 3)
        logger.log(level, message, *args, extra=extra)


def _seconds_to_expiry(refresher: weakref.ref[Refresher[Any]]) -> float | None:
    """Seconds until the refresher's cached value expires; None before the first load,
    or once the refresher is gone (the metrics gauge holds only a weak reference)."""
    alive = refresher()
    expiry = None if alive is None else alive.expiry
    return None if alive is None or expiry is None else expiry - alive.now()


class UnusableCredentialsError(Exception):
    """The source answered with credentials that cannot be used (already expired,
    missing or empty keys, an unparsable expiry time). A failed refresh, never a success."""

"""The single-flight refresher: a loader, a clock and a random source in; current value out.

It knows nothing about sessions or STS. It is given:

* ``load``: an async function returning ``(value, expiry)``, expiry in clock seconds;
* ``clock``: wall-clock seconds (``time.time`` in production, a hand-driven clock in tests);
* ``random``: a source of floats in [0, 1) for jitter;
* a :class:`RefreshPolicy` with the named knobs.

The hot path, :meth:`Refresher.get` on a fresh value, is one clock call and one comparison.
Refreshes run as detached tasks (see ``_backend``) so that no caller's cancellation can
abort them, and every caller that needs the value waits on the same flight.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from random import random as _default_random
from typing import Generic, TypeVar

import anyio

from ._backend import EventLoop, current_event_loop

logger = logging.getLogger("aio_assume_role_lib.refresh")

T = TypeVar("T")
Loader = Callable[[], Awaitable[tuple[T, float]]]


@dataclass(frozen=True)
class RefreshPolicy:
    """When and how credentials are refreshed. Every duration is in seconds.

    The windows scale with the credential *lifetime* (expiry minus the time they were
    obtained), capped at botocore's fixed windows, so 900-second and 12-hour credentials
    are both refreshed about once per lifetime:

    | credential lifetime                                  | 900 s     | 12 h      |
    |------------------------------------------------------|-----------|-----------|
    | advisory window starts, before expiry (jittered)     | 153-180 s | 840-900 s |
    | mandatory window starts, before expiry               | 45 s      | 600 s     |

    Attributes:
        advisory_fraction: the advisory window is this fraction of the lifetime...
        advisory_max_seconds: ...but at most this long (botocore's advisory window).
        mandatory_fraction: the mandatory window is this fraction of the lifetime...
        mandatory_max_seconds: ...but at most this long (botocore's mandatory window).
        jitter_fraction: the advisory window starts at a random point in the first
            ``jitter_fraction`` of the time between its earliest start and the mandatory
            window, so a fleet does not refresh in lockstep.
        attempt_timeout_seconds: overall deadline of one refresh attempt, response body
            included (aiobotocore's read timeout does not bound a trickling response).
        backoff_initial_seconds: wait after the first failed attempt; doubled after each
            further failure, with jitter, up to ``backoff_max_seconds``.
        backoff_max_seconds: longest wait between attempts after transient errors.
        permanent_error_backoff_seconds: wait after an error that retrying will not fix
            (AccessDenied, invalid parameters, missing MFA code).
    """

    advisory_fraction: float = 0.2
    advisory_max_seconds: float = 900.0
    mandatory_fraction: float = 0.05
    mandatory_max_seconds: float = 600.0
    jitter_fraction: float = 0.2
    attempt_timeout_seconds: float = 20.0
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 30.0
    permanent_error_backoff_seconds: float = 300.0

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{f.name} must be a number, not {type(value).__name__}")
            elif not math.isfinite(value) or value < 0:
                problems.append(f"{f.name} must be a finite number >= 0, not {value!r}")
        if not problems:
            if not self.mandatory_fraction <= self.advisory_fraction < 1:
                problems.append("need mandatory_fraction <= advisory_fraction < 1")
            if self.mandatory_max_seconds > self.advisory_max_seconds:
                problems.append("mandatory_max_seconds must be <= advisory_max_seconds")
            if self.jitter_fraction >= 1:
                problems.append("jitter_fraction must be < 1")
            if self.attempt_timeout_seconds <= 0:
                problems.append("attempt_timeout_seconds must be > 0")
            if self.backoff_initial_seconds > self.backoff_max_seconds:
                problems.append("backoff_initial_seconds must be <= backoff_max_seconds")
        if problems:
            raise ValueError("Invalid RefreshPolicy: " + "; ".join(problems))

    def windows(self, obtained_at: float, expiry: float, rand: float) -> tuple[float, float]:
        """Return ``(advisory_at, mandatory_at)``: when the advisory and mandatory windows start."""
        lifetime = max(expiry - obtained_at, 0.0)
        advisory = min(lifetime * self.advisory_fraction, self.advisory_max_seconds)
        mandatory = min(lifetime * self.mandatory_fraction, self.mandatory_max_seconds)
        # Jitter moves the advisory start later, never into the mandatory window.
        advisory_start = expiry - advisory + (advisory - mandatory) * self.jitter_fraction * rand
        return advisory_start, expiry - mandatory

    def backoff(self, failures: int, permanent: bool, rand: float) -> float:
        """Seconds to wait before the next attempt after ``failures`` failures in a row."""
        if permanent:
            return self.permanent_error_backoff_seconds
        ceiling = min(
            self.backoff_max_seconds, self.backoff_initial_seconds * 2.0 ** (failures - 1)
        )
        return ceiling * (0.5 + 0.5 * rand)  # "equal jitter": never less than half


@dataclass
class RefreshStats:
    """Counters a service can export (e.g. to Prometheus). Never reset; only increase."""

    attempts: int = 0
    successes: int = 0
    failures: int = 0
    advisory_refreshes: int = 0
    mandatory_refreshes: int = 0
    timeouts: int = 0
    waits: int = 0
    """Callers that had to wait for a refresh (mandatory window, or no value yet)."""
    fast_failures: int = 0
    """Callers given the previous error without an attempt, because of backoff."""
    invalidations: int = 0


class RefreshTimeoutError(TimeoutError):
    """A refresh attempt did not finish within ``attempt_timeout_seconds``."""


class _Abandoned(Exception):
    """The flight's event loop went away before it finished; callers start a new one."""


@dataclass(eq=False)
class _Flight:
    """One refresh attempt, which any number of callers on any event loops can wait for."""

    owner: EventLoop
    mandatory: bool
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _done: bool = False
    _value: object = None
    _error: BaseException | None = None
    _events: dict[object, tuple[EventLoop, anyio.Event]] = field(default_factory=dict)

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

    async def wait(self, patience: float) -> object:
        """Wait at most ``patience`` seconds; return the value or raise the flight's error."""
        event: anyio.Event | None = None
        with self._mutex:
            if not self._done:
                loop = current_event_loop()
                entry = self._events.get(loop.key)
                if entry is None:
                    entry = self._events[loop.key] = (loop, anyio.Event())
                event = entry[1]
        if event is not None:
            with anyio.move_on_after(patience):
                await event.wait()
            if not self._done:
                # Its loop stopped without cancelling it, or it is stuck: give up on it.
                self.finish(error=_Abandoned())
        if self._error is not None:
            # Every waiter raises this one object: start its traceback afresh each time,
            # or it would collect the frames of every waiter.
            raise self._error.with_traceback(None)
        return self._value


@dataclass(frozen=True)
class _Current(Generic[T]):
    value: T
    expiry: float
    obtained_at: float
    advisory_at: float
    mandatory_at: float


class Refresher(Generic[T]):
    """Keeps one value fresh for any number of tasks, event loops and threads.

    * fresh: :meth:`get` returns the current value (one clock call, one comparison);
    * advisory window: the first caller to notice starts one background refresh; every
      caller, that one included, keeps getting the still-valid value without waiting;
    * mandatory window, expired, invalidated, or nothing yet: callers wait for the one
      refresh in flight (starting it if none is) and all get its value or its error;
    * after a failure no new attempt starts before the backoff delay has passed; in the
      meantime callers in the advisory window keep the valid value, and callers that need
      a new one get the last error at once.
    """

    def __init__(
        self,
        load: Loader[T],
        *,
        policy: RefreshPolicy | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _default_random,
        is_permanent_error: Callable[[BaseException], bool] = lambda error: False,
        describe_error: Callable[[BaseException], str] = lambda error: type(error).__name__,
        description: str = "credentials",
    ) -> None:
        self._load = load
        self.policy = policy or RefreshPolicy()
        self._clock = clock
        self._random = random
        self._is_permanent_error = is_permanent_error
        # Error text can quote a response body; only the loader's side knows what is safe.
        self._describe_error = describe_error
        self.description = description
        self.stats = RefreshStats()
        self._current: _Current[T] | None = None
        self._mutex = threading.Lock()
        self._flight: _Flight | None = None
        self._retry_at = -math.inf
        self._consecutive_failures = 0
        self._last_error: BaseException | None = None

    def now(self) -> float:
        return float(self._clock())

    @property
    def expiry(self) -> float | None:
        """When the current value expires (clock seconds), or None before the first load."""
        current = self._current
        return None if current is None else current.expiry

    async def get(self) -> T:
        current = self._current
        if current is not None and self._clock() < current.advisory_at:
            return current.value
        return await self._get_slow()

    def invalidate(self, if_obtained_before: float = math.inf) -> None:
        """Make the next :meth:`get` wait for a refresh (R9: the service said "expired").

        Only a value obtained before ``if_obtained_before`` is invalidated, so a burst of
        requests that were signed with the previous credentials does not throw away the
        ones a refresh has just brought.
        """
        with self._mutex:
            current = self._current
            if current is None or current.obtained_at >= if_obtained_before:
                return
            if current.mandatory_at == -math.inf:
                return
            self._current = _Current(
                current.value, current.expiry, current.obtained_at, -math.inf, -math.inf
            )
            self.stats.invalidations += 1
        logger.info(
            "%s: marked stale after the service reported them expired; the next request refreshes",
            self.description,
            extra={"refresh_event": "invalidated"},
        )

    async def _get_slow(self) -> T:
        while True:
            now = self._clock()
            start: _Flight | None = None
            with self._mutex:
                current = self._current
                if current is not None and now < current.advisory_at:
                    return current.value
                if current is not None and now < current.mandatory_at:
                    # Advisory window: never make anyone wait.
                    if self._flight is None and now >= self._retry_at:
                        start = self._flight = _Flight(current_event_loop(), mandatory=False)
                    value = current.value
                    flight = None
                elif self._flight is not None:
                    flight = self._flight
                elif now < self._retry_at and self._last_error is not None:
                    self.stats.fast_failures += 1
                    raise self._last_error.with_traceback(None)
                else:
                    start = flight = self._flight = _Flight(current_event_loop(), mandatory=True)
            if start is not None:
                start.owner.spawn(functools.partial(self._run_flight, start))
            if flight is None:
                return value
            self.stats.waits += 1
            try:
                result = await flight.wait(self.policy.attempt_timeout_seconds + 5.0)
            except _Abandoned:
                with self._mutex:
                    if self._flight is flight:
                        self._flight = None
                continue
            return result  # type: ignore[return-value]

    async def _run_flight(self, flight: _Flight) -> None:
        kind = "mandatory" if flight.mandatory else "advisory"
        self.stats.attempts += 1
        if flight.mandatory:
            self.stats.mandatory_refreshes += 1
        else:
            self.stats.advisory_refreshes += 1
        logger.info(
            "%s: %s refresh started", self.description, kind, extra={"refresh_event": "start"}
        )
        timeout = self.policy.attempt_timeout_seconds
        try:
            with anyio.move_on_after(timeout) as deadline:
                value, expiry = await self._load()
            if deadline.cancelled_caught:
                self.stats.timeouts += 1
                raise RefreshTimeoutError(
                    f"{self.description}: refresh did not finish within {timeout:g} s "
                    "(RefreshPolicy.attempt_timeout_seconds)"
                )
        except anyio.get_cancelled_exc_class():
            # Only the end of the event loop cancels a detached flight.
            self._end_flight(flight)
            flight.finish(error=_Abandoned())
            raise
        except Exception as exc:
            self._failed(flight, exc)
        else:
            self._succeeded(flight, value, expiry)
        finally:
            if not flight._done:  # a BaseException we did not expect
                self._end_flight(flight)
                flight.finish(error=_Abandoned())

    def _end_flight(self, flight: _Flight) -> None:
        with self._mutex:
            if self._flight is flight:
                self._flight = None

    def _succeeded(self, flight: _Flight, value: T, expiry: float) -> None:
        now = self._clock()
        advisory_at, mandatory_at = self.policy.windows(now, expiry, self._random())
        with self._mutex:
            self._current = _Current(value, expiry, now, advisory_at, mandatory_at)
            self._consecutive_failures = 0
            self._retry_at = -math.inf
            self._last_error = None
            if self._flight is flight:
                self._flight = None
        self.stats.successes += 1
        logger.info(
            "%s: refreshed; valid for %.0f s, next refresh in %.0f s",
            self.description,
            expiry - now,
            max(advisory_at - now, 0.0),
            extra={"refresh_event": "success"},
        )
        if expiry <= now:
            logger.warning(
                "%s: the new credentials are already expired (is the clock wrong?)",
                self.description,
                extra={"refresh_event": "expired_on_arrival"},
            )
        flight.finish(value=value)

    def _failed(self, flight: _Flight, error: Exception) -> None:
        now = self._clock()
        permanent = self._is_permanent_error(error)
        with self._mutex:
            self._consecutive_failures += 1
            delay = self.policy.backoff(self._consecutive_failures, permanent, self._random())
            retry_at = now + delay
            current = self._current
            if current is not None and now < current.mandatory_at:
                # Still valid: try again no later than the start of the mandatory window.
                retry_at = min(retry_at, current.mandatory_at)
            self._retry_at = retry_at
            self._last_error = error
            if self._flight is flight:
                self._flight = None
        self.stats.failures += 1
        serving = current is not None and now < current.mandatory_at
        logger.warning(
            "%s: %s refresh failed (%s%s); %s; next attempt in %.1f s",
            self.description,
            "mandatory" if flight.mandatory else "advisory",
            self._describe_error(error),
            ", not retryable" if permanent else "",
            "still serving the current credentials" if serving else "callers get this error",
            retry_at - now,
            extra={"refresh_event": "failure"},
        )
        logger.info(
            "%s: backing off for %.1f s after %d failure(s) in a row",
            self.description,
            retry_at - now,
            self._consecutive_failures,
            extra={"refresh_event": "backoff"},
        )
        flight.finish(error=error)

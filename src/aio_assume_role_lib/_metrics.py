"""OpenTelemetry instruments (and optional spans) for the refresh engine, when
``opentelemetry-api`` is installed.

Install the ``otel`` extra (or ``opentelemetry-api`` yourself) and configure a meter
provider as usual; without one, the API's no-op provider makes every call free. The
instruments, all with the attribute ``aws.role.arn`` (unless turned off with
:func:`configure_telemetry`):

* ``aio_assume_role.refresh.attempts`` (counter): refreshes started, with ``outcome``
  (``success`` or ``failure``) once they end, and ``window`` (``advisory`` or ``blocking``);
* ``aio_assume_role.refresh.failures`` (counter): failed refreshes, with ``error.type``
  (an AWS error code or exception type the library knows, else ``other``);
* ``aio_assume_role.refresh.fast_failures`` (counter): callers given a remembered error
  without a new request;
* ``aio_assume_role.refresh.waits`` (counter): callers that waited for a refresh;
* ``aio_assume_role.credentials.seconds_to_expiry`` (gauge): per credentials object that
  is alive, seconds until the cached credentials expire (negative once expired), with
  ``aio_assume_role.credentials.slot`` telling apart the live credentials objects of one
  role (two children with different session names or policies, say);
* ``aio_assume_role.credentials.served_stale`` and ``.served_expired`` (observable
  counters, the ``RefreshStats`` of the same name), with the gauge's attributes: cached
  credentials served after a failed refresh, and of those the ones past their expiry;
* ``aio_assume_role.sharing.evictions`` (counter): entries a parent's sharing tables
  dropped to stay within their limits, with ``table`` (``credentials`` or ``children``)
  and no role attribute.

Cardinality: the counters have one series per role (times the few values of ``outcome``,
``window`` and ``error.type``); the gauge one per live credentials object. Every
attribute value is bounded: ``error.type`` takes one of a fixed set of values, a role
ARN is cut to ``MAX_ATTRIBUTE_LENGTH`` characters (a digest keeps cut ones apart) and
anything but printable ASCII is replaced, and a slot is the smallest number no other
live credentials object of the role holds, so it is reused rather than growing.

No secret is ever an attribute: only the role ARN, outcomes, error types and slots.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import re
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

try:
    from opentelemetry import metrics as _otel_metrics
except ImportError:  # the optional extra is not installed
    _otel_metrics = None  # type: ignore[assignment]
try:
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _otel_trace
except ImportError:
    _otel_trace = None  # type: ignore[assignment]
    _otel_context = None  # type: ignore[assignment]

from ._version import __version__

ROLE_ATTRIBUTE = "aws.role.arn"
SLOT_ATTRIBUTE = "aio_assume_role.credentials.slot"
ERROR_TYPE_ATTRIBUTE = "error.type"
OTHER_ERROR_TYPE = "other"
MAX_ATTRIBUTE_LENGTH = 256
SPAN_NAME = "aio_assume_role.refresh"

# Exception types a refresh meets, besides the AWS error codes of _fetch: the library's
# own and botocore's (a ClientError without a code is "Unknown").
_KNOWN_EXCEPTION_TYPES = frozenset(
    {
        "RefreshTimeoutError",
        "UnusableCredentialsError",
        "MFACodeUnavailableError",
        "_UnparsableResponseError",
        "ParamValidationError",
        "NoCredentialsError",
        "CredentialRetrievalError",
        "RefreshWithMFAUnsupportedError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ProxyConnectionError",
        "SSLError",
        "HTTPClientError",
        "ResponseParserError",
        "NoRegionError",
        "Unknown",
        "TimeoutError",
        "OSError",
        "ConnectionError",
    }
)


@functools.cache
def known_error_types() -> frozenset[str]:
    """Every value ``error.type`` can take, ``other`` included."""
    # Imported here: the fetcher imports the refresher, which imports this module.
    from ._fetch import NON_RECOVERABLE_ERROR_CODES, TRANSIENT_ERROR_CODES

    return (
        NON_RECOVERABLE_ERROR_CODES
        | TRANSIENT_ERROR_CODES
        | _KNOWN_EXCEPTION_TYPES
        | {OTHER_ERROR_TYPE}
    )


def bounded_error_type(code: str) -> str:
    """``code`` if the library knows it, else ``other``: a server's error code is not a
    label (anything between the client and STS can make one up)."""
    return code if code in known_error_types() else OTHER_ERROR_TYPE


_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


def bounded_value(value: object) -> str:
    """``value`` as an attribute: printable ASCII (others become ``?``), at most
    ``MAX_ATTRIBUTE_LENGTH`` characters; a cut value ends in a digest of the whole, so
    two long ARNs that share their first characters stay apart. (With ``validate=False``
    a role ARN may be anything: it is named by its text.)"""
    value = _UNPRINTABLE.sub("?", value if isinstance(value, str) else repr(value))
    if len(value) <= MAX_ATTRIBUTE_LENGTH:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"{value[: MAX_ATTRIBUTE_LENGTH - 16]}...#{digest}"


class _Settings:
    role_attribute = True
    refresh_spans = False


def configure_telemetry(*, role_attribute: bool = True, refresh_spans: bool = False) -> None:
    """Choose what the library records through OpenTelemetry (process-wide).

    Args:
        role_attribute: give every instrument (and span) the ``aws.role.arn`` attribute:
            one series per role. ``False`` drops it, for a process that assumes very
            many roles (tenants): the counters then have one series in all, and the
            expiry gauge one per live credentials object.
        refresh_spans: record a span named ``aio_assume_role.refresh`` for every
            refresh (off by default), with the gauge's attributes and the refresh's
            ``window``, ``tries``, ``waiters``, ``outcome`` and ``error.type``, through
            the tracer provider you configured. Each is a root span: a refresh runs for
            every caller, not for the request that happened to start it.

    Call it at start-up, before the first ``assume_role()``: a change applies to what is
    recorded from then on.
    """
    if not isinstance(role_attribute, bool) or not isinstance(refresh_spans, bool):
        raise TypeError(
            "configure_telemetry(): role_attribute and refresh_spans take True or False"
        )
    _Settings.role_attribute = role_attribute
    _Settings.refresh_spans = refresh_spans


class _Instruments:
    def __init__(
        self,
        observe: Callable[[Any], Iterable[Any]],
        observe_served_stale: Callable[[Any], Iterable[Any]],
        observe_served_expired: Callable[[Any], Iterable[Any]],
    ) -> None:
        assert _otel_metrics is not None
        meter = _otel_metrics.get_meter("aio_assume_role_lib", __version__)
        self.attempts = meter.create_counter(
            "aio_assume_role.refresh.attempts", unit="{refresh}", description="Refreshes"
        )
        self.failures = meter.create_counter(
            "aio_assume_role.refresh.failures", unit="{refresh}", description="Failed refreshes"
        )
        self.fast_failures = meter.create_counter(
            "aio_assume_role.refresh.fast_failures",
            unit="{call}",
            description="Callers given a remembered error without a new request",
        )
        self.waits = meter.create_counter(
            "aio_assume_role.refresh.waits", unit="{call}", description="Callers that waited"
        )
        meter.create_observable_gauge(
            "aio_assume_role.credentials.seconds_to_expiry",
            callbacks=[observe],
            unit="s",
            description="Seconds until the cached credentials expire",
        )
        # Read from the refresher's exact counters (RefreshStats) when collected.
        meter.create_observable_counter(
            "aio_assume_role.credentials.served_stale",
            callbacks=[observe_served_stale],
            unit="{call}",
            description="Cached credentials served in place of new ones after a failed refresh",
        )
        meter.create_observable_counter(
            "aio_assume_role.credentials.served_expired",
            callbacks=[observe_served_expired],
            unit="{call}",
            description="Of those, the ones served past their expiry",
        )


class RefreshMetrics:
    """Records one credentials object's refresh events (a no-op without OpenTelemetry)."""

    _instruments: ClassVar[_Instruments | None] = None
    _live: ClassVar[weakref.WeakSet[RefreshMetrics]] = weakref.WeakSet()
    _evictions: ClassVar[Any] = None

    def __init__(self, role_arn: str) -> None:
        self._role = bounded_value(role_arn)
        self._seconds_to_expiry: Callable[[], float | None] = lambda: None
        # The slot among the live objects of the role, and among all (role attribute off).
        self._slot_in_role = 0
        self._slot = 0
        self._waiters = 0  # callers that waited since the last refresh ended
        self._span: Any = None
        self._tries_before = 0
        self._stats: Any = None

    def watch(self, seconds_to_expiry: Callable[[], float | None]) -> None:
        """Report ``seconds_to_expiry()`` in the gauge (the refresher this records calls
        this once, with a function that does not keep it alive)."""
        self._seconds_to_expiry = seconds_to_expiry
        if _otel_metrics is not None:
            if RefreshMetrics._instruments is None:
                RefreshMetrics._instruments = _Instruments(
                    RefreshMetrics._observe,
                    functools.partial(RefreshMetrics._observe_stats, "served_stale"),
                    functools.partial(RefreshMetrics._observe_stats, "served_expired"),
                )
            self._slot = _SLOTS.take(None, self)
            self._slot_in_role = _SLOTS.take(self._role, self)
            RefreshMetrics._live.add(self)

    @property
    def _attributes(self) -> dict[str, Any]:
        if _Settings.role_attribute:
            return {ROLE_ATTRIBUTE: self._role}
        return {}

    def _identity(self) -> dict[str, Any]:
        """The attributes of the gauge and spans: one set per live credentials object."""
        if _Settings.role_attribute:
            return {ROLE_ATTRIBUTE: self._role, SLOT_ATTRIBUTE: self._slot_in_role}
        return {SLOT_ATTRIBUTE: self._slot}

    @staticmethod
    def _observe(options: Any) -> Iterable[Any]:
        assert _otel_metrics is not None
        for metrics in list(RefreshMetrics._live):
            seconds = metrics._seconds_to_expiry()
            if seconds is not None:
                yield _otel_metrics.Observation(seconds, metrics._identity())

    @staticmethod
    def _observe_stats(name: str, options: Any) -> Iterable[Any]:
        assert _otel_metrics is not None
        for metrics in list(RefreshMetrics._live):
            if metrics._stats is not None:
                yield _otel_metrics.Observation(getattr(metrics._stats, name), metrics._identity())

    def started(self, window: str, stats: Any) -> None:
        """A refresh started (``stats``: the refresher's counters, read for its tries and
        for the served_stale and served_expired counters, which no refresh before the
        first can change)."""
        self._stats = stats
        if not _Settings.refresh_spans or _otel_trace is None or _otel_context is None:
            return
        if self._span is not None:  # the previous flight was abandoned (its loop ended)
            self._end_span("abandoned", None)
        tracer = _otel_trace.get_tracer("aio_assume_role_lib", __version__)
        self._span = tracer.start_span(
            SPAN_NAME,
            context=_otel_context.Context(),  # a root span: see configure_telemetry()
            attributes={**self._identity(), "aio_assume_role.refresh.window": window},
        )
        self._tries_before = stats.tries

    def _end_span(self, outcome: str, error_type: str | None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        assert _otel_trace is not None
        tries = self._stats.tries - self._tries_before if self._stats is not None else 0
        span.set_attribute("aio_assume_role.refresh.tries", tries)
        span.set_attribute("aio_assume_role.refresh.waiters", self._waiters)
        span.set_attribute("aio_assume_role.refresh.outcome", outcome)
        if error_type is not None:
            span.set_attribute(ERROR_TYPE_ATTRIBUTE, error_type)
            span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR))
        span.end()

    def refreshed(self, window: str, error_type: str | None) -> None:
        bounded = None if error_type is None else bounded_error_type(error_type)
        self._end_span("success" if bounded is None else "failure", bounded)
        self._waiters = 0
        instruments = self._instruments
        if instruments is None:
            return
        outcome = "success" if bounded is None else "failure"
        attributes = self._attributes
        instruments.attempts.add(1, {**attributes, "outcome": outcome, "window": window})
        if bounded is not None:
            instruments.failures.add(1, {**attributes, ERROR_TYPE_ATTRIBUTE: bounded})

    def fast_failure(self) -> None:
        if self._instruments is not None:
            self._instruments.fast_failures.add(1, self._attributes)

    def waited(self) -> None:
        self._waiters += 1
        if self._instruments is not None:
            self._instruments.waits.add(1, self._attributes)

    @staticmethod
    def evicted(table: str, count: int) -> None:
        """Count ``count`` entries dropped from a parent's sharing ``table``."""
        if _otel_metrics is None:
            return
        counter = RefreshMetrics._evictions
        if counter is None:
            meter = _otel_metrics.get_meter("aio_assume_role_lib", __version__)
            counter = RefreshMetrics._evictions = meter.create_counter(
                "aio_assume_role.sharing.evictions",
                unit="{entry}",
                description="Entries dropped from a parent's sharing tables",
            )
        counter.add(count, {"table": table})


class _Slots:
    """Small numbers that tell live objects apart within a group: each takes the smallest
    number free in its group and gives it back when it is collected, so the numbers in
    use never exceed the number of live objects (bounded cardinality)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str | None, int] = {}
        self._free: dict[str | None, list[int]] = {}

    def take(self, group: str | None, owner: object) -> int:
        with self._lock:
            free = self._free.get(group)
            if free:
                slot = heapq.heappop(free)
            else:
                slot = self._next.get(group, 0)
                self._next[group] = slot + 1
        weakref.finalize(owner, self._give_back, group, slot)
        return slot

    def _give_back(self, group: str | None, slot: int) -> None:
        with self._lock:
            free = self._free.setdefault(group, [])
            heapq.heappush(free, slot)
            if len(free) == self._next[group]:  # all given back: forget the group
                del self._free[group], self._next[group]

    def in_use(self, group: str | None) -> int:
        with self._lock:
            return self._next.get(group, 0) - len(self._free.get(group, ()))


_SLOTS = _Slots()

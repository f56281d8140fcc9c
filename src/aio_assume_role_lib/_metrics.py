"""OpenTelemetry instruments for the refresh engine, when ``opentelemetry-api`` is installed.

Install the ``otel`` extra (or ``opentelemetry-api`` yourself) and configure a meter
provider as usual; without one, the API's no-op provider makes every call free. The
instruments, all with the attribute ``aws.role.arn``:

* ``aio_assume_role.refresh.attempts`` (counter): refreshes started, with ``outcome``
  (``success`` or ``failure``) once they end, and ``window`` (``advisory`` or ``blocking``);
* ``aio_assume_role.refresh.failures`` (counter): failed refreshes, with ``error.type``
  (the AWS error code, or the exception's type);
* ``aio_assume_role.refresh.fast_failures`` (counter): callers given a remembered error
  without a new request;
* ``aio_assume_role.refresh.waits`` (counter): callers that waited for a refresh;
* ``aio_assume_role.credentials.seconds_to_expiry`` (gauge): per credentials object that
  is alive, seconds until the cached credentials expire (negative once expired);
* ``aio_assume_role.sharing.evictions`` (counter): entries a parent's sharing tables
  dropped to stay within their limits, with ``table`` (``credentials`` or ``children``)
  and no role attribute.

No secret is ever an attribute: only the role ARN, outcomes and error codes.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

try:
    from opentelemetry import metrics as _otel_metrics
except ImportError:  # the optional extra is not installed
    _otel_metrics = None  # type: ignore[assignment]

from ._version import __version__

ROLE_ATTRIBUTE = "aws.role.arn"


class _Instruments:
    def __init__(self, observe: Callable[[Any], Iterable[Any]]) -> None:
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


class RefreshMetrics:
    """Records one credentials object's refresh events (a no-op without OpenTelemetry)."""

    _instruments: ClassVar[_Instruments | None] = None
    _live: ClassVar[weakref.WeakSet[RefreshMetrics]] = weakref.WeakSet()
    _evictions: ClassVar[Any] = None

    def __init__(self, role_arn: str) -> None:
        self._attributes = {ROLE_ATTRIBUTE: role_arn}
        self._seconds_to_expiry: Callable[[], float | None] = lambda: None

    def watch(self, seconds_to_expiry: Callable[[], float | None]) -> None:
        """Report ``seconds_to_expiry()`` in the gauge (the refresher this records calls
        this once, with a function that does not keep it alive)."""
        self._seconds_to_expiry = seconds_to_expiry
        if _otel_metrics is not None:
            if RefreshMetrics._instruments is None:
                RefreshMetrics._instruments = _Instruments(RefreshMetrics._observe)
            RefreshMetrics._live.add(self)

    @staticmethod
    def _observe(options: Any) -> Iterable[Any]:
        assert _otel_metrics is not None
        for metrics in list(RefreshMetrics._live):
            seconds = metrics._seconds_to_expiry()
            if seconds is not None:
                yield _otel_metrics.Observation(seconds, dict(metrics._attributes))

    def refreshed(self, window: str, error_type: str | None) -> None:
        instruments = self._instruments
        if instruments is None:
            return
        outcome = "success" if error_type is None else "failure"
        instruments.attempts.add(1, {**self._attributes, "outcome": outcome, "window": window})
        if error_type is not None:
            instruments.failures.add(1, {**self._attributes, "error.type": error_type})

    def fast_failure(self) -> None:
        if self._instruments is not None:
            self._instruments.fast_failures.add(1, self._attributes)

    def waited(self) -> None:
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

"""OpenTelemetry instruments and structured log fields, over real HTTP to the loopback STS.

The SDK's in-memory reader collects what the library recorded through the OpenTelemetry
API (the optional ``otel`` extra); the test installs the SDK's meter provider once for
the process, so every test reads differences, not totals.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiohttp import web
from botocore.exceptions import ClientError

from aio_assume_role_lib import RefreshPolicy, assume_role, configure_telemetry, credentials_of
from aio_assume_role_lib._metrics import MAX_ATTRIBUTE_LENGTH, bounded_value, known_error_types
from aio_assume_role_lib.testing import LoopbackSTS, time_travel
from aio_assume_role_lib.testing._protocol import error_body

from ._threaded_server import ThreadedServer
from .conftest import ROLE_A, ROLE_B, ROLE_C, botocore_session, make_parent

ROLE = "aws.role.arn"
SLOT = "aio_assume_role.credentials.slot"
ERROR_TYPE = "error.type"

metrics_api = pytest.importorskip("opentelemetry.metrics")
sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
sdk_export = pytest.importorskip("opentelemetry.sdk.metrics.export")

pytestmark = pytest.mark.anyio

ONE_ATTEMPT = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="module")
def reader() -> Any:
    reader = sdk_export.InMemoryMetricReader()
    metrics_api.set_meter_provider(sdk_metrics.MeterProvider(metric_readers=[reader]))
    return reader


def points(reader: Any, name: str) -> list[tuple[dict[str, Any], float]]:
    found = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes), p.value) for p in metric.data.data_points]
    return found


def total(reader: Any, name: str, **attributes: str) -> float:
    return sum(
        value
        for labels, value in points(reader, name)
        if all(labels.get(k.replace("_", ".")) == v for k, v in attributes.items())
    )


async def test_refresh_instruments_count_attempts_failures_waits_and_expiry(
    reader: Any, sts: LoopbackSTS, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "aio_assume_role_lib")
    policy = RefreshPolicy(max_tries=1, error_memory_min_seconds=60, error_memory_max_seconds=60)
    child = await assume_role(make_parent(), ROLE_B, RoleSessionName="metered", refresh=policy)
    sts.fail_next("access_denied")
    async with child.create_client("sts", config=ONE_ATTEMPT) as api:
        with pytest.raises(ClientError):
            await api.get_caller_identity()
        with pytest.raises(ClientError):  # remembered: no new request
            await api.get_caller_identity()
    role = {"aws.role.arn": ROLE_B}
    attempts = points(reader, "aio_assume_role.refresh.attempts")
    assert [
        (labels["outcome"], value) for labels, value in attempts if labels.items() >= role.items()
    ] == [("failure", 1)]
    failures = points(reader, "aio_assume_role.refresh.failures")
    assert [
        (labels["error.type"], value)
        for labels, value in failures
        if labels.items() >= role.items()
    ] == [("AccessDenied", 1)]
    assert total(reader, "aio_assume_role.refresh.fast_failures", aws_role_arn=ROLE_B) == 1
    assert total(reader, "aio_assume_role.refresh.waits", aws_role_arn=ROLE_B) == 1

    # A successful refresh, and the gauge of seconds to expiry for the live credentials.
    child_a = await assume_role(make_parent(), ROLE_A, RoleSessionName="metered-a")
    credentials = await botocore_session(child_a).get_credentials()
    await credentials.get_frozen_credentials()
    successes = [
        value
        for labels, value in points(reader, "aio_assume_role.refresh.attempts")
        if labels.get("aws.role.arn") == ROLE_A and labels["outcome"] == "success"
    ]
    assert successes == [1]
    # A point per live credentials object of the role (other tests may have left some).
    gauges = [
        value
        for labels, value in points(reader, "aio_assume_role.credentials.seconds_to_expiry")
        if labels.get("aws.role.arn") == ROLE_A
    ]
    assert any(3500 < gauge <= 3600 for gauge in gauges)

    # Structured log fields, for JSON formatters and structlog.
    (failure,) = [r for r in caplog.records if getattr(r, "refresh_event", "") == "failure"]
    assert failure.role_arn == ROLE_B  # type: ignore[attr-defined]
    assert failure.role_session_name == "metered"  # type: ignore[attr-defined]
    assert failure.error_code == "AccessDenied"  # type: ignore[attr-defined]
    success = [r for r in caplog.records if getattr(r, "refresh_event", "") == "success"]
    assert success[-1].seconds_left > 3500  # type: ignore[attr-defined]


# --- bounded cardinality (issue 19 item 7) and the expiry gauge per credentials object ---


class HostileSTS(ThreadedServer):
    """An STS endpoint (loopback HTTP) that answers every request with an error whose
    ``Code`` is new each time and 200+ characters long: what a proxy, or anything between
    a client and STS, can send. The library must not turn these into labels."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0
        self.port = 0

    async def _answer(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        code = f"Weird{self.requests:03d}" + "X" * 200
        body = error_body(code, "made up", "00000000-0000-0000-0000-000000000000", 400)
        return web.Response(status=400, body=body, content_type="text/xml")

    async def _start(self) -> None:
        self.port = await self._serve(self._answer)


NO_BACKOFF = RefreshPolicy(max_tries=1, backoff_min_seconds=0.0)


async def test_error_type_is_one_of_the_codes_the_library_knows_or_other(
    reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = "arn:aws:iam::111111111111:role/Hostile"
    with HostileSTS() as hostile:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{hostile.port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEPARENT")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-secret")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        child = await assume_role(make_parent(), role, refresh=NO_BACKOFF)
        credentials = credentials_of(child)
        for _ in range(20):
            with pytest.raises(ClientError, match="Weird"):
                await credentials.get_frozen_credentials()
        assert hostile.requests == 20
    labels = [
        (labels[ERROR_TYPE], value)
        for labels, value in points(reader, "aio_assume_role.refresh.failures")
        if labels.get(ROLE) == role
    ]
    assert labels == [("other", 20)]  # not 20 series of 200+ characters
    assert known_error_types() >= {"AccessDenied", "Throttling", "RefreshTimeoutError", "other"}
    assert all(len(value) <= 64 for value in known_error_types())


async def test_a_huge_role_arn_is_cut_to_a_bounded_attribute(reader: Any, sts: LoopbackSTS) -> None:
    huge = "arn:aws:iam::111111111111:role/" + "r" * 100_000
    other = huge[:-1] + "s"  # the same first 100,030 characters
    for role in (huge, other):
        child = await assume_role(make_parent(), role, validate=False, refresh=NO_BACKOFF)
        with pytest.raises(ClientError):
            await credentials_of(child).get_frozen_credentials()
    roles = {
        labels[ROLE]
        for labels, _ in points(reader, "aio_assume_role.refresh.attempts")
        if labels[ROLE].startswith("arn:aws:iam::111111111111:role/rrrr")
    }
    assert len(roles) == 2  # cut, and still apart
    assert max(len(role) for role in roles) <= MAX_ATTRIBUTE_LENGTH
    assert bounded_value("arn:aws:iam::1:role/\n\x00é") == "arn:aws:iam::1:role/???"


@pytest.fixture
def role_attribute_off() -> Iterator[None]:
    configure_telemetry(role_attribute=False)
    try:
        yield
    finally:
        configure_telemetry()


async def test_the_role_attribute_can_be_turned_off(
    reader: Any, sts: LoopbackSTS, role_attribute_off: None
) -> None:
    before = total(reader, "aio_assume_role.refresh.attempts", outcome="success")
    child = await assume_role(make_parent(), ROLE_C, RoleSessionName="anonymous")
    await credentials_of(child).get_frozen_credentials()
    attempts = points(reader, "aio_assume_role.refresh.attempts")
    assert [value for labels, value in attempts if ROLE not in labels] == [1]
    assert all(labels[ROLE] != ROLE_C for labels, _ in attempts if ROLE in labels)
    assert total(reader, "aio_assume_role.refresh.attempts", outcome="success") == before + 1
    gauge = points(reader, "aio_assume_role.credentials.seconds_to_expiry")
    assert gauge
    assert all(ROLE not in labels for labels, _ in gauge)
    slots = [labels[SLOT] for labels, _ in gauge]
    assert len(slots) == len(set(slots))  # each live credentials object its own point
    with pytest.raises(TypeError, match="True or False"):
        configure_telemetry(role_attribute="no")  # type: ignore[arg-type]


def expiry_points(reader: Any, role: str) -> list[tuple[dict[str, Any], float]]:
    return [
        (labels, value)
        for labels, value in points(reader, "aio_assume_role.credentials.seconds_to_expiry")
        if labels.get(ROLE) == role
    ]


async def test_two_sessions_of_one_role_are_two_points_of_the_expiry_gauge(
    reader: Any, sts: LoopbackSTS
) -> None:
    role = "arn:aws:iam::444444444444:role/Twice"
    sts.credential_lifetime = 1000.0
    first = await assume_role(make_parent(), role, RoleSessionName="first")
    await credentials_of(first).get_frozen_credentials()
    sts.credential_lifetime = 2000.0
    second = await assume_role(make_parent(), role, RoleSessionName="second")
    await credentials_of(second).get_frozen_credentials()
    found = expiry_points(reader, role)
    assert sorted(labels[SLOT] for labels, _ in found) == [0, 1]
    shorter, longer = sorted(value for _, value in found)
    assert 0 < shorter <= 1000 < longer <= 2000  # each its own point, not the last one seen
    # Slots are reused, not numbered on forever: cardinality stays bounded under churn.
    del first
    gc.collect()
    third = await assume_role(make_parent(), role, RoleSessionName="third")
    await credentials_of(third).get_frozen_credentials()
    assert sorted(labels[SLOT] for labels, _ in expiry_points(reader, role)) == [0, 1]
    del second, third
    gc.collect()
    assert expiry_points(reader, role) == []


# --- an optional span per refresh -------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Any:
    trace_api = pytest.importorskip("opentelemetry.trace")
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    sdk_trace_export = pytest.importorskip("opentelemetry.sdk.trace.export")
    in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(sdk_trace_export.SimpleSpanProcessor(exporter))
    trace_api.set_tracer_provider(provider)
    return exporter


def refresh_spans(exporter: Any, role: str) -> list[dict[str, Any]]:
    return [
        {**span.attributes, "status": span.status.status_code.name, "parent": span.parent}
        for span in exporter.get_finished_spans()
        if span.name == "aio_assume_role.refresh" and span.attributes.get(ROLE) == role
    ]


async def test_a_span_per_refresh_only_when_turned_on(spans: Any, sts: LoopbackSTS) -> None:
    role = "arn:aws:iam::555555555555:role/Traced"
    child = await assume_role(make_parent(), role, RoleSessionName="untraced")
    await credentials_of(child).get_frozen_credentials()
    assert refresh_spans(spans, role) == []  # off by default

    configure_telemetry(refresh_spans=True)
    try:
        traced = await assume_role(make_parent(), role, RoleSessionName="traced")
        sts.fail_next("throttling")  # retried inside the one refresh: two tries
        sts.latency = 0.2
        keys = await asyncio.gather(
            *(credentials_of(traced).get_frozen_credentials() for _ in range(3))
        )
        assert len({key.access_key for key in keys}) == 1
        sts.latency = 0.0
        assert credentials_of(traced).invalidate()  # the next call waits: a second span
        await credentials_of(traced).get_frozen_credentials()
        sts.fail_next("access_denied")
        denied = await assume_role(make_parent(), role, RoleSessionName="denied")
        with pytest.raises(ClientError):
            await credentials_of(denied).get_frozen_credentials()
    finally:
        configure_telemetry()
    ok, again, failed = refresh_spans(spans, role)
    assert again[SLOT] == ok[SLOT]
    assert again["aio_assume_role.refresh.tries"] == 1
    assert again["aio_assume_role.refresh.waiters"] == 1  # counted per refresh
    assert ok == {
        ROLE: role,
        SLOT: ok[SLOT],
        "aio_assume_role.refresh.window": "blocking",
        "aio_assume_role.refresh.tries": 2,
        "aio_assume_role.refresh.waiters": 3,
        "aio_assume_role.refresh.outcome": "success",
        "status": "UNSET",
        "parent": None,  # a root span
    }
    assert failed[ERROR_TYPE] == "AccessDenied"
    assert failed["aio_assume_role.refresh.outcome"] == "failure"
    assert failed["aio_assume_role.refresh.tries"] == 1
    assert failed["status"] == "ERROR"


async def test_credentials_served_expired_are_counted(reader: Any, sts: LoopbackSTS) -> None:
    role = "arn:aws:iam::666666666666:role/Stale"
    child = await assume_role(make_parent(), role, refresh=RefreshPolicy(max_tries=1))
    credentials = credentials_of(child)
    await credentials.get_frozen_credentials()
    time_travel(child, "expired")
    sts.fail_next("5xx")
    await credentials.get_frozen_credentials()  # the refresh fails: the expired ones served
    counted = {
        name: [
            value
            for labels, value in points(reader, f"aio_assume_role.credentials.{name}")
            if labels.get(ROLE) == role
        ]
        for name in ("served_stale", "served_expired")
    }
    assert counted == {"served_stale": [1], "served_expired": [1]}


async def test_sharing_evictions_are_counted(reader: Any, sts: LoopbackSTS) -> None:
    from aio_assume_role_lib import set_sharing_limits

    before = {
        table: total(reader, "aio_assume_role.sharing.evictions", table=table)
        for table in ("credentials", "children")
    }
    parent = make_parent()
    set_sharing_limits(parent, max_credentials=6, max_children=2)
    for tenant in range(10):
        await assume_role(parent, ROLE_A, ExternalId=f"tenant-{tenant}")
    for table, dropped in (("credentials", 4), ("children", 8)):
        counted = total(reader, "aio_assume_role.sharing.evictions", table=table)
        assert counted - before[table] == dropped

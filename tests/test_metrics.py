"""OpenTelemetry instruments and structured log fields, over real HTTP to the loopback STS.

The SDK's in-memory reader collects what the library recorded through the OpenTelemetry
API (the optional ``otel`` extra); the test installs the SDK's meter provider once for
the process, so every test reads differences, not totals.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from aio_assume_role_lib import RefreshPolicy, assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import ROLE_A, ROLE_B, botocore_session, make_parent

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
    (gauge,) = [
        value
        for labels, value in points(reader, "aio_assume_role.credentials.seconds_to_expiry")
        if labels.get("aws.role.arn") == ROLE_A
    ]
    assert 3500 < gauge <= 3600

    # Structured log fields, for JSON formatters and structlog.
    (failure,) = [r for r in caplog.records if getattr(r, "refresh_event", "") == "failure"]
    assert failure.role_arn == ROLE_B  # type: ignore[attr-defined]
    assert failure.role_session_name == "metered"  # type: ignore[attr-defined]
    assert failure.error_code == "AccessDenied"  # type: ignore[attr-defined]
    success = [r for r in caplog.records if getattr(r, "refresh_event", "") == "success"]
    assert success[-1].seconds_left > 3500  # type: ignore[attr-defined]


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

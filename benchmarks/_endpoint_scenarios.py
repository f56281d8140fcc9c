"""The container-credentials endpoint (``serve_container_credentials``, issue 23).

* E1: answer time (p50, p99) and requests per second of the endpoint, measured by a
  client in another process (so that it does not share this one's CPU time slices):
  sequential requests on one keep-alive connection, as an SDK's refresh sends them.
* E2: many processes whose SDK (sync botocore, its default chain: the container
  provider) refreshes through one endpoint, for several credential lifetimes: AssumeRole
  calls per lifetime (target 1), beside the same number of processes given static keys
  and re-run once per lifetime (``aio-assume-role ROLE -- COMMAND`` per run: one
  AssumeRole per process per lifetime).

This file is also E1's client: ``python _endpoint_scenarios.py --client URL TOKEN N``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
from typing import Any, NamedTuple

from _scenarios import ACCOUNT, Config, Context, Row, Scenario
from _sections import Measured, comparison_section

ENDPOINT = "endpoint"
STATIC = "static-keys"
LABELS = {ENDPOINT: "one endpoint", STATIC: "static keys, re-run per lifetime"}
PROCESSES = 50


class _Settings(NamedTuple):
    requests: int  # E1
    processes: int  # E2
    lifetime: float  # E2: of the credentials STS issues, seconds
    lifetimes: int  # E2: how many the traffic lasts


def _settings(config: Config) -> _Settings:
    if config.name == "smoke":
        return _Settings(requests=300, processes=3, lifetime=2.0, lifetimes=2)
    return _Settings(requests=20_000, processes=PROCESSES, lifetime=10.0, lifetimes=3)


def _worker_environ(endpoint: Any) -> dict[str, str]:
    """Nothing but the endpoint for credentials (the STS endpoint stays, for the count)."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name
        not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    }
    environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    environ.update(endpoint.environ())
    return environ


# --- E1: answer time ----------------------------------------------------------------------


def _client(url: str, token: str, count: int) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    timings = []
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter()
        connection.request("GET", parts.path, headers={"Authorization": token})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the endpoint answered {response.status}")
        timings.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    timings.sort()
    return {
        "p50": statistics.median(timings),
        "p99": timings[int(len(timings) * 0.99)],
        "rps": count / elapsed,
    }


async def run_answer_time(context: Context) -> list[Row]:
    from aiobotocore.session import AioSession

    from aio_assume_role_lib import assume_role, serve_container_credentials

    count = _settings(context.config).requests
    child = await assume_role(AioSession(), f"arn:aws:iam::{ACCOUNT}:role/bench-E1")
    await (await child.get_credentials()).get_frozen_credentials()  # the fetch is not timed
    context.settle()
    # No rate bound here: this measures what the server can do.
    async with serve_container_credentials(child, requests_per_second=1e9) as endpoint:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            endpoint.url,
            endpoint.token,
            str(count),
            stdout=subprocess.PIPE,
        )
        out, _ = await process.communicate()
    result = json.loads(out)
    return [
        Row(
            "E1",
            ENDPOINT,
            f"{count:,} sequential requests, one keep-alive connection",
            result["rps"],
            median=result["p50"],
            p99=result["p99"],
        )
    ]


# --- E2: many processes -------------------------------------------------------------------

_WORKER_LOOP = """
import sys, time, botocore.session
credentials = botocore.session.get_session().get_credentials()
keys, errors = set(), 0
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        keys.add(credentials.get_frozen_credentials().access_key)
    except Exception as error:
        errors += 1
        print(type(error).__name__, str(error)[:300], file=sys.stderr)
    time.sleep(0.25)
print(len(keys), errors)
"""

_STATIC_RUN = """
import sys, botocore.session
sts = botocore.session.get_session().create_client("sts")
sts.assume_role(RoleArn=sys.argv[1], RoleSessionName="static")
"""


async def _run_endpoint_processes(context: Context, role: str, settings: _Settings) -> Row:
    from aiobotocore.session import AioSession

    from aio_assume_role_lib import assume_role, serve_container_credentials

    count, lifetime, lifetimes = settings.processes, settings.lifetime, settings.lifetimes
    child = await assume_role(AioSession(), role, RoleSessionName="bench")
    async with serve_container_credentials(child) as endpoint:
        environ = _worker_environ(endpoint)
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WORKER_LOOP,
                str(lifetime * lifetimes),
                env=environ,
                stdout=subprocess.PIPE,
            )
            for _ in range(count)
        ]
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
    errors, fewest_keys = 0, None
    for out, _ in outputs:
        keys_text, errors_text = out.decode().split()
        errors += int(errors_text)
        fewest_keys = min(int(keys_text), fewest_keys or int(keys_text))
    calls = [c for c in context.sts.assume_role_calls(role) if c.outcome == "ok"]
    return Row(
        "E2",
        ENDPOINT,
        f"{count} processes, {lifetimes} lifetimes of {lifetime:g} s",
        len(calls) / lifetimes,
        sts_calls=len(calls),
        failed=errors,
        extra={"fewest_keys": fewest_keys},
    )


async def _run_static_processes(context: Context, role: str, settings: _Settings) -> Row:
    count, lifetime, lifetimes = settings.processes, settings.lifetime, settings.lifetimes
    errors = 0
    for _ in range(lifetimes):
        started = time.monotonic()
        processes = []
        for _ in range(count):
            processes.append(
                await asyncio.create_subprocess_exec(sys.executable, "-c", _STATIC_RUN, role)
            )
            await asyncio.sleep(0.02)  # started one by one, as a supervisor would
        errors += sum(1 for code in await asyncio.gather(*(p.wait() for p in processes)) if code)
        await asyncio.sleep(max(0.0, lifetime - (time.monotonic() - started)))
    calls = [c for c in context.sts.assume_role_calls(role) if c.outcome == "ok"]
    return Row(
        "E2",
        STATIC,
        f"{count} processes, {lifetimes} lifetimes of {lifetime:g} s",
        len(calls) / lifetimes,
        sts_calls=len(calls),
        failed=errors,
    )


async def run_processes(context: Context) -> list[Row]:
    settings = _settings(context.config)
    context.sts.set_credential_lifetime(settings.lifetime)
    try:
        # One after the other: 2 x 50 interpreters at once would starve the endpoint's
        # event loop past botocore's 2-second timeout on a small machine.
        rows = []
        for key, run in ((ENDPOINT, _run_endpoint_processes), (STATIC, _run_static_processes)):
            role = f"arn:aws:iam::{ACCOUNT}:role/bench-E2-{key}"
            rows.append(await run(context, role, settings))
        return rows
    finally:
        context.reset_server()


ENDPOINT_SCENARIOS = [
    Scenario(
        "E1",
        "container-credentials endpoint answer time",
        "requests per second (p50 / p99 answer time)",
        "none (for reference): answered from memory",
        lambda row: row.headline is not None,
        run_answer_time,
        lambda c: f"{_settings(c).requests:,} requests from a client process",
    ),
    Scenario(
        "E2",
        f"{PROCESSES} processes on one container-credentials endpoint",
        "AssumeRole calls per credential lifetime",
        "1 per lifetime (vs one per process with static keys)",
        lambda row: row.headline is not None and row.headline <= 1.5 and not row.failed,
        run_processes,
        lambda c: (
            f"{_settings(c).processes} processes (sync botocore, default chain) asking for "
            f"credentials every 250 ms for {_settings(c).lifetimes} lifetimes of "
            f"{_settings(c).lifetime:g} s credentials"
        ),
    ),
]


def _cell(row: Row) -> str:
    if row.headline is None:
        return "n/a"
    if row.scenario == "E1":
        return (
            f"{row.headline:,.0f} req/s (p50 {(row.median or 0) * 1e3:.2f} ms, "
            f"p99 {(row.p99 or 0) * 1e3:.2f} ms)"
        )
    text = f"{row.headline:.1f} per lifetime ({row.sts_calls} calls)"
    return text + (f", {row.failed} failed" if row.failed else "")


def render_endpoint_section(measured: Measured, config: Config) -> list[str]:
    """The container-credentials section of docs/benchmarks.md (nothing if none ran)."""
    return comparison_section(
        measured,
        config,
        heading="Any process: the container-credentials endpoint",
        intro=(
            "`serve_container_credentials` / `aio-assume-role --container-credentials` (see "
            "the guide *Credentials for any process*)."
        ),
        scenarios=ENDPOINT_SCENARIOS,
        ours_header="this library",
        is_ours=lambda row: row.contender == ENDPOINT,
        label=lambda row: LABELS[row.contender],
        cell=_cell,
        no_target=("E1",),
    )


if __name__ == "__main__" and sys.argv[1:2] == ["--client"]:
    print(json.dumps(_client(sys.argv[2], sys.argv[3], int(sys.argv[4]))), flush=True)

"""Group R5 (issue 20): a parent whose own credentials come from a source, with
``stabilize(parent)`` beside aiobotocore's own refresh of it.

One scenario per kind of parent, each with the same two contenders:

* R5W: web identity (EKS IRSA): ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, the
  loopback STS answering ``AssumeRoleWithWebIdentity``;
* R5C: the container endpoint (ECS, EKS Pod Identity):
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN``;
* R5P: ``credential_process`` (a small Python script that fetches from the container
  endpoint, so that "the source is down" means the same thing);
* R5S: SSO: an ``sso_session`` profile and a cached login, the loopback server as the
  portal (``AWS_ENDPOINT_URL_SSO``, ``GetRoleCredentials``);
* R5I: instance metadata (EC2, IMDSv2): ``AWS_EC2_METADATA_SERVICE_ENDPOINT``. botocore
  moves the expiry of credentials it gets from instance metadata with under 17-25 minutes
  left to 17-25 minutes from now (it takes them for an outage's stale ones), so with these
  short lifetimes neither contender refreshes the parent before its real expiry: the
  scenario shows what each does once its credentials are rejected as expired.

Each run: a parent session made in that environment (stabilized or not) and one child of
it (``assume_role``, the same for both contenders), each with its client sending
GetCallerIdentity at a steady rate. Phase 1, one credential lifetime: the source calls
are counted. Phase 2: the source and STS answer every request with HTTP 500 until both
the parent's and the child's credentials have expired; requests made more than a second
before expiry that failed are counted. Phase 3: the source and STS are back; the seconds
until the parent's and the child's next successful request are the recovery time.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import botocore.credentials
import botocore.tokens
from aiobotocore.session import AioSession

from _scenarios import ACCOUNT, Config, Context, Row, Scenario
from _sections import Measured, comparison_section
from aio_assume_role_lib import assume_role, stabilize

STABILIZED = "stabilize"
LEGACY = "aiobotocore-refresh"
LABELS = {STABILIZED: "stabilize(parent)", LEGACY: "aiobotocore's own refresh"}
SOURCE_ACTION = {
    "R5W": "AssumeRoleWithWebIdentity",
    "R5C": "ContainerCredentials",
    "R5P": "ContainerCredentials",
    "R5S": "GetRoleCredentials",
    "R5I": "InstanceMetadata",
}
KINDS = {
    "R5W": "web identity",
    "R5C": "container endpoint",
    "R5P": "credential_process",
    "R5S": "SSO",
    "R5I": "instance metadata",
}
# "a web identity parent", "an SSO parent"
_A_KIND = {
    scenario: ("an " if scenario in ("R5S", "R5I") else "a ") + kind
    for scenario, kind in KINDS.items()
}
# An instance metadata fetch is three requests (a token, the role's name, its
# credentials); it is counted by its token request.
_IMDS_TOKEN_PATH = "/latest/api/token"


@dataclass(frozen=True)
class SourceSettings:
    lifetime: float  # seconds the source's and STS's credentials live
    rate: float  # requests per second, for the parent and for the child each
    past_expiry: float  # seconds the outage lasts past the later expiry
    request_timeout: float  # a request taking longer counts as failed
    recovery_cap: float  # seconds to wait for a success after the outage
    kinds: tuple[str, ...]


FULL = SourceSettings(lifetime=15.0, rate=20.0, past_expiry=1.0, request_timeout=5.0,
                      recovery_cap=15.0, kinds=("R5W", "R5C", "R5P", "R5S", "R5I"))  # fmt: skip
SMOKE = SourceSettings(lifetime=1.5, rate=10.0, past_expiry=0.2, request_timeout=0.5,
                       recovery_cap=1.0, kinds=("R5W", "R5S", "R5I"))  # fmt: skip


def _settings(config: Config) -> SourceSettings:
    return SMOKE if config.name == "smoke" else FULL


_PROCESS_SCRIPT = """\
import json, os, sys, urllib.request
request = urllib.request.Request(
    os.environ["R5_CONTAINER_URL"], headers={"Authorization": os.environ["R5_CONTAINER_TOKEN"]}
)
try:
    with urllib.request.urlopen(request, timeout=2) as response:
        body = json.load(response)
except Exception as error:
    sys.exit(f"container endpoint: {type(error).__name__}")
print(json.dumps({"Version": 1, "AccessKeyId": body["AccessKeyId"],
                  "SecretAccessKey": body["SecretAccessKey"], "SessionToken": body["Token"],
                  "Expiration": body["Expiration"]}))
"""


@contextlib.contextmanager
def _environment(ctx: Context, scenario: str, directory: Path) -> Iterator[None]:
    """The process environment of a parent of ``scenario``'s kind (restored after)."""
    token_file = directory / "token"
    token_file.write_text("benchmark-web-identity-token")
    web_identity, container = ctx.sts.source_environ(str(token_file))
    saved = dict(os.environ)
    saved_sso_cache = _sso_token_cache_dirs()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    if scenario == "R5W":
        os.environ.update(web_identity)
    elif scenario == "R5C":
        os.environ.update(container)
    elif scenario == "R5S":
        # botocore reads the login's token from ~/.aws/sso/cache, a path it computed when
        # imported: point it here, never at the developer's own.
        token_cache = directory / "sso-cache"
        _set_sso_token_cache_dirs((str(token_cache), str(token_cache)))
        os.environ.update(ctx.sts.sso_environ(str(directory / "sso-config"), str(token_cache)))
    elif scenario == "R5I":
        os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        os.environ.update(ctx.sts.instance_metadata_environ())
    else:
        script = directory / "credential_process.py"
        script.write_text(_PROCESS_SCRIPT)
        config = directory / "config"
        config.write_text(
            f"[profile r5]\nregion = us-east-1\ncredential_process = {sys.executable} -S {script}\n"
        )
        os.environ["AWS_CONFIG_FILE"] = str(config)
        os.environ["AWS_PROFILE"] = "r5"
        os.environ["R5_CONTAINER_URL"] = container["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        os.environ["R5_CONTAINER_TOKEN"] = container["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _set_sso_token_cache_dirs(saved_sso_cache)


def _sso_token_cache_dirs() -> tuple[str, str]:
    return (
        botocore.credentials.SSOProvider._SSO_TOKEN_CACHE_DIR,
        botocore.tokens.SSOTokenProvider._SSO_TOKEN_CACHE_DIR,
    )


def _set_sso_token_cache_dirs(directories: tuple[str, str]) -> None:
    botocore.credentials.SSOProvider._SSO_TOKEN_CACHE_DIR = directories[0]
    botocore.tokens.SSOTokenProvider._SSO_TOKEN_CACHE_DIR = directories[1]


def _source_fetches(ctx: Context, scenario: str) -> list[Any]:
    """The source's fetches so far (one request each, but for instance metadata's three)."""
    if scenario == "R5I":
        return ctx.sts.calls_of(SOURCE_ACTION[scenario], None, _IMDS_TOKEN_PATH)
    return ctx.sts.calls_of(SOURCE_ACTION[scenario])


@dataclass
class _Request:
    who: str  # "parent" or "child"
    started: float  # time.time()
    ok: bool


async def _traffic(
    client: Any,
    who: str,
    rate: float,
    until: float,
    log: list[_Request],
    stop_when_ok: bool,
    request_timeout: float,
) -> None:
    interval = 1.0 / rate
    while time.time() < until:
        started = time.time()
        try:
            with anyio.fail_after(request_timeout):
                await client.get_caller_identity()
        except Exception:
            log.append(_Request(who, started, False))
        else:
            log.append(_Request(who, started, True))
            if stop_when_ok:
                return
        await anyio.sleep(max(interval - (time.time() - started), 0.0))


async def _both(
    parent_client: Any,
    child_client: Any,
    rate: float,
    until: float,
    request_timeout: float,
    stop_when_ok: bool = False,
) -> list[_Request]:
    log: list[_Request] = []
    async with anyio.create_task_group() as group:
        for who, client in (("parent", parent_client), ("child", child_client)):
            group.start_soon(_traffic, client, who, rate, until, log, stop_when_ok, request_timeout)
    return log


async def _run_one(ctx: Context, scenario: str, contender: str) -> Row:
    settings = _settings(ctx.config)
    action = SOURCE_ACTION[scenario]
    role = f"arn:aws:iam::{ACCOUNT}:role/bench-{scenario}-{contender}"
    ctx.sts.clear_faults()
    ctx.sts.set_credential_lifetime(settings.lifetime)
    with (
        tempfile.TemporaryDirectory(prefix="aio-arl-r5-") as directory,
        _environment(ctx, scenario, Path(directory)),
    ):
        parent = AioSession()
        if contender == STABILIZED:
            stabilize(parent)
        # Before the child: assume_role resolves the parent, and a container or process
        # parent fetches then.
        source_before = len(_source_fetches(ctx, scenario))
        child = await assume_role(parent, role)
        async with (
            parent.create_client("sts") as parent_client,
            child.create_client("sts") as child_client,
        ):
            # Phase 1: steady traffic for one lifetime.
            steady_from = time.time()
            steady = await _both(
                parent_client,
                child_client,
                settings.rate,
                steady_from + settings.lifetime,
                settings.request_timeout,
            )
            steady_seconds = time.time() - steady_from
            # The first fetch (both contenders make one) is not a refresh.
            source_calls = max(len(_source_fetches(ctx, scenario)) - source_before - 1, 0)
            # Phase 2: the source and STS down until both credentials have expired.
            outage_from = time.time()
            issued = [c for c in ctx.sts.calls_of(action) if c.expiration]
            issued_child = [c for c in ctx.sts.calls_of("AssumeRole", role) if c.expiration]
            parent_expiry = max(c.expiration or 0.0 for c in issued) if issued else 0.0
            child_expiry = max(c.expiration or 0.0 for c in issued_child) if issued_child else 0.0
            ctx.sts.fail_next("5xx", 100_000, action=action)
            ctx.sts.fail_next("5xx", 100_000)
            outage_until = max(parent_expiry, child_expiry, outage_from) + settings.past_expiry
            outage = await _both(
                parent_client,
                child_client,
                settings.rate,
                outage_until,
                settings.request_timeout,
            )
            # Phase 3: back; until each has succeeded once.
            ctx.sts.clear_faults()
            back = time.time()
            recovery = await _both(
                parent_client,
                child_client,
                settings.rate * 5,
                back + settings.recovery_cap,
                settings.request_timeout,
                stop_when_ok=True,
            )
    # A failed request counts when credentials the source (or STS, for the child) had
    # issued before it were valid for more than a second after it was made: in R5I, where
    # neither contender refreshes before the parent's real expiry, requests rejected
    # after it (ExpiredToken) are not failures "while valid".
    credentials = {"parent": issued, "child": issued_child}
    failed_while_valid = sum(
        1
        for r in steady + outage
        if not r.ok
        and any(c.time <= r.started < (c.expiration or 0.0) - 1.0 for c in credentials[r.who])
    )
    recovered: dict[str, float | None] = {}
    for who in ("parent", "child"):
        firsts = [r.started - back for r in recovery if r.who == who and r.ok]
        recovered[who] = min(firsts) if firsts else None
    lifetimes = steady_seconds / settings.lifetime
    requests = len(steady) + len(outage) + len(recovery)
    return Row(
        scenario,
        contender,
        f"{requests:,} requests ({len(steady):,} steady, {len(outage):,} in the outage)",
        headline=float(failed_while_valid),
        sts_calls=source_calls,
        failed=failed_while_valid,
        extra={
            "source_per_lifetime": (source_calls / lifetimes) if lifetimes else None,
            "recovery_parent": recovered["parent"],
            "recovery_child": recovered["child"],
            "outage_source_calls": len(
                [c for c in _source_fetches(ctx, scenario) if outage_from <= c.time < back]
            ),
        },
    )


def _runner(scenario: str) -> Any:
    async def run(ctx: Context) -> list[Row]:
        if scenario not in _settings(ctx.config).kinds:
            return []
        rows = []
        try:
            for contender in (STABILIZED, LEGACY):
                ctx.settle()
                rows.append(await _run_one(ctx, scenario, contender))
        finally:
            ctx.sts.clear_faults()
            ctx.reset_server()
        return rows

    return run


def _met(row: Row) -> bool:
    extra = row.extra
    recovered = [extra.get("recovery_parent"), extra.get("recovery_child")]
    return (
        row.failed == 0
        and (extra.get("source_per_lifetime") or 0) <= 1.0
        and all(seconds is not None and seconds <= 5.0 for seconds in recovered)
    )


def _workload(scenario: str) -> Any:
    def text(config: Config) -> str:
        settings = _settings(config)
        return (
            f"{_A_KIND[scenario]} parent and one child of it, {settings.lifetime:g} s "
            f"credentials (source and AssumeRole), GetCallerIdentity at {settings.rate:g} "
            f"req/s each: one lifetime of steady traffic (source calls counted after the first fetch), then the source and STS answer "
            f"HTTP 500 until {settings.past_expiry:g} s past the later expiry, then are "
            f"back (recovery watched for {settings.recovery_cap:g} s); a request that takes "
            f"over {settings.request_timeout:g} s counts as failed; failed requests "
            "counted when made more than 1 s before the expiry of credentials issued "
            "before them; "
            "default RefreshPolicy"
        )

    return text


SOURCE_SCENARIOS = [
    Scenario(
        scenario,
        f"{_A_KIND[scenario]} parent: its source and STS down into expiry",
        "source calls per lifetime; failed requests while valid; seconds to recovery",
        "<= 1 source call per lifetime, 0 failed while valid, <= 5 s recovery",
        _met,
        _runner(scenario),
        _workload(scenario),
    )
    for scenario in ("R5W", "R5C", "R5P", "R5S", "R5I")
]


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f} s"


def _cell(row: Row) -> str:
    extra = row.extra
    per_lifetime = extra.get("source_per_lifetime")
    return (
        f"{per_lifetime:,.1f} source calls per lifetime; {row.failed:,} failed while valid; "
        f"recovery parent {_seconds(extra.get('recovery_parent'))}, "
        f"child {_seconds(extra.get('recovery_child'))}; "
        f"{extra.get('outage_source_calls', 0):,} source calls in the outage"
    )


def render_source_section(measured: Measured, config: Config) -> list[str]:
    """The R5 section of docs/benchmarks.md (nothing if no R5 scenario ran)."""
    return comparison_section(
        measured,
        config,
        heading="R5: parents on their own sources (`stabilize`)",
        intro=(
            "A parent whose credentials come from web identity, the container endpoint, "
            "`credential_process`, SSO or instance metadata, made stable with "
            "`stabilize(parent)`, beside the same parent left to aiobotocore's own refresh. "
            "Children are made with `assume_role` in both. botocore moves the expiry of "
            "instance metadata credentials with under 17-25 minutes left to 17-25 minutes "
            "from now, so in R5I neither contender refreshes the parent before its real "
            "expiry."
        ),
        scenarios=SOURCE_SCENARIOS,
        ours_header=LABELS[STABILIZED],
        is_ours=lambda row: row.contender == STABILIZED,
        label=lambda row: LABELS[row.contender],
        cell=_cell,
    )

"""The markdown page and the charts, made from the measured rows only.

A full run measures every scenario on both supported stacks, one after the other: S1
(aiobotocore 3.x, what ``pip install aio-assume-role-lib`` gets) and S2 (aioboto3 15.5.0
with aiobotocore 2.25.1). The headline figures are S1's; S2's stand beside them. One chart
per group of scenarios (``benchmarks-<group>.png``), drawn to be read at a page width of
about 800 pixels: horizontal bars, one pair (S1, S2) per contender, every bar labelled
with its value, the target a labelled line, and no legend inside a plot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from _contenders import LABELS, ORDER, SHORT_LABELS, THIS
from _endpoint_scenarios import render_endpoint_section
from _pool_scenarios import render_pool_section
from _process_scenarios import render_process_section
from _scenarios import SCENARIOS as _S_SCENARIOS
from _scenarios import Config, Row, Scenario
from _sections import Measured
from _source_scenarios import render_source_section
from _stability_scenarios import STABILITY_SCENARIOS, format_stability
from _tenant_scenarios import TENANT_SCENARIOS, render_tenant_section

# The scenarios with a row per contender: the summary table, the details, the charts.
SCENARIOS = _S_SCENARIOS + STABILITY_SCENARIOS

NOT_APPLICABLE = "n/a"
HEADLINE_STACK = "S1"
STACKS = ("S1", "S2")
STACK_COLORS = {"S1": "#1f5f8b", "S2": "#8cbfe3"}

# Cells that do not apply, and why (the footnote marks are fixed, so the text can cite them).
FOOTNOTES = {
    "a": "no requests are made in this micro-benchmark, so there is nothing to fail.",
    "b": "not measured: a ticker task would disturb a timing of microseconds.",
}
NA_FAILED = {"S3", "S4", "S8"}
NA_LAG = {"S3", "S4", "S8"}


# --- one stack's rows, and the runs that measured them ---------------------------------------


@dataclass
class Measurement:
    """One run of benchmarks/run.py on one stack: when, on what, and which scenarios."""

    started: str  # when the run began (both stacks' share it), UTC: "2026-05-03 14:02"
    commit: str  # the checkout's commit, "+ changes" if src/ or benchmarks/ differed
    command: str
    mode: str  # "full" or "smoke"
    description: str  # the stack's packages, e.g. "aiobotocore 3.10.0"
    environment: list[str]
    runtime: float  # seconds
    scenarios: list[str]  # the ids this run measured whose rows are kept


@dataclass
class StackRun:
    """Every row kept for one stack, and the runs that measured them (oldest first).

    Saved beside the page (``benchmarks-rows/s1.json``, ``s2.json``), so that a partial
    run (``--only``) replaces the rows of the scenarios it ran and keeps the others.
    """

    stack: str  # "S1" or "S2"
    measurements: list[Measurement]
    rows: list[Row]

    @property
    def description(self) -> str:
        return self.measurements[-1].description

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackRun:
        data = json.loads(text)
        rows = [Row(**row) for row in data["rows"]]
        if "measurements" not in data:  # written before partial runs: one run, no date
            data["measurements"] = [
                {
                    "started": "unknown",
                    "commit": "unknown",
                    "command": "python3 dev.py bench",
                    "mode": "full",
                    "description": data["description"],
                    "environment": data["environment"],
                    "runtime": data["runtime"],
                    "scenarios": sorted({row.scenario for row in rows}),
                }
            ]
        measurements = [Measurement(**item) for item in data["measurements"]]
        return cls(data["stack"], measurements, rows)

    def merged(self, newer: StackRun, order: list[str]) -> StackRun:
        """These rows with ``newer``'s in place of every scenario it measured.

        ``order`` lists the scenario ids that exist, in the page's order: rows of any
        other id (a scenario renamed or removed since) are dropped.
        """
        if newer.stack != self.stack:
            raise ValueError(f"rows of stack {newer.stack} cannot replace {self.stack}'s")
        modes = {m.mode for m in self.measurements + newer.measurements}
        if len(modes) > 1:
            raise ValueError(
                f"stack {self.stack}: rows of a {' and a '.join(sorted(modes))} run cannot "
                "share a page (write the smoke run elsewhere with --out)"
            )
        replaced = {scenario for m in newer.measurements for scenario in m.scenarios}
        known = set(order)
        rows = [r for r in self.rows if r.scenario not in replaced and r.scenario in known]
        rows += [r for r in newer.rows if r.scenario in known]
        rank = {scenario: index for index, scenario in enumerate(order)}
        rows.sort(key=lambda row: rank[row.scenario])
        # Each run claims the scenarios whose rows it gave to the page; a run that gave
        # none (replaced since, or a scenario skipped on this stack) is not listed.
        on_page = {row.scenario for row in rows}
        claims = [(m, [s for s in m.scenarios if s not in replaced]) for m in self.measurements]
        claims += [(m, m.scenarios) for m in newer.measurements]
        measurements = [
            Measurement(**{**asdict(m), "scenarios": [s for s in scenarios if s in on_page]})
            for m, scenarios in claims
            if any(s in on_page for s in scenarios)
        ]
        return StackRun(self.stack, measurements, rows)


def provenance(runs: list[StackRun]) -> Callable[[Sequence[str]], str | None]:
    """Which run measured some scenarios, for a page whose rows come from several runs.

    None when all the rows come from one run (the page's header says which). The stacks
    of one run share its start time.
    """
    if len({m.started for run in runs for m in run.measurements}) == 1:
        return lambda ids: None

    def which(ids: Sequence[str]) -> str | None:
        parts = []
        for run in runs:
            dates = []
            for m in run.measurements:
                covered = [scenario for scenario in ids if scenario in m.scenarios]
                if covered:
                    only = "" if len(covered) == len(ids) else f"{', '.join(covered)} on "
                    dates.append(f"{only}{m.started} UTC")
            if dates:
                parts.append(f"{run.stack}: {', '.join(dates)}")
        return "; ".join(parts) + " (the runs at the top of the page, with their packages)"

    return which


def measured(runs: list[StackRun]) -> Measured:
    return Measured([(run.stack, run.rows) for run in runs], provenance(runs))


def this_stack() -> tuple[str, str]:
    """``(stack id, description)`` of the interpreter running this."""
    aiobotocore = version("aiobotocore")
    if int(aiobotocore.split(".")[0]) >= 3:
        return "S1", f"aiobotocore {aiobotocore}"
    try:
        aioboto3 = f"aioboto3 {version('aioboto3')}, "
    except PackageNotFoundError:
        aioboto3 = ""
    return "S2", f"{aioboto3}aiobotocore {aiobotocore}"


# --- figures as text ------------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return NOT_APPLICABLE
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1e-3:
        text = f"{seconds * 1e6:.2f} µs" if seconds < 1e-5 else f"{seconds * 1e6:.1f} µs"
    elif seconds < 1:
        text = f"{seconds * 1e3:.2f} ms" if seconds < 1e-2 else f"{seconds * 1e3:.1f} ms"
    else:
        text = f"{seconds:.2f} s"
    return sign + text


def _signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "") + format_seconds(seconds)


def _plural(count: float, word: str) -> str:
    return f"{count:,.0f} {word}" + ("" if count == 1 else "s")


def format_headline(scenario: str, row: Row) -> str:
    value = row.headline
    if value is None:
        return NOT_APPLICABLE
    failed = f", {row.failed:,} failed" if row.failed else ""
    if scenario == "S1":
        return _plural(value, "call") + failed
    if scenario == "S2":
        # What ran, not an extrapolation to the tasks offered.
        tasks = row.extra.get("tasks") or 0
        text = f"{_plural(value, 'call')} for {_plural(tasks, 'task')}"
        if "time bound" in row.workload:
            text += " (time bound)"
        return text + failed
    if scenario == "S5":
        worst = row.extra.get("worst_excess")
        return _signed(value) + (f" (worst {_signed(worst)})" if worst is not None else "")
    if scenario == "S6":
        return f"{value:.2f} per lifetime" + failed
    if scenario == "S7":
        return f"{_plural(value, 'attempt')}, {row.failed or 0:,} failed"
    stability = format_stability(scenario, row)
    if stability is not None:
        return stability
    if scenario in {"S3", "S8"}:
        return format_seconds(value)
    if scenario == "S4":
        return f"{value:.2f}x"
    return f"{value:,.4g}" + failed


# --- the page -------------------------------------------------------------------------------


def _tables(runs: list[StackRun]) -> dict[str, dict[str, dict[str, Row]]]:
    """scenario -> stack -> contender -> row."""
    table: dict[str, dict[str, dict[str, Row]]] = {}
    for run in runs:
        for row in run.rows:
            table.setdefault(row.scenario, {}).setdefault(run.stack, {})[row.contender] = row
    return table


def met(scenario: Scenario, ours: Row | None) -> bool | None:
    return None if ours is None else scenario.met(ours)


def _verdict(scenario: Scenario, ours: Row | None) -> str:
    verdict = met(scenario, ours)
    return NOT_APPLICABLE if verdict is None else ("met" if verdict else "**not met**")


def chart_file(group: str) -> str:
    return f"benchmarks-{group}.png"


def render_markdown(runs: list[StackRun], config: Config, *, charts: list[tuple[str, str]]) -> str:
    """The page; ``charts`` are ``(file name, caption)`` in the order to show them."""
    table = _tables(runs)
    stacks = [run.stack for run in runs]
    ran = [scenario for scenario in SCENARIOS if scenario.id in table]
    when = provenance(runs)
    out: list[str] = ["# Benchmarks\n"]
    out.append(
        f"Measured by `benchmarks/run.py` ({config.name} mode); every figure below is what "
        "the runs listed here measured (this file is generated, never edited by hand). "
        "Their rows are kept in `docs/benchmarks-rows/`: `python3 dev.py bench --only T3` "
        "(scenario ids or groups) measures some scenarios again on both stacks and "
        "rewrites the page with the other rows kept.\n"
    )
    for run in runs:
        for m in run.measurements:
            entry = (
                f"- stack {run.stack} ({m.description}), {m.started} UTC, commit {m.commit}, "
                f"`{m.command}`, run time {m.runtime:,.0f} s: " + "; ".join(m.environment)
            )
            if len(run.measurements) > 1:
                entry += f"; measured: {', '.join(m.scenarios)}"
            out.append(entry)
    out.append(
        "- stacks: S1 is what `pip install aio-assume-role-lib` gets (aiobotocore 3.x); S2 "
        "is aioboto3 15.5.0 with the aiobotocore 2.25.1 it pins. The headline figures are "
        "S1's. aioboto3-assume needs aioboto3, which does not install beside aiobotocore "
        "3.x, so it runs on S2 only."
    )
    out.append(
        "- STS: `aio_assume_role_lib.testing.LoopbackSTS` on 127.0.0.1, run in a child "
        "process (real STS is another machine; in a thread it would share the interpreter "
        "lock with the code being measured). Every request to it (AssumeRole, and "
        f'GetCallerIdentity as "the AWS API call") waits {config.sts_latency * 1000:g} ms '
        "unless a scenario says otherwise. All contenders run one after another in one "
        "event loop, against the same server."
    )
    out.append(
        "- time compression (S6, S7, and R1 at its own scale, stated in its row): every "
        f"duration is divided by {config.time_scale:g}: the lifetime STS gives credentials "
        f"(900 s -> {900 / config.time_scale:g} s), this library's RefreshPolicy windows, "
        "back-off, retry pause and error memory (passed scaled through `refresh=`; the "
        "advisory window is pinned to the 5 min the AWS tiers give 900 s credentials, "
        "scaled, because left to the tiers a 9 s lifetime falls under the short-lifetime "
        "cap instead; blocking window 1 min, scaled), botocore's refresh windows "
        "(15/10 min) and botocore's retry back-off (both patched for the duration of the "
        "scenario, so that the anchors live in the same compressed world). Not scaled: "
        "request rates, STS latency, the CPU cost of a call, and the per-call deadlines, "
        "which bound one network call rather than space calls out."
    )
    out.append("")
    out.append("## Summary\n")
    summary_when = when([scenario.id for scenario in ran])
    if summary_when:
        out.append(f"Measured: {summary_when}.\n")
    out.append(
        "The headline figure of each scenario; met / not met is computed from this "
        f"library's measurement. Anchors: {HEADLINE_STACK} figure, then S2's.\n"
    )
    anchors = [key for key in ORDER if key != THIS]
    header = ["scenario", "target"]
    for stack in stacks:
        header += [f"this library, {stack}", "met?"]
    header += [f"{SHORT_LABELS[key]} ({' / '.join(stacks)})" for key in anchors]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for scenario in ran:
        by_stack = table[scenario.id]
        line = [f"{scenario.id} {scenario.title}", scenario.target]
        for stack in stacks:
            ours = by_stack.get(stack, {}).get(THIS)
            line += [
                format_headline(scenario.id, ours) if ours else NOT_APPLICABLE,
                _verdict(scenario, ours),
            ]
        for key in anchors:
            cells = []
            for stack in stacks:
                row = by_stack.get(stack, {}).get(key)
                cells.append(format_headline(scenario.id, row) if row else NOT_APPLICABLE)
            line.append(" / ".join(cells))
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    out.append("## Charts\n")
    out.append(
        "Each bar is one contender on one stack (dark: S1, light: S2), labelled with its "
        "value; the dashed line is the target. No bar, and the label *not run*, where a "
        "contender does not run on that stack. A line (T4) follows one figure through a "
        "run, one line per stack. The sections of the other groups are tables below.\n"
    )
    for file_name, caption in charts:
        out.append(f"![{caption}]({file_name})\n")
    out.append("## Details\n")
    header = [
        "scenario",
        "stack",
        "contender",
        "workload as run",
        "STS calls",
        "failed requests",
        "median",
        "p99",
        "max loop lag",
        "headline",
    ]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    notes: list[str] = []
    for scenario in ran:
        for stack in stacks:
            contenders = table[scenario.id].get(stack, {})
            for key in ORDER:
                row = contenders.get(key)
                if row is None:
                    continue
                failed = (
                    f"{NOT_APPLICABLE} (a)"
                    if scenario.id in NA_FAILED
                    else (NOT_APPLICABLE if row.failed is None else f"{row.failed:,}")
                )
                lag = (
                    f"{NOT_APPLICABLE} (b)"
                    if scenario.id in NA_LAG
                    else format_seconds(row.max_lag)
                )
                workload = row.workload
                if row.extra.get("parent_median") is not None:
                    parent = format_seconds(row.extra["parent_median"])
                    workload += f"; parent client median {parent}"
                if row.extra.get("baseline_median") is not None:
                    workload += (
                        f"; max lag without a refresh {format_seconds(row.extra['baseline_median'])}"
                        f", with {format_seconds(row.extra['with_refresh_median'])} (medians)"
                    )
                out.append(
                    "| "
                    + " | ".join(
                        [
                            scenario.id,
                            stack,
                            SHORT_LABELS[key],
                            workload,
                            "" if row.sts_calls is None else f"{row.sts_calls:,}",
                            failed,
                            format_seconds(row.median),
                            format_seconds(row.p99),
                            lag,
                            format_headline(scenario.id, row),
                        ]
                    )
                    + " |"
                )
                notes += [f"{scenario.id}, {stack}, {SHORT_LABELS[key]}: {n}" for n in row.notes]
    out.append("")
    out.append("Columns: *STS calls* are the AssumeRole requests the loopback server received")
    out.append("for the scenario's role; *failed requests* are requests that raised, timed out,")
    out.append("were rejected by STS, or got credentials already past the expiry STS issued")
    out.append("them with (checked against the server's records); latencies are per task or")
    out.append("request (S6, S7: from the moment the request was due, so queueing behind a")
    out.append("blocked event loop counts); *max loop lag* is the latest a 1 ms ticker woke up.")
    out.append("R1: *failed requests* are those while the credentials were valid (requests")
    out.append("after the expiry, during the outage, are not counted there); R2: callers that")
    out.append("gave up; R4: parents whose first fetch raised.")
    out.append("")
    page = measured(runs)
    for render in (
        render_source_section,
        render_pool_section,
        render_process_section,
        render_endpoint_section,
        render_tenant_section,
    ):
        out.extend(render(page, config))
    out.append("## Workloads\n")
    out.append(
        f"Bounds: a batch of tasks is cut off {config.finish_within:g} s after it starts, a "
        f"traffic run waits at most {config.traffic_grace:g} s for its last requests, and a "
        f"scenario still running after {config.scenario_timeout:g} s aborts the run.\n"
    )
    for scenario in ran:
        out.append(f"- **{scenario.id}** ({scenario.metric}): {scenario.workload(config)}.")
    out.append("")
    out.append("## How each contender is used\n")
    out.append(
        f"- **{LABELS[THIS]}**: `await assume_role(parent, arn)` on a warm `AioSession`, per "
        "task or request (S1, S5, S8: once, then its shared credentials object)."
    )
    out.append(
        "- **aws-assume-role-lib 2.10.0, in loop** / **to_thread**: "
        "`assume_role(boto3.Session(), arn)` per request, then "
        "`get_credentials().get_frozen_credentials()` and, as the AWS call, "
        "`child.client('sts').get_caller_identity()`; either directly in the event loop or "
        "in `asyncio.to_thread` (default thread pool). S1, S5 and S8 use one child session."
    )
    out.append(
        "- **aiobotocore's AssumeRoleProvider**: a profile with `role_arn` and "
        "`source_profile` in a temporary AWS config file, used through "
        "`AioSession(profile=...)`: a new session per request in S2-S4 (S3 times "
        "`AioSession(profile=...)`, its way of getting a role session), one long-lived "
        "session and client in S1 and S5-S8 (a session per request would cap it at a few "
        "requests per second). R1-R3 use each contender the way S6 does (R1 without the "
        "API call); R4 makes a new parent per iteration: `AioSession()` for this library "
        "and the aiobotocore provider (the profile session), `boto3.Session()` for the "
        "sync library, `aioboto3.Session()` for aioboto3-assume, all sharing one botocore "
        "data loader."
    )
    out.append(
        "- **aioboto3-assume 0.1.2** (S2 only): `aioboto3_assume.assume_role("
        "aioboto3.Session(), {RoleArn, RoleSessionName})`, used like the aiobotocore "
        "provider. It keeps the expiry with whole-second precision; with compressed "
        "lifetimes (S6, S7, R1) that rounding weighs 100 times more than with real ones, and its "
        "credentials can look up to 1 s older than they are (its `RuntimeError`s in the "
        'footnotes, if any: "refreshed credentials are still expired").'
    )
    out.append(
        "- Anchors that make one STS call per request (S2, and the sync library in S6 and "
        "S7) cannot keep up with the offered load; the workload column says how much of it "
        "they ran, the figures are for what ran (never extrapolated to the load offered), "
        "and latencies from the due time include their queueing. Requests still running "
        'when a run\'s grace period ends count as failed ("unfinished").'
    )
    out.append("")
    out.append("## Footnotes\n")
    out.extend(f"- ({mark}) {text}" for mark, text in FOOTNOTES.items())
    out.extend(f"- {note}" for note in notes)
    out.append("")
    return "\n".join(out)


# --- the charts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """One scenario's bars: what to plot, in which unit, against which target."""

    scenario: str
    title: str  # what the bars measure, with the unit
    value: Callable[[Row], float | None]
    unit: float = 1.0  # the value is divided by this before plotting
    target: Callable[[Row | None], float | None] = lambda ours: None
    label: Callable[[Row], str] | None = None  # default: the plotted value
    samples: Callable[[Row], list[tuple[float, float]]] | None = None
    """Instead of bars: a line per stack through these ``(x, value)`` points."""


def _headline(row: Row) -> float | None:
    return row.headline


def _failed(row: Row) -> float | None:
    return None if row.failed is None else float(row.failed)


def _calls_per_task(row: Row) -> float | None:
    value = row.extra.get("calls_per_task")
    return None if value is None else float(value)


def _s2_label(row: Row) -> str:
    tasks = row.extra.get("tasks") or 0
    return f"{_plural(row.headline or 0, 'call')} / {_plural(tasks, 'task')}"


def _s2_target(ours: Row | None) -> float | None:
    tasks = ours.extra.get("tasks") if ours is not None else None
    return 1 / tasks if tasks else None  # one call for all the tasks


def _worst_excess(row: Row) -> float | None:
    value = row.extra.get("worst_excess")
    return None if value is None else float(value)


def _extra(row: Row, name: str) -> float | None:
    value = row.extra.get(name)
    return None if value is None else float(value)


def _rss_growth(row: Row) -> float | None:
    if "rss_after" not in row.extra:
        return None
    return float(row.extra["rss_after"] - row.extra["rss_before"])


def _calls_per_tenant(row: Row) -> float | None:
    tenants = row.extra.get("tenants")
    return None if row.headline is None or not tenants else row.headline / tenants


def _t1_label(row: Row) -> str:
    return f"{row.headline or 0:,.0f} calls / {row.extra.get('tenants', 0):,} tenants"


def _fixed(value: float) -> Callable[[Row | None], float | None]:
    return lambda ours: value


PANELS: dict[str, list[Panel]] = {
    "S1": [Panel("S1", "AssumeRole calls", _headline, target=_fixed(1))],
    "S2": [
        Panel(
            "S2",
            "AssumeRole calls per task (as run)",
            _calls_per_task,
            target=_s2_target,
            label=_s2_label,
        )
    ],
    "S3": [Panel("S3", "median per call (µs)", _headline, 1e-6, _fixed(2e-6))],
    "S4": [Panel("S4", "child / parent create_client time", _headline, target=_fixed(1.2))],
    "S5": [
        Panel("S5", "loop lag the refresh adds, median (ms)", _headline, 1e-3, _fixed(5e-3)),
        Panel("S5", "loop lag the refresh adds, worst (ms)", _worst_excess, 1e-3),
    ],
    "S6": [
        Panel("S6", "AssumeRole calls per credential lifetime", _headline, target=_fixed(1)),
        Panel("S6", "failed requests", _failed, target=_fixed(0)),
    ],
    "S7": [
        Panel("S7", "AssumeRole attempts during the outage", _headline, target=_fixed(10)),
        Panel("S7", "failed requests", _failed, target=_fixed(0)),
    ],
    "S8": [Panel("S8", "median per call (µs)", _headline, 1e-6, _fixed(2e-6))],
    "R1": [
        Panel("R1", "failed requests while the credentials were valid", _headline, 1.0, _fixed(0)),
        Panel(
            "R1",
            "seconds from STS recovery to fresh credentials (scenario time)",
            lambda row: _extra(row, "recovery_seconds"),
            target=_fixed(5),
        ),
        Panel("R1", "STS attempts during the outage", lambda row: _extra(row, "outage_attempts")),
    ],
    "R2": [
        Panel("R2", "seconds until the caller succeeds (median)", _headline),
        Panel(
            "R2",
            "seconds until the caller succeeds (worst run)",
            lambda row: _extra(row, "worst"),
            target=_fixed(5.5),
        ),
    ],
    "R3": [Panel("R3", "failed requests", _headline, 1.0, _fixed(0))],
    "R4": [
        Panel("R4", "objects left per parent (second half)", _headline, 1.0, _fixed(1)),
        Panel("R4", "RSS growth (MiB)", _rss_growth, 2**20),
    ],
    "T1": [
        Panel(
            "T1",
            "AssumeRole calls per tenant, 3 rounds",
            _calls_per_tenant,
            target=_fixed(1),
            label=_t1_label,
        ),
        Panel(
            "T1",
            "CPU per new tenant beyond its STS round trip (ms)",
            lambda row: _extra(row, "new_cpu_beyond_sts"),
            1e-3,
            _fixed(3e-3),
        ),
        Panel(
            "T1",
            "CPU per known tenant (µs)",
            lambda row: _extra(row, "known_cpu"),
            1e-6,
            _fixed(100e-6),
        ),
    ],
    "T2": [Panel("T2", "tracemalloc per cached tenant (KiB)", _headline, 1024, _fixed(32 * 1024))],
    "T4": [
        Panel(
            "T4",
            "traced memory (MiB) by tenants streamed so far",
            _headline,
            2**20,
            samples=lambda row: [(tenants, traced) for tenants, traced, _ in row.extra["samples"]],
        )
    ],
}

# (file suffix, chart title, scenarios); scenarios not listed get a chart of their own.
GROUPS: list[tuple[str, str, list[str]]] = [
    ("calls", "STS calls (fewer is better)", ["S1", "S2"]),
    ("steady", "Steady traffic and an STS outage", ["S6", "S7"]),
    ("speed", "Time per call (less is better)", ["S3", "S8", "S4"]),
    ("loop-lag", "Event-loop lag while STS takes 200 ms to answer", ["S5"]),
    ("stability", "STS outages and errors", ["R1", "R2", "R3"]),
    ("memory", "Parents made, used and dropped", ["R4"]),
    ("tenants", "Many tenants on one parent", [s.id for s in TENANT_SCENARIOS]),
]

# How the charts name contenders outside the S and R1-R4 scenarios (group T's; a T2
# contender is "mode@tenants").
TENANT_NAMES = {
    "library": "this library",
    "before": "before issue 21",
    "dict": "dict of children",
    "aioboto3-assume": "aioboto3-assume",
    "pool-client": "ClientPool.client",
    "per-request": "a client per request",
    "floor": "the call alone",
}


def _default_panels(scenario_id: str, by_stack: dict[str, dict[str, Row]]) -> list[Panel]:
    """A scenario without panels of its own: its headline, and failed requests if counted."""
    panels = [Panel(scenario_id, "headline figure", _headline)]
    if any(row.failed is not None for rows in by_stack.values() for row in rows.values()):
        panels.append(Panel(scenario_id, "failed requests", _failed, target=_fixed(0)))
    return panels


def _contender_name(key: str) -> str:
    if key in SHORT_LABELS:
        return SHORT_LABELS[key]
    mode, _, tenants = key.partition("@")
    name = TENANT_NAMES.get(mode, mode)
    return f"{name}, {int(tenants):,} tenants" if tenants.isdigit() else name


def _contender_order(keys: set[str]) -> list[str]:
    """The S and R1-R4 contenders in their order, the others as group T lists them."""
    known = [key for key in ORDER if key in keys]
    rank = {mode: index for index, mode in enumerate(TENANT_NAMES)}

    def place(key: str) -> tuple[int, int, str]:
        mode, _, tenants = key.partition("@")
        return (rank.get(mode, len(rank)), int(tenants) if tenants.isdigit() else 0, key)

    return known + sorted(keys - set(known), key=place)


def _short_title(scenario_id: str) -> str:
    titles = {scenario.id: scenario.title for scenario in (*SCENARIOS, *TENANT_SCENARIOS)}
    return f"{scenario_id}: {titles.get(scenario_id, '')}".replace("`", "")


def _format_value(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _draw_panel(
    axis: Any,
    title: str,
    values: dict[str, dict[str, float | None]],  # contender -> stack -> value
    labels: dict[str, dict[str, str]],
    stacks: list[str],
    target: float | None,
) -> None:
    contenders = _contender_order(set(values))
    bar_height = 0.8 / len(stacks)
    plotted = [v for key in contenders for v in values[key].values() if v is not None and v > 0]
    # Log scale when the bars differ by more than 50x (every label still readable).
    log = bool(plotted) and max(plotted) / min(plotted) > 50
    top = max(plotted + ([target] if target else []), default=1.0)
    if log:
        low = min(plotted + ([target] if target else [])) / 3
        axis.set_xscale("log")
        axis.set_xlim(low, top * 60)  # room for the labels right of the bars
    else:
        low = 0.0
        axis.set_xlim(0, top * 1.45 if top > 0 else 1)
    for row_index, key in enumerate(contenders):
        for stack_index, stack in enumerate(stacks):
            y = row_index + (stack_index - (len(stacks) - 1) / 2) * bar_height
            value = values[key].get(stack)
            if value is None:
                axis.text(low, y, "  not run", va="center", fontsize=8, color="#777777")
                continue
            width = max(value, low) if log else value
            axis.barh(y, width, height=bar_height * 0.9, color=STACK_COLORS[stack])
            text = labels[key].get(stack) or _format_value(value)
            if value < 0:  # a difference of two measurements: noise, nothing added
                text += " (below the baseline)"
            axis.text(width, y, f" {text}", va="center", fontsize=8)
    axis.set_yticks(range(len(contenders)))
    axis.set_yticklabels([_contender_name(key) for key in contenders], fontsize=9)
    for tick, key in zip(axis.get_yticklabels(), contenders, strict=True):
        if key == THIS or key.partition("@")[0] == "library":
            tick.set_fontweight("bold")
    axis.invert_yaxis()
    if target is not None and (target > 0 or not log):
        axis.axvline(target, color="#2e7d32", linestyle="--", linewidth=1.2)
        axis.text(
            target,
            1.0,
            f" target {_format_value(target)}",
            transform=axis.get_xaxis_transform(),
            va="bottom",
            fontsize=8,
            color="#2e7d32",
        )
    axis.set_title(title, fontsize=10, loc="left", pad=14)
    axis.tick_params(axis="x", labelsize=8)
    axis.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    axis.set_axisbelow(True)
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)


def _draw_samples(
    axis: Any, title: str, panel: Panel, by_stack: dict[str, dict[str, Row]], stacks: list[str]
) -> None:
    """A line per stack (and contender) through the panel's samples."""
    assert panel.samples is not None
    for index, stack in enumerate(stacks):
        for row in by_stack.get(stack, {}).values():
            points = panel.samples(row)
            if not points:
                continue
            xs = [x for x, _ in points]
            ys = [y / panel.unit for _, y in points]
            axis.plot(xs, ys, color=STACK_COLORS[stack], marker="o", markersize=3)
            # The end labels of two close lines: the first stack's above, the next below.
            where = "bottom" if index == 0 else "top"
            axis.text(xs[-1], ys[-1], f" {_format_value(ys[-1])}", va=where, fontsize=8)
    axis.set_xlim(left=0, right=axis.get_xlim()[1] * 1.08)  # room for the end labels
    axis.set_ylim(bottom=0, top=axis.get_ylim()[1] * 1.15)
    axis.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
    axis.set_title(title, fontsize=10, loc="left", pad=14)
    axis.tick_params(labelsize=8)
    axis.grid(color="#e0e0e0", linewidth=0.6)
    axis.set_axisbelow(True)
    for side in ("top", "right"):
        axis.spines[side].set_visible(False)


def _panel_data(
    panel: Panel, by_stack: dict[str, dict[str, Row]], stacks: list[str]
) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, str]], float | None]:
    values: dict[str, dict[str, float | None]] = {}
    labels: dict[str, dict[str, str]] = {}
    for stack in stacks:
        for key, row in by_stack.get(stack, {}).items():
            value = panel.value(row)
            values.setdefault(key, {})[stack] = None if value is None else value / panel.unit
            if panel.label is not None and value is not None:
                labels.setdefault(key, {})[stack] = panel.label(row)
            labels.setdefault(key, {})
    for key in values:
        for stack in stacks:
            values[key].setdefault(stack, None)
    headline_ours = by_stack.get(HEADLINE_STACK, {}).get(THIS)
    target = panel.target(headline_ours)
    return values, labels, None if target is None else target / panel.unit


def render_charts(runs: list[StackRun], out_dir: Path) -> list[tuple[str, str]]:
    """Draw one PNG per scenario group; return ``(file name, caption)`` for each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    table = _tables(runs)
    stacks = [run.stack for run in runs]
    listed = {item for _, _, items in GROUPS for item in items}
    groups = list(GROUPS) + [
        (scenario.id.lower(), _short_title(scenario.id), [scenario.id])
        for scenario in SCENARIOS
        if scenario.id in table and scenario.id not in listed
    ]
    written: list[tuple[str, str]] = []
    for suffix, chart_title, items in groups:
        # (title, panel, rows, bar data or None for a samples panel, height in inches)
        panels: list[tuple[str, Panel, dict[str, dict[str, Row]], Any, float]] = []
        for item in items:
            if item not in table:
                continue
            for panel in PANELS.get(item) or _default_panels(item, table[item]):
                title = f"{_short_title(item)}\n{panel.title}"
                if panel.samples is not None:
                    panels.append((title, panel, table[item], None, 2.8))
                    continue
                data = _panel_data(panel, table[item], stacks)
                panels.append((title, panel, table[item], data, 0.55 * len(data[0]) + 1.3))
        if not panels:
            continue
        heights = [height for *_, height in panels]
        header = 0.45  # inches above the plots: the chart's title, then the stack legend
        total = sum(heights) + header
        figure, axes = plt.subplots(
            len(panels),
            1,
            figsize=(8, total),
            gridspec_kw={"height_ratios": heights},
            squeeze=False,
        )
        for axis, (title, panel, rows, data, _) in zip(axes[:, 0], panels, strict=True):
            if data is None:
                _draw_samples(axis, title, panel, rows, stacks)
            else:
                values, labels, target = data
                _draw_panel(axis, title, values, labels, stacks, target)
        figure.suptitle(chart_title, fontsize=12, x=0.01, y=1 - 0.08 / total, ha="left", va="top")
        # The stack legend has a line of its own above the plots, where it cannot cover a
        # bar or a label.
        handles = [
            Patch(color=STACK_COLORS[stack], label=_stack_label(runs, stack)) for stack in stacks
        ]
        figure.legend(
            handles=handles,
            loc="upper left",
            ncol=len(stacks),
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.005, 1 - 0.32 / total),
        )
        figure.tight_layout(rect=(0, 0, 1, 1 - header / total))
        file_name = chart_file(suffix)
        figure.savefig(out_dir / file_name, dpi=100)
        plt.close(figure)
        written.append((file_name, chart_title))
    return written


def _stack_label(runs: list[StackRun], stack: str) -> str:
    description = next((run.description for run in runs if run.stack == stack), "")
    return f"{stack}: {description}"

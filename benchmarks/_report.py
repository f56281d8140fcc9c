"""The markdown table and the chart, made from the measured rows only."""

from __future__ import annotations

from pathlib import Path

from _contenders import LABELS, ORDER, SHORT_LABELS, THIS
from _pool_scenarios import draw_pool_panel, pool_chart_panels, render_pool_section
from _scenarios import SCENARIOS, Config, Row, Scenario

NOT_APPLICABLE = "n/a"

# Cells that do not apply, and why (the footnote marks are fixed, so the text can cite them).
FOOTNOTES = {
    "a": "no requests are made in this micro-benchmark, so there is nothing to fail.",
    "b": "not measured: a ticker task would disturb a timing of microseconds.",
}
NA_FAILED = {"S3", "S4", "S8"}
NA_LAG = {"S3", "S4", "S8"}


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return NOT_APPLICABLE
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs" if seconds < 1e-5 else f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms" if seconds < 1e-2 else f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_headline(scenario: str, row: Row) -> str:
    value = row.headline
    if value is None:
        return NOT_APPLICABLE
    if scenario == "S1":
        return f"{value:,.0f}" + (f", {row.failed:,} failed" if row.failed else "")
    if scenario == "S7":
        return f"{value:,.0f} attempts, {row.failed or 0:,} failed"
    if scenario == "S6":
        return f"{value:.2f} per lifetime, {row.failed or 0:,} failed"
    if scenario == "S2":
        per_task = row.extra.get("calls_per_task")
        text = f"{value:,.0f}"
        if per_task is not None and row.contender != THIS:
            text += f" ({per_task:.2f} per task)"
        if row.failed:
            text += f", {row.failed:,} failed"
        return text
    if scenario in {"S3", "S8", "S5"}:
        return format_seconds(value)
    if scenario == "S4":
        return f"{value:.2f}x"
    return f"{value:.2f}"


def _comparable(scenario: str, row: Row) -> float | None:
    """The figure compared across contenders (S2: calls per task, since counts differ)."""
    if scenario == "S2":
        value = row.extra.get("calls_per_task")
        return float(value) if value is not None else None
    return row.headline


def ratio_text(scenario: str, row: Row, ours: Row | None) -> str:
    if row.contender == THIS:
        return "1x"
    if ours is None:
        return NOT_APPLICABLE
    mine, theirs = _comparable(scenario, ours), _comparable(scenario, row)
    if mine is None or theirs is None:
        return NOT_APPLICABLE
    if mine == 0:
        return "∞" if theirs > 0 else "1x"
    ratio = theirs / mine
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.1f}x"


def _by_scenario(rows: list[Row]) -> dict[str, dict[str, Row]]:
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(row.scenario, {})[row.contender] = row
    return table


def met(scenario: Scenario, ours: Row | None) -> bool | None:
    return None if ours is None else scenario.met(ours)


def render_markdown(
    rows: list[Row],
    config: Config,
    *,
    environment: list[str],
    command: str,
    runtime: float,
) -> str:
    table = _by_scenario(rows)
    ran = [scenario for scenario in SCENARIOS if scenario.id in table]
    out: list[str] = []
    out.append("# Benchmarks\n")
    out.append(
        "Measured by `benchmarks/run.py`; every figure below is what this run measured "
        "(this file is generated, never edited by hand).\n"
    )
    out.append(f"- command: `{command}` ({config.name} mode), run time {runtime:.0f} s")
    out.extend(f"- {line}" for line in environment)
    out.append(
        "- STS: `aio_assume_role_lib.testing.LoopbackSTS` on 127.0.0.1, run in a child "
        "process (real STS is another machine; in a thread it would share the interpreter "
        "lock with the code being measured). Every request to it (AssumeRole, and "
        f'GetCallerIdentity as "the AWS API call") waits {config.sts_latency * 1000:g} ms '
        "unless a scenario says otherwise. All contenders run one after another in one "
        "event loop, against the same server."
    )
    out.append(
        "- time compression (S6, S7): every duration is divided by "
        f"{config.time_scale:g}: the lifetime STS gives credentials "
        f"(900 s -> {900 / config.time_scale:g} s), this library's RefreshPolicy windows "
        "and back-off (passed scaled through `refresh=`), botocore's refresh windows "
        "(15/10 min) and botocore's retry back-off (both patched for the duration of the "
        "scenario, so that the anchors live in the same compressed world). Not scaled: "
        "request rates, STS latency, the CPU cost of a call, and the per-call deadlines "
        "(this library's 20 s attempt deadline, botocore's 60 s timeouts), which bound one "
        "network call rather than space calls out."
    )
    out.append("")
    out.append("![benchmark chart](benchmarks.png)")
    out.append("")
    out.append("## Summary\n")
    out.append(
        "Headline figure per scenario; in brackets, the anchor's figure divided by this "
        "library's. Met / not met is computed from this library's measurement.\n"
    )
    anchors = [key for key in ORDER if key != THIS]
    header = ["scenario", "SPEC target", "this library", "met?"]
    header += [SHORT_LABELS[key] for key in anchors]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for scenario in ran:
        cells = table[scenario.id]
        ours = cells.get(THIS)
        verdict = met(scenario, ours)
        line = [
            f"{scenario.id} {scenario.title}",
            scenario.target,
            format_headline(scenario.id, ours) if ours else NOT_APPLICABLE,
            NOT_APPLICABLE if verdict is None else ("met" if verdict else "**not met**"),
        ]
        for key in anchors:
            row = cells.get(key)
            if row is None:
                line.append(NOT_APPLICABLE)
            else:
                line.append(
                    f"{format_headline(scenario.id, row)} ({ratio_text(scenario.id, row, ours)})"
                )
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    out.append("## Details\n")
    header = [
        "scenario",
        "contender",
        "workload as run",
        "STS calls",
        "failed requests",
        "median",
        "p99",
        "max loop lag",
        "headline",
        "vs this library",
    ]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    notes: list[str] = []
    for scenario in ran:
        cells = table[scenario.id]
        ours = cells.get(THIS)
        for key in ORDER:
            row = cells.get(key)
            if row is None:
                continue
            failed = (
                f"{NOT_APPLICABLE} (a)"
                if scenario.id in NA_FAILED
                else (NOT_APPLICABLE if row.failed is None else f"{row.failed:,}")
            )
            lag = f"{NOT_APPLICABLE} (b)" if scenario.id in NA_LAG else format_seconds(row.max_lag)
            workload = row.workload
            if scenario.id == "S4" and row.extra.get("parent_median") is not None:
                workload += f"; parent client median {format_seconds(row.extra['parent_median'])}"
            line = [
                scenario.id,
                SHORT_LABELS[key],
                workload,
                "" if row.sts_calls is None else f"{row.sts_calls:,}",
                failed,
                format_seconds(row.median),
                format_seconds(row.p99),
                lag,
                format_headline(scenario.id, row),
                ratio_text(scenario.id, row, ours),
            ]
            out.append("| " + " | ".join(line) + " |")
            notes += [f"{scenario.id}, {SHORT_LABELS[key]}: {note}" for note in row.notes]
    out.append("")
    out.append("Columns: *STS calls* are the AssumeRole requests the loopback server received")
    out.append("for the scenario's role; *failed requests* are requests that raised, timed out,")
    out.append("were rejected by STS, or got credentials already past the expiry STS issued")
    out.append("them with (checked against the server's records); latencies are per task or")
    out.append("request (S6, S7: from the moment the request was due, so queueing behind a")
    out.append("blocked event loop counts); *max loop lag* is the latest a 1 ms ticker woke up.")
    out.append("")
    out.extend(render_pool_section(rows, config))
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
        f"- **{LABELS['sync-loop']}** / **to_thread**: `assume_role(boto3.Session(), arn)` "
        "per request, then `get_credentials().get_frozen_credentials()` and, as the AWS call, "
        "`child.client('sts').get_caller_identity()`; either directly in the event loop or "
        "in `asyncio.to_thread` (default thread pool). S1, S5 and S8 use one child session."
    )
    out.append(
        f"- **{LABELS['aiobotocore']}**: a profile with `role_arn` and `source_profile` in a "
        "temporary AWS config file, used through `AioSession(profile=...)`: a new session "
        "per request in S2-S4 (S3 times `AioSession(profile=...)`, its way of getting a role "
        "session), one long-lived session and client in S1 and S5-S8 (a session per request "
        "would cap it at a few requests per second)."
    )
    out.append(
        f"- **{LABELS['aioboto3-assume']}**: `aioboto3_assume.assume_role(aioboto3.Session(), "
        "{RoleArn, RoleSessionName})`, used like the aiobotocore provider. It keeps the "
        "expiry with whole-second precision; with compressed lifetimes (S6, S7) that "
        "rounding weighs 100 times more than with real ones, and its credentials can look "
        "up to 1 s older than they are (its `RuntimeError`s in the footnotes, if any: "
        '"refreshed credentials are still expired").'
    )
    out.append(
        "- Anchors that make one STS call per request (S2, and the sync library in S6 and "
        "S7) cannot keep up with the offered load; the workload column says how much of it "
        "they ran, and latencies from the due time include their queueing. Requests still "
        'running when a run\'s grace period ends count as failed ("unfinished").'
    )
    out.append("")
    out.append("## Footnotes\n")
    out.extend(f"- ({mark}) {text}" for mark, text in FOOTNOTES.items())
    out.extend(f"- {note}" for note in notes)
    out.append("")
    return "\n".join(out)


def render_chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = _by_scenario(rows)
    panels: list[tuple[str, str, float | None, float]] = [
        # scenario, y label, target line, unit divisor
        ("S1", "AssumeRole calls", 1, 1),
        ("S2", "AssumeRole calls per task", None, 1),
        ("S3", "median per call (µs)", 100, 1e-6),
        ("S4", "child / parent create_client", 1.2, 1),
        ("S5", "max loop lag (ms)", 5, 1e-3),
        ("S6", "AssumeRole calls per lifetime", 1, 1),
        ("S7", "AssumeRole attempts in outage", 10, 1),
        ("S8", "median per call (µs)", 2, 1e-6),
    ]
    panels = [panel for panel in panels if panel[0] in table]
    titles = {scenario.id: scenario.title for scenario in SCENARIOS}
    columns = 4
    lines = max(1, (len(panels) + pool_chart_panels(rows) + columns - 1) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(18, 4.6 * lines), squeeze=False)
    colors = {
        THIS: "#2a7ab0",
        "sync-loop": "#c0504d",
        "sync-thread": "#e39b8f",
        "aiobotocore": "#8a8a8a",
        "aioboto3-assume": "#b79a3f",
    }
    for index, axis in enumerate(axes.flat):
        if index >= len(panels):
            if not draw_pool_panel(axis, index - len(panels), rows):
                axis.axis("off")
            continue
        scenario, ylabel, target, unit = panels[index]
        cells = table[scenario]
        if scenario == "S2" and THIS in cells and cells[THIS].extra.get("tasks"):
            target = 1 / cells[THIS].extra["tasks"]  # 1 call for all the tasks
        keys = [key for key in ORDER if key in cells]
        values = []
        for key in keys:
            row = cells[key]
            value = row.extra.get("calls_per_task") if scenario == "S2" else row.headline
            values.append(0.0 if value is None else float(value) / unit)
        bars = axis.bar(
            range(len(keys)), values, color=[colors[key] for key in keys], edgecolor="black"
        )
        positive = [value for value in values if value > 0]
        if positive and max(positive) / max(min(positive), 1e-12) > 50:
            axis.set_yscale("log")
        for bar, value in zip(bars, values, strict=True):
            axis.annotate(
                f"{value:.3g}",
                (bar.get_x() + bar.get_width() / 2, max(value, 1e-9)),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if target is not None:
            axis.axhline(
                target, color="green", linestyle="--", linewidth=1, label=f"SPEC target {target:g}"
            )
            axis.legend(fontsize=7, loc="best")
        if scenario == "S7":
            failed = [cells[key].failed or 0 for key in keys]
            axis.set_xlabel("failed requests: " + ", ".join(f"{f:,}" for f in failed), fontsize=8)
        axis.set_xticks(range(len(keys)))
        axis.set_xticklabels([SHORT_LABELS[key] for key in keys], rotation=25, ha="right")
        axis.set_ylabel(ylabel)
        axis.set_title(f"{scenario}: {titles[scenario]}".replace("`", ""), fontsize=9, wrap=True)
    figure.suptitle("aio-assume-role-lib vs anchors (lower is better; log scale where wide)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

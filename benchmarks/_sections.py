"""The one table shape of the page's group sections (R5, P, M, E, T).

Each group's ``render_*_section`` says what differs (heading, which rows are this
library's, how a row reads, the verdict) and :func:`comparison_section` writes the
section: a table with a line per scenario and stack (this library's figure, met or not,
the other contenders' figures, the workload as it ran), then each scenario's workload as
offered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from _scenarios import Config, Row, Scenario

NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Measured:
    """The rows a page shows: each stack's, the headline stack first."""

    stacks: list[tuple[str, list[Row]]]
    provenance: Callable[[Sequence[str]], str | None] = field(default=lambda ids: None)
    """When the page mixes runs: which run measured these scenario ids (else None)."""

    def rows(self, stack: str) -> list[Row]:
        return next((rows for name, rows in self.stacks if name == stack), [])


def verdict_text(verdict: bool | None) -> str:
    return NOT_APPLICABLE if verdict is None else ("met" if verdict else "**not met**")


def comparison_section(
    measured: Measured,
    config: Config,
    *,
    heading: str,
    intro: str,
    scenarios: Sequence[Scenario],
    ours_header: str,
    is_ours: Callable[[Row], bool],
    label: Callable[[Row], str],
    cell: Callable[[Row], str],
    verdict: Callable[[Scenario, list[Row], list[Row]], bool | None] | None = None,
    no_target: Collection[str] = (),
    ratio: bool = False,
) -> list[str]:
    """A group's section; nothing if none of its scenarios ran.

    ``verdict(scenario, ours, others)`` decides met / not met (None: n/a); by default
    every one of this library's rows must meet the scenario's target, and the scenarios
    in ``no_target`` (figures for reference) get n/a. With ``ratio``, each other
    contender's figure is followed by it divided by ours.
    """
    ran = [
        scenario
        for scenario in scenarios
        if any(row.scenario == scenario.id for _, rows in measured.stacks for row in rows)
    ]
    if not ran:
        return []
    out = [f"## {heading}\n", intro + "\n"]
    when = measured.provenance([scenario.id for scenario in ran])
    if when:
        out.append(f"Measured: {when}.\n")
    out.append(f"| scenario | target | stack | {ours_header} | met? | others | as run |")
    out.append("|---|---|---|---|---|---|---|")
    for scenario in ran:
        first = True
        for stack, rows in measured.stacks:
            mine = [row for row in rows if row.scenario == scenario.id]
            if not mine:
                continue
            ours = [row for row in mine if is_ours(row)]
            others = [row for row in mine if not is_ours(row)]
            if verdict is not None:
                met = verdict(scenario, ours, others)
            elif ours and scenario.id not in no_target:
                met = all(scenario.met(row) for row in ours)
            else:
                met = None
            other_cells = []
            for row in others:
                text = f"{label(row)}: {cell(row)}"
                if ratio and len(ours) == 1 and ours[0].headline and row.headline is not None:
                    text += f" ({row.headline / ours[0].headline:,.1f}x)"
                other_cells.append(text)
            title = f"{scenario.id} {scenario.title}" if first else scenario.id
            out.append(
                "| "
                + " | ".join(
                    [
                        title,
                        scenario.target if first else "",
                        stack,
                        "; ".join(cell(row) for row in ours) or NOT_APPLICABLE,
                        verdict_text(met),
                        "; ".join(other_cells) or NOT_APPLICABLE,
                        _as_run(ours + others, label),
                    ]
                )
                + " |"
            )
            first = False
    out.append("")
    out.extend(f"- **{scenario.id}**: {scenario.workload(config)}." for scenario in ran)
    out.append("")
    return out


def _as_run(rows: list[Row], label: Callable[[Row], str]) -> str:
    """The rows' workloads as they ran: once if they are all the same, else each labelled."""
    workloads = [row.workload for row in rows if row.workload]
    if len(set(workloads)) <= 1:
        return workloads[0] if workloads else ""
    return "; ".join(f"{label(row)}: {row.workload}" for row in rows if row.workload)

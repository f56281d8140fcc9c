"""The benchmarks page's rows: a partial run (``dev.py bench --only T3``) replaces the rows
of the scenarios it measured, keeps the others, and the page says which run measured what.

No measuring here: ``StackRun``, ``select`` and the section table on hand-made rows, and
the outage timer R1 and R2 measure recovery from, on a stand-in server.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield {name: importlib.import_module(name) for name in ("_report", "_sections", "run")}
    finally:
        sys.path.remove(str(BENCHMARKS))


ORDER = ["S1", "T1", "T2", "T3"]


def _run(bench: dict[str, ModuleType], started: str, rows: dict[str, list[str]], **kw: Any) -> Any:
    """A StackRun of stack S1 measuring ``rows`` (scenario -> contenders) at ``started``."""
    report = bench["_report"]
    from _scenarios import Row

    measurement = report.Measurement(
        started=started,
        commit="abc1234",
        command="python3 dev.py bench",
        mode=kw.get("mode", "full"),
        description="aiobotocore 3.10.0",
        environment=["machine: test"],
        runtime=1.0,
        scenarios=kw.get("scenarios", list(rows)),
    )
    made = [
        Row(scenario, contender, f"as run {started}", 1.0)
        for scenario, contenders in rows.items()
        for contender in contenders
    ]
    return report.StackRun(kw.get("stack", "S1"), [measurement], made)


def test_a_partial_run_replaces_the_rows_of_what_it_measured_and_keeps_the_others(
    bench: dict[str, ModuleType],
) -> None:
    old = _run(bench, "day 1", {"T2": ["library"], "S1": ["this", "sync"], "T1": ["library"]})
    new = _run(bench, "day 2", {"T1": ["library", "dict"]})
    merged = old.merged(new, ORDER)
    assert [(r.scenario, r.contender, r.workload) for r in merged.rows] == [
        ("S1", "this", "as run day 1"),
        ("S1", "sync", "as run day 1"),
        ("T1", "library", "as run day 2"),
        ("T1", "dict", "as run day 2"),
        ("T2", "library", "as run day 1"),
    ]
    assert [(m.started, m.scenarios) for m in merged.measurements] == [
        ("day 1", ["T2", "S1"]),
        ("day 2", ["T1"]),
    ]
    # Through JSON (what the page keeps beside it) and back: the same.
    assert bench["_report"].StackRun.from_json(merged.to_json()) == merged


def test_a_scenario_measured_without_rows_or_no_longer_known_keeps_no_old_rows(
    bench: dict[str, ModuleType],
) -> None:
    old = _run(bench, "day 1", {"T1": ["library"], "T2": ["library"], "X1": ["gone"]})
    new = _run(bench, "day 2", {}, scenarios=["T2"])  # T2 ran and measured nothing
    merged = old.merged(new, ORDER)
    assert [r.scenario for r in merged.rows] == ["T1"]
    assert [m.scenarios for m in merged.measurements] == [["T1"]]  # nobody claims T2


def test_a_scenario_skipped_on_a_stack_is_not_claimed_and_keeps_its_rows(
    bench: dict[str, ModuleType],
) -> None:
    """``--only T3`` on S1, whose environment has no trustme: T3 gives no rows there. The
    page must not say S1 measured it, nor list that run for S1 at all."""
    from _scenarios import Row

    rows = [Row("T1", "library", "as run", 1.0)]
    assert bench["run"].measured_ids(["T1", "T3"], rows) == ["T1"]
    assert bench["run"].measured_ids(["T3"], rows) == []
    old = _run(bench, "day 1", {"T1": ["library"], "T3": ["library"]})
    merged = old.merged(_run(bench, "day 2", {}, scenarios=[]), ORDER)
    assert [r.scenario for r in merged.rows] == ["T1", "T3"]
    assert [(m.started, m.scenarios) for m in merged.measurements] == [("day 1", ["T1", "T3"])]


def test_rows_of_a_smoke_run_or_another_stack_never_join_a_page(
    bench: dict[str, ModuleType],
) -> None:
    old = _run(bench, "day 1", {"T1": ["library"]})
    with pytest.raises(ValueError, match="smoke"):
        old.merged(_run(bench, "day 2", {"T1": ["library"]}, mode="smoke"), ORDER)
    with pytest.raises(ValueError, match="S2"):
        old.merged(_run(bench, "day 2", {"T1": ["library"]}, stack="S2"), ORDER)


def test_only_takes_ids_and_groups(bench: dict[str, ModuleType]) -> None:
    select = bench["run"].select
    tenants = [s.id for s in bench["run"].ALL_SCENARIOS if s.id.startswith("T")]
    assert len(tenants) >= 3
    assert select("t") == tenants
    assert select("S1") == ["S1"]  # an id is not a prefix of others
    assert select("R5,S8") == ["S8"] + [i for i in select(None) if i.startswith("R5")]
    assert "X9" in select("S1,X9")


def test_a_section_shows_every_stack_and_which_run_measured_it(
    bench: dict[str, ModuleType],
) -> None:
    report, sections = bench["_report"], bench["_sections"]
    from _scenarios import FULL, Scenario

    scenario = Scenario(
        "T1",
        "title",
        "metric",
        "<= 1",
        lambda row: row.headline is not None and row.headline <= 1,
        None,  # type: ignore[arg-type]
        lambda config: "the workload",
    )
    s1 = _run(bench, "day 1", {"T1": ["library", "dict"]})
    s2 = _run(bench, "day 1", {"T1": ["library"]}, stack="S2")
    s2.rows[0].headline = 3.0  # S2 misses the target
    s1_later = s1.merged(_run(bench, "day 2", {"T1": ["library", "dict"]}), ORDER)

    def table(runs: list[Any]) -> list[str]:
        return sections.comparison_section(
            report.measured(runs),
            FULL,
            heading="T",
            intro="intro",
            scenarios=[scenario],
            ours_header="ours",
            is_ours=lambda row: row.contender == "library",
            label=lambda row: row.contender,
            cell=lambda row: f"{row.headline:g}",
        )

    one_run_each = table([s1, s2])
    assert [line for line in one_run_each if line.startswith("| T1")] == [
        "| T1 title | <= 1 | S1 | 1 | met | dict: 1 | as run day 1 |",
        "| T1 |  | S2 | 3 | **not met** | n/a | as run day 1 |",
    ]
    assert not any(line.startswith("Measured:") for line in one_run_each)
    mixed = [line for line in table([s1_later, s2]) if line.startswith("Measured:")]
    assert mixed == [
        "Measured: S1: day 2 UTC; S2: day 1 UTC (the runs at the top of the page, with "
        "their packages).\n"
    ]


def test_an_outage_ends_no_later_than_sts_lifts_it(bench: dict[str, ModuleType]) -> None:
    """R1 and R2 count a key as fresh when STS issued it at or after ``ended_at``: noted
    after the lifting, an answer given in between counted as made during the outage."""
    import threading
    import time

    stability = importlib.import_module("_stability_scenarios")
    lifted: list[float] = []

    class Server:
        def fail_next(self, fault: str, count: int) -> None:
            pass

        def clear_faults(self) -> None:
            lifted.append(time.time())
            time.sleep(0.05)  # the reply to the lifting takes a while to come back

    for ends in ("on its own", "stopped"):
        lifted.clear()
        fault = stability._TimedFault(Server(), "5xx")
        fault.start(0.0 if ends == "on its own" else 60.0)
        if ends == "on its own":
            while not lifted:
                threading.Event().wait(0.01)
        fault.stop()
        assert fault.ended_at is not None
        assert fault.ended_at <= lifted[0], ends

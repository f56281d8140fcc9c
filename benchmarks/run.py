"""The performance benchmarks: this library beside the anchors, against a loopback STS.

    python3 dev.py bench            full run on both stacks, one after the other (over
                                    half an hour on 2 cores); writes docs/benchmarks.md,
                                    the charts docs/benchmarks-*.png and the rows
                                    docs/benchmarks-rows/s1.json, s2.json
    python3 dev.py bench --only T3  measures T3 again on both stacks and rewrites the page
                                    with the other scenarios' rows kept (ids or groups:
                                    ``--only R5,T`` is R5W, R5C, ... and T1, T2, ...)
    python3 dev.py bench --smoke    tiny counts, seconds; writes to a temporary directory
                                    (CI: it fails only if something crashes, never because
                                    a target is missed)

Options: ``--out DIR`` writes the page, charts and rows elsewhere (rows already there are
merged with the new ones, never rows of a smoke run with a full run's); ``-v`` shows the
libraries' log output (refresh failures are expected in S7); ``--also PYTHON`` runs the
same scenarios with another stack's interpreter too and reports both (dev.py passes stack
S1's, so that S1's figures are the headline and S2's stand beside them); ``--rows-out
FILE`` writes this stack's measurements as JSON instead of a report; ``--from-rows
FILE...`` measures nothing and merges such files into the page (``--from-rows
docs/benchmarks-rows/*.json`` redraws it from the rows it shows).

Contenders (see ``_contenders.py``): this library; aws-assume-role-lib 2.10.0 called per
request in the event loop and in ``asyncio.to_thread``; aiobotocore's AssumeRoleProvider
through a profile; aioboto3-assume 0.1.2. Scenarios and their workloads: ``_scenarios.py``
(S1-S8), ``_stability_scenarios.py`` (R1-R4: outages, errors, memory),
``_source_scenarios.py`` (R5W, R5C, R5P: parents on web identity, the container endpoint
and credential_process, with ``stabilize`` and without; ``--only R5`` runs all three),
``_pool_scenarios.py`` (P1-P4: ClientPool), ``_process_scenarios.py`` (M1-M2: processes),
``_endpoint_scenarios.py`` (E1-E2: the container-credentials endpoint) and
``_tenant_scenarios.py`` (T1, T2, T4: many tenants on one parent).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from _contenders import make_contenders
from _endpoint_scenarios import ENDPOINT_SCENARIOS
from _pool_scenarios import POOL_SCENARIOS
from _process_scenarios import PROCESS_SCENARIOS
from _report import Measurement, StackRun, render_charts, render_markdown, this_stack
from _scenarios import FULL, SCENARIOS, SMOKE, Config, Context, Row
from _source_scenarios import SOURCE_SCENARIOS
from _stability_scenarios import STABILITY_SCENARIOS
from _sts_process import RemoteSTS
from _tenant_scenarios import TENANT_SCENARIOS

ALL_SCENARIOS = (
    SCENARIOS
    + STABILITY_SCENARIOS
    + SOURCE_SCENARIOS
    + POOL_SCENARIOS
    + PROCESS_SCENARIOS
    + ENDPOINT_SCENARIOS
    + TENANT_SCENARIOS
)
ROOT = Path(__file__).resolve().parent.parent
ROWS_DIR = "benchmarks-rows"  # beside the page: one JSON file of rows per stack
PACKAGES = [
    "aio-assume-role-lib",
    "aiobotocore",
    "botocore",
    "aioboto3",
    "boto3",
    "aws-assume-role-lib",
    "aioboto3-assume",
]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts; output to a temp dir")
    parser.add_argument("--out", type=Path, help="directory for benchmarks.md and benchmarks.png")
    parser.add_argument(
        "--only", help="comma-separated scenario ids or groups, e.g. S1,S7 or T3 or R5"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show library log output")
    parser.add_argument(
        "--also", metavar="PYTHON", help="also run with this interpreter (another stack)"
    )
    parser.add_argument(
        "--rows-out", type=Path, help="write this stack's rows here as JSON; no report"
    )
    parser.add_argument(
        "--from-rows",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="run nothing: write the report from files --rows-out wrote",
    )
    # The start of the run (UTC), passed to the --also stack: one run, one time.
    parser.add_argument("--started", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _isolate_aws_environment(home: Path, sts: RemoteSTS) -> Path:
    """Point every AWS setting at the loopback STS and a temporary config; return the config.

    The developer's own AWS configuration must not leak in. The source profile holds the
    loopback server's root key, which only that server (gone after the run) accepts.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    config_file = home / "aws-config"
    credentials_file = home / "aws-credentials"
    environ = sts.environ()
    credentials_file.write_text(
        "[source]\n"
        f"aws_access_key_id = {environ['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {environ['AWS_SECRET_ACCESS_KEY']}\n"
    )
    config_file.write_text("[profile source]\nregion = us-east-1\n")
    credentials_file.chmod(0o600)
    os.environ.update(environ)
    os.environ["AWS_CONFIG_FILE"] = str(config_file)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials_file)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    return config_file


async def _run_all(
    sts: RemoteSTS, config: Config, config_file: Path, selected: list[str]
) -> list[Row]:
    contenders = make_contenders(config_file)
    for contender in contenders:
        await contender.warm_up()
    context = Context(sts, contenders, config)
    rows: list[Row] = []
    try:
        for scenario in ALL_SCENARIOS:
            if scenario.id not in selected:
                continue
            started = time.perf_counter()
            print(f"== {scenario.id} {scenario.title}", file=sys.stderr, flush=True)
            # A hard bound on each scenario, so that a hang is a crash, not a stuck CI job.
            rows += await asyncio.wait_for(scenario.run(context), config.scenario_timeout)
            print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    finally:
        for contender in contenders:
            await contender.close()
    return rows


def _installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:  # aioboto3 and aioboto3-assume: stack S2 only
        return False
    return True


def _environment() -> list[str]:
    versions = ", ".join(f"{name} {version(name)}" for name in PACKAGES if _installed(name))
    return [
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        f"packages: {versions}",
    ]


def _commit() -> str:
    """The checkout's commit, marked when the measured code differs from it."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "src", "benchmarks"):
        commit += " + changes"
    return commit


def select(only: str | None) -> list[str] | str:
    """The scenario ids ``--only`` names (ids or group prefixes), or what it got wrong."""
    ids = [scenario.id for scenario in ALL_SCENARIOS]
    if not only:
        return ids
    selected: set[str] = set()
    for part in only.upper().split(","):
        part = part.strip()
        matches = [part] if part in ids else [i for i in ids if part and i.startswith(part)]
        if not matches:
            return f"unknown scenario or group: {part or repr(only)}"
        selected.update(matches)
    return [i for i in ids if i in selected]


def main(argv: list[str]) -> int:
    args = _parse(argv)
    config = SMOKE if args.smoke else FULL
    selected = select(args.only)
    if isinstance(selected, str):
        print(selected, file=sys.stderr)
        return 2
    if args.out is not None:
        out_dir = args.out
    elif args.smoke and args.rows_out is None:
        out_dir = Path(tempfile.mkdtemp(prefix="aio-arl-bench-"))
    else:
        out_dir = ROOT / "docs"
    if not args.verbose:
        # Refresh failures are logged as warnings (S7 causes many on purpose).
        logging.getLogger().addHandler(logging.NullHandler())
        logging.getLogger().setLevel(logging.CRITICAL)

    if args.from_rows:
        runs = [StackRun.from_json(path.read_text()) for path in args.from_rows]
        return _write_report(runs, out_dir)
    started = time.perf_counter()
    started_at = args.started or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M"
    )
    with tempfile.TemporaryDirectory(prefix="aio-arl-bench-home-") as home:
        sts = RemoteSTS(latency=config.sts_latency)
        try:
            config_file = _isolate_aws_environment(Path(home), sts)
            rows = asyncio.run(_run_all(sts, config, config_file, selected))
        finally:
            sts.stop()
    stack, description = this_stack()
    command = "python3 dev.py bench" + (" --smoke" if args.smoke else "")
    if args.only:
        command += f" --only {args.only}"
    measurement = Measurement(
        started=started_at,
        commit=_commit(),
        command=command,
        mode=config.name,
        description=description,
        environment=_environment(),
        runtime=time.perf_counter() - started,
        scenarios=measured_ids(selected, rows),
    )
    runs = [StackRun(stack, [measurement], rows)]
    if args.rows_out is not None:
        args.rows_out.write_text(runs[0].to_json())
        return 0
    if args.also:
        other = _run_other_stack(args.also, argv, started_at)
        if other is None:
            return 1
        runs.append(other)
    return _write_report(runs, out_dir)


def measured_ids(selected: list[str], rows: list[Row]) -> list[str]:
    """The selected scenarios that gave rows. One skipped on this stack (T3 without
    trustme) is not claimed as measured, and the rows an earlier run gave it are kept."""
    return [scenario for scenario in selected if any(row.scenario == scenario for row in rows)]


def _write_report(runs: list[StackRun], out_dir: Path) -> int:
    """Merge ``runs`` into the rows kept in ``out_dir``, save them, write the page from them."""
    rows_dir = out_dir / ROWS_DIR
    rows_dir.mkdir(parents=True, exist_ok=True)
    order = [scenario.id for scenario in ALL_SCENARIOS]
    merged = []
    for run in runs:
        path = rows_dir / f"{run.stack.lower()}.json"
        if path.exists():
            try:
                run = StackRun.from_json(path.read_text()).merged(run, order)
            except ValueError as error:
                print(f"{path}: {error}", file=sys.stderr)
                return 2
        else:
            run = StackRun(run.stack, [], []).merged(run, order)
        path.write_text(run.to_json())
        merged.append(run)
    merged.sort(key=lambda run: run.stack)  # S1, the headline, first
    modes = {m.mode for run in merged for m in run.measurements}
    if len(modes) != 1:
        print(f"{rows_dir}: rows of {' and '.join(sorted(modes))} runs", file=sys.stderr)
        return 2
    config = SMOKE if modes == {SMOKE.name} else FULL
    charts = render_charts(merged, out_dir)
    report = render_markdown(merged, config, charts=charts)
    print(report)
    (out_dir / "benchmarks.md").write_text(report)
    written = ["benchmarks.md", *(c[0] for c in charts)]
    written += [f"{ROWS_DIR}/{run.stack.lower()}.json" for run in merged]
    print(f"wrote {', '.join(str(out_dir / name) for name in written)}", file=sys.stderr)
    return 0


def _run_other_stack(python: str, argv: list[str], started: str) -> StackRun | None:
    """Run the same scenarios with ``python`` (another stack's interpreter); its rows."""
    passed_on = [arg for arg in argv if arg not in {"--also", python}]
    passed_on += ["--started", started]
    with tempfile.TemporaryDirectory(prefix="aio-arl-bench-rows-") as directory:
        rows_file = Path(directory) / "rows.json"
        print(f"== the same with {python}", file=sys.stderr, flush=True)
        result = subprocess.run(
            [python, __file__, *passed_on, "--rows-out", str(rows_file)], check=False
        )
        if result.returncode != 0 or not rows_file.exists():
            print(f"the run with {python} failed (exit {result.returncode})", file=sys.stderr)
            return None
        return StackRun.from_json(rows_file.read_text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

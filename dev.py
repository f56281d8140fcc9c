#!/usr/bin/env python3
"""Project commands that work on a fresh machine with only Python 3.10+ and git.

    python3 dev.py demo     run the demo against a local STS endpoint (no AWS account)
    python3 dev.py test     lint, type-check and run the whole test suite on both stacks
    python3 dev.py bench    run the benchmarks on both stacks and write the page and charts
    python3 dev.py package  build the sdist and wheel, check them, install the wheel per stack
    python3 dev.py setup    only create the environments

Each command creates the virtual environments it needs under .venv/ and installs
what it needs into them (with uv, itself installed with pip into .venv/tools); an
environment is rebuilt when pyproject.toml changes.

Stacks:
    s1    newest aiobotocore 3.x, with the httpx backend and trio
    s2    newest aioboto3 (15.5.0), which pins aiobotocore 2.25.1
    s3    Python >= 3.12 (found on this machine, see find_python_312), newest
          aiobotocore and every adapter's extra: the AWS SDK for Python v4 adapter
          needs 3.12; only the adapters' tests run there (ADAPTER_TESTS)
    moto  moto's STS server, in its own environment: moto wants a newer botocore
          than aiobotocore allows, so the tests run it as a subprocess from here.
    awscli the AWS CLI v1 (its own botocore vendored inside), in an environment of its
          own so that its pins (docutils <= 0.19, rsa < 4.8, ...) stay out of the
          stacks; tests/test_endpoint.py runs it as a client of the container endpoint.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import venv
import zipfile
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent
VENVS = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"

# uv creates the environments and installs into them (seconds, where pip takes minutes).
# It is installed with pip into .venv/tools, so these commands still need only Python
# and git; without it (DEV_PY_PIP=1, or no uv wheel for this platform) pip does the work.
UV = "uv==0.13.9"

# What each environment gets. "--group" names a PEP 735 group of pyproject.toml.
STACKS: dict[str, list[str]] = {
    "s1": [
        "-e",
        f"{ROOT}[trio,httpx,httpx2,obstore]",
        "--group",
        "dev",
        "--group",
        "docs",
        "--group",
        "stubs-s1",
        "--group",
        "recipes",
    ],
    "s2": ["-e", f"{ROOT}[aioboto3,httpx,httpx2,obstore]", "--group", "dev", "--group", "stubs-s2"],
    # Python >= 3.12 (PYTHON_312_STACKS): the AWS SDK for Python v4 adapter's stack.
    "s3": [
        "-e",
        f"{ROOT}[httpx,httpx2,obstore,sdk-v4]",
        "--group",
        "dev",
        "--group",
        "stubs-s1",
    ],
    "moto": ["moto[sts,iam]==5.2.5", "flask", "flask-cors"],
    # The AWS CLI v1 (its own botocore inside), a client of the container endpoint.
    "awscli": ["awscli==1.46.3"],
    # Benchmarks run on stack s2 so that every anchor installs beside this library:
    # aws-assume-role-lib (sync, in the test group) and aioboto3-assume need boto3/aioboto3.
    "bench": [
        "-e",
        f"{ROOT}[aioboto3]",
        "--group",
        "test",
        "aioboto3-assume==0.1.2",
        "matplotlib>=3.8",
        # the ClientPool scenarios' self-signed certificate for HTTPS to the loopback STS
        "trustme>=1.1",
    ],
    # pip resolves the wheel's installs the way users' pip will (package()).
    "release": ["build>=1.2", "twine>=5", "pip>=25.1"],
}

# The environments tests and benchmarks run from (many processes each).
RUN_FROM = ("s1", "s2", "s3", "moto", "awscli", "bench")

# Environments made with Python >= 3.12 instead of the Python running dev.py.
PYTHON_312_STACKS = ("s3",)

# Bumped when how environments are made changes (2: bytecode compiled at install), so
# that existing ones are rebuilt.
ENV_FORMAT = 2

# What the built wheel and sdist must (and must not) hold.
WHEEL_MUST_HAVE = ("aio_assume_role_lib/__init__.py", "aio_assume_role_lib/py.typed")
WHEEL_MUST_NOT_HAVE = ("tests/", "benchmarks/", "examples/", "docs/", "__pycache__", ".pyc")
SDIST_MUST_HAVE = (
    "PKG-INFO",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "src/aio_assume_role_lib/__init__.py",
    "src/aio_assume_role_lib/py.typed",
)
# The tests need examples/, docs/ and moto's server: they stay in the repository.
SDIST_MUST_NOT_HAVE = ("tests/", "benchmarks/", "examples/", "docs/", ".venv/", "__pycache__")

# Installing the wheel in a fresh environment: (label, extra, expected versions).
# With the aioboto3 extra, pip must land on aioboto3 15.5.0 + aiobotocore 2.25.1, never on
# aioboto3 7.0.0 (what an unpinned aioboto3 beside aiobotocore 3.x resolves to).
WHEEL_INSTALLS = (
    ("s1", "trio", {"aiobotocore": "3."}),
    ("s2", "aioboto3", {"aioboto3": "15.5.0", "aiobotocore": "2.25.1"}),
)


def _bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def _run(*args: str | Path, **kwargs: Any) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], **kwargs)


_uv_cache: list[Path | None] = []


def uv() -> Path | None:
    """uv from .venv/tools (installed there with pip on first use); None means use pip."""
    if _uv_cache:
        return _uv_cache[0]
    found: Path | None = None
    if not os.environ.get("DEV_PY_PIP"):
        tools = VENVS / "tools"
        stamp = tools / ".installed"
        if not (stamp.exists() and stamp.read_text() == UV and _bin(tools, "uv").exists()):
            print(f"== setting up .venv/tools ({UV})", flush=True)
            venv.EnvBuilder(with_pip=True, clear=True).create(tools)
            pip: list[str | Path] = [
                _bin(tools, "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
            ]
            if _run(*pip, UV) == 0:
                stamp.write_text(UV)
        if _bin(tools, "uv").exists():
            found = _bin(tools, "uv")
        else:
            print("dev.py: uv could not be installed; using pip (slower)", flush=True)
    _uv_cache.append(found)
    return found


def _python_version(python: str | Path) -> tuple[int, int] | None:
    """(major, minor) of the interpreter ``python``, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split()
    if out.returncode or len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


_python_312_cache: list[Path | None] = []


def find_python_312() -> Path | None:
    """A Python >= 3.12 on this machine (newest first), or None.

    Looks at the Python running dev.py, then python3.14..python3.12 on PATH (a pyenv shim
    there runs only if that version is active, so each candidate is run to check), then
    pyenv's versions directory (``pyenv root``), then ``py -3.x`` (Windows), then
    ``uv python find`` (uv finds interpreters it or others installed; it downloads none).
    No path is hard-coded; ``DEV_PY_PYTHON312`` names one by hand.
    """
    if _python_312_cache:
        return _python_312_cache[0]
    candidates: list[str | Path] = []
    if os.environ.get("DEV_PY_PYTHON312"):
        candidates.append(os.environ["DEV_PY_PYTHON312"])
    candidates.append(sys.executable)
    minors = ("3.14", "3.13", "3.12")
    candidates += [found for v in minors if (found := shutil.which(f"python{v}"))]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        versions = Path(root, "versions") if root else None
        if versions is not None and versions.is_dir():
            for v in minors:
                for home in sorted(versions.glob(f"{v}.*"), reverse=True):
                    candidates.append(_bin(home, "python"))
    launcher = shutil.which("py")
    if launcher and os.name == "nt":
        for v in minors:
            out = subprocess.run(
                [launcher, f"-{v}", "-c", "import sys; print(sys.executable)"],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
    tool = uv()
    if tool is not None:
        out = subprocess.run(
            [str(tool), "python", "find", "--no-python-downloads", ">=3.12"],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(out.stdout.strip())
    found: Path | None = None
    for candidate in candidates:
        version = _python_version(candidate)
        if version is not None and version >= (3, 12):
            found = Path(candidate)
            break
    _python_312_cache.append(found)
    return found


MISSING_PYTHON_312 = """
################################################################################
dev.py: NO PYTHON >= 3.12 FOUND: the environment {name} is SKIPPED, and with it the
tests of the AWS SDK for Python v4 adapter (it needs 3.12). Looked at: this Python,
python3.12+ on PATH, pyenv's versions, `py -3.12`, `uv python find`. Install one
(e.g. `uv python install 3.12`, `pyenv install 3.12`) or set DEV_PY_PYTHON312.
################################################################################
"""


def create_env(env: Path, python: str | Path = sys.executable) -> Path:
    """A fresh virtual environment at ``env`` (emptied if it exists); returns its python."""
    tool = uv()
    if tool is not None:
        # --seed: pip inside too, for whoever runs `python -m pip` in it by hand.
        code = _run(tool, "venv", "-q", "--clear", "--seed", "--python", python, env)
    elif Path(python) != Path(sys.executable):
        code = _run(python, "-m", "venv", "--clear", env)
        code = code or _run(_bin(env, "python"), "-m", "pip", "install", "-q", "--upgrade", "pip")
    else:
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        code = _run(_bin(env, "python"), "-m", "pip", "install", "-q", "--upgrade", "pip")
    if code:
        sys.exit(f"dev.py: creating {env} failed")
    return _bin(env, "python")


def install(python: Path, *requirements: str | Path, compile_bytecode: bool = False) -> int:
    """Install into the environment of ``python`` (``--group`` reads ./pyproject.toml)."""
    tool = uv()
    if tool is not None:
        install_uv: list[str | Path] = [tool, "pip", "install", "-q", "--python", python]
        if compile_bytecode:
            # pip compiles at install time, uv does not by default. Without .pyc files (and
            # with PYTHONDONTWRITEBYTECODE set they are never written later) every process
            # the tests start compiles botocore, aiobotocore and aiohttp again: ~1.2 s of
            # CPU per process, and the tests start hundreds.
            install_uv.append("--compile-bytecode")
        return _run(*install_uv, *requirements, cwd=ROOT)
    pip: list[str | Path] = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    return _run(*pip, *requirements, cwd=ROOT)


def ensure_env(name: str) -> Path | None:
    """Create .venv/<name> with the stack's packages, unless it is already up to date.

    None (after a loud message) for a Python >= 3.12 stack on a machine without one.
    """
    env = VENVS / name
    base: str | Path = sys.executable
    if name in PYTHON_312_STACKS:
        found = find_python_312()
        if found is None:
            print(MISSING_PYTHON_312.format(name=name), flush=True)
            return None
        base = found
    stamp = env / ".installed"
    made_from = str(base) if name in PYTHON_312_STACKS else None
    recipe = PYPROJECT.read_bytes() + repr((STACKS[name], ENV_FORMAT, made_from)).encode()
    wanted = hashlib.sha256(recipe).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and _bin(env, "python").exists():
        return env
    print(f"== setting up .venv/{name}", flush=True)
    python = create_env(env, base)
    if install(python, *STACKS[name], compile_bytecode=name in RUN_FROM):
        sys.exit(f"dev.py: installing .venv/{name} failed")
    stamp.write_text(wanted)
    return env


def need_env(name: str) -> Path:
    """``ensure_env`` for an environment every machine can make."""
    env = ensure_env(name)
    assert env is not None, name
    return env


def _installed_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _pip_resolution(tools: Path, requirement: str, report: Path) -> dict[str, str] | None:
    """What pip (as users run it) would install for ``requirement``: {name: version}."""
    if _run(
        _bin(tools, "python"),
        "-m",
        "pip",
        "install",
        "-qq",  # not the warnings about this machine's pip configuration
        "--disable-pip-version-check",
        "--dry-run",
        "--ignore-installed",
        "--report",
        report,
        requirement,
    ):
        return None
    return {
        i["metadata"]["name"]: i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }


def _hatchling_floor() -> str:
    match = re.search(r'"hatchling>=([^",]+)"', PYPROJECT.read_text())
    assert match, "pyproject.toml: build-system requires hatchling>=X"
    return match[1]


_FLOOR_BUILD = """
import sys, tempfile, zipfile
from hatchling.build import build_sdist, build_wheel
out = tempfile.mkdtemp()
build_sdist(out)
wheel = zipfile.ZipFile(out + "/" + build_wheel(out))
metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
text = wheel.read(metadata).decode()
sys.exit(0 if "License-Expression: Apache-2.0" in text else "no License-Expression")
"""


def package() -> list[str]:
    """Build, check and install the artifacts as a user would; return what failed."""
    failed: list[str] = []
    tools = need_env("release")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    build: list[str | Path] = [_bin(tools, "python"), "-m", "build", "--outdir", dist, ROOT]
    tool = uv()
    if tool is not None:  # build's isolated environments, made by uv
        build.insert(3, "--installer=uv")
    environ = (
        {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"} if tool else None
    )
    # build makes the sdist, then the wheel from the sdist: the sdist is self-sufficient.
    if _run(*build, stdout=subprocess.DEVNULL, env=environ):
        return ["python -m build"]
    artifacts = sorted(dist.iterdir())
    if _run(_bin(tools, "twine"), "check", "--strict", *artifacts):
        failed.append("twine check")
    (wheel,) = [a for a in artifacts if a.suffix == ".whl"]
    names = zipfile.ZipFile(wheel).namelist()
    missing = [n for n in WHEEL_MUST_HAVE if n not in names]
    unwanted = [n for n in names if any(bad in n for bad in WHEEL_MUST_NOT_HAVE)]
    print(f"wheel {wheel.name}: {len(names)} files; missing {missing}; unwanted {unwanted}")
    if missing or unwanted:
        failed.append("wheel contents")
    (sdist,) = [a for a in artifacts if a.name.endswith(".tar.gz")]
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    missing = [n for n in SDIST_MUST_HAVE if n not in names]
    unwanted = [
        n for n in names if any(n.startswith(bad) or f"/{bad}" in n for bad in SDIST_MUST_NOT_HAVE)
    ]
    print(f"sdist {sdist.name}: {len(names)} files; missing {missing}; unwanted {unwanted}")
    if missing or unwanted:
        failed.append("sdist contents")

    # What pip (as users run it) would install: three resolutions against the package
    # index, which wait on the network more than they compute, so they run side by side
    # with the rest.
    requirements = {"plain": str(wheel)} | {
        label: f"{wheel}[{extra}]" for label, extra, _ in WHEEL_INSTALLS
    }
    resolving = concurrent.futures.ThreadPoolExecutor(max_workers=len(requirements))
    plans = {
        label: resolving.submit(_pip_resolution, tools, requirement, dist / f"{label}.json")
        for label, requirement in requirements.items()
    }
    resolving.shutdown(wait=False)

    # The oldest hatchling that pyproject.toml allows must build it (and write PEP 639).
    floor = _hatchling_floor()
    print(f"\n== building with the hatchling floor, {floor}", flush=True)
    python = create_env(VENVS / "hatchling-floor")
    if install(python, f"hatchling=={floor}") or _run(python, "-c", _FLOOR_BUILD, cwd=ROOT):
        failed.append(f"build with hatchling=={floor}")

    # A plain install resolves to the newest aiobotocore 3.x (resolution only).
    plan = plans["plain"].result()
    if plan is None:
        failed.append("plain install resolution")
    else:
        print(f"plain install resolves to aiobotocore {plan.get('aiobotocore')}")
        if not plan.get("aiobotocore", "").startswith("3."):
            failed.append("plain install is not on aiobotocore 3.x")

    for label, extra, expected in WHEEL_INSTALLS:
        # pip decides what gets installed, as it will for users; the environment is then
        # made with exactly that (by uv when there is uv: much faster than pip installing).
        print(f"\n== installing {wheel.name}[{extra}] into a fresh .venv/wheel-{label}", flush=True)
        plan = plans[label].result()
        if plan is None:
            failed.append(f"wheel install resolution [{extra}]")
            continue
        print(f"pip resolves to: { {n: plan.get(n) for n in expected} }")
        if any(not plan.get(n, "").startswith(v) for n, v in expected.items()):
            failed.append(f"wheel [{extra}] resolved to {plan}")
            continue
        env = VENVS / f"wheel-{label}"
        python = create_env(env)
        pins = [
            f"{name}=={version}" for name, version in plan.items() if name != "aio-assume-role-lib"
        ]
        if install(python, "--no-deps", f"{wheel}[{extra}]", *pins):
            failed.append(f"wheel install [{extra}]")
            continue
        versions = _installed_versions(python, list(expected))
        if versions != {n: plan[n] for n in expected}:
            failed.append(f"wheel [{extra}] installed {versions}, pip planned {plan}")
        # Run from a directory without src/ so that only the installed wheel is importable.
        if _run(python, ROOT / "examples" / "demo.py", cwd=env, stdout=subprocess.DEVNULL):
            failed.append(f"demo from the wheel [{extra}]")
        if _run(_bin(env, "aio-assume-role"), "--help", cwd=env, stdout=subprocess.DEVNULL):
            failed.append(f"aio-assume-role --help from the wheel [{extra}]")
    return failed


def demo() -> int:
    env = need_env("s1")
    return _run(_bin(env, "python"), ROOT / "examples" / "demo.py")


def _poll(process: subprocess.Popen[bytes]) -> tuple[bool, float | None]:
    """Whether ``process`` has ended, and the CPU seconds it (and the processes it waited
    for) used, where the OS tells: so that logs show where the time goes."""
    if not hasattr(os, "wait4"):
        return process.poll() is not None, None
    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    if pid == 0:
        return False, None
    process.returncode = os.waitstatus_to_exitcode(status)
    return True, usage.ru_utime + usage.ru_stime


def _lowest_cpu_priority() -> None:
    os.nice(19)


def run_concurrently(
    jobs: list[tuple[str, list[str | Path]]],
    limit: int,
    environ: dict[str, dict[str, str]] | None = None,
    background: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Run the commands, ``limit`` at a time; show each one's output when it ends.

    ``environ`` adds variables to some jobs' environment, by label. Jobs labelled in
    ``background`` run at the lowest CPU priority (nice 19, on POSIX: about 1% of the
    CPU when they compete with the others) and only they count against ``limit``; the
    others all start at once. Returns each one's exit code, by label.
    """
    pending = list(jobs)
    nice = hasattr(os, "nice")
    running: list[tuple[str, subprocess.Popen[bytes], IO[bytes], float]] = []
    codes: dict[str, int] = {}
    heartbeat = time.monotonic()
    while pending or running:
        free = limit - sum(1 for job in running if job[0] in background)
        starting = [job for job in pending if job[0] not in background]
        starting += [job for job in pending if job[0] in background][: max(free, 0)]
        for label, command in starting:
            pending.remove((label, command))
            output = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the job ends
            print(f"+ [{label}] " + " ".join(str(a) for a in command), flush=True)
            process = subprocess.Popen(
                [str(a) for a in command],
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(environ or {}).get(label, {})},
                preexec_fn=_lowest_cpu_priority if label in background and nice else None,
            )
            running.append((label, process, output, time.monotonic()))
        time.sleep(0.2)
        for job in list(running):
            finished, cpu = _poll(job[1])
            if not finished:
                continue
            running.remove(job)
            done, ended, log, since = job
            log.seek(0)
            spent = f", {cpu:.0f} s of CPU" if cpu is not None else ""
            print(f"\n== {done}: exit {ended.returncode}, {time.monotonic() - since:.0f} s{spent}")
            sys.stdout.flush()
            sys.stdout.buffer.write(log.read())
            sys.stdout.flush()
            log.close()
            codes[done] = ended.returncode
        if running and time.monotonic() - heartbeat > 60:
            heartbeat = time.monotonic()
            print("... still running: " + ", ".join(job[0] for job in running), flush=True)
    return codes


# Test files whose tests wait on real time against deadlines, lifetimes or latencies:
# they run at normal CPU priority, so that no CPU-bound job competes with them (test()).
# The other test files run side by side with the static checks, in the background.
TIMED_TESTS = (
    "test_adapters_proof.py",
    "test_assume_role.py",
    "test_docs_real_time.py",
    "test_endpoint.py",
    "test_loopback_sts.py",
    "test_multiprocess.py",
    "test_refresh.py",
    "test_refresh_engine.py",
    "test_reliability.py",
    "test_security.py",
    "test_stabilize.py",
)

# The timed tests run in two shards per stack, side by side: they wait on real time far
# more than they compute, so two at once halve the longest job (one shard was 10 min of a
# fresh clone's 11). These files make the second shard, about half of the waiting.
TIMED_SECOND_SHARD = ("test_adapters_proof.py", "test_endpoint.py", "test_stabilize.py")

# Files (or single tests, "file::test") a stack leaves out, to keep a fresh clone's run
# under 10 minutes on 2 cores. Each repeats on S2 what S1 shows of code that does not
# depend on the stack:
# - the adapters' proof (a minute of real time): the adapters read the one engine, whose
#   behaviour per stack the other files test, and their untimed tests run on S2 too;
# - the multi-process proofs with the most processes (a real `uvicorn --workers 4`, and
#   eight workers under traffic for several lifetimes: 17 s of CPU): the file cache and
#   its lock are this library's own code; S2 still runs the file's other tests (eight
#   processes started at once, a killed or stuck lock holder, damaged entries).
STACK_SKIPS = {
    "s2": (
        "test_adapters_proof.py",
        "test_multiprocess.py::test_uvicorn_with_four_workers_makes_one_assume_role",
        "test_multiprocess.py::"
        "test_eight_processes_under_steady_traffic_make_about_one_call_per_lifetime",
    )
}


# Examples of each offline fuzzer of tests/test_fuzz.py (the API's and the CLI's: issue
# 12 asks for a few thousand): the full count on stack S1, what a plain install gets; a
# shorter pass on S2, whose older botocore validates parameters too. (pytest run by hand
# uses the defaults in tests/test_fuzz.py.)
FUZZ_EXAMPLES = {"s1": 2000, "s2": 500}

# mypy --strict runs on each stack with the stubs users install (the stubs-s1/stubs-s2
# groups), over the library, the examples and the typing tests: what a user's type
# checker infers from documented usage (tests/typing/*.py hold assert_type checks).
# Each typing test turns on --warn-unreachable for itself (its first line,
# TYPING_TEST_HEADER): an assert_type after a point mypy thinks unreachable is never
# checked, and would pass whatever it says.
TYPING_TEST_HEADER = "# mypy: warn-unreachable\n"
_TYPING_TESTS = ("tests/typing/test_assume_role_types.py", "tests/typing/test_pool_types.py")
MYPY_FILES: dict[str, tuple[str, ...]] = {
    "s1": ("src", "examples", *_TYPING_TESTS),
    # aioboto3 exists only on stack S2.
    "s2": ("src", "examples", *_TYPING_TESTS, "tests/typing/test_aioboto3_types.py"),
    # The adapters against every consumer's package, the SDK v4 (3.12 syntax) included.
    "s3": ("src/aio_assume_role_lib/adapters", "tests/typing/test_adapters_types.py"),
}
# mypy's python_version (pyproject.toml) is 3.10; the SDK v4's sources need 3.12.
MYPY_ARGS: dict[str, tuple[str, ...]] = {"s3": ("--python-version", "3.12")}


# What the s3 environment (Python >= 3.12) runs: the adapters' tests only, the AWS SDK
# for Python v4's among them (everything else runs on s1 and s2).
ADAPTER_TESTS = ("test_adapters.py", "test_adapters_proof.py", "test_adapters_sdk_v4.py")

# The fuzzers: a part of their own, so that their minute of CPU on S1 runs beside the
# other untimed tests instead of after them.
FUZZ_TESTS = ("test_fuzz.py",)


def _pytest(
    stack: str, pytest_args: list[str], part: str, only: tuple[str, ...] | None = None
) -> list[str | Path]:
    """pytest on one stack, for one part of the test files: "timed 1", "timed 2", "fuzz"
    or "untimed" (of the files in ``only``, if given)."""
    # Every test module and folder of tests/ is in exactly one of the three parts.
    entries = sorted(
        path.name
        for path in (ROOT / "tests").iterdir()
        if (path.is_dir() and path.name != "__pycache__")
        or (path.name.startswith("test_") and path.suffix == ".py")
    )

    skipped = STACK_SKIPS.get(stack, ())

    def part_of(name: str) -> str:
        if (only is not None and name not in only) or name in skipped:
            return "none"
        if name in TIMED_TESTS:
            return "timed 2" if name in TIMED_SECOND_SHARD else "timed 1"
        return "fuzz" if name in FUZZ_TESTS else "untimed"

    ignored = [name for name in entries if part_of(name) != part]
    return [
        _bin(VENVS / stack, "python"),
        "-m",
        "pytest",
        "--durations=10",  # where the time goes, in every CI log
        *pytest_args,
        *(f"--ignore=tests/{name}" for name in ignored),
        *(f"--deselect=tests/{test}" for test in skipped if "::" in test),
    ]


def test(pytest_args: list[str]) -> int:
    started = time.monotonic()
    # Every environment the jobs below use, made side by side (uv waits on downloads and
    # the disk more than on the CPU); the package and benchmark jobs then find theirs.
    uv()  # installed once, before the threads look for it
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(STACKS)) as making:
        envs = dict(zip(STACKS, making.map(ensure_env, STACKS), strict=True))
    stack_envs = {name: envs[name] for name in ("s1", "s2")}
    # s3 (Python >= 3.12): the adapters' tests only; absent without a Python 3.12.
    s3 = envs["s3"]
    moto = envs["moto"]
    os.environ["AIO_ARL_MOTO_SERVER"] = str(_bin(moto, "moto_server"))
    os.environ["AIO_ARL_AWS_CLI"] = str(_bin(envs["awscli"], "aws"))
    s1 = stack_envs["s1"]
    dev: list[str | Path] = [sys.executable, Path(__file__).resolve()]
    environments = time.monotonic()

    # pytest exits 5 when it selected no test. Each stack runs in three parts; a part may
    # select nothing (dev.py test -k ...), but a stack whose parts all select nothing is
    # a failure, as is any other non-zero exit.
    #
    # All at once: the timed tests of both stacks in the foreground (they sleep more than
    # they compute: each keeps about half a core busy), everything else in the background
    # at the lowest CPU priority (nice 19), which gets the rest of the two cores and
    # yields them whenever a timed test wakes up. Beside CPU-bound jobs of equal
    # priority, the timed tests' 0.5-1 s deadlines and 2 s credential lifetimes were
    # missed on this 2-core machine; at nice 10 too (the background then still had about
    # a fifth of the CPU: requests signed with 6 s credentials reached STS expired). The
    # background tests stall for up to tens of seconds instead: their waits that only
    # catch a hang allow HANG_SECONDS (tests/conftest.py), and none asserts a duration.
    timed: list[tuple[str, list[str | Path]]] = [
        (f"pytest {name}, {part}", _pytest(name, pytest_args, part))
        for part in ("timed 1", "timed 2")
        for name in stack_envs
    ]
    if s3 is not None:
        timed.append(("pytest s3, timed 2", _pytest("s3", pytest_args, "timed 2", ADAPTER_TESTS)))
    # The background, longest first.
    jobs: list[tuple[str, list[str | Path]]] = [
        (f"pytest {name}, untimed tests", _pytest(name, pytest_args, "untimed"))
        for name in stack_envs
    ]
    if s3 is not None:
        jobs.append(
            ("pytest s3, untimed tests", _pytest("s3", pytest_args, "untimed", ADAPTER_TESTS))
        )
    jobs += [
        # (the adapters' benchmarks too: bench() runs them after the others)
        ("benchmarks, smoke mode (catches rot, not regressions)", [*dev, "bench", "--smoke"]),
        ("package: build, check, install the wheel per stack", [*dev, "package"]),
    ]
    jobs += [(f"pytest {name}, fuzzers", _pytest(name, pytest_args, "fuzz")) for name in stack_envs]
    typed_envs = {**stack_envs, **({"s3": s3} if s3 is not None else {})}
    for name, env in typed_envs.items():
        # A cache per stack: they see different aiobotocore versions and stubs.
        cache = ROOT / ".mypy_cache" / name
        mypy: list[str | Path] = [_bin(env, "mypy"), "--strict", "--cache-dir", cache]
        jobs.append((f"mypy {name}", [*mypy, *MYPY_ARGS.get(name, ()), *MYPY_FILES[name]]))
    jobs += [
        ("mkdocs build --strict", [_bin(s1, "mkdocs"), "build", "--strict", "-q"]),
        ("ruff check", [_bin(s1, "ruff"), "check", "src", "tests", "examples", "benchmarks"]),
        (
            "ruff format",
            [_bin(s1, "ruff"), "format", "--check", "src", "tests", "examples", "benchmarks"],
        ),
    ]
    fuzz = {
        f"pytest {name}, fuzzers": {"AIO_ARL_FUZZ_EXAMPLES": str(examples)}
        for name, examples in FUZZ_EXAMPLES.items()
        if "AIO_ARL_FUZZ_EXAMPLES" not in os.environ  # a count given by hand stands
    }
    background = frozenset(label for label, _ in jobs)
    codes = run_concurrently(timed + jobs, limit=4, environ=fuzz, background=background)

    failed = [
        label
        for label, code in codes.items()
        if code and not (code == 5 and label.startswith("pytest"))
    ]
    # (s3 runs a few files only: `dev.py test -k ...` may select nothing there.)
    for name in stack_envs:
        parts = [code for label, code in codes.items() if label.startswith(f"pytest {name},")]
        if all(code == 5 for code in parts):
            failed.append(f"pytest {name} (no test selected)")
    for stack, skips in STACK_SKIPS.items():
        for skip in skips:  # a renamed file or test would silently run again
            file, _, name = skip.partition("::")
            path = ROOT / "tests" / file
            if not path.exists() or (name and f"def {name}(" not in path.read_text("utf-8")):
                failed.append(f"STACK_SKIPS[{stack!r}]: no test {skip}")
    checked = {path for files in MYPY_FILES.values() for path in files}
    for path in sorted((ROOT / "tests" / "typing").glob("test_*.py")):
        if path.relative_to(ROOT).as_posix() not in checked:
            failed.append(f"mypy: {path.relative_to(ROOT)} is in no stack's MYPY_FILES")
        if not path.read_text(encoding="utf-8").startswith(TYPING_TEST_HEADER):
            failed.append(
                f"mypy: {path.relative_to(ROOT)} does not start with {TYPING_TEST_HEADER!r}"
            )
    print(
        f"\ntimes: environments {environments - started:.0f} s, "
        f"checks and tests {time.monotonic() - environments:.0f} s"
    )
    if s3 is None:
        print(MISSING_PYTHON_312.format(name="s3"), flush=True)
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    if s3 is None:
        print("checks passed on s1 and s2; s3 (Python >= 3.12, the SDK v4 adapter) SKIPPED")
        return 0
    print("all checks passed on s1, s2 and s3")
    return 0


def bench(args: list[str]) -> int:
    env = need_env("bench")
    # Stack S1 (aiobotocore 3.x) gives the headline figures; the bench environment (S2)
    # runs the anchors that need aioboto3 too, and draws the report from both runs.
    s1 = need_env("s1")
    run_py = ROOT / "benchmarks" / "run.py"
    # The smoke run (dev.py test) catches rot in the scripts, every anchor included, on
    # the bench environment alone: a second stack doubled its minute and a half of CPU,
    # with every job of a fresh clone's test run competing for two cores.
    also = [] if "--smoke" in args else ["--also", _bin(s1, "python")]
    code = _run(_bin(env, "python"), run_py, *also, *args, cwd=ROOT)
    if any(arg == "--only" or arg.startswith("--only=") for arg in args):
        # A partial run (the page keeps the other scenarios' rows): no adapters' figures.
        return code
    # The adapters' figures (docs/other-clients.md quotes them), on Python >= 3.12 when
    # there is one so that the SDK v4 is measured too.
    adapters_env = ensure_env("s3") or s1
    smoke = ["--smoke"] if "--smoke" in args else []
    adapters_py = ROOT / "benchmarks" / "adapters.py"
    return code or _run(_bin(adapters_env, "python"), adapters_py, *smoke, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "package", "setup"}:
        print(__doc__)
        return 2
    if argv[0] == "demo":
        return demo()
    if argv[0] == "bench":
        return bench(argv[1:])
    if argv[0] == "package":
        failed = package()
        print("FAILED: " + ", ".join(failed) if failed else "package checks passed")
        return 1 if failed else 0
    if argv[0] == "setup":
        for name in STACKS:
            ensure_env(name)
        return 0
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

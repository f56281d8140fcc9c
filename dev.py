#!/usr/bin/env python3
"""Project commands that work on a fresh machine with only Python 3.10+ and git.

    python3 dev.py demo     run the demo against a local STS endpoint (no AWS account)
    python3 dev.py test     lint, type-check and run the whole test suite on both stacks
    python3 dev.py bench    run the benchmarks on both stacks and write the page and charts
    python3 dev.py package  build the sdist and wheel, check them, install the wheel per stack

Each command creates the virtual environments it needs under .venv/ and installs
what it needs into them; an environment is rebuilt when pyproject.toml changes.

Stacks:
    s1    newest aiobotocore 3.x, with the httpx backend and trio
    s2    newest aioboto3 (15.5.0), which pins aiobotocore 2.25.1
    moto  moto's STS server, in its own environment: moto wants a newer botocore
          than aiobotocore allows, so the tests run it as a subprocess from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENVS = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"

STACKS: dict[str, list[str]] = {
    "s1": ["-e", f"{ROOT}[trio,test,docs]"],
    "s2": ["-e", f"{ROOT}[aioboto3,test]"],
    "moto": ["moto[sts,iam]==5.2.5", "flask", "flask-cors"],
    # Benchmarks run on stack s2 so that every anchor installs beside this library:
    # aws-assume-role-lib (sync) and aioboto3-assume both need boto3/aioboto3.
    "bench": ["-e", f"{ROOT}[aioboto3,test]", "aioboto3-assume==0.1.2", "matplotlib>=3.8"],
    "release": ["build>=1.2", "twine>=5"],
}

# What the built wheel must (and must not) hold.
WHEEL_MUST_HAVE = ("aio_assume_role_lib/__init__.py", "aio_assume_role_lib/py.typed")
WHEEL_MUST_NOT_HAVE = ("tests/", "benchmarks/", "examples/", "docs/", "__pycache__", ".pyc")

# Installing the wheel in a fresh environment: (label, extra, expected versions).
# With the aioboto3 extra, pip must land on aioboto3 15.5.0 + aiobotocore 2.25.1, never on
# aioboto3 7.0.0 (what an unpinned aioboto3 beside aiobotocore 3.x resolves to).
WHEEL_INSTALLS = (
    ("s1", "trio", {"aiobotocore": "3."}),
    ("s2", "aioboto3", {"aioboto3": "15.5.0", "aiobotocore": "2.25.1"}),
)


def _bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def _run(*args: str | Path, **kwargs: object) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], **kwargs)  # type: ignore[call-overload,no-any-return]


def ensure_env(name: str) -> Path:
    """Create .venv/<name> with the stack's packages, unless it is already up to date."""
    env = VENVS / name
    stamp = env / ".installed"
    wanted = hashlib.sha256(PYPROJECT.read_bytes() + repr(STACKS[name]).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and _bin(env, "python").exists():
        return env
    print(f"== setting up .venv/{name} (first run takes a minute or two)", flush=True)
    python = _bin(env, "python")
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(env)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if _run(*pip, "--upgrade", "pip") or _run(*pip, *STACKS[name]):
        sys.exit(f"dev.py: installing .venv/{name} failed")
    stamp.write_text(wanted)
    return env


def _installed_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def package() -> list[str]:
    """Build, check and install the artifacts as a user would; return what failed."""
    failed: list[str] = []
    tools = ensure_env("release")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    if _run(
        _bin(tools, "python"), "-m", "build", "--outdir", dist, ROOT, stdout=subprocess.DEVNULL
    ):
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

    # A plain install resolves to the newest aiobotocore 3.x (resolution only).
    report = dist / "plain-install.json"
    if _run(
        _bin(tools, "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--dry-run",
        "--ignore-installed",
        "--report",
        report,
        wheel,
    ):
        failed.append("plain install resolution")
    else:
        plan = {
            i["metadata"]["name"]: i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]
        }
        print(f"plain install resolves to aiobotocore {plan.get('aiobotocore')}")
        if not plan.get("aiobotocore", "").startswith("3."):
            failed.append("plain install is not on aiobotocore 3.x")

    for label, extra, expected in WHEEL_INSTALLS:
        env = VENVS / f"wheel-{label}"
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        python = _bin(env, "python")
        print(f"\n== installing {wheel.name}[{extra}] into a fresh .venv/wheel-{label}", flush=True)
        if _run(
            python, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[{extra}]"
        ):
            failed.append(f"wheel install [{extra}]")
            continue
        versions = _installed_versions(python, list(expected))
        print(f"resolved: {versions}")
        if any(not versions.get(n, "").startswith(v) for n, v in expected.items()):
            failed.append(f"wheel [{extra}] resolved to {versions}")
        # Run from a directory without src/ so that only the installed wheel is importable.
        if _run(python, ROOT / "examples" / "demo.py", cwd=env, stdout=subprocess.DEVNULL):
            failed.append(f"demo from the wheel [{extra}]")
        if _run(_bin(env, "aio-assume-role"), "--help", cwd=env, stdout=subprocess.DEVNULL):
            failed.append(f"aio-assume-role --help from the wheel [{extra}]")
    return failed


def demo() -> int:
    env = ensure_env("s1")
    return _run(_bin(env, "python"), ROOT / "examples" / "demo.py")


def test(pytest_args: list[str]) -> int:
    moto = ensure_env("moto")
    stack_envs = {name: ensure_env(name) for name in ("s1", "s2")}
    environ = {**os.environ, "AIO_ARL_MOTO_SERVER": str(_bin(moto, "moto_server"))}
    failed: list[str] = []
    s1 = stack_envs["s1"]
    checks = [
        ("ruff check", [_bin(s1, "ruff"), "check", "src", "tests", "examples", "benchmarks"]),
        (
            "ruff format",
            [_bin(s1, "ruff"), "format", "--check", "src", "tests", "examples", "benchmarks"],
        ),
    ]
    for name, env in stack_envs.items():
        checks.append((f"mypy {name}", [_bin(env, "mypy"), "--strict", "src"]))
    checks.append(("mkdocs build --strict", [_bin(s1, "mkdocs"), "build", "--strict", "-q"]))
    for label, cmd in checks:
        print(f"\n== {label}", flush=True)
        if _run(*cmd, cwd=ROOT):
            failed.append(label)
    for name, env in stack_envs.items():
        print(f"\n== pytest on stack {name}", flush=True)
        # pytest exits 5 when it collected no test: that is a failure here too.
        code = _run(_bin(env, "python"), "-m", "pytest", *pytest_args, cwd=ROOT, env=environ)
        if code:
            failed.append(f"pytest {name} (exit {code})")
    print("\n== benchmarks, smoke mode (catches rot, not regressions)", flush=True)
    if bench(["--smoke"]):
        failed.append("benchmark smoke run")
    print("\n== package: build, check, install the wheel per stack", flush=True)
    failed.extend(package())
    print()
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    print("all checks passed on both stacks")
    return 0


def bench(args: list[str]) -> int:
    env = ensure_env("bench")
    # Stack S1 (aiobotocore 3.x) gives the headline figures; the bench environment (S2)
    # runs the anchors that need aioboto3 too, and draws the report from both runs.
    s1 = ensure_env("s1")
    run_py = ROOT / "benchmarks" / "run.py"
    return _run(_bin(env, "python"), run_py, "--also", _bin(s1, "python"), *args, cwd=ROOT)


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

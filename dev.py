#!/usr/bin/env python3
"""Project commands that work on a fresh machine with only Python 3.10+ and git.

    python3 dev.py demo     run the demo against a local STS endpoint (no AWS account)
    python3 dev.py test     lint, type-check and run the whole test suite on both stacks
    python3 dev.py bench    run the benchmarks (SPEC section 5) and write the table and chart

Each command creates the virtual environments it needs under .venv/ and installs
what it needs into them; an environment is rebuilt when pyproject.toml changes.

Stacks (SPEC section 1):
    s1    newest aiobotocore 3.x, with the httpx backend and trio
    s2    newest aioboto3 (15.5.0), which pins aiobotocore 2.25.1
    moto  moto's STS server, in its own environment: moto wants a newer botocore
          than aiobotocore allows, so the tests run it as a subprocess from here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENVS = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"

STACKS: dict[str, list[str]] = {
    "s1": ["-e", f"{ROOT}[trio,test]"],
    "s2": ["-e", f"{ROOT}[aioboto3,test]"],
    "moto": ["moto[sts,iam]==5.2.5", "flask", "flask-cors"],
    # Benchmarks run on stack s2 so that every anchor installs beside this library:
    # aws-assume-role-lib (sync) and aioboto3-assume both need boto3/aioboto3.
    "bench": ["-e", f"{ROOT}[aioboto3,test]", "aioboto3-assume==0.1.2", "matplotlib>=3.8"],
}


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
        ("ruff format", [_bin(s1, "ruff"), "format", "--check", "src", "tests", "examples", "benchmarks"]),
    ]
    for name, env in stack_envs.items():
        checks.append((f"mypy {name}", [_bin(env, "mypy"), "--strict", "src"]))
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
    print()
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    print("all checks passed on both stacks")
    return 0


def bench(args: list[str]) -> int:
    env = ensure_env("bench")
    return _run(_bin(env, "python"), ROOT / "benchmarks" / "run.py", *args, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "setup"}:
        print(__doc__)
        return 2
    if argv[0] == "demo":
        return demo()
    if argv[0] == "bench":
        return bench(argv[1:])
    if argv[0] == "setup":
        for name in STACKS:
            ensure_env(name)
        return 0
    return test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

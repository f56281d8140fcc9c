"""Every Python example in docs/ runs, against the loopback STS; the figure and tables are current.

How docs/*.md code blocks are treated (the conventions for whoever writes a page):

- A ```` ```python ```` block is **run**. The blocks of a page run in order in one
  namespace, like a notebook; ``await`` is allowed at top level (such a block runs in its
  own ``asyncio.run()``); ``__name__`` is ``"__docs__"``, so ``if __name__ ==
  "__main__":`` parts do not run. Before each block the environment points at a
  ``LoopbackSTS`` (credentials, ``AWS_ENDPOINT_URL_STS``, region) and ``ROLE_ARN`` names a
  role for the example services; the working directory is
  a temporary one, ``examples/`` is importable, and ``getpass.getpass`` answers
  ``"123456"`` (an MFA code).
- An HTML comment on the line just before the fence, at the fence's indentation, changes
  that:

  - ``<!-- not-run: why -->``: shown, never run; the reason is required.
  - ``<!-- requires: trio, httpx -->``: run alone, in a namespace of its own (so it must
    not need the page's other blocks), where these modules are installed; skipped on
    the other stack, so each such block runs on one of the two.
  - ``<!-- run: pytest -->``: the block is a pytest module; it is run by pytest in a
    subprocess and all its tests must pass.

- A block made only of ``--8<-- "path[:section]"`` lines includes a file at build time
  (pymdownx.snippets); the file must be one that another test runs (``INCLUDED_FILES``).
- Every fence names its language, from ``LANGUAGES``.
"""

from __future__ import annotations

import ast
import asyncio
import getpass
import importlib.util
import inspect
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib.testing import LoopbackSTS

from ._s3_loopback import LoopbackS3

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

LANGUAGES = {"python", "console", "text", "json", "ini", "toml", "yaml"}
# Files that docs include with --8<--, and the test that runs each.
INCLUDED_FILES = {
    "examples/fastapi_app.py": ("tests/test_examples.py", 'load_example("fastapi_app")'),
    "examples/aiohttp_app.py": ("tests/test_examples.py", 'load_example("aiohttp_app")'),
    "examples/etl_fanout.py": ("tests/test_examples.py", 'load_example("etl_fanout")'),
}
# Modules the docs' examples import from examples/ (forgotten after each page).
EXAMPLE_MODULES = {path.stem for path in EXAMPLES.glob("*.py")}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^<!--\s*(?P<kind>[\w-]+)\s*:\s*(?P<value>.*?)\s*-->$")
_INCLUDE = re.compile(r'^--8<--\s+"(?P<path>[^":]+)(?::(?P<section>[\w-]+))?"$')


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the first line of the code, 1-based
    language: str
    code: str
    directive: str | None  # "not-run", "requires", "run", or None
    directive_value: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def includes(self) -> list[re.Match[str]]:
        lines = [line.strip() for line in self.code.splitlines() if line.strip()]
        matches = [_INCLUDE.match(line) for line in lines]
        return [m for m in matches if m is not None] if lines and all(matches) else []

    @property
    def kind(self) -> str:
        """``run``, ``pytest``, ``include``, ``not-run`` or ``other`` (not Python)."""
        if self.language != "python":
            return "other"
        if self.includes:
            return "include"
        if self.directive == "not-run":
            return "not-run"
        if self.directive == "run" and self.directive_value == "pytest":
            return "pytest"
        return "run"

    @property
    def requirements(self) -> list[str]:
        if self.directive != "requires":
            return []
        return [name.strip() for name in self.directive_value.split(",") if name.strip()]


def parse_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        info = opening["info"].strip()
        previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        directive = _DIRECTIVE.match(previous)
        body: list[str] = []
        index += 1
        while index < len(lines):
            stripped = lines[index].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        else:
            raise AssertionError(f"{page.relative_to(ROOT)}: unclosed code fence")
        start_line = index - len(body) + 1
        blocks.append(
            Block(
                page=page,
                line=start_line,
                language=info.split()[0] if info else "",
                code="\n".join(body) + "\n",
                directive=directive["kind"] if directive else None,
                directive_value=directive["value"] if directive else "",
            )
        )
        index += 1
    return blocks


PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS_OF = {page: parse_blocks(page) for page in PAGES}
BLOCKS = [block for page in PAGES for block in BLOCKS_OF[page]]


def _page_id(page: Path) -> str:
    return str(page.relative_to(DOCS))


# --- the conventions ----------------------------------------------------------------------


def test_every_fence_names_a_known_language() -> None:
    unknown = [
        f"{b.where}: {b.language or '(none)'}" for b in BLOCKS if b.language not in LANGUAGES
    ]
    assert unknown == [], f"use one of {sorted(LANGUAGES)}"


def test_every_python_block_is_run_included_or_marked() -> None:
    problems = []
    for block in BLOCKS:
        if block.language != "python":
            continue
        if block.directive not in (None, "not-run", "requires", "run"):
            problems.append(f"{block.where}: unknown directive {block.directive!r}")
        if block.directive == "not-run" and not block.directive_value:
            problems.append(f"{block.where}: say why it is not run: <!-- not-run: why -->")
        if block.directive == "run" and block.directive_value != "pytest":
            problems.append(f"{block.where}: the only run directive is <!-- run: pytest -->")
        if block.directive == "requires" and not block.requirements:
            problems.append(f"{block.where}: <!-- requires: module, ... --> names no module")
        for include in block.includes:
            path, section = include["path"], include["section"]
            if path not in INCLUDED_FILES:
                problems.append(f"{block.where}: includes {path}, which no test runs")
                continue
            if section and f"--8<-- [start:{section}]" not in (ROOT / path).read_text():
                problems.append(f"{block.where}: {path} has no section {section!r}")
    assert problems == []
    kinds = [block.kind for block in BLOCKS]
    # A guard against a parser that silently finds nothing.
    assert kinds.count("run") >= 25
    assert kinds.count("include") >= 4
    assert kinds.count("pytest") >= 1


def test_included_files_are_run_by_their_tests() -> None:
    for path, (test_file, marker) in INCLUDED_FILES.items():
        assert (ROOT / path).is_file(), path
        assert marker in (ROOT / test_file).read_text(), f"{test_file} does not run {path}"


# --- running the examples -------------------------------------------------------------------


def run_block(block: Block, namespace: dict[str, Any]) -> None:
    # Padding keeps line numbers in tracebacks those of the page.
    source = "\n" * (block.line - 1) + block.code
    code = compile(
        source, str(block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


def run_example(block: Block, namespace: dict[str, Any], sts: LoopbackSTS) -> None:
    os.environ.update(sts.environ())
    try:
        run_block(block, namespace)
    except BaseException as error:
        raise AssertionError(f"the example at {block.where} failed: {error!r}") from error


@pytest.fixture
def docs_environment(
    sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[LoopbackSTS]:
    """What a reader's shell would be: credentials and STS in the environment, and more."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(getpass, "getpass", lambda prompt="", stream=None: "123456")
    # The example services need the role to assume, as their "Run it" sections say.
    monkeypatch.setenv("ROLE_ARN", "arn:aws:iam::123456789012:role/Reader")
    # docs/other-clients.md's S3 programs (httpx, obstore, s3fs) reach an S3-like
    # loopback endpoint through the standard variable (and obstore's for plain HTTP).
    s3 = LoopbackS3(sts).__enter__()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    # ... and its Bedrock recipes a loopback Bedrock runtime (the same endpoint).
    monkeypatch.setenv("AWS_BEDROCK_BASE_URL", s3.endpoint_url + "/openai/v1")
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", s3.endpoint_url)
    environ = dict(os.environ)
    loggers = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root_level, root_handlers = logging.root.level, list(logging.root.handlers)
    patched = [AioSession]
    if importlib.util.find_spec("aioboto3") is not None:
        import aioboto3

        patched.append(aioboto3.Session)
    had_method = {cls: "assume_role" in vars(cls) for cls in patched}
    try:
        yield sts
    finally:
        s3.__exit__(None, None, None)
        os.environ.clear()
        os.environ.update(environ)
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
        logging.root.setLevel(root_level)
        for handler in set(logging.root.handlers) - set(root_handlers):  # basicConfig()
            logging.root.removeHandler(handler)
        for cls, had in had_method.items():  # patch_aiobotocore() / patch_aioboto3()
            if not had and "assume_role" in vars(cls):
                delattr(cls, "assume_role")
        for name in EXAMPLE_MODULES:
            sys.modules.pop(name, None)


PAGES_WITH_EXAMPLES = [
    page for page in PAGES if any(b.kind == "run" and not b.requirements for b in BLOCKS_OF[page])
]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=_page_id)
def test_page_examples_run(page: Path, docs_environment: LoopbackSTS) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in BLOCKS_OF[page]:
        if block.kind == "run" and not block.requirements:
            run_example(block, namespace, docs_environment)


CONDITIONAL_BLOCKS = [block for block in BLOCKS if block.kind == "run" and block.requirements]


@pytest.mark.parametrize("block", CONDITIONAL_BLOCKS, ids=lambda block: block.where)
def test_example_for_some_stacks_runs(block: Block, docs_environment: LoopbackSTS) -> None:
    """A ``requires:`` block runs alone (so it must not need the page's earlier blocks)."""
    for module in block.requirements:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed on this stack")
    run_example(block, {"__name__": "__docs__"}, docs_environment)


PYTEST_BLOCKS = [block for block in BLOCKS if block.kind == "pytest"]


@pytest.mark.parametrize("block", PYTEST_BLOCKS, ids=lambda block: block.where)
def test_pytest_examples_pass(block: Block, tmp_path: Path) -> None:
    module = tmp_path / "test_docs_example.py"
    module.write_text(block.code, encoding="utf-8")
    tests = len(re.findall(r"^(?:async )?def test_", block.code, re.MULTILINE))
    result = subprocess.run(
        # hypothesis's plugin (where installed) imports all of hypothesis: seconds, unused.
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            str(module),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout, result.stdout


# --- the figure and the numbers the pages state -----------------------------------------------


def _load_figures() -> Any:
    spec = importlib.util.spec_from_file_location("_docs_figures", DOCS / "_figures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_refresh_windows_figure_is_drawn_from_the_current_defaults() -> None:
    figures = _load_figures()
    committed = figures.OUTPUT.read_text(encoding="utf-8")
    assert committed == figures.render_svg(), "run: python docs/_figures.py"
    assert "images/refresh-windows.svg" in (DOCS / "concepts.md").read_text()


@pytest.mark.parametrize("lifetime", [900, 3600, 43200])
def test_refresh_window_table_matches_refresh_policy(lifetime: int) -> None:
    policy = RefreshPolicy()
    earliest, mandatory_at = policy.windows(obtained_at=0, expiry=lifetime, rand=0.0)
    latest, _ = policy.windows(obtained_at=0, expiry=lifetime, rand=1.0)
    lines = (DOCS / "concepts.md").read_text().splitlines()
    stated = next(line for line in lines if line.startswith(f"| {lifetime} s "))
    cells = [cell.strip() for cell in stated.strip("|").split("|")]
    assert cells[1:] == [
        f"{lifetime - latest:g}-{lifetime - earliest:g} s before expiry",
        f"{lifetime - mandatory_at:g} s before expiry",
    ]


def test_refresh_policy_table_states_the_defaults() -> None:
    lines = (DOCS / "concepts.md").read_text().splitlines()
    default = RefreshPolicy()
    for name in RefreshPolicy.__dataclass_fields__:
        row = next((line for line in lines if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"concepts.md does not list RefreshPolicy.{name}"
        stated = row.split("|")[2].strip().strip("`")
        value = getattr(default, name)
        assert (stated == "None") if value is None else float(stated) == value, name


def _load_docs_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_has_a_reference_page() -> None:
    import aio_assume_role_lib

    pages = [DOCS / "reference.md", *sorted((DOCS / "reference").glob("*.md"))]
    documented = {
        match
        for page in pages
        for match in re.findall(r"^::: aio_assume_role_lib\.(\w+)", page.read_text(), re.M)
    }
    assert set(aio_assume_role_lib.__all__) - documented == set()
    assert "testing" in documented


def test_doctest_examples_render_as_separate_code_blocks() -> None:
    pytest.importorskip("griffe")  # the docs tools are on one stack only
    griffe_extension = _load_docs_module("_griffe_sphinx")
    docstring = (
        "Build it.\n\n>>> f(1)\n'a'\n>>> f(2,\n...   3)\n'b'\n\nRaises:\n    ValueError: no."
    )
    assert griffe_extension.sphinx_to_markdown(docstring) == (
        "Build it.\n\n```pycon\n>>> f(1)\n'a'\n```\n\n```pycon\n>>> f(2,\n...   3)\n'b'\n```"
        "\n\nRaises:\n    ValueError: no."
    )


def test_user_facing_text_cites_no_internal_spec() -> None:
    """Readers have no SPEC document: pages, README, examples and docstrings say the
    target or behaviour itself."""
    import aio_assume_role_lib

    texts = {str(path.relative_to(ROOT)): path.read_text() for path in PAGES}
    texts["README.md"] = (ROOT / "README.md").read_text()
    for path in [*EXAMPLES.glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        texts[str(path.relative_to(ROOT))] = path.read_text()
    for name in aio_assume_role_lib.__all__:
        texts[f"aio_assume_role_lib.{name}"] = (
            inspect.getdoc(getattr(aio_assume_role_lib, name)) or ""
        )
    assert [where for where, text in texts.items() if "SPEC" in text] == []


def test_readme_links_to_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "README.md should link to the documentation"
    for link in links:
        assert (ROOT / link).is_file(), link

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
  - ``<!-- run: script -->``: the block is a complete program, run as pasted with
    ``python`` in a subprocess (environment as above, working directory holding the
    page's ``title=`` files), and it must exit 0. It is also type-checked (below).

- A block with ``title="NAME.py"`` in its fence is a file the reader saves under that
  name (a later script of the page may import it). When ``examples/NAME.py`` exists, the
  block is a copy of it, kept equal by a test: the whole file, or one of its sections
  (between ``# --8<-- [start:NAME]`` and ``# --8<-- [end:NAME]`` lines, which the copy
  leaves out). It is not run in the page's namespace; the whole examples are run by
  tests/test_examples.py.
- Pages are plain Markdown, readable on GitHub and PyPI: no ``--8<--`` include lines.
- Complete programs (scripts, and title= files that are not a section) pass
  ``mypy --strict`` with the stubs users install (each guide gives the install line).
- Every fence names its language, from ``LANGUAGES``.
- An example that gives credentials a lifetime under a minute (``credential_lifetime=``)
  runs on real time: its page's examples, or the script, run from
  tests/test_docs_real_time.py, with the timed tests (``on_real_time``).
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
from .conftest import HANG_SECONDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

LANGUAGES = {"python", "console", "text", "json", "ini", "toml", "yaml"}
# The examples/ files that docs copy, and the test that runs each.
COPIED_FILES = {
    "fastapi_app.py": ("tests/test_examples.py", 'load_example("fastapi_app")'),
    "aiohttp_app.py": ("tests/test_examples.py", 'load_example("aiohttp_app")'),
    "etl_fanout.py": ("tests/test_examples.py", 'load_example("etl_fanout")'),
}
# Modules the docs' examples import from examples/ (forgotten after each page).
EXAMPLE_MODULES = {path.stem for path in EXAMPLES.glob("*.py")}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^<!--\s*(?P<kind>[\w-]+)\s*:\s*(?P<value>.*?)\s*-->$")
_INCLUDE = re.compile(r"^\s*--8<--\s", re.MULTILINE)
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')
_SECTION_MARK = re.compile(r"^# --8<-- \[(?P<edge>start|end):(?P<name>[\w-]+)\]$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the first line of the code, 1-based
    language: str
    code: str
    directive: str | None  # "not-run", "requires", "run", or None
    directive_value: str
    title: str  # the fence's title="...", or ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """``run``, ``pytest``, ``script``, ``file``, ``not-run`` or ``other`` (not Python)."""
        if self.language != "python":
            return "other"
        if self.directive == "not-run":
            return "not-run"
        if self.directive == "run" and self.directive_value == "pytest":
            return "pytest"
        if self.directive == "run" and self.directive_value == "script":
            return "script"
        if self.title:
            return "file"
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
        title = _TITLE.search(info)
        blocks.append(
            Block(
                page=page,
                line=start_line,
                language=info.split()[0] if info else "",
                code="\n".join(body) + "\n",
                directive=directive["kind"] if directive else None,
                directive_value=directive["value"] if directive else "",
                title=title["title"] if title else "",
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


def test_every_python_block_is_run_copied_or_marked() -> None:
    problems = []
    for block in BLOCKS:
        if block.language != "python":
            continue
        if block.directive not in (None, "not-run", "requires", "run"):
            problems.append(f"{block.where}: unknown directive {block.directive!r}")
        if block.directive == "not-run" and not block.directive_value:
            problems.append(f"{block.where}: say why it is not run: <!-- not-run: why -->")
        if block.directive == "run" and block.directive_value not in ("pytest", "script"):
            problems.append(f"{block.where}: run directives: <!-- run: pytest|script -->")
        if block.directive == "requires" and not block.requirements:
            problems.append(f"{block.where}: <!-- requires: module, ... --> names no module")
        if block.title and (block.directive == "not-run" or not block.title.endswith(".py")):
            problems.append(f"{block.where}: a title= names a Python file the reader saves")
    assert problems == []
    kinds = [block.kind for block in BLOCKS]
    # A guard against a parser that silently finds nothing.
    assert kinds.count("run") >= 25
    assert kinds.count("file") >= 6
    assert kinds.count("script") >= 3
    assert kinds.count("pytest") >= 1


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(DOCS)))
def test_pages_are_plain_markdown_without_includes(page: Path) -> None:
    """GitHub and PyPI show a page as it is: an include line would show as itself."""
    text = page.read_text(encoding="utf-8")
    assert _INCLUDE.search(text) is None, f"{page.relative_to(ROOT)} includes a file"
    # examples/ is in the repository, not in what pip installs: the pages copy what they need.
    assert "examples/ directory" not in text
    assert "python examples/" not in text


def example_parts(name: str) -> dict[str, str]:
    """examples/NAME: the whole file and each section, without the section marks."""
    lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    parts = {"": "\n".join(line for line in lines if not _SECTION_MARK.match(line)) + "\n"}
    open_sections: dict[str, list[str]] = {}
    for line in lines:
        mark = _SECTION_MARK.match(line)
        if mark and mark["edge"] == "start":
            open_sections[mark["name"]] = []
        elif mark:
            parts[mark["name"]] = "\n".join(open_sections.pop(mark["name"])).strip("\n") + "\n"
        else:
            for section in open_sections.values():
                section.append(line)
    return parts


FILE_BLOCKS = [block for block in BLOCKS if block.kind in ("file", "script") and block.title]
COPIES = [block for block in FILE_BLOCKS if block.title in COPIED_FILES]


@pytest.mark.parametrize("block", COPIES, ids=lambda block: block.where)
def test_copies_of_examples_are_equal_to_them(block: Block) -> None:
    parts = example_parts(block.title)
    assert block.code in parts.values(), (
        f"{block.where} differs from examples/{block.title} (the whole file or a section): "
        "copy it again"
    )


def test_every_copied_example_is_copied_whole_somewhere_and_run_by_its_test() -> None:
    copied_whole = {block.title for block in COPIES if block.code == example_parts(block.title)[""]}
    assert copied_whole == set(COPIED_FILES)
    for name, (test_file, marker) in COPIED_FILES.items():
        assert marker in (ROOT / test_file).read_text(), f"{test_file} does not run {name}"


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


_LIFETIME = re.compile(r"credential_lifetime\s*=\s*(?P<seconds>\d+(?:\.\d*)?)")


def on_real_time(block: Block) -> bool:
    """An example that gives credentials a lifetime of seconds and asserts on their
    refreshes (no ExpiredToken, one AssumeRole per lifetime). Such examples run with the
    timed tests, at full CPU priority (tests/test_docs_real_time.py): dev.py runs this file
    in the background at the lowest priority, where a busy CI run once starved a 2-second
    lifetime's example past its 0.4 s refresh window."""
    return any(float(found["seconds"]) < 60 for found in _LIFETIME.finditer(block.code))


def page_examples(page: Path) -> list[Block]:
    """The page's blocks that run in one namespace, in order."""
    return [block for block in BLOCKS_OF[page] if block.kind == "run" and not block.requirements]


PAGES_WITH_EXAMPLES = [page for page in PAGES if page_examples(page)]
REAL_TIME_PAGES = [
    page for page in PAGES_WITH_EXAMPLES if any(map(on_real_time, page_examples(page)))
]


def run_page_examples(page: Path, sts: LoopbackSTS) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in page_examples(page):
        run_example(block, namespace, sts)


@pytest.mark.parametrize(
    "page", [page for page in PAGES_WITH_EXAMPLES if page not in REAL_TIME_PAGES], ids=_page_id
)
def test_page_examples_run(page: Path, docs_environment: LoopbackSTS) -> None:
    run_page_examples(page, docs_environment)


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


SCRIPTS = [block for block in BLOCKS if block.kind == "script"]
REAL_TIME_SCRIPTS = [block for block in SCRIPTS if on_real_time(block)]


def write_page_files(page: Path, directory: Path) -> None:
    """The page's title= files, saved as a reader would (a section copy is not a file)."""
    for block in BLOCKS_OF[page]:
        if block.kind == "file" and (
            block.title not in COPIED_FILES or block.code == example_parts(block.title)[""]
        ):
            (directory / block.title).write_text(block.code, encoding="utf-8")


def script_name(block: Block) -> str:
    return block.title or f"{block.page.stem.replace('-', '_')}_{block.line}.py"


@pytest.mark.parametrize(
    "block", [block for block in SCRIPTS if not on_real_time(block)], ids=lambda block: block.where
)
def test_scripts_run_as_pasted(block: Block, sts: LoopbackSTS, tmp_path: Path) -> None:
    run_script(block, sts, tmp_path)


def run_script(block: Block, sts: LoopbackSTS, tmp_path: Path) -> None:
    """A complete program, run with python in a fresh process, as a reader would."""
    write_page_files(block.page, tmp_path)
    script = tmp_path / script_name(block)
    script.write_text(block.code, encoding="utf-8")
    environ = {
        **os.environ,
        **sts.environ(),
        "ROLE_ARN": "arn:aws:iam::123456789012:role/Reader",
        # The library under test (a reader's comes from pip install).
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stdout}{result.stderr}"


# Each guide gives the install line of the stubs its programs are checked with.
STUB_INSTALL_LINE = '"types-aiobotocore[essential,sts,s3]"'


def programs_of(page: Path) -> list[Block]:
    """Complete programs: scripts, title= files that are not a section copy, and in the
    guides the blocks for some stacks (complete programs too) where they can run."""
    return [
        block
        for block in BLOCKS_OF[page]
        if block.kind == "script"
        or (
            block.kind == "file"
            and (block.title not in COPIED_FILES or block.code == example_parts(block.title)[""])
        )
        or (
            page.parent.name == "guides"
            and block.kind == "run"
            and block.requirements
            and all(importlib.util.find_spec(module) for module in block.requirements)
        )
    ]


PAGES_WITH_PROGRAMS = [page for page in PAGES if programs_of(page)]


def test_the_guides_programs_are_found() -> None:
    guides = {page.name for page in PAGES_WITH_PROGRAMS if page.parent.name == "guides"}
    assert guides >= {"fastapi.md", "aiohttp.md", "worker.md"}


@pytest.mark.parametrize("page", PAGES_WITH_PROGRAMS, ids=_page_id)
def test_programs_pass_mypy_strict(page: Path, tmp_path: Path) -> None:
    """What a reader's type checker says of the page's programs, with the stubs the
    page tells them to install (this stack's stubs-s1 or stubs-s2 group)."""
    pytest.importorskip("mypy")
    if page.parent.name == "guides":
        assert STUB_INSTALL_LINE in page.read_text(), f"{page.name} gives no stub install line"
    write_page_files(page, tmp_path)
    for block in programs_of(page):
        (tmp_path / script_name(block)).write_text(block.code, encoding="utf-8")
    stack = "s2" if importlib.util.find_spec("aioboto3") else "s1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--warn-unreachable",
            "--cache-dir",
            str(ROOT / ".mypy_cache" / f"docs-{stack}"),
            # The docs' programs live in no package; mypy's python_version is 3.10.
            "--config-file",
            str(ROOT / "pyproject.toml"),
            *sorted(path.name for path in tmp_path.glob("*.py")),
        ],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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


def test_the_recorded_calls_fields_are_all_documented() -> None:
    import dataclasses

    from aio_assume_role_lib.testing import STSCall

    lines = (DOCS / "testing.md").read_text().splitlines()
    documented = {m[1] for line in lines if (m := re.match(r"^\| `(\w+)` \|", line))}
    fields = {field.name for field in dataclasses.fields(STSCall)}
    assert fields <= documented, f"docs/testing.md does not describe {fields - documented}"

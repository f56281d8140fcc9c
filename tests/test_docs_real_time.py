"""The docs' examples that run on real time: credentials of a few seconds, and assertions
on their refreshes (tests/test_docs.py runs every other example, and says how).

They are in a file of their own so that dev.py runs them with the timed tests, at full CPU
priority: in the background, at the lowest, a busy run can starve an example past the
refresh window of its 2-second credentials, and its requests reach STS expired.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aio_assume_role_lib.testing import LoopbackSTS

from . import test_docs
from .test_docs import REAL_TIME_PAGES, REAL_TIME_SCRIPTS, Block

# test_docs.py's fixture: the reader's environment (loopback STS and S3, ROLE_ARN, ...).
docs_environment = test_docs.docs_environment


def test_the_real_time_examples_are_found() -> None:
    """A guard against a pattern that silently finds nothing: both are moved here."""
    assert {page.name for page in REAL_TIME_PAGES} >= {"testing.md"}
    assert {block.page.name for block in REAL_TIME_SCRIPTS} >= {"worker.md"}


@pytest.mark.parametrize("page", REAL_TIME_PAGES, ids=test_docs._page_id)
def test_page_examples_run(page: Path, docs_environment: LoopbackSTS) -> None:
    test_docs.run_page_examples(page, docs_environment)


@pytest.mark.parametrize("block", REAL_TIME_SCRIPTS, ids=lambda block: block.where)
def test_scripts_run_as_pasted(block: Block, sts: LoopbackSTS, tmp_path: Path) -> None:
    test_docs.run_script(block, sts, tmp_path)

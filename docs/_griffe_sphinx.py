"""A Griffe extension that lets mkdocstrings render the few Sphinx idioms in our docstrings.

The docstrings are written to read well in ``help()``: Google-style sections, double
backticks for code, here and there a Sphinx role (``:meth:`start```) or a ``::``
before an indented example, and doctest examples (``>>> call()`` and its output).
Markdown renders double backticks as code already; this turns each role into a code
span, each ``::`` into ``:`` (so that the indented example that follows renders as a
code block), and each doctest example into a code block of its own (Markdown would run
them together into one paragraph). The source docstrings stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :meth:`start`, :attr:`~LoopbackSTS.calls`, :data:`Fault`, ...
_ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj):`(~?)([^`]+)`")
# "text::" at the end of a line, before a blank line (a reStructuredText literal block).
_LITERAL_BLOCK = re.compile(r"(\S)::\n(?=[ \t]*\n)")


def _code_span(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    if short:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def _fence_doctests(text: str) -> str:
    """Each ``>>>`` example, with its continuation and output lines, in its own block."""
    out: list[str] = []
    example: list[str] = []

    def flush() -> None:
        if example:
            if out and out[-1].strip():
                out.append("")
            out.extend(["```pycon", *example, "```", ""])
            example.clear()

    for line in text.splitlines():
        if line.startswith(">>>"):
            flush()
            example.append(line)
        elif example and line.strip():  # a "..." continuation or the output
            example.append(line)
        else:
            flush()
            if line.strip() or (out and out[-1].strip()):  # no second blank line
                out.append(line)
    flush()
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def sphinx_to_markdown(text: str) -> str:
    text = _ROLE.sub(_code_span, text)
    text = _LITERAL_BLOCK.sub(r"\1:\n", text)
    return _fence_doctests(text) if ">>>" in text else text


class SphinxToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = sphinx_to_markdown(obj.docstring.value)

"""README.md's fenced Python blocks, in order, and how to run them as one script would.

Every ```python block is code to run. A block that only illustrates is preceded (on the line before its
fence, blank lines aside) by ``<!-- illustrative: the reason -->``; the collector skips exactly those.
Other fences (```bash, ```text, plain ```) are not Python and are not collected.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<info>[^`]*)$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_ILLUSTRATIVE = re.compile(r"^\s*<!--\s*illustrative:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    index: int  # among the Python blocks, from 0
    line: int  # README line of the block's first line of code (1-based)
    heading: str  # the nearest heading above it
    code: str
    illustrative: str | None  # the reason given by its marker, or None for a block that runs
    path: Path = README

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")[:40]
        return f"{self.index:02d}-L{self.line}-{slug}"

    def compile(self) -> Any:
        """The block as a code object whose tracebacks name README lines; top-level ``await`` allowed."""
        source = "\n" * (self.line - 1) + self.code
        return compile(source, str(self.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)

    def is_async(self) -> bool:
        """Whether the block awaits at top level (it then runs as a coroutine on the event loop)."""
        return bool(self.compile().co_flags & inspect.CO_COROUTINE)


def python_blocks(path: Path = README) -> list[Block]:
    """Every ```python block of ``path``, in order, with its line, heading and illustrative marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    heading = "top"
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            title = _HEADING.match(lines[i])
            if title:
                heading = title["title"].replace("`", "")
            i += 1
            continue
        info = fence["info"].strip().split()
        start = i + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: a fence that is never closed")
        if info and info[0] in ("python", "py"):
            blocks.append(
                Block(
                    index=len(blocks),
                    line=start + 1,
                    heading=heading,
                    code=textwrap.dedent("\n".join(lines[start:end])) + "\n",
                    illustrative=_marker_before(lines, i),
                    path=path,
                )
            )
        i = end + 1
    return blocks


def _marker_before(lines: list[str], fence: int) -> str | None:
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    marker = _ILLUSTRATIVE.match(lines[j]) if j >= 0 else None
    return marker["reason"] if marker else None

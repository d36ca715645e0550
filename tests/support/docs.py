"""The fenced code blocks of the guides in docs/, as the doc-runner tests execute them.

A block is one fenced region: its info string (``sh``, ``python``, ``toml``, ``text``...),
its text, and the line it starts on. A file block names its file in its first line, as a
comment (``# make_jwks.py: ...``), which is how a reader knows what to save it as.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO_ROOT

__all__ = ["DOCS", "Block", "blocks", "file_block"]

DOCS = REPO_ROOT / "docs"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.M | re.S)
_FILE_NAME = re.compile(r"^#\s*([\w.-]+\.(?:py|toml))\b")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # where the fence opens, for messages

    @property
    def file_name(self) -> str | None:
        """The file a python or toml block is, when its first line says so."""
        if self.lang not in ("python", "toml"):
            return None
        found = _FILE_NAME.match(self.text)
        return found.group(1) if found else None


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in _FENCE.finditer(text)
    ]


def file_block(doc: Path, name: str) -> str:
    """The text of the file block ``name`` in ``doc`` (exactly one must exist)."""
    found = [b.text for b in blocks(doc) if b.file_name == name]
    assert len(found) == 1, f"{doc.name} has {len(found)} blocks for {name}"
    return found[0]

"""The README's code blocks, by section, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def section_blocks(title: str, lang: str = "python") -> list[str]:
    """The ``lang`` code blocks of the ``### title`` subsection, in order."""
    text = README.read_text(encoding="utf-8")
    body = text[text.index(f"\n### {title}\n") + 1 :]
    ends = [i for i in (body.find("\n## ", 5), body.find("\n### ", 5)) if i != -1]
    body = body[: min(ends)] if ends else body
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)


def hooks_block(framework: str) -> str:
    """The block of "Use with Hugging Face, Lightning and Keras" that imports
    ``mlledger.integrations.<framework>``."""
    (block,) = [
        b
        for b in section_blocks("Use with Hugging Face, Lightning and Keras")
        if f"mlledger.integrations.{framework} import" in b
    ]
    return block

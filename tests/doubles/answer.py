"""The doubles' default answer: a grounded, cited sentence taken from the sources Memex put into the prompt.

A source starts with a header line `[n] Title › heading`; its text is the lines that follow, up to the next
header. The answer is the first sentence of source [1] followed by ` [1].` With no sources it is
`NOT_IN_DOCUMENTS`. A system prompt that asks for a "standalone" question (rewriting a follow-up) gets the
last user message back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NOT_IN_DOCUMENTS = "That is not in your documents."
_HEADER = re.compile(r"^\[(\d+)\]\s*(.*)$")
_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)")


def sources(text: str) -> dict[int, tuple[str, str]]:
    """The sources in a prompt: number → (header title, text)."""
    found: dict[int, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line.strip())
        if header:
            current = []
            found.setdefault(int(header[1]), (header[2].strip(), current))
        elif current is not None:
            current.append(line)
    return {number: (title, "\n".join(lines).strip()) for number, (title, lines) in found.items()}


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph, without its final punctuation."""
    paragraph = " ".join(re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0].split())
    match = _SENTENCE.match(paragraph)
    return (match[1] if match else paragraph).rstrip(".!?").strip()


def default_answer(system: str, user_messages: Sequence[str]) -> str:
    """What the double says when the test scripted no text."""
    last = user_messages[-1] if user_messages else ""
    if "standalone" in system.lower():
        return last
    found = sources(last) or sources(system)
    if not found:
        return NOT_IN_DOCUMENTS
    number = 1 if 1 in found else min(found)
    title, text = found[number]
    return f"{first_sentence(text) or title} [{number}]."

"""An Outline gathers blocks of text into sections, each under the chain of headings open where it sits."""

from __future__ import annotations

from memex.ingest.models import Section


class Outline:
    """Builds sections in reading order from a stream of headings and text blocks."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._location = ""
        self._sections: list[Section] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        """The titles of the headings open at this point, outermost first."""
        return tuple(title for _, title in self._open)

    def heading(self, level: int, title: str, location: str) -> None:
        """Close the current section and open one under `title`, nested below every open shallower heading."""
        self._flush()
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, title))
        self._location = location

    def add(self, text: str, location: str = "") -> None:
        """Append a block of text to the current section; blank blocks are dropped."""
        text = text.strip("\n")
        if not text.strip():
            return
        if not self._blocks and not self._location:
            # Text before the first heading: the section starts where its first block does.
            self._location = location
        self._blocks.append(text)

    def sections(self) -> tuple[Section, ...]:
        """Every non-empty section so far; a heading with no text under it yields none."""
        self._flush()
        return tuple(self._sections)

    def _flush(self) -> None:
        if self._blocks:
            # Blank lines between blocks keep paragraph breaks visible to the chunker.
            self._sections.append(Section("\n\n".join(self._blocks), self.heading_path, self._location))
        self._blocks = []
        self._location = ""

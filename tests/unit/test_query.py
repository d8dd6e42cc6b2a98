import re

from memex.search.query import glob_to_regex, parse_query, word_regex


def test_plain_text_passes_through() -> None:
    q = parse_query("how do I rotate keys")
    assert q.text == "how do I rotate keys" and not q.file_globs and not q.required and not q.excluded


def test_operators_are_extracted() -> None:
    q = parse_query('rotate file:"*.md" +"grace period" -draft keys')
    assert q.file_globs == ("*.md",)
    assert q.required == ("grace period",)
    assert q.excluded == ("draft",)
    assert q.text == "rotate grace period keys"


def test_unicode_words() -> None:
    q = parse_query('+Größe -"東京" café')
    assert q.required == ("Größe",)
    assert q.excluded == ("東京",)
    assert q.text == "Größe café"


def test_hyphen_inside_word_is_not_an_operator() -> None:
    q = parse_query("e-mail setup")
    assert q.text == "e-mail setup" and not q.excluded


def test_glob_regex_matches_file_names_only_within_a_segment() -> None:
    pattern = re.compile(glob_to_regex("*.md").replace("(^|/)", "(?:^|/)"))
    assert pattern.search("/notes/a.md")
    assert not pattern.search("/notes/a.md.bak")
    assert not pattern.search("/notes/a.txt")


def test_word_regex_escapes_metacharacters() -> None:
    assert word_regex("c++") == r"\mc\+\+\M"

"""Snippets start and end at sentence boundaries and keep the sentence that matched whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memex.search.snippets import ELLIPSIS, MAX_SENTENCE_CHARS, SNIPPET_CHARS, make_snippet
from memex.search.store import MARK_END, MARK_START


def marked(word: str) -> str:
    return f"{MARK_START}{word}{MARK_END}"


FILLER = [f"Filler sentence number {n} talks about nothing in particular at some length." for n in range(12)]
MATCH = f"The backup job copies every {marked('snapshot')} to the second disk before midnight."


def bare(snippet: str) -> str:
    return snippet.replace(MARK_START, "").replace(MARK_END, "")


def test_the_matched_sentence_is_whole_and_the_snippet_starts_and_ends_at_sentences() -> None:
    text = " ".join([*FILLER[:6], MATCH, *FILLER[6:]])
    snippet = make_snippet(text)
    assert MATCH in snippet
    assert snippet.startswith(f"{ELLIPSIS} ") and snippet.endswith(f" {ELLIPSIS}")
    inner = bare(snippet).removeprefix(f"{ELLIPSIS} ").removesuffix(f" {ELLIPSIS}")
    sentences = {bare(s) for s in [*FILLER, MATCH]}
    # Every sentence of the snippet is a whole sentence of the passage.
    pieces = [p if p.endswith(".") else p + "." for p in inner.split(". ")]
    assert pieces and all(p in sentences for p in pieces), pieces
    assert len(bare(snippet)) <= SNIPPET_CHARS + 2 * len(f"{ELLIPSIS} ")


def test_the_sentence_with_most_matches_wins_over_an_earlier_one() -> None:
    weak = f"A {marked('snapshot')} is mentioned here once."
    strong = f"Each {marked('snapshot')} of the {marked('backup')} disk is checked."
    text = " ".join([weak, *FILLER, strong])
    snippet = make_snippet(text)
    assert strong in snippet and weak not in snippet


def test_a_short_passage_is_shown_whole_without_ellipses() -> None:
    text = f"Cats sleep most of the day.\n\nA cat {marked('purrs')} when content."
    assert make_snippet(text) == f"Cats sleep most of the day. A cat {marked('purrs')} when content."


def test_a_passage_with_no_match_starts_at_its_beginning() -> None:
    text = " ".join(FILLER)
    snippet = make_snippet(text)
    assert snippet.startswith(FILLER[0]) and snippet.endswith(f". {ELLIPSIS}")


def test_wrapped_lines_of_a_pdf_stay_one_sentence() -> None:
    text = "The first line of the page\nwraps here. Then the " + marked("vault") + " opens\nslowly at dawn."
    assert (
        make_snippet(text) == f"The first line of the page wraps here. Then the {marked('vault')} opens slowly at dawn."
    )


def test_an_overlong_sentence_is_cut_at_clauses_around_its_match() -> None:
    clauses = [f"clause {n} of a very long enumerating sentence with many words in it" for n in range(12)]
    clauses[4] = f"clause 4 holds the {marked('needle')} we searched for"
    sentence = ", ".join(clauses) + "."
    assert len(sentence) > MAX_SENTENCE_CHARS
    snippet = make_snippet(sentence)
    assert marked("needle") in snippet
    assert snippet.startswith(f"{ELLIPSIS} clause ") and snippet.endswith(ELLIPSIS)
    inner = snippet.removeprefix(f"{ELLIPSIS} ").removesuffix(f" {ELLIPSIS}").rstrip(",.")
    # Whole clauses only.
    assert all(part.strip() in {c for c in clauses} for part in inner.split(", ")), inner
    assert len(bare(snippet)) <= SNIPPET_CHARS + 4


def test_a_sentence_with_no_boundary_at_all_is_cut_at_words_and_keeps_its_mark_closed() -> None:
    words = ["word"] * 200
    words[120] = marked("needle")
    snippet = make_snippet(" ".join(words))
    assert marked("needle") in snippet
    assert snippet.count(MARK_START) == snippet.count(MARK_END) == 1
    assert snippet.startswith(f"{ELLIPSIS} word") and snippet.endswith(f"word {ELLIPSIS}")


@given(st.lists(st.sampled_from([*FILLER, MATCH, "Short one.", "Why not?"]), min_size=1, max_size=30))
def test_marks_stay_balanced_and_the_match_is_kept(parts: list[str]) -> None:
    snippet = make_snippet(" ".join(parts))
    assert snippet.count(MARK_START) == snippet.count(MARK_END)
    if MATCH in parts:
        assert MATCH in snippet

"""The text side of chat: sentences and their citations, packing passages, folding follow-ups, grounding words."""

from __future__ import annotations

import uuid

from memex.chat import prompt
from memex.chat.grounding import content_words, is_factual, passage_sentences
from memex.chat.llm.base import LlmMessage
from memex.chat.sentences import citations_in, split_sentences
from memex.search.models import SearchResult


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before_it() -> None:
    text = "Aspirin reduces fever [1]. It thins the blood. [2] Dr. Smith agrees [1, 3].\n- a list item [2]"
    found = [(s.text, s.citations) for s in split_sentences(text)]
    assert found == [
        ("Aspirin reduces fever [1].", (1,)),
        ("It thins the blood. [2]", (2,)),
        ("Dr. Smith agrees [1, 3].", (1, 3)),
        ("- a list item [2]", (2,)),
    ]
    assert [text[s.start : s.end] for s in split_sentences(text)] == [t for t, _ in found]


def test_wrapped_lines_stay_one_sentence_but_headings_and_items_stand_alone() -> None:
    text = "# Keys\nA rotated key keeps working for a\ngrace period of 24 hours. Then it stops [1].\n- one\n- two"
    sentences = split_sentences(text)
    assert [s.plain for s in sentences] == [
        "Keys",
        "A rotated key keeps working for a grace period of 24 hours.",
        "Then it stops.",
        "one",
        "two",
    ]


def test_numbers_and_abbreviations_do_not_end_sentences() -> None:
    assert [s.text for s in split_sentences("In 2019, e.g. the rate was 3.5 percent. Next!")] == [
        "In 2019, e.g. the rate was 3.5 percent.",
        "Next!",
    ]
    assert citations_in("see [2][3] and [3; 4]") == (2, 3, 4)


def _result(chunk_id: int, text: str) -> SearchResult:
    return SearchResult(
        chunk_id=chunk_id,
        document_id=uuid.uuid4(),
        kb=uuid.uuid4(),
        kb_name="kb",
        title=f"Doc {chunk_id}",
        path=f"doc{chunk_id}.md",
        heading="Intro",
        location="line 1",
        text=text,
        snippet="",
        score=1.0,
    )


def test_passages_are_numbered_in_rank_order_until_the_budget_is_spent() -> None:
    results = [_result(1, "a" * 400), _result(2, "b" * 400), _result(1, "dup"), _result(3, "c" * 400)]
    packed = prompt.pack(results, budget_tokens=230)
    assert [(p.n, p.chunk_id) for p in packed] == [(1, 1), (2, 2)]
    # The first passage always goes in, cut to the budget if it must be.
    (only,) = prompt.pack([_result(9, "z" * 10_000)], budget_tokens=200)
    assert only.n == 1 and len(only.text) < 800
    message = prompt.question_message("Why?", packed)
    assert message.startswith("Sources:\n\n[1] Doc 1 › Intro (doc1.md, line 1)\n") and "\n\n[2] Doc 2" in message
    assert message.endswith("Question: Why?")


def test_history_keeps_the_latest_turns_that_fit_and_starts_with_the_user() -> None:
    history = [
        LlmMessage(role="user", content="first " * 100),
        LlmMessage(role="assistant", content="answer one"),
        LlmMessage(role="user", content="second"),
        LlmMessage(role="assistant", content="answer two"),
    ]
    kept = prompt.history_messages(history, budget_tokens=20)
    assert [m.content for m in kept] == ["second", "answer two"]
    assert prompt.folded_question("and its side effects?", history, limit=1000) == "second and its side effects?"
    assert prompt.folded_question("and then?", history, limit=12) == "nd and then?"  # the question itself is kept


def test_content_words_and_what_counts_as_a_factual_sentence() -> None:
    assert content_words("The trials used 40 patients with fevers") == {"trial", "40", "patient", "fever"}
    facts = {s.plain: is_factual(s) for s in split_sentences("Caffeine is a stimulant. Here is what I found:")}
    assert facts == {"Caffeine is a stimulant.": True, "Here is what I found:": False}
    # Fragments too short to match on their own join a neighbour.
    assert passage_sentences("Short. A longer sentence that stands on its own. End.") == [
        "Short. A longer sentence that stands on its own. End."
    ]


def test_an_extractive_answer_leads_with_the_first_passage_and_skips_commands() -> None:
    from memex.chat.extractive import compose, pick_sentences
    from memex.chat.grounding import split_passages
    from memex.chat.models import Passage

    def passage(n: int, text: str) -> Passage:
        return Passage(n, n, uuid.uuid4(), uuid.uuid4(), "kb", f"Doc {n}", f"d{n}.md", "", "", text)

    prepared = split_passages(
        [
            passage(1, "Keys are rotated every 90 days by the operations team. Rotate the signing key like this:"),
            passage(2, "memex keys create --kind signing --id 7\n\nA rotated key keeps working for a grace period."),
        ]
    )
    picks = pick_sentences("how often are keys rotated", prepared)
    assert picks[0].n == 1
    assert all("--kind" not in p.sentence and not p.sentence.endswith(":") for p in picks)
    text = compose(picks, intro="Intro:")
    assert text.startswith("Intro:\n\n- Keys are rotated every 90 days by the operations team. [1]")

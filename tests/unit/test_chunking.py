from memex.embeddings.model_files import tokenizer
from memex.ingest.chunking import Chunker
from memex.ingest.models import ParsedDocument, Section


def _chunker(max_tokens: int = 64, overlap: int = 0) -> Chunker:
    return Chunker(tokenizer(), max_tokens=max_tokens, overlap_tokens=overlap)


def _model_tokens(text: str) -> int:
    return len(tokenizer().encode(text).ids)  # with [CLS] and [SEP], as the model sees it


def test_every_chunk_fits_the_model_budget_including_context() -> None:
    long = " ".join(f"Sentence number {i} talks about key rotation and backups." for i in range(200))
    doc = ParsedDocument("A title", (Section(long, ("Ops", "Keys"), "line 1"),))
    chunks = _chunker(64).chunk(doc)
    assert len(chunks) > 5
    assert all(_model_tokens(c.embed_text) <= 64 for c in chunks)
    assert all(c.context == "A title › Ops › Keys" and c.heading == "Ops › Keys" for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_splits_at_headings_before_paragraphs() -> None:
    doc = ParsedDocument(
        "T",
        (
            Section("First section text.", ("A",), "line 1"),
            Section("Second section text.", ("B",), "line 5"),
        ),
    )
    chunks = _chunker(256).chunk(doc)
    assert [c.heading for c in chunks] == ["A", "B"]
    assert [c.location for c in chunks] == ["line 1", "line 5"]


def test_short_paragraphs_under_one_heading_share_a_chunk() -> None:
    doc = ParsedDocument("T", tuple(Section(f"Paragraph {i}.", ("H",), f"line {i}") for i in range(5)))
    chunks = _chunker(256).chunk(doc)
    assert len(chunks) == 1
    assert chunks[0].text == "\n\n".join(f"Paragraph {i}." for i in range(5))


def test_long_paragraph_splits_at_sentence_boundaries() -> None:
    paragraph = " ".join(f"This is sentence {i} of a long paragraph." for i in range(40))
    chunks = _chunker(64).chunk(ParsedDocument("", (Section(paragraph),)))
    assert len(chunks) > 1
    assert all(c.text.endswith(".") for c in chunks)


def test_text_without_boundaries_is_cut_at_token_windows() -> None:
    words = " ".join(f"w{i}" for i in range(2000))
    chunks = _chunker(64).chunk(ParsedDocument("", (Section(words),)))
    assert all(_model_tokens(c.embed_text) <= 64 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == words.replace(" ", "")


def test_overlap_repeats_trailing_sentences() -> None:
    paragraph = " ".join(f"Fact {i} is here." for i in range(60))
    chunks = _chunker(64, overlap=16).chunk(ParsedDocument("", (Section(paragraph),)))
    assert len(chunks) > 2
    last_sentence = chunks[0].text.split(". ")[-1]
    first_sentence = chunks[1].text.split(". ")[0] + "."
    assert last_sentence in chunks[1].text
    assert first_sentence in chunks[0].text
    assert 0 < len(tokenizer().encode(chunks[1].text[: chunks[1].text.index(last_sentence)]).ids) <= 16 + 2


def test_pdf_pages_stay_in_separate_chunks() -> None:
    doc = ParsedDocument("P", (Section("one", (), "page 1"), Section("two", (), "page 2")))
    chunks = _chunker(256).chunk(doc)
    assert [(c.text, c.location) for c in chunks] == [("one", "page 1"), ("two", "page 2")]

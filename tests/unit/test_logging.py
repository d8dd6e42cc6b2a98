import json
import logging

import structlog

from memex.logging import configure_logging, redact_text
from memex.settings import Settings


def test_secret_values_are_masked() -> None:
    assert redact_text("key mx_ab12cd34_s3cr3tvalue used") == "key mx_ab12cd34_*** used"
    assert redact_text("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact_text("postgresql://memex:hunter2@db:5432/memex") == "postgresql://memex:***@db:5432/memex"


def test_json_logs_redact_secret_fields(capsys: object) -> None:
    configure_logging(Settings(log_format="json"))
    try:
        structlog.get_logger("t").info("login", password="hunter2", api_key="mx_ab12cd34_zzz", user="a@b.c")
        logging.getLogger("lib").warning("connecting to postgresql://u:pw@h/db")
        err = capsys.readouterr().err  # type: ignore[attr-defined]
        lines = [json.loads(line) for line in err.strip().splitlines()]
        assert lines[0]["password"] == "***" and lines[0]["api_key"] == "***" and lines[0]["user"] == "a@b.c"
        assert "pw" not in lines[1]["event"] and "***" in lines[1]["event"]
        assert "hunter2" not in err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def test_personal_data_in_queries_is_masked() -> None:
    from memex.logging import mask_personal_data

    assert mask_personal_data("mail ada.lovelace+x@example.co.uk now") == "mail [email] now"
    assert mask_personal_data("card 4111 1111 1111 1111 and 4111-1111-1111-1111") == "card [card] and [card]"
    assert mask_personal_data("iban DE89 3704 0044 0532 0130 00 ok") == "iban [iban] ok"
    assert mask_personal_data("iban gb82west12345698765432") == "iban [iban]"
    assert mask_personal_data("call +33 6 12 34 56 78 or (555) 123-4567") == "call [phone] or [phone]"
    # Dates, years, versions, short numbers and ordinary words stay readable.
    kept = "report 2023 2024, meeting 2024-01-15, version 1.2.3, room 42, HTTP 404, ISO 27001, abcd1234efgh"
    assert mask_personal_data(kept) == kept
    # A 16-digit number failing the Luhn check is not a card, but is masked all the same.
    assert mask_personal_data("order 4111 1111 1111 1112") == "order [number]"


def test_query_fields_follow_the_setting() -> None:
    from memex.logging import query_fields

    text = "what did bob@example.com say"
    assert query_fields(Settings(), text) == {"query": "what did [email] say"}
    assert query_fields(Settings(log_queries="full"), text, name="question") == {"question": text}
    assert query_fields(Settings(log_queries="off"), text) == {}


def test_counts_named_like_secrets_are_kept(capsys: object) -> None:
    configure_logging(Settings(log_format="json"))
    try:
        structlog.get_logger("t").info(
            "chat", prompt_tokens=12, passages=3, csrf_token="abc", session_token="def", passphrase="x"
        )
        line = json.loads(capsys.readouterr().err)  # type: ignore[attr-defined]
        assert line["prompt_tokens"] == 12 and line["passages"] == 3
        assert line["csrf_token"] == line["session_token"] == line["passphrase"] == "***"
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()

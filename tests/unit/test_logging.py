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

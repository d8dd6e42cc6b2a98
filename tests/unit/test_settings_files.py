"""Secret settings from files (MEMEX_<NAME>_FILE), for every SecretStr setting, present and future."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from memex.secret_files import secret_fields
from memex.settings import Settings

SECRETS = secret_fields(Settings)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.upper().startswith("MEMEX_"):
            monkeypatch.delenv(name)


def test_the_secret_settings_are_the_secretstr_ones() -> None:
    assert {"database_url", "redis_url", "admin_password", "llm_api_key", "metrics_token", "api_key"} <= set(SECRETS)
    assert "url" not in SECRETS and "host" not in SECRETS


def test_a_setting_named_like_a_secret_is_typed_as_one() -> None:
    """So that a new secret gets redaction and MEMEX_<NAME>_FILE: both follow the SecretStr type."""
    looks_secret = re.compile(r"(password|secret|token|_key|database_url|redis_url)$")
    for name in Settings.model_fields:
        if looks_secret.search(name):
            assert name in SECRETS, f"MEMEX_{name.upper()} holds a secret: type it SecretStr"


@pytest.mark.parametrize("name", SECRETS)
def test_every_secret_can_come_from_a_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"postgresql://memex:s3cret-{name}@db:5432/memex"  # a shape every secret setting accepts
    secret = tmp_path / name
    secret.write_text(value + "\n")  # as `echo` and most secret stores write it
    monkeypatch.setenv(f"MEMEX_{name.upper()}_FILE", str(secret))
    found = getattr(Settings(), name)
    assert isinstance(found, SecretStr) and found.get_secret_value() == value


def test_only_one_trailing_newline_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for content, expected in (("abc\n\n", "abc\n"), ("abc\r\n", "abc"), ("abc", "abc"), (" abc \n", " abc ")):
        (tmp_path / "secret").write_bytes(content.encode())
        monkeypatch.setenv("memex_llm_api_key_file", str(tmp_path / "secret"))  # names match whatever their case
        found = Settings().llm_api_key
        assert found is not None and found.get_secret_value() == expected


def test_arguments_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "key").write_text("from the file")
    monkeypatch.setenv("MEMEX_API_KEY_FILE", str(tmp_path / "key"))
    found = Settings(api_key="given").api_key  # type: ignore[arg-type]
    assert found is not None and found.get_secret_value() == "given"


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMEX_METRICS_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValueError) as missing:
        Settings()
    assert str(missing.value) == (
        f"MEMEX_METRICS_TOKEN_FILE names {tmp_path / 'absent'}, which cannot be read: No such file or directory"
    )
    monkeypatch.setenv("MEMEX_METRICS_TOKEN_FILE", str(tmp_path))
    with pytest.raises(ValueError, match=r"MEMEX_METRICS_TOKEN_FILE names .*, which cannot be read: Is a directory"):
        Settings()


def test_errors_never_show_the_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "binary").write_bytes(b"hunter2-\xff\xfe-hunter2")
    monkeypatch.setenv("MEMEX_ADMIN_PASSWORD_FILE", str(tmp_path / "binary"))
    with pytest.raises(ValueError) as raised:
        Settings()
    assert str(raised.value) == f"MEMEX_ADMIN_PASSWORD_FILE names {tmp_path / 'binary'}, which is not UTF-8 text"


def test_the_value_and_its_file_together_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "url").write_text("redis://cache:6379/0")
    monkeypatch.setenv("MEMEX_REDIS_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv("MEMEX_REDIS_URL", "redis://other:6379/0")
    with pytest.raises(ValueError, match="both MEMEX_REDIS_URL and MEMEX_REDIS_URL_FILE are set: keep one of them"):
        Settings()


def test_an_empty_file_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMEX_DATABASE_URL_FILE", "")  # as compose files write an unset variable
    assert Settings().database_url is None

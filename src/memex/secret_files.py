"""Secret settings read from files: `MEMEX_<NAME>_FILE`, the Docker and Kubernetes secrets convention.

Every setting typed `SecretStr` may name a file instead of holding its value; one trailing newline is dropped.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The names of the settings that hold secrets (typed `SecretStr`, optional or not)."""
    return [
        name
        for name, field in settings_cls.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    ]


def read_secret(variable: str, path: str) -> str:
    """The file's text less one trailing newline; errors name the variable and the path, never the content."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{variable} names {path}, which cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{variable} names {path}, which is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text


class SecretFilesSource(PydanticBaseSettingsSource):
    """Values of secret settings from the files named by `<prefix><NAME>_FILE`; setting both is an error."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", "")).upper()
        # Like the environment source (case_sensitive is off), names match whatever their case.
        environ = {key.upper(): value for key, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in secret_fields(self.settings_cls):
            variable = f"{prefix}{name.upper()}"
            path = environ.get(f"{variable}_FILE")
            if not path:
                continue
            if variable in environ:
                raise SettingsError(f"both {variable} and {variable}_FILE are set: keep one of them")
            values[name] = read_secret(f"{variable}_FILE", path)
        return values


def secret_file_paths(settings_cls: type[BaseSettings], prefix: str = "MEMEX_") -> dict[str, Path]:
    """For each secret setting read from a file (`<prefix><NAME>_FILE`), that file's path."""
    environ = {key.upper(): value for key, value in os.environ.items()}
    found = {}
    for name in secret_fields(settings_cls):
        path = environ.get(f"{prefix}{name.upper()}_FILE")
        if path:
            found[name] = Path(path)
    return found

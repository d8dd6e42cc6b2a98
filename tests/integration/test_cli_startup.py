"""The CLI starts fast: `memex --help` and the search command load none of the server, database or embedding
modules, and the lazily listed commands are exactly the real ones (benchmarks/cli_startup.py has the timings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import memex.cli
from memex.cli.main import COMMANDS, load_command
from memex.ratelimit import parse_limits
from memex.settings import Settings

HEAVY = (
    "memex.runtime",
    "memex.db.engine",
    "memex.api.app",
    "sqlalchemy",
    "psycopg",
    "fastapi",
    "uvicorn",
    "onnxruntime",
    "pgserver",
    "alembic",
    "procrastinate",
    "redis",
)


def imported_by(*args: str, code: str = "from memex.cli.main import main; main()") -> tuple[str, set[str]]:
    probe = (
        "import atexit, sys\n"
        f"heavy = {HEAVY!r}\n"
        "atexit.register(lambda: sys.stderr.write('\\nIMPORTED:' + ','.join(m for m in heavy if m in sys.modules)))\n"
        f"{code}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {"COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == (2 if not args else 0), done.stderr  # no command: the help, as a usage error
    return done.stdout, {m for m in done.stderr.rsplit("IMPORTED:", 1)[-1].strip().split(",") if m}


@pytest.mark.parametrize("args", [("--help",), (), ("search", "--help")])
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    shown, imported = imported_by(*args)
    assert "Usage:" in shown
    assert imported == set()


def test_the_lazy_command_list_is_the_real_one() -> None:
    lazy, _ = imported_by("--help")
    eager, imported = imported_by(
        "--help",
        code="from memex.cli.main import COMMANDS, load_command, main\n[load_command(n) for n in COMMANDS]\nmain()",
    )
    assert "memex.runtime" in imported  # the eager run really loaded every command
    assert lazy == eager


def test_each_command_is_listed_with_its_own_help() -> None:
    for name, (_, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").split("\n\n")[0].strip() == summary, name


def test_every_command_module_is_listed() -> None:
    folder = Path(memex.cli.__file__).parent
    registering = {f"memex.cli.{p.stem}" for p in folder.glob("*.py") if "\ndef register(" in p.read_text()}
    assert registering == {module for module, _ in COMMANDS.values()}


def test_default_rate_limits_parse_and_a_bad_one_is_still_refused() -> None:
    # Settings skip parsing the defaults (it would import the rate limiter into every command): they must parse.
    for field in ("rate_limit_search", "rate_limit_chat", "rate_limit_upload", "rate_limit_login"):
        default = Settings.model_fields[field].default
        assert isinstance(default, str)
        parse_limits(default)
        with pytest.raises(ValueError, match="is not a rate limit"):
            Settings(**{field: "lots"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MEMEX_PORT", "abc", "MEMEX_PORT ('abc') is not valid: input should be a valid integer"),
        ("MEMEX_RATE_LIMIT_SEARCH", "lots", "MEMEX_RATE_LIMIT_SEARCH is not valid: 'lots' is not a rate limit"),
        (
            "MEMEX_DATABASE_URL",
            "mysql://ada:hunter2@db/memex",
            "MEMEX_DATABASE_URL is not valid: the database URL must be a PostgreSQL one",
        ),
    ],
)
def test_a_bad_setting_is_named_with_why_in_a_sentence(variable: str, value: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMEX_")} | {variable: value, "COLUMNS": "500"}
    done = subprocess.run(
        [sys.executable, "-m", "memex", "kb", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert expected in done.stderr
    assert "validation error" not in done.stderr and "pydantic" not in done.stderr and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr  # a secret setting's value is never shown

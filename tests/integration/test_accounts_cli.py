"""`memex users`, `memex keys` and `memex kb` acting directly on the database; what they make works over HTTP."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from typer.testing import CliRunner

from memex.api.app import create_app
from memex.cli.main import app as cli
from memex.runtime import Runtime
from memex.settings import Settings


def _runner(settings: Settings) -> tuple[CliRunner, dict[str, str]]:
    assert settings.database_url is not None
    env = {
        "MEMEX_DATABASE_URL": settings.database_url.get_secret_value(),
        "MEMEX_DATA_DIR": str(settings.data_dir),
        "MEMEX_MODEL_CACHE_DIR": str(settings.model_cache_dir),
    }
    return CliRunner(), env


async def test_accounts_keys_and_kbs_from_the_command_line(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    runner, env = _runner(settings)

    async def memex(*args: str, ok: bool = True) -> str:
        # In a thread: each command runs its own event loop, as it does from a shell.
        result = await asyncio.to_thread(runner.invoke, cli, list(args), env=env)
        assert (result.exit_code == 0) is ok, f"memex {' '.join(args)} -> {result.exit_code}: {result.output}"
        return result.output

    created = await memex("users", "create", "--email", "ada@example.com", "--admin")
    password = re.search(r"password \(shown only now\): (\S+)", created)
    assert password and len(password.group(1)) >= 16
    given = await memex("users", "create", "--email", "bob@example.com", "--password", "bob's long password")
    assert "password" not in given.split("\n", 1)[1]
    assert "already exists" in await memex("users", "create", "--email", "ADA@example.com", ok=False)
    listed = await memex("users", "list")
    assert "ada@example.com  [admin]" in listed and "bob@example.com" in listed

    team = re.search(
        r"created knowledge base 'Team': (\S+)", await memex("kb", "create", "Team", "--owner", "ada@example.com")
    )
    assert team
    team_id = team.group(1)
    kbs = await memex("kb", "list")
    assert f"{team_id}  Team  owner: ada@example.com  documents: 0" in kbs and kbs.count("[personal]") == 2
    await memex("kb", "create", "Scratch")
    assert "Scratch  owner: none (made by the CLI)" in await memex("kb", "list")
    assert "shared" in await memex("kb", "share", team_id, "--user", "bob@example.com", "--role", "editor")
    assert "viewer or editor" in await memex(
        "kb", "share", team_id, "--user", "bob@example.com", "--role", "owner", ok=False
    )

    out = await memex(
        "keys", "create", "--user", "bob@example.com", "--scope", "read", "--kb", team_id, "--expires", "7"
    )
    key = out.strip().splitlines()[-1]
    assert re.fullmatch(r"mx_[a-z0-9]{8}_\S+", key)
    key_id = re.search(r"created key (\S+)", out)
    assert key_id
    assert key_id.group(1) in await memex("keys", "list")

    api = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://memex.test", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        visible = (await client.get("/api/kbs")).json()
        assert [(kb["name"], kb["role"]) for kb in visible] == [("Team", "editor")]
        assert (await client.post("/api/kbs", json={"name": "x"})).status_code == 403  # a read key

        await memex("keys", "revoke", key_id.group(1))
        assert (await client.get("/api/kbs")).json() == {"detail": "API key revoked"}
        assert "not found" in await memex("keys", "revoke", key_id.group(1), ok=False)

        await memex("users", "disable", "bob@example.com")
        login = await client.post(
            "/api/auth/login", json={"email": "bob@example.com", "password": "bob's long password"}
        )
        # A disabled account answers like a wrong password: the answer tells a guesser nothing.
        assert (login.status_code, login.json()) == (401, {"detail": "invalid email or password"})


async def test_reset_password_prints_a_generated_one_once_and_ends_the_users_sessions(
    settings: Settings, runtime: Runtime
) -> None:
    runner, env = _runner(settings)

    async def memex(*args: str, ok: bool = True) -> str:
        result = await asyncio.to_thread(runner.invoke, cli, list(args), env=env)
        assert (result.exit_code == 0) is ok, f"memex {' '.join(args)} -> {result.exit_code}: {result.output}"
        return result.output

    await memex("users", "create", "--email", "cleo@example.com", "--password", "cleo's first password")
    api = create_app(settings, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://memex.test") as client:

        async def login(password: str) -> int:
            answer = await client.post("/api/auth/login", json={"email": "cleo@example.com", "password": password})
            return answer.status_code

        assert await login("cleo's first password") == 200
        assert (await client.get("/api/auth/me")).status_code == 200

        out = await memex("users", "reset-password", "CLEO@example.com")
        assert out.startswith("reset the password of cleo@example.com; their sessions were ended\n")
        generated = re.search(r"password \(shown only now\): (\S+)", out)
        assert generated and len(generated.group(1)) >= 16
        assert (await client.get("/api/auth/me")).json() == {"detail": "session ended: log in again"}
        assert await login("cleo's first password") == 401
        assert await login(generated.group(1)) == 200

        given = await memex("users", "reset-password", "cleo@example.com", "--password", "a password cleo chose")
        assert "shown only now" not in given
        assert await login("a password cleo chose") == 200
        assert "at least 8 characters" in await memex(
            "users", "reset-password", "cleo@example.com", "--password", "short", ok=False
        )
        assert "no user with the email nobody@example.com" in await memex(
            "users", "reset-password", "nobody@example.com", ok=False
        )

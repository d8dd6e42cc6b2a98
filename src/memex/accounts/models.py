"""Account types: users, sessions and API keys as the services hand them out (never with secrets at rest)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _fields(cls: type, row: Any) -> dict[str, Any]:
    return {name: row._mapping[name] for name in cls.__slots__}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(**_fields(cls, row))


@dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs to know about a user: the account and its password hash."""

    user: User
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user just created; `password` is set only when Memex generated it, to be shown once."""

    user: User
    password: str | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A login session as stored, joined with its user."""

    user: User
    csrf_token: str
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Login:
    """A successful login: the session token goes in a cookie and is never stored in clear."""

    user: User
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A single sign-on sent to the provider, as kept until its callback (by the hash of its state)."""

    nonce: str
    code_verifier: str
    redirect_uri: str
    next_path: str


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    kb_ids: tuple[uuid.UUID, ...] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        values = _fields(cls, row)
        values["scopes"] = tuple(values["scopes"])
        values["kb_ids"] = None if values["kb_ids"] is None else tuple(values["kb_ids"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: `secret` is the full key, shown to its owner once and stored only as a hash."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """The admin created on first start; `password` is set only when generated, and must be printed once."""

    email: str
    password: str | None

    def lines(self) -> list[str]:
        """What `memex serve` prints."""
        if self.password is None:
            return [f"Created the admin account {self.email} (password from MEMEX_ADMIN_PASSWORD)."]
        return [
            f"Created the admin account {self.email} with the password: {self.password}",
            "It is shown only this once: log in and keep it somewhere safe.",
        ]

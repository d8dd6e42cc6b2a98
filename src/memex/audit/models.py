"""Audit actions and entries as the service records and hands them out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Outcome = Literal["success", "failure"]


class Action(StrEnum):
    """Everything the audit log records; the value is what is stored and filtered on."""

    login = "login"
    login_failed = "login_failed"
    lockout = "lockout"
    logout = "logout"
    key_created = "key_created"
    key_revoked = "key_revoked"
    user_created = "user_created"
    user_disabled = "user_disabled"
    user_enabled = "user_enabled"
    user_promoted = "user_promoted"
    user_demoted = "user_demoted"
    user_unlocked = "user_unlocked"
    password_changed = "password_changed"
    password_reset = "password_reset"
    kb_created = "kb_created"
    kb_deleted = "kb_deleted"
    kb_shared = "kb_shared"
    kb_unshared = "kb_unshared"
    kb_role_changed = "kb_role_changed"
    kb_invited = "kb_invited"
    kb_invitation_accepted = "kb_invitation_accepted"
    kb_invitation_declined = "kb_invitation_declined"
    document_uploaded = "document_uploaded"
    document_deleted = "document_deleted"
    backup_created = "backup_created"
    backup_restored = "backup_restored"
    audit_pruned = "audit_pruned"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row. No secrets and no document contents ever go in `detail`."""

    id: int
    at: datetime
    action: str
    outcome: str
    actor_user_id: uuid.UUID | None
    actor_email: str | None
    actor_key_id: uuid.UUID | None
    ip: str | None
    request_id: str | None
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        return cls(**{name: row._mapping[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to list, newest first: each filter is optional."""

    action: str | None = None
    user_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int

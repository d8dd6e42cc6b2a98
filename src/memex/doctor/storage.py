"""Storage checks: free disk where the data and the backups live, and how old the last backup and restore are."""

from __future__ import annotations

import importlib
import inspect
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memex.doctor import store
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity
from memex.doctor.tuning import human


def _existing(path: Path) -> Path:
    """The path, or its nearest ancestor that exists (a data folder not created yet is on that disk)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


async def _database_bytes(ctx: Context) -> int | None:
    if ctx.engine is None:
        return None
    async with ctx.engine.connect() as conn:
        return await store.database_size(conn)


async def disk(ctx: Context) -> list[Finding]:
    limits = ctx.thresholds
    database = await _database_bytes(ctx)
    places = [("data", "MEMEX_DATA_DIR", ctx.data_dir), ("backup", "MEMEX_BACKUP_DIR", ctx.backup_dir)]
    findings = []
    for label, setting, path in places:
        usage = shutil.disk_usage(_existing(path))
        ratio = usage.free / usage.total if usage.total else 0.0
        data = {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total, "database_bytes": database}
        found = f"{human(usage.free)} free of {human(usage.total)} ({ratio:.0%}) on the {label} folder {path}"
        holds_database = label == "data" and ctx.settings.embedded
        if usage.free < limits.min_free_bytes or ratio < limits.min_free_ratio:
            severity = Severity.high
            why = "writes will fail once it is full" + (": the embedded database stops" if holds_database else "")
        elif database is not None and usage.free < database and (holds_database or label == "backup"):
            severity = Severity.medium
            why = f"less than the database's {human(database)}: " + (
                "a REINDEX or `memex reembed` may not fit" if holds_database else "the next backup may not fit"
            )
        else:
            findings.append(Finding(Severity.info, f"storage.{label}_disk", found, data=data))
            continue
        findings.append(
            Finding(
                severity,
                f"storage.{label}_disk",
                f"{found}: {why}.",
                f"Free space on that disk or move {setting} to a larger one"
                + ("; `memex backup prune` removes old backups." if label == "backup" else "."),
                data,
            )
        )
    return findings


def _age_hours(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds() / 3600


async def _backup_status(ctx: Context) -> Any:
    status = importlib.import_module("memex.backup.status")
    async with ctx.engine_or_fail().connect() as conn:
        found = status.read(conn)
        return await found if inspect.isawaitable(found) else found


async def backups(ctx: Context) -> list[Finding]:
    limits = ctx.thresholds
    try:
        status = await _backup_status(ctx)
    except ModuleNotFoundError:
        return [
            Finding(
                Severity.medium,
                "backup.last",
                "this Memex cannot tell when the database was last backed up.",
                "Back up with `pg_dump -Fc` on a schedule, and copy the dumps off this machine.",
            )
        ]
    async with ctx.engine_or_fail().connect() as conn:
        documents = sum((await store.document_counts(conn)).values())
    last = getattr(status, "last_backup_at", None)
    verified = getattr(status, "last_verified_at", None)
    error = getattr(status, "last_error", None)
    error_at = getattr(status, "last_error_at", None)
    if error and last is not None and error_at is not None and error_at < last:
        error = None  # a later backup succeeded
    data = {
        "last_backup_at": last.isoformat() if last else None,
        "last_backup_path": str(getattr(status, "last_backup_path", None) or "") or None,
        "last_verified_at": verified.isoformat() if verified else None,
        "last_error": error,
    }
    schedule = "Run `memex backup create` now, and on a schedule (MEMEX_BACKUP_SCHEDULE or cron)."
    findings = []
    age = _age_hours(last)
    if age is None:
        severity = Severity.high if documents else Severity.info
        findings.append(
            Finding(
                severity,
                "backup.last",
                f"no backup has been made{f' of {documents:,} documents' if documents else ' (nothing to back up yet)'}.",
                schedule if documents else "",
                data,
            )
        )
    elif age > limits.backup_stale_hours:
        findings.append(
            Finding(Severity.high, "backup.last", f"the last backup is {age / 24:.0f} days old.", schedule, data)
        )
    elif age > limits.backup_max_age_hours:
        findings.append(
            Finding(Severity.medium, "backup.last", f"the last backup is {age:.0f} hours old.", schedule, data)
        )
    else:
        findings.append(Finding(Severity.info, "backup.last", f"the last backup is {age:.1f} hours old", data=data))
    if error:
        findings.append(
            Finding(
                Severity.high,
                "backup.error",
                f"the last backup attempt failed: {error}",
                "Fix the cause and run `memex backup create` by hand to see it succeed.",
                data,
            )
        )
    if last is not None:
        verified_age = _age_hours(verified)
        if verified_age is None or verified_age > limits.restore_drill_days * 24:
            when = "has never been" if verified_age is None else f"was last {verified_age / 24:.0f} days ago"
            findings.append(
                Finding(
                    Severity.medium,
                    "backup.verified",
                    f"a restore of a backup {when} verified: a backup nobody restored may not restore.",
                    "Run `memex backup verify FILE` on the latest backup (it restores into a scratch database).",
                    data,
                )
            )
    return findings

"""Database checks: versions, migrations, the embedding model against the stored vectors, the HNSW index."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from memex.db import migrate
from memex.doctor import store
from memex.doctor.context import Context
from memex.doctor.models import Finding, Severity
from memex.embeddings import spec
from memex.maintenance import service as maintenance

# pgvector 0.6 builds HNSW indexes in parallel and much faster; older ones work, slowly.
PGVECTOR_RECOMMENDED = (0, 6, 0)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


async def versions(ctx: Context) -> list[Finding]:
    async with ctx.engine_or_fail().connect() as conn:
        found = await store.versions(conn)
    data = {"postgres": found.postgres, "pgvector": found.pgvector}
    if found.pgvector is None:
        return [
            Finding(
                Severity.critical,
                "database.pgvector",
                f"PostgreSQL {found.postgres} has no pgvector extension in this database.",
                "Install pgvector on the server (package postgresql-16-pgvector, or the pgvector/pgvector image); "
                "Memex creates the extension when it migrates.",
                data,
            )
        ]
    findings = [
        Finding(
            Severity.info, "database.versions", f"PostgreSQL {found.postgres}, pgvector {found.pgvector}", data=data
        )
    ]
    if _version(found.pgvector) < PGVECTOR_RECOMMENDED:
        findings.append(
            Finding(
                Severity.medium,
                "database.pgvector",
                f"pgvector {found.pgvector} is older than 0.6: HNSW indexes build on one core, many times slower.",
                "Upgrade the pgvector package on the server, then run `ALTER EXTENSION vector UPDATE;`.",
                data,
            )
        )
    elif found.pgvector_available and _version(found.pgvector_available) > _version(found.pgvector):
        findings.append(
            Finding(
                Severity.low,
                "database.pgvector",
                f"pgvector {found.pgvector_available} is installed on the server but this database still uses "
                f"{found.pgvector}.",
                "Run `ALTER EXTENSION vector UPDATE;` in the Memex database.",
                data,
            )
        )
    return findings


async def migrations(ctx: Context) -> list[Finding]:
    async with ctx.engine_or_fail().connect() as conn:
        current = await store.alembic_revision(conn)
    head = migrate.head_revision()
    data = {"current": current, "head": head}
    if current == head:
        return [
            Finding(Severity.info, "database.migrations", f"the schema is at the latest revision ({head})", data=data)
        ]
    if current is None:
        return [
            Finding(
                Severity.high,
                "database.migrations",
                "the database has no Memex schema yet.",
                "Run `memex migrate` (every command also migrates on start).",
                data,
            )
        ]
    known = {rev.revision for rev in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()}
    if current not in known:
        return [
            Finding(
                Severity.critical,
                "database.migrations",
                f"the database is at revision {current}, which this Memex does not know: a newer Memex migrated it.",
                "Upgrade this installation to the version that migrated the database; never run an older one on it.",
                data,
            )
        ]
    return [
        Finding(
            Severity.high,
            "database.migrations",
            f"the schema is at revision {current}, behind this Memex's {head}.",
            "Run `memex migrate` (it takes a lock, so it is safe while other processes run).",
            data,
        )
    ]


async def embedding_model(ctx: Context) -> list[Finding]:
    settings = ctx.settings
    wanted = {"name": settings.embedding_model, "dimension": settings.embedding_dimension}
    async with ctx.engine_or_fail().connect() as conn:
        stored = await store.stored_embedding_model(conn)
        column = await store.embedding_column_dimension(conn)
    data = {"configured": wanted, "stored": stored, "column_dimension": column}
    reembed = "Run `memex reembed` to rebuild the vectors with the configured model, or set MEMEX_EMBEDDING_MODEL and MEMEX_EMBEDDING_DIMENSION back."
    findings = []
    if stored is not None and not spec.same_model(stored, settings):
        findings.append(
            Finding(
                Severity.critical,
                "database.embedding_model",
                f"the stored vectors come from {stored.get('name')} ({stored.get('dimension')} dimensions) but "
                f"Memex is configured for {wanted['name']} ({wanted['dimension']}): the server refuses to start.",
                reembed,
                data,
            )
        )
    if column is not None and column != settings.embedding_dimension:
        findings.append(
            Finding(
                Severity.critical,
                "database.embedding_dimension",
                f"chunks.embedding holds {column}-dimensional vectors but MEMEX_EMBEDDING_DIMENSION is "
                f"{settings.embedding_dimension}.",
                reembed,
                data,
            )
        )
    if not findings:
        what = "configured model" if stored is None else "stored vectors"
        findings.append(
            Finding(
                Severity.info,
                "database.embedding_model",
                f"{what}: {wanted['name']} ({wanted['dimension']} dimensions)",
                data=data,
            )
        )
    return findings


async def hnsw_bloat(ctx: Context) -> list[Finding]:
    async with ctx.engine_or_fail().connect() as conn:
        indexes = await maintenance.hnsw_indexes(conn)
    findings = []
    for index in indexes:
        data = {
            "index": index.name,
            "bytes": index.bytes,
            "live_rows": index.live_rows,
            "expected_bytes": index.expected_bytes,
            "ratio": round(index.ratio, 2),
        }
        if maintenance.bloated(index):
            findings.append(
                Finding(
                    Severity.medium,
                    "database.hnsw_bloat",
                    f"the HNSW index {index.name} takes {index.bytes / 2**20:,.1f} MiB for {index.live_rows:,} rows, "
                    f"{index.ratio:.1f}x what a fresh build needs: deleted vectors left their pages behind.",
                    "Run `memex db maintain` (it rebuilds the index concurrently; searches go on meanwhile).",
                    data,
                )
            )
        else:
            findings.append(
                Finding(
                    Severity.info,
                    "database.hnsw_bloat",
                    f"the HNSW index {index.name} is {index.ratio:.1f}x the size its {index.live_rows:,} rows need"
                    if index.live_rows
                    else f"the HNSW index {index.name} holds no vectors yet",
                    data=data,
                )
            )
    return findings

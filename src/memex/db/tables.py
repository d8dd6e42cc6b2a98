"""Every table Memex owns, declared once; migrations must produce exactly this schema."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

EMBEDDING_DIMENSION = 384

metadata = sa.MetaData()


def _id() -> sa.Column[uuid.UUID]:
    return sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _now() -> sa.TextClause:
    return sa.text("now()")


meta = sa.Table(
    "memex_meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", JSONB, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("users_email_key", sa.text("lower(email)"), unique=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("sessions_user_idx", "user_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    sa.Column("kb_ids", ARRAY(UUID(as_uuid=True)), nullable=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Index("api_keys_user_idx", "user_id"),
)

# Single sign-on: the OpenID Connect account (issuer and subject) behind a user.
user_identities = sa.Table(
    "user_identities",
    metadata,
    sa.Column("issuer", sa.Text, primary_key=True),
    sa.Column("subject", sa.Text, primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("user_identities_user_idx", "user_id"),
)

# Sign-ins sent to the OpenID provider and not back yet: each callback consumes its row once.
oidc_logins = sa.Table(
    "oidc_logins",
    metadata,
    sa.Column("state_hash", sa.Text, primary_key=True),
    sa.Column("nonce", sa.Text, nullable=False),
    sa.Column("code_verifier", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("next_path", sa.Text, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

knowledge_bases = sa.Table(
    "knowledge_bases",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # NULL owner: a KB made by the local CLI, readable by admins.
    sa.Column("owner_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("is_personal", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.UniqueConstraint("owner_id", "name", name="knowledge_bases_owner_name_key", postgresql_nulls_not_distinct=True),
)

kb_members = sa.Table(
    "kb_members",
    metadata,
    sa.Column("kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    # NULL while the membership is an invitation the user has not accepted yet.
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('owner', 'editor', 'viewer')", name="kb_members_role_check"),
    sa.Index("kb_members_user_idx", "user_id"),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
)

documents = sa.Table(
    "documents",
    metadata,
    _id(),
    sa.Column("kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source_path", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("mime", sa.Text, nullable=False),
    sa.Column("file_type", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("metadata", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
    # While a large file is indexed: chunks embedded so far, of how many (NULL otherwise).
    sa.Column("progress_done", sa.Integer, nullable=True),
    sa.Column("progress_total", sa.Integer, nullable=True),
    # False when the file itself is why indexing failed (corrupt, encrypted, no text): the same bytes fail again.
    sa.Column("retryable", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.CheckConstraint("status IN ('queued', 'indexing', 'indexed', 'failed')", name="documents_status_check"),
    sa.UniqueConstraint("kb_id", "source_path", name="documents_kb_path_key"),
    sa.Index("documents_sha256_idx", "kb_id", "sha256"),
)

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("document_id", UUID(as_uuid=True), sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), nullable=False),
    sa.Column("ordinal", sa.Integer, nullable=False),
    sa.Column("heading", sa.Text, nullable=False, server_default=""),
    # "Title › Heading › Subheading": embedded with the text and weighted highest in full-text search.
    sa.Column("context", sa.Text, nullable=False, server_default=""),
    sa.Column("location", sa.Text, nullable=False, server_default=""),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("token_count", sa.Integer, nullable=False),
    sa.Column("embedding", Vector(EMBEDDING_DIMENSION), nullable=False),
    sa.Column(
        "tsv",
        TSVECTOR,
        sa.Computed(
            "setweight(to_tsvector('english'::regconfig, context), 'A') || "
            "setweight(to_tsvector('english'::regconfig, text), 'B')",
            persisted=True,
        ),
    ),
    sa.Index(
        "chunks_embedding_hnsw",
        "embedding",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    ),
    sa.Index("chunks_tsv_gin", "tsv", postgresql_using="gin"),
    sa.Index("chunks_document_idx", "document_id", "ordinal", unique=True),
    sa.Index("chunks_kb_idx", "kb_id"),
)


# Full-text statistics for BM25 ranking, per knowledge base, kept current by triggers on chunks (migration 0007).
# A search sums them over the KBs it covers, so no other tenant's documents shift its scores.
kb_lexeme_stats = sa.Table(
    "kb_lexeme_stats",
    metadata,
    sa.Column("lexeme", sa.Text, primary_key=True),
    sa.Column("kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("df", sa.BigInteger, nullable=False),
    sa.Index("kb_lexeme_stats_kb_idx", "kb_id"),
)

kb_chunk_stats = sa.Table(
    "kb_chunk_stats",
    metadata,
    sa.Column("kb_id", UUID(as_uuid=True), sa.ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("chunks", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lexemes", sa.BigInteger, nullable=False, server_default="0"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    _id(),
    # NULL user: a conversation of the local CLI (the system actor).
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("title", sa.Text, nullable=False),
    # The knowledge bases this conversation was narrowed to; NULL means every KB the user may read.
    sa.Column("kb_ids", ARRAY(UUID(as_uuid=True)), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Index("conversations_user_idx", "user_id", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    _id(),
    sa.Column(
        "conversation_id", UUID(as_uuid=True), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("citations", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("sentences", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost", sa.Float, nullable=False, server_default="0"),
    sa.Column("timings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.CheckConstraint("role IN ('user', 'assistant')", name="messages_role_check"),
    sa.Index("messages_conversation_idx", "conversation_id", "created_at"),
)

# Daily totals per user and model: what the usage report and its cost come from.
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost", sa.Float, nullable=False, server_default="0"),
    sa.Index(
        "usage_day_user_model_key",
        "day",
        "user_id",
        "provider",
        "model",
        unique=True,
        postgresql_nulls_not_distinct=True,
    ),
)

# Append-only: a trigger (migration 0004) refuses UPDATE, DELETE and TRUNCATE, except the retention delete.
# No foreign keys: entries outlive the users, keys and KBs they name, so those are copied in, not referenced.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("actor_user_id", UUID(as_uuid=True), nullable=True),
    sa.Column("actor_email", sa.Text, nullable=True),
    sa.Column("actor_key_id", UUID(as_uuid=True), nullable=True),
    sa.Column("ip", sa.Text, nullable=True),
    sa.Column("request_id", sa.Text, nullable=True),
    sa.Column("target_type", sa.Text, nullable=True),
    sa.Column("target_id", sa.Text, nullable=True),
    sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.CheckConstraint("outcome IN ('success', 'failure')", name="audit_log_outcome_check"),
    sa.Index("audit_log_at_idx", "at"),
    sa.Index("audit_log_actor_idx", "actor_user_id", "at"),
)

"""Request and response bodies of the HTTP API (never database rows): one place for their shapes and limits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from memex.accounts.credentials import UserStatus
from memex.accounts.models import ApiKey, User
from memex.documents.models import Document, DocumentText, Passage, TextFormat
from memex.documents.service import MAX_NAME_CHARS
from memex.kbs.models import Invitation, KbListing, KbOwnership, Member


def _storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL characters, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
Email = Annotated[Text, Field(min_length=3, max_length=254, examples=["ada@example.com"])]
Password = Annotated[Text, Field(min_length=1, max_length=1024)]
Scope = Literal["read", "write", "admin"]


# --- accounts --------------------------------------------------------------------------------------------


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls.model_validate(user)


class LoginIn(BaseModel):
    email: Email
    password: Password


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str | None = Field(description="Echo in the X-CSRF-Token header of cookie-authenticated writes.")


class MeOut(SessionOut):
    auth: Literal["session", "key", "disabled"] = Field(description="How this request was authenticated.")
    scopes: list[str]
    kbs: list[uuid.UUID] | None = Field(description="The only KBs this API key may reach; null for all readable.")


class KeyIn(BaseModel):
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1, examples=[["read"]])]
    kbs: list[uuid.UUID] | None = Field(default=None, description="Limit the key to these KBs.")
    expires_at: datetime | None = Field(default=None, description="When the key stops working (UTC if no zone).")


class KeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    name: str
    scopes: list[str]
    kbs: list[uuid.UUID] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            prefix=key.prefix,
            name=key.name,
            scopes=list(key.scopes),
            kbs=None if key.kb_ids is None else list(key.kb_ids),
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            created_at=key.created_at,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown only in this response.")


class UserIn(BaseModel):
    email: Email
    password: Annotated[Text, Field(min_length=8, max_length=1024)] | None = Field(
        default=None, description="Omit to have one generated and returned once."
    )
    is_admin: bool = False


class UserCreated(BaseModel):
    user: UserOut
    password: str | None = Field(description="The generated password, shown only here; null if one was given.")


class UserPatch(BaseModel):
    is_active: bool | None = None
    is_admin: bool | None = None


class AdminUserOut(UserOut):
    locked_until: datetime | None = Field(
        default=None,
        description="While failed logins make some client address wait before trying this account again: until when.",
    )

    @classmethod
    def of_status(cls, status: UserStatus) -> AdminUserOut:
        return cls(**UserOut.of(status.user).model_dump(), locked_until=status.locked_until)


class PasswordChangeIn(BaseModel):
    current_password: Password
    new_password: Annotated[Text, Field(min_length=8, max_length=1024)]


class PasswordResetIn(BaseModel):
    password: Annotated[Text, Field(min_length=8, max_length=1024)] | None = Field(
        default=None, description="Omit to have one generated and returned once."
    )


class PasswordResetOut(BaseModel):
    user: UserOut
    password: str | None = Field(description="The generated password, shown only here; null if one was given.")


class PeopleOut(BaseModel):
    emails: list[str] = Field(
        description="Admins: every active user. Others: only people they already share a knowledge base with."
    )


# --- knowledge bases -------------------------------------------------------------------------------------


class KbIn(BaseModel):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    description: Annotated[Text, Field(max_length=2000)] = ""


class KbPatch(BaseModel):
    name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[Text, Field(max_length=2000)] | None = None


class KbOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    role: str | None = Field(description="The caller's role: owner, editor or viewer (admins are owners).")
    is_personal: bool
    owner_id: uuid.UUID | None
    owner_name: str | None = Field(
        description="What to call its owner where it is shown (their email's local part); null for a local KB."
    )
    document_count: int
    created_at: datetime

    @classmethod
    def of(cls, listing: KbListing) -> KbOut:
        kb = listing.kb
        return cls(
            id=kb.id,
            name=kb.name,
            description=kb.description,
            role=kb.role,
            is_personal=kb.is_personal,
            owner_id=kb.owner_id,
            owner_name=kb.owner_name,
            document_count=listing.document_count,
            created_at=kb.created_at,
        )


class AdminKbOut(BaseModel):
    """A KB in the admin view: who really owns it and how big it is, never what it holds."""

    id: uuid.UUID
    name: str
    is_personal: bool
    owner_id: uuid.UUID | None
    owner_email: str | None = Field(description="Null for a KB made by the local CLI.")
    document_count: int
    member_count: int = Field(description="Accepted members, the owner included.")
    created_at: datetime

    @classmethod
    def of(cls, item: KbOwnership) -> AdminKbOut:
        kb = item.kb
        return cls(
            id=kb.id,
            name=kb.name,
            is_personal=kb.is_personal,
            owner_id=kb.owner_id,
            owner_email=item.owner_email,
            document_count=item.document_count,
            member_count=item.member_count,
            created_at=kb.created_at,
        )


class InvitationOut(BaseModel):
    """A KB shared with the caller, waiting for them to accept or decline it."""

    kb: uuid.UUID
    name: str
    description: str
    is_personal: bool
    owner_name: str | None
    role: str = Field(description="The role offered: viewer or editor.")
    invited_at: datetime

    @classmethod
    def of(cls, invitation: Invitation) -> InvitationOut:
        kb = invitation.kb
        return cls(
            kb=kb.id,
            name=kb.name,
            description=kb.description,
            is_personal=kb.is_personal,
            owner_name=kb.owner_name,
            role=kb.role or "viewer",
            invited_at=invitation.invited_at,
        )


class DetailOut(BaseModel):
    """A sentence saying what was done."""

    detail: str


class MemberIn(BaseModel):
    email: Email
    role: Literal["viewer", "editor"]


class MemberPatch(BaseModel):
    role: Literal["viewer", "editor"]


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        return cls.model_validate(member)


class ErrorOut(BaseModel):
    """Every error response: a message (or, rarely, a list of them)."""

    detail: str | list[object]


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the errors a router can answer with, all `{"detail": ...}`."""
    return {status: {"model": ErrorOut} for status in statuses}


# --- documents -------------------------------------------------------------------------------------------


class ProgressOut(BaseModel):
    done: int = Field(description="Chunks embedded so far.")
    total: int = Field(description="Chunks the file was split into.")
    unit: Literal["chunks"] = "chunks"

    @classmethod
    def of(cls, doc: Document) -> ProgressOut | None:
        if doc.status != "indexing" or doc.progress_done is None or doc.progress_total is None:
            return None
        return cls(done=doc.progress_done, total=doc.progress_total)


class DocumentOut(BaseModel):
    id: uuid.UUID
    kb: uuid.UUID
    name: str = Field(description="The file's name in the KB: its upload name or, for indexed folders, its path.")
    path: str = Field(description="The same as name; the field search results use.")
    title: str
    mime: str
    file_type: str
    sha256: str
    size: int
    status: str = Field(description="queued, indexing, indexed or failed.")
    error: str | None = Field(description="Why ingestion failed (or why an attempt failed while it is retried).")
    retryable: bool = Field(
        description="False when the file itself is why it failed (corrupt, encrypted, no text): a retry is refused."
    )
    progress: ProgressOut | None = Field(
        description="While a large file is being indexed: how many of its chunks are embedded so far."
    )
    chunk_count: int
    modified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None

    @classmethod
    def of(cls, doc: Document) -> DocumentOut:
        return cls(
            id=doc.id,
            kb=doc.kb_id,
            name=doc.source_path,
            path=doc.source_path,
            title=doc.title,
            mime=doc.mime,
            file_type=doc.file_type,
            sha256=doc.sha256,
            size=doc.size,
            status=doc.status,
            error=doc.error,
            retryable=doc.retryable,
            progress=ProgressOut.of(doc),
            chunk_count=doc.chunk_count,
            modified_at=doc.modified_at,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            indexed_at=doc.indexed_at,
        )


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class PassageOut(BaseModel):
    id: int = Field(description="The chunk's id: what search results and citations call chunk_id.")
    ordinal: int = Field(description="Its place in the document, from 0.")
    heading: str = Field(description="The headings it sits under, joined by ' › '.")
    location: str = Field(description="Where it is in the file: 'page 3', 'line 12', 'element p[4]'…")
    text: str

    @classmethod
    def of(cls, passage: Passage) -> PassageOut:
        return cls(
            id=passage.id,
            ordinal=passage.ordinal,
            heading=passage.heading,
            location=passage.location,
            text=passage.text,
        )


class DocumentTextOut(BaseModel):
    document: DocumentOut
    kb: KbOut
    format: TextFormat = Field(
        description="How to show it: Markdown or HTML rendered from `source`, a PDF page by page, or plain text."
    )
    source: str | None = Field(
        description="The original text of a Markdown or HTML file, as uploaded: sanitize it before rendering (the web "
        "UI keeps only an allow-list of elements). Null for other formats, files over 2 MiB and documents not indexed."
    )
    passages: list[PassageOut] = Field(description="The stored chunks in reading order.")

    @classmethod
    def of(cls, text: DocumentText) -> DocumentTextOut:
        return cls(
            document=DocumentOut.of(text.document),
            kb=KbOut.of(text.kb),
            format=text.format,
            source=text.source,
            passages=[PassageOut.of(p) for p in text.passages],
        )


class AcceptedOut(BaseModel):
    id: uuid.UUID
    name: str = Field(description="The name the file was sent under, as stored.")
    status: str


class WrittenOut(BaseModel):
    """What a write-only API key gets back from a change: the document's id and status, nothing it could not send."""

    id: uuid.UUID
    status: str

    @classmethod
    def of(cls, doc: Document) -> WrittenOut:
        return cls(id=doc.id, status=doc.status)


class RejectedOut(BaseModel):
    name: str = Field(description="The name the file was sent under.")
    reason: str = Field(description="Why it was not accepted, as a sentence for people.")


class UploadOut(BaseModel):
    documents: list[AcceptedOut] = Field(description="The files accepted: queued, or unchanged and already there.")
    rejected: list[RejectedOut] = Field(
        description="The files not accepted, each with its reason; nothing of theirs was stored."
    )


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, examples=["notes/renamed.md"])


# --- chat ------------------------------------------------------------------------------------------------


class ChatIn(BaseModel):
    message: Text = Field(
        description="The question (MEMEX_MAX_QUERY_CHARS at most).", examples=["How do I rotate keys?"]
    )
    conversation_id: uuid.UUID | None = Field(default=None, description="Continue this conversation.")
    kb: uuid.UUID | list[uuid.UUID] | None = Field(
        default=None, description="Only these knowledge bases (an id or a list); default every one you may read."
    )
    stream: bool = Field(default=True, description="Server-Sent Events (true) or one JSON object (false).")

    def kb_ids(self) -> tuple[uuid.UUID, ...]:
        if self.kb is None:
            return ()
        return tuple(self.kb) if isinstance(self.kb, list) else (self.kb,)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    kb_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
    message_count: int


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: str
    content: str
    citations: list[dict[str, object]]
    sentences: list[dict[str, object]]
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    timings: dict[str, object]
    error: str | None
    created_at: datetime


class ConversationsOut(BaseModel):
    conversations: list[ConversationOut]


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class ConversationPatch(BaseModel):
    title: Text = Field(min_length=1, max_length=200)


class UsageRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: str
    user_id: uuid.UUID | None
    email: str | None
    provider: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


class UsageOut(BaseModel):
    days: int
    rows: list[UsageRowOut]
    totals: dict[str, int | float]


class AuditEntryOut(BaseModel):
    """One audit entry: who (user and API key, from which address) did what to what, and whether it worked."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    action: str
    outcome: Literal["success", "failure"]
    actor_user_id: uuid.UUID | None
    actor_email: str | None
    actor_key_id: uuid.UUID | None
    ip: str | None
    request_id: str | None
    target_type: str | None
    target_id: str | None
    detail: dict[str, object]


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]
    total: int
    limit: int
    offset: int


# --- doctor ----------------------------------------------------------------------------------------------------


class DoctorFindingOut(BaseModel):
    severity: Literal["critical", "high", "medium", "low", "info"]
    check: str
    found: str
    fix: str
    data: dict[str, object]


class DoctorManualOut(BaseModel):
    severity: Literal["manual"]
    check: str
    item: str
    how: str


class DoctorOut(BaseModel):
    """What `memex doctor --json` prints: findings worst first, the manual checklist, counts by severity."""

    findings: list[DoctorFindingOut]
    manual: list[DoctorManualOut]
    summary: dict[str, object]

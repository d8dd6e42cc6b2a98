"""Finding the knowledge base a local command means by `--kb` (the rule is `kbs.service.find_local_kb`)."""

from __future__ import annotations

from memex.kbs import service as kbs
from memex.kbs.models import KnowledgeBase
from memex.runtime import Runtime

DEFAULT_KB = "default"


async def resolve_kb(runtime: Runtime, name_or_id: str, *, create: bool) -> KnowledgeBase | None:
    """A KB by id or name, in a transaction of its own; created on first use if asked."""
    async with runtime.engine.begin() as conn:
        return await kbs.find_local_kb(conn, name_or_id, create=create)

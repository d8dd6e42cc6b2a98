"""Finding the knowledge base a local command means by `--kb`."""

from __future__ import annotations

import uuid

from memex.errors import InvalidInput
from memex.kbs import store as kbs
from memex.kbs.access import Actor
from memex.kbs.models import KnowledgeBase
from memex.runtime import Runtime

DEFAULT_KB = "default"


async def resolve_kb(runtime: Runtime, name_or_id: str, *, create: bool) -> KnowledgeBase | None:
    """A KB by id or name; local names mean the CLI's own (ownerless) KBs first. Created on first use if asked."""
    actor = Actor.system()
    try:
        kb_id = uuid.UUID(name_or_id)
    except ValueError:
        kb_id = None
    async with runtime.engine.begin() as conn:
        if kb_id is not None:
            return await kbs.get_for(conn, actor, kb_id)
        found = await kbs.find_by_name(conn, actor, name_or_id)
        local = [kb for kb in found if kb.owner_id is None]
        if local:
            return local[0]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(str(kb.id) for kb in found)
            raise InvalidInput(
                f"several knowledge bases are named {name_or_id!r}; pass one of these ids to --kb: {ids}"
            )
        if not create:
            return None
        await kbs.create_if_absent(conn, name=name_or_id, owner_id=None)
        return (await kbs.find_by_name(conn, actor, name_or_id))[0]

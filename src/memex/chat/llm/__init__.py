"""Chat model providers behind one Protocol (`base.Llm`): OpenAI-compatible servers and Anthropic."""

from __future__ import annotations

from memex.chat.llm.base import Llm
from memex.settings import Settings


def build_llm(settings: Settings) -> Llm | None:
    """The configured chat model, or None when MEMEX_LLM_PROVIDER is `none` (extractive answers)."""
    if settings.llm_provider == "openai":
        from memex.chat.llm.openai import OpenAIChat

        return OpenAIChat.from_settings(settings)
    if settings.llm_provider == "anthropic":
        from memex.chat.llm.anthropic import AnthropicChat

        return AnthropicChat.from_settings(settings)
    return None

"""A fake OpenAI server (`POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`), as documented.

Streams are Server-Sent Events of `chat.completion.chunk` objects: a first chunk with the assistant role, one
chunk per piece of text, a chunk with `finish_reason`, a usage chunk with empty `choices` when the request set
`stream_options.include_usage`, then `data: [DONE]`. Errors are `{"error": {"message", "type", "param", "code"}}`.

Embeddings are a hashed bag of words (each word adds ±1 to one of `dimension` coordinates): deterministic,
instant, and texts that share words are near each other, so a search through them ranks by shared words.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from tests.doubles.script import Behaviour, Endpoint
from tests.doubles.server import Exchange, Handler, LlmDouble, answer_for, content_text, pieces, word_count

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "The request is not valid."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 20ms.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class OpenAIDouble(LlmDouble):
    """`base_url` ends in `/v1`, as the OpenAI SDK's `base_url` does."""

    provider = "openai"
    default_models = ("gpt-4o-mini", "llama3.1")
    default_dimension = 128

    def __init__(self) -> None:
        super().__init__()
        self.dimension = self.default_dimension
        """The length of the vectors `POST /v1/embeddings` returns."""

    def reset(self) -> None:
        super().reset()
        self.dimension = self.default_dimension

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self) -> dict[tuple[str, str], tuple[Endpoint, Handler]]:
        return {
            ("POST", "/v1/chat/completions"): ("generate", self._chat),
            ("GET", "/v1/models"): ("models", self._models),
            ("POST", "/v1/embeddings"): ("embed", self._embeddings),
        }

    def presented_key(self, headers: Mapping[str, str]) -> str | None:
        authorization = headers.get("authorization", "")
        return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None

    def error_body(self, status: int, message: str | None) -> dict[str, Any]:
        kind, code, default = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, f"Error {status}.")
        )
        return {"error": {"message": message or default, "type": kind, "param": None, "code": code}}

    async def _models(self, exchange: Exchange, behaviour: Behaviour) -> None:
        if await exchange.pause(behaviour.first_token_delay):
            data = [
                {"id": model, "object": "model", "created": 1700000000, "owned_by": "system"} for model in self.models
            ]
            await exchange.json(200, {"object": "list", "data": data})

    async def _embeddings(self, exchange: Exchange, behaviour: Behaviour) -> None:
        request = exchange.record.body
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": bag_of_words(text, self.dimension)}
            for i, text in enumerate(texts)
        ]
        tokens = word_count(*texts)
        body = {
            "object": "list",
            "data": data,
            "model": request["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if await exchange.pause(behaviour.first_token_delay):
            await exchange.json(200, body, behaviour.headers)

    async def _chat(self, exchange: Exchange, behaviour: Behaviour) -> None:
        request = exchange.record.body
        system = "\n".join(
            content_text(m.get("content")) for m in request["messages"] if m.get("role") in ("system", "developer")
        )
        users = [content_text(m.get("content")) for m in request["messages"] if m.get("role") == "user"]
        text = answer_for(behaviour, system, users)
        parts = pieces(text, behaviour.chunks)
        prompt_tokens, completion_tokens = behaviour.usage or (
            word_count(system, *(content_text(m.get("content")) for m in request["messages"])),
            len(parts),
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **behaviour.headers}
        if not request.get("stream"):
            if await exchange.pause(behaviour.first_token_delay + behaviour.token_delay * len(parts)):
                await exchange.json(200, _completion(ident, request["model"], text, usage), headers)
            return
        await exchange.start(
            200,
            [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), *headers.items()],
        )
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        chunk = _Chunker(ident, request["model"], include_usage)
        if not await exchange.pause(behaviour.first_token_delay):
            return
        if not await exchange.write(chunk.delta({"role": "assistant", "content": "", "refusal": None})):
            return
        for index, part in enumerate(parts):
            if index == behaviour.stop_after:
                return
            if index and not await exchange.pause(behaviour.token_delay):
                return
            if not await exchange.write(chunk.delta({"content": part})):
                return
        if behaviour.stop_after is not None and behaviour.stop_after >= len(parts):
            return
        if not await exchange.write(chunk.delta({}, finish_reason="stop")):
            return
        if include_usage and behaviour.send_usage and not await exchange.write(chunk.usage(usage)):
            return
        await exchange.finish(b"data: [DONE]\n\n")


class _Chunker:
    def __init__(self, ident: str, model: str, include_usage: bool) -> None:
        self._base = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_memex_double",
        }
        self._include_usage = include_usage

    def delta(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk: dict[str, Any] = {**self._base, "choices": [choice]}
        if self._include_usage:
            chunk["usage"] = None
        return _event(chunk)

    def usage(self, usage: dict[str, int]) -> bytes:
        return _event({**self._base, "choices": [], "usage": usage})


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _completion(ident: str, model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_memex_double",
    }


def bag_of_words(text: str, dimension: int) -> list[float]:
    """A word-hashing vector (not normalised: the client does that, as real servers' clients must too)."""
    vector = [0.0] * dimension
    vector[0] = 0.01  # never all zeros
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dimension] += 1.0 if digest[4] & 1 else -1.0
    return vector

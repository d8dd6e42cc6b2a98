"""A fake Anthropic Messages API (`POST /v1/messages`, `GET /v1/models`), byte for byte as documented.

Streams are named Server-Sent Events: message_start, content_block_start, ping, content_block_delta
(text_delta) per piece of text, content_block_stop, message_delta (stop_reason and usage), message_stop.
Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from tests.doubles.script import Behaviour, Endpoint
from tests.doubles.server import Exchange, Handler, LlmDouble, answer_for, content_text, pieces, word_count

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "The request is not valid."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicDouble(LlmDouble):
    """`base_url` has no `/v1`: the Anthropic SDK adds `/v1/messages` to it."""

    provider = "anthropic"
    default_models = ("claude-sonnet-5", "claude-haiku-5-5")

    @property
    def base_url(self) -> str:
        return self.origin

    def routes(self) -> dict[tuple[str, str], tuple[Endpoint, Handler]]:
        return {("POST", "/v1/messages"): ("generate", self._messages), ("GET", "/v1/models"): ("models", self._models)}

    def presented_key(self, headers: Mapping[str, str]) -> str | None:
        # The API takes the key as `x-api-key`, or as a bearer token (what SDK 2.x sends).
        authorization = headers.get("authorization", "")
        bearer = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
        return headers.get("x-api-key", bearer)

    def error_body(self, status: int, message: str | None) -> dict[str, Any]:
        kind, default = _ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}")
        )
        return {"type": "error", "error": {"type": kind, "message": message or default}, "request_id": _request_id()}

    async def _models(self, exchange: Exchange, behaviour: Behaviour) -> None:
        if await exchange.pause(behaviour.first_token_delay):
            data = [
                {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
                for model in self.models
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            await exchange.json(200, {"data": data, "has_more": False, "first_id": first, "last_id": last})

    async def _messages(self, exchange: Exchange, behaviour: Behaviour) -> None:
        request = exchange.record.body
        system = content_text(request.get("system", ""))
        users = [content_text(m.get("content")) for m in request["messages"] if m.get("role") == "user"]
        text = answer_for(behaviour, system, users)
        parts = pieces(text, behaviour.chunks)
        input_tokens, output_tokens = behaviour.usage or (
            word_count(system, *(content_text(m.get("content")) for m in request["messages"])),
            len(parts),
        )
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        headers = {"request-id": _request_id(), **behaviour.headers}
        if not request.get("stream"):
            if await exchange.pause(behaviour.first_token_delay + behaviour.token_delay * len(parts)):
                done = message | {"content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
                done["usage"] = message["usage"] | {"output_tokens": output_tokens}
                await exchange.json(200, done, headers)
            return
        await exchange.start(
            200, [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), *headers.items()]
        )
        opening = [
            _event("message_start", {"type": "message_start", "message": message}),
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            _event("ping", {"type": "ping"}),
        ]
        if not await exchange.write(b"".join(opening)) or not await exchange.pause(behaviour.first_token_delay):
            return
        for index, part in enumerate(parts):
            if index == behaviour.stop_after:
                return
            if index and not await exchange.pause(behaviour.token_delay):
                return
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}
            if not await exchange.write(_event("content_block_delta", delta)):
                return
        if behaviour.stop_after is not None and behaviour.stop_after >= len(parts):
            return
        closing = [
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
        ]
        if not await exchange.write(b"".join(closing)):
            return
        await exchange.finish(_event("message_stop", {"type": "message_stop"}))


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"

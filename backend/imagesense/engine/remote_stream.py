"""Reading an OpenAI-compatible server-sent-event stream, in the shapes vLLM, llama-server, Ollama and
ImageSense send: content deltas, a finish reason, usage in the last chunk or a chunk of its own (no
choices), and errors either as an HTTP status with a JSON body or as a `data: {"error": ...}` event."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from imagesense.engine.errors import EngineError, EngineOverloaded, EngineUnavailable, InvalidGenerationRequest
from imagesense.engine.protocol import FinishReason, GenerationControl

MESSAGE_LIMIT = 300  # characters of an upstream's error message passed on


@dataclass
class StreamState:
    started: float
    pieces: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


async def read_stream(response: httpx.Response, control: GenerationControl, state: StreamState) -> FinishReason:
    """Emit the answer's pieces as they come; return how it finished. A stream that ends without a
    finish reason was cut off: that is an error, not an answer."""
    finish: FinishReason | None = None
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, ": comments" (keep-alives, queue positions)
        data = line[5:].strip()
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk or chunk.get("object") == "error":
            raise _error_from_body(chunk, 500, None, str(response.url))
        _take_usage(chunk.get("usage"), state)
        for choice in chunk.get("choices") or []:
            if text := (choice.get("delta") or {}).get("content"):
                state.first_token_at = state.first_token_at or time.perf_counter()
                state.pieces.append(text)
                control.emit(text)
            if choice.get("finish_reason"):
                finish = "length" if choice["finish_reason"] == "length" else "stop"
    if finish is None:
        raise EngineUnavailable(f"the upstream {response.url} ended the stream mid-answer", 5)
    return finish


def _take_usage(usage: Any, state: StreamState) -> None:
    if not isinstance(usage, dict):
        return
    state.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    state.completion_tokens = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        state.cached_tokens = int(details.get("cached_tokens") or 0)


def error_from_response(response: httpx.Response, base: str) -> EngineError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    retry_after = response.headers.get("retry-after", "")
    return _error_from_body(body, response.status_code, int(retry_after) if retry_after.isdigit() else None, base)


def _error_from_body(body: Any, status: int, retry_after: int | None, base: str) -> EngineError:
    """vLLM: {"error": {...}} (older: {"object": "error", "message", "code"}); llama-server and
    OpenAI: {"error": {"message", "type", "code", "param"}}."""
    error = body.get("error") if isinstance(body, dict) else None
    details = error if isinstance(error, dict) else body if isinstance(body, dict) else {}
    message = str(details.get("message") or error or f"HTTP {status}")[:MESSAGE_LIMIT]
    code = details.get("code")
    status = code if isinstance(code, int) and status == 500 else status  # an error event carries its own
    said = f"the upstream {base} answered {status}: {message}"
    if status == 429:
        return EngineOverloaded(said, retry_after or 5)
    if status in (400, 413, 422):
        param = details.get("param")
        return InvalidGenerationRequest(message, field=str(param) if param else None)
    if status in (401, 403):
        return EngineUnavailable(f"{said} (check IMAGESENSE_REMOTE_API_KEY)")
    if status == 404:
        return EngineUnavailable(f"{said} (check IMAGESENSE_REMOTE_URL and IMAGESENSE_REMOTE_MODEL)")
    return EngineUnavailable(said, retry_after or 5)

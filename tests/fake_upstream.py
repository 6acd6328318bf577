"""A small OpenAI-compatible upstream on loopback that answers the way vLLM and llama-server do — their
chunk shapes, usage chunks and error bodies — or misbehaves on purpose (busy, loading, cut off)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imagesense.devtools.loopback import free_port

WORDS = ["A ", "red ", "square."]


@dataclass
class FakeUpstream:
    url: str = ""
    mode: str = "vllm"  # vllm | llama | busy | loading | invalid | cut | slow
    requests: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)  # the Authorization header of each request
    disconnected: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def models(_request: Request) -> Response:
            return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            self.keys.append(request.headers.get("authorization"))
            if self.mode == "busy":  # vLLM / a router in front of it
                error = {"message": "Too many requests", "type": "RateLimitError", "code": 429}
                return JSONResponse({"error": error}, status_code=429, headers={"Retry-After": "7"})
            if self.mode == "loading":  # llama-server while it loads a model
                error = {"code": 503, "message": "Loading model", "type": "unavailable_error"}
                return JSONResponse({"error": error}, status_code=503)
            if self.mode == "invalid":  # vLLM's older flat error body
                flat = {"object": "error", "message": "maximum context length is 4096 tokens", "code": 400}
                return JSONResponse({**flat, "type": "BadRequestError", "param": "messages"}, status_code=400)
            return StreamingResponse(self._events(), media_type="text/event-stream")

        routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
        return Starlette(routes=routes)

    async def _events(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._chunks():
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.disconnected.set()
            raise

    async def _chunks(self) -> AsyncIterator[dict[str, Any]]:
        head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": "fake"}
        yield {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        for index, word in enumerate(WORDS):
            if self.mode == "cut" and index == 2:
                raise RuntimeError("the upstream crashed mid-answer")  # the connection drops, no finish
            if self.mode == "slow":
                await asyncio.sleep(0.5 if index else 0)
            delta = {"index": 0, "delta": {"content": word}, "finish_reason": None, "logprobs": None}
            yield {**head, "choices": [{**delta, "stop_reason": None}] if self.mode == "vllm" else [delta]}
        if self.mode == "slow":
            await asyncio.sleep(60)
        usage = {"prompt_tokens": 120, "completion_tokens": 3, "total_tokens": 123}
        finish = {"index": 0, "delta": {}, "finish_reason": "stop"}
        if self.mode == "llama":  # usage and timings on the chunk that finishes
            timings = {"prompt_n": 120, "prompt_ms": 80.0, "predicted_n": 3, "predicted_ms": 30.0}
            yield {**head, "choices": [finish], "usage": usage, "timings": timings}
        else:  # vLLM: the finish, then a usage chunk with no choices
            yield {**head, "choices": [finish]}
            details = {"cached_tokens": 64}
            yield {**head, "choices": [], "usage": {**usage, "prompt_tokens_details": details}}


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}/v1"
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)

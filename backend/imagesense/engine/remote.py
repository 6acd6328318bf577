"""A remote engine: generation on any OpenAI-compatible `/v1/chat/completions` upstream — vLLM,
llama-server, Ollama, or another ImageSense — behind the same protocol as the local model.

Each generation streams from the upstream. The worker thread runs it on an event loop of its own, so
a cancel or a deadline (``control.should_stop()``) cancels the read and closes the connection at once,
wherever the upstream is (queued, encoding, decoding): the upstream sees the client leave and frees
its slot. A connection that could not be opened is retried (nothing was sent); nothing else is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from imagesense.engine.errors import EngineUnavailable
from imagesense.engine.protocol import (
    Capabilities,
    EngineInfo,
    FinishReason,
    GenerationControl,
    GenerationRequest,
    GenerationResult,
)
from imagesense.engine.remote_stream import StreamState, error_from_response, read_stream
from imagesense.engine.upstream_health import UpstreamHealth

STOP_POLL_S = 0.05  # how often a running generation asks whether its caller still wants it
# Qwen3-VL: a visual token per 32×32 pixels (16 px patches merged 2×2), as images.VISUAL_TOKEN_EDGE says
# for the local model (engine/ can't import it); the upstream counts them inside prompt_tokens.
VISUAL_TOKEN_EDGE = 32


@dataclass(frozen=True)
class RemoteConfig:
    url: str  # the upstream's OpenAI base URL, ending in /v1
    model: str  # the model name the upstream serves
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    idle_timeout_s: float = 300.0  # longest wait for the next bytes (the first token included)
    connect_retries: int = 2
    health_interval_s: float = 5.0


class RemoteEngine:
    """Implements ``VisionLanguageEngine`` over HTTP."""

    def __init__(self, config: RemoteConfig) -> None:
        self._config = config
        self._base = config.url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._health = UpstreamHealth(f"{self._base}/models", self._headers, config.connect_timeout_s)

    def start(self) -> None:
        """Check the upstream now, then keep checking in the background (for /ready)."""
        self._health.start(self._config.health_interval_s)

    def close(self) -> None:
        self._health.stop()

    @property
    def info(self) -> EngineInfo:
        # The upstream follows response_format itself (vLLM's and llama.cpp's guided decoding,
        # ImageSense's own); prefix reuse is the upstream's business.
        return EngineInfo(model=f"{self._config.model} at {self._base}", capabilities=Capabilities(json_schema=True))

    def unavailable_reason(self) -> str | None:
        return self._health.reason

    def generate(self, request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        return asyncio.run(self._generate(request, control))

    async def _generate(self, request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        timeout = httpx.Timeout(self._config.idle_timeout_s, connect=self._config.connect_timeout_s)
        state = StreamState(started=time.perf_counter())
        image_tokens = sum(
            (image.width // VISUAL_TOKEN_EDGE) * (image.height // VISUAL_TOKEN_EDGE) for image in request.images
        )
        body = payload(request, self._config.model)  # once: the images' PNG encoding is not redone per retry
        async with httpx.AsyncClient(timeout=timeout, headers=self._headers) as client:
            for attempt in range(self._config.connect_retries + 1):
                try:
                    finish = await self._attempt(client, body, control, state)
                    return _result(state, image_tokens, finish)
                except httpx.ConnectError as error:  # the request never left: safe to send again
                    if attempt == self._config.connect_retries or control.should_stop():
                        self._health.mark_down(f"cannot connect to {self._base} ({type(error).__name__})")
                        raise EngineUnavailable(f"the upstream {self._base} cannot be reached", 10) from error
                    await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], control: GenerationControl, state: StreamState
    ) -> FinishReason:
        with _upstream_errors(self._base, self._config.idle_timeout_s):
            async with client.stream("POST", f"{self._base}/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_from_response(response, self._base)
                reading = asyncio.create_task(read_stream(response, control, state))
                while not reading.done():
                    await asyncio.wait({reading}, timeout=STOP_POLL_S)
                    if not reading.done() and control.should_stop():
                        reading.cancel()  # leaving the block closes the connection: the upstream stops
                        with contextlib.suppress(asyncio.CancelledError):
                            await reading
                        return "cancelled"
                return reading.result()


@contextlib.contextmanager
def _upstream_errors(base: str, idle_timeout_s: float) -> Iterator[None]:
    """Transport failures after the connection opened, as the engine's errors (never retried)."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise EngineUnavailable(f"the upstream {base} sent nothing for {idle_timeout_s:.0f} s", 10) from error
    except (httpx.RemoteProtocolError, httpx.ReadError) as error:
        raise EngineUnavailable(f"the upstream {base} closed the connection mid-answer", 5) from error


def payload(request: GenerationRequest, model: str) -> dict[str, Any]:
    """The request in OpenAI's shape: images as PNG data URLs at the size they were fitted to."""
    images = iter(request.images)
    messages = [
        {
            "role": message["role"],
            "content": [
                {"type": "text", "text": part["text"]}
                if part["type"] == "text"
                else {"type": "image_url", "image_url": {"url": data_url(next(images))}}
                for part in message["content"]
            ],
        }
        for message in request.messages
    ]
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.json_schema is not None:
        schema = {"name": "answer", "schema": dict(request.json_schema), "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    return body


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _result(state: StreamState, image_tokens: int, finish: FinishReason) -> GenerationResult:
    now = time.perf_counter()
    first = state.first_token_at or now
    return GenerationResult(
        text="".join(state.pieces),
        finish_reason=finish,
        prompt_tokens=state.prompt_tokens,
        image_tokens=min(image_tokens, state.prompt_tokens) if state.prompt_tokens else image_tokens,
        completion_tokens=state.completion_tokens or len(state.pieces),
        prefill_ms=(first - state.started) * 1000,
        decode_ms=(now - first) * 1000,
        cached_tokens=state.cached_tokens,
    )

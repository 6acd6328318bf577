"""The official `openai` SDK drives /v1 on a real server: models, chat with images, streaming with
usage, a conversation, a JSON schema whose answer validates, refusals in OpenAI's envelope, and a
client that leaves mid-stream."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from live import LiveServer, live_server
from support import image_bytes, service, wait_until
from support import stats as support_stats
from test_constrained import INVOICE

KEY = "sk-imagesense-test-0123456789abcdef"
PNG = image_bytes((160, 120), color="navy")


def data_url(data: bytes = PNG) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


class ImageHost(http.server.BaseHTTPRequestHandler):
    """A loopback web server: an allowed image, a redirect that leaves the allowed prefix, a private one."""

    def do_GET(self) -> None:
        if self.path == "/public/navy.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path == "/public/elsewhere.png":
            self.send_response(302)
            self.send_header("Location", "/private/navy.png")
            self.end_headers()
        else:
            self.send_response(200 if self.path == "/private/navy.png" else 404)
            self.end_headers()
            self.wfile.write(PNG)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, image_host: str) -> Iterator[LiveServer]:
    with live_server(
        tiny_checkpoint,
        tmp_path_factory.mktemp("openai"),
        api_keys=json.dumps([f"sdk:{KEY}"]),
        allowed_image_urls=json.dumps([f"{image_host}/public/"]),
        served_model_name="qwen3-vl-tiny",
        repetition_guard="false",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def user(text: str, *images: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


def test_models_lists_the_served_model_with_its_modalities(sdk: openai.OpenAI) -> None:
    [model] = sdk.models.list().data
    assert model.id == "qwen3-vl-tiny"
    assert model.object == "model"
    assert model.model_extra is not None
    assert model.model_extra["architecture"]["input_modalities"] == ["text", "image"]


def test_a_chat_completion_with_a_base64_image(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="qwen3-vl-tiny",
        messages=[user("What is in the picture?", data_url())],
        max_tokens=8,  # type: ignore[list-item]
    )
    [choice] = completion.choices
    assert completion.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 8 or choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens > 20  # the image's visual tokens are in the prompt
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_the_same_streamed_with_a_usage_chunk(sdk: openai.OpenAI) -> None:
    messages: Any = [user("What is in the picture?", data_url())]
    whole = sdk.chat.completions.create(model="qwen3-vl-tiny", messages=messages, max_tokens=8)
    chunks = list(
        sdk.chat.completions.create(
            model="qwen3-vl-tiny", messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content  # greedy: the stream carries the same answer
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_a_conversation_resent_turn_by_turn_reuses_its_prefix(sdk: openai.OpenAI) -> None:
    """A chat UI sends the whole conversation each turn; the second turn starts from the first's cache."""
    messages: list[Any] = [
        {"role": "system", "content": "You answer briefly."},
        user("Describe the image.", data_url(image_bytes((200, 100), color="teal"))),
    ]
    first = sdk.chat.completions.create(model="qwen3-vl-tiny", messages=messages, max_tokens=6)
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And what colour is it?"},
    ]
    second = sdk.chat.completions.create(model="imagesense", messages=messages, max_tokens=6)
    assert second.choices[0].message.content
    details = second.usage.prompt_tokens_details  # type: ignore[union-attr]
    assert details is not None
    assert details.cached_tokens is not None
    assert details.cached_tokens > first.usage.prompt_tokens // 2  # type: ignore[union-attr]


def test_text_alone_works_too(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="qwen3-vl-tiny", messages=[{"role": "user", "content": "Title for this chat?"}], max_tokens=4
    )
    assert completion.usage is not None
    assert completion.usage.prompt_tokens < 40  # no visual tokens


def test_a_json_schema_answer_validates(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="qwen3-vl-tiny",
        messages=[user("Extract the invoice.", data_url())],  # type: ignore[list-item]
        max_tokens=400,
        temperature=0.8,
        seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "invoice", "schema": INVOICE, "strict": True}},
    )
    answer = completion.choices[0].message.content
    assert answer is not None
    jsonschema.validate(json.loads(answer), INVOICE)
    assert completion.choices[0].finish_reason == "stop"


def test_a_json_object_answer_is_an_object_even_streamed(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="qwen3-vl-tiny",
        messages=[{"role": "user", "content": "Give me JSON."}],
        max_tokens=64,
        response_format={"type": "json_object"},
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert isinstance(json.loads(text), dict)


def test_an_allowed_image_url_is_fetched(sdk: openai.OpenAI, image_host: str) -> None:
    by_url = sdk.chat.completions.create(
        model="qwen3-vl-tiny",
        messages=[user("Colour?", f"{image_host}/public/navy.png")],
        max_tokens=4,  # type: ignore[list-item]
    )
    inline = sdk.chat.completions.create(
        model="qwen3-vl-tiny",
        messages=[user("Colour?", data_url())],
        max_tokens=4,  # type: ignore[list-item]
    )
    assert by_url.choices[0].message.content == inline.choices[0].message.content  # the same image


def bad_request(sdk: openai.OpenAI, **overrides: Any) -> openai.BadRequestError:
    request: dict[str, Any] = {"model": "qwen3-vl-tiny", "messages": [user("Hi", data_url())], "max_tokens": 4}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(**(request | overrides))
    body = refused.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}  # the SDK unwraps {"error": {...}}
    assert body["type"] == "invalid_request_error"
    return refused.value


def test_n_above_one_is_a_400(sdk: openai.OpenAI) -> None:
    refused = bad_request(sdk, n=2)
    assert refused.param == "n"  # type: ignore[attr-defined]
    assert "n=1" in refused.message


@pytest.mark.parametrize(
    ("path", "says"), [("/private/navy.png", "not under a prefix"), ("/public/elsewhere.png", "not under a prefix")]
)
def test_a_url_outside_the_allowed_prefixes_is_a_400(sdk: openai.OpenAI, image_host: str, path: str, says: str) -> None:
    refused = bad_request(sdk, messages=[user("Hi", f"{image_host}{path}")])
    assert refused.param == "messages[0].content[0].image_url"  # type: ignore[attr-defined]
    assert says in refused.message


def test_an_invalid_schema_is_a_400_naming_the_problem(sdk: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "no-such-format"}}}
    refused = bad_request(sdk, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert refused.param == "response_format"  # type: ignore[attr-defined]
    assert "Unknown format" in refused.message


def test_an_unknown_model_is_a_404_and_a_wrong_key_a_401(sdk: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong-key-000000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def stats(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/api/v1/stats", headers={"Authorization": f"Bearer {KEY}"}).json()
    return body


def test_a_client_that_leaves_mid_stream_frees_the_slot(sdk: openai.OpenAI, server: LiveServer) -> None:
    before = stats(server)["cancelled"]
    stream = sdk.chat.completions.create(
        model="qwen3-vl-tiny", messages=[user("Describe at length.", data_url())], max_tokens=2000, stream=True
    )
    received = [next(stream) for _ in range(4)]  # the role, then text: the generation is running
    assert stats(server)["active"] == 1
    stream.close()
    deadline = time.monotonic() + 10
    while (now := stats(server))["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now["active"] == 0
    assert now["cancelled"] == before + 1  # stopped, not run to its 2000 tokens
    assert received[0].choices[0].delta.role == "assistant"


def test_stop_sequences_end_the_answer_before_them(sdk: openai.OpenAI) -> None:
    messages: Any = [user("Describe it.", data_url())]
    free = sdk.chat.completions.create(model="qwen3-vl-tiny", messages=messages, max_tokens=16)
    text = free.choices[0].message.content or ""
    stop = text[4:7]
    stopped = sdk.chat.completions.create(model="qwen3-vl-tiny", messages=messages, max_tokens=16, stop=[stop, "@@"])
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_a_full_queue_and_an_engine_not_loaded_answer_in_the_envelope(tiny_checkpoint: Path) -> None:
    chat = {"model": "imagesense", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 600}
    with service(tiny_checkpoint, max_concurrency=1, queue_size=0, repetition_guard=False) as client:
        running = threading.Thread(target=lambda: client.post("/v1/chat/completions", json=chat))
        running.start()
        assert wait_until(lambda: support_stats(client)["active"] == 1)  # the only slot is taken
        full = client.post("/v1/chat/completions", json=chat)
        running.join()
    assert full.status_code == 429
    assert full.headers["Retry-After"]
    assert full.json()["error"]["type"] == "rate_limit_error"
    with service(tiny_checkpoint, load_model=False, fast_ocr=False) as client:
        down = client.post("/v1/chat/completions", json=chat)
        assert down.status_code == 503
        assert set(down.json()["error"]) == {"message", "type", "param", "code"}
        assert client.post("/api/v1/ask", data={"question": "x"}).json()["error"]["request_id"]  # /api/v1: our shape


def test_a_model_still_loading_is_a_503_with_retry_after(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imagesense import engines

    loading = threading.Event()

    def slow_load(*_args: Any, **_kwargs: Any) -> Any:
        loading.wait(30)
        raise RuntimeError("not this time")

    monkeypatch.setattr(engines, "open_transformers_engine", slow_load)
    chat = {"model": "imagesense", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        with service(tiny_checkpoint, wait=False, fast_ocr=False) as client:
            refused = client.post("/v1/chat/completions", json=chat)
    finally:
        loading.set()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "10"
    assert refused.json()["error"]["type"] == "service_unavailable"

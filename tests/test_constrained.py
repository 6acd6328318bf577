"""Constrained JSON, seeded sampling and stop sequences, on the tiny random-weight model: what random
weights can't hide is structural (the output validates, a seed repeats, a stop ends the text)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imagesense.engine import loader
from imagesense.engine.constrained import json_grammar, valid_answer
from imagesense.engine.errors import InvalidGenerationRequest
from imagesense.engine.protocol import GenerationRequest, Unattended
from imagesense.engine.sampling import nucleus
from imagesense.engine.stops import StopSequences
from imagesense.engine.transformers_engine import TransformersEngine
from imagesense.prompts import build_messages
from imagesense.results import parsed_json
from support import image_bytes, receive_until, run_request, upload

INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"enum": ["USD", "EUR", "CNY"]},
        "paid": {"type": "boolean"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "item": {"type": "string", "minLength": 2},
                    "quantity": {"type": "integer", "minimum": 1},
                    "price": {"type": "number"},
                },
                "required": ["item", "quantity", "price"],
            },
            "minItems": 1,
        },
        "notes": {"type": ["string", "null"]},
    },
    "required": ["vendor", "total", "currency", "paid", "lines"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> TransformersEngine:
    return TransformersEngine(loader.load_model(str(tiny_checkpoint), "float32"))


def ask(max_new_tokens: int, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "messages": build_messages("ask", 1, question="What does the invoice say?"),
        "images": [Image.new("RGB", (96, 64), "white")],
        "max_pixels": 128 * 128,
        "min_pixels": 4096,
        "max_new_tokens": max_new_tokens,
    }
    return GenerationRequest(**(fields | overrides))


class Collect(Unattended):
    def __init__(self) -> None:
        self.pieces: list[str] = []

    def emit(self, text: str) -> None:
        self.pieces.append(text)


@pytest.mark.parametrize("max_new_tokens", [0, 40, 300])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_constrained_output_always_validates(
    engine: TransformersEngine, max_new_tokens: int, temperature: float
) -> None:
    """Random weights wander as far as they can: the grammar and the closing reserve still end the
    output as JSON valid against a nested schema, within the token budget."""
    shortest = engine.json_constraints().processor(INVOICE, 512).closing_length()
    assert shortest is not None
    max_new_tokens += shortest  # from just enough to plenty
    control = Collect()
    result = engine.generate(ask(max_new_tokens, json_schema=INVOICE, temperature=temperature, seed=7), control)
    jsonschema.validate(json.loads(result.text), INVOICE)
    assert result.finish_reason == "stop"
    assert result.completion_tokens <= max_new_tokens
    assert "".join(control.pieces) == result.text  # the stream carries the same JSON


def test_json_object_without_a_schema_is_any_object(engine: TransformersEngine) -> None:
    result = engine.generate(ask(48, json_schema={"type": "object"}), Collect())
    assert isinstance(json.loads(result.text), dict)


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "strin"}, "Invalid type"),
        ({"type": "string", "format": "no-such-format"}, "Unknown format"),
        ({"type": "string", "pattern": "(?<=a)b"}, "look-around"),
        ({"allOf": [{"type": "string"}, {"type": "number"}]}, "Unsatisfiable"),
    ],
)
def test_a_schema_that_cant_be_followed_is_refused_with_the_reason(schema: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidGenerationRequest, match=says) as refused:
        json_grammar(schema, "response_format")
    assert refused.value.field == "response_format"


def test_a_token_limit_too_small_for_any_valid_answer_is_refused_before_the_model_runs(
    engine: TransformersEngine,
) -> None:
    shortest = engine.json_constraints().processor(INVOICE, 512).closing_length()
    assert shortest is not None
    assert shortest > 10
    with pytest.raises(InvalidGenerationRequest, match=f"takes {shortest} tokens") as refused:
        engine.generate(ask(shortest - 1, json_schema=INVOICE), Unattended())
    assert refused.value.field == "max_new_tokens"
    exact = engine.generate(ask(shortest, json_schema=INVOICE), Unattended())  # just enough: closed at once
    jsonschema.validate(json.loads(exact.text), INVOICE)


def test_a_top_level_number_ends_instead_of_growing_digits(engine: TransformersEngine) -> None:
    result = engine.generate(ask(12, json_schema={"type": "number"}), Unattended())
    assert isinstance(json.loads(result.text), int | float)
    assert result.finish_reason == "stop"


def test_a_seed_repeats_its_answer_even_beside_another_generation(engine: TransformersEngine) -> None:
    seeded = ask(12, temperature=1.0, seed=1234, json_schema=None)
    alone = engine.generate(seeded, Unattended()).text
    results: list[str] = []
    noise = threading.Thread(target=lambda: engine.generate(ask(24, temperature=1.0), Unattended()))
    noise.start()
    results.append(engine.generate(seeded, Unattended()).text)
    noise.join()
    different = {engine.generate(ask(12, temperature=1.0, seed=seed), Unattended()).text for seed in range(4)}
    assert results == [alone]
    assert len(different) > 1  # the seed matters: the sampler really samples


def test_nucleus_keeps_the_smallest_set_reaching_top_p() -> None:
    import torch

    kept = nucleus(torch.tensor([[0.5, 0.3, 0.15, 0.05]]), 0.7)
    assert kept[0].tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])


def test_a_stop_sequence_ends_the_answer_and_never_streams(engine: TransformersEngine) -> None:
    free = engine.generate(ask(24, repetition_guard=False), Unattended()).text
    assert len(free) > 6
    stop = free[3:6]
    control = Collect()
    result = engine.generate(ask(24, repetition_guard=False, stop=(stop,)), control)
    assert result.text == free[: free.index(stop)]
    assert result.finish_reason == "stop"
    assert "".join(control.pieces) == result.text


def test_stop_sequences_hold_back_only_what_may_begin_one() -> None:
    control = Collect()
    stops = StopSequences(control, ["END", "\n\n"])
    for piece in ["Hello E", "N", "ough\n", "more", "\n", "\nafter"]:
        stops.emit(piece)
    stops.flush()
    assert "".join(control.pieces) == "Hello ENough\nmore"
    assert stops.found
    assert control.pieces[0] == "Hello "  # "E" waited to see whether "END" followed


# --- the typed API: POST /api/v1/ask and the stream take a json_schema -------------------------------


def test_ask_with_a_json_schema_returns_valid_data(client: TestClient) -> None:
    form = {"question": "Extract the invoice.", "json_schema": json.dumps(INVOICE), "max_new_tokens": "300"}
    response = client.post("/api/v1/ask", data=form, files={"files": ("a.png", image_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    jsonschema.validate(body["data"], INVOICE)
    assert json.loads(body["text"]) == body["data"]


def test_ask_without_a_schema_has_no_data(client: TestClient) -> None:
    form = {"question": "What is it?", "max_new_tokens": "4"}
    response = client.post("/api/v1/ask", data=form, files={"files": ("a.png", image_bytes(), "image/png")})
    assert response.json()["data"] is None


@pytest.mark.parametrize(
    ("schema_text", "says"),
    [("{not json", "must be a JSON object"), ('{"type": "strin"}', "Invalid type"), ("[1, 2]", "JSON object")],
)
def test_a_bad_json_schema_field_is_a_422_naming_it(client: TestClient, schema_text: str, says: str) -> None:
    form = {"question": "Extract.", "json_schema": schema_text}
    response = client.post("/api/v1/ask", data=form, files={"files": ("a.png", image_bytes(), "image/png")})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "json_schema"
    assert says in response.json()["error"]["message"]


def test_the_stream_takes_a_json_schema_for_ask_only(client: TestClient) -> None:
    image_id = upload(client)
    with client.websocket_connect("/api/v1/stream") as ws:
        ask_message = json.loads(run_request([image_id], "ask", max_new_tokens=200))
        ws.send_text(json.dumps(ask_message | {"json_schema": INVOICE}))
        events = receive_until(ws, {"done", "error"})
        tokens = "".join(event["text"] for event in events if event["type"] == "token")
        done = events[-1]
        assert done["type"] == "done", done
        jsonschema.validate(done["result"]["data"], INVOICE)
        assert json.loads(tokens) == done["result"]["data"]
        ws.send_text(json.dumps(json.loads(run_request([image_id], "describe")) | {"json_schema": INVOICE}))
        [error] = receive_until(ws, {"done", "error"})
        assert error["field"] == "json_schema"


# --- hostile schemas: validation never backtracks, nothing is fetched, patterns are bounded ---------------

FORCED_KEY = "a" * 59 + "d"  # 60 characters the grammar writes itself, then the pattern below tries them
BACKTRACKING = {
    "type": "object",
    "properties": {FORCED_KEY: {"type": "string", "maxLength": 8}},
    "required": [FORCED_KEY],
    "patternProperties": {"^(a|aa)*c$": {"type": "integer"}},  # Python's re: ~1.6^n steps on a run of a's
}


def test_an_answer_is_checked_in_linear_time_whatever_the_pattern() -> None:
    began = time.monotonic()
    assert parsed_json(json.dumps({FORCED_KEY: "x"}), BACKTRACKING) == {FORCED_KEY: "x"}
    assert parsed_json(json.dumps({FORCED_KEY: "x", "aac": "not an integer"}), BACKTRACKING) is None
    assert time.monotonic() - began < 1.0  # Python's re took ~0.1 s at 30 characters, days at 60


def test_a_backtracking_pattern_answers_in_normal_time_and_health_stays_prompt(client: TestClient) -> None:
    form = {"question": "Fill it in.", "json_schema": json.dumps(BACKTRACKING), "max_new_tokens": "160"}
    answers: list[Any] = []
    asking = threading.Thread(
        target=lambda: answers.append(
            client.post("/api/v1/ask", data=form, files={"files": ("a.png", image_bytes(), "image/png")})
        )
    )
    began = time.monotonic()
    asking.start()
    health_s = []
    while asking.is_alive() and time.monotonic() - began < 60:
        sent = time.monotonic()
        assert client.get("/api/v1/health").status_code == 200
        health_s.append(time.monotonic() - sent)
        time.sleep(0.02)
    asking.join(1)
    assert answers, "the request never answered"
    assert answers[0].status_code == 200, answers[0].text
    assert FORCED_KEY in answers[0].json()["data"]  # the forced key, validated
    assert health_s, "the answer came before /health was asked"
    assert max(health_s) < 0.1, f"/health took up to {max(health_s):.3f} s while the answer was checked"


def test_a_remote_ref_is_never_fetched(tmp_path: Path) -> None:
    fetched: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "string"}')

    with socketserver.TCPServer(("127.0.0.1", 0), Recorder) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for ref in (f"http://127.0.0.1:{server.server_address[1]}/s.json", (tmp_path / "s.json").as_uri()):
                (tmp_path / "s.json").write_text('{"type": "string"}')
                schema = {"type": "object", "properties": {"a": {"$ref": ref}}}
                with pytest.raises(InvalidGenerationRequest):
                    json_grammar(schema, "json_schema")
                assert valid_answer(schema, {"a": "x"}) is not None  # refused, not resolved
        finally:
            server.shutdown()
    assert fetched == []


def test_a_pattern_over_the_limit_is_a_422_naming_the_field(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "a" * 1001}}}
    form = {"question": "Code?", "json_schema": json.dumps(schema)}
    response = client.post("/api/v1/ask", data=form, files={"files": ("a.png", image_bytes(), "image/png")})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "json_schema"
    assert "the limit is 1000" in response.json()["error"]["message"]
    keyed = {"type": "object", "patternProperties": {"b" * 1001: {}}, "enum": [{"pattern": "c" * 2000}]}
    response = client.post("/api/v1/ask", data=form | {"json_schema": json.dumps(keyed)})
    assert response.status_code == 422
    assert "a pattern has 1001 characters" in response.json()["error"]["message"]

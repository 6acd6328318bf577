"""Speed features on the tiny checkpoint: prefix reuse, quantization profiles, concurrency-safe positions."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn
from transformers import DynamicCache

from imagesense.devtools import profile_prefill
from imagesense.engine import loader
from imagesense.engine.int8_weight import Int8WeightLinear
from imagesense.engine.prefix_cache import PrefixCache, common_prefix_length
from imagesense.engine.quantize import SCHEMES, Int4WeightLinear, linear_error, quantize_model
from support import image_bytes, service, upload


def ask(client: TestClient, image_id: str, question: str, history: list[dict[str, str]] | None = None) -> Any:
    form = {"question": question, "image_ids": [image_id], "max_new_tokens": 8, "history": json.dumps(history or [])}
    response = client.post("/api/v1/ask", data=form)
    assert response.status_code == 200, response.text
    return response.json()


def conversation(client: TestClient, image_id: str) -> tuple[Any, Any]:
    first = ask(client, image_id, "What is in the picture?")
    history = [{"role": "user", "content": "What is in the picture?"}, {"role": "assistant", "content": first["text"]}]
    return first, ask(client, image_id, "And what colour is it?", history)


@pytest.fixture(scope="module")
def uncached(tiny_checkpoint: Path) -> Iterator[TestClient]:
    with service(tiny_checkpoint, prefix_cache_mb=0, repetition_guard=False) as test_client:
        yield test_client


def test_a_follow_up_reuses_the_prefix_and_answers_the_same(client: TestClient, uncached: TestClient) -> None:
    data = image_bytes((640, 480), color="salmon")
    first, follow_up = conversation(client, upload(client, data))
    assert first["usage"]["cached_tokens"] == 0
    # The image and the first question come from the cache. (The tiny tokenizer's generated words don't
    # re-tokenize to the same ids, so here the reuse stops where the first answer starts.)
    assert follow_up["usage"]["cached_tokens"] >= first["usage"]["prompt_tokens"]
    assert follow_up["usage"]["cached_tokens"] > first["usage"]["image_tokens"]
    _, reference = conversation(uncached, upload(uncached, data))
    assert reference["usage"]["cached_tokens"] == 0
    assert follow_up["text"] == reference["text"]


def test_another_task_on_the_same_image_reuses_the_image(client: TestClient) -> None:
    image_id = upload(client, image_bytes((500, 400), color="khaki"))
    client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2, "resolution": "high"})
    ocr = client.post(
        "/api/v1/ocr", data={"image_id": image_id, "max_new_tokens": 2, "engine": "vlm", "resolution": "high"}
    ).json()
    assert ocr["usage"]["cached_tokens"] >= ocr["usage"]["image_tokens"]


def test_a_different_image_of_the_same_size_is_never_mistaken_for_a_cached_one(client: TestClient) -> None:
    ask(client, upload(client, image_bytes((320, 320), color="navy")), "Describe it.")
    other = ask(client, upload(client, image_bytes((320, 320), color="gold")), "Describe it.")
    assert other["usage"]["cached_tokens"] == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_quantization_profile_serves(tiny_checkpoint: Path, scheme: str) -> None:
    with service(tiny_checkpoint, quantization=scheme, quantize_vision=True) as client:
        ready = client.get("/api/v1/ready").json()["vlm"]
        assert ready["status"] == "ready"
        assert ready["dtype"].endswith(scheme) or scheme == "none"
        image_id = upload(client)
        response = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 5})
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == 5


def test_quantization_replaces_every_linear_but_keeps_the_embeddings(tiny_checkpoint: Path) -> None:
    model = loader.load_model(str(tiny_checkpoint), "bfloat16").model
    embeddings = model.model.language_model.embed_tokens.weight.clone()
    names = quantize_model(model, "int4-weight", vision=False)
    assert "lm_head" in names
    assert not any(isinstance(m, nn.Linear) for m in model.model.language_model.modules())
    assert any(isinstance(m, nn.Linear) for m in model.model.visual.modules())  # vision untouched
    assert isinstance(model.lm_head, Int4WeightLinear)
    assert torch.equal(model.model.language_model.embed_tokens.weight, embeddings)


def test_per_layer_error_orders_the_schemes() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(512, 1024, bias=False).to(torch.bfloat16)
    nn.init.normal_(layer.weight, std=0.02)
    inputs = torch.randn(8, 512, dtype=torch.bfloat16)
    errors = {scheme: linear_error(layer, scheme, inputs) for scheme in SCHEMES if scheme != "none"}
    assert errors["int8-weight"] < errors["int8-dynamic"] < errors["int4-weight"] < 0.2
    assert errors["int8-weight"] < 0.02


def test_concurrent_generations_keep_their_own_positions(tiny_checkpoint: Path) -> None:
    """Qwen3-VL keeps M-RoPE offsets on the model between calls; two generations at once on images of
    different sizes must still each get exactly what they get alone."""
    with service(tiny_checkpoint, prefix_cache_mb=0, repetition_guard=False) as client:
        ids = [upload(client, image_bytes(size, color="teal")) for size in ((640, 160), (160, 640))]
        alone = [ask(client, image_id, "What?")["text"] for image_id in ids]
        together: dict[int, str] = {}
        # Both generations must be inside the engine at once before either starts: the barrier breaks
        # (and the test fails) unless the two really overlap.
        engine = client.app.state.service.engines.vlm.get()  # type: ignore[attr-defined]
        both_running = threading.Barrier(2, timeout=30)
        generate = engine.generate

        def overlapping(*args: Any) -> Any:
            both_running.wait()
            return generate(*args)

        engine.generate = overlapping

        def run(index: int) -> None:
            together[index] = ask(client, ids[index], "What?")["text"]

        threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.generate = generate
        assert not both_running.broken
        assert client.get("/api/v1/stats").json()["peak_active"] == 2
        assert [together.get(0), together.get(1)] == alone


def test_prefix_cache_bounds_and_keys() -> None:
    def cache_of(length: int) -> DynamicCache:
        cache = DynamicCache()
        cache.update(torch.zeros(1, 1, length, 4), torch.zeros(1, 1, length, 4), 0)
        return cache

    per_token = 2 * 4 * 4  # keys + values, 4 floats each
    store = PrefixCache(max_bytes=per_token * 30)
    tokens = torch.arange(20)
    store.store((("a",), 1, 1), tokens, cache_of(20))
    found = store.lookup((("a",), 1, 1), torch.cat([tokens, torch.tensor([99, 98])]))
    assert found is not None
    assert found[1] == 20
    assert found[0].get_seq_length() == 20
    assert store.lookup((("b",), 1, 1), tokens) is None  # other images: other key
    assert store.lookup((("a",), 2, 1), tokens) is None  # other budget: other key
    short = store.lookup((("a",), 1, 1), tokens[:12])
    assert short is not None
    assert short[1] == 11  # one token is always left to compute
    store.store((("c",), 1, 1), torch.arange(15), cache_of(15))  # over the byte cap: the oldest goes
    assert store.lookup((("a",), 1, 1), tokens) is None
    assert common_prefix_length(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4, 5])) == 2


def test_estimate_reports_tokens_and_time_without_running(tiny_checkpoint: Path) -> None:
    with service(tiny_checkpoint) as client:
        image_id = upload(client, image_bytes((1280, 960), color="plum"))
        completed = client.get("/api/v1/stats").json()["completed"]

        def estimate(**form: Any) -> Any:
            response = client.post("/api/v1/estimate", data={"image_ids": [image_id], **form})
            assert response.status_code == 200, response.text
            return response.json()

        low = estimate(task="describe")
        high = estimate(task="describe", resolution="high", max_new_tokens=64)
        assert low["engine"] == "vlm"
        assert low["image_tokens"] == low["images"][0]["visual_tokens"] == 192
        assert high["image_tokens"] == 1200
        assert 0 < low["prefill_s"] < high["prefill_s"]
        assert high["total_s"] == pytest.approx(high["prefill_s"] + high["decode_s"], abs=0.02)
        assert "defaults" in low["basis"]
        assert estimate(task="ocr")["engine"] == "fast"
        assert client.get("/api/v1/stats").json()["completed"] == completed  # nothing ran
        client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 4})
        assert "calibrated on 1" in estimate(task="describe")["basis"]
        missing = client.post("/api/v1/estimate", data={"task": "describe", "image_ids": ["0" * 32]})
        assert missing.status_code == 404
        assert client.post("/api/v1/estimate", data={"task": "describe"}).status_code == 422


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_weight_computes_in_the_models_own_dtype(dtype: torch.dtype) -> None:
    """A float32 model (a CPU without native bfloat16) keeps float32 arithmetic: no emulated bfloat16."""
    torch.manual_seed(0)
    layer = nn.Linear(256, 128, bias=True).to(dtype)
    quantized = Int8WeightLinear(layer)
    assert quantized.compute_dtype == dtype
    for rows in (4, 64):  # the decode kernel and the prefill GEMM
        inputs = torch.randn(rows, 256, dtype=dtype)
        with torch.no_grad():
            out, reference = quantized(inputs), layer(inputs)
        assert out.dtype == dtype
        error = float((out.float() - reference.float()).norm() / reference.float().norm())
        assert error < (0.01 if dtype == torch.float32 else 0.02)


def test_the_flops_of_a_profiled_op_come_from_its_shapes() -> None:
    assert profile_prefill.op_flops("aten::mm", [[3, 4], [4, 5]]) == 2 * 3 * 4 * 5
    assert profile_prefill.op_flops("aten::addmm", [[5], [3, 4], [4, 5], [], []]) == 2 * 3 * 4 * 5
    attention = [[1, 2, 3, 8], [1, 2, 7, 8], [1, 2, 7, 8]]
    assert profile_prefill.op_flops(profile_prefill.ATTENTION, attention) == 4 * 2 * 3 * 7 * 8
    assert profile_prefill.op_flops("aten::gelu", [[3, 4]]) == 0.0


def test_the_prefill_profile_names_the_phases_and_the_gemm_rate(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["profile_prefill", "200704", "int8-weight", str(tiny_checkpoint)])
    profile_prefill.main()
    printed = capsys.readouterr().out
    assert "(192 visual)" in printed
    assert "vision encoder alone" in printed
    assert re.search(r"aten::addmm .* GFLOP/s", printed), printed
    assert re.search(r"a plain float32 GEMM .*: \d+ GFLOP/s", printed), printed

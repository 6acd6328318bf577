"""The engine on the tiny checkpoint: loading, prompts through the chat template, generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer
from transformers.utils import is_torchvision_available

from imagesense.engine import loader
from imagesense.engine.checkpoint import SPECIAL_TOKENS
from imagesense.engine.generation import GenerationRequest, Generator
from imagesense.engine.prompts import build_messages


@pytest.fixture(scope="module")
def generator(tiny_checkpoint: Path) -> Generator:
    return Generator(loader.load_model(str(tiny_checkpoint), "float32"))


def request(image: Image.Image, max_new_tokens: int = 8, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "messages": build_messages("describe", 1),
        "images": [image],
        "max_pixels": 448 * 448,
        "min_pixels": 4096,
        "max_new_tokens": max_new_tokens,
        "repetition_guard": False,
    }
    return GenerationRequest(**(fields | overrides))


def test_tokenizer_has_qwen_special_tokens_at_their_real_ids(tiny_checkpoint: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == list(range(151643, 151643 + len(SPECIAL_TOKENS)))
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert tokenizer.eos_token == "<|im_end|>"


def test_processor_matches_what_is_installed(generator: Generator) -> None:
    processor = generator.processor
    if is_torchvision_available():
        assert type(processor).__name__ == "Qwen3VLProcessor"
        assert processor.video_processor is not None
    else:
        assert isinstance(processor, loader.ImageOnlyQwen3VLProcessor)
        assert not hasattr(processor, "video_processor")


def test_chat_template_renders_qwen_turns_with_image_placeholders(generator: Generator) -> None:
    prompt = generator.processor.apply_chat_template(
        build_messages("ocr", 2), tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>user\n")
    assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_generation_matches_plain_model_generate(generator: Generator) -> None:
    image = Image.new("RGB", (320, 240), "purple")
    streamed: list[str] = []
    output = generator.generate(request(image), should_stop=lambda: False, on_text=streamed.append)
    inputs = generator.prepare(request(image))
    with torch.inference_mode():
        plain = generator.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.token_ids == plain[0, inputs["input_ids"].shape[1] :].tolist()
    assert "".join(streamed) == output.text
    assert output.finish_reason == "length"
    assert output.completion_tokens == 8
    assert output.image_tokens == 80  # 320×240 -> 320×256 (sides rounded to 32 px), 10×8 tokens
    assert output.prefill_ms > 0
    assert output.decode_ms > 0


def test_should_stop_cancels_within_a_token(generator: Generator) -> None:
    seen: list[str] = []
    output = generator.generate(
        request(Image.new("RGB", (64, 64)), max_new_tokens=500),
        should_stop=lambda: len(seen) >= 3,
        on_text=seen.append,
    )
    assert output.finish_reason == "cancelled"
    assert output.completion_tokens <= 4


def test_the_pixel_budget_reaches_the_processor(generator: Generator) -> None:
    big = Image.new("RGB", (1280, 960), "white")
    small_budget = generator.prepare(request(big, max_pixels=256 * 192, images=[big]))
    assert int((small_budget["input_ids"] == 151655).sum()) == 48


def test_unreachable_hub_loads_from_the_cache_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(loader.huggingface_hub, "model_info", unreachable)
    assert loader.hub_options("Qwen/Qwen3-VL-2B-Instruct", None) == {"revision": None, "local_files_only": True}


def test_a_local_folder_never_asks_the_hub(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_be_called(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the hub was asked about a local folder")

    monkeypatch.setattr(loader.huggingface_hub, "model_info", must_not_be_called)
    assert loader.hub_options(str(tiny_checkpoint), None) == {"revision": None}


def test_load_failure_explains_the_fix() -> None:
    reason = loader.explain_load_failure("Qwen/Qwen3-VL-2B-Instruct", OSError("offline"))
    assert "imagesense download" in reason
    assert "IMAGESENSE_MODEL" in reason


def test_dtype_follows_the_cpu() -> None:
    assert loader.resolve_dtype("float32") == torch.float32
    expected = torch.bfloat16 if loader.cpu_has_bf16() else torch.float32
    assert loader.resolve_dtype("auto") == expected

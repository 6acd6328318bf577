"""The engine on the tiny checkpoint: loading, prompts through the chat template, generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from PIL import Image
from transformers import AutoTokenizer
from transformers.utils import is_torchvision_available

from imagesense.devtools.checkpoint import SPECIAL_TOKENS
from imagesense.engine import loader
from imagesense.engine.cpu import has_native_bf16
from imagesense.engine.errors import InvalidGenerationRequest
from imagesense.engine.protocol import GenerationRequest
from imagesense.engine.transformers_engine import TransformersEngine
from imagesense.prompts import build_messages


@pytest.fixture(scope="module")
def generator(tiny_checkpoint: Path) -> TransformersEngine:
    return TransformersEngine(loader.load_model(str(tiny_checkpoint), "float32"))


class Recorder:
    """A generation control that keeps the streamed text and stops once ``stop_after`` pieces arrived."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.pieces: list[str] = []
        self._stop_after = stop_after

    def should_stop(self) -> bool:
        return self._stop_after is not None and len(self.pieces) >= self._stop_after

    def emit(self, text: str) -> None:
        self.pieces.append(text)


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


def test_processor_matches_what_is_installed(generator: TransformersEngine) -> None:
    processor = generator.processor
    if is_torchvision_available():
        assert type(processor).__name__ == "Qwen3VLProcessor"
        assert processor.video_processor is not None
    else:
        assert isinstance(processor, loader.ImageOnlyQwen3VLProcessor)
        assert not hasattr(processor, "video_processor")


def test_chat_template_renders_qwen_turns_with_image_placeholders(generator: TransformersEngine) -> None:
    prompt = generator.processor.apply_chat_template(
        build_messages("ocr", 2), tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>user\n")
    assert prompt.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_generation_matches_plain_model_generate(
    generator: TransformersEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = Image.new("RGB", (320, 240), "purple")
    recorder = Recorder()
    engine_output: list[torch.Tensor] = []
    generate = generator.model.generate

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        engine_output.append(generate(*args, **kwargs))
        return engine_output[-1]

    monkeypatch.setattr(generator.model, "generate", recording)
    output = generator.generate(request(image), recorder)
    monkeypatch.undo()
    inputs = generator.prepare(request(image))
    with torch.inference_mode():
        plain = generator.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert engine_output[0].tolist() == plain.tolist()
    assert output.text == generator.tokenizer.decode(plain[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "".join(recorder.pieces) == output.text
    assert output.finish_reason == "length"
    assert output.completion_tokens == 8
    assert output.image_tokens == 80  # 320×240 -> 320×256 (sides rounded to 32 px), 10×8 tokens
    assert output.prefill_ms > 0
    assert output.decode_ms > 0


def test_should_stop_cancels_within_a_token(generator: TransformersEngine) -> None:
    output = generator.generate(request(Image.new("RGB", (64, 64)), max_new_tokens=500), Recorder(stop_after=3))
    assert output.finish_reason == "cancelled"
    assert output.completion_tokens <= 4


def test_the_pixel_budget_reaches_the_processor(generator: TransformersEngine) -> None:
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


def _hub_error(kind: type[Exception], status: int) -> Exception:
    request = httpx.Request("GET", "https://huggingface.co/api/models/Qwen/Qwen3-VL-2B-Instruct")
    return kind("/root/.cache/huggingface/secret-path", response=httpx.Response(status, request=request))


@pytest.mark.parametrize(
    ("source", "error", "says"),
    [
        ("Qwen/Qwen3-VL-2B-Instruct", MemoryError(), "not enough memory"),
        ("Qwen/Qwen3-VL-2B-Instruct", RuntimeError("DefaultCPUAllocator: can't allocate memory"), "not enough memory"),
        ("Qwen/Qwen3-VL-2B-Instruct", "gated", "HF_TOKEN"),
        ("Qwen/No-Such-Model", "missing", "has no model"),
        ("/srv/models/missing-folder", OSError("/srv/models/missing-folder not found"), "there is no folder"),
    ],
)
def test_load_failures_are_told_apart_without_raw_exception_text(source: str, error: Any, says: str) -> None:
    if error == "gated":
        error = _hub_error(GatedRepoError, 401)
    elif error == "missing":
        error = _hub_error(RepositoryNotFoundError, 404)
    reason = loader.explain_load_failure(source, error)
    assert says in reason
    assert "secret-path" not in reason
    assert "DefaultCPUAllocator" not in reason


def test_an_incomplete_folder_is_named_as_such(tmp_path: Path) -> None:
    reason = loader.explain_load_failure(str(tmp_path), OSError(f"{tmp_path}/config.json: no such file"))
    assert "not a complete Qwen3-VL checkpoint" in reason
    assert "config.json: no such file" not in reason


def test_load_failure_explains_the_fix() -> None:
    reason = loader.explain_load_failure("Qwen/Qwen3-VL-2B-Instruct", OSError("offline"))
    assert "imagesense download" in reason
    assert "IMAGESENSE_MODEL" in reason


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, torch.bfloat16),  # Zen 4, Cooper Lake
        ({"avx2", "amx_bf16", "amx_tile"}, torch.bfloat16),  # Sapphire Rapids
        ({"fp", "asimd", "bf16"}, torch.bfloat16),  # Arm v8.6 (Graviton 3)
        ({"avx2", "avx512f", "avx512bw"}, torch.float32),  # Skylake: bf16 would be emulated
        ({"fp", "asimd"}, torch.float32),
        (set(), torch.float32),  # no /proc/cpuinfo
    ],
)
def test_auto_dtype_is_bfloat16_only_where_the_cpu_computes_it(flags: set[str], expected: torch.dtype) -> None:
    assert has_native_bf16(flags) == (expected == torch.bfloat16)
    assert loader.resolve_dtype("auto", flags) == expected
    assert loader.resolve_dtype("float32", flags) == torch.float32
    assert loader.resolve_dtype("bfloat16", set()) == torch.bfloat16  # asked for by name: given


class StopAfterChecks(Recorder):
    """Says stop at its ``n``-th check: with checks before every vision block and decoder layer, a small
    ``n`` lands inside the vision encoder, before the first token."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.checks = 0
        self._n = n

    def should_stop(self) -> bool:
        self.checks += 1
        return self.checks >= self._n


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_a_stop_is_heard_inside_the_prefill(generator: TransformersEngine, n: int) -> None:
    """The tiny model has 2 vision blocks and 2 decoder layers: checks 1-2 fall in the vision encoder,
    3-4 in the language model's prefill. Each stops there, with no token generated."""
    control = StopAfterChecks(n)
    output = generator.generate(request(Image.new("RGB", (320, 240), "teal"), max_new_tokens=50), control)
    assert output.finish_reason == "cancelled"
    assert output.completion_tokens == 0
    assert control.checks == n  # stopped at the very check that said so
    assert control.pieces == []
    again = generator.generate(request(Image.new("RGB", (64, 64)), max_new_tokens=3), Recorder())
    assert again.completion_tokens == 3  # the hooks hold nothing of the stopped generation


def test_a_prompt_over_its_budget_is_refused_before_the_model_runs(generator: TransformersEngine) -> None:
    calls = StopAfterChecks(10**9)
    with pytest.raises(InvalidGenerationRequest, match=r"the prompt is \d+ tokens \(80 for the images"):
        generator.generate(request(Image.new("RGB", (320, 240)), max_prompt_tokens=64), calls)
    assert calls.checks == 0  # no layer ran


@pytest.mark.parametrize("temperature", [1e-300, 1e-9, 5e-6])
def test_a_temperature_near_zero_is_greedy_not_a_crash(generator: TransformersEngine, temperature: float) -> None:
    """Found by the fuzzer: logits divided by ~0 overflow to inf and sampling raised."""
    image = Image.new("RGB", (64, 64), "olive")
    greedy = generator.generate(request(image, max_new_tokens=6), Recorder())
    near_zero = generator.generate(request(image, max_new_tokens=6, temperature=temperature), Recorder())
    assert near_zero.text == greedy.text

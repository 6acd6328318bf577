"""The engine's own decode kernel, the int8-weight layer on both kernels, which kernel a CPU gets, the
lean decode step and its install-time checks, and the in-place KV cache.

No test here depends on the CPU kind it runs on: a kernel's test forces that kernel wherever it loads
(and is skipped, saying why, where it can't: no compiler, no AVX2); the policy is fed flag sets."""

from __future__ import annotations

import copy
import io
import logging
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from PIL import Image
from torch import nn
from transformers.cache_utils import DynamicLayer

from imagesense.engine import lean_decode
from imagesense.engine.bf16_storage import WidenedLinear
from imagesense.engine.cpu import cpu_flags
from imagesense.engine.int8_weight import KERNEL_ROWS, Int8WeightLinear, WideningScratch, int8_per_channel
from imagesense.engine.kv_cache import GrowingLayer, growing_cache
from imagesense.engine.loader import LoadedModel, load_model
from imagesense.engine.native import (
    NativeKernels,
    NativeKernelsUnavailable,
    decode_kernel,
    library_name,
    load_kernels,
    load_or_build,
    unsupported_reason,
)
from imagesense.engine.protocol import GenerationRequest
from imagesense.engine.quantize import compute_in
from imagesense.engine.transformers_engine import TransformersEngine
from support import service, wait_ready

AVX2_X86 = platform.machine().lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= cpu_flags()
COMPILER = shutil.which("c++") or shutil.which("g++")


def relative_error(got: torch.Tensor, reference: torch.Tensor) -> float:
    return float((got.double() - reference.double()).norm() / reference.double().norm())


def test_the_kernels_build_and_load_where_the_cpu_allows() -> None:
    """On x86 with AVX2 and a compiler (this project's machines and CI) the kernels must really be
    there: a silent fallback to PyTorch's kernel would pass every other test and lose the speed."""
    reason = load_kernels()
    if not AVX2_X86:
        assert reason is not None
        assert unsupported_reason() is not None
        return
    if reason is not None and not COMPILER:
        pytest.skip(f"no C++ compiler on this machine, so no kernels to test: {reason}")
    assert reason is None
    assert all(hasattr(torch.ops.imagesense, op) for op in ("pack_int8", "int8_linear", "decode_layer"))


def require_kernels() -> None:
    """The engine's kernels, loaded (built if needed); a test of them is skipped, saying why, where the
    machine can't have them (another architecture, no AVX2, no compiler)."""
    reason = load_kernels()
    if reason is not None:
        pytest.skip(f"the engine's kernels can't run here: {reason}")


@pytest.fixture
def kernels() -> None:
    require_kernels()


needs_kernels = pytest.mark.usefixtures("kernels")


AVX2_ONLY = {"avx", "avx2", "fma", "avx512f", "avx512bw"}  # Skylake-SP, Zen 2/3: bfloat16 emulated
ZEN4 = {"avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_bf16", "amx_tile", "amx_int8"}
GRAVITON3 = {"fp", "asimd", "bf16", "i8mm", "sve"}


def _loads(reason: str | None = None) -> Callable[[], str | None]:
    """A stand-in for ``load_kernels`` that counts its calls."""

    def load() -> str | None:
        calls.append(1)
        return reason

    calls: list[int] = []
    load.calls = calls  # type: ignore[attr-defined]
    return load


@pytest.mark.parametrize(
    ("flags", "machine", "expected"),
    [
        (AVX2_ONLY, "x86_64", {"auto": True, "on": True, "off": False}),
        (ZEN4, "x86_64", {"auto": False, "on": True, "off": False}),  # PyTorch's bf16 kernel wins there
        (SAPPHIRE_RAPIDS, "x86_64", {"auto": False, "on": True, "off": False}),
        (GRAVITON3, "aarch64", {"auto": False, "on": None, "off": False}),  # None: the start fails
        ({"avx", "sse4_2"}, "x86_64", {"auto": False, "on": None, "off": False}),  # no AVX2
    ],
)
def test_which_kernel_each_cpu_kind_gets(flags: set[str], machine: str, expected: dict[str, bool | None]) -> None:
    for mode, kernel in expected.items():
        load = _loads()
        if kernel is None:
            with pytest.raises(NativeKernelsUnavailable, match="IMAGESENSE_NATIVE_KERNELS=on"):
                decode_kernel(mode, flags, machine, load)  # type: ignore[arg-type]
        else:
            assert decode_kernel(mode, flags, machine, load) is kernel, mode  # type: ignore[arg-type]
        assert load.calls == ([1] if kernel else []), mode  # type: ignore[attr-defined]  # built only if used


@pytest.mark.parametrize("flags", [AVX2_ONLY, SAPPHIRE_RAPIDS])
def test_kernels_that_fail_to_load_fall_back_unless_forced(flags: set[str]) -> None:
    failed = "the cached kernel library could not be loaded"
    assert decode_kernel("auto", flags, "x86_64", _loads(failed)) is False
    with pytest.raises(NativeKernelsUnavailable, match=f"{failed}.*IMAGESENSE_NATIVE_KERNELS=auto"):
        decode_kernel("on", flags, "x86_64", _loads(failed))


def test_a_cached_library_that_wont_load_is_logged_and_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stale or foreign build under the expected name (here: not a library at all) means PyTorch's
    kernels, with the file named in the log and not in the reason (which /ready may show)."""
    broken = tmp_path / f"{library_name()}.so"
    broken.write_bytes(b"\x7fELF, but truncated")
    with caplog.at_level(logging.WARNING, logger="imagesense.engine.native"):
        reason = load_or_build([tmp_path])
    assert reason is not None
    assert "could not be loaded" in reason
    assert str(tmp_path) not in reason
    assert str(broken) in caplog.text


@needs_kernels
@pytest.mark.parametrize(
    ("rows", "out_features", "in_features"),
    [(1, 4, 16), (1, 64, 2048), (3, 1028, 6144), (2, 8, 16400), (KERNEL_ROWS, 36, 80), (1, 44, 32)],
)
def test_int8_linear_matches_float_arithmetic(rows: int, out_features: int, in_features: int) -> None:
    """Against the same int8 weights in double precision: only the 14-bit activations differ. 16400
    inputs cross the int32 slab (16384); 1, 2, 9, 11, 16 and 257 blocks of 4 channels leave a thread's
    four streams 0, 1, 2 or 3 left-over blocks (read in a group that repeats the last one)."""
    assert load_kernels() is None
    torch.manual_seed(rows + out_features)
    weight = torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8)
    scale = torch.rand(out_features) + 0.01
    inputs = torch.randn(rows, in_features)
    got = torch.ops.imagesense.int8_linear(inputs, torch.ops.imagesense.pack_int8(weight), scale)
    reference = (inputs.double() @ weight.double().t()) * scale.double()
    assert got.shape == (rows, out_features)
    assert got.dtype == torch.float32
    assert relative_error(got, reference) < 3e-4


@needs_kernels
def test_int8_linear_keeps_small_values_beside_an_outlier_row_by_row() -> None:
    """One scale per row: a huge value in one row leaves the other rows' precision alone."""
    assert load_kernels() is None
    torch.manual_seed(1)
    weight = torch.randint(-127, 128, (32, 256), dtype=torch.int8)
    inputs = torch.randn(2, 256)
    inputs[0, 7] = 500.0
    got = torch.ops.imagesense.int8_linear(inputs, torch.ops.imagesense.pack_int8(weight), torch.ones(32))
    reference = inputs.double() @ weight.double().t()
    assert relative_error(got[1], reference[1]) < 3e-4
    assert relative_error(got[0], reference[0]) < 3e-3
    zeros = torch.ops.imagesense.int8_linear(
        torch.zeros(1, 256), torch.ops.imagesense.pack_int8(weight), torch.ones(32)
    )
    assert torch.equal(zeros, torch.zeros(1, 32))


@needs_kernels
def test_int8_linear_rejects_mismatched_shapes() -> None:
    assert load_kernels() is None
    packed = torch.ops.imagesense.pack_int8(torch.zeros(8, 32, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="width"):
        torch.ops.imagesense.int8_linear(torch.zeros(1, 48), packed, torch.ones(8))
    with pytest.raises(RuntimeError, match="multiple"):
        torch.ops.imagesense.pack_int8(torch.zeros(6, 32, dtype=torch.int8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("native", [True, False])
def test_int8_weight_layer_decode_and_prefill_agree(dtype: torch.dtype, native: bool) -> None:
    """Both row counts (decode's kernel, prefill's widened GEMM) and both kernels give the layer's output
    within int8's error, in the model's dtype; the widened weights are the int8 weights exactly."""
    if native:
        require_kernels()
    torch.manual_seed(0)
    layer = nn.Linear(256, 128, bias=True).to(dtype)
    quantized = Int8WeightLinear(layer, WideningScratch(), native=native)
    assert quantized.native is native
    qweight, _ = int8_per_channel(layer.weight.detach())
    assert torch.equal(quantized.widened().to(torch.float32), qweight.to(torch.float32))
    for rows in (1, 4, quantized.decode_rows() + 1):
        inputs = torch.randn(rows, 256, dtype=dtype)
        with torch.no_grad():
            out, reference = quantized(inputs), layer(inputs)
        assert out.dtype == dtype
        assert relative_error(out.float(), reference.float()) < (0.01 if dtype == torch.float32 else 0.02)


def test_an_unpackable_layer_takes_a_path_that_serves_its_shape() -> None:
    """30 inputs: not packable, and PyTorch's decode kernel would crash the process; the GEMM serves."""
    torch.manual_seed(2)
    layer = nn.Linear(30, 6)
    quantized = Int8WeightLinear(layer, native=True)
    assert not quantized.native
    assert quantized.decode_rows() == 0
    inputs = torch.randn(1, 30)
    with torch.no_grad():
        assert relative_error(quantized(inputs), layer(inputs)) < 0.02


def _states(tokens: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, 2, tokens, 8, generator=generator) for _ in range(2))  # type: ignore[return-value]


def test_growing_layer_appends_in_place_and_matches_concatenation() -> None:
    growing, plain = GrowingLayer(), DynamicLayer()  # type: ignore[no-untyped-call]
    for step, tokens in enumerate([300, 1, 1, 5, 1]):  # a prefill, then past the first room (300 + 256)
        keys, values = _states(tokens, step)
        got, expected = growing.update(keys, values), plain.update(keys, values)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert growing.get_seq_length() == 308
    room = growing.held()[0]
    assert room.shape[-2] > 308  # room to spare ...
    growing.update(*_states(1, 9))
    assert growing.held()[0].data_ptr() == room.data_ptr()  # ... and the next token was written into it


def test_growing_layer_survives_crop_deepcopy_and_replaced_tensors() -> None:
    """What the prefix cache does (deepcopy, crop) and what generate may do (replace the tensors)."""
    layer = GrowingLayer()  # type: ignore[no-untyped-call]
    keys, values = _states(20, 0)
    layer.update(keys, values)
    copied = copy.deepcopy(layer)
    copied.crop(-5)
    more_keys, more_values = _states(2, 1)
    got_keys, _ = copied.update(more_keys, more_values)
    assert torch.equal(got_keys, torch.cat([keys[..., :15, :], more_keys], dim=-2))
    assert layer.keys is not None
    assert layer.values is not None
    assert torch.equal(layer.keys, keys)  # the original is untouched by its copy
    layer.keys, layer.values = layer.keys.clone(), layer.values.clone()  # e.g. a batch selection
    got_keys, got_values = layer.update(more_keys, more_values)
    assert torch.equal(got_keys, torch.cat([keys, more_keys], dim=-2))
    assert torch.equal(got_values, torch.cat([values, more_values], dim=-2))


def _image_request(size: tuple[int, int], color: str, text: str, max_new_tokens: int) -> GenerationRequest:
    """One image, whole (its own size is the pixel budget), and a question about it."""
    return GenerationRequest(
        messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        images=[Image.new("RGB", size, color)],
        max_pixels=size[0] * size[1],
        min_pixels=32 * 32,
        max_new_tokens=max_new_tokens,
    )


def test_bf16_storage_computes_exactly_what_float32_weights_compute(
    tiny_checkpoint: Path, native_kernels: NativeKernels
) -> None:
    """A quantized model on a CPU without native bfloat16 keeps its vision Linears and embeddings in
    bfloat16 and widens them when used: the same numbers as casting them to float32, in half the memory."""
    loaded = load_model(str(tiny_checkpoint), "bfloat16", quantization="int8-weight", native_kernels=native_kernels)
    cast = copy.deepcopy(loaded.model)
    compute_in(loaded.model, torch.float32)
    for module in cast.modules():  # the plain way: every remaining weight cast to float32
        if isinstance(module, Int8WeightLinear):
            module.use_dtype(torch.float32)
        elif type(module) in (nn.Linear, nn.Embedding, nn.LayerNorm, nn.Conv3d) or "Norm" in type(module).__name__:
            module.float()
    visual = loaded.model.model.visual
    assert any(isinstance(module, WidenedLinear) for module in visual.modules())
    assert loaded.model.model.language_model.embed_tokens.weight.dtype == torch.bfloat16
    engine = TransformersEngine(LoadedModel(loaded.model, loaded.processor, "tiny", torch.float32, "int8-weight"))
    inputs = engine.prepare(_image_request((96, 64), "teal", "Hi", max_new_tokens=1))
    positions = engine.position_ids(inputs)
    with torch.inference_mode():
        widened, reference = (model(**inputs, position_ids=positions).logits for model in (loaded.model, cast))
    assert widened.dtype == torch.float32
    assert torch.allclose(widened, reference, rtol=1e-5, atol=1e-5)


def _decode_from_copied_cache(
    loaded: LoadedModel, engine: TransformersEngine, forward: Any, crop: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens and logits of 6 greedy tokens with the text model's ``forward``, from a cache that was
    copied and cropped by ``crop`` tokens (the prefix cache's way), with an image in the prompt."""
    text_model = loaded.model.model.language_model
    inputs = engine.prepare(_image_request((128, 96), "navy", "Describe it.", max_new_tokens=6))
    text_model.forward = forward
    with torch.inference_mode():
        cache = growing_cache(loaded.model.config)
        loaded.model(**inputs, position_ids=engine.position_ids(inputs), cache=cache)
        cache = copy.deepcopy(cache)
        cache.crop(-crop)
        assert cache.get_seq_length() == inputs["input_ids"].shape[1] - crop
        rest = {key: value for key, value in inputs.items() if key not in ("pixel_values", "image_grid_thw")}
        output = loaded.model.generate(
            **rest, cache=cache, position_ids=engine.position_ids(inputs), max_new_tokens=6, do_sample=False,
            output_logits=True, return_dict_in_generate=True,
        )  # fmt: skip
    return output.sequences, torch.stack(output.logits)


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Counts the calls of ``lean_decode.<name>`` that returned a result."""
    calls: list[int] = []
    function = getattr(lean_decode, name)

    def counted(*args: Any) -> Any:
        result = function(*args)
        calls.extend([1] if result is not None else [])
        return result

    monkeypatch.setattr(lean_decode, name, counted)
    return calls


def test_the_lean_decode_step_computes_what_transformers_computes(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token by token against transformers' own text model, from a fresh cache and from a copied,
    cropped one (the prefix cache's way), with an image in the prompt (M-RoPE positions)."""
    loaded = load_model(str(tiny_checkpoint), "float32")
    engine = TransformersEngine(loaded)  # installs the lean step on this model
    text_model = loaded.model.model.language_model
    lean, transformers_forward = text_model.forward, type(text_model).forward.__get__(text_model)
    layer_steps = _counting(monkeypatch, "_layer_step")
    for crop in (1, 3):
        lean_tokens, lean_logits = _decode_from_copied_cache(loaded, engine, lean, crop)
        taken = len(layer_steps)
        reference_tokens, reference_logits = _decode_from_copied_cache(loaded, engine, transformers_forward, crop)
        assert len(layer_steps) == taken  # transformers' path never takes it ...
        assert taken >= 5 * len(text_model.layers)  # ... and the lean one did, for every generated token
        layer_steps.clear()
        assert torch.equal(lean_tokens, reference_tokens)
        assert torch.allclose(lean_logits, reference_logits, rtol=1e-4, atol=1e-5)
    text_model.forward = lean


@needs_kernels
def test_the_fused_decode_layer_computes_what_the_lean_step_computes(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """int8-weight on the engine's kernel: one C++ call a layer (norms, rotary, cache write, grouped-query
    attention, MLP) against the same layer run op by op on the same kernel. Each path rounds its
    activations to 14 bits on its own float results, so they agree to ~1e-4, not exactly."""
    loaded = load_model(str(tiny_checkpoint), "float32", quantization="int8-weight", native_kernels="on")
    engine = TransformersEngine(loaded)
    assert engine.info.decode == "one C++ call a layer, the engine's int8 kernel"
    text_model = loaded.model.model.language_model
    fused_steps = _counting(monkeypatch, "_fused_layer_step")
    fused_tokens, fused_logits = _decode_from_copied_cache(loaded, engine, text_model.forward, 2)
    assert len(fused_steps) >= 5 * len(text_model.layers)  # every layer of every generated token
    monkeypatch.setattr(lean_decode, "_fused_layer_step", lambda *_: None)  # op by op
    lean_tokens, lean_logits = _decode_from_copied_cache(loaded, engine, text_model.forward, 2)
    assert torch.equal(fused_tokens, lean_tokens)
    assert relative_error(fused_logits, lean_logits) < 1e-3


class GemmaStyleNorm(nn.Module):
    """An RMSNorm by name and attributes that scales by ``1 + weight``: the installer must notice."""

    def __init__(self, norm: Any) -> None:
        super().__init__()
        self.weight, self.variance_epsilon = norm.weight, norm.variance_epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), 1 + self.weight, self.variance_epsilon)


def _gemma_norm(layer: Any) -> None:
    layer.input_layernorm = GemmaStyleNorm(layer.input_layernorm)


def _no_key_norm(layer: Any) -> None:
    layer.self_attn.k_norm = nn.Identity()


def _sliding_window(layer: Any) -> None:
    layer.self_attn.sliding_window = 4


def _no_gate(layer: Any) -> None:
    del layer.mlp.gate_proj


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_gemma_norm, "does not compute an RMSNorm"),
        (_no_key_norm, "Identity has no weight"),
        (_sliding_window, "does not attend to every position"),
        (_no_gate, "has no gate_proj"),
    ],
)
def test_a_layer_that_differs_keeps_transformers_forward(
    tiny_checkpoint: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Any], None],
    named: str,
) -> None:
    """The lean step re-implements a layer; handed one that differs from what it expects, the engine
    logs why and decodes with transformers' own forward: never a wrong answer."""
    loaded = load_model(str(tiny_checkpoint), "float32")
    text_model = loaded.model.model.language_model
    change(text_model.layers[-1])
    with caplog.at_level(logging.WARNING, logger="imagesense.engine.lean_decode"):
        engine = TransformersEngine(loaded)
    assert named in caplog.text
    assert engine.info.decode == "transformers' forward, PyTorch's kernels"
    assert text_model.forward.__func__ is type(text_model).forward  # the class's own, unwrapped
    if change is _no_gate:
        return  # transformers itself can't run a layer without its gate
    layer_steps = _counting(monkeypatch, "_layer_step")
    result = engine.generate(_image_request((64, 64), "gray", "Hi", max_new_tokens=3), _Unstoppable())
    assert result.completion_tokens == 3
    assert layer_steps == []


class _Unstoppable:
    def should_stop(self) -> bool:
        return False

    def emit(self, text: str) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "decode"),
    [
        ("off", "lean step, PyTorch's kernels"),
        ("on", "one C++ call a layer, the engine's int8 kernel"),
    ],
)
def test_ready_says_which_decode_path_the_model_got(tiny_checkpoint: Path, mode: str, decode: str) -> None:
    if mode == "on":
        require_kernels()
    with service(tiny_checkpoint, quantization="int8-weight", native_kernels=mode) as client:
        vlm = wait_ready(client)["vlm"]
        assert vlm["status"] == "ready"
        assert vlm["decode"] == decode
        response = client.post("/api/v1/describe", files={"file": ("a.png", _png(), "image/png")})
        assert response.status_code == 200, response.text


def test_kernels_forced_on_where_they_cant_load_fail_the_start_saying_so(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imagesense.engine.native.load_kernels", lambda: "the kernels could not be built (test)")
    with service(tiny_checkpoint, quantization="int8-weight", native_kernels="on") as client:
        vlm = wait_ready(client)["vlm"]
        assert vlm["status"] == "failed"
        assert "IMAGESENSE_NATIVE_KERNELS=on" in vlm["reason"]
        assert "IMAGESENSE_NATIVE_KERNELS=auto" in vlm["reason"]  # the fix


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(buffer, "PNG")
    return buffer.getvalue()

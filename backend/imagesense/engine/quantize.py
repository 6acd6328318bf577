"""Weight quantization of the model's Linear layers, on PyTorch's CPU kernels and the engine's own.

Profiles (IMAGESENSE_QUANTIZATION):
- ``none``: bfloat16 weights.
- ``int8-weight`` (W8A16): int8 weights, one scale per output channel; activations stay bfloat16 or
  float32, or are rounded to 14-bit integers by the engine's decode kernel (see int8_weight.py for
  its decode and prefill kernels). The default.
- ``int8-dynamic`` (W8A8): int8 weights per channel and activations quantized per call (FBGEMM).
  The fastest decode, but activations lose precision too: opt-in.
- ``int4-weight`` (W4A16): 4-bit weights, asymmetric, groups of 128 (``aten._weight_int4pack_mm_for_cpu``).
  The smallest; the largest error: opt-in.

Layers are quantized one at a time and the bfloat16 weight is dropped at once, so no second
full-precision copy of the model is ever held (weights loaded from safetensors are memory-mapped: a
layer's pages are read only when it is quantized).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import mmap
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import nn

from imagesense.engine.bf16_storage import keep_bf16_storage
from imagesense.engine.int8_weight import ROW_BLOCK, Int8WeightLinear, WideningScratch, int8_per_channel
from imagesense.engine.native import NativeKernels, decode_kernel

log = logging.getLogger(__name__)
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None

Scheme = Literal["none", "int8-weight", "int8-dynamic", "int4-weight"]
SCHEMES: tuple[Scheme, ...] = ("none", "int8-weight", "int8-dynamic", "int4-weight")
INT4_GROUP = 128


class Int8DynamicLinear(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        int8, scale = int8_per_channel(weight)
        with warnings.catch_warnings():  # quantized tensors are deprecated in name; the kernels are current
            warnings.simplefilter("ignore")
            zero_points = torch.zeros_like(scale, dtype=torch.long)
            qweight = torch._make_per_channel_quantized_tensor(int8, scale.double(), zero_points, 0)
            bias = None if linear.bias is None else linear.bias.detach().float()
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        out: torch.Tensor = torch.ops.quantized.linear_dynamic(rows, self._packed, True)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


class Int4WeightLinear(nn.Module):
    packed: torch.Tensor
    scales_and_zeros: torch.Tensor

    @staticmethod
    def supports(linear: nn.Linear, group_size: int = INT4_GROUP) -> bool:
        return linear.out_features % 16 == 0 and linear.in_features % group_size == 0

    def __init__(self, linear: nn.Linear, group_size: int = INT4_GROUP) -> None:
        super().__init__()
        weight = linear.weight.detach()
        out_features, in_features = weight.shape
        if in_features % group_size:
            raise ValueError(f"in_features {in_features} is not a multiple of the group size {group_size}")
        packed, scales, zeros = [], [], []
        for start in range(0, out_features, ROW_BLOCK):  # a block of rows at a time: no float copy of it all
            rows = weight[start : start + ROW_BLOCK].float()
            groups = rows.reshape(rows.shape[0], in_features // group_size, group_size)
            low, high = groups.amin(dim=-1, keepdim=True), groups.amax(dim=-1, keepdim=True)
            scale = ((high - low) / 15).clamp(min=1e-8)
            q = torch.round((groups - low) / scale).clamp(0, 15).to(torch.int32).reshape(rows.shape[0], in_features)
            packed.append(torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
            scales.append(scale.squeeze(-1))
            zeros.append((low + 8 * scale).squeeze(-1))  # tinygemm's convention: w = (q - 8) * scale + zero
        self.register_buffer("packed", torch.cat(packed))
        scales_and_zeros = torch.stack([torch.cat(scales), torch.cat(zeros)], dim=-1)  # [N, K/g, 2]
        self.register_buffer("scales_and_zeros", scales_and_zeros.transpose(0, 1).contiguous().to(torch.bfloat16))
        self.bias = linear.bias
        self.group_size = group_size
        self.out_features, self.in_features = out_features, in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out: torch.Tensor = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows, self.packed, self.group_size, self.scales_and_zeros
        )
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


QUANTIZED_SCHEMES: tuple[Scheme, ...] = ("int8-weight", "int8-dynamic", "int4-weight")


def quantizer(scheme: Scheme, native_kernels: NativeKernels = "auto") -> Callable[[nn.Linear], nn.Module]:
    """What turns a Linear into ``scheme``'s layer; int8-weight layers made by one quantizer share a
    scratch buffer, and decode on the kernel ``native.decode_kernel`` picks for ``native_kernels``."""
    if scheme == "int8-weight":
        native = decode_kernel(native_kernels)
        return functools.partial(Int8WeightLinear, scratch=WideningScratch(), native=native)
    return {"int8-dynamic": Int8DynamicLinear, "int4-weight": Int4WeightLinear}[scheme]


class FilePages:
    """Gives back the pages of memory-mapped checkpoint weights once they have been quantized.

    Weights loaded from safetensors are views of one memory-mapped file; pages read to quantize a layer
    would otherwise stay mapped (and counted in the process's memory) for as long as any weight of the
    file lives. ``madvise(MADV_DONTNEED)`` drops just that layer's pages. Linux only; elsewhere a no-op.
    """

    _MADV_DONTNEED = 4

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []
        self._madvise: Callable[..., int] | None = None
        if not sys.platform.startswith("linux"):
            return
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith(".safetensors"):
                    low, high = (int(part, 16) for part in fields[0].split("-"))
                    self._ranges.append((low, high))
        self._madvise = ctypes.CDLL(None, use_errno=True).madvise

    def release(self, tensor: torch.Tensor) -> None:
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if self._madvise is None or not any(low <= start and end <= high for low, high in self._ranges):
            return  # not a mapped checkpoint file: ordinary memory, freed by Python
        page = mmap.PAGESIZE
        first, last = -(-start // page) * page, end // page * page  # whole pages inside the tensor only
        if last > first:
            self._madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), self._MADV_DONTNEED)


def give_back_free_heap() -> None:
    """Returns the C heap's free memory to the system (glibc ``malloc_trim``; elsewhere a no-op).

    Quantizing frees a layer's temporary copies at once, but glibc may keep the freed memory in its
    heaps; how much depends on the order in which threads allocated (seen: 2.1 or 2.8 GB held after the
    same load of the 2B model, the difference all free memory). Trimming after each layer keeps both
    the peak and what stays at the low figure.
    """
    trim = getattr(_LIBC, "malloc_trim", None) if _LIBC is not None else None
    if trim is not None:
        trim(0)


def _linears(root: nn.Module, prefix: str) -> Iterator[tuple[nn.Module, str, nn.Linear, str]]:
    for name, module in list(root.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                full = ".".join(part for part in (prefix, name, child_name) if part)
                yield module, child_name, child, full


def quantize_linears(
    root: nn.Module,
    scheme: Scheme,
    prefix: str = "",
    pages: FilePages | None = None,
    make: Callable[[nn.Linear], nn.Module] | None = None,
) -> list[str]:
    """Replace every Linear under ``root`` by its quantized form, one at a time; returns their names."""
    if scheme == "none":
        return []
    make = make or quantizer(scheme)
    pages = pages or FilePages()
    done = []
    for parent, child_name, linear, full_name in _linears(root, prefix):
        if scheme == "int4-weight" and not Int4WeightLinear.supports(linear):
            continue  # the kernel's shape constraints: such a layer stays bfloat16
        setattr(parent, child_name, make(linear))
        pages.release(linear.weight)  # the bfloat16 weight goes as soon as its quantized form exists
        give_back_free_heap()
        done.append(full_name)
    return done


def quantize_model(model: Any, scheme: Scheme, vision: bool, native_kernels: NativeKernels = "auto") -> list[str]:
    """Quantize the language model's Linears and the lm_head (untied from the embeddings, which stay
    bfloat16 for the lookup), and the vision tower's when ``vision`` is set."""
    if scheme == "none":
        return []
    inner = model.model
    pages = FilePages()
    make = quantizer(scheme, native_kernels)
    with torch.no_grad():
        names = quantize_linears(inner.language_model, scheme, "model.language_model", pages, make)
        # Tied to the embeddings: quantized as a copy. Its pages are dropped too: lookups read back the
        # few embedding rows they need.
        tied = model.lm_head.weight
        model.lm_head = make(model.lm_head)
        pages.release(tied)
        give_back_free_heap()
        names.append("lm_head")
        if vision:
            names += quantize_linears(inner.visual, scheme, "model.visual", pages, make)
    return names


def compute_in(model: nn.Module, dtype: torch.dtype) -> None:
    """A model loaded in bfloat16 (memory-mapped: no copy) and quantized, made to compute in ``dtype``:
    the int8-weight layers compute in it, the remaining Linears and the embeddings keep their bfloat16
    weights and widen them when used (bf16_storage.py), and every other floating weight (norms, the patch
    embedding) is cast. On a CPU without native bfloat16 this replaces loading the whole model in float32
    and then quantizing it (a float32 copy of the language model at the peak)."""
    pages = FilePages()
    kept = keep_bf16_storage(model, dtype, _model_scratch(model))
    for module in model.modules():
        if isinstance(module, Int8WeightLinear):
            module.use_dtype(dtype)
        if module in kept or isinstance(module, Int8WeightLinear | Int8DynamicLinear | Int4WeightLinear):
            continue  # their kernels take the dtypes they were built with
        for param in module.parameters(recurse=False):
            if param.is_floating_point() and param.dtype != dtype:
                old = param.data
                param.data = old.to(dtype)
                pages.release(old)
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer.is_floating_point() and buffer.dtype != dtype:
                setattr(module, name, buffer.to(dtype))


def _model_scratch(model: nn.Module) -> WideningScratch:
    """The scratch buffer the model's int8-weight layers widen into (one per model), or a new one."""
    layer = next((module for module in model.modules() if isinstance(module, Int8WeightLinear)), None)
    return layer.scratch if layer is not None else WideningScratch()


def linear_error(linear: nn.Linear, scheme: Scheme, inputs: torch.Tensor) -> float:
    """Relative L2 error of a quantized layer's output against the full-precision one, on ``inputs``: the
    larger of the whole batch at once (prefill's path) and one row at a time (decode's)."""
    with torch.no_grad():
        reference = linear(inputs).float()
        layer = quantizer(scheme)(linear)
        batched = layer(inputs).float()
        row_by_row = torch.cat([layer(row[None]) for row in inputs]).float()
        return max(
            float((quantized - reference).norm() / reference.norm().clamp(min=1e-12))
            for quantized in (batched, row_by_row)
        )

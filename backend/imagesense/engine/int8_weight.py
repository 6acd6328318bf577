"""The ``int8-weight`` profile's layer (W8A16): int8 weights, one scale per output channel.

Decode (a few rows) and prefill (many) take different kernels:
- decode runs the engine's own kernel on CPUs without native bfloat16 (``native.py``,
  ``kernels/int8_linear.cpp``: integer products on 14-bit activations, packed weights), else PyTorch's
  ``aten._weight_int8pack_mm`` on bfloat16 activations;
- prefill widens the int8 matrix into a per-thread scratch buffer, runs the float GEMM and applies the
  per-channel scale to the output (cheaper than scaling the weights). Widening into a fresh tensor each
  call cost ~50 ms for a 2048×6144 matrix, nearly all of it the kernel faulting in new pages; into a
  reused buffer it is ~3 ms.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

# Up to this many rows the decode kernel beats widening + GEMM, measured on 2 cores (AVX2) over 2048×2048
# and 6144×2048 matrices: the engine's kernel up to ~48 rows (a follow-up question's prefill too);
# PyTorch's in bfloat16 up to ~16, and in float32 up to ~128 — measured when widening still made a fresh
# tensor each call (~50 ms); float32 without the engine's kernel has not been measured again since.
KERNEL_ROWS = 48
ATEN_ROWS = {torch.bfloat16: 16, torch.float32: 128}
ROW_BLOCK = 4096  # rows converted to float at a time while quantizing (every scheme)
_SCRATCH_MAX_ELEMENTS = 64 * 1024 * 1024  # larger matrices (lm_head) widen into a fresh tensor


def int8_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel, a block of rows at a time (no float copy of a whole matrix)."""
    qweight = torch.empty(weight.shape, dtype=torch.int8)
    scale = torch.empty(weight.shape[0], dtype=torch.float32)
    for start in range(0, weight.shape[0], ROW_BLOCK):
        rows = weight[start : start + ROW_BLOCK].float()
        block_scale = rows.abs().amax(dim=1).clamp(min=1e-8) / 127
        qweight[start : start + ROW_BLOCK] = torch.round(rows / block_scale[:, None]).to(torch.int8)
        scale[start : start + ROW_BLOCK] = block_scale
    return qweight, scale


class WideningScratch:
    """One float buffer per worker thread, reused by every layer of a model to widen int8 weights."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __deepcopy__(self, memo: dict[int, object]) -> WideningScratch:
        return WideningScratch()  # a copied model gets buffers of its own (threading.local can't be copied)

    def take(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        numel = shape.numel()
        if numel > _SCRATCH_MAX_ELEMENTS:
            return torch.empty(shape, dtype=dtype)
        buffer: torch.Tensor | None = getattr(self._local, "buffer", None)
        if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
            buffer = torch.empty(numel, dtype=dtype)
            self._local.buffer = buffer
        return buffer[:numel].view(shape)


def packable(out_features: int, in_features: int) -> bool:
    return out_features % 4 == 0 and in_features % 16 == 0


class Int8WeightLinear(nn.Module):
    """``packed`` ([N/4, K/16, 4, 16], the engine's kernel) or ``qweight`` ([N, K], PyTorch's) holds the weights."""

    packed: torch.Tensor
    qweight: torch.Tensor
    kernel_scale: torch.Tensor
    scale: torch.Tensor

    def __init__(self, linear: nn.Linear, scratch: WideningScratch | None = None, native: bool = False) -> None:
        super().__init__()
        weight = linear.weight.detach()
        qweight, scale = int8_per_channel(weight)
        self.out_features, self.in_features = weight.shape
        # Computed in the model's own dtype: bfloat16 where the CPU has it natively, float32 where
        # bfloat16 would only be emulated (the loader picks the dtype by the CPU).
        self.compute_dtype = weight.dtype if weight.dtype in (torch.bfloat16, torch.float32) else torch.bfloat16
        self.native = native and packable(self.out_features, self.in_features)
        if self.native:
            self.register_buffer("packed", torch.ops.imagesense.pack_int8(qweight))
        else:
            self.register_buffer("qweight", qweight)
            # PyTorch's decode kernel always takes bfloat16 activations: its float32 path is scalar on
            # CPUs without native bfloat16 (AVX2: 17 ms instead of 1.9 ms for a 2048×6144 matrix).
            self.register_buffer("kernel_scale", scale.to(torch.bfloat16))
        self.register_buffer("scale", scale.to(self.compute_dtype))
        self.bias = linear.bias
        self.scratch = scratch or WideningScratch()

    def decode_rows(self) -> int:
        if self.native:
            return KERNEL_ROWS
        # PyTorch's kernel crashes the process on widths that aren't a multiple of 16 (seen: 30).
        return ATEN_ROWS[self.compute_dtype] if self.in_features % 16 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] <= self.decode_rows():
            out = self._decode(rows).to(self.compute_dtype)
        else:  # per output channel, the scale factors out of the matmul
            out = F.linear(rows.to(self.compute_dtype), self.widened()) * self.scale
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _decode(self, rows: torch.Tensor) -> torch.Tensor:
        if self.native:
            out: torch.Tensor = torch.ops.imagesense.int8_linear(rows, self.packed, self.scale)
            return out
        out = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16), self.qweight, self.kernel_scale)
        return out  # noqa: RET504 - typed: the op returns Any

    def widened(self) -> torch.Tensor:
        """The int8 weights as [N, K] in the compute dtype, in this thread's scratch buffer: valid until
        the next layer widens its own."""
        shape = torch.Size((self.out_features, self.in_features))
        target = self.scratch.take(shape, self.compute_dtype)
        if self.native:
            blocks = (self.out_features // 4, 4, self.in_features // 16, 16)
            target.view(blocks).copy_(self.packed.permute(0, 2, 1, 3))
        else:
            target.copy_(self.qweight)
        return target

    def use_dtype(self, dtype: torch.dtype) -> None:
        """Compute in ``dtype`` from now on (a model loaded in bfloat16 on a CPU without it)."""
        self.compute_dtype = dtype
        self.scale = self.scale.to(dtype)

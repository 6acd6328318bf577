"""bfloat16 storage, float32 arithmetic: the unquantized weights on a CPU without native bfloat16.

Checkpoints are bfloat16, so holding those weights in bfloat16 and widening them to float32 when used
loses nothing, and halves their memory (the vision tower, ~0.4 B parameters at 2B shapes, and the token
embeddings, 0.3 B): a Linear is widened into the model's per-thread scratch buffer right before its
GEMM (~2 ms for 1024×4096, against ~60 ms for the GEMM at 768 patches); an embedding looks up its few
rows in bfloat16 and widens only those.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn

from imagesense.engine.int8_weight import WideningScratch


class WidenedLinear(nn.Module):
    """A Linear whose weight stays bfloat16 and is widened to ``dtype`` for each call."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype, scratch: WideningScratch) -> None:
        super().__init__()
        self.weight = linear.weight  # bfloat16, possibly memory-mapped from the checkpoint
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False)
        self.compute_dtype = dtype
        self.scratch = scratch
        self.out_features, self.in_features = linear.out_features, linear.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widened = self.scratch.take(self.weight.shape, self.compute_dtype)
        widened.copy_(self.weight)
        return F.linear(x.to(self.compute_dtype), widened, self.bias)


def _widen_output(dtype: torch.dtype) -> Any:
    def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        return output.to(dtype)

    return hook


def keep_bf16_storage(model: nn.Module, dtype: torch.dtype, scratch: WideningScratch) -> set[nn.Module]:
    """Replace the model's bfloat16 Linears by ``WidenedLinear`` and make its bfloat16 embeddings return
    ``dtype``; returns the modules whose weights must stay bfloat16."""
    kept: set[nn.Module] = set()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.dtype == torch.bfloat16:
                widened = WidenedLinear(child, dtype, scratch)
                setattr(parent, name, widened)
                kept.add(widened)
            elif type(child) is nn.Embedding and child.weight.dtype == torch.bfloat16:
                child.register_forward_hook(_widen_output(dtype))
                kept.add(child)
    return kept

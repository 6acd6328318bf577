"""One decode step of Qwen3-VL's language model without transformers' per-layer machinery.

A decode step is one token against the KV cache. transformers' text model runs it through generic
machinery on every layer (mask building, attention-interface lookup, keyword plumbing, decorators,
module calls for each norm and projection): on 2 cores that was ~40 ms of Python a token beside
~110 ms of matmuls. This step does the same arithmetic directly: fused RMSNorm, the projections'
``forward``, rotary embedding, the cache's ``update``, one SDPA call (grouped-query), the MLP.

It only takes the case it is exact for — one new token, no padding, no visual features to add
(deepstack applies to image tokens, which are never decoded) — and hands every other call to the
original ``forward``. The layers' pre-hooks (``LayerStops``) are still asked before each layer.

Where every projection of a layer is on the engine's own int8 kernel (int8-weight on a CPU without
native bfloat16), the whole layer is one call into C++ instead (``kernels/decode_layer.cpp``): measured
on the 2B, 2 cores, 220 cached tokens, 114–135 ms a token against 130–162 ms op by op, pairwise.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn
from transformers.activations import SiLUActivation
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb

from imagesense.engine.int8_weight import Int8WeightLinear
from imagesense.engine.kv_cache import GrowingLayer


def _rms_norm(norm: Any, x: torch.Tensor) -> torch.Tensor:  # transformers modules are untyped: Any
    return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)


def _layer_step(layer: Any, hidden: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: Any) -> torch.Tensor:
    attention = layer.self_attn
    x = _rms_norm(layer.input_layernorm, hidden)
    heads = (1, 1, -1, attention.head_dim)
    query = _rms_norm(attention.q_norm, attention.q_proj.forward(x).view(heads)).transpose(1, 2)
    key = _rms_norm(attention.k_norm, attention.k_proj.forward(x).view(heads)).transpose(1, 2)
    value = attention.v_proj.forward(x).view(heads).transpose(1, 2)
    query, key = apply_rotary_pos_emb(query, key, *rope)
    keys, values = cache.layers[attention.layer_idx].update(key, value)
    # One query attends to every cached position: no mask. Grouped-query heads are shared, not copied.
    attended = F.scaled_dot_product_attention(query, keys, values, scale=attention.scaling, enable_gqa=True)
    hidden = hidden + attention.o_proj.forward(attended.transpose(1, 2).reshape(1, 1, -1))
    mlp = layer.mlp
    x = _rms_norm(layer.post_attention_layernorm, hidden)
    out: torch.Tensor = hidden + mlp.down_proj.forward(mlp.act_fn(mlp.gate_proj.forward(x)) * mlp.up_proj.forward(x))
    return out


FusedWeights = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]


def _fused_weights(layer: Any) -> FusedWeights | None:
    """The layer's norms, packed matrices and scales when the engine's one-call decode layer serves it:
    every projection on the engine's int8 kernel, float32, no bias, SiLU."""
    attention, mlp = layer.self_attn, layer.mlp
    linears = [attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj]
    linears += [mlp.gate_proj, mlp.up_proj, mlp.down_proj]
    servable = all(
        isinstance(linear, Int8WeightLinear) and linear.native and linear.bias is None
        and linear.scale.dtype == torch.float32
        for linear in linears
    ) and isinstance(mlp.act_fn, nn.SiLU | SiLUActivation)  # fmt: skip
    if not servable:
        return None
    norms = [layer.input_layernorm, attention.q_norm, attention.k_norm, layer.post_attention_layernorm]
    return [norm.weight for norm in norms], [linear.packed for linear in linears], [linear.scale for linear in linears]


def _fused_layer_step(
    layer: Any, weights: FusedWeights, hidden: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: Any
) -> torch.Tensor | None:
    """The step as one call into the engine's kernels (``kernels/decode_layer.cpp``), or None where it
    doesn't apply (then ``_layer_step`` runs)."""
    cached: GrowingLayer = cache.layers[layer.self_attn.layer_idx]
    keys, values = cached.keys, cached.values
    if hidden.dtype != torch.float32 or keys is None or values is None or keys.dtype != torch.float32:
        return None
    key_room, value_room, length = cached.room_for(1, keys, values)
    out: torch.Tensor = torch.ops.imagesense.decode_layer(
        hidden, rope[0].contiguous(), rope[1].contiguous(), key_room, value_room, length, *weights,
        layer.input_layernorm.variance_epsilon, layer.self_attn.scaling,
    )  # fmt: skip
    cached.filled_to(length + 1)
    return out


def _is_lean_step(inputs_embeds: Any, cache: Any, attention_mask: Any, kwargs: dict[str, Any]) -> bool:
    return (
        isinstance(inputs_embeds, torch.Tensor)
        and inputs_embeds.shape[:2] == (1, 1)
        and cache is not None
        and all(isinstance(layer, GrowingLayer) and layer.is_initialized for layer in cache.layers)
        and kwargs.get("deepstack_visual_embeds") is None
        and not kwargs.get("output_hidden_states")
        and not kwargs.get("output_attentions")
        and (attention_mask is None or bool(attention_mask.all()))
        and not torch.is_grad_enabled()
    )


def install(text_model: nn.Module) -> None:
    """Route the text model's single-token steps through ``_layer_step``; everything else as before.
    Installing again (a second engine on the same model) replaces the first: it wraps the class's own
    ``forward``, never an earlier wrapper."""
    original: Callable[..., Any] = type(text_model).forward.__get__(text_model)
    # Looked up once: the weights are final by now (quantized, in their compute dtype); per token it was
    # ~4 ms of attribute lookups on the 2B.
    layers: Iterable[nn.Module] = text_model.layers  # type: ignore[assignment]  # an nn.ModuleList
    fused = [_fused_weights(layer) for layer in layers]

    def forward(
        self: Any,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if inputs_embeds is None and input_ids is not None and input_ids.shape == (1, 1):
            inputs_embeds = self.embed_tokens(input_ids)
            input_ids = None
        if (
            position_ids is None
            or inputs_embeds is None
            or not _is_lean_step(inputs_embeds, cache, attention_mask, kwargs)
        ):
            return original(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                inputs_embeds=inputs_embeds, **kwargs,
            )  # fmt: skip
        if position_ids.ndim == 2:
            position_ids = position_ids[None].expand(3, *position_ids.shape)
        if position_ids.shape[0] == 4:  # the text row, then temporal, height, width: rope takes the last three
            position_ids = position_ids[1:]
        rope = self.rotary_emb(inputs_embeds, position_ids)
        hidden = inputs_embeds
        for layer, weights in zip(self.layers, fused, strict=True):
            for hook in layer._forward_pre_hooks.values():  # LayerStops: a cancel between layers
                hook(layer, (hidden,))
            stepped = None if weights is None else _fused_layer_step(layer, weights, hidden, rope, cache)
            hidden = _layer_step(layer, hidden, rope, cache) if stepped is None else stepped
        return BaseModelOutputWithPast(last_hidden_state=_rms_norm(self.norm, hidden), cache=cache)

    text_model.forward = types.MethodType(forward, text_model)

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

The step re-implements transformers internals (the layer's anatomy, the rotary helper, the text model's
``forward`` arguments, the RMSNorm formula). ``install`` checks them first (``anatomy_mismatch``); where
any differs — a newer transformers, another model — it logs why and leaves transformers' own forward.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch import nn
from transformers.activations import SiLUActivation
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.models.qwen3_vl import modeling_qwen3_vl

from imagesense.engine.int8_weight import Int8WeightLinear
from imagesense.engine.kv_cache import GrowingLayer

log = logging.getLogger(__name__)
# What a decode step runs through, best first: for /ready and the start-up log.
DecodeStep = Literal["one C++ call a layer", "lean step", "transformers' forward"]
apply_rotary_pos_emb: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = getattr(
    modeling_qwen3_vl, "apply_rotary_pos_emb", None
)
_FORWARD_ARGUMENTS = ("input_ids", "attention_mask", "position_ids", "cache", "inputs_embeds")
_ROTARY_ARGUMENTS = ("q", "k", "cos", "sin")


def _rms_norm(norm: Any, x: torch.Tensor) -> torch.Tensor:  # transformers modules are untyped: Any
    return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)


def _layer_step(layer: Any, hidden: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], cache: Any) -> torch.Tensor:
    attention = layer.self_attn
    x = _rms_norm(layer.input_layernorm, hidden)
    heads = (1, 1, -1, attention.head_dim)
    query = _rms_norm(attention.q_norm, attention.q_proj.forward(x).view(heads)).transpose(1, 2)
    key = _rms_norm(attention.k_norm, attention.k_proj.forward(x).view(heads)).transpose(1, 2)
    value = attention.v_proj.forward(x).view(heads).transpose(1, 2)
    query, key = apply_rotary_pos_emb(query, key, *rope)  # type: ignore[misc]  # checked at install
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


def _has(module: Any, *names: str) -> str | None:
    missing = [name for name in names if not hasattr(module, name)]
    return f"{type(module).__name__} has no {', '.join(missing)}" if missing else None


def _norm_mismatch(norm: Any) -> str | None:
    """Whether ``norm`` computes ``F.rms_norm`` with its weight and epsilon: tried on a random row, so a
    norm of another formula (Gemma's ``1 + weight``, a LayerNorm) is found even under a familiar name."""
    if (missing := _has(norm, "weight", "variance_epsilon")) is not None:
        return missing
    generator = torch.Generator().manual_seed(0)
    row = torch.randn(1, 1, norm.weight.shape[-1], generator=generator).to(norm.weight.dtype)
    with torch.no_grad():
        expected, got = norm(row).float(), _rms_norm(norm, row).float()
    tolerance = 1e-4 if norm.weight.dtype == torch.float32 else 2e-2
    if not torch.allclose(got, expected, rtol=tolerance, atol=tolerance):
        return f"{type(norm).__name__} does not compute an RMSNorm of its weight"
    return None


def _layer_mismatch(index: int, layer: Any) -> str | None:
    if (missing := _has(layer, "self_attn", "mlp", "input_layernorm", "post_attention_layernorm")) is not None:
        return missing
    attention, mlp = layer.self_attn, layer.mlp
    projections = ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm", "head_dim", "scaling", "layer_idx")
    problems = [
        _has(attention, *projections),
        _has(mlp, "gate_proj", "up_proj", "down_proj", "act_fn"),
    ]
    if not any(problems):
        if attention.layer_idx != index:
            problems.append(f"layer {index} says it is layer {attention.layer_idx}")
        if getattr(attention, "sliding_window", None) or getattr(attention, "layer_type", None) not in (
            None,
            "full_attention",
        ):
            problems.append(f"layer {index} does not attend to every position")
        norms = (layer.input_layernorm, layer.post_attention_layernorm, attention.q_norm, attention.k_norm)
        problems += [_norm_mismatch(norm) for norm in norms]
    return next((problem for problem in problems if problem), None)


def anatomy_mismatch(text_model: nn.Module) -> str | None:
    """What the lean step assumes and ``text_model`` (or this transformers) doesn't offer; None if all holds."""
    if apply_rotary_pos_emb is None:
        return "transformers has no Qwen3-VL apply_rotary_pos_emb"
    rotary = list(inspect.signature(apply_rotary_pos_emb).parameters)[: len(_ROTARY_ARGUMENTS)]
    if tuple(rotary) != _ROTARY_ARGUMENTS:
        return f"apply_rotary_pos_emb takes ({', '.join(rotary)}), not (q, k, cos, sin)"
    if (missing := _has(text_model, "layers", "embed_tokens", "rotary_emb", "norm")) is not None:
        return missing
    arguments = inspect.signature(type(text_model).forward).parameters
    if absent := [name for name in _FORWARD_ARGUMENTS if name not in arguments]:
        return f"{type(text_model).__name__}.forward takes no {', '.join(absent)}"
    layers: Iterable[Any] = text_model.layers  # type: ignore[assignment]  # an nn.ModuleList
    problems = (_layer_mismatch(index, layer) for index, layer in enumerate(layers))
    return next((problem for problem in problems if problem), None) or _norm_mismatch(text_model.norm)


def install(text_model: nn.Module) -> DecodeStep:
    """Route the text model's single-token steps through ``_layer_step``; everything else as before.
    Installing again (a second engine on the same model) replaces the first: it wraps the class's own
    ``forward``, never an earlier wrapper. Where ``anatomy_mismatch`` finds a difference, the class's
    own ``forward`` stays (never a wrong answer). Returns the step the model got."""
    original: Callable[..., Any] = type(text_model).forward.__get__(text_model)
    mismatch = anatomy_mismatch(text_model)
    if mismatch is not None:
        log.warning("the lean decode step is off (transformers' own forward decodes): %s", mismatch)
        text_model.forward = original
        return "transformers' forward"
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
    return "one C++ call a layer" if all(weights is not None for weights in fused) else "lean step"

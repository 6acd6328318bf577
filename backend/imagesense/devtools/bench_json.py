"""`imagesense bench-json`: what constraining the output to a JSON schema costs, measured in one run.

- Compile: a typical invoice schema (nested objects, an array, an enum, numbers, required fields) →
  grammar → a matcher ready for its first mask, cold; then the cached path (a copy of the kept
  template); and the one-time conversion of the tokenizer.
- Per token: the same request on the 2B architecture (random weights), decoded unconstrained and
  constrained to the invoice schema, interleaved (A B A B: the machine is shared and noisy). Decode ms
  per token for each and their ratio, and the constraint's own time per token (masks and closing
  estimates), measured inside the logits processor — the part that doesn't depend on the noise.

`--tiny` runs it on the tiny test checkpoint, in seconds.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import llguidance
from transformers import LogitsProcessor

from imagesense.devtools.bench_scenarios import bench_image
from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.engine.constrained import JsonConstraints, JsonLogits, canonical, compile_schema
from imagesense.engine.loader import load_model
from imagesense.engine.protocol import GenerationRequest, Unattended
from imagesense.engine.transformers_engine import TransformersEngine
from imagesense.images import fit_to_budget
from imagesense.prompts import build_messages

INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "invoice_number": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "currency": {"enum": ["USD", "EUR", "GBP", "CNY", "JPY"]},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string"},
                    "quantity": {"type": "number", "minimum": 0},
                    "unit_price": {"type": "number"},
                    "amount": {"type": "number"},
                },
                "required": ["description", "quantity", "unit_price", "amount"],
                "additionalProperties": False,
            },
        },
        "subtotal": {"type": "number"},
        "tax": {"type": ["number", "null"]},
        "total": {"type": "number"},
    },
    "required": ["vendor", "invoice_number", "date", "currency", "lines", "total"],
    "additionalProperties": False,
}


class BenchEngine(TransformersEngine):
    """Writes the full token budget when unconstrained (a random model may stop anywhere), and keeps the
    constraint of the last generation to read its time."""

    last: JsonLogits | None = None

    def constraint(self, request: GenerationRequest) -> JsonLogits | None:
        self.last = super().constraint(request)
        return self.last

    def _generate_options(self, request: GenerationRequest, processors: list[LogitsProcessor]) -> dict[str, Any]:
        options = super()._generate_options(request, processors)
        return options if request.json_schema else {**options, "min_new_tokens": request.max_new_tokens}


def compile_times(engine: TransformersEngine) -> dict[str, float]:
    began = time.perf_counter()
    constraints = JsonConstraints(engine.tokenizer, engine.model.config.text_config.vocab_size, [*engine.eos_ids])
    tokenizer_s = time.perf_counter() - began
    compile_schema.cache_clear()
    began = time.perf_counter()
    first = constraints.processor(INVOICE, 512)  # grammar, matcher, and the shortest answer played out
    cold_s = time.perf_counter() - began
    began = time.perf_counter()
    constraints.processor(INVOICE, 512)
    cached_s = time.perf_counter() - began
    began = time.perf_counter()
    grammar = llguidance.LLMatcher.grammar_from_json_schema(canonical(INVOICE))
    grammar_s = time.perf_counter() - began
    del first, grammar
    return {"tokenizer_s": tokenizer_s, "compile_cold_ms": cold_s * 1000, "compile_cached_ms": cached_s * 1000,
            "grammar_only_ms": grammar_s * 1000}  # fmt: skip


def run_once(engine: BenchEngine, new_tokens: int, constrained: bool) -> dict[str, float]:
    budget = 448 * 448
    request = GenerationRequest(
        messages=build_messages("ask", 1, question="Extract the invoice.", json_schema=INVOICE),
        images=[fit_to_budget(bench_image(), budget, 4096)],
        max_pixels=budget,
        min_pixels=4096,
        max_new_tokens=new_tokens,
        repetition_guard=False,
        json_schema=INVOICE if constrained else None,
    )
    engine.last = None
    output = engine.generate(request, Unattended())
    steps = max(1, output.completion_tokens - 1)
    mask_ms = engine.last.mask_seconds * 1000 / output.completion_tokens if engine.last else 0.0
    if constrained:
        json.loads(output.text)  # the point of it all: it parses
    return {"tokens": output.completion_tokens, "decode_ms_per_token": output.decode_ms / steps, "mask_ms": mask_ms}


def main(tiny: bool, checkpoint: str | None, new_tokens: int | None, repeats: int) -> None:
    cache = Path(".cache")
    source = checkpoint or str(cached_checkpoint(cache, "tiny" if tiny else "2b"))
    tokens = new_tokens or (160 if tiny else 192)
    engine = BenchEngine(load_model(source, "auto", quantization="none" if tiny else "int8-weight"))
    engine.warm_up()
    shortest = engine.json_constraints().processor(INVOICE, 512).closing_length() or 0
    tokens = max(tokens, shortest + 16)  # room for the model to write something before the answer is closed
    print(f"checkpoint: {source}  precision: {engine.info.precision}  tokens per run: {tokens} "
          f"(the shortest valid invoice: {shortest})")  # fmt: skip
    print("compile (invoice schema): " + "  ".join(f"{k}={v:.2f}" for k, v in compile_times(engine).items()))
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(repeats):
        for constrained in (False, True):
            runs[constrained].append(run_once(engine, tokens, constrained))
    plain = statistics.median(run["decode_ms_per_token"] for run in runs[False])
    bound = statistics.median(run["decode_ms_per_token"] for run in runs[True])
    mask = statistics.median(run["mask_ms"] for run in runs[True])
    produced = [int(run["tokens"]) for run in runs[True]]
    print(f"decode ms/token: unconstrained {plain:.1f}  constrained {bound:.1f}  ratio {bound / plain:.3f}")
    print(f"constraint's own time: {mask:.2f} ms/token = {100 * mask / plain:.1f}% of an unconstrained token")
    print(f"constrained answers: {produced} tokens, each valid JSON")

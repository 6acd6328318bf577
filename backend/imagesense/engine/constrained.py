"""Output constrained to a JSON schema, token by token, so that it always parses and validates.

llguidance compiles the schema to a grammar and, before each token, says which tokens may come next;
the rest get -inf. It was chosen over xgrammar because it needs nothing else installed (xgrammar pulls
in triton and a CUDA-oriented stack on Linux), computes a mask in well under a millisecond on a CPU,
and is what vLLM, SGLang and llama.cpp use for the same job.

The answer is then checked against the schema by ``jsonschema_rs`` with the Rust ``regex`` crate, the same
regex dialect and engine family as llguidance's: linear time whatever the pattern (Python's ``re`` backtracks
while holding the GIL, and a grammar-forced key against a pattern like ``^(a|aa)*c$`` froze the process for
minutes), and no ``$ref`` is ever fetched. A schema it can't build is refused with the grammar, before the queue.

Two things make "always validates" true even for a model that wanders (or has random weights):
- Separators are fixed (``, `` and ``: ``, no free whitespace), so the model can't spend its tokens on
  blank space.
- Near the end of the token budget the output is closed: from then on the first allowed token of a
  short list (``"``, ``}``, ``]``, ``,``, ``0``, ...) is taken, which ends strings, fills required values
  with the smallest ones and closes objects and arrays. Enums and forced keys come from the grammar.
  A request whose token budget can't hold even the shortest valid answer is refused before it runs.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jsonschema_rs
import llguidance
import llguidance.hf
import numpy as np
import torch
from transformers import LogitsProcessor

from imagesense.engine.errors import InvalidGenerationRequest

JSON_OPTIONS: Any = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
# Taken in this order once the output is being closed: each ends or shortens what is open.
# A quote comes first: inside a string, braces are just characters, and it's the quote that ends it.
# A comma before a digit: it ends a number, where another digit would go on forever.
CLOSING_TEXTS = ('"', "}", "]", ",", "0", "1", "false", "null", "{", "[", "-")
MAX_CLOSING_TOKENS = 512  # a schema whose shortest answer is longer than this is refused
CLOSING_WATCH = 48  # tokens before the end from which the closing length is checked at every step
CLOSING_MARGIN = 2
TEMPLATES_KEPT = 64
Bits = np.ndarray[Any, np.dtype[np.int32]]
Allowed = np.ndarray[Any, np.dtype[np.bool_]]


def canonical(schema: Mapping[str, Any]) -> str:
    # Key order is kept: it is the order the properties are written in, and the model reads it.
    return json.dumps(schema, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def compile_schema(schema_json: str) -> tuple[str, str]:
    """(grammar, problem): a pure function of the schema's text, so its results are kept."""
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema_json, defaults=JSON_OPTIONS)
    except ValueError as exc:
        return "", str(exc)
    return grammar, llguidance.LLMatcher.validate_grammar(grammar)


@functools.lru_cache(maxsize=256)
def schema_validator(schema_json: str) -> jsonschema_rs.Validator | str:
    """The validator of a schema's answers, or why there is none: linear-time patterns, nothing fetched."""
    try:
        return jsonschema_rs.validator_for(
            json.loads(schema_json), pattern_options=jsonschema_rs.RegexOptions(), offline=True
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        return str(exc).splitlines()[0]


def json_grammar(schema: Mapping[str, Any], field: str) -> str:
    """The grammar of a schema, its validator built too; ``InvalidGenerationRequest`` naming ``field`` when
    it can't be followed or checked."""
    text = canonical(schema)
    grammar, problem = compile_schema(text)
    if problem:
        lines = [line.strip() for line in problem.splitlines() if line.strip().strip("^")]
        raise InvalidGenerationRequest(f"the JSON schema can't be used: {' '.join(lines)}", field=field)
    if isinstance(validator := schema_validator(text), str):
        raise InvalidGenerationRequest(f"the JSON schema can't be used: {validator}", field=field)
    return grammar


def valid_answer(schema: Mapping[str, Any], data: Any) -> str | None:
    """None if ``data`` is valid against ``schema``, else the first reason it isn't."""
    validator = schema_validator(canonical(schema))
    if isinstance(validator, str):
        return validator
    error = next(validator.iter_errors(data), None)
    return None if error is None else error.message


class JsonConstraints:
    """An engine's compiled grammars: one llguidance tokenizer, and a matcher template per schema."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: list[int]) -> None:
        # The model's logits are wider than the tokenizer (Qwen pads the embedding to 151936): the mask
        # covers every logit, and ids past the tokenizer are never allowed.
        self._tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos_ids)
        self.vocab_size = vocab_size
        self._eos_ids = eos_ids
        self._closing = [ids[0] for text in CLOSING_TEXTS if len(ids := tokenizer.encode(text)) == 1]
        self._templates: OrderedDict[str, tuple[llguidance.LLMatcher, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _template(self, schema: Mapping[str, Any], field: str) -> tuple[llguidance.LLMatcher, int | None]:
        """The schema's fresh matcher and its shortest answer in tokens, compiled once and kept."""
        key = canonical(schema)
        with self._lock:
            if (kept := self._templates.get(key)) is not None:
                self._templates.move_to_end(key)
                return kept
        template = llguidance.LLMatcher(self._tokenizer, json_grammar(schema, field))
        if template.is_error():
            raise InvalidGenerationRequest(f"the JSON schema can't be used: {template.get_error()}", field=field)
        kept = (template, JsonLogits(self, template.deep_copy(), MAX_CLOSING_TOKENS).closing_length())
        with self._lock:
            self._templates[key] = kept
            while len(self._templates) > TEMPLATES_KEPT:
                self._templates.popitem(last=False)
        return kept

    def processor(self, schema: Mapping[str, Any], max_new_tokens: int) -> JsonLogits:
        """The logits processor of one generation; ``InvalidGenerationRequest`` when even the shortest
        valid answer is longer than ``max_new_tokens``."""
        template, shortest = self._template(schema, "json_schema")
        if shortest is None or shortest > max_new_tokens:
            needs = f"{shortest}" if shortest else f"over {MAX_CLOSING_TOKENS}"
            raise InvalidGenerationRequest(
                f"the shortest answer valid against the JSON schema takes {needs} tokens as the grammar writes it; "
                f"the token limit of {max_new_tokens} can't guarantee a complete answer",
                field="max_new_tokens",
            )
        constraint = JsonLogits(self, template.deep_copy(), max_new_tokens)
        constraint.last_need = shortest
        return constraint

    def allowed(self, matcher: llguidance.LLMatcher, bits: Bits) -> Allowed:
        """The tokens ``matcher`` allows next, as booleans over the model's vocabulary. In numpy: single
        threaded, so it doesn't wait on the torch threads the model is using."""
        matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
        return np.unpackbits(bits.view(np.uint8), bitorder="little")[: self.vocab_size].view(np.bool_)

    @staticmethod
    def first_allowed(bits: Bits) -> int:
        word = int(np.flatnonzero(bits)[0])
        value = int(bits[word]) & 0xFFFFFFFF
        return word * 32 + (value & -value).bit_length() - 1

    def closing_token(self, matcher: llguidance.LLMatcher) -> int | None:
        """The token that closes the output fastest from here, by the closing order; None where none
        of them fits (inside an enum value, say). Each candidate is checked alone: no mask needed."""
        ends = self._eos_ids if matcher.is_accepting() else []  # a complete value: end it (a number would go on)
        forced = matcher.compute_ff_tokens()
        for token in [*ends, *forced[:1], *self._closing]:
            if matcher.validate_tokens([token]) == 1:
                return int(token)
        return None


class JsonLogits(LogitsProcessor):
    """Masks every token the grammar doesn't allow next; called by ``model.generate`` once per token.

    Once the tokens left are about as many as closing the output would take (found by playing the
    closing order out on a copy of the matcher), every later token is the closing one.
    """

    def __init__(self, owner: JsonConstraints, matcher: llguidance.LLMatcher, max_new_tokens: int) -> None:
        self._owner = owner
        self._matcher = matcher
        self._max_new_tokens = max_new_tokens
        self._bits = np.zeros((owner.vocab_size + 31) // 32, dtype=np.int32)
        self._step = 0
        self._closing = False
        self.last_need = 0  # the closing length found last
        self.mask_seconds = 0.0  # time spent on masks and closing estimates: the cost of constraining

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        started = time.perf_counter()
        if self._step:  # the token chosen at the previous step is the last of input_ids
            self._matcher.consume_token(int(input_ids[0, -1]))
        self._step += 1
        token = self._owner.closing_token(self._matcher) if self._must_close() else None
        if scores.dtype != torch.float32:  # generate() hands over a float32 copy; anything else, made one
            scores = scores.float()  # type: ignore[assignment]
        logits = scores.numpy()[0]  # a view: masked in place
        if token is not None:
            chosen = float(logits[token])
            logits[:] = -np.inf
            logits[token] = chosen
        else:
            allowed = self._owner.allowed(self._matcher, self._bits)
            logits[~allowed[: logits.shape[0]]] = -np.inf
        self.mask_seconds += time.perf_counter() - started
        return scores

    def _must_close(self) -> bool:
        left = self._max_new_tokens - self._step + 1  # this token included
        # One token can open a structure with many keys to write: look again every step near the end.
        if not self._closing and left <= max(CLOSING_WATCH, 2 * self.last_need + CLOSING_MARGIN):
            need = self.closing_length()
            self.last_need = need if need is not None else MAX_CLOSING_TOKENS
            self._closing = left <= self.last_need + CLOSING_MARGIN
        return self._closing

    def closing_length(self) -> int | None:
        """Tokens from here to the end (the end-of-text token included) when closing now; None if the
        closing order can't end it within MAX_CLOSING_TOKENS (a pattern it can't satisfy, say)."""
        probe = self._matcher.deep_copy()
        bits = np.zeros_like(self._bits)
        count = 0
        while count < MAX_CLOSING_TOKENS:
            if probe.is_accepting() or probe.is_stopped():
                return count + 1
            if forced := probe.compute_ff_tokens():  # keys and separators the grammar writes itself
                count += len(forced)
                if not probe.consume_tokens(forced):
                    return None
                continue
            count += 1
            token = self._owner.closing_token(probe)
            if token is None:  # no closing token fits: the lowest allowed one still moves on
                probe.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
                token = self._owner.first_allowed(bits)
            if not probe.consume_token(token):
                return None
        return None

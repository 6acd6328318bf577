"""Build a Qwen3-VL checkpoint with random weights, offline.

Nothing here reaches the hub: the tokenizer is trained locally (byte-level BPE, Qwen pre-tokenizer, the
Qwen special tokens at their real ids), the config is the real model type, the weights are random. The
result loads through exactly the `from_pretrained` path used for the real model. Two architectures:
``tiny`` for tests (seconds to build, milliseconds per token) and ``2b``, the real Qwen3-VL-2B shapes, for
speed measurements (same compute per token and per image, nonsense text).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForImageTextToText, Qwen2Tokenizer, Qwen3VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

Architecture = Literal["tiny", "2b"]

# Qwen2/2.5/3 share this vocabulary layout: 151643 BPE tokens, then the special tokens in this order.
BASE_VOCAB_SIZE = 151643
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
MODEL_VOCAB_SIZE = 151936  # the embedding matrix is padded past the tokenizer, as in the real model

# The Qwen-VL chat template: images become <|vision_start|><|image_pad|><|vision_end|>, which the
# processor expands to one pad token per visual token.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. Invoice number 12345, total due: $1,234.56.",
    "Describe this image in one sentence. What is written on the sign? Read all the text in the image.",
    "A red car is parked in front of a white house with a green door and two windows.",
    "Receipt: coffee 3.50, sandwich 7.25, tax 0.86, total 11.61. Thank you for your visit!",
    "图片中有一只猫坐在窗台上。发票号码：二零二六年十一月。总计金额：一百二十元。",
    "The chart shows revenue growing from 2019 to 2025, with a dip in 2020 and strong growth after.",
    "Name: Jane Doe\nDate: 2026-11-25\nAddress: 42 Main Street, Springfield\nPhone: +1 555 0100",
]

TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    # Tiny, but every Linear fits the int4 kernel's shape rules (in % 128, out % 16).
    "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
             "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0,
                                 "mrope_section": [4, 6, 6], "mrope_interleaved": True}},
    "2b": {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
           "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
           "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0,
                               "mrope_section": [24, 20, 20], "mrope_interleaved": True}},
}  # fmt: skip
VISION_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {"depth": 2, "hidden_size": 128, "intermediate_size": 256, "num_heads": 2,
             "out_hidden_size": 128, "deepstack_visual_indexes": [0, 1]},
    "2b": {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
           "out_hidden_size": 2048, "deepstack_visual_indexes": [5, 11, 17]},
}  # fmt: skip


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE tokenizer with Qwen's vocabulary size and special-token ids."""
    trainer_tokenizer = Tokenizer(models.BPE())
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer_tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    trainer_tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    model_json = json.loads(trainer_tokenizer.to_str())["model"]
    vocab: dict[str, int] = dict(model_json["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]
    _pad_vocab(vocab, BASE_VOCAB_SIZE)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]  # tuples, as BPE wants
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tokenizer.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS)
    expected = list(range(BASE_VOCAB_SIZE, BASE_VOCAB_SIZE + len(SPECIAL_TOKENS)))
    if ids != expected:
        raise RuntimeError(f"special tokens landed at {ids}, expected {expected}")
    return tokenizer


def _pad_vocab(vocab: dict[str, int], size: int) -> None:
    """Fill the vocabulary with filler words so the special tokens get Qwen's ids.

    The fillers are unreachable by the merges (encoding never yields them) but decode to readable
    nonsense words (" qzkv"), so a random model's output is printable text, not broken UTF-8.
    """
    letters = "abcdefghijklmnopqrstuvwxyz"
    next_id = len(vocab)
    for length in (2, 3, 4):
        for combo in itertools.product(letters, repeat=length):
            if next_id >= size:
                return
            token = "\u0120" + "".join(combo)  # "\u0120" is the byte-level symbol for a space
            if token not in vocab:
                vocab[token] = next_id
                next_id += 1


def build_config(architecture: Architecture) -> Qwen3VLConfig:
    text = {**TEXT_CONFIGS[architecture], "vocab_size": MODEL_VOCAB_SIZE, "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6, "bos_token_id": 151643, "eos_token_id": 151645}  # fmt: skip
    vision = {**VISION_CONFIGS[architecture], "patch_size": 16, "spatial_merge_size": 2,
              "temporal_patch_size": 2, "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh"}  # fmt: skip
    # A tiny model with the usual 0.02 init collapses into repeating one token; a wider init keeps its
    # greedy output varied, which the streaming and cancellation tests need.
    init_range = 0.2 if architecture == "tiny" else 0.02
    text["initializer_range"] = vision["initializer_range"] = init_range
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True)
    config.initializer_range = init_range
    return config


def build_image_processor() -> Qwen2VLImageProcessorPil:
    # Qwen3-VL's preprocessor: 16 px patches merged 2×2, so one visual token covers 32×32 px.
    return Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": 65536, "longest_edge": 16777216},
    )  # fmt: skip


def build_checkpoint(out_dir: Path, architecture: Architecture = "tiny", seed: int = 0) -> Path:
    """Write a loadable random-weight Qwen3-VL checkpoint to ``out_dir`` and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = build_config(architecture)
    dtype = torch.float32 if architecture == "tiny" else torch.bfloat16
    model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(out_dir)
    build_tokenizer().save_pretrained(out_dir)
    build_image_processor().save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    _write_processor_configs(out_dir)
    (out_dir / "IMAGESENSE_RANDOM_WEIGHTS").write_text(f"architecture={architecture} seed={seed}\n")
    return out_dir


def cached_checkpoint(cache_dir: Path, architecture: Architecture = "tiny") -> Path:
    """The checkpoint in ``cache_dir``, built on first use and rebuilt whenever this builder changes."""
    version = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    folder = cache_dir / f"{architecture}-qwen3-vl-{version}"
    if not (folder / "model.safetensors").is_file():
        building = folder.with_name(folder.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        build_checkpoint(building, architecture)
        building.rename(folder)  # whole or absent: an interrupted build is never mistaken for a checkpoint
    return folder


def _write_processor_configs(out_dir: Path) -> None:
    """Name the processor and its video processor as the real checkpoint does.

    The video processor can't be built here without torchvision, so its config is written as data: with
    torchvision installed, `AutoProcessor` then loads this folder exactly as it loads the hub's.
    """
    image_config_path = out_dir / "preprocessor_config.json"
    image_config = json.loads(image_config_path.read_text())
    image_config["processor_class"] = "Qwen3VLProcessor"
    image_config_path.write_text(json.dumps(image_config, indent=2))
    video_config = {
        "video_processor_type": "Qwen3VLVideoProcessor", "processor_class": "Qwen3VLProcessor",
        "size": {"longest_edge": 25165824, "shortest_edge": 4096}, "patch_size": 16,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5], "fps": 2, "min_frames": 4, "max_frames": 768,
        "do_sample_frames": True,
    }  # fmt: skip
    (out_dir / "video_preprocessor_config.json").write_text(json.dumps(video_config, indent=2))

"""Load the processor and model with transformers, from a hub id or a local folder."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen3VLProcessor
from transformers.utils.import_utils import is_torchvision_available

from imagesense.engine.cpu import cpu_flags, has_native_bf16
from imagesense.engine.native import NativeKernels, NativeKernelsUnavailable
from imagesense.engine.quantize import Scheme, compute_in, quantize_model

log = logging.getLogger(__name__)


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3VLProcessor without its video processor.

    transformers builds Qwen3-VL's video processor on torchvision, and PyPI's torchvision may not import
    beside the installed CPU torch. Images need only the image processor and the tokenizer, so when
    torchvision is missing the processor is loaded from the same files without the video part. Everything
    else (chat template, image-token expansion) is the stock Qwen3VLProcessor code.
    """

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)  # type: ignore[no-untyped-call]


@dataclass
class LoadedModel:
    model: Any  # a Qwen3VLForConditionalGeneration
    processor: Qwen3VLProcessor
    name: str
    dtype: torch.dtype
    quantization: Scheme = "none"


def resolve_dtype(name: str, flags: set[str] | None = None) -> torch.dtype:
    """``auto``: bfloat16 where the CPU computes it natively (``flags``: the CPU's, by default), else float32."""
    if name == "auto":
        native = has_native_bf16(cpu_flags() if flags is None else flags)
        return torch.bfloat16 if native else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def load_processor(source: str, **hub: Any) -> Qwen3VLProcessor:
    if is_torchvision_available():
        processor: Qwen3VLProcessor = AutoProcessor.from_pretrained(source, **hub)
        return processor
    log.info("torchvision is not installed: loading the image-only Qwen3-VL processor")
    image_only: Qwen3VLProcessor = ImageOnlyQwen3VLProcessor.from_pretrained(source, **hub)
    return image_only


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def hub_options(source: str, revision: str | None) -> dict[str, Any]:
    """How to reach a hub id: normally, or from the local cache alone when the hub can't be reached.

    One quick metadata request decides. Without it, every file request would go through the hub
    client's retries with back-off, and a machine without network would wait minutes to learn that.
    """
    if is_local(source) or huggingface_hub.constants.HF_HUB_OFFLINE:
        return {"revision": revision}
    try:
        huggingface_hub.model_info(source, revision=revision, timeout=10)
    except HfHubHTTPError:
        raise  # the hub answered (unknown repo, gated, ...): that is the error to report
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, proxy: all mean unreachable
        log.warning("the hub is unreachable (%s): loading %s from the local cache only", exc, source)
        return {"revision": revision, "local_files_only": True}
    return {"revision": revision}


def load_model(
    source: str,
    dtype_name: str = "auto",
    revision: str | None = None,
    quantization: Scheme = "none",
    quantize_vision: bool = False,
    native_kernels: NativeKernels = "auto",
) -> LoadedModel:
    """Load exactly as a user with network would: ``from_pretrained`` of a hub id or a folder, straight to
    the target dtype; then quantize layer by layer (see engine/quantize.py)."""
    dtype = resolve_dtype(dtype_name)
    hub = hub_options(source, revision)
    processor = load_processor(source, **hub)
    # Quantized on a CPU without native bfloat16: load in bfloat16 (memory-mapped, no copy), quantize the
    # language model from it, then cast the rest to float32 — never the whole model in float32 first.
    load_dtype = torch.bfloat16 if dtype == torch.float32 and quantization != "none" else dtype
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=load_dtype, **hub)
    model.eval()
    quantize_model(model, quantization, vision=quantize_vision, native_kernels=native_kernels)
    if load_dtype != dtype:
        compute_in(model, dtype)
    return LoadedModel(model=model, processor=processor, name=source, dtype=dtype, quantization=quantization)


def explain_load_failure(source: str, error: BaseException) -> str:
    """A reason a person can act on: what failed and how to fix it, with no raw exception text (which may
    hold paths of the server; the log has it)."""
    if isinstance(error, NativeKernelsUnavailable):
        return str(error)  # it names the setting and the fix, and no path
    if isinstance(error, MemoryError) or "can't allocate memory" in str(error) or "out of memory" in str(error):
        return (
            f"not enough memory to load {source!r}. Free memory, or lower it: IMAGESENSE_QUANTIZATION="
            "int4-weight needs about 2.7 GB, int8-weight about 3.1 GB, none about 4.7 GB on a CPU with native "
            "bfloat16; without it (AVX2 only) int8-weight peaks near 3.3 GB."
        )
    if isinstance(error, GatedRepoError) or _status_of(error) in (401, 403):
        return (
            f"the hub refused access to {source!r}: it needs a login or an accepted licence. "
            "Fix: set HF_TOKEN to a token with access (huggingface.co/settings/tokens), then restart."
        )
    if isinstance(error, RepositoryNotFoundError | RevisionNotFoundError) or _status_of(error) == 404:
        return (
            f"the hub has no model {source!r} (or not that revision). Fix: set IMAGESENSE_MODEL to a Qwen3-VL "
            "hub id such as Qwen/Qwen3-VL-2B-Instruct, or to a local folder; check IMAGESENSE_MODEL_REVISION."
        )
    if source.startswith(("/", ".", "~")) and not is_local(source):
        return (
            f"there is no folder {source!r}. Fix: point IMAGESENSE_MODEL at a folder holding a Qwen3-VL "
            "checkpoint (config.json, model weights, tokenizer and preprocessor files), or at a hub id."
        )
    if is_local(source):
        return (
            f"could not load the model from the folder {source!r}: it is not a complete Qwen3-VL checkpoint "
            "(config.json, model weights, tokenizer and preprocessor files are needed). The log has the details."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return (
        f"could not load {source!r}: it is not in the local Hugging Face cache"
        f"{' and HF_HUB_OFFLINE is set' if offline else ''}, and the hub could not be reached. Fix: run "
        "`imagesense download` on a machine with network (it fills the cache, HF_HOME), or set "
        "IMAGESENSE_MODEL to a local folder with the checkpoint."
    )


def _status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None

"""The engine's own CPU kernels (``kernels/*.cpp``): compiled once per machine, loaded into torch.

They are an optimisation, never a requirement, and are used only where they win (x86 with AVX2 and no
native bfloat16; see quantize.quantizer): where they can't be built (no C++ compiler) the engine runs on
PyTorch's kernels and says so in the log. A build takes ~20 s on 2 cores; it is
cached by a hash of the source, the flags and the torch version, next to the package where that is
writable (the image and ``.ci/setup`` build it there ahead: ``imagesense build-kernels``), else in the
user's cache folder.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from imagesense.engine.cpu import cpu_flags

log = logging.getLogger(__name__)

KERNELS = Path(__file__).parent / "kernels"
SOURCES = sorted(KERNELS.glob("*.cpp"))
HEADERS = sorted(KERNELS.glob("*.h"))
_FLAGS = ["-O3"]


def library_name() -> str:
    digest = hashlib.sha256()
    texts = [path.read_bytes() for path in SOURCES + HEADERS]
    for part in (*texts, " ".join(_FLAGS).encode(), torch.__version__.encode(), sys.version.encode()):
        digest.update(part)
    return f"imagesense_kernels_{digest.hexdigest()[:16]}"


def library_folders() -> list[Path]:
    """Where a built library is looked for, in order; the first writable one is where one is built."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imagesense" / "kernels"
    return [KERNELS / "_build", user_cache]


def unsupported_reason() -> str | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the kernels are for x86-64 (this CPU is {platform.machine()})"
    if not {"avx2", "fma"} <= cpu_flags():
        return "the kernels need AVX2 and FMA, which this CPU lacks"
    return None


def build(folder: Path) -> Path:
    """Compile the kernels into ``folder`` (and load them); returns the library's path."""
    from torch.utils import cpp_extension  # imports setuptools: only when building

    name = library_name()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="imagesense-kernels-") as work:
        cpp_extension.load(
            name=name,
            sources=[str(path) for path in SOURCES],
            extra_cflags=_FLAGS,
            build_directory=work,
            is_python_module=False,
        )
        built = Path(work) / f"{name}.so"
        target = folder / built.name
        partial = folder / f".{built.name}.{os.getpid()}"
        shutil.copyfile(built, partial)
        partial.replace(target)  # atomic: a process loading it never sees half a file
    return target


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


@functools.cache  # a library is loaded into the process once; so is a failure to build it
def load_kernels() -> str | None:
    """Loads the kernels into ``torch.ops.imagesense``; returns why not, or None when they are there."""
    reason = unsupported_reason()
    if reason:
        return reason
    filename = f"{library_name()}.so"
    for folder in library_folders():
        if (folder / filename).is_file():
            torch.ops.load_library(str(folder / filename))
            return None
    writable = next((folder for folder in library_folders() if _writable(folder)), None)
    if writable is None:
        return "no writable folder to build the kernels in"
    try:
        path = build(writable)
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: fall back, with the reason
        log.warning("could not build the engine's CPU kernels (%s): using PyTorch's", exc)
        return f"the kernels could not be built ({type(exc).__name__}; the log has the compiler's output)"
    log.info("built the engine's CPU kernels: %s", path)
    return None

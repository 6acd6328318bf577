"""The engine's own CPU kernels (``kernels/*.cpp``): compiled once per machine, loaded into torch.

They are an optimisation, never a requirement. ``IMAGESENSE_NATIVE_KERNELS`` picks (``decode_kernel``):
``auto`` uses them only where they win (x86 with AVX2 and no native bfloat16), ``on`` wherever they build
(for measuring; a start fails where they can't), ``off`` never. Where they can't be built (no C++
compiler, another architecture) or a cached library won't load (a stale build, another CPU, a missing
symbol), the engine runs on PyTorch's kernels and says so in the log. A build takes ~20 s on 2 cores; it is
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
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch

from imagesense.engine.cpu import cpu_flags, has_native_bf16
from imagesense.engine.errors import EngineError

log = logging.getLogger(__name__)

KERNELS = Path(__file__).parent / "kernels"
SOURCES = sorted(KERNELS.glob("*.cpp"))
HEADERS = sorted(KERNELS.glob("*.h"))
_FLAGS = ["-O3"]
# What the engine calls; a library without one of them (a stale or foreign build) is not used.
REQUIRED_OPS = ("pack_int8", "int8_linear", "decode_layer")

NativeKernels = Literal["auto", "on", "off"]
NATIVE_KERNEL_MODES: tuple[NativeKernels, ...] = ("auto", "on", "off")


class NativeKernelsUnavailable(EngineError):
    """``IMAGESENSE_NATIVE_KERNELS=on`` on a machine where the kernels can't be had: the start fails."""


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


def unsupported_reason(machine: str | None = None, flags: set[str] | None = None) -> str | None:
    """Why this CPU (``machine``/``flags``: this one's, by default) can't run the kernels, or None."""
    machine = platform.machine() if machine is None else machine
    if machine.lower() not in ("x86_64", "amd64"):
        return f"the kernels are for x86-64 (this CPU is {machine})"
    if not {"avx2", "fma"} <= (cpu_flags() if flags is None else flags):
        return "the kernels need AVX2 and FMA, which this CPU lacks"
    return None


def decode_kernel(
    mode: NativeKernels,
    flags: set[str] | None = None,
    machine: str | None = None,
    load: Callable[[], str | None] | None = None,
) -> bool:
    """Whether int8-weight decodes on the engine's kernel (True) or PyTorch's (False).

    ``auto``: only on x86 with AVX2 and without native bfloat16 — with it, PyTorch's bfloat16 kernel was
    the faster (149 vs 178 ms of LM matmuls a token on 2 cores of an AMX Xeon, measured); ``on``: wherever
    the kernels load, else ``NativeKernelsUnavailable``; ``off``: never. ``flags``, ``machine`` and ``load``
    default to this CPU's and ``load_kernels``; tests hand in others.
    """
    if mode == "off":
        return False
    flags = cpu_flags() if flags is None else flags
    reason = unsupported_reason(machine, flags)
    if mode == "auto" and (reason is not None or has_native_bf16(flags)):
        return False
    reason = reason or (load or load_kernels)()
    if reason is None:
        return True
    if mode == "on":
        raise NativeKernelsUnavailable(
            f"IMAGESENSE_NATIVE_KERNELS=on, but the engine's CPU kernels can't be used: {reason}. "
            "Fix: install a C++ compiler and run `imagesense build-kernels`, or set IMAGESENSE_NATIVE_KERNELS=auto."
        )
    return False


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


@functools.cache  # a library is loaded into the process once; so is a failure (logged once)
def load_kernels() -> str | None:
    """Loads the kernels into ``torch.ops.imagesense``; returns why not, or None when they are there."""
    reason = unsupported_reason()
    return reason if reason else load_or_build(library_folders())


def load_or_build(folders: list[Path]) -> str | None:
    """The library from the first of ``folders`` that has it, else one built into the first writable one."""
    filename = f"{library_name()}.so"
    cached = next((folder / filename for folder in folders if (folder / filename).is_file()), None)
    if cached is not None:
        return load_library(cached)
    writable = next((folder for folder in folders if _writable(folder)), None)
    if writable is None:
        return "no writable folder to build the kernels in"
    try:
        path = build(writable)
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed build: fall back, with the reason
        log.warning("could not build the engine's CPU kernels (%s): using PyTorch's", exc)
        return f"the kernels could not be built ({type(exc).__name__}; the log has the compiler's output)"
    log.info("built the engine's CPU kernels: %s", path)
    return None


def load_library(path: Path) -> str | None:
    """Loads a built library; a file that won't load (another CPU, a stale or truncated build, a missing
    symbol) or lacks an op is logged and reported, never raised: the engine then runs on PyTorch's."""
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError) as exc:
        log.warning("the engine's CPU kernels in %s could not be loaded (%s): using PyTorch's", path, exc)
        return (
            "the cached kernel library could not be loaded: remove it (the log names the file and why) and run "
            "`imagesense build-kernels`"
        )
    missing = [name for name in REQUIRED_OPS if not hasattr(torch.ops.imagesense, name)]
    if missing:
        log.warning("the engine's CPU kernels in %s lack %s: using PyTorch's", path, ", ".join(missing))
        return (
            f"the cached kernel library lacks {', '.join(missing)}: remove it (the log names the file) and run "
            "`imagesense build-kernels`"
        )
    return None

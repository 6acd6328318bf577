"""What the CPU offers: the cores this process may use, and native bfloat16."""

from __future__ import annotations

import os
from pathlib import Path

_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512-BF16 / AMX, Arm BF16


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    """The feature flags of /proc/cpuinfo (x86 "flags", Arm "Features"); empty where there is none."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in info.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def has_native_bf16(flags: set[str]) -> bool:
    """Native bfloat16 matmul; without it bfloat16 is emulated and slower than float32."""
    return any(flag in flags for flag in _BF16_FLAGS)

"""`imagesense bench`'s comparison with the OpenVINO GenAI peer, and decode against memory bandwidth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagesense.devtools.bench_peer import decode_weight_bytes, memory_bandwidth_gbs, openvino_row
from imagesense.engine.cpu import cpu_cores, cpu_flags, has_native_bf16


@dataclass(frozen=True)
class Peers:
    python: str  # the interpreter of OpenVINO's own virtualenv
    exports: list[Path]  # optimum-intel export folders, e.g. int8 and int4


def peer_rows(peers: Peers, describe_budget: int, new_tokens: int) -> dict[str, Any]:
    from imagesense.devtools.bench_speed import EQUAL_WORK_PIXELS, row  # the table's own format

    rows: dict[str, Any] = {}
    for export in peers.exports:
        for label, pixels in (("default budget", describe_budget), ("equal work", EQUAL_WORK_PIXELS)):
            result = openvino_row(peers.python, export, pixels, new_tokens, cpu_cores())
            rows[f"openvino {label}/{export.name}"] = result
            print(row(f"OpenVINO, {label.replace(' budget', '')}", export.name[:13], result))
    return rows


def report_bandwidth(results: dict[str, Any], checkpoint: Path, profiles: Sequence[str]) -> None:
    bandwidth = memory_bandwidth_gbs()
    dtype_bytes = 2 if has_native_bf16(cpu_flags()) else 4  # the profile "none": bf16 or float32
    print(f"\nmemory bandwidth (read, {cpu_cores()} threads): {bandwidth:.1f} GB/s")
    for profile in profiles:
        result = results.get(f"default budget/{profile}")
        if result is None or not result["decode_tps"]:
            continue
        per_token = decode_weight_bytes(checkpoint, profile, dtype_bytes)
        used = per_token * result["decode_tps"] / 1e9
        print(
            f"  {profile}: {per_token / 1e9:.2f} GB of weights per token × {result['decode_tps']:.2f} tok/s = "
            f"{used:.1f} GB/s, {used / bandwidth * 100:.0f} % of the bandwidth"
        )


def report_peers(results: dict[str, Any], default: str) -> None:
    ours, ours_equal = results[f"default budget/{default}"], results[f"equal work/{default}"]
    print("\nagainst OpenVINO GenAI (same run, same image and tokens; ratios are ours ÷ theirs):")
    for key, theirs in results.items():
        if not key.startswith("openvino default budget/"):
            continue
        name = key.split("/", 1)[1]
        equal = results[f"openvino equal work/{name}"]
        print(
            f"  {name}: total {ours['total_s'] / theirs['total_s']:.2f}×, decode "
            f"{ours['decode_tps'] / theirs['decode_tps']:.2f}×, TTFT {ours['ttft_s'] / theirs['ttft_s']:.2f}×, "
            f"peak RSS {ours['peak_rss_gb']:.2f} vs {theirs['peak_rss_gb']:.2f} GB; at 1200 visual tokens TTFT "
            f"{ours_equal['ttft_s'] / equal['ttft_s']:.2f}×"
        )

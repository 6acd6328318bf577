"""`imagesense bench`: the naive pipeline against the service's engine, on the same image and token
counts, in one run (this machine is shared and noisy: compare ratios from one run, not across runs).

Speed is measured on the real Qwen3-VL-2B architecture with random weights (built offline, cached in
.cache/): the same compute per token and per image as the real model, nonsense text. `--tiny` runs
every scenario on the tiny test checkpoint in seconds, so the command can't rot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from imagesense.budgets import AUTO_PIXELS
from imagesense.devtools.bench_report import Peers, peer_rows, report_bandwidth, report_peers
from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.engine.quantize import SCHEMES, Scheme

Result = dict[str, Any]
EQUAL_WORK_PIXELS = 1280 * 960  # the whole photo: 1200 visual tokens, as the naive pipeline sees it


def scenario(in_process: bool = False, **spec: Any) -> Result:
    """Runs one scenario in a fresh process (its own peak memory), or here for a quick smoke run."""
    if in_process:
        from imagesense.devtools.bench_scenarios import SCENARIOS, peak_rss_gb

        return {**SCENARIOS[spec["kind"]](spec), "peak_rss_gb": peak_rss_gb()}
    command = [sys.executable, "-m", "imagesense.devtools.bench_scenarios", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scenario {spec} failed:\n{done.stderr[-3000:]}")
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def row(name: str, profile: str, result: Result) -> str:
    return (
        f"{name:<24}{profile:<14}{result['visual_tokens']:>7}{result['ttft_s']:>9.2f}{result['decode_tps']:>9.2f}"
        f"{result['total_s']:>9.2f}{result['peak_rss_gb']:>9.2f}"
    )


def run(
    checkpoint: Path,
    new_tokens: int,
    profiles: list[Scheme],
    naive: bool,
    default: Scheme,
    in_process: bool = False,
    peers: Peers | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {"checkpoint": str(checkpoint), "new_tokens": new_tokens, "in_process": in_process}
    describe_budget = AUTO_PIXELS["describe"]
    print(f"checkpoint {checkpoint}, {new_tokens} new tokens, 1280×960 photo, describe\n")
    print(f"{'pipeline':<24}{'profile':<14}{'visual':>7}{'TTFT s':>9}{'tok/s':>9}{'total s':>9}{'RSS GB':>9}")
    results: dict[str, Any] = {}
    if naive:
        results["naive"] = scenario(kind="naive", **base)
        print(row("naive (fp32, full res)", "none", results["naive"]))
    for profile in profiles:
        for label, pixels in (("default budget", describe_budget), ("equal work", EQUAL_WORK_PIXELS)):
            result = scenario(kind="engine", profile=profile, max_pixels=pixels, **base)
            results[f"{label}/{profile}"] = result
            print(row(f"engine, {label}", profile, result))
    if peers is not None:
        results |= peer_rows(peers, describe_budget, new_tokens)
    results["follow_up"] = scenario(kind="follow_up", profile=default, max_pixels=describe_budget, **base)
    print(row("engine, follow-up", default, results["follow_up"]))
    results["flow"] = scenario(kind="flow", profile=default, **base)
    results["concurrent"] = scenario(kind="concurrent", profile=default, max_pixels=describe_budget, **base)
    results["service"] = scenario(kind="service", profile=default, max_pixels=describe_budget, rounds=5, **base)
    report(results, default, profiles, new_tokens)
    report_bandwidth(results, checkpoint, profiles)
    if peers is not None:
        report_peers(results, default)
    errors = scenario(kind="layer_errors", profile="none", max_pixels=describe_budget, **base)["errors"]
    print_errors(errors)
    results["layer_errors"] = errors
    return results


def print_errors(errors: dict[str, dict[str, float]]) -> None:
    """Relative L2 error of each layer's output against bfloat16, on real activations of the prompt."""
    schemes = list(next(iter(errors.values())))
    print("\nper-layer output error vs bfloat16 (relative L2, on the prompt's own activations):")
    print(f"  {'layer':<48}" + "".join(f"{scheme:>14}" for scheme in schemes))
    for name, by_scheme in errors.items():
        print(f"  {name:<48}" + "".join(f"{by_scheme[scheme] * 100:>13.2f}%" for scheme in schemes))


def report(results: dict[str, Any], default: Scheme, profiles: list[Scheme], new_tokens: int) -> None:
    print("\nratios (one run):")
    fastest = max(profiles, key=lambda p: results[f"default budget/{p}"]["decode_tps"])
    ours = results[f"default budget/{default}"]
    if "naive" in results:
        naive_total = results["naive"]["total_s"]
        print(f"  default settings vs naive, end to end: {naive_total / ours['total_s']:.1f}×")
        for profile in profiles:
            equal = results[f"equal work/{profile}"]
            print(f"  equal work ({profile}) vs naive: {naive_total / equal['total_s']:.1f}×")
    print(f"  default settings: {ours['total_s']:.2f} s end to end for {new_tokens} tokens")
    follow = results["follow_up"]
    print(
        f"  follow-up with history: TTFT {follow['ttft_s']:.2f} s, {follow['cached_tokens']} of "
        f"{follow['prompt_tokens']} prompt tokens reused; new question on the same image: TTFT "
        f"{follow['new_question_ttft_s']:.2f} s, {follow['new_question_cached']} of "
        f"{follow['new_question_prompt_tokens']} reused"
    )
    best = results[f"default budget/{fastest}"]
    print(f"  fastest profile {fastest}: decode {best['decode_tps']:.1f} tok/s, peak RSS {best['peak_rss_gb']:.2f} GB")
    kept, pinned = results["flow"]["kept"], results["flow"]["pinned"]
    print(
        f"  describe, then ask (HTTP): describe {kept['describe']['wall_s']:.2f} s; the first question "
        f"{kept['ask']['wall_s']:.2f} s (TTFT {kept['ask']['ttft_s']:.2f} s, {kept['ask']['cached_tokens']} of "
        f"{kept['ask']['prompt_tokens']} tokens reused, {kept['ask']['visual_tokens']} visual) vs "
        f"{pinned['ask']['wall_s']:.2f} s (TTFT {pinned['ask']['ttft_s']:.2f} s) encoding again at ask's own "
        f"budget ({pinned['ask']['visual_tokens']} visual)"
    )
    both = results["concurrent"]
    print(f"  two at once: latency {both['latency_together_s']:.1f} s each vs {both['latency_alone_s']:.1f} s alone; "
          f"throughput {both['wall_sequential_s'] / both['wall_together_s']:.2f}× of one at a time")  # fmt: skip
    service = results["service"]
    print(
        f"  service overhead vs the engine called directly: HTTP {service['overhead'] * 100:+.1f}%, "
        f"WebSocket stream {service['stream_overhead'] * 100:+.1f}% (medians, interleaved); "
        f"per request, client time over the engine's own time: {service['accounted_overhead'] * 100:+.1f}%"
    )


def main(
    tiny: bool, checkpoint: str | None, new_tokens: int | None, profiles: str, naive: bool, peers: Peers | None = None
) -> None:
    cache = Path(".cache")
    path = Path(checkpoint) if checkpoint else cached_checkpoint(cache, "tiny" if tiny else "2b")
    chosen: list[Scheme] = [p for p in SCHEMES if p in profiles.split(",")] if profiles != "all" else list(SCHEMES)
    run(path, new_tokens or (8 if tiny else 64), chosen, naive, "int8-weight", in_process=tiny, peers=peers)

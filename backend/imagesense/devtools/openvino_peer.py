"""The OpenVINO GenAI peer, run by `imagesense bench --openvino DIR` with the Python of OpenVINO's own
virtualenv (never a dependency of ImageSense): the same image, prompt and greedy token count as our rows.

Standalone on purpose: it imports only openvino, openvino_genai, numpy and Pillow, so it runs in a
virtualenv made with the recipe in the shared notes (openvino-peer.md). Prints one JSON line.
GenAI's prefix cache is off (it would skip the prefill of a repeated prompt): cold against cold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path


def peak_rss_gb(stop: threading.Event, peak: list[float]) -> None:
    while not stop.wait(0.01):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                peak[0] = max(peak[0], int(line.split()[1]) / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="an optimum-intel export folder")
    parser.add_argument("--image", required=True, help="the image, already at the size our engine used")
    parser.add_argument("--prompt", default="Describe this image.")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import openvino as ov
    import openvino_genai as og
    from PIL import Image

    image = Image.open(args.image).convert("RGB")
    tensor = ov.Tensor(np.ascontiguousarray(np.array(image, dtype=np.uint8)[None]))
    scheduler = og.SchedulerConfig()
    scheduler.enable_prefix_caching = False
    peak = [0.0]
    stop = threading.Event()
    threading.Thread(target=peak_rss_gb, args=(stop, peak), daemon=True).start()
    pipe = og.VLMPipeline(args.model, "CPU", INFERENCE_NUM_THREADS=args.threads, scheduler_config=scheduler)
    config = og.GenerationConfig()
    config.max_new_tokens = config.min_new_tokens = args.new_tokens
    config.ignore_eos = True
    config.do_sample = False

    def run() -> dict[str, float]:
        began = time.perf_counter()
        metrics = pipe.generate(args.prompt, images=[tensor], generation_config=config).perf_metrics
        return {
            "ttft_s": metrics.get_ttft().mean / 1000,
            "decode_tps": 1000 / metrics.get_tpot().mean,
            "total_s": time.perf_counter() - began,
            "prompt_tokens": metrics.get_num_input_tokens(),
        }

    run()  # warm-up: the first call repacks the weights
    runs = [run() for _ in range(args.repeats)]
    stop.set()
    summary = {key: statistics.median(r[key] for r in runs) for key in ("ttft_s", "decode_tps", "total_s")}
    print(
        json.dumps(
            {
                **summary,
                "prompt_tokens": runs[0]["prompt_tokens"],
                "peak_rss_gb": peak[0],
                "openvino": ov.__version__,
                "precision": pipe_precision(ov),
            }
        )
    )


def pipe_precision(ov: object) -> str:
    core = ov.Core()  # type: ignore[attr-defined]
    return str(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))


if __name__ == "__main__":
    main()

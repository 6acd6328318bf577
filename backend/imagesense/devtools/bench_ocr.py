"""`imagesense bench-ocr`: latency and character error rate per test page for each OCR engine, and
for the fast engine's lines in its own order ("raw") beside the service's reading order ("fast").

A benchmark, not a test: it prints what it measured. The VLM's text from a random-weight checkpoint is
nonsense, so its CER is only meaningful with real weights; its latency is real either way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imagesense import budgets
from imagesense.devtools.samples import Sample, all_samples, character_error_rate
from imagesense.engine.protocol import GenerationRequest, Unattended
from imagesense.engine.rapidocr import RapidOcrEngine
from imagesense.engine.transformers_engine import open_transformers_engine
from imagesense.images import fit_to_budget
from imagesense.ocr.layout import reading_order
from imagesense.ocr.markup import to_text
from imagesense.prompts import build_messages

Reader = Callable[[Image.Image], str]


def fast_readers(threads: int) -> dict[str, Reader]:
    """The fast engine through the service's reading order, and the same lines in the engine's own
    order ("raw"): the ordering step must never make a page worse."""
    engine = RapidOcrEngine(threads=threads)
    engine.warm_up()

    def read(image: Image.Image) -> str:
        output = engine.read(image)
        return to_text(reading_order(output.lines, output.rotation, image.width, image.height))

    def read_raw(image: Image.Image) -> str:
        return "\n".join(line.text for line in engine.read(image).lines)

    return {"fast": read, "raw": read_raw}


def vlm_reader(model: str, max_new_tokens: int) -> Reader:
    engine = open_transformers_engine(model)
    budget = budgets.AUTO_PIXELS["ocr"]

    def read(image: Image.Image) -> str:
        request = GenerationRequest(
            messages=build_messages("ocr", 1),
            images=[fit_to_budget(image, budget, 4096)],
            max_pixels=budget,
            min_pixels=4096,
            max_new_tokens=max_new_tokens,
        )
        return engine.generate(request, Unattended()).text

    return read


def measure(reader: Reader, page: Sample, repeats: int) -> tuple[float, float]:
    """Median latency in ms over ``repeats`` reads, and the CER of the last one."""
    times, text = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        text = reader(page.image)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), character_error_rate(text, page.text)


def run(engines: list[str], model: str | None, repeats: int, max_new_tokens: int, threads: int) -> None:
    readers: dict[str, Reader] = {}
    if "fast" in engines:
        readers |= fast_readers(threads)
    if "vlm" in engines:
        if model is None:
            raise SystemExit("bench-ocr: --model is needed for the vlm engine")
        readers["vlm"] = vlm_reader(model, max_new_tokens)
        if (Path(model) / "IMAGESENSE_RANDOM_WEIGHTS").exists():
            print(f"note: {model} has random weights: the vlm's CER below is meaningless, its latency is not\n")
    pages = all_samples()
    print(f"{'sample':<15}{'category':<20}{'size':>10}{'engine':>8}{'latency ms':>12}{'CER':>8}")
    per_category: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for page in pages:
        for name, reader in readers.items():
            latency, cer = measure(reader, page, repeats if name != "vlm" else 1)
            per_category.setdefault((page.category, name), []).append((latency, cer))
            size = f"{page.image.width}×{page.image.height}"
            print(f"{page.name:<15}{page.category:<20}{size:>10}{name:>8}{latency:>12.0f}{cer:>8.3f}")
    print(f"\n{'category':<22}{'engine':>8}{'mean latency ms':>17}{'mean CER':>10}")
    for (category, name), values in per_category.items():
        latency = statistics.mean(v[0] for v in values)
        cer = statistics.mean(v[1] for v in values)
        print(f"{category:<22}{name:>8}{latency:>17.0f}{cer:>10.3f}")

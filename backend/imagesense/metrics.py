"""Prometheus metrics, named after the peers' vocabulary (vLLM's requests running/waiting, time to first
token, queue/prefill/decode time, prompt/generation tokens), in a registry of the app's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imagesense.schemas.tasks import AnyTaskResult, OcrResult

# CPU latencies: tenths of a second (fast OCR, a cached prefix) to minutes (a large image, a long answer).
SECONDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class PoolLoad:
    running: int
    waiting: int


@dataclass(frozen=True)
class LiveState:
    """What the metrics read at each scrape: the pools' load and whether each engine can work."""

    pools: Callable[[], dict[str, PoolLoad]]  # by pool: "vlm", "fast_ocr"
    ready: Callable[[], dict[str, bool]]  # by engine


class _Live(Collector):
    def __init__(self, state: LiveState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        pools = self._state.pools()
        running = GaugeMetricFamily("imagesense_requests_running", "Jobs holding a worker slot.", labels=["pool"])
        waiting = GaugeMetricFamily("imagesense_requests_waiting", "Jobs waiting for a worker slot.", labels=["pool"])
        for pool, load in pools.items():
            running.add_metric([pool], load.running)
            waiting.add_metric([pool], load.waiting)
        ready = GaugeMetricFamily("imagesense_model_ready", "1 when the engine can take work.", labels=["engine"])
        for engine, is_ready in self._state.ready().items():
            ready.add_metric([engine], 1.0 if is_ready else 0.0)
        yield from (running, waiting, ready)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "imagesense_requests", "Tasks ended, by task, engine and HTTP-like status.",
            ["task", "engine", "status"], registry=registry,
        )  # fmt: skip
        self.ttft = Histogram(
            "imagesense_time_to_first_token_seconds", "Arrival to first token (queue + prefill).",
            ["engine"], buckets=SECONDS, registry=registry,
        )  # fmt: skip
        self.queue = Histogram(
            "imagesense_request_queue_seconds", "Waiting for a worker.", ["engine"], buckets=SECONDS, registry=registry
        )
        self.prefill = Histogram(
            "imagesense_request_prefill_seconds", "Image encoding and prompt, to the first token.",
            ["engine"], buckets=SECONDS, registry=registry,
        )  # fmt: skip
        self.decode = Histogram(
            "imagesense_request_decode_seconds", "First token to last.", ["engine"], buckets=SECONDS, registry=registry
        )
        self.prompt_tokens = Counter("imagesense_prompt_tokens", "Prompt tokens, visual included.", registry=registry)
        self.generation_tokens = Counter("imagesense_generation_tokens", "Tokens generated.", registry=registry)
        self.image_tokens = Counter("imagesense_image_tokens", "Visual tokens of the images.", registry=registry)
        self.prefix_queries = Counter(
            "imagesense_prefix_cache_queries", "Generations about images that looked for a reusable prefix.",
            registry=registry,
        )  # fmt: skip
        self.prefix_hits = Counter(
            "imagesense_prefix_cache_hits", "Of those, the ones that reused one.", registry=registry
        )
        self.http = Counter(
            "imagesense_http_requests", "HTTP requests by method, route and status.",
            ["method", "route", "status"], registry=registry,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "imagesense_http_request_duration_seconds", "HTTP request to response.",
            ["method", "route"], buckets=SECONDS, registry=registry,
        )  # fmt: skip

    def watch(self, state: LiveState) -> None:
        self.registry.register(_Live(state))

    def task_ended(self, task: str, engine: str, status: int | str) -> None:
        self.requests.labels(task, engine, str(status)).inc()

    def task_done(self, task: str, result: AnyTaskResult) -> None:
        engine = result.engine if isinstance(result, OcrResult) else "vlm"
        self.task_ended(task, engine, 200)
        timings, usage = result.timings, result.usage
        self.queue.labels(engine).observe(timings.queue_ms / 1000)
        self.prefill.labels(engine).observe(timings.prefill_ms / 1000)
        self.decode.labels(engine).observe(timings.decode_ms / 1000)
        self.ttft.labels(engine).observe((timings.queue_ms + timings.prefill_ms) / 1000)
        self.prompt_tokens.inc(usage.prompt_tokens)
        self.generation_tokens.inc(usage.completion_tokens)
        self.image_tokens.inc(usage.image_tokens)
        if engine == "vlm":
            self.prefix_queries.inc()
            if usage.cached_tokens:
                self.prefix_hits.inc()

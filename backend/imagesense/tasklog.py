"""One log line, and the metrics, per task when it ends, whatever the ending: what ran, on what, how
long, how it ended. A crash gets its traceback. The request id comes with the record (see logs.py)."""

from __future__ import annotations

import asyncio
import logging

from imagesense.errors import api_error_from
from imagesense.handles import TaskHandle
from imagesense.jobs import JobCancelled
from imagesense.metrics import Metrics
from imagesense.schemas.tasks import AnyTaskResult, OcrResult, TaskName

log = logging.getLogger("imagesense.task")


class TaskOutcomes:
    """Watches each submitted task to its end, then logs its line and counts it in the metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._watchers: set[asyncio.Task[None]] = set()  # strong references until each line is written

    def watch(self, task: TaskName, handle: TaskHandle[AnyTaskResult]) -> None:
        watcher = asyncio.create_task(_log_when_done(task, handle, self._metrics))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)


async def _log_when_done(task: TaskName, handle: TaskHandle[AnyTaskResult], metrics: Metrics) -> None:
    try:
        result = await handle.result()
    except JobCancelled as cancelled:
        metrics.task_ended(task, "-", "cancelled")
        log.info(
            "task %s cancelled", task, extra={"task": task, "status": "cancelled", "by_shutdown": cancelled.by_shutdown}
        )
        return
    except Exception as exc:
        error = api_error_from(exc)
        metrics.task_ended(task, "-", error.status if error else 500)
        if error is None:
            log.error("task %s crashed", task, exc_info=exc, extra={"task": task, "status": 500})
        else:
            log.info("task %s failed: %s", task, error.message, extra={"task": task, "status": error.status})
        return
    metrics.task_done(task, result)
    fields = {
        "task": task,
        "status": 200,
        "engine": result.engine if isinstance(result, OcrResult) else "vlm",
        "images": len(result.images),
        "visual_tokens": sum(image.visual_tokens for image in result.images),
        "prompt_tokens": result.usage.prompt_tokens,
        "cached_tokens": result.usage.cached_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "queue_ms": result.timings.queue_ms,
        "prefill_ms": result.timings.prefill_ms,
        "decode_ms": result.timings.decode_ms,
        "finish_reason": result.finish_reason,
    }
    log.info("task %s done %s", task, " ".join(f"{key}={value}" for key, value in fields.items()), extra=fields)

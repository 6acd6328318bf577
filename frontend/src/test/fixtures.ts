import type { OcrResult, TaskResult } from "../api/client";

export const describeResult: TaskResult = {
  task: "describe",
  text: "A yellow sun over a green field.",
  model: "tiny",
  finish_reason: "stop",
  usage: { prompt_tokens: 220, image_tokens: 192, cached_tokens: 0, completion_tokens: 9 },
  timings: { queue_ms: 0, prefill_ms: 120, decode_ms: 300, total_ms: 420 },
  images: [],
  data: null,
};

export const ocrResult: OcrResult = {
  ...describeResult,
  task: "ocr",
  text: "TOTAL 11.55",
  engine: "fast",
  rotation: 0,
  markdown: "TOTAL 11.55",
  lines: [{ text: "TOTAL 11.55", confidence: 0.98, box: [[1, 1], [50, 1], [50, 10], [1, 10]] }],
  document_id: null,
  blocks: [],
  tables: [],
  reading_order: "layout",
  layout_confidence: 1,
  pages: [],
};

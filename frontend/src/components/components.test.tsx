import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { renderWithI18n } from "../test/render";
import { IDLE, type StreamState } from "../hooks/useStream";
import { explainError } from "./ErrorNotice";
import { ImageCard, formatBytes } from "./ImageCard";
import { LanguageSwitch } from "./LanguageSwitch";
import { MarkdownText } from "./MarkdownText";
import { OcrBoxes } from "./OcrBoxes";
import { StatusLine, decodeRate, ordinalPosition } from "./StatusLine";
import { formatMessage } from "../i18n/I18nContext";
import { en } from "../i18n/messages";
import { ocrResult } from "../test/fixtures";

const base: StreamState = IDLE;

test("the queue position reads as a place in line", () => {
  renderWithI18n(<StatusLine state={{ ...base, status: "queued", position: 2 }} />);
  expect(screen.getByRole("status")).toHaveTextContent("Waiting: 2nd in line");
  expect([1, 2, 3, 4, 11, 12, 21].map((n) => ordinalPosition(n, "en"))).toEqual([
    "1st", "2nd", "3rd", "4th", "11th", "12th", "21st",
  ]);
});

test("while generating: the elapsed time", () => {
  const startedAt = Date.now() - 2000;
  renderWithI18n(<StatusLine state={{ ...base, status: "running", text: "a b c d e f", startedAt }} />);
  expect(screen.getByRole("status").textContent).toMatch(/^Generating · 2\.\d s$/);
});

test("when done: the speed the server measured, not a count of text events", () => {
  // 41 tokens, 40 of them after the first, in 3.2 s of decoding: 12.5 tokens/s, whatever the events were.
  const result = {
    ...ocrResult,
    usage: { ...ocrResult.usage, completion_tokens: 41 },
    timings: { ...ocrResult.timings, decode_ms: 3200 },
  };
  const sentAt = Date.now() - 5000;
  renderWithI18n(<StatusLine state={{ ...base, status: "done", result, sentAt, finishedAt: sentAt + 4000 }} />);
  expect(screen.getByRole("status")).toHaveTextContent("Done in 4.0 s · 12.5 tokens/s");
  expect(decodeRate({ ...result, usage: { ...result.usage, completion_tokens: 1 } })).toBeNull();
});

test("status in Chinese", () => {
  renderWithI18n(<StatusLine state={{ ...base, status: "queued", position: 3 }} />, "zh");
  expect(screen.getByRole("status")).toHaveTextContent("排队中：第 3 位");
});

test("Markdown is rendered, raw HTML never is", () => {
  const { container } = renderWithI18n(
    <MarkdownText text={'**bold**\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\n<img src=x onerror="alert(1)"><script>alert(2)</script>[x](javascript:alert(3))'} />,
  );
  expect(container.querySelector("strong")).toHaveTextContent("bold");
  expect(container.querySelector("table")).not.toBeNull();
  expect(container.querySelector("img")).toBeNull();
  expect(container.querySelector("script")).toBeNull();
  expect(container.querySelector("a")?.getAttribute("href") ?? "").not.toContain("javascript");
});

test("an image card shows dimensions and size, or the server's refusal", () => {
  const image = {
    key: "k",
    name: "receipt.jpg",
    previewUrl: "blob:x",
    info: { image_id: "id", width: 760, height: 820, format: "jpeg" as const, bytes: 30_359 },
    document: null,
    pages: [],
    error: null,
    selected: true,
  };
  const { rerender } = renderWithI18n(
    <ImageCard image={image} index={0} onToggle={() => {}} onRemove={() => {}} onPages={() => {}} />,
  );
  expect(screen.getByText("760×820 · 29.6 KB")).toBeInTheDocument();
  rerender(
    <ImageCard
      image={{ ...image, info: null, error: { code: "unsupported_media_type", message: "not a supported image", field: "file", request_id: null } }}
      index={0}
      onToggle={() => {}}
      onRemove={() => {}}
      onPages={() => {}}
    />,
  );
  expect(screen.getByRole("alert")).toHaveTextContent("not a supported image");
  expect(formatBytes(512)).toBe("512 B");
  expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MB");
});

test("errors are explained in words a user can act on", () => {
  const t = (key: keyof typeof en, values?: Record<string, string | number>) => formatMessage(en[key], values);
  const readiness = {
    kind: "known" as const,
    readiness: {
      ready: true,
      shutting_down: false,
      vlm: { status: "failed" as const, model: "Qwen", reason: "run imagesense download", dtype: null, decode: null, load_seconds: null },
      fast_ocr: { status: "ready" as const, model: "rapidocr", reason: null, dtype: null, decode: null, load_seconds: 0.3 },
      store: { kind: "memory" as const, status: "ready" as const, reason: null },
    },
  };
  const error = (code: string) => ({ code, message: "raw", field: null, request_id: null });
  expect(explainError(error("queue_full"), readiness, t)).toMatch(/busy/);
  expect(explainError(error("model_unavailable"), readiness, t)).toBe("The model is not ready: run imagesense download");
  expect(explainError(error("network_error"), readiness, t)).toMatch(/cannot be reached/);
  expect(explainError(error("payload_too_large"), readiness, t)).toBe("raw");
});

test("OCR boxes are drawn in the image's pixel coordinates", () => {
  renderWithI18n(<OcrBoxes src="blob:x" width={100} height={40} lines={ocrResult.lines} />);
  const svg = screen.getByTestId("ocr-boxes");
  expect(svg.getAttribute("viewBox")).toBe("0 0 100 40");
  expect(svg.querySelector("polygon")?.getAttribute("points")).toBe("1,1 50,1 50,10 1,10");
});

test("the language choice is remembered", async () => {
  renderWithI18n(<LanguageSwitch />);
  await userEvent.selectOptions(screen.getByRole("combobox"), "zh");
  expect(localStorage.getItem("imagesense.language")).toBe("zh");
});

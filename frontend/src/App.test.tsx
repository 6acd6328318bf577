import { act, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { App } from "./App";
import { FakeSocket, fakeSocketFactory } from "./test/fakeSocket";
import { describeResult, ocrResult } from "./test/fixtures";
import { renderWithI18n } from "./test/render";

const server = vi.hoisted(() => {
  const calls: { url: string; method: string }[] = [];
  const uploads = { count: 0 };
  const readiness = {
    ready: true,
    shutting_down: false,
    vlm: { status: "ready", model: "tiny", reason: null, dtype: "float32", decode: "lean step, PyTorch's kernels", load_seconds: 1 },
    fast_ocr: { status: "ready", model: "rapidocr", reason: null, dtype: null, decode: null, load_seconds: 0.3 },
  };
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  globalThis.fetch = vi.fn(async (input: RequestInfo | URL) => {
    const request = input instanceof Request ? input : new Request(String(input));
    const url = new URL(request.url, "http://localhost").pathname;
    calls.push({ url, method: request.method });
    if (url === "/api/v1/ready") return json(readiness);
    if (url === "/api/v1/images") {
      const file = (await request.formData()).get("file") as File;
      // jsdom's File loses its bytes on the way through fetch; its type survives.
      if (file.type === "text/plain") {
        return json({ error: { code: "unsupported_media_type", message: "not a supported image", field: "file" } }, 415);
      }
      uploads.count += 1;
      return json({ image_id: `id-${uploads.count}`, width: 100, height: 40, format: "png", bytes: 4 }, 201);
    }
    if (url === "/api/v1/estimate") {
      const task = (await request.formData()).get("task");
      return task === "ocr"
        ? json({ task, engine: "fast", images: [], image_tokens: 0, max_new_tokens: 0, prefill_s: 0.5, decode_s: 0, total_s: 0.5, queued_ahead: 0, basis: "" })
        : json({ task, engine: "vlm", images: [], image_tokens: 192, max_new_tokens: 96, prefill_s: 2.9, decode_s: 5.3, total_s: 8.2, queued_ahead: 0, basis: "" });
    }
    return json({ error: { code: "not_found", message: "no" } }, 404);
  }) as typeof fetch;
  return { calls, uploads };
});

beforeAll(() => {
  URL.createObjectURL = vi.fn(() => "blob:preview");
  URL.revokeObjectURL = vi.fn();
});
beforeEach(() => {
  FakeSocket.instances = [];
  server.uploads.count = 0;
});

const png = (name: string) => new File([new Uint8Array([137, 80, 78, 71])], name, { type: "image/png" });

async function addFiles(...files: File[]) {
  // Drag and drop and paste don't filter by the picker's accept="image/*": neither does this.
  await userEvent.setup({ applyAccept: false }).upload(screen.getByTestId("file-input"), files);
}

test("upload, run OCR, and see the text with its boxes", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(png("receipt.png"));
  expect(await screen.findAllByText("100×40 · 4 B")).toHaveLength(1);
  expect(server.calls.some((call) => call.url === "/api/v1/images" && call.method === "POST")).toBe(true);

  await userEvent.click(screen.getByRole("button", { name: "Run" }));
  const socket = FakeSocket.instances[0]!;
  act(() => socket.open());
  expect(socket.sent[0]).toMatchObject({ task: "ocr", image_ids: ["id-1"], options: { engine: "auto" } });
  act(() => socket.emit({ type: "started" }));
  const image = { image_id: "id-1", width: 100, height: 40, model_width: 100, model_height: 40, pixel_budget: 4000, visual_tokens: 0 };
  act(() => socket.emit({ type: "done", result: { ...ocrResult, images: [image] } }));
  expect(screen.getByTestId("answer")).toHaveTextContent("TOTAL 11.55");
  expect(screen.getByTestId("ocr-boxes").querySelectorAll("polygon")).toHaveLength(1);
  expect(screen.getByRole("button", { name: "Download .txt" })).toBeInTheDocument();
});

test("a refused file shows the server's message and is not selectable", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(new File(["hello"], "notes.txt", { type: "text/plain" }));
  expect(await screen.findByRole("alert")).toHaveTextContent("not a supported image");
  expect(screen.queryByRole("checkbox")).toBeNull();
});

test("ask keeps a conversation and sends its history with the follow-up", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(png("a.png"), png("b.png"));
  await screen.findAllByText("100×40 · 4 B");
  await userEvent.click(screen.getByRole("tab", { name: "Ask" }));
  const box = screen.getByPlaceholderText("Ask a question about the selected images…");

  await userEvent.type(box, "Compare image 1 and 2{Enter}");
  const socket = FakeSocket.instances[0]!;
  act(() => socket.open());
  act(() => socket.emit({ type: "started" }));
  act(() => socket.emit({ type: "token", text: "Both are small." }));
  expect(screen.getByTestId("pending-answer")).toHaveTextContent("Both are small.");
  act(() => socket.emit({ type: "done", result: { ...describeResult, task: "ask", text: "Both are small." } }));
  await waitFor(() => expect(document.querySelectorAll(".turn-assistant")).toHaveLength(1));

  await userEvent.type(box, "Which is brighter?{Enter}");
  expect(socket.sent[1]).toMatchObject({
    task: "ask",
    image_ids: ["id-1", "id-2"],
    question: "Which is brighter?",
    history: [
      { role: "user", content: "Compare image 1 and 2" },
      { role: "assistant", content: "Both are small." },
    ],
  });
});

test("Stop cancels the running task", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(png("scene.png"));
  await screen.findByText("100×40 · 4 B");
  await userEvent.click(screen.getByRole("tab", { name: "Describe" }));
  await userEvent.click(screen.getByRole("button", { name: "Run" }));
  const socket = FakeSocket.instances[0]!;
  act(() => socket.open());
  act(() => socket.emit({ type: "queued", position: 2 }));
  expect(screen.getByRole("status")).toHaveTextContent("2nd in line");
  await userEvent.click(screen.getByRole("button", { name: "Stop" }));
  expect(socket.sent.at(-1)).toEqual({ type: "cancel" });
  act(() => socket.emit({ type: "cancelled" }));
  expect(screen.getByRole("status")).toHaveTextContent("Stopped");
});

test("a full queue and a model that is not ready are explained", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(png("scene.png"));
  await screen.findByText("100×40 · 4 B");
  await userEvent.click(screen.getByRole("button", { name: "Run" }));
  const socket = FakeSocket.instances[0]!;
  act(() => socket.open());
  act(() => socket.emit({ type: "error", code: "queue_full", message: "3 waiting", field: null, request_id: "r-1" }));
  expect(screen.getByRole("alert")).toHaveTextContent("queue full");
});

test("the expected cost shows before running", async () => {
  renderWithI18n(<App createSocket={fakeSocketFactory} />);
  await addFiles(png("scene.png"));
  expect(await screen.findByTestId("estimate")).toHaveTextContent("~0.5 s (fast OCR)");
  await userEvent.click(screen.getByRole("tab", { name: "Describe" }));
  await waitFor(() => expect(screen.getByTestId("estimate")).toHaveTextContent("up to ~8 s · 192 visual tokens"));
});

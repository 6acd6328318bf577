import { expect, test, type Page, type WebSocket } from "@playwright/test";
import path from "node:path";
import { fileURLToPath } from "node:url";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");

async function addImage(page: Page, name: string) {
  await page.getByTestId("file-input").setInputFiles(path.join(fixtures, name));
}

/** Records the events the server sends on the stream socket. */
function recordStream(page: Page): { sent: string[]; received: string[] } {
  const frames = { sent: [] as string[], received: [] as string[] };
  page.on("websocket", (ws: WebSocket) => {
    ws.on("framesent", (frame) => frames.sent.push(String(frame.payload)));
    ws.on("framereceived", (frame) => frames.received.push(String(frame.payload)));
  });
  return frames;
}

function eventTypes(received: string[]): string[] {
  return received.map((frame) => (JSON.parse(frame) as { type: string }).type);
}

test.beforeEach(async ({ page }) => {
  // English unless the test itself picks a language (the choice must survive a reload).
  await page.addInitScript(() => {
    if (!localStorage.getItem("imagesense.language")) localStorage.setItem("imagesense.language", "en");
  });
  await page.goto("/");
  await expect(page.getByText("Model: ready")).toBeVisible();
  await expect(page.getByText("Fast OCR: ready")).toBeVisible();
});

test("OCR of a receipt photo: text, line boxes, download", async ({ page }) => {
  await addImage(page, "receipt.jpg");
  await expect(page.getByText("760×820")).toBeVisible();
  await page.getByRole("button", { name: "Run" }).click();
  const answer = page.getByTestId("answer");
  await expect(answer).toContainText("TOTAL");
  await expect(answer).toContainText("11.55");
  await expect(answer.locator("table")).toBeVisible(); // rows of cells rendered as a Markdown table
  await expect(page.getByTestId("ocr-boxes").locator("polygon")).toHaveCount(14);
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download .txt" }).click();
  expect((await download).suggestedFilename()).toBe("ocr.txt");
});

test("describe streams tokens, then the result", async ({ page }) => {
  const stream = recordStream(page);
  await addImage(page, "scene.jpg");
  await page.getByRole("tab", { name: "Describe" }).click();
  await page.getByLabel("Detail").selectOption("detailed");
  await page.getByLabel("Max tokens").fill("40");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByRole("status")).toContainText("Done in");
  await expect(page.getByRole("status")).toContainText(/\d tokens\/s/); // from the server's decode timing
  await expect(page.getByTestId("answer")).not.toBeEmpty();
  const types = eventTypes(stream.received);
  expect(types[0]).toBe("started");
  expect(types.filter((type) => type === "token").length).toBeGreaterThan(10);
  expect(types.at(-1)).toBe("done");
});

test("a long generation stops at once with Stop", async ({ page, request }) => {
  await addImage(page, "scene.jpg");
  await page.getByRole("tab", { name: "Describe" }).click();
  await page.getByLabel("Max tokens").fill("8000");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByRole("status")).toContainText("Generating");
  await expect(page.getByTestId("answer")).not.toBeEmpty();
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(page.getByRole("status")).toHaveText("Stopped");
  await expect
    .poll(async () => ((await (await request.get("/api/v1/stats")).json()) as { active: number }).active)
    .toBe(0);
});

test("ask, then a follow-up that carries the conversation", async ({ page }) => {
  const stream = recordStream(page);
  await addImage(page, "scene.jpg");
  await addImage(page, "receipt.jpg");
  await expect(page.getByText("760×820")).toBeVisible();
  await page.getByRole("tab", { name: "Ask" }).click();
  const box = page.getByPlaceholder("Ask a question about the selected images…");
  await box.fill("Compare image 1 and image 2.");
  await box.press("Enter");
  await expect(page.locator(".turn-assistant")).toHaveCount(1);
  await box.fill("Which one has text?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.locator(".turn-assistant")).toHaveCount(2);
  await expect(page.locator(".turn-user")).toHaveCount(2);
  const runs = stream.sent.map((frame) => JSON.parse(frame) as { task: string; image_ids: string[]; history: unknown[] });
  expect(runs).toHaveLength(2);
  expect(runs[1]!.image_ids).toHaveLength(2);
  expect(runs[1]!.history).toHaveLength(2);
});

test("a file that is not an image is refused with the server's message", async ({ page }) => {
  await addImage(page, "notes.txt");
  await expect(page.getByRole("alert")).toContainText("not a supported image");
});

test("Chinese UI is remembered; the page fits a phone; screenshot", async ({ page }, testInfo) => {
  await page.getByRole("combobox", { name: "Language" }).selectOption("zh");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await expect(page.getByRole("tab", { name: "文字识别" })).toBeVisible();
  await addImage(page, "receipt.jpg");
  await page.getByRole("button", { name: "运行" }).click();
  await expect(page.getByTestId("answer")).toContainText("CORNER CAFE");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: testInfo.outputPath("phone-zh-ocr.png"), fullPage: true });
});

import { expect, test, type Page } from "@playwright/test";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pdf = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "mixed.pdf");

async function addPdf(page: Page) {
  await page.getByTestId("file-input").setInputFiles(pdf);
  await expect(page.getByTestId("page-picker")).toBeVisible();
}

test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    if (!localStorage.getItem("imagesense.language")) localStorage.setItem("imagesense.language", "en");
  });
  await page.goto("/");
  await expect(page.getByText("Model: ready")).toBeVisible();
});

test("a PDF: its pages to pick from, OCR page by page", async ({ page }) => {
  await addPdf(page);
  await expect(page.getByText("3 pages · all pages")).toBeVisible();
  await expect(page.getByTestId("page-picker").locator("img")).toHaveCount(3); // thumbnails rendered by the server
  await page.getByRole("checkbox", { name: "Page 3" }).check();
  await page.getByRole("checkbox", { name: "Page 2" }).check();
  await expect(page.getByText("3 pages · pages 2, 3")).toBeVisible();
  await page.getByRole("button", { name: "Run" }).click();
  const pages = page.getByTestId("ocr-page");
  await expect(pages).toHaveCount(2);
  await expect(pages.nth(0)).toContainText("Page 2");
  await expect(pages.nth(0)).toContainText("recognised");
  await expect(pages.nth(0)).toContainText("Coffee");
  await expect(pages.nth(1)).toContainText("text layer");
  await expect(pages.nth(1)).toContainText("Hammer 2 24.00");
});

test("Extract with a schema typed by hand: checked as you type, then valid JSON", async ({ page }) => {
  await addPdf(page);
  await page.getByRole("checkbox", { name: "Page 1" }).check();
  await page.getByRole("tab", { name: "Extract" }).click();
  await page.getByLabel("Max tokens").fill("200");
  await page.getByLabel("Fields").selectOption("custom");
  const editor = page.getByRole("textbox", { name: "JSON schema" });
  await editor.fill('{"type": "object", "properties": {"invoice_number": {"type": "string"}}');
  await expect(page.getByRole("alert")).toContainText("Not a valid schema yet");
  await expect(page.getByRole("button", { name: "Extract", exact: true })).toBeDisabled();
  await editor.fill('{"type": "object", "properties": {"invoice_number": {"type": "string"}}, "required": ["invoice_number"]}');
  await page.getByRole("button", { name: "Extract", exact: true }).click();
  await expect(page.getByTestId("extract-json")).toContainText('"invoice_number"');
  await expect(page.getByText("Valid against the schema.")).toBeVisible();
  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Download .json" }).click();
  expect((await download).suggestedFilename()).toBe("extract.json");
});

test("in Chinese: a receipt preset on a scanned page", async ({ page }) => {
  await page.getByRole("combobox", { name: "Language" }).selectOption("zh");
  await addPdf(page);
  await page.getByRole("checkbox", { name: "第 2 页" }).check();
  await page.getByRole("tab", { name: "提取" }).click();
  await page.getByLabel("最大词元数").fill("300");
  await page.getByLabel("字段").selectOption("receipt");
  await page.getByRole("button", { name: "提取", exact: true }).click();
  await expect(page.getByTestId("extract-json")).toContainText('"merchant"');
  await expect(page.getByText("符合 Schema。")).toBeVisible();
  await expect(page.getByRole("button", { name: "下载 .json" })).toBeVisible();
});

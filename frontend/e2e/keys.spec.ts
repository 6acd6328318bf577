import { expect, test } from "@playwright/test";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { E2E_KEY, keyedPort } from "../playwright.config";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const keyedUrl = `http://127.0.0.1:${keyedPort}/`;

test("a server with API keys: the app asks for one, refuses a wrong one, then works with the right one", async ({
  page,
}) => {
  await page.addInitScript(() => localStorage.setItem("imagesense.language", "en"));
  await page.goto(keyedUrl);
  const prompt = page.getByRole("form", { name: "API key" });
  await expect(prompt).toContainText("This server needs an API key");
  await prompt.getByLabel("API key").fill("not-the-key");
  await prompt.getByRole("button", { name: "Use this key" }).click();
  await expect(prompt.getByRole("alert")).toHaveText("The server refused that key. Check it and try again.");

  await prompt.getByLabel("API key").fill(E2E_KEY);
  await prompt.getByRole("button", { name: "Use this key" }).click();
  await expect(prompt).toBeHidden();
  await page.getByTestId("file-input").setInputFiles(path.join(fixtures, "receipt.jpg"));
  await expect(page.getByText("760×820")).toBeVisible(); // the upload carried the key
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByTestId("answer")).toContainText("TOTAL"); // so did the stream (a subprotocol)

  await page.reload(); // kept for the tab's session
  await expect(page.getByRole("form", { name: "API key" })).toHaveCount(0);
});

test("the key prompt in Chinese", async ({ page }) => {
  await page.addInitScript(() => localStorage.setItem("imagesense.language", "zh"));
  await page.goto(keyedUrl);
  const prompt = page.getByRole("form", { name: "API 密钥" });
  await expect(prompt).toContainText("此服务器需要 API 密钥");
  await expect(prompt.getByRole("button", { name: "使用此密钥" })).toBeVisible();
});

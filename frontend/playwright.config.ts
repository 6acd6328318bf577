import { defineConfig } from "@playwright/test";

const port = Number(process.env.E2E_PORT ?? 8765);
/** A second backend that wants an API key, for the key prompt (e2e/keys.spec.ts). */
export const keyedPort = port + 1;
export const E2E_KEY = "e2e-key-0123456789abcdef";

export default defineConfig({
  testDir: "e2e",
  timeout: 90_000,
  expect: { timeout: 20_000 },
  workers: 1,
  reporter: [["list"], ["json", { outputFile: "reports/playwright.json" }]],
  outputDir: "test-results",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: "only-on-failure",
    launchOptions: {
      // Debian's Chromium: never a downloaded browser.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
      ],
    },
  },
  webServer: [
    {
      // The real backend on the tiny random-weight Qwen3-VL checkpoint, serving the built app.
      command: `bash e2e/serve.sh ${port}`,
      url: `http://127.0.0.1:${port}/api/v1/ready`,
      timeout: 180_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `bash e2e/serve.sh ${keyedPort}`,
      url: `http://127.0.0.1:${keyedPort}/api/v1/ready`,
      env: { IMAGESENSE_API_KEYS: JSON.stringify([`e2e:${E2E_KEY}`]) },
      timeout: 180_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
    },
  ],
});

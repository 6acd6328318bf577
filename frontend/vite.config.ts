/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const backend = process.env.IMAGESENSE_BACKEND ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    // `npm run dev` talks to a backend started separately; the WebSocket upgrade is proxied too.
    proxy: { "/api": { target: backend, ws: true, changeOrigin: true } },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
    reporters: ["default", ["json", { outputFile: "reports/vitest.json" }]],
  },
});

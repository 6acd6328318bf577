// Prints the plain closing line CI reads: "frontend: N passed, N failed" from the Vitest and Playwright
// JSON reports. Exits 1 on any failure, or when a report is missing (a runner that did not run failed).
import { existsSync, readFileSync } from "node:fs";

const read = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : null);
const vitest = read("reports/vitest.json");
const playwright = read("reports/playwright.json");

let passed = 0;
let failed = 0;
const missing = [];
if (vitest) {
  passed += vitest.numPassedTests;
  failed += vitest.numFailedTests;
} else missing.push("vitest");
if (playwright) {
  passed += playwright.stats.expected + playwright.stats.flaky;
  failed += playwright.stats.unexpected;
} else missing.push("playwright");

if (missing.length) console.log(`frontend: no report from ${missing.join(", ")}`);
console.log(`frontend: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || missing.length > 0 ? 1 : 0);

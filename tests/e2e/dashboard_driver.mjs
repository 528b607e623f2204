// Drives the dashboard in the system's headless Chromium (playwright-core never downloads
// a browser). Run by tests/e2e/test_dashboard.py, which starts the host and trains first.
// Exits non-zero, with the reason on stderr, at the first step that does not hold.
import { chromium } from "playwright-core";
import path from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("BASE_URL");
const out = env("OUTPUT_DIR");
const classifier = env("CLASSIFIER");
const partitioned = env("PARTITIONED");
const room = env("ROOM");
const step = (text) => console.log(`- ${text}`);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM_PATH"),
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  // A CSP violation or a script error shows up here: the page must have none.
  // Failed requests are judged below by URL; any other console error is a defect.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  // Only the optional panels may answer 4xx (no drift data yet, no traffic split).
  const optional = /\/(drift\/recent|ab-results)(\?|$)/;
  page.on("response", (r) => {
    const status = r.status();
    if (status >= 500 || (status >= 400 && !optional.test(r.url()))) problems.push(`HTTP ${status} ${r.url()}`);
    else if (status >= 400) console.log(`  (optional) HTTP ${status} ${r.url()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // A trace of every API call, printed when a step fails: which request was missing or hung.
  const trace = [];
  const t0 = Date.now();
  const mark = (what, r) => trace.push(`${((Date.now() - t0) / 1000).toFixed(2)}s ${what} ${r.method()} ${new URL(r.url()).pathname}`);
  page.on("request", (r) => mark("->", r));
  page.on("requestfinished", (r) => mark("<-", r));
  page.on("requestfailed", (r) => mark(`!! ${r.failure()?.errorText}`, r));
  process.on("exit", (code) => { if (code !== 0) console.error(trace.slice(-40).join("\n")); });
  const shot = (name) => page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
  const plotLoaded = async (scope) => {
    const img = page.locator(`${scope} img[data-loaded="true"]`).first();
    await img.waitFor();
    const width = await img.evaluate((i) => i.naturalWidth);
    if (width < 100) throw new Error(`a plot in ${scope} did not render (width ${width})`);
  };

  step("sign in with the keyboard");
  const response = await page.goto(`${base}/`);
  if (!response.headers()["content-security-policy"]) throw new Error("no CSP on /");
  await page.locator("#login-username").focus();
  await page.keyboard.type(env("DASH_USER"));
  await page.keyboard.press("Tab");
  await page.keyboard.type(env("DASH_PASSWORD"));
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Models" }).waitFor();
  await page.getByRole("link", { name: classifier }).waitFor();
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  if (stored !== 0) throw new Error("the token was stored outside page memory");
  await shot("1-models");

  step("open the classifier: metrics, chart, plots");
  await page.getByRole("link", { name: classifier }).click();
  await page.getByRole("heading", { level: 1, name: `Model ${classifier}` }).waitFor();
  await page.getByRole("rowheader", { name: "accuracy (primary)" }).waitFor();
  await page.locator("#primary-chart svg[role=img]").waitFor();
  await plotLoaded(".plots");
  await page.getByRole("img", { name: /confusion matrix of/ }).waitFor();
  await shot("2-model");

  step("train it again and follow the job to its end");
  await page.getByRole("button", { name: "Train now" }).click();
  await page.getByRole("heading", { level: 1, name: /Training job/ }).waitFor();
  await page.locator("#job-status", { hasText: "succeeded" }).waitFor({ timeout: 60_000 });
  await page.getByRole("link", { name: `${classifier} v2` }).waitFor();
  await shot("3-job");

  step("the new version is beside the old one");
  await page.getByRole("link", { name: `${classifier} v2` }).click();
  await page.getByRole("columnheader", { name: "v2" }).waitFor();
  await plotLoaded(".plots");
  await shot("5-model-two-versions");

  step("promote v2 to champion with the alias form (after a confirmation)");
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByLabel("Version", { exact: true }).first().selectOption("2");
  await page.getByRole("button", { name: "Promote / roll back" }).click();
  await page.getByRole("row", { name: "champion v2" }).waitFor();

  step("open the partitioned model and a room's plots");
  await page.goto(`${base}/#/models/${partitioned}`);
  await page.getByRole("heading", { level: 1, name: `Model ${partitioned}` }).waitFor();
  await page.getByRole("rowheader", { name: room }).waitFor();
  const button = page.getByRole("button", { name: `Show the plots of ${room}` });
  await button.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 3, name: `Partition ${room}` }).waitFor();
  await plotLoaded("#partition-plots");
  await page.getByRole("img", { name: /anomaly scores over time of .* partition room-02/ }).waitFor();
  await page.locator("#partition-plots").scrollIntoViewIfNeeded();
  await shot("4-partition");

  step("the first job: every room's result, and why one was skipped");
  await page.goto(`${base}/#/jobs/${env("FIRST_JOB")}`);
  await page.locator("#job-status", { hasText: "succeeded" }).waitFor();
  const skipped = page.getByRole("row", { name: /room-05/ });
  await skipped.getByText("skipped", { exact: true }).waitFor();
  await skipped.getByText("12 rows < min_rows 30").waitFor();
  await page.getByText("4 partitions trained, 1 skipped, 0 failed.").waitFor();
  await shot("6-partitioned-job");

  if (problems.length) throw new Error(problems.join("\n"));
  step("done");
} finally {
  await browser.close();
}

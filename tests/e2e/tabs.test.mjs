// Real tabs in headless Chromium (Playwright), sharing one session through
// BroadcastChannel + Web Locks against the real dev server: 8 tabs × 50
// concurrent keeper.fetch calls across several expiries → one refresh per
// rotation, no reuse detection, no 401 seen by the app; a tab opened after
// login joins without any token-endpoint request; closing the tab that
// refreshed last does not disturb the others. Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const root = new URL("../../", import.meta.url).pathname;
const TTL_MS = 3000;
let server, base, browser;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "tk-tabs-"));
  const portFile = join(dir, "port");
  server = spawn(join(root, "target/debug/tokenkeeper-devserver"),
    ["--port", "0", "--port-file", portFile, "--quiet", "--www", join(root, "tests/e2e/tabs-page"),
     "--pkg", join(root, "pkg"), "--access-ttl", `${TTL_MS}ms`],
    { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 100 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
  base = `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

const stats = async () => (await fetch(base + "/stats")).json();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function openTab(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/index.html");
  await page.waitForFunction(() => window.tk !== undefined);
  page.errors = errors;
  return page;
}

/** 50 concurrent calls in every tab at once; returns the summed status counts. */
async function burstAll(pages) {
  const results = await Promise.all(pages.map((p) => p.evaluate(() => window.tk.burst(50))));
  const total = {};
  for (const r of results) for (const [k, v] of Object.entries(r)) total[k] = (total[k] || 0) + v;
  return total;
}

test("8 tabs share one session: one refresh per rotation, no reuse, no 401", async () => {
  await fetch(base + "/admin/reset", { method: "POST", body: "{}" });
  const context = await browser.newContext();
  const first = await openTab(context);
  await first.evaluate(() => window.tk.login());
  const pages = [first];
  for (let i = 1; i < 8; i++) {
    const p = await openTab(context);
    assert.equal(await p.evaluate(() => window.tk.ready()), true, `tab ${i} joins`);
    // It joined from the other tabs: it made no token-endpoint request itself.
    assert.equal(await p.evaluate(() => window.tk.lastOwnRefresh()), 0, `tab ${i} did not refresh`);
    pages.push(p);
  }
  let s = await stats();
  assert.equal(s.logins, 1);
  assert.equal(s.refresh_requests, s.refreshes, "no token-endpoint request beyond the rotations");

  // Several expiries, with bursts of 8 × 50 calls throughout.
  const started = Date.now();
  let calls = 0;
  while (Date.now() - started < 3.5 * TTL_MS) {
    const counts = await burstAll(pages);
    assert.deepEqual(Object.keys(counts), ["200"], JSON.stringify({ counts, stats: await stats() }));
    calls += counts["200"];
    await sleep(250);
  }
  s = await stats();
  assert.ok(s.refreshes >= 3, `refreshes: ${s.refreshes}`);
  assert.equal(s.refresh_requests, s.refreshes, "one token-endpoint request per rotation");
  assert.equal(s.reuse_detections, 0);
  // The app saw no 401 (every burst above was all 200). The server may have
  // answered a few: 400 requests queue for the browser's 6 connections per
  // host, and one that waits past its token's expiry is refreshed and replayed.
  console.log(`# ${calls} calls in 8 tabs over ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
              `${s.refreshes} refreshes (${s.refresh_requests} token-endpoint requests), ` +
              `${s.reuse_detections} reuse detections, 0 401s seen by the app (${s.api_401} replayed)`);

  // A tab opened now joins without touching the token endpoint.
  const late = await openTab(context);
  assert.equal(await late.evaluate(() => window.tk.ready()), true);
  assert.equal(await late.evaluate(() => window.tk.lastOwnRefresh()), 0);
  assert.equal(await late.evaluate(async () => (await window.tk.keeper.fetch("/api/me")).status), 200);
  pages.push(late);

  // Close the tab that refreshed last; the rest carry on through another expiry.
  const last = await Promise.all(pages.map((p) => p.evaluate(() => window.tk.lastOwnRefresh())));
  const idx = last.indexOf(Math.max(...last));
  assert.ok(last[idx] > 0, "some tab refreshed");
  await pages[idx].close();
  const rest = pages.filter((_, i) => i !== idx);
  const refreshesBefore = (await stats()).refreshes;
  const until = Date.now() + 1.5 * TTL_MS;
  while (Date.now() < until) {
    const counts = await burstAll(rest);
    assert.deepEqual(Object.keys(counts), ["200"], JSON.stringify({ counts, stats: await stats() }));
    await sleep(250);
  }
  s = await stats();
  assert.ok(s.refreshes > refreshesBefore, "refreshing went on without the closed tab");
  assert.equal(s.refresh_requests, s.refreshes);
  assert.equal(s.reuse_detections, 0);

  // Logout in one tab ends the session in every tab.
  await rest[0].evaluate(() => window.tk.keeper.logout());
  await sleep(100);
  const states = await Promise.all(rest.map((p) => p.evaluate(() => window.tk.keeper.isAuthenticated)));
  assert.deepEqual(states, rest.map(() => false));
  for (const p of rest) assert.deepEqual(p.errors, []);
  await context.close();
});

// Helpers of `make bench` (not a benchmark itself): the dev auth server on a
// free loopback port, headless Chromium, small statistics.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const bench = new URL(".", import.meta.url).pathname;
export const root = join(bench, "..");
export const out = join(bench, "out");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the dev auth server on a free loopback port, serving `www` at / and
 * pkg/ at /pkg/. Returns its base URL, stats(), admin() and stop().
 */
export async function startServer({ www, flags = [] }) {
  const dir = mkdtempSync(join(tmpdir(), "tk-bench-"));
  const portFile = join(dir, "port");
  const args = ["--port", "0", "--port-file", portFile, "--quiet", "--pkg", join(root, "pkg"), ...flags];
  if (www) args.push("--www", www);
  const target = process.env.CARGO_TARGET_DIR || join(root, "target");
  const proc = spawn(join(target, "debug/tokenkeeper-devserver"), args, { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 400 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) {
    proc.kill();
    throw new Error("the dev server did not start");
  }
  const url = `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`;
  rmSync(dir, { recursive: true, force: true });
  return {
    url,
    stats: async () => (await fetch(url + "/stats")).json(),
    admin: (path, body) =>
      fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) }),
    stop: () => proc.kill(),
  };
}

/** Headless Chromium with the flags this machine's closed network needs, and precise memory figures. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
           "--enable-precise-memory-info", "--disable-renderer-backgrounding",
           "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"],
  });
}

/**
 * Opens `url` in a new page of `context`, cross-origin isolated: the document's
 * answer gets COOP/COEP headers, which gives `performance.now()` its fine
 * resolution (5 µs instead of 100 µs). The route that adds them is removed
 * once the page has loaded: while any route is set, Playwright intercepts
 * every request (and turns the cache off). A page that measures its own
 * loading defines `window.go` and waits for it: it is called after that.
 */
export async function openIsolated(context, url, { go = false } = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Console errors too (CSP violations are), but not the browser's note on
  // every 401 the SDK replays.
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));
  const isolate = async (route) => {
    const response = await route.fetch();
    await route.fulfill({
      response,
      headers: { ...response.headers(), "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" },
    });
  };
  const target = new URL(url);
  const isDocument = (u) => u.origin === target.origin && u.pathname === target.pathname;
  await page.route(isDocument, isolate);
  await page.goto(url);
  await page.unroute(isDocument, isolate);
  if (go) {
    await page.waitForFunction(() => typeof window.go === "function");
    await page.evaluate(() => window.go());
  }
  await page.waitForFunction(() => window.benchReady === true, null, { timeout: 20_000 });
  page.errors = errors;
  return page;
}

// --- statistics -------------------------------------------------------------

export function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
export const median = (xs) => quantile(xs, 0.5);
export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** median, p95, mean, min and n of a list of numbers. */
export function summary(xs) {
  return { median: median(xs), p95: quantile(xs, 0.95), mean: mean(xs), min: Math.min(...xs), n: xs.length };
}

export const round = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

/** The commit measured: HEAD, with "+dirty" when the work tree has changes. */
export function commit() {
  try {
    const head = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root }).toString().trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: root }).toString().trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return "unknown";
  }
}

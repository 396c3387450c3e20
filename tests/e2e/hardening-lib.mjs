// Helpers of the hardening end-to-end tests (hardening-*.test.mjs; not a test
// file itself): the hardening page served by the real dev server, tabs that
// create their keeper, the server's admin endpoints, and a Chromium whose
// background tabs are really hidden and throttled.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { root, sleep, startServer, tempDir } from "./lib.mjs";

export const page = join(root, "tests/e2e/hardening-page");

/** The dev server serving the hardening page and the package; `config` is posted to /admin/config. */
export async function startHardeningServer(flags = [], config) {
  const server = await startServer({ www: page, pkg: join(root, "pkg"), flags: ["--refresh-ttl", "3h", ...flags] });
  // Admin requests are retried once on a closed connection: queueing a `drop`
  // or `lost_response` fault makes the server close its idle connections,
  // Node's pooled ones included.
  const retry = async (f) => {
    try {
      return await f();
    } catch {
      await sleep(20);
      return f();
    }
  };
  server.get = (path) => retry(async () => (await fetch(server.url + path)).json());
  server.stats = () => server.get("/stats");
  server.post = async (path, body) => {
    const res = await retry(() => server.admin(path, body));
    if (!res.ok) throw new Error(`${path} → ${res.status}: ${await res.text()}`);
  };
  server.reset = () => server.post("/admin/reset");
  server.config = (patch) => server.post("/admin/config", patch);
  server.fault = (fault) => server.post("/admin/faults", fault);
  server.requests = () => server.get("/admin/requests");
  if (config) await server.config(config);
  return server;
}

/**
 * A tab of the hardening page at `base` whose keeper is made with `options`
 * (in `page`, or in a new tab of `context`). `page.errors` collects uncaught
 * errors and console errors, except the failed requests a test provokes on
 * purpose (`expected`, a RegExp); `page.console` every console message.
 */
export async function openTab(context, base, options = {}, expected = /^$/, page = null) {
  page ??= await context.newPage();
  page.errors = [];
  page.console = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => {
    page.console.push(m.text());
    if (m.type() === "error" && !expected.test(m.text())) page.errors.push(m.text());
  });
  await page.goto(base + "/index.html");
  await page.waitForFunction(() => window.hk !== undefined);
  await page.evaluate((o) => window.hk.create(o), options);
  return page;
}

/** The provoked failures of the fault tests, as Chromium logs them. */
export const PROVOKED = /status of (401|429|500)|ERR_EMPTY_RESPONSE|ERR_CONNECTION|ERR_INTERNET_DISCONNECTED|Failed to fetch/;

/** Opens `n` tabs sharing one session: the first logs in, the others join it. */
export async function sessionTabs(context, base, n, options = {}, expected = PROVOKED) {
  const tabs = [];
  for (let i = 0; i < n; i++) {
    const tab = await openTab(context, base, options, expected);
    if (i === 0) await tab.evaluate(() => window.hk.login());
    else if (!(await tab.evaluate(() => window.hk.ready()))) throw new Error(`tab ${i} did not join`);
    tabs.push(tab);
  }
  return tabs;
}

export const evalAll = (tabs, f, arg) => Promise.all(tabs.map((t) => t.evaluate(f, arg)));

/**
 * Chromium as a person runs it: started here and driven over CDP with
 * Playwright's defaults off (`noDefaults`), so pages are plain tabs of one
 * window. A tab opened over another hides it (`visibilityState` "hidden"),
 * and hidden tabs get Chromium's real background timer throttling —
 * `launch()` (Playwright's own launch) keeps every page visible and
 * unthrottled. Returns {browser, context, close}.
 */
export async function launchRealTabs() {
  const proc = spawn(process.env.CHROMIUM || "/usr/bin/chromium",
    ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions",
     "--remote-debugging-port=0", `--user-data-dir=${tempDir("chromium")}`, "about:blank"],
    { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  let endpoint;
  for (let i = 0; i < 400 && !endpoint; i++) {
    endpoint = stderr.match(/DevTools listening on (ws:\/\/\S+)/)?.[1];
    if (!endpoint) await sleep(25);
  }
  if (!endpoint) {
    proc.kill();
    throw new Error(`chromium did not start:\n${stderr}`);
  }
  const browser = await chromium.connectOverCDP(endpoint, { noDefaults: true });
  return {
    browser,
    context: browser.contexts()[0],
    close: async () => {
      await browser.close().catch(() => {});
      proc.kill();
    },
  };
}

/** A tab of the hardening page in a new window of a `launchRealTabs()` browser (visible: alone in its window). */
export async function openWindow(real, base, options = {}, expected = /^$/) {
  const cdp = await real.browser.newBrowserCDPSession();
  const opened = real.context.waitForEvent("page");
  await cdp.send("Target.createTarget", { url: "about:blank", newWindow: true });
  const page = await opened;
  await cdp.detach();
  return openTab(real.context, base, options, expected, page);
}

/**
 * The time two 10 ms timer ticks take in `tab`, once Chromium throttles its
 * timers (a hidden tab: 1 s wake-ups, so ≥ 500 ms). Chromium may start
 * throttling a moment after the tab is hidden: measured up to 10 times.
 */
export async function throttledDelay(tab) {
  let delay = 0;
  for (let i = 0; i < 10 && delay < 500; i++) delay = await tab.evaluate(() => window.hk.timerDelay());
  return delay;
}

/** Polls `f` (async) until it returns a truthy value; throws with `what` after `timeout` ms. */
export async function waitFor(f, what, timeout = 15000, step = 50) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(step);
  }
}

/**
 * The app: every tab calls `path` through its keeper every `every` ms until
 * stop() (which resolves with every outcome: {tab, at, ok, value|error}).
 */
export function startApp(tabs, { path = "/api/data", every = 250 } = {}) {
  const outcomes = [];
  let running = true;
  const loops = tabs.map(async (tab, i) => {
    while (running) {
      let r;
      try {
        r = await tab.evaluate((p) => window.hk.call(p), path);
      } catch (e) {
        if (tab.isClosed()) return; // the test is over
        throw e;
      }
      outcomes.push({ tab: i, ...r });
      await sleep(every);
    }
  });
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

/** Counts outcomes by status (or error code). */
export function tally(outcomes) {
  const counts = {};
  for (const o of outcomes) {
    const key = o.ok ? String(o.value.status) : (o.error.code ?? o.error.name ?? JSON.stringify(o.error));
    counts[key] = (counts[key] || 0) + 1;
  }
  return counts;
}

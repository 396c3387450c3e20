// The app's pages (tests/e2e/oidc-page/) as the OpenID end-to-end tests
// drive them (oidc.test.mjs, dpop.test.mjs): browser contexts that know the
// issuer, tabs that have settled, logins that navigate away, and the
// counters every such test reads.
import assert from "node:assert/strict";
import { sleep } from "./lib.mjs";

/** How long a page is waited for. */
export const WAIT = { timeout: 10_000 };

/**
 * The helpers for the app at `base` and the provider `op` (scripts/oidc-provider.mjs),
 * in `browser`: made once both are running.
 */
export function appPages({ browser, base, op }) {
  /** A browser context whose pages know the issuer (and the keeper's extra `options`) before any script runs. */
  async function appContext(options) {
    const context = await browser.newContext();
    await context.addInitScript(`window.TK_ISSUER = ${JSON.stringify(op.issuer)}; window.TK_OPTIONS = ${JSON.stringify(options ?? null)};`);
    return context;
  }

  /** Waits until this page load of the app has done its work (window.tk.done). */
  async function settled(page) {
    await page.waitForFunction(() => window.tk?.done === true, null, WAIT);
    const error = await page.evaluate(() => window.tk.error);
    assert.equal(error, undefined, `the page failed: ${JSON.stringify(error)}`);
  }

  /** A new tab at `path`, loaded and settled; it records its page errors and main-frame URLs. */
  async function openTab(context, path = "/") {
    const page = await context.newPage();
    page.pageErrors = [];
    page.on("pageerror", (e) => page.pageErrors.push(String(e)));
    page.visited = [];
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) page.visited.push(frame.url());
    });
    await page.goto(base + path);
    await settled(page);
    return page;
  }

  /** Runs `fn` in the page without waiting for what it starts (it navigates away). */
  async function kick(page, fn, arg) {
    try {
      await page.evaluate(fn, arg);
    } catch (e) {
      if (!/Execution context was destroyed|navigat/i.test(e.message)) throw e;
    }
  }

  /** Waits for the page's URL to match, saying where it is stuck otherwise. */
  async function reach(page, predicate, what) {
    try {
      await page.waitForURL(predicate, { waitUntil: "commit", ...WAIT });
    } catch (e) {
      const loginError = await page.evaluate(() => window.tk?.loginError).catch(() => undefined);
      throw new Error(`${what}: still at ${page.url()} (tk.loginError: ${JSON.stringify(loginError)})`, { cause: e });
    }
  }

  const atLoginPage = (u) => u.origin === op.issuer && /^\/interaction\/[^/]+$/.test(u.pathname);
  const atApp = (u) => u.origin === base;
  const state = (page) => page.evaluate(() => window.tk.state());

  /** Network refreshes summed over the tabs; waits (up to 2 s) for them to match the provider's count. */
  async function refreshesAccountedFor(pages) {
    let own, atProvider;
    for (let i = 0; i < 40; i++) {
      own = (await Promise.all(pages.map((p) => p.evaluate(() => window.tk.ownRefreshes())))).reduce((a, b) => a + b, 0);
      atProvider = op.stats().token.refresh_token;
      if (own === atProvider) break;
      await sleep(50);
    }
    assert.equal(atProvider, own, "every refresh_token request at the provider is one tab's own refresh");
    return own;
  }

  return { appContext, settled, openTab, kick, reach, atLoginPage, atApp, state, refreshesAccountedFor };
}

/** Whether a URL carries none of a callback's parameters. */
export const clean = (href) => !/[?&](code|state|iss|error|error_description)=/.test(href);

/** n concurrent keeper.fetch(userinfo) calls in every tab at once: the summed counts per status. */
export async function burstAll(pages, n) {
  const results = await Promise.all(pages.map((p) => p.evaluate((n) => window.tk.burst(n), n)));
  const total = {};
  for (const r of results) for (const [k, v] of Object.entries(r)) total[k] = (total[k] || 0) + v;
  return total;
}

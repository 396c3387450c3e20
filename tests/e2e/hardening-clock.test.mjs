// Sleep, clock skew and throttling, in headless Chromium against the real dev
// server, with Playwright's clock control: the page's clock 1 h ahead of and
// 1 h behind the server's; a 2 h sleep with every timer frozen (the first
// request after waking is preceded by a refresh, and the app sees no 401);
// the late timers and a request at once on waking; a hidden tab, really
// throttled by Chromium, that keeps its session on its own. Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, sleep } from "./lib.mjs";
import { launchRealTabs, openTab, sessionTabs, startHardeningServer, throttledDelay } from "./hardening-lib.mjs";

const TTL_MS = 3000;
const HOUR = 3_600_000;
let server, browser;

before(async () => {
  // Refresh tokens outlive the 2 h sleep (the hardening server's --refresh-ttl is 3 h).
  server = await startHardeningServer(["--access-ttl", `${TTL_MS}ms`]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** A new browser context whose pages' clock is Playwright's, starting at `time`. */
async function clockedContext(time) {
  const context = await browser.newContext();
  await context.clock.install(time === undefined ? undefined : { time });
  return context;
}

for (const [name, offset] of [["1 h ahead of", HOUR], ["1 h behind", -HOUR]]) {
  test(`the browser clock ${name} the server: expiry in the page's clock, refreshed ahead, no 401`, { timeout: 90_000 }, async () => {
    await server.reset();
    const context = await clockedContext(Date.now() + offset);
    try {
      const [tab] = await sessionTabs(context, server.url, 1);
      const pageSkew = (await tab.evaluate(() => Date.now())) - Date.now();
      assert.ok(Math.abs(pageSkew - offset) < 60_000, `the page's clock is off by ${pageSkew} ms`);
      // Calls for two and a half lifetimes: each sees its token's expiry
      // as the server set it (token_exp, server clock), in the page's clock.
      const samples = [];
      const started = Date.now();
      while (Date.now() - started < 2.5 * TTL_MS) {
        samples.push(await tab.evaluate(() => window.hk.me()));
        await sleep(150);
      }
      const failed = samples.filter((s) => !s.ok || s.value.status !== 200);
      assert.deepEqual(failed, [], "every call answered 200");
      const steady = samples.filter((s) => s.before === s.after);
      assert.ok(steady.length >= 10, `calls that used the current token: ${steady.length}`);
      for (const s of steady) {
        const serverExpiry = s.value.body.token_exp * 1000 + offset; // in the page's clock
        assert.ok(Math.abs(s.expiresAt - serverExpiry) <= 2000,
          `expiresAt ${s.expiresAt} is the server's expiry ${serverExpiry} in the page's clock (off by ${s.expiresAt - serverExpiry} ms)`);
        const left = s.expiresAt - s.now;
        assert.ok(left > 0 && left <= TTL_MS + 1000, `a token in use has ${left} ms left`);
      }
      const stats = await server.stats();
      const seconds = (Date.now() - started) / 1000;
      assert.equal(stats.api_401, 0, "no request went out with a token the server considers expired");
      assert.equal(stats.refresh_requests, stats.refreshes, "no failed or extra refresh");
      // One refresh per two thirds of a lifetime (the lead is a third): no storm, none missed.
      assert.ok(stats.refreshes >= Math.floor(seconds * 1000 / TTL_MS), `refreshes: ${stats.refreshes} in ${seconds} s`);
      assert.ok(stats.refreshes <= Math.ceil(seconds * 1000 / (0.6 * TTL_MS)) + 1, `refreshes: ${stats.refreshes} in ${seconds} s`);
      assert.equal(await tab.evaluate(() => window.hk.count("refresh-error")), 0);
      assert.deepEqual(tab.errors, []);
    } finally {
      await context.close();
    }
  });
}

/** Logs in, then freezes the page's clock and timers and lets the access token expire on the server. */
async function loginThenSleep(context) {
  const [tab] = await sessionTabs(context, server.url, 1);
  const asleepAt = await tab.evaluate(() => Date.now());
  await context.clock.pauseAt(asleepAt + 100);
  const before = await server.stats();
  await sleep(TTL_MS + 700);
  const during = await server.stats();
  assert.equal(during.refresh_requests, before.refresh_requests, "timers frozen: no refresh while asleep");
  assert.ok(await tab.evaluate(() => window.hk.keeper.isAuthenticated));
  return { tab, asleepAt, before };
}

/** After waking: one refresh, which the request came after, and no 401; then life goes on. */
async function assertWokeCleanly(context, tab, before, woke, call) {
  assert.equal(call.ok && call.value.status, 200, JSON.stringify(call));
  const stats = await server.stats();
  assert.equal(stats.refreshes, before.refreshes + 1, "one refresh on waking");
  assert.equal(stats.refresh_requests, before.refresh_requests + 1);
  assert.equal(stats.api_401, 0, "the app's request never went out with the expired token");
  const log = (await server.requests()).filter((r) => r.time_ms >= woke);
  const refreshed = log.findIndex((r) => r.path === "/token/refresh");
  const called = log.findIndex((r) => r.path === "/api/me");
  assert.ok(refreshed >= 0 && called > refreshed, `the refresh came first: ${JSON.stringify(log.map((r) => r.path))}`);
  const state = await tab.evaluate(() => window.hk.state());
  assert.ok(state.expiresAt > state.now, "the new token's expiry is ahead of the page's clock");
  // Time flows again: the session goes on through another lifetime.
  await context.clock.resume();
  const started = Date.now();
  while (Date.now() - started < 1.5 * TTL_MS) {
    const r = await tab.evaluate(() => window.hk.call("/api/data"));
    assert.equal(r.ok && r.value.status, 200, JSON.stringify(r));
    await sleep(200);
  }
  assert.equal((await server.stats()).api_401, 0);
  assert.equal(await tab.evaluate(() => window.hk.count("refresh-error")), 0);
  assert.deepEqual(tab.errors, []);
}

test("a 2 h sleep with timers frozen: the first request after waking is preceded by a refresh, no 401", { timeout: 90_000 }, async () => {
  await server.reset();
  const context = await clockedContext();
  try {
    const { tab, asleepAt, before } = await loginThenSleep(context);
    // Waking: the wall clock has jumped 2 h, and no timer has run yet.
    await context.clock.setSystemTime(asleepAt + 2 * HOUR);
    const woke = Date.now();
    const call = await tab.evaluate(() => window.hk.call("/api/me"));
    await assertWokeCleanly(context, tab, before, woke, call);
  } finally {
    await context.close();
  }
});

test("a 2 h sleep, then the overdue timer and a request at once on waking: one refresh, no 401", { timeout: 90_000 }, async () => {
  await server.reset();
  const context = await clockedContext();
  try {
    const { tab, before } = await loginThenSleep(context);
    // The lid opens 2 h later: the overdue refresh timer fires (once), and
    // the app makes a request in the same moment. Time flows again on
    // waking: the timer, a second late, makes the keeper ask the other tabs
    // for a moment before refreshing (it cannot tell a sleep from a freeze
    // it missed a rotation in), and that moment is a timer too.
    const woke = Date.now();
    await context.clock.fastForward("02:00:00");
    await context.clock.resume();
    const call = await tab.evaluate(() => window.hk.call("/api/me"));
    await assertWokeCleanly(context, tab, before, woke, call);
  } finally {
    await context.close();
  }
});

test("a hidden tab, throttled by Chromium, stays authenticated on its own", { timeout: 90_000 }, async () => {
  await server.reset();
  await server.config({ access_ttl_ms: 2000 });
  const real = await launchRealTabs();
  try {
    // The session's tab, then another page opened over it: it is hidden.
    const tab = await openTab(real.context, server.url, { channel: "hidden" }, /^$/, real.context.pages()[0]);
    await tab.evaluate(() => window.hk.login());
    const front = await real.context.newPage();
    await front.goto(server.url + "/favicon.svg");
    assert.equal(await tab.evaluate(() => document.visibilityState), "hidden");
    const delay = await throttledDelay(tab);
    assert.ok(delay >= 500, `its timers are throttled: two 10 ms ticks took ${delay} ms`);

    // The app in the hidden tab keeps calling, over two and a half lifetimes…
    const started = Date.now();
    let calls = 0;
    while (Date.now() - started < 5000) {
      const r = await tab.evaluate(() => window.hk.call("/api/data"));
      assert.equal(r.ok && r.value.status, 200, JSON.stringify(r));
      calls++;
      await sleep(400);
    }
    // …then is idle for two more. Its own timer may or may not have run
    // meanwhile (Chromium delays a hidden tab's timers, and starves a
    // background renderer on a busy machine): the next call must not care.
    await sleep(4000);
    const state = await tab.evaluate(() => window.hk.state());
    assert.equal(state.visibility, "hidden");
    assert.equal(state.isAuthenticated, true);
    const r = await tab.evaluate(() => window.hk.call("/api/me"));
    assert.equal(r.ok && r.value.status, 200, JSON.stringify(r));
    const stats = await server.stats();
    assert.equal(stats.reuse_detections, 0);
    assert.ok(stats.refreshes >= 3, `it refreshed by itself: ${stats.refreshes} refreshes`);
    assert.deepEqual(await tab.evaluate(() => window.hk.events.filter((e) => e.name === "logout" || e.name === "refresh-error")), []);
    assert.deepEqual(tab.errors, []);
    console.log(`hidden tab: ${calls + 1} calls over ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
                `${stats.refreshes} refreshes, ${stats.api_401} 401s replayed, timers throttled (two 10 ms ticks: ${Math.round(delay)} ms)`);
  } finally {
    await real.close();
    await server.config({ access_ttl_ms: TTL_MS });
  }
});

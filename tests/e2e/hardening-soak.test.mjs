// The soak: four tabs of one session in a real Chromium (three visible, one
// hidden behind another tab, its timers throttled), 5 s access tokens, and
// SOAK_SECONDS of mixed calls (GET, POST, PUT, PATCH, DELETE, getAccessToken,
// bursts) in every tab against the real dev server → no 401 and no error seen
// by the app, no reuse detection, no token-endpoint request beyond the
// rotations, and about one rotation per two thirds of a token's life (the
// refresh lead is a third of it). Prints the figures. `make test` runs 120 s
// of it; `make soak` runs 600 s.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { sleep } from "./lib.mjs";
import { launchRealTabs, openTab, openWindow, startHardeningServer, throttledDelay } from "./hardening-lib.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS || 120);
const TTL_MS = 5000;
let server, real;

after(async () => {
  await real?.close();
  server?.stop();
});

/** A small deterministic generator, so every run makes the same sequence of calls. */
function random(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test(`soak: 4 tabs (one hidden), ${TTL_MS / 1000} s tokens, ${SECONDS} s of mixed calls: no 401, no reuse, one refresh per rotation`,
  { timeout: (SECONDS + 180) * 1000 }, async () => {
    server = await startHardeningServer(["--access-ttl", `${TTL_MS}ms`]);
    real = await launchRealTabs();
    const options = { channel: "soak" };
    // Window 1: the tab that logs in, then another tab over it (so it is hidden).
    const hidden = await openTab(real.context, server.url, options, /^$/, real.context.pages()[0]);
    await hidden.evaluate(() => window.hk.login());
    const tabs = [await openTab(real.context, server.url, options)];
    // Windows 2 and 3: one visible tab each.
    tabs.push(await openWindow(real, server.url, options), await openWindow(real, server.url, options));
    for (const tab of tabs) assert.equal(await tab.evaluate(() => window.hk.ready()), true, "joined the session");
    tabs.push(hidden);
    const visibility = await Promise.all(tabs.map((t) => t.evaluate(() => document.visibilityState)));
    assert.deepEqual(visibility, ["visible", "visible", "visible", "hidden"]);
    const throttled = await throttledDelay(hidden);
    assert.ok(throttled >= 500, `the hidden tab's timers are throttled: two 10 ms ticks took ${throttled} ms`);

    const start = await server.stats();
    const started = Date.now();
    const deadline = started + SECONDS * 1000;
    const perTab = tabs.map(() => ({}));
    const failures = [];
    await Promise.all(tabs.map(async (tab, i) => {
      const next = random(7919 * (i + 1));
      const isHidden = tab === hidden;
      while (Date.now() < deadline) {
        const n = next() < 0.08 ? 20 : 1 + Math.floor(next() * 6); // now and then a burst
        const counts = await tab.evaluate((k) => window.hk.mixed(k), n);
        for (const [k, v] of Object.entries(counts)) {
          perTab[i][k] = (perTab[i][k] || 0) + v;
          if (k !== "200" && k !== "token") failures.push({ tab: i, at: Date.now() - started, outcome: k, count: v });
        }
        await sleep((isHidden ? 1000 : 200) + next() * (isHidden ? 1500 : 600));
      }
    }));
    const seconds = (Date.now() - started) / 1000;
    const stats = await server.stats();
    const refreshes = stats.refreshes - start.refreshes;
    const requests = stats.refresh_requests - start.refresh_requests;
    const calls = perTab.reduce((sum, c) => sum + Object.values(c).reduce((a, b) => a + b, 0), 0);
    const seen401 = perTab.reduce((sum, c) => sum + (c["401"] || 0), 0);
    const states = await Promise.all(tabs.map((t) => t.evaluate(() => window.hk.state())));
    const events = await Promise.all(tabs.map((t) => t.evaluate(() =>
      window.hk.events.filter((e) => ["refresh-error", "expired", "logout"].includes(e.name)))));
    console.log(`soak: ${seconds.toFixed(0)} s, 4 tabs (tab 4 hidden, timers throttled: two 10 ms ticks took ${Math.round(throttled)} ms), ` +
      `${TTL_MS / 1000} s access tokens`);
    console.log(`soak: ${calls} app calls (per tab: ${perTab.map((c) => JSON.stringify(c)).join(" ")})`);
    console.log(`soak: ${seen401} 401s seen by the app, ${failures.length} failed calls, ${stats.reuse_detections} reuse detections`);
    console.log(`soak: ${refreshes} refreshes (${requests} token-endpoint requests); duration / lifetime = ` +
      `${(seconds * 1000 / TTL_MS).toFixed(1)}, duration / (2/3 lifetime) = ${(seconds * 1000 / (TTL_MS * 2 / 3)).toFixed(1)}; ` +
      `${stats.api_401 - start.api_401} 401s answered by the server (replayed after a refresh)`);

    assert.equal(seen401, 0, "no 401 seen by the app");
    assert.deepEqual(failures, [], "every call of the app succeeded");
    assert.equal(stats.reuse_detections, 0);
    assert.equal(requests, refreshes, "no token-endpoint request beyond the rotations");
    assert.ok(refreshes >= Math.floor(seconds * 1000 / TTL_MS), `at least one refresh per lifetime: ${refreshes}`);
    assert.ok(refreshes <= Math.ceil(seconds * 1000 / (0.6 * TTL_MS)) + 2, `no more than one per rotation: ${refreshes}`);
    assert.deepEqual(events, tabs.map(() => []), "no refresh error, expiry or logout in any tab");
    assert.ok(states.every((s) => s.isAuthenticated), JSON.stringify(states));
    assert.equal(states[3].visibility, "hidden", "the hidden tab stayed hidden");
    for (const [i, tab] of tabs.entries()) assert.deepEqual(tab.errors, [], `tab ${i}`);
  });

// The network fault matrix, in headless Chromium against the real dev server's
// fault injection (/admin/faults), each case in one tab and in three tabs that
// share the session: the token endpoint answers 500 three times; 429 with
// Retry-After; the connection drops; the server rotates the token and the
// response is lost (with a reuse grace window: silent recovery; without: the
// session ends cleanly in every tab, one `logout` event each); the network
// goes offline and comes back. The refreshes are the real ones (the keeper's
// timer, with tokens of a few seconds: refreshed after two thirds of their
// life), while the app calls the API in every tab every 250 ms.
// Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, sleep } from "./lib.mjs";
import { evalAll, sessionTabs, startApp, startHardeningServer, tally, waitFor } from "./hardening-lib.mjs";

/** Access-token lifetime (the keeper refreshes after two thirds of it). */
const TTL_MS = 3000;
let server, browser;

before(async () => {
  server = await startHardeningServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

const label = (n) => (n === 1 ? "one tab" : `${n} tabs`);

/** A fresh session in `n` tabs of a new browser context, with `config` on the server. */
async function withTabs(n, config, body) {
  await server.reset();
  await server.config({ access_ttl_ms: TTL_MS, reuse_grace_ms: 0, ...config });
  const context = await browser.newContext();
  try {
    const tabs = await sessionTabs(context, server.url, n);
    // The login's generation (its moment, in ms): what a refresh moves past.
    tabs.login = (await states(tabs))[0].generation;
    await body(tabs, context);
    for (const [i, tab] of tabs.entries()) assert.deepEqual(tab.errors, [], `tab ${i}: uncaught or console errors`);
  } finally {
    await context.close();
  }
}

const states = (tabs) => evalAll(tabs, () => window.hk.state());
const events = async (tabs, name) => (await evalAll(tabs, (n) => window.hk.events.filter((e) => e.name === n), name));

/** Every tab holds the same session, newer than the login's. */
async function allRefreshed(tabs) {
  const s = await states(tabs);
  return s.every((x) => x.isAuthenticated && x.generation > tabs.login && x.generation === s[0].generation);
}

/** The calls of the app all answered 200: no 401, no rejection. */
function assertAll200(outcomes, stats) {
  assert.ok(outcomes.length > 0, "the app made calls");
  const counts = tally(outcomes);
  assert.deepEqual(counts, { 200: outcomes.length },
    `every call of the app is answered 200: ${JSON.stringify(counts)} ` +
    `(first failure: ${JSON.stringify(outcomes.find((o) => !o.ok || o.value.status !== 200))}; stats ${JSON.stringify(stats)})`);
}

/** The session went on: no logout anywhere, every tab authenticated with the same tokens. */
async function assertSessionKept(tabs) {
  assert.deepEqual((await events(tabs, "logout")).map((l) => l.length), tabs.map(() => 0), "no logout event");
  assert.ok(await allRefreshed(tabs), JSON.stringify(await states(tabs)));
}

/** The token-endpoint requests the server saw, oldest first (arrival times in ms). */
const tokenRequests = async () => (await server.requests()).filter((r) => r.path === "/token/refresh");

for (const n of [1, 3]) {
  test(`refresh answers 500 three times, ${label(n)}: retried with backoff, the session goes on, no 401`, { timeout: 90_000 }, async () => {
    await withTabs(n, { access_ttl_ms: 5000 }, async (tabs) => {
      const app = startApp(tabs);
      await server.fault({ kind: "status500", count: 3 });
      await waitFor(() => allRefreshed(tabs), "the refresh after three 500s", 25000);
      await sleep(300);
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.faults_applied, 3);
      assert.equal(stats.refresh_failures, 3);
      assert.equal(stats.reuse_detections, 0);
      assert.equal(stats.api_401, 0, "no request went out with an expired token");
      const errors = (await events(tabs, "refresh-error")).flat().map((e) => e.detail);
      assert.equal(errors.length, 3, JSON.stringify(errors));
      for (const e of errors) {
        assert.equal(e.code, "refresh_unavailable");
        assert.equal(e.status, 500);
        assert.equal(e.retrying, true);
        assert.equal(e.fatal, false);
        assert.ok(e.retryInMs > 0);
      }
      await assertSessionKept(tabs);
      // The 5 s token (refreshed after about 3.3 s) expires while the retries
      // wait (the backoff steps are 0.5–1, 1–2 and 2–4 s): the calls made
      // meanwhile must wait for the retry, not fail. (A whole number of
      // seconds, as real servers issue: a 4.5 s token is announced as
      // `expires_in: 5` and an `exp` rounded up, half a second more than the
      // server enforces, which eats the keeper's last-second margin.)
      assertAll200(outcomes, stats);
    });
  });

  test(`429 with Retry-After, ${label(n)}: no tab asks again before Retry-After, then the session goes on`, { timeout: 90_000 }, async () => {
    await withTabs(n, { access_ttl_ms: 5000 }, async (tabs) => {
      const app = startApp(tabs);
      await server.fault({ kind: "status429", retry_after: 2 });
      await waitFor(() => allRefreshed(tabs), "the refresh after the 429", 15000);
      await sleep(300);
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.faults_applied, 1);
      const [refused, next] = await tokenRequests();
      assert.ok(next, "a refresh after the 429");
      assert.ok(next.time_ms - refused.time_ms >= 2000,
        `the next token-endpoint request, from any tab, waits for Retry-After (2 s): it came after ${next.time_ms - refused.time_ms} ms`);
      const errors = (await events(tabs, "refresh-error")).flat().map((e) => e.detail);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0].status, 429);
      assert.equal(errors[0].code, "refresh_unavailable");
      assert.ok(errors[0].retryInMs >= 2000, `retryInMs honours Retry-After: ${errors[0].retryInMs}`);
      assert.equal(stats.reuse_detections, 0);
      assert.equal(stats.api_401, 0);
      await assertSessionKept(tabs);
      assertAll200(outcomes, stats);
    });
  });

  test(`the connection drops, ${label(n)}: a network failure is retried, the session goes on`, { timeout: 90_000 }, async () => {
    await withTabs(n, {}, async (tabs) => {
      const app = startApp(tabs);
      await server.fault({ kind: "drop" });
      await waitFor(() => allRefreshed(tabs), "the refresh after the dropped connection", 15000);
      await sleep(300);
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.faults_applied, 1);
      const errors = (await events(tabs, "refresh-error")).flat().map((e) => e.detail);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0].status, 0, "no answer");
      assert.equal(errors[0].retrying, true);
      assert.equal(stats.reuse_detections, 0);
      assert.equal(stats.api_401, 0);
      await assertSessionKept(tabs);
      assertAll200(outcomes, stats);
    });
  });

  test(`lost refresh response with a reuse grace window, ${label(n)}: recovered silently`, { timeout: 90_000 }, async () => {
    await withTabs(n, { reuse_grace_ms: 3000 }, async (tabs) => {
      const app = startApp(tabs);
      await server.fault({ kind: "lost_response" });
      await waitFor(async () => (await server.stats()).grace_reuses >= 1 && (await allRefreshed(tabs)),
        "the retry within the grace window", 15000);
      await sleep(300);
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.faults_applied, 1);
      assert.equal(stats.grace_reuses, 1, "the retry presented the rotated token within the grace window");
      assert.equal(stats.reuse_detections, 0);
      assert.equal(stats.api_401, 0);
      await assertSessionKept(tabs);
      assertAll200(outcomes, stats);
    });
  });

  test(`lost refresh response without a grace window, ${label(n)}: the session ends cleanly, one logout event per tab`, { timeout: 90_000 }, async () => {
    await withTabs(n, { reuse_grace_ms: 0 }, async (tabs) => {
      const app = startApp(tabs);
      await server.fault({ kind: "lost_response" });
      await waitFor(async () => (await states(tabs)).every((s) => !s.isAuthenticated), "the end of the session", 15000);
      const ended = Date.now();
      await sleep(1000); // anything that would still happen: more logouts, more refreshes
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.reuse_detections, 1, "the retry with the rotated token was detected as reuse");
      const logouts = await events(tabs, "logout");
      assert.deepEqual(logouts.map((l) => l.length), tabs.map(() => 1), "exactly one logout event in every tab");
      const reasons = logouts.map((l) => l[0].detail.reason).sort();
      assert.deepEqual(reasons, ["refresh-failed", ...Array(n - 1).fill("remote")]);
      const fatal = (await events(tabs, "refresh-error")).flat().map((e) => e.detail).filter((e) => e.fatal);
      assert.equal(fatal.length, 1, JSON.stringify(fatal));
      assert.equal(fatal[0].code, "session_ended");
      assert.equal(fatal[0].status, 401);
      // Ended for good: no token-endpoint request after the end, and the
      // app's calls go out without a token.
      const log = await server.requests();
      assert.deepEqual(log.filter((r) => r.path === "/token/refresh" && r.time_ms > ended), []);
      const late = log.filter((r) => r.path === "/api/data" && r.time_ms > ended + 100);
      assert.ok(late.length > 0, "the app kept calling");
      assert.ok(late.every((r) => !r.authorization && !r.x_auth_token), "no token after the end");
      const unexpected = outcomes.filter((o) =>
        !(o.ok && [200, 401].includes(o.value.status)) && !["session_ended", "not_authenticated"].includes(o.error?.code));
      assert.deepEqual(unexpected, []);
      // While the session lasted the app saw no 401: every 401 came after the end.
      const stale401 = outcomes.filter((o) => o.ok && o.value.status === 401 && o.at < ended - 1000);
      assert.deepEqual(stale401, []);
    });
  });

  test(`offline, then online again, ${label(n)}: the backed-off refresh is retried at once`, { timeout: 90_000 }, async () => {
    await withTabs(n, {}, async (tabs, context) => {
      await context.setOffline(true);
      // The refresh fails (the tabs share the backoff); wait for a moment when
      // no tab plans to retry within the next 600 ms, so that only `online`
      // can explain a refresh.
      let planned, last;
      await waitFor(async () => {
        const s = (last = await evalAll(tabs, () => ({ ...window.hk.state(), failed: window.hk.count("refresh-error") })));
        planned = Math.min(...s.map((x) => x.refreshAt));
        return s.some((x) => x.failed >= 1) && s.every((x) => x.refreshAt - x.now >= 600);
      }, "failed refreshes, backing off", 20000, 20).catch((e) => {
        throw new Error(`${e.message}: ${JSON.stringify(last)}`);
      });
      const online = Date.now();
      await context.setOffline(false);
      await waitFor(() => allRefreshed(tabs), "the refresh after going online", 5000, 10);
      const refreshes = (await events(tabs, "refresh")).flat().filter((e) => e.detail.source !== "tab");
      assert.equal(refreshes.length, 1, JSON.stringify(refreshes));
      const at = refreshes[0].at;
      assert.ok(at < planned, `refreshed on \`online\` (${at - online} ms after), before the planned retry (${planned - online} ms after)`);
      assert.ok(at - online < 500, `refreshed ${at - online} ms after going online`);
      const errors = (await events(tabs, "refresh-error")).flat().map((e) => e.detail);
      assert.ok(errors.every((e) => e.status === 0 && e.retrying && !e.fatal), JSON.stringify(errors));
      const app = startApp(tabs);
      await sleep(1000);
      const outcomes = await app.stop();
      const stats = await server.stats();
      assert.equal(stats.refreshes, 1);
      assert.equal(stats.refresh_requests, 1, "offline attempts never reached the server");
      assert.equal(stats.api_401, 0);
      await assertSessionKept(tabs);
      assertAll200(outcomes, stats);
    });
  });
}

// The live demo (www/), driven as a person would in headless Chromium against
// the dev auth server that serves it: log in, watch the countdown and the
// drawn timeline, call the API, burst, break the token server through the
// buttons (500, lost response, forgotten sessions), open a second tab that
// joins the session and logs both out. Run by `make test` (after `make build`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort, launch, root, shots, sleep, startServer } from "./lib.mjs";
import { startProvider } from "../../scripts/oidc-provider.mjs";

let server, browser;

before(async () => {
  server = await startServer({
    www: join(root, "www"),
    pkg: join(root, "pkg"),
    flags: ["--access-ttl", "3s", "--reuse-grace-ms", "2000"],
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** A tab of the demo; collects uncaught errors, and console errors other than the failures the test provokes. */
function watch(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    const provoked = /status of (401|500)|ERR_EMPTY_RESPONSE/.test(m.text());
    if (m.type() === "error" && !provoked) errors.push(m.text());
  });
  return errors;
}

const count = (page, selector) => page.$$eval(selector, (els) => els.length);
/** Waits until `selector` matches at least `n` elements (the timeline redraws 10 times a second). */
const atLeast = (page, selector, n, timeout = 5000) =>
  page.waitForFunction(([s, n]) => document.querySelectorAll(s).length >= n, [selector, n], { timeout });
const text = (page, selector) => page.textContent(selector);

test("the demo: session state, countdowns, drawn timeline, faults, a second tab", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const errors = watch(page);
  await page.goto(server.url + "/");
  await page.waitForSelector("#state.off");
  assert.equal(await page.isDisabled("#call-api"), true);
  // The token lifetime the server hands out, read from /admin/config.
  assert.equal(await page.inputValue("#ttl"), "3000");

  // Log in: the state, a live countdown, the token drawn on the timeline.
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#state.on");
  assert.equal(await page.isVisible("#login-panel"), false);
  const first = Number.parseFloat(await text(page, "#expires"));
  await sleep(400);
  const later = Number.parseFloat(await text(page, "#expires"));
  assert.ok(first > 0 && first < 3.5 && later < first, `a countdown to expiry: ${first} s, then ${later} s`);
  assert.match(await text(page, "#next-refresh"), /^\d+\.\d s$/);
  await page.waitForSelector("#timeline .life.current");
  await page.waitForSelector("#timeline .ev.login");

  // Call the API: the answer, and the request drawn in the API lane.
  await page.click("#call-api");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("GET /api/me → 200"));
  assert.match(await text(page, "#result"), /"sub": ?"user1"/);
  await page.waitForSelector("#timeline .req.api.ok");

  // A 3 s token is refreshed silently within seconds: a refresh mark, a second token, a token-endpoint request.
  await page.waitForSelector("#timeline .ev.refresh", { timeout: 8000 });
  await atLeast(page, "#timeline .life", 2);
  await atLeast(page, "#timeline .req.auth.ok", 2); // login and refresh, in the token-server lane

  await page.click("#burst");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("50 calls"));
  assert.match(await text(page, "#result"), /\{"200":50\}/);
  await atLeast(page, "#timeline .req.api.ok", 51);

  // The next refresh fails with 500: drawn as a failed request and a refresh error; the session survives.
  await page.click("button.fault[data-kind=status500]");
  await page.waitForFunction(() => document.querySelector("#fault-note").textContent.includes("500"));
  await page.click("#refresh-now");
  await page.waitForSelector("#timeline .ev.refresh-error");
  await page.waitForSelector("#timeline .req.auth.fail");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("refreshed"), null, { timeout: 8000 });
  assert.equal(await page.isVisible("#state.on"), true);

  // A lost response: the server rotates, the answer never arrives; the retry
  // comes within the server's 2 s reuse grace window and the session goes on.
  const failedBefore = await count(page, "#timeline .req.auth.fail");
  await page.click("button.fault[data-kind=lost_response]");
  await page.waitForFunction(() => document.querySelector("#fault-note").textContent.includes("never arrives"));
  await page.click("#refresh-now");
  await atLeast(page, "#timeline .req.auth.fail", failedBefore + 1);
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("refreshed"), null, { timeout: 8000 });
  assert.equal(await page.isVisible("#state.on"), true);
  let stats = await server.stats();
  assert.equal(stats.reuse_detections, 0);
  assert.ok(stats.grace_reuses >= 1, "the retry after the lost response used the grace window");

  // Open another tab: it joins the session without logging in, and the first tab draws the tab message.
  const [second] = await Promise.all([context.waitForEvent("page"), page.click("#open-tab")]);
  const secondErrors = watch(second);
  await second.waitForSelector("#state.on", { timeout: 5000 });
  assert.equal((await server.stats()).logins, 1, "the new tab did not log in");
  await page.waitForSelector("#timeline .ev.sync");
  // Refreshes in either tab now reach both: the second tab draws messages too.
  await second.waitForSelector("#timeline .ev.sync", { timeout: 8000 });

  await page.screenshot({ path: join(shots, "demo.png") });
  assert.ok((await count(page, "#timeline .mark")) > 60, "the timeline is drawn with shapes, one per request and event");

  // Logging out in the second tab logs out the first.
  await second.click("#logout");
  await second.waitForSelector("#state.off");
  await page.waitForSelector("#state.off");
  await page.waitForFunction(() => document.querySelector("#events").textContent.includes("logged out in another tab"));

  // The server forgets every session: the next call gets a 401, the refresh is refused, the session ends.
  await second.close();
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#state.on");
  await page.click("#forget");
  await page.waitForFunction(() => document.querySelector("#fault-note").textContent.includes("forgot"));
  await page.click("#call-api");
  await page.waitForSelector("#state.off");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("GET /api/me → 401"));
  await page.waitForSelector("#timeline .req.api.s401");
  await page.waitForSelector("#timeline .ev.expired");
  stats = await server.stats(); // counted since the reset
  assert.equal(stats.api_401, 1);
  assert.equal(stats.refresh_requests, 1, "one refresh attempt for the 401, then the session ended");

  assert.deepEqual(errors, []);
  assert.deepEqual(secondErrors, []);
  await context.close();
});

test("the demo's identity-provider card: log in at the provider, a second tab joins, log out there", async () => {
  // As `make demo` runs them: the provider on a port the dev server names.
  const port = await freePort();
  const demo = await startServer({
    www: join(root, "www"),
    pkg: join(root, "pkg"),
    flags: ["--issuer", `http://127.0.0.1:${port}`],
  });
  const op = await startProvider({ port, appOrigin: demo.url, accessTtl: 10 });
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  try {
    const page = await context.newPage();
    // The demo's errors; the provider's own pages are not the demo.
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error" && !page.url().startsWith(op.issuer)) errors.push(m.text());
    });
    await page.goto(demo.url + "/");
    await page.waitForSelector("#idp-state.off");
    await page.click("#idp-login");
    await page.waitForURL((u) => u.origin === op.issuer, { timeout: 10000 });
    await page.fill('input[name="login"]', "user1");
    await page.fill('input[name="password"]', "password1");
    await page.click('button[type="submit"]');
    await page.waitForSelector("#idp-state.on", { timeout: 10000 });
    assert.equal(page.url(), demo.url + "/", "back on the demo, the callback's parameters gone");
    assert.match(await text(page, "#idp-who"), /as User One \(sub user1\)/);
    await page.click("#idp-call");
    await page.waitForFunction(() => document.querySelector("#idp-result").textContent.includes("/me → 200"));

    // A second tab joins the provider's session with no request to it.
    const before = op.stats().token;
    const second = await context.newPage();
    const secondErrors = watch(second);
    await second.goto(demo.url + "/");
    await second.waitForSelector("#idp-state.on");
    assert.match(await text(second, "#idp-result"), /joined the provider's session/);
    assert.deepEqual(op.stats().token, before);
    await page.screenshot({ path: join(shots, "demo-idp.png") });

    // Logging out there ends both tabs and the provider's session.
    await page.click("#idp-logout");
    await page.waitForURL((u) => u.origin === op.issuer, { timeout: 10000 });
    const yes = page.locator('button[name="logout"][value="yes"]');
    if (await yes.count()) await yes.click();
    await page.waitForURL((u) => u.origin === demo.url, { timeout: 10000 });
    await page.waitForSelector("#idp-state.off");
    await second.waitForSelector("#idp-state.off");
    assert.ok(op.stats().revocations >= 1);
    assert.deepEqual(errors, []);
    assert.deepEqual(secondErrors, []);
  } finally {
    await context.close();
    await op.stop();
    demo.stop();
  }
});

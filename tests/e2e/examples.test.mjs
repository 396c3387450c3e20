// The React and Vue examples (www/react, www/vue) in headless Chromium against
// the real dev server, as a person uses them: log in, call the API, see the
// answer rendered, watch a silent refresh re-render the state, log out. Once
// as built by `vite build` (served by the dev server itself, under the page's
// strict CSP), once under `vite` dev (Vite's own server, API proxied). The
// package is the packed tarball installed by `make examples`, not a symlink.
// A screenshot of each logged-in page is checked pixel by pixel.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { lstatSync } from "node:fs";
import { join } from "node:path";
import { colorShare, freePort, launch, root, shots, sleep, startServer, startVite, watchErrors } from "./lib.mjs";
import { startProvider } from "../../scripts/oidc-provider.mjs";

const GREEN = [0x13, 0x7a, 0x3a]; // .badge.logged-in
const RED = [0xa4, 0x26, 0x2c]; // .badge.logged-out
const RESULT = [0xe8, 0xf4, 0xec]; // #result, the API's answer

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Drives one example at `url` through a whole session; `name` labels the screenshots. */
async function session(url, name, server) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
  const errors = watchErrors(page);
  try {
    await page.goto(url);
    await page.waitForSelector("#status.logged-out");
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#status.logged-in");
    assert.equal(await page.textContent("#status"), "logged in");

    await page.click("#call-api");
    await page.waitForSelector("#result");
    assert.match(await page.textContent("#result"), /you are user1\b/);

    // A 3 s token is refreshed silently after ~2 s: the hook re-renders it.
    // (A session's first generation is its login's moment, in ms.)
    const login = Number(await page.textContent("#generation"));
    assert.ok(Number.isSafeInteger(login) && login > 0, `the login's generation: ${login}`);
    await page.waitForFunction((g) => Number(document.querySelector("#generation")?.textContent) > g, login, { timeout: 8000 });
    const countdown = Number.parseFloat(await page.textContent("#expires"));
    assert.ok(countdown > 0 && countdown < 4, `a live countdown below the 3 s lifetime (+ clock rounding): ${countdown}`);

    const loggedIn = await page.screenshot({ path: join(shots, `${name}.png`) });
    const green = await colorShare(browser, loggedIn, GREEN);
    assert.ok(green > 0.001, `the logged-in badge is visible in ${name}.png (${green})`);
    assert.ok((await colorShare(browser, loggedIn, RED)) < 0.0001, `no logged-out badge in ${name}.png`);
    assert.ok((await colorShare(browser, loggedIn, RESULT)) > 0.005, `the API's answer is visible in ${name}.png`);

    await page.click("#logout");
    await page.waitForSelector("#status.logged-out");
    const loggedOut = await page.screenshot({ path: join(shots, `${name}-logged-out.png`) });
    assert.ok((await colorShare(browser, loggedOut, RED)) > 0.001, `the logged-out badge is visible`);
    assert.ok((await colorShare(browser, loggedOut, GREEN)) < 0.0001, `no logged-in badge after logout`);
    assert.equal(await page.$("#result"), null);

    const stats = await server.stats();
    assert.equal(stats.logins, 1);
    assert.ok(stats.refreshes >= 1, "a silent refresh happened");
    assert.equal(stats.api_ok, 1);
    assert.equal(stats.api_401, 0);
    assert.equal(stats.logouts, 1);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
}

// TanStack Query in the React example: a query whose function calls the
// session's fetch. A silent refresh and a forced 401 (a token the server
// refuses after 1 s, with no expiry the client could see) never reach it:
// no error state, and its function runs once per fetch, no retry.
test("react example: a TanStack query survives a silent refresh and a forced 401", async () => {
  const server = await startServer({ www: join(root, "www/react/dist"), flags: ["--access-ttl", "3s"] });
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const errors = watchErrors(page);
  const text = (sel) => page.textContent(sel);
  const runs = async () => Number(await text("#query-runs"));
  const refetched = async (before) => {
    await page.click("#refetch");
    await page.waitForFunction((n) => Number(document.querySelector("#query-runs")?.textContent) > n, before);
    await page.waitForSelector("#refetch:not([disabled])");
  };
  try {
    await page.goto(server.url + "/");
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#status.logged-in");
    await page.click("#start-query");
    await page.waitForFunction(() => document.querySelector("#query-status")?.textContent === "success");
    assert.equal(await text("#query-sub"), "user1");
    const first = await text("#query-jti");

    // A silent refresh (a 3 s token, refreshed after ~2 s), then a refetch:
    // the new token, no 401.
    const login = Number(await text("#generation"));
    await page.waitForFunction((g) => Number(document.querySelector("#generation")?.textContent) > g, login, { timeout: 8000 });
    await refetched(await runs());
    assert.equal(await text("#query-status"), "success");
    assert.notEqual(await text("#query-jti"), first, "the query used the refreshed token");
    assert.equal((await server.stats()).api_401, 0);

    // A forced 401: the next refresh hands out a token with no expiry the
    // client could see, which the server refuses after 1 s.
    await server.admin("/admin/config", { no_expiry: true, access_ttl_ms: 1000 });
    const before = Number(await text("#generation"));
    await page.waitForFunction((g) => Number(document.querySelector("#generation")?.textContent) > g, before, { timeout: 8000 });
    await sleep(1300);
    const refreshes = (await server.stats()).refreshes;
    const ran = await runs();
    await refetched(ran);
    assert.equal(await text("#query-status"), "success");
    assert.equal(await runs(), ran + 1, "the query function ran once: no retry");
    const stats = await server.stats();
    assert.equal(stats.api_401, 1, "one 401");
    assert.equal(stats.refreshes, refreshes + 1, "one refresh for it");
    assert.equal(stats.by_endpoint["GET /api/me"], (await runs()) + 1, "one request per run, and the replay");
    assert.equal(await text("#query-errors"), "0", "never in error");
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), []);
  } finally {
    await page.close();
    server.stop();
  }
});

for (const name of ["react", "vue"]) {
  const dir = join(root, "www", name);

  test(`${name} example: installed from the tarball, not linked`, () => {
    assert.equal(lstatSync(join(dir, "node_modules/tokenkeeper")).isSymbolicLink(), false,
      "make examples installs target/npm/tokenkeeper.tgz into the example");
  });

  test(`${name} example, built by vite build: log in, call the API, refresh, log out`, async () => {
    const server = await startServer({ www: join(dir, "dist"), flags: ["--access-ttl", "3s"] });
    try {
      await session(server.url + "/", name, server);
    } finally {
      server.stop();
    }
  });

  test(`${name} example, built: log in with the identity provider through its callback route, log out there`, async () => {
    // As `make demo` runs them: the provider on a port the dev server names.
    const port = await freePort();
    const server = await startServer({ www: join(dir, "dist"), flags: ["--issuer", `http://127.0.0.1:${port}`] });
    const op = await startProvider({ port, appOrigin: server.url, accessTtl: 10 });
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    // The example's errors; the provider's own pages are not the example.
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error" && !page.url().startsWith(op.issuer)) errors.push(m.text());
    });
    const visited = [];
    page.on("framenavigated", (f) => f === page.mainFrame() && visited.push(new URL(f.url()).pathname));
    try {
      await page.goto(server.url + "/");
      await page.waitForSelector("#status.logged-out");
      await page.waitForSelector("#idp-status.logged-out");
      await page.click("#idp-login");
      await page.waitForURL((u) => u.origin === op.issuer, { timeout: 10000 });
      await page.fill('input[name="login"]', "user1");
      await page.fill('input[name="password"]', "password1");
      await page.click('button[type="submit"]');
      await page.waitForSelector("#idp-status.logged-in", { timeout: 10000 });
      assert.equal(await page.textContent("#idp-name"), "User One");
      assert.ok(visited.includes("/callback/"), "the provider sent the browser to the callback route");
      assert.equal(page.url(), server.url + "/", "the callback route put the app back at its root, parameters gone");
      assert.equal(op.stats().token.authorization_code, 1);
      await page.screenshot({ path: join(shots, `${name}-idp.png`) });

      await page.click("#idp-logout");
      await page.waitForURL((u) => u.origin === op.issuer, { timeout: 10000 });
      const yes = page.locator('button[name="logout"][value="yes"]');
      if (await yes.count()) await yes.click();
      await page.waitForURL((u) => u.origin === server.url, { timeout: 10000 });
      await page.waitForSelector("#idp-status.logged-out");
      assert.ok(op.stats().revocations >= 1, "the refresh token was revoked");
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      await op.stop();
      server.stop();
    }
  });

  test(`${name} example under the vite dev server: the same session`, async () => {
    const server = await startServer({ flags: ["--access-ttl", "3s"] });
    const vite = await startVite(dir, server.url);
    try {
      await session(vite.url + "/", `${name}-dev`, server);
    } finally {
      vite.stop();
      server.stop();
    }
  });
}

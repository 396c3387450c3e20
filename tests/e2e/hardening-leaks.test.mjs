// Leaks, in headless Chromium against two real dev servers (two origins): the
// token header never reaches an origin outside `allowedOrigins` — another
// port, another host name for the same server, a `URL` or `Request` input, a
// redirect from an allowed origin to another one (with `Authorization` and
// with a custom header), relative URLs resolved against a `<base>` of another
// origin; no token is left in the page's storage (nor handed out on the tabs'
// channel) after logout or after the session ends on a refused refresh; and
// no error, event or console message ever contains a token. What reached the
// other origin is read from its own request log. Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, sleep } from "./lib.mjs";
import { PROVOKED, openTab, startHardeningServer } from "./hardening-lib.mjs";

let main, other, browser;

before(async () => {
  main = await startHardeningServer(["--access-ttl", "30s", "--reuse-grace-ms", "2000"]);
  other = await startHardeningServer(["--access-ttl", "30s"]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  main?.stop();
  other?.stop();
});

const port = (url) => new URL(url).port;

/** Every token the main server hands the page, read off the responses as the browser receives them. */
function collectTokens(page) {
  const tokens = new Set();
  page.on("response", async (res) => {
    if (!/\/(login|token\/refresh)$/.test(new URL(res.url()).pathname) || res.status() !== 200) return;
    const body = await res.json().catch(() => ({}));
    for (const key of ["access_token", "refresh_token"]) if (body[key]) tokens.add(body[key]);
  });
  return tokens;
}

/** Fails if any token (or a recognisable part of one: a JWT's signature) appears in `text`. */
function assertNoToken(tokens, text, where) {
  assert.ok(tokens.size > 0, "tokens were collected");
  for (const token of tokens) {
    const parts = [token, ...token.split(".").filter((p) => p.length >= 16)];
    for (const part of parts) assert.ok(!text.includes(part), `${where} contains a token: …${part.slice(-12)}`);
  }
}

/** The requests the server at `server` saw under `prefix` (CORS preflights aside: they never carry headers' values). */
const seen = async (server, prefix) =>
  (await server.requests()).filter((r) => r.path.startsWith(prefix) && r.method !== "OPTIONS");
const carried = (r) => r.authorization || r.x_auth_token;

const HEADERS = [
  ["Authorization", {}],
  ["x-auth-token", { header: "x-auth-token", scheme: null }],
];

/** A tab of the main server, logged in, with `options`; `body(tab)`; then no page error. */
async function withTab(options, body) {
  await main.reset();
  await other.reset();
  const context = await browser.newContext();
  try {
    const tab = await openTab(context, main.url, options, PROVOKED);
    await tab.evaluate(() => window.hk.login());
    await body(tab, context);
    assert.deepEqual(tab.errors, []);
  } finally {
    await context.close();
  }
}

const T = { timeout: 60_000 };

for (const [name, options] of HEADERS) {
  test(`${name}: the token reaches only allowedOrigins (another port, another host name of the same server)`, T, async () => {
    await withTab(options, async (tab) => {
      const sameServerOtherHost = `http://localhost:${port(main.url)}`;
      const results = [
        await tab.evaluate(() => window.hk.call("/api/own")),
        await tab.evaluate((u) => window.hk.call(u + "/api/leak-port"), other.url),
        await tab.evaluate((u) => window.hk.call(u + "/api/leak-host"), sameServerOtherHost),
      ];
      // The requests went out (the foreign ones answered 401: no token) and reached their servers.
      assert.deepEqual(results.map((r) => r.ok && r.value.status), [200, 401, 401], JSON.stringify(results));
      const own = await seen(main, "/api/own");
      assert.equal(own.length, 1);
      assert.ok(carried(own[0]), "the allowed origin got the token");
      const foreign = [...(await seen(other, "/api/leak-")), ...(await seen(main, "/api/leak-host"))];
      assert.deepEqual(foreign.map((r) => r.path).sort(), ["/api/leak-host", "/api/leak-port"]);
      for (const r of foreign) assert.ok(!carried(r), `no token at ${r.path}: ${JSON.stringify(r)}`);

      // The same request to an origin the app did allow carries it: the log can tell.
      await tab.evaluate(({ o, m, u }) => window.hk.create({ ...o, channel: "allowed", allowedOrigins: [m, u] }),
        { o: options, m: main.url, u: other.url });
      await tab.evaluate(() => window.hk.login());
      await tab.evaluate((u) => window.hk.call(u + "/api/allowed"), other.url);
      const allowed = await seen(other, "/api/allowed");
      assert.ok(allowed.length >= 1);
      assert.ok(allowed.every(carried), "an allowed second origin gets the token");
    });
  });

  test(`${name}: a URL object and a Request, as fetch takes them: the token for the own origin only`, { timeout: 10_000 }, async () => {
    await withTab(options, async (tab) => {
      const results = [];
      for (const kind of ["url", "request"]) {
        results.push(await tab.evaluate((k) => window.hk.callWith(k, `/api/own-${k}`), kind));
        results.push(await tab.evaluate(([k, u]) => window.hk.callWith(k, `${u}/api/leak-${k}`, { headers: { "x-app": "1" } }),
          [kind, other.url]));
      }
      assert.deepEqual(results.map((r) => r.ok && r.value.status), [200, 401, 200, 401], JSON.stringify(results));
      for (const r of await seen(main, "/api/own-")) assert.ok(carried(r), `${r.path} got the token`);
      const foreign = await seen(other, "/api/leak-");
      assert.deepEqual(foreign.map((r) => r.path).sort(), ["/api/leak-request", "/api/leak-url"]);
      for (const r of foreign) assert.ok(!carried(r), `no token at ${r.path}`);
      // An input whose conversion to a string throws: the call rejects with
      // that error, as fetch does (it neither hangs nor breaks the module).
      const bad = await tab.evaluate(() => window.hk.call({ toString() { throw new RangeError("no URL here"); } }));
      assert.equal(bad.ok, false, JSON.stringify(bad));
      assert.match(JSON.stringify(bad.error), /no URL here/);
      const after = await tab.evaluate(() => window.hk.call("/api/own-after"));
      assert.equal(after.ok && after.value.status, 200, JSON.stringify(after));
      tab.errors = tab.errors.filter((e) => !/no URL here/.test(e));
    });
  });

  test(`${name}: a redirect from the allowed origin to another origin never carries the token`, T, async () => {
    await withTab(options, async (tab) => {
      const via = (to) => `/redirect?to=${encodeURIComponent(to)}`;
      const targets = [
        ["GET", via(other.url + "/api/redirected-get")],
        ["POST", via(other.url + "/api/redirected-post")],
        ["GET", via(`http://localhost:${port(main.url)}/api/redirected-host`)],
        ["GET", via(via(other.url + "/api/redirected-twice"))],
      ];
      for (const [method, url] of targets) {
        const init = method === "GET" ? undefined : { method, headers: { "content-type": "application/json" }, body: "{}" };
        await tab.evaluate(([u, i]) => window.hk.call(u, i), [url, init]);
      }
      // The first hop went to the allowed origin, with the token.
      const hops = await seen(main, "/redirect");
      assert.ok(hops.length >= targets.length, JSON.stringify(hops));
      assert.ok(hops.some(carried), "the allowed origin's redirect got the token");
      // Whatever arrived at another origin came without it.
      const foreign = [...(await seen(other, "/")), ...(await seen(main, "/api/redirected-host"))];
      for (const r of foreign) assert.ok(!carried(r), `${name} followed a redirect to ${r.path}: ${JSON.stringify(r)}`);
      if (name === "Authorization") {
        // The browser followed the redirects (dropping the header itself): they did arrive.
        assert.ok(foreign.some((r) => r.path === "/api/redirected-get"), JSON.stringify(foreign));
        // And a redirect within the allowed origin keeps the token.
        const same = await tab.evaluate((u) => window.hk.call(u), via(main.url + "/api/me"));
        assert.deepEqual(same.value, { status: 200, type: "basic", redirected: true, url: main.url + "/api/me" });
      }
    });
  });
}

test("relative URLs resolved against a <base> of another origin never carry the token", T, async () => {
  await main.reset();
  await other.reset();
  const context = await browser.newContext();
  try {
    // The other origin has no /app/…: the relative call there answers 404.
    const tab = await openTab(context, main.url, {}, new RegExp(`${PROVOKED.source}|status of 404`));
    await tab.evaluate(() => window.hk.login());
    // Markup injected into the page (no script needed) can add a <base>.
    assert.equal(await tab.evaluate((u) => window.hk.setBase(u + "/app/"), other.url), other.url + "/app/");
    const early = [
      await tab.evaluate(() => window.hk.call("/api/based-absolute-path")),
      await tab.evaluate(() => window.hk.call("api/based-relative")),
    ];
    assert.deepEqual(early.map((r) => r.ok && new URL(r.value.url).origin), [other.url, other.url], JSON.stringify(early));
    // A keeper made after the <base> appeared (its endpoints given in full):
    // the default allowedOrigins is still the page's own origin.
    await tab.evaluate((m) => window.hk.create({ channel: "late", refreshUrl: m + "/token/refresh" }), main.url);
    await tab.evaluate((m) => window.hk.login(m + "/login"), main.url);
    const late = await tab.evaluate(() => window.hk.call("/api/based-late"));
    assert.equal(late.ok && new URL(late.value.url).origin, other.url, JSON.stringify(late));
    const foreign = (await seen(other, "/")).filter((r) => r.path.includes("/based-"));
    assert.deepEqual([...new Set(foreign.map((r) => r.path))].sort(),
      ["/app/api/based-relative", "/api/based-absolute-path", "/api/based-late"].sort());
    for (const r of foreign) assert.ok(!carried(r), `the token went to ${other.url}${r.path}`);
    const own = await tab.evaluate((m) => window.hk.call(m + "/api/own"), main.url);
    assert.equal(own.ok && own.value.status, 200, "the keeper made under the <base> still sends the token to the page's own origin");
    assert.deepEqual(tab.errors, []);
  } finally {
    await context.close();
  }
});

/** Everything a script of the origin could read, in every tab: storage, cookies, and what the tabs' channel hands out. */
async function assertNothingLeft(context, tabs, tokens, when) {
  for (const [i, tab] of tabs.entries()) {
    assertNoToken(tokens, await tab.evaluate(() => window.hk.storage()), `tab ${i}'s storage ${when}`);
    const answers = await tab.evaluate(() => window.hk.probeChannel());
    assert.ok(answers.length > 0, "the tabs answer the probe");
    assertNoToken(tokens, JSON.stringify(answers), `the channel ${when}`);
    const token = await tab.evaluate(() => window.hk.settle(() => window.hk.keeper.getAccessToken()));
    assert.equal(token.ok, false);
    assert.equal(token.error.code, "not_authenticated");
    assert.equal(await tab.evaluate(() => window.hk.keeper.isAuthenticated), false);
  }
  assertNoToken(tokens, JSON.stringify(await context.storageState({ indexedDB: true })), `the browser's storage ${when}`);
}

test("no token remains in the page's storage or on the tabs' channel after logout and after a refused refresh", T, async () => {
  await main.reset();
  const context = await browser.newContext();
  try {
    const first = await openTab(context, main.url, {}, PROVOKED);
    const tokens = collectTokens(first);
    await first.evaluate(() => window.hk.login());
    const second = await openTab(context, main.url, {}, PROVOKED);
    assert.equal(await second.evaluate(() => window.hk.ready()), true);
    const tabs = [first, second];
    await first.evaluate(() => window.hk.keeper.refresh());
    await sleep(100);
    assert.equal(tokens.size, 4, "the login's and the refresh's tokens");

    // During the session: nothing in storage. The channel does hand the
    // tokens to a script of the origin that asks (by design: an XSS can use
    // the session, see SECURITY.md) — which shows the probe can see them.
    for (const tab of tabs) assertNoToken(tokens, await tab.evaluate(() => window.hk.storage()), "storage during the session");
    const during = JSON.stringify(await second.evaluate(() => window.hk.probeChannel()));
    const access = await first.evaluate(() => window.hk.keeper.getAccessToken());
    assert.ok(during.includes(access), "the probe sees the session's tokens while there is one");

    await first.evaluate(() => window.hk.keeper.logout());
    await sleep(100);
    await assertNothingLeft(context, tabs, tokens, "after logout");

    // A new session that the server then refuses (it forgets every session).
    await first.evaluate(() => window.hk.login());
    assert.equal(await second.evaluate(() => window.hk.ready()), true);
    await main.reset();
    const refused = await second.evaluate(() => window.hk.settle(() => window.hk.keeper.refresh()));
    assert.equal(refused.error?.code, "session_ended", JSON.stringify(refused));
    await sleep(100);
    await assertNothingLeft(context, tabs, tokens, "after the session ended");
    assert.equal(tokens.size, 6);
    for (const tab of tabs) assert.deepEqual(tab.errors, []);
  } finally {
    await context.close();
  }
});

test("errors, events and console messages never contain a token", T, async () => {
  await main.reset();
  const context = await browser.newContext();
  try {
    const tab = await openTab(context, main.url, {}, PROVOKED);
    const tokens = collectTokens(tab);
    const call = (f, arg) => tab.evaluate(f, arg);
    await call(() => window.hk.login());
    await call(() => window.hk.call("/api/me"));
    await call(() => window.hk.keeper.refresh());
    // Every kind of refresh failure the server can produce, each followed by a retry that succeeds.
    for (const fault of [{ kind: "status500" }, { kind: "status429", retry_after: 1 }, { kind: "drop" }, { kind: "lost_response" }]) {
      await main.fault(fault);
      const r = await call(() => window.hk.settle(() => window.hk.keeper.refresh()));
      assert.equal(r.ok, true, `${fault.kind}: ${JSON.stringify(r)}`);
    }
    // Tokens the app hands over itself, refused: the error must not echo them.
    const planted = new Set(["Planted-access token-0123456789", "x".repeat(20000), "Planted-refresh-0123456789"]);
    for (const bad of [
      { access_token: "Planted-access token-0123456789" },
      { access_token: "x".repeat(20000) },
      { access_token: "Planted-access-0123456789abcdef", refresh_token: "Planted-refresh-0123456789".repeat(1000) },
      { access_token: "Planted-access-0123456789abcdef", expires_in: -5 },
    ]) {
      const r = await call((t) => window.hk.settle(() => window.hk.keeper.setTokens(t)), bad);
      assert.equal(r.error?.code, "invalid_token_response", JSON.stringify(r).slice(0, 300));
    }
    planted.add("Planted-access-0123456789abcdef");
    // A wrong password, then the server forgets the session: a 401, a refused refresh, the end.
    const wrong = await call(() => window.hk.settle(() => window.hk.login("/login", "wrong")));
    assert.equal(wrong.error?.code, "login_failed");
    await main.reset();
    const r401 = await call(() => window.hk.call("/api/me"));
    assert.equal(r401.ok && r401.value.status, 401);
    const after = await call(() => window.hk.settle(() => window.hk.keeper.getAccessToken()));
    assert.equal(after.error?.code, "not_authenticated");

    const { events, errors } = await call(() => ({ events: window.hk.events, errors: window.hk.errors }));
    const kinds = new Set(events.map((e) => e.name));
    for (const k of ["refresh", "refresh-error", "expired", "logout", "change"]) assert.ok(kinds.has(k), `a ${k} event was seen`);
    assert.ok(errors.length >= 6, `errors seen: ${errors.length}`);
    for (const e of errors) {
      assert.equal(e.isTokenKeeperError, true, JSON.stringify(e).slice(0, 300));
      assert.equal(e.name, "TokenKeeperError");
      assert.match(e.code, /^[a-z_]+$/);
      assert.ok(e.message.length > 0);
    }
    assert.ok(tokens.size >= 8, `tokens issued: ${tokens.size}`);
    const all = new Set([...tokens, ...planted]);
    assertNoToken(all, JSON.stringify(events), "an event");
    assertNoToken(all, JSON.stringify(errors), "an error");
    assertNoToken(all, tab.console.join("\n"), "the console");
    assert.deepEqual(tab.errors, []);
  } finally {
    await context.close();
  }
});

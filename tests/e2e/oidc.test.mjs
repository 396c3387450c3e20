// OpenID Connect against a real provider (npm `oidc-provider`, see
// scripts/oidc-provider.mjs) in headless Chromium: first the fixture itself
// (login page, PKCE code flow, rotation, reuse detection, revocation,
// introspection, logout, CORS), then the library — log in through the
// provider's page, tabs joining, bursts across expiries, failed and forged
// callbacks, logout everywhere, silent sign-in and RP-initiated logout.
// Assumes `make build` (pkg/) and `cargo build -p tokenkeeper-devserver`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { root, startServer, launch, sleep } from "./lib.mjs";
import { startProvider } from "../../scripts/oidc-provider.mjs";
import { WAIT, appPages, burstAll, clean } from "./oidc-lib.mjs";

const ACCESS_TTL = 4; // seconds
let server, base, op, browser;
let appContext, settled, openTab, kick, reach, atLoginPage, atApp, state, refreshesAccountedFor;

before(async () => {
  // The provider's client must know the page's origin: the page server first.
  server = await startServer({ www: join(root, "tests/e2e/oidc-page"), pkg: join(root, "pkg") });
  base = server.url;
  op = await startProvider({ appOrigin: base, accessTtl: ACCESS_TTL });
  browser = await launch();
  ({ appContext, settled, openTab, kick, reach, atLoginPage, atApp, state, refreshesAccountedFor } = appPages({ browser, base, op }));
});

after(async () => {
  await browser?.close();
  await op?.stop();
  server?.stop();
});

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());
const pathOf = (url) => new URL(url).pathname;
const onProvider = (url) => new URL(url).origin === op.issuer;

/** A PKCE pair and an authorization URL for the SPA client. */
function authorization({ prompt, redirectUri = base + "/callback/" } = {}) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash("sha256").update(verifier).digest());
  const state = b64url(randomBytes(12));
  const nonce = b64url(randomBytes(12));
  const url = new URL(op.issuer + "/auth");
  const params = {
    client_id: "spa", response_type: "code", redirect_uri: redirectUri, scope: "openid profile offline_access",
    state, nonce, code_challenge: challenge, code_challenge_method: "S256", ...(prompt ? { prompt } : {}),
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return { url: url.href, verifier, state, nonce, redirectUri };
}

const tokenRequest = (params) =>
  fetch(op.issuer + "/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: "spa", ...params }),
  });

/** Fills the provider's login form and submits it. */
async function submitLogin(page, login, password) {
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', password);
  await Promise.all([page.waitForNavigation({ waitUntil: "commit", ...WAIT }), page.click('button[type="submit"]')]);
}

test("the provider fixture: code + PKCE, rotation, reuse, revocation, logout, CORS", async () => {
  op.resetStats();
  // Discovery, as a browser page would read it.
  const d = await (await fetch(op.issuer + "/.well-known/openid-configuration")).json();
  assert.equal(d.issuer, op.issuer);
  assert.deepEqual(d.code_challenge_methods_supported, ["S256"]);
  assert.ok(d.token_endpoint_auth_methods_supported.includes("none"));
  assert.ok(d.scopes_supported.includes("offline_access"));
  for (const [k, path] of [["authorization_endpoint", "/auth"], ["token_endpoint", "/token"], ["userinfo_endpoint", "/me"],
    ["revocation_endpoint", "/token/revocation"], ["introspection_endpoint", "/token/introspection"],
    ["end_session_endpoint", "/session/end"]]) {
    assert.equal(d[k], op.issuer + path, k);
  }

  // The app's redirect targets are stand-ins here (no library acts on them).
  // Fetches go from a document the page server really served (favicon.svg):
  // Chromium's Local Network Access treats a Playwright-fulfilled document as
  // public, and refuses its requests to loopback before CORS is even asked.
  const context = await browser.newContext();
  const script = base + "/favicon.svg";
  await context.route((url) => ["/callback/", "/logged-out/"].includes(url.pathname),
    (route) => route.fulfill({ contentType: "text/html", body: "<!doctype html><title>stand-in</title><p>stand-in</p>" }));
  const page = await context.newPage();
  try {
    // The login page: the stock devInteractions form at /interaction/:uid.
    let a = authorization();
    await page.goto(a.url);
    assert.ok(onProvider(page.url()) && /^\/interaction\/[^/]+$/.test(pathOf(page.url())), page.url());
    const interaction = page.url();
    assert.equal(await page.locator('form[method="post"] input[name="prompt"]').getAttribute("value"), "login");
    assert.equal(await page.locator('a:has-text("Cancel")').getAttribute("href"), interaction + "/abort");

    // A wrong password, then a wrong login: the provider's page again, "Invalid login", no redirect.
    for (const [login, password] of [["user1", "wrong"], ["user2", "password1"]]) {
      await submitLogin(page, login, password);
      assert.equal(page.url(), interaction);
      assert.match(await page.textContent("body"), /Invalid login/);
    }
    assert.equal(op.stats().token.authorization_code, 0);

    // The right one, on the retry form: back at the callback with a code.
    await submitLogin(page, "user1", "password1");
    await page.waitForURL((u) => u.pathname === "/callback/", WAIT);
    let cb = new URL(page.url());
    assert.equal(cb.origin, base);
    assert.equal(cb.searchParams.get("state"), a.state);
    assert.equal(cb.searchParams.get("iss"), op.issuer);
    const code = cb.searchParams.get("code");
    assert.ok(code);
    // The provider's cookies carry their own prefix (127.0.0.1 shares cookies across ports).
    const names = (await context.cookies(op.issuer)).map((c) => c.name).sort();
    assert.deepEqual(names, ["op_session", "op_session.sig"]);

    // The exchange needs the verifier.
    let r = await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: a.redirectUri, code_verifier: b64url(randomBytes(32)) });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, "invalid_grant");
    // The right one works (the failed attempt did not burn the code); a second use
    // of the code is refused and revokes what the first one got.
    r = await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: a.redirectUri, code_verifier: a.verifier });
    assert.equal(r.status, 200);
    const t0 = await r.json();
    assert.equal((await op.introspect(t0.refresh_token)).active, true);
    r = await tokenRequest({ grant_type: "authorization_code", code, redirect_uri: a.redirectUri, code_verifier: a.verifier });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, "invalid_grant");
    assert.equal((await op.introspect(t0.refresh_token)).active, false);
    assert.equal((await op.introspect(t0.access_token)).active, false);
    // A fresh login, silently: the provider's session lives on.
    a = authorization({ prompt: "none" });
    await page.goto(a.url);
    await page.waitForURL((u) => u.pathname === "/callback/", WAIT);
    cb = new URL(page.url());
    assert.equal(cb.searchParams.get("state"), a.state);
    r = await tokenRequest({ grant_type: "authorization_code", code: cb.searchParams.get("code"), redirect_uri: a.redirectUri, code_verifier: a.verifier });
    assert.equal(r.status, 200);
    const t1 = await r.json();
    assert.equal(t1.token_type, "Bearer");
    assert.equal(t1.expires_in, ACCESS_TTL);
    assert.ok(t1.access_token && t1.refresh_token && t1.id_token);
    const idc = claimsOf(t1.id_token);
    assert.equal(idc.iss, op.issuer);
    assert.equal(idc.aud, "spa");
    assert.equal(idc.sub, "user1");
    assert.equal(idc.name, "User One");
    assert.equal(idc.nonce, a.nonce);
    assert.ok(idc.exp - idc.iat >= 3000, "ID token lives about an hour");
    assert.equal((await op.introspect(t1.access_token)).active, true);
    const rt1 = await op.introspect(t1.refresh_token);
    assert.equal(rt1.active, true);
    assert.equal(rt1.client_id, "spa");
    assert.equal(rt1.sub, "user1");
    assert.equal(rt1.scope, "openid profile", "offline_access is dropped without prompt=consent; the refresh token comes anyway");

    // From a page at the app's origin (CORS): userinfo, a refresh, discovery.
    await page.goto(script);
    const fromPage = await page.evaluate(async ({ issuer, at, rt }) => {
      const me = await fetch(issuer + "/me", { headers: { authorization: "Bearer " + at } });
      const refresh = await fetch(issuer + "/token", {
        method: "POST",
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: rt, client_id: "spa" }),
      });
      const disc = await fetch(issuer + "/.well-known/openid-configuration");
      const noToken = await fetch(issuer + "/me");
      return {
        me: { status: me.status, body: await me.json() }, refresh: { status: refresh.status, body: await refresh.json() },
        discovery: disc.status, noToken: { status: noToken.status, wwwAuthenticate: noToken.headers.get("www-authenticate") },
      };
    }, { issuer: op.issuer, at: t1.access_token, rt: t1.refresh_token });
    assert.equal(fromPage.me.status, 200);
    assert.deepEqual(fromPage.me.body, { sub: "user1", name: "User One" });
    assert.equal(fromPage.discovery, 200);
    assert.equal(fromPage.noToken.status, 401);
    assert.match(fromPage.noToken.wwwAuthenticate ?? "", /^Bearer /, "the 401's WWW-Authenticate is readable cross-origin");
    assert.equal(fromPage.refresh.status, 200, JSON.stringify(fromPage.refresh));
    const t2 = fromPage.refresh.body;
    assert.ok(t2.refresh_token && t2.refresh_token !== t1.refresh_token, "the refresh token rotates");
    assert.ok(t2.access_token !== t1.access_token);
    assert.deepEqual(op.stats().token, { authorization_code: 4, refresh_token: 1 });
    assert.equal(op.issued().at(-1).refresh_token, t2.refresh_token);
    assert.equal(op.issued().at(-1).grant_type, "refresh_token");

    // Reuse of the rotated refresh token: invalid_grant, and the grant is gone.
    r = await tokenRequest({ grant_type: "refresh_token", refresh_token: t1.refresh_token });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error, "invalid_grant");
    assert.equal((await op.introspect(t2.refresh_token)).active, false, "the newest refresh token died with the grant");
    assert.equal((await op.introspect(t2.access_token)).active, false);
    assert.equal(op.stats().tokenErrors.invalid_grant, 3);

    // Silent sign-in again (the provider's session lives on), then revocation from the page.
    a = authorization({ prompt: "none" });
    await page.goto(a.url);
    await page.waitForURL((u) => u.pathname === "/callback/", WAIT);
    r = await tokenRequest({ grant_type: "authorization_code", code: new URL(page.url()).searchParams.get("code"), redirect_uri: a.redirectUri, code_verifier: a.verifier });
    const t3 = await r.json();
    assert.equal((await op.introspect(t3.refresh_token)).active, true);
    // The access token expires on time (clockTolerance 0); the refresh token lives on.
    const me = () => fetch(op.issuer + "/me", { headers: { authorization: "Bearer " + t3.access_token } });
    assert.equal((await me()).status, 200);
    await sleep(ACCESS_TTL * 1000 + 100);
    assert.equal((await me()).status, 401);
    assert.equal((await op.introspect(t3.refresh_token)).active, true);
    await page.goto(script);
    const revoked = await page.evaluate(async ({ issuer, rt }) => (await fetch(issuer + "/token/revocation", {
      method: "POST", body: new URLSearchParams({ token: rt, token_type_hint: "refresh_token", client_id: "spa" }),
    })).status, { issuer: op.issuer, rt: t3.refresh_token });
    assert.equal(revoked, 200);
    assert.equal((await op.introspect(t3.refresh_token)).active, false);
    assert.equal((await op.introspect(t3.access_token)).active, false, "revoking the refresh token revoked the grant");
    assert.equal(op.stats().revocations, 1);

    // An origin the client does not know cannot read the token endpoint. (The
    // form POST needs no preflight: it reaches the provider, which refuses it.)
    await page.goto(script.replace("127.0.0.1", "localhost"));
    const foreign = await page.evaluate(async (issuer) => {
      try {
        await fetch(issuer + "/token", { method: "POST", body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: "x", client_id: "spa" }) });
        return "readable";
      } catch (e) {
        return e.name;
      }
    }, op.issuer);
    assert.equal(foreign, "TypeError");
    assert.equal(op.stats().tokenErrors.invalid_request, 1);

    // RP-initiated logout: a confirm page, "yes", then the registered post-logout URI with the state.
    const end = new URL(op.issuer + "/session/end");
    end.searchParams.set("id_token_hint", t3.id_token);
    end.searchParams.set("client_id", "spa");
    end.searchParams.set("post_logout_redirect_uri", base + "/logged-out/");
    end.searchParams.set("state", "bye");
    await page.goto(end.href);
    assert.ok(onProvider(page.url()) && pathOf(page.url()) === "/session/end");
    assert.equal(await page.locator('form#op\\.logoutForm input[name="xsrf"]').count(), 1);
    await Promise.all([page.waitForURL((u) => u.pathname === "/logged-out/", WAIT),
      page.click('button[name="logout"][value="yes"]')]);
    assert.equal(new URL(page.url()).searchParams.get("state"), "bye");
    // The provider's session is gone: prompt=none answers login_required.
    a = authorization({ prompt: "none" });
    await page.goto(a.url);
    await page.waitForURL((u) => u.pathname === "/callback/", WAIT);
    cb = new URL(page.url());
    assert.equal(cb.searchParams.get("error"), "login_required");
    assert.equal(cb.searchParams.get("state"), a.state);

    // Cancel on the login page: access_denied.
    a = authorization();
    await page.goto(a.url);
    assert.match(pathOf(page.url()), /^\/interaction\//);
    await Promise.all([page.waitForURL((u) => u.pathname === "/callback/", WAIT), page.click('a:has-text("Cancel")')]);
    cb = new URL(page.url());
    assert.equal(cb.searchParams.get("error"), "access_denied");
    assert.equal(cb.searchParams.get("state"), a.state);
    assert.equal(cb.searchParams.get("iss"), op.issuer);

    const s = op.stats();
    assert.deepEqual(s.token, { authorization_code: 5, refresh_token: 3 });
    assert.deepEqual(s.tokenErrors, { invalid_grant: 3, invalid_request: 1 });
    assert.equal(s.authorize, 5);
    assert.deepEqual(s.userinfo, { ok: 2, refused: 2 });
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------
// The library, in the app's pages (tests/e2e/oidc-page/). One browser context
// (A) holds the logged-in tabs; another (B) never logs in.

let ctxA, ctxB, tab1, tab2, tab3, tabB;

const tokensIssued = () => op.issued().flatMap((t) => [t.access_token, t.refresh_token]).filter(Boolean);

test("1. log in through the provider's page: back at returnTo, clean URL, no token in storage", async () => {
  op.resetStats();
  ctxA = await appContext();
  tab1 = await openTab(ctxA, "/");
  assert.equal(await tab1.evaluate(() => window.tk.ready), false, "nobody is logged in yet");
  await kick(tab1, () => { window.tk.login({ returnTo: "/?after=login" }); });
  await reach(tab1, atLoginPage, "the provider's login page");
  assert.match(await tab1.textContent("h1"), /Sign-in/);
  await submitLogin(tab1, "user1", "password1");
  await reach(tab1, atApp, "back at the app");
  await settled(tab1);

  const { redirect, redirectError } = await tab1.evaluate(() => ({ redirect: window.tk.redirect, redirectError: window.tk.redirectError }));
  assert.equal(redirectError, undefined, JSON.stringify(redirectError));
  assert.equal(new URL(redirect.returnTo, base).href, base + "/?after=login");
  const s1 = await state(tab1);
  assert.equal(s1.href, base + "/?after=login", "the URL is returnTo, without code, state or iss");
  assert.ok(clean(s1.href));
  assert.equal(s1.isAuthenticated, true);
  assert.equal(s1.sub, "user1");
  assert.equal(pathOf(s1.loadedFrom), "/callback/", "no page load after the callback (the URL was replaced)");

  const s = op.stats();
  assert.equal(s.token.authorization_code, 1);
  assert.equal(s.authorize, 1);
  assert.deepEqual(s.tokenErrors, { invalid_grant: 0 });
  // No token anywhere a script (or another page of the origin) could read it later.
  const stored = await tab1.evaluate(() => window.tk.storage());
  const tokens = tokensIssued();
  assert.ok(tokens.length >= 2);
  for (const token of tokens) {
    assert.ok(stored.every((v) => v === null || !v.includes(token)), "a token is in sessionStorage, localStorage or a cookie");
  }
});

test("2. two more tabs join without a token request; userinfo answers in each", async () => {
  assert.ok(tab1, "scenario 1 logged in");
  const codes = op.stats().token.authorization_code;
  tab2 = await openTab(ctxA, "/");
  tab3 = await openTab(ctxA, "/");
  const tabs = [tab1, tab2, tab3];
  for (const [i, tab] of [[2, tab2], [3, tab3]]) {
    assert.equal(await tab.evaluate(() => window.tk.ready), true, `tab ${i}: ready() is true`);
    const s = await state(tab);
    assert.equal(s.isAuthenticated, true);
    assert.equal(s.sub, "user1", `tab ${i} has the ID token's claims too`);
    assert.equal(await tab.evaluate(() => window.tk.ownRefreshes()), 0, `tab ${i} made no token request`);
  }
  assert.equal(op.stats().token.authorization_code, codes);
  // Any refresh meanwhile was tab 1's own timer, not a joining tab.
  await refreshesAccountedFor(tabs);
  for (const tab of tabs) {
    const me = await tab.evaluate(async () => {
      const r = await window.tk.keeper.fetch(window.tk.userinfo);
      return { status: r.status, body: await r.json() };
    });
    assert.deepEqual(me, { status: 200, body: { sub: "user1", name: "User One" } });
  }
});

test("3. bursts in every tab across several expiries: all 200, one refresh per rotation, no reuse", async () => {
  assert.ok(tab3, "scenario 2 opened the tabs");
  const tabs = [tab1, tab2, tab3];
  const started = Date.now();
  let calls = 0;
  while (Date.now() - started < 3.5 * ACCESS_TTL * 1000) {
    const round = Date.now();
    const counts = await burstAll(tabs, 20);
    assert.deepEqual(Object.keys(counts), ["200"], JSON.stringify({ counts, stats: op.stats() }));
    calls += counts["200"];
    await sleep(Math.max(0, 1000 - (Date.now() - round)));
  }
  const s = op.stats();
  assert.equal(s.tokenErrors.invalid_grant, 0, "a reused refresh token would have revoked the grant");
  assert.deepEqual(s.tokenErrors, { invalid_grant: 0 }, "no token-endpoint error at all");
  const refreshes = await refreshesAccountedFor(tabs);
  // Since the login, the session went through `lives` access tokens' lifetimes.
  // The library refreshes a third of a short token's life early (less up to a
  // tenth of that as jitter): one rotation per ≥ 0.6 × TTL. Two tabs refreshing
  // the same expiry would at least double the count (and show as invalid_grant).
  const sinceLogin = Date.now() - op.issued()[0].at;
  const lives = Math.floor(sinceLogin / (ACCESS_TTL * 1000));
  assert.ok(refreshes >= lives - 1 && lives >= 3, `refreshes ${refreshes} over ${lives} lifetimes`);
  assert.ok(refreshes <= Math.floor(sinceLogin / (0.6 * ACCESS_TTL * 1000)) + 1, `too many refreshes: ${refreshes} in ${sinceLogin} ms`);
  const rts = op.issued().map((t) => t.refresh_token);
  assert.equal(new Set(rts).size, rts.length, "every refresh rotated the refresh token");
  assert.equal(s.token.authorization_code, 1);
  console.log(`${calls} calls in 3 tabs over ${((Date.now() - started) / 1000).toFixed(1)} s: ${refreshes} refreshes, ` +
              `userinfo ${s.userinfo.ok} ok / ${s.userinfo.refused} refused at the provider, 0 non-200 seen by the app`);
  for (const tab of tabs) assert.deepEqual(tab.pageErrors, []);
});

test("4. a wrong password stays on the provider's page: no callback, no token request", async () => {
  const before = op.stats();
  ctxB = await appContext();
  tabB = await openTab(ctxB, "/");
  assert.equal(await tabB.evaluate(() => window.tk.ready), false, "another browser context shares nothing");
  await kick(tabB, () => { window.tk.login({ returnTo: "/" }); });
  await reach(tabB, atLoginPage, "the provider's login page");
  const loginPage = tabB.url();
  await submitLogin(tabB, "user1", "not-the-password");
  await sleep(300); // a redirect, if any, would be under way
  assert.equal(tabB.url(), loginPage);
  assert.match(await tabB.textContent("body"), /Invalid login/);
  assert.ok(!tabB.visited.some((u) => new URL(u).pathname === "/callback/"), "no callback");
  // (Context A's tabs go on refreshing meanwhile: only code exchanges count here.)
  assert.equal(op.stats().token.authorization_code, before.token.authorization_code);
  assert.equal(op.stats().authorize, before.authorize + 1);
});

test("5. Cancel on the login page: login_failed with access_denied, URL cleaned", async () => {
  assert.ok(tabB, "scenario 4 opened the tab");
  const before = op.stats();
  await tabB.goto(base + "/");
  await settled(tabB);
  await kick(tabB, () => { window.tk.login({ returnTo: "/" }); });
  await reach(tabB, atLoginPage, "the provider's login page");
  await Promise.all([reach(tabB, atApp, "back at the app"), tabB.click('a:has-text("Cancel")')]);
  await settled(tabB);
  const { redirectError } = await tabB.evaluate(() => ({ redirectError: window.tk.redirectError }));
  assert.equal(redirectError?.code, "login_failed", JSON.stringify(redirectError));
  assert.equal(redirectError.error, "access_denied");
  const s = await state(tabB);
  assert.ok(clean(s.href), s.href);
  assert.equal(s.isAuthenticated, false);
  assert.equal(op.stats().token.authorization_code, before.token.authorization_code);
});

test("6. a callback this tab never asked for: invalid_callback, URL cleaned, no token request", async () => {
  assert.ok(tabB, "scenario 4 opened the tab");
  const before = op.stats();
  await tabB.goto(base + "/callback/?code=forged&state=never-issued");
  await settled(tabB);
  const { redirectError } = await tabB.evaluate(() => ({ redirectError: window.tk.redirectError }));
  assert.equal(redirectError?.code, "invalid_callback", JSON.stringify(redirectError));
  const s = await state(tabB);
  assert.ok(clean(s.href), s.href);
  assert.equal(s.isAuthenticated, false);
  assert.equal(op.stats().token.authorization_code, before.token.authorization_code);
  assert.deepEqual(tabB.pageErrors, []);
  await ctxB.close();
});

test("7. logout() in one tab logs out every tab and revokes the refresh token", async () => {
  assert.ok(tab3, "scenario 2 opened the tabs");
  const tabs = [tab1, tab2, tab3];
  const revocations = op.stats().revocations;
  await tab2.evaluate(() => window.tk.keeper.logout());
  for (const tab of tabs) {
    await tab.waitForFunction(() => window.tk.keeper.isAuthenticated === false, null, WAIT);
  }
  const reasons = await Promise.all(tabs.map((t) => t.evaluate(() => window.tk.events.filter((e) => e.name === "logout").map((e) => e.reason))));
  assert.deepEqual(reasons, [["remote"], ["local"], ["remote"]]);
  assert.ok(op.stats().revocations >= revocations + 1);
  const newest = op.issued().at(-1).refresh_token;
  assert.equal((await op.introspect(newest)).active, false, "the newest refresh token is revoked");
  const counts = await burstAll(tabs, 1);
  assert.equal(counts["200"], undefined, `no token is sent any more: ${JSON.stringify(counts)}`);
});

test("8. silent sign-in after a reload, RP-initiated logout, then login_required", async () => {
  assert.ok(tab1, "scenario 1 logged in");
  await tab2.close();
  await tab3.close();
  // Logged out of the app but not of the provider: prompt=none signs in silently.
  let codes = op.stats().token.authorization_code;
  const silently = async (what) => {
    const from = tab1.visited.length;
    await kick(tab1, () => { window.tk.login({ returnTo: "/", prompt: "none" }); });
    await reach(tab1, (u) => atApp(u) && u.pathname === "/callback/", what);
    await settled(tab1);
    assert.ok(!tab1.visited.slice(from).some((u) => atLoginPage(new URL(u))), `${what}: no login page`);
  };
  await silently("silent sign-in after logout()");
  let s = await state(tab1);
  assert.equal(s.isAuthenticated, true, JSON.stringify(await tab1.evaluate(() => window.tk.redirectError)));
  assert.equal(op.stats().token.authorization_code, codes + 1);

  // A reload loses the in-memory session (and no tab is left to ask).
  await tab1.reload();
  await settled(tab1);
  assert.equal(await tab1.evaluate(() => window.tk.ready), false);
  assert.equal((await state(tab1)).isAuthenticated, false);
  codes = op.stats().token.authorization_code;
  await silently("silent sign-in after the reload");
  s = await state(tab1);
  assert.equal(s.isAuthenticated, true, JSON.stringify(await tab1.evaluate(() => window.tk.redirectError)));
  assert.equal(s.sub, "user1");
  assert.ok(clean(s.href), s.href);
  assert.equal(op.stats().token.authorization_code, codes + 1, "one code exchange");

  // RP-initiated logout: revoke, the provider's confirm page, back at /logged-out/.
  const revocations = op.stats().revocations;
  const rt = op.issued().at(-1).refresh_token;
  await kick(tab1, (uri) => { window.tk.logoutRedirect({ postLogoutRedirectUri: uri }); }, base + "/logged-out/");
  await reach(tab1, (u) => u.origin === op.issuer || u.pathname === "/logged-out/", "the provider's logout");
  assert.equal(op.stats().revocations, revocations + 1, "revoked before leaving");
  assert.equal((await op.introspect(rt)).active, false);
  if (new URL(tab1.url()).origin === op.issuer) {
    const end = new URL(tab1.url());
    assert.equal(end.pathname, "/session/end");
    assert.equal(end.searchParams.get("client_id"), "spa");
    assert.ok(end.searchParams.get("id_token_hint"));
    assert.equal(end.searchParams.get("post_logout_redirect_uri"), base + "/logged-out/");
    const yes = tab1.locator('button[name="logout"][value="yes"]');
    if (await yes.count()) await yes.click();
  }
  await reach(tab1, (u) => atApp(u) && u.pathname === "/logged-out/", "back at /logged-out/");
  await settled(tab1);
  assert.equal(await tab1.evaluate(() => window.tk.ready), false);

  // The provider's session is gone too.
  codes = op.stats().token.authorization_code;
  await kick(tab1, () => { window.tk.login({ returnTo: "/", prompt: "none" }); });
  await reach(tab1, (u) => atApp(u) && u.pathname === "/callback/", "the callback");
  await settled(tab1);
  const { redirectError } = await tab1.evaluate(() => ({ redirectError: window.tk.redirectError }));
  assert.equal(redirectError?.code, "login_failed", JSON.stringify(redirectError));
  assert.equal(redirectError.error, "login_required");
  assert.ok(clean((await state(tab1)).href));
  assert.equal(op.stats().token.authorization_code, codes);
  assert.deepEqual(tab1.pageErrors, []);
  await ctxA.close();
});

// DPoP (RFC 9449) end to end against a real provider (npm `oidc-provider`,
// scripts/oidc-provider.mjs, with DPoP nonces required) in headless Chromium,
// the keeper with `dpop: true`: a login whose tokens are bound to the key made
// on the callback page; tabs that join with the key from the channel and sign
// with it; bursts across expiries with nonce retries; tokens stolen from the
// channel that are useless from Node without the key; a key no tab can
// export and nothing in any storage; logout everywhere; and `dpop: "auto"`
// turning on from the provider's discovery. The provider's counters
// (op.stats().dpop) count the proofs and the use_dpop_nonce answers.
// Assumes `make build` (pkg/) and `cargo build -p tokenkeeper-devserver`;
// that the app's loopback origin is a secure context (WebCrypto); and that
// the provider's nonces stay good for minutes (they do: a new one per
// minute, each accepted for a few), so each keeper is challenged only until
// it has its first one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
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
  op = await startProvider({ appOrigin: base, accessTtl: ACCESS_TTL, dpopNonce: true });
  browser = await launch();
  ({ appContext, settled, openTab, kick, reach, atLoginPage, atApp, state, refreshesAccountedFor } = appPages({ browser, base, op }));
});

after(async () => {
  await browser?.close();
  await op?.stop();
  server?.stop();
});

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const pathOf = (url) => new URL(url).pathname;
/** The RFC 7638 thumbprint of a P-256 public key: what `cnf.jkt` names. */
const thumbprint = (x, y) => b64url(createHash("sha256").update(JSON.stringify({ crv: "P-256", kty: "EC", x, y })).digest());

// ---------------------------------------------------------------------------
// Pages of the app (tests/e2e/oidc-page/), driven as oidc-lib.mjs does.

/**
 * Logs in from a new tab of `context` through the provider's login page
 * (user1/password1); returns the tab, back at returnTo with the session.
 */
async function logIn(context, returnTo = "/?after=login") {
  const tab = await openTab(context, "/");
  assert.equal(await tab.evaluate(() => window.tk.ready), false, "nobody is logged in yet");
  await kick(tab, (to) => { window.tk.login({ returnTo: to }); }, returnTo);
  await reach(tab, atLoginPage, "the provider's login page");
  await tab.fill('input[name="login"]', "user1");
  await tab.fill('input[name="password"]', "password1");
  await Promise.all([reach(tab, atApp, "back at the app"), tab.click('button[type="submit"]')]);
  await settled(tab);
  const { redirect, redirectError } = await tab.evaluate(() => ({ redirect: window.tk.redirect, redirectError: window.tk.redirectError }));
  assert.equal(redirectError, undefined, JSON.stringify(redirectError));
  assert.equal(new URL(redirect.returnTo, base).href, base + returnTo);
  return tab;
}

/** keeper.fetch(userinfo) in the tab: its status and body. */
const me = (tab) => tab.evaluate(async () => {
  const r = await window.tk.keeper.fetch(window.tk.userinfo);
  return { status: r.status, body: await r.json() };
});

/** The channel spy in `tab`: the answers of `tabs` tabs to a hello (see tk.spy in oidc.js). */
const spy = (tab, tabs) => tab.evaluate(([n]) => window.tk.spy(n), [tabs]);
/** What the tabs keep where a script could read it later. */
const probe = (tab) => tab.evaluate(() => window.tk.probe());
const NOTHING_STORED = { localStorage: 0, sessionStorage: 0, indexedDB: [], caches: [], cookie: "" };

/** Every tab at `leader`'s generation or later (tabs adopt a refresh a moment after it). */
async function caughtUp(tabs, leader) {
  const gen = await leader.evaluate(() => window.tk.keeper.generation);
  for (const tab of tabs) await tab.waitForFunction((g) => window.tk.keeper.generation >= g, gen, WAIT);
}

/** The token requests the provider counted, of every grant type. */
const tokenRequests = (s) => Object.values(s.token).reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------
// The thief, in Node: the tokens without the key, and a P-256 key of its own.

const thief = generateKeyPairSync("ec", { namedCurve: "P-256" });
const thiefJwk = thief.publicKey.export({ format: "jwk" });

/** A DPoP proof signed by the thief's key (ES256, the signature as IEEE P1363 r || s). */
function thiefProof({ htm, htu, ath, nonce }) {
  const header = { typ: "dpop+jwt", alg: "ES256", jwk: { kty: thiefJwk.kty, crv: thiefJwk.crv, x: thiefJwk.x, y: thiefJwk.y } };
  const claims = { jti: b64url(randomBytes(16)), htm, htu, iat: Math.floor(Date.now() / 1000), ath, nonce };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign("sha256", Buffer.from(input), { key: thief.privateKey, dsaEncoding: "ieee-p1363" });
  return `${input}.${b64url(signature)}`;
}

/** What a response says about itself: status, the OAuth error (body or WWW-Authenticate), the header values. */
async function answerOf(response) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {}
  const wwwAuthenticate = response.headers.get("www-authenticate") ?? undefined;
  const challenged = /error="([^"]+)"/.exec(wwwAuthenticate ?? "")?.[1];
  return { status: response.status, error: body?.error ?? challenged, wwwAuthenticate, nonce: response.headers.get("dpop-nonce") ?? undefined };
}

/**
 * A request with a thief's proof, the way a client must: first without a
 * nonce (the provider answers use_dpop_nonce with one), then with that nonce.
 * Both answers.
 */
async function withThiefProof(send, claims) {
  const first = await answerOf(await send(thiefProof(claims)));
  assert.equal(first.error, "use_dpop_nonce", `the provider asks for a nonce first: ${JSON.stringify(first)}`);
  assert.ok(first.nonce, "with a DPoP-Nonce header");
  const second = await answerOf(await send(thiefProof({ ...claims, nonce: first.nonce })));
  return { first, second };
}

const userinfoWith = (authorization, dpop) =>
  fetch(op.issuer + "/me", { headers: { authorization, ...(dpop ? { dpop } : {}) } });
const refreshWith = (refreshToken, dpop) =>
  fetch(op.issuer + "/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(dpop ? { dpop } : {}) },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, client_id: "spa" }),
  });

// ---------------------------------------------------------------------------
// One browser context (A) holds the logged-in tabs of `dpop: true`.

let ctxA, tab1, tab2, tab3;
/** The thumbprint the login bound the tokens to. */
let jkt;

test("1. log in with dpop: true: clean URL, tokens bound to the callback page's key (cnf.jkt at introspection)", async () => {
  op.resetStats();
  ctxA = await appContext({ dpop: true });
  tab1 = await logIn(ctxA);
  const s1 = await state(tab1);
  assert.equal(s1.href, base + "/?after=login", "the URL is returnTo, without code, state or iss");
  assert.ok(clean(s1.href));
  assert.equal(s1.isAuthenticated, true);
  assert.equal(s1.sub, "user1");
  assert.equal(pathOf(s1.loadedFrom), "/callback/", "no page load after the callback (the URL was replaced)");

  // The exchange was refused once for want of a nonce, and sent again with it:
  // the refused attempt did not burn the code.
  const s = op.stats();
  assert.equal(s.authorize, 1);
  assert.deepEqual(s.token, { authorization_code: 2, refresh_token: 0 }, JSON.stringify(s));
  assert.deepEqual(s.tokenErrors, { invalid_grant: 0, use_dpop_nonce: 1 });
  assert.deepEqual(s.dpop, { proofs: { token: 2, userinfo: 0 }, useNonce: { token: 1, userinfo: 0 } }, "both attempts carried a proof");
  const [login] = op.issued();
  assert.equal(login.grant_type, "authorization_code");
  assert.equal(login.token_type, "DPoP");

  // Both tokens are bound to one key: the one the tab sends beside its session.
  const at = await op.introspect(login.access_token);
  const rt = await op.introspect(login.refresh_token);
  assert.equal(at.active, true);
  assert.equal(at.token_type, "DPoP");
  assert.match(at.cnf?.jkt ?? "", /^[A-Za-z0-9_-]{43}$/, JSON.stringify(at));
  assert.equal(rt.active, true);
  assert.equal(rt.cnf?.jkt, at.cnf.jkt, "the refresh token is bound to the same key (a public client)");
  jkt = at.cnf.jkt;
  const [answer] = await spy(tab1, 1);
  assert.equal(answer.type, "session");
  assert.equal(answer.access, login.access_token);
  assert.equal(thumbprint(answer.kx, answer.ky), jkt, "cnf.jkt is the thumbprint of the key the session names");

  // Userinfo with the token and a proof: the nonce the token endpoint gave
  // is the origin's, so no second challenge.
  assert.deepEqual(await me(tab1), { status: 200, body: { sub: "user1", name: "User One" } });
  assert.deepEqual(op.stats().dpop.useNonce, { token: 1, userinfo: 0 });
  assert.equal(op.stats().dpop.proofs.userinfo, 1);
  assert.deepEqual(await probe(tab1), NOTHING_STORED, "nothing stored after the login");
  assert.deepEqual(tab1.pageErrors, []);
});

test("2. three tabs share the key: joins without a token request, bursts across expiries all 200, nonces retried", async () => {
  assert.ok(tab1, "scenario 1 logged in");
  const before = op.stats();
  tab2 = await openTab(ctxA, "/");
  tab3 = await openTab(ctxA, "/");
  const tabs = [tab1, tab2, tab3];
  for (const [i, tab] of [[2, tab2], [3, tab3]]) {
    assert.equal(await tab.evaluate(() => window.tk.ready), true, `tab ${i}: ready() is true`);
    assert.equal((await state(tab)).isAuthenticated, true);
    assert.equal(await tab.evaluate(() => window.tk.ownRefreshes()), 0, `tab ${i} made no token request`);
  }
  assert.equal(op.stats().token.authorization_code, before.token.authorization_code);
  await refreshesAccountedFor(tabs); // any refresh meanwhile was tab 1's own timer

  // Each tab signs with the shared key; a joining tab knows no nonce yet,
  // so its first request to the provider is challenged once and sent again.
  for (const tab of tabs) assert.deepEqual(await me(tab), { status: 200, body: { sub: "user1", name: "User One" } });
  const joined = op.stats();
  const joinChallenges = joined.dpop.useNonce.userinfo + joined.dpop.useNonce.token - before.dpop.useNonce.userinfo - before.dpop.useNonce.token;
  assert.ok(joinChallenges >= 2, `each joining tab is asked for a nonce once: ${JSON.stringify(joined.dpop)}`);

  // Bursts in every tab across several expiries.
  const started = Date.now();
  let calls = 0;
  let rounds = 0;
  while (Date.now() - started < 3.5 * ACCESS_TTL * 1000) {
    const round = Date.now();
    const counts = await burstAll(tabs, 20);
    assert.deepEqual(Object.keys(counts), ["200"], JSON.stringify({ counts, stats: op.stats() }));
    calls += counts["200"];
    rounds++;
    await sleep(Math.max(0, 500 - (Date.now() - round))); // pacing: about two bursts a second
  }
  const s = op.stats();
  assert.equal(s.tokenErrors.invalid_grant, 0, "a reused refresh token would have revoked the grant");
  assert.deepEqual(Object.keys(s.tokenErrors).filter((e) => s.tokenErrors[e] > 0), ["use_dpop_nonce"], JSON.stringify(s.tokenErrors));
  const refreshes = await refreshesAccountedFor(tabs);
  const sinceLogin = Date.now() - op.issued()[0].at;
  const lives = Math.floor(sinceLogin / (ACCESS_TTL * 1000));
  assert.ok(refreshes >= lives - 1 && lives >= 3, `refreshes ${refreshes} over ${lives} lifetimes`);
  assert.ok(refreshes <= Math.floor(sinceLogin / (0.6 * ACCESS_TTL * 1000)) + 1, `too many refreshes: ${refreshes} in ${sinceLogin} ms`);
  const issued = op.issued();
  const rts = issued.map((t) => t.refresh_token);
  assert.equal(new Set(rts).size, rts.length, "every refresh rotated the refresh token");
  assert.ok(issued.every((t) => t.token_type === "DPoP"), "every token response is DPoP");
  const newest = issued.at(-1);
  assert.equal((await op.introspect(newest.access_token)).cnf?.jkt, jkt, "the newest access token: the login's key");
  assert.equal((await op.introspect(newest.refresh_token)).cnf?.jkt, jkt, "the newest refresh token too");

  // Every token request and every userinfo call carried a proof; the only
  // userinfo refusals were nonce challenges (never an expired or unbound
  // token), and once every tab knew the nonce, none came any more.
  assert.equal(s.dpop.proofs.token, tokenRequests(s));
  assert.equal(s.dpop.proofs.userinfo, s.userinfo.ok + s.userinfo.refused);
  assert.equal(s.userinfo.refused, s.dpop.useNonce.userinfo, JSON.stringify(s));
  assert.deepEqual(s.dpop.useNonce, joined.dpop.useNonce, "no nonce challenge during the bursts");
  // A 401 use_dpop_nonce is no expiry: it never made a tab refresh on demand.
  const onDemand = await Promise.all(tabs.map((t) => t.evaluate(() =>
    window.tk.events.filter((e) => e.name === "refresh" && e.source === "on-demand").length)));
  assert.deepEqual(onDemand, [0, 0, 0], "every refresh was ahead of expiry");
  assert.equal(s.token.authorization_code, 2);
  const retries = s.dpop.useNonce.token + s.dpop.useNonce.userinfo;
  console.log(`${calls} calls in 3 tabs (${rounds} rounds) over ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
              `${refreshes} refreshes, nonce challenges since login: ${s.dpop.useNonce.token} at /token, ` +
              `${s.dpop.useNonce.userinfo} at /me (${retries} retries), userinfo ${s.userinfo.ok} ok / ${s.userinfo.refused} refused ` +
              `at the provider, 0 non-200 seen by the app`);
  for (const tab of tabs) assert.deepEqual(tab.pageErrors, []);
});

test("3. tokens stolen from the channel are refused from Node without the key; the tabs' session lives on", async () => {
  assert.ok(tab3, "scenario 2 opened the tabs");
  const tabs = [tab1, tab2, tab3];
  // A refresh just now: the next rotation is seconds away, so the stolen
  // refresh token is the live one throughout (checked below).
  await tab1.evaluate(() => window.tk.keeper.refresh());
  await caughtUp(tabs, tab1);
  const answers = await spy(tab2, 3);
  const stolen = answers[0];
  assert.ok(answers.every((a) => a.type === "session" && a.access === stolen.access && a.refresh === stolen.refresh), "every tab holds the same tokens");
  assert.ok(stolen.access && stolen.refresh);
  assert.equal(stolen.refresh, op.issued().at(-1).refresh_token, "the newest refresh token");
  const errorsBefore = { ...op.stats().tokenErrors };
  const revocationsBefore = op.stats().revocations;

  // The access token as a Bearer token; as a DPoP token without a proof
  // (the provider calls that a malformed request).
  let a = await answerOf(await userinfoWith("Bearer " + stolen.access));
  assert.equal(a.status, 401, JSON.stringify(a));
  assert.equal(a.error, "invalid_token");
  a = await answerOf(await userinfoWith("DPoP " + stolen.access));
  assert.equal(a.status, 400, JSON.stringify(a));
  assert.equal(a.error, "invalid_request");
  // With a proof by another key (and the provider's nonce): refused for the key, not the nonce.
  const ath = b64url(createHash("sha256").update(stolen.access).digest());
  const atMe = await withThiefProof((proof) => userinfoWith("DPoP " + stolen.access, proof), { htm: "GET", htu: op.issuer + "/me", ath });
  assert.equal(atMe.second.status, 401, JSON.stringify(atMe));
  assert.equal(atMe.second.error, "invalid_token", JSON.stringify(atMe));

  // The refresh token without a proof, and with another key's proof.
  a = await answerOf(await refreshWith(stolen.refresh));
  assert.equal(a.status, 400, JSON.stringify(a));
  assert.equal(a.error, "invalid_grant");
  const atToken = await withThiefProof((proof) => refreshWith(stolen.refresh, proof), { htm: "POST", htu: op.issuer + "/token" });
  assert.equal(atToken.first.status, 400);
  assert.equal(atToken.second.status, 400, JSON.stringify(atToken));
  assert.equal(atToken.second.error, "invalid_grant", JSON.stringify(atToken));
  // A rotated refresh token (the one the refresh above replaced), without
  // a proof and with another key's: refused for the key before its reuse is
  // looked at, so the reuse detection (which revokes the grant) never fires.
  const rotated = op.issued().at(-2).refresh_token;
  assert.equal((await op.introspect(rotated)).active, false, "a rotated refresh token");
  a = await answerOf(await refreshWith(rotated));
  assert.equal(a.status, 400, JSON.stringify(a));
  assert.equal(a.error, "invalid_grant");
  const reused = await withThiefProof((proof) => refreshWith(rotated, proof), { htm: "POST", htu: op.issuer + "/token" });
  assert.equal(reused.second.status, 400, JSON.stringify(reused));
  assert.equal(reused.second.error, "invalid_grant", JSON.stringify(reused));
  assert.equal(op.stats().tokenErrors.invalid_grant, errorsBefore.invalid_grant + 4);

  // No rotation meanwhile: the thief tried the live refresh token. The
  // provider refused it without revoking anything: both tokens still active.
  assert.equal(op.issued().at(-1).refresh_token, stolen.refresh, "no rotation during the theft");
  const rt = await op.introspect(stolen.refresh);
  const at = await op.introspect(stolen.access);
  assert.equal(rt.active, true, "a refresh with another key's proof does not revoke the grant");
  assert.equal(at.active, true);
  assert.equal(rt.cnf?.jkt, jkt);
  assert.equal(op.stats().revocations, revocationsBefore);

  // The tabs' own session: still logged in, a refresh and calls succeed.
  for (const tab of tabs) assert.equal((await state(tab)).isAuthenticated, true);
  const refreshed = op.stats().token.refresh_token;
  await tab3.evaluate(() => window.tk.keeper.refresh());
  assert.equal(op.stats().token.refresh_token, refreshed + 1);
  const after = op.issued().at(-1);
  assert.equal(after.grant_type, "refresh_token");
  assert.notEqual(after.refresh_token, stolen.refresh);
  assert.equal((await op.introspect(stolen.refresh)).active, false, "the stolen refresh token is rotated away");
  await caughtUp(tabs, tab3);
  const counts = await burstAll(tabs, 5);
  assert.deepEqual(counts, { 200: 15 });
  const events = await Promise.all(tabs.map((t) => t.evaluate(() => window.tk.events.filter((e) => e.name === "logout" || e.name === "refresh-error").length)));
  assert.deepEqual(events, [0, 0, 0], "no tab saw a logout or a refresh error");
});

test("4. key hygiene: every tab gets a non-extractable P-256 private CryptoKey; nothing in any storage", async () => {
  assert.ok(tab3, "scenario 2 opened the tabs");
  const tabs = [tab1, tab2, tab3];
  const seen = new Set();
  for (const [i, tab] of tabs.entries()) {
    const answers = await spy(tab, 3);
    assert.equal(answers.length, 3);
    for (const a of answers) {
      seen.add(a.from);
      const what = `tab ${i + 1} hears ${a.from}`;
      assert.equal(a.type, "session", what);
      assert.deepEqual(a.key, {
        isCryptoKey: true, extractable: false, type: "private", usages: ["sign"],
        algorithm: { name: "ECDSA", namedCurve: "P-256" }, exportJwk: "InvalidAccessError", exportPkcs8: "InvalidAccessError",
      }, what);
      assert.equal(thumbprint(a.kx, a.ky), jkt, `${what}: the session's key is the login's`);
      // Beside the tokens only the public half's coordinates: no private scalar `d`, no JWK.
      assert.deepEqual(a.fields.filter((f) => !["v", "type", "from", "gen", "access", "refresh", "id", "expiresAt", "issuedAt",
        "until", "skew", "kx", "ky", "key"].includes(f)), [], `${what}: ${a.fields}`);
    }
    assert.deepEqual(await probe(tab), NOTHING_STORED, `tab ${i + 1}: nothing stored after logins, refreshes and joins`);
  }
  assert.equal(seen.size, 3, "three tabs answered");
  for (const tab of tabs) assert.deepEqual(tab.pageErrors, []);
});

test("5. logout() in one tab logs out every tab; a hello is then answered with a logout, no session, no key", async () => {
  assert.ok(tab3, "scenario 2 opened the tabs");
  const tabs = [tab1, tab2, tab3];
  const revocations = op.stats().revocations;
  await tab2.evaluate(() => window.tk.keeper.logout());
  for (const tab of tabs) await tab.waitForFunction(() => window.tk.keeper.isAuthenticated === false, null, WAIT);
  const reasons = await Promise.all(tabs.map((t) => t.evaluate(() => window.tk.events.filter((e) => e.name === "logout").map((e) => e.reason))));
  assert.deepEqual(reasons, [["remote"], ["local"], ["remote"]]);
  assert.ok(op.stats().revocations >= revocations + 1);
  const newest = op.issued().at(-1);
  assert.equal((await op.introspect(newest.refresh_token)).active, false, "the newest refresh token is revoked");
  assert.equal((await op.introspect(newest.access_token)).active, false, "and the grant with it");
  const answers = await spy(tab1, 3);
  for (const a of answers) {
    assert.equal(a.type, "logout", JSON.stringify(a));
    assert.equal(a.key, null, "no key beside a logout");
    assert.deepEqual(a.fields.filter((f) => ["access", "refresh", "id", "kx", "ky", "key"].includes(f)), [], `${a.fields}`);
  }
  const counts = await burstAll(tabs, 1);
  assert.equal(counts["200"], undefined, `no token is sent any more: ${JSON.stringify(counts)}`);
  for (const tab of tabs) assert.deepEqual(await probe(tab), NOTHING_STORED);
  for (const tab of tabs) assert.deepEqual(tab.pageErrors, []);
  await ctxA.close();
});

test('6. dpop: "auto" turns DPoP on from the discovery (ES256 listed): bound tokens, proofs, nonces', async () => {
  const d = await (await fetch(op.issuer + "/.well-known/openid-configuration")).json();
  assert.ok(d.dpop_signing_alg_values_supported?.includes("ES256"), JSON.stringify(d.dpop_signing_alg_values_supported));
  op.resetStats();
  // A context of its own: no provider session, the login page again.
  const ctx = await appContext({ dpop: "auto" });
  try {
    const tab = await logIn(ctx);
    assert.equal((await state(tab)).isAuthenticated, true);
    const s = op.stats();
    assert.deepEqual(s.token, { authorization_code: 2, refresh_token: 0 }, "the exchange, challenged once for a nonce, then again");
    assert.deepEqual(s.dpop.useNonce, { token: 1, userinfo: 0 });
    assert.equal(s.dpop.proofs.token, 2);
    const [login] = op.issued();
    assert.equal(login.token_type, "DPoP");
    const at = await op.introspect(login.access_token);
    assert.equal(at.token_type, "DPoP");
    const [answer] = await spy(tab, 1);
    assert.equal(answer.key?.extractable, false);
    assert.equal(thumbprint(answer.kx, answer.ky), at.cnf?.jkt);
    assert.notEqual(at.cnf.jkt, jkt, "a new login, a new key");
    assert.deepEqual(await me(tab), { status: 200, body: { sub: "user1", name: "User One" } });
    assert.equal(op.stats().dpop.proofs.userinfo, 1);
    await tab.evaluate(() => window.tk.keeper.refresh());
    assert.equal(op.issued().at(-1).token_type, "DPoP");
    assert.equal((await op.introspect(op.issued().at(-1).refresh_token)).cnf?.jkt, at.cnf.jkt);
    assert.deepEqual(tab.pageErrors, []);
  } finally {
    await ctx.close();
  }
});

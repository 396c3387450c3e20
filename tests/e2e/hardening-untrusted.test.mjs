// Untrusted input, in headless Chromium against two real dev servers (two
// origins): what an app passes by mistake, and what a hostile script or
// markup of the origin can do — arguments of any type, values sized to
// exhaust memory, tab messages, a <base> of another origin, requests that
// cannot carry the token, an aborted call, the keeper after free(). Each is
// answered with a typed error or ignored; none traps inside wasm, grows its
// memory, or changes the session beyond what an honest tab could.
// Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./lib.mjs";
import { PROVOKED, openTab, startHardeningServer, waitFor } from "./hardening-lib.mjs";

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

const T = { timeout: 60_000 };

/** One tab of a fresh context on the main server; no uncaught or console error but `expected`. */
async function withTab(body, expected = PROVOKED) {
  await main.reset();
  await other.reset();
  const context = await browser.newContext();
  try {
    const tab = await openTab(context, main.url, {}, expected);
    await body(tab);
    assert.deepEqual(tab.errors, [], "uncaught or console errors");
  } finally {
    await context.close();
  }
}

test("an argument of any type is a typed error, never a trap inside wasm", T, async () => {
  await withTab(async (tab) => {
    const r = await tab.evaluate(async () => {
      const of = window.hk.outcome;
      const k = window.hk.keeper;
      const creds = { username: "user1", password: "password1" };
      const memory = () => window.hk.wasm.memory.buffer.byteLength;
      const before = memory();
      const out = {
        onNumber: await of(() => k.on(5, () => {})),
        onHugeLength: await of(() => k.on({ length: 2 ** 31 }, () => {})),
        onFakeString: await of(() => k.on({ length: 3e8, charCodeAt: () => 65 }, () => {})),
        onNotFunction: await of(() => k.on("refresh", 5)),
        loginNumber: await of(() => k.login(5, creds)),
        loginObject: await of(() => k.login({ length: 2 ** 31 }, creds)),
        loginEmpty: await of(() => k.login("", creds)),
        // Ordinary code: fetch takes a URL object, so does login.
        loginUrl: await of(() => k.login(new URL("/login", location.href), creds)),
      };
      out.grownBytes = memory() - before;
      out.authenticated = k.isAuthenticated;
      out.me = (await k.fetch("/api/me")).status;
      return out;
    });
    const expect = {
      onNumber: /^invalid_argument: .*event/,
      onHugeLength: /^invalid_argument: .*event/,
      onFakeString: /^invalid_argument: .*event/,
      onNotFunction: /^invalid_argument: .*callback.*function/,
      loginNumber: /^invalid_argument: .*url/,
      loginObject: /^invalid_argument: .*url/,
      loginEmpty: /^invalid_argument: .*url.*empty/,
      loginUrl: /^ok$/,
    };
    for (const [key, want] of Object.entries(expect)) assert.match(r[key], want, `${key}: ${JSON.stringify(r)}`);
    assert.ok(r.grownBytes < 1 << 20, `wasm memory grew by ${r.grownBytes} bytes`);
    assert.equal(r.authenticated, true);
    assert.equal(r.me, 200);
  });
});

test("values sized to exhaust memory are refused, and tab messages can say no more than a tab may", T, async () => {
  await withTab(async (tab) => {
    await tab.evaluate(() => window.hk.login());
    const r = await tab.evaluate(async () => {
      const k = window.hk.keeper;
      const memory = () => window.hk.wasm.memory.buffer.byteLength;
      const before = memory();
      const gen = k.generation;
      const channel = new BroadcastChannel("tokenkeeper:" + window.hk.channel);
      const post = (m) => {
        try {
          channel.postMessage(m);
        } catch {}
      };
      post(new Array(2 ** 29));
      post("x".repeat(1 << 26));
      post({ v: 1, type: "session", from: "intruder", gen: gen + 1, access: "a".repeat(1 << 24), issuedAt: 0 });
      // A pause as long as a server could never ask for, and a generation
      // behind this one on the ring (2^53 − 1 is just before 1).
      post({ v: 1, type: "backoff", from: "intruder", gen, until: 1e300 });
      post({ v: 1, type: "logout", from: "intruder", gen: Number.MAX_SAFE_INTEGER, reason: "local" });
      await new Promise((resolve) => setTimeout(resolve, 500));
      channel.close();
      const options = (o) => window.hk.construct({ channel: "sized", ...o });
      const sized = {
        allowedOrigins: options({ allowedOrigins: new Array(2 ** 29) }),
        channel: options({ channel: "x".repeat(1 << 26) }),
      };
      let tokens;
      try {
        k.setTokens({ access_token: "a".repeat(1 << 26) });
      } catch (e) {
        tokens = `${e.code}: ${e.message}`;
      }
      let throttled;
      try {
        await k.refresh();
      } catch (e) {
        throttled = e.code === "refresh_throttled" ? e.retryInMs : e.code;
      }
      return {
        grownBytes: memory() - before, sized, tokens, throttled, syncs: window.hk.count("sync"),
        authenticated: k.isAuthenticated, same: k.generation === gen, me: (await k.fetch("/api/me")).status,
      };
    });
    assert.deepEqual(r.sized, { allowedOrigins: "invalid_option: options", channel: "invalid_option: options" }, JSON.stringify(r));
    assert.match(r.tokens, /^invalid_argument: .*too large/);
    assert.ok(r.grownBytes < 8 << 20, `wasm memory grew by ${r.grownBytes} bytes`);
    // The backoff was taken (every tab waits out a Retry-After), for at most 600 s.
    assert.equal(typeof r.throttled, "number", JSON.stringify(r));
    assert.ok(r.throttled <= 600_000, `paused for ${r.throttled} ms`);
    assert.equal(r.authenticated, true);
    assert.equal(r.same, true, "the session is the one the tab had");
    assert.equal(r.me, 200);
  });
});

test("a <base> of another origin cannot redirect the password or the refresh token", T, async () => {
  await withTab(async (tab) => {
    assert.equal(await tab.evaluate((u) => window.hk.setBase(u + "/"), other.url), other.url + "/");
    await tab.evaluate(() => window.hk.create({ channel: "based", refreshUrl: "/token/refresh", logoutUrl: "/logout" }));
    await tab.evaluate(() => window.hk.login("/login"));
    await tab.evaluate(() => window.hk.keeper.refresh());
    await tab.evaluate(() => window.hk.keeper.logout());
    const foreign = (await other.requests()).filter((r) => r.method !== "OPTIONS" && !r.path.startsWith("/admin")).map((r) => r.path);
    assert.deepEqual(foreign, [], "requests that reached the <base>'s origin");
    const own = (await main.requests()).map((r) => r.path);
    for (const path of ["/login", "/token/refresh", "/logout"]) assert.ok(own.includes(path), `${path}: ${own}`);
  });
});

test("a request that cannot carry the token is sent as the browser sends it, without a refresh", T, async () => {
  await withTab(async (tab) => {
    const headers = ["Cookie", "Content-Length", "Host", "Sec-Token", "Proxy-Authorization"];
    const forbidden = await tab.evaluate((list) => list.map((header) => window.hk.construct({ channel: "forbidden", header })), headers);
    assert.deepEqual(forbidden, headers.map(() => "invalid_option: header"));
    await tab.evaluate(() => window.hk.login());
    const before = await main.stats();
    const r = await tab.evaluate(async () => {
      const k = window.hk.keeper;
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await k.fetch("/api/me", { mode: "no-cors" })).status);
      statuses.push((await k.fetch("/api/me")).status);
      return { statuses, expired: window.hk.count("expired"), refreshes: window.hk.count("refresh") };
    });
    // Without the token (a no-cors request carries no such header): 401s, as
    // fetch would get them; then with it, 200.
    assert.deepEqual(r.statuses, [401, 401, 401, 401, 401, 200]);
    assert.deepEqual([r.expired, r.refreshes], [0, 0]);
    assert.equal((await main.stats()).refresh_requests, before.refresh_requests);
  }, /status of 401/);
});

test("an aborted call rejects at once while it waits for a refresh, which goes on for the others", T, async () => {
  await withTab(async (tab) => {
    await main.config({ access_ttl_ms: 1200 });
    await tab.evaluate(() => window.hk.login());
    // The next refresh (the timer's, ahead of expiry) takes 2.5 s.
    await main.fault({ kind: "delay", delay_ms: 2500 });
    const r = await tab.evaluate(async () => {
      const k = window.hk.keeper;
      const order = [];
      k.on("refresh", () => order.push("refreshed"));
      // Past the expiry, while the slow refresh is in flight: calls wait for it.
      await new Promise((resolve) => setTimeout(resolve, 1300));
      const controller = new AbortController();
      const aborted = k.fetch("/api/me", { signal: controller.signal }).then(
        (res) => order.push(`answered ${res.status}`),
        (e) => order.push(`rejected ${e.name}`),
      );
      const waiting = k.fetch("/api/me").then((res) => order.push(`other ${res.status}`));
      setTimeout(() => controller.abort(), 200);
      await Promise.all([aborted, waiting]);
      return order;
    });
    assert.deepEqual(r, ["rejected AbortError", "refreshed", "other 200"]);
  });
});

test("after free(), every call says freed, and free() again does nothing", T, async () => {
  await withTab(async (tab) => {
    await tab.evaluate(() => window.hk.login());
    const r = await tab.evaluate(async () => {
      const of = window.hk.outcome;
      const k = window.hk.keeper;
      const code = async (f) => (await of(f)).split(":")[0];
      k.free();
      return {
        again: await code(() => k.free()),
        dispose: await code(() => k[Symbol.dispose]()),
        ready: await code(() => k.ready()),
        login: await code(() => k.login("/login", { username: "user1", password: "password1" })),
        fetch: await code(() => k.fetch("/api/me")),
        token: await code(() => k.getAccessToken()),
        refresh: await code(() => k.refresh()),
        logout: await code(() => k.logout()),
        setTokens: await code(() => k.setTokens({ access_token: "a" })),
        on: await code(() => k.on("refresh", () => {})),
        getters: [k.isAuthenticated, k.expiresAt, k.refreshAt, typeof k.generation],
      };
    });
    const { getters, ...calls } = r;
    assert.deepEqual(calls, {
      again: "ok", dispose: "ok", ready: "freed", login: "freed", fetch: "freed", token: "freed",
      refresh: "freed", logout: "freed", setTokens: "freed", on: "freed",
    });
    assert.deepEqual(getters, [false, undefined, undefined, "number"]);
    const logins = (await main.requests()).filter((q) => q.path === "/login");
    assert.equal(logins.length, 1, "no credentials sent after free()");
  });
});

test("fetch works passed around, and a listener's exception is reported, not swallowed", T, async () => {
  await withTab(async (tab) => {
    await tab.evaluate(() => {
      window.hk.keeper.on("change", () => {
        throw new Error("a listener broke");
      });
      window.hk.after = 0;
      window.hk.keeper.on("change", () => window.hk.after++);
    });
    await tab.evaluate(() => window.hk.login());
    const r = await tab.evaluate(async () => {
      const f = window.hk.keeper.fetch;
      const { fetch } = window.hk.keeper;
      return [(await f("/api/me")).status, (await fetch("/api/me", {})).status, window.hk.after > 0];
    });
    assert.deepEqual(r, [200, 200, true], "fetch unbound; the listener after the broken one still ran");
    await waitFor(() => tab.errors.some((e) => e.includes("a listener broke")), "the listener's exception reported");
    tab.errors = tab.errors.filter((e) => !e.includes("a listener broke"));
  });
});

test("options a browser would resolve silently, and token lifetimes of the wrong kind, are refused", T, async () => {
  await withTab(async (tab) => {
    const r = await tab.evaluate(() => {
      const option = (o) => window.hk.construct({ channel: "options", ...o });
      const k = window.hk.keeper;
      const lifetime = (expires_in) => {
        try {
          k.setTokens({ access_token: "a.b.c", expires_in });
          return "ok";
        } catch (e) {
          return e.code;
        }
      };
      // A JWT issued an hour ago that expired ten seconds ago, restored.
      const b64 = (o) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
      const s = Math.floor(Date.now() / 1000);
      const jwt = `${b64({ alg: "none" })}.${b64({ iat: s - 3600, exp: s - 10 })}.sig`;
      k.setTokens({ access_token: jwt });
      const restoredExpired = k.expiresAt <= Date.now();
      return {
        origins: ["*", "", "api.example.com", "/", "https://api.example.com/v1"].map((o) => option({ allowedOrigins: [o] })),
        urls: ["", "  "].map((refreshUrl) => option({ refreshUrl })),
        renew: option({ renewHeader: "Set-Cookie" }),
        lifetimes: [NaN, Infinity, "Infinity", true, -5, "soon"].map(lifetime),
        fine: [60, "60", null, undefined].map(lifetime),
        restoredExpired,
      };
    });
    assert.deepEqual(r.origins, Array(5).fill("invalid_option: allowedOrigins"));
    assert.deepEqual(r.urls, ["invalid_option: refreshUrl", "invalid_option: refreshUrl"]);
    assert.equal(r.renew, "invalid_option: renewHeader");
    assert.deepEqual(r.lifetimes, Array(6).fill("invalid_token_response"));
    assert.deepEqual(r.fine, ["ok", "ok", "ok", "ok"]);
    assert.equal(r.restoredExpired, true, "a restored token past its exp is expired, whatever its iat");
  });
});

// The page of the hardening end-to-end tests (tests/e2e/hardening-*.test.mjs):
// one TokenKeeper per tab, made and driven from Playwright through window.hk.
// It records every event and every rejection, so that the tests can check
// what the app sees (statuses, errors, events) and what it must never see
// (tokens).
import init, { TokenKeeper, isTokenKeeperError } from "/pkg/tokenkeeper.js";

// The module's exports: the tests read its memory's size.
const wasm = await init();

/** An error or event detail as plain data: every own property, plus message and stack. */
function plain(value) {
  if (value === null || typeof value !== "object") return { value: String(value) };
  const out = {};
  for (const key of Object.getOwnPropertyNames(value)) {
    const v = value[key];
    out[key] = typeof v === "object" && v !== null ? JSON.parse(JSON.stringify(v)) : v;
  }
  if (value instanceof Error) {
    out.string = String(value);
    out.isTokenKeeperError = isTokenKeeperError(value);
  }
  return out;
}

const hk = {
  wasm,
  keeper: null,
  channel: null,
  /** Every event: {name, at, detail}. */
  events: [],
  /** Every rejection a call saw (as plain data). */
  errors: [],
  /** Makes this tab's keeper; `options` go over the page's defaults. */
  create(options = {}) {
    hk.channel = options.channel ?? "hardening";
    hk.keeper = new TokenKeeper({ refreshUrl: "/token/refresh", channel: hk.channel, ...options });
    for (const name of ["refresh", "refresh-error", "expired", "logout", "change", "sync"]) {
      hk.keeper.on(name, (detail) => hk.events.push({ name, at: Date.now(), detail: plain(detail) }));
    }
  },
  login: (url = "/login", password = "password1") => hk.keeper.login(url, { username: "user1", password }),
  ready: () => hk.keeper.ready(),
  /**
   * What `new TokenKeeper(options)` (on the page's refresh URL, freed at
   * once) ends in: "ok", or "<code>: <option>" of what it threw.
   */
  construct(options) {
    try {
      new TokenKeeper({ refreshUrl: "/token/refresh", ...options }).free();
      return "ok";
    } catch (e) {
      return `${e.code}: ${e.option}`;
    }
  },
  /** What calling `f` ends in: "ok", "<code>: <message>" for a TokenKeeperError, else "<name>: <message>". */
  async outcome(f) {
    try {
      await f();
      return "ok";
    } catch (e) {
      return (e && e.name === "TokenKeeperError" ? e.code : e && e.name) + ": " + (e && e.message);
    }
  },
  /** Runs `f`, recording a rejection: resolves {ok, value} or {ok: false, error}. */
  async settle(f) {
    try {
      return { ok: true, value: await f() };
    } catch (e) {
      const error = plain(e);
      hk.errors.push(error);
      return { ok: false, error };
    }
  },
  /** One keeper.fetch: the status (and where it ended), or the rejection. */
  async call(input, init) {
    const at = Date.now();
    const r = await hk.settle(async () => {
      const res = await hk.keeper.fetch(input, init);
      return { status: res.status, type: res.type, redirected: res.redirected, url: res.url };
    });
    return { at, ...r };
  },
  /**
   * GET /api/me: the status, the server's view of the token (`token_exp`),
   * and the keeper's own view (`expiresAt`, in this page's clock) of the
   * token it attached when the generation did not change during the call.
   */
  async me() {
    const before = hk.keeper.generation;
    const r = await hk.settle(async () => {
      const res = await hk.keeper.fetch("/api/me");
      return { status: res.status, body: res.status === 200 ? await res.json() : null };
    });
    return { ...r, before, after: hk.keeper.generation, expiresAt: hk.keeper.expiresAt, now: Date.now() };
  },
  /** keeper.fetch with the URL given as a `URL` or as a `Request` (`kind`). */
  callWith(kind, url, init) {
    const input = kind === "url" ? new URL(url, location.href) : new Request(url, init);
    return hk.call(input, kind === "url" ? init : undefined);
  },
  /** Adds a <base href> to the document: relative URLs resolve against it from now on. */
  setBase(href) {
    const base = document.createElement("base");
    base.href = href;
    document.head.prepend(base);
    return document.baseURI;
  },
  /** `n` concurrent calls with mixed methods; resolves with a count per outcome. */
  async mixed(n) {
    const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    const calls = Array.from({ length: n }, (_, i) => {
      const method = methods[i % methods.length];
      const init = method === "GET" ? { method } :
        { method, headers: { "content-type": "application/json" }, body: JSON.stringify({ i }) };
      return i % 7 === 3
        ? hk.settle(() => hk.keeper.getAccessToken()).then((r) => (r.ok ? { ok: true, value: { status: "token" } } : r))
        : hk.call(i % 2 ? "/api/me" : `/api/items/${i}`, init);
    });
    const counts = {};
    for (const r of await Promise.all(calls)) {
      const key = r.ok ? String(r.value.status) : r.error.code ?? r.error.name;
      counts[key] = (counts[key] || 0) + 1;
    }
    return counts;
  },
  state() {
    const k = hk.keeper;
    return { isAuthenticated: k.isAuthenticated, expiresAt: k.expiresAt, refreshAt: k.refreshAt,
             generation: k.generation, now: Date.now(), visibility: document.visibilityState };
  },
  count: (name) => hk.events.filter((e) => e.name === name).length,
  /** Everything script in this page can read from storage, as one string. */
  async storage() {
    const dump = (s) => Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))]));
    const databases = indexedDB.databases ? await indexedDB.databases() : [];
    const caches_ = typeof caches === "undefined" ? [] : await caches.keys();
    return JSON.stringify({ local: dump(localStorage), session: dump(sessionStorage), cookie: document.cookie,
                            databases, caches: caches_, name: window.name, history: history.state });
  },
  /**
   * What another script of the origin gets by asking the tabs' channel: it
   * joins it as a new tab would and collects every answer for `ms`.
   */
  async probeChannel(ms = 300) {
    const channel = new BroadcastChannel(`tokenkeeper:${hk.channel}`);
    const answers = [];
    channel.onmessage = (e) => answers.push(e.data);
    channel.postMessage({ v: 1, from: "probe", gen: 0, type: "hello" });
    await new Promise((r) => setTimeout(r, ms));
    channel.close();
    return answers;
  },
  /** How long two 10 ms interval ticks take here: about 20 ms, or a second and more in a throttled tab. */
  async timerDelay() {
    const t0 = performance.now();
    let n = 0;
    await new Promise((r) => {
      const id = setInterval(() => {
        if (++n === 2) {
          clearInterval(id);
          r();
        }
      }, 10);
    });
    return performance.now() - t0;
  },
};
window.hk = hk;
document.getElementById("status").textContent = "ready";

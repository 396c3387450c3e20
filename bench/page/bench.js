// The benchmark page for per-request overhead, the refresh storm and memory:
// one TokenKeeper per tab, driven from bench/run.mjs through window.bench.
// Query: channel (the cross-tab channel), lead (refreshLeadSeconds), style
// (refreshStyle).
import init, { TokenKeeper } from "/pkg/tokenkeeper.js";
import { OAuth2Client, OAuth2Fetch } from "./vendor/oauth2-client.js";

const wasm = await init();
const params = new URLSearchParams(location.search);
const options = { refreshUrl: "/token/refresh", channel: params.get("channel") || "bench" };
if (params.has("lead")) options.refreshLeadSeconds = Number(params.get("lead"));
if (params.has("style")) options.refreshStyle = params.get("style");
const keeper = new TokenKeeper(options);
const credentials = { username: "user1", password: "password1" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The six orders of three variants: each variant goes first, second and last equally often. */
const ORDERS = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]];

/**
 * The three ways to make an authenticated GET of `url`: plain fetch with the
 * bearer set by hand, keeper.fetch, and OAuth2Fetch given the same token.
 */
async function makeVariants(url) {
  const token = await keeper.getAccessToken();
  const stored = { accessToken: token, refreshToken: null, expiresAt: keeper.expiresAt };
  const client = new OAuth2Client({ server: location.origin, clientId: "bench", tokenEndpoint: "/oauth/token" });
  const oauth2 = new OAuth2Fetch({ client, getNewToken: () => stored, getStoredToken: () => stored, storeToken: () => {} });
  const bearer = `Bearer ${token}`;
  return [
    () => fetch(url, { headers: { Authorization: bearer } }),
    () => keeper.fetch(url),
    () => oauth2.fetch(url),
  ];
}

window.bench = {
  keeper,
  login: () => keeper.login("/login", credentials),
  ready: () => keeper.ready(),
  expiresAt: () => keeper.expiresAt,

  /**
   * `n` sequential GETs of `url` through each of plain fetch (bearer set by
   * hand), keeper.fetch and OAuth2Fetch (given the same access token),
   * interleaved call by call in rotating order. Each time covers the call
   * and reading the body. Returns the times in ms per variant.
   */
  async overhead(n, url = "/api/data", warmup = 50) {
    const variants = await makeVariants(url);
    const times = [[], [], []];
    const statuses = {};
    for (let i = -warmup; i < n; i++) {
      for (const v of ORDERS[(i + warmup) % ORDERS.length]) {
        const t0 = performance.now();
        const res = await variants[v]();
        await res.text();
        const dt = performance.now() - t0;
        statuses[res.status] = (statuses[res.status] || 0) + 1;
        if (i >= 0) times[v].push(dt);
      }
    }
    return { plain: times[0], keeper: times[1], oauth2: times[2], statuses, isolated: self.crossOriginIsolated };
  },

  /**
   * The SDKs' own CPU time per call, without the network: window.fetch is
   * replaced by a stub answering at once (a new small JSON Response), and
   * blocks of `block` calls per variant are timed, interleaved in rotating
   * order. Returns µs per call, one figure per block, per variant.
   */
  async cpu(blocks = 30, block = 100, url = "/api/data") {
    const variants = await makeVariants(url);
    const real = window.fetch;
    const stub = () => Promise.resolve(new Response('{"ok":true}', { headers: { "content-type": "application/json" } }));
    const perCall = [[], [], []];
    window.fetch = stub;
    try {
      for (let b = -3; b < blocks; b++) {
        for (const v of ORDERS[(b + 3) % ORDERS.length]) {
          const t0 = performance.now();
          for (let i = 0; i < block; i++) await (await variants[v]()).text();
          const us = ((performance.now() - t0) * 1000) / block;
          if (b >= 0) perCall[v].push(us);
        }
      }
    } finally {
      window.fetch = real;
    }
    return { plain: perCall[0], keeper: perCall[1], oauth2: perCall[2] };
  },

  /**
   * Where each variant's time goes, on the real network: window.fetch is
   * wrapped (for every variant alike) to note when the request is handed to
   * the browser and when its response arrives. Returns, per variant, the ms
   * before dispatch (the SDK's work before the request leaves) and after the
   * response (until the SDK's promise resolves).
   */
  async phases(n = 300, url = "/api/data") {
    const variants = await makeVariants(url);
    const real = window.fetch;
    let dispatched = 0, arrived = 0;
    window.fetch = (...args) => {
      dispatched = performance.now();
      return real(...args).then((r) => ((arrived = performance.now()), r));
    };
    const before = [[], [], []], after = [[], [], []];
    try {
      for (let i = -30; i < n; i++) {
        for (const v of ORDERS[(i + 30) % ORDERS.length]) {
          const t0 = performance.now();
          const res = await variants[v]();
          const t1 = performance.now();
          await res.text();
          if (i >= 0) {
            before[v].push(dispatched - t0);
            after[v].push(t1 - arrived);
          }
        }
      }
    } finally {
      window.fetch = real;
    }
    return ["plain", "keeper", "oauth2"].reduce((o, k, i) => ({ ...o, [k]: { before: before[i], after: after[i] } }), {});
  },

  /**
   * What DPoP costs per call (the server runs with --dpop): `n` sequential
   * GETs of `url` through plain fetch (bearer by hand), the page's Bearer
   * keeper and a DPoP keeper (its own login, its own key), interleaved in
   * rotating order, bodies read; then the CPU per call with fetch stubbed
   * out (the proof is still built and signed: WebCrypto is real). ms, and
   * µs per call per block.
   */
  async dpop(n, url = "/api/data", warmup = 50, blocks = 30, block = 100) {
    const d = new TokenKeeper({ ...options, channel: options.channel + "-dpop", dpop: true });
    await d.login("/login", credentials);
    const bearer = `Bearer ${await keeper.getAccessToken()}`;
    const variants = [() => fetch(url, { headers: { Authorization: bearer } }), () => keeper.fetch(url), () => d.fetch(url)];
    const times = [[], [], []];
    const statuses = [{}, {}, {}];
    for (let i = -warmup; i < n; i++) {
      for (const v of ORDERS[(i + warmup) % ORDERS.length]) {
        const t0 = performance.now();
        const res = await variants[v]();
        await res.text();
        const dt = performance.now() - t0;
        statuses[v][res.status] = (statuses[v][res.status] || 0) + 1;
        if (i >= 0) times[v].push(dt);
      }
    }
    const real = window.fetch;
    const stub = () => Promise.resolve(new Response('{"ok":true}', { headers: { "content-type": "application/json" } }));
    const perCall = [[], [], []];
    window.fetch = stub;
    try {
      for (let b = -3; b < blocks; b++) {
        for (const v of ORDERS[(b + 3) % ORDERS.length]) {
          const t0 = performance.now();
          for (let i = 0; i < block; i++) await (await variants[v]()).text();
          if (b >= 0) perCall[v].push(((performance.now() - t0) * 1000) / block);
        }
      }
    } finally {
      window.fetch = real;
    }
    d.free();
    return { plain: times[0], bearer: times[1], dpop: times[2], statuses, cpu: { plain: perCall[0], bearer: perCall[1], dpop: perCall[2] } };
  },

  /** `n` concurrent keeper.fetch calls; resolves with a count per status. */
  async burst(n, url = "/api/data") {
    const responses = await Promise.all(Array.from({ length: n }, () =>
      keeper.fetch(url).then(async (r) => (await r.arrayBuffer(), r.status), () => "error")));
    const counts = {};
    for (const s of responses) counts[s] = (counts[s] || 0) + 1;
    return counts;
  },

  /** `total` keeper.fetch calls, `concurrency` at a time, bodies read. */
  async fetchMany(total, concurrency = 50) {
    const counts = {};
    for (let done = 0; done < total; done += concurrency) {
      const c = await this.burst(Math.min(concurrency, total - done));
      for (const [k, v] of Object.entries(c)) counts[k] = (counts[k] || 0) + v;
    }
    return counts;
  },

  /**
   * Refreshes under the storm brake (at most 6 attempts per 10 s per
   * keeper): `keepers` keepers at once, each on its own channel, log in, call
   * refresh() `each` times (`gapMs` apart; a keeper takes over the refresh
   * lock it still holds after its broadcast), listen to "refresh", then free().
   */
  async refreshRound(keepers = 20, each = 5, gapMs = 60) {
    let refreshes = 0, events = 0, failures = 0;
    await Promise.all(Array.from({ length: keepers }, async (_, j) => {
      const k = new TokenKeeper({ refreshUrl: "/token/refresh", channel: `mem-${j}` });
      const off = k.on("refresh", () => events++);
      try {
        await k.login("/login", credentials);
        for (let i = 0; i < each; i++) {
          await k.refresh();
          refreshes++;
          await sleep(gapMs);
        }
      } catch {
        failures++;
      }
      off();
      k.free();
    }));
    return { refreshes, events, failures };
  },

  /**
   * Makes `n` keepers (one channel each, as keepers of many widgets or
   * frames would), then frees them all: the time each step takes, in ms.
   */
  manyKeepers(n) {
    const t0 = performance.now();
    const keepers = Array.from({ length: n }, (_, i) => new TokenKeeper({ refreshUrl: "/token/refresh", channel: `many-${i}` }));
    const t1 = performance.now();
    for (const k of keepers) k.free();
    const t2 = performance.now();
    return { create: t1 - t0, free: t2 - t1 };
  },

  /** wasm memory and the JS heap, in bytes. */
  memory() {
    return { wasm: wasm.memory.buffer.byteLength, jsHeap: performance.memory ? performance.memory.usedJSHeapSize : null };
  },
};
window.benchReady = true;
document.getElementById("status").textContent = "ready";

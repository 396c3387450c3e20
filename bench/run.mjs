// `make bench`: tokenkeeper measured, side by side with the JS SDKs people use
// today, in one run. Prints a table and writes bench/results.json. These are
// measurements, not tests: no number fails the run; only a broken harness does
// (exit 1, after writing what it measured).
//
//   node bench/run.mjs                    everything (a few minutes)
//   BENCH_ONLY=size,overhead node bench/run.mjs
//
// Every load goes to the dev auth server on 127.0.0.1, bounded in count.
import { writeFileSync, mkdirSync, cpSync, rmSync } from "node:fs";
import { cpus, loadavg, homedir } from "node:os";
import { join } from "node:path";
import {
  bench, root, out, startServer, launch, openIsolated, sleep, summary, median, round, commit,
} from "./lib.mjs";
import { measureSize } from "./size.mjs";

// The tools `make` puts on PATH (wasm-opt from the root's npm binaryen, twiggy
// and wasm-bindgen from cargo), also when this runs without make.
process.env.PATH = [join(root, "node_modules/.bin"), join(homedir(), ".cargo/bin"), process.env.PATH].join(":");

const SECTIONS = ["size", "startup", "overhead", "dpop", "handoff", "storm", "memory", "keepers"];
const only = (process.env.BENCH_ONLY || SECTIONS.join(",")).split(",").map((s) => s.trim());

/** The sizes of the runs, all bounded. */
const N = {
  overheadCalls: 1000, // per variant, sequential
  startupLoads: 10, // page loads per SDK
  handoffTabs: 15, // new tabs per variant
  stormTabs: 8,
  stormCalls: 50, // per tab, concurrent
  stormRotations: 5,
  stormTtlMs: 2000,
  memoryFetchBlocks: 10, // × 1000 keeper.fetch calls
  memoryRefreshRounds: 10, // × 20 keepers × 5 refreshes
  manyKeepers: [1000, 10000], // keepers made, then freed, in one page
};

const www = join(out, "www");
const results = {
  commit: commit(),
  date: new Date().toISOString(),
  browser: null,
  node: process.version,
  cpus: cpus().length,
  load_average_at_start: loadavg().map((x) => Number(x.toFixed(2))),
  units: "sizes in bytes, times in ms; kB = 1000 bytes in the printed table",
};
const failures = [];

async function section(name, fn, always = false) {
  if (!always && !only.includes(name)) return;
  const started = Date.now();
  process.stderr.write(`bench: ${name}…`);
  try {
    results[name] = await fn();
    process.stderr.write(` ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (e) {
    process.stderr.write(" FAILED\n");
    console.error(e);
    failures.push(name);
    results[name] = { error: String(e && e.stack ? e.stack : e) };
  }
}

// --- 1. shipped size --------------------------------------------------------
// Always measured: it also bundles the competitors the pages load.
rmSync(www, { recursive: true, force: true });
cpSync(join(bench, "page"), www, { recursive: true });
await section("size", measureSize, true);
if (!results.size || results.size.error) {
  console.error("bench: the size step failed, and the pages need its bundles");
  process.exit(1);
}

const browserNeeded = SECTIONS.slice(1).some((s) => only.includes(s));
const browser = browserNeeded ? await launch() : null;
if (browser) results.browser = `Chromium ${browser.version()}`;

const sdks = ["tokenkeeper", "@badgateway/oauth2-client", "keycloak-js", "oidc-client-ts", "@okta/okta-auth-js", "@auth0/auth0-spa-js"];

// --- 5. start-up ------------------------------------------------------------
// A fresh browser context (cold caches) for every page load.
await section("startup", async () => {
  const server = await startServer({ www });
  try {
    const runs = {};
    for (let i = 0; i < N.startupLoads; i++) {
      // Round-robin over the SDKs, so drift hits them all alike.
      for (const sdk of ["tokenkeeper-parts", "browser-baseline", ...sdks]) {
        const context = await browser.newContext();
        const page = await openIsolated(context, `${server.url}/startup.html?sdk=${encodeURIComponent(sdk)}`, { go: true });
        const r = await page.evaluate(() => window.result);
        await context.close();
        (runs[sdk] ||= []).push(r);
      }
    }
    const result = {};
    for (const [sdk, rs] of Object.entries(runs)) {
      const errors = rs.filter((r) => r.error);
      if (errors.length) {
        result[sdk] = { error: errors[0].error };
        continue;
      }
      result[sdk] = Object.fromEntries(Object.keys(rs[0]).map((k) => [k, summary(rs.map((r) => r[k]))]));
    }
    return result;
  } finally {
    server.stop();
  }
});

// --- 2. per-request overhead ------------------------------------------------
await section("overhead", async () => {
  const server = await startServer({ www, flags: ["--access-ttl", "1h"] });
  const context = await browser.newContext();
  try {
    const page = await openIsolated(context, `${server.url}/index.html?channel=overhead`);
    await page.evaluate(() => window.bench.login());
    const before = await server.stats();
    const r = await page.evaluate((n) => window.bench.overhead(n), N.overheadCalls);
    const after = await server.stats();
    const c = await page.evaluate(() => window.bench.cpu());
    const ph = await page.evaluate(() => window.bench.phases());
    const phase = (k) => ({ before_dispatch: median(ph[k].before), after_response: median(ph[k].after) });
    const s = { plain: summary(r.plain), keeper: summary(r.keeper), oauth2: summary(r.oauth2) };
    // The same round's calls, paired: what each call adds to plain fetch.
    const added = (xs) => median(xs.map((x, i) => x - r.plain[i]));
    return {
      calls_per_variant: N.overheadCalls,
      resource: "GET /api/data (small JSON), body read",
      timer_resolution: r.isolated ? "5 µs (cross-origin isolated)" : "100 µs (not isolated)",
      statuses: r.statuses,
      token_endpoint_requests: after.refresh_requests - before.refresh_requests,
      ...s,
      ratio_to_plain: {
        keeper_median: s.keeper.median / s.plain.median,
        keeper_p95: s.keeper.p95 / s.plain.p95,
        oauth2_median: s.oauth2.median / s.plain.median,
        oauth2_p95: s.oauth2.p95 / s.plain.p95,
      },
      keeper_to_oauth2_median: s.keeper.median / s.oauth2.median,
      added_per_call_paired_median: { keeper: added(r.keeper), oauth2: added(r.oauth2) },
      cpu_us_per_call_fetch_stubbed: { plain: summary(c.plain), keeper: summary(c.keeper), oauth2: summary(c.oauth2) },
      phases_median_ms: { plain: phase("plain"), keeper: phase("keeper"), oauth2: phase("oauth2") },
    };
  } finally {
    await context.close();
    server.stop();
  }
});

// --- 2b. DPoP's cost per call ----------------------------------------------
await section("dpop", async () => {
  const server = await startServer({ www, flags: ["--access-ttl", "1h", "--dpop"] });
  const context = await browser.newContext();
  try {
    const page = await openIsolated(context, `${server.url}/index.html?channel=dpop`);
    await page.evaluate(() => window.bench.login());
    const before = await server.stats();
    const r = await page.evaluate((n) => window.bench.dpop(n), N.overheadCalls);
    const after = await server.stats();
    const s = { plain: summary(r.plain), bearer: summary(r.bearer), dpop: summary(r.dpop) };
    const paired = (xs, ys) => median(xs.map((x, i) => x - ys[i]));
    return {
      calls_per_variant: N.overheadCalls,
      resource: "GET /api/data (small JSON), body read; dev server --dpop",
      statuses: r.statuses,
      proofs_checked_by_the_server: after.dpop_proofs - before.dpop_proofs,
      proofs_refused: after.dpop_refused - before.dpop_refused,
      ...s,
      dpop_to_bearer_median: s.dpop.median / s.bearer.median,
      dpop_to_bearer_p95: s.dpop.p95 / s.bearer.p95,
      added_per_call_paired_median_ms: paired(r.dpop, r.bearer),
      cpu_us_per_call_fetch_stubbed: { plain: summary(r.cpu.plain), bearer: summary(r.cpu.bearer), dpop: summary(r.cpu.dpop) },
    };
  } finally {
    await context.close();
    server.stop();
  }
});

// --- 4. new-tab handoff -----------------------------------------------------
await section("handoff", async () => {
  /** Opens `n` new tabs one after another; each measures itself; returns the runs and token-endpoint requests per tab. */
  async function tabs(server, context, query) {
    const runs = [];
    for (let i = 0; i < N.handoffTabs; i++) {
      const before = await server.stats();
      const page = await openIsolated(context, `${server.url}/handoff.html?${query}`, { go: true });
      const r = await page.evaluate(() => window.result);
      const after = await server.stats();
      r.tokenRequests = after.refresh_requests - before.refresh_requests + after.logins - before.logins;
      runs.push(r);
      await page.close();
    }
    const pick = (k) => summary(runs.map((r) => r[k]));
    return {
      tabs: runs.length,
      all_authenticated: runs.every((r) => r.authenticated && r.status === 200),
      token_endpoint_requests_per_tab: median(runs.map((r) => r.tokenRequests)),
      total: pick("total"), init: pick("init"), construct: pick("construct"), ready: pick("ready"), fetch: pick("fetch"),
    };
  }
  // Joining: one tab logged in stays open; every new tab asks it over the channel.
  const json = await startServer({ www, flags: ["--access-ttl", "1h"] });
  const c1 = await browser.newContext();
  let join_;
  try {
    const opener = await openIsolated(c1, `${json.url}/index.html?channel=handoff`);
    await opener.evaluate(() => window.bench.login());
    join_ = await tabs(json, c1, "channel=handoff");
  } finally {
    await c1.close();
    json.stop();
  }
  // Over the network: no other tab is open; the refresh token is in the
  // HttpOnly cookie, so the new tab's ready() waits for answers that do not
  // come, then refreshes with the cookie.
  const cookie = await startServer({ www, flags: ["--access-ttl", "1h", "--refresh-cookie"] });
  const c2 = await browser.newContext();
  let network;
  try {
    const opener = await openIsolated(c2, `${cookie.url}/index.html?channel=handoff&style=cookie`);
    await opener.evaluate(() => window.bench.login());
    await opener.close();
    network = await tabs(cookie, c2, "channel=handoff&style=cookie");
  } finally {
    await c2.close();
    cookie.stop();
  }
  return { join: join_, network_refresh: network, ratio_total: join_.total.median / network.total.median };
});

// --- 3. refresh storm -------------------------------------------------------
await section("storm", async () => {
  const ttl = N.stormTtlMs;
  const server = await startServer({ www, flags: ["--access-ttl", `${ttl}ms`] });
  const context = await browser.newContext();
  try {
    // refreshLeadSeconds 0: no refresh ahead of expiry, so the calls really
    // meet the expiry (with the default lead the timer refreshes quietly first).
    const query = "channel=storm&lead=0";
    const pages = [await openIsolated(context, `${server.url}/index.html?${query}`)];
    await pages[0].evaluate(() => window.bench.login());
    for (let i = 1; i < N.stormTabs; i++) {
      const p = await openIsolated(context, `${server.url}/index.html?${query}`);
      if (!(await p.evaluate(() => window.bench.ready()))) throw new Error(`tab ${i} did not join`);
      pages.push(p);
    }
    const rotations = [];
    const start = await server.stats();
    for (let r = 0; r < N.stormRotations; r++) {
      const expiresAt = await pages[0].evaluate(() => window.bench.expiresAt());
      // Fire every tab's calls just before expiry: they straddle it.
      await sleep(Math.max(0, expiresAt - 15 - Date.now()));
      const before = await server.stats();
      const counts = await Promise.all(pages.map((p) => p.evaluate((n) => window.bench.burst(n), N.stormCalls)));
      // Let the rotation settle in every tab before reading the counters.
      for (let i = 0; i < 80; i++) {
        const exps = await Promise.all(pages.map((p) => p.evaluate(() => window.bench.expiresAt())));
        if (exps.every((e) => e > expiresAt)) break;
        await sleep(25);
      }
      await sleep(100);
      const after = await server.stats();
      const seen = {};
      for (const c of counts) for (const [k, v] of Object.entries(c)) seen[k] = (seen[k] || 0) + v;
      rotations.push({
        calls: Object.values(seen).reduce((a, b) => a + b, 0),
        statuses_seen_by_app: seen,
        app_401s: seen["401"] || 0,
        app_failures: Object.entries(seen).filter(([k]) => k !== "200").reduce((a, [, v]) => a + v, 0),
        rotations: after.refreshes - before.refreshes,
        token_endpoint_requests: after.refresh_requests - before.refresh_requests,
        reuse_detections: after.reuse_detections - before.reuse_detections,
        server_401s_replayed: after.api_401 - before.api_401,
      });
    }
    const end = await server.stats();
    const sum = (k) => rotations.reduce((a, r) => a + r[k], 0);
    const errors = pages.flatMap((p) => p.errors);
    // Totals over the whole run (a rotation between two bursts counts too).
    return {
      tabs: N.stormTabs, calls_per_tab: N.stormCalls, access_ttl_ms: ttl,
      rotations: end.refreshes - start.refreshes,
      token_endpoint_requests: end.refresh_requests - start.refresh_requests,
      token_endpoint_requests_per_rotation:
        (end.refresh_requests - start.refresh_requests) / Math.max(1, end.refreshes - start.refreshes),
      reuse_detections: end.reuse_detections - start.reuse_detections,
      app_401s: sum("app_401s"),
      app_failures: sum("app_failures"),
      server_401s_replayed: end.api_401 - start.api_401,
      calls: sum("calls"),
      page_errors: errors,
      per_burst: rotations,
    };
  } finally {
    await context.close();
    server.stop();
  }
});

// --- 6. memory --------------------------------------------------------------
/** Least-squares slope of the V8 heap over `key` (bytes per call or per refresh). */
function slope(points, key) {
  const xs = points.map((p) => p[key]), ys = points.map((p) => p.v8HeapUsed);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length, my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den ? num / den : 0;
}

await section("memory", async () => {
  const server = await startServer({ www, flags: ["--access-ttl", "1h"] });
  const context = await browser.newContext();
  try {
    const page = await openIsolated(context, `${server.url}/index.html?channel=memory`);
    const cdp = await context.newCDPSession(page);
    const samples = [];
    const sample = async (label, fetches, refreshes) => {
      for (let i = 0; i < 3; i++) await cdp.send("HeapProfiler.collectGarbage");
      const m = await page.evaluate(() => window.bench.memory());
      const h = await cdp.send("Runtime.getHeapUsage");
      samples.push({ label, fetches, refreshes, wasm: m.wasm, jsHeap: m.jsHeap, v8HeapUsed: h.usedSize });
    };
    await page.evaluate(() => window.bench.login());
    // Warm-up: allocator and heap reach their working size.
    await page.evaluate(() => window.bench.fetchMany(1000));
    await page.evaluate(() => window.bench.refreshRound(20, 5));
    await sample("after warm-up", 0, 0);
    let fetches = 0, refreshes = 0;
    const statuses = {};
    for (let b = 0; b < N.memoryFetchBlocks; b++) {
      const c = await page.evaluate(() => window.bench.fetchMany(1000));
      for (const [k, v] of Object.entries(c)) statuses[k] = (statuses[k] || 0) + v;
      fetches += 1000;
      await sample(`${fetches} fetches`, fetches, refreshes);
    }
    let keepers = 0, refreshFailures = 0;
    for (let r = 0; r < N.memoryRefreshRounds; r++) {
      const c = await page.evaluate(() => window.bench.refreshRound(20, 5));
      refreshes += c.refreshes;
      refreshFailures += c.failures;
      keepers += 20;
      await sample(`${refreshes} refreshes`, fetches, refreshes);
    }
    const first = samples[0], afterFetch = samples[N.memoryFetchBlocks], last = samples.at(-1);
    const growth = (a, b) => ({ wasm: b.wasm - a.wasm, jsHeap: b.jsHeap - a.jsHeap, v8HeapUsed: b.v8HeapUsed - a.v8HeapUsed });
    return {
      fetches, refreshes, keepers_created_and_freed: keepers, refresh_failures: refreshFailures, statuses,
      growth_over_fetches: growth(first, afterFetch),
      growth_over_refreshes: growth(afterFetch, last),
      bytes_per_fetch: (afterFetch.v8HeapUsed - first.v8HeapUsed) / fetches,
      bytes_per_refresh: (last.v8HeapUsed - afterFetch.v8HeapUsed) / Math.max(1, refreshes),
      // A leak grows in a line; caches warming up level off. The slope
      // (least squares) over the second half of each series tells them apart.
      second_half_bytes_per_fetch: slope(samples.slice(N.memoryFetchBlocks / 2, N.memoryFetchBlocks + 1), "fetches"),
      second_half_bytes_per_refresh: slope(samples.slice(N.memoryFetchBlocks + N.memoryRefreshRounds / 2), "refreshes"),
      samples,
    };
  } finally {
    await context.close();
    server.stop();
  }
});

// --- 7. many keepers in one page ----------------------------------------------
// Each size in a fresh page: the cost per keeper of making and freeing n of
// them. Flat when both are linear; a cost that grows with n (listeners on
// one shared target, each add and remove scanning the others) shows as a
// ratio well above 1.
await section("keepers", async () => {
  const server = await startServer({ www, flags: ["--access-ttl", "1h"] });
  const context = await browser.newContext();
  try {
    const runs = [];
    for (const n of N.manyKeepers) {
      const page = await openIsolated(context, `${server.url}/index.html?channel=many`);
      const r = await page.evaluate((k) => window.bench.manyKeepers(k), n);
      runs.push({ n, create_ms: r.create, free_ms: r.free, create_us_per_keeper: (r.create / n) * 1000, free_us_per_keeper: (r.free / n) * 1000 });
      await page.close();
    }
    const [small, large] = [runs[0], runs.at(-1)];
    return {
      runs,
      per_keeper_ratio: {
        create: large.create_us_per_keeper / small.create_us_per_keeper,
        free: large.free_us_per_keeper / small.free_us_per_keeper,
      },
    };
  } finally {
    await context.close();
    server.stop();
  }
});

await browser?.close();
results.load_average_at_end = loadavg().map((x) => Number(x.toFixed(2)));

// --- the table --------------------------------------------------------------
const kb = (b) => (b / 1000).toFixed(1);
const ms = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const x2 = (x) => `${x.toFixed(2)}×`;
const lines = [];
const say = (s = "") => lines.push(s);
const table = (head, rows) => {
  const w = head.map((h, i) => Math.max(String(h).length, ...rows.map((r) => String(r[i]).length)));
  const fmt = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join("  ");
  say(fmt(head));
  say(w.map((n) => "-".repeat(n)).join("  "));
  rows.forEach((r) => say(fmt(r)));
  say();
};

say(`tokenkeeper bench — ${results.commit}, ${results.browser ?? "no browser"}, ${results.date.slice(0, 10)}, ` +
    `${results.cpus} cores (load average ${results.load_average_at_start[0]} at the start)`);
say();
const S = results.size;
if (S && !S.error) {
  const ref = S.others.find((o) => o.name === "oidc-client-ts");
  say("1. Shipped size (wasm + JS glue; competitors: esbuild --bundle --minify --format=esm, main client class) kB");
  table(["", "version", "raw", "gzip -9", "brotli", "gz vs oidc-client-ts"], [
    ...S.ours.map((o) => [o.name, o.version, kb(o.total.raw), kb(o.total.gzip), kb(o.total.brotli), x2(o.total.gzip / ref.total.gzip)]),
    ["  of which the wasm", "", kb(S.ours[0].wasm.raw), kb(S.ours[0].wasm.gzip), kb(S.ours[0].wasm.brotli), ""],
    ...S.others.map((o) => [o.name, o.version, kb(o.total.raw), kb(o.total.gzip), kb(o.total.brotli), x2(o.total.gzip / ref.total.gzip)]),
  ]);
  say(`   target ≤ 16 kB gzipped in all: ${kb(S.ours[0].total.gzip)} kB (${S.ours[0].total.gzip <= 16000 ? "met" : "not met"})`);
  const B = S.breakdown;
  if (B.skipped) say(`   where the bytes go: skipped (${B.skipped})`);
  else {
    say(`   where the wasm's ${kb(B.bytes_without_names)} kB go (twiggy top, wasm-opt -Oz, names kept for the analysis only):`);
    for (const g of B.groups.slice(0, 10)) say(`     ${kb(g.bytes).padStart(5)} kB  ${g.name}`);
    say("   largest items:");
    for (const t of B.top.slice(0, 8)) say(`     ${kb(t.bytes).padStart(5)} kB  ${t.name.replace(/::h[0-9a-f]{16}$/, "").slice(0, 100)}`);
  }
  say();
}
const U = results.startup;
if (U && !U.error) {
  say(`5. Start-up: median of ${N.startupLoads} fresh page loads, ms`);
  const p = U["tokenkeeper-parts"];
  if (p && !p.error) {
    say(`   tokenkeeper: compile ${ms(p.compile.median)} + instantiate ${ms(p.instantiate.median)} + constructor ${ms(p.construct.median)} = ${ms(p.total.median)} ms (p95 ${ms(p.total.p95)}; target ≤ 3 ms: ${p.total.median <= 3 ? "met" : "not met"})`);
    const b = U["browser-baseline"];
    say(`   the first constructor pays first-call costs (mostly V8's lazy compilation of the wasm functions on its path: with --no-wasm-lazy-compilation it takes about half); a second one takes ${ms(p.second_construct.median)} ms` +
        (b && !b.error ? `; a fresh page's first BroadcastChannel alone ${ms(b.first_broadcast_channel.median)} ms` : ""));
  }
  const base = U.tokenkeeper && !U.tokenkeeper.error ? U.tokenkeeper.total.median : NaN;
  table(["load + construct (import, init(), new)", "load", "construct", "total", "p95", "vs tokenkeeper"],
    sdks.map((s) => (U[s] && !U[s].error
      ? [s, ms(U[s].load.median), ms(U[s].construct.median), ms(U[s].total.median), ms(U[s].total.p95), x2(U[s].total.median / base)]
      : [s, "error", "", "", "", ""])));
}
const O = results.overhead;
if (O && !O.error) {
  say(`2. Per-request overhead: ${O.calls_per_variant} sequential ${O.resource} per variant, interleaved, timer ${O.timer_resolution}; ms`);
  const row = (name, s, r95, rmed, add) => [name, ms(s.median), ms(s.p95), rmed, r95, add];
  table(["", "median", "p95", "median vs plain", "p95 vs plain", "added (paired median)"], [
    row("plain fetch (bearer by hand)", O.plain, "1.00×", "1.00×", "—"),
    row("keeper.fetch", O.keeper, x2(O.ratio_to_plain.keeper_p95), x2(O.ratio_to_plain.keeper_median), `${(O.added_per_call_paired_median.keeper * 1000).toFixed(0)} µs`),
    row("OAuth2Fetch (oauth2-client)", O.oauth2, x2(O.ratio_to_plain.oauth2_p95), x2(O.ratio_to_plain.oauth2_median), `${(O.added_per_call_paired_median.oauth2 * 1000).toFixed(0)} µs`),
  ]);
  const C = O.cpu_us_per_call_fetch_stubbed;
  say(`   CPU per call with fetch stubbed out (no network; blocks of 100, median µs): plain ${C.plain.median.toFixed(1)}, ` +
      `keeper.fetch ${C.keeper.median.toFixed(1)}, OAuth2Fetch ${C.oauth2.median.toFixed(1)}`);
  const P = O.phases_median_ms, us = (x) => `${(x * 1000).toFixed(0)} µs`;
  say(`   on the network, before the request leaves / after its response arrives (median): plain ${us(P.plain.before_dispatch)} / ${us(P.plain.after_response)}, ` +
      `keeper.fetch ${us(P.keeper.before_dispatch)} / ${us(P.keeper.after_response)}, OAuth2Fetch ${us(P.oauth2.before_dispatch)} / ${us(P.oauth2.after_response)}`);
  say(`   target ≤ 1.05× plain fetch: ${x2(O.ratio_to_plain.keeper_median)} (${O.ratio_to_plain.keeper_median <= 1.05 ? "met" : "not met"}); no worse than OAuth2Fetch: ${x2(O.keeper_to_oauth2_median)} (${O.keeper_to_oauth2_median <= 1 ? "met" : "not met"})`);
  say();
}
const D = results.dpop;
if (D && !D.error) {
  say(`2b. DPoP's cost: ${D.calls_per_variant} sequential ${D.resource} per variant, interleaved; ms`);
  table(["", "median", "p95", "vs Bearer keeper (median)", "CPU per call, fetch stubbed (µs)"], [
    ["plain fetch (bearer by hand)", ms(D.plain.median), ms(D.plain.p95), "—", D.cpu_us_per_call_fetch_stubbed.plain.median.toFixed(1)],
    ["keeper.fetch, Bearer", ms(D.bearer.median), ms(D.bearer.p95), "1.00×", D.cpu_us_per_call_fetch_stubbed.bearer.median.toFixed(1)],
    ["keeper.fetch, DPoP (proof built, signed, checked)", ms(D.dpop.median), ms(D.dpop.p95), x2(D.dpop_to_bearer_median), D.cpu_us_per_call_fetch_stubbed.dpop.median.toFixed(1)],
  ]);
  say(`   added per call by DPoP (paired median): ${(D.added_per_call_paired_median_ms * 1000).toFixed(0)} µs; ` +
      `the server checked ${D.proofs_checked_by_the_server} proofs, refused ${D.proofs_refused}`);
  say(`   (on the network the dev server's ES256 check, a debug build, is most of the difference; the CPU column is the SDK's own work: the proof built in wasm, signed by WebCrypto)`);
  say();
}
const T = results.storm;
if (T && !T.error) {
  say(`3. Refresh storm: ${T.tabs} tabs × ${T.calls_per_tab} concurrent keeper.fetch calls fired 15 ms before expiry, ${T.per_burst.length} expiries (${T.calls} calls)`);
  table(["", "measured", "limit"], [
    ["token-endpoint requests per rotation", `${T.token_endpoint_requests_per_rotation.toFixed(2)} (${T.token_endpoint_requests}/${T.rotations})`, "1"],
    ["reuse detections", T.reuse_detections, "0"],
    ["401s seen by the app", T.app_401s, "0"],
    ["other failures seen by the app", T.app_failures - T.app_401s, "0"],
    ["401s answered by the server (replayed)", T.server_401s_replayed, "—"],
  ]);
}
const H = results.handoff;
if (H && !H.error) {
  say(`4. New-tab handoff: init() → first authenticated keeper.fetch in a new tab, median of ${H.join.tabs} tabs, ms`);
  const row = (name, h) => [name, ms(h.total.median), ms(h.total.p95), ms(h.init.median), ms(h.ready.median), ms(h.fetch.median), h.token_endpoint_requests_per_tab, h.all_authenticated ? "yes" : "NO"];
  table(["", "total", "p95", "init()", "ready()", "fetch", "token requests", "authenticated"], [
    row("joins an open tab (channel)", H.join),
    row("alone: refresh over the network (cookie)", H.network_refresh),
  ]);
  say(`   target 0 token requests and ≤ 20 ms: ${H.join.token_endpoint_requests_per_tab} and ${ms(H.join.total.median)} ms (${H.join.token_endpoint_requests_per_tab === 0 && H.join.total.median <= 20 ? "met" : "not met"}); ${x2(H.ratio_total)} of the network path`);
  say();
}
const M = results.memory;
if (M && !M.error) {
  say(`6. Memory after GC: ${M.fetches} keeper.fetch calls, then ${M.refreshes} refreshes (${M.keepers_created_and_freed} keepers created and freed)`);
  const first = M.samples[0], mid = M.samples[N.memoryFetchBlocks], last = M.samples.at(-1);
  const row = (s) => [s.label, kb(s.wasm), kb(s.jsHeap ?? NaN), kb(s.v8HeapUsed)];
  table(["", "wasm memory kB", "JS heap kB", "V8 heap used kB"], [row(first), row(mid), row(last)]);
  say(`   growth: ${M.growth_over_fetches.wasm} B wasm and ${kb(M.growth_over_fetches.v8HeapUsed)} kB JS over ${M.fetches} fetches (${M.bytes_per_fetch.toFixed(1)} B/call); ` +
      `${M.growth_over_refreshes.wasm} B wasm and ${kb(M.growth_over_refreshes.v8HeapUsed)} kB JS over ${M.refreshes} refreshes (${M.bytes_per_refresh.toFixed(0)} B/refresh)`);
  say(`   slope over the second half of each series (a leak keeps growing, warm-up levels off): ${M.second_half_bytes_per_fetch.toFixed(2)} B/fetch, ${M.second_half_bytes_per_refresh.toFixed(1)} B/refresh`);
  say();
}
const K = results.keepers;
if (K && !K.error) {
  const [small, large] = [K.runs[0], K.runs.at(-1)];
  say(`7. Many keepers in one page: n made, then freed, each n in a fresh page; ms, and µs per keeper`);
  table(["n", "create", "free", "create per keeper", "free per keeper"],
    K.runs.map((r) => [r.n, ms(r.create_ms), ms(r.free_ms), `${r.create_us_per_keeper.toFixed(0)} µs`, `${r.free_us_per_keeper.toFixed(0)} µs`]));
  say(`   per-keeper cost at ${large.n} vs ${small.n}: create ${x2(K.per_keeper_ratio.create)}, free ${x2(K.per_keeper_ratio.free)} (linear: about 1×)`);
  say();
}
// The four targets of the size-and-speed work, side by side from this run.
{
  const verdict = (ok) => (ok === undefined ? "not measured" : ok ? "met" : "not met");
  const rows = [];
  const size = S && !S.error ? S.ours[0].total.gzip : undefined;
  rows.push(["package (wasm + glue, gzip -9) ≤ 16 kB (stretch ≤ 12)", size === undefined ? "—" : `${kb(size)} kB`,
    verdict(size === undefined ? undefined : size <= 16000) + (size !== undefined && size <= 12000 ? ", stretch met" : "")]);
  const load = (n) => (U && U[n] && !U[n].error ? U[n].total.median : undefined);
  const [tk, oidc, o2] = [load("tokenkeeper"), load("oidc-client-ts"), load("@badgateway/oauth2-client")];
  rows.push(["load + construct, cold cache ≤ oidc-client-ts (stretch ≤ oauth2-client)",
    tk === undefined ? "—" : `${ms(tk)} ms vs ${ms(oidc)} (oauth2-client ${ms(o2)})`,
    verdict(tk === undefined || oidc === undefined ? undefined : tk <= oidc) + (tk !== undefined && o2 !== undefined && tk <= o2 ? ", stretch met" : "")]);
  const C = O && !O.error ? O.cpu_us_per_call_fetch_stubbed : undefined;
  rows.push(["CPU per keeper.fetch, fetch stubbed ≤ OAuth2Fetch",
    C ? `${C.keeper.median.toFixed(1)} µs vs ${C.oauth2.median.toFixed(1)}` : "—",
    verdict(C ? C.keeper.median <= C.oauth2.median : undefined)]);
  const P = U && !U.error && U["tokenkeeper-parts"] && !U["tokenkeeper-parts"].error ? U["tokenkeeper-parts"].total.median : undefined;
  rows.push(["compile + instantiate + constructor ≤ 3 ms (median)", P === undefined ? "—" : `${ms(P)} ms`, verdict(P === undefined ? undefined : P <= 3)]);
  say("Targets");
  table(["", "measured", ""], rows);
  say();
}
if (failures.length) say(`harness failures: ${failures.join(", ")} (see above)`);
say(`kB = 1000 bytes. Load average ${results.load_average_at_end.join(" ")} at the end: on a busy machine absolute times grow; the ratios are measured side by side.`);
say("numbers only: nothing here fails the build. Reproduce: make bench");

console.log(lines.join("\n"));
const round3 = (v) => (typeof v === "number" ? round(v, 3) : Array.isArray(v) ? v.map(round3) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, round3(x)])) : v);
// A partial run (BENCH_ONLY) does not replace the full results.
const file = process.env.BENCH_ONLY ? join(out, "results-partial.json") : join(bench, "results.json");
mkdirSync(out, { recursive: true });
writeFileSync(file, JSON.stringify(round3(results), null, 2) + "\n");
writeFileSync(join(out, "table.txt"), lines.join("\n") + "\n");
console.log(`written: ${file.slice(root.length).replace(/^\//, "")}`);
process.exit(failures.length ? 1 : 0);

// The README's HTTP-client recipes (axios, ky, ofetch, openapi-fetch), as
// written, in headless Chromium against the real dev server: tests/clients
// writes them out (prepare.mjs), esbuild bundles them with the harness page
// and the package unpacked from its tarball, and every client goes through
// the same session: the token attached; a 401 answered by one refresh and a
// replay with its JSON or FormData body intact; 50 concurrent calls across
// an expiry sharing one refresh with no error; a call to another origin
// without the token; the client's own features (interceptors and abort,
// hooks and retries, parsing, middleware); and a logout in another tab
// reported as the client reports any 401.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { launch, root, sleep, startServer, tempDir, unpackPackage, watchErrors } from "./lib.mjs";
import { prepare } from "../clients/prepare.mjs";

const clientsDir = join(root, "tests/clients");
const esbuild = createRequire(join(clientsDir, "package.json"))("esbuild");

/** Tokens without an expiry the client could see, refused by the server after 1 s: every call after that gets a 401. */
const SHORT = { no_expiry: true, access_ttl_ms: 1000 };
const PAST_EXPIRY = 1300;

let browser, www, server, other;
before(async () => {
  const recipes = await prepare();
  assert.deepEqual(recipes.map((r) => r.name), ["keeper.ts", "axios.ts", "ky.ts", "ofetch.ts", "openapi.ts"]);
  const dir = tempDir("clients");
  unpackPackage(join(dir, "node_modules/tokenkeeper"));
  www = join(dir, "www");
  mkdirSync(www);
  // As the README says of esbuild: the module finds its .wasm beside the bundle.
  await esbuild.build({
    entryPoints: [join(clientsDir, "harness.ts")],
    bundle: true,
    format: "esm",
    target: "es2022",
    outfile: join(www, "harness.js"),
    nodePaths: [join(dir, "node_modules")],
    logLevel: "error",
  });
  copyFileSync(join(dir, "node_modules/tokenkeeper/tokenkeeper_bg.wasm"), join(www, "tokenkeeper_bg.wasm"));
  writeFileSync(join(www, "index.html"), '<!doctype html><body><script type="module" src="harness.js"></script>\n');
  writeFileSync(join(www, "favicon.ico"), "");
  browser = await launch();
  server = await startServer({ www });
  other = await startServer({});
});
after(async () => {
  await browser?.close();
  server?.stop();
  other?.stop();
});

/** A fresh browser context (its own tabs) with the harness loaded in `n` tabs. */
async function tabs(n) {
  const context = await browser.newContext();
  const pages = [];
  for (let i = 0; i < n; i++) {
    const page = await context.newPage();
    page.errors = watchErrors(page);
    await page.goto(server.url + "/");
    await page.waitForSelector("body[data-ready=yes]", { state: "attached" });
    pages.push(page);
  }
  return { context, pages };
}

const call = (page, client, op, ...args) =>
  page.evaluate(
    ([client, op, args]) => {
      const h = window.harness;
      const fixed = args.map((a) => (a && a.form ? h.form(a.form) : a));
      return h.clients[client][op](...fixed);
    },
    [client, op, args],
  );

async function requestsTo(s, path) {
  const log = await (await fetch(s.url + "/admin/requests")).json();
  // (Not the CORS preflights: the clients' own header makes one.)
  return log.filter((r) => r.path === path && r.method !== "OPTIONS");
}

const CLIENTS = ["axios", "ky", "ofetch", "openapi-fetch"];

for (const client of CLIENTS) {
  test(`${client}: the README's recipe keeps the session through 401s, bursts, other origins and a logout elsewhere`, async () => {
    await server.admin("/admin/reset");
    await server.admin("/admin/config", { ...SHORT, dpop: false });
    await other.admin("/admin/reset");
    const { context, pages } = await tabs(2);
    const [page, second] = pages;
    try {
      await page.evaluate(() => window.harness.login());
      assert.equal(await second.evaluate(() => window.harness.ready()), true, "the second tab joins");

      // The token attached.
      const me = await call(page, client, "get", "/api/me");
      assert.equal(me.ok, true, JSON.stringify(me));
      assert.equal(me.data.sub, "user1");
      assert.deepEqual((await requestsTo(server, "/api/me")).map((r) => r.authorization), [true], "the token went with it");

      // A 401 (the token expired where the client cannot see it): one
      // refresh, and the replay carries the JSON body and the client's header.
      await sleep(PAST_EXPIRY);
      const json = await call(page, client, "postJson", "/api/echo", { x: 1, text: "é ✓" });
      assert.equal(json.ok, true, JSON.stringify(json));
      assert.equal(json.data.method, "POST");
      assert.equal(json.data.path, "/api/echo");
      assert.match(json.data.content_type, /^application\/json/);
      const sent = JSON.parse(json.data.body);
      assert.deepEqual(client === "ofetch" || client === "openapi-fetch" ? sent.value : sent, { x: 1, text: "é ✓" });
      assert.match(json.data.headers["x-request-id"] ?? "", /^req-\d+$/, "the client's own header survived the replay");
      let stats = await server.stats();
      assert.equal(stats.refreshes, 1, JSON.stringify([stats, await (await fetch(server.url + "/admin/requests")).json()]));
      assert.equal(stats.api_401, 1);

      // Again with a FormData body.
      await sleep(PAST_EXPIRY);
      const form = await call(page, client, "postForm", "/api/echo", { form: { field: "value ✓", other: "2" } });
      assert.equal(form.ok, true, JSON.stringify(form));
      assert.match(form.data.content_type, /^multipart\/form-data; boundary=/);
      assert.match(form.data.body, /name="field"\r\n\r\nvalue ✓\r\n/);
      assert.match(form.data.body, /name="other"\r\n\r\n2\r\n/);
      stats = await server.stats();
      assert.equal(stats.refreshes, 2);
      assert.equal(stats.api_401, 2);

      // 50 calls at once, all past the token's expiry: one refresh, no error.
      await sleep(PAST_EXPIRY);
      const burst = await page.evaluate((c) => window.harness.burst(c, 50), client);
      assert.deepEqual(burst, { ok: 50, failures: [] });
      stats = await server.stats();
      assert.equal(stats.refreshes, 3, "one refresh for the 50");
      assert.equal(stats.reuse_detections, 0);

      // Another origin (not allowed) never sees the token; its 401 is the client's.
      const foreign = await call(page, client, "get", `${other.url}/api/me`);
      assert.equal(foreign.ok, false);
      assert.equal(foreign.status, 401, JSON.stringify(foreign));
      const there = await requestsTo(other, "/api/me");
      assert.equal(there.length, 1);
      assert.equal(there[0].authorization, false, "no token to another origin");
      assert.equal((await server.stats()).refreshes, 3, "its 401 costs no refresh");

      // The client's own abort.
      const aborted = await page.evaluate((c) => window.harness.aborted(c), client);
      assert.equal(aborted.ok, false);
      assert.equal(aborted.aborted, true, JSON.stringify(aborted));

      // The client's own retry, after the keeper's one refresh: a 503 on the
      // replay is retried by the client (ofetch and ky retry a GET on 500;
      // axios and openapi-fetch do not retry), and costs no second refresh.
      await sleep(PAST_EXPIRY);
      await server.admin("/admin/faults", { kind: "status500", on: "api" });
      const retried = await call(page, client, "get", "/api/data");
      stats = await server.stats();
      assert.equal(stats.refreshes, 4, "one refresh for the 401, none for the retry");
      const seen = await page.evaluate(() => window.harness.seen);
      if (client === "ky" || client === "ofetch") {
        assert.equal(retried.ok, true, JSON.stringify(retried));
        if (client === "ky") assert.equal(seen.kyBeforeRetry, 1, "ky retried once, its hook saw it");
      } else {
        assert.equal(retried.ok, false);
        assert.equal(retried.status, 500, JSON.stringify(retried));
      }
      // The clients' own response hooks ran.
      const hook = { axios: "axiosResponses", ky: "kyAfterResponse", ofetch: "ofetchResponses", "openapi-fetch": "openapiResponses" }[client];
      assert.ok(seen[hook] >= 5, `${hook}: ${seen[hook]}`);

      // The network fails while the keeper refreshes for a 401: a rejection,
      // as fetch's own network failures are (the TokenKeeperError its cause,
      // or itself), not a 401; the session is kept.
      await sleep(PAST_EXPIRY);
      await server.admin("/admin/faults", { kind: "drop", count: 3 });
      const offline = await call(page, client, "postJson", "/api/echo", { x: 2 });
      assert.equal(offline.ok, false);
      assert.equal(offline.status, undefined, JSON.stringify([offline, await server.stats(), await page.evaluate(() => window.harness.keeper.isAuthenticated)]));
      assert.equal(offline.keeper, "refresh_unavailable", JSON.stringify(offline));
      assert.equal(await page.evaluate(() => window.harness.keeper.isAuthenticated), true);
      const back = await call(page, client, "postJson", "/api/echo", { x: 3 });
      assert.equal(back.ok, true, JSON.stringify(back));

      // A logout in the other tab: the next call goes without a token, and
      // fails as the client reports any 401 (not as a network error).
      await second.evaluate(() => window.harness.logout());
      await page.waitForFunction(() => !window.harness.keeper.isAuthenticated);
      const since = Date.now();
      const out = await call(page, client, "get", "/api/me");
      assert.equal(out.ok, false);
      assert.equal(out.status, 401, JSON.stringify(out));
      assert.equal(out.keeper, undefined, "the server's 401, not a TokenKeeperError");
      // (The log keeps the latest requests: by time, not by count.)
      const last = (await requestsTo(server, "/api/me")).filter((r) => r.time_ms >= since);
      assert.deepEqual(last.map((r) => r.authorization), [false]);
      assert.equal((await server.stats()).refreshes, 5);
      assert.deepEqual([...page.errors, ...second.errors].filter((e) => !/status of (401|500)|ERR_(CONNECTION|EMPTY_RESPONSE)|Failed to fetch/.test(e)), []);
    } finally {
      await context.close();
    }
  });
}

// The README's TanStack Query lines are the React example's (www/react/src/
// Query.tsx, driven by examples.test.mjs): each line in it, in order.
test("the README's TanStack Query snippet is the React example's, line for line", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## With your HTTP client"));
  const block = section.match(/```tsx\n([\s\S]*?)\n```/)?.[1];
  assert.ok(block, "a tsx block in the section");
  const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
  const example = lines(readFileSync(join(root, "www/react/src/Query.tsx"), "utf8"));
  let at = 0;
  for (const line of lines(block)) {
    const found = example.indexOf(line, at);
    assert.ok(found >= 0, `README line not in Query.tsx (in order): ${line}`);
    at = found + 1;
  }
});

// Strict Content-Security-Policy, checked in headless Chromium: the demo
// (www/), the React and Vue examples as built (www/*/dist, by `make
// examples`), the classic-script build and the hardening page each run under
// `script-src 'self' 'wasm-unsafe-eval'` — no 'unsafe-eval', no
// 'unsafe-inline', no inline script — and work: log in, call the API, refresh,
// with no `securitypolicyviolation` event and no console error. In each page
// the policy is shown to be in force: an injected inline script is blocked
// (and reported), and `new Function` throws. Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { launch, root, startServer, watchErrors } from "./lib.mjs";
import { page as hardeningPage } from "./hardening-lib.mjs";

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Records every CSP violation of every page of `context`, from before the page's first script. */
async function watchViolations(context) {
  await context.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample }));
  });
}

/** The page's policy (from its <meta> or its response header), parsed into directives. */
async function policyOf(page, response) {
  const meta = await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy" i]')?.content);
  const text = meta ?? response.headers()["content-security-policy"];
  assert.ok(text, `${page.url()} has a Content-Security-Policy`);
  return Object.fromEntries(text.split(";").map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([k, ...v]) => [k, v]));
}

/** The served HTML has no inline script and no inline event handler; the policy is the strict one. */
async function assertStrict(page, response, html) {
  const policy = await policyOf(page, response);
  const scripts = policy["script-src"] ?? policy["default-src"];
  assert.ok(scripts, "a script-src (or default-src)");
  assert.ok(scripts.includes("'self'") && scripts.includes("'wasm-unsafe-eval'"), `script-src ${scripts.join(" ")}`);
  for (const loose of ["'unsafe-eval'", "'unsafe-inline'", "*", "data:", "blob:", "http:", "https:"]) {
    assert.ok(!scripts.includes(loose), `script-src has no ${loose}: ${scripts.join(" ")}`);
  }
  assert.deepEqual(html.match(/<script\b(?![^>]*\bsrc=)[^>]*>/gi) ?? [], [], "no inline <script>");
  assert.deepEqual(html.match(/<[^>]+\son[a-z]+\s*=/gi) ?? [], [], "no inline event handler");
}

/** The policy is in force: inline script and eval are refused, and reported. */
async function assertEnforced(page) {
  // In a task of the page's own (code evaluated by DevTools itself may eval).
  const outcome = await page.evaluate(() => new Promise((resolve) => setTimeout(() => {
    const before = window.__violations.length;
    const s = document.createElement("script");
    s.textContent = "window.__inlineRan = true";
    document.head.append(s);
    let evalBlocked = false;
    try {
      new Function("return 1")();
    } catch (e) {
      evalBlocked = e instanceof EvalError;
    }
    setTimeout(() => resolve({ ran: window.__inlineRan === true, evalBlocked,
      reported: window.__violations.slice(before).map((v) => v.directive) }), 100);
  }, 0)));
  assert.equal(outcome.ran, false, "an injected inline script does not run");
  assert.equal(outcome.evalBlocked, true, "eval is refused");
  assert.ok(outcome.reported.some((d) => d.startsWith("script-src")), JSON.stringify(outcome));
}

/**
 * Opens `path` of `server`, checks the policy, runs `drive(page)` (the app at
 * work), then checks that nothing was blocked, and that the policy is in force.
 */
async function check(server, path, drive) {
  const context = await browser.newContext();
  await watchViolations(context);
  const page = await context.newPage();
  const errors = watchErrors(page);
  try {
    const response = await page.goto(server.url + path);
    const html = await (await fetch(server.url + path)).text();
    await assertStrict(page, response, html);
    await drive(page);
    assert.deepEqual(await page.evaluate(() => window.__violations), [], "no CSP violation while the app worked");
    assert.deepEqual(errors, [], "no console error");
    await assertEnforced(page);
  } finally {
    await context.close();
  }
}

const T = { timeout: 60_000 };

test("the demo runs under the strict CSP: log in, call the API, a silent refresh", T, async () => {
  const server = await startServer({ www: join(root, "www"), pkg: join(root, "pkg"), flags: ["--access-ttl", "3s"] });
  try {
    await check(server, "/", async (page) => {
      await page.waitForSelector("#state.off");
      await page.click("#login-form button[type=submit]");
      await page.waitForSelector("#state.on");
      await page.click("#call-api");
      await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("GET /api/me → 200"));
      await page.waitForSelector("#timeline .ev.refresh", { timeout: 8000 });
      assert.ok((await server.stats()).refreshes >= 1);
    });
  } finally {
    server.stop();
  }
});

for (const name of ["react", "vue"]) {
  test(`the ${name} example, as built, runs under the strict CSP: log in, call the API, a silent refresh`, T, async () => {
    const server = await startServer({ www: join(root, "www", name, "dist"), flags: ["--access-ttl", "3s"] });
    try {
      await check(server, "/", async (page) => {
        await page.waitForSelector("#status.logged-out");
        await page.click("#login button[type=submit]");
        await page.waitForSelector("#status.logged-in");
        await page.click("#call-api");
        await page.waitForSelector("#result");
        assert.match(await page.textContent("#result"), /you are user1\b/);
        const login = Number(await page.textContent("#generation"));
        await page.waitForFunction((g) => Number(document.querySelector("#generation")?.textContent) > g, login, { timeout: 8000 });
      });
    } finally {
      server.stop();
    }
  });
}

test("the classic-script build and the hardening page run under the strict CSP", T, async () => {
  const server = await startServer({ www: hardeningPage, pkg: join(root, "pkg"), flags: ["--access-ttl", "3s"] });
  try {
    await check(server, "/classic.html", async (page) => {
      await page.waitForFunction(() => document.querySelector("#result").textContent !== "loading");
      assert.equal(await page.textContent("#result"), "200 user1");
    });
    await check(server, "/index.html", async (page) => {
      await page.waitForFunction(() => window.hk !== undefined);
      await page.evaluate(() => window.hk.create());
      await page.evaluate(() => window.hk.login());
      assert.equal((await page.evaluate(() => window.hk.call("/api/me"))).value.status, 200);
      await page.evaluate(() => window.hk.keeper.refresh());
    });
  } finally {
    server.stop();
  }
});

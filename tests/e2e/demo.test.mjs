// The live demo, driven as a person would in headless Chromium: the page
// served by the dev auth server logs in as user1 and calls the API through
// the wasm module. Run by `make test` (after `make build`) with node --test.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const root = new URL("../../", import.meta.url).pathname;
let server, base, browser;

async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), "tk-demo-"));
  const portFile = join(dir, "port");
  const proc = spawn(join(root, "target/debug/tokenkeeper-devserver"),
    ["--port", "0", "--port-file", portFile, "--quiet", "--www", join(root, "www"), "--pkg", join(root, "pkg"),
     "--access-ttl", "3s"],
    { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 100 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
  return { proc, url: `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}` };
}

before(async () => {
  ({ proc: server, url: base } = await startServer());
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

test("the demo logs in, calls the API through wasm, refreshes silently and logs out", async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(base + "/");
  await page.waitForSelector("#state.off");
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#state.on");
  await page.click("#call-api");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("200"));
  assert.match(await page.textContent("#result"), /"sub": ?"user1"/);
  // A 3 s token: within a few seconds a silent refresh shows in the event list.
  await page.waitForSelector("#events .ev-refresh", { timeout: 8000 });
  await page.click("#burst");
  await page.waitForFunction(() => document.querySelector("#result").textContent.startsWith("50 calls"));
  assert.match(await page.textContent("#result"), /\{"200":50\}/);
  await page.screenshot({ path: join(root, "target/demo.png") });
  await page.click("#logout");
  await page.waitForSelector("#state.off");
  const stats = await (await fetch(base + "/stats")).json();
  assert.equal(stats.api_401, 0);
  assert.ok(stats.refreshes >= 1);
  assert.deepEqual(errors, []);
});

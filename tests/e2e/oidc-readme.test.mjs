// The README's identity-provider snippet (the block after `<!-- tested:
// tests/e2e/oidc-readme.test.mjs ... -->`), taken from README.md as it is and
// run as a new user's app would run it, in headless Chromium, against a real
// OpenID provider (npm oidc-provider, scripts/oidc-provider.mjs): the silent
// sign-in that finds no session, a login through the provider's page, a
// reload that signs in silently, and the RP-initiated logout. Only its
// example URLs are replaced with the real ones.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { launch, root, startServer, tempDir } from "./lib.mjs";
import { startProvider } from "../../scripts/oidc-provider.mjs";

const [snippet] = [...readFileSync(join(root, "README.md"), "utf8")
  .matchAll(/<!-- tested: tests\/e2e\/oidc-readme\.test\.mjs[^>]*-->\n```js\n([\s\S]*?)\n```/g)]
  .map(([, code]) => code);

const WAIT = { timeout: 15000 };
let server, op, browser;

before(async () => {
  assert.ok(snippet, "the README has the tested identity-provider snippet");
  const dir = tempDir("oidc-readme");
  server = await startServer({ www: dir, pkg: join(root, "pkg") });
  op = await startProvider({ appOrigin: server.url, accessTtl: 5 });
  // The app: the snippet as its module, the elements it uses, `tokenkeeper`
  // mapped to the package (as a bundler would resolve it).
  const app = snippet
    .replaceAll("https://api.example.com/me", op.issuer + "/me")
    .replaceAll("https://api.example.com", op.issuer)
    .replaceAll("https://idp.example.com", op.issuer);
  writeFileSync(join(dir, "app.js"), `${app}\ndocument.body.dataset.done = "1";\n`);
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>README app</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "tokenkeeper": "/pkg/tokenkeeper.js" } }</script>
<script type="module" src="/app.js"></script></head>
<body><button id="login">Log in</button> <button id="logout">Log out</button> <span id="name"></span></body></html>`;
  writeFileSync(join(dir, "index.html"), page);
  mkdirSync(join(dir, "callback"));
  writeFileSync(join(dir, "callback/index.html"), page);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await op?.stop();
  server?.stop();
});

const atLoginPage = (u) => u.origin === op.issuer && /^\/interaction\//.test(u.pathname);
const done = (page) => page.waitForFunction(() => document.body?.dataset.done === "1", null, WAIT);
const clean = (href) => !/[?&](code|state|iss|error|error_description)=/.test(href);

test("the README's identity-provider snippet: silent sign-in, login, reload, logout", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const visited = [];
  page.on("framenavigated", (f) => f === page.mainFrame() && visited.push(new URL(f.url())));

  // 1. The first visit: no tab holds a session, the silent sign-in finds
  // none at the provider either (login_required), the app waits for a click.
  await page.goto(server.url + "/");
  await page.waitForURL((u) => u.pathname === "/callback/", WAIT);
  await done(page);
  assert.ok(clean(page.url()), page.url());
  assert.ok(!visited.some(atLoginPage), "no login page for a silent sign-in");
  assert.equal(await page.textContent("#name"), "");
  assert.equal(op.stats().token.authorization_code, 0);

  // 2. The login button: the provider's page, then back at "/" with a name.
  await page.click("#login");
  await page.waitForURL(atLoginPage, WAIT);
  await page.fill('input[name="login"]', "user1");
  await page.fill('input[name="password"]', "password1");
  await page.click('button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#name")?.textContent === "User One", null, WAIT);
  assert.equal(new URL(page.url()).pathname, "/");
  assert.ok(clean(page.url()), page.url());
  assert.equal(op.stats().token.authorization_code, 1);
  assert.equal(op.stats().userinfo.ok, 1);

  // 3. A reload drops the memory-only session; the silent sign-in brings it
  // back with no login page, through one more code.
  visited.length = 0;
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#name")?.textContent === "User One", null, WAIT);
  assert.ok(!visited.some(atLoginPage), "signed in silently");
  assert.ok(visited.some((u) => u.pathname === "/callback/"), "through the callback");
  assert.equal(op.stats().token.authorization_code, 2);

  // 4. The logout button: the provider's session ends too, so the next
  // silent sign-in finds none.
  const rt = op.issued().at(-1).refresh_token;
  await page.click("#logout");
  await page.waitForURL((u) => u.origin === op.issuer, WAIT);
  const yes = page.locator('button[name="logout"][value="yes"]');
  if (await yes.count()) await yes.click();
  await page.waitForURL((u) => u.origin === server.url && u.pathname === "/callback/", WAIT);
  await done(page);
  assert.equal(await page.textContent("#name"), "");
  assert.equal((await op.introspect(rt)).active, false, "the refresh token was revoked");
  assert.equal(op.stats().token.authorization_code, 2);
  assert.deepEqual(errors, []);
  await context.close();
});

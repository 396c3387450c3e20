// The README's loading snippets, taken from README.md as they are (the blocks
// after a `<!-- tested: tests/e2e/readme.test.mjs ... -->` line), run as a new
// user would run them against the real dev server in headless Chromium:
//  - the bundler snippet, bundled by webpack 5 with no configuration at all
//    (entry and output only) from the package installed out of its tarball;
//  - the `<script type="module">` page and the classic `<script>` page, next to
//    the package's files copied as `tokenkeeper/`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import webpack from "webpack";
import { launch, root, startServer, tempDir, unpackPackage, watchErrors } from "./lib.mjs";

const blocks = [...readFileSync(join(root, "README.md"), "utf8")
  .matchAll(/<!-- tested: tests\/e2e\/readme\.test\.mjs[^>]*-->\n```(\w+)\n([\s\S]*?)\n```/g)]
  .map(([, lang, code]) => ({ lang, code }));

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** A site folder: Chromium asks every site for /favicon.ico, and a 404 is a console error. */
function site(dir) {
  writeFileSync(join(dir, "favicon.ico"), "");
  return dir;
}

/** Opens `url` and waits for the page to print the API's answer into the body. */
async function answer(url) {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.body?.textContent.includes('"sub"'), null, { timeout: 10000 });
    const me = JSON.parse(await page.textContent("body"));
    assert.deepEqual(errors, []);
    return me;
  } finally {
    await page.close();
  }
}

test("the README has the three tested snippets: bundler, module script, classic script", () => {
  assert.deepEqual(blocks.map((b) => b.lang), ["js", "html", "html"]);
  assert.match(blocks[0].code, /from "tokenkeeper"/);
  assert.match(blocks[1].code, /<script type="module">/);
  assert.match(blocks[2].code, /<script src="\.\/tokenkeeper\/classic\/tokenkeeper\.js"><\/script>/);
});

test("the bundler snippet, bundled by webpack with zero configuration", async () => {
  const dir = tempDir("webpack");
  unpackPackage(join(dir, "node_modules/tokenkeeper"));
  mkdirSync(join(dir, "src"));
  // The snippet as it is, and one line that shows its result.
  writeFileSync(join(dir, "src/index.js"), `${blocks[0].code}\ndocument.body.textContent = JSON.stringify(me);\n`);
  const stats = await new Promise((resolve, reject) =>
    webpack({ mode: "production", context: dir, entry: "./src/index.js", output: { path: join(dir, "dist") } },
      (err, s) => (err ? reject(err) : resolve(s))));
  assert.equal(stats.hasErrors(), false, stats.toString("errors-only"));
  const assets = Object.keys(stats.compilation.assets);
  assert.ok(assets.some((a) => a.endsWith(".wasm")), `webpack emitted the wasm as an asset: ${assets}`);
  writeFileSync(join(dir, "dist/index.html"), '<!doctype html><body><script src="main.js"></script>\n');

  const server = await startServer({ www: site(join(dir, "dist")) });
  try {
    const me = await answer(server.url + "/");
    assert.equal(me.sub, "user1");
    assert.equal((await server.stats()).logins, 1);
  } finally {
    server.stop();
  }
});

test("the <script type=module> page and the classic <script> page, as copied from the README", async () => {
  const dir = tempDir("pages");
  unpackPackage(join(dir, "tokenkeeper"));
  writeFileSync(join(dir, "module.html"), blocks[1].code);
  writeFileSync(join(dir, "classic.html"), blocks[2].code);
  const server = await startServer({ www: site(dir) });
  try {
    for (const page of ["module.html", "classic.html"]) {
      const me = await answer(`${server.url}/${page}`);
      assert.equal(me.sub, "user1", page);
    }
    const stats = await server.stats();
    assert.equal(stats.logins, 2);
    assert.equal(stats.api_ok, 2);
    // Each build loaded its own copy of the module, from beside its script.
    assert.equal(stats.by_endpoint["GET /tokenkeeper/tokenkeeper_bg.wasm"], 1);
    assert.equal(stats.by_endpoint["GET /tokenkeeper/classic/tokenkeeper_bg.wasm"], 1);
  } finally {
    server.stop();
  }
});

// `let tokenkeeper` at the top of a classic script: a global binding that every
// later script sees (not a property of `window`).
test("the classic build defines one global, the loader carrying the exports", async () => {
  const dir = tempDir("global");
  unpackPackage(join(dir, "tokenkeeper"));
  writeFileSync(join(dir, "index.html"), '<!doctype html><script src="tokenkeeper/classic/tokenkeeper.js"></script>\n');
  const server = await startServer({ www: site(dir) });
  const page = await browser.newPage();
  try {
    await page.goto(server.url + "/");
    const shape = await page.evaluate(async () => {
      /* global tokenkeeper */
      const type = typeof tokenkeeper;
      const leaked = Object.keys(window).filter((k) => /tokenkeeper|wasm_bindgen|TokenKeeper/i.test(k));
      await tokenkeeper();
      const keeper = new tokenkeeper.TokenKeeper({ refreshUrl: "/token/refresh" });
      let code;
      try {
        new tokenkeeper.TokenKeeper({ refreshUrl: "/token/refresh", bogus: 1 });
      } catch (e) {
        code = tokenkeeper.isTokenKeeperError(e) ? e.code : "not a TokenKeeperError";
      }
      return { type, leaked, authenticated: keeper.isAuthenticated, code };
    });
    assert.deepEqual(shape, { type: "function", leaked: [], authenticated: false, code: "invalid_option" });
  } finally {
    await page.close();
    server.stop();
  }
});

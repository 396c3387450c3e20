// Shipped size: tokenkeeper's wasm + JS glue for each build target, and the
// competing SDKs installed from npm and bundled with esbuild the same way
// (--bundle --minify --format=esm --platform=browser, an entry importing the
// main client class). Raw, gzip -9 and brotli (quality 11). The bundles are
// written to out/www/vendor/, where the benchmark page loads them.
import { readFileSync, writeFileSync, mkdirSync, existsSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import * as esbuild from "esbuild";
import { bench, root, out } from "./lib.mjs";

/** The competing SDKs: npm name, the entry's export list, and the bundle's file name. */
export const competitors = [
  { name: "@badgateway/oauth2-client", exports: "OAuth2Client, OAuth2Fetch", file: "oauth2-client.js" },
  { name: "keycloak-js", exports: "default as Keycloak", file: "keycloak-js.js" },
  { name: "oidc-client-ts", exports: "UserManager", file: "oidc-client-ts.js" },
  { name: "@okta/okta-auth-js", exports: "OktaAuth", file: "okta-auth-js.js" },
  { name: "@auth0/auth0-spa-js", exports: "Auth0Client", file: "auth0-spa-js.js" },
];

export function sizes(bytes) {
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
    }).length,
  };
}

const add = (...xs) => ({
  raw: xs.reduce((a, x) => a + x.raw, 0),
  gzip: xs.reduce((a, x) => a + x.gzip, 0),
  brotli: xs.reduce((a, x) => a + x.brotli, 0),
});

async function bundle(contents, outfile) {
  await esbuild.build({
    stdin: { contents, resolveDir: bench, loader: "js", sourcefile: "entry.js" },
    bundle: true, minify: true, format: "esm", platform: "browser",
    outfile, logLevel: "error",
  });
  return readFileSync(outfile);
}

export async function measureSize() {
  const vendor = join(out, "www/vendor");
  mkdirSync(vendor, { recursive: true });
  const pkg = join(root, "pkg");
  const wasm = sizes(readFileSync(join(pkg, "tokenkeeper_bg.wasm")));
  const classicWasm = readFileSync(join(pkg, "classic/tokenkeeper_bg.wasm"));
  const webGlue = sizes(readFileSync(join(pkg, "tokenkeeper.js")));
  const classicGlueSrc = readFileSync(join(pkg, "classic/tokenkeeper.js"));
  const classicGlue = sizes(classicGlueSrc);
  // The ES module as an app ships it: bundled and minified by esbuild like the
  // competitors (the .wasm stays a separate asset, found with import.meta.url).
  const webMin = sizes(await bundle(`export { default, TokenKeeper } from ${JSON.stringify(join(pkg, "tokenkeeper.js"))};`,
    join(out, "tokenkeeper.min.js")));
  // The classic script can't be bundled as a module: minified on its own.
  const classicMin = sizes(Buffer.from((await esbuild.transform(classicGlueSrc.toString(), { minify: true })).code));
  const version = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8")).version;

  const ours = [
    { name: "tokenkeeper (web, esbuild --minify)", version, wasm, glue: webMin, total: add(wasm, webMin) },
    { name: "tokenkeeper (web, as shipped)", version, wasm, glue: webGlue, total: add(wasm, webGlue) },
    { name: "tokenkeeper (classic, minified)", version, wasm: sizes(classicWasm), glue: classicMin, total: add(sizes(classicWasm), classicMin) },
    { name: "tokenkeeper (classic, as shipped)", version, wasm: sizes(classicWasm), glue: classicGlue, total: add(sizes(classicWasm), classicGlue) },
  ];
  const others = [];
  for (const c of competitors) {
    const version = JSON.parse(readFileSync(join(bench, "node_modules", c.name, "package.json"), "utf8")).version;
    const bytes = await bundle(`export { ${c.exports} } from ${JSON.stringify(c.name)};`, join(vendor, c.file));
    others.push({ name: c.name, version, entry: c.exports, total: sizes(bytes) });
  }
  return { ours, others, breakdown: breakdown() };
}

/**
 * Where the wasm bytes go: the release artifact, bound by wasm-bindgen with its
 * names kept and optimized like the package (wasm-opt -Oz -g keeps the names),
 * then `twiggy top`. Skipped (with the reason) when a tool is missing.
 */
function breakdown() {
  const artifact = join(process.env.CARGO_TARGET_DIR || join(root, "target"), "wasm32-unknown-unknown/release/tokenkeeper.wasm");
  const have = (cmd) => {
    try {
      execFileSync(cmd, ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  const missing = ["twiggy", "wasm-bindgen", "wasm-opt"].filter((t) => !have(t));
  if (missing.length) return { skipped: `not installed: ${missing.join(", ")} (cargo install twiggy)` };
  if (!existsSync(artifact)) return { skipped: "no release artifact (make build)" };
  const dir = join(out, "names");
  mkdirSync(dir, { recursive: true });
  execFileSync("wasm-bindgen", ["--target", "web", "--keep-debug", "--out-dir", dir, "--out-name", "tk", artifact]);
  const opt = join(dir, "tk_opt.wasm");
  execFileSync("wasm-opt", ["-Oz", "-g", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext",
    "--enable-mutable-globals", join(dir, "tk_bg.wasm"), "-o", opt]);
  const rows = JSON.parse(execFileSync("twiggy", ["top", "-f", "json", opt], { maxBuffer: 64 << 20 }).toString());
  // The name section is kept only for this analysis: the package has none.
  const code = rows.filter((r) => !/names" subsection|^custom section/.test(r.name));
  const total = code.reduce((a, r) => a + r.shallow_size, 0);
  const groups = {};
  for (const r of code) {
    const g = group(r.name);
    groups[g] = (groups[g] || 0) + r.shallow_size;
  }
  return {
    artifact_built: statSync(artifact).mtime.toISOString(),
    bytes_without_names: total,
    top: code.slice(0, 15).map((r) => ({ name: r.name, bytes: r.shallow_size })),
    groups: Object.entries(groups).sort((a, b) => b[1] - a[1]).map(([name, bytes]) => ({ name, bytes })),
  };
}

/** A coarse owner for a twiggy item: our module, or the crate it comes from. */
function group(name) {
  if (name.startsWith("data segment")) return "data (string constants, tables)";
  if (/externref shim|multivalue shim|^(tokenkeeper|core)_\w+$|^__wbg|^__wbindgen|wasm_bindgen|^__externref/.test(name)) return "exported entry points and wasm-bindgen shims (with what they inline)";
  const c = name.match(/tokenkeeper_core::(\w+)/);
  if (c && !/drop_in_place/.test(name)) return `tokenkeeper_core::${c[1]}`;
  const m = name.match(/tokenkeeper::(\w+)/);
  if (m && !name.startsWith("<") && !name.startsWith("core::ptr::drop_in_place")) return `tokenkeeper::${m[1]}`;
  if (/drop_in_place/.test(name)) return "drop glue";
  if (/dlmalloc|__rdl_|__rust_(alloc|dealloc|realloc)|heap::Heap/.test(name)) return "allocator";
  if (/core(\[\w+\])?::fmt|Display|Debug/.test(name)) return "core::fmt (formatting)";
  const crate = name.replace(/^</, "").match(/^(\w+)/);
  if (crate && ["core", "alloc", "std"].includes(crate[1])) return "core/alloc/std (other)";
  if (crate && ["js_sys", "web_sys", "gloo_timers", "serde", "serde_wasm_bindgen", "base64"].includes(crate[1])) return crate[1];
  if (/^(code|type|import|export|elem|table|global|memory)/i.test(name)) return "sections and tables";
  return "other";
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureSize();
  writeFileSync(join(out, "size.json"), JSON.stringify(r, null, 2));
  console.log(JSON.stringify(r, null, 2));
}

#!/usr/bin/env node
// Shapes pkg/ into the npm package, after `wasm-pack build --target web`
// (see `make build`):
//  - the executor (js/executor.js, a wasm-bindgen snippet the glue imports)
//    is inlined into tokenkeeper.js, so the ES module build is one file;
//  - the classic-script build pkg/classic/ (the global `tokenkeeper`, for a
//    plain <script src>) is made from that same module: wasm-bindgen's
//    `--target no-modules` cannot bundle snippets. Each rewrite must match
//    exactly once, or the build fails rather than ship a broken file.
//
// wasm-pack writes package.json from Cargo.toml (name, version, description,
// license, repository, keywords); this adds what it does not know: the
// entry points for bundlers and TypeScript, the files to publish, and that
// importing the package has no side effects.
//
//   node scripts/package.mjs [pkg-dir]
import { readFileSync, writeFileSync, existsSync, readdirSync, rmSync, mkdirSync, copyFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] || "pkg";

/** `text` with `from` replaced by `to`, which must occur exactly once. */
function once(text, from, to, what) {
  const n = typeof from === "string" ? text.split(from).length - 1 : (text.match(new RegExp(from.source, from.flags + "g")) || []).length;
  if (n !== 1) {
    console.error(`package.mjs: expected one ${what} in the generated glue, found ${n}`);
    process.exit(1);
  }
  return text.replace(from, to);
}

const gluePath = join(dir, "tokenkeeper.js");
let glue = readFileSync(gluePath, "utf8");
if (glue.includes("./snippets/")) {
  const importRe = /^import \{ ([\w, ]+) \} from '\.\/snippets\/([\w-]+)\/js\/executor\.js';$/m;
  const m = glue.match(importRe);
  if (!m) {
    console.error("package.mjs: the glue does not import the executor as expected");
    process.exit(1);
  }
  const snippet = readFileSync(join(dir, "snippets", m[2], "js", "executor.js"), "utf8")
    .replace(/^export /gm, "");
  glue = once(glue, importRe, `const { ${m[1]} } = (() => {\n${snippet}\nreturn { ${m[1]} };\n})();`, "executor import");
  // The keeper's side of the executor is not part of the API.
  glue = once(glue, /^export class Core /m, "class Core ", "Core class");
  writeFileSync(gluePath, glue);
  rmSync(join(dir, "snippets"), { recursive: true, force: true });
}

// The classic build: the same code in a function scope, the exports on the
// loader function, the wasm found next to the script.
let classic = glue;
classic = once(classic, "export { initSync, __wbg_init as default };", "", "export list");
const exported = [...classic.matchAll(/^export (?:class|function) (\w+)/gm)].map((x) => x[1]);
classic = classic.replace(/^export (class|function) /gm, "$1 ");
classic = once(
  classic,
  "new URL('tokenkeeper_bg.wasm', import.meta.url)",
  "script_src.replace(/\\.js$/, '_bg.wasm')",
  "default wasm URL",
);
if (/\bimport\b[\s.{(]|^export /m.test(classic.replace(/\/\/.*$/gm, ""))) {
  console.error("package.mjs: the classic build still has an import or export");
  process.exit(1);
}
classic = `let tokenkeeper;
(function () {
let script_src;
if (typeof document !== 'undefined' && document.currentScript !== null) {
    script_src = new URL(document.currentScript.src, location.href).toString();
}
${classic}
tokenkeeper = Object.assign(__wbg_init, { initSync, ${exported.join(", ")} });
})();
`;
mkdirSync(join(dir, "classic"), { recursive: true });
writeFileSync(join(dir, "classic", "tokenkeeper.js"), classic);
copyFileSync(join(dir, "tokenkeeper_bg.wasm"), join(dir, "classic", "tokenkeeper_bg.wasm"));
const path = join(dir, "package.json");
const generated = JSON.parse(readFileSync(path, "utf8"));

const files = [
  "tokenkeeper.js",
  "tokenkeeper.d.ts",
  "tokenkeeper_bg.wasm",
  "tokenkeeper_bg.wasm.d.ts",
  "classic/tokenkeeper.js",
  "classic/tokenkeeper_bg.wasm",
];
// The license texts wasm-pack copied from the repository (LICENSE-MIT,
// LICENSE-APACHE): npm packs a bare LICENSE by itself, these only if listed.
files.push(...readdirSync(dir).filter((f) => /^LICEN[CS]E/i.test(f)).sort());
for (const f of files) {
  if (!existsSync(join(dir, f))) {
    console.error(`package.mjs: ${join(dir, f)} is missing: run make build`);
    process.exit(1);
  }
}

const pkg = {
  name: generated.name,
  version: generated.version,
  description: generated.description,
  license: generated.license,
  repository: generated.repository,
  keywords: generated.keywords,
  // An ES module that loads its .wasm with `new URL("tokenkeeper_bg.wasm",
  // import.meta.url)`: Vite, webpack 5, Rollup, esbuild and browsers resolve
  // that without a plugin (wasm-pack's --target bundler would need one).
  type: "module",
  main: "tokenkeeper.js",
  module: "tokenkeeper.js",
  types: "tokenkeeper.d.ts",
  exports: {
    ".": { types: "./tokenkeeper.d.ts", default: "./tokenkeeper.js" },
    "./tokenkeeper_bg.wasm": "./tokenkeeper_bg.wasm",
    "./classic/tokenkeeper.js": "./classic/tokenkeeper.js",
    "./classic/tokenkeeper_bg.wasm": "./classic/tokenkeeper_bg.wasm",
    "./package.json": "./package.json",
  },
  files,
  // Importing the module only defines functions: bundlers may drop it when
  // nothing from it is used.
  sideEffects: false,
};
if (!pkg.name || !pkg.version || !pkg.license) {
  console.error("package.mjs: wasm-pack's package.json lacks name, version or license");
  process.exit(1);
}
writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
console.log(`${path}: ${pkg.name}@${pkg.version}, ${files.length} files`);

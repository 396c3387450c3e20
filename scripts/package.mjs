#!/usr/bin/env node
// Shapes pkg/ into the npm package, after `wasm-pack build --target web` and
// the classic-script build into pkg/classic/ (see `make build`).
//
// wasm-pack writes package.json from Cargo.toml (name, version, description,
// license, repository, keywords); this adds what it does not know: the
// entry points for bundlers and TypeScript, the files to publish, and that
// importing the package has no side effects.
//
//   node scripts/package.mjs [pkg-dir]
import { readFileSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] || "pkg";
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

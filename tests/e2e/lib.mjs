// Helpers of the browser tests in this folder (not a test file itself): the
// real dev auth server on a free port, headless Chromium through Playwright,
// a Vite dev server, and a pixel check of screenshots.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const root = new URL("../../", import.meta.url).pathname;
/** The package as `npm publish` would send it (made by `make build`). */
export const tarball = join(root, "target/npm/tokenkeeper.tgz");
/** Where screenshots go (git-ignored). */
export const shots = join(root, "target/e2e");
mkdirSync(shots, { recursive: true });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A fresh temporary directory. */
export const tempDir = (name) => mkdtempSync(join(tmpdir(), `tk-${name}-`));

/** Unpacks the package tarball into `dir` (as npm installs it into node_modules/tokenkeeper). */
export function unpackPackage(dir) {
  mkdirSync(dir, { recursive: true });
  execFileSync("tar", ["-xzf", tarball, "-C", dir, "--strip-components=1"]);
}

/**
 * Starts the dev auth server on a free loopback port, serving `www` at / (and
 * `pkg` at /pkg/ if given). Returns its base URL, a stats() reader and stop().
 */
export async function startServer({ www, pkg, flags = [] }) {
  const portFile = join(tempDir("server"), "port");
  const args = ["--port", "0", "--port-file", portFile, "--quiet", ...flags];
  if (www) args.push("--www", www);
  if (pkg) args.push("--pkg", pkg);
  const proc = spawn(join(root, "target/debug/tokenkeeper-devserver"), args, { stdio: ["ignore", "ignore", "inherit"] });
  for (let i = 0; i < 200 && !existsSync(portFile); i++) await sleep(25);
  if (!existsSync(portFile)) throw new Error("the dev server did not start");
  const url = `http://127.0.0.1:${readFileSync(portFile, "utf8").trim()}`;
  return {
    url,
    stats: async () => (await fetch(url + "/stats")).json(),
    admin: (path, body) =>
      fetch(url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) }),
    stop: () => proc.kill(),
  };
}

/** Headless Chromium, with the flags this machine's closed network needs. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}

/** Collects the page's uncaught errors and console errors (CSP violations are console errors). */
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return errors;
}

/** A free loopback port (for servers that cannot report the one they bound). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts `vite` (the dev server, not a build) in `dir` on a free port; the
 * example's config proxies the API to `api`. `--force` re-optimizes the
 * dependencies, so a rebuilt package is never served from Vite's cache.
 */
export async function startVite(dir, api) {
  const port = await freePort();
  const proc = spawn(join(dir, "node_modules/.bin/vite"), ["--port", String(port), "--strictPort", "--host", "127.0.0.1", "--force"], {
    cwd: dir,
    env: { ...process.env, TOKENKEEPER_SERVER: api, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  for (let i = 0; i < 300 && !output.includes("Local:"); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  if (!output.includes("Local:")) {
    proc.kill();
    throw new Error(`vite did not start in ${dir}:\n${output}`);
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, stop: () => proc.kill() };
}

/**
 * The share of a PNG's pixels within `tolerance` of the colour `[r, g, b]`.
 * The image is decoded by the browser itself, in a blank page of its own.
 */
export async function colorShare(browser, png, rgb, tolerance = 12) {
  const page = await browser.newPage();
  try {
    return await page.evaluate(
      async ({ b64, rgb, tolerance }) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
        const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
        const ctx = canvas.getContext("2d");
        ctx.drawImage(bitmap, 0, 0);
        const { data } = ctx.getImageData(0, 0, bitmap.width, bitmap.height);
        let hits = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (Math.abs(data[i] - rgb[0]) <= tolerance && Math.abs(data[i + 1] - rgb[1]) <= tolerance &&
              Math.abs(data[i + 2] - rgb[2]) <= tolerance) hits++;
        }
        return hits / (data.length / 4);
      },
      { b64: png.toString("base64"), rgb, tolerance },
    );
  } finally {
    await page.close();
  }
}

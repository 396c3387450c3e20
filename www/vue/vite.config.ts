import vue from "@vitejs/plugin-vue";
import { defineConfig, type Plugin } from "vite";

// Nothing here is needed by tokenkeeper: `import init, { TokenKeeper } from
// "tokenkeeper"` works in `vite` and `vite build` as in any bundler.

// Where `npm run dev` sends the API calls: the dev auth server of `make demo`.
const api = process.env.TOKENKEEPER_SERVER ?? "http://127.0.0.1:8080";

// The built page runs under a strict Content-Security-Policy. tokenkeeper
// needs only 'wasm-unsafe-eval' (to compile its WebAssembly module), and
// connect-src for an identity provider's origin (the demo's, on loopback).
// Build only: the dev server injects inline scripts and styles.
function strictCsp(): Plugin {
  const policy =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' http://127.0.0.1:*";
  return {
    name: "strict-csp",
    apply: "build",
    transformIndexHtml: () => [
      { tag: "meta", attrs: { "http-equiv": "Content-Security-Policy", content: policy }, injectTo: "head-prepend" },
    ],
  };
}

export default defineConfig({
  plugins: [vue(), strictCsp()],
  // Relative asset URLs: the build works wherever it is served from (the
  // demo server serves it at /vue/dist/, the tests at /).
  base: "./",
  // Two pages of one app: the identity provider's callback route is a page
  // of its own (callback/index.html, the same app), so a static server
  // serves it without a fallback to index.html.
  build: {
    rolldownOptions: {
      input: { main: "index.html", callback: "callback/index.html" },
    },
  },
  server: {
    proxy: Object.fromEntries(["/login", "/logout", "/token", "/api", "/demo-config.json"].map((p) => [p, api])),
  },
});

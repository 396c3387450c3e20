// Start-up, in a fresh page. Query `sdk`:
//   tokenkeeper-parts  the wasm's bytes fetched first, then compile, instantiate
//                      (init with the compiled module) and the constructor, each
//                      timed; then a second constructor (its code already compiled)
//   browser-baseline   the first BroadcastChannel of a fresh page (every keeper opens one)
//   tokenkeeper        load + construct, as an app does: import the glue, init()
//                      (fetches and compiles the wasm), new TokenKeeper
//   <competitor>       load + construct: import its esbuild bundle, new <client>
const sdk = new URLSearchParams(location.search).get("sdk");
const origin = location.origin;

/** How each SDK is made, with settings it accepts without a network call. */
const makers = {
  "@badgateway/oauth2-client": ["./vendor/oauth2-client.js", (m) => new m.OAuth2Client({ server: origin, clientId: "bench" })],
  "keycloak-js": ["./vendor/keycloak-js.js", (m) => new m.Keycloak({ url: origin, realm: "bench", clientId: "bench" })],
  "oidc-client-ts": ["./vendor/oidc-client-ts.js", (m) => new m.UserManager({ authority: origin, client_id: "bench", redirect_uri: location.href })],
  "@okta/okta-auth-js": ["./vendor/okta-auth-js.js", (m) => new m.OktaAuth({ issuer: `${origin}/oauth2/default`, clientId: "bench", redirectUri: location.href, testing: { disableHTTPSCheck: true } })],
  "@auth0/auth0-spa-js": ["./vendor/auth0-spa-js.js", (m) => new m.Auth0Client({ domain: location.host, clientId: "bench" })],
};

async function run() {
  if (sdk === "tokenkeeper-parts") {
    const { default: init, TokenKeeper } = await import("/pkg/tokenkeeper.js");
    const bytes = await (await fetch("/pkg/tokenkeeper_bg.wasm")).arrayBuffer();
    const t0 = performance.now();
    const module = await WebAssembly.compile(bytes);
    const t1 = performance.now();
    await init({ module_or_path: module });
    const t2 = performance.now();
    new TokenKeeper({ refreshUrl: "/token/refresh" });
    const t3 = performance.now();
    new TokenKeeper({ refreshUrl: "/token/refresh", channel: "second" });
    const t4 = performance.now();
    return { compile: t1 - t0, instantiate: t2 - t1, construct: t3 - t2, total: t3 - t0, second_construct: t4 - t3 };
  }
  if (sdk === "browser-baseline") {
    const t0 = performance.now();
    new BroadcastChannel("baseline");
    return { first_broadcast_channel: performance.now() - t0 };
  }
  if (sdk === "tokenkeeper") {
    const t0 = performance.now();
    const { default: init, TokenKeeper } = await import("/pkg/tokenkeeper.js");
    await init();
    const t1 = performance.now();
    new TokenKeeper({ refreshUrl: "/token/refresh" });
    const t2 = performance.now();
    return { load: t1 - t0, construct: t2 - t1, total: t2 - t0 };
  }
  const [path, make] = makers[sdk];
  const t0 = performance.now();
  const m = await import(path);
  const t1 = performance.now();
  make(m);
  const t2 = performance.now();
  return { load: t1 - t0, construct: t2 - t1, total: t2 - t0 };
}

// Measured once the harness says go (after it stops intercepting requests).
new Promise((resolve) => (window.go = resolve)).then(run).then(
  (r) => (window.result = r),
  (e) => (window.result = { error: String(e) }),
).finally(() => (window.benchReady = true));

// The page of the OpenID Connect end-to-end test (served at /, /callback/ and
// /logged-out/): one TokenKeeper per tab against a real OpenID provider whose
// issuer the test puts in window.TK_ISSUER before any script runs (and, if it
// wants more, options in window.TK_OPTIONS, e.g. { dpop: true }). Driven from
// Playwright through window.tk; window.tk.done (and "#status") says when this
// page load has finished its work.
import init, { TokenKeeper } from "/pkg/tokenkeeper.js";

const status = document.getElementById("status");
const tk = {
  done: false,
  events: [],
  /** The result of keeper.handleRedirect() on /callback/ ({ returnTo } or null). */
  redirect: undefined,
  /** Its rejection, or another failure of this page load: { code, error, errorDescription, status, message }. */
  redirectError: undefined,
  /** keeper.ready()'s result on the other pages. */
  ready: undefined,
  error: undefined,
  loginError: undefined,
};
window.tk = tk;

const describe = (e) => ({
  code: e?.code,
  error: e?.error,
  errorDescription: e?.errorDescription,
  status: e?.status,
  message: String(e?.message ?? e),
});

try {
  const issuer = window.TK_ISSUER;
  if (!issuer) throw new Error("window.TK_ISSUER is not set");
  await init();
  const keeper = new TokenKeeper({
    issuer,
    clientId: "spa",
    redirectUri: location.origin + "/callback/",
    scope: "openid profile offline_access",
    // The provider's userinfo endpoint is the protected API of this test.
    allowedOrigins: [location.origin, issuer],
    channel: "oidc-e2e",
    ...(window.TK_OPTIONS ?? {}),
  });
  tk.keeper = keeper;
  tk.userinfo = issuer + "/me";
  for (const name of ["refresh", "refresh-error", "expired", "logout", "change", "sync"]) {
    keeper.on(name, (detail) => tk.events.push({ name, at: Date.now(), ...(detail ?? {}) }));
  }

  /** Starts keeper.loginRedirect(opts) (it navigates away); a failure lands in tk.loginError. */
  tk.login = (opts) => {
    tk.loginError = undefined;
    return keeper.loginRedirect(opts).catch((e) => {
      tk.loginError = describe(e);
    });
  };
  /** The same for keeper.logoutRedirect(opts). */
  tk.logoutRedirect = (opts) => {
    tk.loginError = undefined;
    return keeper.logoutRedirect(opts).catch((e) => {
      tk.loginError = describe(e);
    });
  };
  /** n concurrent keeper.fetch(userinfo) calls; resolves with a count per status (or per error code). */
  tk.burst = async (n) => {
    const results = await Promise.all(Array.from({ length: n }, () =>
      keeper.fetch(tk.userinfo).then((r) => String(r.status), (e) => `error:${e?.code ?? e}`)));
    const counts = {};
    for (const r of results) counts[r] = (counts[r] || 0) + 1;
    return counts;
  };
  /** Refreshes this tab made itself over the network (not adopted from another tab, not the login). */
  const network = new Set(["timer", "read", "on-demand"]);
  tk.ownRefreshes = () => tk.events.filter((e) => e.name === "refresh" && network.has(e.source)).length;
  tk.state = () => ({
    href: location.href,
    /** The URL this document was loaded from (history.replaceState does not change it). */
    loadedFrom: performance.getEntriesByType("navigation")[0]?.name,
    isAuthenticated: keeper.isAuthenticated,
    generation: keeper.generation,
    sub: keeper.idTokenClaims?.sub,
    name: keeper.idTokenClaims?.name,
  });
  /** Every key and value of both storages and the page's cookies, to look for tokens in. */
  tk.storage = () => {
    const out = [];
    for (const store of [sessionStorage, localStorage]) {
      for (let i = 0; i < store.length; i++) {
        const key = store.key(i);
        out.push(key, store.getItem(key));
      }
    }
    out.push(document.cookie);
    return out;
  };

  /**
   * What another script of the origin gets from the tabs: sends a hello on
   * the keepers' channel, as a new tab would, and resolves with the answers
   * of the first `tabs` distinct senders (rejects after `timeoutMs`). Each
   * answer: its type, tokens, generation and what its DPoP `key` is.
   */
  tk.spy = (tabs, timeoutMs = 5000) => new Promise((resolve, reject) => {
    const channel = new BroadcastChannel("tokenkeeper:oidc-e2e");
    const from = "spy-" + crypto.randomUUID();
    const answers = new Map();
    const done = (f) => {
      clearTimeout(timer);
      channel.close();
      f();
    };
    const timer = setTimeout(() => done(() => reject(new Error(
      `spy: ${answers.size} of ${tabs} tabs answered in ${timeoutMs} ms: ${JSON.stringify([...answers.values()])}`))), timeoutMs);
    const pending = [];
    channel.onmessage = (e) => {
      const m = e.data;
      if (!m || typeof m !== "object" || m.type === "hello" || answers.has(m.from)) return;
      const answer = { from: m.from, type: m.type, gen: m.gen, access: m.access, refresh: m.refresh, kx: m.kx, ky: m.ky,
                       fields: Object.keys(m).sort(), key: null };
      answers.set(m.from, answer);
      pending.push(describeKey(m.key).then((key) => { answer.key = key; }));
      if (answers.size === tabs) Promise.all(pending).then(() => done(() => resolve([...answers.values()])));
    };
    channel.postMessage({ v: 1, type: "hello", from, gen: 0 });
  });
  /** Facts about a value sent as a DPoP key: a CryptoKey or not, and whether it can be exported. */
  const describeKey = async (key) => {
    if (key === undefined) return null;
    if (!(key instanceof CryptoKey)) return { isCryptoKey: false, type: typeof key };
    // The name of exportKey's error, or false when it exported the key.
    const refusal = (format) => crypto.subtle.exportKey(format, key).then(() => false, (e) => e.name);
    return {
      isCryptoKey: true, extractable: key.extractable, type: key.type, usages: [...key.usages],
      algorithm: { name: key.algorithm.name, namedCurve: key.algorithm.namedCurve },
      exportJwk: await refusal("jwk"), exportPkcs8: await refusal("pkcs8"),
    };
  };
  /** What the origin keeps where a script could read it later. */
  tk.probe = async () => ({
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
    indexedDB: (await indexedDB.databases()).map((d) => d.name),
    caches: await caches.keys(),
    cookie: document.cookie,
  });

  if (location.pathname === "/callback/") {
    try {
      tk.redirect = await keeper.handleRedirect();
    } catch (e) {
      tk.redirectError = describe(e);
    }
  } else {
    tk.ready = await keeper.ready();
  }
  status.textContent = "ready";
} catch (e) {
  tk.error = describe(e);
  status.textContent = `error: ${tk.error.message}`;
} finally {
  tk.done = true;
}

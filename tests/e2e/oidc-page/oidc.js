// The page of the OpenID Connect end-to-end test (served at /, /callback/ and
// /logged-out/): one TokenKeeper per tab against a real OpenID provider whose
// issuer the test puts in window.TK_ISSUER before any script runs. Driven from
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

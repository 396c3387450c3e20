// A new tab: from init() to its first authenticated keeper.fetch, joining the
// session of the tabs already open (no network) or, with none open, through a
// refresh over the network. Query: channel, style (refreshStyle).
import init, { TokenKeeper } from "/pkg/tokenkeeper.js";

// Measured once the harness says go (after it stops intercepting requests).
await new Promise((resolve) => (window.go = resolve));
const params = new URLSearchParams(location.search);
const t0 = performance.now();
await init();
const t1 = performance.now();
const keeper = new TokenKeeper({
  refreshUrl: "/token/refresh",
  channel: params.get("channel") || "bench",
  refreshStyle: params.get("style") || "json",
});
const t2 = performance.now();
const authenticated = await keeper.ready();
const t3 = performance.now();
const res = await keeper.fetch("/api/me");
await res.text();
const t4 = performance.now();
window.result = {
  init: t1 - t0, construct: t2 - t1, ready: t3 - t2, fetch: t4 - t3, total: t4 - t0,
  authenticated, status: res.status, sinceNavigation: t4,
};
window.keeper = keeper;
window.benchReady = true;

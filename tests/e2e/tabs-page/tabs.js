// A bare page for the multi-tab end-to-end test: one TokenKeeper per tab,
// driven from Playwright through window.tk.
import init, { TokenKeeper } from "/pkg/tokenkeeper.js";

await init();
const keeper = new TokenKeeper({ refreshUrl: "/token/refresh", channel: "e2e" });
const events = [];
for (const name of ["refresh", "refresh-error", "expired", "logout", "sync"]) {
  keeper.on(name, (detail) => events.push({ name, at: Date.now(), ...detail }));
}

window.tk = {
  keeper,
  events,
  login: () => keeper.login("/login", { username: "user1", password: "password1" }),
  ready: () => keeper.ready(),
  /** n concurrent keeper.fetch calls; resolves with a count per status. */
  async burst(n) {
    const responses = await Promise.all(Array.from({ length: n }, () => keeper.fetch("/api/data")));
    const counts = {};
    for (const r of responses) counts[r.status] = (counts[r.status] || 0) + 1;
    return counts;
  },
  /** When this tab last refreshed over the network (not adopted from a tab). */
  lastOwnRefresh() {
    const own = events.filter((e) => e.name === "refresh" && e.source !== "tab");
    return own.length ? own[own.length - 1].at : 0;
  },
};
document.getElementById("status").textContent = "ready";

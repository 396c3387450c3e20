// The live demo: a plain ES module page using the wasm package from /pkg/.
import init, { TokenKeeper } from "/pkg/tokenkeeper.js";

const $ = (id) => document.getElementById(id);

function log(kind, text) {
  const li = document.createElement("li");
  li.className = "ev-" + kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, kind + ": " + text);
  $("events").prepend(li);
}

function seconds(ms) {
  return ms === undefined ? "–" : Math.max(0, ms / 1000).toFixed(1) + " s";
}

await init();
const keeper = new TokenKeeper({
  refreshUrl: "/token/refresh",
  refreshLeadSeconds: 5,
  logoutUrl: "/logout",
});

keeper.on("refresh", (d) => log("refresh", `new token (generation ${d.generation}, ${d.source})`));
keeper.on("refresh-error", (d) => log("refresh-error", `${d.code}${d.status ? " " + d.status : ""}${d.retrying ? `, retrying in ${d.retryInMs} ms` : ", fatal"}`));
keeper.on("expired", (d) => log("expired", `${d.reason} (${d.url})`));
keeper.on("logout", (d) => log("logout", d.reason));
keeper.on("change", () => render());

function render() {
  const on = keeper.isAuthenticated;
  $("state").textContent = on ? "logged in" : "logged out";
  $("state").className = on ? "on" : "off";
  $("generation").textContent = on ? String(keeper.generation) : "–";
  for (const id of ["call-api", "burst", "logout"]) $(id).disabled = !on;
  $("login-panel").hidden = on;
}

function tick() {
  const now = Date.now();
  $("expires").textContent = keeper.isAuthenticated ? seconds(keeper.expiresAt && keeper.expiresAt - now) : "–";
  $("next-refresh").textContent = keeper.isAuthenticated ? seconds(keeper.refreshAt && keeper.refreshAt - now) : "–";
  requestAnimationFrame(tick);
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    await keeper.login("/login", { username: form.get("username"), password: form.get("password") });
    log("login", `logged in as ${form.get("username")}`);
  } catch (err) {
    log("error", `${err.code}: ${err.message}`);
  }
});

$("call-api").addEventListener("click", async () => {
  const res = await keeper.fetch("/api/me");
  const body = await res.json();
  $("result").textContent = `${res.status} ${JSON.stringify(body, null, 1)}`;
  log("request", `GET /api/me → ${res.status}`);
});

$("burst").addEventListener("click", async () => {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: 50 }, () => keeper.fetch("/api/data")));
  const counts = {};
  for (const r of results) counts[r.status] = (counts[r.status] || 0) + 1;
  const ms = (performance.now() - started).toFixed(0);
  $("result").textContent = `50 calls in ${ms} ms: ${JSON.stringify(counts)}`;
  log("request", `burst of 50 → ${JSON.stringify(counts)}`);
});

$("logout").addEventListener("click", async () => {
  await keeper.logout();
  $("result").textContent = "";
});

render();
tick();

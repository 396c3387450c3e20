// The live demo: a plain ES module page (no build step, strict CSP) using the
// package from /pkg/, against the dev auth server that serves it.
import init, { TokenKeeper, isTokenKeeperError } from "/pkg/tokenkeeper.js";
import { Timeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const timeline = new Timeline($("timeline"));

/** A line in the text version of the timeline. */
function log(kind, text) {
  const li = document.createElement("li");
  li.className = "ev-" + kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  li.append(time, `${kind}: ${text}`);
  $("events").prepend(li);
  while ($("events").children.length > 200) $("events").lastElementChild.remove();
}

function describe(err) {
  return isTokenKeeperError(err)
    ? `${err.code}${err.status ? " " + err.status : ""}: ${err.message}`
    : String(err);
}

// --- every request the page makes, from the browser's Resource Timing -------
// keeper.fetch hides its inner workings (a 401 answered by a refresh and a
// replay looks like one successful call to the app); the browser still sees
// every request, and so does this timeline.
const AUTH_PATHS = ["/login", "/token/refresh", "/oauth/token", "/logout"];
function drawRequest(entry) {
  if (entry.initiatorType !== "fetch") return;
  const url = new URL(entry.name);
  if (url.origin !== location.origin) return;
  const lane = url.pathname.startsWith("/api/") ? "api" : AUTH_PATHS.includes(url.pathname) ? "auth" : null;
  if (!lane) return; // the page's own calls to /admin/*
  const status = entry.responseStatus; // 0: no answer; undefined: not told by this browser
  const kind = status === undefined ? "unknown" : status === 0 ? "fail" : status === 401 ? "s401" : status >= 400 ? "fail" : "ok";
  const start = performance.timeOrigin + entry.startTime;
  const end = performance.timeOrigin + (entry.responseEnd || entry.startTime);
  const answer = status === undefined ? "" : status === 0 ? " → no answer" : ` → ${status}`;
  timeline.span(lane, kind, start, end, `${url.pathname}${answer} (${Math.round(end - start)} ms)`);
  if (kind === "s401" || kind === "fail") log(kind === "s401" ? "401" : "failed", `${url.pathname}${answer}`);
}
performance.setResourceTimingBufferSize?.(1000);
performance.addEventListener?.("resourcetimingbufferfull", () => performance.clearResourceTimings());
new PerformanceObserver((list) => list.getEntries().forEach(drawRequest)).observe({ type: "resource", buffered: true });

// --- the keeper ------------------------------------------------------------
await init();
const keeper = new TokenKeeper({
  refreshUrl: "/token/refresh",
  logoutUrl: "/logout",
  refreshLeadSeconds: 3,
});
let generation = 0;

keeper.on("refresh", (d) => {
  const text = `new token, generation ${d.generation} (${d.source === "tab" ? "from another tab" : d.source})`;
  timeline.point("events", "refresh", Date.now(), text);
  log("refresh", text);
});
keeper.on("refresh-error", (d) => {
  const text = `${d.code}${d.status ? " " + d.status : ""}${d.retrying ? `, session kept, retrying in ${d.retryInMs} ms` : ", fatal"}`;
  timeline.point("events", "refresh-error", Date.now(), `refresh failed: ${text}`);
  log("refresh-error", text);
});
keeper.on("expired", (d) => {
  timeline.point("events", "expired", Date.now(), `401 that no new token could fix (${d.reason}): ${d.url}`);
  log("expired", `${d.reason} (${d.url})`);
});
keeper.on("logout", (d) => {
  const text = { local: "logged out here", remote: "logged out in another tab", "refresh-failed": "the server refused the refresh token" }[d.reason];
  timeline.point("events", "logout", Date.now(), `session ended: ${text}`);
  log("logout", text);
});
keeper.on("change", (d) => {
  if (d.isAuthenticated && d.generation !== generation) {
    timeline.token(d.generation, Date.now(), d.expiresAt, keeper.refreshAt);
  } else if (!d.isAuthenticated) {
    timeline.endToken(Date.now());
  }
  generation = d.generation;
  render();
});
keeper.on("sync", drawTabMessage);

/** A message from another tab of this page that the keeper acted on. */
function drawTabMessage(d) {
  const what = {
    adopted: "adopted the tokens another tab refreshed (no request)",
    logout: "another tab ended the session",
    backoff: "another tab was told to wait before refreshing: this one waits too",
    advanced: "another tab moved on to a newer generation",
    answered: "a new tab asked for the session: answered with it",
  }[d.type] ?? d.type;
  timeline.point("tabs", "sync", Date.now(), `${what}, generation ${d.generation}`);
  log("tab", what);
}

// --- the state panel -------------------------------------------------------
let joining = true; // until ready() has asked the other tabs
function render() {
  const on = keeper.isAuthenticated;
  $("state").textContent = on ? "logged in" : joining ? "asking other tabs…" : "logged out";
  $("state").className = "badge " + (on ? "on" : joining ? "" : "off");
  $("generation").textContent = on ? String(keeper.generation) : "–";
  $("generation-text").textContent = on ? "the tokens are in this page's memory only" : "";
  for (const id of ["call-api", "burst", "refresh-now", "logout"]) $(id).disabled = !on;
  $("login-panel").hidden = on;
}

function countdown(textId, barId, at, since) {
  const now = Date.now();
  if (!keeper.isAuthenticated || at === undefined) {
    $(textId).textContent = "–";
    $(barId).style.width = "0%";
    return;
  }
  const left = Math.max(0, at - now);
  $(textId).textContent = (left / 1000).toFixed(1) + " s";
  const whole = Math.max(1, at - since);
  $(barId).style.width = `${Math.min(100, (left / whole) * 100).toFixed(1)}%`;
}

let lastDraw = 0;
function tick(now) {
  const life = timeline.lives[timeline.lives.length - 1];
  const since = life?.start ?? Date.now();
  countdown("expires", "expires-bar", keeper.expiresAt, since);
  countdown("next-refresh", "refresh-bar", keeper.refreshAt, since);
  if (life && life.end === undefined) life.refreshAt = keeper.refreshAt;
  if (now - lastDraw > 100) {
    timeline.render();
    lastDraw = now;
  }
  requestAnimationFrame(tick);
}

// --- actions ---------------------------------------------------------------
let loggedInHere = false;
$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  loggedInHere = true;
  const form = new FormData(e.target);
  try {
    await keeper.login("/login", { username: form.get("username"), password: form.get("password") });
    timeline.point("events", "login", Date.now(), `logged in as ${form.get("username")}`);
    log("login", `logged in as ${form.get("username")}`);
  } catch (err) {
    $("result").textContent = describe(err);
    log("error", describe(err));
  }
});

$("call-api").addEventListener("click", async () => {
  try {
    const res = await keeper.fetch("/api/me");
    const body = await res.json();
    $("result").textContent = `GET /api/me → ${res.status}\n${JSON.stringify(body, null, 1)}`;
  } catch (err) {
    $("result").textContent = describe(err);
  }
});

$("burst").addEventListener("click", async () => {
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: 50 }, () => keeper.fetch("/api/data")));
  const counts = {};
  for (const r of results) {
    const key = r.status === "fulfilled" ? r.value.status : r.reason?.code ?? "error";
    counts[key] = (counts[key] || 0) + 1;
  }
  const ms = (performance.now() - started).toFixed(0);
  $("result").textContent = `50 calls in ${ms} ms: ${JSON.stringify(counts)}`;
  log("burst", `50 calls → ${JSON.stringify(counts)}`);
});

$("refresh-now").addEventListener("click", async () => {
  $("result").textContent = "refreshing…";
  try {
    await keeper.refresh();
    $("result").textContent = `refreshed: generation ${keeper.generation}`;
  } catch (err) {
    $("result").textContent = describe(err);
  }
});

$("logout").addEventListener("click", async () => {
  await keeper.logout();
  timeline.point("events", "logout", Date.now(), "logout() called");
  $("result").textContent = "Logged out: the tokens are gone from memory, in every tab.";
});

$("open-tab").addEventListener("click", () => {
  window.open(location.pathname, "_blank");
});

// --- fault injection through the dev server's loopback-only admin API ------
async function admin(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

const FAULT_NOTES = {
  status500: "The next refresh gets a 500: the session is kept while the token is valid, and retried with backoff.",
  status429: "The next refresh gets a 429 with Retry-After: 3: the retry waits at least 3 s.",
  lost_response:
    "The next refresh is carried out by the server (the refresh token rotates) but its answer never arrives. " +
    "The retry presents the old refresh token: within the server's reuse grace window it is accepted; " +
    "after it, the server sees reuse, revokes the session, and every tab is logged out.",
};

for (const button of document.querySelectorAll("button.fault[data-kind]")) {
  button.addEventListener("click", async () => {
    const kind = button.dataset.kind;
    try {
      await admin("/admin/faults", { kind, count: 1, ...(kind === "status429" ? { retry_after: 3 } : {}) });
      $("fault-note").textContent = FAULT_NOTES[kind];
      log("fault", `next refresh: ${button.textContent}`);
    } catch (err) {
      $("fault-note").textContent = String(err);
    }
  });
}

$("forget").addEventListener("click", async () => {
  try {
    await admin("/admin/reset", {});
    $("fault-note").textContent =
      "The server forgot every session. The next API call gets a 401; tokenkeeper refreshes once, the refresh " +
      "token is refused, and the session ends in every tab.";
    log("fault", "the server forgot every session");
  } catch (err) {
    $("fault-note").textContent = String(err);
  }
});

// The token lifetime the server hands out from now on.
const ttl = $("ttl");
fetch("/admin/config")
  .then((r) => r.json())
  .then((config) => {
    const value = String(config.access_ttl_ms);
    if (![...ttl.options].some((o) => o.value === value)) ttl.add(new Option(`${config.access_ttl_ms / 1000} s`, value));
    ttl.value = value;
  })
  .catch(() => {});
ttl.addEventListener("change", async () => {
  await admin("/admin/config", { access_ttl_ms: Number(ttl.value) });
  log("config", `tokens issued from now on live ${ttl.selectedOptions[0].textContent}`);
});

// --- start: join the session another tab of this page may already hold -----
render();
requestAnimationFrame(tick);
const joined = await keeper.ready();
joining = false;
if (joined && !loggedInHere) {
  log("tab", "joined the session of another tab, without logging in");
  $("result").textContent = "Joined the session another tab holds: no login, no request to the server.";
}
render();

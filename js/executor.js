// The browser executor of tokenkeeper: carries out what the keeper (Rust,
// in wasm) decides, and turns calls and browser events into its inputs.
// It decides nothing: every command arrives as JSON (see core/src/wire.rs)
// with its data spelled out, and is done as written. Tokens stay in the
// keeper; a token passes through here only to be put on a request.

const now = Date.now;

/** A `TokenKeeperError` from the keeper's JSON description of it. */
const toError = (e) => {
  const err = new Error(e.message);
  err.name = "TokenKeeperError";
  for (const k of ["code", "status", "error", "errorDescription", "retryInMs", "option"]) {
    if (e[k] !== undefined) err[k] = e[k];
  }
  return err;
};

/** The JSON text of an error, made a `TokenKeeperError` (for Rust's throws). */
export const tk_error = (json) => toError(JSON.parse(json));

/** Thrown out of JSON.stringify when a value's text must be longer than allowed. */
const LARGE = {};

/**
 * A JS value as JSON text for the keeper, which reads every value from JS
 * this way (undefined stays undefined), with markers for what JSON has no
 * form for (core/src/value.rs). Never more than `max` + 1 units, and never
 * much more work: each value written counts what its text must at least
 * take, and once that passes `max` (`new Array(2 ** 29)`, a huge string)
 * the writing stops and the keeper is told the value is too large.
 */
export const tk_json = (value, max) => {
  let left = max;
  let root = true;
  function mark(k, v) {
    const t = typeof v;
    // What this value's text takes at least: one unit in an array, its key
    // and `"":` in an object (where undefined is left out), and a string's
    // quotes and characters. Never more than it takes: a value that fits is
    // written whole.
    const inArray = Array.isArray(this);
    if (v !== undefined || inArray) left -= (root ? 0 : inArray ? 1 : k.length + 3) + (t == "string" ? v.length + 2 : 0);
    root = false;
    // An array (or typed array) writes at least a unit per element: its
    // length says at once what it must take, before anything is written.
    if (left < 0 || (t == "object" && v && (Array.isArray(v) || ArrayBuffer.isView(v)) && v.length > left)) throw LARGE;
    return t == "function" || t == "symbol" || t == "bigint" ? { "\0": t } : t == "number" && !isFinite(v) ? { "\0": String(v) } : v;
  }
  let text;
  try {
    text = JSON.stringify(value, mark);
  } catch (e) {
    // Too large; or a cycle, or a getter that throws.
    return e === LARGE ? '{"\\u0000":"large"}' : '{"\\u0000":"?"}';
  }
  return text === undefined ? text : text.slice(0, max + 1);
};

/**
 * `url` made absolute against the page's location, or undefined. Never
 * against `document.baseURI`: markup injected into the page (no script
 * needed) can add a `<base>` of another origin, and the refresh, login and
 * logout URLs carry credentials.
 */
export const tk_resolve = (url) => {
  try {
    return new URL(url, location.href).href;
  } catch {
    return undefined;
  }
};

/** The origin of an absolute URL, or undefined. */
export const tk_origin = (url) => {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
};

/** The page's own origin (never the `<base>`'s). */
export const tk_page_origin = () => String(location.origin);

/**
 * The discovery documents of the page, by URL: one request per issuer for
 * every keeper of the page (a failed one is asked again).
 */
const discoveries = new Map();
const discover = (url, max) => {
  let p = discoveries.get(url);
  if (!p) {
    p = fetch(url, { headers: { Accept: "application/json" }, credentials: "omit" }).then(
      async (res) => [res.status, (await res.text()).slice(0, max + 1)],
      () => [0, undefined],
    );
    discoveries.set(url, p);
    p.then(([status]) => {
      if (status != 200) discoveries.delete(url);
    });
  }
  return p;
};

/** The tab's `sessionStorage`, or null where a page may not use it. */
const storage = () => {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
};

/** A call's reply, or its error thrown. */
const ok = (reply) => {
  if (reply.r == "error") throw toError(reply.e);
  return reply;
};

/** No answer from a token endpoint, as the keeper reads it. */
const none = (sent) => [sent, sent, 0, NaN, undefined, NaN, undefined, undefined];

/** The answer of a token endpoint, as the keeper reads it (`max`: the most of its body it reads). */
const exchange = async (q, max) => {
  const sent = now();
  let res;
  try {
    res = await fetch(q.url, { method: "POST", headers: q.h, body: q.b, credentials: q.cr, cache: "no-store" });
  } catch {
    return none(sent);
  }
  const received = now();
  const h = res.headers;
  const retry = h.get("Retry-After") ?? undefined;
  let body;
  try {
    body = (await res.text()).slice(0, max + 1);
  } catch {}
  const nonce = h.get("DPoP-Nonce")?.slice(0, NONCE + 1) ?? undefined;
  return [sent, received, res.status, Date.parse(h.get("Date")), retry, Date.parse(retry), body, nonce];
};

/** The longest DPoP nonce the keeper takes (core/src/dpop.rs, MAX_NONCE). */
const NONCE = 512;

/** Bytes as base64url, without padding. */
const base64url = (bytes) => {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const utf8 = new TextEncoder();

/**
 * The DPoP key that came with a tab message, if it is one: a private,
 * non-extractable ECDSA P-256 `CryptoKey` that signs. Anything else is no key.
 */
const dpopKey = (data) => {
  try {
    const k = data && typeof data == "object" ? data.key : undefined;
    const a = k && k.algorithm;
    return typeof CryptoKey == "function" && k instanceof CryptoKey && k.type == "private" && !k.extractable &&
      a.name == "ECDSA" && a.namedCurve == "P-256" && k.usages.includes("sign")
      ? k
      : undefined;
  } catch {
    return undefined;
  }
};

const visible = () => typeof document != "object" || !document || document.visibilityState != "hidden";

/** An exception of an app's listener, reported as an uncaught one would be (it must not stop the others). */
const report = (e) => {
  if (typeof reportError == "function") reportError(e);
  else setTimeout(() => {
    throw e;
  });
};

/**
 * The page events every keeper of the page hears: one listener each for
 * the whole page, added once and kept for the page's lifetime (a page with
 * thousands of keepers would otherwise add and remove thousands of
 * listeners on one target, each in time that grows with their number).
 */
const shells = new Set();
let listening = false;
const listenPage = () => {
  if (listening) return;
  listening = true;
  const on = (target, type, event) => {
    if (target) target.addEventListener(type, () => {
      for (const shell of shells) shell.input(() => shell.core.page(now(), event, visible()));
    });
  };
  on(typeof document == "object" ? document : null, "visibilitychange", 0);
  on(globalThis, "pageshow", 1);
  on(globalThis, "online", 2);
  on(globalThis, "focus", 3);
};

/** Rejects with fetch's own error once `signal` is aborted. */
const aborted = (signal) =>
  new Promise((_, reject) => {
    const abort = () => reject(signal.reason ?? new DOMException("The operation was aborted.", "AbortError"));
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  });

/** `p`, or fetch's AbortError as soon as `signal` aborts: the caller stops waiting, the work goes on for others. */
const abortable = (p, signal) => Promise.race([p, aborted(signal)]);

export class Shell {
  /** Opens the channel to the other tabs, if the browser has one. */
  constructor(channel) {
    this.name = "tokenkeeper:" + channel;
    /** Where a login's transaction waits for its callback (this tab only). */
    this.store = this.name + ":login";
    try {
      this.channel = new BroadcastChannel(this.name);
    } catch {
      this.channel = null;
    }
    const locks = globalThis.navigator && navigator.locks;
    this.lockManager = this.channel && typeof locks == "object" && locks ? locks : null;
    this.calls = new Map();
    /** The session's DPoP private keys, by thumbprint (the keeper names them). */
    this.keys = new Map();
    this.next = 1;
    this.list = [];
    this.held = [];
    this.off = [];
    this.boundFetch = (input, init) => this.fetch(input, init);
  }

  get tabs() {
    return !!this.channel;
  }

  get locks() {
    return !!this.lockManager;
  }

  /** Starts carrying out `core`'s commands; `config` says how requests carry the token. */
  start(core, config) {
    this.core = core;
    Object.assign(this, JSON.parse(config));
    const listen = (target, type, f) => {
      if (!target) return;
      target.addEventListener(type, f);
      this.off.push(() => target.removeEventListener(type, f));
    };
    listen(this.channel, "message", (e) => {
      // A DPoP session's key travels beside its tokens: kept if the keeper
      // takes the session (a `takekey` while this message is handled).
      const key = dpopKey(e.data);
      this.incoming = key;
      try {
        this.input(() => core.tab(now(), tk_json(e.data, this.message), !!key));
      } finally {
        this.incoming = undefined;
      }
    });
    shells.add(this);
    listenPage();
    if (this.logins) {
      // A login abandoned long ago is forgotten.
      const stored = this.stored();
      if (stored !== undefined) core.sweep(now(), stored);
    }
    this.drive();
  }

  /** Feeds an input to the keeper and carries out what comes of it. */
  input(f) {
    f();
    this.drive();
  }

  /**
   * Starts an app call: the keeper's reply when it settles the call at once
   * (a valid token, most often), else a promise of it.
   */
  call(start) {
    const id = this.next;
    this.next = (id % 0xfffffffe) + 1;
    let reply;
    this.calls.set(id, (r) => (reply = r));
    this.input(() => start(id));
    return reply || new Promise((resolve) => this.calls.set(id, resolve));
  }

  /** Carries out the keeper's commands, then arms the timer for its next moment. */
  drive() {
    for (let c; (c = this.core.poll()) !== undefined; ) this.exec(JSON.parse(c));
    const at = this.core.timeout();
    if (at === this.at && (at === undefined || this.timer !== undefined)) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.at = at;
    if (at === undefined) return;
    // The timer is a hint: when it fires, the keeper reads the clock again.
    this.timer = setTimeout(
      () => {
        this.timer = this.at = undefined;
        this.input(() => this.core.tick(now()));
      },
      Math.min(Math.max(Math.ceil(at - now()), 0), 2147483647),
    );
  }

  exec(c) {
    switch (c.c) {
      case "send":
        this.request(c.q).then((a) => this.input(() => this.core.answer(now(), 0, ...a)));
        break;
      case "lock":
        this.lock();
        break;
      case "unlock": {
        const release = this.held.shift();
        if (release) release();
        break;
      }
      case "post":
        try {
          if (c.k) c.m.key = this.keys.get(c.k);
          this.channel.postMessage(c.m);
        } catch {}
        break;
      case "emit":
        for (const l of this.list) {
          if (l.k == c.k) {
            try {
              l.f(c.d);
            } catch (e) {
              report(e);
            }
          }
        }
        break;
      case "settle":
        this.settle(c.id, c);
        break;
      case "discover":
        discover(c.url, this.body).then(([status, body]) => this.input(() => this.core.discovered(now(), status, body)));
        break;
      case "exchange":
        this.request(c.q).then((a) => this.input(() => this.core.answer(now(), c.id, ...a)));
        break;
      case "keygen":
        this.keygen(c.id);
        break;
      case "takekey":
        if (this.incoming) this.keys.set(c.k, this.incoming);
        break;
      case "dropkey":
        this.keys.delete(c.k);
        break;
      case "navigate": {
        let reply = { r: "done" };
        try {
          storage().setItem(this.store, c.tx);
          location.assign(c.url);
        } catch (e) {
          reply = { r: "error", e: { code: "browser_error", message: "loginRedirect: " + (e && e.message) } };
        }
        this.settle(c.id, reply);
        break;
      }
      case "history":
        try {
          history.replaceState(history.state, "", c.url);
        } catch {}
        break;
      case "forget":
        try {
          storage()?.removeItem(this.store);
        } catch {}
    }
  }

  /** A token endpoint's answer to `q`, signed first when it carries a DPoP proof. */
  async request(q) {
    if (q.p) {
      try {
        q.h.DPoP = await this.sign(q.p);
      } catch {
        return none(now());
      }
    }
    return exchange(q, this.body);
  }

  /** A DPoP proof: its signing input, signed with the key kept under its thumbprint (ES256, JWS). */
  async sign(p) {
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, this.keys.get(p.k), utf8.encode(p.s));
    return p.s + "." + base64url(new Uint8Array(signature));
  }

  /**
   * Makes a DPoP key pair for call `id`: ECDSA P-256, its private half not
   * extractable, kept in memory only. The keeper gets the public half and
   * names the thumbprint to keep the private half under.
   */
  async keygen(id) {
    let pair, jwk;
    try {
      pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
      jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
    } catch {}
    this.input(() => {
      const k = this.core.key_made(now(), id, jwk && jwk.x, jwk && jwk.y);
      if (k !== undefined) this.keys.set(k, pair.privateKey);
    });
  }

  /** Takes the tabs' refresh lock; tells the keeper whether another tab held it. */
  async lock() {
    const locks = this.lockManager;
    if (!locks) return this.granted(null, true);
    const acquire = (options) =>
      new Promise((resolve) => {
        locks
          .request(this.name + ":refresh", options, (lock) => new Promise((release) => resolve({ lock, release })))
          .catch(() => resolve(null));
      });
    const first = await acquire({ ifAvailable: true });
    if (first && first.lock) return this.granted(first.release, false);
    if (first) first.release();
    const second = await acquire({});
    if (second && !second.lock) second.release();
    this.granted(second && second.lock ? second.release : null, true);
  }

  granted(release, contended) {
    this.held.push(release);
    this.input(() => this.core.lock(now(), contended));
  }

  async ready() {
    return ok(await this.call((id) => this.core.ready(now(), id))).ok;
  }

  async login(url, credentials) {
    let body;
    try {
      body = JSON.stringify(credentials);
    } catch {}
    // At most one unit more than the keeper reads: it says the rest is too large.
    if (typeof body == "string") body = body.slice(0, this.body + 1);
    ok(await this.call((id) => this.core.login(id, url, body)));
  }

  async token() {
    return ok(await this.call((id) => this.core.need_token(now(), id))).a;
  }

  async refresh() {
    ok(await this.call((id) => this.core.refresh(now(), id)));
  }

  async logout() {
    await this.leave(this.core.logout(now()));
  }

  /** Carries out a logout's answer: the session is gone; tells (or revokes at) the endpoint. */
  async leave(answer) {
    const c = JSON.parse(answer);
    this.drive();
    if (c.e) throw toError(c.e);
    if (c.q) await exchange(c.q, 0);
    return c;
  }

  /** Ends a waiting call with `reply`. */
  settle(id, reply) {
    const resolve = this.calls.get(id);
    this.calls.delete(id);
    if (resolve) resolve(reply);
  }

  /**
   * The login transaction this tab stores, if any. Strings from the page
   * go to the keeper cut one unit past its bound: it refuses what is longer.
   */
  stored() {
    let stored;
    try {
      stored = storage()?.getItem(this.store) ?? undefined;
    } catch {}
    return stored === undefined ? stored : stored.slice(0, this.message + 1);
  }

  async handleRedirect() {
    const href = String(location.href).slice(0, this.message + 1);
    const r = ok(await this.call((id) => this.core.handle_redirect(now(), id, href, this.stored())));
    return r.to === undefined ? null : { returnTo: r.to };
  }

  async loginRedirect(options) {
    let random = new Uint8Array(64);
    try {
      crypto.getRandomValues(random);
    } catch {
      // The keeper refuses a login without randomness.
      random = new Uint8Array(0);
    }
    const here = (location.pathname + location.search + location.hash).slice(0, this.message + 1);
    ok(await this.call((id) => this.core.login_redirect(now(), id, here, random, options)));
  }

  async logoutRedirect(options) {
    const c = await this.leave(this.core.logout_redirect(now(), options));
    if (c.go) location.assign(c.go);
  }

  on(kind, f) {
    const l = { k: kind, f };
    this.list = [...this.list, l];
    return () => {
      this.list = this.list.filter((x) => x !== l);
    };
  }

  async fetch(input, init) {
    // Built exactly as fetch would: its errors are fetch's errors.
    const request = new Request(input, init);
    const url = request.url;
    // Aborted while it waits for a refresh, the call rejects at once (the
    // refresh goes on for the others); once sent, fetch itself sees to it.
    const signal = request.signal;
    if (signal.aborted) await aborted(signal);
    const method = request.method;
    let r = this.call((id) => this.core.fetch(now(), id, url, request.mode, method));
    if (r instanceof Promise) r = await abortable(r, signal);
    ok(r);
    if (r.r == "pass") return fetch(request);
    // Keep a copy to replay after a 401; a stream body cannot be replayed.
    // A GET or HEAD has no body to lose: it is copied only if a 401 comes.
    const bodiless = method == "GET" || method == "HEAD";
    const stream = init && typeof ReadableStream == "function" && init.body instanceof ReadableStream;
    const copy = bodiless || stream ? null : request.clone();
    let sent = now();
    let res = await this.send(request, r.p + r.a, r.d);
    // At most two replays, as the keeper says: one with a DPoP nonce the
    // resource asked for (`n`), one after a refresh.
    let replayed = false;
    let nonced = false;
    for (;;) {
      let a = this.answered(res, r.g, sent, bodiless || !!copy, replayed, nonced, url, method);
      if (a === undefined) return res;
      if (a instanceof Promise) a = await abortable(a, signal);
      // A refresh that failed for now: the call fails, as on a network failure.
      if (ok(a).r != "replay") return res;
      if (a.n) nonced = true;
      else replayed = true;
      const replay = copy ? copy.clone() : new Request(request);
      sent = now();
      res = await this.send(replay, a.p + a.a, a.d);
    }
  }

  /**
   * Hands a response to the keeper: a renewed token, and what a refused
   * token calls for. Any other response needs nothing from it (the keeper
   * says which status that is): undefined then.
   */
  answered(res, gen, sent, replayable, replayed, nonced, url, method) {
    const h = res.headers;
    const renewed = (this.renew && h.get(this.renew)) ?? undefined;
    const nonce = this.nonces ? h.get("DPoP-Nonce")?.slice(0, NONCE + 1) ?? undefined : undefined;
    const rejected = res.status == this.rejected;
    if (renewed === undefined && nonce === undefined && !rejected) return undefined;
    const date = renewed === undefined ? NaN : Date.parse(h.get("Date"));
    const challenge = rejected ? h.get("WWW-Authenticate")?.slice(0, this.message + 1) ?? undefined : undefined;
    return this.call((id) =>
      this.core.response(now(), id, gen, res.status, renewed, date, sent, replayable, replayed, url, method, nonce, challenge, nonced),
    );
  }

  /**
   * Sends `request` with the token. With a custom header (`manual`: browsers
   * keep it across origins on a redirect) the request does not follow
   * redirects itself; one of the `resend` methods that is redirected is sent
   * again without the token, any other gets the redirect back (an
   * `"opaqueredirect"` response). The keeper says which (RESEND_WITHOUT_TOKEN).
   */
  send(request, value, proof) {
    // A DPoP proof is signed first (WebCrypto is async; Bearer stays sync).
    if (proof)
      return this.sign(proof).then((signed) => {
        request.headers.set("DPoP", signed);
        return this.send(request, value);
      });
    request.headers.set(this.header, value);
    // Not async on the common path: one promise less per call.
    return !this.manual || request.redirect != "follow" ? fetch(request) : this.manual_send(request);
  }

  async manual_send(request) {
    const fallback = this.resend.includes(request.method) ? request.clone() : null;
    const res = await fetch(new Request(request, { redirect: "manual" }));
    if (!fallback || res.type != "opaqueredirect") return res;
    fallback.headers.delete(this.header);
    return fetch(fallback);
  }

  /** `free()`: the keeper does nothing more; waiting calls end; listeners, timer, channel and locks go. */
  free() {
    shells.delete(this);
    this.core.close();
    this.drive();
    clearTimeout(this.timer);
    this.timer = this.at = undefined;
    for (const off of this.off) off();
    this.off = [];
    this.list = [];
    if (this.channel) this.channel.close();
    this.channel = this.lockManager = null;
    for (const release of this.held) if (release) release();
    this.held = [];
    this.keys.clear();
  }
}

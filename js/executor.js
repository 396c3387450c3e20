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
  for (const k of ["code", "status", "error", "retryInMs", "option"]) {
    if (e[k] !== undefined) err[k] = e[k];
  }
  return err;
};

/** The JSON text of an error, made a `TokenKeeperError` (for Rust's throws). */
export const tk_error = (json) => toError(JSON.parse(json));

/** What JSON has no form for, marked so the keeper can name it (core/src/value.rs). */
const mark = (k, v) => {
  const t = typeof v;
  return t == "function" || t == "symbol" || t == "bigint" ? { "\0": t } : t == "number" && !isFinite(v) ? { "\0": String(v) } : v;
};

/**
 * A JS value as JSON text for the keeper, which reads every value from JS
 * this way (undefined stays undefined). Never more than `max` + 1 units: the
 * keeper sees a longer text is too long, without being handed all of it.
 */
export const tk_json = (value, max) => {
  let text;
  try {
    text = JSON.stringify(value, mark);
  } catch {
    // A cycle, or a getter that throws.
    text = '{"\\u0000":"?"}';
  }
  return text === undefined ? text : text.slice(0, max + 1);
};

/** `url` made absolute against the page (the `<base>`, in a window), or undefined. */
export const tk_resolve = (url) => {
  try {
    return new URL(url, typeof document == "object" && document ? document.baseURI : location.href).href;
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

/** A call's reply, or its error thrown. */
const ok = (reply) => {
  if (reply.r == "error") throw toError(reply.e);
  return reply;
};

/** The answer of a token endpoint, as the keeper reads it (`max`: the most of its body it reads). */
const exchange = async (q, max) => {
  const sent = now();
  let res;
  try {
    res = await fetch(q.url, { method: "POST", headers: q.h, body: q.b, credentials: q.cr, cache: "no-store" });
  } catch {
    return [sent, sent, 0, NaN, undefined, NaN, undefined];
  }
  const received = now();
  const h = res.headers;
  const retry = h.get("Retry-After") ?? undefined;
  let body;
  try {
    body = (await res.text()).slice(0, max + 1);
  } catch {}
  return [sent, received, res.status, Date.parse(h.get("Date")), retry, Date.parse(retry), body];
};

const visible = () => typeof document != "object" || !document || document.visibilityState != "hidden";

export class Shell {
  /** Opens the channel to the other tabs, if the browser has one. */
  constructor(channel) {
    this.name = "tokenkeeper:" + channel;
    try {
      this.channel = new BroadcastChannel(this.name);
    } catch {
      this.channel = null;
    }
    const locks = globalThis.navigator && navigator.locks;
    this.lockManager = this.channel && typeof locks == "object" && locks ? locks : null;
    this.calls = new Map();
    this.next = 1;
    this.list = [];
    this.held = [];
    this.off = [];
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
    listen(this.channel, "message", (e) => this.input(() => core.tab(now(), tk_json(e.data, this.message))));
    const page = (event) => () => this.input(() => core.page(now(), event, visible()));
    listen(typeof document == "object" ? document : null, "visibilitychange", page(0));
    listen(globalThis, "pageshow", page(1));
    listen(globalThis, "online", page(2));
    listen(globalThis, "focus", page(3));
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
        exchange(c.q, this.body).then((a) => this.input(() => this.core.answer(now(), 0, ...a)));
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
          this.channel.postMessage(c.m);
        } catch {}
        break;
      case "emit":
        for (const l of this.list) {
          if (l.k == c.k) {
            try {
              l.f(c.d);
            } catch {}
          }
        }
        break;
      case "settle": {
        const resolve = this.calls.get(c.id);
        this.calls.delete(c.id);
        if (resolve) resolve(c);
      }
    }
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
    const c = JSON.parse(this.core.login(url, body));
    if (c.e) throw toError(c.e);
    const a = await exchange(c.q, this.body);
    ok(await this.call((id) => this.core.answer(now(), id, ...a)));
  }

  async token() {
    return ok(await this.call((id) => this.core.need_token(now(), id))).a;
  }

  async refresh() {
    ok(await this.call((id) => this.core.refresh(now(), id)));
  }

  async logout() {
    const q = this.core.logout(now());
    this.drive();
    if (q !== undefined) await exchange(JSON.parse(q), 0);
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
    let r = this.call((id) => this.core.fetch(now(), id, url));
    if (r instanceof Promise) r = await r;
    ok(r);
    if (r.r == "pass") return fetch(request);
    // Keep a copy to replay after a 401; a stream body cannot be replayed.
    // A GET or HEAD has no body to lose: it is copied only if a 401 comes.
    const bodiless = request.method == "GET" || request.method == "HEAD";
    const stream = init && typeof ReadableStream == "function" && init.body instanceof ReadableStream;
    const copy = bodiless || stream ? null : request.clone();
    let sent = now();
    const first = await this.send(request, r.p + r.a);
    let a = this.answered(first, r.g, sent, bodiless || !!copy, false, url);
    if (a === undefined) return first;
    if (a instanceof Promise) a = await a;
    if (a.r != "replay") return first;
    const replay = copy || new Request(request);
    sent = now();
    const second = await this.send(replay, a.p + a.a);
    await this.answered(second, r.g, sent, true, true, url);
    return second;
  }

  /**
   * Hands a response to the keeper: a renewed token, and what a refused
   * token calls for. Any other response needs nothing from it (the keeper
   * says which status that is): undefined then.
   */
  answered(res, gen, sent, replayable, replayed, url) {
    const h = res.headers;
    const renewed = (this.renew && h.get(this.renew)) ?? undefined;
    if (renewed === undefined && res.status != this.rejected) return undefined;
    const date = renewed === undefined ? NaN : Date.parse(h.get("Date"));
    return this.call((id) => this.core.response(now(), id, gen, res.status, renewed, date, sent, replayable, replayed, url));
  }

  /**
   * Sends `request` with the token. With a custom header (`manual`: browsers
   * keep it across origins on a redirect) the request does not follow
   * redirects itself; one of the `resend` methods that is redirected is sent
   * again without the token, any other gets the redirect back (an
   * `"opaqueredirect"` response). The keeper says which (RESEND_WITHOUT_TOKEN).
   */
  send(request, value) {
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
  }
}

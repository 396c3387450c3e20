// A real OpenID provider on loopback for the end-to-end tests and the demo:
// npm `oidc-provider` (panva, OpenID Certified) with one public SPA client,
// one user and request counters. Plain http, in memory, no consent screen.
//
// As a library:
//   import { startProvider } from "../../scripts/oidc-provider.mjs";
//   const op = await startProvider({ appOrigin: "http://127.0.0.1:8080", accessTtl: 5 });
//   const op = await startProvider({ appOrigin, dpopNonce: true }); // DPoP nonces required
//   op.issuer; op.stats(); op.issued(); await op.introspect(token); op.resetStats(); await op.stop();
// As a command (`make demo`):
//   node scripts/oidc-provider.mjs --port 8081 --app-origin http://127.0.0.1:8080 [--access-ttl 10] [--refresh-ttl 3600]
//   prints the issuer URL on one line and runs until SIGINT/SIGTERM.
//
// The client `spa` (public, PKCE S256 required) may redirect to
// `${appOrigin}/callback/` and `${appOrigin}/` (and the same under /react/dist/
// and /vue/dist/, the demo's examples); after logout to those roots and
// `${appOrigin}/logged-out/`. Refresh tokens are issued without
// prompt=consent and rotate on every use; presenting a rotated one is answered
// invalid_grant and revokes the whole grant. DPoP (RFC 9449) is accepted,
// never required; with `dpopNonce: true` every proof must carry the
// provider's nonce (the token endpoint answers 400 use_dpop_nonce, userinfo
// 401 with a DPoP use_dpop_nonce challenge, both with a DPoP-Nonce header).
// The only account is user1 with password password1 (the stock dev login
// page accepts any password: a check in front of it answers "Invalid login"
// instead). The confidential client `introspector` exists only for
// introspect().
//
// Quiet: oidc-provider's development warnings (and its "Unsupported runtime"
// notice on Node < 22) are dropped unless OIDC_PROVIDER_VERBOSE=1; server
// errors go to stderr.
import { createServer } from "node:http";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import * as querystring from "node:querystring";
import { pathToFileURL } from "node:url";

export const USER = { login: "user1", password: "password1", claims: { sub: "user1", name: "User One" } };
export const CLIENT_ID = "spa";
/** Where the app's pages live on appOrigin: its root, and the demo's examples. */
const APP_ROOTS = ["/", "/react/dist/", "/vue/dist/"];
const INTROSPECTOR = { id: "introspector", secret: randomBytes(16).toString("hex") };

// oidc-provider speaks through console.warn/console.info with these prefixes
// (at import, and lazily at the first use of a default it wants changed).
const verbose = process.env.OIDC_PROVIDER_VERBOSE === "1";
if (!verbose) {
  for (const level of ["warn", "info"]) {
    const original = console[level];
    console[level] = (...args) => {
      if (typeof args[0] === "string" && /^(\x1b\[[0-9;]*m)?oidc-provider (WARNING|NOTICE):/.test(args[0])) return;
      original.apply(console, args);
    };
  }
}
const { default: Provider } = await import("oidc-provider");

const html = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${html(title)}</title></head>
<body><h1>${html(title)}</h1>
${body}
</body></html>`;

/** The login form as the stock devInteractions page has it (same fields), with a message. */
const loginAgain = (path, message) => page("Sign-in", `<p class="error">${html(message)}</p>
<form autocomplete="off" action="${html(path)}" method="post">
  <input type="hidden" name="prompt" value="login">
  <input required type="text" name="login" placeholder="Enter any login" autofocus>
  <input required type="password" name="password" placeholder="and password">
  <button type="submit" class="login login-submit">Sign-in</button>
</form>
<div class="login-help"><a href="${html(path)}/abort">[ Cancel ]</a></div>`);

function freshStats() {
  return {
    token: { authorization_code: 0, refresh_token: 0 },
    tokenErrors: { invalid_grant: 0 },
    revocations: 0,
    authorize: 0,
    userinfo: { ok: 0, refused: 0 },
    // Requests at /token and /me that carried a DPoP proof, and the
    // use_dpop_nonce answers there (a proof without the provider's nonce).
    dpop: { proofs: { token: 0, userinfo: 0 }, useNonce: { token: 0, userinfo: 0 } },
  };
}

/**
 * Starts the provider on 127.0.0.1:`port` (0: a free port). `appOrigin` is the
 * SPA's origin (scheme://host:port, no path); TTLs in seconds. `dpopNonce`:
 * every DPoP proof must carry a nonce the provider gave (a random secret
 * derives them; each is good for a few minutes).
 */
export async function startProvider({ port = 0, appOrigin, accessTtl = 5, refreshTtl = 3600, dpopNonce = false } = {}) {
  if (!appOrigin) throw new Error("startProvider: appOrigin is required");
  appOrigin = new URL(appOrigin).origin;

  // The issuer must be known before the provider exists: bind first.
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_name: "tokenkeeper test SPA",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        // The app at the origin's root, and the demo's React and Vue examples
        // (served at /react/dist/ and /vue/dist/ by `make demo`).
        redirect_uris: APP_ROOTS.flatMap((root) => [`${appOrigin}${root}callback/`, `${appOrigin}${root}`]),
        post_logout_redirect_uris: [...APP_ROOTS.map((root) => `${appOrigin}${root}`), `${appOrigin}/logged-out/`],
      },
      {
        client_id: INTROSPECTOR.id,
        client_secret: INTROSPECTOR.secret,
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: { keys: [{ ...signingKey, kid: "tk-test", use: "sig", alg: "RS256" }] },
    cookies: {
      // Cookies on 127.0.0.1 are shared by every port: no clash with the page server's.
      names: { session: "op_session", interaction: "op_interaction", resume: "op_interaction_resume" },
      keys: [randomBytes(32).toString("hex")],
    },
    scopes: ["openid", "profile", "offline_access"],
    claims: { openid: ["sub"], profile: ["name"] },
    conformIdTokenClaims: false, // `name` in the ID token too, not only at userinfo
    clockTolerance: 0, // an expired access token is refused at once
    pkce: { required: () => true }, // S256 is the only method
    ttl: {
      AccessToken: accessTtl,
      RefreshToken: refreshTtl,
      IdToken: 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: refreshTtl,
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
    rotateRefreshToken: true,
    async findAccount(ctx, sub) {
      if (sub !== USER.claims.sub) return undefined;
      return { accountId: sub, claims: async () => ({ ...USER.claims }) };
    },
    // No consent screen: the grant covers whatever was asked for.
    async loadExistingGrant(ctx) {
      const { client, session, params } = ctx.oidc;
      const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
      let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      grant ||= new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope([...new Set(["openid", "offline_access", ...String(params.scope || "").split(" ")])].filter(Boolean).join(" "));
      grant.addOIDCClaims(["sub", "name"]);
      await grant.save();
      return grant;
    },
    // The default rule, written out: the SPA's registered origins only.
    clientBasedCORS(ctx, origin, client) {
      return origin !== "null" && client.redirectUris.some((uri) => new URL(uri).origin === origin);
    },
    features: {
      devInteractions: { enabled: true },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
      },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client) => client.clientId === INTROSPECTOR.id,
      },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page("Sign out?", `${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page("Signed out", "<p>Your sign-out was successful.</p>");
        },
      },
      userinfo: { enabled: true },
      // Accepted, never required; with dpopNonce, only with the provider's nonce.
      dPoP: dpopNonce ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true } : { enabled: true },
    },
    async renderError(ctx, out) {
      ctx.type = "html";
      ctx.body = page("oops! something went wrong",
        Object.entries(out).map(([k, v]) => `<p><strong>${html(k)}</strong>: <span class="${html(k)}">${html(v)}</span></p>`).join("\n"));
    },
  });
  provider.on("server_error", (ctx, err) => console.error(`oidc-provider server_error on ${ctx.method} ${ctx.path}:`, err));

  let stats = freshStats();
  let issued = [];
  const routes = {
    token: "/token",
    revocation: "/token/revocation",
    userinfo: "/me",
    authorization: "/auth",
    interaction: /^\/interaction\/[^/]+$/,
  };

  provider.use(async (ctx, next) => {
    // The stock login page takes any password: only user1/password1 gets through.
    if (ctx.method === "POST" && routes.interaction.test(ctx.path) && ctx.is("application/x-www-form-urlencoded")) {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      const raw = Buffer.concat(chunks).toString();
      const form = querystring.parse(raw);
      if (form.prompt === "login" && (form.login !== USER.login || form.password !== USER.password)) {
        ctx.status = 400;
        ctx.type = "html";
        ctx.set("Cache-Control", "no-store");
        ctx.body = loginAgain(ctx.path, "Invalid login");
        return;
      }
      ctx.req.body = raw; // oidc-provider reads an already consumed body from here
    }

    await next();

    // The stock pages import a web font from Google: keep the tests off the network.
    if (typeof ctx.body === "string" && ctx.body.includes("fonts.googleapis.com")) {
      ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, "");
    }
    if (ctx.method === "OPTIONS") return;
    const body = ctx.body && typeof ctx.body === "object" && !Buffer.isBuffer(ctx.body) ? ctx.body : undefined;
    const dpopAt = ctx.path === routes.token && ctx.method === "POST" ? "token" : ctx.path === routes.userinfo ? "userinfo" : undefined;
    if (dpopAt) {
      if (ctx.get("DPoP")) stats.dpop.proofs[dpopAt]++;
      const asked = dpopAt === "token" ? body?.error === "use_dpop_nonce"
        : /^DPoP .*error="use_dpop_nonce"/i.test(ctx.response.get("WWW-Authenticate"));
      if (asked) stats.dpop.useNonce[dpopAt]++;
    }
    if (ctx.path === routes.token && ctx.method === "POST") {
      let grantType;
      try {
        grantType = ctx.oidc.params?.grant_type;
      } catch {}
      grantType = String(grantType ?? "unknown");
      stats.token[grantType] = (stats.token[grantType] ?? 0) + 1;
      if (ctx.status >= 400) {
        const error = body?.error ?? `http_${ctx.status}`;
        stats.tokenErrors[error] = (stats.tokenErrors[error] ?? 0) + 1;
      } else if (body) {
        issued.push({
          at: Date.now(),
          grant_type: grantType,
          token_type: body.token_type,
          access_token: body.access_token,
          refresh_token: body.refresh_token,
          id_token: body.id_token,
        });
      }
    } else if (ctx.path === routes.revocation && ctx.method === "POST") {
      stats.revocations++;
    } else if (ctx.path === routes.authorization) {
      stats.authorize++;
    } else if (ctx.path === routes.userinfo) {
      if (ctx.status === 200) stats.userinfo.ok++;
      else if (ctx.status === 401) stats.userinfo.refused++;
    }
  });

  server.on("request", provider.callback());

  return {
    issuer,
    clientId: CLIENT_ID,
    /** Request counts since the start (or the last resetStats()). */
    stats: () => structuredClone(stats),
    /** Every successful token-endpoint answer, oldest first. */
    issued: () => issued.map((t) => ({ ...t })),
    resetStats() {
      stats = freshStats();
      issued = [];
    },
    /** RFC 7662 introspection as the confidential client `introspector`: the parsed JSON ({active, ...}). */
    async introspect(token) {
      const response = await fetch(`${issuer}/token/introspection`, {
        method: "POST",
        headers: {
          authorization: "Basic " + Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString("base64"),
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token }),
      });
      if (!response.ok) throw new Error(`introspection answered ${response.status}: ${await response.text()}`);
      return response.json();
    },
    stop() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function parseArgs(argv) {
  const options = { port: 8081, appOrigin: "http://127.0.0.1:8080" };
  const names = { "--port": "port", "--app-origin": "appOrigin", "--access-ttl": "accessTtl", "--refresh-ttl": "refreshTtl" };
  for (let i = 0; i < argv.length; i++) {
    const name = names[argv[i]];
    if (!name || argv[i + 1] === undefined) {
      console.error(`usage: node scripts/oidc-provider.mjs [--port N] [--app-origin ORIGIN] [--access-ttl S] [--refresh-ttl S]`);
      process.exit(2);
    }
    const value = argv[++i];
    options[name] = name === "appOrigin" ? value : Number(value);
    if (name !== "appOrigin" && !(Number.isInteger(options[name]) && options[name] >= 0)) {
      console.error(`${argv[i - 1]}: not a whole number: ${value}`);
      process.exit(2);
    }
  }
  return options;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let op;
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => (op ? op.stop() : Promise.resolve()).then(() => process.exit(0)));
  }
  op = await startProvider(parseArgs(process.argv.slice(2)));
  console.log(op.issuer);
}

// Every public API of the package, used as a TypeScript app would, and type-
// checked with `tsc --strict --noEmit` (`make types`, part of `make test`).
// Nothing here runs: it proves that the generated .d.ts describes the real
// API precisely — `@ts-expect-error` lines are misuses the types must catch,
// and `tsc` fails if one of them compiles (an `any` would let it through).
import init, { initSync, isTokenKeeperError, TokenKeeper } from "tokenkeeper";
import type {
  ChangeDetail,
  EndpointOptions,
  ExpiredDetail,
  IdTokenClaims,
  LoginRedirectOptions,
  LogoutRedirectOptions,
  InitOutput,
  LogoutDetail,
  RefreshDetail,
  RefreshErrorDetail,
  SyncDetail,
  TokenKeeperError,
  TokenKeeperErrorCode,
  TokenKeeperEvent,
  TokenKeeperEventMap,
  TokenKeeperOptions,
  TokenResponse,
} from "tokenkeeper";

/** `true` only when A and B are the same type (`any` is equal to nothing else). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | void {}

// --- loading the wasm module ------------------------------------------------
export async function load(): Promise<InitOutput> {
  const output: InitOutput = await init();
  await init({ module_or_path: new URL("/assets/tokenkeeper_bg.wasm", location.href) });
  await init({ module_or_path: fetch("/tokenkeeper_bg.wasm") });
  initSync({ module: new Uint8Array([0, 97, 115, 109]) });
  return output;
}

// --- options ----------------------------------------------------------------
const everyOption: Required<EndpointOptions> = {
  refreshUrl: "/token/refresh",
  refreshStyle: "form",
  clientId: "spa",
  scope: "openid api",
  header: "x-auth-token",
  scheme: null,
  allowedOrigins: ["https://api.example.com"],
  refreshLeadSeconds: 30,
  renewHeader: "x-renewed-token",
  logoutUrl: "/logout",
  fields: { accessToken: "at", refreshToken: "rt", expiresIn: "ttl" },
  channel: "my-app",
  dpop: false,
};
export const full = new TokenKeeper(everyOption);
export const minimal = new TokenKeeper({ refreshUrl: "/token/refresh" });
const either: TokenKeeperOptions[] = [everyOption, { issuer: "https://idp.example.com", clientId: "spa", redirectUri: "/cb" }];
void either;
new TokenKeeper({ refreshUrl: "/r", refreshStyle: "cookie", scheme: "DPoP", renewHeader: null, logoutUrl: null });
new TokenKeeper({ refreshUrl: "/r", dpop: true });
new TokenKeeper({ issuer: "https://idp.example.com", clientId: "spa", redirectUri: "/cb", dpop: "auto" });
// @ts-expect-error -- "auto" follows a provider's discovery: it needs issuer
new TokenKeeper({ refreshUrl: "/r", dpop: "auto" });

// @ts-expect-error -- refreshUrl is required
new TokenKeeper({});
// @ts-expect-error -- an unknown option (a typo) is caught before the constructor throws invalid_option
new TokenKeeper({ refreshUrl: "/r", refreshURL: "/r" });
// @ts-expect-error -- refreshStyle is one of json, form, cookie
new TokenKeeper({ refreshUrl: "/r", refreshStyle: "xml" });
// @ts-expect-error -- refreshLeadSeconds is a number of seconds
new TokenKeeper({ refreshUrl: "/r", refreshLeadSeconds: "60" });
// @ts-expect-error -- allowedOrigins is a list
new TokenKeeper({ refreshUrl: "/r", allowedOrigins: "https://api.example.com" });

// --- methods and properties ---------------------------------------------------
export async function session(keeper: TokenKeeper): Promise<void> {
  const joined: boolean = await keeper.ready();
  await keeper.login("/login", { username: "user1", password: "password1" });
  // @ts-expect-error -- credentials are an object, sent as JSON
  await keeper.login("/login", "user1:password1");

  const tokens: TokenResponse = { access_token: "a", refresh_token: "r", expires_in: 30, id_token: "i" };
  keeper.setTokens(tokens);
  // @ts-expect-error -- expires_in is a number of seconds
  keeper.setTokens({ access_token: "a", expires_in: "30" });

  const a: Response = await keeper.fetch("/api/me");
  const b: Response = await keeper.fetch(new URL("https://api.example.com/data"), { method: "POST", body: "{}" });
  const c: Response = await keeper.fetch(new Request("/api/data"));
  // @ts-expect-error -- init is a RequestInit
  await keeper.fetch("/api/me", "POST");
  // A bound function: handed on as any fetch, a Request-only one included.
  const bound: typeof globalThis.fetch = keeper.fetch;
  const requestOnly: (input: Request) => Promise<Response> = keeper.fetch;
  // @ts-expect-error -- read-only: the keeper's fetch cannot be swapped out
  keeper.fetch = bound;

  const token: string = await keeper.getAccessToken();
  const refreshed: void = await keeper.refresh();
  await keeper.logout();

  const authenticated: boolean = keeper.isAuthenticated;
  const generation: number = keeper.generation;
  const expiresAt: number | undefined = keeper.expiresAt;
  const refreshAt: number | undefined = keeper.refreshAt;
  // @ts-expect-error -- expiresAt is undefined when the token's expiry is unknown
  const unchecked: number = keeper.expiresAt;
  // @ts-expect-error -- the state is read-only
  keeper.isAuthenticated = true;

  void [joined, a, b, c, requestOnly, token, refreshed, authenticated, generation, expiresAt, refreshAt, unchecked];
  keeper.free();
}

export function disposable(): void {
  const keeper = new TokenKeeper({ refreshUrl: "/token/refresh" });
  keeper[Symbol.dispose]();
}

// --- events: the detail's type follows the event name ------------------------
export function events(keeper: TokenKeeper): Array<() => void> {
  const offs: Array<() => void> = [];
  offs.push(
    keeper.on("refresh", (d) => {
      expectType<Equals<typeof d, RefreshDetail>>();
      const source: "timer" | "read" | "on-demand" | "renew-header" | "join" | "tab" = d.source;
      const generation: number = d.generation;
      const expiresAt: number | undefined = d.expiresAt;
      // @ts-expect-error -- details never carry tokens
      void d.accessToken;
      void [source, generation, expiresAt];
    }),
  );
  offs.push(
    keeper.on("refresh-error", (d) => {
      expectType<Equals<typeof d, RefreshErrorDetail>>();
      const code: TokenKeeperErrorCode = d.code;
      const retrying: boolean = d.retrying && !d.fatal;
      const retryIn: number | undefined = d.retryInMs;
      const status: number | undefined = d.status;
      const oauth: string | undefined = d.error;
      void [code, retrying, retryIn, status, oauth, d.message];
    }),
  );
  offs.push(
    keeper.on("expired", (d) => {
      expectType<Equals<typeof d, ExpiredDetail>>();
      const reason: "no-session" | "refresh-failed" | "rejected-after-refresh" = d.reason;
      void [reason, d.url];
    }),
  );
  offs.push(
    keeper.on("logout", (d) => {
      expectType<Equals<typeof d, LogoutDetail>>();
      // @ts-expect-error -- the reason is a string, not a number
      const wrong: number = d.reason;
      const reason: "local" | "refresh-failed" | "remote" | "expired" = d.reason;
      void [wrong, reason];
    }),
  );
  offs.push(
    keeper.on("change", (d) => {
      expectType<Equals<typeof d, ChangeDetail>>();
      const state: [boolean, number | undefined, number] = [d.isAuthenticated, d.expiresAt, d.generation];
      void state;
    }),
  );
  offs.push(
    keeper.on("sync", (d) => {
      expectType<Equals<typeof d, SyncDetail>>();
      const kind: "adopted" | "logout" | "backoff" | "advanced" | "answered" = d.type;
      void [kind, d.from, d.generation];
    }),
  );
  // A listener written for one event's detail does not fit another event.
  const onLogout = (d: LogoutDetail): void => void d.reason;
  // @ts-expect-error -- a refresh listener receives a RefreshDetail
  keeper.on("refresh", onLogout);
  // @ts-expect-error -- there is no such event
  keeper.on("refreshed", () => {});

  // Generic code over every event name.
  const names: TokenKeeperEvent[] = ["refresh", "refresh-error", "expired", "logout", "change", "sync"];
  for (const name of names) offs.push(keeper.on(name, (detail: TokenKeeperEventMap[typeof name]) => void detail));
  expectType<Equals<TokenKeeperEvent, keyof TokenKeeperEventMap>>();
  return offs;
}

// --- errors -----------------------------------------------------------------
export async function errors(keeper: TokenKeeper): Promise<string> {
  try {
    await keeper.login("/login", { username: "user1", password: "wrong" });
    return "ok";
  } catch (e) {
    // @ts-expect-error -- a caught value is unknown until the guard says otherwise
    void e.code;
    if (isTokenKeeperError(e)) {
      expectType<Equals<typeof e, TokenKeeperError>>();
      const code: TokenKeeperErrorCode = e.code;
      const error: Error = e;
      const extra: [number | undefined, string | undefined, number | undefined, string | undefined] = [
        e.status,
        e.error,
        e.retryInMs,
        e.option,
      ];
      switch (e.code) {
        case "login_failed":
          return `refused (${e.status ?? "?"})`;
        case "network_error":
          return "offline";
        // @ts-expect-error -- not one of the stable codes
        case "login_refused":
          return "never";
        default:
          void [code, error, extra];
          return e.message;
      }
    }
    throw e;
  }
}

// An OpenID provider's keeper: the redirect flow, typed as an app uses it.
async function identityProvider(): Promise<string> {
  const keeper = new TokenKeeper({
    issuer: "https://idp.example.com",
    clientId: "spa",
    redirectUri: location.origin + "/callback",
    scope: "openid profile offline_access",
    postLogoutRedirectUri: location.origin + "/",
    authorizationParams: { audience: "https://api.example.com" },
    allowedOrigins: [location.origin, "https://api.example.com"],
  });
  // @ts-expect-error -- authorization parameters are strings
  new TokenKeeper({ issuer: "https://idp.example.com", clientId: "spa", redirectUri: "/cb", authorizationParams: { max_age: 5 } });
  // @ts-expect-error -- neither refreshUrl nor issuer
  new TokenKeeper({ clientId: "spa", redirectUri: "/cb" });
  const done = await keeper.handleRedirect();
  expectType<Equals<typeof done, { returnTo: string } | null>>();
  if (done) return done.returnTo;
  const ready: boolean = await keeper.ready();
  if (!ready) {
    const opts: LoginRedirectOptions = { returnTo: "/app", prompt: "none", loginHint: "a@example.com" };
    await keeper.loginRedirect(opts);
    // @ts-expect-error -- returnTo is a string
    await keeper.loginRedirect({ returnTo: 5 });
  }
  const claims = keeper.idTokenClaims;
  expectType<Equals<typeof claims, IdTokenClaims | undefined>>();
  const sub: string | undefined = claims?.sub;
  const name: unknown = claims?.["name"];
  keeper.on("logout", (d) => {
    const reason: "local" | "refresh-failed" | "remote" | "expired" = d.reason;
    void reason;
  });
  const bye: LogoutRedirectOptions = { postLogoutRedirectUri: location.origin + "/" };
  await keeper.logoutRedirect(bye);
  await keeper.logoutRedirect();
  await keeper.loginRedirect();
  try {
    await keeper.handleRedirect();
  } catch (e) {
    if (isTokenKeeperError(e)) {
      const described: string | undefined = e.errorDescription;
      const code: TokenKeeperErrorCode = e.code;
      if (code === "invalid_callback" || code === "invalid_id_token" || code === "discovery_failed" || code === "dpop_unsupported") return code;
      void described;
    }
  }
  return `${sub ?? ""}${String(name)}`;
}
void identityProvider;

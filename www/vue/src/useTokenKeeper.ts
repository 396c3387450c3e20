// tokenkeeper for Vue: one keeper per page (the session belongs to the page,
// not to a component), and a composable whose refs follow every session
// change. Copy this file into your app.
//
//   const auth = createTokenKeeper({ refreshUrl: "/token/refresh" });  // module scope, once
//   // or, with an identity provider (the store handles its callback on load):
//   const auth = createTokenKeeper({ issuer, clientId, redirectUri: location.origin + "/callback/" });
//   // in <script setup>:
//   const { status, isAuthenticated, fetch } = useTokenKeeper(auth);
import { computed, getCurrentScope, onScopeDispose, shallowRef, type ComputedRef } from "vue";
import init, {
  TokenKeeper,
  type IdTokenClaims,
  type LoginRedirectOptions,
  type LogoutRedirectOptions,
  type TokenKeeperOptions,
} from "tokenkeeper";

/** The session: a new object on every change. */
export interface SessionState {
  /**
   * `loading` until the wasm module is in, a provider's callback was handled
   * and the other tabs were asked for their session; `unavailable` when the
   * options came as `null` (no provider configured).
   */
  status: "loading" | "logged-in" | "logged-out" | "failed" | "unavailable";
  isAuthenticated: boolean;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number | undefined;
  /** When the next silent refresh is planned, in ms since the epoch. */
  refreshAt: number | undefined;
  /** Grows with every new token. */
  generation: number;
  /** Why loading failed (`status: "failed"`). */
  error: unknown;
  /** With an identity provider: the ID token's claims. */
  claims: IdTokenClaims | undefined;
  /** With an identity provider: why the login it sent the browser back from failed. */
  loginError: unknown;
}

/** The page's session: create it once, at module scope. */
export interface TokenKeeperStore {
  /** The keeper, once the wasm module is loaded and the other tabs were asked. */
  readonly keeper: Promise<TokenKeeper>;
  subscribe(onChange: () => void): () => void;
  getSnapshot(): SessionState;
  login(url: string, credentials: Record<string, unknown>): Promise<void>;
  logout(): Promise<void>;
  /** With an identity provider: go to its login page (the callback is handled on the next load). */
  loginRedirect(options?: LoginRedirectOptions): Promise<void>;
  /** With an identity provider: log out in every tab and at the provider. */
  logoutRedirect(options?: LogoutRedirectOptions): Promise<void>;
  /** `window.fetch` with the access token attached (allowed origins only), refreshed on a 401. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

/**
 * The page's session store. `options` may come later (a promise: read from
 * the app's config), and as `null` when there is nothing to keep.
 */
export function createTokenKeeper(
  options: TokenKeeperOptions | Promise<TokenKeeperOptions | null>,
): TokenKeeperStore {
  let state: SessionState = {
    status: "loading",
    isAuthenticated: false,
    expiresAt: undefined,
    refreshAt: undefined,
    generation: 0,
    error: undefined,
    claims: undefined,
    loginError: undefined,
  };
  let loginError: unknown = undefined;
  const listeners = new Set<() => void>();
  const publish = (next: SessionState) => {
    state = next;
    for (const listener of listeners) listener();
  };
  const read = (k: TokenKeeper) =>
    publish({
      status: k.isAuthenticated ? "logged-in" : "logged-out",
      isAuthenticated: k.isAuthenticated,
      expiresAt: k.expiresAt,
      refreshAt: k.refreshAt,
      generation: k.generation,
      error: undefined,
      claims: k.idTokenClaims,
      loginError,
    });

  const keeper = Promise.all([options, init()]).then(async ([opts]) => {
    if (opts === null) {
      publish({ ...state, status: "unavailable" });
      return new Promise<TokenKeeper>(() => {}); // never: there is no keeper
    }
    const k = new TokenKeeper(opts);
    k.on("change", () => read(k));
    if ("issuer" in opts) {
      // Back from the provider: finish the login (the URL becomes its returnTo).
      await k.handleRedirect().catch((e: unknown) => (loginError = e));
    }
    if (!k.isAuthenticated) await k.ready(); // joins the session another tab of this app already holds
    read(k);
    return k;
  });
  keeper.catch((error: unknown) => publish({ ...state, status: "failed", error }));

  return {
    keeper,
    subscribe(onChange) {
      listeners.add(onChange);
      return () => listeners.delete(onChange);
    },
    getSnapshot: () => state,
    login: async (url, credentials) => (await keeper).login(url, credentials),
    logout: async () => (await keeper).logout(),
    loginRedirect: async (o) => (await keeper).loginRedirect(o),
    logoutRedirect: async (o) => (await keeper).logoutRedirect(o),
    fetch: async (input, init) => (await keeper).fetch(input, init),
  };
}

type Refs<T> = { readonly [K in keyof T]: ComputedRef<T[K]> };

/** The session state as read-only refs that follow every change, and the calls that change it. */
export function useTokenKeeper(store: TokenKeeperStore) {
  const state = shallowRef(store.getSnapshot());
  const stop = store.subscribe(() => {
    state.value = store.getSnapshot();
  });
  if (getCurrentScope()) onScopeDispose(stop);
  const refs: Refs<SessionState> = {
    status: computed(() => state.value.status),
    isAuthenticated: computed(() => state.value.isAuthenticated),
    expiresAt: computed(() => state.value.expiresAt),
    refreshAt: computed(() => state.value.refreshAt),
    generation: computed(() => state.value.generation),
    error: computed(() => state.value.error),
    claims: computed(() => state.value.claims),
    loginError: computed(() => state.value.loginError),
  };
  return {
    ...refs,
    login: store.login,
    logout: store.logout,
    loginRedirect: store.loginRedirect,
    logoutRedirect: store.logoutRedirect,
    fetch: store.fetch,
  };
}

// tokenkeeper for Vue: one keeper per page (the session belongs to the page,
// not to a component), and a composable whose refs follow every session
// change. Copy this file into your app.
//
//   const auth = createTokenKeeper({ refreshUrl: "/token/refresh" });  // module scope, once
//   // in <script setup>:
//   const { status, isAuthenticated, fetch } = useTokenKeeper(auth);
import { computed, getCurrentScope, onScopeDispose, shallowRef, type ComputedRef } from "vue";
import init, { TokenKeeper, type TokenKeeperOptions } from "tokenkeeper";

/** The session: a new object on every change. */
export interface SessionState {
  /** `loading` until the wasm module is in and the other tabs were asked for their session. */
  status: "loading" | "logged-in" | "logged-out" | "failed";
  isAuthenticated: boolean;
  /** When the access token expires, in ms since the epoch. */
  expiresAt: number | undefined;
  /** When the next silent refresh is planned, in ms since the epoch. */
  refreshAt: number | undefined;
  /** Grows with every new token. */
  generation: number;
  /** Why loading failed (`status: "failed"`). */
  error: unknown;
}

/** The page's session: create it once, at module scope. */
export interface TokenKeeperStore {
  /** The keeper, once the wasm module is loaded and the other tabs were asked. */
  readonly keeper: Promise<TokenKeeper>;
  subscribe(onChange: () => void): () => void;
  getSnapshot(): SessionState;
  login(url: string, credentials: Record<string, unknown>): Promise<void>;
  logout(): Promise<void>;
  /** `window.fetch` with the access token attached (allowed origins only), refreshed on a 401. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

export function createTokenKeeper(options: TokenKeeperOptions): TokenKeeperStore {
  let state: SessionState = {
    status: "loading",
    isAuthenticated: false,
    expiresAt: undefined,
    refreshAt: undefined,
    generation: 0,
    error: undefined,
  };
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
    });

  const keeper = init().then(async () => {
    const k = new TokenKeeper(options);
    k.on("change", () => read(k));
    await k.ready(); // joins the session another tab of this app already holds
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
  };
  return { ...refs, login: store.login, logout: store.logout, fetch: store.fetch };
}

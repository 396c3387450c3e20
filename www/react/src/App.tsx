import { useEffect, useState, type FormEvent } from "react";
import { isTokenKeeperError } from "tokenkeeper";
import { createTokenKeeper, useTokenKeeper } from "./useTokenKeeper.ts";
import { QueryCard } from "./Query.tsx";

// Once per page. Short lead so that the refreshes show within seconds.
const auth = createTokenKeeper({ refreshUrl: "/token/refresh", logoutUrl: "/logout", refreshLeadSeconds: 5 });

// The app's root (where it is served: /react/dist/ by the demo, / by vite),
// and its callback route, where the identity provider sends the browser back.
const appRoot = new URL(location.pathname.endsWith("/callback/") ? "../" : "./", location.href);
// The identity provider `make demo` starts beside the dev server (it names
// it at /demo-config.json), if there is one: a second session, by redirect.
const provider = createTokenKeeper(
  fetch("/demo-config.json")
    .then((r) => r.json() as Promise<{ issuer?: string | null }>)
    .then(
      ({ issuer }) =>
        issuer
          ? {
              issuer,
              clientId: "spa",
              redirectUri: new URL("callback/", appRoot).href,
              scope: "openid profile offline_access",
              allowedOrigins: [location.origin, issuer],
              channel: "react-idp",
            }
          : null,
      () => null,
    ),
);

interface Me {
  sub: string;
  jti: string;
  token_exp?: number;
}

/** The current time, ticking every `ms`. */
function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}

function seconds(at: number | undefined, now: number): string {
  return at === undefined ? "–" : `${Math.max(0, (at - now) / 1000).toFixed(1)} s`;
}

function describe(e: unknown): string {
  return isTokenKeeperError(e) ? `${e.code}${e.status ? ` (${e.status})` : ""}: ${e.message}` : String(e);
}

export default function App() {
  const session = useTokenKeeper(auth);
  const idp = useTokenKeeper(provider);
  const now = useNow(200);
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState("");

  async function login(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setError("");
    try {
      await session.login("/login", { username: form.get("username"), password: form.get("password") });
    } catch (e) {
      setError(describe(e));
    }
  }

  async function callApi() {
    setError("");
    try {
      const res = await session.fetch("/api/me");
      if (!res.ok) throw new Error(`GET /api/me answered ${res.status}`);
      setMe((await res.json()) as Me);
    } catch (e) {
      setError(describe(e));
    }
  }

  async function logout() {
    await session.logout();
    setMe(null);
  }

  const label = {
    loading: "loading…",
    "logged-in": "logged in",
    "logged-out": "logged out",
    failed: "failed",
    unavailable: "none",
  };
  return (
    <main>
      <h1>
        tokenkeeper <small>React + Vite</small>
      </h1>
      <p>
        Status: <span id="status" className={`badge ${session.status}`}>{label[session.status]}</span>
      </p>

      {session.status === "logged-out" && (
        <form id="login" onSubmit={login}>
          <label>
            User <input name="username" defaultValue="user1" autoComplete="username" />
          </label>
          <label>
            Password <input name="password" type="password" defaultValue="password1" autoComplete="current-password" />
          </label>
          <button type="submit">Log in</button>
        </form>
      )}

      {session.isAuthenticated && (
        <section>
          <dl>
            <dt>Token expires in</dt>
            <dd id="expires">{seconds(session.expiresAt, now)}</dd>
            <dt>Next silent refresh in</dt>
            <dd id="next-refresh">{seconds(session.refreshAt, now)}</dd>
            <dt>Token generation</dt>
            <dd id="generation">{session.generation}</dd>
          </dl>
          <button id="call-api" onClick={callApi}>
            Call /api/me
          </button>{" "}
          <button id="logout" onClick={logout}>
            Log out
          </button>
          {me && (
            <p id="result">
              The API says: you are <strong>{me.sub}</strong> (token {me.jti.slice(0, 8)}…)
            </p>
          )}
        </section>
      )}

      {error && <p id="error">{error}</p>}

      {session.isAuthenticated && <QueryCard keeper={auth} />}

      {idp.status !== "unavailable" && (
        <section id="idp">
          <h2>Or: an identity provider</h2>
          <p>
            Status: <span id="idp-status" className={`badge ${idp.status}`}>{label[idp.status]}</span>
            {idp.claims && (
              <>
                {" "}
                as <strong id="idp-name">{String(idp.claims["name"] ?? idp.claims.sub)}</strong>
              </>
            )}
          </p>
          {idp.status === "logged-out" && (
            <button id="idp-login" onClick={() => void idp.loginRedirect({ returnTo: appRoot.pathname })}>
              Log in with the identity provider
            </button>
          )}
          {idp.isAuthenticated && (
            <button id="idp-logout" onClick={() => void idp.logoutRedirect({ postLogoutRedirectUri: appRoot.href })}>
              Log out there too
            </button>
          )}
          {idp.loginError !== undefined && <p id="idp-error">{describe(idp.loginError)}</p>}
        </section>
      )}
    </main>
  );
}

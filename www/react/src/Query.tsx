// TanStack Query through the keeper: the query's function calls the session's
// fetch, so a silent refresh and a 401 that one refresh fixes never reach the
// query — no error state, no retry. A 401 that does reach it is one no new
// token fixes: not retried. (The README's "With your HTTP client" holds the
// core of this file.)
import { useEffect, useRef, useState } from "react";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import type { TokenKeeperStore } from "./useTokenKeeper.ts";

/** A response that was not ok, as the query sees it. */
class HttpError extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`HTTP ${status}`);
    this.name = "HttpError";
    this.status = status;
  }
}

interface Me {
  sub: string;
  jti: string;
}

const queries = new QueryClient({
  defaultOptions: { queries: { retry: (count, error) => !(error instanceof HttpError && error.status === 401) && count < 3 } },
});

function Me({ keeper }: { keeper: TokenKeeperStore }) {
  // How often the query function ran, and how often the query was in error:
  // the page shows both, so that a retry storm or an error state would show.
  const runs = useRef(0);
  const [errors, setErrors] = useState(0);
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async ({ signal }) => {
      runs.current++;
      const res = await keeper.fetch("/api/me", { signal });
      if (!res.ok) throw new HttpError(res.status);
      return (await res.json()) as Me;
    },
  });
  useEffect(() => {
    if (me.isError) setErrors((n) => n + 1);
  }, [me.isError, me.errorUpdatedAt]);
  return (
    <>
      <p>
        Query: <span id="query-status">{me.status}</span>
        {me.data && (
          <>
            {" "}
            — <strong id="query-sub">{me.data.sub}</strong>, token <span id="query-jti">{me.data.jti.slice(0, 8)}</span>…
          </>
        )}
      </p>
      <p>
        Ran <span id="query-runs">{runs.current}</span> times, in error <span id="query-errors">{errors}</span> times.{" "}
        <button id="refetch" onClick={() => void me.refetch()} disabled={me.isFetching}>
          Refetch
        </button>
      </p>
    </>
  );
}

/** The card: the query starts when asked (a logged-in session only). */
export function QueryCard({ keeper }: { keeper: TokenKeeperStore }) {
  const [on, setOn] = useState(false);
  return (
    <section id="query">
      <h2>TanStack Query</h2>
      {on ? (
        <QueryClientProvider client={queries}>
          <Me keeper={keeper} />
        </QueryClientProvider>
      ) : (
        <button id="start-query" onClick={() => setOn(true)}>
          Start a query of /api/me
        </button>
      )}
    </section>
  );
}

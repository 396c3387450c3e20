// The page tests/e2e/clients.test.mjs drives: the README's recipes (src/, as
// written) behind one small interface per client, so that every client is
// put through the same session. Each client's outcome is read the way an app
// reads it from that client: its data, or its own error (axios's AxiosError,
// ky's HTTPError, ofetch's FetchError, openapi-fetch's `{ error, response }`).
import axios from "axios";
import { isHTTPError } from "ky";
import { FetchError } from "ofetch";
import { isTokenKeeperError } from "tokenkeeper";
import { keeper } from "./src/keeper";
import { api as axiosApi } from "./src/axios";
import { api as kyApi } from "./src/ky";
import { api as ofetchApi } from "./src/ofetch";
import { api as openapiApi } from "./src/openapi";

/** What a call came to, as the client reported it. */
export type Outcome =
  | { ok: true; data: unknown }
  | {
      ok: false;
      /** The error's class, as the client names it. */
      name: string;
      /** The HTTP status the client reports, if it got a response. */
      status: number | undefined;
      /** The client's own error code (axios), if any. */
      code: string | undefined;
      /** The TokenKeeperError's code, when the keeper's rejection is what failed. */
      keeper: string | undefined;
      /** Whether the client reports an abort. */
      aborted: boolean;
    };

const keeperCode = (e: unknown): string | undefined => {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 4; x = x.cause, depth++) {
    if (isTokenKeeperError(x)) return x.code;
  }
  return undefined;
};

const isAbort = (e: unknown): boolean =>
  (e instanceof Error && (e.name === "AbortError" || e.name === "CanceledError")) ||
  (e instanceof Error && e.cause instanceof Error && e.cause.name === "AbortError");

function failed(e: unknown, status: number | undefined, code?: string): Outcome {
  return {
    ok: false,
    name: e instanceof Error ? e.name : typeof e,
    status,
    code,
    keeper: keeperCode(e),
    aborted: isAbort(e),
  };
}

/** The same calls, made through one client. */
export interface Client {
  get(url: string, signal?: AbortSignal): Promise<Outcome>;
  postJson(url: string, body: unknown): Promise<Outcome>;
  postForm(url: string, form: FormData): Promise<Outcome>;
}

/** Every request the harness makes carries this header, added by the client's own hooks. */
export const REQUEST_ID = "x-request-id";
let sequence = 0;
const nextId = () => `req-${++sequence}`;

/** Counts of what the clients' own features did. */
export const seen = { axiosResponses: 0, kyBeforeRetry: 0, kyAfterResponse: 0, ofetchResponses: 0, openapiResponses: 0 };

/** A path under the API as a client with a base URL takes it ("me" for "/api/me"); other URLs as they are. */
const relative = (url: string) => (url.startsWith("/api/") ? url.slice("/api/".length) : url);

/** The data `run` resolves with, or its error as `report` reads it. */
async function attempt(run: () => Promise<unknown>, report: (e: unknown) => Outcome): Promise<Outcome> {
  try {
    return { ok: true, data: await run() };
  } catch (e) {
    return report(e);
  }
}

// axios: a request and a response interceptor, as apps have.
axiosApi.interceptors.request.use((config) => {
  config.headers.set(REQUEST_ID, nextId());
  return config;
});
axiosApi.interceptors.response.use((res) => {
  seen.axiosResponses++;
  return res;
});
const axiosFailed = (e: unknown) =>
  axios.isAxiosError(e) ? failed(e, e.response?.status, e.code) : failed(e, undefined);
const axiosClient: Client = {
  get: (url, signal) => attempt(async () => (await axiosApi.get(relative(url), signal ? { signal } : {})).data, axiosFailed),
  postJson: (url, body) => attempt(async () => (await axiosApi.post(relative(url), body)).data, axiosFailed),
  postForm: (url, form) => attempt(async () => (await axiosApi.post(relative(url), form)).data, axiosFailed),
};

// ky: hooks, and its retries left on (the defaults: two, on 408, 413, 429, 5xx).
const kyHooked = kyApi.extend({
  hooks: {
    beforeRequest: [
      ({ request }) => {
        request.headers.set(REQUEST_ID, nextId());
      },
    ],
    beforeRetry: [
      () => {
        seen.kyBeforeRetry++;
      },
    ],
    afterResponse: [
      () => {
        seen.kyAfterResponse++;
      },
    ],
  },
});
const kyFailed = (e: unknown) => failed(e, isHTTPError(e) ? e.response.status : undefined);
const kyClient: Client = {
  get: (url, signal) => attempt(() => kyHooked.get(relative(url), signal ? { signal } : {}).json(), kyFailed),
  postJson: (url, body) => attempt(() => kyHooked.post(relative(url), { json: body }).json(), kyFailed),
  postForm: (url, form) => attempt(() => kyHooked.post(relative(url), { body: form }).json(), kyFailed),
};

// ofetch: its hooks, and its JSON parsing (the data comes back parsed).
const ofetchHooked = ofetchApi.create({
  onRequest({ options }) {
    options.headers.set(REQUEST_ID, nextId());
  },
  onResponse() {
    seen.ofetchResponses++;
  },
});
const ofetchFailed = (e: unknown) => failed(e, e instanceof FetchError ? e.status : undefined);
const ofetchClient: Client = {
  get: (url, signal) => attempt(() => ofetchHooked<unknown>(relative(url), signal ? { signal } : {}), ofetchFailed),
  // An object body: ofetch serializes it as JSON itself.
  postJson: (url, body) => attempt(() => ofetchHooked<unknown>(relative(url), { method: "POST", body: { value: body } }), ofetchFailed),
  postForm: (url, form) => attempt(() => ofetchHooked<unknown>(relative(url), { method: "POST", body: form }), ofetchFailed),
};

// openapi-fetch: a middleware, and the typed paths of the OpenAPI document.
openapiApi.use({
  onRequest({ request }) {
    request.headers.set(REQUEST_ID, nextId());
    return request;
  },
  onResponse() {
    seen.openapiResponses++;
  },
});
/** openapi-fetch's answer as an outcome: `data`, or `error` with the response's status; a rejection as it is. */
async function answered(call: () => Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<Outcome> {
  try {
    const { data, error, response } = await call();
    return data ? { ok: true, data } : failed(error, response.status);
  } catch (e) {
    return failed(e, undefined);
  }
}
const echo = (url: string) => ({ params: { path: { path: relative(url) } } });
const openapiClient: Client = {
  get(url, signal) {
    const init = signal ? { signal } : {};
    // `data` is typed as the document's Me.
    if (url === "/api/me") return answered(async () => {
      const { data, error, response } = await openapiApi.GET("/api/me", init);
      return { data: data && { sub: data.sub, jti: data.jti }, error, response };
    });
    // Another origin: openapi-fetch takes a baseUrl per call.
    if (!url.startsWith("/api/")) return answered(() => openapiApi.GET("/api/me", { baseUrl: new URL(url).origin }));
    return answered(() => openapiApi.GET("/api/{path}", { ...echo(url), ...init }));
  },
  postJson: (url, body) => answered(() => openapiApi.POST("/api/{path}", { ...echo(url), body: { value: body } })),
  postForm: (url, form) =>
    answered(() =>
      openapiApi.POST("/api/{path}", {
        ...echo(url),
        body: Object.fromEntries([...form].map(([k, v]) => [k, String(v)])),
        bodySerializer: () => form,
      }),
    ),
};

const clients: Record<string, Client> = {
  axios: axiosClient,
  ky: kyClient,
  ofetch: ofetchClient,
  "openapi-fetch": openapiClient,
};

/** What the test calls (through `page.evaluate`). */
const harness = {
  clients,
  seen,
  keeper,
  login: () => keeper.login("/login", { username: "user1", password: "password1" }),
  ready: () => keeper.ready(),
  logout: () => keeper.logout(),
  form(fields: Record<string, string>): FormData {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return form;
  },
  /** `n` calls at once through `client`: how many succeeded, and the failures. */
  async burst(client: string, n: number) {
    const c = clients[client];
    if (!c) throw new Error(`no client ${client}`);
    const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => c.get(`/api/data/${i}`)));
    return { ok: outcomes.filter((o) => o.ok).length, failures: outcomes.filter((o) => !o.ok) };
  },
  /** A call aborted while the keeper holds it for a refresh. */
  async aborted(client: string) {
    const c = clients[client];
    if (!c) throw new Error(`no client ${client}`);
    const controller = new AbortController();
    const pending = c.get("/api/me", controller.signal);
    controller.abort();
    return pending;
  },
};

declare global {
  interface Window {
    harness: typeof harness;
  }
}
window.harness = harness;
document.body.dataset["ready"] = "yes";

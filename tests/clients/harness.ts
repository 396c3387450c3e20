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

// axios: a request and a response interceptor, as apps have.
axiosApi.interceptors.request.use((config) => {
  config.headers.set(REQUEST_ID, nextId());
  return config;
});
axiosApi.interceptors.response.use((res) => {
  seen.axiosResponses++;
  return res;
});
const axiosClient: Client = {
  async get(url, signal) {
    try {
      return { ok: true, data: (await axiosApi.get(relative(url), signal ? { signal } : {})).data };
    } catch (e) {
      return failed(e, axios.isAxiosError(e) ? e.response?.status : undefined, axios.isAxiosError(e) ? e.code : undefined);
    }
  },
  async postJson(url, body) {
    try {
      return { ok: true, data: (await axiosApi.post(relative(url), body)).data };
    } catch (e) {
      return failed(e, axios.isAxiosError(e) ? e.response?.status : undefined, axios.isAxiosError(e) ? e.code : undefined);
    }
  },
  async postForm(url, form) {
    try {
      return { ok: true, data: (await axiosApi.post(relative(url), form)).data };
    } catch (e) {
      return failed(e, axios.isAxiosError(e) ? e.response?.status : undefined, axios.isAxiosError(e) ? e.code : undefined);
    }
  },
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
  async get(url, signal) {
    try {
      return { ok: true, data: await kyHooked.get(relative(url), signal ? { signal } : {}).json() };
    } catch (e) {
      return kyFailed(e);
    }
  },
  async postJson(url, body) {
    try {
      return { ok: true, data: await kyHooked.post(relative(url), { json: body }).json() };
    } catch (e) {
      return kyFailed(e);
    }
  },
  async postForm(url, form) {
    try {
      return { ok: true, data: await kyHooked.post(relative(url), { body: form }).json() };
    } catch (e) {
      return kyFailed(e);
    }
  },
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
const underApi = (url: string) => (url.startsWith("/api/") ? url.slice("/api".length) : url);
const ofetchClient: Client = {
  async get(url, signal) {
    try {
      return { ok: true, data: await ofetchHooked<unknown>(underApi(url), signal ? { signal } : {}) };
    } catch (e) {
      return ofetchFailed(e);
    }
  },
  async postJson(url, body) {
    try {
      // An object body: ofetch serializes it as JSON itself.
      const data: unknown = await ofetchHooked(underApi(url), { method: "POST", body: { value: body } });
      return { ok: true, data };
    } catch (e) {
      return ofetchFailed(e);
    }
  },
  async postForm(url, form) {
    try {
      return { ok: true, data: await ofetchHooked<unknown>(underApi(url), { method: "POST", body: form }) };
    } catch (e) {
      return ofetchFailed(e);
    }
  },
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
const echoPath = (url: string) => url.replace(/^\/api\//, "");
const openapiClient: Client = {
  async get(url, signal) {
    try {
      if (url === "/api/me") {
        const { data, error, response } = await openapiApi.GET("/api/me", signal ? { signal } : {});
        // `data` is typed as the document's Me.
        return data ? { ok: true, data: { sub: data.sub, jti: data.jti } } : failed(error, response.status);
      }
      if (!url.startsWith("/api/")) {
        // Another origin: openapi-fetch takes a baseUrl per call.
        const { data, error, response } = await openapiApi.GET("/api/me", { baseUrl: new URL(url).origin });
        return data ? { ok: true, data } : failed(error, response.status);
      }
      const { data, error, response } = await openapiApi.GET("/api/{path}", {
        params: { path: { path: echoPath(url) } },
        ...(signal ? { signal } : {}),
      });
      return data ? { ok: true, data } : failed(error, response.status);
    } catch (e) {
      return failed(e, undefined);
    }
  },
  async postJson(url, body) {
    try {
      const { data, error, response } = await openapiApi.POST("/api/{path}", {
        params: { path: { path: echoPath(url) } },
        body: { value: body },
      });
      return data ? { ok: true, data } : failed(error, response.status);
    } catch (e) {
      return failed(e, undefined);
    }
  },
  async postForm(url, form) {
    try {
      const { data, error, response } = await openapiApi.POST("/api/{path}", {
        params: { path: { path: echoPath(url) } },
        body: Object.fromEntries([...form].map(([k, v]) => [k, String(v)])),
        bodySerializer: () => form,
      });
      return data ? { ok: true, data } : failed(error, response.status);
    } catch (e) {
      return failed(e, undefined);
    }
  },
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

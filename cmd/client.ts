/**
 * The CLI's client of the daemon's Docker-compatible API (v1.41 paths) over its unix socket.
 * Errors come back as {@link ApiError} (the daemon answered `{"message": ...}`) or
 * {@link ConnectError} (nobody listens on the socket).
 *
 * @module
 */

import {
  type HijackedConnection,
  httpHijack,
  httpRequest,
  type HttpResponse,
  isHijacked,
  type RequestBody,
} from "./http.ts";

/** The API version the CLI speaks; every path is prefixed with it. */
export const API_VERSION = "1.41";

/** The default daemon address, as PouchContainer had it. */
export const DEFAULT_HOST = "unix:///var/run/pouchd.sock";

/** The daemon answered with an error status. */
export class ApiError extends Error {
  /** HTTP status of the answer. */
  readonly status: number;

  /** Builds the error from the daemon's message and status. */
  constructor(message: string, status: number) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** The daemon's socket could not be reached. */
export class ConnectError extends Error {
  /** The address tried, e.g. `unix:///var/run/pouchd.sock`. */
  readonly host: string;

  /** Builds the error for `host`. */
  constructor(host: string, options?: ErrorOptions) {
    super(`Cannot connect to the pouch daemon at ${host}. Is the daemon running?`, options);
    this.name = "ConnectError";
    this.host = host;
  }
}

/** Query values; undefined ones are left out, arrays repeat the key. */
export type Query = Record<string, string | number | boolean | string[] | undefined>;

/** Options of one API call. */
export interface CallOptions {
  /** Query parameters. */
  query?: Query;
  /** A JSON body (any value but a stream) or a raw body with `contentType`. */
  json?: unknown;
  /** A raw body. */
  body?: RequestBody;
  /** Content type of a raw body. */
  contentType?: string;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** Called with a line per request when debugging (`-D`). */
  debug?: (line: string) => void;
}

/** Builds `/v1.41/path?query`. */
export function buildPath(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined) continue;
    if (Array.isArray(v)) { for (const item of v) params.append(k, item); }
    else if (typeof v === "boolean") params.append(k, v ? "1" : "0");
    else params.append(k, String(v));
  }
  const qs = params.toString();
  return `/v${API_VERSION}${path}${qs ? "?" + qs : ""}`;
}

/** Parses `-H` values: `unix:///path` or a bare `/path`; tcp is not supported yet. */
export function parseHost(host: string): string {
  if (host.startsWith("unix://")) return host.slice("unix://".length);
  if (host.startsWith("/")) return host;
  if (host.startsWith("tcp://") || host.startsWith("http://") || host.startsWith("https://")) {
    throw new Error(`connecting over ${host.split(":")[0]} is not supported yet: use unix://PATH`);
  }
  throw new Error(`invalid host ${JSON.stringify(host)}: use unix://PATH`);
}

/** The daemon's error message from an error response body. */
async function errorMessage(res: HttpResponse): Promise<string> {
  const text = await new Response(res.body).text();
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch { /* not JSON */ }
  return text.trim() || `${res.status} ${res.statusText}`;
}

/** A client of the daemon at one unix socket. */
export class ApiClient {
  #socketPath: string;
  #host: string;
  #debug?: (line: string) => void;

  /** A client of the daemon at `host` (`unix:///var/run/pouchd.sock`). */
  constructor(host: string, options: ApiClientOptions = {}) {
    this.#host = host;
    this.#socketPath = parseHost(host);
    this.#debug = options.debug;
  }

  /** The address of the daemon, as given. */
  get host(): string {
    return this.#host;
  }

  #prepare(method: string, path: string, options: CallOptions) {
    const headers: Record<string, string> = { ...options.headers };
    let body: RequestBody | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers["Content-Type"] = "application/json";
    } else if (options.contentType) {
      headers["Content-Type"] = options.contentType;
    }
    const fullPath = buildPath(path, options.query);
    this.#debug?.(`${method} ${fullPath}`);
    return { method, path: fullPath, headers, body };
  }

  #connectError(err: unknown): unknown {
    if (
      err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused ||
      err instanceof Deno.errors.PermissionDenied
    ) {
      return new ConnectError(this.#host, { cause: err });
    }
    return err;
  }

  /** Sends a request; a status of 400 or more throws an {@link ApiError}. */
  async request(method: string, path: string, options: CallOptions = {}): Promise<HttpResponse> {
    const req = this.#prepare(method, path, options);
    let res: HttpResponse;
    try {
      res = await httpRequest(req, { socketPath: this.#socketPath });
    } catch (err) {
      throw this.#connectError(err);
    }
    if (res.status >= 400) throw new ApiError(await errorMessage(res), res.status);
    return res;
  }

  /** Sends a request and parses its JSON answer (undefined for an empty body). */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    const text = await new Response(res.body).text();
    return (text.trim() === "" ? undefined : JSON.parse(text)) as T;
  }

  /** Sends a request and discards its answer. */
  async call(method: string, path: string, options: CallOptions = {}): Promise<void> {
    const res = await this.request(method, path, options);
    await res.body.cancel();
  }

  /** Sends a request that hijacks the connection (attach, exec start). */
  async hijack(
    method: string,
    path: string,
    options: CallOptions = {},
  ): Promise<HijackedConnection> {
    const req = this.#prepare(method, path, options);
    let res: HijackedConnection | HttpResponse;
    try {
      res = await httpHijack(req, { socketPath: this.#socketPath });
    } catch (err) {
      throw this.#connectError(err);
    }
    if (isHijacked(res)) return res;
    throw new ApiError(await errorMessage(res), res.status);
  }
}

/** Reads a stream of JSON messages (one per line, or concatenated) and yields each. */
export async function* jsonMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
  pending += decoder.decode();
  if (pending.trim()) yield JSON.parse(pending);
}

/**
 * The CLI's client of the daemon's Docker-compatible API (v1.41 paths) over its unix socket, or
 * over TCP with TLS. Errors come back as {@link ApiError} (the daemon answered
 * `{"message": ...}`) or {@link ConnectError} (nobody listens, or the TLS handshake failed).
 *
 * @module
 */

import {
  type BufferedResponse,
  type ClientTls,
  type ConnectOptions,
  type HijackedConnection,
  httpHijack,
  httpRequest,
  httpRequestBuffered,
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

  /** Builds the error for `host`; `reason` says why when it is not that nobody listens. */
  constructor(host: string, options?: ErrorOptions & { reason?: string }) {
    super(
      options?.reason
        ? `Cannot connect to the pouch daemon at ${host}: ${options.reason}`
        : `Cannot connect to the pouch daemon at ${host}. Is the daemon running?`,
      options,
    );
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
  /** Speak TLS to a `tcp://` host (see {@link resolveTls}). */
  tls?: ClientTls;
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

/** A daemon address: a unix socket path, or a TCP host and port. */
export type DaemonAddress = { socketPath: string } | { hostname: string; port: number };

/**
 * Parses `-H` values as the Docker CLI: `unix:///path`, a bare `/path`, or `tcp://HOST[:PORT]`
 * (port 2376 with TLS, 2375 without; IPv6 in brackets).
 */
export function parseHost(host: string, options: { tls?: boolean } = {}): DaemonAddress {
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
  if (host.startsWith("/")) return { socketPath: host };
  const match = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+)(?::(\d+))?\/?$/.exec(host);
  if (match) {
    const port = match[2] === undefined ? (options.tls ? 2376 : 2375) : Number(match[2]);
    if (port >= 1 && port <= 65535) {
      return { hostname: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
    }
  }
  throw new Error(`invalid host ${JSON.stringify(host)}: use unix://PATH or tcp://HOST:PORT`);
}

/** The CLI's TLS settings: its flags, and the environment they default from. */
export interface TlsSettings {
  /** `--tls` (or `DOCKER_TLS`): use TLS. */
  tls: boolean;
  /** `--tlsverify` (or `DOCKER_TLS_VERIFY`): use TLS and verify the daemon against the CA. */
  verify: boolean;
  /** `--tlscacert`, `--tlscert`, `--tlskey`, when given. */
  caCert?: string;
  cert?: string;
  key?: string;
  /** `DOCKER_CERT_PATH`: the directory of `ca.pem`, `cert.pem` and `key.pem` (`~/.docker`). */
  certPath: string;
}

/**
 * Reads the PEM files of {@link TlsSettings} as the Docker CLI does: files named by flags must
 * exist; the defaults in the cert path are used when they do. With `verify` the daemon's
 * certificate must chain to the CA. Undefined when TLS is off.
 *
 * Unlike the Docker CLI, `--tls` without `--tlsverify` still checks the daemon's certificate
 * (against the CA when there is one, else the system's roots): Deno's TLS cannot skip it.
 */
export function resolveTls(settings: TlsSettings): ClientTls | undefined {
  if (!settings.tls && !settings.verify) return undefined;
  const file = (given: string | undefined, name: string, what: string) => {
    const path = given ?? `${settings.certPath}/${name}`;
    try {
      return Deno.readTextFileSync(path);
    } catch (err) {
      if (given === undefined && err instanceof Deno.errors.NotFound) return undefined;
      throw new Error(`could not read the TLS ${what} ${path}: ${(err as Error).message}`);
    }
  };
  const ca = file(settings.caCert, "ca.pem", "CA certificate");
  if (settings.verify && ca === undefined) {
    throw new Error(
      `could not read the TLS CA certificate ${settings.certPath}/ca.pem: --tlsverify needs it ` +
        "(--tlscacert or DOCKER_CERT_PATH)",
    );
  }
  const cert = file(settings.cert, "cert.pem", "certificate");
  const key = file(settings.key, "key.pem", "key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error("a TLS client certificate needs its key and the other way round");
  }
  return { ...(ca ? { caCerts: [ca] } : {}), ...(cert && key ? { cert, key } : {}) };
}

/** The daemon's error message from an error response body. */
async function errorMessage(res: HttpResponse): Promise<string> {
  return messageOf(await new Response(res.body).text(), res);
}

/** The message of an error answer: its JSON `message`, else its text, else its status. */
function messageOf(text: string, res: { status: number; statusText: string }): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch { /* not JSON */ }
  return text.trim() || `${res.status} ${res.statusText}`;
}

/** A client of the daemon at one address. */
export class ApiClient {
  #connect: ConnectOptions;
  #host: string;
  #debug?: (line: string) => void;

  /** A client of the daemon at `host` (`unix:///var/run/pouchd.sock`, `tcp://HOST:PORT`). */
  constructor(host: string, options: ApiClientOptions = {}) {
    this.#host = host;
    const address = parseHost(host, { tls: options.tls !== undefined });
    this.#connect = "socketPath" in address ? address : { ...address, tls: options.tls };
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
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused) {
      return new ConnectError(this.#host, { cause: err });
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      return new ConnectError(this.#host, {
        cause: err,
        reason: "permission denied: the socket is open to root and its group only " +
          "(the daemon's --group, pouch by default)",
      });
    }
    // A refused certificate shows up as an alert, or (TLS 1.3: the client's part of the
    // handshake is done before the daemon checks its certificate) as a hang-up instead of the
    // answer.
    if (
      "tls" in this.#connect && this.#connect.tls &&
      (err instanceof Deno.errors.InvalidData || err instanceof Deno.errors.UnexpectedEof ||
        err instanceof Deno.errors.ConnectionReset ||
        (err instanceof Error && /closed the connection without answering/.test(err.message)))
    ) {
      const detail = (err as Error).message.replace(/: https?:\/\/\S+$/, "");
      const hint = /peer certificate/.test(detail)
        ? "is the daemon's certificate signed by the CA given (--tlscacert) and made for this host?"
        : this.#connect.tls.cert
        ? "the daemon refused the client certificate: is it signed by the CA the daemon trusts?"
        : "the daemon requires a client certificate (--tlscert, --tlskey or DOCKER_CERT_PATH)";
      return new ConnectError(this.#host, {
        cause: err,
        reason: `the TLS handshake failed (${detail}): ${hint}`,
      });
    }
    return err;
  }

  /** Sends a request; a status of 400 or more throws an {@link ApiError}. */
  async request(method: string, path: string, options: CallOptions = {}): Promise<HttpResponse> {
    const req = this.#prepare(method, path, options);
    let res: HttpResponse;
    try {
      res = await httpRequest(req, this.#connect);
    } catch (err) {
      throw this.#connectError(err);
    }
    if (res.status >= 400) throw new ApiError(await errorMessage(res), res.status);
    return res;
  }

  /** Sends a request and parses its JSON answer (undefined for an empty body). */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    return await (await this.jsonAnswer<T>(method, path, options)).json();
  }

  /**
   * Sends a request and resolves as soon as the answer's head arrived (a status of 400 or more
   * throws an {@link ApiError}), with the means to read its JSON body: for answers whose body
   * comes later, such as a container's wait. Without web streams, which a CLI run would
   * otherwise load.
   */
  async jsonAnswer<T>(
    method: string,
    path: string,
    options: CallOptions = {},
  ): Promise<{ json(): Promise<T>; close(): void }> {
    const req = this.#prepare(method, path, options);
    let res: BufferedResponse;
    try {
      res = await httpRequestBuffered(req, this.#connect);
    } catch (err) {
      throw this.#connectError(err);
    }
    if (res.status >= 400) {
      const text = new TextDecoder().decode(await res.bytes());
      throw new ApiError(messageOf(text, res), res.status);
    }
    return {
      json: async () => {
        const text = new TextDecoder().decode(await res.bytes());
        return (text.trim() === "" ? undefined : JSON.parse(text)) as T;
      },
      close: () => res.close(),
    };
  }

  /** Sends a request and discards its answer (read whole: these answers are small). */
  async call(method: string, path: string, options: CallOptions = {}): Promise<void> {
    (await this.jsonAnswer<unknown>(method, path, options)).close();
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
      res = await httpHijack(req, this.#connect);
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

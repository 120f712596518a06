/**
 * The client side of the Registry HTTP API v2 (OCI distribution): endpoints (mirrors, insecure
 * registries, the pull-only proxy), authentication (anonymous, basic, bearer tokens cached per
 * scope) and the requests a pull and a push make. It knows nothing of containerd; the image
 * manager drives it.
 *
 * Endpoint order for a pull of `HOST/repo`: each mirror configured for `HOST`, in order, then
 * the registry itself. A mirror is asked for the same repository path (`library/busybox` for
 * Docker Hub's official images), without the user's credentials. An insecure registry (listed,
 * or on a loopback address, as Docker treats them) is tried over HTTPS and then plain HTTP.
 * For a listed one, HTTPS skips certificate verification as Docker's does (see `_tls_relay.ts`);
 * a loopback one that is not listed gets no such exception, so a registry with a certificate the
 * host does not trust must be listed explicitly.
 *
 * @module
 */

import {
  EngineError,
  forbidden,
  invalidArgument,
  messageOf,
  notFound,
  unavailable,
} from "./errors.ts";
import { concatBytes } from "./logs.ts";
import { DEFAULT_DOMAIN } from "./reference.ts";
import type { TlsRelay } from "./_tls_relay.ts";

/** The host Docker Hub's API is served from. */
export const DOCKER_HUB_HOST = "registry-1.docker.io";

/** How long to wait for a registry's response head. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** How long a body may stall before the transfer is abandoned. */
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Largest manifest or index accepted (distribution refuses more than 4 MiB too). */
export const MAX_MANIFEST_SIZE = 4 << 20;
/** Redirects a relayed request follows (fetch's own limit is 20; registries use one). */
const MAX_REDIRECTS = 10;
/** How long a token lives when the token server does not say (the spec's default). */
const DEFAULT_TOKEN_SECONDS = 60;

/** Accept header of a manifest request: every manifest type pouch can pull. */
export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

// ---------------------------------------------------------------------------------------------
// Pure helpers

/**
 * Credentials as Docker passes them: the JSON of `X-Registry-Auth` and of `POST /auth`, and an
 * entry of the config file's `auths` (`auth` is base64 `user:password`).
 */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64 of `username:password` (config.json's form). */
  auth?: string;
  /** A refresh token a token server gave at login (OAuth2). */
  identitytoken?: string;
  /** A bearer token to send as is. */
  registrytoken?: string;
  serveraddress?: string;
  email?: string;
}

/**
 * Decodes an `X-Registry-Auth` header: base64url (padded or not; standard base64 is accepted
 * too, as moby does) of a JSON {@link AuthConfig}. An empty header or `{}` means anonymous and
 * yields undefined. Malformed input is an InvalidArgument error.
 */
export function decodeRegistryAuth(header: string | null | undefined): AuthConfig | undefined {
  if (header === null || header === undefined || header.trim() === "") return undefined;
  const b64 = header.trim().replace(/-/g, "+").replace(/_/g, "/");
  let text: string;
  try {
    const binary = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    text = new TextDecoder().decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0)));
  } catch (err) {
    throw invalidArgument("invalid X-Registry-Auth header: not base64", err);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalidArgument("invalid X-Registry-Auth header: not JSON", err);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalidArgument("invalid X-Registry-Auth header: not a JSON object");
  }
  const auth = normalizeAuth(value as AuthConfig);
  return auth.username || auth.identitytoken || auth.registrytoken ? auth : undefined;
}

/** Encodes credentials as an `X-Registry-Auth` header value (base64url JSON). */
export function encodeRegistryAuth(auth: AuthConfig): string {
  const bytes = new TextEncoder().encode(JSON.stringify(auth));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
}

/** Fills `username`/`password` from `auth` (base64 `user:password`) when they are missing. */
function normalizeAuth(auth: AuthConfig): AuthConfig {
  const out: AuthConfig = {};
  for (const key of ["username", "password", "identitytoken", "registrytoken", "serveraddress"]) {
    const value = (auth as Record<string, unknown>)[key];
    if (typeof value === "string" && value !== "") (out as Record<string, string>)[key] = value;
  }
  if (!out.username && typeof auth.auth === "string" && auth.auth !== "") {
    const decoded = atob(auth.auth);
    const colon = decoded.indexOf(":");
    if (colon > 0) {
      out.username = decoded.slice(0, colon);
      out.password = decoded.slice(colon + 1);
    }
  }
  return out;
}

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lower-case scheme: `basic`, `bearer`. */
  scheme: string;
  /** Parameters with lower-case names: `realm`, `service`, `scope`, `error`. */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): one or more challenges, each a scheme and
 * `name=value` parameters whose values may be quoted strings with backslash escapes.
 * `Bearer realm="https://auth/token",service="registry",scope="repository:a/b:pull"`.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && /[\s,]/.test(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  while (i < n) {
    skipSpace();
    const scheme = token();
    if (scheme === "") {
      i++;
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    // Parameters follow until the next bare token that is not followed by `=`.
    while (i < n) {
      while (i < n && /[\s,]/.test(header[i]!)) i++;
      const save = i;
      const name = token();
      while (i < n && header[i] === " ") i++;
      if (name === "" || header[i] !== "=") {
        i = save;
        break;
      }
      i++;
      while (i < n && header[i] === " ") i++;
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++;
      } else {
        const start = i;
        while (i < n && header[i] !== "," && !/\s/.test(header[i]!)) i++;
        value = header.slice(start, i);
      }
      challenge.params[name.toLowerCase()] = value;
    }
  }
  return challenges;
}

/** Whether a host (`127.0.0.1:5000`, `localhost`, `[::1]:5000`) is a loopback address. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith("[") ? host.slice(1, host.indexOf("]")) : host.replace(/:\d+$/, "");
  return name === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(name) || name === "::1";
}

/** One place a registry's API is served from. */
export interface Endpoint {
  /** Base URL without a trailing slash: `https://registry-1.docker.io`, `http://m:5001`. */
  url: string;
  /** Whether this is a mirror (no credentials are sent to it; a failure falls through). */
  mirror: boolean;
}

/** The registry settings of the daemon. */
export interface RegistryConfig {
  /** Registry host (`docker.io`, `HOST:PORT`) -> mirror URLs, tried in order. */
  mirrors?: Record<string, string[]>;
  /**
   * Hosts served over plain HTTP or with untrusted TLS. Loopback hosts are tried over plain
   * HTTP too, but only listed hosts have their TLS certificate accepted unverified.
   */
  insecure?: string[];
}

/** Whether `host` is an insecure registry: listed, or a loopback address as Docker assumes. */
export function isInsecureRegistry(host: string, insecure: string[] = []): boolean {
  return isLoopbackHost(host) || insecure.includes(host);
}

/**
 * The endpoints a request for registry `domain` goes to, in order: for a pull, each mirror of
 * `domain` then the registry; for anything else only the registry. An insecure registry gets
 * its HTTPS endpoint followed by its HTTP one.
 */
export function endpointsFor(
  domain: string,
  config: RegistryConfig,
  options: { pull: boolean },
): Endpoint[] {
  const out: Endpoint[] = [];
  if (options.pull) {
    for (const url of config.mirrors?.[domain] ?? []) {
      out.push({ url: url.replace(/\/+$/, ""), mirror: true });
    }
  }
  const host = domain === DEFAULT_DOMAIN ? DOCKER_HUB_HOST : domain;
  out.push({ url: `https://${host}`, mirror: false });
  if (isInsecureRegistry(domain, config.insecure)) {
    out.push({ url: `http://${host}`, mirror: false });
  }
  return out;
}

/**
 * The host and repository path a registry address names, as `docker login` takes it:
 * `127.0.0.1:5000`, `http://127.0.0.1:5000/v2/`, `https://index.docker.io/v1/` (Docker Hub).
 */
export function registryKey(server: string | undefined): string {
  if (!server) return DEFAULT_DOMAIN;
  const host = server.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  if (["index.docker.io", "registry-1.docker.io", "docker.io"].includes(host)) {
    return DEFAULT_DOMAIN;
  }
  return host;
}

/** Whether `s` is a 12-character shortening of a digest, as progress messages name layers. */
export function progressId(digest: string): string {
  return digest.replace(/^[a-z0-9]+:/, "").slice(0, 12);
}

function humanBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)}${
    units[unit]
  }`;
}

/**
 * Docker's progress text: `[=====>          ]  1.2MB/3.4MB` (a 50-column bar), or just the
 * count when the total is unknown.
 */
export function formatProgress(current: number, total: number): string {
  if (total <= 0) return humanBytes(current);
  const width = 50;
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = "=".repeat(filled) + (filled < width ? ">" : "") +
    " ".repeat(Math.max(0, width - filled - 1));
  return `[${bar}] ${humanBytes(current).padStart(8)}/${humanBytes(total)}`;
}

/** A message of Docker's JSON progress stream. */
export interface ProgressMessage {
  /** Text to print as it is (`Loaded image: busybox:latest\n`). */
  stream?: string;
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  aux?: Record<string, unknown>;
  error?: string;
  errorDetail?: { message: string };
}

/** A progress message with its bar text: `{"status":"Downloading","progressDetail":...}`. */
export function progressMessage(
  status: string,
  id: string,
  detail?: { current: number; total: number },
): ProgressMessage {
  if (!detail) return { status, progressDetail: {}, id };
  return {
    status,
    progressDetail: detail,
    progress: formatProgress(detail.current, detail.total),
    id,
  };
}

// ---------------------------------------------------------------------------------------------
// The client

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions extends RegistryConfig {
  /** HTTP proxy used for pulls only (a P2P distributor such as Dragonfly's dfdaemon). */
  imageProxy?: string;
  /** How long to wait for a response head; 30 s by default. */
  timeoutMs?: number;
  /** How long a body may stall; 60 s by default. */
  idleTimeoutMs?: number;
  log?: (msg: string) => void;
}

/** What a session is for: the scope its tokens ask for and the endpoints it uses. */
export interface SessionOptions {
  /** Credentials for the registry (never sent to a mirror). */
  auth?: AuthConfig;
  /** Push sessions ask for `pull,push` and never use mirrors or the pull proxy. */
  push?: boolean;
  signal?: AbortSignal;
}

interface CachedToken {
  token: string;
  expires: number;
}

/**
 * The daemon's registry client: configuration, the token cache (per realm, service, scope
 * and user) and the challenge each endpoint answered, shared by all sessions.
 */
export class RegistryClient {
  readonly config: RegistryConfig;
  #imageProxy?: string;
  #proxyClient?: Deno.HttpClient;
  #timeoutMs: number;
  #idleTimeoutMs: number;
  #log: (msg: string) => void;
  #tokens = new Map<string, CachedToken>();
  #challenges = new Map<string, Challenge>();
  /** Listed insecure host -> the relay that carries its HTTPS without verification. */
  #relays = new Map<string, Promise<TlsRelay>>();

  /** A client with the daemon's registry settings. */
  constructor(options: RegistryClientOptions = {}) {
    this.config = { mirrors: options.mirrors ?? {}, insecure: options.insecure ?? [] };
    this.#imageProxy = options.imageProxy;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#log = options.log ?? (() => {});
  }

  /** Closes the proxy's HTTP client and the TLS relays, if any were made. */
  async close(): Promise<void> {
    this.#proxyClient?.close();
    this.#proxyClient = undefined;
    const relays = [...this.#relays.values()];
    this.#relays.clear();
    for (const relay of relays) await (await relay.catch(() => undefined))?.close();
  }

  /** A session for `repository` (path inside the registry) on registry `domain`. */
  session(domain: string, repository: string, options: SessionOptions = {}): RegistrySession {
    return new RegistrySession(this, { domain, repository, ...options });
  }

  /**
   * Checks credentials the way `docker login` does: `GET /v2/` on the registry, answering the
   * challenge with them. Resolves when they are accepted; rejects with a Forbidden error when
   * refused, Unavailable when the registry cannot be reached.
   */
  async login(auth: AuthConfig, signal?: AbortSignal): Promise<void> {
    const normalized = normalizeAuth(auth);
    const domain = registryKey(normalized.serveraddress);
    const session = this.session(domain, "", { auth: normalized, signal });
    await session.ping();
  }

  /**
   * Where a request for `url` goes. An `https://` URL of a listed insecure registry becomes
   * `http://` sent through that host's TLS relay (no certificate verification); a pull's other
   * requests go through the pull proxy when one is configured; anything else goes directly.
   * The relay connects to the registry directly, not through the pull proxy.
   */
  async route(url: string, push: boolean): Promise<Route> {
    const parsed = new URL(url);
    if (parsed.protocol === "https:" && this.#listedInsecure(parsed)) {
      let relay = this.#relays.get(parsed.host);
      if (!relay) {
        // Loaded only here: node:net and node:tls bring Deno's Node compatibility layer.
        relay = import("./_tls_relay.ts").then(({ TlsRelay }) =>
          TlsRelay.start(parsed.port ? parsed.host : `${parsed.host}:443`)
        );
        this.#relays.set(parsed.host, relay);
        // A relay that could not start is tried again on the next request.
        relay.catch(() => this.#relays.delete(parsed.host));
      }
      const client = (await relay).client;
      parsed.protocol = "http:";
      return { url: parsed.toString(), client, relayed: true };
    }
    if (push || !this.#imageProxy) return { url, relayed: false };
    this.#proxyClient ??= Deno.createHttpClient({ proxy: { url: this.#imageProxy } });
    return { url, client: this.#proxyClient, relayed: false };
  }

  /** Whether the URL's host is in the insecure list (`host` or `host:443` for port 443). */
  #listedInsecure(url: URL): boolean {
    const insecure = this.config.insecure ?? [];
    return insecure.includes(url.host) || (!url.port && insecure.includes(`${url.host}:443`));
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  get idleTimeoutMs(): number {
    return this.#idleTimeoutMs;
  }

  log(msg: string): void {
    this.#log(msg);
  }

  /** @internal */
  token(key: string): string | undefined {
    const cached = this.#tokens.get(key);
    if (!cached) return undefined;
    if (cached.expires <= Date.now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return cached.token;
  }

  /** @internal */
  storeToken(key: string, token: string, seconds: number): void {
    // Renew a little early so a token does not expire between check and use.
    this.#tokens.set(key, { token, expires: Date.now() + Math.max(1, seconds - 5) * 1000 });
  }

  /** @internal */
  challenge(url: string): Challenge | undefined {
    return this.#challenges.get(url);
  }

  /** @internal */
  storeChallenge(url: string, challenge: Challenge): void {
    this.#challenges.set(url, challenge);
  }
}

/** How a request is sent: see {@link RegistryClient.route}. */
export interface Route {
  /** The URL to fetch (`http://` when relayed). */
  url: string;
  /** The HTTP client to fetch it with; the default one when undefined. */
  client?: Deno.HttpClient;
  /** Whether it goes through a TLS relay (redirects are then followed by hand). */
  relayed: boolean;
}

/** The raw answer of a manifest request, checked against its digest. */
export interface FetchedManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
  /** The endpoint that served it. */
  endpoint: Endpoint;
}

/** A registry error response's first error: `{"errors":[{"code":"MANIFEST_UNKNOWN",...}]}`. */
interface RegistryErrorBody {
  code: string;
  message: string;
}

/** An endpoint that could not be reached (refused, TLS failure, timeout): try the next. */
class ConnectionFailure extends Error {
  /** Whether the server's certificate was refused (it answered, but over TLS we distrust). */
  readonly certificate: boolean;
  constructor(message: string, options: { cause?: unknown; certificate?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.certificate = options.certificate ?? false;
  }
}

/** A failure of one endpoint, with what the registry said. */
class EndpointError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(message: string, status: number, code: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

interface RequestInit2 {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | ReadableStream<Uint8Array>;
  /** Extra scopes the token must cover (a cross-repository mount's source). */
  scopes?: string[];
  /** Statuses that are an answer, not an error (others throw an EndpointError). */
  ok?: number[];
}

/** Requests for one repository of one registry, with the credentials of one user. */
export class RegistrySession {
  readonly domain: string;
  readonly repository: string;
  #client: RegistryClient;
  #auth?: AuthConfig;
  #push: boolean;
  #signal?: AbortSignal;
  #endpoints: Endpoint[];
  /** The endpoint that served the manifest: blobs come from it first. */
  #preferred?: Endpoint;

  /** Use {@link RegistryClient.session}. */
  constructor(
    client: RegistryClient,
    options: SessionOptions & { domain: string; repository: string },
  ) {
    this.#client = client;
    this.domain = options.domain;
    this.repository = options.repository;
    this.#auth = options.auth ? normalizeAuth(options.auth) : undefined;
    this.#push = options.push ?? false;
    this.#signal = options.signal;
    this.#endpoints = endpointsFor(this.domain, client.config, { pull: !this.#push });
  }

  /** The endpoints in the order they are tried. */
  get endpoints(): Endpoint[] {
    return [...this.#endpoints];
  }

  /** `GET /v2/` with the credentials: a login check. */
  async ping(): Promise<void> {
    const errors: string[] = [];
    for (const endpoint of this.#endpoints.filter((e) => !e.mirror)) {
      try {
        const res = await this.#request(endpoint, "/v2/", { ok: [200] });
        await res.body?.cancel();
        return;
      } catch (err) {
        if (err instanceof EndpointError && (err.status === 401 || err.status === 403)) {
          throw forbidden(
            `login attempt to ${endpoint.url}/v2/ failed with status: ${err.status} ${
              err.status === 401 ? "Unauthorized" : "Forbidden"
            }`,
          );
        }
        if (err instanceof EngineError) throw err;
        errors.push(`${endpoint.url}: ${messageOf(err)}`);
      }
    }
    throw unavailable(`registry ${this.domain} is unreachable (${errors.join("; ")})`);
  }

  /**
   * Fetches a manifest or index by tag or digest, trying each endpoint in order (a mirror that
   * fails or lacks it falls through to the next). The bytes are checked against the digest
   * asked for, or the one the registry announced.
   */
  async manifest(reference: string): Promise<FetchedManifest> {
    const failures: Array<{ endpoint: Endpoint; err: unknown }> = [];
    for (const endpoint of this.#endpoints) {
      try {
        const res = await this.#request(
          endpoint,
          `/v2/${this.repository}/manifests/${reference}`,
          { headers: { Accept: MANIFEST_ACCEPT }, ok: [200] },
        );
        const bytes = await readLimited(res, MAX_MANIFEST_SIZE, `manifest ${reference}`);
        const digest = await sha256Digest(bytes);
        const expected = reference.includes(":")
          ? reference
          : res.headers.get("Docker-Content-Digest") ?? undefined;
        if (expected !== undefined && expected !== digest) {
          throw invalidArgument(
            `manifest ${reference} from ${endpoint.url} has digest ${digest}, expected ${expected}`,
          );
        }
        const mediaType = manifestMediaType(res.headers.get("Content-Type"), bytes);
        this.#preferred = endpoint;
        return { bytes, mediaType, digest, endpoint };
      } catch (err) {
        if (this.#signal?.aborted) throw this.#signal.reason;
        if (endpoint.mirror) {
          this.#client.log(
            `mirror ${endpoint.url} failed for ${this.repository}:${reference}: ${messageOf(err)}`,
          );
        }
        failures.push({ endpoint, err });
      }
    }
    throw this.#resolveError(reference, failures);
  }

  /** The error of a manifest that no endpoint served: the registry's answer matters most. */
  #resolveError(
    reference: string,
    failures: Array<{ endpoint: Endpoint; err: unknown }>,
  ): Error {
    const origin = failures.filter((f) => !f.endpoint.mirror);
    // A refused certificate says most: the plain HTTP attempt after it only meets a TLS port.
    const distrusted = origin.find((f) => f.err instanceof ConnectionFailure && f.err.certificate);
    if (distrusted) return unavailable(`registry ${this.domain}: ${messageOf(distrusted.err)}`);
    // An answer from the registry beats a connection failure of its other scheme.
    const answered = origin.find((f) => !(f.err instanceof ConnectionFailure));
    const name = `${this.domain === DEFAULT_DOMAIN ? "" : this.domain + "/"}${
      this.domain === DEFAULT_DOMAIN ? this.repository.replace(/^library\//, "") : this.repository
    }`;
    if (answered) {
      const err = answered.err;
      if (err instanceof EngineError) return err;
      const e = err as EndpointError;
      if (e.status === 404 && e.code === "MANIFEST_UNKNOWN") {
        const sep = reference.includes(":") ? "@" : ":";
        return notFound(
          `manifest for ${name}${sep}${reference} not found: ${e.message}`,
        );
      }
      if (e.status === 404 || e.status === 401 || e.status === 403) {
        const msg =
          `pull access denied for ${name}, repository does not exist or may require 'docker login': ${e.message}`;
        return e.status === 404 ? notFound(msg) : forbidden(msg);
      }
      return unavailable(`registry ${this.domain} answered ${e.status}: ${e.message}`);
    }
    const tried = failures.map((f) => `${f.endpoint.url}: ${messageOf(f.err)}`).join("; ");
    return unavailable(`registry ${this.domain} is unreachable (${tried})`);
  }

  /**
   * Starts a blob download: the response of `GET /v2/<repo>/blobs/<digest>` (redirects
   * followed), from the endpoint that served the manifest, then the others. `offset` asks for
   * the rest of a partial download (a registry that ignores it answers 200 from byte 0).
   */
  async blob(digest: string, options: { offset?: number } = {}): Promise<Response> {
    const order = this.#preferred
      ? [this.#preferred, ...this.#endpoints.filter((e) => e !== this.#preferred)]
      : this.#endpoints;
    const errors: string[] = [];
    for (const endpoint of order) {
      try {
        const headers: Record<string, string> = {};
        if (options.offset) headers.Range = `bytes=${options.offset}-`;
        return await this.#request(endpoint, `/v2/${this.repository}/blobs/${digest}`, {
          headers,
          ok: [200, 206],
        });
      } catch (err) {
        if (this.#signal?.aborted) throw this.#signal.reason;
        errors.push(`${endpoint.url}: ${messageOf(err)}`);
      }
    }
    throw unavailable(`fetching blob ${digest} of ${this.repository}: ${errors.join("; ")}`);
  }

  /** Reads a whole small blob (a config), verified against its digest and size. */
  async blobBytes(digest: string, size: number): Promise<Uint8Array> {
    if (size > MAX_MANIFEST_SIZE * 4) throw invalidArgument(`blob ${digest} is too large`);
    const res = await this.blob(digest);
    const bytes = await readLimited(res, size, `blob ${digest}`);
    if (bytes.length !== size) {
      throw invalidArgument(`blob ${digest} is ${bytes.length} bytes, its descriptor says ${size}`);
    }
    const actual = await sha256Digest(bytes);
    if (actual !== digest) {
      throw invalidArgument(`blob ${digest} has digest ${actual}: the registry sent other content`);
    }
    return bytes;
  }

  /** Reads a response body, aborting when it stalls longer than the idle timeout. */
  async *body(res: Response): AsyncGenerator<Uint8Array> {
    if (!res.body) return;
    const reader = res.body.getReader();
    try {
      while (true) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(unavailable(`transfer stalled for ${this.#client.idleTimeoutMs} ms`)),
            this.#client.idleTimeoutMs,
          );
        });
        try {
          const { value, done } = await Promise.race([reader.read(), stalled]);
          if (done) return;
          yield value;
        } finally {
          clearTimeout(timer);
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  // --- push ------------------------------------------------------------------------------------

  /** The origin endpoint that answers (HTTPS, or HTTP for an insecure registry). */
  async #pushEndpoint(): Promise<Endpoint> {
    if (this.#preferred) return this.#preferred;
    const errors: string[] = [];
    for (const endpoint of this.#endpoints) {
      try {
        const res = await this.#request(endpoint, "/v2/", { ok: [200] });
        await res.body?.cancel();
        this.#preferred = endpoint;
        return endpoint;
      } catch (err) {
        if (err instanceof EndpointError && (err.status === 401 || err.status === 403)) {
          throw forbidden(`${this.domain}: ${err.message}`);
        }
        if (err instanceof EngineError) throw err;
        errors.push(`${endpoint.url}: ${messageOf(err)}`);
      }
    }
    throw unavailable(`registry ${this.domain} is unreachable (${errors.join("; ")})`);
  }

  /** Whether the repository has blob `digest` (`HEAD /v2/<repo>/blobs/<digest>`). */
  async hasBlob(digest: string): Promise<boolean> {
    const endpoint = await this.#pushEndpoint();
    const res = await this.#request(endpoint, `/v2/${this.repository}/blobs/${digest}`, {
      method: "HEAD",
      ok: [200, 404],
    });
    await res.body?.cancel();
    return res.status === 200;
  }

  /**
   * Starts an upload; with `mountFrom`, asks for a cross-repository mount first. Answers
   * `"mounted"` when the registry mounted the blob, else the upload's location.
   */
  async startUpload(options: { digest?: string; mountFrom?: string } = {}): Promise<string> {
    const endpoint = await this.#pushEndpoint();
    let path = `/v2/${this.repository}/blobs/uploads/`;
    const scopes: string[] = [];
    if (options.mountFrom && options.digest) {
      path += `?mount=${encodeURIComponent(options.digest)}&from=${
        encodeURIComponent(options.mountFrom)
      }`;
      scopes.push(`repository:${options.mountFrom}:pull`);
    }
    const res = await this.#request(endpoint, path, { method: "POST", ok: [201, 202], scopes });
    await res.body?.cancel();
    if (res.status === 201) return "mounted";
    const location = res.headers.get("Location");
    if (!location) throw unavailable(`registry ${this.domain} gave no upload location`);
    return new URL(location, endpoint.url + "/").toString();
  }

  /** Uploads a blob's bytes to `location` (one PATCH) and commits it with its digest (PUT). */
  async upload(
    location: string,
    body: ReadableStream<Uint8Array>,
    options: { digest: string; size: number },
  ): Promise<void> {
    const endpoint = await this.#pushEndpoint();
    const patched = await this.#request(endpoint, location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream" },
      body,
      ok: [202, 204],
    });
    await patched.body?.cancel();
    const next = patched.headers.get("Location") ?? location;
    const url = new URL(next, endpoint.url + "/");
    url.searchParams.set("digest", options.digest);
    const put = await this.#request(endpoint, url.toString(), {
      method: "PUT",
      headers: { "Content-Length": "0" },
      ok: [201, 204],
    });
    await put.body?.cancel();
  }

  /** Puts a manifest under `reference` (a tag or its digest). */
  async putManifest(reference: string, bytes: Uint8Array, mediaType: string): Promise<void> {
    const endpoint = await this.#pushEndpoint();
    const res = await this.#request(endpoint, `/v2/${this.repository}/manifests/${reference}`, {
      method: "PUT",
      headers: { "Content-Type": mediaType },
      body: bytes,
      ok: [200, 201, 202],
    });
    await res.body?.cancel();
  }

  // --- requests and authentication ---------------------------------------------------------------

  /** The scope the session's tokens ask for. */
  #scope(): string[] {
    if (this.repository === "") return [];
    return [`repository:${this.repository}:${this.#push ? "pull,push" : "pull"}`];
  }

  /**
   * One request to `endpoint` (`path` may be an absolute URL the registry gave): adds the
   * credentials the endpoint asked for before, answers a 401 challenge once (a replayable
   * body only), and turns unexpected statuses into an EndpointError carrying the registry's
   * error code.
   */
  async #request(endpoint: Endpoint, path: string, init: RequestInit2): Promise<Response> {
    const url = /^https?:\/\//.test(path) ? path : endpoint.url + path;
    const scopes = [...this.#scope(), ...(init.scopes ?? [])];
    let authorization = await this.#authorization(endpoint, scopes, false);
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers: Record<string, string> = { ...init.headers };
      if (authorization) headers.Authorization = authorization;
      const res = await this.#fetch(url, {
        method: init.method ?? "GET",
        headers,
        body: init.body as BodyInit | undefined,
      });
      if (res.status === 401 && attempt === 0 && !(init.body instanceof ReadableStream)) {
        const header = res.headers.get("WWW-Authenticate") ?? "";
        await res.body?.cancel();
        const challenge = parseWwwAuthenticate(header).find((c) =>
          c.scheme === "bearer" || c.scheme === "basic"
        );
        if (!challenge) throw new EndpointError("unauthorized: no usable challenge", 401, "");
        this.#client.storeChallenge(endpoint.url, challenge);
        authorization = await this.#authorization(endpoint, scopes, true);
        if (!authorization) {
          throw new EndpointError("unauthorized: authentication required", 401, "UNAUTHORIZED");
        }
        continue;
      }
      if ((init.ok ?? [200]).includes(res.status)) return res;
      const error = await registryError(res);
      throw new EndpointError(error.message, res.status, error.code);
    }
    throw new EndpointError("unauthorized: authentication required", 401, "UNAUTHORIZED");
  }

  /** The Authorization header for `endpoint`, from its last challenge; undefined if none. */
  async #authorization(
    endpoint: Endpoint,
    scopes: string[],
    fresh: boolean,
  ): Promise<string | undefined> {
    const challenge = this.#client.challenge(endpoint.url);
    if (!challenge) return undefined;
    // Mirrors never see the user's credentials: those are for the registry itself.
    const auth = endpoint.mirror ? undefined : this.#auth;
    if (challenge.scheme === "basic") {
      if (!auth?.username) return undefined;
      return `Basic ${btoa(`${auth.username}:${auth.password ?? ""}`)}`;
    }
    if (auth?.registrytoken) return `Bearer ${auth.registrytoken}`;
    const realm = challenge.params.realm;
    if (!realm) return undefined;
    const service = challenge.params.service ?? "";
    // A challenge may name the scope it wants (insufficient_scope); honour it too.
    const wanted = [
      ...new Set([...scopes, ...(fresh && challenge.params.scope ? [challenge.params.scope] : [])]),
    ];
    const key = `${realm}|${service}|${wanted.join(" ")}|${auth?.username ?? ""}`;
    const cached = this.#client.token(key);
    if (cached) return `Bearer ${cached}`;
    const { token, expiresIn } = await this.#fetchToken(realm, service, wanted, auth);
    this.#client.storeToken(key, token, expiresIn);
    return `Bearer ${token}`;
  }

  /** Gets a token from the token server (docker/distribution's token spec, or OAuth2). */
  async #fetchToken(
    realm: string,
    service: string,
    scopes: string[],
    auth: AuthConfig | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    let res: Response;
    if (auth?.identitytoken) {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: auth.identitytoken,
        service,
        client_id: "pouch",
      });
      if (scopes.length > 0) form.set("scope", scopes.join(" "));
      res = await this.#fetch(realm, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: form.toString(),
      });
    } else {
      const url = new URL(realm);
      if (service) url.searchParams.set("service", service);
      for (const scope of scopes) url.searchParams.append("scope", scope);
      const headers: Record<string, string> = {};
      if (auth?.username) {
        headers.Authorization = `Basic ${btoa(`${auth.username}:${auth.password ?? ""}`)}`;
        url.searchParams.set("account", auth.username);
      }
      res = await this.#fetch(url.toString(), { method: "GET", headers });
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new EndpointError(
        `unauthorized: the token server ${new URL(realm).host} refused the credentials`,
        401,
        "UNAUTHORIZED",
      );
    }
    if (res.status !== 200) {
      const text = await res.text().catch(() => "");
      throw unavailable(`token server ${realm} answered ${res.status}: ${text.slice(0, 200)}`);
    }
    const body = JSON.parse(new TextDecoder().decode(await readLimited(res, 1 << 20, "token"))) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const token = body.token || body.access_token;
    if (!token) throw unavailable(`token server ${realm} answered without a token`);
    return { token, expiresIn: body.expires_in || DEFAULT_TOKEN_SECONDS };
  }

  /**
   * fetch with the session's signal, the response-head timeout, the pull proxy and the TLS
   * relay of a listed insecure registry (see {@link RegistryClient.route}).
   */
  async #fetch(
    url: string,
    init: { method: string; headers: Record<string, string>; body?: BodyInit | null },
  ): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#client.timeoutMs);
    const controller = new AbortController();
    const onAbort = () => controller.abort(this.#signal?.reason ?? timeout.reason);
    this.#signal?.addEventListener("abort", onAbort, { once: true });
    timeout.addEventListener("abort", onAbort, { once: true });
    let target = url;
    let request = init;
    try {
      // A relayed request follows redirects itself: each hop is routed again, since a
      // redirect may leave the insecure host (a storage backend) and must not be relayed.
      for (let hop = 0;; hop++) {
        const route = await this.#client.route(target, this.#push);
        const res = await fetch(route.url, {
          ...request,
          signal: controller.signal,
          redirect: route.relayed ? "manual" : "follow",
          ...(route.client ? { client: route.client } : {}),
          ...(request.body instanceof ReadableStream ? { duplex: "half" } : {}),
        } as RequestInit);
        const location = res.headers.get("Location");
        const redirected = [301, 302, 303, 307, 308].includes(res.status) && location !== null;
        if (!route.relayed || !redirected || hop >= MAX_REDIRECTS) return res;
        if (request.body instanceof ReadableStream) return res; // not replayable
        await res.body?.cancel();
        const next = new URL(location!, target);
        const headers = { ...request.headers };
        if (next.origin !== new URL(target).origin) delete headers.Authorization;
        const toGet = res.status === 303 || (res.status <= 302 && request.method === "POST");
        request = toGet ? { method: "GET", headers } : { ...request, headers };
        target = next.toString();
      }
    } catch (err) {
      if (this.#signal?.aborted) throw this.#signal.reason;
      if (timeout.aborted) {
        throw new ConnectionFailure(
          `${init.method} ${target}: no answer within ${this.#client.timeoutMs} ms`,
        );
      }
      const reason = connectionMessage(err);
      const certificate = reason.startsWith("certificate");
      const host = new URL(target).host;
      const hint = certificate
        ? `; add ${host} to the daemon's insecure-registries to accept it unverified`
        : "";
      throw new ConnectionFailure(`${init.method} ${target}: ${reason}${hint}`, {
        cause: err,
        certificate,
      });
    } finally {
      // The head arrived (or the request failed): the timeout no longer applies, but the
      // session's own signal still aborts a body being read.
      timeout.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * A short reason for a failed connection: `connection refused`, `certificate not trusted
 * (UnknownIssuer)`, `TLS handshake failed`.
 */
function connectionMessage(err: unknown): string {
  // Deno's fetch says "fetch failed" and keeps the reason in its cause.
  const cause = err instanceof Error && err.cause !== undefined ? messageOf(err.cause) : "";
  const text = `${messageOf(err)} ${cause}`;
  if (/refused/i.test(text)) return "connection refused";
  // rustls: "invalid peer certificate: UnknownIssuer", "...: Other(OtherError(CaUsedAsEndEntity))",
  // "...: NotValidForName".
  const peer = /invalid peer certificate: (?:Other\(OtherError\()?(\w+)/.exec(text);
  if (peer) return `certificate not trusted (${peer[1]})`;
  if (/certificate|tls|ssl|handshake|InvalidContentType|corrupt message/i.test(text)) {
    return "TLS handshake failed";
  }
  return (cause || messageOf(err)).split("\n")[0]!;
}

/** The first error of a registry's error body, or the status text. */
async function registryError(res: Response): Promise<RegistryErrorBody> {
  const text = res.body ? await res.text().catch(() => "") : "";
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const first = parsed.errors?.[0];
    if (first?.code) {
      return {
        code: first.code,
        message: `${first.code.toLowerCase().replace(/_/g, " ")}: ${first.message ?? ""}`.replace(
          /: $/,
          "",
        ),
      };
    }
  } catch {
    // Not a registry error body.
  }
  const code = res.status === 404 ? "NOT_FOUND" : res.status === 401 ? "UNAUTHORIZED" : "";
  const message = res.status === 401
    ? "unauthorized: authentication required"
    : `${res.status} ${res.statusText}`;
  return { code, message };
}

/** The media type of a manifest: its own `mediaType` field, else the Content-Type header. */
function manifestMediaType(contentType: string | null, bytes: Uint8Array): string {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as {
      mediaType?: string;
      manifests?: unknown;
      schemaVersion?: number;
    };
    if (typeof parsed.mediaType === "string" && parsed.mediaType !== "") return parsed.mediaType;
    if (parsed.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
    if (Array.isArray(parsed.manifests)) return "application/vnd.oci.image.index.v1+json";
  } catch {
    // Fall back to the header.
  }
  return (contentType ?? "").split(";")[0]!.trim() || "application/vnd.oci.image.manifest.v1+json";
}

/** Reads a whole body, refusing more than `limit` bytes. */
async function readLimited(res: Response, limit: number, what: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > limit) {
        throw invalidArgument(`${what} is larger than the expected ${limit} bytes`);
      }
      parts.push(chunk);
    }
  }
  return concatBytes(parts, size);
}

/** `sha256:<hex>` of bytes. */
export async function sha256Digest(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Registries for the integration tests: a real `docker-registry` (distribution 2.8) on
 * 127.0.0.1 with a free port, its storage and config in a temp directory, optionally behind
 * htpasswd basic auth, behind a token server of our own (JWTs signed with a self-signed key the
 * registry trusts), or configured as a pull-through cache of another registry. Also the image
 * builders the tests push with `skopeo` and `umoci`.
 *
 * Every registry listens on 127.0.0.1 only; nothing here talks to any other address.
 *
 * @module
 */
import { waitFor } from "../engine/testing.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** Authentication: none (default), htpasswd basic auth, or bearer tokens. */
  auth?: "none" | "htpasswd" | "token";
  /** Users and passwords for `htpasswd` and `token` auth. */
  users?: Record<string, string>;
  /** Makes the registry a pull-through cache of this URL. */
  proxyOf?: string;
  /**
   * Serves HTTPS with a self-signed certificate made by `openssl req -x509` (`CA:TRUE`, as
   * openssl makes it by default and Docker's docs suggest), for `IP:127.0.0.1` and
   * `DNS:localhost`. No host trusts it.
   */
  tls?: boolean;
}

/** A running registry. */
export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** `http://127.0.0.1:PORT` (`https://` with {@link RegistryOptions.tls}). */
  url: string;
  /** The temp directory (storage under `storage/`). */
  dir: string;
  /** The registry's log (access log lines included). */
  log(): Promise<string>;
  /** Path of a blob's data file in the storage. */
  blobPath(digest: string): string;
  /** Token requests the token server answered (token auth only). */
  tokenRequests: URL[];
  /** Stops the registry (it can be started again on the same port and storage). */
  stop(): Promise<void>;
  /** Starts it again after {@link stop}. */
  start(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Makes `PREFIX.key` and `PREFIX.crt`: a P-256 key and a self-signed certificate for two days. */
async function selfSignedCert(
  prefix: string,
  options: { subject: string; extensions?: string[] },
): Promise<void> {
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${prefix}.key`,
    "-out",
    `${prefix}.crt`,
    "-days",
    "2",
    "-subj",
    options.subject,
    ...(options.extensions ?? []).flatMap((extension) => ["-addext", extension]),
  ]);
}

async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const proc = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = proc.stdin.getWriter();
    await writer.write(encoder.encode(stdin));
    await writer.close();
  }
  const out = await proc.output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${decoder.decode(out.stderr)}`);
  }
  return decoder.decode(out.stdout);
}

/** A bcrypt hash (what docker-registry's htpasswd wants), made by libcrypt through perl. */
async function bcrypt(password: string): Promise<string> {
  const salt = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))))
    .replace(/[^A-Za-z0-9]/g, "a").slice(0, 22);
  const hash = await run("perl", ["-e", `print crypt($ARGV[0], '$2b$05$${salt}')`, password]);
  if (!hash.startsWith("$2b$")) throw new Error("perl's crypt() does not support bcrypt here");
  return hash;
}

function base64url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
  let binary = "";
  for (const b of data) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
}

/** A token server: checks basic credentials and grants the scopes asked for, as signed JWTs. */
async function startTokenServer(
  dir: string,
  options: { users: Record<string, string>; service: string; issuer: string },
): Promise<{ url: string; requests: URL[]; close(): Promise<void> }> {
  await selfSignedCert(`${dir}/token`, { subject: "/CN=pouch-test-token" });
  const keyDer = Uint8Array.from(
    atob(pemBody(await Deno.readTextFile(`${dir}/token.key`))),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey(
    "pkcs8",
    keyDer,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const cert = pemBody(await Deno.readTextFile(`${dir}/token.crt`));
  const requests: URL[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      requests.push(url);
      const header = req.headers.get("Authorization") ?? "";
      const [user, password] = header.startsWith("Basic ")
        ? atob(header.slice(6)).split(/:(.*)/s)
        : [undefined, undefined];
      if (user === undefined || options.users[user] !== password) {
        return new Response(JSON.stringify({ details: "invalid credentials" }), { status: 401 });
      }
      const access = url.searchParams.getAll("scope").flatMap((scope) => {
        const [type, ...rest] = scope.split(":");
        const actions = rest.pop() ?? "";
        return [{ type, name: rest.join(":"), actions: actions.split(",") }];
      });
      const now = Math.floor(Date.now() / 1000);
      const head = base64url(JSON.stringify({ typ: "JWT", alg: "ES256", x5c: [cert] }));
      const claims = base64url(JSON.stringify({
        iss: options.issuer,
        sub: user,
        aud: options.service,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: crypto.randomUUID(),
        access,
      }));
      const signature = new Uint8Array(
        await crypto.subtle.sign(
          { name: "ECDSA", hash: "SHA-256" },
          key,
          encoder.encode(`${head}.${claims}`),
        ),
      );
      const token = `${head}.${claims}.${base64url(signature)}`;
      return Response.json({ token, access_token: token, expires_in: 300 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/token`,
    requests,
    close: () => server.shutdown(),
  };
}

/** Starts a `docker-registry` on 127.0.0.1 with a temp storage dir and its own config. */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-registry-" });
  const port = freePort();
  const logPath = `${dir}/registry.log`;
  const users = options.users ?? { alice: "wonderland" };
  let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  let auth = "";
  if (options.auth === "htpasswd") {
    const lines = await Promise.all(
      Object.entries(users).map(async ([u, p]) => `${u}:${await bcrypt(p)}`),
    );
    await Deno.writeTextFile(`${dir}/htpasswd`, lines.join("\n") + "\n");
    auth = `auth:\n  htpasswd:\n    realm: pouch-test\n    path: ${dir}/htpasswd\n`;
  } else if (options.auth === "token") {
    const service = "pouch-test-registry";
    const issuer = "pouch-test-issuer";
    token = await startTokenServer(dir, { users, service, issuer });
    auth = `auth:\n  token:\n    realm: ${token.url}\n    service: ${service}\n` +
      `    issuer: ${issuer}\n    rootcertbundle: ${dir}/token.crt\n`;
  }
  const proxy = options.proxyOf ? `proxy:\n  remoteurl: ${options.proxyOf}\n` : "";
  let tls = "";
  if (options.tls) {
    await selfSignedCert(`${dir}/tls`, {
      subject: "/CN=pouch-test-registry",
      extensions: ["subjectAltName=IP:127.0.0.1,DNS:localhost"],
    });
    tls = `  tls:\n    certificate: ${dir}/tls.crt\n    key: ${dir}/tls.key\n`;
  }
  await Deno.writeTextFile(
    `${dir}/config.yml`,
    `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${dir}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: pouch-test-secret
${tls}${auth}${proxy}`,
  );

  let child: Deno.ChildProcess | undefined;
  let status: Promise<unknown> | undefined;
  async function start(): Promise<void> {
    const logFile = await Deno.open(logPath, { append: true, create: true });
    child = new Deno.Command("docker-registry", {
      args: ["serve", `${dir}/config.yml`],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const pipe = (stream: ReadableStream<Uint8Array>) =>
      stream.pipeTo(new WritableStream({ write: (chunk) => void logFile.writeSync(chunk) }))
        .catch(() => {});
    const piping = Promise.all([pipe(child.stdout), pipe(child.stderr)]);
    let exited = false;
    status = child.status.then(async (s) => {
      exited = true;
      await piping;
      logFile.close();
      return s;
    });
    await waitFor(async () => {
      if (exited) throw new Error(`docker-registry exited:\n${await registry.log()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`, {
          signal: AbortSignal.timeout(2000),
        });
        await res.body?.cancel();
        // A TLS registry answers plain HTTP with 400 ("client sent an HTTP request to an
        // HTTPS server"): it is listening.
        return res.status === 200 || res.status === 401 ||
          (options.tls === true && res.status === 400);
      } catch {
        return false;
      }
    }, { timeoutMs: 15_000, message: "docker-registry did not answer /v2/" });
  }

  const registry: TestRegistry = {
    host: `127.0.0.1:${port}`,
    url: `${options.tls ? "https" : "http"}://127.0.0.1:${port}`,
    dir,
    log: () => Deno.readTextFile(logPath).catch(() => ""),
    blobPath: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return `${dir}/storage/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    },
    tokenRequests: token?.requests ?? [],
    async stop() {
      if (!child) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await status;
      child = undefined;
    },
    start,
    async [Symbol.asyncDispose]() {
      await registry.stop();
      await token?.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await start();
  } catch (err) {
    await registry[Symbol.asyncDispose]();
    throw err;
  }
  return registry;
}

/** Options of {@link pushArchive}. */
export interface PushArchiveOptions {
  /** `user:password` for the destination. */
  creds?: string;
  /** Keep layers uncompressed (skopeo compresses them for a registry by default). */
  uncompressed?: boolean;
}

/** Pushes an image with skopeo: `source` is a skopeo reference (`docker-archive:FILE`, `oci:DIR:TAG`). */
export async function skopeoPush(
  source: string,
  destination: string,
  options: PushArchiveOptions = {},
): Promise<void> {
  const args = ["copy", "--quiet", "--dest-tls-verify=false"];
  if (options.creds) args.push("--dest-creds", options.creds);
  if (options.uncompressed) args.push("--dest-decompress");
  await run("skopeo", [...args, source, `docker://${destination}`]);
}

/**
 * Builds an OCI layout at `dir` (tag `multi`) from the busybox OCI archive plus `extra` layers,
 * each adding one file `/layer-N` of `size` random bytes (random, so that the layers are
 * distinct per call). Answers the skopeo source reference.
 */
export async function buildMultiLayer(
  busyboxOci: string,
  dir: string,
  options: { extra: number; size?: number },
): Promise<string> {
  const layout = `${dir}/layout`;
  await Deno.mkdir(layout, { recursive: true });
  await run("tar", ["-xf", busyboxOci, "-C", layout]);
  // Each layer is unpacked from the previous tag and repacked as the next one (umoci adds one
  // layer per repack, relative to what the bundle was unpacked from).
  let from = "busybox:latest";
  for (let i = 1; i <= options.extra; i++) {
    const bundle = `${dir}/bundle-${i}`;
    await run("umoci", ["unpack", "--image", `${layout}:${from}`, bundle]);
    const data = new Uint8Array(options.size ?? 64 * 1024);
    for (let off = 0; off < data.length; off += 65536) {
      crypto.getRandomValues(data.subarray(off, Math.min(off + 65536, data.length)));
    }
    await Deno.writeFile(`${bundle}/rootfs/layer-${i}`, data);
    const tag = i === options.extra ? "multi" : `step${i}`;
    await run("umoci", ["repack", "--image", `${layout}:${tag}`, bundle]);
    await Deno.remove(bundle, { recursive: true });
    from = tag;
  }
  return `oci:${layout}:multi`;
}

/** A request to a test registry (127.0.0.1 only), with a timeout; answers status, headers and text. */
export async function registryRequest(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Headers; body: string }> {
  if (!url.startsWith("http://127.0.0.1:")) throw new Error(`refusing to contact ${url}`);
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Options of {@link startFlakyProxy}. */
export interface FlakyProxyOptions {
  /** The blob whose first download misbehaves. */
  digest: string;
  /**
   * `truncate`: send half of it and close the connection; `hang`: send half and keep the
   * connection open until the proxy is closed (for a crash mid-pull).
   */
  mode: "truncate" | "hang";
}

/** A registry front that breaks the first download of one blob and forwards everything else. */
export interface FlakyProxy extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Resolves once the broken download has started sending. */
  broken: Promise<void>;
  /** Paths requested so far. */
  requests: string[];
}

/**
 * Starts an HTTP front for the registry at `target` (a `http://127.0.0.1:PORT` URL) on
 * 127.0.0.1: the first GET of `options.digest`'s blob is cut short (see
 * {@link FlakyProxyOptions.mode}); later ones and every other request are forwarded as they are.
 */
export function startFlakyProxy(target: string, options: FlakyProxyOptions): FlakyProxy {
  if (!target.startsWith("http://127.0.0.1:")) throw new Error(`refusing to forward to ${target}`);
  const broken = Promise.withResolvers<void>();
  const closing = new AbortController();
  let tripped = false;
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {}, signal: closing.signal },
    async (req) => {
      const url = new URL(req.url);
      requests.push(`${req.method} ${url.pathname}`);
      const upstream = await fetch(`${target}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        redirect: "manual",
        signal: AbortSignal.timeout(30_000),
      });
      const isTarget = req.method === "GET" && url.pathname.endsWith(`/blobs/${options.digest}`);
      if (!isTarget || tripped || !upstream.body) {
        return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
      }
      tripped = true;
      const whole = new Uint8Array(await upstream.arrayBuffer());
      const half = whole.subarray(0, Math.floor(whole.length / 2));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(half);
          broken.resolve();
          if (options.mode === "truncate") {
            controller.error(new Error("connection cut by the test"));
          } else {
            closing.signal.addEventListener("abort", () => controller.error(new Error("closed")));
          }
        },
      });
      return new Response(body, {
        status: 200,
        headers: {
          "Content-Length": String(whole.length),
          "Content-Type": "application/octet-stream",
        },
      });
    },
  );
  return {
    host: `127.0.0.1:${server.addr.port}`,
    broken: broken.promise,
    requests,
    async [Symbol.asyncDispose]() {
      closing.abort();
      await server.finished;
    },
  };
}

/** A forward HTTP proxy for the tests (see {@link startForwardProxy}). */
export interface ForwardProxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, what `--image-proxy` takes. */
  url: string;
  /** What went through it: `GET /v2/x/busybox/manifests/1`, `CONNECT 127.0.0.1:5000`. */
  requests: string[];
}

/**
 * Starts a forward HTTP proxy on 127.0.0.1 that serves absolute-form requests (`GET
 * http://127.0.0.1:PORT/v2/... HTTP/1.1`, what an HTTP client sends to its proxy for an
 * `http://` URL) by forwarding them to 127.0.0.1 only, and records each. A CONNECT (an
 * `https://` URL) is recorded and refused: Deno.serve cannot hand over the raw connection.
 */
export function startForwardProxy(): ForwardProxy {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      if (req.method === "CONNECT") {
        requests.push(`CONNECT ${req.headers.get("host") ?? new URL(req.url).host}`);
        return new Response("CONNECT is not supported by this proxy", { status: 405 });
      }
      const url = new URL(req.url);
      if (url.hostname !== "127.0.0.1") {
        return new Response(`refusing to forward to ${url.host}`, { status: 403 });
      }
      requests.push(`${req.method} ${url.pathname}`);
      const headers = new Headers(req.headers);
      for (const name of ["proxy-connection", "proxy-authorization", "connection", "host"]) {
        headers.delete(name);
      }
      const upstream = await fetch(url, {
        method: req.method,
        headers,
        body: req.body,
        redirect: "manual",
        signal: AbortSignal.timeout(30_000),
      });
      return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/**
 * The API server: `node:http` on unix sockets and `node:https` on TCP (Deno.serve cannot hijack
 * a connection, which attach and exec need), handing requests to the Hono app and upgraded
 * connections to the same app with the raw socket in its environment. TCP is served over TLS,
 * with client certificates required when `verify` is set (dockerd's `--tlsverify`); in the
 * clear only when forced.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import { type ApiEnv, HIJACKED } from "./api/mod.ts";
import { type ApiAddress, parseApiAddress } from "./config.ts";
import type { Logger } from "./log.ts";

/** A running API server. */
export interface ApiServer {
  /**
   * Stops accepting connections, waits (up to the drain timeout) for the requests in flight
   * to finish, then closes every connection, hijacked streams included.
   */
  close(): Promise<void>;
  /** Requests answered so far and requests in flight (endless streams not counted). */
  activity(): { served: number; inFlight: number };
}

/** Options of {@link serveApi}. */
export interface ServeOptions {
  listen: string[];
  log: Logger;
  /** The group that owns the sockets (mode 0660); root's when it does not exist. */
  group?: string;
  /** How long `close()` waits for requests in flight; 15 s by default. */
  drainTimeoutMs?: number;
  /** TLS for the TCP addresses; unix sockets are never TLS (as dockerd). */
  tls?: ServerTls;
  /** Serve TCP addresses without `tls` all the same (with a warning); refused otherwise. */
  insecureTcp?: boolean;
}

/** The PEM files of the TLS server. */
export interface ServerTls {
  /** The server's certificate (chain). */
  cert: string;
  /** Its private key. */
  key: string;
  /** The CA that client certificates must be signed by; required with `verify`. */
  ca?: string;
  /** Refuse clients without a certificate signed by `ca` (dockerd's `--tlsverify`). */
  verify: boolean;
}

/** Serves `app` on every address of `listen`. */
export async function serveApi(app: Hono<ApiEnv>, options: ServeOptions): Promise<ApiServer> {
  const { log } = options;
  const gid = options.group ? await groupId(options.group) : 0;
  if (options.group && gid === undefined) {
    log.warn("socket group not found: the API sockets belong to root's group", {
      group: options.group,
    });
  }
  const requestListener = getRequestListener((request, env) => {
    const started = performance.now();
    const response = app.fetch(request, env);
    if (log.enabled("debug")) {
      Promise.resolve(response).then((r) =>
        log.debug("request", {
          method: request.method,
          path: new URL(request.url).pathname,
          status: r.status,
          ms: (performance.now() - started).toFixed(1),
        })
      );
    }
    return response;
  });
  // Requests in flight, which close() lets finish; once draining, new requests on kept-alive
  // connections are refused so that the drain ends.
  let inFlight = 0;
  let served = 0;
  let draining = false;
  const drained = { resolve: () => {} };
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (draining) {
      res.writeHead(503, { "Content-Type": "application/json", "Connection": "close" });
      res.end(JSON.stringify({ message: "the daemon is shutting down" }));
      return Promise.resolve();
    }
    if (endlessStream(req.method, req.url)) return requestListener(req, res);
    inFlight++;
    res.once("close", () => {
      served++;
      if (--inFlight === 0) drained.resolve();
    });
    return requestListener(req, res);
  };

  const servers: Server[] = [];
  const sockets = new Set<Duplex>();
  const addresses = options.listen.map((address) => ({
    address,
    parsed: parseApiAddress(address, { tls: options.tls !== undefined }),
  }));
  // Read once, before anything listens: a missing file stops the daemon with its name.
  const tlsOptions = options.tls && addresses.some((a) => a.parsed.kind === "tcp")
    ? await readTlsFiles(options.tls)
    : undefined;
  for (const { address, parsed } of addresses) {
    let server: Server;
    if (parsed.kind === "unix") {
      await Deno.remove(parsed.path).catch(() => {});
      server = createServer(listener);
    } else if (tlsOptions) {
      // node:https emits `upgrade` with the TLS socket, as node:http does with the plain one.
      server = createTlsServer(tlsOptions, listener) as unknown as Server;
      // A refused client certificate ends here: the handshake fails and nothing is served.
      server.on(
        "tlsClientError",
        (err: Error, socket: { remoteAddress?: string }) =>
          log.info("TLS handshake refused", { address, client: socket.remoteAddress, error: err }),
      );
    } else if (options.insecureTcp) {
      server = createServer(listener);
    } else {
      throw new Error(`refusing to serve ${address} without TLS`);
    }
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      // A client that leaves before the answer (EPIPE, ECONNRESET) must not take the daemon
      // with it: node:http leaves an upgraded socket's errors to us, unhandled they throw.
      socket.on("error", (err: Error) => log.debug("upgraded connection failed", { error: err }));
      handleUpgrade(app, { req, socket, head, log }).catch((err) => {
        log.error("upgraded request failed", { error: err });
        socket.destroy();
      });
    });
    server.on("connection", (socket: Duplex) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await listen(server, parsed);
    servers.push(server);
    if (parsed.kind === "unix") {
      await Deno.chmod(parsed.path, 0o660);
      if (gid) await Deno.chown(parsed.path, null, gid);
      log.info("API listening", { address });
    } else if (tlsOptions) {
      log.info("API listening", { address, tls: 1, verify: options.tls?.verify ? 1 : 0 });
      if (!options.tls?.verify) {
        log.warn("API on TCP without --tlsverify: any client that reaches it is root here", {
          address,
        });
      }
    } else {
      log.warn(
        "!!! API LISTENING ON TCP WITHOUT TLS (--insecure-tcp): anyone who can reach this " +
          "address is root on this host, and everything it sends travels in the clear !!!",
        { address },
      );
    }
  }

  return {
    activity: () => ({ served, inFlight }),
    async close() {
      draining = true;
      const closed = Promise.all(servers.map((server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
        })
      ));
      if (inFlight > 0) {
        log.info("waiting for API requests in flight", { requests: inFlight });
        const timeoutMs = options.drainTimeoutMs ?? 15_000;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const finished = await Promise.race([
          new Promise<boolean>((resolve) => (drained.resolve = () => resolve(true))),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
        ]);
        clearTimeout(timer);
        if (!finished) log.warn("API requests still running cut off", { requests: inFlight });
      }
      // A server closes once its connections are gone, and hijacked streams never end on
      // their own: end them first.
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** Starts `server` listening on `address`; rejects on failure (address in use, ...). */
function listen(server: Server, address: ApiAddress): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (address.kind === "unix") server.listen(address.path, done);
    else server.listen(address.port, address.host, done);
  });
}

/** Reads the TLS files into node:https options. */
async function readTlsFiles(tls: ServerTls) {
  const read = (what: string, path: string) =>
    Deno.readTextFile(path).catch((err) => {
      throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`);
    });
  const ca = tls.ca ? await read("CA certificate", tls.ca) : undefined;
  if (tls.verify && !ca) throw new Error("TLS client verification needs a CA certificate");
  return {
    cert: await read("certificate", tls.cert),
    key: await read("key", tls.key),
    ...(ca ? { ca } : {}),
    requestCert: tls.verify,
    rejectUnauthorized: tls.verify,
    minVersion: "TLSv1.2" as const,
    // Attach and exec clients half-close to end stdin and still read the output (node:https
    // would end the connection at the half-close; node:http keeps it open).
    allowHalfOpen: true,
  };
}

/** Bodies of upgraded requests (exec start's small JSON) are read whole, so they are capped. */
const MAX_UPGRADE_BODY = 1024 * 1024;

/** Runs an `Upgrade: tcp` request through the app with the socket to take over. */
async function handleUpgrade(
  app: Hono<ApiEnv>,
  options: { req: IncomingMessage; socket: Duplex; head: Uint8Array; log: Logger },
): Promise<void> {
  const { req, socket, head, log } = options;
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(key, value);
    else if (Array.isArray(value)) { for (const v of value) headers.append(key, v); }
  }
  // The request's body (exec start's JSON): Deno's node:http hands one that came in the same
  // packet as the head to `req`, and leaves one that came later on the socket.
  const length = Number(req.headers["content-length"] ?? 0) || 0;
  if (length > MAX_UPGRADE_BODY) {
    const message = JSON.stringify({ message: "request body too large" });
    socket.end(
      `HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${message.length}\r\nConnection: close\r\n\r\n${message}`,
    );
    return;
  }
  let buffered = head;
  if (length > 0 && req.complete) {
    for await (const chunk of req) buffered = concat(buffered, chunk as Uint8Array);
  }
  let paused = false;
  while (buffered.length < length) {
    paused = true;
    const more = await readChunk(socket);
    if (more === null) break;
    buffered = concat(buffered, more);
  }
  const requestBody = buffered.slice(0, length);
  const request = new Request(`http://localhost${req.url ?? "/"}`, {
    method: req.method,
    headers,
    body: length > 0 && req.method !== "GET" && req.method !== "HEAD" ? requestBody : undefined,
  });
  const response = await app.fetch(request, {
    hijack: { socket, head: buffered.subarray(length) },
  });
  log.debug("request", { method: req.method, path: req.url, status: response.status, upgrade: 1 });
  // The route has its listeners on the socket by now: let the bytes flow again.
  if (paused) socket.resume();
  if (response.headers.get(HIJACKED)) return;
  // The route refused before taking the connection: answer as plain HTTP and close.
  const body = new Uint8Array(await response.arrayBuffer());
  let head_ = `HTTP/1.1 ${response.status} ${response.statusText || "Error"}\r\n`;
  response.headers.forEach((value, key) => (head_ += `${key}: ${value}\r\n`));
  head_ += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  socket.write(head_);
  socket.end(body);
}

/** Reads one chunk from a socket, leaving it paused; null at its end. */
function readChunk(socket: Duplex): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const done = (chunk: Uint8Array | null) => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.pause();
      resolve(chunk);
    };
    const onData = (chunk: Uint8Array) => done(chunk);
    const onEnd = () => done(null);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.resume();
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

/**
 * Whether a request streams until its client leaves (`/events`, `logs?follow=1`, `stats`
 * without `stream=0`): a shutdown does not wait for those, as they never finish on their own.
 */
export function endlessStream(method: string | undefined, url: string | undefined): boolean {
  if (method !== "GET" || !url) return false;
  const { pathname, searchParams } = new URL(url, "http://pouch");
  const yes = (key: string, byDefault: boolean) => {
    const value = searchParams.get(key);
    if (value === null || value === "") return byDefault;
    return !["0", "false", "no", "none"].includes(value.toLowerCase());
  };
  if (/\/events$/.test(pathname)) return true;
  if (/\/containers\/[^/]+\/logs$/.test(pathname)) return yes("follow", false);
  if (/\/containers\/[^/]+\/stats$/.test(pathname)) return yes("stream", true);
  return false;
}

/** The gid of group `name` from /etc/group; undefined when there is no such group. */
export async function groupId(name: string): Promise<number | undefined> {
  const text = await Deno.readTextFile("/etc/group").catch(() => "");
  for (const line of text.split("\n")) {
    const [group, , gid] = line.split(":");
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return /^\d+$/.test(name) ? Number(name) : undefined;
}

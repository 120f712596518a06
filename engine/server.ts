/**
 * The API server: our own HTTP/1.1 server (`http1.ts`) on unix sockets and TCP (Deno.serve
 * cannot hand a connection over, which attach and exec need), handing requests to the Hono app
 * and upgraded connections to the same app with the connection in its environment. TCP is served
 * over TLS (node:tls, loaded only then), with client certificates required when `verify` is set
 * (dockerd's `--tlsverify`); in the clear only when forced.
 *
 * @module
 */
import type { Hono } from "hono";
import { type ApiEnv, HIJACKED } from "./api/mod.ts";
import { type ApiAddress, parseApiAddress } from "./config.ts";
import { type ByteConn, serveHttp1 } from "./http1.ts";
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
  // Requests in flight, which close() lets finish; once draining, new requests on kept-alive
  // connections are refused so that the drain ends.
  let inFlight = 0;
  let served = 0;
  let draining = false;
  const drained = { resolve: () => {} };
  const debug = log.enabled("debug");
  const handler = async (request: Request, upgrade: ApiEnv["Bindings"]) => {
    if (draining) {
      return Response.json({ message: "the daemon is shutting down" }, {
        status: 503,
        headers: { connection: "close" },
      });
    }
    const started = debug ? performance.now() : 0;
    const response = await app.fetch(request, upgrade);
    if (debug) {
      log.debug("request", {
        method: request.method,
        path: new URL(request.url).pathname,
        status: response.status,
        ms: (performance.now() - started).toFixed(1),
        ...(upgrade.hijack ? { upgrade: 1 } : {}),
      });
    }
    return response;
  };
  // A request is in flight until its answer is written (endless streams are not counted).
  const track = (request: Request) => {
    if (draining || endlessStream(request.method, request.url)) return undefined;
    inFlight++;
    return () => {
      served++;
      if (--inFlight === 0) drained.resolve();
    };
  };

  const listeners: Array<{ close(): void }> = [];
  const connections = new Set<ByteConn>();
  const serve = (conn: ByteConn) => {
    // Tracked until closed, by the server or by the route that took it over.
    const tracked: ByteConn = {
      read: (buffer) => conn.read(buffer),
      write: (bytes) => conn.write(bytes),
      closeWrite: () => conn.closeWrite(),
      close: () => {
        if (!connections.delete(tracked)) return;
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      },
    };
    connections.add(tracked);
    void serveHttp1(tracked, (request, hijack) => handler(request, hijack ? { hijack } : {}), {
      hijackedHeader: HIJACKED,
      track,
      onError: (err) => log.debug("API connection failed", { error: err }),
    });
  };
  const addresses = options.listen.map((address) => ({
    address,
    parsed: parseApiAddress(address, { tls: options.tls !== undefined }),
  }));
  // Read once, before anything listens: a missing file stops the daemon with its name.
  const tlsOptions = options.tls && addresses.some((a) => a.parsed.kind === "tcp")
    ? await readTlsFiles(options.tls)
    : undefined;
  try {
    for (const { address, parsed } of addresses) {
      if (parsed.kind === "unix") {
        await Deno.remove(parsed.path).catch(() => {});
        const listener = Deno.listen({ transport: "unix", path: parsed.path });
        listeners.push(listener);
        acceptLoop(listener, serve);
        await Deno.chmod(parsed.path, 0o660);
        if (gid) await Deno.chown(parsed.path, null, gid);
        log.info("API listening", { address });
      } else if (tlsOptions) {
        listeners.push(
          await listenTls(
            parsed,
            tlsOptions,
            serve,
            (client, err) => log.info("TLS handshake refused", { address, client, error: err }),
          ),
        );
        log.info("API listening", { address, tls: 1, verify: options.tls?.verify ? 1 : 0 });
        if (!options.tls?.verify) {
          log.warn("API on TCP without --tlsverify: any client that reaches it is root here", {
            address,
          });
        }
      } else if (options.insecureTcp) {
        const listener = Deno.listen({
          transport: "tcp",
          hostname: parsed.host,
          port: parsed.port,
        });
        listeners.push(listener);
        acceptLoop(listener, serve);
        log.warn(
          "!!! API LISTENING ON TCP WITHOUT TLS (--insecure-tcp): anyone who can reach this " +
            "address is root on this host, and everything it sends travels in the clear !!!",
          { address },
        );
      } else {
        throw new Error(`refusing to serve ${address} without TLS`);
      }
    }
  } catch (err) {
    for (const listener of listeners) listener.close();
    throw err;
  }

  return {
    activity: () => ({ served, inFlight }),
    async close() {
      draining = true;
      for (const listener of listeners) {
        try {
          listener.close();
        } catch {
          // Already closed.
        }
      }
      if (inFlight > 0) {
        log.info("waiting for API requests in flight", { requests: inFlight });
        const timeoutMs = options.drainTimeoutMs ?? 15_000;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const finished = await Promise.race([
          new Promise<boolean>((resolve) => (drained.resolve = () => resolve(true))),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
        ]);
        clearTimeout(timer);
        if (!finished) {
          log.warn("API requests still running cut off", { requests: inFlight });
        }
      }
      // Hijacked streams never end on their own: end them, with the idle connections.
      for (const conn of connections) conn.close();
    },
  };
}

/** Accepts connections until the listener closes. */
async function acceptLoop(listener: Deno.Listener, serve: (conn: ByteConn) => void) {
  while (true) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch {
      return;
    }
    // Small answers go out at once rather than waiting for more to fill a packet.
    if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
    serve(conn);
  }
}

/** The PEM files of the TLS server, read. */
interface TlsFiles {
  cert: string;
  key: string;
  ca?: string;
  verify: boolean;
}

async function readTlsFiles(tls: ServerTls): Promise<TlsFiles> {
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
    verify: tls.verify,
  };
}

/** Listens with TLS on `address`; node:tls is loaded only here. */
async function listenTls(
  address: Extract<ApiAddress, { kind: "tcp" }>,
  files: TlsFiles,
  serve: (conn: ByteConn) => void,
  refused: (client: string | undefined, err: Error) => void,
): Promise<{ close(): void }> {
  const { listenTls } = await import("./_tls_server.ts");
  return await listenTls({ host: address.host, port: address.port, ...files }, serve, refused);
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

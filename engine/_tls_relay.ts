/**
 * HTTPS without certificate verification for one registry host, as Docker does for a registry
 * listed in `--insecure-registries` (Go's `InsecureSkipVerify`).
 *
 * Deno's fetch cannot skip verification per client. Trusting the server's own certificate
 * (`Deno.createHttpClient({ caCerts: [pem] })`) is not enough: rustls refuses a self-signed
 * certificate that says `CA:TRUE` (what `openssl req -x509` makes by default, and Docker's
 * documented recipe) with `CaUsedAsEndEntity`, a certificate signed by a CA the server does not
 * send, and one whose names do not match the host. So the daemon relays instead: fetch speaks
 * plain HTTP to a unix socket of the daemon's own (the HTTP client's proxy), and each connection
 * on it is carried to the registry over TLS made by `node:tls` with `rejectUnauthorized: false`.
 * The registry still sees TLS, so the URLs it writes (upload locations) say `https://`.
 *
 * @module
 */
import { createServer, type Server, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** How long the TLS handshake with the registry may take. */
const CONNECT_TIMEOUT_MS = 30_000;

/** A relay to one `HOST:PORT` and the HTTP client whose requests go through it. */
export class TlsRelay {
  /** The HTTP client to send `http://HOST:PORT/...` requests with. */
  readonly client: Deno.HttpClient;
  #server: Server;
  #dir: string;
  #sockets = new Set<Socket>();

  private constructor(server: Server, dir: string, client: Deno.HttpClient) {
    this.#server = server;
    this.#dir = dir;
    this.client = client;
  }

  /**
   * Starts a relay to `host` (`name[:port]`, port 443 by default) on a unix socket in a new
   * temp directory (mode 0700, so only the daemon's user can use it).
   */
  static async start(host: string): Promise<TlsRelay> {
    const { hostname, port } = splitHost(host);
    const dir = await Deno.makeTempDir({ prefix: "pouch-tls-" });
    const path = `${dir}/relay.sock`;
    const sockets = new Set<Socket>();
    const server = createServer((local) => {
      const remote = tlsConnect({
        host: hostname,
        port,
        // SNI carries names only, never IP addresses (RFC 6066).
        ...(/^[\d.]+$|:/.test(hostname) ? {} : { servername: hostname }),
        rejectUnauthorized: false,
        timeout: CONNECT_TIMEOUT_MS,
      });
      sockets.add(local);
      sockets.add(remote);
      const close = () => {
        local.destroy();
        remote.destroy();
        sockets.delete(local);
        sockets.delete(remote);
      };
      remote.on("timeout", close);
      // Once connected, an idle connection is the HTTP client's to keep or drop.
      remote.on("secureConnect", () => remote.setTimeout(0));
      local.on("error", close).on("close", close);
      remote.on("error", close).on("close", close);
      local.pipe(remote).pipe(local);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
    const relay = new TlsRelay(server, dir, client);
    relay.#sockets = sockets;
    return relay;
  }

  /** Closes the client, the listener and every relayed connection, and removes the socket. */
  async close(): Promise<void> {
    this.client.close();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** `name`, `name:port`, `[v6]:port` -> hostname and port (443 when none is given). */
function splitHost(host: string): { hostname: string; port: number } {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  if (bracket) return { hostname: bracket[1]!, port: Number(bracket[2] ?? 443) };
  const colon = host.lastIndexOf(":");
  if (colon < 0) return { hostname: host, port: 443 };
  return { hostname: host.slice(0, colon), port: Number(host.slice(colon + 1)) };
}

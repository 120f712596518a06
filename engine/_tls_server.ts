/**
 * The API's TLS listener: node:tls (Deno's own TLS listener cannot ask for client certificates,
 * which `--tlsverify` needs), its sockets adapted to the byte connections the HTTP/1.1 server
 * speaks over. Imported only when the daemon listens on TCP with TLS.
 *
 * @module
 */
import { createServer, type TLSSocket } from "node:tls";
import type { ByteConn } from "./http1.ts";

/** What {@link listenTls} needs: where, and the PEM texts. */
export interface TlsListenOptions {
  host: string;
  port: number;
  cert: string;
  key: string;
  ca?: string;
  /** Require a client certificate signed by `ca`. */
  verify: boolean;
}

/** Listens on `options.host:port`; each accepted TLS connection goes to `serve`. */
export function listenTls(
  options: TlsListenOptions,
  serve: (conn: ByteConn) => void,
  refused: (client: string | undefined, err: Error) => void,
): Promise<{ close(): void }> {
  const server = createServer({
    cert: options.cert,
    key: options.key,
    ...(options.ca ? { ca: options.ca } : {}),
    requestCert: options.verify,
    rejectUnauthorized: options.verify,
    minVersion: "TLSv1.2",
    // Attach and exec clients half-close to end stdin and still read the output.
    allowHalfOpen: true,
  }, (socket: TLSSocket) => serve(new TlsConn(socket)));
  // A refused client certificate ends here: the handshake fails and nothing is served.
  server.on(
    "tlsClientError",
    (err: Error, socket: { remoteAddress?: string }) => refused(socket.remoteAddress, err),
  );
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve({ close: () => server.close() });
    });
  });
}

/** A TLS socket as a byte connection: reads from a queue the socket fills, paused when full. */
class TlsConn implements ByteConn {
  static readonly #HIGH_WATER = 256 * 1024;
  #socket: TLSSocket;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= TlsConn.#HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#failure = err;
      this.#notify();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#queue.length === 0) {
      if (this.#failure) throw this.#failure;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
    const first = this.#queue[0]!;
    const count = Math.min(buffer.length, first.length);
    buffer.set(first.subarray(0, count));
    if (count === first.length) this.#queue.shift();
    else this.#queue[0] = first.subarray(count);
    this.#queued -= count;
    if (this.#queued < TlsConn.#HIGH_WATER) this.#socket.resume();
    return count;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (err?: Error | null) => err ? reject(err) : resolve(bytes.length));
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  close(): void {
    this.#socket.destroy();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

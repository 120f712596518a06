/**
 * A small HTTP/1.1 server for the API: requests in, web `Request`s to a handler, `Response`s out,
 * over any byte connection (a `Deno.Conn` on a unix or TCP socket, or a TLS socket adapted to it).
 *
 * The API used node:http, whose compatibility layer cost the daemon about 5 MB of memory and a
 * JavaScript stream stack per request. `Deno.serve` cannot be used: attach and exec take over
 * their connection (`Upgrade: tcp`), which it cannot hand out. What is here is what the Docker
 * CLI, curl and the other Moby clients use: keep-alive, `Content-Length` and chunked bodies both
 * ways, `Upgrade` with the connection handed to the route, and a client that leaves while a
 * response streams (`logs -f`, `events`) ends that response.
 *
 * @module
 */

import type { HijackSocket } from "./api/http.ts";
import { concatBytes } from "./logs.ts";

/** A connection the server speaks over. */
export interface ByteConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** A connection handed to a route: its socket and the bytes that came after the request. */
export interface HandedOver {
  socket: HijackSocket;
  head: Uint8Array;
}

/**
 * Answers one request. `upgrade` is set for `Upgrade` requests: a route that takes the
 * connection answers with a response carrying `hijackedHeader`, and the server leaves the
 * connection to it.
 */
export type Http1Handler = (
  request: Request,
  upgrade: HandedOver | undefined,
) => Response | Promise<Response>;

/** Options of {@link serveHttp1}. */
export interface Http1Options {
  /** The response header by which a route says it took the connection. */
  hijackedHeader: string;
  /** Told of a connection that failed (a client that left, a malformed request). */
  onError?: (err: unknown) => void;
  /**
   * Called as an ordinary request comes in; what it returns is called once its answer is
   * written or has failed (for counting the requests in flight).
   */
  track?: (request: Request) => (() => void) | undefined;
}

const MAX_HEAD = 64 * 1024;
/** Bodies of `Upgrade` requests (exec start's small JSON) are read whole, so they are capped. */
const MAX_UPGRADE_BODY = 1024 * 1024;
/** A body the route left unread is skipped to keep the connection, up to this much. */
const MAX_DRAIN = 1024 * 1024;
const READ_SIZE = 64 * 1024;
/**
 * Reads for a request head, and on an idle keep-alive connection, are small: each open
 * connection holds its pending read's buffer, and 200 idle ones held 25 MB with 64 KB reads.
 */
const HEAD_READ_SIZE = 4 * 1024;
const EMPTY = new Uint8Array(0);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request the server refuses before the app sees it. */
class BadRequest extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Serves requests on `conn` until the client closes it (or the route takes it); never throws. */
export async function serveHttp1(
  conn: ByteConn,
  handler: Http1Handler,
  options: Http1Options,
): Promise<void> {
  const reader = new ConnReader(conn);
  let handedOver = false;
  try {
    while (true) {
      let head: Uint8Array | null;
      try {
        head = await reader.readHead();
        if (head === null) return;
        const request = parseHead(head);
        if (request.upgrade) {
          handedOver = await serveUpgrade(conn, reader, request, handler, options);
          return;
        }
        if (!await serveOne(conn, reader, request, handler, options.track)) return;
      } catch (err) {
        if (err instanceof BadRequest) {
          await writeAll(conn, plainResponse(err.status, err.message)).catch(() => {});
        }
        throw err;
      }
    }
  } catch (err) {
    options.onError?.(err);
  } finally {
    if (!handedOver) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}

interface ParsedHead {
  method: string;
  target: string;
  headers: Headers;
  keepAlive: boolean;
  upgrade: boolean;
  /** `chunked`, a length, or none (0). */
  body: "chunked" | number;
}

function parseHead(bytes: Uint8Array): ParsedHead {
  const lines = decoder.decode(bytes).split("\r\n");
  const match = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? "");
  if (!match) throw new BadRequest(400, `malformed request line`);
  const [, method, rawTarget, minor] = match as unknown as [string, string, string, string];
  // The absolute form (`GET http://host/path`), which clients that see the socket as a proxy
  // send, names the same resource as the origin form.
  let target = rawTarget;
  if (/^https?:\/\//i.test(rawTarget)) {
    try {
      const url = new URL(rawTarget);
      target = url.pathname + url.search;
    } catch {
      throw new BadRequest(400, "malformed request target");
    }
  } else if (!rawTarget.startsWith("/")) {
    throw new BadRequest(400, "malformed request target");
  }
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new BadRequest(400, "malformed header line");
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      throw new BadRequest(400, "malformed header");
    }
  }
  const connection = (headers.get("connection") ?? "").toLowerCase();
  const keepAlive = minor === "1"
    ? !connection.includes("close")
    : connection.includes("keep-alive");
  const upgrade = connection.includes("upgrade") && headers.has("upgrade");
  let body: "chunked" | number = 0;
  const encoding = headers.get("transfer-encoding");
  if (encoding !== null) {
    if (encoding.toLowerCase() !== "chunked") {
      throw new BadRequest(501, `transfer encoding ${encoding} is not supported`);
    }
    body = "chunked";
  } else if (headers.has("content-length")) {
    const length = headers.get("content-length")!;
    if (!/^\d+$/.test(length)) throw new BadRequest(400, "malformed Content-Length");
    body = Number(length);
  }
  return { method, target, headers, keepAlive, upgrade, body };
}

/** Serves one ordinary request; resolves whether the connection can take another. */
async function serveOne(
  conn: ByteConn,
  reader: ConnReader,
  head: ParsedHead,
  handler: Http1Handler,
  track: Http1Options["track"],
): Promise<boolean> {
  const body = new BodyReader(reader, head.body);
  const abort = new AbortController();
  const hasBody = head.method !== "GET" && head.method !== "HEAD" && !body.done;
  const request = new Request(`http://localhost${head.target}`, {
    method: head.method,
    headers: head.headers,
    body: hasBody ? body.stream() : undefined,
    signal: abort.signal,
  });
  if (hasBody && head.headers.get("expect")?.toLowerCase() === "100-continue") {
    // curl waits a second for this before it sends a large body.
    await writeAll(conn, encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
  }
  const tracked = track?.(request);
  let settled = false;
  const answered = () => {
    if (settled) return;
    settled = true;
    tracked?.();
  };
  try {
    return await answer(conn, reader, { head, request, body, abort, handler, answered });
  } finally {
    answered();
  }
}

async function answer(
  conn: ByteConn,
  reader: ConnReader,
  call: {
    head: ParsedHead;
    request: Request;
    body: BodyReader;
    abort: AbortController;
    handler: Http1Handler;
    /** Called once the answer is written, before waiting for the connection's next request. */
    answered: () => void;
  },
): Promise<boolean> {
  const { head, request, body, abort, handler } = call;
  let response: Response;
  try {
    response = await handler(request, undefined);
  } catch (err) {
    response = new Response(JSON.stringify({ message: String(err) }), { status: 500 });
  }
  // A client that leaves while the answer streams ends it: watch for the end of the
  // connection once the request's body is read (what comes earlier is a pipelined request).
  let gone = false;
  const watch = body.done
    ? reader.watch().then((open) => {
      if (!open) {
        gone = true;
        abort.abort(new Error("the client closed the connection"));
      }
    })
    : undefined;
  const keepAlive = head.keepAlive;
  try {
    await writeResponse(conn, response, {
      head: head.method === "HEAD",
      keepAlive,
      signal: abort.signal,
    });
  } catch (err) {
    abort.abort(err);
    throw err;
  }
  call.answered();
  if (!keepAlive || gone) return false;
  await watch;
  if (gone) return false;
  if (await body.drain(MAX_DRAIN)) return true;
  await lingeringClose(conn);
  return false;
}

/** How long a connection closed with its request's body unread keeps taking the body in. */
const LINGER_MS = 1000;

/**
 * Ends a connection whose client may still be sending a body the route did not read: closing
 * with unread bytes makes the kernel answer with a reset, which can reach the client before it
 * reads the answer already sent (it then sees a failed request, not the 400). So the server
 * half-closes, then reads and drops what still comes for a moment, as Go's net/http does.
 */
async function lingeringClose(conn: ByteConn): Promise<void> {
  await conn.closeWrite().catch(() => {});
  const scratch = new Uint8Array(READ_SIZE);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, LINGER_MS)));
  const discard = (async () => {
    try {
      while ((await conn.read(scratch)) !== null) { /* dropped */ }
    } catch {
      // Reset or closed: nothing more to take in.
    }
  })();
  await Promise.race([deadline, discard]);
  clearTimeout(timer);
}

/** Runs an `Upgrade` request; resolves whether the route took the connection. */
async function serveUpgrade(
  conn: ByteConn,
  reader: ConnReader,
  head: ParsedHead,
  handler: Http1Handler,
  options: Http1Options,
): Promise<boolean> {
  if (head.body === "chunked" || head.body > MAX_UPGRADE_BODY) {
    throw new BadRequest(413, "request body too large");
  }
  const body = await reader.readExactly(head.body);
  if (body === null) return false;
  const request = new Request(`http://localhost${head.target}`, {
    method: head.method,
    headers: head.headers,
    body: body.length > 0 && head.method !== "GET" && head.method !== "HEAD"
      ? body.slice()
      : undefined,
  });
  const socket = new ConnSocket(conn);
  const response = await handler(request, { socket, head: reader.takeBuffered() });
  if (response.headers.get(options.hijackedHeader)) {
    socket.start();
    return true;
  }
  // The route refused before taking the connection: answer as plain HTTP and close.
  await writeResponse(conn, response, { head: false, keepAlive: false });
  return false;
}

const REASONS: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/**
 * Writes `response`: the head goes out with the first piece of the body (clients such as the
 * Docker CLI wait for the head of a streaming answer), the body with its length when it came in
 * one piece and chunked otherwise.
 */
async function writeResponse(
  conn: ByteConn,
  response: Response,
  options: { head: boolean; keepAlive: boolean; signal?: AbortSignal },
): Promise<void> {
  const status = response.status;
  let head = `HTTP/1.1 ${status} ${response.statusText || REASONS[status] || "Unknown"}\r\n`;
  response.headers.forEach((value, key) => {
    if (key !== "content-length" && key !== "transfer-encoding" && key !== "connection") {
      head += `${key}: ${value}\r\n`;
    }
  });
  if (!options.keepAlive) head += "connection: close\r\n";
  const bodiless = options.head || status === 204 || status === 304 || response.body === null;
  if (bodiless) {
    await response.body?.cancel().catch(() => {});
    const length = options.head ? response.headers.get("content-length") : null;
    if (status !== 204 && status !== 304) head += `content-length: ${length ?? 0}\r\n`;
    await writeAll(conn, encoder.encode(head + "\r\n"));
    return;
  }
  const reader = response.body!.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const first = await reader.read();
    if (first.done) {
      await writeAll(conn, encoder.encode(`${head}content-length: 0\r\n\r\n`));
      return;
    }
    // A body that is whole at once (JSON answers) goes with its length.
    const secondRead = reader.read();
    const second = await Promise.race([secondRead, afterMicrotasks()]);
    if (second !== undefined && second.done) {
      const headBytes = encoder.encode(`${head}content-length: ${first.value.length}\r\n\r\n`);
      await writeAll(conn, concatBytes([headBytes, first.value]));
      return;
    }
    await writeAll(
      conn,
      concatBytes([
        encoder.encode(`${head}transfer-encoding: chunked\r\n\r\n`),
        chunk(first.value),
      ]),
    );
    let next = second ?? await secondRead;
    while (!next.done) {
      if (next.value.length > 0) await writeAll(conn, chunk(next.value));
      next = await reader.read();
    }
    await writeAll(conn, encoder.encode("0\r\n\r\n"));
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/** Resolves undefined after the promises already settled have had their turn. */
async function afterMicrotasks(): Promise<undefined> {
  for (let i = 0; i < 8; i++) await undefined;
  return undefined;
}

function chunk(bytes: Uint8Array): Uint8Array {
  return concatBytes([
    encoder.encode(`${bytes.length.toString(16)}\r\n`),
    bytes,
    encoder.encode("\r\n"),
  ]);
}

function plainResponse(status: number, message: string): Uint8Array {
  const body = JSON.stringify({ message });
  return encoder.encode(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\ncontent-type: application/json\r\n` +
      `content-length: ${encoder.encode(body).length}\r\nconnection: close\r\n\r\n${body}`,
  );
}

async function writeAll(conn: ByteConn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Buffered reads from a connection: request heads, exact byte counts, lines. */
class ConnReader {
  #conn: ByteConn;
  #buffer: Uint8Array = EMPTY;
  #eof = false;
  #pending: Promise<boolean> | undefined;

  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /**
   * Reads more (up to `size` bytes) into the buffer; false at the end of the connection. One
   * read at a time.
   */
  fill(size: number = READ_SIZE): Promise<boolean> {
    if (this.#eof) return Promise.resolve(false);
    this.#pending ??= (async () => {
      const space = new Uint8Array(size);
      try {
        const count = await this.#conn.read(space);
        if (count === null) {
          this.#eof = true;
          return false;
        }
        // A short read is copied out, so that what stays buffered does not pin the whole space.
        const got = count <= size / 4 ? space.slice(0, count) : space.subarray(0, count);
        this.#buffer = this.#buffer.length === 0 ? got : concatBytes([this.#buffer, got]);
        return true;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  /**
   * Resolves false when the connection ends (or fails) while nothing is to be read, true when
   * more bytes arrive; it does not consume them.
   */
  async watch(): Promise<boolean> {
    if (this.#buffer.length > 0) return true;
    try {
      return await this.fill(HEAD_READ_SIZE);
    } catch {
      return false;
    }
  }

  /** The next request head without its blank line; null at a clean end of the connection. */
  async readHead(): Promise<Uint8Array | null> {
    let searchFrom = 0;
    while (true) {
      const end = indexOfBlankLine(this.#buffer, searchFrom);
      if (end >= 0) {
        const head = this.#buffer.subarray(0, end);
        this.#advance(end + 4);
        return head;
      }
      if (this.#buffer.length > MAX_HEAD) {
        throw new BadRequest(431, "request head too large");
      }
      searchFrom = Math.max(0, this.#buffer.length - 3);
      if (!await this.fill(HEAD_READ_SIZE)) {
        if (this.#buffer.length === 0) return null;
        throw new BadRequest(400, "the connection ended inside a request head");
      }
    }
  }

  /** Exactly `count` bytes; null if the connection ends first. */
  async readExactly(count: number): Promise<Uint8Array | null> {
    while (this.#buffer.length < count) {
      if (!await this.fill()) return null;
    }
    const bytes = this.#buffer.subarray(0, count);
    this.#advance(count);
    return bytes;
  }

  /** Up to `max` bytes, reading only if nothing is buffered; null at the end. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#buffer.length === 0 && !await this.fill()) return null;
    const bytes = this.#buffer.subarray(0, Math.min(max, this.#buffer.length));
    this.#advance(bytes.length);
    return bytes;
  }

  /** A CRLF-terminated line (without it); null at the end. */
  async readLine(): Promise<string | null> {
    while (true) {
      const end = this.#buffer.indexOf(0x0a);
      if (end >= 0) {
        const line = decoder.decode(this.#buffer.subarray(0, end)).replace(/\r$/, "");
        this.#advance(end + 1);
        return line;
      }
      if (this.#buffer.length > MAX_HEAD) throw new BadRequest(400, "line too long");
      if (!await this.fill()) return null;
    }
  }

  /** Hands out what is buffered (for a connection taken over by a route). */
  takeBuffered(): Uint8Array {
    const bytes = this.#buffer;
    this.#buffer = EMPTY;
    return bytes;
  }

  /** Drops `count` consumed bytes; an emptied buffer lets go of the read it came from. */
  #advance(count: number): void {
    this.#buffer = count >= this.#buffer.length ? EMPTY : this.#buffer.subarray(count);
  }
}

function indexOfBlankLine(bytes: Uint8Array, from: number): number {
  for (let i = from; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** A request's body, by `Content-Length` or chunked, read from the connection on demand. */
class BodyReader {
  #reader: ConnReader;
  #remaining: number;
  #chunked: boolean;
  #done: boolean;

  constructor(reader: ConnReader, framing: "chunked" | number) {
    this.#reader = reader;
    this.#chunked = framing === "chunked";
    this.#remaining = framing === "chunked" ? 0 : framing;
    this.#done = framing !== "chunked" && framing === 0;
  }

  get done(): boolean {
    return this.#done;
  }

  /** The next piece of the body; null at its end. */
  async next(): Promise<Uint8Array | null> {
    if (this.#done) return null;
    if (this.#chunked && this.#remaining === 0) {
      const line = await this.#reader.readLine();
      if (line === null) throw new Error("the connection ended inside a chunked body");
      const size = parseInt(line.split(";")[0]!.trim(), 16);
      if (!Number.isFinite(size) || size < 0) throw new Error("malformed chunk size");
      if (size === 0) {
        // Trailers, up to the blank line.
        let trailer = await this.#reader.readLine();
        while (trailer !== null && trailer !== "") trailer = await this.#reader.readLine();
        this.#done = true;
        return null;
      }
      this.#remaining = size;
    }
    const bytes = await this.#reader.readSome(this.#remaining);
    if (bytes === null) throw new Error("the connection ended inside a request body");
    this.#remaining -= bytes.length;
    if (this.#chunked && this.#remaining === 0) {
      if (await this.#reader.readLine() !== "") throw new Error("malformed chunk end");
    }
    if (!this.#chunked && this.#remaining === 0) this.#done = true;
    // A copy: the buffer it came from is reused by later reads.
    return bytes.slice();
  }

  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const bytes = await this.next();
        if (bytes === null) controller.close();
        else controller.enqueue(bytes);
      },
    }, { highWaterMark: 0 });
  }

  /** Skips what is left of the body, up to `max` bytes; false if it is longer or broken. */
  async drain(max: number): Promise<boolean> {
    let skipped = 0;
    try {
      while (!this.#done) {
        const bytes = await this.next();
        if (bytes === null) break;
        skipped += bytes.length;
        if (skipped > max) return false;
      }
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * A connection taken over by a route, with the part of node's socket interface the routes use:
 * `write`/`end` (queued, in order) and `data`/`end`/`close`/`error` events.
 */
class ConnSocket implements HijackSocket {
  #conn: ByteConn;
  #writes: Promise<void> = Promise.resolve();
  #listeners = {
    data: [] as Array<(chunk: Uint8Array) => void>,
    end: [] as Array<() => void>,
    close: [] as Array<() => void>,
    error: [] as Array<(err: unknown) => void>,
  };
  #readEnded = false;
  #writeEnded = false;
  #closed = false;

  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  on(event: "data", listener: (chunk: Uint8Array) => void): void;
  on(event: "end" | "close", listener: () => void): void;
  on(event: "error", listener: (err: unknown) => void): void;
  on(event: "data" | "end" | "close" | "error", listener: (value: never) => void): void {
    (this.#listeners[event] as Array<(value: never) => void>).push(listener);
  }

  write(data: string | Uint8Array): void {
    if (this.#writeEnded || this.#closed) return;
    const bytes = typeof data === "string" ? encoder.encode(data) : data.slice();
    this.#writes = this.#writes.then(() => this.#closed ? undefined : writeAll(this.#conn, bytes))
      .catch((err) => this.#fail(err));
  }

  end(): void {
    if (this.#writeEnded || this.#closed) return;
    this.#writeEnded = true;
    this.#writes = this.#writes.then(async () => {
      if (this.#closed) return;
      if (this.#readEnded) this.#close();
      else await this.#conn.closeWrite();
    }).catch((err) => this.#fail(err));
  }

  /** Starts reading: the route has its listeners in place. */
  start(): void {
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(READ_SIZE);
    try {
      while (!this.#closed) {
        const count = await this.#conn.read(buffer);
        if (count === null) break;
        const bytes = buffer.slice(0, count);
        for (const listener of this.#listeners.data) listener(bytes);
      }
    } catch (err) {
      if (!this.#closed) this.#fail(err);
      return;
    }
    this.#readEnded = true;
    for (const listener of this.#listeners.end) listener();
    if (this.#writeEnded) await this.#writes.then(() => this.#close());
  }

  #fail(err: unknown): void {
    if (this.#closed) return;
    for (const listener of this.#listeners.error) listener(err);
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    for (const listener of this.#listeners.close) listener();
  }
}

/**
 * A small HTTP/1.1 client over a unix socket, TCP or TLS, enough for Docker's API: Content-Length, chunked
 * and read-until-close responses, streamed request bodies (chunked upload) and hijacked
 * connections (`Connection: Upgrade`, `Upgrade: tcp`). Each request uses its own connection.
 *
 * It loads nothing but Deno's own socket API (`Deno.connect`, `Deno.connectTls`), so the CLI
 * starts fast.
 *
 * @module
 */

/** Where bytes come from: `Deno.Conn`, `Deno.stdin` or a test double. */
export interface ByteSource {
  /** Reads into `p`; resolves to the count read, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** A request body: bytes, text, or a stream sent with `Transfer-Encoding: chunked`. */
export type RequestBody = Uint8Array | string | ReadableStream<Uint8Array>;

/** One HTTP request. */
export interface HttpRequest {
  /** `GET`, `POST`, ... */
  method: string;
  /** Path with its query string, e.g. `/v1.41/containers/json?all=1`. */
  path: string;
  /** Extra headers; `Host` and framing headers are added. */
  headers?: Record<string, string>;
  /** Body, if any. */
  body?: RequestBody;
}

/** A response whose body is read lazily. */
export interface HttpResponse {
  /** Status code, e.g. 200. */
  status: number;
  /** Reason phrase, e.g. `OK`. */
  statusText: string;
  /** Response headers. */
  headers: Headers;
  /** The body, de-chunked. */
  body: ReadableStream<Uint8Array>;
}

/** A hijacked connection: the raw socket, plus the bytes already read past the headers. */
export interface HijackedConnection {
  /** Status of the upgrade answer (101, or 200 from servers that do not say 101). */
  status: number;
  /** Response headers of the upgrade answer. */
  headers: Headers;
  /** Reads the server's side of the stream (buffered bytes first). */
  reader: BufferedReader;
  /** Writes to the server. */
  write(p: Uint8Array): Promise<void>;
  /** Half-closes the write side: the server sees end of stdin. */
  closeWrite(): Promise<void>;
  /** Closes the socket. */
  close(): void;
}

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Reads lines and exact byte counts from a {@link ByteSource}, keeping what it over-reads. */
export class BufferedReader {
  #source: ByteSource;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;

  /** Wraps `source`. */
  constructor(source: ByteSource) {
    this.#source = source;
  }

  /** Reads once more from the source into the buffer; false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await this.#source.read(chunk);
    } catch (err) {
      // A socket closed under us reads as end of stream.
      if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
        n = null;
      } else {
        throw err;
      }
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    if (this.#buf.length === 0) {
      this.#buf = chunk.subarray(0, n);
      return true;
    }
    const joined = new Uint8Array(this.#buf.length + n);
    joined.set(this.#buf);
    joined.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = joined;
    return true;
  }

  /** Reads one line ending in `\n` (without `\r\n`); null at end of stream before any byte. */
  async readLine(): Promise<string | null> {
    let searchFrom = 0;
    while (true) {
      const lf = this.#buf.indexOf(0x0a, searchFrom);
      if (lf >= 0) {
        const end = lf > 0 && this.#buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const line = latin1.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(lf + 1);
        return line;
      }
      searchFrom = this.#buf.length;
      if (!(await this.#fill())) {
        if (this.#buf.length === 0) return null;
        const line = latin1.decode(this.#buf);
        this.#buf = new Uint8Array(0);
        return line;
      }
    }
  }

  /** Reads exactly `n` bytes; throws if the stream ends first. */
  async readExactly(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) {
        throw new Error(`unexpected end of stream: wanted ${n} bytes, got ${this.#buf.length}`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Reads up to `max` bytes: what is buffered, or else one read; null at end of stream. */
  async readSome(max = 64 * 1024): Promise<Uint8Array | null> {
    if (this.#buf.length === 0 && !(await this.#fill())) return null;
    const n = Math.min(max, this.#buf.length);
    // A view, not a copy: the buffer's bytes are never written again (each read fills a new one).
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /**
   * The rest of the stream, piece by piece. Not a ReadableStream: Deno loads its web streams on
   * first use, ~2 ms of every `run` and `exec`.
   */
  async *chunks(): AsyncGenerator<Uint8Array> {
    while (true) {
      const chunk = await this.readSome();
      if (chunk === null) return;
      yield chunk;
    }
  }
}

/** Reads a body piece by piece: the next piece of data, or null at its end. */
type BodyPull = () => Promise<Uint8Array | null>;

/** Decodes a chunked body read from `reader` into a stream of its data. */
export function chunkedBody(reader: BufferedReader): ReadableStream<Uint8Array> {
  return streamOf(chunkedPull(reader));
}

function chunkedPull(reader: BufferedReader): BodyPull {
  let remaining = 0;
  let done = false;
  return async () => {
    if (done) return null;
    if (remaining === 0) {
      const sizeLine = await reader.readLine();
      if (sizeLine === null) throw new Error("unexpected end of chunked body");
      const size = parseInt(sizeLine.split(";")[0]!.trim(), 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size line: ${sizeLine}`);
      if (size === 0) {
        // Trailers, up to an empty line.
        while (true) {
          const line = await reader.readLine();
          if (line === null || line === "") break;
        }
        done = true;
        return null;
      }
      remaining = size;
    }
    const data = await reader.readSome(remaining);
    if (data === null) throw new Error("unexpected end of chunked body");
    remaining -= data.length;
    if (remaining === 0) await reader.readLine(); // the CRLF after the chunk data
    return data;
  };
}

/** A body of exactly `length` bytes. */
function fixedPull(reader: BufferedReader, length: number): BodyPull {
  let remaining = length;
  return async () => {
    if (remaining === 0) return null;
    const data = await reader.readSome(remaining);
    if (data === null) throw new Error("unexpected end of body");
    remaining -= data.length;
    return data;
  };
}

/** A stream of what `pull` reads; `end` runs once when it ended, failed or was cancelled. */
function streamOf(pull: BodyPull, end: () => void = () => {}): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      try {
        const data = await pull();
        if (data === null) {
          end();
          controller.close();
        } else {
          controller.enqueue(data);
        }
      } catch (err) {
        end();
        controller.error(err);
      }
    },
    cancel: end,
  });
}

/** A connected socket: `Deno.Conn` over unix or TCP, `Deno.TlsConn` over TLS. */
type Conn = Deno.Conn | Deno.TlsConn;

async function writeAllTo(conn: Conn, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) off += await conn.write(p.subarray(off));
}

function headBlock(req: HttpRequest, framing: Record<string, string>): Uint8Array {
  const lines = [`${req.method} ${req.path} HTTP/1.1`, "Host: pouch", "User-Agent: pouch-cli"];
  const all = { ...framing, ...req.headers };
  for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** Sends `req` on `conn`: headers, then the body (chunked when it is a stream). */
async function sendRequest(conn: Conn, req: HttpRequest, hijack: boolean): Promise<void> {
  const framing: Record<string, string> = {};
  if (hijack) {
    framing["Connection"] = "Upgrade";
    framing["Upgrade"] = "tcp";
  } else {
    framing["Connection"] = "close";
  }
  const body = typeof req.body === "string" ? encoder.encode(req.body) : req.body;
  // Not `instanceof ReadableStream`: naming that global loads Deno's streams (~2 ms).
  if (body !== undefined && !(body instanceof Uint8Array)) {
    framing["Transfer-Encoding"] = "chunked";
    await writeAllTo(conn, headBlock(req, framing));
    for await (const chunk of body) {
      if (chunk.length === 0) continue;
      await writeAllTo(conn, encoder.encode(chunk.length.toString(16) + "\r\n"));
      await writeAllTo(conn, chunk);
      await writeAllTo(conn, encoder.encode("\r\n"));
    }
    await writeAllTo(conn, encoder.encode("0\r\n\r\n"));
    return;
  }
  if (body !== undefined || req.method === "POST" || req.method === "PUT") {
    framing["Content-Length"] = String(body?.length ?? 0);
  }
  await writeAllTo(conn, headBlock(req, framing));
  if (body !== undefined && body.length > 0) await writeAllTo(conn, body);
}

/** A response's status line and header fields (names lower-cased), in order. */
interface Head {
  status: number;
  statusText: string;
  fields: Array<[string, string]>;
}

/**
 * Reads the status line and headers. Not into a `Headers`: naming that global loads Deno's
 * fetch code (~1 ms), which the buffered path does without.
 */
async function readHead(reader: BufferedReader): Promise<Head> {
  const statusLine = await reader.readLine();
  if (statusLine === null) throw new Error("server closed the connection without answering");
  const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
  if (!match) throw new Error(`malformed HTTP status line: ${JSON.stringify(statusLine)}`);
  const fields: Array<[string, string]> = [];
  while (true) {
    const line = await reader.readLine();
    if (line === null || line === "") break;
    const colon = line.indexOf(":");
    if (colon > 0) {
      fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
    }
  }
  return { status: Number(match[1]), statusText: match[2] ?? "", fields };
}

/** The value of header `name` (lower case), repeated fields joined as `Headers` joins them. */
function fieldOf(head: Head, name: string): string | null {
  const values = head.fields.filter(([key]) => key === name).map(([, value]) => value);
  return values.length === 0 ? null : values.join(", ");
}

/** The status and headers of an {@link HttpResponse}. */
function headOf(head: Head): { status: number; statusText: string; headers: Headers } {
  return { status: head.status, statusText: head.statusText, headers: new Headers(head.fields) };
}

/** How to read the body of a response, chosen by its framing headers. */
function responseBody(reader: BufferedReader, method: string, head: Head): BodyPull {
  const status = head.status;
  if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return fixedPull(reader, 0);
  }
  if ((fieldOf(head, "transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
    return chunkedPull(reader);
  }
  const length = fieldOf(head, "content-length");
  if (length !== null) return fixedPull(reader, Number(length));
  return () => reader.readSome();
}

/** Options of {@link httpRequest} and {@link httpHijack}: a unix socket or a TCP address. */
export type ConnectOptions =
  | {
    /** Path of the unix socket. */
    socketPath: string;
  }
  | {
    /** Host name or IP address of the daemon. */
    hostname: string;
    /** Its TCP port. */
    port: number;
    /** Speak TLS with these; plain TCP when absent. */
    tls?: ClientTls;
  };

/** The PEM texts of a TLS connection. */
export interface ClientTls {
  /** CAs the server's certificate must chain to; the system's roots when absent. */
  caCerts?: string[];
  /** The client's certificate, for daemons that require one (`--tlsverify`). */
  cert?: string;
  /** The client certificate's key. */
  key?: string;
}

/** Opens the connection that `options` describes. */
function connect(options: ConnectOptions): Promise<Conn> {
  if ("socketPath" in options) return Deno.connect({ transport: "unix", path: options.socketPath });
  const { hostname, port, tls } = options;
  if (!tls) return Deno.connect({ hostname, port });
  return Deno.connectTls({
    hostname,
    port,
    ...(tls.caCerts ? { caCerts: tls.caCerts } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  });
}

/**
 * Sends one request on a new connection and resolves once the response headers arrived; the
 * connection closes when the body has been read (or cancelled).
 */
export async function httpRequest(
  req: HttpRequest,
  options: ConnectOptions,
): Promise<HttpResponse> {
  const conn = await connect(options);
  try {
    const { head, pull } = await exchange(conn, req);
    let closed = false;
    const closeConn = () => {
      if (closed) return;
      closed = true;
      closeQuietly(conn);
    };
    return { ...headOf(head), body: streamOf(pull, closeConn) };
  } catch (err) {
    closeQuietly(conn);
    throw err;
  }
}

/** A response whose body is read whole, without web streams. */
export interface BufferedResponse {
  /** Status code, e.g. 200. */
  status: number;
  /** Reason phrase, e.g. `OK`. */
  statusText: string;
  /** Reads the whole body (de-chunked) and closes the connection; call it once. */
  bytes(): Promise<Uint8Array>;
  /** Closes the connection without reading the body. */
  close(): void;
}

/**
 * {@link httpRequest} for answers read whole (JSON): the body comes as one array, without web
 * streams, which a CLI run would otherwise load (~2 ms) and go through piece by piece.
 */
export async function httpRequestBuffered(
  req: HttpRequest,
  options: ConnectOptions,
): Promise<BufferedResponse> {
  const conn = await connect(options);
  try {
    const { head, pull } = await exchange(conn, req);
    const bytes = async () => {
      try {
        return await readAll(pull);
      } finally {
        closeQuietly(conn);
      }
    };
    return {
      status: head.status,
      statusText: head.statusText,
      bytes,
      close: () => closeQuietly(conn),
    };
  } catch (err) {
    closeQuietly(conn);
    throw err;
  }
}

async function readAll(pull: BodyPull): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  let size = 0;
  for (let piece = await pull(); piece !== null; piece = await pull()) {
    pieces.push(piece);
    size += piece.length;
  }
  if (pieces.length === 1) return pieces[0]!;
  const whole = new Uint8Array(size);
  let offset = 0;
  for (const piece of pieces) {
    whole.set(piece, offset);
    offset += piece.length;
  }
  return whole;
}

/** Sends `req` and reads the response's head; answers how to read its body. */
async function exchange(
  conn: Conn,
  req: HttpRequest,
): Promise<{ head: Head; pull: BodyPull }> {
  await sendRequest(conn, req, false);
  const reader = new BufferedReader(conn);
  const head = await readHead(reader);
  return { head, pull: responseBody(reader, req.method, head) };
}

function closeQuietly(conn: Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * Sends a request asking to hijack the connection (`Upgrade: tcp`). A 101 or 2xx answer hands
 * back the raw socket; any other status is returned as an ordinary response.
 */
export async function httpHijack(
  req: HttpRequest,
  options: ConnectOptions,
): Promise<HijackedConnection | HttpResponse> {
  const conn = await connect(options);
  try {
    await sendRequest(conn, req, true);
    const reader = new BufferedReader(conn);
    const head = await readHead(reader);
    if (head.status !== 101 && (head.status < 200 || head.status >= 300)) {
      const text = await new Response(
        streamOf(responseBody(reader, req.method, head)),
      ).arrayBuffer();
      conn.close();
      return { ...headOf(head), body: new Response(text).body ?? new ReadableStream() };
    }
    let closed = false;
    return {
      status: head.status,
      // Built when asked for: naming `Headers` loads Deno's fetch code (~1.5 ms of a `run`).
      get headers() {
        return headOf(head).headers;
      },
      reader,
      write: (p) => writeAllTo(conn, p),
      closeWrite: () => conn.closeWrite(),
      close: () => {
        if (closed) return;
        closed = true;
        try {
          conn.close();
        } catch { /* already closed */ }
      },
    };
  } catch (err) {
    try {
      conn.close();
    } catch { /* already closed */ }
    throw err;
  }
}

/** True when `x` is a hijacked connection rather than an ordinary response. */
export function isHijacked(x: HijackedConnection | HttpResponse): x is HijackedConnection {
  return "reader" in x;
}

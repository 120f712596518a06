/**
 * SPDY/3.1 framing, as Kubernetes' streaming clients (crictl, the kubelet's proxy, kubectl
 * through the API server) speak it after an `Upgrade: SPDY/3.1` handshake: control frames
 * (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and data
 * frames on streams the client opens; header blocks compressed with one zlib context per
 * direction, primed with the SPDY/3 dictionary.
 *
 * Flow control is not enforced in either direction, as the Go implementation the clients use
 * (moby/spdystream) does not enforce it either.
 *
 * @module
 */
import zlib from "node:zlib";

/** SPDY's control frame types. */
const TYPE = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;
const FLAG_FIN = 0x01;
/** Data frames are split to this size (SPDY allows 16 MiB). */
const MAX_DATA = 32 * 1024;
/** A frame longer than this is refused: header blocks and our peers' data are small. */
const MAX_FRAME = 16 * 1024 * 1024;

/**
 * The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): the words below, each
 * preceded by its length as a 32-bit big-endian number, followed by the tail as is.
 */
export const SPDY_DICTIONARY: Uint8Array = (() => {
  const words = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
  ];
  const codes = "100101201202205206300302303304305306307402405406407408409410411412413414415" +
    "416417502504505";
  const statuses = "203 Non-Authoritative Information204 No Content301 Moved Permanently" +
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error" +
    "501 Not Implemented503 Service Unavailable";
  const dates = "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 " +
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT";
  const values = "chunked,text/html,image/png,image/jpg,image/gif,application/xml," +
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch" +
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
  const encoder = new TextEncoder();
  const parts: number[] = [];
  for (const word of words) {
    parts.push(0, 0, 0, word.length, ...encoder.encode(word));
  }
  parts.push(...encoder.encode(codes + statuses + dates + values));
  return new Uint8Array(parts);
})();

/** Header names (lower case) to their values. */
export type SpdyHeaders = Record<string, string[]>;

/** Encodes a header block (before compression): counts and lengths as 32-bit numbers. */
export function encodeHeaderBlock(headers: SpdyHeaders): Uint8Array {
  const encoder = new TextEncoder();
  const entries = Object.entries(headers);
  const chunks: Uint8Array[] = [u32(entries.length)];
  for (const [name, values] of entries) {
    const key = encoder.encode(name.toLowerCase());
    const value = encoder.encode(values.join("\0"));
    chunks.push(u32(key.length), key, u32(value.length), value);
  }
  return concat(chunks);
}

/** Decodes a header block (after decompression). */
export function decodeHeaderBlock(block: Uint8Array): SpdyHeaders {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const decoder = new TextDecoder();
  const headers: SpdyHeaders = {};
  let at = 0;
  const take = () => {
    if (at + 4 > block.length) throw new Error("truncated SPDY header block");
    const length = view.getUint32(at);
    at += 4;
    if (at + length > block.length) throw new Error("truncated SPDY header block");
    const text = decoder.decode(block.subarray(at, at + length));
    at += length;
    return text;
  };
  if (block.length < 4) throw new Error("truncated SPDY header block");
  const count = view.getUint32(0);
  at = 4;
  for (let i = 0; i < count; i++) {
    const name = take().toLowerCase();
    headers[name] = take().split("\0");
  }
  return headers;
}

/** One direction's zlib context: every block is flushed whole (Z_SYNC_FLUSH), in order. */
class HeaderCodec {
  readonly #stream: zlib.Deflate | zlib.Inflate;
  #chunks: Uint8Array[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  #failed: Error | undefined;

  constructor(kind: "compress" | "decompress") {
    this.#stream = kind === "compress"
      ? zlib.createDeflate({ dictionary: SPDY_DICTIONARY, level: 9 })
      : zlib.createInflate({ dictionary: SPDY_DICTIONARY });
    this.#stream.on("data", (chunk: Uint8Array) => this.#chunks.push(chunk));
    this.#stream.on("error", (err: Error) => this.#failed = err);
  }

  /** Runs `input` through the context; resolves with all the output it gave. */
  process(input: Uint8Array): Promise<Uint8Array> {
    const result = this.#queue.then(() =>
      new Promise<Uint8Array>((resolve, reject) => {
        if (this.#failed) return reject(this.#failed);
        this.#stream.write(input);
        this.#stream.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          if (this.#failed) return reject(this.#failed);
          const out = concat(this.#chunks);
          this.#chunks = [];
          resolve(out);
        });
      })
    );
    this.#queue = result.catch(() => {});
    return result;
  }

  close(): void {
    this.#stream.destroy();
  }
}

/** A stream of a {@link SpdyConnection}. */
export class SpdyStream {
  /** The stream's ID (odd: opened by the client). */
  readonly id: number;
  /** The headers it was opened with. */
  readonly headers: SpdyHeaders;
  readonly #connection: SpdyConnection;
  #onData: ((chunk: Uint8Array) => void) | undefined;
  #onEnd: (() => void) | undefined;
  #pending: Uint8Array[] = [];
  #ended = false;
  #finished = false;
  /** Resolves once the peer answered with SYN_REPLY (a stream we opened). */
  readonly replied: PromiseWithResolvers<void> = Promise.withResolvers<void>();

  constructor(connection: SpdyConnection, id: number, headers: SpdyHeaders) {
    this.#connection = connection;
    this.id = id;
    this.headers = headers;
    this.replied.promise.catch(() => {});
  }

  /** The first value of header `name`. */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()]?.[0];
  }

  /** Receives the peer's data (what came before is delivered at once) and its end. */
  listen(onData: (chunk: Uint8Array) => void, onEnd: () => void = () => {}): void {
    for (const chunk of this.#pending.splice(0)) onData(chunk);
    this.#onData = onData;
    this.#onEnd = onEnd;
    if (this.#ended) onEnd();
  }

  /** Sends data on the stream. */
  write(data: Uint8Array): Promise<void> {
    if (this.#finished) return Promise.resolve();
    return this.#connection.sendData(this.id, data, false);
  }

  /** Half-closes our side: an empty data frame with FIN. */
  finish(): Promise<void> {
    if (this.#finished) return Promise.resolve();
    this.#finished = true;
    return this.#connection.sendData(this.id, new Uint8Array(), true);
  }

  /** @internal */
  deliver(data: Uint8Array, fin: boolean): void {
    if (data.length > 0) {
      if (this.#ended) return;
      if (this.#onData) this.#onData(data);
      else this.#pending.push(data);
    }
    if (fin) this.end();
  }

  /** @internal */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd?.();
  }
}

/** One SPDY/3.1 session over a connection whose HTTP upgrade is done. */
export class SpdyConnection {
  readonly #conn: Deno.Conn;
  readonly #compress = new HeaderCodec("compress");
  readonly #decompress = new HeaderCodec("decompress");
  readonly #streams = new Map<number, SpdyStream>();
  readonly #server: boolean;
  #nextId: number;
  #writes: Promise<void> = Promise.resolve();
  #closed = false;
  /** The peer said goodbye: stop reading. */
  #goaway = false;
  #closing: Promise<void> | undefined;
  readonly #readEnded = Promise.withResolvers<void>();
  readonly #done: Promise<void>;
  #onStream: (stream: SpdyStream) => void = () => {};

  /**
   * A session over `conn`; `options.buffered` are bytes already read past the HTTP head.
   * `options.server`: the peer opens the streams and each gets a SYN_REPLY. `options.preamble`
   * is written before any frame (the HTTP 101 answer).
   */
  constructor(
    conn: Deno.Conn,
    options: { server: boolean; buffered?: Uint8Array; preamble?: Uint8Array },
  ) {
    this.#conn = conn;
    this.#server = options.server;
    this.#nextId = options.server ? 2 : 1;
    if (options.preamble) this.#send(options.preamble).catch(() => {});
    // A broken peer (a bad frame, bad compression) ends the session, never the daemon.
    this.#done = this.#readLoop(options.buffered ?? new Uint8Array()).catch(() => {})
      .finally(() => {
        this.#readEnded.resolve();
        return this.close();
      });
  }

  /** Resolves when the session ended (either side closed it). */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Receives the streams the peer opens (after they were answered). */
  onStream(handler: (stream: SpdyStream) => void): void {
    this.#onStream = handler;
  }

  /** Opens a stream with `headers` and waits for the peer's SYN_REPLY (clients; tests). */
  async openStream(headers: SpdyHeaders): Promise<SpdyStream> {
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new SpdyStream(this, id, headers);
    this.#streams.set(id, stream);
    const block = await this.#compress.process(encodeHeaderBlock(headers));
    const body = concat([u32(id), u32(0), new Uint8Array([0, 0]), block]);
    await this.#send(controlFrame(TYPE.SYN_STREAM, 0, body));
    await stream.replied.promise;
    return stream;
  }

  /** @internal Sends data frames (split to {@link MAX_DATA}). */
  sendData(id: number, data: Uint8Array, fin: boolean): Promise<void> {
    const frames: Uint8Array[] = [];
    for (let at = 0; at < data.length; at += MAX_DATA) {
      const last = at + MAX_DATA >= data.length;
      frames.push(dataFrame(id, data.subarray(at, at + MAX_DATA), fin && last));
    }
    if (data.length === 0) frames.push(dataFrame(id, data, fin));
    return this.#send(concat(frames));
  }

  /** Says goodbye (GOAWAY) and closes the connection; ends every stream. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    await this.#send(controlFrame(TYPE.GOAWAY, 0, concat([u32(0), u32(0)]))).catch(() => {});
    await this.#writes.catch(() => {});
    // Closing a socket the peer still writes to resets it, and a reset can discard what the
    // peer has not read yet (the exit status): half-close, and let the peer close first.
    try {
      await this.#conn.closeWrite();
    } catch {
      // Closed already.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#readEnded.promise,
      new Promise((resolve) => timer = setTimeout(resolve, 2000)),
    ]);
    clearTimeout(timer);
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    for (const stream of this.#streams.values()) {
      stream.end();
      stream.replied.reject(new Error("connection closed"));
    }
    this.#compress.close();
    this.#decompress.close();
  }

  #send(bytes: Uint8Array): Promise<void> {
    const write = this.#writes.then(async () => {
      if (this.#closed) throw new Error("connection closed");
      let at = 0;
      while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  async #readLoop(initial: Uint8Array): Promise<void> {
    let buffer = initial;
    const chunk = new Uint8Array(64 * 1024);
    while (!this.#closed && !this.#goaway) {
      // Whole frames first; then read more.
      while (buffer.length >= 8) {
        const length = ((buffer[5]! << 16) | (buffer[6]! << 8) | buffer[7]!) >>> 0;
        if (length > MAX_FRAME) throw new Error(`SPDY frame of ${length} bytes is too large`);
        if (buffer.length < 8 + length) break;
        const frame = buffer.subarray(0, 8 + length);
        buffer = buffer.subarray(8 + length);
        await this.#handle(frame);
      }
      if (this.#goaway) return;
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      buffer = concat([buffer, chunk.subarray(0, n)]);
    }
  }

  async #handle(frame: Uint8Array): Promise<void> {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const flags = frame[4]!;
    const body = frame.subarray(8);
    if ((frame[0]! & 0x80) === 0) {
      const id = view.getUint32(0) & 0x7fffffff;
      this.#streams.get(id)?.deliver(body.slice(), (flags & FLAG_FIN) !== 0);
      return;
    }
    const type = view.getUint16(2);
    const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);
    switch (type) {
      case TYPE.SYN_STREAM: {
        const id = bodyView.getUint32(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.#decompress.process(body.subarray(10)));
        const stream = new SpdyStream(this, id, headers);
        this.#streams.set(id, stream);
        if (this.#server) {
          // Every stream is accepted: an empty SYN_REPLY, as Kubernetes' servers answer.
          const block = await this.#compress.process(encodeHeaderBlock({}));
          await this.#send(controlFrame(TYPE.SYN_REPLY, 0, concat([u32(id), block])));
        }
        this.#onStream(stream);
        if ((flags & FLAG_FIN) !== 0) stream.end();
        return;
      }
      case TYPE.SYN_REPLY: {
        const id = bodyView.getUint32(0) & 0x7fffffff;
        await this.#decompress.process(body.subarray(4));
        this.#streams.get(id)?.replied.resolve();
        return;
      }
      case TYPE.HEADERS:
        // Keep the decompression context in step; the headers themselves are not used.
        await this.#decompress.process(body.subarray(4));
        return;
      case TYPE.RST_STREAM: {
        const id = bodyView.getUint32(0) & 0x7fffffff;
        this.#streams.get(id)?.end();
        return;
      }
      case TYPE.PING:
        // A ping from the peer is answered with the same ID; our own are never sent.
        await this.#send(controlFrame(TYPE.PING, 0, body.slice(0, 4)));
        return;
      case TYPE.GOAWAY:
        this.#goaway = true;
        return;
      default:
        // SETTINGS and WINDOW_UPDATE: nothing to do without flow control.
        return;
    }
  }
}

/**
 * Opens `url` (`http://HOST:PORT/PATH`) and upgrades it to SPDY/3.1 offering `protocols` in
 * `X-Stream-Protocol-Version`, as Kubernetes' clients do; resolves with the session and the
 * protocol the server chose. For tests and tools: the daemon is the server side.
 */
export async function connectSpdy(
  url: string,
  protocols: string[],
): Promise<{ session: SpdyConnection; protocol: string }> {
  const { hostname, port, pathname, search } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const offers = protocols.map((p) => `X-Stream-Protocol-Version: ${p}\r\n`).join("");
  await conn.write(encoder.encode(
    `POST ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: Upgrade\r\n` +
      `Upgrade: SPDY/3.1\r\n${offers}Content-Length: 0\r\n\r\n`,
  ));
  let buffer: Uint8Array = new Uint8Array();
  const chunk = new Uint8Array(4096);
  let end = -1;
  while (end < 0) {
    const n = await conn.read(chunk);
    if (n === null || buffer.length > 16 * 1024) {
      conn.close();
      throw new Error("the server closed the connection before answering the upgrade");
    }
    buffer = concat([buffer, chunk.subarray(0, n)]);
    end = decoder.decode(buffer).indexOf("\r\n\r\n");
  }
  const head = decoder.decode(buffer.subarray(0, end));
  if (!/^HTTP\/1\.1 101/.test(head)) {
    conn.close();
    throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
  }
  const protocol = /^X-Stream-Protocol-Version: *(\S*)/im.exec(head)?.[1] ?? "";
  const rest = buffer.slice(new TextEncoder().encode(head).length + 4);
  return { session: new SpdyConnection(conn, { server: false, buffered: rest }), protocol };
}

function controlFrame(type: number, flags: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + body.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, 0x8003);
  view.setUint16(2, type);
  view.setUint32(4, ((flags & 0xff) << 24 | body.length) >>> 0);
  out.set(body, 8);
  return out;
}

function dataFrame(id: number, data: Uint8Array, fin: boolean): Uint8Array {
  const out = new Uint8Array(8 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, id & 0x7fffffff);
  view.setUint32(4, ((fin ? FLAG_FIN : 0) << 24 | data.length) >>> 0);
  out.set(data, 8);
  return out;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

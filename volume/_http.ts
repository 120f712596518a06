/**
 * A minimal HTTP/1.1 client for volume plugins: one POST per connection (`Connection: close`)
 * over a unix socket or TCP (optionally TLS), with one deadline for the whole exchange. A fresh
 * connection per call means a restarted plugin is simply reached again, and nothing stays open
 * between calls. Responses are read with `Content-Length`, chunked encoding, or until the server
 * closes the connection, and capped in size.
 *
 * Errors are {@link HttpError}s whose `reason` tells a timeout from a connection failure from a
 * malformed answer, so that the caller can word and classify them.
 *
 * @module
 */
import { messageOf } from "../engine/errors.ts";

/** Where to send requests. */
export type HttpTarget =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; hostname: string; port: number; tls?: HttpTls };

/** TLS settings of a TCP target (PEM texts). */
export interface HttpTls {
  /** CA certificates to trust instead of the system's. */
  caCerts?: string[];
  /** Client certificate. */
  cert?: string;
  /** Client key. */
  key?: string;
}

/** An HTTP response with its whole body. */
export interface HttpResponse {
  status: number;
  /** Header names lowercased. */
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Options of {@link httpPost}. */
export interface HttpPostOptions {
  /** The request body (none by default). */
  body?: Uint8Array;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The deadline of the whole exchange (connect, write, read). */
  timeoutMs: number;
  /** The largest response accepted (default 16 MiB). */
  maxBytes?: number;
}

/** Why an exchange failed. */
export type HttpFailure = "timeout" | "connect" | "closed" | "malformed";

/** A failed exchange. */
export class HttpError extends Error {
  /** What went wrong: no answer in time, no connection, a dropped connection, or garbage. */
  readonly reason: HttpFailure;

  /** An error of `reason` with `message`. */
  constructor(reason: HttpFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
    this.name = "HttpError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEADER_LIMIT = 64 * 1024;

/** Sends `POST path` with `body` to `target` and reads the whole response. */
export async function httpPost(
  target: HttpTarget,
  path: string,
  options: HttpPostOptions,
): Promise<HttpResponse> {
  const body = options.body ?? new Uint8Array();
  const host = target.kind === "unix" ? "plugin" : `${target.hostname}:${target.port}`;
  const headers: Record<string, string> = {
    Host: host,
    ...options.headers,
    "Content-Length": String(body.length),
    Connection: "close",
  };
  const head = [`POST ${path} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
    .join("\r\n");
  const request = concat([encoder.encode(`${head}\r\n\r\n`), body]);

  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let expired = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = true;
      // Closing the connection ends the read or write still pending on it.
      try {
        conn?.close();
      } catch {
        // Already closed.
      }
      reject(new HttpError("timeout", `no answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
  });
  const exchange = (async () => {
    conn = await connect(target);
    if (expired) {
      conn.close();
      throw new HttpError("timeout", `no answer within ${options.timeoutMs} ms`);
    }
    try {
      await writeAll(conn, request);
    } catch (err) {
      throw new HttpError("closed", `connection lost while sending: ${messageOf(err)}`, {
        cause: err,
      });
    }
    return await readResponse(conn, options.maxBytes ?? 16 * 1024 * 1024);
  })();
  // After a timeout the exchange rejects too (its connection was closed): nobody awaits it.
  exchange.catch(() => {});
  try {
    return await Promise.race([exchange, deadline]);
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch {
      // Closed by the timer or already.
    }
  }
}

async function connect(target: HttpTarget): Promise<Deno.Conn> {
  try {
    if (target.kind === "unix") return await Deno.connect({ transport: "unix", path: target.path });
    if (target.tls) {
      return await Deno.connectTls({
        hostname: target.hostname,
        port: target.port,
        caCerts: target.tls.caCerts,
        ...(target.tls.cert && target.tls.key
          ? { cert: target.tls.cert, key: target.tls.key }
          : {}),
      });
    }
    return await Deno.connect({ hostname: target.hostname, port: target.port });
  } catch (err) {
    throw new HttpError("connect", `cannot connect: ${messageOf(err)}`, { cause: err });
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

/** Reads one response: the head, then the body by length, chunks, or until the server closes. */
async function readResponse(conn: Deno.Conn, maxBytes: number): Promise<HttpResponse> {
  let buffer: Uint8Array = new Uint8Array(0);
  let eof = false;
  const more = async (): Promise<void> => {
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await conn.read(chunk);
    } catch (err) {
      throw new HttpError("closed", `connection lost while reading: ${messageOf(err)}`, {
        cause: err,
      });
    }
    if (n === null) {
      eof = true;
      return;
    }
    if (buffer.length + n > maxBytes) {
      throw new HttpError("malformed", `answer larger than ${maxBytes} bytes`);
    }
    buffer = concat([buffer, chunk.subarray(0, n)]);
  };

  let headEnd = -1;
  while ((headEnd = indexOfCrlfCrlf(buffer)) < 0) {
    if (buffer.length > HEADER_LIMIT) throw new HttpError("malformed", "HTTP header too long");
    if (eof) {
      throw buffer.length === 0
        ? new HttpError("closed", "connection closed without an answer")
        : new HttpError("malformed", `not an HTTP answer: ${preview(buffer)}`);
    }
    await more();
  }
  const lines = decoder.decode(buffer.subarray(0, headEnd)).split("\r\n");
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!statusLine) throw new HttpError("malformed", `not an HTTP answer: ${preview(buffer)}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpError("malformed", `bad HTTP header line: ${line.slice(0, 80)}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const status = Number(statusLine[1]);
  const bodyStart = headEnd + 4;

  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
    for (;;) {
      const decoded = decodeChunked(buffer.subarray(bodyStart));
      if (decoded) return { status, headers, body: decoded };
      if (eof) throw new HttpError("closed", "connection closed in the middle of the answer");
      await more();
    }
  }
  const lengthHeader = headers.get("content-length");
  if (lengthHeader !== undefined) {
    const length = Number(lengthHeader);
    if (!/^\d+$/.test(lengthHeader) || length > maxBytes) {
      throw new HttpError("malformed", `bad Content-Length: ${lengthHeader.slice(0, 40)}`);
    }
    while (buffer.length - bodyStart < length) {
      if (eof) throw new HttpError("closed", "connection closed in the middle of the answer");
      await more();
    }
    return { status, headers, body: buffer.slice(bodyStart, bodyStart + length) };
  }
  while (!eof) await more();
  return { status, headers, body: buffer.slice(bodyStart) };
}

/** The body of a complete chunked encoding, or undefined while it is incomplete. */
function decodeChunked(data: Uint8Array): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = indexOfCrlf(data, at);
    if (lineEnd < 0) return undefined;
    const sizeText = decoder.decode(data.subarray(at, lineEnd)).split(";")[0]!.trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) {
      throw new HttpError("malformed", `bad chunk size: ${sizeText.slice(0, 20)}`);
    }
    const size = parseInt(sizeText, 16);
    at = lineEnd + 2;
    if (size === 0) {
      // Trailers (rare) end with an empty line, like the head.
      for (;;) {
        const end = indexOfCrlf(data, at);
        if (end < 0) return undefined;
        if (end === at) return concat(parts);
        at = end + 2;
      }
    }
    if (data.length < at + size + 2) return undefined;
    parts.push(data.subarray(at, at + size));
    at += size + 2;
  }
}

function indexOfCrlf(data: Uint8Array, from: number): number {
  for (let i = from; i + 1 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10) return i;
  }
  return -1;
}

function indexOfCrlfCrlf(data: Uint8Array): number {
  for (let i = 0; i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) return i;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The start of some bytes, printable, for error messages. */
export function preview(data: Uint8Array): string {
  const text = decoder.decode(data.subarray(0, 80)).replace(/[^\x20-\x7e]/g, "?");
  return JSON.stringify(data.length > 80 ? `${text}...` : text);
}

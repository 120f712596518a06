/**
 * The CRI streaming server: Exec, Attach and PortForward answer a one-time URL on this server
 * (`http://127.0.0.1:PORT/exec/TOKEN`), which the client (kubelet's proxy, crictl, kubectl)
 * opens with one of Kubernetes' two transports.
 *
 * WebSocket, with the channel protocols:
 *
 * - exec and attach: `v5.channel.k8s.io`, `v4.channel.k8s.io`, `channel.k8s.io` (and v2, v3):
 *   binary frames whose first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 the error or
 *   status channel (v4+: a JSON `metav1.Status` carrying the exit code), 4 terminal resize
 *   (`{"Width":80,"Height":24}`), and in v5 255 to close a channel (`[255, 0]` ends stdin).
 * - port forward: `portforward.k8s.io` (and `v4.channel.k8s.io`): for the i-th port, channel
 *   2i carries data and 2i+1 errors; each starts with the port number, two bytes little-endian.
 *
 * SPDY/3.1 (what crictl and the kubelet's proxy use by default), after an `Upgrade: SPDY/3.1`
 *   handshake: the same protocols with one SPDY stream per channel, named by its `streamtype`
 *   header (`error`, `stdin`, `stdout`, `stderr`, `resize`; `data` and `error` per port
 *   forwarded connection). See `_spdy.ts`.
 *
 * Deno.serve cannot hand a connection over to another protocol, so a front listener reads each
 * request's head: SPDY upgrades it serves itself, everything else it relays to a Deno.serve on
 * loopback, which answers WebSocket upgrades.
 *
 * Tokens live one minute and serve one connection.
 *
 * @module
 */
import { isNotFound } from "../engine/errors.ts";
import type { Logger } from "../engine/log.ts";
import { SpdyConnection, type SpdyStream } from "./_spdy.ts";

/** What a token stands for. */
export type StreamRequest =
  | {
    kind: "exec";
    containerId: string;
    cmd: string[];
    tty: boolean;
    stdin: boolean;
    stdout: boolean;
    stderr: boolean;
  }
  | {
    kind: "attach";
    containerId: string;
    tty: boolean;
    stdin: boolean;
    stdout: boolean;
    stderr: boolean;
  }
  | { kind: "portforward"; sandboxId: string; ports: number[] };

/** A terminal's size in characters. */
export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * How long a TTY session waits for the client's first terminal size before it starts the
 * process: clients send it right after the streams are up, and a process started before it
 * came would see a 0x0 terminal (`stty size` fails, full-screen programs draw wrong).
 */
const FIRST_SIZE_WAIT_MS = 500;

/** One side of a running stream session, as the runtime drives it. */
export interface StreamSession {
  /** Input for stdin; `null` closes it. */
  input?: (chunk: Uint8Array | null) => void;
  /** The terminal's new size. */
  resize?: (size: { width: number; height: number }) => void;
  /** The client went away: stop sending. */
  detach(): void;
}

/** Where an exec or attach sends output and how it ends. */
export interface StreamSink {
  /** Output of `stream` for the client. */
  write(stream: "stdout" | "stderr", chunk: Uint8Array): void;
  /** The process ended: its exit code when known (an exec's), or an error message. */
  end(result: { exitCode?: number; error?: string }): void;
}

/** The runtime side: starts what a token stands for. */
export interface StreamRuntime {
  /**
   * Starts an exec or attach session; throws if it cannot (the client gets the error). `size` is
   * the terminal's size when the client sent it before the session started.
   */
  open(
    request: Extract<StreamRequest, { kind: "exec" | "attach" }>,
    sink: StreamSink,
    size?: TerminalSize,
  ): Promise<StreamSession>;
  /** The address a port of the pod is reached at from the host. */
  portAddress(sandboxId: string, port: number): { hostname: string; port: number };
}

/** Options of {@link startStreamingServer}. */
export interface StreamingServerOptions {
  /** The address to listen on; 127.0.0.1 by default. */
  hostname?: string;
  /** The port; 0 for any free one. */
  port: number;
  runtime: StreamRuntime;
  log: Logger;
  /** How long a token stays valid; one minute by default. */
  tokenTtlMs?: number;
}

/** A running streaming server. */
export interface StreamingServer {
  /** The base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** A one-time URL for `request`. */
  urlFor(request: StreamRequest): string;
  /** Stops listening and ends every session. */
  close(): Promise<void>;
}

/** The channel protocols of exec and attach, most preferred first. */
export const CHANNEL_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
/** The port forward protocols. */
export const PORT_FORWARD_PROTOCOLS = ["portforward.k8s.io", "v4.channel.k8s.io"];

const CHANNEL_STDIN = 0;
const CHANNEL_STDOUT = 1;
const CHANNEL_STDERR = 2;
const CHANNEL_ERROR = 3;
const CHANNEL_RESIZE = 4;
const CHANNEL_CLOSE = 255;

/** Picks the first protocol of `supported` the client offered. */
export function chooseProtocol(offered: string | null, supported: string[]): string | undefined {
  const list = (offered ?? "").split(",").map((p) => p.trim()).filter((p) => p !== "");
  return supported.find((p) => list.includes(p));
}

/** A frame of `channel` carrying `data`. */
export function channelFrame(channel: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out[0] = channel;
  out.set(data, 1);
  return out;
}

/**
 * The v4 status of an ended exec: `Success`, or a `Failure` naming the exit code as the
 * kubelet's remote command server words it (clients read the code from `details.causes`).
 */
export function execStatus(result: { exitCode?: number; error?: string }): string {
  if (result.error !== undefined) {
    return JSON.stringify({
      metadata: {},
      status: "Failure",
      message: result.error,
      reason: "InternalError",
    });
  }
  const code = result.exitCode ?? 0;
  if (code === 0) return JSON.stringify({ metadata: {}, status: "Success" });
  return JSON.stringify({
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  });
}

/** Starts the streaming server. */
export function startStreamingServer(options: StreamingServerOptions): Promise<StreamingServer> {
  const { log, runtime } = options;
  const ttl = options.tokenTtlMs ?? 60_000;
  const tokens = new Map<string, { request: StreamRequest; expires: number }>();
  const sockets = new Set<WebSocket>();
  const hostname = options.hostname ?? "127.0.0.1";
  const listening = Promise.withResolvers<number>();

  /** The request a URL's token stands for; a token is used up by its first connection. */
  const redeem = (pathname: string, options: { keep?: boolean } = {}) => {
    const match = /^\/(exec|attach|portforward)\/([0-9a-f]+)$/.exec(pathname);
    if (!match) return undefined;
    const entry = tokens.get(match[2]!);
    if (!options.keep) tokens.delete(match[2]!);
    if (!entry || entry.expires < Date.now() || entry.request.kind !== match[1]) return undefined;
    return entry.request;
  };

  const handler = (request: Request): Response => {
    const url = new URL(request.url);
    if (!redeem(url.pathname, { keep: true })) {
      return new Response("unknown or expired stream token\n", { status: 404 });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response(
        "streams need a WebSocket (v4.channel.k8s.io, portforward.k8s.io) or SPDY/3.1 upgrade\n",
        { status: 400 },
      );
    }
    const streamRequest = redeem(url.pathname);
    if (!streamRequest) {
      return new Response("unknown or expired stream token\n", { status: 404 });
    }
    const supported = streamRequest.kind === "portforward"
      ? PORT_FORWARD_PROTOCOLS
      : CHANNEL_PROTOCOLS;
    const protocol = chooseProtocol(request.headers.get("sec-websocket-protocol"), supported);
    if (!protocol) {
      return new Response(`no supported subprotocol: want one of ${supported.join(", ")}\n`, {
        status: 400,
      });
    }
    const { socket, response } = Deno.upgradeWebSocket(request, { protocol });
    socket.binaryType = "arraybuffer";
    sockets.add(socket);
    socket.addEventListener("close", () => sockets.delete(socket));
    if (streamRequest.kind === "portforward") {
      const ports = url.searchParams.getAll("ports").flatMap((p) => p.split(","))
        .map(Number).filter((p) => p > 0 && p < 65536);
      servePortForward(socket, {
        ports: ports.length > 0 ? ports : streamRequest.ports,
        address: (port) => runtime.portAddress(streamRequest.sandboxId, port),
        log,
      });
    } else {
      serveChannels(socket, { request: streamRequest, protocol, runtime, log });
    }
    return response;
  };

  // Deno.serve cannot hand over a connection for SPDY: a front listener reads each request's
  // head, serves SPDY upgrades itself and relays everything else to Deno.serve on loopback.
  const inner = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => listening.resolve(port),
  }, handler);
  inner.finished.catch(() => {});
  const listener = Deno.listen({ hostname, port: options.port });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns = new Set<Deno.Conn>();
  const spdySessions = new Set<SpdyConnection>();
  const accepting = (async () => {
    const innerPort = await listening.promise;
    for await (const conn of listener) {
      conns.add(conn);
      frontConnection(conn, {
        innerPort,
        spdy: (head, buffered) => {
          const session = serveSpdy(conn, { head, buffered, redeem, runtime, log });
          if (session) {
            spdySessions.add(session);
            session.done.finally(() => spdySessions.delete(session));
          }
        },
        log,
      }).catch((err) => {
        log.debug("stream connection failed", { error: err });
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }).finally(() => conns.delete(conn));
    }
  })().catch(() => {});

  return listening.promise.then(() => {
    const base = `http://${hostname}:${port}`;
    return {
      url: base,
      urlFor(request: StreamRequest): string {
        const now = Date.now();
        for (const [token, entry] of tokens) if (entry.expires < now) tokens.delete(token);
        const token = Array.from(crypto.getRandomValues(new Uint8Array(16)))
          .map((b) => b.toString(16).padStart(2, "0")).join("");
        tokens.set(token, { request, expires: now + ttl });
        return `${base}/${request.kind}/${token}`;
      },
      async close() {
        listener.close();
        for (const socket of sockets) socket.close(1001, "server shutting down");
        for (const session of spdySessions) await session.close();
        for (const conn of conns) {
          try {
            conn.close();
          } catch {
            // Closed already.
          }
        }
        await accepting;
        // A client that never answers a WebSocket close must not hold up the daemon's stop.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          inner.shutdown(),
          new Promise((resolve) => timer = setTimeout(resolve, 2000)),
        ]);
        clearTimeout(timer);
      },
    };
  });
}

/** Serves an exec or attach over the channel protocol `protocol`. */
function serveChannels(
  socket: WebSocket,
  options: {
    request: Extract<StreamRequest, { kind: "exec" | "attach" }>;
    protocol: string;
    runtime: StreamRuntime;
    log: Logger;
  },
): void {
  const { request, protocol } = options;
  const jsonStatus = protocol.startsWith("v4.") || protocol.startsWith("v5.");
  const encoder = new TextEncoder();
  let session: StreamSession | undefined;
  let ended = false;
  const send = (channel: number, data: Uint8Array) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(channelFrame(channel, data));
  };
  const sink: StreamSink = {
    write: (stream, chunk) => send(stream === "stdout" ? CHANNEL_STDOUT : CHANNEL_STDERR, chunk),
    end: (result) => {
      if (ended) return;
      ended = true;
      if (jsonStatus) send(CHANNEL_ERROR, encoder.encode(execStatus(result)));
      else if (result.error || (result.exitCode ?? 0) !== 0) {
        send(
          CHANNEL_ERROR,
          encoder.encode(result.error ?? `command terminated with exit code ${result.exitCode}`),
        );
      }
      if (socket.readyState === WebSocket.OPEN) socket.close(1000);
    },
  };
  const pending: Uint8Array[] = [];
  const sizes = terminalSizes(request.tty);
  const onFrame = (frame: Uint8Array) => {
    if (frame.length === 0) return;
    const data = frame.subarray(1);
    switch (frame[0]) {
      case CHANNEL_STDIN:
        if (request.stdin) session?.input?.(data);
        break;
      case CHANNEL_RESIZE:
        try {
          const size = JSON.parse(new TextDecoder().decode(data)) as {
            Width?: number;
            Height?: number;
          };
          if (size.Width && size.Height) sizes.push({ width: size.Width, height: size.Height });
        } catch {
          // A malformed resize is ignored, as the kubelet does.
        }
        break;
      case CHANNEL_CLOSE:
        if (data[0] === CHANNEL_STDIN) session?.input?.(null);
        break;
    }
  };
  socket.addEventListener("message", (event) => {
    const frame = event.data instanceof ArrayBuffer
      ? new Uint8Array(event.data)
      : new TextEncoder().encode(String(event.data));
    // Sizes are taken at once: the first one is what the process starts with.
    if (session || frame[0] === CHANNEL_RESIZE) onFrame(frame);
    else pending.push(frame);
  });
  socket.addEventListener("close", () => {
    // The client left: the process goes on (a detach), its stdin reaches EOF.
    session?.input?.(null);
    session?.detach();
  });
  socket.addEventListener("open", () => {
    sizes.first.then((size) => options.runtime.open(request, sink, size)).then((opened) => {
      session = opened;
      sizes.forward(opened);
      for (const frame of pending.splice(0)) onFrame(frame);
      if (socket.readyState !== WebSocket.OPEN) {
        opened.detach();
      }
    }).catch((err) => {
      options.log.debug("stream session failed", { error: err });
      sink.end({ error: err instanceof Error ? err.message : String(err) });
    });
  });
}

/** Serves a port forward: each port's data channel relayed to a TCP connection to it. */
function servePortForward(
  socket: WebSocket,
  options: {
    ports: number[];
    address: (port: number) => { hostname: string; port: number };
    log: Logger;
  },
): void {
  const connections: Array<Promise<Deno.TcpConn | undefined>> = [];
  const encoder = new TextEncoder();
  const send = (channel: number, data: Uint8Array) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(channelFrame(channel, data));
  };
  socket.addEventListener("open", () => {
    options.ports.forEach((port, i) => {
      const prefix = new Uint8Array([port & 0xff, port >> 8]);
      send(2 * i, prefix);
      send(2 * i + 1, prefix);
      const connecting = (async () => {
        try {
          return await Deno.connect(options.address(port));
        } catch (err) {
          const message = isNotFound(err) ? "pod not found" : String(err);
          send(2 * i + 1, encoder.encode(`failed to connect to port ${port}: ${message}`));
          return undefined;
        }
      })();
      connections[i] = connecting;
      connecting.then(async (conn) => {
        if (!conn) return;
        const buffer = new Uint8Array(32 * 1024);
        try {
          while (true) {
            const n = await conn.read(buffer);
            if (n === null) break;
            send(2 * i, buffer.slice(0, n));
          }
        } catch {
          // The connection broke: end the session below.
        }
        if (socket.readyState === WebSocket.OPEN) socket.close(1000);
      }).catch(() => {});
    });
  });
  socket.addEventListener("message", (event) => {
    if (!(event.data instanceof ArrayBuffer)) return;
    const frame = new Uint8Array(event.data);
    const channel = frame[0];
    if (channel === undefined || channel % 2 !== 0) return;
    const connection = connections[channel / 2];
    const data = frame.slice(1);
    connection?.then(async (conn) => {
      let offset = 0;
      while (conn && offset < data.length) offset += await conn.write(data.subarray(offset));
    }).catch(() => {});
  });
  socket.addEventListener("close", () => {
    for (const connection of connections) {
      connection.then((conn) => conn?.close()).catch(() => {});
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The front listener and SPDY/3.1.

/** An HTTP request's head as the front listener read it. */
interface RequestHead {
  method: string;
  path: string;
  /** Lower-case names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  /** The head's bytes as received. */
  raw: Uint8Array;
}

/** The remote command protocols over SPDY, most preferred first (v5 is WebSocket only). */
export const SPDY_CHANNEL_PROTOCOLS = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
];
const MAX_HEAD = 16 * 1024;

/** Parses an HTTP/1.1 request head (up to the blank line). */
export function parseRequestHead(raw: Uint8Array): RequestHead {
  const lines = new TextDecoder().decode(raw).split("\r\n");
  const [method = "", path = ""] = (lines[0] ?? "").split(" ");
  const headers: Record<string, string[]> = {};
  for (const line of lines.slice(1)) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    (headers[line.slice(0, at).trim().toLowerCase()] ??= []).push(line.slice(at + 1).trim());
  }
  return { method, path: path.split("?")[0] ?? "", headers, raw };
}

/** Reads one request head: SPDY upgrades go to `spdy`, the rest is relayed to Deno.serve. */
async function frontConnection(
  conn: Deno.Conn,
  options: {
    innerPort: number;
    spdy: (head: RequestHead, buffered: Uint8Array) => void;
    log: Logger;
  },
): Promise<void> {
  let buffer = new Uint8Array();
  const chunk = new Uint8Array(4096);
  const deadline = setTimeout(() => conn.close(), 10_000);
  let end = -1;
  try {
    while (end < 0) {
      const n = await conn.read(chunk);
      if (n === null) return;
      const next = new Uint8Array(buffer.length + n);
      next.set(buffer);
      next.set(chunk.subarray(0, n), buffer.length);
      buffer = next;
      end = indexOfHeadEnd(buffer);
      if (end < 0 && buffer.length > MAX_HEAD) throw new Error("request head too large");
    }
  } finally {
    clearTimeout(deadline);
  }
  const head = parseRequestHead(buffer.subarray(0, end));
  const rest = buffer.slice(end + 4);
  const upgrade = (head.headers["upgrade"]?.[0] ?? "").toLowerCase();
  if (upgrade === "spdy/3.1") {
    options.spdy(head, rest);
    return;
  }
  const upstream = await Deno.connect({ hostname: "127.0.0.1", port: options.innerPort });
  const writer = upstream.writable.getWriter();
  await writer.write(buffer);
  writer.releaseLock();
  await Promise.allSettled([
    conn.readable.pipeTo(upstream.writable),
    upstream.readable.pipeTo(conn.writable),
  ]);
}

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** Answers a SPDY/3.1 upgrade and serves its session; undefined when refused. */
function serveSpdy(
  conn: Deno.Conn,
  options: {
    head: RequestHead;
    buffered: Uint8Array;
    redeem: (path: string) => StreamRequest | undefined;
    runtime: StreamRuntime;
    log: Logger;
  },
): SpdyConnection | undefined {
  const encoder = new TextEncoder();
  const refuse = (status: string, message: string) => {
    const body = encoder.encode(message + "\n");
    conn.write(encoder.encode(
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n` +
        "Connection: close\r\n\r\n",
    )).then(() => conn.write(body)).catch(() => {}).finally(() => conn.close());
    return undefined;
  };
  const request = options.redeem(options.head.path);
  if (!request) return refuse("404 Not Found", "unknown or expired stream token");
  const offered = (options.head.headers["x-stream-protocol-version"] ?? [])
    .flatMap((value) => value.split(",")).map((value) => value.trim()).filter((v) => v !== "");
  const supported = request.kind === "portforward"
    ? ["portforward.k8s.io"]
    : SPDY_CHANNEL_PROTOCOLS;
  const protocol = offered.find((p) => supported.includes(p)) ??
    (offered.length === 0 ? "" : undefined);
  if (protocol === undefined) {
    return refuse("403 Forbidden", `no supported protocol: want one of ${supported.join(", ")}`);
  }
  const response = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" +
    `Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`;
  // The 101 goes out first: the session queues its own frames after it.
  const session = new SpdyConnection(conn, {
    server: true,
    buffered: options.buffered,
    preamble: encoder.encode(response),
  });
  if (request.kind === "portforward") {
    spdyPortForward(session, {
      address: (port) => options.runtime.portAddress(request.sandboxId, port),
    });
  } else {
    spdyChannels(session, { request, protocol, runtime: options.runtime, log: options.log });
  }
  return session;
}

/**
 * A TTY session's terminal sizes: the first one (waited for at most {@link FIRST_SIZE_WAIT_MS}
 * when `wanted`) starts the process, the later ones resize it once it runs.
 */
function terminalSizes(wanted: boolean): {
  first: Promise<TerminalSize | undefined>;
  push(size: TerminalSize): void;
  forward(session: StreamSession): void;
} {
  const first = Promise.withResolvers<TerminalSize | undefined>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (wanted) timer = setTimeout(() => first.resolve(undefined), FIRST_SIZE_WAIT_MS);
  else first.resolve(undefined);
  let target: StreamSession | undefined;
  let latest: TerminalSize | undefined;
  let started: TerminalSize | undefined;
  first.promise.then((size) => started = size);
  return {
    first: first.promise,
    push(size) {
      clearTimeout(timer);
      first.resolve(size);
      latest = size;
      target?.resize?.(size);
    },
    forward(session) {
      target = session;
      // A size that came while the process was starting still applies.
      if (latest && latest !== started) session.resize?.(latest);
    },
  };
}

/** Splits concatenated JSON objects (the resize stream) as they complete. */
export function jsonObjects(): (text: string) => unknown[] {
  let pending = "";
  return (text) => {
    pending += text;
    const out: unknown[] = [];
    let depth = 0;
    let start = -1;
    let inString = false;
    for (let i = 0; i < pending.length; i++) {
      const c = pending[i];
      if (inString) {
        if (c === "\\") i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{") {
        if (depth++ === 0) start = i;
      } else if (c === "}" && depth > 0 && --depth === 0) {
        try {
          out.push(JSON.parse(pending.slice(start, i + 1)));
        } catch {
          // Not JSON after all: skipped.
        }
        pending = pending.slice(i + 1);
        i = -1;
      }
    }
    return out;
  };
}

/** Serves an exec or attach over SPDY: the client opens one stream per channel. */
function spdyChannels(
  session: SpdyConnection,
  options: {
    request: Extract<StreamRequest, { kind: "exec" | "attach" }>;
    protocol: string;
    runtime: StreamRuntime;
    log: Logger;
  },
): void {
  const { request, protocol } = options;
  const version = protocol === "" || protocol === "channel.k8s.io"
    ? 1
    : Number(/^v(\d)\./.exec(protocol)?.[1] ?? 1);
  const expected = new Set(["error"]);
  if (request.stdin) expected.add("stdin");
  if (request.stdout) expected.add("stdout");
  if (request.stderr && !request.tty) expected.add("stderr");
  if (request.tty && version >= 3) expected.add("resize");
  const streams = new Map<string, SpdyStream>();
  const ready = Promise.withResolvers<void>();
  session.onStream((stream) => {
    const type = stream.header("streamtype");
    if (!type) return;
    streams.set(type, stream);
    if ([...expected].every((name) => streams.has(name))) ready.resolve();
  });
  const timer = setTimeout(
    () => ready.reject(new Error(`streams ${[...expected].join(", ")} did not all arrive`)),
    30_000,
  );
  const encoder = new TextEncoder();
  let ended = false;
  const sink: StreamSink = {
    write: (stream, chunk) => void streams.get(stream)?.write(chunk).catch(() => {}),
    end: async (result) => {
      if (ended) return;
      ended = true;
      const error = streams.get("error");
      if (version >= 4) {
        await error?.write(encoder.encode(execStatus(result))).catch(() => {});
      } else if (result.error || (result.exitCode ?? 0) !== 0) {
        const text = result.error ??
          `command terminated with non-zero exit code: ${result.exitCode}`;
        await error?.write(encoder.encode(text)).catch(() => {});
      }
      for (const stream of streams.values()) await stream.finish().catch(() => {});
      await session.close();
    },
  };
  ready.promise.then(async () => {
    clearTimeout(timer);
    const sizes = terminalSizes(request.tty && streams.has("resize"));
    const split = jsonObjects();
    const decoder = new TextDecoder();
    streams.get("resize")?.listen((chunk) => {
      for (
        const size of split(decoder.decode(chunk)) as Array<{ Width?: number; Height?: number }>
      ) {
        if (size.Width && size.Height) sizes.push({ width: size.Width, height: size.Height });
      }
    });
    const opened = await options.runtime.open(request, sink, await sizes.first);
    sizes.forward(opened);
    streams.get("stdin")?.listen(
      (chunk) => opened.input?.(chunk),
      () => opened.input?.(null),
    );
    session.done.then(() => opened.detach());
  }).catch((err) => {
    clearTimeout(timer);
    options.log.debug("SPDY stream session failed", { error: err });
    sink.end({ error: err instanceof Error ? err.message : String(err) });
  });
  session.done.then(() => clearTimeout(timer));
}

/** Serves a port forward over SPDY: each data stream relayed to a TCP connection to its port. */
function spdyPortForward(
  session: SpdyConnection,
  options: { address: (port: number) => { hostname: string; port: number } },
): void {
  const errors = new Map<string, SpdyStream>();
  const encoder = new TextEncoder();
  session.onStream((stream) => {
    const type = stream.header("streamtype");
    const id = stream.header("requestid") ?? "";
    if (type === "error") {
      errors.set(id, stream);
      return;
    }
    if (type !== "data") return;
    const port = Number(stream.header("port"));
    const fail = async (message: string) => {
      await errors.get(id)?.write(encoder.encode(message)).catch(() => {});
      await errors.get(id)?.finish().catch(() => {});
      await stream.finish().catch(() => {});
    };
    if (!(port > 0 && port < 65536)) {
      void fail(`invalid port ${stream.header("port")}`);
      return;
    }
    (async () => {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect(options.address(port));
      } catch (err) {
        await fail(`failed to connect to port ${port}: ${String(err)}`);
        return;
      }
      stream.listen((chunk) => {
        conn.write(chunk).catch(() => {});
      }, () => conn.closeWrite().catch(() => {}));
      const buffer = new Uint8Array(32 * 1024);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          await stream.write(buffer.slice(0, n));
        }
      } catch {
        // The connection broke: end the stream.
      }
      try {
        conn.close();
      } catch {
        // Closed already.
      }
      await stream.finish().catch(() => {});
      await errors.get(id)?.finish().catch(() => {});
      errors.delete(id);
    })().catch(() => {});
  });
}

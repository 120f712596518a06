/**
 * A tiny HTTP/1.1 server on a unix socket for the CLI's tests: it parses each request (with a
 * Content-Length or chunked body) and hands it to a handler that answers or takes over the
 * connection (hijack).
 *
 * @module
 */

import { BufferedReader, chunkedBody } from "./http.ts";

/** A request as the fake server saw it. */
export interface FakeRequest {
  method: string;
  /** Path without the query. */
  path: string;
  query: URLSearchParams;
  headers: Headers;
  body: Uint8Array;
  /** The connection, for hijacking handlers. */
  conn: Deno.UnixConn;
  /** Reads what the client sends after the head (hijacked streams). */
  reader: BufferedReader;
}

/** What a handler answers: a response, or "hijacked" when it took the connection. */
export type FakeAnswer =
  | { status: number; json?: unknown; body?: string | Uint8Array; headers?: Record<string, string> }
  | "hijacked";

/** A fake daemon: its socket path, what it received, and `close()`. */
export interface FakeServer extends AsyncDisposable {
  socketPath: string;
  requests: FakeRequest[];
  close(): Promise<void>;
}

const encoder = new TextEncoder();

async function writeAll(conn: Deno.Conn, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) off += await conn.write(p.subarray(off));
}

/** Writes a complete response with Content-Length. */
export async function respond(
  conn: Deno.Conn,
  status: number,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<void> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const head = [`HTTP/1.1 ${status} X`, `Content-Length: ${bytes.length}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  await writeAll(conn, encoder.encode(head.join("\r\n") + "\r\n\r\n"));
  await writeAll(conn, bytes);
}

/** Starts a fake daemon in a temp dir; `handler` answers each request. */
export async function startFakeServer(
  handler: (req: FakeRequest) => Promise<FakeAnswer> | FakeAnswer,
): Promise<FakeServer> {
  const dir = await Deno.makeTempDir({ prefix: "pouch-cli-test-" });
  const socketPath = `${dir}/pouchd.sock`;
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  const requests: FakeRequest[] = [];
  const conns = new Set<Deno.UnixConn>();
  const tasks = new Set<Promise<void>>();

  const serve = async (conn: Deno.UnixConn) => {
    const reader = new BufferedReader(conn);
    const requestLine = await reader.readLine();
    if (!requestLine) return;
    const [method = "", target = ""] = requestLine.split(" ");
    const headers = new Headers();
    while (true) {
      const line = await reader.readLine();
      if (line === null || line === "") break;
      const colon = line.indexOf(":");
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    }
    let body: Uint8Array = new Uint8Array(0);
    if ((headers.get("transfer-encoding") ?? "").includes("chunked")) {
      body = new Uint8Array(await new Response(chunkedBody(reader)).arrayBuffer());
    } else if (headers.has("content-length")) {
      body = await reader.readExactly(Number(headers.get("content-length")));
    }
    const url = new URL(target, "http://pouch");
    const req: FakeRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers,
      body,
      conn,
      reader,
    };
    requests.push(req);
    const answer = await handler(req);
    if (answer === "hijacked") return;
    const payload = answer.json !== undefined ? JSON.stringify(answer.json) : answer.body ?? "";
    const extra = answer.json !== undefined
      ? { "Content-Type": "application/json", ...answer.headers }
      : answer.headers;
    await respond(conn, answer.status, payload, extra);
    conn.close();
  };

  const acceptLoop = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      const task = serve(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        tasks.delete(task);
      });
      tasks.add(task);
    }
  })();

  const close = async () => {
    listener.close();
    await acceptLoop.catch(() => {});
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await Promise.all(tasks);
    await Deno.remove(dir, { recursive: true });
  };
  return { socketPath, requests, close, [Symbol.asyncDispose]: close };
}

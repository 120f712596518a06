/**
 * What every route module shares: the app's environment (a hijackable connection for
 * attach/exec), moby's query parsing rules and explicit JSON body parsing.
 *
 * @module
 */
import type { Context } from "hono";
import { invalidArgument, kindOf, tooLarge } from "../errors.ts";
import { checkJsonDepth } from "./body_types.ts";
import { concatBytes } from "../logs.ts";

/**
 * The side of a connection taken over by a route that the routes use (a part of node's socket
 * interface): writes and the half-close are queued in order; `data`, `end` (the client's
 * half-close), `close` and `error` events.
 */
export interface HijackSocket {
  write(data: string | Uint8Array): void;
  end(): void;
  on(event: "data", listener: (chunk: Uint8Array) => void): void;
  on(event: "end" | "close", listener: () => void): void;
  on(event: "error", listener: (err: unknown) => void): void;
}

/** A connection the server can hand over to a route (`Upgrade: tcp`). */
export interface Hijack {
  socket: HijackSocket;
  /** Bytes that arrived after the request. */
  head: Uint8Array;
}

/** The environment the server passes to the app for each request. */
export interface ApiEnv {
  Bindings: { hijack?: Hijack };
}

/** The header a route sets on its response when it took over the connection. */
export const HIJACKED = "x-pouch-hijacked";

/** moby's `BoolValue`: absent, "", "0", "no", "false" and "none" are false. */
export function boolQuery(c: Context, name: string): boolean {
  const value = c.req.query(name);
  if (value === undefined) return false;
  return !["", "0", "no", "false", "none"].includes(value.trim().toLowerCase());
}

/** An integer query parameter, or undefined when absent; 400 when malformed. */
export function intQuery(c: Context, name: string): number | undefined {
  const value = c.req.query(name);
  if (value === undefined || value === "") return undefined;
  if (!/^-?\d+$/.test(value)) {
    throw invalidArgument(`invalid value for ${name}: ${value} is not an integer`);
  }
  return Number(value);
}

/** Docker's `filters` query: `{"name":["web"]}` or the old `{"name":{"web":true}}` form. */
export function filtersQuery(c: Context): Record<string, string[]> {
  const raw = c.req.query("filters");
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidArgument(`invalid filter: ${raw}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalidArgument(`invalid filter: ${raw}`);
  }
  const filters: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (Array.isArray(value)) filters[key] = value.map(String);
    else if (typeof value === "object" && value !== null) filters[key] = Object.keys(value);
    else throw invalidArgument(`invalid filter: ${raw}`);
  }
  return filters;
}

/** Parses a required JSON object body, whatever its content type says. */
export async function jsonBody<T>(c: Context): Promise<T> {
  const text = await bodyText(c);
  if (text.trim() === "") throw invalidArgument("empty request body: a JSON object is required");
  checkJsonDepth(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`invalid JSON in request body: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalidArgument("request body must be a JSON object");
  }
  return value as T;
}

/**
 * The largest JSON body the API reads (4 MiB: a container config with a large env or a seccomp
 * profile is far below it); archives (`load`, `import`, `cp`) stream and are not JSON.
 */
export const MAX_JSON_BODY = 4 * 1024 * 1024;

/**
 * The request's body as text, at most {@link MAX_JSON_BODY} bytes (413 past it, declared or
 * streamed); read once and cached where Hono's `c.req.text()` finds it.
 */
export async function bodyText(c: Context): Promise<string> {
  const cached = c.req.bodyCache.text;
  if (cached) return await cached;
  const declared = Number(c.req.header("content-length") ?? 0);
  if (declared > MAX_JSON_BODY) {
    throw tooLarge(`request body of ${declared} bytes is over the limit of ${MAX_JSON_BODY}`);
  }
  let text: string;
  try {
    text = await readCapped(c.req.raw, MAX_JSON_BODY);
  } catch (err) {
    if (kindOf(err) === "TooLarge") throw err;
    // A body the client broke off or framed wrongly is its error, not the daemon's.
    throw invalidArgument(`cannot read the request body: ${(err as Error).message}`, err);
  }
  // Hono keeps promises there (its types say strings): json() chains on it.
  (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);
  return text;
}

/** The body as text, failing with TooLarge as soon as it passes `limit` bytes (chunked too). */
async function readCapped(request: Request, limit: number): Promise<string> {
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body) {
    total += chunk.length;
    if (total > limit) throw tooLarge(`request body is over the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return new TextDecoder().decode(concatBytes(chunks, total));
}

/** Writes the 101 answer that hands the connection to a stream. */
export function upgradeConnection(hijack: Hijack, contentType: string): void {
  hijack.socket.write(
    "HTTP/1.1 101 UPGRADED\r\n" +
      `Content-Type: ${contentType}\r\n` +
      "Connection: Upgrade\r\n" +
      "Upgrade: tcp\r\n\r\n",
  );
}

/** The response a route returns after taking over the connection. */
export function hijackedResponse(): Response {
  return new Response(null, { status: 200, headers: { [HIJACKED]: "1" } });
}

/**
 * A streaming response whose head goes out at once: the first chunk is the given `preamble`
 * (clients such as the Docker CLI wait for response headers before they go on).
 */
export function streamResponse(
  source: AsyncIterable<Uint8Array>,
  options: { contentType: string; status?: number; signal?: AbortController },
): Response {
  const iterator = source[Symbol.asyncIterator]();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await iterator.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel() {
      options.signal?.abort();
      await iterator.return?.();
    },
  });
  return new Response(body, {
    status: options.status ?? 200,
    headers: { "Content-Type": options.contentType },
  });
}

/**
 * The API server: `node:http` on unix sockets (Deno.serve cannot hijack a connection, which
 * attach and exec need), handing requests to the Hono app and upgraded connections to the same
 * app with the raw socket in its environment.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import { type ApiEnv, HIJACKED } from "./api/mod.ts";
import { parseListenAddress } from "./config.ts";
import type { Logger } from "./log.ts";

/** A running API server. */
export interface ApiServer {
  /** Stops accepting connections and closes idle ones. */
  close(): Promise<void>;
}

/** Serves `app` on every address of `listen`. */
export async function serveApi(
  app: Hono<ApiEnv>,
  options: { listen: string[]; log: Logger },
): Promise<ApiServer> {
  const { log } = options;
  const listener = getRequestListener((request, env) => {
    const started = performance.now();
    const response = app.fetch(request, env);
    if (log.enabled("debug")) {
      Promise.resolve(response).then((r) =>
        log.debug("request", {
          method: request.method,
          path: new URL(request.url).pathname,
          status: r.status,
          ms: (performance.now() - started).toFixed(1),
        })
      );
    }
    return response;
  });

  const servers: Server[] = [];
  const sockets = new Set<Duplex>();
  for (const address of options.listen) {
    const { path } = parseListenAddress(address);
    await Deno.remove(path).catch(() => {});
    const server = createServer(listener);
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      handleUpgrade(app, { req, socket, head, log }).catch((err) => {
        log.error("upgraded request failed", { error: err });
        socket.destroy();
      });
    });
    server.on("connection", (socket: Duplex) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await Deno.chmod(path, 0o660);
    servers.push(server);
    log.info("API listening", { address });
  }

  return {
    async close() {
      await Promise.all(servers.map((server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
        })
      ));
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Runs an `Upgrade: tcp` request through the app with the socket to take over. */
async function handleUpgrade(
  app: Hono<ApiEnv>,
  options: { req: IncomingMessage; socket: Duplex; head: Uint8Array; log: Logger },
): Promise<void> {
  const { req, socket, head, log } = options;
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(key, value);
    else if (Array.isArray(value)) { for (const v of value) headers.append(key, v); }
  }
  const request = new Request(`http://localhost${req.url ?? "/"}`, {
    method: req.method,
    headers,
  });
  const response = await app.fetch(request, { hijack: { socket, head } });
  log.debug("request", { method: req.method, path: req.url, status: response.status, upgrade: 1 });
  if (response.headers.get(HIJACKED)) return;
  // The route refused before taking the connection: answer as plain HTTP and close.
  const body = new Uint8Array(await response.arrayBuffer());
  let head_ = `HTTP/1.1 ${response.status} ${response.statusText || "Error"}\r\n`;
  response.headers.forEach((value, key) => (head_ += `${key}: ${value}\r\n`));
  head_ += `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  socket.write(head_);
  socket.end(body);
}

/**
 * Routes of `/containers` that look at a container from the host: its files (`archive`, the
 * `docker cp` API), its changes against the image (`changes`), its processes (`top`) and its
 * resource usage (`stats`).
 *
 * @module
 */
import { Hono } from "hono";
import type { ContainerFiles } from "../archive.ts";
import { invalidArgument } from "../errors.ts";
import type { ContainerMonitor } from "../stats.ts";
import { type ApiEnv, boolQuery, streamResponse } from "./http.ts";

/** What the routes need of the engine. */
export interface ContainerFilesBackend {
  files: Pick<ContainerFiles, "stat" | "archive" | "extract" | "changes">;
  monitor: Pick<ContainerMonitor, "top" | "stats">;
}

/** The header carrying a path's stat: base64 of Docker's `ContainerPathStat` JSON. */
export const PATH_STAT_HEADER = "X-Docker-Container-Path-Stat";

const encoder = new TextEncoder();

/** The route table, mounted at `/containers`. */
export function containerFileRoutes(backend: ContainerFilesBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const { files, monitor } = backend;

  // GET answers HEAD too (Hono): a HEAD must not mount and stream anything.
  app.get("/:id/archive", async (c) => {
    const path = requiredPath(c.req.query("path"));
    const id = c.req.param("id");
    if (c.req.method === "HEAD") {
      const stat = await files.stat(id, path);
      return c.body(null, 200, { [PATH_STAT_HEADER]: encodeStat(stat) });
    }
    const { stat, body } = await files.archive(id, path);
    return new Response(body, {
      headers: { "Content-Type": "application/x-tar", [PATH_STAT_HEADER]: encodeStat(stat) },
    });
  });

  app.put("/:id/archive", async (c) => {
    const path = requiredPath(c.req.query("path"));
    const body = c.req.raw.body;
    if (!body) throw invalidArgument("a tar archive is required in the request body");
    await files.extract(c.req.param("id"), path, body, {
      noOverwriteDirNonDir: boolQuery(c, "noOverwriteDirNonDir"),
    });
    return c.body(null, 200);
  });

  app.get("/:id/changes", async (c) => c.json(await files.changes(c.req.param("id"))));

  app.get(
    "/:id/top",
    async (c) => c.json(await monitor.top(c.req.param("id"), c.req.query("ps_args") ?? "")),
  );

  app.get("/:id/stats", async (c) => {
    // Docker streams unless told not to.
    const stream = c.req.query("stream") === undefined ? true : boolQuery(c, "stream");
    const abort = new AbortController();
    const samples = monitor.stats(c.req.param("id"), {
      stream,
      oneShot: boolQuery(c, "one-shot"),
      signal: abort.signal,
    });
    // The first sample before the head: a missing container is a 404, not a broken stream.
    const iterator = samples[Symbol.asyncIterator]();
    const first = await iterator.next();
    async function* lines() {
      if (first.done) return;
      yield encoder.encode(JSON.stringify(first.value) + "\n");
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        yield encoder.encode(JSON.stringify(next.value) + "\n");
      }
    }
    return streamResponse(lines(), { contentType: "application/json", signal: abort });
  });

  return app;
}

function requiredPath(path: string | undefined): string {
  if (!path) throw invalidArgument("path is required: which file or directory of the container");
  // No file name holds a NUL; the system calls would refuse it with an error of their own.
  if (path.includes("\0")) throw invalidArgument("path must not contain a NUL character");
  return path;
}

function encodeStat(stat: unknown): string {
  const bytes = encoder.encode(JSON.stringify(stat));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

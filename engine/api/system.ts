/**
 * Routes of the system group: `/_ping`, `/version`, `/info`.
 *
 * @module
 */
import { Hono } from "hono";
import type { ApiEnv } from "./http.ts";

/** The API version pouch serves (the Docker CLI negotiates down to it). */
export const API_VERSION = "1.41";
/** The oldest API version pouch accepts (PouchContainer's). */
export const MIN_API_VERSION = "1.24";

/** What the system routes need of the engine. */
export interface SystemBackend {
  version(): Promise<Record<string, unknown>>;
  info(): Promise<Record<string, unknown>>;
  /** Re-binds lxcfs's files in the running lxcfs containers (`pouch remount-lxcfs`). */
  remountLxcfs?(): Promise<{ remounted: string[]; failed: Array<{ id: string; error: string }> }>;
}

/** The system route table. */
export function systemRoutes(backend: SystemBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const pingHeaders = {
    "API-Version": API_VERSION,
    "OSType": "linux",
    "Docker-Experimental": "false",
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
  };
  app.get("/_ping", (c) => c.text("OK", 200, pingHeaders));
  app.on("HEAD", "/_ping", (c) => c.body(null, 200, pingHeaders));
  app.get("/version", async (c) => c.json(await backend.version()));
  app.get("/info", async (c) => c.json(await backend.info()));
  // pouch's own route (PouchContainer declared `remount-lxcfs` and never implemented it).
  app.post("/lxcfs/remount", async (c) => {
    if (!backend.remountLxcfs) return c.json({ message: "lxcfs is not available" }, 503);
    const result = await backend.remountLxcfs();
    return c.json({ Remounted: result.remounted, Failed: result.failed });
  });
  return app;
}

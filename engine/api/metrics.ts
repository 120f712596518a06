/**
 * `GET /metrics` (Prometheus' text format) and the middleware that times every API request by
 * its route template, so that `/containers/abc/json` and `/v1.41/containers/def/json` count as
 * one route, `/containers/:id/json`.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { ApiEnv } from "./http.ts";

/** What the metrics routes need of the engine. */
export interface MetricsBackend {
  /** Records one finished request. */
  apiRequest(request: { method: string; route: string; status: number }, seconds: number): void;
  /** The text format's answer. */
  render(): string;
}

/** The version prefix the app mounts every route under a second time. */
const VERSION_PREFIX = /^\/:version\{[^}]*\}/;

/** Times each request and reports it with its route template once the handler answered. */
export function metricsMiddleware(backend: MetricsBackend): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const started = performance.now();
    const own = routePath(c);
    try {
      await next();
    } finally {
      // After next() the route index points at the handler that answered; no handler (a 404
      // for an unknown path) leaves this middleware's own path, which must not become a label
      // per probed URL.
      const template = routePath(c);
      const route = template === own ? "unmatched" : template.replace(VERSION_PREFIX, "") || "/";
      backend.apiRequest(
        { method: c.req.method, route, status: c.res.status },
        (performance.now() - started) / 1000,
      );
    }
  };
}

/** The `/metrics` route. */
export function metricsRoutes(backend: MetricsBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/metrics", (c) =>
    c.body(backend.render(), 200, {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    }));
  return app;
}

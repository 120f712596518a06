/**
 * The Moby-compatible HTTP API: every route module mounted once at `/` and once under
 * `/v1.NN/`, one error handler mapping error kinds to statuses, JSON 404s for unknown paths.
 *
 * @module
 */
import { Hono } from "hono";
import { messageOf, statusOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { PluginManager } from "../plugins.ts";
import { containerFileRoutes, type ContainerFilesBackend } from "./container_files.ts";
import { containerRoutes, type ContainersBackend } from "./containers.ts";
import { eventRoutes, type EventsBackend } from "./events.ts";
import { type DiskBackend, diskRoutes } from "./disk.ts";
import { type ExecBackend, execRoutes } from "./exec.ts";
import type { ApiEnv } from "./http.ts";
import { type MetricsBackend, metricsMiddleware, metricsRoutes } from "./metrics.ts";
import { authRoutes, imageRoutes, type ImagesBackend } from "./images.ts";
import { networkRoutes, type NetworksBackend } from "./networks.ts";
import { type SystemBackend, systemRoutes } from "./system.ts";
import { volumeRoutes, type VolumesBackend } from "./volumes.ts";

export { API_VERSION, MIN_API_VERSION } from "./system.ts";
export { HIJACKED } from "./http.ts";
export type { ApiEnv, Hijack } from "./http.ts";

/** Everything the API serves. */
export interface ApiBackend {
  containers: ContainersBackend;
  /** Exec processes; without it the exec routes are absent. */
  exec?: ExecBackend;
  images: ImagesBackend;
  system: SystemBackend;
  /** cp, diff, top and stats; without it those routes are absent. */
  containerFiles?: ContainerFilesBackend;
  /** The event bus; without it `/events` is absent. */
  events?: EventsBackend;
  /** The volume manager; without it `/volumes` is absent. */
  volumes?: VolumesBackend;
  /** The network manager; without it `/networks` is absent. */
  networks?: NetworksBackend;
  /** Disk usage and prunes; without it `/system/df` and the prunes are absent. */
  disk?: DiskBackend;
  /** Request metrics and `GET /metrics`; without it neither is there. */
  metrics?: MetricsBackend;
  /** Hook plugins' API hooks: routes they add and handlers they wrap. */
  plugins?: Pick<PluginManager, "installApi">;
  log: Logger;
}

/** Builds the app. */
export function createApi(backend: ApiBackend): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  if (backend.metrics) api.route("/", metricsRoutes(backend.metrics));
  api.route("/", systemRoutes(backend.system));
  // Before the resource routes: `/containers/prune` must not be read as a container's name.
  if (backend.disk) api.route("/", diskRoutes(backend.disk));
  const exec = backend.exec;
  api.route(
    "/containers",
    containerRoutes(backend.containers, { execIds: exec?.idsOf.bind(exec) }),
  );
  if (exec) api.route("/", execRoutes(exec));
  if (backend.containerFiles) {
    api.route("/containers", containerFileRoutes(backend.containerFiles));
  }
  if (backend.events) api.route("/", eventRoutes(backend.events));
  api.route("/images", imageRoutes(backend.images));
  api.route("/", authRoutes(backend.images));
  if (backend.volumes) api.route("/volumes", volumeRoutes(backend.volumes));
  if (backend.networks) api.route("/networks", networkRoutes(backend.networks));

  const app = new Hono<ApiEnv>();
  if (backend.metrics) app.use("*", metricsMiddleware(backend.metrics));
  // Before the API's routes: plugins' wrappers run around them, their routes win.
  backend.plugins?.installApi(app, { versionPrefix: "/:version{v[0-9]+\\.[0-9]+}" });
  app.route("/:version{v[0-9]+\\.[0-9]+}", api);
  app.route("/", api);
  app.notFound((c) => c.json({ message: "page not found" }, 404));
  app.onError((err, c) => {
    const status = statusOf(err);
    if (status === 304) return c.body(null, 304);
    if (status >= 500) backend.log.error("request failed", { path: c.req.path, error: err });
    return c.json({ message: messageOf(err) }, status as 400);
  });
  return app;
}

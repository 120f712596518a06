/**
 * Routes of `/volumes`: Docker's volume API (list, create, inspect, remove, prune) against the
 * volume manager.
 *
 * @module
 */
import { Hono } from "hono";
import type { CreateVolumeRequest, VolumeManager } from "../../volume/mod.ts";
import { checkGoType, VOLUME_CREATE_BODY } from "./body_types.ts";
import { type ApiEnv, boolQuery, filtersQuery, jsonBody } from "./http.ts";

/** What the volume routes need of the volume manager. */
export type VolumesBackend = Pick<
  VolumeManager,
  "inspect" | "list" | "create" | "remove" | "prune"
>;

/** The `/volumes` route table. */
export function volumeRoutes(backend: VolumesBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get("/", (c) => c.json({ Volumes: backend.list(filtersQuery(c)), Warnings: [] }));

  app.post("/create", async (c) => {
    const body = checkGoType(
      await jsonBody(c),
      VOLUME_CREATE_BODY,
      "CreateOptions",
    ) as CreateVolumeRequest;
    return c.json(await backend.create(body), 201);
  });

  app.post("/prune", async (c) => c.json(await backend.prune(filtersQuery(c))));

  app.get("/:name", async (c) => c.json(await backend.inspect(c.req.param("name"))));

  app.delete("/:name", async (c) => {
    await backend.remove(c.req.param("name"), { force: boolQuery(c, "force") });
    return c.body(null, 204);
  });

  return app;
}

/**
 * Routes of disk usage and pruning: `GET /system/df`, `POST /containers/prune` and
 * `POST /images/prune` (`filters={"dangling":["false"]}` for every unused image), in Docker's
 * shapes; `pouch system df` and `pouch system prune` (and the Docker CLI's) read them.
 *
 * @module
 */
import { Hono } from "hono";
import type { DiskUsage } from "../disk_usage.ts";
import { summaryView } from "./containers.ts";
import { type ApiEnv, filtersQuery } from "./http.ts";

/** What the disk routes need of the engine. */
export type DiskBackend = Pick<DiskUsage, "report" | "pruneContainers" | "pruneImages">;

/** The disk usage and prune route table. */
export function diskRoutes(backend: DiskBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.get("/system/df", async (c) => {
    const report = await backend.report();
    return c.json({
      LayersSize: report.layersSize,
      Images: report.images,
      Containers: report.containers.map(({ container, sizeRw, sizeRootFs }) => ({
        ...summaryView(container),
        SizeRw: sizeRw,
        SizeRootFs: sizeRootFs,
      })),
      Volumes: report.volumes,
      BuildCache: [],
    });
  });
  app.post("/containers/prune", async (c) => c.json(await backend.pruneContainers()));
  app.post("/images/prune", async (c) => {
    // Docker's `image prune -a` sends dangling=false: every image no container uses.
    const dangling = filtersQuery(c).dangling?.at(-1);
    const all = dangling !== undefined && ["false", "0"].includes(dangling.toLowerCase());
    return c.json(await backend.pruneImages({ all }));
  });
  return app;
}

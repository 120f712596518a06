/**
 * Routes of `/images`: list, inspect, tag, remove, load and import (`POST /images/create` with
 * `fromSrc`); pulls arrive with the distribution issue.
 *
 * @module
 */
import { Hono } from "hono";
import type { ImageManager } from "../image.ts";
import { invalidArgument, messageOf, notImplemented } from "../errors.ts";
import { type ApiEnv, boolQuery, filtersQuery, streamResponse } from "./http.ts";

/** What the image routes need of the engine. */
export interface ImagesBackend {
  images: Pick<ImageManager, "list" | "inspect" | "tag" | "remove" | "load" | "import">;
  /** The ID of a container using image `imageId`, if any. */
  imageUser(imageId: string): string | undefined;
}

const encoder = new TextEncoder();

/** The `/images` route table. */
export function imageRoutes(backend: ImagesBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const { images } = backend;

  app.get(
    "/json",
    async (c) => c.json(await images.list({ all: boolQuery(c, "all"), filters: filtersQuery(c) })),
  );

  app.post("/load", (c) => {
    const body = c.req.raw.body;
    if (!body) throw invalidArgument("load needs an image archive in the request body");
    const quiet = boolQuery(c, "quiet");
    // Messages stream as Docker's JSON progress lines; an error after the head is a line too.
    async function* messages() {
      const progress: string[] = [];
      try {
        const loaded = await images.load(body!, {
          onProgress: (message) => {
            if (!quiet) progress.push(message);
          },
        });
        for (const line of progress) yield json({ stream: line + "\n" });
        for (const line of loaded) yield json({ stream: line + "\n" });
      } catch (err) {
        yield json({ errorDetail: { message: messageOf(err) }, error: messageOf(err) });
      }
    }
    return streamResponse(messages(), { contentType: "application/json" });
  });

  app.post("/create", async (c) => {
    const fromSrc = c.req.query("fromSrc");
    if (fromSrc === undefined) {
      throw notImplemented("pulling images from a registry is not supported yet: use load");
    }
    if (fromSrc !== "-") throw invalidArgument("only fromSrc=- (the request body) is supported");
    const body = c.req.raw.body;
    if (!body) throw invalidArgument("import needs a rootfs tarball in the request body");
    const repo = c.req.query("repo") || "";
    const tag = c.req.query("tag") || "";
    const ref = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
    const changes = c.req.queries("changes") ?? [];
    const id = await images.import(body, {
      ref,
      changes,
      message: c.req.query("message") || undefined,
    });
    return c.body(JSON.stringify({ status: id }) + "\n", 200, {
      "Content-Type": "application/json",
    });
  });

  app.get("/:name{.+}/json", async (c) => c.json(await images.inspect(c.req.param("name"))));

  app.post("/:name{.+}/tag", async (c) => {
    const repo = c.req.query("repo");
    if (!repo) throw invalidArgument("repository name is required: tag needs repo");
    const tag = c.req.query("tag");
    await images.tag(c.req.param("name"), tag ? `${repo}:${tag}` : repo);
    return c.body(null, 201);
  });

  app.delete("/:name{.+}", async (c) =>
    c.json(
      await images.remove(c.req.param("name"), {
        force: boolQuery(c, "force"),
        isInUse: (id) => backend.imageUser(id),
      }),
    ));

  return app;
}

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value) + "\n");
}

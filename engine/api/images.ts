/**
 * Routes of `/images`: list, inspect, tag, remove, load, import (`POST /images/create` with
 * `fromSrc`), pull (`POST /images/create` with `fromImage`), push and save (`GET
 * /images/get`); and `POST /auth`, the credentials check of `docker login`.
 *
 * Pull and push stream Docker's JSON progress messages. An error found before the first
 * message (an unknown image, refused credentials) is the response's status, as Docker answers;
 * a later one is the stream's last message.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { ImageManager } from "../image.ts";
import { invalidArgument, messageOf } from "../errors.ts";
import { type AuthConfig, decodeRegistryAuth, type ProgressMessage } from "../registry.ts";
import { type ApiEnv, boolQuery, filtersQuery, jsonBody, streamResponse } from "./http.ts";

/** What the image routes need of the engine. */
export interface ImagesBackend {
  images: Pick<
    ImageManager,
    "list" | "inspect" | "tag" | "remove" | "load" | "import" | "pull" | "push" | "save" | "login"
  >;
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

  app.post("/load", async (c) => {
    const body = c.req.raw.body;
    if (!body) throw invalidArgument("load needs an image archive in the request body");
    const quiet = boolQuery(c, "quiet");
    // Messages stream live as Docker's JSON progress lines: each layer's bytes as it is
    // written, then the loaded names; an error after the head is a line too.
    return await progressStream(c, async (emit, onResolved) => {
      onResolved();
      const loaded = await images.load(body, {
        onProgress: (line) => {
          if (!quiet) emit({ stream: line + "\n" });
        },
        onLayerProgress: (msg) => {
          if (!quiet) emit(msg);
        },
      });
      for (const line of loaded) emit({ stream: line + "\n" });
    });
  });

  app.post("/create", async (c) => {
    const fromSrc = c.req.query("fromSrc");
    const fromImage = c.req.query("fromImage");
    if (fromSrc === undefined) {
      if (!fromImage) throw invalidArgument("fromImage or fromSrc is required");
      const ref = pullReference(fromImage, c.req.query("tag") || "");
      const auth = registryAuth(c);
      const platform = c.req.query("platform") || undefined;
      return await progressStream(
        c,
        (emit, onResolved, signal) =>
          images.pull(ref, { auth, platform, onProgress: emit, onResolved, signal }),
      );
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

  // Save: `GET /images/get?names=a&names=b` and `GET /images/{name}/get`.
  app.get("/get", async (c) => saveResponse(await images.save(c.req.queries("names") ?? [])));
  app.get("/:name{.+}/get", async (c) => saveResponse(await images.save([c.req.param("name")])));

  app.post("/:name{.+}/push", async (c) => {
    const name = c.req.param("name");
    const tag = c.req.query("tag") || "";
    const ref = tag ? `${name}:${tag}` : name;
    const auth = registryAuth(c);
    return await progressStream(
      c,
      (emit, onResolved, signal) =>
        images.push(ref, { auth, onProgress: emit, onResolved, signal }),
    );
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

/** `POST /auth`: checks credentials against their registry, as `docker login` does. */
export function authRoutes(backend: ImagesBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  app.post("/auth", async (c) => {
    const auth = await jsonBody<AuthConfig>(c);
    await backend.images.login(auth);
    return c.json({ Status: "Login Succeeded", IdentityToken: "" });
  });
  return app;
}

/** `fromImage` and `tag` as one reference: the tag may also be a digest. */
export function pullReference(fromImage: string, tag: string): string {
  if (tag === "") return fromImage;
  return tag.includes(":") ? `${fromImage}@${tag}` : `${fromImage}:${tag}`;
}

function registryAuth(c: Context<ApiEnv>): AuthConfig | undefined {
  return decodeRegistryAuth(c.req.header("X-Registry-Auth"));
}

function saveResponse(stream: ReadableStream<Uint8Array>): Response {
  return new Response(stream, { headers: { "Content-Type": "application/x-tar" } });
}

/**
 * Runs a long operation that reports Docker's JSON progress messages and answers them as a
 * stream. The response waits until the operation resolved what it works on (or failed), so
 * that an early failure is an HTTP status; the client going away aborts the operation.
 */
async function progressStream(
  c: Context<ApiEnv>,
  run: (
    emit: (msg: ProgressMessage) => void,
    onResolved: () => void,
    signal: AbortSignal,
  ) => Promise<unknown>,
): Promise<Response> {
  const abort = new AbortController();
  const queue: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  const resolved = Promise.withResolvers<void>();
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const task = run(
    (msg) => {
      queue.push(json(msg));
      notify();
    },
    () => resolved.resolve(),
    abort.signal,
  );
  let failure: unknown;
  let finished = false;
  const done = task.then(
    () => {},
    (err) => {
      failure = err;
    },
  ).finally(() => {
    finished = true;
    notify();
  });
  // Either the operation got going, or it failed first: then its error is the status.
  await Promise.race([resolved.promise, done]);
  if (failure !== undefined && queue.length === 0) throw failure;
  c.req.raw.signal?.addEventListener("abort", () => abort.abort(), { once: true });
  async function* messages(): AsyncGenerator<Uint8Array> {
    while (true) {
      const next = queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (finished) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (failure !== undefined) {
      yield json({ errorDetail: { message: messageOf(failure) }, error: messageOf(failure) });
    }
  }
  return streamResponse(messages(), { contentType: "application/json", signal: abort });
}

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value) + "\n");
}

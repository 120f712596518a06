/**
 * Routes of exec: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked unless
 * detached), `GET /exec/{id}/json` and `POST /exec/{id}/resize`, against a small backend.
 *
 * @module
 */
import { Hono } from "hono";
import { parseDetachKeys } from "../detach_keys.ts";
import { invalidArgument } from "../errors.ts";
import type { ExecConfig, ExecManager } from "../exec.ts";
import { pipeHijacked } from "./hijack.ts";
import { checkGoType, EXEC_BODY } from "./body_types.ts";
import {
  type ApiEnv,
  bodyText,
  hijackedResponse,
  intQuery,
  jsonBody,
  upgradeConnection,
} from "./http.ts";

/** What the exec routes need of the engine. */
export type ExecBackend = Pick<
  ExecManager,
  "create" | "checkStart" | "start" | "inspect" | "resize" | "idsOf"
>;

/** The body of `POST /exec/{id}/start`. */
interface ExecStartRequest {
  Detach?: boolean;
  Tty?: boolean;
}

/** The exec route table, mounted at `/`. */
export function execRoutes(backend: ExecBackend): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.post("/containers/:id/exec", async (c) => {
    const config = checkGoType(await jsonBody(c), EXEC_BODY, "ExecConfig") as ExecConfig;
    return c.json(backend.create(c.req.param("id"), config), 201);
  });

  app.post("/exec/:id/start", async (c) => {
    const id = c.req.param("id");
    // Docker's CLI sends `{}` or nothing for a plain start; only a given body must parse.
    // (The body is cached, so jsonBody reads the same text again.)
    const text = await bodyText(c);
    const body = text.trim() === "" ? {} : await jsonBody<ExecStartRequest>(c);
    const exec = backend.checkStart(id);
    if (body.Detach) {
      await backend.start(id, { detach: true }).started;
      return c.body(null, 200);
    }
    const hijack = c.env?.hijack;
    if (!hijack) {
      throw invalidArgument(
        "exec start needs a connection upgrade (Connection: Upgrade, Upgrade: tcp) or Detach",
      );
    }
    // The stream's framing follows the exec's own TTY, whatever the start request says.
    const tty = exec.ProcessConfig.tty;
    upgradeConnection(
      hijack,
      tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream",
    );
    pipeHijacked(hijack, {
      tty,
      detachKeys: parseDetachKeys(exec.DetachKeys),
      open: (io) => {
        const session = backend.start(id, io);
        // A failed start was already written to the client, which then reads the exit code.
        session.started.catch(() => {});
        return session;
      },
    });
    return hijackedResponse();
  });

  app.get("/exec/:id/json", (c) => c.json(backend.inspect(c.req.param("id"))));

  app.post("/exec/:id/resize", async (c) => {
    const height = intQuery(c, "h") ?? 0;
    const width = intQuery(c, "w") ?? 0;
    if (height < 0 || width < 0 || height > 65535 || width > 65535) {
      throw invalidArgument(`invalid terminal size ${width}x${height}`);
    }
    await backend.resize(c.req.param("id"), { width, height });
    return c.body(null, 200);
  });

  return app;
}

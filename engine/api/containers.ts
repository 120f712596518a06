/**
 * Routes of `/containers`: Docker's container API (create, start, stop, kill, restart, wait,
 * logs, attach, pause, rename, inspect, list, delete), against a small backend.
 *
 * @module
 */
import { Hono } from "hono";
import type { UpgradeRequest } from "../upgrade.ts";
import type {
  Container,
  ContainerManager,
  CreateRequest,
  UpdateRequest,
  WaitCondition,
} from "../container.ts";
import { emptyNetworkSettings } from "../container.ts";
import { parseDetachKeys } from "../detach_keys.ts";
import { conflict, invalidArgument, notImplemented } from "../errors.ts";
import { canReadLogs, logPathOf, NO_READ_MESSAGE } from "../log_drivers.ts";
import { checkGoType, CREATE_BODY, UPDATE_BODY } from "./body_types.ts";
import { pipeHijacked } from "./hijack.ts";
import {
  type ApiEnv,
  boolQuery,
  filtersQuery,
  hijackedResponse,
  intQuery,
  jsonBody,
  streamResponse,
  upgradeConnection,
} from "./http.ts";

/** What the container routes need of the engine. */
export type ContainersBackend = Pick<
  ContainerManager,
  | "get"
  | "list"
  | "create"
  | "start"
  | "stop"
  | "kill"
  | "restart"
  | "pause"
  | "unpause"
  | "remove"
  | "rename"
  | "wait"
  | "attach"
  | "logs"
  | "dir"
  | "resize"
  | "networkSettings"
  | "portsSummary"
  | "upgrade"
  | "update"
>;

/** What the inspect and list views read of the engine besides the record. */
type ViewBackend =
  & Pick<ContainersBackend, "dir">
  & Partial<Pick<ContainersBackend, "networkSettings" | "portsSummary">>;

/** Options of {@link containerRoutes}. */
export interface ContainerRoutesOptions {
  /** The IDs of a container's live execs (inspect's `ExecIDs`). */
  execIds?: (containerId: string) => string[];
}

/** The `/containers` route table. */
export function containerRoutes(
  backend: ContainersBackend,
  options: ContainerRoutesOptions = {},
): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get("/json", (c) => {
    const all = boolQuery(c, "all");
    const limit = intQuery(c, "limit");
    const filters = filtersQuery(c);
    let containers = backend.list()
      .filter((container) =>
        all || container.state.Status === "running" ||
        container.state.Status === "paused" || filters.status !== undefined
      )
      .filter((container) => matchesFilters(container, filters))
      // ISO 8601 times: code-unit order is time order (localeCompare is ~10x slower).
      .sort((a, b) => a.created < b.created ? 1 : a.created > b.created ? -1 : 0);
    if (limit !== undefined && limit > 0) containers = containers.slice(0, limit);
    return c.json(containers.map((container) => summaryView(container, backend)));
  });

  app.post("/create", async (c) => {
    const body = checkGoType(await jsonBody(c), CREATE_BODY, "Config") as CreateRequest;
    const name = c.req.query("name") || undefined;
    return c.json(await backend.create(body, { name }), 201);
  });

  app.get(
    "/:id/json",
    (c) => c.json(inspectView(backend.get(c.req.param("id")), backend, options)),
  );

  app.post("/:id/start", async (c) => {
    await backend.start(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/:id/stop", async (c) => {
    await backend.stop(c.req.param("id"), {
      timeout: intQuery(c, "t"),
      signal: c.req.query("signal") || undefined,
    });
    return c.body(null, 204);
  });

  app.post("/:id/restart", async (c) => {
    await backend.restart(c.req.param("id"), { timeout: intQuery(c, "t") });
    return c.body(null, 204);
  });

  app.post("/:id/kill", async (c) => {
    await backend.kill(c.req.param("id"), c.req.query("signal") || "SIGKILL");
    return c.body(null, 204);
  });

  app.post("/:id/pause", async (c) => {
    await backend.pause(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/:id/unpause", async (c) => {
    await backend.unpause(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/:id/rename", async (c) => {
    const name = c.req.query("name");
    if (!name) throw invalidArgument("name is required: rename needs a new name");
    await backend.rename(c.req.param("id"), name);
    return c.body(null, 204);
  });

  app.post("/:id/update", async (c) => {
    const body = checkGoType(await jsonBody(c), UPDATE_BODY, "UpdateConfig") as UpdateRequest;
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw invalidArgument("update needs a JSON object body");
    }
    return c.json(await backend.update(c.req.param("id"), body));
  });

  // pouch's own (PouchContainer's): replace the image in place.
  app.post("/:id/upgrade", async (c) => {
    const body = await jsonBody<UpgradeRequest>(c);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw invalidArgument("upgrade needs a JSON object body: {Image, Cmd, Entrypoint, ...}");
    }
    return c.json(await backend.upgrade(c.req.param("id"), body));
  });

  app.post("/:id/resize", async (c) => {
    const height = intQuery(c, "h") ?? 0;
    const width = intQuery(c, "w") ?? 0;
    if (height < 0 || width < 0 || height > 65535 || width > 65535) {
      throw invalidArgument(`invalid terminal size ${width}x${height}`);
    }
    await backend.resize(c.req.param("id"), { width, height });
    return c.body(null, 200);
  });

  app.delete("/:id", async (c) => {
    await backend.remove(c.req.param("id"), {
      force: boolQuery(c, "force"),
      volumes: boolQuery(c, "v"),
    });
    return c.body(null, 204);
  });

  app.post("/:id/wait", (c) => {
    const condition = (c.req.query("condition") || "not-running") as WaitCondition;
    if (!["not-running", "next-exit", "removed"].includes(condition)) {
      throw invalidArgument(`invalid condition: "${condition}"`);
    }
    const exit = backend.wait(c.req.param("id"), condition);
    // The head goes out at once: Docker's CLI starts the container only after it has it.
    async function* body() {
      yield new TextEncoder().encode(" ");
      const code = await exit;
      yield new TextEncoder().encode(JSON.stringify({ StatusCode: code, Error: null }) + "\n");
    }
    return streamResponse(body(), { contentType: "application/json" });
  });

  app.get("/:id/logs", (c) => {
    const container = backend.get(c.req.param("id"));
    // The body streams: refusals must come before it starts.
    if (!canReadLogs(container.hostConfig.LogConfig)) throw notImplemented(NO_READ_MESSAGE);
    const abort = new AbortController();
    const tail = c.req.query("tail");
    const source = backend.logs(container.id, {
      stdout: boolQuery(c, "stdout"),
      stderr: boolQuery(c, "stderr"),
      follow: boolQuery(c, "follow"),
      timestamps: boolQuery(c, "timestamps"),
      since: timeQuery(c.req.query("since")),
      until: timeQuery(c.req.query("until")),
      tail: tail === undefined || tail === "all" || tail === "" ? undefined : parseTail(tail),
      signal: abort.signal,
    });
    if (!boolQuery(c, "stdout") && !boolQuery(c, "stderr")) {
      throw invalidArgument("You must choose at least one stream");
    }
    return streamResponse(source, {
      contentType: container.config.Tty
        ? "application/vnd.docker.raw-stream"
        : "application/vnd.docker.multiplexed-stream",
      signal: abort,
    });
  });

  app.post("/:id/attach", (c) => {
    const container = backend.get(c.req.param("id"));
    const hijack = c.env?.hijack;
    if (!hijack) {
      throw invalidArgument(
        "attach needs a connection upgrade (Connection: Upgrade, Upgrade: tcp)",
      );
    }
    if (container.state.Status === "paused") {
      throw conflict("You cannot attach to a paused container, unpause it first");
    }
    const detachKeys = parseDetachKeys(c.req.query("detachKeys"));
    const wantStream = boolQuery(c, "stream");
    upgradeConnection(
      hijack,
      container.config.Tty
        ? "application/vnd.docker.raw-stream"
        : "application/vnd.docker.multiplexed-stream",
    );
    pipeHijacked(hijack, {
      tty: container.config.Tty === true,
      detachKeys,
      open: (io) =>
        backend.attach(container.id, {
          stdin: boolQuery(c, "stdin"),
          stdout: boolQuery(c, "stdout"),
          stderr: boolQuery(c, "stderr"),
          ...io,
        }),
    });
    if (!wantStream) hijack.socket.end();
    return hijackedResponse();
  });

  return app;
}

/** Docker's `GET /containers/json` item. */
export function summaryView(container: Container, backend: Partial<ViewBackend> = {}) {
  const settings = backend.networkSettings?.(container.id) as
    | { Networks?: Record<string, unknown> }
    | undefined;
  return {
    Id: container.id,
    Names: [`/${container.name}`],
    Image: container.image,
    ImageID: container.imageId,
    Command: [container.path, ...container.args].map(quoteArg).join(" "),
    Created: Math.floor(Date.parse(container.created) / 1000),
    Ports: backend.portsSummary?.(container.id) ?? [],
    Labels: container.config.Labels ?? {},
    State: container.state.Status,
    Status: statusText(container),
    HostConfig: {
      NetworkMode: container.hostConfig.NetworkMode ?? "default",
      Runtime: container.runtime,
    },
    NetworkSettings: { Networks: settings?.Networks ?? {} },
    Mounts: container.mounts ?? [],
  };
}

/** Docker's `GET /containers/{id}/json` answer. */
export function inspectView(
  container: Container,
  backend: ViewBackend,
  options: ContainerRoutesOptions = {},
) {
  const execs = options.execIds?.(container.id) ?? [];
  const dir = backend.dir(container.id);
  const state = container.state;
  return {
    Id: container.id,
    Created: container.created,
    Path: container.path,
    Args: container.args,
    State: {
      Status: state.Status,
      Running: state.Status === "running" || state.Status === "paused",
      Paused: state.Status === "paused",
      Restarting: state.Status === "restarting",
      OOMKilled: state.OOMKilled,
      Dead: state.Status === "dead",
      Pid: state.Pid,
      ExitCode: state.ExitCode,
      Error: state.Error,
      StartedAt: state.StartedAt,
      FinishedAt: state.FinishedAt,
    },
    Image: container.imageId,
    ResolvConfPath: `${dir}/resolv.conf`,
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    LogPath: logPathOf(container.hostConfig.LogConfig, dir),
    Name: `/${container.name}`,
    RestartCount: container.restartCount,
    Driver: container.snapshotter,
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: execs.length > 0 ? execs : null,
    HostConfig: {
      ...container.hostConfig,
      LogConfig: container.hostConfig.LogConfig ?? { Type: "json-file", Config: {} },
      RestartPolicy: container.hostConfig.RestartPolicy ?? { Name: "no", MaximumRetryCount: 0 },
    },
    GraphDriver: { Name: container.snapshotter, Data: null },
    Mounts: container.mounts ?? [],
    Config: container.config,
    NetworkSettings: backend.networkSettings?.(container.id) ?? emptyNetworkSettings(),
  };
}

/** `Up 5 seconds`, `Exited (0) 3 minutes ago`, `Created`, as Docker's list shows. */
export function statusText(container: Container, now = Date.now()): string {
  const state = container.state;
  switch (state.Status) {
    case "running":
      return `Up ${humanDuration(now - Date.parse(state.StartedAt))}`;
    case "paused":
      return `Up ${humanDuration(now - Date.parse(state.StartedAt))} (Paused)`;
    case "exited":
      return `Exited (${state.ExitCode}) ${humanDuration(now - Date.parse(state.FinishedAt))} ago`;
    case "restarting":
      return `Restarting (${state.ExitCode}) ${
        humanDuration(now - Date.parse(state.FinishedAt))
      } ago`;
    case "created":
      return "Created";
    case "removing":
      return "Removal In Progress";
    case "dead":
      return "Dead";
    default:
      return state.Status;
  }
}

/** Docker's `HumanDuration`. */
export function humanDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.round(seconds / 60);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(seconds / 3600);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.round(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.round(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.round(hours / 24 / 30)} months`;
  return `${Math.round(hours / 24 / 365)} years`;
}

function matchesFilters(container: Container, filters: Record<string, string[]>): boolean {
  for (const [key, values] of Object.entries(filters)) {
    if (values.length === 0) continue;
    const ok = values.some((value) => {
      switch (key) {
        case "id":
          return container.id.startsWith(value);
        case "name":
          return new RegExp(value).test(container.name) ||
            new RegExp(value).test(`/${container.name}`);
        case "status":
          return container.state.Status === value;
        case "label": {
          const [k, v] = splitOnce(value, "=");
          const labels = container.config.Labels ?? {};
          return v === undefined ? k in labels : labels[k] === v;
        }
        case "ancestor":
          return container.image === value || container.imageId.startsWith(value) ||
            container.imageId.replace(/^sha256:/, "").startsWith(value);
        case "exited":
          return container.state.Status === "exited" && String(container.state.ExitCode) === value;
        default:
          throw invalidArgument(`invalid filter '${key}'`);
      }
    });
    if (!ok) return false;
  }
  return true;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const index = text.indexOf(separator);
  return index < 0 ? [text, undefined] : [text.slice(0, index), text.slice(index + 1)];
}

function quoteArg(arg: string): string {
  return /\s/.test(arg) ? JSON.stringify(arg) : arg;
}

/** Docker's `since`/`until`: unix seconds (with fractions) or an RFC 3339 time; 0 means unset. */
function timeQuery(value: string | undefined): number | undefined {
  if (value === undefined || value === "" || value === "0") return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw invalidArgument(`invalid time value: ${value}`);
  return time / 1000;
}

function parseTail(value: string): number {
  if (!/^\d+$/.test(value)) throw invalidArgument(`invalid tail value: ${value}`);
  return Number(value);
}

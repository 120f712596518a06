/**
 * Container commands: create, run, start, stop, kill, restart, rm, pause, unpause, wait, rename,
 * logs, inspect, ps. Each parses its flags, calls the API, prints.
 *
 * @module
 */

import { detachKeyBytes, resizeContainer, runSession } from "./attach.ts";
import { type ApiClient, ApiError } from "./client.ts";
import {
  type Command,
  type CommandContext,
  err,
  forEachArg,
  forEachArgInParallel,
  out,
  printError,
} from "./command.ts";
import { buildCreateRequest, createFlags, type CreateRequest, runFlags } from "./create.ts";
import { type Flags, type FlagSpec, invalidValue, UsageError } from "./flags.ts";
import { indentJson, parseFormat, renderRows, shortId, tabulate, timeAgo } from "./format.ts";
import { pullImage } from "./registry.ts";
import { copyOutput } from "./stream.ts";
import { Template } from "./template.ts";

/** A port of a list item. */
interface PortSummary {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

/** An item of `GET /containers/json` (Docker's shape plus `HostConfig.Runtime`). */
export interface ContainerSummary {
  Id: string;
  Names?: string[];
  Image?: string;
  ImageID?: string;
  Command?: string;
  Created?: number;
  Ports?: PortSummary[];
  Labels?: Record<string, string> | null;
  State?: string;
  Status?: string;
  SizeRw?: number;
  SizeRootFs?: number;
  HostConfig?: { NetworkMode?: string; Runtime?: string };
  Mounts?: Array<{ Name?: string; Source?: string; Destination?: string }>;
  NetworkSettings?: { Networks?: Record<string, unknown> };
}

/** The parts of `GET /containers/{id}/json` the CLI reads. */
interface ContainerInspect {
  Id: string;
  Name?: string;
  Config?: { Tty?: boolean; OpenStdin?: boolean };
  HostConfig?: { AutoRemove?: boolean };
}

/** The answer of `POST /containers/{id}/wait`. */
interface WaitResponse {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

const enc = encodeURIComponent;

// ---- create / run / start (attach) -------------------------------------------------------

/** Exit code of a failed start, as Docker's CLI picks it from the message. */
export function startFailureExitCode(message: string): number {
  if (/executable file not found|no such file or directory/i.test(message)) return 127;
  if (/permission denied/i.test(message)) return 126;
  return 125;
}

/** `busybox` -> `busybox:latest`, as Docker shows it in "Unable to find image". */
function withDefaultTag(image: string): string {
  if (image.includes("@")) return image;
  const lastSlash = image.lastIndexOf("/");
  return image.slice(lastSlash + 1).includes(":") ? image : `${image}:latest`;
}

async function createContainer(ctx: CommandContext, req: CreateRequest): Promise<string> {
  const create = async () => {
    const created = await ctx.client.json<{ Id: string; Warnings?: string[] | null }>(
      "POST",
      "/containers/create",
      { query: { name: req.name }, json: req.body },
    );
    for (const warning of created.Warnings ?? []) await err(ctx, `WARNING: ${warning}\n`);
    return created.Id;
  };
  try {
    return await create();
  } catch (error) {
    if (
      !(error instanceof ApiError && error.status === 404 && /no such image/i.test(error.message))
    ) {
      throw error;
    }
    // Docker's run and create pull a missing image, showing the progress on stderr.
    await err(ctx, `Unable to find image '${withDefaultTag(req.image)}' locally\n`);
    await pullImage(ctx, req.image, { toStderr: true });
    return await create();
  }
}

function createOptions(ctx: CommandContext, isRun: boolean) {
  return { lookupEnv: ctx.env, readFile: ctx.readTextFile, isRun, cwd: Deno.cwd };
}

/** How to attach to a container around its start. */
interface AttachOptions {
  /** The container has a TTY: the stream is raw, not multiplexed. */
  tty: boolean;
  /** Copy our stdin into the container. */
  stdin: boolean;
  /** Wait for `removed` rather than `next-exit` (`--rm`). */
  autoRemove: boolean;
  /** `--detach-keys`, Docker's format. */
  detachKeys?: string;
}

/**
 * Docker's attached start: attach (hijacked) and register the wait before starting, then copy
 * the streams until the container's output ends, and answer its exit code.
 */
async function attachAndStart(
  ctx: CommandContext,
  id: string,
  options: AttachOptions,
): Promise<number> {
  const client = ctx.client;
  if (options.detachKeys !== undefined) detachKeyBytes(options.detachKeys);
  // Attach and register the wait at once, then start: Docker's order without a round trip
  // between the two. The wait's headers come as soon as it is registered (the Docker CLI
  // waits for them too), so the start never races the container's exit.
  const attached = client.hijack("POST", `/containers/${enc(id)}/attach`, {
    query: {
      stream: true,
      stdin: options.stdin || undefined,
      stdout: true,
      stderr: true,
      detachKeys: options.detachKeys,
    },
  });
  let waitError: unknown;
  const waitResult = client.jsonAnswer<WaitResponse>("POST", `/containers/${enc(id)}/wait`, {
    query: { condition: options.autoRemove ? "removed" : "next-exit" },
  });
  const waitStatus = waitResult.then((answer) => answer.json()).catch((error) => {
    waitError = error;
    return undefined;
  });
  const [conn] = await Promise.all([
    attached.catch(async (error) => {
      // The wait must not outlive a failed attach.
      await waitResult.then((answer) => answer.close(), () => {});
      throw error;
    }),
    waitResult.catch(() => undefined),
  ]);

  let stopProxy: (() => void) | undefined;
  let detached = false;
  try {
    try {
      await client.call("POST", `/containers/${enc(id)}/start`);
    } catch (error) {
      conn.close();
      await printError(ctx, error);
      return error instanceof ApiError ? startFailureExitCode(error.message) : 125;
    }
    // Without a TTY, ^C reaches us, not the container: forward it (Docker's sig-proxy).
    if (!options.tty && ctx.onSignal) {
      stopProxy = ctx.onSignal((signal) => {
        client.call("POST", `/containers/${enc(id)}/kill`, { query: { signal } }).catch(() => {});
      });
    }
    ({ detached } = await runSession(ctx, conn, {
      tty: options.tty,
      stdin: options.stdin,
      detachKeys: options.detachKeys,
      resize: (size) => resizeContainer(ctx, id, size),
    }));
  } finally {
    stopProxy?.();
    conn.close();
  }
  if (detached) {
    // The detach keys ended the stream: the container runs on, as after `run -d`.
    const state = await client.json<{ State?: { Running?: boolean } }>(
      "GET",
      `/containers/${enc(id)}/json`,
    ).catch(() => undefined);
    if (state?.State?.Running) return 0;
  }
  const status = await waitStatus;
  if (status === undefined) {
    await printError(ctx, waitError);
    return 125;
  }
  if (status.Error?.Message) {
    await err(ctx, `Error waiting for container: ${status.Error.Message}\n`);
    return 125;
  }
  return status.StatusCode;
}

const createCommand: Command = {
  name: "create",
  usage: "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
  description: "Create a new container",
  flags: createFlags,
  stopAtFirstArg: true,
  minArgs: 1,
  errorExitCode: 125,
  async run(ctx, flags) {
    const req = buildCreateRequest(flags, createOptions(ctx, false));
    const id = await createContainer(ctx, req);
    await out(ctx, id + "\n");
    return 0;
  },
};

const runCommand: Command = {
  name: "run",
  usage: "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
  description: "Create and run a new container from an image",
  flags: runFlags,
  stopAtFirstArg: true,
  minArgs: 1,
  errorExitCode: 125,
  async run(ctx, flags) {
    const req = buildCreateRequest(flags, createOptions(ctx, true));
    const id = await createContainer(ctx, req);
    if (req.detach) {
      try {
        await ctx.client.call("POST", `/containers/${enc(id)}/start`);
      } catch (error) {
        await printError(ctx, error);
        return error instanceof ApiError ? startFailureExitCode(error.message) : 125;
      }
      await out(ctx, id + "\n");
      return 0;
    }
    return await attachAndStart(ctx, id, {
      tty: req.tty,
      stdin: req.interactive,
      autoRemove: req.autoRemove,
      detachKeys: flags.string("detach-keys"),
    });
  },
};

const startCommand: Command = {
  name: "start",
  usage: "start [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Start one or more stopped containers",
  flags: [
    {
      name: "attach",
      short: "a",
      kind: "bool",
      description: "Attach STDOUT/STDERR and forward signals",
    },
    { name: "interactive", short: "i", kind: "bool", description: "Attach container's STDIN" },
    {
      name: "detach-keys",
      kind: "string",
      description: "Override the key sequence for detaching a container",
    },
  ],
  minArgs: 1,
  async run(ctx, flags) {
    const attach = flags.bool("attach") || flags.bool("interactive");
    if (attach) {
      if (flags.args.length > 1) {
        throw new UsageError("you cannot start and attach multiple containers at once");
      }
      const info = await ctx.client.json<ContainerInspect>(
        "GET",
        `/containers/${enc(flags.args[0]!)}/json`,
      );
      return await attachAndStart(ctx, info.Id, {
        tty: info.Config?.Tty === true,
        stdin: flags.bool("interactive") && info.Config?.OpenStdin === true,
        autoRemove: info.HostConfig?.AutoRemove === true,
        detachKeys: flags.string("detach-keys"),
      });
    }
    return await forEachArg(ctx, flags.args, async (name) => {
      await ctx.client.call("POST", `/containers/${enc(name)}/start`);
      await out(ctx, name + "\n");
    });
  },
};

// ---- simple lifecycle commands -----------------------------------------------------------

function timeoutQuery(flags: Flags): { t?: number } {
  return flags.has("time") ? { t: flags.int("time") } : {};
}

const timeFlag = {
  name: "time",
  aliases: ["timeout"],
  short: "t",
  kind: "string",
  description: "Seconds to wait before killing the container",
} satisfies FlagSpec;

const stopCommand: Command = {
  name: "stop",
  usage: "stop [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Stop one or more running containers",
  flags: [timeFlag],
  minArgs: 1,
  run(ctx, flags) {
    const query = timeoutQuery(flags);
    return forEachArgInParallel(ctx, flags.args, async (name) => {
      await ctx.client.call("POST", `/containers/${enc(name)}/stop`, { query });
      return name;
    });
  },
};

const restartCommand: Command = {
  name: "restart",
  usage: "restart [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Restart one or more containers",
  flags: [timeFlag],
  minArgs: 1,
  run(ctx, flags) {
    const query = timeoutQuery(flags);
    return forEachArg(ctx, flags.args, async (name) => {
      await ctx.client.call("POST", `/containers/${enc(name)}/restart`, { query });
      await out(ctx, name + "\n");
    });
  },
};

const killCommand: Command = {
  name: "kill",
  usage: "kill [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Kill one or more running containers",
  flags: [{
    name: "signal",
    short: "s",
    kind: "string",
    description: "Signal to send to the container",
  }],
  minArgs: 1,
  run(ctx, flags) {
    const signal = flags.string("signal");
    return forEachArgInParallel(ctx, flags.args, async (name) => {
      await ctx.client.call("POST", `/containers/${enc(name)}/kill`, { query: { signal } });
      return name;
    });
  },
};

const rmCommand: Command = {
  name: "rm",
  usage: "rm [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Remove one or more containers",
  flags: [
    {
      name: "force",
      short: "f",
      kind: "bool",
      description: "Force the removal of a running container (uses SIGKILL)",
    },
    {
      name: "volumes",
      short: "v",
      kind: "bool",
      description: "Remove anonymous volumes associated with the container",
    },
  ],
  minArgs: 1,
  run(ctx, flags) {
    const query = {
      force: flags.bool("force") || undefined,
      v: flags.bool("volumes") || undefined,
    };
    return forEachArgInParallel(ctx, flags.args, async (name) => {
      await ctx.client.call("DELETE", `/containers/${enc(name)}`, { query });
      return name;
    });
  },
};

function simpleCommand(name: string, description: string, action: string): Command {
  return {
    name,
    usage: `${name} CONTAINER [CONTAINER...]`,
    description,
    flags: [],
    minArgs: 1,
    run(ctx, flags) {
      return forEachArgInParallel(ctx, flags.args, async (arg) => {
        await ctx.client.call("POST", `/containers/${enc(arg)}/${action}`);
        return arg;
      });
    },
  };
}

const waitCommand: Command = {
  name: "wait",
  usage: "wait CONTAINER [CONTAINER...]",
  description: "Block until one or more containers stop, then print their exit codes",
  flags: [],
  minArgs: 1,
  run(ctx, flags) {
    return forEachArg(ctx, flags.args, async (name) => {
      const res = await ctx.client.json<WaitResponse>("POST", `/containers/${enc(name)}/wait`);
      await out(ctx, `${res.StatusCode}\n`);
    });
  },
};

const renameCommand: Command = {
  name: "rename",
  usage: "rename CONTAINER NEW_NAME",
  description: "Rename a container",
  flags: [],
  minArgs: 2,
  maxArgs: 2,
  async run(ctx, flags) {
    const [oldName, newName] = flags.args as [string, string];
    if (newName.trim() === "") {
      throw new UsageError("Error: Neither old nor new names may be empty");
    }
    await ctx.client.call("POST", `/containers/${enc(oldName)}/rename`, {
      query: { name: newName },
    });
    return 0;
  },
};

// ---- logs --------------------------------------------------------------------------------

/**
 * Docker's `--since`/`--until` values: a unix timestamp, an RFC 3339 time, or a Go duration
 * relative to now (`10m`, `1h30m`); answered as unix seconds.
 */
export function parseTimestamp(value: string, now = Date.now()): string {
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const duration = /^(?:\d+(?:\.\d+)?(?:h|m|s|ms|us|ns))+$/.test(value);
  if (duration) {
    const unitsMs: Record<string, number> = { h: 3.6e6, m: 6e4, s: 1e3, ms: 1, us: 1e-3, ns: 1e-6 };
    let ms = 0;
    for (const m of value.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)/g)) {
      ms += Number(m[1]) * unitsMs[m[2]!]!;
    }
    return String(Math.floor((now - ms) / 1000));
  }
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) throw new Error(`invalid time value: ${value}`);
  return String(Math.floor(parsed / 1000));
}

const logsCommand: Command = {
  name: "logs",
  usage: "logs [OPTIONS] CONTAINER",
  description: "Fetch the logs of a container",
  flags: [
    { name: "follow", short: "f", kind: "bool", description: "Follow log output" },
    {
      name: "tail",
      short: "n",
      kind: "string",
      description: "Number of lines to show from the end of the logs",
      default: '"all"',
    },
    {
      name: "since",
      kind: "string",
      description:
        "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)",
    },
    {
      name: "until",
      kind: "string",
      description:
        "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m for 42 minutes)",
    },
    { name: "timestamps", short: "t", kind: "bool", description: "Show timestamps" },
  ],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    const name = flags.args[0]!;
    const tail = flags.string("tail");
    if (tail !== undefined && tail !== "all" && !/^\d+$/.test(tail)) {
      throw invalidValue(flags.spec("tail"), tail, 'must be a number or "all"');
    }
    const since = flags.string("since");
    const until = flags.string("until");
    const info = await ctx.client.json<ContainerInspect>("GET", `/containers/${enc(name)}/json`);
    const res = await ctx.client.request("GET", `/containers/${enc(name)}/logs`, {
      query: {
        stdout: true,
        stderr: true,
        follow: flags.bool("follow") || undefined,
        timestamps: flags.bool("timestamps") || undefined,
        tail,
        since: since === undefined ? undefined : parseTimestamp(since),
        until: until === undefined ? undefined : parseTimestamp(until),
      },
    });
    await copyOutput(res.body, ctx, { multiplexed: info.Config?.Tty !== true });
    return 0;
  },
};

// ---- inspect -----------------------------------------------------------------------------

/** Options of {@link printInspect}. */
interface InspectOptions {
  /** `-f/--format` template. */
  format?: string;
  /** Fetches one object (throws when not found). */
  fetch: (name: string) => Promise<unknown>;
  /** What a missing one is called: `object`, `container`, `image`. */
  noun: string;
}

/** Prints objects as `docker inspect` does: a JSON array, or one template line each. */
export async function printInspect(
  ctx: CommandContext,
  names: string[],
  options: InspectOptions,
): Promise<number> {
  const template = options.format ? new Template(options.format) : undefined;
  const found: unknown[] = [];
  let failed = false;
  for (const name of names) {
    try {
      const obj = await options.fetch(name);
      if (template) await out(ctx, template.execute(obj) + "\n");
      else found.push(obj);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      failed = true;
      const message = error.status === 404
        ? `Error: No such ${options.noun}: ${name}`
        : `Error response from daemon: ${error.message}`;
      await err(ctx, message + "\n");
    }
  }
  if (!template) await out(ctx, indentJson(found));
  return failed ? 1 : 0;
}

const inspectFlags: FlagSpec[] = [
  {
    name: "format",
    short: "f",
    kind: "string",
    description: "Format output using a custom template",
  },
];

/** Fetches a container, or an image when `type` allows and no container has that name. */
export function fetchObject(client: ApiClient, type: string | undefined) {
  return async (name: string): Promise<unknown> => {
    if (type === "image") return await client.json("GET", `/images/${enc(name)}/json`);
    try {
      return await client.json("GET", `/containers/${enc(name)}/json`);
    } catch (error) {
      if (type === "container" || !(error instanceof ApiError) || error.status !== 404) throw error;
      return await client.json("GET", `/images/${enc(name)}/json`);
    }
  };
}

const inspectCommand: Command = {
  name: "inspect",
  usage: "inspect [OPTIONS] NAME|ID [NAME|ID...]",
  description: "Return low-level information on containers or images",
  flags: [
    ...inspectFlags,
    {
      name: "type",
      kind: "string",
      description: "Return JSON for specified type (container or image)",
    },
    {
      name: "size",
      short: "s",
      kind: "bool",
      description: "Display total file sizes if the type is container",
    },
  ],
  minArgs: 1,
  run(ctx, flags) {
    const type = flags.string("type");
    if (type !== undefined && type !== "container" && type !== "image") {
      throw new UsageError(`"${type}" is not a valid value for --type`);
    }
    return printInspect(ctx, flags.args, {
      format: flags.string("format"),
      fetch: fetchObject(ctx.client, type),
      noun: type ?? "object",
    });
  },
};

const containerInspectCommand: Command = {
  ...inspectCommand,
  usage: "container inspect [OPTIONS] CONTAINER [CONTAINER...]",
  description: "Display detailed information on one or more containers",
  flags: [...inspectFlags],
  run(ctx, flags) {
    return printInspect(ctx, flags.args, {
      format: flags.string("format"),
      fetch: fetchObject(ctx.client, "container"),
      noun: "container",
    });
  },
};

// ---- ps ----------------------------------------------------------------------------------

/** Go's `time.Time.String()` in UTC: `2024-01-02 15:04:05 +0000 UTC`. */
function goTime(seconds: number): string {
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

function formatPorts(ports: PortSummary[] | undefined): string {
  return (ports ?? []).map((p) =>
    p.PublicPort
      ? `${p.IP ? p.IP + ":" : ""}${p.PublicPort}->${p.PrivatePort}/${p.Type}`
      : `${p.PrivatePort}/${p.Type}`
  ).join(", ");
}

function ellipsis(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : chars.slice(0, max - 1).join("") + "…";
}

/** Options of {@link containerRow}. */
export interface ContainerRowOptions {
  /** `--no-trunc`. */
  noTrunc: boolean;
  /** Now, in ms (tests pin it). */
  now?: number;
}

/** One container as the fields a `--format` template of `ps` sees (Docker's, plus pouch's). */
export function containerRow(
  c: ContainerSummary,
  options: ContainerRowOptions,
): Record<string, string> {
  const names = (c.Names ?? []).map((n) => n.replace(/^\//, ""));
  const command = c.Command ?? "";
  const created = c.Created ?? 0;
  return {
    ID: options.noTrunc ? c.Id : shortId(c.Id),
    Names: names.join(","),
    Name: names[0] ?? "",
    Image: c.Image ?? "",
    Command: JSON.stringify(options.noTrunc ? command : ellipsis(command, 20)),
    CreatedAt: goTime(created),
    RunningFor: timeAgo(created, options.now),
    Created: timeAgo(created, options.now),
    Ports: formatPorts(c.Ports),
    State: c.State ?? "",
    Status: c.Status || c.State || "",
    Size: sizeText(c),
    Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(","),
    Mounts: (c.Mounts ?? []).map((m) => m.Name || m.Source || "").join(","),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(","),
    Runtime: c.HostConfig?.Runtime || "runc",
  };
}

/** Options of {@link formatPsTable}. */
export interface PsTableOptions extends ContainerRowOptions {
  /** `-s`: add a Size column. */
  size?: boolean;
}

/**
 * PouchContainer's `ps` table: `Name  ID  Status  Created  Image  Runtime`, ID of 6 chars. The
 * cells are {@link containerRow}'s, computed alone: `ps -a` may list thousands of containers.
 */
export function formatPsTable(containers: ContainerSummary[], options: PsTableOptions): string {
  const header = ["Name", "ID", "Status", "Created", "Image", "Runtime"];
  if (options.size) header.push("Size");
  const now = options.now ?? Date.now();
  const rows = [header];
  for (const c of containers) {
    const row = [
      bareName(c.Names?.[0] ?? ""),
      options.noTrunc ? c.Id : shortId(c.Id, 6),
      c.Status || c.State || "",
      timeAgo(c.Created ?? 0, now),
      c.Image ?? "",
      c.HostConfig?.Runtime || "runc",
    ];
    if (options.size) row.push(sizeText(c));
    rows.push(row);
  }
  return tabulate(rows, { minWidth: 0, padding: 3 });
}

function bareName(name: string): string {
  return name.startsWith("/") ? name.slice(1) : name;
}

function sizeText(c: ContainerSummary): string {
  return c.SizeRw !== undefined ? `${c.SizeRw}B (virtual ${c.SizeRootFs ?? 0}B)` : "";
}

const psHeaders: Record<string, string> = {
  ID: "CONTAINER ID",
  Names: "NAMES",
  Name: "NAME",
  Image: "IMAGE",
  Command: "COMMAND",
  CreatedAt: "CREATED AT",
  RunningFor: "CREATED",
  Created: "CREATED",
  Ports: "PORTS",
  State: "STATE",
  Status: "STATUS",
  Size: "SIZE",
  Labels: "LABELS",
  Mounts: "MOUNTS",
  Networks: "NETWORKS",
  Runtime: "RUNTIME",
};

/** Turns `-f key=value` flags into the API's `filters` JSON (`{"key": {"value": true}}`). */
export function buildFilters(entries: string[]): string | undefined {
  if (entries.length === 0) return undefined;
  const filters: Record<string, Record<string, boolean>> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value)`);
    const key = entry.slice(0, eq).trim().toLowerCase();
    (filters[key] ??= {})[entry.slice(eq + 1)] = true;
  }
  return JSON.stringify(filters);
}

const psCommand: Command = {
  name: "ps",
  usage: "ps [OPTIONS]",
  description: "List containers",
  flags: [
    {
      name: "all",
      short: "a",
      kind: "bool",
      description: "Show all containers (default shows just running)",
    },
    { name: "quiet", short: "q", kind: "bool", description: "Only display container IDs" },
    { name: "no-trunc", kind: "bool", description: "Don't truncate output" },
    {
      name: "filter",
      short: "f",
      kind: "list",
      description: "Filter output based on conditions provided",
    },
    {
      name: "format",
      kind: "string",
      description: "Format output using a custom template: 'table', 'json' or a Go template",
    },
    {
      name: "last",
      short: "n",
      kind: "string",
      description: "Show n last created containers (includes all states)",
      default: "-1",
    },
    {
      name: "latest",
      short: "l",
      kind: "bool",
      description: "Show the latest created container (includes all states)",
    },
    { name: "size", short: "s", kind: "bool", description: "Display total file sizes" },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    let limit = flags.int("last");
    if (flags.bool("latest")) limit = 1;
    const format = parseFormat(flags.string("format"));
    const containers = await ctx.client.json<ContainerSummary[]>("GET", "/containers/json", {
      query: {
        all: flags.bool("all") || undefined,
        limit: limit !== undefined && limit > 0 ? limit : undefined,
        size: flags.bool("size") || undefined,
        filters: buildFilters(flags.list("filter")),
      },
    });
    const noTrunc = flags.bool("no-trunc");
    if (flags.bool("quiet")) {
      await out(ctx, containers.map((c) => (noTrunc ? c.Id : shortId(c.Id)) + "\n").join(""));
      return 0;
    }
    if (format.kind === "table" && format.template === undefined) {
      await out(ctx, formatPsTable(containers, { noTrunc, size: flags.bool("size") }));
      return 0;
    }
    const rows = containers.map((c) => containerRow(c, { noTrunc }));
    await out(ctx, renderRows(rows, format, { headers: psHeaders, defaultTable: "" }));
    return 0;
  },
};

/** Top-level container commands (`pouch run`, `pouch ps`, ...). */
export const containerCommands: Command[] = [
  createCommand,
  runCommand,
  startCommand,
  stopCommand,
  restartCommand,
  killCommand,
  rmCommand,
  simpleCommand("pause", "Pause all processes within one or more containers", "pause"),
  simpleCommand("unpause", "Unpause all processes within one or more containers", "unpause"),
  waitCommand,
  renameCommand,
  logsCommand,
  inspectCommand,
  psCommand,
];

/** The `container` group: the same commands, `ls` for `ps`, `inspect` limited to containers. */
export const containerGroupCommands: Command[] = containerCommands.map((c) => {
  if (c.name === "inspect") return containerInspectCommand;
  if (c.name === "ps") {
    return { ...c, name: "ls", aliases: ["ps", "list"], usage: "container ls [OPTIONS]" };
  }
  if (c.name === "rm") return { ...c, aliases: ["remove"] };
  return c;
});

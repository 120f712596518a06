/**
 * Commands that watch containers: `top`, `stats`, `events`, `port` and `diff`. Each calls one
 * API route and prints what Docker's CLI prints.
 *
 * @module
 */
import { jsonMessages } from "./client.ts";
import { type Command, type CommandContext, out } from "./command.ts";
import { parseTimestamp } from "./container.ts";
import { type FlagSpec, UsageError } from "./flags.ts";
import { humanSize, naturalCompare, parseFormat, renderRows, shortId, tabulate } from "./format.ts";
import { Template } from "./template.ts";

const enc = encodeURIComponent;

// ---- top ---------------------------------------------------------------------------------

/** `pouch top CONTAINER [ps OPTIONS]`. */
export const topCommand: Command = {
  name: "top",
  usage: "top CONTAINER [ps OPTIONS]",
  description: "Display the running processes of a container",
  flags: [],
  stopAtFirstArg: true,
  minArgs: 1,
  async run(ctx, flags) {
    const [name, ...psArgs] = flags.args as [string, ...string[]];
    const top = await ctx.client.json<{ Titles: string[]; Processes: string[][] | null }>(
      "GET",
      `/containers/${enc(name)}/top`,
      { query: { ps_args: psArgs.length > 0 ? psArgs.join(" ") : undefined } },
    );
    await out(ctx, tabulate([top.Titles, ...(top.Processes ?? [])], { minWidth: 20 }));
    return 0;
  },
};

// ---- stats -------------------------------------------------------------------------------

/** The parts of Docker's stats JSON the CLI reads. */
export interface StatsSample {
  id?: string;
  name?: string;
  read?: string;
  pids_stats?: { current?: number };
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
  cpu_stats?: CpuSample;
  precpu_stats?: CpuSample;
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

interface CpuSample {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] };
  system_cpu_usage?: number;
  online_cpus?: number;
}

/** Docker's `calculateCPUPercentUnix`: the container's share of the host's CPU time, times CPUs. */
export function cpuPercent(sample: StatsSample): number {
  const cpu = sample.cpu_stats;
  const pre = sample.precpu_stats;
  const cpuDelta = (cpu?.cpu_usage?.total_usage ?? 0) - (pre?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu?.system_cpu_usage ?? 0) - (pre?.system_cpu_usage ?? 0);
  let cpus = cpu?.online_cpus ?? 0;
  if (cpus === 0) cpus = cpu?.cpu_usage?.percpu_usage?.length ?? 0;
  if (systemDelta > 0 && cpuDelta > 0) return (cpuDelta / systemDelta) * cpus * 100;
  return 0;
}

/** Docker's memory usage without the page cache (cgroup v1 `total_inactive_file`). */
export function memoryUsage(sample: StatsSample): number {
  const memory = sample.memory_stats;
  const usage = memory?.usage ?? 0;
  const inactive = memory?.stats?.total_inactive_file ?? memory?.stats?.inactive_file;
  return inactive !== undefined && inactive < usage ? usage - inactive : usage;
}

const binaryUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/** Docker's `units.BytesSize`: binary units, four significant digits (`1.523MiB`). */
export function bytesSize(bytes: number): string {
  let size = bytes;
  let i = 0;
  while (size >= 1024 && i < binaryUnits.length - 1) {
    size /= 1024;
    i++;
  }
  return `${Number(size.toPrecision(4))}${binaryUnits[i]}`;
}

/** One container's `stats` row, by the field names `--format` templates use. */
export function statsRow(sample: StatsSample, options: { noTrunc?: boolean } = {}) {
  const usage = memoryUsage(sample);
  const limit = sample.memory_stats?.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const network of Object.values(sample.networks ?? {})) {
    rx += network.rx_bytes;
    tx += network.tx_bytes;
  }
  let read = 0;
  let write = 0;
  for (const entry of sample.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (entry.op.toLowerCase() === "read") read += entry.value;
    if (entry.op.toLowerCase() === "write") write += entry.value;
  }
  const id = sample.id ?? "";
  return {
    Container: options.noTrunc ? id : shortId(id),
    ID: options.noTrunc ? id : shortId(id),
    Name: (sample.name ?? "").replace(/^\//, ""),
    CPUPerc: `${cpuPercent(sample).toFixed(2)}%`,
    MemUsage: `${bytesSize(usage)} / ${bytesSize(limit)}`,
    MemPerc: `${(limit > 0 ? (usage / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: `${humanSize(rx)} / ${humanSize(tx)}`,
    BlockIO: `${humanSize(read)} / ${humanSize(write)}`,
    PIDs: String(sample.pids_stats?.current ?? 0),
  };
}

const statsHeaders: Record<string, string> = {
  Container: "CONTAINER",
  ID: "CONTAINER ID",
  Name: "NAME",
  CPUPerc: "CPU %",
  MemUsage: "MEM USAGE / LIMIT",
  MemPerc: "MEM %",
  NetIO: "NET I/O",
  BlockIO: "BLOCK I/O",
  PIDs: "PIDS",
};

const statsTable =
  "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/** `pouch stats [OPTIONS] [CONTAINER...]`. */
export const statsCommand: Command = {
  name: "stats",
  usage: "stats [OPTIONS] [CONTAINER...]",
  description: "Display a live stream of container(s) resource usage statistics",
  flags: [
    {
      name: "all",
      short: "a",
      kind: "bool",
      description: "Show all containers (default shows just running)",
    },
    {
      name: "no-stream",
      kind: "bool",
      description: "Disable streaming stats and only pull the first result",
    },
    { name: "no-trunc", kind: "bool", description: "Do not truncate output" },
    { name: "format", kind: "string", description: "Format output using a custom template" },
  ],
  async run(ctx, flags) {
    let names = flags.args;
    if (names.length === 0) {
      const list = await ctx.client.json<Array<{ Id: string }>>("GET", "/containers/json", {
        query: { all: flags.bool("all") || undefined },
      });
      names = list.map((c) => c.Id);
    }
    const format = parseFormat(flags.string("format"));
    const noTrunc = flags.bool("no-trunc");
    const render = (samples: StatsSample[]) =>
      renderRows(samples.map((s) => statsRow(s, { noTrunc })), format, {
        headers: statsHeaders,
        defaultTable: statsTable,
      });
    if (flags.bool("no-stream")) {
      const samples = await Promise.all(
        names.map((name) =>
          ctx.client.json<StatsSample>("GET", `/containers/${enc(name)}/stats`, {
            query: { stream: false },
          })
        ),
      );
      await out(ctx, render(samples));
      return 0;
    }
    return await streamStats(ctx, names, render);
  },
};

/** Keeps a stream per container and redraws the table a second, until interrupted. */
async function streamStats(
  ctx: CommandContext,
  names: string[],
  render: (samples: StatsSample[]) => string,
): Promise<number> {
  const latest = new Map<string, StatsSample>();
  const readers = names.map(async (name) => {
    const res = await ctx.client.request("GET", `/containers/${enc(name)}/stats`, {
      query: { stream: true },
    });
    for await (const message of jsonMessages(res.body)) latest.set(name, message as StatsSample);
  });
  let stopped = false;
  const done = Promise.allSettled(readers).then(() => (stopped = true));
  const stop = ctx.onSignal?.(() => (stopped = true));
  try {
    while (!stopped) {
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 1000))]);
      const samples = names.flatMap((name) => latest.get(name) ?? []);
      await out(ctx, `\x1b[2J\x1b[H${render(samples)}`);
    }
  } finally {
    stop?.();
  }
  const failure = (await Promise.allSettled(readers)).find((r) => r.status === "rejected");
  if (failure && failure.status === "rejected") throw failure.reason;
  return 0;
}

// ---- events ------------------------------------------------------------------------------

/** An event as `GET /events` sends it. */
export interface EventMessage {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/**
 * Docker's event line: `2026-11-23T10:00:00.000000000Z container start ID (image=busybox,
 * name=web)`, attributes sorted by key.
 */
export function formatEvent(event: EventMessage): string {
  let line = "";
  const nano = event.timeNano ?? (event.time ?? 0) * 1e9;
  if (nano !== 0) {
    const ms = Math.floor(nano / 1e6);
    const fraction = String(Math.round(nano - ms * 1e6)).padStart(6, "0");
    const iso = new Date(ms).toISOString();
    line += `${iso.slice(0, 19)}.${iso.slice(20, 23)}${fraction.slice(0, 6)}Z `;
  }
  line += `${event.Type} ${event.Action} ${event.Actor.ID}`;
  const attributes = Object.entries(event.Actor.Attributes ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0
  );
  if (attributes.length > 0) line += ` (${attributes.map(([k, v]) => `${k}=${v}`).join(", ")})`;
  return line + "\n";
}

/** Turns `-f key=value` flags into `GET /events`'s filters JSON (`{"key": ["value"]}`). */
export function eventFilters(entries: string[]): string | undefined {
  if (entries.length === 0) return undefined;
  const filters: Record<string, string[]> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new UsageError(`bad format of filter (expected name=value)`);
    (filters[entry.slice(0, eq).trim().toLowerCase()] ??= []).push(entry.slice(eq + 1));
  }
  return JSON.stringify(filters);
}

const timeFlags: FlagSpec[] = [
  { name: "since", kind: "string", description: "Show all events created since timestamp" },
  { name: "until", kind: "string", description: "Stream events until this timestamp" },
];

/** `pouch events [OPTIONS]`. */
export const eventsCommand: Command = {
  name: "events",
  usage: "events [OPTIONS]",
  description: "Get real time events from the server",
  flags: [
    ...timeFlags,
    {
      name: "filter",
      short: "f",
      kind: "list",
      description: "Filter output based on conditions provided",
    },
    {
      name: "format",
      kind: "string",
      description: "Format the output using the given Go template",
    },
  ],
  maxArgs: 0,
  async run(ctx, flags) {
    const since = flags.string("since");
    const until = flags.string("until");
    const format = flags.string("format");
    const template = format && format !== "json" ? new Template(format) : undefined;
    const res = await ctx.client.request("GET", "/events", {
      query: {
        since: since ? parseTimestamp(since) : undefined,
        until: until ? parseTimestamp(until) : undefined,
        filters: eventFilters(flags.list("filter")),
      },
    });
    for await (const message of jsonMessages(res.body)) {
      const event = message as EventMessage;
      if (format === "json") await out(ctx, JSON.stringify(event) + "\n");
      else if (template) await out(ctx, template.execute(event) + "\n");
      else await out(ctx, formatEvent(event));
    }
    return 0;
  },
};

// ---- port, diff --------------------------------------------------------------------------

/** `pouch port CONTAINER [PRIVATE_PORT[/PROTO]]`. */
export const portCommand: Command = {
  name: "port",
  usage: "port CONTAINER [PRIVATE_PORT[/PROTO]]",
  description: "List port mappings or a specific mapping for the container",
  flags: [],
  minArgs: 1,
  maxArgs: 2,
  async run(ctx, flags) {
    const [name, port] = flags.args as [string, string | undefined];
    const info = await ctx.client.json<{
      NetworkSettings?: {
        Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>;
      };
    }>("GET", `/containers/${enc(name)}/json`);
    const ports = info.NetworkSettings?.Ports ?? {};
    // Go's net.JoinHostPort: an IPv6 host address goes in brackets.
    const address = (b: { HostIp?: string; HostPort?: string }) => {
      const ip = b.HostIp || "0.0.0.0";
      return `${ip.includes(":") ? `[${ip}]` : ip}:${b.HostPort ?? ""}`;
    };
    const lines: string[] = [];
    if (port !== undefined) {
      const [number = "", proto = "tcp"] = port.split("/");
      if (!/^\d+$/.test(number) || Number(number) > 65535) {
        throw new Error(`invalid port (${number})`);
      }
      const bindings = ports[`${number}/${proto}`] ?? [];
      if (bindings.length === 0) throw new Error(`No public port '${port}' published for ${name}`);
      for (const b of bindings) lines.push(address(b));
    } else {
      for (const [key, bindings] of Object.entries(ports)) {
        for (const b of bindings ?? []) lines.push(`${key} -> ${address(b)}`);
      }
    }
    // The Docker CLI sorts its lines in natural order (`80/tcp` before `443/tcp`).
    lines.sort(naturalCompare);
    await out(ctx, lines.map((line) => line + "\n").join(""));
    return 0;
  },
};

/** `pouch diff CONTAINER`. */
export const diffCommand: Command = {
  name: "diff",
  usage: "diff CONTAINER",
  description: "Inspect changes to files or directories on a container's filesystem",
  flags: [],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    const changes = await ctx.client.json<Array<{ Path: string; Kind: number }> | null>(
      "GET",
      `/containers/${enc(flags.args[0]!)}/changes`,
    );
    const kinds = ["C", "A", "D"];
    await out(ctx, (changes ?? []).map((c) => `${kinds[c.Kind] ?? "?"} ${c.Path}\n`).join(""));
    return 0;
  },
};

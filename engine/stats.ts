/**
 * A running container's processes and resource usage: `docker top` (host `ps` filtered to the
 * container's pids) and `docker stats` (containerd's cgroup v1 metrics in Docker's stats JSON).
 *
 * @module
 */
import type { Container } from "./container.ts";
import type { Containerd } from "./containerd.ts";
import { conflict, invalidArgument, systemError } from "./errors.ts";
import { sleep } from "./sleep.ts";

/** `GET /containers/{id}/top`'s answer. */
export interface TopResult {
  Titles: string[];
  Processes: string[][];
}

/** CPU figures of a stats sample. */
export interface CpuStats {
  cpu_usage: {
    total_usage: number;
    percpu_usage?: number[];
    usage_in_kernelmode: number;
    usage_in_usermode: number;
  };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

/** A blkio counter. */
export interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** Docker's stats JSON (`types.StatsJSON`). */
export interface StatsJson {
  name: string;
  id: string;
  read: string;
  preread: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: Record<string, BlkioEntry[] | null>;
  num_procs: number;
  storage_stats: Record<string, never>;
  cpu_stats: CpuStats;
  precpu_stats: CpuStats;
  memory_stats: {
    usage?: number;
    max_usage?: number;
    stats?: Record<string, number>;
    failcnt?: number;
    limit?: number;
  };
  networks?: Record<string, NetworkStats>;
}

/** One interface's counters in `networks`. */
export interface NetworkStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

/** Options of {@link ContainerMonitor}. */
export interface ContainerMonitorOptions {
  client: Containerd;
  /** Finds a container by name or ID (throws NotFound). */
  containers: { get(ref: string): Container };
}

/** Options of {@link ContainerMonitor.stats}. */
export interface StatsOptions {
  /** Keep sending a sample a second; Docker's default. */
  stream?: boolean;
  /** With `stream` false: answer at once, without a previous sample. */
  oneShot?: boolean;
  /** Ends the stream. */
  signal?: AbortSignal;
  /** Time between samples in ms (tests shorten it); 1000 by default. */
  intervalMs?: number;
}

/** Lists containers' processes and samples their resource usage. */
export class ContainerMonitor {
  readonly #client: Containerd;
  readonly #containers: { get(ref: string): Container };

  /** A monitor of the containers `options.containers` finds. */
  constructor(options: ContainerMonitorOptions) {
    this.#client = options.client;
    this.#containers = options.containers;
  }

  /** `docker top`: the host's `ps` with `psArgs` (default `-ef`), rows of the container only. */
  async top(ref: string, psArgs = ""): Promise<TopResult> {
    const container = this.#containers.get(ref);
    if (container.state.Status !== "running" && container.state.Status !== "paused") {
      throw conflict(`Container ${container.id} is not running`);
    }
    const pids = await this.#client.tasks.pids(container.id);
    const args = psArgs.trim() === "" ? ["-ef"] : psArgs.trim().split(/\s+/);
    const result = await new Deno.Command("ps", { args, stdout: "piped", stderr: "piped" })
      .output();
    if (!result.success) {
      const message = new TextDecoder().decode(result.stderr).trim();
      throw invalidArgument(`Error running ps: ${message}`);
    }
    return parsePs(new TextDecoder().decode(result.stdout), pids);
  }

  /** `docker stats`: a sample a second while `stream`, else one (with the previous one). */
  async *stats(ref: string, options: StatsOptions = {}): AsyncGenerator<StatsJson> {
    const container = this.#containers.get(ref);
    const interval = options.intervalMs ?? 1000;
    let previous: StatsJson | undefined;
    if (!options.stream && !options.oneShot) {
      previous = await this.#sample(container.id);
      await sleep(interval, options.signal);
    }
    while (!options.signal?.aborted) {
      const current = await this.#sample(container.id, previous);
      yield current;
      if (!options.stream) return;
      previous = current;
      await sleep(interval, options.signal);
    }
  }

  async #sample(id: string, previous?: StatsJson): Promise<StatsJson> {
    const container = this.#containers.get(id);
    const running = container.state.Status === "running" || container.state.Status === "paused";
    let metrics: Metrics | undefined;
    if (running) {
      const [entry] = await this.#client.tasks.metrics([container.id]).catch(() => []);
      metrics = entry?.data as Metrics | undefined;
    }
    const system = running ? await systemCpuUsage() : undefined;
    const networks = running && container.state.Pid > 0
      ? await readNetDev(`/proc/${container.state.Pid}/net/dev`).catch(() => undefined)
      : undefined;
    return toStatsJson(
      { id: container.id, name: container.name },
      {
        metrics,
        system,
        networks,
        machineMemory: await machineMemory(),
        previous,
        now: new Date(),
      },
    );
  }
}

/**
 * Docker's parsing of `ps` output: the header gives the titles and where the PID column is;
 * each row is split on blanks, the last column keeping the rest of the line (the command).
 */
export function parsePs(output: string, pids: number[]): TopResult {
  const lines = output.split("\n").filter((line) => line.trim() !== "");
  const titles = (lines[0] ?? "").trim().split(/\s+/);
  const pidIndex = titles.indexOf("PID");
  if (pidIndex < 0) throw invalidArgument("Couldn't find PID field in ps output");
  const wanted = new Set(pids);
  const processes: string[][] = [];
  for (const line of lines.slice(1)) {
    const fields = line.trim().split(/\s+/);
    const pid = Number(fields[pidIndex]);
    if (!wanted.has(pid)) continue;
    const head = fields.slice(0, titles.length - 1);
    processes.push([...head, fields.slice(titles.length - 1).join(" ")]);
  }
  return { Titles: titles, Processes: processes };
}

/** containerd's `io.containerd.cgroups.v1.Metrics`, as decoded (camelCase). */
interface Metrics {
  pids?: { current?: number; limit?: number };
  cpu?: {
    usage?: { total?: number; kernel?: number; user?: number; perCpu?: number[] };
    throttling?: { periods?: number; throttledPeriods?: number; throttledTime?: number };
  };
  memory?: Record<string, unknown> & {
    usage?: { limit?: number; usage?: number; max?: number; failcnt?: number };
  };
  blkio?: Record<string, Array<{ op?: string; major?: number; minor?: number; value?: number }>>;
}

/** What one stats sample is made of. */
export interface SampleInput {
  metrics?: unknown;
  /** Host CPU time in ns (`/proc/stat`) and the number of online CPUs. */
  system?: { usage: number; cpus: number };
  networks?: Record<string, NetworkStats>;
  /** Host memory: the limit shown for a container without one. */
  machineMemory?: number;
  previous?: StatsJson;
  now: Date;
}

const ZERO_TIME = "0001-01-01T00:00:00Z";

/** Docker's stats JSON from containerd's cgroup v1 metrics. */
export function toStatsJson(
  container: { id: string; name: string },
  input: SampleInput,
): StatsJson {
  const metrics = (input.metrics ?? {}) as Metrics;
  const cpu = metrics.cpu;
  const cpuStats: CpuStats = {
    cpu_usage: {
      total_usage: cpu?.usage?.total ?? 0,
      percpu_usage: cpu?.usage?.perCpu?.length ? cpu.usage.perCpu : undefined,
      usage_in_kernelmode: cpu?.usage?.kernel ?? 0,
      usage_in_usermode: cpu?.usage?.user ?? 0,
    },
    system_cpu_usage: input.system?.usage,
    online_cpus: input.system?.cpus,
    throttling_data: {
      periods: cpu?.throttling?.periods ?? 0,
      throttled_periods: cpu?.throttling?.throttledPeriods ?? 0,
      throttled_time: cpu?.throttling?.throttledTime ?? 0,
    },
  };
  const memory = metrics.memory;
  const memoryStats: StatsJson["memory_stats"] = {};
  if (memory) {
    const stats: Record<string, number> = {};
    for (const [key, value] of Object.entries(memory)) {
      if (typeof value === "number") stats[snakeCase(key)] = value;
    }
    // Docker's cgroup v1 names of the page counters.
    for (const [from, to] of PAGE_COUNTERS) {
      if (from in stats) {
        stats[to] = stats[from]!;
        delete stats[from];
      }
    }
    let limit = memory.usage?.limit ?? 0;
    if (input.machineMemory && limit > input.machineMemory) limit = input.machineMemory;
    Object.assign(memoryStats, {
      usage: memory.usage?.usage ?? 0,
      max_usage: memory.usage?.max ?? 0,
      stats,
      failcnt: memory.usage?.failcnt ?? 0,
      limit,
    });
  }
  const blkio: Record<string, BlkioEntry[] | null> = {};
  for (const [from, to] of BLKIO_FIELDS) {
    const entries = metrics.blkio?.[from];
    blkio[to] = entries?.length
      ? entries.map((e) => ({
        major: e.major ?? 0,
        minor: e.minor ?? 0,
        op: e.op ?? "",
        value: e.value ?? 0,
      }))
      : null;
  }
  const previous = input.previous;
  return {
    name: `/${container.name}`,
    id: container.id,
    read: input.metrics ? input.now.toISOString() : ZERO_TIME,
    preread: previous?.read ?? ZERO_TIME,
    pids_stats: metrics.pids
      ? { current: metrics.pids.current ?? 0, limit: metrics.pids.limit }
      : {},
    blkio_stats: blkio,
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats,
    precpu_stats: previous?.cpu_stats ?? {
      cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
      throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    },
    memory_stats: memoryStats,
    networks: input.networks,
  };
}

const PAGE_COUNTERS: Array<[string, string]> = [
  ["pg_pg_in", "pgpgin"],
  ["pg_pg_out", "pgpgout"],
  ["pg_fault", "pgfault"],
  ["pg_maj_fault", "pgmajfault"],
  ["total_pg_pg_in", "total_pgpgin"],
  ["total_pg_pg_out", "total_pgpgout"],
  ["total_pg_fault", "total_pgfault"],
  ["total_pg_maj_fault", "total_pgmajfault"],
  ["hierarchical_swap_limit", "hierarchical_memsw_limit"],
];

const BLKIO_FIELDS: Array<[string, string]> = [
  ["ioServiceBytesRecursive", "io_service_bytes_recursive"],
  ["ioServicedRecursive", "io_serviced_recursive"],
  ["ioQueuedRecursive", "io_queue_recursive"],
  ["ioServiceTimeRecursive", "io_service_time_recursive"],
  ["ioWaitTimeRecursive", "io_wait_time_recursive"],
  ["ioMergedRecursive", "io_merged_recursive"],
  ["ioTimeRecursive", "io_time_recursive"],
  ["sectorsRecursive", "sectors_recursive"],
];

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The host's CPU time in nanoseconds as Docker counts it (`/proc/stat`'s `cpu` line: user,
 * nice, system, idle, iowait, irq, softirq, in clock ticks of 1/100 s) and the online CPUs.
 */
export function parseProcStat(text: string): { usage: number; cpus: number } {
  const lines = text.split("\n");
  const total = lines.find((line) => line.startsWith("cpu "));
  if (!total) throw systemError("invalid /proc/stat: no cpu line");
  const ticks = total.trim().split(/\s+/).slice(1, 8).reduce((sum, v) => sum + Number(v), 0);
  const cpus = lines.filter((line) => /^cpu\d+\s/.test(line)).length;
  return { usage: ticks * 1e7, cpus };
}

async function systemCpuUsage(): Promise<{ usage: number; cpus: number }> {
  return parseProcStat(await Deno.readTextFile("/proc/stat"));
}

/** The interfaces of a `/proc/<pid>/net/dev`, loopback left out as Docker does. */
export function parseNetDev(text: string): Record<string, NetworkStats> {
  const networks: Record<string, NetworkStats> = {};
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "lo") continue;
    const v = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    networks[name] = {
      rx_bytes: v[0] ?? 0,
      rx_packets: v[1] ?? 0,
      rx_errors: v[2] ?? 0,
      rx_dropped: v[3] ?? 0,
      tx_bytes: v[8] ?? 0,
      tx_packets: v[9] ?? 0,
      tx_errors: v[10] ?? 0,
      tx_dropped: v[11] ?? 0,
    };
  }
  return networks;
}

async function readNetDev(path: string): Promise<Record<string, NetworkStats>> {
  return parseNetDev(await Deno.readTextFile(path));
}

let memTotal: number | undefined;

async function machineMemory(): Promise<number> {
  if (memTotal !== undefined) return memTotal;
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const kb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  memTotal = kb * 1024;
  return memTotal;
}

/**
 * The sections that compare the engines of `peers.ts` operation by operation: each runs the same
 * operation on every peer, A/B interleaved (round 1 on every peer, then round 2, ...), after one
 * uncounted warm-up round where it helps, and answers one {@link Row} per metric. A peer that
 * cannot do an operation (ctr has no `logs`) or fails at it is reported as skipped with the
 * reason; the other peers go on. Every loop is bounded by a count from {@link Settings}, and
 * every command by the timeout of `_measure.ts`.
 *
 * @module
 */
import { pool, rssMegabytes, sleep, stats } from "./_measure.ts";
import { type Peer, PEER_NAMES, type PeerName } from "./peers.ts";

/** What one peer measured for a metric, or why it did not. */
export type PeerResult =
  | { median: number; min: number; max: number; samples: number[] }
  | { skipped: string };

/** One metric of the report. */
export interface Row {
  /** Short id, such as `run-rm`. */
  id: string;
  /** What was measured. */
  title: string;
  unit: "ms" | "containers/s" | "MB";
  /** Whether a lower or a higher number is better. */
  better: "lower" | "higher";
  results: Partial<Record<PeerName, PeerResult>>;
  /** How a peer's number was obtained where it differs from the others'. */
  note?: string;
}

/** The counts the sections use. */
export interface Settings {
  /** Rounds of the quick operations (`BENCH_RUNS`). */
  runs: number;
  /** Rounds of the heavy ones: parallel starts, stop, logs (`BENCH_HEAVY_RUNS`). */
  heavyRuns: number;
  /** Parallel start sizes (`BENCH_PARALLEL`, `20,50`). */
  parallel: number[];
  /** Containers created for `ps -a` (`BENCH_PS_CONTAINERS`, 1000). */
  psContainers: number;
  /** Containers stopped in one `stop`, one row each (`BENCH_STOP_CONTAINERS`, `50`). */
  stopContainers: number[];
  /** Log size in MB (`BENCH_LOGS_MB`, 100). */
  logsMegabytes: number;
  /** Running containers for the RSS measure, one row each (`BENCH_RSS_CONTAINERS`, `100`). */
  rssContainers: number[];
}

/** The peers that started and why the others did not. */
export interface Context {
  peers: Peer[];
  skipped: Partial<Record<PeerName, string>>;
  settings: Settings;
  /** Writes one line of progress. */
  out: (line: string) => void;
}

/** A command that exits on SIGTERM at once (a shell as PID 1 ignores it otherwise). */
const TERM_QUICKLY = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
const SLEEP = ["sleep", "3600"];
let unique = 0;
/** A container name no other call answers, with `tag` in it. */
function nameOf(tag: string): string {
  return `bench-${tag}-${Deno.pid}-${unique++}`;
}

/** The results of the peers that did not start. */
function notStarted(ctx: Context): Partial<Record<PeerName, PeerResult>> {
  const results: Partial<Record<PeerName, PeerResult>> = {};
  for (const name of PEER_NAMES) {
    const reason = ctx.skipped[name];
    if (reason) results[name] = { skipped: reason };
  }
  return results;
}

/**
 * Reports `err` of `peer` in `title`; if the peer then fails a `run --rm` within a minute too, it
 * is left out of every later section. Answers the result to record.
 */
async function failure(ctx: Context, peer: Peer, title: string, err: unknown): Promise<PeerResult> {
  const message = (err as Error).message.split("\n").slice(0, 3).join(" ").slice(0, 300);
  ctx.out(`  ${peer.name}: failed: ${message}`);
  const healthy = await peer.time(peer.runRm(nameOf("probe")), 60_000).then(
    () => true,
    () => false,
  );
  if (!healthy) {
    ctx.out(`  ${peer.name}: does not run a container any more: left out from here on`);
    ctx.peers = ctx.peers.filter((p) => p !== peer);
    ctx.skipped[peer.name] = `unresponsive since "${title}" (${message.slice(0, 120)})`;
  }
  return { skipped: `failed: ${message.slice(0, 200)}` };
}

/**
 * Runs `measure(peer, round)` for `rounds` rounds over every peer, interleaved, after `warmup`
 * uncounted rounds. `measure` answers a sample, or a string when the peer cannot do it; a
 * thrown error skips the peer for the rest of the row.
 */
async function interleave(
  ctx: Context,
  options: { title: string; rounds: number; warmup?: number },
  measure: (peer: Peer, round: number) => Promise<number | string>,
): Promise<Partial<Record<PeerName, PeerResult>>> {
  const samples = new Map<PeerName, number[]>(ctx.peers.map((p) => [p.name, []]));
  const results = notStarted(ctx);
  const warmup = options.warmup ?? 0;
  for (let round = -warmup; round < options.rounds; round++) {
    for (const peer of [...ctx.peers]) {
      if (results[peer.name]) continue;
      try {
        const sample = await measure(peer, round);
        if (typeof sample === "string") results[peer.name] = { skipped: sample };
        else if (round >= 0) samples.get(peer.name)!.push(sample);
      } catch (err) {
        results[peer.name] = await failure(ctx, peer, options.title, err);
      }
    }
  }
  for (const [name, list] of samples) {
    if (!results[name] && list.length > 0) results[name] = { ...stats(list), samples: list };
  }
  return results;
}

/** Starts `count` detached containers running `command`, 8 at a time; answers their names. */
async function startMany(peer: Peer, count: number, command: string[], tag: string) {
  const names = Array.from({ length: count }, () => nameOf(tag));
  try {
    await pool(count, 8, (i) => peer.cli(peer.runDetached(names[i]!, command)));
  } catch (err) {
    await peer.remove(names);
    throw err;
  }
  return names;
}

/** `run --rm busybox true`. */
export async function runRm(ctx: Context): Promise<Row[]> {
  const title = "run --rm busybox true";
  const results = await interleave(
    ctx,
    { title, rounds: ctx.settings.runs, warmup: 1 },
    (peer) => peer.time(peer.runRm(nameOf("rm"))),
  );
  return [{
    id: "run-rm",
    title,
    unit: "ms",
    better: "lower",
    results,
  }];
}

/**
 * `run --rm busybox true` on each engine's default network (a bridge with a veth and an
 * address per container: pouch's CNI plugins, dockerd's libnetwork, podman's netavark).
 */
export async function runRmNetworked(ctx: Context): Promise<Row[]> {
  const title = "run --rm, default network";
  const results = await interleave(
    ctx,
    { title, rounds: ctx.settings.runs, warmup: 1 },
    (peer) =>
      peer.runRmNetworked
        ? peer.time(peer.runRmNetworked(nameOf("net")))
        : Promise.resolve(`${peer.name} has no networks`),
  );
  return [{
    id: "run-rm-net",
    title,
    unit: "ms",
    better: "lower",
    results,
    note: "the other rows run with --network none, as ctr has no network",
  }];
}

/** `run -d busybox sleep 3600`, the container removed after each (untimed). */
export async function runDetached(ctx: Context): Promise<Row[]> {
  const title = "run -d busybox sleep";
  const rounds = { title, rounds: ctx.settings.runs, warmup: 1 };
  const results = await interleave(ctx, rounds, async (peer) => {
    const name = nameOf("d");
    try {
      return await peer.time(peer.runDetached(name, SLEEP));
    } finally {
      await peer.remove([name]);
    }
  });
  return [{ id: "run-d", title, unit: "ms", better: "lower", results }];
}

/** `count` `run -d` at once, as containers started a second. */
export async function parallel(ctx: Context, count: number): Promise<Row[]> {
  const title = `${count} run -d in parallel`;
  const rounds = { title, rounds: ctx.settings.heavyRuns };
  const results = await interleave(ctx, rounds, async (peer) => {
    const names = Array.from({ length: count }, () => nameOf(`p${count}`));
    try {
      const started = performance.now();
      await Promise.all(names.map((name) => peer.cli(peer.runDetached(name, SLEEP))));
      return count / ((performance.now() - started) / 1000);
    } finally {
      await peer.remove(names);
    }
  });
  return [{
    id: `parallel-${count}`,
    title,
    unit: "containers/s",
    better: "higher",
    results,
  }];
}

/** `ps -a` with `psContainers` created (not started) containers. */
export async function ps(ctx: Context): Promise<Row[]> {
  const count = ctx.settings.psContainers;
  const created = new Map<PeerName, string[]>();
  const failed: Partial<Record<PeerName, string>> = {};
  const peers = [...ctx.peers];
  try {
    for (const peer of peers) {
      const names = Array.from({ length: count }, () => nameOf("ps"));
      created.set(peer.name, names);
      const started = performance.now();
      try {
        await pool(count, 8, async (i) => {
          const name = names[i]!;
          if (peer.api) {
            const answer = await peer.api("POST", `/containers/create?name=${name}`, {
              Image: "busybox",
              Cmd: ["true"],
              HostConfig: { NetworkMode: "none" },
            });
            if (answer.status !== 201) throw new Error(`create: ${answer.status} ${answer.body}`);
          } else {
            await peer.cli(peer.create(name));
          }
        });
      } catch (err) {
        const result = await failure(ctx, peer, `ps -a with ${count} containers`, err);
        failed[peer.name] = `set-up ${"skipped" in result ? result.skipped : "failed"}`;
      }
      const seconds = (performance.now() - started) / 1000;
      ctx.out(`  ${peer.name}: ${count} containers created in ${seconds.toFixed(1)} s`);
    }
    const title = `ps -a with ${count} containers`;
    const results = await interleave(
      ctx,
      { title, rounds: ctx.settings.runs, warmup: 1 },
      async (peer) => failed[peer.name] ?? await peer.time(peer.ps()),
    );
    return [{
      id: "ps-a",
      title,
      unit: "ms",
      better: "lower",
      results,
      note: "created through the Moby API (pouch, dockerd) or the CLI (ctr, podman); " +
        "ctr's is `ctr containers ls`",
    }];
  } finally {
    for (const peer of peers) await peer.remove(created.get(peer.name) ?? []);
  }
}

/** `exec C true` in a running container. */
export async function exec(ctx: Context): Promise<Row[]> {
  const running = new Map<PeerName, string>();
  try {
    const results = await interleave(
      ctx,
      { title: "exec C true", rounds: ctx.settings.runs, warmup: 1 },
      async (peer) => {
        let name = running.get(peer.name);
        if (!name) {
          name = nameOf("exec");
          await peer.cli(peer.runDetached(name, SLEEP));
          running.set(peer.name, name);
        }
        return peer.time(peer.exec(name));
      },
    );
    return [{ id: "exec", title: "exec C true", unit: "ms", better: "lower", results }];
  } finally {
    for (const peer of ctx.peers) {
      const name = running.get(peer.name);
      if (name) await peer.remove([name]);
    }
  }
}

/** `logs C` of a container that wrote `logsMegabytes` MB in 80-byte lines. */
export async function logs(ctx: Context): Promise<Row[]> {
  const bytes = ctx.settings.logsMegabytes * 1e6;
  const line = "0123456789".repeat(8).slice(0, 79);
  const writer = ["sh", "-c", `yes ${line} | head -c ${bytes}`];
  const written = new Map<PeerName, string>();
  try {
    const title = `logs of ${ctx.settings.logsMegabytes} MB`;
    const results = await interleave(
      ctx,
      { title, rounds: ctx.settings.heavyRuns, warmup: 1 },
      async (peer) => {
        if (!peer.logs || !peer.wait) return `${peer.name} has no logs command`;
        let name = written.get(peer.name);
        if (!name) {
          name = nameOf("logs");
          const started = performance.now();
          await peer.cli(peer.runDetached(name, writer));
          await peer.cli(peer.wait(name));
          const seconds = (performance.now() - started) / 1000;
          ctx.out(
            `  ${peer.name}: wrote ${ctx.settings.logsMegabytes} MB of logs in ${
              seconds.toFixed(1)
            } s`,
          );
          written.set(peer.name, name);
        }
        return peer.time(peer.logs(name));
      },
    );
    return [{
      id: "logs",
      title,
      unit: "ms",
      better: "lower",
      results,
    }];
  } finally {
    for (const peer of ctx.peers) {
      const name = written.get(peer.name);
      if (name) await peer.remove([name]);
    }
  }
}

/** One `stop` of `stopContainers` running containers that exit on SIGTERM. */
export async function stop(ctx: Context, count: number): Promise<Row[]> {
  const title = `stop of ${count} containers`;
  const results = await interleave(ctx, { title, rounds: ctx.settings.heavyRuns }, async (peer) => {
    const names = await startMany(peer, count, TERM_QUICKLY, "stop");
    try {
      await sleep(500); // Let every shell install its trap.
      return await peer.time(peer.stop(names));
    } finally {
      await peer.remove(names);
    }
  });
  return [{
    id: `stop-${count}`,
    title,
    unit: "ms",
    better: "lower",
    results,
    note: "one CLI invocation naming them all; ctr's is `ctr tasks delete -f` (SIGKILL)",
  }];
}

/** Sum of the RSS of a peer's daemon processes in MB, or why there is none. */
async function daemonRss(peer: Peer): Promise<number | string> {
  const pids = await peer.daemonPids();
  if (pids.length === 0) return `${peer.name} has no daemon`;
  let sum = 0;
  for (const pid of pids) sum += await rssMegabytes(pid);
  return sum;
}

/** Daemon RSS (daemon + its containerd) now: call it before anything else has run. */
export async function rssIdle(ctx: Context): Promise<Row[]> {
  const results = await interleave(ctx, { title: "daemon RSS, idle", rounds: 3 }, async (peer) => {
    await sleep(200);
    return daemonRss(peer);
  });
  return [{
    id: "rss-idle",
    title: "daemon RSS, idle",
    unit: "MB",
    better: "lower",
    results,
    note: "the daemon's and its containerd's VmRSS; ctr's is its containerd's alone",
  }];
}

/** Daemon RSS with `rssContainers` running containers, one peer at a time. */
export async function rssLoaded(ctx: Context, count: number): Promise<Row[]> {
  const results = notStarted(ctx);
  for (const peer of [...ctx.peers]) {
    if ((await peer.daemonPids()).length === 0) {
      results[peer.name] = { skipped: `${peer.name} has no daemon` };
      continue;
    }
    let names: string[] = [];
    try {
      names = await startMany(peer, count, SLEEP, "rss");
      const samples: number[] = [];
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        samples.push(await daemonRss(peer) as number);
      }
      results[peer.name] = { ...stats(samples), samples };
    } catch (err) {
      await peer.remove(names);
      names = [];
      results[peer.name] = await failure(ctx, peer, `daemon RSS, ${count} running`, err);
    } finally {
      await peer.remove(names);
    }
  }
  return [{
    id: "rss-loaded",
    title: `daemon RSS, ${count} running`,
    unit: "MB",
    better: "lower",
    results,
    note: "the daemon's and its containerd's VmRSS (shims not counted)",
  }];
}

/** `version` of each CLI (against its daemon where it has one). */
export async function cli(ctx: Context): Promise<Row[]> {
  const results = await interleave(
    ctx,
    { title: "CLI start-up (version)", rounds: ctx.settings.runs, warmup: 1 },
    (peer) => peer.time(peer.versionArgs()),
  );
  return [{ id: "cli", title: "CLI start-up (version)", unit: "ms", better: "lower", results }];
}

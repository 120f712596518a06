/**
 * `deno task bench`: pouch against containerd's own client and the other engines on this
 * machine, in one run. It starts, each in a temp dir of its own, a pouch daemon with its own
 * containerd, `ctr` on that containerd (the floor), dockerd (Debian's docker.io, with the
 * containerd it starts) and podman when they are installed (see `peers.ts`), loads the same
 * busybox image (`testdata/out/busybox.tar`) into each, and measures, A/B interleaved (see
 * `suite.ts`): `run --rm`, `run -d`, N containers started in parallel, `ps -a` with many
 * containers, `exec`, `logs` of a large log, `stop` of many containers, daemon RSS idle and with
 * running containers, and CLI start-up; then the pull of a ~200 MB image from a local registry
 * (`pull.ts`, fresh engines), RunPodSandbox over pouch's CRI (`cri.ts`) and `pouch upgrade`
 * (`upgrade.ts`). It prints a table of medians and ratios (pouch / each peer) and writes it to
 * `bench/results/latest.json` and `bench/results/latest.png` (see `report.ts`).
 *
 * The pouch CLI and daemon are `dist/pouch`, built afresh into a temp dir (`BENCH_POUCH=checkout`
 * runs `deno run -A main.ts` instead).
 *
 * Environment (defaults in brackets): `BENCH_SECTIONS`
 * [`rss,run,runnet,rund,parallel,ps,exec,logs,stop,cli,pull,cri,upgrade`], `BENCH_PEERS`
 * [`pouch,ctr,dockerd,podman`], `BENCH_RUNS` [15], `BENCH_HEAVY_RUNS` [3], `BENCH_PARALLEL`
 * [`20,50`], `BENCH_PS_CONTAINERS` [1000], `BENCH_STOP_CONTAINERS` [`50`], `BENCH_LOGS_MB` [100],
 * `BENCH_RSS_CONTAINERS` [`100`] (the three lists give one row per count; these sections run
 * last, smallest count first), `BENCH_PULL_RUNS` [3], `BENCH_PULL_MB` [200],
 * `BENCH_RESULTS` [`bench/results`].
 *
 * @module
 */
import { busyboxTarball, startDaemon } from "../testdata/harness.ts";
import { build } from "../tools/build.ts";
import { output, which } from "./_measure.ts";
import { benchCri } from "./cri.ts";
import { benchCriFloor, type CriFloor } from "./cri_floor.ts";
import {
  type Peer,
  PEER_NAMES,
  type PeerName,
  startCtr,
  startDockerd,
  startPodman,
  startPouch,
} from "./peers.ts";
import { benchPull } from "./pull.ts";
import { json, markdown, table, writeChart } from "./report.ts";
import * as suite from "./suite.ts";
import { benchUpgrade } from "./upgrade.ts";

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const count = (name: string, fallback: number) => Math.max(1, Number(env(name, `${fallback}`)));
const counts = (name: string, fallback: string) =>
  env(name, fallback).split(",").map(Number).filter((n) => n > 0);
const settings: suite.Settings = {
  runs: count("BENCH_RUNS", 15),
  heavyRuns: count("BENCH_HEAVY_RUNS", 3),
  parallel: counts("BENCH_PARALLEL", "20,50"),
  psContainers: count("BENCH_PS_CONTAINERS", 1000),
  stopContainers: counts("BENCH_STOP_CONTAINERS", "50"),
  logsMegabytes: count("BENCH_LOGS_MB", 100),
  rssContainers: counts("BENCH_RSS_CONTAINERS", "100"),
};
const pullRuns = count("BENCH_PULL_RUNS", 3);
const pullMegabytes = count("BENCH_PULL_MB", 200);
const ALL_SECTIONS = "rss,run,runnet,rund,parallel,ps,exec,logs,stop,cli,pull,cri,upgrade";
const sections = new Set(env("BENCH_SECTIONS", ALL_SECTIONS).split(","));
const wanted = new Set(env("BENCH_PEERS", PEER_NAMES.join(",")).split(",") as PeerName[]);
const resultsDir = env("BENCH_RESULTS", new URL("./results", import.meta.url).pathname);
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

/**
 * The sections that share one set of running peers, in the order they run. A peer that fails
 * an operation and then cannot run a container any more is left out of the later sections.
 */
const SUITE: Array<[string, (ctx: suite.Context) => Promise<suite.Row[]>]> = [
  ["rss", suite.rssIdle],
  ["run", suite.runRm],
  ["runnet", suite.runRmNetworked],
  ["rund", suite.runDetached],
  ["ps", suite.ps],
  ["exec", suite.exec],
  ["logs", suite.logs],
  ["cli", suite.cli],
  // Last, smallest first: these run many containers at once, which a peer may not survive.
  ...[
    ...settings.parallel.map((n) => ["parallel", n, suite.parallel] as const),
    ...settings.stopContainers.map((n) => ["stop", n, suite.stop] as const),
    ...settings.rssContainers.map((n) => ["rss", n, suite.rssLoaded] as const),
  ].sort((a, b) => a[1] - b[1]).map(([section, n, measure]) =>
    [section, (ctx: suite.Context) => measure(ctx, n)] as [string, typeof suite.cli]
  ),
];

const startedAt = new Date();
const loadBefore = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
const rows: suite.Row[] = [];
const versions: Record<string, string> = {};
const dist = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-dist-" });
try {
  let executable: string | undefined;
  if (env("BENCH_POUCH", "dist") === "dist") {
    executable = `${dist}/pouch`;
    await build({ output: executable });
  }

  if (SUITE.some(([section]) => sections.has(section))) {
    const tarball = await busyboxTarball();
    const peers: Peer[] = [];
    const skipped: Partial<Record<PeerName, string>> = {};
    for (const name of PEER_NAMES) if (!wanted.has(name)) skipped[name] = "not in BENCH_PEERS";
    try {
      const pouch = await startPouch({ executable });
      peers.push(pouch);
      await pouch.cli(["load", "-i", tarball]);
      if (wanted.has("ctr")) peers.push(await startCtr(tarball));
      for (const [name, start] of [["dockerd", startDockerd], ["podman", startPodman]] as const) {
        if (!wanted.has(name)) continue;
        const peer = await start();
        if (typeof peer === "string") {
          skipped[name] = peer;
          out(`${name}: skipped: ${peer}`);
          continue;
        }
        peers.push(peer);
        try {
          await peer.cli(["load", "-i", tarball]);
        } catch (err) {
          skipped[name] = `load failed: ${(err as Error).message.slice(0, 200)}`;
          peers.pop();
          await peer[Symbol.asyncDispose]();
        }
      }
      if (!wanted.has("pouch")) {
        skipped.pouch = "not in BENCH_PEERS (its daemon still serves ctr's containerd)";
      }
      for (const peer of peers) versions[peer.name] = peer.version;
      const ctx: suite.Context = {
        peers: peers.filter((p) => wanted.has(p.name)),
        skipped,
        settings,
        out,
      };
      out(`peers: ${ctx.peers.map((p) => p.version).join("; ")}`);
      for (const [section, measure] of SUITE) {
        if (!sections.has(section)) continue;
        const before = rows.length;
        out(`\n== ${section}`);
        rows.push(...await measure(ctx));
        for (const line of table(rows.slice(before)).slice(1, 1 + rows.length - before)) out(line);
      }
    } finally {
      for (const peer of peers.reverse()) {
        await Promise.resolve(peer[Symbol.asyncDispose]()).catch((err: unknown) =>
          out(`cleanup of ${peer.name} failed: ${err}`)
        );
      }
    }
  }

  if (sections.has("pull")) {
    out(`\n== pull`);
    rows.push(
      await benchPull({
        runs: pullRuns,
        megabytes: pullMegabytes,
        peers: PEER_NAMES.filter((p) => wanted.has(p)),
        executable,
        out,
      }),
    );
  }
  if (sections.has("cri")) {
    out(`\n== cri`);
    rows.push(...await criRows());
  }
  if (sections.has("upgrade")) {
    out(`\n== upgrade`);
    const tarball = await busyboxTarball();
    await using daemon = await startDaemon();
    const load = await daemon.pouch(["load", "-i", tarball]);
    if (load.code !== 0) throw new Error(`pouch load failed: ${load.stderr}`);
    await benchUpgrade(daemon, { runs: Math.min(settings.runs, 10), out });
  }
} finally {
  await Deno.remove(dist, { recursive: true }).catch(() => {});
}

if (rows.length > 0) {
  out("\n== results (ms: median [min-max])");
  for (const line of table(rows)) out(line);
  await Deno.mkdir(resultsDir, { recursive: true });
  const meta = {
    date: startedAt.toISOString(),
    machine: await machine(),
    loadAverage: { before: loadBefore, after: (await Deno.readTextFile("/proc/loadavg")).trim() },
    settings: { ...settings, pullRuns, pullMegabytes, sections: [...sections] },
    versions,
  };
  await Deno.writeTextFile(`${resultsDir}/latest.json`, json(rows, meta));
  await Deno.writeTextFile(`${resultsDir}/latest.md`, markdown(rows).join("\n") + "\n");
  const how = await writeChart(
    rows,
    `pouch's cost relative to each peer (log scale; left of 1x pouch is faster or smaller), ${
      startedAt.toISOString().slice(0, 16)
    }`,
    `${resultsDir}/latest.png`,
  );
  out(`\nwrote ${resultsDir}/latest.{json,md,png} (chart by ${how})`);
}

/** RunPodSandbox and teardown over pouch's CRI (`cri.ts`), parsed from its report lines. */
async function criRows(): Promise<suite.Row[]> {
  const lines: string[] = [];
  await benchCri({
    runs: settings.runs,
    out: (line) => {
      lines.push(line);
      // cri_floor.ts measures containerd's CRI plugin in a containerd of its own.
      if (!line.includes("containerd's CRI plugin: not measured")) out(line);
    },
  });
  const floor = wanted.has("ctr")
    ? await benchCriFloor({ runs: settings.runs, out })
    : { skip: { skipped: "not in BENCH_PEERS" } } as CriFloor;
  const rows: suite.Row[] = [];
  const pattern =
    /^\s+(host network|pod network)\s+(run|stop\+remove)\s+([\d.]+) \[([\d.]+)-([\d.]+)\]/;
  for (const line of lines) {
    const match = pattern.exec(line);
    if (!match) continue;
    const [, network, what, median, min, max] = match;
    const key = `${network!.split(" ")[0]}-${what === "run" ? "run" : "teardown"}`;
    rows.push({
      id: `cri-${key}`,
      title: `CRI ${what === "run" ? "RunPodSandbox" : "Stop+RemovePod"}, ${network}`,
      unit: "ms",
      better: "lower",
      results: {
        pouch: { median: Number(median), min: Number(min), max: Number(max), samples: [] },
        ctr: floor[key] ?? floor.skip ?? { skipped: "no result" },
        dockerd: { skipped: "serves no CRI" },
        podman: { skipped: "serves no CRI" },
      },
      note: "pouch's CRI against containerd's own CRI plugin (in the ctr column), " +
        "one after the other, not interleaved",
    });
  }
  return rows;
}

/** The machine for the report: CPU, cores, memory, kernel, Deno, containerd, runc. */
async function machine(): Promise<Record<string, string>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const first = async (cmd: string, args: string[]) =>
    (await which(cmd)) ? (await output(cmd, args).catch(() => "")).split("\n")[0]!.trim() : "";
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "",
    cores: `${navigator.hardwareConcurrency}`,
    memory: `${Math.round(Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024)} MiB`,
    kernel: Deno.osRelease(),
    os: (await Deno.readTextFile("/etc/os-release")).match(/^PRETTY_NAME="(.*)"$/m)?.[1] ?? "",
    deno: Deno.version.deno,
    containerd: await first("containerd", ["--version"]),
    runc: await first("runc", ["--version"]),
  };
}

/**
 * `deno task bench`: on one containerd (the one a pouch daemon starts), the median wall time of
 * `pouch run --rm busybox true` against `ctr run --rm` of the same image, A/B interleaved, and
 * their ratio. Then the CLI's start-up: `version` against the running daemon from the single-file
 * build (`dist/pouch`, built afresh into a temp dir), from `deno run -A main.ts`, and from the
 * Docker CLI, interleaved. Then the pull of a generated 200 MB image from a local registry by
 * pouch, ctr and dockerd (when installed); see `pull.ts`. Later issues add dockerd and podman to
 * the other sections.
 *
 * `BENCH_RUNS` (15) sets the runs of the first two sections, `BENCH_PULL_RUNS` (3) and
 * `BENCH_PULL_MB` (200) those of the pull, and `BENCH_SECTIONS` (`run,cli,exec,upgrade,pull,cri`)
 * which run. The cri section (`cri.ts`) times RunPodSandbox, then Stop and Remove, over the CRI. The exec section (`exec.ts`) times `exec C true` on a running container; the upgrade
 * section (`upgrade.ts`) `pouch upgrade` against Docker's stop, rm and run.
 *
 * @module
 */
import { busyboxTarball, startDaemon, type TestDaemon } from "../testdata/harness.ts";
import { build } from "../tools/build.ts";
import { stats, time } from "./_measure.ts";
import { benchCri } from "./cri.ts";
import { benchExec } from "./exec.ts";
import { benchPull } from "./pull.ts";
import { benchUpgrade } from "./upgrade.ts";

const runs = Number(Deno.env.get("BENCH_RUNS") ?? 15);
const pullRuns = Number(Deno.env.get("BENCH_PULL_RUNS") ?? 3);
const pullMegabytes = Number(Deno.env.get("BENCH_PULL_MB") ?? 200);
const sections = new Set(
  (Deno.env.get("BENCH_SECTIONS") ?? "run,cli,exec,upgrade,pull,cri").split(","),
);
const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));

if (["run", "cli", "exec", "upgrade"].some((section) => sections.has(section))) {
  const tarball = await busyboxTarball();
  await using daemon = await startDaemon();
  const load = await daemon.pouch(["load", "-i", tarball]);
  if (load.code !== 0) throw new Error(`pouch load failed: ${load.stderr}`);
  if (sections.has("run")) await benchRun(daemon, tarball);
  if (sections.has("cli")) await benchCli(daemon);
  if (sections.has("exec")) await benchExec(daemon, { runs, out });
  if (sections.has("upgrade")) await benchUpgrade(daemon, { runs: Math.min(runs, 10), out });
}
if (sections.has("pull")) await benchPull({ runs: pullRuns, megabytes: pullMegabytes, out });
if (sections.has("cri")) await benchCri({ runs, out });

/** `pouch run --rm` against `ctr run --rm` on the daemon's containerd. */
async function benchRun(daemon: TestDaemon, tarball: string): Promise<void> {
  const ctrAddress = `${daemon.home}/containerd/containerd.sock`;
  const ctr = ["-a", ctrAddress, "-n", "bench"];
  await time("ctr", [...ctr, "images", "import", "--no-unpack=false", tarball]);
  const image = "docker.io/library/busybox:latest";

  const pouchRun = ["run", "-A", "main.ts", "-H", `unix://${daemon.socket}`, "run", "--rm"];
  const runPouch = () => time(Deno.execPath(), [...pouchRun, "busybox", "true"]);
  const runCtr = (id: string) => time("ctr", [...ctr, "run", "--rm", image, id, "true"]);

  // Warm both paths once (page cache, first-run costs).
  await runPouch();
  await runCtr("bench-warm");

  const pouchSamples: number[] = [];
  const ctrSamples: number[] = [];
  for (let i = 0; i < runs; i++) {
    pouchSamples.push(await runPouch());
    ctrSamples.push(await runCtr(`bench-${i}`));
  }
  const pouch = stats(pouchSamples);
  const floor = stats(ctrSamples);
  out(`run --rm busybox true, ${runs} runs each, A/B interleaved (ms: median [min-max])`);
  out(`  pouch  ${pouch.median.toFixed(1)} [${pouch.min.toFixed(1)}-${pouch.max.toFixed(1)}]`);
  out(`  ctr    ${floor.median.toFixed(1)} [${floor.min.toFixed(1)}-${floor.max.toFixed(1)}]`);
  out(`  ratio pouch/ctr ${(pouch.median / floor.median).toFixed(2)}`);
  await time("ctr", [...ctr, "images", "rm", image]).catch(() => {});
}

/** CLI start-up: `version` against the running daemon. */
async function benchCli(daemon: TestDaemon): Promise<void> {
  const distDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-dist-" });
  try {
    const dist = `${distDir}/pouch`;
    await build({ output: dist });
    const host = ["-H", `unix://${daemon.socket}`];
    const clis: Array<{ name: string; run: () => Promise<number>; samples: number[] }> = [
      { name: "dist/pouch", run: () => time(dist, [...host, "version"]), samples: [] },
      {
        name: "deno run main.ts",
        run: () => time(Deno.execPath(), ["run", "-A", "main.ts", ...host, "version"]),
        samples: [],
      },
      {
        name: "docker",
        run: () =>
          time("/usr/local/bin/docker", ["version"], {
            DOCKER_HOST: `unix://${daemon.socket}`,
            DOCKER_CONFIG: `${distDir}/docker-config`,
          }),
        samples: [],
      },
    ];
    // Warm each once: the first run of a new file fills Deno's code cache.
    for (const cli of clis) await cli.run();
    for (let i = 0; i < runs; i++) {
      for (const cli of clis) cli.samples.push(await cli.run());
    }
    out(`\nCLI start-up: version against the daemon, ${runs} runs each, interleaved (ms)`);
    for (const cli of clis) {
      const s = stats(cli.samples);
      out(
        `  ${cli.name.padEnd(17)}${s.median.toFixed(1)} [${s.min.toFixed(1)}-${s.max.toFixed(1)}]`,
      );
    }
  } finally {
    await Deno.remove(distDir, { recursive: true });
  }
}

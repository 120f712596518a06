/**
 * The upgrade benchmark: `pouch upgrade` of a running container on a user network, against the
 * sequence Docker users run instead (stop, rm, run with the same options), issued by the Docker
 * CLI against the same pouch daemon, and against dockerd when it is installed. Medians of the
 * wall time, and whether the container's IP address was kept each time.
 *
 * Run alone with `deno run -A bench/upgrade.ts`; `bench/main.ts` calls {@link benchUpgrade}.
 *
 * @module
 */
import { stats, time, which } from "./_measure.ts";
import {
  busyboxTarball,
  importBusyboxVariant,
  startDaemon,
  type TestDaemon,
} from "../testdata/harness.ts";

/** Options of {@link benchUpgrade}. */
export interface BenchUpgradeOptions {
  /** Upgrades per tool, A/B interleaved. */
  runs: number;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

const root = new URL("../", import.meta.url).pathname;

/** Measures on `daemon` (busybox already loaded) and prints the report. */
export async function benchUpgrade(
  daemon: TestDaemon,
  options: BenchUpgradeOptions,
): Promise<void> {
  await daemon.pouch(["tag", "busybox", "bench-app:1"]);
  await importBusyboxVariant(daemon, "bench-app:2", { version: "v2", changes: [] });
  const network = `bench-up-${Deno.pid}`;
  const created = await daemon.pouch(["network", "create", "--subnet", "10.214.9.0/24", network]);
  if (created.code !== 0) throw new Error(`network create failed: ${created.stderr}`);
  const pouch = ["run", "-A", `${root}main.ts`, "-H", `unix://${daemon.socket}`];
  const dockerEnv = {
    DOCKER_HOST: `unix://${daemon.socket}`,
    DOCKER_CONFIG: `${daemon.dir}/docker-config`,
  };
  const runArgs = (name: string, image: string) => [
    "run",
    "-d",
    "--init",
    "--name",
    name,
    "--network",
    network,
    "-e",
    "A=1",
    image,
    "sleep",
    "3600",
  ];
  const ipOf = async (name: string) => {
    const view = await daemon.api("GET", `/containers/${name}/json`);
    return JSON.parse(view.body).NetworkSettings.Networks[network]?.IPAddress as string;
  };
  const names = { pouch: `bench-up-p-${Deno.pid}`, docker: `bench-up-d-${Deno.pid}` };
  try {
    for (const name of Object.values(names)) {
      const run = await daemon.pouch(runArgs(name, "bench-app:1"));
      if (run.code !== 0) throw new Error(`run failed: ${run.stderr}`);
    }
    const tools = [
      {
        name: "pouch upgrade",
        samples: [] as number[],
        kept: 0,
        step: async (image: string) => {
          const before = await ipOf(names.pouch);
          const ms = await time(Deno.execPath(), [
            ...pouch,
            "upgrade",
            "--image",
            image,
            names.pouch,
          ]);
          return { ms, kept: before === await ipOf(names.pouch) };
        },
      },
    ];
    if (await which("docker")) {
      tools.push({
        name: "docker stop+rm+run -> pouch",
        samples: [],
        kept: 0,
        step: async (image: string) => {
          const before = await ipOf(names.docker);
          const started = performance.now();
          await time("docker", ["stop", names.docker], dockerEnv);
          await time("docker", ["rm", names.docker], dockerEnv);
          await time("docker", runArgs(names.docker, image), dockerEnv);
          const ms = performance.now() - started;
          return { ms, kept: before === await ipOf(names.docker) };
        },
      });
    }
    for (let i = 0; i < options.runs; i++) {
      const image = i % 2 === 0 ? "bench-app:2" : "bench-app:1";
      for (const tool of tools) {
        const { ms, kept } = await tool.step(image);
        tool.samples.push(ms);
        if (kept) tool.kept++;
      }
    }
    options.out(
      `\nupgrade of a running container on a user network, ${options.runs} runs each (ms)`,
    );
    for (const tool of tools) {
      const { median, min, max } = stats(tool.samples);
      options.out(
        `  ${tool.name.padEnd(28)} median ${median.toFixed(1)} [${min.toFixed(1)}-${
          max.toFixed(1)
        }], IP kept ${tool.kept}/${options.runs}`,
      );
    }
    if (!await which("dockerd")) {
      options.out("  (dockerd is not on PATH: its sequence is left out)");
    }
  } finally {
    await daemon.pouch(["rm", "-f", ...Object.values(names)]);
    await daemon.pouch(["network", "rm", network]);
  }
}

if (import.meta.main) {
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const tarball = await busyboxTarball();
  await using daemon = await startDaemon();
  const load = await daemon.pouch(["load", "-i", tarball]);
  if (load.code !== 0) throw new Error(`pouch load failed: ${load.stderr}`);
  await benchUpgrade(daemon, { runs: Number(Deno.env.get("BENCH_RUNS") ?? 10), out });
}

/**
 * The exec benchmark: the median wall time of `pouch exec C true` against a running busybox
 * container of a daemon under test, and of the Docker CLI's `docker exec C true` against the
 * same daemon (the same API, another client). `docker exec` against dockerd and `podman exec`
 * join when dockerd or podman is installed; they are not on these machines, which the report
 * says.
 *
 * Run alone with `deno run -A bench/exec.ts`; `bench/main.ts` calls {@link benchExec} with its
 * daemon.
 *
 * @module
 */
import { stats, time, which } from "./_measure.ts";
import { busyboxTarball, startDaemon, type TestDaemon } from "../testdata/harness.ts";

/** Options of {@link benchExec}. */
export interface BenchExecOptions {
  /** Runs per tool, A/B interleaved. */
  runs: number;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

/** One measured tool and its samples in ms. */
export interface ExecSamples {
  name: string;
  samples: number[];
}

interface Tool extends ExecSamples {
  exec: () => Promise<number>;
}

const root = new URL("../", import.meta.url).pathname;

/**
 * Measures exec latency on `daemon` (busybox already loaded) and prints the report; answers
 * the samples. The container it starts is removed at the end.
 */
export async function benchExec(
  daemon: TestDaemon,
  options: BenchExecOptions,
): Promise<ExecSamples[]> {
  const name = `bench-exec-${Deno.pid}`;
  const started = await daemon.pouch(["run", "-d", "--name", name, "busybox", "sleep", "3600"]);
  if (started.code !== 0) throw new Error(`pouch run failed: ${started.stderr}`);
  const tools: Tool[] = [];
  try {
    const pouch = ["run", "-A", `${root}main.ts`, "-H", `unix://${daemon.socket}`];
    tools.push({
      name: "pouch exec",
      samples: [],
      exec: () => time(Deno.execPath(), [...pouch, "exec", name, "true"]),
    });
    const dockerEnv = {
      DOCKER_HOST: `unix://${daemon.socket}`,
      DOCKER_CONFIG: `${daemon.dir}/docker-config`,
    };
    if (await which("docker")) {
      tools.push({
        name: "docker CLI -> pouch",
        samples: [],
        exec: () => time("docker", ["exec", name, "true"], dockerEnv),
      });
    }
    for (const engine of ["dockerd", "podman"]) {
      if (await which(engine)) {
        options.out(`  (${engine} is installed but not wired in yet: its exec is left out)`);
      } else {
        options.out(`  (${engine} is not on PATH: its exec is left out)`);
      }
    }
    // Warm every path once (page cache, the first exec's shim work).
    for (const tool of tools) await tool.exec();
    for (let i = 0; i < options.runs; i++) {
      for (const tool of tools) tool.samples.push(await tool.exec());
    }
    options.out(`\nexec of \`true\` in a running busybox container, ${options.runs} runs each`);
    for (const tool of tools) {
      const { median, min, max } = stats(tool.samples);
      options.out(
        `  ${tool.name.padEnd(22)} median ${median.toFixed(1)} ms (min ${min.toFixed(1)}, ` +
          `max ${max.toFixed(1)})`,
      );
    }
    return tools.map(({ name, samples }) => ({ name, samples }));
  } finally {
    await daemon.pouch(["rm", "-f", name]);
  }
}

if (import.meta.main) {
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  const tarball = await busyboxTarball();
  await using daemon = await startDaemon();
  const load = await daemon.pouch(["load", "-i", tarball]);
  if (load.code !== 0) throw new Error(`pouch load failed: ${load.stderr}`);
  await benchExec(daemon, { runs: Number(Deno.env.get("BENCH_RUNS") ?? 15), out });
}

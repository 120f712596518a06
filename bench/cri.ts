/**
 * The CRI benchmark: the median wall time of RunPodSandbox, then StopPodSandbox and
 * RemovePodSandbox, over the CRI socket of a daemon started with `--enable-cri`, for pods on the
 * host's network and pods with a network of their own (the default bridge network, CNI). The
 * client is grpc-js in this process, as kubelet would be a client of its own.
 *
 * containerd's own CRI plugin would be the natural floor; the containerd the daemon starts runs
 * without it (pouch serves the CRI itself), so the report says it is not measured.
 *
 * Run alone with `deno run -A bench/cri.ts`; `bench/main.ts` calls {@link benchCri}.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { criClientDefinition } from "../testdata/cri_client.ts";
import { pauseTarball, startDaemon } from "../testdata/harness.ts";
import { stats } from "./_measure.ts";

/** Options of {@link benchCri}. */
export interface BenchCriOptions {
  /** Pods per kind. */
  runs: number;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

/** Starts a CRI daemon, measures pod start and teardown, and prints the report. */
export async function benchCri(options: BenchCriOptions): Promise<void> {
  const pause = await pauseTarball();
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-cri-" });
  const socket = `${dir}/cri.sock`;
  await using daemon = await startDaemon({
    args: [
      "--enable-cri",
      "--sandbox-image",
      "pause:latest",
      "--stream-server-port",
      "0",
      "--listen-cri",
      `unix://${socket}`,
      // Pods on pouch's default bridge, whatever the host's /etc/cni/net.d holds.
      "--cni-conf-dir",
      `${dir}/no-cni`,
    ],
  });
  const load = await daemon.pouch(["load", "-i", pause]);
  if (load.code !== 0) throw new Error(`pouch load failed: ${load.stderr}`);
  const definition = criClientDefinition("runtime.v1.RuntimeService");
  const Client = grpc.makeGenericClientConstructor(definition, "RuntimeService");
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = (method: string, request: object): Promise<Record<string, string>> =>
    new Promise((resolve, reject) =>
      // deno-lint-ignore no-explicit-any
      (client as any)[method](request, (err: unknown, response: Record<string, string>) =>
        err ? reject(err) : resolve(response))
    );
  try {
    options.out(`\nCRI pods, ${options.runs} each (ms: median [min-max])`);
    for (const network of ["NODE", "POD"]) {
      const run: number[] = [];
      const teardown: number[] = [];
      // One warm-up pod, not counted.
      for (let i = -1; i < options.runs; i++) {
        const config = {
          metadata: { name: `bench-${i + 1}`, namespace: "bench", uid: `u${i + 1}`, attempt: 0 },
          linux: { securityContext: { namespaceOptions: { network, pid: "CONTAINER" } } },
        };
        let started = performance.now();
        const { podSandboxId } = await call("RunPodSandbox", { config });
        const ran = performance.now() - started;
        started = performance.now();
        await call("StopPodSandbox", { podSandboxId });
        await call("RemovePodSandbox", { podSandboxId });
        const removed = performance.now() - started;
        if (i >= 0) {
          run.push(ran);
          teardown.push(removed);
        }
      }
      const label = network === "NODE" ? "host network" : "pod network ";
      for (const [what, samples] of [["run", run], ["stop+remove", teardown]] as const) {
        const s = stats(samples);
        options.out(
          `  ${label} ${what.padEnd(12)}${s.median.toFixed(1)} [${s.min.toFixed(1)}-${
            s.max.toFixed(1)
          }]`,
        );
      }
    }
    options.out("  containerd's CRI plugin: not measured (not enabled in pouch's containerd)");
  } finally {
    client.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await benchCri({
    runs: Number(Deno.env.get("BENCH_RUNS") ?? 15),
    out: (line) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n")),
  });
}

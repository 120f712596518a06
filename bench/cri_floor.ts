/**
 * The floor of the CRI benchmark: the same pods as `cri.ts` (RunPodSandbox, then
 * StopPodSandbox and RemovePodSandbox, host network and pod network) against containerd's own
 * CRI plugin, in a containerd started for it in a temp dir (config version 2,
 * `restrict_oom_score_adj`, the pause image of `testdata/build_pause.sh` as sandbox image, a CNI
 * bridge of its own with host-local IPAM and the CNI cache in the temp dir).
 *
 * Run alone with `deno run -A bench/cri_floor.ts`; `bench/main.ts` calls {@link benchCriFloor}.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { criClientDefinition } from "../testdata/cri_client.ts";
import { killUnder, pauseTarball, unmountUnder } from "../testdata/harness.ts";
import { output, sleep, stats } from "./_measure.ts";
import type { PeerResult } from "./suite.ts";

/** Options of {@link benchCriFloor}. */
export interface BenchCriFloorOptions {
  /** Pods per kind. */
  runs: number;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

/** Medians per network kind (`host`, `pod`) and step (`run`, `teardown`). */
export type CriFloor = Record<string, PeerResult>;

/** Starts containerd with its CRI plugin, times the pods, stops it; answers the results. */
export async function benchCriFloor(options: BenchCriFloorOptions): Promise<CriFloor> {
  const pause = await pauseTarball();
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-cri-floor-" });
  const socket = `${dir}/containerd.sock`;
  const bridge = `pbc${crypto.randomUUID().slice(0, 8)}`;
  const subnet = `10.${100 + Math.floor(Math.random() * 140)}.${Math.floor(Math.random() * 250)}`;
  await Deno.mkdir(`${dir}/net.d`);
  await Deno.writeTextFile(
    `${dir}/net.d/10-bench.conflist`,
    JSON.stringify({
      cniVersion: "0.4.0",
      name: "bench",
      plugins: [{
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: "host-local",
          dataDir: `${dir}/ipam`,
          ranges: [[{ subnet: `${subnet}.0/24` }]],
        },
      }],
    }),
  );
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  await Deno.writeTextFile(
    `${dir}/config.toml`,
    [
      "version = 2",
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      `[grpc]`,
      `  address = "${socket}"`,
      `[${cri}]`,
      `  sandbox_image = "docker.io/library/pause:latest"`,
      `  restrict_oom_score_adj = true`,
      `  stream_server_address = "127.0.0.1"`,
      `  stream_server_port = "0"`,
      `[${cri}.cni]`,
      `  bin_dir = "/usr/lib/cni"`,
      `  conf_dir = "${dir}/net.d"`,
      `[${cri}.containerd]`,
      `  snapshotter = "overlayfs"`,
      `  default_runtime_name = "runc"`,
      `[${cri}.containerd.runtimes.runc]`,
      `  runtime_type = "io.containerd.runc.v2"`,
      "",
    ].join("\n"),
  );
  // libcni keeps its cache in /var/lib/cni whatever the config says; leave no empty dirs behind.
  const hadCniCache = await Deno.stat("/var/lib/cni").then(() => true, () => false);
  const log = await Deno.open(`${dir}/containerd.log`, { append: true, create: true });
  const child = new Deno.Command("containerd", {
    args: ["--config", `${dir}/config.toml`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pipe = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(new WritableStream({ write: (chunk) => void log.writeSync(chunk) }))
      .catch(() => {});
  const piping = Promise.all([pipe(child.stdout), pipe(child.stderr)]);
  let client: grpc.Client | undefined;
  try {
    const deadline = Date.now() + 30_000;
    while (!await Deno.stat(socket).then(() => true, () => false)) {
      if (Date.now() > deadline) throw new Error("containerd did not start within 30 s");
      await sleep(100);
    }
    await output("ctr", ["-a", socket, "-n", "k8s.io", "images", "import", pause]);
    const definition = criClientDefinition("runtime.v1.RuntimeService");
    const Client = grpc.makeGenericClientConstructor(definition, "RuntimeService");
    client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
    const call = (method: string, request: object): Promise<Record<string, string>> =>
      new Promise((resolve, reject) =>
        // deno-lint-ignore no-explicit-any
        (client as any)[method](
          request,
          { deadline: Date.now() + 60_000 },
          (err: unknown, response: Record<string, string>) => err ? reject(err) : resolve(response),
        )
      );
    const results: CriFloor = {};
    options.out(`containerd's CRI plugin, ${options.runs} pods each (ms: median [min-max])`);
    for (const network of ["NODE", "POD"]) {
      const kind = network === "NODE" ? "host" : "pod";
      const run: number[] = [];
      const teardown: number[] = [];
      try {
        for (let i = -1; i < options.runs; i++) {
          const config = {
            metadata: { name: `bench-${kind}-${i + 1}`, namespace: "bench", uid: `u${kind}${i}` },
            logDirectory: `${dir}/logs`,
            linux: {
              cgroupParent: "",
              securityContext: { namespaceOptions: { network, pid: "CONTAINER" } },
            },
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
        for (const [step, samples] of [["run", run], ["teardown", teardown]] as const) {
          const s = stats(samples);
          results[`${kind}-${step}`] = { ...s, samples };
          options.out(
            `  ${kind} network ${step.padEnd(9)} ${s.median.toFixed(1)} [${s.min.toFixed(1)}-${
              s.max.toFixed(1)
            }]`,
          );
        }
      } catch (err) {
        const message = `failed: ${(err as Error).message.slice(0, 200)}`;
        options.out(`  ${kind} network: ${message}`);
        results[`${kind}-run`] = results[`${kind}-teardown`] = { skipped: message };
      }
    }
    return results;
  } finally {
    client?.close();
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.status;
    await piping;
    log.close();
    await killUnder(dir);
    await unmountUnder(dir);
    await new Deno.Command("ip", { args: ["link", "del", bridge], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (!hadCniCache) {
      // Non-recursive: anything another process put there meanwhile stays.
      for (const path of ["/var/lib/cni/results", "/var/lib/cni/networks", "/var/lib/cni"]) {
        await Deno.remove(path).catch(() => {});
      }
    }
  }
}

if (import.meta.main) {
  await benchCriFloor({
    runs: Number(Deno.env.get("BENCH_RUNS") ?? 15),
    out: (line) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n")),
  });
}

/**
 * The pull benchmark: a generated image of about 200 MB (`BENCH_PULL_MB`) in 4 gzip layers of
 * random bytes (so the registry serves about as many bytes as it stores), pushed with skopeo into
 * a `docker-registry` on 127.0.0.1, then pulled with `pouch pull`, with `ctr images pull
 * --plain-http`, and with dockerd when it is installed, A/B interleaved.
 *
 * Each pull runs against a fresh daemon home (its own containerd, empty content store and
 * snapshotter), so every blob is downloaded and unpacked: removing the image alone would leave
 * its blobs until containerd's garbage collector runs, and containerd shares blobs across
 * namespaces, so a `ctr` pull after a pouch pull on the same containerd would skip them.
 *
 * @module
 */
import { stats, which } from "./_measure.ts";
import { startDaemon } from "../testdata/harness.ts";
import { skopeoPush, startRegistry } from "../testdata/registry.ts";

const encoder = new TextEncoder();
const LAYERS = 4;

/** Options of {@link benchPull}. */
export interface BenchPullOptions {
  /** Runs per tool. */
  runs: number;
  /** Image size in MB (10^6 bytes), split evenly over the layers. */
  megabytes: number;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

interface Sample {
  name: string;
  samples: number[];
  pull: () => Promise<number>;
}

/** Runs the pull benchmark and prints its report. */
export async function benchPull(options: BenchPullOptions): Promise<void> {
  const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-pull-" });
  try {
    const layout = await buildImage(work, options.megabytes);
    await using registry = await startRegistry();
    const ref = `${registry.host}/bench/big:1`;
    await skopeoPush(`oci:${layout}:big`, ref);

    const tools: Sample[] = [
      { name: "pouch pull", samples: [], pull: () => pouchPull(ref) },
      { name: "ctr pull", samples: [], pull: () => ctrPull(ref) },
    ];
    const dockerd = await which("dockerd");
    if (dockerd === undefined) {
      options.out("  (dockerd is not on PATH: its pull is left out)");
    } else {
      tools.push({ name: "dockerd pull", samples: [], pull: () => dockerdPull(dockerd, ref) });
    }
    for (let i = 0; i < options.runs; i++) {
      for (const tool of tools) tool.samples.push(await tool.pull());
    }
    const mb = options.megabytes;
    options.out(
      `\npull of a ${mb} MB image in ${LAYERS} gzip layers from a local registry, fresh store ` +
        `each run, ${options.runs} runs each, interleaved (ms: median [min-max], MB/s)`,
    );
    const medians = new Map<string, number>();
    for (const tool of tools) {
      const s = stats(tool.samples);
      medians.set(tool.name, s.median);
      options.out(
        `  ${tool.name.padEnd(14)}${s.median.toFixed(0)} [${s.min.toFixed(0)}-${
          s.max.toFixed(0)
        }]  ${(mb / (s.median / 1000)).toFixed(0)} MB/s`,
      );
    }
    const ratio = medians.get("pouch pull")! / medians.get("ctr pull")!;
    options.out(`  ratio pouch/ctr ${ratio.toFixed(2)}`);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** A fresh daemon, one timed `pouch pull`, the daemon stopped and removed. */
async function pouchPull(ref: string): Promise<number> {
  await using daemon = await startDaemon();
  const started = performance.now();
  const result = await daemon.pouch(["pull", ref]);
  const elapsed = performance.now() - started;
  if (result.code !== 0) throw new Error(`pouch pull failed: ${result.stderr}`);
  return elapsed;
}

/** A fresh daemon's containerd, one timed `ctr images pull` into namespace `benchpull`. */
async function ctrPull(ref: string): Promise<number> {
  await using daemon = await startDaemon();
  const address = `${daemon.home}/containerd/containerd.sock`;
  const args = ["-a", address, "-n", "benchpull", "images", "pull", "--plain-http", ref];
  const started = performance.now();
  const result = await new Deno.Command("ctr", { args, stdout: "null", stderr: "piped" })
    .output();
  const elapsed = performance.now() - started;
  if (!result.success) {
    throw new Error(`ctr pull failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  return elapsed;
}

/** A fresh dockerd in a temp dir, one timed `docker pull`. */
async function dockerdPull(dockerd: string, ref: string): Promise<number> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-dockerd-" });
  const socket = `${dir}/docker.sock`;
  const child = new Deno.Command(dockerd, {
    args: [
      "--data-root",
      `${dir}/root`,
      "--exec-root",
      `${dir}/exec`,
      "--pidfile",
      `${dir}/docker.pid`,
      "-H",
      `unix://${socket}`,
      "--bridge",
      "none",
      "--iptables=false",
      "--insecure-registry",
      ref.split("/")[0]!,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: `${dir}/config` };
    const deadline = Date.now() + 30_000;
    while (true) {
      const ping = await new Deno.Command("docker", { args: ["version"], env, stdout: "null" })
        .output();
      if (ping.success) break;
      if (Date.now() > deadline) throw new Error("dockerd did not start within 30 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const started = performance.now();
    const result = await new Deno.Command("docker", {
      args: ["pull", "-q", ref],
      env,
      stdout: "null",
      stderr: "piped",
    }).output();
    const elapsed = performance.now() - started;
    if (!result.success) {
      throw new Error(`docker pull failed: ${new TextDecoder().decode(result.stderr)}`);
    }
    return elapsed;
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Writes an OCI layout at `work/layout` (tag `big`): `LAYERS` gzip layers, each a tar of one
 * file of random bytes, and a config whose diff IDs are the tars' digests. Answers the path.
 */
async function buildImage(work: string, megabytes: number): Promise<string> {
  const layout = `${work}/layout`;
  await Deno.mkdir(`${layout}/blobs/sha256`, { recursive: true });
  const perLayer = Math.floor((megabytes * 1e6) / LAYERS);
  const layers: Array<{ digest: string; size: number; diffId: string }> = [];
  for (let i = 0; i < LAYERS; i++) {
    const dir = `${work}/layer-${i}`;
    await Deno.mkdir(dir);
    await writeRandom(`${dir}/data-${i}`, perLayer);
    await run("tar", ["-C", dir, "-cf", `${work}/layer.tar`, `data-${i}`]);
    await Deno.remove(dir, { recursive: true });
    const diffId = await sha256File(`${work}/layer.tar`);
    // Level 1: random bytes do not compress; a higher level only costs time.
    await run("gzip", ["-1", "-n", `${work}/layer.tar`]);
    const digest = await sha256File(`${work}/layer.tar.gz`);
    const size = (await Deno.stat(`${work}/layer.tar.gz`)).size;
    await Deno.rename(`${work}/layer.tar.gz`, `${layout}/blobs/sha256/${digest.slice(7)}`);
    layers.push({ digest, size, diffId });
  }
  const arch = Deno.build.arch === "x86_64" ? "amd64" : "arm64";
  const config = await writeBlob(layout, {
    architecture: arch,
    os: "linux",
    config: { Cmd: ["/data-0"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
  });
  const manifest = await writeBlob(layout, {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: l.digest,
      size: l.size,
    })),
  });
  await Deno.writeTextFile(`${layout}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        annotations: { "org.opencontainers.image.ref.name": "big" },
      }],
    }),
  );
  return layout;
}

async function writeBlob(
  layout: string,
  value: unknown,
): Promise<{ digest: string; size: number }> {
  const bytes = encoder.encode(JSON.stringify(value));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeFile(`${layout}/blobs/sha256/${hex}`, bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes `size` random bytes (getRandomValues gives at most 64 KiB a call). */
async function writeRandom(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let written = 0; written < size;) {
    const n = Math.min(chunk.length, size - written);
    for (let off = 0; off < n; off += 65536) {
      crypto.getRandomValues(chunk.subarray(off, Math.min(off + 65536, n)));
    }
    let done = 0;
    while (done < n) done += await file.write(chunk.subarray(done, n));
    written += n;
  }
}

async function sha256File(path: string): Promise<string> {
  const out = await run("sha256sum", [path]);
  return `sha256:${out.split(" ")[0]}`;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const result = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!result.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  return new TextDecoder().decode(result.stdout);
}

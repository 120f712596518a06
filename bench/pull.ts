/**
 * The pull benchmark: a generated image of about 200 MB (`BENCH_PULL_MB`) in 4 gzip layers of
 * random bytes (so the registry serves about as many bytes as it stores), pushed with skopeo into
 * a `docker-registry` on 127.0.0.1, then pulled by each peer of `peers.ts`: `pouch pull`,
 * `ctr images pull --plain-http`, `docker pull` against dockerd and `podman pull
 * --tls-verify=false`, A/B interleaved.
 *
 * Each pull runs against a fresh engine (its own containerd or store, empty content store and
 * snapshotter), so every blob is downloaded and unpacked: removing the image alone would leave
 * its blobs until containerd's garbage collector runs, and containerd shares blobs across
 * namespaces, so a `ctr` pull after a pouch pull on the same containerd would skip them. The
 * engine's start is not timed.
 *
 * @module
 */
import { sleep, stats, time } from "./_measure.ts";
import { type PeerName, startDockerd, startPodman, startPouch } from "./peers.ts";
import type { PeerResult, Row } from "./suite.ts";
import { skopeoPush, startRegistry } from "../testdata/registry.ts";

const encoder = new TextEncoder();
const LAYERS = 4;

/** Options of {@link benchPull}. */
export interface BenchPullOptions {
  /** Runs per peer. */
  runs: number;
  /** Image size in MB (10^6 bytes), split evenly over the layers. */
  megabytes: number;
  /** The peers to pull with. */
  peers: PeerName[];
  /** The pouch executable (see `startPouch`). */
  executable?: string;
  /** Writes one line of the report. */
  out: (line: string) => void;
}

/** One timed pull by a fresh engine, or why the peer cannot. */
type Pull = (ref: string, registry: string) => Promise<number | string>;

const PULLS: Record<PeerName, (options: BenchPullOptions) => Pull> = {
  pouch: (options) => async (ref) => {
    await using pouch = await startPouch({ executable: options.executable });
    return await pouch.time(["pull", ref]);
  },
  ctr: (options) => async (ref) => {
    await using pouch = await startPouch({ executable: options.executable });
    const args = ["-a", pouch.containerdSocket, "-n", "benchpull", "images", "pull"];
    try {
      return await time("ctr", [...args, "--plain-http", ref]);
    } finally {
      await time("ctr", ["-a", pouch.containerdSocket, "-n", "benchpull", "images", "rm", ref])
        .catch(() => {});
    }
  },
  dockerd: () => async (ref, registry) => {
    const dockerd = await startDockerd({ insecureRegistry: registry });
    if (typeof dockerd === "string") return dockerd;
    await using _ = dockerd;
    return await dockerd.time(["pull", "-q", ref]);
  },
  podman: () => async (ref) => {
    const podman = await startPodman();
    if (typeof podman === "string") return podman;
    await using _ = podman;
    return await podman.time(["pull", "-q", "--tls-verify=false", ref]);
  },
};

/** Runs the pull benchmark, prints a summary and answers its row. */
export async function benchPull(options: BenchPullOptions): Promise<Row> {
  const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-bench-pull-" });
  const results: Partial<Record<PeerName, PeerResult>> = {};
  try {
    const layout = await buildImage(work, options.megabytes);
    await using registry = await startRegistry();
    const ref = `${registry.host}/bench/big:1`;
    await skopeoPush(`oci:${layout}:big`, ref);
    const samples = new Map<PeerName, number[]>(options.peers.map((p) => [p, []]));
    for (let i = 0; i < options.runs; i++) {
      for (const peer of options.peers) {
        if (results[peer]) continue;
        try {
          const sample = await PULLS[peer](options)(ref, registry.host);
          if (typeof sample === "string") results[peer] = { skipped: sample };
          else samples.get(peer)!.push(sample);
        } catch (err) {
          const message = (err as Error).message.split("\n").slice(0, 3).join(" ");
          options.out(`  ${peer}: pull failed: ${message}`);
          results[peer] = { skipped: `failed: ${message.slice(0, 200)}` };
        }
        await sleep(200);
      }
    }
    for (const [peer, list] of samples) {
      if (!results[peer] && list.length > 0) results[peer] = { ...stats(list), samples: list };
    }
    for (const [peer, result] of Object.entries(results)) {
      if ("median" in result) {
        const rate = options.megabytes / (result.median / 1000);
        options.out(
          `  ${peer} pull: median ${result.median.toFixed(0)} ms, ${rate.toFixed(0)} MB/s`,
        );
      }
    }
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
  return {
    id: "pull",
    title: `pull of ${options.megabytes} MB (${LAYERS} layers)`,
    unit: "ms",
    better: "lower",
    results,
    note: "local registry on 127.0.0.1, a fresh engine for every pull (its start not timed)",
  };
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

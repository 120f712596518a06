/**
 * Soak: many create/start/stop/rm cycles, one after another and many at once, against a real
 * daemon; the daemon's file descriptors, snapshots, mounts, network namespaces, cgroups and
 * (within noise) its memory must not grow. Run by `deno task test:stress` (CI runs it too);
 * `SOAK_CYCLES` (1000) and `SOAK_CONCURRENT` (200) set the counts.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";
import { concatBytes } from "./logs.ts";

const cycles = Number(Deno.env.get("SOAK_CYCLES") ?? 1000);
const concurrent = Number(Deno.env.get("SOAK_CONCURRENT") ?? 200);

async function count(path: string): Promise<number> {
  return (await Array.fromAsync(Deno.readDir(path)).catch(() => [])).length;
}

/** What the daemon holds, counted. */
async function resources(daemon: TestDaemon) {
  const ctr = ["-a", `${daemon.home}/containerd/containerd.sock`, "-n", "default"];
  const snapshots = await new Deno.Command("ctr", { args: [...ctr, "snapshots", "ls"] }).output();
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .filter((line) => (line.split(" ")[4] ?? "").startsWith(daemon.dir)).length;
  const status = await Deno.readTextFile(`/proc/${daemon.pid}/status`);
  const cgroups = (await Array.fromAsync(Deno.readDir("/sys/fs/cgroup/memory/pouch")).catch(
    () => [],
  )).filter((entry) => entry.isDirectory).length;
  const kinds: Record<string, number> = {};
  for await (const entry of Deno.readDir(`/proc/${daemon.pid}/fd`)) {
    const target = await Deno.readLink(`/proc/${daemon.pid}/fd/${entry.name}`).catch(() => "?");
    const kind = target.replace(/\d+/g, "N").replace(/[0-9a-f]{64}/g, "ID");
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return {
    fdKinds: kinds,
    fds: await count(`/proc/${daemon.pid}/fd`),
    snapshots: new TextDecoder().decode(snapshots.stdout).trim().split("\n").length,
    mounts,
    netns: await count(`${daemon.home}/netns`),
    cgroups,
    rssKiB: rssKiB(status),
  };
}

/** VmRSS of a `/proc/PID/status` text, in KiB. */
function rssKiB(status: string): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/**
 * The API over a connection per request (`Connection: close`), as the Docker CLI has one per
 * command. Not Deno's `fetch` with a unix-socket client: its connections cost this process about
 * 120 ms each of work that stalls its next file reads (200 concurrent fetches, then one
 * `Deno.readTextFile`: 25 s), or 200 ms a request unpooled, and the soak spent 1.5 minutes in it.
 */
class Api {
  readonly #socket: string;

  constructor(socket: string) {
    this.#socket = socket;
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: string }> {
    const payload = body === undefined ? "" : JSON.stringify(body);
    const head = [
      `${method} ${path} HTTP/1.1`,
      "Host: pouch",
      "Connection: close",
      `Content-Length: ${encoder.encode(payload).length}`,
      ...(body === undefined ? [] : ["Content-Type: application/json"]),
    ];
    const conn = await Deno.connect({ transport: "unix", path: this.#socket });
    let answer: Uint8Array;
    try {
      await writeAll(conn, encoder.encode(`${head.join("\r\n")}\r\n\r\n${payload}`));
      answer = await readToEnd(conn);
    } finally {
      conn.close();
    }
    const split = indexOf(answer, encoder.encode("\r\n\r\n"), 0);
    const headText = decoder.decode(answer.subarray(0, split));
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headText)?.[1] ?? 0);
    const rest = answer.subarray(split + 4);
    const chunked = /^transfer-encoding: *chunked/im.test(headText);
    return { status, body: decoder.decode(chunked ? unchunk(rest) : rest) };
  }
}

const encoder = new TextEncoder();

/** Everything `conn` sends until it closes (the server closes after its answer). */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    pieces.push(buffer.slice(0, n));
  }
  return concatBytes(pieces);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

const decoder = new TextDecoder();

/** Where `needle` starts in `bytes` at or after `from`, or -1. */
function indexOf(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A chunked body's data. */
function unchunk(bytes: Uint8Array): Uint8Array {
  const pieces: Uint8Array[] = [];
  const crlf = encoder.encode("\r\n");
  for (let at = 0; at < bytes.length;) {
    const eol = indexOf(bytes, crlf, at);
    const size = parseInt(decoder.decode(bytes.subarray(at, eol)), 16);
    if (!(size > 0)) break;
    pieces.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return concatBytes(pieces);
}

/** One container's whole life through the API (no CLI process: the daemon is what is soaked). */
async function cycle(api: Api, index: number, network: string): Promise<void> {
  const created = await api.call("POST", `/containers/create?name=soak-${index}`, {
    Image: "busybox",
    Cmd: ["sleep", "1000"],
    HostConfig: { Init: true, NetworkMode: network },
  });
  assert.equal(created.status, 201, created.body);
  const id = JSON.parse(created.body).Id;
  const steps: Array<[string, string, number]> = [
    ["POST", `/containers/${id}/start`, 204],
    ["POST", `/containers/${id}/stop?t=5`, 204],
    ["DELETE", `/containers/${id}?v=1`, 204],
  ];
  for (const [method, path, want] of steps) {
    const { status, body } = await api.call(method, path);
    assert.equal(status, want, `${method} ${path}: ${body}`);
  }
}

Deno.test("soak: create/start/stop/rm cycles leak nothing", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    const api = new Api(daemon.socket);
    // Warm up: first-use costs (the init binary's page cache, the bridge) are not leaks.
    for (let i = 0; i < 5; i++) await cycle(api, -1 - i, "default");
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await resources(daemon);

    await t.step(`${cycles} cycles one after another`, async () => {
      for (let i = 0; i < cycles; i++) {
        // Every tenth on the bridge (CNI ADD/DEL), the rest without a network, to bound time.
        await cycle(api, i, i % 10 === 0 ? "default" : "none");
      }
    });

    await t.step(`${concurrent} cycles at once`, async () => {
      const batch = Array.from(
        { length: concurrent },
        (_, i) => cycle(api, cycles + i, i % 10 === 0 ? "default" : "none"),
      );
      await Promise.all(batch);
    });

    await t.step("nothing grew", async () => {
      // A connection the daemon has answered on may take a moment to be closed on its side.
      const daemonFds = () => count(`/proc/${daemon.pid}/fd`);
      for (let i = 0; i < 30 && (await daemonFds()) > before.fds + 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.equal((await ok(daemon, ["ps", "-aq"])).trim(), "");
      // The daemon gives memory back once the burst is over (engine/memory.ts: a collection
      // after a quiet half second, a trim half a second later): a leak is what stays after that.
      const limitKiB = before.rssKiB * 1.5 + 20_000;
      const daemonRss = async () => rssKiB(await Deno.readTextFile(`/proc/${daemon.pid}/status`));
      for (let i = 0; i < 20 && (await daemonRss()) >= limitKiB; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const after = await resources(daemon);
      const figures = `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`;
      // For whoever runs the soak: how much the daemon keeps, whatever the limit.
      // deno-lint-ignore no-console
      console.log(`soak RSS: ${before.rssKiB} KiB before, ${after.rssKiB} KiB after`);
      assert.ok(after.fds <= before.fds + 2, `file descriptors grew: ${figures}`);
      assert.equal(after.snapshots, before.snapshots, `snapshots: ${figures}`);
      assert.equal(after.mounts, before.mounts, `mounts: ${figures}`);
      assert.equal(after.netns, before.netns, `netns: ${figures}`);
      assert.equal(after.cgroups, before.cgroups, `cgroups: ${figures}`);
      // V8's heap breathes: allow noise, not a leak proportional to the cycles.
      assert.ok(after.rssKiB < limitKiB, `RSS grew: ${figures}`);
    });
  });
});

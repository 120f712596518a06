/**
 * Soak: many create/start/stop/rm cycles, one after another and many at once, against a real
 * daemon; the daemon's file descriptors, snapshots, mounts, network namespaces, cgroups and
 * (within noise) its memory must not grow. Run by `deno task test:stress` (CI runs it too);
 * `SOAK_CYCLES` (1000) and `SOAK_CONCURRENT` (200) set the counts.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";

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

/** An API client of its own, so that its connections can be closed before counting. */
class Api {
  readonly #client: Deno.HttpClient;

  constructor(socket: string) {
    this.#client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  }

  async call(method: string, path: string, body?: unknown) {
    const response = await fetch(`http://pouch${path}`, {
      method,
      client: this.#client,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.text() };
  }

  close(): void {
    this.#client.close();
  }
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
    // Warm up: first-use costs (the init binary's page cache, the bridge) are not leaks.
    const warmApi = new Api(daemon.socket);
    for (let i = 0; i < 5; i++) await cycle(warmApi, -1 - i, "default");
    warmApi.close();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await resources(daemon);
    const api = new Api(daemon.socket);

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
      // The client's pooled connections are the client's, not a leak of the daemon's: the
      // server lets idle keep-alive connections go after its keep-alive timeout (5 s).
      api.close();
      for (let i = 0; i < 30 && (await resources(daemon)).fds > before.fds + 2; i++) {
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

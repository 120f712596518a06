/**
 * The crash matrix: the daemon kills itself with SIGKILL (test-only `POUCH_FAULTS=POINT=crash`)
 * at each step of create, start and rm of a container with a network, a volume and published
 * ports; the next start must reconcile to a consistent state, and once everything is removed
 * nothing may be left: no record, containerd container, active snapshot, netns, veth, IPAM
 * entry, mount, or volume reference.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";

const defaultBridge = `pcr${crypto.randomUUID().slice(0, 8)}`;
/** The user network's bridge, named here so that its veths can be counted. */
const bridge = `pcn${crypto.randomUUID().slice(0, 8)}`;
const subnet = `10.218.${Math.floor(Math.random() * 200)}`;

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(output.stdout);
}

/** Everything a container may leave behind, counted. */
async function leftovers(daemon: TestDaemon) {
  const ctr = ["-a", `${daemon.home}/containerd/containerd.sock`, "-n", "default"];
  const activeSnapshots = (await run("ctr", [...ctr, "snapshots", "ls"])).split("\n")
    .filter((line) => /\sActive\s*$/.test(line));
  const containerdContainers = (await run("ctr", [...ctr, "containers", "ls", "-q"])).trim()
    .split("\n").filter((line) => line !== "");
  const netns = await Array.fromAsync(Deno.readDir(`${daemon.home}/netns`)).catch(() => []);
  const veths = (await run("ip", ["-o", "link", "show", "master", bridge])).trim().split("\n")
    .filter((line) => line !== "");
  const ipam: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) await walk(`${dir}/${entry.name}`);
      else if (/^\d+\.\d+\.\d+\.\d+$/.test(entry.name)) ipam.push(`${dir}/${entry.name}`);
    }
  };
  await walk(`${daemon.home}/network`).catch(() => {});
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point.startsWith(`${daemon.home}/`) && !point.includes("/containerd/"));
  const records = (await ok(daemon, ["ps", "-aq"])).trim().split("\n").filter((l) => l !== "");
  return {
    records,
    containerdContainers,
    activeSnapshots,
    netns: netns.map((e) => e.name),
    veths,
    ipam,
    mounts: mounts.filter((point) => !point.includes("/volumes/")),
  };
}

/** Whether volume `name`'s directory and its loop-mounted image are there. */
async function volumeLeftovers(daemon: TestDaemon, name: string) {
  const dir = `${daemon.home}/volumes/${name}`;
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .map((line) => line.split(" ")[4] ?? "");
  return {
    dir: await Deno.stat(dir).then(() => true, () => false),
    mounted: mounts.includes(`${dir}/_data`),
  };
}

const nothing = {
  records: [],
  containerdContainers: [],
  activeSnapshots: [],
  netns: [],
  veths: [],
  ipam: [],
  mounts: [],
};

async function crashAt(
  daemon: TestDaemon,
  point: string,
  command: string[],
): Promise<void> {
  await daemon.stop();
  await daemon.start({ env: { POUCH_FAULTS: `${point}=crash` } });
  const result = await daemon.pouch(command);
  assert.notEqual(result.code, 0, `${point}: ${command.join(" ")} did not fail`);
  await daemon.crash();
  await daemon.start({ env: {} });
}

const runArgs = (name: string) => [
  "run",
  "-d",
  "--init",
  "--name",
  name,
  "--network",
  "crashnet",
  "-p",
  "127.0.0.1::80",
  "-v",
  "crashvol:/data",
  "busybox",
  "sleep",
  "1000",
];

Deno.test("crash matrix: kill -9 at every step of create, start and rm leaks nothing", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, [
      "network",
      "create",
      "--subnet",
      `${subnet}.0/24`,
      "--opt",
      `com.docker.network.bridge.name=${bridge}`,
      "crashnet",
    ]);
    await ok(daemon, ["volume", "create", "crashvol"]);

    await t.step("the probe sees what a running container holds", async () => {
      await ok(daemon, runArgs("probe"));
      const held = await leftovers(daemon);
      assert.equal(held.records.length, 1);
      assert.equal(held.containerdContainers.length, 1);
      assert.equal(held.activeSnapshots.length, 1);
      assert.equal(held.netns.length, 1);
      assert.equal(held.veths.length, 1);
      assert.equal(held.ipam.length, 1);
      await ok(daemon, ["rm", "-f", "probe"]);
      assert.deepEqual(await leftovers(daemon), nothing);
    });

    const createPoints = [
      "create:recorded",
      "create:network",
      "create:snapshot",
      "create:spec",
      "create:containerd",
    ];
    for (const point of createPoints) {
      await t.step(`create cut at ${point}: undone at the next start`, async () => {
        await crashAt(daemon, point, runArgs("victim"));
        assert.deepEqual(await leftovers(daemon), nothing, point);
        // The name is free again and everything works.
        await ok(daemon, runArgs("victim"));
        await ok(daemon, ["rm", "-f", "victim"]);
        assert.deepEqual(await leftovers(daemon), nothing, `${point}, after a normal run`);
      });
    }

    for (const point of ["start:task", "start:started"]) {
      await t.step(`start cut at ${point}: a consistent container that starts again`, async () => {
        await ok(daemon, runArgs("starter"));
        await ok(daemon, ["stop", "starter"]);
        await crashAt(daemon, point, ["start", "starter"]);
        const status = (await ok(daemon, ["inspect", "-f", "{{.State.Status}}", "starter"])).trim();
        assert.ok(["exited", "running", "created"].includes(status), `${point}: ${status}`);
        if (status !== "running") await ok(daemon, ["start", "starter"]);
        assert.equal(
          (await ok(daemon, ["exec", "starter", "echo", "alive"])).trim(),
          "alive",
          point,
        );
        await ok(daemon, ["rm", "-f", "starter"]);
        assert.deepEqual(await leftovers(daemon), nothing, point);
      });
    }

    for (const point of ["remove:marked", "remove:containerd", "remove:network"]) {
      await t.step(`rm cut at ${point}: finished at the next start`, async () => {
        await ok(daemon, runArgs("doomed"));
        await crashAt(daemon, point, ["rm", "-f", "doomed"]);
        assert.deepEqual(await leftovers(daemon), nothing, point);
      });
    }

    await t.step(
      "volume create cut after the driver made it: undone at the next start",
      async () => {
        await crashAt(daemon, "volume:created", ["volume", "create", "--opt", "size=8m", "half"]);
        assert.equal(
          (await ok(daemon, ["volume", "ls", "-q", "--filter", "name=half"])).trim(),
          "",
        );
        assert.deepEqual(await volumeLeftovers(daemon, "half"), { dir: false, mounted: false });
        await ok(daemon, ["volume", "create", "--opt", "size=8m", "half"]);
        assert.deepEqual(await volumeLeftovers(daemon, "half"), { dir: true, mounted: true });
      },
    );

    await t.step(
      "volume rm cut after the driver removed it: finished at the next start",
      async () => {
        await crashAt(daemon, "volume:removed", ["volume", "rm", "half"]);
        assert.equal(
          (await ok(daemon, ["volume", "ls", "-q", "--filter", "name=half"])).trim(),
          "",
        );
        assert.deepEqual(await volumeLeftovers(daemon, "half"), { dir: false, mounted: false });
      },
    );

    for (const point of ["network:recorded", "network:unbridged"]) {
      await t.step(`network create and rm cut at ${point}: a whole network or none`, async () => {
        const name = `net-${point.split(":")[1]}`;
        const bridgeName = `pcx${crypto.randomUUID().slice(0, 8)}`;
        const create = [
          "network",
          "create",
          "--subnet",
          `10.219.${point === "network:recorded" ? 1 : 2}.0/24`,
          "--opt",
          `com.docker.network.bridge.name=${bridgeName}`,
          name,
        ];
        const bridgeExists = async () =>
          (await new Deno.Command("ip", { args: ["link", "show", bridgeName], stderr: "null" })
            .output()).success;
        if (point === "network:recorded") {
          await crashAt(daemon, point, create);
        } else {
          await ok(daemon, create);
          await crashAt(daemon, point, ["network", "rm", name]);
        }
        // Either way the network is whole: its record and its bridge, usable and removable.
        assert.equal(
          (await ok(daemon, ["network", "ls", "-q", "--filter", `name=${name}`])).trim() !== "",
          true,
        );
        assert.ok(await bridgeExists(), `${point}: the network has no bridge`);
        await ok(daemon, ["run", "--rm", "--network", name, "busybox", "true"]);
        await ok(daemon, ["network", "rm", name]);
        assert.ok(!await bridgeExists(), `${point}: the bridge outlived its network`);
      });
    }

    await t.step("the volume is no longer referenced; the network can go", async () => {
      await ok(daemon, ["volume", "rm", "crashvol"]);
      await ok(daemon, ["network", "rm", "crashnet"]);
    });
  }, { args: ["--bridge-name", defaultBridge, "--bip", "10.218.251.1/24"] });
});

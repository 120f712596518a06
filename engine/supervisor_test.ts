import assert from "node:assert/strict";
import { connectContainerd } from "./containerd.ts";
import { isInvalidArgument, isUnavailable } from "./errors.ts";
import { containerdConfig, type ContainerdOptions, startContainerd } from "./supervisor.ts";
import { waitFor, withTempContainerd } from "./testing.ts";

/** Paths for a containerd in `dir`. */
function optionsIn(dir: string): ContainerdOptions {
  return {
    root: `${dir}/root`,
    state: `${dir}/state`,
    address: `${dir}/c.sock`,
    configPath: `${dir}/config.toml`,
  };
}

async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

Deno.test("containerdConfig() disables containerd's CRI and sets the sockets", () => {
  const config = containerdConfig({ root: "/r", state: "/s", address: "/run/c.sock" });
  assert.match(config, /^version = 2$/m);
  assert.match(config, /^root = "\/r"$/m);
  assert.match(config, /^state = "\/s"$/m);
  assert.match(config, /disabled_plugins = \[.*"io\.containerd\.grpc\.v1\.cri".*\]/);
  assert.match(config, /\[grpc\]\n {2}address = "\/run\/c\.sock"/);
  assert.match(config, /\[ttrpc\]\n {2}address = "\/run\/c\.sock\.ttrpc"/);
});

Deno.test("startContainerd() rejects a socket path over the unix limit", async () => {
  const err = await startContainerd(optionsIn(`/tmp/${"x".repeat(120)}`)).catch((err) => err);
  assert(isInvalidArgument(err), String(err));
});

Deno.test("startContainerd() rejects a binary that does not exist", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-sup-" });
  try {
    const options = { ...optionsIn(dir), path: `${dir}/no-such-containerd` };
    assert(isUnavailable(await startContainerd(options).catch((err) => err)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startContainerd() restarts containerd when it is killed, and stop() ends it", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-sup-" });
  const options = optionsIn(dir);
  const lines: string[] = [];
  let restarts = 0;
  const containerd = await startContainerd({
    ...options,
    log: (line) => lines.push(line),
    onRestart: () => restarts++,
  });
  const client = connectContainerd(options.address);
  try {
    assert.equal(containerd.address, options.address);
    const firstPid = containerd.pid;
    assert(await isAlive(firstPid));
    assert((await client.version()).version.startsWith("1.6"));
    assert(lines.some((line) => line.includes("containerd successfully booted")));

    Deno.kill(firstPid, "SIGKILL");
    await waitFor(() => restarts === 1, { timeoutMs: 15_000, message: "no restart" });
    assert.notEqual(containerd.pid, firstPid);
    assert(lines.some((line) => line.includes("exited unexpectedly")));
    await waitFor(() => client.version().then(() => true, () => false), { timeoutMs: 5_000 });
  } finally {
    client.close();
    await containerd.stop();
  }
  const lastPid = containerd.pid;
  assert(!(await isAlive(lastPid)), "containerd still runs after stop()");
  assert.equal(restarts, 1, "stop() does not cause a restart");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a task keeps running while containerd is stopped and is there after a start", async () => {
  await using ctd = await withTempContainerd();
  const { client } = ctd;
  const rootfs = `${ctd.dir}/rootfs`;
  for (const sub of ["bin", "proc", "dev"]) {
    await Deno.mkdir(`${rootfs}/${sub}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
  await client.containers.create({
    id: "survivor",
    runtime: { name: "io.containerd.runc.v2", options: { root: `${ctd.dir}/runc` } },
    spec: {
      ociVersion: "1.0.2",
      process: { user: { uid: 0, gid: 0 }, args: ["/bin/busybox", "sleep", "100"], cwd: "/" },
      root: { path: rootfs },
      mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
      linux: {
        namespaces: [{ type: "pid" }, { type: "mount" }],
        cgroupsPath: `/pouch-test-${crypto.randomUUID()}`,
      },
    },
  });
  const { pid } = await client.tasks.create("survivor", { rootfs: [] });
  await client.tasks.start("survivor");

  await ctd.process.stop();
  assert(await isAlive(pid), "the container died with containerd");

  // The same directories and socket as withTempContainerd() uses.
  const again = await startContainerd({
    root: `${ctd.dir}/root`,
    state: `${ctd.dir}/state`,
    address: ctd.address,
    configPath: `${ctd.dir}/config.toml`,
  });
  try {
    await waitFor(() =>
      client.tasks.get("survivor").then((t) => t.status === "running", () => false)
    );
    assert.equal((await client.tasks.get("survivor")).pid, pid);
    const exited = client.tasks.wait("survivor");
    await client.tasks.kill("survivor", 9);
    assert.equal((await exited).exitStatus, 137);
    await client.tasks.delete("survivor");
  } finally {
    await again.stop();
  }
});

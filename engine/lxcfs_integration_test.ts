/**
 * LXCFS against a real daemon, containerd, runc and lxcfs (`/usr/bin/lxcfs`), with the busybox
 * image: the virtualised `/proc` files, the daemon default, and the remount after lxcfs dies.
 */
import assert from "node:assert/strict";
import {
  killUnder,
  pouchOk as ok,
  type TestDaemon,
  unmountUnder,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

async function memTotal(daemon: TestDaemon, name: string): Promise<string> {
  const result = await daemon.pouch(["exec", name, "cat", "/proc/meminfo"]);
  if (result.code !== 0) return `error: ${result.stderr}`;
  return /^MemTotal:.*$/m.exec(result.stdout)?.[0] ?? "";
}

/** The pid of the lxcfs mounted at `home`. */
async function lxcfsPid(home: string): Promise<number> {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    const args = cmdline.split("\0");
    if (args[0]?.endsWith("lxcfs") && args.includes(home)) return Number(entry.name);
  }
  return 0;
}

Deno.test("lxcfs: /proc files, daemon default, restart and remount", async (t) => {
  // The daemon's lxcfs mount point; unmounted and its lxcfs killed in `finally` whatever happens.
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-lxcfs-" });
  const home = `${dir}/lxcfs`;
  try {
    await withBusyboxDaemon(async (daemon) => {
      const hostMemTotal = /^MemTotal:.*$/m.exec(await Deno.readTextFile("/proc/meminfo"))?.[0];

      await t.step("info shows LxcfsEnabled with --enable-lxcfs", async () => {
        const info = JSON.parse((await daemon.api("GET", "/info")).body);
        assert.equal(info.LxcfsEnabled, true);
      });

      await t.step("-m 50m --enableLxcfs: meminfo, uptime", async () => {
        await ok(daemon, [
          "run",
          "-d",
          "-m",
          "50m",
          "--enableLxcfs",
          "--name",
          "lx",
          "busybox",
          "sleep",
          "1000",
        ]);
        assert.match(await memTotal(daemon, "lx"), /^MemTotal:\s+51200 kB$/);
        const uptime = await ok(daemon, ["exec", "lx", "cat", "/proc/uptime"]);
        assert.ok(Number(uptime.split(" ")[0]) < 10, uptime);
        const inspect = JSON.parse(await ok(daemon, ["inspect", "lx"]));
        assert.equal(inspect[0].HostConfig.EnableLxcfs, true);
      });

      await t.step("--cpuset-cpus 0: cpuinfo shows one processor", async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--cpuset-cpus",
          "0",
          "--name",
          "cpu0",
          "busybox",
          "sleep",
          "1000",
        ]);
        const cpuinfo = await ok(daemon, ["exec", "cpu0", "cat", "/proc/cpuinfo"]);
        assert.equal(cpuinfo.split("\n").filter((l) => /^processor\s*:/.test(l)).length, 1);
      });

      await t.step("EnableLxcfs: false: the host's values", async () => {
        const { status, body } = await daemon.api("POST", "/containers/create?name=plain", {
          Image: "busybox",
          Cmd: ["sleep", "1000"],
          HostConfig: { Memory: 50 * 1024 * 1024, EnableLxcfs: false },
        });
        assert.equal(status, 201, body);
        await ok(daemon, ["start", "plain"]);
        assert.equal(await memTotal(daemon, "plain"), hostMemTotal);
      });

      await t.step("killed lxcfs: restarted, and the running container remounted", async () => {
        const pid = await lxcfsPid(home);
        assert.ok(pid > 0, "lxcfs is not running");
        Deno.kill(pid, "SIGKILL");
        await waitFor(async () => {
          const now = await lxcfsPid(home);
          return now > 0 && now !== pid &&
            /^MemTotal:\s+51200 kB$/.test(await memTotal(daemon, "lx"));
        }, { timeoutMs: 20_000 });
      });

      await t.step("pouch remount-lxcfs remounts on demand", async () => {
        const [container] = JSON.parse(await ok(daemon, ["inspect", "lx"]));
        const id = container.Id;
        // Take the bind away behind the daemon's back: the container sees the host's value.
        const pid = container.State.Pid;
        const unmount = await new Deno.Command("nsenter", {
          args: [`--mount=/proc/${pid}/ns/mnt`, "--root=/", `--wd=/proc/${pid}/root`, "--"]
            .concat(["umount", "-l", "--no-canonicalize", "proc/meminfo"]),
          stdout: "null",
          stderr: "null",
        }).output();
        assert.ok(unmount.success);
        assert.equal(await memTotal(daemon, "lx"), hostMemTotal);
        const out = await ok(daemon, ["remount-lxcfs"]);
        assert.ok(out.includes(id), out);
        assert.match(await memTotal(daemon, "lx"), /^MemTotal:\s+51200 kB$/);
        const uptime = await ok(daemon, ["exec", "lx", "cat", "/proc/uptime"]);
        assert.ok(Number(uptime.split(" ")[0]) < 60, uptime);
      });

      await t.step("daemon stop stops its lxcfs; the next daemon remounts", async () => {
        await daemon.stop();
        assert.equal(await lxcfsPid(home), 0);
        await daemon.start();
        assert.match(await memTotal(daemon, "lx"), /^MemTotal:\s+51200 kB$/);
      });

      await t.step("a crashed daemon's lxcfs is adopted and supervised by the next", async () => {
        const pid = await lxcfsPid(home);
        assert.ok(pid > 0, "lxcfs is not running");
        await daemon.crash();
        // SIGKILL leaves lxcfs running, mounted, and nobody watching it.
        assert.equal(await lxcfsPid(home), pid);
        await daemon.start();
        assert.match(await memTotal(daemon, "lx"), /^MemTotal:\s+51200 kB$/);
        assert.equal(await lxcfsPid(home), pid, "the orphan was replaced, not adopted");
        assert.match(await daemon.log(), /adopted the lxcfs a previous daemon started/);
        Deno.kill(pid, "SIGKILL");
        await waitFor(async () => {
          const now = await lxcfsPid(home);
          return now > 0 && now !== pid &&
            /^MemTotal:\s+51200 kB$/.test(await memTotal(daemon, "lx"));
        }, { timeoutMs: 20_000, message: "the adopted lxcfs was not restarted" });
      });

      for (const name of ["lx", "cpu0", "plain"]) await ok(daemon, ["rm", "-f", name]);
      await t.step("daemon stop stops the lxcfs it restarted", async () => {
        await daemon.stop();
        assert.equal(await lxcfsPid(home), 0);
        await daemon.start();
      });
    }, { args: ["--enable-lxcfs", "--lxcfs-home", home] });
  } finally {
    await killUnder(dir);
    await unmountUnder(dir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/** Starts `lxcfs HOME` as an lxcfs the daemon did not start, and waits for its mount. */
async function startExternalLxcfs(home: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("/usr/bin/lxcfs", {
    args: [home],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor(() => Deno.stat(`${home}/proc/meminfo`).then(() => true, () => false));
  return child;
}

Deno.test("lxcfs: an lxcfs already mounted is used, not managed", async (t) => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-lxcfs-" });
  const home = `${dir}/lxcfs`;
  await Deno.mkdir(home);
  let external = await startExternalLxcfs(home);
  try {
    await withBusyboxDaemon(async (daemon) => {
      await t.step("without --enable-lxcfs, info says so", async () => {
        const info = JSON.parse((await daemon.api("GET", "/info")).body);
        assert.equal(info.LxcfsEnabled, false);
      });

      await t.step("--enableLxcfs uses the external lxcfs", async () => {
        await ok(
          daemon,
          ["run", "-d", "-m", "50m", "--enableLxcfs", "--name", "ext", "busybox"]
            .concat(["sleep", "1000"]),
        );
        assert.match(await memTotal(daemon, "ext"), /^MemTotal:\s+51200 kB$/);
        assert.equal(await lxcfsPid(home), external.pid);
      });

      await t.step("after the external lxcfs restarts, remount-lxcfs repairs", async () => {
        external.kill("SIGKILL");
        await external.status;
        assert.match(await memTotal(daemon, "ext"), /^error: .*Transport endpoint/);
        // The daemon leaves an lxcfs it did not start alone.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(await lxcfsPid(home), 0);
        await new Deno.Command("umount", { args: ["-l", home] }).output();
        external = await startExternalLxcfs(home);
        await ok(daemon, ["remount-lxcfs"]);
        assert.match(await memTotal(daemon, "ext"), /^MemTotal:\s+51200 kB$/);
      });

      await ok(daemon, ["rm", "-f", "ext"]);
    }, { args: ["--lxcfs-home", home] });
    // Stopping the daemon left the external lxcfs running.
    assert.equal(await lxcfsPid(home), external.pid);
  } finally {
    try {
      external.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    await external.status;
    await killUnder(dir);
    await unmountUnder(dir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

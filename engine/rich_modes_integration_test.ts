/**
 * Rich containers whose pid 1 is the image's own init (`--rich-mode systemd` and `sbin-init`)
 * and Docker's `--init`, against a real daemon, containerd and runc: a systemd image built from
 * the host's packages (testdata/build_systemd.sh) boots to `running` and runs its units, and
 * busybox's init runs a container's command as its child.
 */
import assert from "node:assert/strict";
import {
  inspectContainer as inspect,
  pouchOk as ok,
  systemdTarball,
  type TestDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

async function cmdline(daemon: TestDaemon, name: string, pid = 1): Promise<string[]> {
  const text = await ok(daemon, ["exec", name, "cat", `/proc/${pid}/cmdline`]);
  return text.split("\0").filter((arg) => arg !== "");
}

/** Waits until `systemctl is-system-running` answers `running` (or fails the test). */
async function waitForBoot(daemon: TestDaemon, name: string): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const result = await daemon.pouch(["exec", name, "systemctl", "is-system-running"]);
    last = result.stdout.trim() || result.stderr.trim();
    return last === "running" || last === "degraded";
  }, { timeoutMs: 30_000, intervalMs: 250, message: `${name} did not boot` });
  if (last !== "running") {
    const failed = await daemon.pouch(["exec", name, "systemctl", "--failed", "--no-pager"]);
    assert.fail(`${name} is ${last}:\n${failed.stdout}`);
  }
}

Deno.test("rich modes: systemd and sbin-init as pid 1, and --init", async (t) => {
  const systemdImage = await systemdTarball();
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, ["load", "-i", systemdImage]);

    await t.step(
      "systemd mode: boots to running, runs the image's units, no privileges",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--rich-mode",
          "systemd",
          "--name",
          "sd",
          "systemd",
        ]);
        await waitForBoot(daemon, "sd");
        const argv = await cmdline(daemon, "sd");
        assert.match(argv[0]!, /systemd$|^\/sbin\/init$/, argv.join(" "));
        // The image's own unit ran.
        assert.equal(
          (await ok(daemon, ["exec", "sd", "cat", "/run/hello-from-unit"])).trim(),
          "hello from a unit",
        );
        const view = await inspect(daemon, "sd");
        assert.equal(view.Config.Rich, true);
        assert.equal(view.Config.RichMode, "systemd");
        assert.equal(view.Config.StopSignal, "SIGRTMIN+3");
        assert.notEqual(view.HostConfig.Privileged, true);
        // Its own name=systemd hierarchy is writable, the controllers holding its limits are not.
        const write = await daemon.pouch([
          "exec",
          "sd",
          "sh",
          "-c",
          "echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
        ]);
        assert.notEqual(write.code, 0, "the memory controller is writable inside");
        const mounts = await ok(daemon, ["exec", "sd", "cat", "/proc/mounts"]);
        assert.match(mounts, /^tmpfs \/run tmpfs /m);
        assert.match(mounts, /^tmpfs \/tmp tmpfs /m);
      },
    );

    await t.step(
      "systemd mode: the command runs as a unit, as its user, into the logs",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--rich-mode",
          "systemd",
          "-u",
          "nobody",
          "-w",
          "/tmp",
          "-e",
          "GREETING=a b$c%d",
          "--name",
          "sd-app",
          "systemd",
          "sh",
          "-c",
          'echo "app says $GREETING"; id -u; pwd; echo to-stderr >&2; exec sleep 1000',
        ]);
        await waitForBoot(daemon, "sd-app");
        const status = await ok(daemon, ["exec", "sd-app", "systemctl", "is-active", "pouch-app"]);
        assert.equal(status.trim(), "active");
        await waitFor(
          async () => (await daemon.pouch(["logs", "sd-app"])).stdout.includes("/tmp"),
          {
            timeoutMs: 10_000,
            message: "the command's output did not reach the logs",
          },
        );
        const logs = await daemon.pouch(["logs", "sd-app"]);
        assert.equal(logs.stdout, "app says a b$c%d\n65534\n/tmp\n");
        assert.equal(logs.stderr, "to-stderr\n");
        // The command is systemd's child, not pid 1.
        const ps = await ok(daemon, ["exec", "sd-app", "ps", "-o", "pid,ppid,user,args"]);
        assert.match(ps, /^\s*\d+\s+1\s+nobody\s+sleep 1000$/m, ps);
      },
    );

    await t.step(
      "systemd mode: SIGRTMIN+3 stops it cleanly and fast; restart boots again",
      async () => {
        const started = Date.now();
        await ok(daemon, ["stop", "sd-app"]);
        assert.ok(Date.now() - started < 8000, `stop took ${Date.now() - started} ms`);
        assert.equal((await inspect(daemon, "sd-app")).State.ExitCode, 0);
        await ok(daemon, ["start", "sd-app"]);
        await waitForBoot(daemon, "sd-app");
        await ok(daemon, ["rm", "-f", "sd", "sd-app"]);
      },
    );

    await t.step(
      "systemd mode: the init script runs before systemd; a failure fails start",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--rich-mode",
          "systemd",
          "--initcmd",
          "echo from-initcmd > /etc/initcmd-ran",
          "--name",
          "sd-init",
          "systemd",
        ]);
        await waitForBoot(daemon, "sd-init");
        assert.equal(
          (await ok(daemon, ["exec", "sd-init", "cat", "/etc/initcmd-ran"])).trim(),
          "from-initcmd",
        );
        assert.match((await cmdline(daemon, "sd-init"))[0]!, /systemd$|^\/sbin\/init$/);
        const failed = await daemon.pouch([
          "run",
          "-d",
          "--rich",
          "--rich-mode",
          "systemd",
          "--initcmd",
          "echo broken; exit 3",
          "--name",
          "sd-fail",
          "systemd",
        ]);
        assert.equal(failed.code, 125, failed.stderr);
        assert.match(failed.stderr, /init command failed with exit code 3: broken/);
        await ok(daemon, ["rm", "-f", "sd-init", "sd-fail"]);
      },
    );

    await t.step(
      "sbin-init mode on busybox: busybox init is pid 1, the command its child",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--rich",
          "--rich-mode",
          "sbin-init",
          "--name",
          "si",
          "busybox",
          "sh",
          "-c",
          "echo app-started; exec sleep 1000",
        ]);
        await waitFor(
          async () => (await daemon.pouch(["logs", "si"])).stdout.includes("app-started"),
          {
            timeoutMs: 10_000,
            message: "the command did not start",
          },
        );
        assert.deepEqual(await cmdline(daemon, "si"), ["init"]);
        const ps = await ok(daemon, ["exec", "si", "ps", "-o", "pid,ppid,args"]);
        assert.match(ps, /^\s*\d+\s+1\s+sleep 1000$/m, ps);
        // Zombies: an orphan that exits is reaped by the init.
        await ok(daemon, ["exec", "si", "sh", "-c", "(sleep 0.2 &) ; true"]);
        await waitFor(async () => {
          const stat = await ok(daemon, ["exec", "si", "sh", "-c", "cat /proc/[0-9]*/stat"]);
          return !/\) Z /.test(stat);
        }, { timeoutMs: 10_000, message: "a zombie was left" });
        await ok(daemon, ["stop", "si"]);
        assert.equal((await inspect(daemon, "si")).State.Status, "exited");
        await ok(daemon, ["rm", "si"]);
      },
    );

    await t.step("sbin-init mode: an image without /sbin/init is refused (400)", async () => {
      // An image holding only busybox itself, without its applet links.
      const rootfs = `${daemon.dir}/noinit`;
      await Deno.mkdir(`${rootfs}/bin`, { recursive: true });
      await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
      await Deno.chmod(`${rootfs}/bin/busybox`, 0o755);
      const tar = await new Deno.Command("tar", {
        args: ["-C", rootfs, "-cf", `${daemon.dir}/noinit.tar`, "."],
      }).output();
      assert.ok(tar.success);
      await ok(daemon, ["import", `${daemon.dir}/noinit.tar`, "noinit:latest"]);
      const count = async () =>
        JSON.parse((await daemon.api("GET", "/containers/json?all=1")).body).length;
      const before = await count();
      for (const mode of ["sbin-init", "systemd"]) {
        const bad = await daemon.pouch([
          "create",
          "--rich",
          "--rich-mode",
          mode,
          "noinit",
          "/bin/busybox",
          "true",
        ]);
        assert.equal(bad.code, 125, bad.stderr);
        assert.match(bad.stderr, new RegExp(`rich mode ${mode} runs .* image noinit`));
      }
      assert.equal(await count(), before);
      await ok(daemon, ["rmi", "noinit"]);
    });

    await t.step(
      "--init: the static init is pid 1 at /sbin/docker-init, signals reach the app",
      async () => {
        await ok(daemon, ["run", "-d", "--init", "--name", "di", "busybox", "sleep", "1000"]);
        assert.deepEqual(await cmdline(daemon, "di"), ["/sbin/docker-init", "--", "sleep", "1000"]);
        assert.equal((await inspect(daemon, "di")).HostConfig.Init, true);
        const started = Date.now();
        await ok(daemon, ["stop", "-t", "10", "di"]);
        // sleep as pid 1 would ignore SIGTERM and wait for the SIGKILL 10 s later.
        assert.ok(Date.now() - started < 5000, `stop took ${Date.now() - started} ms`);
        await ok(daemon, ["rm", "di"]);
        const docker = await daemon.docker([
          "run",
          "--rm",
          "--init",
          "busybox",
          "cat",
          "/proc/1/cmdline",
        ]);
        assert.equal(docker.code, 0, docker.stderr);
        assert.equal(docker.stdout.split("\0")[0], "/sbin/docker-init");
      },
    );
  });
});

/**
 * Restart policies and live updates against a real daemon, containerd and runc: containers that
 * exit are restarted with Docker's rules and back-off, across daemon restarts and a lost shim,
 * and `update` changes a running container's cgroup limits without restarting it.
 */
import assert from "node:assert/strict";
import {
  inspectContainer as inspect,
  pouchOk as ok,
  type TestDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

async function restartCount(daemon: TestDaemon, name: string): Promise<number> {
  return (await inspect(daemon, name)).RestartCount;
}

async function cgroupValue(id: string, file: string): Promise<string> {
  const controller = file.split(".")[0] === "cpu" ? "cpu" : file.split(".")[0]!;
  return (await Deno.readTextFile(`/sys/fs/cgroup/${controller}/pouch/${id}/${file}`)).trim();
}

Deno.test("restart policies and live updates", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("on-failure:2 restarts a failing container twice, then gives up", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
      ]);
      await waitFor(async () => (await restartCount(daemon, "flaky")) === 2, {
        timeoutMs: 15_000,
        message: "on-failure:2 did not restart twice",
      });
      await waitFor(async () => (await inspect(daemon, "flaky")).State.Status === "exited", {
        timeoutMs: 10_000,
      });
      // No third restart comes.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(await restartCount(daemon, "flaky"), 2);
      assert.equal((await inspect(daemon, "flaky")).State.ExitCode, 3);
      assert.equal((await ok(daemon, ["logs", "flaky"])).trim().split("\n").length, 3);
      // A clean exit is not a failure: no restart.
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "clean",
        "--restart",
        "on-failure",
        "busybox",
        "true",
      ]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(await restartCount(daemon, "clean"), 0);
      await ok(daemon, ["rm", "-f", "flaky", "clean"]);
    });

    await t.step("always restarts with back-off; stop keeps it stopped", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
      ]);
      await waitFor(async () => (await restartCount(daemon, "always")) >= 3, {
        timeoutMs: 20_000,
        message: "always did not restart",
      });
      await ok(daemon, ["stop", "always"]);
      const stopped = await restartCount(daemon, "always");
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(await restartCount(daemon, "always"), stopped);
      assert.equal((await inspect(daemon, "always")).State.Status, "exited");
    });

    await t.step(
      "after a daemon restart: always comes back, unless-stopped stays stopped",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--name",
          "us",
          "--restart",
          "unless-stopped",
          "busybox",
          "sleep",
          "1000",
        ]);
        await ok(daemon, ["stop", "-t", "1", "us"]);
        await daemon.stop();
        await daemon.start();
        await waitFor(async () => (await inspect(daemon, "always")).State.Status === "running", {
          timeoutMs: 10_000,
          message: "the always container did not start with the daemon",
        });
        assert.equal((await inspect(daemon, "us")).State.Status, "exited");
        await ok(daemon, ["rm", "-f", "always", "us"]);
      },
    );

    await t.step(
      "a container whose process died while the daemon was down is restarted",
      async () => {
        await ok(daemon, [
          "run",
          "-d",
          "--init",
          "--name",
          "survivor",
          "--restart",
          "unless-stopped",
          "busybox",
          "sleep",
          "1000",
        ]);
        const pid = (await inspect(daemon, "survivor")).State.Pid;
        await daemon.crash();
        Deno.kill(pid, "SIGKILL");
        await daemon.start();
        await waitFor(async () => {
          const view = await inspect(daemon, "survivor");
          return view.State.Status === "running" && view.State.Pid !== pid;
        }, { timeoutMs: 15_000, message: "the container did not come back" });
        await ok(daemon, ["rm", "-f", "survivor"]);
      },
    );

    await t.step("update changes a running container's limits and policy in place", async () => {
      await ok(daemon, [
        "run",
        "-d",
        "--init",
        "--name",
        "live",
        "-m",
        "64m",
        "busybox",
        "sleep",
        "1000",
      ]);
      const view = await inspect(daemon, "live");
      const pid = view.State.Pid;
      await ok(daemon, [
        "update",
        "-m",
        "128m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "always",
        "live",
      ]);
      assert.equal(await cgroupValue(view.Id, "memory.limit_in_bytes"), String(128 << 20));
      assert.equal(await cgroupValue(view.Id, "cpu.cfs_quota_us"), "50000");
      assert.equal(await cgroupValue(view.Id, "pids.max"), "50");
      const after = await inspect(daemon, "live");
      assert.equal(after.State.Pid, pid, "update restarted the container");
      assert.equal(after.HostConfig.Memory, 128 << 20);
      assert.equal(after.HostConfig.RestartPolicy.Name, "always");
      // Kept for the next start too.
      await ok(daemon, ["restart", "-t", "1", "live"]);
      const restarted = await inspect(daemon, "live");
      assert.equal(await cgroupValue(restarted.Id, "memory.limit_in_bytes"), String(128 << 20));
      // The Docker CLI.
      const docker = await daemon.docker(["update", "--memory", "96m", "live"]);
      assert.equal(docker.code, 0, docker.stderr);
      assert.equal(await cgroupValue(view.Id, "memory.limit_in_bytes"), String(96 << 20));
    });

    await t.step("update refuses bad input and changes nothing", async () => {
      const small = await daemon.pouch(["update", "-m", "1m", "live"]);
      assert.equal(small.code, 1);
      assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
      const missing = await daemon.api("POST", "/containers/nope/update", { Memory: 1 << 27 });
      assert.equal(missing.status, 404);
      await ok(daemon, ["run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "1000"]);
      const policy = await daemon.api("POST", "/containers/gone/update", {
        RestartPolicy: { Name: "always" },
      });
      assert.equal(policy.status, 400, policy.body);
      const bad = await daemon.pouch(["run", "-d", "--restart", "sometimes", "busybox", "true"]);
      assert.equal(bad.code, 125);
      assert.equal(
        (await inspect(daemon, "live")).HostConfig.Memory,
        96 << 20,
      );
      await ok(daemon, ["rm", "-f", "live", "gone"]);
    });
  });
});

/**
 * Volumes end to end: a real daemon, real mounts (loop-mounted ext4 images, tmpfs), driven
 * through pouch's CLI, the raw API and the Docker CLI.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";

async function mountsUnder(dir: string): Promise<string[]> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  return mountinfo.split("\n").map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point.startsWith(`${dir}/`) && point.includes("/volumes/"));
}

async function volumeDirs(daemon: TestDaemon): Promise<string[]> {
  const dir = `${daemon.home}/volumes`;
  return await Array.fromAsync(Deno.readDir(dir), (e) => e.name).catch(() => []);
}

Deno.test("volumes: drivers, limits, refcounts and bad input through pouch", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step("bad names and options answer 400 and create nothing", async () => {
      for (const name of ["a/b", "..", "-x"]) {
        const { status, body } = await daemon.api("POST", "/volumes/create", { Name: name });
        assert.equal(status, 400, body);
        assert.match(JSON.parse(body).message, /invalid characters/);
      }
      for (const opts of [{ size: "lots" }, { color: "red" }, { mount: "rel/dir" }]) {
        const { status } = await daemon.api("POST", "/volumes/create", {
          Name: "bad",
          DriverOpts: opts,
        });
        assert.equal(status, 400);
      }
      const driver = await daemon.api("POST", "/volumes/create", { Name: "x", Driver: "nope" });
      assert.equal(driver.status, 400);
      const run = await daemon.pouch(["run", "--rm", "-v", "../etc:/x", "busybox", "true"]);
      assert.notEqual(run.code, 0);
      assert.deepEqual(await volumeDirs(daemon), []);
      assert.equal(JSON.parse((await daemon.api("GET", "/volumes")).body).Volumes.length, 0);
    });

    await t.step("a size=8m volume refuses writes past 8m inside the container", async () => {
      await ok(daemon, ["volume", "create", "--opt", "size=8m", "--label", "app=db", "capped"]);
      const info = JSON.parse(await ok(daemon, ["volume", "inspect", "capped"]))[0];
      assert.equal(info.Status.backend, "image");
      assert.equal(info.Status.size, "8m");
      assert.deepEqual(info.Labels, { app: "db" });
      const image = info.Status.image as string;
      assert.equal((await mountsUnder(daemon.dir)).length, 1);
      const dd = await daemon.pouch([
        "run",
        "--rm",
        "-v",
        "capped:/data",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/data/big",
        "bs=1048576",
        "count=16",
      ]);
      assert.notEqual(dd.code, 0);
      assert.match(dd.stderr, /No space left on device/);
      await ok(daemon, ["volume", "rm", "capped"]);
      assert.deepEqual(await mountsUnder(daemon.dir), []);
      await assert.rejects(Deno.stat(image), Deno.errors.NotFound);
    });

    await t.step("data persists across container removal and re-creation", async () => {
      await ok(daemon, [
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/file",
      ]);
      const inspect = JSON.parse(await ok(daemon, ["inspect", "writer"]))[0];
      assert.equal(inspect.Mounts.length, 1);
      assert.equal(inspect.Mounts[0].Type, "volume");
      assert.equal(inspect.Mounts[0].Name, "keep");
      assert.equal(inspect.Mounts[0].Destination, "/data");
      assert.equal(inspect.Mounts[0].Driver, "local");
      assert.equal(inspect.Mounts[0].RW, true);
      assert.deepEqual(inspect.HostConfig.Binds, ["keep:/data"]);

      const inUse = await daemon.api("DELETE", "/volumes/keep");
      assert.equal(inUse.status, 409, inUse.body);
      assert.match(JSON.parse(inUse.body).message, /volume is in use/);
      await ok(daemon, ["rm", "writer"]);
      const read = await ok(daemon, [
        "run",
        "--rm",
        "-v",
        "keep:/data:ro",
        "busybox",
        "cat",
        "/data/file",
      ]);
      assert.equal(read, "kept\n");
      const ro = await daemon.pouch([
        "run",
        "--rm",
        "-v",
        "keep:/data:ro",
        "busybox",
        "touch",
        "/data/x",
      ]);
      assert.notEqual(ro.code, 0);
      assert.equal(await ok(daemon, ["volume", "ls", "-q", "--filter", "dangling=true"]), "keep\n");
      await ok(daemon, ["volume", "rm", "keep"]);
    });

    await t.step("a tmpfs volume's content vanishes with it", async () => {
      await ok(daemon, ["volume", "create", "-d", "tmpfs", "--opt", "size=1m", "scratch"]);
      const path = JSON.parse(await ok(daemon, ["volume", "inspect", "scratch"]))[0].Mountpoint;
      await ok(daemon, [
        "run",
        "--rm",
        "-v",
        "scratch:/s",
        "busybox",
        "sh",
        "-c",
        "echo hi > /s/f",
      ]);
      assert.equal(await Deno.readTextFile(`${path}/f`), "hi\n");
      await ok(daemon, ["volume", "rm", "scratch"]);
      await assert.rejects(Deno.stat(`${path}/f`), Deno.errors.NotFound);
      await ok(daemon, ["volume", "create", "-d", "tmpfs", "scratch"]);
      assert.deepEqual([...Deno.readDirSync(path)], []);
      await ok(daemon, ["volume", "rm", "scratch"]);
    });

    await t.step("docker volume and docker run -v work against pouch", async () => {
      const create = await daemon.docker(["volume", "create", "--label", "by=docker", "dvol"]);
      assert.equal(create.code, 0, create.stderr);
      const ls = await daemon.docker(["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
      assert.equal(ls.stdout, "local dvol\n", ls.stderr);
      const inspect = await daemon.docker(["volume", "inspect", "-f", "{{.Labels.by}}", "dvol"]);
      assert.equal(inspect.stdout, "docker\n", inspect.stderr);
      const run = await daemon.docker([
        "run",
        "--rm",
        "-v",
        "dvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo d > /data/f && cat /data/f",
      ]);
      assert.equal(run.stdout, "d\n", run.stderr);
      const rm = await daemon.docker(["volume", "rm", "dvol"]);
      assert.equal(rm.code, 0, rm.stderr);
      await ok(daemon, ["volume", "create", "unused"]);
      const prune = await daemon.docker(["volume", "prune", "-f"]);
      assert.equal(prune.code, 0, prune.stderr);
      assert.match(prune.stdout, /unused/);
      assert.deepEqual(await volumeDirs(daemon), []);
      assert.deepEqual(await mountsUnder(daemon.dir), []);
    });
  });
});

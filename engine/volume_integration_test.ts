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

/** Imports a rootfs of busybox plus `/data/hello` (0640, 1234:5678, in a 0750 dir) as `vol:1`. */
async function importVolumeImage(daemon: TestDaemon): Promise<void> {
  const rootfs = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${rootfs}/bin`);
    await Deno.copyFile("/bin/busybox", `${rootfs}/bin/busybox`);
    for (const applet of ["sh", "cat", "stat", "ls", "true"]) {
      await Deno.symlink("busybox", `${rootfs}/bin/${applet}`);
    }
    await Deno.mkdir(`${rootfs}/data`, { mode: 0o750 });
    await Deno.chmod(`${rootfs}/data`, 0o750);
    await Deno.writeTextFile(`${rootfs}/data/hello`, "hi\n", { mode: 0o640 });
    await Deno.chmod(`${rootfs}/data/hello`, 0o640);
    await Deno.chown(`${rootfs}/data`, 1234, 5678);
    await Deno.chown(`${rootfs}/data/hello`, 1234, 5678);
    const tar = await new Deno.Command("tar", {
      args: ["-C", rootfs, "--numeric-owner", "-cf", "-", "."],
      stdout: "piped",
    }).output();
    const imported = await daemon.pouch(
      ["import", "-c", "VOLUME /data", "-c", 'CMD ["/bin/sh"]', "-", "vol:1"],
      { stdin: tar.stdout },
    );
    assert.equal(imported.code, 0, imported.stderr);
  } finally {
    await Deno.remove(rootfs, { recursive: true });
  }
}

async function volumeNames(daemon: TestDaemon): Promise<string[]> {
  return (await ok(daemon, ["volume", "ls", "-q"])).split("\n").filter((n) => n !== "");
}

Deno.test("volumes: anonymous volumes from VOLUME and -v /path", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await importVolumeImage(daemon);

    await t.step(
      "an image VOLUME gets the image's content; rm keeps it, rm -v removes",
      async () => {
        const out = await ok(daemon, [
          "run",
          "--name",
          "anon",
          "vol:1",
          "sh",
          "-c",
          'cat /data/hello && stat -c "%a %u:%g" /data/hello /data && echo new > /data/new',
        ]);
        assert.equal(out, "hi\n640 1234:5678\n750 1234:5678\n");
        const mounts = JSON.parse(await ok(daemon, ["inspect", "anon"]))[0].Mounts;
        assert.equal(mounts.length, 1);
        assert.equal(mounts[0].Type, "volume");
        assert.equal(mounts[0].Destination, "/data");
        assert.match(mounts[0].Name, /^[0-9a-f]{64}$/);
        const name = mounts[0].Name as string;
        assert.deepEqual(await volumeNames(daemon), [name]);
        const inUse = await daemon.api("DELETE", `/volumes/${name}`);
        assert.equal(inUse.status, 409, inUse.body);
        await ok(daemon, ["rm", "anon"]);
        // Dangling, with the container's writes.
        assert.deepEqual(await volumeNames(daemon), [name]);
        assert.equal(await Deno.readTextFile(`${mounts[0].Source}/new`), "new\n");
        await ok(daemon, ["volume", "rm", name]);

        await ok(daemon, ["run", "--name", "anon2", "vol:1", "true"]);
        assert.equal((await volumeNames(daemon)).length, 1);
        await ok(daemon, ["rm", "-v", "anon2"]);
        assert.deepEqual(await volumeNames(daemon), []);

        await ok(daemon, ["create", "--name", "anon3", "vol:1", "true"]);
        assert.equal((await volumeNames(daemon)).length, 1);
        const del = await daemon.api("DELETE", "/containers/anon3?v=1");
        assert.equal(del.status, 204, del.body);
        assert.deepEqual(await volumeNames(daemon), []);
      },
    );

    await t.step("--rm removes anonymous volumes, named ones stay", async () => {
      assert.equal(await ok(daemon, ["run", "--rm", "vol:1", "cat", "/data/hello"]), "hi\n");
      assert.deepEqual(await volumeNames(daemon), []);
      // A named volume on the VOLUME path replaces the anonymous one.
      await ok(daemon, ["run", "--rm", "-v", "named:/data", "vol:1", "true"]);
      assert.deepEqual(await volumeNames(daemon), ["named"]);
      await ok(daemon, ["volume", "rm", "named"]);
    });

    await t.step("-v /path makes an empty anonymous volume", async () => {
      await ok(daemon, [
        "run",
        "--name",
        "scratch",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "ls -A /scratch && echo x > /scratch/f",
      ]);
      const mounts = JSON.parse(await ok(daemon, ["inspect", "scratch"]))[0].Mounts;
      assert.equal(mounts.length, 1);
      assert.equal(mounts[0].Destination, "/scratch");
      assert.equal(await Deno.readTextFile(`${mounts[0].Source}/f`), "x\n");
      await ok(daemon, ["rm", "-v", "scratch"]);
      assert.deepEqual(await volumeNames(daemon), []);
      assert.deepEqual(await volumeDirs(daemon), []);
      assert.deepEqual(await mountsUnder(daemon.dir), []);
    });
  });
});

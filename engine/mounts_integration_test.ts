/**
 * The container side of volumes end to end: `--mount` (volume, bind, tmpfs), `--tmpfs`,
 * `--volumes-from`, copying the image's content into a new named volume, bind source rules and
 * failed creates that must leave nothing, through pouch's CLI, the raw API and the Docker CLI.
 */
import assert from "node:assert/strict";
import { pouchOk as ok, type TestDaemon, withBusyboxDaemon } from "../testdata/harness.ts";

async function volumeNames(daemon: TestDaemon): Promise<string[]> {
  return (await ok(daemon, ["volume", "ls", "-q"])).split("\n").filter((n) => n !== "");
}

async function containerNames(daemon: TestDaemon): Promise<string[]> {
  return (await ok(daemon, ["ps", "-a", "--format", "{{.Names}}"])).split("\n")
    .filter((n) => n !== "");
}

async function inspectMounts(daemon: TestDaemon, name: string) {
  return JSON.parse(await ok(daemon, ["inspect", name]))[0].Mounts as Array<
    Record<string, unknown>
  >;
}

/** The `/proc/mounts` line inside a container for mount point `path`. */
function mountLine(procMounts: string, path: string): string | undefined {
  return procMounts.split("\n").find((line) => line.split(" ")[1] === path);
}

Deno.test("mounts: --mount, --tmpfs, --volumes-from and bind rules", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await t.step(
      "--mount type=volume: named, created on demand, data kept, ro enforced",
      async () => {
        await ok(daemon, [
          "run",
          "--name",
          "mount-named",
          "--mount",
          "type=volume,src=mount-named,dst=/data",
          "busybox",
          "sh",
          "-c",
          "echo kept > /data/f",
        ]);
        const mounts = await inspectMounts(daemon, "mount-named");
        assert.equal(mounts.length, 1);
        assert.equal(mounts[0]!.Type, "volume");
        assert.equal(mounts[0]!.Name, "mount-named");
        assert.equal(mounts[0]!.Destination, "/data");
        assert.equal(mounts[0]!.RW, true);
        await ok(daemon, ["rm", "-v", "mount-named"]);
        // A named volume survives `rm -v`, with its data.
        const read = await ok(daemon, [
          "run",
          "--rm",
          "--mount",
          "source=mount-named,target=/data,readonly",
          "busybox",
          "cat",
          "/data/f",
        ]);
        assert.equal(read, "kept\n");
        const write = await daemon.pouch([
          "run",
          "--rm",
          "--mount",
          "type=volume,src=mount-named,dst=/data,ro=true",
          "busybox",
          "touch",
          "/data/x",
        ]);
        assert.notEqual(write.code, 0);
        assert.match(write.stderr, /Read-only file system/);
        await ok(daemon, ["volume", "rm", "mount-named"]);
      },
    );

    await t.step(
      "--mount volume-driver, volume-opt and volume-label create the volume",
      async () => {
        await ok(daemon, [
          "run",
          "--rm",
          "--mount",
          "type=volume,src=mount-opts,dst=/d,volume-driver=tmpfs,volume-opt=size=1m," +
          "volume-label=app=web",
          "busybox",
          "true",
        ]);
        const info = JSON.parse(await ok(daemon, ["volume", "inspect", "mount-opts"]))[0];
        assert.equal(info.Driver, "tmpfs");
        assert.equal(info.Options.size, "1m");
        assert.deepEqual(info.Labels, { app: "web" });
        // An existing volume of another driver is a conflict.
        const other = await daemon.pouch([
          "run",
          "--rm",
          "--mount",
          "type=volume,src=mount-opts,dst=/d,volume-driver=local",
          "busybox",
          "true",
        ]);
        assert.equal(other.code, 125);
        assert.match(other.stderr, /already in use with driver "tmpfs"/);
        await ok(daemon, ["volume", "rm", "mount-opts"]);
      },
    );

    await t.step(
      "--mount type=volume without source: anonymous, shared, gone with rm -v",
      async () => {
        await ok(daemon, [
          "run",
          "--name",
          "mount-anon",
          "--mount",
          "type=volume,dst=/data",
          "busybox",
          "sh",
          "-c",
          "echo anon > /data/f",
        ]);
        const mounts = await inspectMounts(daemon, "mount-anon");
        assert.equal(mounts[0]!.Type, "volume");
        assert.match(String(mounts[0]!.Name), /^[0-9a-f]{64}$/);
        const read = await ok(daemon, [
          "run",
          "--rm",
          "--volumes-from",
          "mount-anon",
          "busybox",
          "cat",
          "/data/f",
        ]);
        assert.equal(read, "anon\n");
        assert.deepEqual(await volumeNames(daemon), [mounts[0]!.Name]);
        await ok(daemon, ["rm", "-v", "mount-anon"]);
        assert.deepEqual(await volumeNames(daemon), []);
        const ro = await daemon.api("POST", "/containers/create", {
          Image: "busybox",
          HostConfig: { Mounts: [{ Type: "volume", Target: "/x", ReadOnly: true }] },
        });
        assert.equal(ro.status, 400, ro.body);
        assert.match(JSON.parse(ro.body).message, /must not set ReadOnly mode/);
      },
    );

    await t.step("--mount type=bind: a missing source is 400 and creates nothing", async () => {
      const missing = `${daemon.dir}/no-such-dir`;
      const run = await daemon.pouch([
        "run",
        "--rm",
        "--mount",
        `type=bind,src=${missing},dst=/x`,
        "busybox",
        "true",
      ]);
      assert.equal(run.code, 125);
      assert.match(
        run.stderr,
        new RegExp(
          `invalid mount config for type "bind": bind source path does not exist: ${missing}`,
        ),
      );
      const api = await daemon.api("POST", "/containers/create?name=mount-bind-missing", {
        Image: "busybox",
        HostConfig: { Mounts: [{ Type: "bind", Source: missing, Target: "/x" }] },
      });
      assert.equal(api.status, 400, api.body);
      assert.equal(
        JSON.parse(api.body).message,
        `invalid mount config for type "bind": bind source path does not exist: ${missing}`,
      );
      await assert.rejects(Deno.stat(missing), Deno.errors.NotFound);
      assert.deepEqual(await containerNames(daemon), []);

      // An existing source is mounted, and shown in inspect.
      await Deno.mkdir(`${daemon.dir}/bind-src`);
      await Deno.writeTextFile(`${daemon.dir}/bind-src/f`, "host\n");
      await ok(daemon, [
        "create",
        "--name",
        "mount-bind",
        "--mount",
        `type=bind,src=${daemon.dir}/bind-src,dst=/b,readonly`,
        "busybox",
        "cat",
        "/b/f",
      ]);
      assert.equal(await ok(daemon, ["start", "-a", "mount-bind"]), "host\n");
      const mounts = await inspectMounts(daemon, "mount-bind");
      assert.deepEqual(mounts, [{
        Type: "bind",
        Source: `${daemon.dir}/bind-src`,
        Destination: "/b",
        Mode: "",
        RW: false,
        Propagation: "rprivate",
      }]);
      await ok(daemon, ["rm", "mount-bind"]);
    });

    await t.step("-v /host/missing:/path creates the host directory, as Docker", async () => {
      const made = `${daemon.dir}/made/deep`;
      await ok(daemon, ["run", "--rm", "-v", `${made}:/x`, "busybox", "sh", "-c", "echo v > /x/f"]);
      assert.equal(await Deno.readTextFile(`${made}/f`), "v\n");
    });

    await t.step("--mount type=tmpfs and --tmpfs show in /proc/mounts inside", async () => {
      const procMounts = await ok(daemon, [
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770",
        "--tmpfs",
        "/run/x:size=1m,exec",
        "busybox",
        "sh",
        "-c",
        'cat /proc/mounts && stat -c "%a" /t',
      ]);
      const t1 = mountLine(procMounts, "/t");
      assert.ok(t1, procMounts);
      assert.match(t1, /^tmpfs \/t tmpfs /);
      assert.match(t1, /size=2048k/);
      assert.match(t1, /mode=1770/);
      assert.match(t1, /noexec/);
      const t2 = mountLine(procMounts, "/run/x");
      assert.ok(t2, procMounts);
      assert.match(t2, /size=1024k/);
      assert.doesNotMatch(t2, /noexec/);
      assert.match(procMounts, /\n1770\n$/);
    });

    await t.step("--volumes-from shares volumes and binds; :ro enforced; refcounted", async () => {
      await Deno.mkdir(`${daemon.dir}/vf-host`);
      await ok(daemon, [
        "create",
        "--name",
        "vf-src",
        "-v",
        "vf-data:/data",
        "-v",
        `${daemon.dir}/vf-host:/host`,
        "busybox",
        "true",
      ]);
      await ok(daemon, [
        "run",
        "--name",
        "vf-user",
        "--volumes-from",
        "vf-src",
        "busybox",
        "sh",
        "-c",
        "echo shared > /data/f && echo h > /host/h",
      ]);
      const userMounts = await inspectMounts(daemon, "vf-user");
      assert.deepEqual(userMounts.map((m) => [m.Type, m.Destination, m.RW]).sort(), [
        ["bind", "/host", true],
        ["volume", "/data", true],
      ]);
      assert.equal(await Deno.readTextFile(`${daemon.dir}/vf-host/h`), "h\n");
      const read = await ok(daemon, [
        "run",
        "--rm",
        "--volumes-from",
        "vf-src:ro",
        "busybox",
        "cat",
        "/data/f",
        "/host/h",
      ]);
      assert.equal(read, "shared\nh\n");
      for (const path of ["/data/x", "/host/x"]) {
        const write = await daemon.pouch([
          "run",
          "--rm",
          "--volumes-from",
          "vf-src:ro",
          "busybox",
          "touch",
          path,
        ]);
        assert.notEqual(write.code, 0, path);
        assert.match(write.stderr, /Read-only file system/);
      }
      // The new container's own mount at a destination wins over the inherited one.
      const own = await ok(daemon, [
        "run",
        "--rm",
        "--volumes-from",
        "vf-src",
        "--mount",
        "type=tmpfs,dst=/data",
        "busybox",
        "ls",
        "/data",
      ]);
      assert.equal(own, "");

      // Either container keeps the volume in use.
      const inUse = await daemon.api("DELETE", "/volumes/vf-data");
      assert.equal(inUse.status, 409, inUse.body);
      await ok(daemon, ["rm", "vf-src"]);
      const stillInUse = await daemon.api("DELETE", "/volumes/vf-data");
      assert.equal(stillInUse.status, 409, stillInUse.body);
      assert.match(JSON.parse(stillInUse.body).message, /volume is in use/);
      await ok(daemon, ["rm", "vf-user"]);
      await ok(daemon, ["volume", "rm", "vf-data"]);

      const unknown = await daemon.api("POST", "/containers/create", {
        Image: "busybox",
        HostConfig: { VolumesFrom: ["vf-nope"] },
      });
      assert.equal(unknown.status, 404, unknown.body);
      assert.equal(JSON.parse(unknown.body).message, "No such container: vf-nope");
      const badMode = await daemon.pouch(["run", "--rm", "--volumes-from", "x:rshared", "busybox"]);
      assert.equal(badMode.code, 125);
    });

    await t.step(
      "a new named volume gets the image's content; a non-empty one does not",
      async () => {
        const etc = await ok(daemon, [
          "run",
          "--rm",
          "-v",
          "copy-etc:/etc",
          "busybox",
          "cat",
          "/etc/passwd",
        ]);
        assert.match(etc, /^root:x:0:0:/);
        const path = JSON.parse(await ok(daemon, ["volume", "inspect", "copy-etc"]))[0].Mountpoint;
        assert.match(await Deno.readTextFile(`${path}/passwd`), /^root:/);

        await ok(daemon, [
          "run",
          "--rm",
          "--mount",
          "type=volume,src=copy-mine,dst=/x",
          "busybox",
          "sh",
          "-c",
          "echo mine > /x/mine",
        ]);
        const mine = await ok(daemon, [
          "run",
          "--rm",
          "--mount",
          "type=volume,src=copy-mine,dst=/etc",
          "busybox",
          "sh",
          "-c",
          "cat /etc/mine; test -e /etc/passwd && echo copied || echo left",
        ]);
        assert.equal(mine, "mine\nleft\n");
        for (
          const mount of [
            "-v=copy-none:/etc:nocopy",
            "--mount=src=copy-none2,dst=/etc,volume-nocopy",
          ]
        ) {
          const none = await ok(daemon, [
            "run",
            "--rm",
            mount,
            "busybox",
            "sh",
            "-c",
            "test -e /etc/passwd && echo copied || echo empty",
          ]);
          assert.equal(none, "empty\n", mount);
        }
        for (const name of ["copy-etc", "copy-mine", "copy-none", "copy-none2"]) {
          await ok(daemon, ["volume", "rm", name]);
        }
      },
    );

    await t.step("a create failing after a volume mount leaves no volume and no ref", async () => {
      await ok(daemon, ["volume", "create", "fail-existing"]);
      const cases = [
        // The second volume's driver is unknown: the first was created and attached by then.
        [
          "--mount",
          "type=volume,src=fail-new,dst=/a",
          "-v",
          "fail-existing:/e",
          "--mount",
          "type=volume,src=fail-new2,dst=/b,volume-driver=nope",
        ],
        [
          "--mount",
          "type=volume,dst=/a",
          "--mount",
          "type=volume,src=fail-x,dst=/b,volume-opt=size=lots",
        ],
        [
          "--mount",
          "type=volume,src=fail-new,dst=/a",
          "--mount",
          "type=volume,src=fail-new2,dst=rel",
        ],
        ["-v", "fail-new:/a", "--mount", "type=volume,src=a/b,dst=/b"],
        ["-v", "fail-new:/a", "--volumes-from", "fail-nope"],
      ];
      for (const flags of cases) {
        const run = await daemon.pouch(["run", "--rm", ...flags, "busybox", "true"]);
        assert.equal(run.code, 125, `${flags.join(" ")}: ${run.stderr}`);
      }
      const image = await daemon.pouch([
        "run",
        "--rm",
        "-v",
        "fail-new:/a",
        "no-such-image:1",
        "true",
      ]);
      assert.notEqual(image.code, 0);
      assert.deepEqual(await volumeNames(daemon), ["fail-existing"]);
      assert.deepEqual(await containerNames(daemon), []);
      // No reference was left on the existing volume.
      await ok(daemon, ["volume", "rm", "fail-existing"]);
    });

    await t.step("docker run --mount and --volumes-from work against pouch", async () => {
      const write = await daemon.docker([
        "run",
        "--name",
        "docker-src",
        "--mount",
        "type=volume,src=docker-v,dst=/data",
        "busybox",
        "sh",
        "-c",
        "echo d > /data/f",
      ]);
      assert.equal(write.code, 0, write.stderr);
      const ls = await daemon.docker([
        "run",
        "--rm",
        "--mount",
        "type=volume,src=docker-v,dst=/data",
        "busybox",
        "ls",
        "/data",
      ]);
      assert.equal(ls.stdout, "f\n", ls.stderr);
      const from = await daemon.docker([
        "run",
        "--rm",
        "--volumes-from",
        "docker-src:ro",
        "busybox",
        "cat",
        "/data/f",
      ]);
      assert.equal(from.stdout, "d\n", from.stderr);
      const inspect = await daemon.docker([
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}",
        "docker-src",
      ]);
      assert.equal(inspect.stdout, "volume docker-v /data\n", inspect.stderr);
      const tmpfs = await daemon.docker([
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,dst=/t,tmpfs-size=1m",
        "busybox",
        "grep",
        " /t ",
        "/proc/mounts",
      ]);
      assert.match(tmpfs.stdout, /size=1024k/, tmpfs.stderr);
      const missing = await daemon.docker([
        "run",
        "--rm",
        "--mount",
        `type=bind,src=${daemon.dir}/docker-missing,dst=/x`,
        "busybox",
        "true",
      ]);
      assert.equal(missing.code, 125);
      assert.match(missing.stderr, /bind source path does not exist/);
      assert.equal((await daemon.docker(["rm", "docker-src"])).code, 0);
      assert.equal((await daemon.docker(["volume", "rm", "docker-v"])).code, 0);
    });
  });
});

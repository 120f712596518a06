/**
 * Docker volume plugins end to end: a real daemon finds the test plugin (testdata/volume_plugin.ts,
 * a separate process serving the protocol on a unix socket) through `--volume-plugin-dir`, and
 * pouch's CLI, the raw API and the Docker CLI use its volumes in real containers.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { pouchOk as ok, withBusyboxDaemon } from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

const pluginProgram = fileURLToPath(new URL("../testdata/volume_plugin.ts", import.meta.url));

/** The plugin processes of one test, in one temp dir; disposing kills them and removes it. */
interface Plugins extends AsyncDisposable {
  /** The plugin directory the daemon is given. */
  dir: string;
  /** Where `testplugin` keeps its volumes. */
  data: string;
  /** The calls `testplugin` got: `METHOD NAME [ID]`. */
  calls(): Promise<string[]>;
}

/**
 * Starts `testplugin` (a working plugin), `hangplugin` (never answers Create) and `junkplugin`
 * (answers Create with garbage) in a new temp directory.
 */
async function startPlugins(): Promise<Plugins> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-vp-" });
  const children: Deno.ChildProcess[] = [];
  const plugins: Plugins = {
    dir,
    data: `${dir}/data`,
    async calls() {
      const text = await Deno.readTextFile(`${dir}/calls.log`).catch(() => "");
      return text.split("\n").filter((l) => l !== "").map((line) => {
        const { method, body } = JSON.parse(line);
        return [method, body.Name, body.ID].filter((x) => x !== undefined).join(" ");
      });
    },
    async [Symbol.asyncDispose]() {
      for (const child of children) {
        try {
          child.kill("SIGTERM");
        } catch {
          // Exited already.
        }
        await child.status;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  const start = async (name: string, root: string, extra: string[]) => {
    const socket = `${dir}/${name}.sock`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", pluginProgram, "--socket", socket, "--root", root, ...extra],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    children.push(child);
    await waitFor(
      () => Deno.stat(socket).then((s) => s.isSocket === true, () => false),
      { timeoutMs: 20_000, message: `${name} did not create its socket` },
    );
  };
  try {
    await start("testplugin", plugins.data, ["--log", `${dir}/calls.log`]);
    await start("hangplugin", `${dir}/hang`, ["--hang", "VolumeDriver.Create"]);
    await start("junkplugin", `${dir}/junk`, ["--garbage", "VolumeDriver.Create"]);
  } catch (err) {
    await plugins[Symbol.asyncDispose]();
    throw err;
  }
  return plugins;
}

Deno.test("volume plugins: an existing Docker volume plugin through pouch and docker", async (t) => {
  await using plugins = await startPlugins();
  await withBusyboxDaemon(async (daemon) => {
    const names = async () =>
      (await ok(daemon, ["volume", "ls", "-q"])).split("\n").filter((n) => n !== "");

    await t.step("volume create -d testplugin makes the volume at the plugin", async () => {
      await ok(daemon, ["volume", "create", "-d", "testplugin", "--label", "by=test", "v1"]);
      assert.ok((await Deno.stat(`${plugins.data}/v1`)).isDirectory);
      assert.match(await ok(daemon, ["volume", "ls"]), /testplugin\s+v1\n/);
      const info = JSON.parse(await ok(daemon, ["volume", "inspect", "v1"]))[0];
      assert.equal(info.Driver, "testplugin");
      assert.equal(info.Mountpoint, `${plugins.data}/v1`);
      assert.deepEqual(info.Status, { mountedBy: [] });
      assert.deepEqual(info.Labels, { by: "test" });
      assert.equal(info.Scope, "local");
      const calls = await plugins.calls();
      assert.deepEqual(calls.slice(0, 3), [
        "Plugin.Activate",
        "VolumeDriver.Capabilities",
        "VolumeDriver.Create v1",
      ]);
    });

    await t.step("containers mount it with their ID; data persists", async () => {
      await ok(daemon, [
        "run",
        "--rm",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hi > /data/f",
      ]);
      assert.equal(await Deno.readTextFile(`${plugins.data}/v1/f`), "hi\n");
      // `--rm` removes the container (and so unmounts) just after the CLI returns.
      const mounts = async () =>
        (await plugins.calls()).filter((c) => /\.(Mount|Unmount) v1 /.test(c));
      await waitFor(async () => (await mounts()).length === 2, {
        timeoutMs: 10_000,
        message: "no Unmount after the container went",
      });
      const [mount, unmount] = await mounts();
      assert.match(mount!, /^VolumeDriver\.Mount v1 [0-9a-f]{64}$/);
      assert.equal(unmount, mount!.replace("Mount", "Unmount"));
      assert.equal(
        await ok(daemon, ["run", "--rm", "-v", "v1:/data:ro", "busybox", "cat", "/data/f"]),
        "hi\n",
      );
      await waitFor(async () => (await mounts()).length === 4, { timeoutMs: 10_000 });
    });

    await t.step("a volume in use is not removed; rm calls the plugin's Remove", async () => {
      const id = (await ok(daemon, [
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "v1:/data",
        "busybox",
        "sleep",
        "100",
      ])).trim();
      const inUse = await daemon.api("DELETE", "/volumes/v1");
      assert.equal(inUse.status, 409, inUse.body);
      assert.match(JSON.parse(inUse.body).message, /volume is in use/);
      const info = JSON.parse(await ok(daemon, ["volume", "inspect", "v1"]))[0];
      assert.deepEqual(info.Status, { mountedBy: [id] });
      const inspect = JSON.parse(await ok(daemon, ["inspect", "holder"]))[0];
      assert.equal(inspect.Mounts[0].Driver, "testplugin");
      assert.equal(inspect.Mounts[0].Source, `${plugins.data}/v1`);
      await ok(daemon, ["rm", "-f", "holder"]);
      assert.ok((await plugins.calls()).includes(`VolumeDriver.Unmount v1 ${id}`));

      await ok(daemon, ["volume", "rm", "v1"]);
      assert.equal((await plugins.calls()).at(-1), "VolumeDriver.Remove v1");
      await assert.rejects(Deno.stat(`${plugins.data}/v1`), Deno.errors.NotFound);
      assert.deepEqual(await names(), []);
    });

    await t.step("docker volume create -d and docker run -v work through pouch", async () => {
      const create = await daemon.docker(["volume", "create", "-d", "testplugin", "dv"]);
      assert.equal(create.code, 0, create.stderr);
      const run = await daemon.docker([
        "run",
        "--rm",
        "-v",
        "dv:/data",
        "busybox",
        "sh",
        "-c",
        "echo d > /data/f && cat /data/f",
      ]);
      assert.equal(run.stdout, "d\n", run.stderr);
      assert.equal(await Deno.readTextFile(`${plugins.data}/dv/f`), "d\n");
      const inspect = await daemon.docker(["volume", "inspect", "dv"]);
      assert.equal(inspect.code, 0, inspect.stderr);
      assert.equal(JSON.parse(inspect.stdout)[0].Driver, "testplugin");
      const ls = await daemon.docker(["volume", "ls"]);
      assert.match(ls.stdout, /testplugin\s+dv/);
      const rm = await daemon.docker(["volume", "rm", "dv"]);
      assert.equal(rm.code, 0, rm.stderr);
      await assert.rejects(Deno.stat(`${plugins.data}/dv`), Deno.errors.NotFound);
    });

    await t.step("a plugin found through a .spec file works the same", async () => {
      await Deno.writeTextFile(
        `${plugins.dir}/specplugin.spec`,
        `unix://${plugins.dir}/testplugin.sock\n`,
      );
      await ok(daemon, ["volume", "create", "-d", "specplugin", "s1"]);
      assert.ok((await Deno.stat(`${plugins.data}/s1`)).isDirectory);
      assert.match(await ok(daemon, ["volume", "ls"]), /specplugin\s+s1\n/);
      await ok(daemon, ["volume", "rm", "s1"]);
      await assert.rejects(Deno.stat(`${plugins.data}/s1`), Deno.errors.NotFound);
    });

    await t.step(
      "a plugin that hangs times out with a clear error, recording nothing",
      async () => {
        const started = Date.now();
        const result = await daemon.pouch(["volume", "create", "-d", "hangplugin", "h1"]);
        assert.notEqual(result.code, 0);
        assert.match(
          result.stderr,
          /volume plugin "hangplugin": VolumeDriver.Create: .*no answer within 1000 ms/,
        );
        assert.ok(Date.now() - started < 15_000);
        assert.deepEqual(await names(), []);
      },
    );

    await t.step(
      "a plugin that answers garbage is a 500 naming it, recording nothing",
      async () => {
        const { status, body } = await daemon.api("POST", "/volumes/create", {
          Name: "j1",
          Driver: "junkplugin",
        });
        assert.equal(status, 500, body);
        assert.match(
          JSON.parse(body).message,
          /volume plugin "junkplugin": VolumeDriver.Create: answered garbage \(not JSON\)/,
        );
        assert.deepEqual(await names(), []);
      },
    );

    await t.step("an unknown driver is a 400", async () => {
      const { status, body } = await daemon.api("POST", "/volumes/create", {
        Name: "x",
        Driver: "x",
      });
      assert.equal(status, 400, body);
      assert.equal(JSON.parse(body).message, 'volume driver "x" not found');
      const traversal = await daemon.api("POST", "/volumes/create", {
        Name: "x",
        Driver: "../testplugin",
      });
      assert.equal(traversal.status, 400, traversal.body);
      assert.deepEqual(await names(), []);
    });
  }, { args: ["--volume-plugin-dir", plugins.dir, "--volume-plugin-timeout", "1s"] });
});

/**
 * In-place upgrade end to end: real containers on a real bridge network, real volumes, the
 * entrypoint rule, rollback at every step (through the test-only `POUCH_FAULTS` points and a
 * command that cannot start), and kill -9 of the daemon in the middle of an upgrade.
 */
import assert from "node:assert/strict";
import {
  importBusyboxVariant as importImage,
  inspectContainer as inspect,
  pouchOk as ok,
  type TestDaemon,
  withBusyboxDaemon,
} from "../testdata/harness.ts";
import { waitFor } from "./testing.ts";

async function exec(daemon: TestDaemon, name: string, script: string): Promise<string> {
  return (await ok(daemon, ["exec", name, "sh", "-c", script])).trim();
}

/** What must not change over an upgrade, read from inspect and from inside. */
async function identity(daemon: TestDaemon, name: string) {
  const view = await inspect(daemon, name);
  return {
    id: view.Id,
    name: view.Name,
    ip: view.NetworkSettings.Networks.upnet.IPAddress,
    mac: view.NetworkSettings.Networks.upnet.MacAddress,
    insideMac: await exec(daemon, name, "cat /sys/class/net/eth0/address"),
    data: await exec(daemon, name, "cat /data/f"),
  };
}

Deno.test("upgrade: keeps ID, IP, MAC, volumes and config; rolls back; survives crashes", async (t) => {
  await withBusyboxDaemon(async (daemon) => {
    await ok(daemon, ["tag", "busybox", "app:1"]);
    await importImage(daemon, "app:2", {
      version: "v2",
      changes: ['CMD ["sleep", "1000"]', "ENV FROM_IMAGE=2", "VOLUME /newvol"],
    });
    await importImage(daemon, "ep:1", {
      version: "ep1",
      changes: ['ENTRYPOINT ["sleep"]', 'CMD ["1001"]'],
    });
    await importImage(daemon, "ep:2", {
      version: "ep2",
      changes: ['ENTRYPOINT ["sleep"]', 'CMD ["1002"]'],
    });
    await ok(daemon, ["network", "create", "--subnet", "10.213.7.0/24", "upnet"]);
    const run = (name: string, extra: string[] = []) =>
      ok(daemon, [
        "run",
        "-d",
        "--init",
        "--name",
        name,
        "--network",
        "upnet",
        "-e",
        "A=1",
        "-l",
        "keep=yes",
        "-v",
        `${name}-data:/data`,
        ...extra,
        "app:1",
        "sleep",
        "1000",
      ]);

    await t.step("a running container: same identity, new image, merged config", async () => {
      await run("web", ["-m", "64m"]);
      await exec(daemon, "web", "echo hello > /data/f");
      const before = await identity(daemon, "web");
      const since = Math.floor(Date.now() / 1000);
      await ok(daemon, ["upgrade", "--image", "app:2", "-e", "B=2", "-m", "96m", "web"]);
      const events = daemon.api(
        "GET",
        `/events?since=${since}&until=${Math.floor(Date.now() / 1000) + 1}&filters=${
          encodeURIComponent(JSON.stringify({ event: ["upgrade"] }))
        }`,
      );
      const view = await inspect(daemon, "web");
      assert.equal(view.State.Status, "running");
      assert.equal(view.Config.Image, "app:2");
      assert.deepEqual(await identity(daemon, "web"), before);
      assert.equal(await exec(daemon, "web", "cat /etc/version"), "v2");
      assert.equal(
        await exec(daemon, "web", "env | grep -E '^(A|B|FROM_IMAGE)=' | sort"),
        "A=1\nB=2\nFROM_IMAGE=2",
      );
      assert.equal(view.Config.Labels.keep, "yes");
      // The new image's VOLUME got a new volume with the image's content.
      assert.equal(await exec(daemon, "web", "cat /newvol/seed"), "seeded by the image");
      assert.ok(
        view.Mounts.some((m: { Destination: string; Type: string }) =>
          m.Destination === "/newvol" && m.Type === "volume"
        ),
      );
      const limit = await Deno.readTextFile(
        `/sys/fs/cgroup/memory/pouch/${view.Id}/memory.limit_in_bytes`,
      );
      assert.equal(Number(limit), 96 * 1024 * 1024);
      // The command given at run was explicit: it stays.
      assert.deepEqual([view.Path, ...view.Args].slice(-2), ["sleep", "1000"]);
      const seen = JSON.parse(`[${(await events).body.trim().split("\n").join(",")}]`);
      assert.equal(seen[0]?.Action, "upgrade");
      // Only the new rootfs is left.
      const snapshots = await new Deno.Command("ctr", {
        args: [
          "-a",
          `${daemon.home}/containerd/containerd.sock`,
          "-n",
          "default",
          "snapshots",
          "ls",
        ],
        stdout: "piped",
      }).output();
      const keys = new TextDecoder().decode(snapshots.stdout).split("\n")
        .map((line) => line.split(/\s+/)[0]!).filter((key) => key.startsWith(view.Id));
      assert.equal(keys.length, 1, keys.join(" "));
    });

    await t.step("a stopped container stays stopped; no change is refused", async () => {
      await run("idle");
      await exec(daemon, "idle", "echo hello > /data/f");
      await ok(daemon, ["stop", "idle"]);
      await ok(daemon, ["upgrade", "--image", "app:2", "idle"]);
      const view = await inspect(daemon, "idle");
      assert.equal(view.State.Status, "exited");
      assert.equal(view.Config.Image, "app:2");
      await ok(daemon, ["start", "idle"]);
      assert.equal(await exec(daemon, "idle", "cat /etc/version /data/f"), "v2\nhello");
      const same = await daemon.pouch(["upgrade", "--image", "app:2", "idle"]);
      assert.equal(same.code, 125);
      assert.match(same.stderr, /image not changed/);
      const missing = await daemon.api("POST", "/containers/nope/upgrade", { Image: "app:2" });
      assert.equal(missing.status, 404);
      const noImage = await daemon.api("POST", "/containers/idle/upgrade", { Image: "no:such" });
      assert.equal(noImage.status, 404, noImage.body);
      await ok(daemon, ["rm", "-f", "-v", "idle"]);
    });

    await t.step("the entrypoint rule in its three cases", async () => {
      // Inherited from the old image: the new image's entrypoint and command apply.
      await ok(daemon, ["run", "-d", "--init", "--name", "ep", "ep:1"]);
      await ok(daemon, ["upgrade", "--image", "ep:2", "ep"]);
      let view = await inspect(daemon, "ep");
      assert.deepEqual([view.Path, ...view.Args], ["sleep", "1002"]);
      // Given explicitly at run: kept over the new image's.
      await ok(daemon, [
        "run",
        "-d",
        "--init",
        "--name",
        "ep-x",
        "--entrypoint",
        "sleep",
        "ep:1",
        "1005",
      ]);
      await ok(daemon, ["upgrade", "--image", "ep:2", "ep-x"]);
      view = await inspect(daemon, "ep-x");
      assert.deepEqual([view.Path, ...view.Args], ["sleep", "1005"]);
      // Given to the upgrade: wins.
      await ok(daemon, [
        "upgrade",
        "--image",
        "ep:1",
        "--entrypoint",
        "sh",
        "ep-x",
        "-c",
        "exec sleep 1007",
      ]);
      view = await inspect(daemon, "ep-x");
      assert.deepEqual([view.Path, ...view.Args], ["sh", "-c", "exec sleep 1007"]);
      assert.equal(view.State.Status, "running");
      await ok(daemon, ["rm", "-f", "ep", "ep-x"]);
    });

    await t.step("a command that cannot start is rolled back to the old container", async () => {
      const before = await identity(daemon, "web");
      // No init: runc itself fails to start the missing command.
      const id = (await ok(daemon, [
        "run",
        "-d",
        "--name",
        "plain",
        // sleep as pid 1 ignores SIGTERM: do not wait long for it.
        "--stop-timeout",
        "1",
        "--network",
        "upnet",
        "app:1",
        "sleep",
        "1000",
      ])).trim();
      const failed = await daemon.pouch(["upgrade", "--image", "app:2", "plain", "/nope"]);
      assert.equal(failed.code, 125);
      assert.match(
        failed.stderr,
        /failed while starting the new container: .*rolled back to app:1/,
      );
      const view = await inspect(daemon, "plain");
      assert.equal(view.Id, id);
      assert.equal(view.State.Status, "running");
      assert.equal(view.Config.Image, "app:1");
      assert.deepEqual([view.Path, ...view.Args], ["sleep", "1000"]);
      assert.deepEqual(await identity(daemon, "web"), before);
      await ok(daemon, ["rm", "-f", "plain"]);
    });

    const points = [
      "upgrade:stopped",
      "upgrade:snapshot",
      "upgrade:spec",
      "upgrade:updated",
      "upgrade:committed",
    ];
    await t.step(
      "a failure at each step leaves the old container running with its data",
      async () => {
        await run("fault");
        await exec(daemon, "fault", "echo hello > /data/f");
        const before = await identity(daemon, "fault");
        for (const point of points) {
          await daemon.stop();
          await daemon.start({ env: { POUCH_FAULTS: point } });
          const failed = await daemon.pouch(["upgrade", "--image", "app:2", "fault"]);
          assert.equal(failed.code, 125, `${point}: ${failed.stdout}`);
          assert.match(
            failed.stderr,
            new RegExp(`injected fault at ${point}.*rolled back to app:1`),
          );
          const view = await inspect(daemon, "fault");
          assert.equal(view.State.Status, "running", point);
          assert.equal(view.Config.Image, "app:1", point);
          assert.deepEqual(await identity(daemon, "fault"), before, point);
          assert.equal(
            await exec(daemon, "fault", "cat /etc/version 2>/dev/null || echo v1"),
            "v1",
          );
        }
        await daemon.stop();
        await daemon.start({ env: {} });
      },
    );

    await t.step("kill -9 of the daemon mid-upgrade: old or new, never neither", async () => {
      const before = await identity(daemon, "fault");
      const cases: Array<[string, string]> = [
        ["upgrade:stopped", "app:1"],
        ["upgrade:updated", "app:1"],
        ["upgrade:committed", "app:2"],
      ];
      for (const [point, expected] of cases) {
        const image = (await inspect(daemon, "fault")).Config.Image;
        const target = image === "app:1" ? "app:2" : "app:1";
        await daemon.stop();
        await daemon.start({ env: { POUCH_FAULTS: `${point}=crash` } });
        const cut = await daemon.pouch(["upgrade", "--image", target, "fault"]);
        assert.notEqual(cut.code, 0, point);
        await daemon.crash();
        await daemon.start({ env: {} });
        const want = expected === "app:2" ? target : image;
        await waitFor(async () => (await inspect(daemon, "fault")).State.Status === "running", {
          timeoutMs: 10_000,
          message: `${point}: the container is not running after the restart`,
        });
        const view = await inspect(daemon, "fault");
        assert.equal(view.Config.Image, want, point);
        assert.deepEqual(await identity(daemon, "fault"), before, point);
      }
      // Nothing leaked: once removed with their anonymous volumes, only the named ones stay.
      await ok(daemon, ["rm", "-f", "-v", "fault", "web"]);
      const left = (await ok(daemon, ["volume", "ls", "-q"])).trim().split("\n").sort();
      assert.deepEqual(left, ["fault-data", "idle-data", "web-data"]);
    });
  });
});

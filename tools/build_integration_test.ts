import assert from "node:assert/strict";
import { busyboxTarball, killUnder, startDaemon, unmountUnder } from "../testdata/harness.ts";
import { build } from "./build.ts";

Deno.test("dist/pouch copied alone into an empty directory runs the daemon and a container", async () => {
  const distDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "pouch-dist-" });
  await using _cleanup = {
    // Whatever the steps below leave behind that mentions the copy's directory.
    async [Symbol.asyncDispose]() {
      await killUnder(distDir);
      await unmountUnder(distDir);
      await Deno.remove(distDir, { recursive: true });
    },
  };
  const pouch = `${distDir}/pouch`;
  await build({ output: pouch });
  const entries = await Array.fromAsync(Deno.readDir(distDir), (entry) => entry.name);
  assert.deepEqual(entries, ["pouch"]);
  const tarball = await busyboxTarball();

  // The daemon and every CLI command below run `./pouch` from distDir.
  await using daemon = await startDaemon({ executable: pouch });

  const load = await daemon.pouch(["load", "-i", tarball]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /busybox/);

  const hi = await daemon.pouch(["run", "--rm", "busybox", "echo", "hi"]);
  assert.equal(hi.code, 0, hi.stderr);
  assert.equal(hi.stdout, "hi\n");

  const detached = await daemon.pouch([
    "run",
    "-d",
    "--name",
    "dist-copy",
    "busybox",
    "sleep",
    "100",
  ]);
  assert.equal(detached.code, 0, detached.stderr);
  const ps = await daemon.pouch(["ps", "-a"]);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /\bdist-copy\b.*Up/);

  const rm = await daemon.pouch(["rm", "-f", "dist-copy"]);
  assert.equal(rm.code, 0, rm.stderr);
  const after = await daemon.pouch(["ps", "-a", "-q"]);
  assert.equal(after.stdout, "");

  const version = await daemon.pouch(["version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /Server:\n Engine:\n {2}Version: +0\.\d+\.\d+\n/);
  assert.match(version.stdout, / {2}Git commit: +[0-9a-f]{12}/);

  // SIGTERM: the daemon closes its API, containerd and store, and exits cleanly.
  await daemon.stop();
  assert.match(await daemon.log(), /containerd started/);
});

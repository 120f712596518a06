import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";
import { LXCFS_IN_CONTAINER, lxcfsMounts, mountTypesAt, remountScript } from "./lxcfs.ts";

const MOUNTINFO = [
  "42 27 254:0 /tmp/x/home /tmp/x/home rw,relatime shared:1 - ext4 /dev/vda rw",
  "44 42 0:42 / /tmp/x/home rw,nosuid,nodev,relatime shared:2 - fuse.lxcfs lxcfs rw",
  "45 27 0:43 / /tmp/with\\040space rw - tmpfs tmpfs rw",
].join("\n");

Deno.test("mountTypesAt lists the mounts at a path, bottom first", () => {
  assert.deepEqual(mountTypesAt(MOUNTINFO, "/tmp/x/home"), ["ext4", "fuse.lxcfs"]);
  assert.deepEqual(mountTypesAt(MOUNTINFO, "/tmp/with space"), ["tmpfs"]);
  assert.deepEqual(mountTypesAt(MOUNTINFO, "/tmp/x"), []);
});

Deno.test("lxcfsMounts: the propagation dir rslave, then each file from lxcfs's home", () => {
  const mounts = lxcfsMounts("/var/lib/lxcfs", "/var/lib/pouch/lxcfs", [
    { path: "proc/meminfo" },
    { path: "sys/devices/system/cpu/online" },
  ]);
  assert.equal(mounts[0]!.destination, LXCFS_IN_CONTAINER);
  assert.equal(mounts[0]!.source, "/var/lib/pouch/lxcfs");
  assert.ok(mounts[0]!.options.includes("rslave"));
  assert.deepEqual(mounts.slice(1).map((m) => [m.source, m.destination]), [
    ["/var/lib/lxcfs/proc/meminfo", "/proc/meminfo"],
    ["/var/lib/lxcfs/sys/devices/system/cpu/online", "/sys/devices/system/cpu/online"],
  ]);
});

Deno.test("remountScript uses paths relative to the container's root", () => {
  const script = remountScript([{ path: "proc/meminfo" }]);
  assert.match(script, /umount -l --no-canonicalize proc\/meminfo/);
  assert.match(
    script,
    /mount --no-canonicalize --bind \.pouch\/lxcfs\/lxcfs\/proc\/meminfo proc\/meminfo/,
  );
  assert.doesNotMatch(script, / \/proc\//);
});

Deno.test("lxcfs daemon flags and config keys", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/empty.json`, "{}");
    const defaults = await loadConfig(["--config-file", `${dir}/empty.json`]);
    assert.ok(defaults !== "help");
    assert.equal(defaults.enableLxcfs, false);
    assert.equal(defaults.lxcfs, "/usr/bin/lxcfs");
    assert.equal(defaults.lxcfsHome, "/var/lib/lxcfs");
    const file = `${dir}/config.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({ "enable-lxcfs": true, "lxcfs": "/opt/lxcfs", "lxcfs-home": "/srv/lx" }),
    );
    const fromFile = await loadConfig(["--config-file", file]);
    assert.ok(fromFile !== "help");
    assert.deepEqual([fromFile.enableLxcfs, fromFile.lxcfs, fromFile.lxcfsHome], [
      true,
      "/opt/lxcfs",
      "/srv/lx",
    ]);
    const fromFlags = await loadConfig([
      "--config-file",
      file,
      "--lxcfs",
      "/usr/local/bin/lxcfs",
      "--lxcfs-home",
      "/run/lxcfs",
    ]);
    assert.ok(fromFlags !== "help");
    assert.deepEqual([fromFlags.lxcfs, fromFlags.lxcfsHome], [
      "/usr/local/bin/lxcfs",
      "/run/lxcfs",
    ]);
    await assert.rejects(() => loadConfig(["--config-file", file, "--lxcfs-home", "rel"]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

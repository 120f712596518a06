import assert from "node:assert/strict";
import { kindOf } from "../engine/errors.ts";
import { isMountPoint } from "./driver.ts";
import { detectProjectQuota, LocalDriver, TmpfsDriver } from "./mod.ts";

/** A temp dir that unmounts what a failed test left under it, then goes. */
async function tempRoot(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "pouch-volume-test-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
      for (const line of mountinfo.split("\n")) {
        const point = line.split(" ")[4] ?? "";
        if (point.startsWith(`${path}/`)) {
          await new Deno.Command("umount", { args: ["-l", point] }).output();
        }
      }
      await Deno.remove(path, { recursive: true });
    },
  };
}

async function mountsUnder(path: string): Promise<string[]> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  return mountinfo.split("\n").map((l) => l.split(" ")[4] ?? "").filter((p) =>
    p.startsWith(`${path}/`)
  );
}

const invalid = (err: unknown) => kindOf(err) === "InvalidArgument";

Deno.test("local driver: a plain volume is a directory under the root", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  const volume = await driver.create("data", {});
  assert.equal(volume.mountpoint, `${root.path}/volumes/data/_data`);
  assert.deepEqual(volume.status, { backend: "directory" });
  assert.equal((await Deno.stat(volume.mountpoint)).isDirectory, true);
  await driver.remove(volume);
  await assert.rejects(Deno.stat(`${root.path}/volumes/data`), Deno.errors.NotFound);
});

Deno.test("local driver: size= is a loop-mounted ext4 image that refuses writes past it", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  // Forced, so that the image backend is what this tests even where the temp dir has quotas.
  const volume = await driver.create("capped", { size: "8m", backend: "image" });
  const image = `${root.path}/volumes/capped/disk.img`;
  assert.deepEqual(volume.status, { backend: "image", size: "8m", sizeBytes: 8 << 20, image });
  assert.equal(await isMountPoint(volume.mountpoint), true);
  const dd = await new Deno.Command("dd", {
    args: ["if=/dev/zero", `of=${volume.mountpoint}/big`, "bs=1M", "count=16"],
    stderr: "piped",
  }).output();
  assert.equal(dd.success, false);
  assert.match(new TextDecoder().decode(dd.stderr), /No space left on device/);
  await driver.remove(volume);
  assert.deepEqual(await mountsUnder(root.path), []);
  await assert.rejects(Deno.stat(image), Deno.errors.NotFound);
});

Deno.test("local driver: type/device/o mount a source (tmpfs here) on create", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  const volume = await driver.create("dev", { type: "tmpfs", device: "tmpfs", o: "size=1m" });
  assert.equal(await isMountPoint(volume.mountpoint), true);
  await Deno.writeTextFile(`${volume.mountpoint}/x`, "hello");
  // The daemon restarting finds it mounted; a host reboot would not: restore remounts.
  await new Deno.Command("umount", { args: [volume.mountpoint] }).output();
  await driver.restore(volume);
  assert.equal(await isMountPoint(volume.mountpoint), true);
  await driver.remove(volume);
  assert.deepEqual(await mountsUnder(root.path), []);
});

Deno.test("local driver: mount= puts the volume under an existing absolute directory", async () => {
  await using root = await tempRoot();
  const disk = `${root.path}/disk`;
  await Deno.mkdir(disk);
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  const volume = await driver.create("ondisk", { mount: disk });
  assert.equal(volume.mountpoint, `${disk}/ondisk/_data`);
  await driver.remove(volume);
  assert.deepEqual([...Deno.readDirSync(disk)], []);
  await assert.rejects(driver.create("rel", { mount: "mnt/x" }), invalid);
  await assert.rejects(driver.create("missing", { mount: `${root.path}/nope` }), invalid);
});

Deno.test("local driver: bad options are refused and leave nothing behind", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  await assert.rejects(driver.create("a", { color: "red" }), invalid);
  await assert.rejects(driver.create("a", { size: "lots" }), invalid);
  await assert.rejects(driver.create("a", { type: "tmpfs" }), invalid);
  await assert.rejects(driver.create("a", { size: "1m", type: "tmpfs", device: "tmpfs" }), invalid);
  // A mount that fails (no such filesystem type) undoes the directory it made.
  await assert.rejects(driver.create("a", { type: "nosuchfs", device: "none" }));
  const left = await Array.fromAsync(Deno.readDir(`${root.path}/volumes`)).catch(() => []);
  assert.deepEqual(left, []);
});

Deno.test("local driver: size= takes the quota backend only where it is detected", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  const support = await detectProjectQuota(`${root.path}/volumes`);
  const volume = await driver.create("auto", { size: "8m" });
  // Here (no kernel quota support) always the image; a prjquota host gets the quota backend,
  // which volume/quota_test.ts exercises on a filesystem it makes.
  assert.equal(volume.status.backend, support.supported ? "quota" : "image");
  assert.equal(volume.status.sizeBytes, 8 << 20);
  await driver.remove(volume);
  assert.deepEqual(await mountsUnder(root.path), []);
  assert.deepEqual([...Deno.readDirSync(`${root.path}/volumes`)], []);
});

Deno.test("local driver: backend= must be quota or image, with size=, and quota must work", async () => {
  await using root = await tempRoot();
  const driver = new LocalDriver({ root: `${root.path}/volumes` });
  await assert.rejects(driver.create("a", { size: "8m", backend: "zfs" }), invalid);
  await assert.rejects(driver.create("a", { backend: "image" }), invalid);
  const support = await detectProjectQuota(`${root.path}/volumes`);
  if (support.supported) {
    const volume = await driver.create("a", { size: "8m", backend: "quota" });
    assert.equal(volume.status.backend, "quota");
    await driver.remove(volume);
  } else {
    // Asked for where it cannot work: a 400 that says why, and nothing made.
    await assert.rejects(
      driver.create("a", { size: "8m", backend: "quota" }),
      (err) => invalid(err) && (err as Error).message.includes(support.reason),
    );
  }
  const left = await Array.fromAsync(Deno.readDir(`${root.path}/volumes`)).catch(() => []);
  assert.deepEqual(left, []);
});

Deno.test("detectProjectQuota() says why quotas are unsupported on this host", async () => {
  const support = await detectProjectQuota("/proc");
  assert.equal(support.supported, false);
  assert.match(support.reason, /proc|quota/);
});

Deno.test("tmpfs driver: memory-backed, size-capped, data gone on remove", async () => {
  await using root = await tempRoot();
  const driver = new TmpfsDriver({ root: `${root.path}/volumes` });
  const volume = await driver.create("scratch", { size: "1m" });
  assert.equal(await isMountPoint(volume.mountpoint), true);
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  const line = mountinfo.split("\n").find((l) => l.split(" ")[4] === volume.mountpoint) ?? "";
  assert.match(line, / - tmpfs tmpfs .*size=1024k/);
  await Deno.writeTextFile(`${volume.mountpoint}/x`, "hello");
  await driver.remove(volume);
  assert.deepEqual(await mountsUnder(root.path), []);
  await assert.rejects(Deno.stat(`${volume.mountpoint}/x`), Deno.errors.NotFound);
  await assert.rejects(driver.create("b", { size: "big" }), invalid);
  await assert.rejects(driver.create("b", { uid: "0" }), invalid);
});

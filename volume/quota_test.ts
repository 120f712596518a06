import assert from "node:assert/strict";
import { LocalDriver } from "./local.ts";
import {
  allocateProjectId,
  blockDeviceOf,
  detectProjectQuota,
  findMount,
  freeProjectId,
  FS_IOC_FSGETXATTR,
  FS_IOC_FSSETXATTR,
  FS_XFLAG_PROJINHERIT,
  FSXATTR_SIZE,
  getProjectId,
  getProjectQuota,
  IF_DQBLK_SIZE,
  mountOf,
  packDqblk,
  packFsxattr,
  parseMountinfo,
  PRJQUOTA,
  PROJECT_ID_BASE,
  PROJECT_ID_MAX,
  Q_GETINFO,
  Q_GETQUOTA,
  Q_SETQUOTA,
  qcmd,
  QIF_BLIMITS,
  setProjectId,
  setProjectQuota,
  splitDeviceNumber,
  SyscallError,
  unpackDqblk,
  unpackFsxattr,
} from "./quota.ts";

// --- Pure parts: constants, structs, mountinfo, ids -------------------------------------------

/** `_IOC(dir, type, nr, size)` of `asm-generic/ioctl.h`: dir 1 is write, 2 is read. */
function ioc(dir: number, type: string, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}

Deno.test("qcmd() shifts the sub-command past the quota type, as a C int", () => {
  assert.equal(qcmd(Q_GETQUOTA, PRJQUOTA), 0x80000702 | 0);
  assert.equal(qcmd(Q_SETQUOTA, PRJQUOTA), 0x80000802 | 0);
  assert.equal(qcmd(Q_GETINFO, PRJQUOTA), 0x80000502 | 0);
  // USRQUOTA is 0; the type is masked to its byte.
  assert.equal(qcmd(Q_GETQUOTA, 0), 0x80000700 | 0);
  assert.equal(qcmd(Q_GETQUOTA, 0x102), 0x80000702 | 0);
  assert.ok(qcmd(Q_SETQUOTA, PRJQUOTA) < 0, "the sign bit is set, as quotactl's int cmd has it");
});

Deno.test("the fsxattr ioctl numbers are _IOR/_IOW('X', 31/32, struct fsxattr)", () => {
  assert.equal(FSXATTR_SIZE, 28);
  assert.equal(FS_IOC_FSGETXATTR, ioc(2, "X", 31, FSXATTR_SIZE));
  assert.equal(FS_IOC_FSSETXATTR, ioc(1, "X", 32, FSXATTR_SIZE));
  assert.equal(FS_XFLAG_PROJINHERIT, 0x200);
});

Deno.test("packDqblk() lays out struct if_dqblk: eight u64, then dqb_valid, padded to 72", () => {
  const bytes = packDqblk({ bhardlimit: 10 * 1024 * 1024, curspace: 2 ** 40 + 5, valid: 1 });
  assert.equal(bytes.length, IF_DQBLK_SIZE);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getBigUint64(0, true), 10n * 1024n * 1024n); // dqb_bhardlimit
  assert.equal(view.getBigUint64(8, true), 0n); // dqb_bsoftlimit
  assert.equal(view.getBigUint64(16, true), 2n ** 40n + 5n); // dqb_curspace
  assert.equal(view.getUint32(64, true), QIF_BLIMITS); // dqb_valid
  assert.deepEqual([...bytes.slice(68)], [0, 0, 0, 0]);
});

Deno.test("unpackDqblk() reads every field back, values past 32 bits included", () => {
  const fields = {
    bhardlimit: 1,
    bsoftlimit: 2,
    curspace: 2 ** 45,
    ihardlimit: 4,
    isoftlimit: 5,
    curinodes: 6,
    btime: 1_700_000_000,
    itime: 8,
    valid: 0x3f,
  };
  assert.deepEqual(unpackDqblk(packDqblk(fields)), fields);
  assert.throws(() => unpackDqblk(new Uint8Array(64)), RangeError);
});

Deno.test("packFsxattr() lays out struct fsxattr: five u32 and 8 zero bytes", () => {
  const attr = { xflags: 0x200, extsize: 0, nextents: 3, projid: 100001, cowextsize: 0 };
  const bytes = packFsxattr(attr);
  assert.equal(bytes.length, 28);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint32(0, true), 0x200); // fsx_xflags
  assert.equal(view.getUint32(8, true), 3); // fsx_nextents
  assert.equal(view.getUint32(12, true), 100001); // fsx_projid
  assert.deepEqual([...bytes.slice(20)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(unpackFsxattr(bytes), attr);
});

const MOUNTINFO = [
  "27 1 254:0 / / rw,relatime - ext4 /dev/root rw,discard",
  "28 27 0:21 / /proc rw,nosuid - proc proc rw",
  "40 27 7:3 / /mnt/quota\\040disk rw,relatime shared:12 master:3 - ext4 /dev/loop3 rw,prjquota",
  "41 27 259:1 / /srv rw - xfs /dev/nvme0n1p1 rw,attr2,inode64,prjquota",
  "42 41 0:50 / /srv/tmp rw - tmpfs tmpfs rw",
  "43 41 0:51 / /srv/tmp rw - tmpfs tmpfs rw,size=1k",
  "44 27 259:1 /data /var/lib/pouch rw - xfs /dev/nvme0n1p1 rw,prjquota",
  "garbage",
  "",
].join("\n");

Deno.test("parseMountinfo() reads devices, optional fields, escapes and both option lists", () => {
  const entries = parseMountinfo(MOUNTINFO);
  assert.equal(entries.length, 7);
  assert.deepEqual(entries[2], {
    major: 7,
    minor: 3,
    root: "/",
    mountPoint: "/mnt/quota disk",
    mountOptions: ["rw", "relatime"],
    fstype: "ext4",
    source: "/dev/loop3",
    superOptions: ["rw", "prjquota"],
  });
  assert.equal(entries[6]?.root, "/data");
});

Deno.test("findMount() picks the deepest mount, the top of a stack, and the path's device", () => {
  const entries = parseMountinfo(MOUNTINFO);
  assert.equal(findMount(entries, "/var/lib/pouch/volumes/x")?.source, "/dev/nvme0n1p1");
  assert.equal(findMount(entries, "/mnt/quota disk/v/_data")?.source, "/dev/loop3");
  assert.equal(findMount(entries, "/mnt/quota")?.mountPoint, "/");
  assert.deepEqual(findMount(entries, "/srv/tmp/a")?.superOptions, ["rw", "size=1k"]);
  // A path whose device is the filesystem below (seen through a lazily detached mount, say).
  assert.equal(
    findMount(entries, "/srv/tmp/a", { device: { major: 259, minor: 1 } })?.mountPoint,
    "/srv",
  );
  // No mount of that device above the path: the path decides.
  assert.equal(findMount(entries, "/proc/1", { device: { major: 0, minor: 99 } })?.fstype, "proc");
  assert.equal(findMount([], "/x"), undefined);
});

Deno.test("splitDeviceNumber() decodes dev_t as glibc's gnu_dev_major/minor", () => {
  assert.deepEqual(splitDeviceNumber(0xfe00), { major: 254, minor: 0 });
  assert.deepEqual(splitDeviceNumber(0x703), { major: 7, minor: 3 });
  // makedev(259, 0x12345): minor's low byte at 0, its rest from bit 20; major's from bit 8.
  assert.deepEqual(splitDeviceNumber(0x12310345), { major: 259, minor: 0x12345 });
  // makedev(0x1234, 1): major bits above 12 sit in the high word.
  assert.deepEqual(splitDeviceNumber(0x1000 * 2 ** 32 + 0x23401), { major: 0x1234, minor: 1 });
});

Deno.test("allocateProjectId() hands out the smallest free id from the base on", () => {
  assert.equal(allocateProjectId([]), PROJECT_ID_BASE);
  assert.equal(allocateProjectId([100000, 100001, 100003]), 100002);
  assert.equal(allocateProjectId([5, 7], { base: 5 }), 6);
  assert.equal(allocateProjectId([1, 2, 99999]), PROJECT_ID_BASE);
  assert.throws(() => allocateProjectId([PROJECT_ID_MAX], { base: PROJECT_ID_MAX }), /no free/);
});

Deno.test("SyscallError names the errno and says what it means for the call", () => {
  const err = new SyscallError("quotactl(Q_GETQUOTA, project 0, /dev/x)", 3, "quotas not enabled");
  assert.equal(err.code, "ESRCH");
  assert.equal(err.errno, 3);
  assert.equal(err.message, "quotactl(Q_GETQUOTA, project 0, /dev/x): ESRCH: quotas not enabled");
  assert.match(new SyscallError("open(/x)", 20).message, /ENOTDIR: not a directory/);
  assert.equal(new SyscallError("f", 4095).code, "errno 4095");
});

// --- Real filesystems: loop-mounted images ----------------------------------------------------

async function sh(command: string, args: string[]) {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output().catch((err: Error) => ({
      success: false,
      stdout: new Uint8Array(),
      stderr: new TextEncoder().encode(
        err instanceof Deno.errors.NotFound ? "not installed" : err.message,
      ),
    }));
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  return { ok: output.success, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/** A loop-mounted filesystem image in a temp dir; disposing unmounts, detaches and deletes it. */
interface ImageMount extends AsyncDisposable {
  /** Where the filesystem is mounted. */
  path: string;
  /** Its loop device. */
  device: string;
}

/** The kinds of image the tests make. */
const IMAGES = {
  "plain ext4": { mkfs: "mkfs.ext4", args: ["-q", "-F"], size: 32 << 20, mount: [] },
  "ext4 with quota,project": {
    mkfs: "mkfs.ext4",
    args: ["-q", "-F", "-O", "quota,project"],
    size: 64 << 20,
    mount: ["-o", "prjquota"],
  },
  // mkfs.xfs refuses filesystems under 300 MiB; the image is sparse, so that costs nothing.
  "xfs": { mkfs: "mkfs.xfs", args: ["-q", "-f"], size: 320 << 20, mount: ["-o", "pquota"] },
} as const;

/**
 * Makes, attaches and mounts an image of `kind`; throws an Error saying which step failed and why
 * (with the kernel's last word on the loop device, where dmesg may be read), having undone
 * whatever it did.
 */
async function mountImage(kind: keyof typeof IMAGES): Promise<ImageMount> {
  const spec = IMAGES[kind];
  const dir = await Deno.makeTempDir({ prefix: "pouch-quota-test-" });
  const image = `${dir}/fs.img`;
  const path = `${dir}/mnt`;
  let device = "";
  let mounted = false;
  const dispose = async () => {
    if (mounted) await sh("umount", [path]);
    if (device) await sh("losetup", ["-d", device]);
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await Deno.mkdir(path);
    const file = await Deno.open(image, { createNew: true, write: true });
    await file.truncate(spec.size).finally(() => file.close());
    const mkfs = await sh(spec.mkfs, [...spec.args, image]);
    if (!mkfs.ok) throw new Error(`${spec.mkfs}: ${mkfs.stderr || "failed"}`);
    const losetup = await sh("losetup", ["--find", "--show", image]);
    if (!losetup.ok) throw new Error(`losetup: ${losetup.stderr}`);
    device = losetup.stdout;
    const mount = await sh("mount", [...spec.mount, device, path]);
    if (!mount.ok) {
      const name = device.slice(device.lastIndexOf("/") + 1);
      const kernel = (await sh("dmesg", [])).stdout.split("\n").filter((l) => l.includes(name));
      const said = kernel.at(-1)?.replace(/^\[[^\]]*\]\s*/, "") ?? mount.stderr;
      throw new Error(`mount ${spec.mount.join(" ")}: ${said}`);
    }
    mounted = true;
    return { path, device, [Symbol.asyncDispose]: dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

async function lsattrProject(path: string): Promise<{ id: number; inherit: boolean }> {
  // `lsattr -pd` prints "<project> <flags> <path>"; P is FS_PROJINHERIT_FL.
  const [id, flags] = (await sh("lsattr", ["-pd", path])).stdout.trim().split(/\s+/);
  return { id: Number(id), inherit: (flags ?? "").includes("P") };
}

Deno.test("fsxattr and quotactl calls on an ext4 without quotas: real FFI, errno decoded", async () => {
  await using fs = await mountImage("plain ext4");
  const dir = `${fs.path}/vol`;
  await Deno.mkdir(dir);
  assert.equal(getProjectId(dir), 0);
  // Project 0 needs no project feature: this proves the ioctl pair works (the flag sticks).
  setProjectId(dir, 0);
  assert.deepEqual(await lsattrProject(dir), { id: 0, inherit: true });
  assert.throws(
    () => setProjectId(dir, 100001),
    (err) => err instanceof SyscallError && err.code === "EOPNOTSUPP",
  );
  assert.throws(() => getProjectId(`${fs.path}/nothing`), Deno.errors.NotFound);
  // A filesystem without quotas: ESRCH (ENOSYS where the kernel has no quota support at all).
  assert.throws(
    () => getProjectQuota(fs.device, 0),
    (err) => err instanceof SyscallError && ["ESRCH", "ENOSYS"].includes(err.code),
  );
  assert.throws(
    () => getProjectQuota(`${fs.path}/no-such-device`, 0),
    (err) => err instanceof SyscallError && ["ENOENT", "ENOSYS"].includes(err.code),
  );
  assert.throws(
    () => getProjectQuota(`${fs.path}/vol`, 0),
    (err) => err instanceof SyscallError && ["ENOTBLK", "ENOSYS"].includes(err.code),
  );
  const support = await detectProjectQuota(`${fs.path}/vol/not/yet`);
  assert.equal(support.supported, false);
  assert.equal(support.reason, `${fs.path} (ext4) is not mounted with prjquota`);
});

Deno.test("mountOf() and blockDeviceOf() find a loop mount's device, under any source name", async () => {
  await using fs = await mountImage("plain ext4");
  const mount = await mountOf(`${fs.path}/missing/dir`);
  assert.equal(mount.mountPoint, fs.path);
  assert.equal(await blockDeviceOf(mount), fs.device);
  // A root mounted as /dev/root has no node of that name: the numbers find the node.
  assert.equal(await blockDeviceOf({ ...mount, source: "/dev/root" }), fs.device);
  await assert.rejects(blockDeviceOf({ ...mount, major: 4095, minor: 4095 }), /no block device/);
});

Deno.test("detectProjectQuota() refuses filesystems that are not ext4 or xfs", async () => {
  const support = await detectProjectQuota("/proc/self");
  assert.deepEqual(support, {
    supported: false,
    reason: "/proc is proc: project quotas need ext4 or xfs",
    mountPoint: "/proc",
  });
});

/**
 * A quota-capable filesystem, if this host can make one: the reason it cannot otherwise. Made and
 * undone here only to decide whether to run the test below, which makes its own.
 */
async function quotaCapableImage(): Promise<{ kind?: keyof typeof IMAGES; reason: string }> {
  const reasons: string[] = [];
  for (const kind of ["ext4 with quota,project", "xfs"] as const) {
    try {
      await using fs = await mountImage(kind);
      const support = await detectProjectQuota(fs.path);
      if (support.supported) return { kind, reason: `${kind}: ${support.reason}` };
      reasons.push(`${kind}: ${support.reason}`);
    } catch (err) {
      reasons.push(`${kind}: ${(err as Error).message}`);
    }
  }
  return { reason: reasons.join("; ") };
}

const capable = await quotaCapableImage();

Deno.test({
  name: `project quotas enforce a limit on a real filesystem (${
    capable.kind ? capable.reason : `skipped: ${capable.reason}`
  })`,
  ignore: capable.kind === undefined,
  async fn() {
    await using fs = await mountImage(capable.kind!);
    const support = await detectProjectQuota(fs.path);
    assert.equal(support.supported, true);
    assert.equal(support.device, fs.device);

    // The raw calls: a project on a directory, a 1 MiB limit, a 2 MiB write refused.
    const dir = `${fs.path}/raw`;
    await Deno.mkdir(dir);
    const id = freeProjectId(fs.device, []);
    assert.equal(id, PROJECT_ID_BASE);
    setProjectId(dir, id);
    assert.equal(getProjectId(dir), id);
    setProjectQuota(fs.device, id, { limitBytes: 1 << 20 });
    assert.equal(getProjectQuota(fs.device, id).limitBytes, 1 << 20);
    await Deno.mkdir(`${dir}/sub`);
    assert.equal(getProjectId(`${dir}/sub`), id, "a new directory inherits the project");
    await assertWriteRefused(`${dir}/sub/big`);
    assert.ok(getProjectQuota(fs.device, id).usedBytes > 0);
    // An id with a limit is taken, even though no directory of ours says so.
    assert.equal(freeProjectId(fs.device, []), id + 1);

    // The driver: a size= volume there takes the quota backend.
    const driver = new LocalDriver({ root: `${fs.path}/volumes` });
    const volume = await driver.create("capped", { size: "1m" });
    const projectId = volume.status.projectId as number;
    assert.deepEqual(volume.status, {
      backend: "quota",
      size: "1m",
      sizeBytes: 1 << 20,
      projectId,
    });
    assert.notEqual(projectId, id);
    assert.equal(getProjectId(volume.mountpoint), projectId);
    await assertWriteRefused(`${volume.mountpoint}/big`);
    const other = await driver.create("other", { size: "2m", backend: "quota" });
    assert.notEqual(other.status.projectId, projectId);
    await driver.restore(volume);
    await driver.remove(volume);
    await assert.rejects(Deno.stat(`${fs.path}/volumes/capped`), Deno.errors.NotFound);
    assert.equal(getProjectQuota(fs.device, projectId).limitBytes, 0, "removal clears the limit");
    await driver.remove(other);

    // backend=image still makes an image on a quota-capable filesystem.
    const image = await driver.create("img", { size: "8m", backend: "image" });
    assert.equal(image.status.backend, "image");
    await driver.remove(image);
  },
});

/** Writing 2 MiB at `path` fails with EDQUOT (or ENOSPC, as xfs may say). */
async function assertWriteRefused(path: string): Promise<void> {
  const dd = await sh("dd", ["if=/dev/zero", `of=${path}`, "bs=64k", "count=32", "conv=fsync"]);
  assert.equal(dd.ok, false, "a write past the limit must fail");
  assert.match(dd.stderr, /Disk quota exceeded|No space left on device/);
}

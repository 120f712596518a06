/**
 * Linux project quotas, the `local` driver's preferred way to cap a volume (`--opt size=`): the
 * volume's directory gets its own project id with `FS_XFLAG_PROJINHERIT`, so everything created
 * below it is charged to that project, and the filesystem enforces the project's block hard limit.
 *
 * Everything goes through libc by Deno FFI, as the quota tools do: `quotactl(2)` with
 * `QCMD(Q_GETQUOTA | Q_SETQUOTA, PRJQUOTA)` and `struct if_dqblk` on the filesystem's block device,
 * and `ioctl(2)` `FS_IOC_FSGETXATTR` / `FS_IOC_FSSETXATTR` with `struct fsxattr` on the directory.
 * The layouts and numbers are those of `linux/quota.h` and `linux/fs.h`; the struct packing,
 * `QCMD`, mountinfo parsing and project id allocation are pure functions, tested on any host.
 *
 * Project quotas need ext4 (with the `quota,project` features) or xfs mounted with `prjquota`
 * (`pquota`), and a kernel with quota support (ext4 also needs `CONFIG_QFMT_V2`).
 * {@link detectProjectQuota} checks all of that with a real `quotactl` probe and says why not.
 *
 * @module
 */
import { cString, errno } from "../engine/_libc.ts";
import { systemError } from "../engine/errors.ts";

/** `linux/quota.h`: the quota type of projects. */
export const PRJQUOTA = 2;
/** `linux/quota.h`: read a quota's state (`struct if_dqinfo`). */
export const Q_GETINFO = 0x800005;
/** `linux/quota.h`: read one id's limits and usage (`struct if_dqblk`). */
export const Q_GETQUOTA = 0x800007;
/** `linux/quota.h`: write one id's limits (the fields `dqb_valid` names). */
export const Q_SETQUOTA = 0x800008;
/** `linux/quota.h`: `dqb_valid` bit for `dqb_bhardlimit` and `dqb_bsoftlimit`. */
export const QIF_BLIMITS = 1;
/** `linux/quota.h`: `dqb_valid` bit for `dqb_curspace`. */
export const QIF_SPACE = 2;
/** `linux/quota.h`: `dqb_bhardlimit` and `dqb_bsoftlimit` count blocks of this many bytes. */
export const QIF_DQBLKSIZE = 1024;
/** `linux/fs.h`: `_IOR('X', 31, struct fsxattr)`. */
export const FS_IOC_FSGETXATTR = 0x801c581f;
/** `linux/fs.h`: `_IOW('X', 32, struct fsxattr)`. */
export const FS_IOC_FSSETXATTR = 0x401c5820;
/** `linux/fs.h`: files created in a directory with this flag get its project id. */
export const FS_XFLAG_PROJINHERIT = 0x200;
/** `sizeof(struct if_dqblk)` on 64-bit Linux: eight `__u64`, one `__u32`, padded to 8 bytes. */
export const IF_DQBLK_SIZE = 72;
/** `sizeof(struct fsxattr)`: five `__u32` and 8 bytes of padding. */
export const FSXATTR_SIZE = 28;
/** The first project id pouch hands out: low ids are the ones admins number by hand. */
export const PROJECT_ID_BASE = 100000;
/** The largest project id: ids are `__u32` and `(u32)-1` means "none" to the kernel. */
export const PROJECT_ID_MAX = 0xfffffffe;

/** `linux/quota.h`'s `QCMD(cmd, type)`: the sub-command shifted past the quota type. */
export function qcmd(cmd: number, type: number): number {
  // A C int: Q_SETQUOTA << 8 sets the sign bit, and quotactl's first argument is an int.
  return (cmd << 8) | (type & 0xff);
}

/** `struct if_dqblk` (`linux/quota.h`): one id's limits and usage. */
export interface Dqblk {
  /** Hard limit on space, in {@link QIF_DQBLKSIZE}-byte blocks; 0 is none. */
  bhardlimit: number;
  /** Soft limit on space, in blocks. */
  bsoftlimit: number;
  /** Space in use, in bytes. */
  curspace: number;
  /** Hard limit on inodes. */
  ihardlimit: number;
  /** Soft limit on inodes. */
  isoftlimit: number;
  /** Inodes in use. */
  curinodes: number;
  /** When the space grace period ends (seconds since the epoch). */
  btime: number;
  /** When the inode grace period ends. */
  itime: number;
  /** Which fields are meant (`QIF_*` bits). */
  valid: number;
}

// Both architectures Deno runs on Linux (x86_64, aarch64) are little-endian, but the structs are
// in host order, so ask rather than assume.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const DQBLK_U64_FIELDS = [
  "bhardlimit",
  "bsoftlimit",
  "curspace",
  "ihardlimit",
  "isoftlimit",
  "curinodes",
  "btime",
  "itime",
] as const;

/** Lays out `struct if_dqblk`; fields not given are 0. */
export function packDqblk(fields: Partial<Dqblk>): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(IF_DQBLK_SIZE);
  const view = new DataView(bytes.buffer);
  DQBLK_U64_FIELDS.forEach((name, i) => {
    view.setBigUint64(i * 8, BigInt(fields[name] ?? 0), LITTLE_ENDIAN);
  });
  view.setUint32(64, fields.valid ?? 0, LITTLE_ENDIAN);
  return bytes;
}

/** Reads `struct if_dqblk`. */
export function unpackDqblk(bytes: Uint8Array): Dqblk {
  if (bytes.length < IF_DQBLK_SIZE) throw new RangeError(`if_dqblk needs ${IF_DQBLK_SIZE} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (i: number) => Number(view.getBigUint64(i * 8, LITTLE_ENDIAN));
  return {
    bhardlimit: u64(0),
    bsoftlimit: u64(1),
    curspace: u64(2),
    ihardlimit: u64(3),
    isoftlimit: u64(4),
    curinodes: u64(5),
    btime: u64(6),
    itime: u64(7),
    valid: view.getUint32(64, LITTLE_ENDIAN),
  };
}

/** `struct fsxattr` (`linux/fs.h`): a file's extended flags and project id. */
export interface Fsxattr {
  /** `FS_XFLAG_*` bits. */
  xflags: number;
  /** Extent size hint. */
  extsize: number;
  /** Number of extents (read only). */
  nextents: number;
  /** Project id. */
  projid: number;
  /** Copy-on-write extent size hint. */
  cowextsize: number;
}

/** Lays out `struct fsxattr` (its padding zeroed). */
export function packFsxattr(attr: Fsxattr): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(FSXATTR_SIZE);
  const view = new DataView(bytes.buffer);
  [attr.xflags, attr.extsize, attr.nextents, attr.projid, attr.cowextsize].forEach((value, i) => {
    view.setUint32(i * 4, value, LITTLE_ENDIAN);
  });
  return bytes;
}

/** Reads `struct fsxattr`. */
export function unpackFsxattr(bytes: Uint8Array): Fsxattr {
  if (bytes.length < FSXATTR_SIZE) throw new RangeError(`fsxattr needs ${FSXATTR_SIZE} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u32 = (i: number) => view.getUint32(i * 4, LITTLE_ENDIAN);
  return { xflags: u32(0), extsize: u32(1), nextents: u32(2), projid: u32(3), cowextsize: u32(4) };
}

/** A failed system call, with its errno's name (`ESRCH`) as `code`. */
export class SyscallError extends Error {
  /** The errno number. */
  readonly errno: number;
  /** The errno's name, `EPERM`..., or `errno N` for one this module does not name. */
  readonly code: string;

  /** `call` failed with `errno`; `hint` says what that means for this call. */
  constructor(call: string, errno: number, hint?: string) {
    const [code, text] = ERRNO[errno] ?? [`errno ${errno}`, "unknown error"];
    super(`${call}: ${code}: ${hint ?? text}`);
    this.name = "SyscallError";
    this.errno = errno;
    this.code = code;
  }
}

/** The errno numbers these calls answer (the same on x86_64 and aarch64), with strerror's text. */
const ERRNO: Record<number, [string, string]> = {
  1: ["EPERM", "operation not permitted"],
  2: ["ENOENT", "no such file or directory"],
  3: ["ESRCH", "no such process"],
  5: ["EIO", "input/output error"],
  6: ["ENXIO", "no such device or address"],
  9: ["EBADF", "bad file descriptor"],
  13: ["EACCES", "permission denied"],
  14: ["EFAULT", "bad address"],
  15: ["ENOTBLK", "block device required"],
  16: ["EBUSY", "device or resource busy"],
  19: ["ENODEV", "no such device"],
  20: ["ENOTDIR", "not a directory"],
  22: ["EINVAL", "invalid argument"],
  25: ["ENOTTY", "inappropriate ioctl for device"],
  28: ["ENOSPC", "no space left on device"],
  30: ["EROFS", "read-only file system"],
  38: ["ENOSYS", "function not implemented"],
  95: ["EOPNOTSUPP", "operation not supported"],
  122: ["EDQUOT", "disk quota exceeded"],
};

/** What an errno means from quotactl (quotactl(2)'s ERRORS), for the reasons we report. */
const QUOTACTL_HINTS: Record<number, string> = {
  1: "not permitted (quotactl needs CAP_SYS_ADMIN)",
  2: "no such block device",
  3: "quotas not enabled on this filesystem (not mounted with prjquota, or no quota support)",
  15: "not a block device",
  19: "the device is not mounted",
  22: "no quota format support in this kernel (or an invalid quota command)",
  38: "the kernel was built without quota support",
  95: "the filesystem does not support project quotas",
};

/** What an errno means from the fsxattr ioctls. */
const FSXATTR_HINTS: Record<number, string> = {
  1: "not permitted (setting a project id needs CAP_FOWNER in the initial user namespace)",
  25: "the filesystem has no FS_IOC_FSGETXATTR/FS_IOC_FSSETXATTR",
  95: "the filesystem has no project ids (ext4 needs the project feature)",
};

const O_RDONLY = 0;
// O_CLOEXEC is 02000000 on every Linux architecture Deno runs on; O_DIRECTORY is not (x86_64 and
// aarch64 differ), so the caller checks for a directory instead.
const O_CLOEXEC = 0o2000000;

const SYMBOLS = {
  // quotactl's id is an int in C but a qid_t (u32) to the kernel: project ids reach 2^32 - 2.
  quotactl: { parameters: ["i32", "buffer", "u32", "buffer"], result: "i32" },
  // open and ioctl are variadic in C; on x86_64 and aarch64 Linux a pointer or integer passed
  // variadically travels exactly like a fixed one, and glibc's wrappers read it as such.
  open: { parameters: ["buffer", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** libc, opened on first use so that importing this module costs nothing. */
function lib(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

const COMMAND_NAMES: Record<number, string> = {
  [Q_GETINFO]: "Q_GETINFO",
  [Q_GETQUOTA]: "Q_GETQUOTA",
  [Q_SETQUOTA]: "Q_SETQUOTA",
};

function quotactl(cmd: number, device: string, id: number, data: Uint8Array<ArrayBuffer>): void {
  const status = lib().quotactl(qcmd(cmd, PRJQUOTA), cString(device), id, data);
  if (status !== 0) {
    const code = errno();
    throw new SyscallError(
      `quotactl(${COMMAND_NAMES[cmd] ?? cmd}, project ${id}, ${device})`,
      code,
      QUOTACTL_HINTS[code],
    );
  }
}

/** A project's limit and usage, in bytes. */
export interface ProjectQuota {
  /** The hard limit on space in bytes; 0 is none. */
  limitBytes: number;
  /** Space the project's files take, in bytes. */
  usedBytes: number;
  /** Inodes the project's files take. */
  usedInodes: number;
}

/**
 * The limit and usage of project `projectId` on the filesystem of block device `device`. A
 * project the filesystem keeps no record of (xfs answers ENOENT for those) has neither.
 */
export function getProjectQuota(device: string, projectId: number): ProjectQuota {
  const data = packDqblk({});
  try {
    quotactl(Q_GETQUOTA, device, projectId, data);
  } catch (err) {
    // ENOENT is also what a missing device node gives: only an existing one makes it "no record".
    const recordless = err instanceof SyscallError && err.code === "ENOENT" &&
      isBlockDevice(device);
    if (!recordless) throw err;
    return { limitBytes: 0, usedBytes: 0, usedInodes: 0 };
  }
  const dqblk = unpackDqblk(data);
  return {
    limitBytes: dqblk.bhardlimit * QIF_DQBLKSIZE,
    usedBytes: dqblk.curspace,
    usedInodes: dqblk.curinodes,
  };
}

function isBlockDevice(path: string): boolean {
  try {
    return Deno.statSync(path).isBlockDevice === true;
  } catch {
    return false;
  }
}

/** Options of {@link setProjectQuota}. */
export interface SetProjectQuotaOptions {
  /** The hard limit in bytes, rounded up to whole KiB; 0 removes the limit. */
  limitBytes: number;
}

/**
 * Sets the hard space limit of project `projectId` on block device `device` (and no soft limit,
 * so there is no grace period: a write past the limit fails at once). Inode limits are untouched.
 */
export function setProjectQuota(
  device: string,
  projectId: number,
  options: SetProjectQuotaOptions,
): void {
  const blocks = Math.ceil(options.limitBytes / QIF_DQBLKSIZE);
  quotactl(
    Q_SETQUOTA,
    device,
    projectId,
    packDqblk({ bhardlimit: blocks, bsoftlimit: 0, valid: QIF_BLIMITS }),
  );
}

/** Runs `fn` on a read-only descriptor of directory `dir`, closing it after. */
function withDirectory<T>(dir: string, fn: (fd: number) => T): T {
  if (!Deno.lstatSync(dir).isDirectory) {
    throw new SyscallError(`open(${dir})`, 20);
  }
  const fd = lib().open(cString(dir), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw new SyscallError(`open(${dir})`, errno());
  try {
    return fn(fd);
  } finally {
    lib().close(fd);
  }
}

function getFsxattr(fd: number, dir: string): Fsxattr {
  const data = packFsxattr({ xflags: 0, extsize: 0, nextents: 0, projid: 0, cowextsize: 0 });
  if (lib().ioctl(fd, BigInt(FS_IOC_FSGETXATTR), data) !== 0) {
    const code = errno();
    throw new SyscallError(`ioctl(${dir}, FS_IOC_FSGETXATTR)`, code, FSXATTR_HINTS[code]);
  }
  return unpackFsxattr(data);
}

/** The project id of `dir` (0 when it has none). */
export function getProjectId(dir: string): number {
  return withDirectory(dir, (fd) => getFsxattr(fd, dir).projid);
}

/**
 * Gives directory `dir` project id `projectId` and `FS_XFLAG_PROJINHERIT`, so that everything
 * created below it belongs to that project. Files already inside keep theirs.
 */
export function setProjectId(dir: string, projectId: number): void {
  withDirectory(dir, (fd) => {
    // Read-modify-write: the other flags and hints are the file's and must survive.
    const attr = getFsxattr(fd, dir);
    attr.projid = projectId;
    attr.xflags = (attr.xflags | FS_XFLAG_PROJINHERIT) >>> 0;
    if (lib().ioctl(fd, BigInt(FS_IOC_FSSETXATTR), packFsxattr(attr)) !== 0) {
      const code = errno();
      throw new SyscallError(
        `ioctl(${dir}, FS_IOC_FSSETXATTR, project ${projectId})`,
        code,
        FSXATTR_HINTS[code],
      );
    }
  });
}

/** Options of {@link allocateProjectId}. */
export interface AllocateProjectIdOptions {
  /** The smallest id to hand out ({@link PROJECT_ID_BASE}). */
  base?: number;
}

/** The smallest project id from `options.base` on that `used` lacks; throws when none is left. */
export function allocateProjectId(
  used: Iterable<number>,
  options: AllocateProjectIdOptions = {},
): number {
  const taken = new Set(used);
  for (let id = options.base ?? PROJECT_ID_BASE; id <= PROJECT_ID_MAX; id++) {
    if (!taken.has(id)) return id;
  }
  throw systemError("no free project id left");
}

/**
 * A project id free on block device `device`: not in `taken` (ids pouch already gave out) and
 * with neither a limit nor usage there, so that an id someone else set up by hand is never
 * reused. Asks the filesystem about a bounded number of candidates.
 */
export function freeProjectId(
  device: string,
  taken: Iterable<number>,
  options: AllocateProjectIdOptions = {},
): number {
  const used = new Set(taken);
  for (let tries = 0; tries < 1000; tries++) {
    const id = allocateProjectId(used, options);
    const quota = getProjectQuota(device, id);
    if (quota.limitBytes === 0 && quota.usedBytes === 0 && quota.usedInodes === 0) return id;
    used.add(id);
  }
  throw systemError(`no free project id on ${device} after 1000 tries`);
}

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  /** The device's major number (for non-device filesystems, an anonymous one). */
  major: number;
  /** The device's minor number. */
  minor: number;
  /** The directory of the filesystem mounted here (not `/` for bind mounts). */
  root: string;
  /** Where it is mounted. */
  mountPoint: string;
  /** Per-mount options (`rw`, `nosuid`, ...). */
  mountOptions: string[];
  /** The filesystem type (`ext4`). */
  fstype: string;
  /** The mount source (`/dev/vda1`, `tmpfs`). */
  source: string;
  /** Per-filesystem options, where `prjquota` shows. */
  superOptions: string[];
}

/** Parses /proc/self/mountinfo (proc(5)); malformed lines are skipped. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    // Optional fields (shared:N, master:N) sit between the sixth field and the "-".
    const dash = fields.indexOf("-", 6);
    const device = /^(\d+):(\d+)$/.exec(fields[2] ?? "");
    if (dash < 0 || !device || fields.length < dash + 4) continue;
    entries.push({
      major: Number(device[1]),
      minor: Number(device[2]),
      root: unescapeOctal(fields[3] ?? ""),
      mountPoint: unescapeOctal(fields[4] ?? ""),
      mountOptions: (fields[5] ?? "").split(","),
      fstype: fields[dash + 1] ?? "",
      source: unescapeOctal(fields[dash + 2] ?? ""),
      superOptions: (fields[dash + 3] ?? "").split(","),
    });
  }
  return entries;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeOctal(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}

/** Options of {@link findMount}. */
export interface FindMountOptions {
  /** The device `path` is on (`stat`'s `st_dev`), to skip mounts of other filesystems. */
  device?: { major: number; minor: number };
}

/**
 * The mount that `path` (absolute, symlinks resolved) is on: the deepest mount point above it,
 * the last mounted where several are stacked, of the device given when one is.
 */
export function findMount(
  entries: MountEntry[],
  path: string,
  options: FindMountOptions = {},
): MountEntry | undefined {
  const pick = (sameDevice: boolean) => {
    let best: MountEntry | undefined;
    for (const entry of entries) {
      const point = entry.mountPoint;
      const above = point === "/" || path === point || path.startsWith(`${point}/`);
      const device = options.device;
      if (!above) continue;
      if (sameDevice && device && (entry.major !== device.major || entry.minor !== device.minor)) {
        continue;
      }
      if (!best || point.length >= best.mountPoint.length) best = entry;
    }
    return best;
  };
  // Some filesystems (btrfs subvolumes) report another st_dev than mountinfo's: then by path.
  return pick(true) ?? pick(false);
}

/** `gnu_dev_major`/`gnu_dev_minor`: the major and minor numbers of a `dev_t`. */
export function splitDeviceNumber(dev: number): { major: number; minor: number } {
  const low = dev >>> 0;
  const high = Math.floor(dev / 2 ** 32) >>> 0;
  return {
    major: (((low >>> 8) & 0xfff) | (high & 0xfffff000)) >>> 0,
    minor: ((low & 0xff) | (((low >>> 12) | (high << 20)) & 0xffffff00)) >>> 0,
  };
}

/** The mount holding `path`; a path that does not exist yet is on its nearest existing parent's. */
export async function mountOf(path: string): Promise<MountEntry> {
  let existing = path;
  let real: string | undefined;
  while (real === undefined) {
    try {
      real = await Deno.realPath(existing);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound) || existing === "/") throw err;
      existing = existing.slice(0, existing.lastIndexOf("/")) || "/";
    }
  }
  const info = await Deno.stat(real);
  const entries = parseMountinfo(await Deno.readTextFile("/proc/self/mountinfo"));
  const mount = findMount(entries, real, { device: splitDeviceNumber(info.dev) });
  if (!mount) throw systemError(`no mount found for ${path} in /proc/self/mountinfo`);
  return mount;
}

/**
 * The block device node of `mount`, for quotactl: its source when that is the device, else
 * udev's `/dev/block/MAJ:MIN`, else any node in /dev or /dev/mapper with its numbers (a root
 * mounted as `/dev/root` has no node of that name).
 */
export async function blockDeviceOf(mount: MountEntry): Promise<string> {
  const matches = async (node: string) => {
    const info = await Deno.stat(node).catch(() => undefined);
    if (!info?.isBlockDevice || info.rdev === null) return false;
    const { major, minor } = splitDeviceNumber(info.rdev);
    return major === mount.major && minor === mount.minor;
  };
  const candidates = [`/dev/block/${mount.major}:${mount.minor}`];
  if (mount.source.startsWith("/")) candidates.unshift(mount.source);
  for (const node of candidates) if (await matches(node)) return node;
  for (const dir of ["/dev", "/dev/mapper"]) {
    const names = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
    for (const { name } of names) if (await matches(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  throw systemError(
    `no block device node for ${mount.source} (${mount.major}:${mount.minor}) of ${mount.mountPoint}`,
  );
}

/** Whether project quotas can cap a directory at a path, and why (not). */
export interface QuotaSupport {
  /** The quota backend works there: the filesystem, its mount options and a real probe agree. */
  supported: boolean;
  /** Why the quota backend cannot be used there; when it can, what it found. */
  reason: string;
  /** The filesystem's block device (for quotactl), when supported. */
  device?: string;
  /** The mount point of that filesystem, when found. */
  mountPoint?: string;
}

const PRJQUOTA_OPTIONS = ["prjquota", "pquota", "pqenforce"];

/**
 * Detects project-quota support for directories under `path` (which need not exist yet): the
 * filesystem holding it must be ext4 or xfs mounted with `prjquota` (`pquota`), have a block
 * device, and answer a real `quotactl(Q_GETQUOTA)` for project 0. Never says yes without that
 * probe: the mount option alone does not prove the kernel enforces anything.
 */
export async function detectProjectQuota(path: string): Promise<QuotaSupport> {
  let mount: MountEntry;
  try {
    mount = await mountOf(path);
  } catch (err) {
    return { supported: false, reason: `no filesystem found for ${path}: ${message(err)}` };
  }
  const { mountPoint, fstype } = mount;
  const unsupported = (reason: string): QuotaSupport => ({ supported: false, reason, mountPoint });
  if (fstype !== "ext4" && fstype !== "xfs") {
    return unsupported(`${mountPoint} is ${fstype}: project quotas need ext4 or xfs`);
  }
  const options = new Set([...mount.superOptions, ...mount.mountOptions]);
  if (options.has("pqnoenforce")) {
    return unsupported(`${mountPoint} (${fstype}) accounts project usage but does not enforce it`);
  }
  if (!PRJQUOTA_OPTIONS.some((o) => options.has(o))) {
    return unsupported(`${mountPoint} (${fstype}) is not mounted with prjquota`);
  }
  let device: string;
  try {
    device = await blockDeviceOf(mount);
  } catch (err) {
    return unsupported(message(err));
  }
  try {
    getProjectQuota(device, 0);
  } catch (err) {
    return unsupported(`project quota probe on ${mountPoint} failed: ${message(err)}`);
  }
  return {
    supported: true,
    reason: `project quotas enforced on ${mountPoint} (${fstype} on ${device})`,
    device,
    mountPoint,
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

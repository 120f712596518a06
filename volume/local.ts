/**
 * The `local` volume driver: a directory per volume, `<root>/<name>/_data`.
 *
 * Options (`--opt`):
 * - `mount=/mnt/x`: the volume lives under that existing directory (a dedicated disk) instead of
 *   the daemon's volume root.
 * - `size=10G`: caps the volume, by one of two backends chosen when it is created and shown as
 *   `Status.backend`. `quota`: where the filesystem under the volume enforces project quotas (ext4
 *   or xfs mounted with `prjquota`, and a kernel with quota support, proven by a probe), `_data`
 *   gets its own project id and a hard limit (see `quota.ts`). `image` everywhere else (as on our
 *   machines): a sparse ext4 image of that size, loop-mounted on `_data` while the volume exists.
 * - `backend=quota|image`: forces one of them; `quota` where quotas are unsupported is refused
 *   with the reason.
 * - `type`, `device`, `o`: Docker's options; the device (or an NFS-style or tmpfs source) is
 *   mounted on `_data` with `mount -t type -o o device`.
 *
 * @module
 */
import { invalidArgument } from "../engine/errors.ts";
import {
  detectProjectQuota,
  freeProjectId,
  getProjectId,
  setProjectId,
  setProjectQuota,
} from "./quota.ts";
import {
  checkOptions,
  type DriverCapabilities,
  type DriverVolume,
  isMountPoint,
  parseSize,
  removeVolumeDir,
  run,
  unmountIfMounted,
  type VolumeDriver,
} from "./driver.ts";

export { detectProjectQuota, type QuotaSupport } from "./quota.ts";

const OPTIONS = ["mount", "size", "backend", "type", "device", "o"] as const;
const BACKENDS = ["quota", "image"];

/** How a `size=` volume is capped: the quota backend on `device`, or an image. */
type Cap = { backend: "quota"; device: string } | { backend: "image" };

/** Options of {@link LocalDriver}. */
export interface LocalDriverOptions {
  /** Where volumes live unless `--opt mount=` says otherwise (`<home>/volumes`). */
  root: string;
}

/** The `local` driver. */
export class LocalDriver implements VolumeDriver {
  /** The driver's name. */
  readonly name = "local";
  readonly #root: string;

  /** A driver keeping its volumes under `options.root`. */
  constructor(options: LocalDriverOptions) {
    this.#root = options.root;
  }

  /** Checks the options, creates the volume's directory, image or mount. */
  async create(name: string, options: Record<string, string>): Promise<DriverVolume> {
    checkOptions(this.name, options, OPTIONS);
    const base = await this.#baseOf(options);
    const size = options.size === undefined ? undefined : parseSize(options.size);
    if ((options.type === undefined) !== (options.device === undefined)) {
      throw invalidArgument(`local volume options "type" and "device" must be given together`);
    }
    if (options.o !== undefined && options.type === undefined) {
      throw invalidArgument(`local volume option "o" needs "type" and "device"`);
    }
    if (size !== undefined && options.type !== undefined) {
      throw invalidArgument(`local volume options "size" and "type" cannot be combined`);
    }
    if (options.backend !== undefined) {
      if (!BACKENDS.includes(options.backend)) {
        throw invalidArgument(`local volume option backend=${options.backend}: use quota or image`);
      }
      if (size === undefined) throw invalidArgument(`local volume option "backend" needs "size"`);
    }
    const cap = size === undefined ? undefined : await chooseCap(base, options.backend);

    await Deno.mkdir(base, { recursive: true, mode: 0o701 });
    const dir = `${base}/${name}`;
    try {
      // Not recursive: an existing directory is someone else's (or a leftover) and stays.
      await Deno.mkdir(dir, { mode: 0o701 });
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) {
        throw invalidArgument(`create ${name}: ${dir} already exists`, err);
      }
      throw err;
    }
    const volume: DriverVolume = {
      name,
      options: { ...options },
      mountpoint: `${dir}/_data`,
      status: { backend: "directory" },
    };
    try {
      await Deno.mkdir(volume.mountpoint, { mode: 0o755 });
      if (size !== undefined && cap?.backend === "quota") {
        const projectId = await allocateProjectId(base, cap.device);
        // From here to the limit being set every call is synchronous, so no other create of this
        // daemon can pick the same id before the limit makes it visibly taken.
        volume.status = { backend: "quota", size: options.size, sizeBytes: size, projectId };
        setProjectId(volume.mountpoint, projectId);
        setProjectQuota(cap.device, projectId, { limitBytes: size });
      } else if (size !== undefined) {
        const image = `${dir}/disk.img`;
        // A fresh file truncated up to the size is sparse: it takes no space until written.
        const file = await Deno.open(image, { createNew: true, write: true, mode: 0o600 });
        try {
          await file.truncate(size);
        } finally {
          file.close();
        }
        await run("mkfs.ext4", ["-q", "-F", "-m", "0", image]);
        volume.status = { backend: "image", size: options.size, sizeBytes: size, image };
      } else if (options.type !== undefined) {
        volume.status = { backend: "mount", type: options.type, device: options.device };
      }
      await this.#mountBackend(volume);
      return volume;
    } catch (err) {
      await unmountIfMounted(volume.mountpoint).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (cap?.backend === "quota" && typeof volume.status.projectId === "number") {
        try {
          setProjectQuota(cap.device, volume.status.projectId, { limitBytes: 0 });
        } catch {
          // The limit was never set (its setting is what failed): nothing to undo.
        }
      }
      throw err;
    }
  }

  /** Unmounts the volume's backend, deletes its directory and clears its project quota. */
  async remove(volume: DriverVolume): Promise<void> {
    const projectId = volume.status.projectId;
    if (volume.status.backend !== "quota" || typeof projectId !== "number" || projectId <= 0) {
      return await removeVolumeDir(volume.mountpoint);
    }
    // Which device to clear is asked before the directory goes; after, only its parent knows.
    const support = await detectProjectQuota(volume.mountpoint);
    await removeVolumeDir(volume.mountpoint);
    // The limit lives in the filesystem's quota file and outlives the directory: clear it so the
    // id is free again. Where quotas have since been turned off it cannot be cleared, and stays
    // harmless: the allocator skips ids that still carry a limit.
    if (support.supported && support.device) {
      setProjectQuota(support.device, projectId, { limitBytes: 0 });
    }
  }

  /** The volume's data directory. */
  path(volume: DriverVolume): string {
    return volume.mountpoint;
  }

  /** The data directory, with its backend mounted. */
  async mount(volume: DriverVolume, _containerId: string): Promise<string> {
    await this.#mountBackend(volume);
    return volume.mountpoint;
  }

  /** Nothing: the backend stays mounted while the volume exists. */
  unmount(_volume: DriverVolume, _containerId: string): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Remounts an image or device backend that a reboot or an unmount took away. Directories and
   * quota volumes need nothing: a project's id and limit persist in the filesystem.
   */
  restore(volume: DriverVolume): Promise<void> {
    return this.#mountBackend(volume);
  }

  /** Local volumes are this host's. */
  capabilities(): DriverCapabilities {
    return { scope: "local" };
  }

  /** Removes what a create cut short left (see {@link VolumeDriver.forget}). */
  async forget(name: string, options: Record<string, string>): Promise<void> {
    const base = await this.#baseOf(options).catch(() => undefined);
    if (base) await removeVolumeDir(`${base}/${name}/_data`);
  }

  async #baseOf(options: Record<string, string>): Promise<string> {
    const mount = options.mount;
    if (mount === undefined) return this.#root;
    if (!mount.startsWith("/")) {
      throw invalidArgument(`local volume option mount=${mount}: the path must be absolute`);
    }
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(mount);
    } catch (err) {
      throw invalidArgument(`local volume option mount=${mount}: no such directory`, err);
    }
    if (!info.isDirectory) {
      throw invalidArgument(`local volume option mount=${mount}: not a directory`);
    }
    return mount.replace(/\/+$/, "") || "/";
  }

  async #mountBackend(volume: DriverVolume): Promise<void> {
    const backend = volume.status.backend;
    // Plain and quota volumes are directories of the filesystem itself: nothing to mount.
    if (backend !== "image" && backend !== "mount") return;
    if (await isMountPoint(volume.mountpoint)) return;
    if (backend === "image") {
      await run("mount", ["-o", "loop", String(volume.status.image), volume.mountpoint]);
    } else if (backend === "mount") {
      const args = ["-t", volume.options.type ?? ""];
      if (volume.options.o) args.push("-o", volume.options.o);
      await run("mount", [...args, volume.options.device ?? "", volume.mountpoint]);
    }
  }
}

/**
 * The backend of a `size=` volume under `base`: project quota where detected (or asked for, which
 * is refused with the detection's reason where unsupported), else the ext4 image.
 */
async function chooseCap(base: string, wanted: string | undefined): Promise<Cap> {
  if (wanted !== "image") {
    const support = await detectProjectQuota(base);
    if (support.supported && support.device) return { backend: "quota", device: support.device };
    if (wanted === "quota") {
      throw invalidArgument(`local volume option backend=quota: ${support.reason}`);
    }
  }
  if (!await hasMkfsExt4()) {
    throw invalidArgument(`local volume option "size" needs mkfs.ext4 (e2fsprogs)`);
  }
  return { backend: "image" };
}

/**
 * A project id for a new volume under `base` on `device`: none that a volume directory beside it
 * carries (even one whose limit someone cleared by hand), and none with a limit or usage on the
 * device (other pouch volumes elsewhere on the filesystem, or projects set up by an admin).
 */
async function allocateProjectId(base: string, device: string): Promise<number> {
  const taken: number[] = [];
  for await (const entry of Deno.readDir(base)) {
    if (!entry.isDirectory) continue;
    try {
      const id = getProjectId(`${base}/${entry.name}/_data`);
      if (id !== 0) taken.push(id);
    } catch {
      // Not a volume (no _data), or not ours to read: it holds no id we gave.
    }
  }
  return freeProjectId(device, taken);
}

async function hasMkfsExt4(): Promise<boolean> {
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (await Deno.stat(`${dir}/mkfs.ext4`).then(() => true, () => false)) return true;
  }
  return false;
}

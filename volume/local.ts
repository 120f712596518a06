/**
 * The `local` volume driver: a directory per volume, `<root>/<name>/_data`.
 *
 * Options (`--opt`):
 * - `mount=/mnt/x`: the volume lives under that existing directory (a dedicated disk) instead of
 *   the daemon's volume root.
 * - `size=10G`: caps the volume. The project-quota backend needs a filesystem mounted with
 *   `prjquota` and a kernel with quota format support; without them (as on our machines) the
 *   volume is a sparse ext4 image of that size, loop-mounted on `_data` while the volume exists.
 * - `type`, `device`, `o`: Docker's options; the device (or an NFS-style or tmpfs source) is
 *   mounted on `_data` with `mount -t type -o o device`.
 *
 * @module
 */
import { invalidArgument } from "../engine/errors.ts";
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

const OPTIONS = ["mount", "size", "type", "device", "o"] as const;

/** Whether project quotas can cap a directory at `path`, and why not when they cannot. */
export interface QuotaSupport {
  supported: boolean;
  /** Why the quota backend cannot be used here. */
  reason: string;
}

/**
 * Detects project-quota support for directories under `path`: the filesystem holding it must be
 * ext4 or xfs mounted with `prjquota`. Quota-capable mounts are rare (and this kernel has no
 * quota format support), so the sparse image backend is the one used when this says no.
 */
export async function detectProjectQuota(path: string): Promise<QuotaSupport> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  let best: { point: string; fstype: string; options: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const point = fields[4] ?? "";
    const dash = fields.indexOf("-");
    if (dash < 0) continue;
    const inside = point === "/" || path === point || path.startsWith(`${point}/`);
    if (inside && (!best || point.length >= best.point.length)) {
      best = { point, fstype: fields[dash + 1] ?? "", options: fields[dash + 3] ?? "" };
    }
  }
  if (!best) return { supported: false, reason: `no filesystem found for ${path}` };
  if (best.fstype !== "ext4" && best.fstype !== "xfs") {
    return {
      supported: false,
      reason: `${best.point} is ${best.fstype}: project quotas need ext4 or xfs`,
    };
  }
  if (!best.options.split(",").some((o) => o === "prjquota" || o === "pquota")) {
    return { supported: false, reason: `${best.point} is not mounted with prjquota` };
  }
  // Even then the quota tools must be able to set a project; we do not do that yet.
  return { supported: false, reason: "the project-quota backend is not implemented yet" };
}

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
    if (size !== undefined && !await hasMkfsExt4()) {
      throw invalidArgument(`local volume option "size" needs mkfs.ext4 (e2fsprogs)`);
    }

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
      if (size !== undefined) {
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
      throw err;
    }
  }

  /** Unmounts the volume's backend and deletes its directory. */
  async remove(volume: DriverVolume): Promise<void> {
    await removeVolumeDir(volume.mountpoint);
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

  /** Remounts an image or device backend that a reboot or an unmount took away. */
  restore(volume: DriverVolume): Promise<void> {
    return this.#mountBackend(volume);
  }

  /** Local volumes are this host's. */
  capabilities(): DriverCapabilities {
    return { scope: "local" };
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
    if (backend === "directory" || await isMountPoint(volume.mountpoint)) return;
    if (backend === "image") {
      await run("mount", ["-o", "loop", String(volume.status.image), volume.mountpoint]);
    } else if (backend === "mount") {
      const args = ["-t", volume.options.type ?? ""];
      if (volume.options.o) args.push("-o", volume.options.o);
      await run("mount", [...args, volume.options.device ?? "", volume.mountpoint]);
    }
  }
}

async function hasMkfsExt4(): Promise<boolean> {
  for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
    if (await Deno.stat(`${dir}/mkfs.ext4`).then(() => true, () => false)) return true;
  }
  return false;
}

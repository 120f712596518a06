/**
 * The `tmpfs` volume driver: a memory-backed filesystem mounted on `<root>/<name>/_data` while
 * the volume exists (`--opt size=64m`, `--opt mode=1777`). Its data is gone when the volume is
 * removed, and after a host reboot.
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

const OPTIONS = ["size", "mode"] as const;

/** Options of {@link TmpfsDriver}. */
export interface TmpfsDriverOptions {
  /** Where the mount points live (`<home>/volumes`). */
  root: string;
}

/** The `tmpfs` driver. */
export class TmpfsDriver implements VolumeDriver {
  /** The driver's name. */
  readonly name = "tmpfs";
  readonly #root: string;

  /** A driver with its mount points under `options.root`. */
  constructor(options: TmpfsDriverOptions) {
    this.#root = options.root;
  }

  /** Checks the options and mounts a new tmpfs. */
  async create(name: string, options: Record<string, string>): Promise<DriverVolume> {
    checkOptions(this.name, options, OPTIONS);
    const size = options.size === undefined ? undefined : parseSize(options.size);
    if (options.mode !== undefined && !/^[0-7]{3,4}$/.test(options.mode)) {
      throw invalidArgument(`invalid tmpfs mode: '${options.mode}'`);
    }
    await Deno.mkdir(this.#root, { recursive: true, mode: 0o701 });
    const dir = `${this.#root}/${name}`;
    try {
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
      status: { backend: "tmpfs", ...(size === undefined ? {} : { sizeBytes: size }) },
    };
    try {
      await Deno.mkdir(volume.mountpoint, { mode: 0o755 });
      await this.#mountTmpfs(volume);
      return volume;
    } catch (err) {
      await unmountIfMounted(volume.mountpoint).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** Unmounts the tmpfs (its data goes with it) and deletes the directory. */
  async remove(volume: DriverVolume): Promise<void> {
    await removeVolumeDir(volume.mountpoint);
  }

  /** The tmpfs mount point. */
  /** Removes what a create cut short left (see {@link VolumeDriver.forget}). */
  async forget(name: string): Promise<void> {
    await removeVolumeDir(`${this.#root}/${name}/_data`);
  }

  path(volume: DriverVolume): string {
    return volume.mountpoint;
  }

  /** The mount point, with the tmpfs mounted. */
  async mount(volume: DriverVolume, _containerId: string): Promise<string> {
    await this.#mountTmpfs(volume);
    return volume.mountpoint;
  }

  /** Nothing: the tmpfs stays while the volume exists. */
  unmount(_volume: DriverVolume, _containerId: string): Promise<void> {
    return Promise.resolve();
  }

  /** Mounts a (new, empty) tmpfs again after a reboot. */
  restore(volume: DriverVolume): Promise<void> {
    return this.#mountTmpfs(volume);
  }

  /** tmpfs volumes are this host's. */
  capabilities(): DriverCapabilities {
    return { scope: "local" };
  }

  async #mountTmpfs(volume: DriverVolume): Promise<void> {
    if (await isMountPoint(volume.mountpoint)) return;
    const data = ["nosuid", "nodev"];
    if (volume.options.size !== undefined) data.push(`size=${parseSize(volume.options.size)}`);
    if (volume.options.mode !== undefined) data.push(`mode=${volume.options.mode}`);
    await run("mount", ["-t", "tmpfs", "-o", data.join(","), "tmpfs", volume.mountpoint]);
  }
}

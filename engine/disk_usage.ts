/**
 * `pouch system df` and the prunes behind `pouch system prune`: what images, containers and
 * volumes take on disk, and removing stopped containers and unused images, in Docker's shapes
 * (`GET /system/df`, `POST /containers/prune`, `POST /images/prune`).
 *
 * @module
 */
import type { Container, ContainerManager } from "./container.ts";
import type { Containerd } from "./containerd.ts";
import { messageOf } from "./errors.ts";
import type { ImageDeleteItem, ImageManager, ImageSummary } from "./image.ts";
import type { Logger } from "./log.ts";
import type { Volume, VolumeManager } from "../volume/mod.ts";

/** A container's disk use: its writable layer and that plus its image. */
export interface ContainerUsage {
  container: Container;
  /** Bytes written into the container's own snapshot. */
  sizeRw: number;
  /** `sizeRw` plus the image's size. */
  sizeRootFs: number;
}

/** What `GET /system/df` reports, before the API turns containers into Docker's view. */
export interface DiskUsageReport {
  /** Bytes of every image's layers. */
  layersSize: number;
  /** Images with `Containers` counted. */
  images: ImageSummary[];
  containers: ContainerUsage[];
  /** Volumes with their `UsageData` (size of local volumes, users). */
  volumes: Volume[];
}

/** The parts {@link DiskUsage} reads and removes through. */
export interface DiskUsageParts {
  client: Pick<Containerd, "snapshots">;
  containers: Pick<ContainerManager, "list" | "remove" | "imageUser">;
  images: Pick<ImageManager, "list" | "remove">;
  volumes?: Pick<VolumeManager, "list">;
  log: Logger;
}

/** Container states `container prune` removes (anything not running, paused or restarting). */
const STOPPED = new Set(["created", "exited", "dead"]);

/** Disk usage and prunes over the daemon's parts. */
export class DiskUsage {
  readonly #parts: DiskUsageParts;

  /** Reads and prunes through `parts`. */
  constructor(parts: DiskUsageParts) {
    this.#parts = parts;
  }

  /** Docker's `/system/df` data. */
  async report(): Promise<DiskUsageReport> {
    const { containers, images, volumes } = this.#parts;
    const list = containers.list();
    const imageList = await images.list({});
    const imageSize = new Map(imageList.map((i) => [i.Id, i.Size]));
    const usages = await Promise.all(list.map(async (container) => {
      const sizeRw = await this.#sizeRw(container);
      return { container, sizeRw, sizeRootFs: sizeRw + (imageSize.get(container.imageId) ?? 0) };
    }));
    const withContainers = imageList.map((image) => ({
      ...image,
      Containers: list.filter((c) => c.imageId === image.Id).length,
    }));
    const volumeList = await Promise.all((volumes?.list() ?? []).map(async (volume) => ({
      ...volume,
      UsageData: {
        RefCount: volume.UsageData.RefCount,
        // Built-in drivers keep data on this host; a plugin's may be remote: not walked.
        Size: ["local", "tmpfs"].includes(volume.Driver)
          ? await directorySize(volume.Mountpoint)
          : -1,
      },
    })));
    return {
      layersSize: imageList.reduce((sum, i) => sum + Math.max(i.Size, 0), 0),
      images: withContainers,
      containers: usages,
      volumes: volumeList,
    };
  }

  /** Removes every stopped container; Docker's `ContainersDeleted` and `SpaceReclaimed`. */
  async pruneContainers(): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const container of this.#parts.containers.list()) {
      if (!STOPPED.has(container.state.Status)) continue;
      const size = await this.#sizeRw(container);
      try {
        await this.#parts.containers.remove(container.id);
        deleted.push(container.id);
        reclaimed += size;
      } catch (err) {
        // Docker's prune goes on past a container it cannot remove (one started meanwhile).
        this.#parts.log.warn("prune: container not removed", {
          id: container.id,
          error: messageOf(err),
        });
      }
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /**
   * Removes images no container uses: the dangling ones (no name), or with `all` every one.
   * Docker's `ImagesDeleted` and `SpaceReclaimed`.
   */
  async pruneImages(
    options: { all?: boolean } = {},
  ): Promise<{ ImagesDeleted: ImageDeleteItem[]; SpaceReclaimed: number }> {
    const { images, containers } = this.#parts;
    const candidates = await images.list(options.all ? {} : { filters: { dangling: ["true"] } });
    const deleted: ImageDeleteItem[] = [];
    let reclaimed = 0;
    for (const image of candidates) {
      if (containers.imageUser(image.Id)) continue;
      try {
        // By ID with force: every name goes with the image, as `image prune -a` does.
        deleted.push(...await images.remove(image.Id, { force: true }));
        reclaimed += Math.max(image.Size, 0);
      } catch (err) {
        this.#parts.log.warn("prune: image not removed", { id: image.Id, error: messageOf(err) });
      }
    }
    return { ImagesDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  async #sizeRw(container: Container): Promise<number> {
    try {
      const usage = await this.#parts.client.snapshots.usage(
        container.snapshotter,
        container.snapshotKey,
      );
      return usage.size;
    } catch {
      // No snapshot (a container half-created or being removed): nothing on disk.
      return 0;
    }
  }
}

/** Bytes of the files under `dir` (symlinks not followed); 0 when it cannot be read. */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) total += await directorySize(path);
    else if (entry.isFile) total += (await Deno.lstat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * Reads files of a container's root filesystem straight from its snapshot's directories, without
 * mounting it: the overlay's upper dir first, then each lower dir, as the kernel would resolve
 * them. Used for `/etc/passwd` and `/etc/group` when resolving the container's user.
 *
 * @module
 */
import type { Mount } from "./containerd.ts";

/** The directories a file may come from, topmost first. */
export function layerDirs(mounts: Mount[]): string[] {
  const dirs: string[] = [];
  for (const mount of mounts) {
    if (mount.type === "bind" || mount.type === "rbind") {
      dirs.unshift(mount.source);
      continue;
    }
    if (mount.type !== "overlay") continue;
    const upper = mount.options.find((o) => o.startsWith("upperdir="));
    const lower = mount.options.find((o) => o.startsWith("lowerdir="));
    if (upper) dirs.push(upper.slice("upperdir=".length));
    if (lower) dirs.push(...lower.slice("lowerdir=".length).split(":"));
  }
  return dirs;
}

/** The text of `path` in the filesystem `mounts` describe, or undefined when absent. */
export async function readRootfsFile(mounts: Mount[], path: string): Promise<string | undefined> {
  const relative = path.replace(/^\/+/, "");
  for (const dir of layerDirs(mounts)) {
    const full = `${dir}/${relative}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(full);
    } catch {
      continue;
    }
    // An overlay whiteout (a 0/0 character device) hides the file in lower layers.
    if (info.isCharDevice) return undefined;
    if (!info.isFile) return undefined;
    return await Deno.readTextFile(full);
  }
  return undefined;
}

/**
 * Whether `path` exists (as anything but a whiteout) in the filesystem `mounts` describe. A
 * symlinked directory of a lower layer (`/bin -> usr/bin`) is only followed within one layer,
 * which is enough for the shell checks it serves.
 */
export async function rootfsHas(mounts: Mount[], path: string): Promise<boolean> {
  const relative = path.replace(/^\/+/, "");
  for (const dir of layerDirs(mounts)) {
    try {
      const info = await Deno.lstat(`${dir}/${relative}`);
      return !info.isCharDevice;
    } catch {
      continue;
    }
  }
  return false;
}

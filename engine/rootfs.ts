/**
 * Reads files of a container's root filesystem straight from its snapshot's directories, without
 * mounting it: the overlay's upper dir first, then each lower dir, as the kernel would resolve
 * them. Used for `/etc/passwd` and `/etc/group` when resolving the container's user.
 *
 * @module
 */
import type { Mount } from "./containerd.ts";
import { systemError } from "./errors.ts";

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

/** What a path of the layered filesystem is, as the topmost layer that has it says. */
async function lstatLayered(dirs: string[], relative: string): Promise<Deno.FileInfo | undefined> {
  for (const dir of dirs) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(`${dir}/${relative}`);
    } catch {
      continue;
    }
    // A whiteout hides what the lower layers have.
    return info.isCharDevice && info.size === 0 ? undefined : info;
  }
  return undefined;
}

/** The target of the symlink at `relative` in the topmost layer that has it. */
async function readLinkLayered(dirs: string[], relative: string): Promise<string> {
  for (const dir of dirs) {
    try {
      return await Deno.readLink(`${dir}/${relative}`);
    } catch {
      continue;
    }
  }
  throw new Error(`${relative}: not a symlink`);
}

/**
 * Resolves `path` in the filesystem `mounts` describe as the kernel would inside the container:
 * every symlink on the way (`/sbin -> usr/sbin`, `/sbin/init -> /lib/systemd/systemd`) is
 * followed within the container's root, never the host's. Answers the resolved absolute path
 * and what it is, or undefined when it does not exist (or loops).
 */
export async function resolveRootfsPath(
  mounts: Mount[],
  path: string,
): Promise<{ path: string; info: Deno.FileInfo } | undefined> {
  const dirs = layerDirs(mounts);
  let pending = path.split("/").filter((part) => part !== "" && part !== ".");
  const resolved: string[] = [];
  let info: Deno.FileInfo | undefined;
  // Linux gives up after 40 symlinks (ELOOP).
  for (let links = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const relative = [...resolved, part].join("/");
    info = await lstatLayered(dirs, relative);
    if (!info) return undefined;
    if (!info.isSymlink) {
      resolved.push(part);
      continue;
    }
    if (++links > 40) return undefined;
    const target = await readLinkLayered(dirs, relative);
    if (target.startsWith("/")) resolved.length = 0;
    pending = [...target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
  }
  if (!info) return undefined;
  return { path: `/${resolved.join("/")}`, info };
}

/** A rootfs mounted by {@link mountRootfsAt}; disposing of it unmounts it. */
export interface MountedRootfs extends AsyncDisposable {
  /** Where it is mounted. */
  path: string;
}

/**
 * Mounts a snapshot's mounts (one overlay or bind) on a new directory under `parent`, private to
 * the daemon (nothing propagates to or from the host's mount tree). Dispose of the result to
 * unmount it (lazily and recursively, with anything mounted on top) and remove the directory.
 */
export async function mountRootfsAt(mounts: Mount[], parent: string): Promise<MountedRootfs> {
  const [mount] = mounts;
  if (!mount || mounts.length > 1) {
    throw systemError(`cannot mount a rootfs of ${mounts.length} mounts`);
  }
  await Deno.mkdir(parent, { recursive: true, mode: 0o700 });
  const path = await Deno.makeTempDir({ dir: parent, prefix: "rootfs-" });
  const release = async () => {
    await runMount("umount", ["-R", "-l", path]).catch(() => {});
    await Deno.remove(path).catch(() => {});
  };
  try {
    const options = mount.options.filter((o) => o !== "rbind" && o !== "bind");
    if (mount.type === "bind" || mount.type === "rbind") {
      await runMount("mount", ["--bind", mount.source, path]);
      if (options.includes("ro")) await runMount("mount", ["-o", "remount,bind,ro", path]);
    } else {
      await runMount("mount", ["-t", mount.type, "-o", options.join(","), mount.source, path]);
    }
    await runMount("mount", ["--make-rprivate", path]);
  } catch (err) {
    await release();
    throw err;
  }
  return { path, [Symbol.asyncDispose]: release };
}

async function runMount(command: string, args: string[]): Promise<void> {
  const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw systemError(`${command} ${args.join(" ")}: ${stderr || `exit ${output.code}`}`);
  }
}

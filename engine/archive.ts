/**
 * A container's files from the host: `docker cp` both ways (`GET`/`HEAD`/`PUT
 * /containers/{id}/archive`) and `docker diff` (`GET /containers/{id}/changes`).
 *
 * Where the files are: a running (or paused) container's whole view, binds included, is
 * `/proc/<pid>/root`. A created or exited one gets its snapshot mounted on a directory under the
 * daemon's home, with its binds mounted on top, for the length of one request; the mounts are
 * undone in a `finally`.
 *
 * Every path is resolved inside that root as if the root were `/` (moby's
 * `FollowSymlinkInScope`): `..` stops at the root and an absolute symlink target starts over
 * from the root, so nothing outside is read or written. Extraction refuses tar entries with
 * absolute names or `..`, symlink entries pointing above the extraction directory, and entries
 * that would be written through a symlink leading above the root.
 *
 * @module
 */
import type { Container } from "./container.ts";
import type { Containerd } from "./containerd.ts";
import { EngineError, forbidden, invalidArgument, notFound, notImplemented } from "./errors.ts";
import { mountRootfsAt } from "./rootfs.ts";
import { readTar, type TarEntryType, type TarInput, tarStream } from "./tar.ts";

/** Docker's `ContainerPathStat` (the `X-Docker-Container-Path-Stat` header, base64 JSON). */
export interface PathStat {
  name: string;
  size: number;
  /** Go's `os.FileMode`: permission bits plus type bits (directory is `1 << 31`). */
  mode: number;
  /** RFC 3339 with nanoseconds. */
  mtime: string;
  linkTarget: string;
}

/** One item of `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted. */
export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

/** What resolving a path inside a root found. */
export interface Resolved {
  /** The host path. */
  hostPath: string;
  /** The path inside the root, absolute and clean. */
  path: string;
  /** A symlink's `..` tried to climb above the root (and was stopped there). */
  escaped: boolean;
}

/** Options of {@link resolveInRoot}. */
export interface ResolveOptions {
  /** Follow the last component when it is a symlink; default true. */
  followFinal?: boolean;
}

const MAX_SYMLINKS = 255;

// Go's os.FileMode type bits.
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;
const MODE_DEVICE = 2 ** 26;
const MODE_NAMED_PIPE = 2 ** 25;
const MODE_SOCKET = 2 ** 24;
const MODE_SETUID = 2 ** 23;
const MODE_SETGID = 2 ** 22;
const MODE_CHAR_DEVICE = 2 ** 21;
const MODE_STICKY = 2 ** 20;

/** The path's components after lexical cleaning as an absolute path: `..` stops at `/`. */
export function cleanComponents(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out;
}

/**
 * Resolves `path` inside `root` with every symlink evaluated in the root's scope: an absolute
 * target restarts at the root, `..` never climbs above it. The components after the first
 * missing one are appended as they are.
 */
export async function resolveInRoot(
  root: string,
  path: string,
  options: ResolveOptions = {},
): Promise<Resolved> {
  const followFinal = options.followFinal ?? true;
  const pending = cleanComponents(path);
  const resolved: string[] = [];
  let escaped = false;
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (resolved.length === 0) escaped = true;
      else resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(part);
      continue;
    }
    const candidate = `${root}/${[...resolved, part].join("/")}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(candidate);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory)) {
        throw err;
      }
      missing = true;
      resolved.push(part);
      continue;
    }
    const last = pending.length === 0;
    if (!info.isSymlink || (last && !followFinal)) {
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw invalidArgument(`too many levels of symbolic links resolving ${path}`);
    }
    let target: string;
    try {
      target = await Deno.readLink(candidate);
    } catch (err) {
      // A magic link such as the container's /proc/self points nowhere seen from the daemon.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      missing = true;
      resolved.push(part);
      continue;
    }
    if (target.startsWith("/")) resolved.length = 0;
    pending.unshift(...target.split("/"));
  }
  const inside = resolved.join("/");
  return { hostPath: inside ? `${root}/${inside}` : root, path: `/${inside}`, escaped };
}

/** Go's `os.FileMode` of a file, from its lstat. */
export function goFileMode(info: Deno.FileInfo): number {
  const mode = info.mode ?? 0;
  let bits = mode & 0o777;
  if (mode & 0o4000) bits += MODE_SETUID;
  if (mode & 0o2000) bits += MODE_SETGID;
  if (mode & 0o1000) bits += MODE_STICKY;
  if (info.isDirectory) bits += MODE_DIR;
  else if (info.isSymlink) bits += MODE_SYMLINK;
  else if (info.isFifo) bits += MODE_NAMED_PIPE;
  else if (info.isSocket) bits += MODE_SOCKET;
  else if (info.isCharDevice) bits += MODE_DEVICE + MODE_CHAR_DEVICE;
  else if (info.isBlockDevice) bits += MODE_DEVICE;
  return bits;
}

/** Whether a Go `os.FileMode` is a directory. */
export function isDirMode(mode: number): boolean {
  return mode >= MODE_DIR;
}

/** Options of {@link ContainerFiles}. */
export interface ContainerFilesOptions {
  client: Containerd;
  /** Finds a container by name or ID (throws NotFound). */
  containers: { get(ref: string): Container };
  /** Where temporary mounts of stopped containers go. */
  tmpDir: string;
}

/** Options of {@link ContainerFiles.extract}. */
export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory and the other way round. */
  noOverwriteDirNonDir?: boolean;
}

/** A container's filesystem, mounted for one request. */
interface Mounted extends AsyncDisposable {
  root: string;
  container: Container;
}

/** Reads and writes containers' files (cp) and lists their changes (diff). */
export class ContainerFiles {
  readonly #client: Containerd;
  readonly #containers: { get(ref: string): Container };
  readonly #tmpDir: string;

  /** Files of the containers `options.containers` finds. */
  constructor(options: ContainerFilesOptions) {
    this.#client = options.client;
    this.#containers = options.containers;
    this.#tmpDir = options.tmpDir;
  }

  /** `HEAD /containers/{id}/archive`: the stat of `path`; 404 when it is missing. */
  async stat(ref: string, path: string): Promise<PathStat> {
    await using fs = await this.#mount(ref);
    return await statIn(fs.root, path, ref);
  }

  /**
   * `GET /containers/{id}/archive`: the stat of `path` and a tar stream of it, whose entries
   * are named after the last element of `path` (`.` for `dir/.`). The filesystem stays
   * mounted until the stream ends or is cancelled.
   */
  async archive(
    ref: string,
    path: string,
  ): Promise<{ stat: PathStat; body: ReadableStream<Uint8Array> }> {
    const fs = await this.#mount(ref);
    try {
      const stat = await statIn(fs.root, path, ref);
      const source = await resolveSource(fs.root, path);
      const entries = walkEntries(source.hostPath, source.rebase, fs);
      return { stat, body: tarStream(entries) };
    } catch (err) {
      await fs[Symbol.asyncDispose]();
      throw err;
    }
  }

  /**
   * `PUT /containers/{id}/archive`: extracts a tar stream (optionally compressed) into the
   * directory `path`, which must exist. Refuses entries that would land outside it.
   */
  async extract(
    ref: string,
    path: string,
    body: ReadableStream<Uint8Array>,
    options: ExtractOptions = {},
  ): Promise<void> {
    await using fs = await this.#mount(ref);
    const dest = await resolveInRoot(fs.root, path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(dest.hostPath);
    } catch {
      throw notFound(`Could not find the file ${path} in container ${ref}`);
    }
    if (!info.isDirectory) throw invalidArgument("extraction point is not a directory");
    if (fs.container.hostConfig.ReadonlyRootfs && !inBind(fs.container, dest.path)) {
      throw forbidden("container rootfs is marked read-only");
    }
    try {
      await extractTar(body, { root: fs.root, dest: dest.path, ...options });
    } catch (err) {
      if (err instanceof Error && "code" in err && err.code === "EROFS") {
        throw forbidden(`container rootfs is marked read-only: ${err.message}`, err);
      }
      throw err;
    }
  }

  /** `GET /containers/{id}/changes`: what differs from the image, from the overlay upperdir. */
  async changes(ref: string): Promise<Change[]> {
    const container = this.#containers.get(ref);
    const mounts = await this.#client.snapshots.mounts(
      container.snapshotter,
      container.snapshotKey,
    );
    const overlay = mounts.find((m) => m.type === "overlay");
    const upper = overlay?.options.find((o) => o.startsWith("upperdir="))?.slice(9);
    if (!overlay || !upper) {
      throw notImplemented(`changes are only known for overlay snapshots, not ${mounts[0]?.type}`);
    }
    const lowers = overlay.options.find((o) => o.startsWith("lowerdir="))?.slice(9).split(":") ??
      [];
    return await overlayChanges(upper, lowers);
  }

  /** The container's filesystem: its process's root, or its snapshot mounted for a while. */
  async #mount(ref: string): Promise<Mounted> {
    const container = this.#containers.get(ref);
    const running = container.state.Status === "running" || container.state.Status === "paused";
    if (running && container.state.Pid > 0) {
      const root = `/proc/${container.state.Pid}/root`;
      if (await Deno.stat(root).then(() => true, () => false)) {
        return { root, container, [Symbol.asyncDispose]: () => Promise.resolve() };
      }
    }
    const mounts = await this.#client.snapshots.mounts(
      container.snapshotter,
      container.snapshotKey,
    );
    const mounted = await mountRootfsAt(mounts, this.#tmpDir);
    try {
      await mountBinds(container, mounted.path);
    } catch (err) {
      await mounted[Symbol.asyncDispose]();
      throw err;
    }
    return {
      root: mounted.path,
      container,
      [Symbol.asyncDispose]: () => mounted[Symbol.asyncDispose](),
    };
  }
}

/** The container's bind mounts (`-v /host:/ctr`, `--mount type=bind`) as source, destination. */
function bindsOf(
  container: Container,
): Array<{ source: string; destination: string; ro: boolean }> {
  const binds = (container.hostConfig.Binds ?? []).flatMap((bind) => {
    const [source = "", destination = "", mode = ""] = bind.split(":");
    if (!source.startsWith("/") || !destination.startsWith("/")) return [];
    return [{ source, destination, ro: mode.split(",").includes("ro") }];
  });
  for (const mount of container.hostConfig.Mounts ?? []) {
    if (mount.Type !== "bind" || !mount.Source) continue;
    binds.push({ source: mount.Source, destination: mount.Target, ro: mount.ReadOnly === true });
  }
  // Parents before children, as the runtime mounts them.
  return binds.sort((a, b) =>
    cleanComponents(a.destination).length - cleanComponents(b.destination).length
  );
}

function inBind(container: Container, path: string): boolean {
  return bindsOf(container).some((bind) => {
    const destination = `/${cleanComponents(bind.destination).join("/")}`;
    return !bind.ro && (path === destination || path.startsWith(`${destination}/`));
  });
}

/** Mounts the container's binds on the mounted rootfs, creating mount points as runc would. */
async function mountBinds(container: Container, root: string): Promise<void> {
  for (const bind of bindsOf(container)) {
    let source: Deno.FileInfo;
    try {
      source = await Deno.stat(bind.source);
    } catch {
      continue; // A bind whose source is gone would fail the container's start too.
    }
    const target = await resolveInRoot(root, bind.destination);
    if (target.escaped) continue;
    try {
      await Deno.lstat(target.hostPath);
    } catch {
      if (source.isDirectory) await Deno.mkdir(target.hostPath, { recursive: true });
      else {
        await Deno.mkdir(parentOf(target.hostPath), { recursive: true });
        await Deno.writeFile(target.hostPath, new Uint8Array(0), { createNew: true });
      }
    }
    await run("mount", ["--rbind", bind.source, target.hostPath]);
    if (bind.ro) await run("mount", ["-o", "remount,bind,ro", target.hostPath]);
  }
}

async function statIn(root: string, path: string, ref: string): Promise<PathStat> {
  // The last element is not followed: a symlink is reported (and archived) as itself.
  const trailingSlash = path.endsWith("/");
  const resolved = await resolveInRoot(root, path, { followFinal: trailingSlash });
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(resolved.hostPath);
  } catch {
    throw notFound(`Could not find the file ${path} in container ${ref}`);
  }
  let linkTarget = "";
  if (info.isSymlink) linkTarget = (await resolveInRoot(root, path)).path;
  const components = cleanComponents(path);
  return {
    name: components.at(-1) ?? "/",
    size: info.size,
    mode: goFileMode(info),
    mtime: (info.mtime ?? new Date(0)).toISOString(),
    linkTarget,
  };
}

/**
 * What to archive for `path` and under which name: Docker names the entries after the last
 * element of the path as asked (not of where a symlink led), `.` for `dir/.`, `/` for the root.
 */
async function resolveSource(
  root: string,
  path: string,
): Promise<{ hostPath: string; rebase: string }> {
  const dotted = /(^|\/)\.$/.test(path);
  const trailingSlash = path.endsWith("/");
  const resolved = await resolveInRoot(root, path, { followFinal: trailingSlash || dotted });
  const components = cleanComponents(path);
  const rebase = dotted ? "." : components.at(-1) ?? "/";
  return { hostPath: resolved.hostPath, rebase };
}

/** The tar entries of `hostPath` and what is below it, named from `name`. */
async function* walkEntries(
  hostPath: string,
  name: string,
  fs: AsyncDisposable,
): AsyncGenerator<TarInput> {
  try {
    yield* entriesOf(hostPath, name);
  } finally {
    await fs[Symbol.asyncDispose]();
  }
}

/**
 * The tar entries of `hostPath` (not following it if it is a symlink) and of what is below
 * it, named from `name` (`/` names the children `/child`); file bodies are opened as read.
 */
export async function* entriesOf(hostPath: string, name: string): AsyncGenerator<TarInput> {
  const info = await Deno.lstat(hostPath);
  const header = {
    name,
    mode: (info.mode ?? 0) & 0o7777,
    mtime: info.mtime ?? new Date(0),
    uid: info.uid ?? 0,
    gid: info.gid ?? 0,
  };
  if (info.isDirectory) {
    yield { header: { ...header, type: "directory" } };
    const children: string[] = [];
    for await (const entry of Deno.readDir(hostPath)) children.push(entry.name);
    children.sort();
    const prefix = name === "/" ? "/" : `${name}/`;
    for (const child of children) yield* entriesOf(`${hostPath}/${child}`, prefix + child);
    return;
  }
  if (info.isSymlink) {
    yield { header: { ...header, type: "symlink", linkname: await Deno.readLink(hostPath) } };
    return;
  }
  if (info.isFile) {
    const file = await Deno.open(hostPath);
    yield { header: { ...header, type: "file", size: info.size }, body: file.readable };
    return;
  }
  const rdev = info.rdev ?? 0;
  const device = { devmajor: Math.floor(rdev / 256) & 0xfff, devminor: rdev & 0xff };
  if (info.isCharDevice) yield { header: { ...header, ...device, type: "chardev" } };
  else if (info.isBlockDevice) yield { header: { ...header, ...device, type: "blockdev" } };
  else if (info.isFifo) yield { header: { ...header, type: "fifo" } };
  // Sockets cannot be archived; Docker skips them too.
}

/** Options of {@link extractTar}. */
export interface ExtractTarOptions extends ExtractOptions {
  /** The root everything must stay inside. */
  root: string;
  /** The directory to extract into, as a path inside the root. */
  dest: string;
  /** Give files the owners the archive names; default true (the CLI's copies leave it). */
  chown?: boolean;
  /** Renames each entry before it is extracted (the CLI's rebase of `cp` archives). */
  rename?: (name: string) => string;
}

/**
 * Extracts a tar stream into `options.dest` inside `options.root`. Each entry's parent is
 * resolved inside the root; an entry is refused (InvalidArgument, before anything of it is
 * written) when its name is absolute or has `..`, when it is a symlink whose relative target
 * climbs above the destination, or when its parent resolves through a symlink above the root.
 * An existing final symlink is replaced, never written through.
 */
export async function extractTar(
  body: ReadableStream<Uint8Array>,
  options: ExtractTarOptions,
): Promise<void> {
  const { root } = options;
  const dest = cleanComponents(options.dest);
  const dirTimes: Array<{ path: string; mtime: Date }> = [];
  for await (const entry of readTar(body)) {
    if (options.rename) {
      entry.name = options.rename(entry.name);
      if (entry.type === "hardlink") entry.linkname = options.rename(entry.linkname);
    }
    const parts = entryComponents(entry.name);
    if (parts.length === 0) continue; // `.`: the destination itself stays as it is.
    if (entry.type === "symlink") checkSymlink(entry.name, entry.linkname);
    const parent = await resolveInRoot(root, [...dest, ...parts.slice(0, -1)].join("/"));
    if (parent.escaped) {
      throw invalidArgument(
        `invalid tar entry ${JSON.stringify(entry.name)}: a symlink leads outside the container`,
      );
    }
    await Deno.mkdir(parent.hostPath, { recursive: true });
    const target = `${parent.hostPath}/${parts.at(-1)}`;
    const existing = await Deno.lstat(target).catch(() => undefined);
    if (existing) {
      const isDir = entry.type === "directory";
      if (existing.isDirectory && isDir) {
        await Deno.chmod(target, entry.mode & 0o7777);
        dirTimes.push({ path: target, mtime: entry.mtime });
        continue;
      }
      if (options.noOverwriteDirNonDir && existing.isDirectory !== isDir) {
        throw invalidArgument(
          existing.isDirectory
            ? `cannot overwrite directory "${parent.path}/${
              parts.at(-1)
            }" with non-directory "${entry.name}"`
            : `cannot overwrite non-directory "${parent.path}/${
              parts.at(-1)
            }" with directory "${entry.name}"`,
        );
      }
      await Deno.remove(target, { recursive: true });
    }
    await createEntry(target, entry.type, {
      mode: entry.mode & 0o7777,
      body: entry.body,
      linkname: entry.linkname,
      device: [entry.devmajor, entry.devminor],
      link: async () => {
        const linked = await resolveInRoot(
          root,
          [...dest, ...entryComponents(entry.linkname)].join("/"),
          { followFinal: false },
        );
        if (linked.escaped) throw invalidArgument(`invalid hardlink ${entry.linkname}`);
        return linked.hostPath;
      },
    });
    if (entry.type !== "symlink") {
      if (options.chown !== false) await Deno.chown(target, entry.uid, entry.gid).catch(() => {});
      if (entry.type !== "hardlink") await Deno.chmod(target, entry.mode & 0o7777);
    }
    if (entry.type === "directory") dirTimes.push({ path: target, mtime: entry.mtime });
    else if (entry.type !== "symlink") await Deno.utime(target, entry.mtime, entry.mtime);
  }
  // Directories last: extracting their children changed their times.
  for (const { path, mtime } of dirTimes.reverse()) await Deno.utime(path, mtime, mtime);
}

/** The components of a tar entry name; absolute names and `..` are refused. */
function entryComponents(name: string): string[] {
  if (name.startsWith("/")) {
    throw invalidArgument(`invalid tar entry ${JSON.stringify(name)}: absolute path`);
  }
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw invalidArgument(
      `invalid tar entry ${JSON.stringify(name)}: it would be written outside the destination`,
    );
  }
  return parts;
}

/**
 * Docker's breakout rule for an image layer's entry (moby `UnpackLayer`): its name, a hard
 * link's target, and a symlink's target taken from the link's directory may not climb above
 * the layer's root. Absolute names are refused too (Docker would read them from the root; no
 * tar tool writes them unless told to). Absolute link targets are read from the root.
 * containerd's applier would only clamp such entries into the root; refusing them up front
 * keeps an image from being made of a hostile archive at all.
 *
 * @throws InvalidArgument naming the entry.
 */
export function checkLayerEntry(entry: { name: string; type: string; linkname: string }): void {
  const climbs = (parts: string[]) => {
    let level = 0;
    for (const part of parts) {
      if (part === "" || part === ".") continue;
      level += part === ".." ? -1 : 1;
      if (level < 0) return true;
    }
    return false;
  };
  const name = entry.name.split("/");
  if (entry.name.startsWith("/")) {
    throw invalidArgument(`invalid tar entry ${JSON.stringify(entry.name)}: absolute path`);
  }
  if (climbs(name)) {
    throw invalidArgument(`${JSON.stringify(entry.name)} is outside of the layer's root`);
  }
  const link = entry.linkname.split("/");
  const dir = name.filter((p) => p !== "" && p !== ".").slice(0, -1);
  if (
    (entry.type === "hardlink" && climbs(link)) ||
    (entry.type === "symlink" && climbs([...dir, ...link]))
  ) {
    throw invalidArgument(
      `invalid ${entry.type} ${JSON.stringify(entry.name)} -> ${JSON.stringify(entry.linkname)}`,
    );
  }
}

/** Docker's rule: a relative symlink may not point above the directory it is extracted to. */
function checkSymlink(name: string, target: string): void {
  if (target.startsWith("/")) return; // Absolute targets are resolved in the container's root.
  const depth = name.split("/").filter((p) => p !== "" && p !== ".").length - 1;
  let level = depth;
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    level += part === ".." ? -1 : 1;
    if (level < 0) {
      throw invalidArgument(
        `invalid symlink ${JSON.stringify(name)} -> ${JSON.stringify(target)}: ` +
          "it points outside the destination",
      );
    }
  }
}

async function createEntry(
  target: string,
  type: TarEntryType,
  entry: {
    mode: number;
    body: ReadableStream<Uint8Array>;
    linkname: string;
    device: [number, number];
    link: () => Promise<string>;
  },
): Promise<void> {
  switch (type) {
    case "directory":
      await Deno.mkdir(target, { mode: entry.mode });
      return;
    case "file":
    case "other": {
      // createNew (O_EXCL) never follows a symlink someone put there meanwhile.
      const file = await Deno.open(target, { write: true, createNew: true, mode: entry.mode });
      await entry.body.pipeTo(file.writable);
      return;
    }
    case "symlink":
      await Deno.symlink(entry.linkname, target);
      return;
    case "hardlink":
      await Deno.link(await entry.link(), target);
      return;
    case "fifo":
      await run("mknod", [target, "p"]);
      return;
    case "chardev":
    case "blockdev":
      await run("mknod", [
        target,
        type === "chardev" ? "c" : "b",
        String(entry.device[0]),
        String(entry.device[1]),
      ]);
      return;
  }
}

/**
 * The changes an overlay upper dir holds against its lower dirs: a whiteout (character device
 * 0/0) is a deletion; anything else is a modification when the path exists below, else an
 * addition. Sorted by path, as Docker lists them.
 */
export async function overlayChanges(upper: string, lowers: string[]): Promise<Change[]> {
  const changes: Change[] = [];
  const inLower = async (path: string) => {
    for (const lower of lowers) {
      const info = await Deno.lstat(`${lower}${path}`).catch(() => undefined);
      if (!info) continue;
      return !(info.isCharDevice && (info.rdev ?? 0) === 0);
    }
    return false;
  };
  async function walk(dir: string, prefix: string): Promise<void> {
    const names: string[] = [];
    // The container (or a `cp` into it) may remove what is being listed: gone is unchanged.
    const gone = (err: unknown) => {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw err;
    };
    try {
      for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    } catch (err) {
      gone(err);
    }
    for (const name of names.sort()) {
      const path = `${prefix}/${name}`;
      const info = await Deno.lstat(`${dir}/${name}`).catch(gone);
      if (!info) continue;
      if (info.isCharDevice && (info.rdev ?? 0) === 0) {
        changes.push({ Path: path, Kind: 2 });
        continue;
      }
      changes.push({ Path: path, Kind: (await inLower(path)) ? 0 : 1 });
      if (info.isDirectory) await walk(`${dir}/${name}`, path);
    }
  }
  await walk(upper, "");
  return changes.sort((a, b) => a.Path.localeCompare(b.Path));
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

async function run(command: string, args: string[]): Promise<void> {
  const result = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    const message = new TextDecoder().decode(result.stderr).trim();
    throw new EngineError("System", `${command} ${args.join(" ")}: ${message}`);
  }
}

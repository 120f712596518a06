/**
 * `pouch cp`: copies files between a container and the local filesystem with Docker's path
 * rules, over `HEAD`/`GET`/`PUT /containers/{id}/archive`.
 *
 * ```
 * pouch cp web:/etc/hosts .        # a file into the current directory
 * pouch cp web:/var/log/. ./logs   # the directory's contents into ./logs
 * pouch cp ./conf web:/etc/app     # a directory into the container
 * ```
 *
 * @module
 */
import { entriesOf, extractTar, isDirMode, type PathStat } from "../engine/archive.ts";
import { tarStream } from "../engine/tar.ts";
import { ApiError } from "./client.ts";
import { type Command, type CommandContext, err } from "./command.ts";
import { UsageError } from "./flags.ts";
import { humanSize } from "./format.ts";
import { sourceToStream } from "./stream.ts";

const enc = encodeURIComponent;

/** One side of a copy: a local path, or a path in a container. */
export interface CopyEndpoint {
  container?: string;
  path: string;
}

/** Docker's `splitCpArg`: `C:PATH` names a container unless the argument is a local path. */
export function splitCpArg(arg: string): CopyEndpoint {
  if (arg.startsWith("/") || arg.startsWith(".")) return { path: arg };
  const colon = arg.indexOf(":");
  if (colon <= 0) return { path: arg };
  return { container: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

/** Docker's `SplitPathDirEntry`: `a/b/` -> `a`, `b`; `a/b/.` -> `a/b`, `.`. */
export function splitPathDirEntry(path: string): { dir: string; base: string } {
  const clean = cleanPath(path);
  const full = /(^|\/)\.$/.test(path) && clean !== "." ? `${clean}/.` : clean;
  const slash = full.lastIndexOf("/");
  if (slash < 0) return { dir: ".", base: full };
  if (full === "/") return { dir: "/", base: "/" };
  return { dir: full.slice(0, slash) || "/", base: full.slice(slash + 1) };
}

/** Go's `filepath.Clean`. */
export function cleanPath(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out.at(-1) !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined || ".";
}

/** What is known of a copy's source and destination (Docker's `CopyInfo`). */
export interface CopyInfo {
  path: string;
  exists: boolean;
  isDir: boolean;
  /** The name the source's entries take instead of the last element of `path`. */
  rebaseName?: string;
}

/** Where to extract and how to rename the archive's top entry (`from` -> `to`). */
export interface CopyPlan {
  dir: string;
  rename?: { from: string; to: string };
}

/** Docker's `PrepareArchiveCopy`: the directory to extract into and the rename it needs. */
export function prepareArchiveCopy(src: CopyInfo, dst: CopyInfo): CopyPlan {
  const { dir: dstDir, base: dstBase } = splitPathDirEntry(dst.path);
  const srcBase = src.rebaseName || splitPathDirEntry(src.path).base;
  if (dst.exists && dst.isDir) return { dir: dst.path };
  if (dst.exists && src.isDir) throw new Error("cannot copy a directory to a file");
  if (!dst.exists && !src.isDir && /(\/|\/\.)$/.test(dst.path)) {
    throw new Error(`no such directory: ${dst.path}`);
  }
  return { dir: dstDir, rename: { from: srcBase, to: dstBase } };
}

/** Docker's `RebaseArchiveEntries` for one name: the first `from` becomes `to`. */
export function rebaseName(name: string, rename: { from: string; to: string }): string {
  const from = rename.from === "/" ? "" : rename.from;
  if (name === from || name.startsWith(`${from}/`) || from === "") {
    return rename.to + name.slice(from.length);
  }
  return name;
}

function decodeStat(header: string | null): PathStat | undefined {
  if (!header) return undefined;
  const binary = atob(header);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes)) as PathStat;
}

async function statPath(
  ctx: CommandContext,
  container: string,
  path: string,
): Promise<PathStat | undefined> {
  try {
    const res = await ctx.client.request("HEAD", `/containers/${enc(container)}/archive`, {
      query: { path },
    });
    await res.body.cancel();
    return decodeStat(res.headers.get("X-Docker-Container-Path-Stat"));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    // A HEAD answer has no message: a missing path is fine (the copy creates it), a missing
    // container is not.
    await ctx.client.call("GET", `/containers/${enc(container)}/json`);
    return undefined;
  }
}

async function localInfo(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function copyFromContainer(
  ctx: CommandContext,
  src: { container: string; path: string },
  dstPath: string,
  options: { followLink: boolean; quiet: boolean },
): Promise<void> {
  let srcPath = src.path;
  let rebase: string | undefined;
  if (options.followLink) {
    const stat = await statPath(ctx, src.container, srcPath);
    if (stat?.linkTarget) {
      rebase = splitPathDirEntry(srcPath).base;
      srcPath = stat.linkTarget;
    }
  }
  const res = await ctx.client.request("GET", `/containers/${enc(src.container)}/archive`, {
    query: { path: srcPath },
  });
  if (dstPath === "-") {
    for await (const chunk of res.body) await ctx.stdout.write(chunk);
    return;
  }
  const stat = decodeStat(res.headers.get("X-Docker-Container-Path-Stat"));
  const srcInfo: CopyInfo = {
    path: srcPath,
    exists: true,
    isDir: stat ? isDirMode(stat.mode) : false,
    rebaseName: rebase,
  };
  const dst = await localInfo(dstPath);
  if (!dst) {
    const parent = splitPathDirEntry(dstPath).dir;
    if (!(await localInfo(parent))?.isDirectory) {
      await res.body.cancel();
      throw new Error(`destination directory ${parent} does not exist`);
    }
  }
  let plan: CopyPlan;
  try {
    plan = prepareArchiveCopy(srcInfo, {
      path: dstPath,
      exists: dst !== undefined,
      isDir: dst?.isDirectory ?? false,
    });
  } catch (error) {
    await res.body.cancel();
    throw error;
  }
  const rename = plan.rename;
  let bytes = 0;
  const counted = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        bytes += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  await extractTar(counted, {
    root: await Deno.realPath(plan.dir),
    dest: "/",
    chown: false,
    noOverwriteDirNonDir: true,
    rename: rename ? (name) => rebaseName(name, rename) : undefined,
  });
  if (!options.quiet) await err(ctx, `Successfully copied ${humanSize(bytes)} to ${dstPath}\n`);
}

async function copyToContainer(
  ctx: CommandContext,
  srcPath: string,
  dst: { container: string; path: string },
  options: { followLink: boolean; quiet: boolean; copyUIDGID: boolean },
): Promise<void> {
  let dstPath = dst.path;
  let stat = await statPath(ctx, dst.container, dstPath);
  if (stat?.linkTarget) {
    dstPath = stat.linkTarget;
    stat = await statPath(ctx, dst.container, dstPath);
  }
  const dstInfo: CopyInfo = {
    path: dstPath,
    exists: stat !== undefined,
    isDir: stat ? isDirMode(stat.mode) : false,
  };
  let body: ReadableStream<Uint8Array>;
  let target: string;
  let size = 0;
  if (srcPath === "-") {
    if (!dstInfo.isDir) {
      throw new Error(`destination "${dst.container}:${dst.path}" must be a directory`);
    }
    body = sourceToStream(ctx.stdin);
    target = dstPath;
  } else {
    const info = options.followLink ? await localInfo(srcPath) : await Deno.lstat(srcPath)
      .catch(() => undefined);
    if (!info) throw new Error(`lstat ${srcPath}: no such file or directory`);
    const plan = prepareArchiveCopy(
      { path: srcPath, exists: true, isDir: info.isDirectory },
      dstInfo,
    );
    const { base } = splitPathDirEntry(srcPath);
    const name = plan.rename ? rebaseName(base, plan.rename) : base;
    const source = options.followLink ? await Deno.realPath(srcPath) : srcPath;
    size = info.isFile ? info.size : 0;
    body = tarStream(entriesOf(source, name));
    target = plan.dir;
  }
  await ctx.client.call("PUT", `/containers/${enc(dst.container)}/archive`, {
    query: {
      path: target,
      noOverwriteDirNonDir: true,
      copyUIDGID: options.copyUIDGID || undefined,
    },
    body,
    contentType: "application/x-tar",
  });
  if (!options.quiet && srcPath !== "-") {
    await err(ctx, `Successfully copied ${humanSize(size)} to ${dst.container}:${dst.path}\n`);
  }
}

/** `pouch cp`. */
export const cpCommand: Command = {
  name: "cp",
  usage:
    "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tpouch cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
  description: "Copy files/folders between a container and the local filesystem",
  flags: [
    {
      name: "archive",
      short: "a",
      kind: "bool",
      description: "Archive mode (copy all uid/gid information)",
    },
    {
      name: "follow-link",
      short: "L",
      kind: "bool",
      description: "Always follow symbol link in SRC_PATH",
    },
    {
      name: "quiet",
      short: "q",
      kind: "bool",
      description: "Suppress progress output during copy",
    },
  ],
  minArgs: 2,
  maxArgs: 2,
  async run(ctx, flags) {
    const [srcArg, dstArg] = flags.args as [string, string];
    const src = splitCpArg(srcArg);
    const dst = splitCpArg(dstArg);
    if (src.container !== undefined && dst.container !== undefined) {
      throw new UsageError("copying between containers is not supported");
    }
    if (src.container === undefined && dst.container === undefined) {
      throw new UsageError("must specify at least one container source");
    }
    const options = { followLink: flags.bool("follow-link"), quiet: flags.bool("quiet") };
    if (src.container !== undefined) {
      if (src.path === "") throw new UsageError("source can not be empty");
      await copyFromContainer(ctx, { container: src.container, path: src.path }, dst.path, options);
    } else {
      if (dst.path === "") throw new UsageError("destination can not be empty");
      await copyToContainer(ctx, src.path, { container: dst.container!, path: dst.path }, {
        ...options,
        copyUIDGID: flags.bool("archive"),
      });
    }
    return 0;
  },
};

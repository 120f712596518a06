/**
 * Named network namespaces that outlive their processes: a namespace is made by `unshare
 * --net=FILE` (util-linux), which bind-mounts the new namespace on FILE, and lives until FILE
 * is unmounted and no process is left in it. The daemon keeps one per container under
 * `<home>/netns/<id>`, so a container's interfaces and address survive restarts of its task and
 * of the daemon.
 *
 * @module
 */
import { systemError } from "../engine/errors.ts";

const decoder = new TextDecoder();

/** Runs a command; throws a SystemError with its output when it fails. */
export async function run(command: string, args: string[]): Promise<string> {
  let output;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (err) {
    throw systemError(`cannot run ${command}: ${(err as Error).message}`, err);
  }
  if (!output.success) {
    const text = (decoder.decode(output.stderr) + decoder.decode(output.stdout)).trim();
    throw systemError(`${command} ${args.join(" ")} failed: ${text}`);
  }
  return decoder.decode(output.stdout);
}

/** The mount points of network namespaces (nsfs mounts) under `dir`, from mountinfo. */
export async function mountedNetns(dir: string): Promise<Set<string>> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  const points = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    const point = unescapeMountPath(fields[4] ?? "");
    if (separator > 0 && fields[separator + 1] === "nsfs" && point.startsWith(`${dir}/`)) {
      points.add(point);
    }
  }
  return points;
}

/**
 * Whether `path` holds a mounted network namespace: a mount on it shows another device than its
 * directory's (the nsfs). Two stats rather than a read of mountinfo, which on a host with many
 * containers is large and read on every container's create, start and removal.
 */
export async function isNetnsMounted(path: string): Promise<boolean> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  try {
    const [file, parent] = await Promise.all([Deno.stat(path), Deno.stat(dir)]);
    return file.dev !== parent.dev;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Creates a persistent network namespace at `path` with its loopback up (what runc would do for
 * a namespace of its own). An existing mounted one is kept.
 */
export async function createNetns(path: string): Promise<void> {
  if (await isNetnsMounted(path)) return;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o711 });
  await Deno.writeFile(path, new Uint8Array(), { mode: 0o444 });
  try {
    // The command runs inside the new namespace: one process creates it and brings lo up.
    await run("unshare", [`--net=${path}`, "ip", "link", "set", "lo", "up"]);
  } catch (err) {
    await removeNetns(path).catch(() => {});
    throw err;
  }
}

/** Unmounts and deletes the namespace at `path`; a missing one is not an error. */
export async function removeNetns(path: string): Promise<void> {
  if (await isNetnsMounted(path)) detachMount(path);
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

/** Runs `args` inside the namespace at `path` (`nsenter --net`). */
export function inNetns(path: string, args: string[]): Promise<string> {
  return run("nsenter", [`--net=${path}`, "--", ...args]);
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

const MNT_DETACH = 2;
const EINVAL = 22;
const ENOENT = 2;
const LIBC_SYMBOLS = {
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;
let libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] | undefined;

/**
 * Lazily unmounts `path` (umount2 with MNT_DETACH: a process still entering the namespace must
 * not make this fail). A system call rather than `umount -l`, whose process costs milliseconds
 * on every removal. Not mounted (EINVAL) or gone (ENOENT) is fine.
 */
function detachMount(path: string): void {
  libc ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  // Synchronous on this thread, so errno is still the call's when read.
  if (libc.umount2(new TextEncoder().encode(`${path}\0`), MNT_DETACH) === 0) return;
  const location = libc.__errno_location();
  const errno = location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
  if (errno === EINVAL || errno === ENOENT) return;
  throw systemError(`unmounting the network namespace ${path} failed: errno ${errno}`);
}

/**
 * Named network namespaces that outlive their processes: a namespace is made by `unshare
 * --net=FILE` (util-linux), which bind-mounts the new namespace on FILE, and lives until FILE
 * is unmounted and no process is left in it. The daemon keeps one per container under
 * `<home>/netns/<id>`, so a container's interfaces and address survive restarts of its task and
 * of the daemon.
 *
 * @module
 */
import { cString, errno } from "../engine/_libc.ts";
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
    createNetnsHere(path);
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
const MS_BIND = 4096;
const CLONE_NEWNET = 0x40000000;
const O_RDONLY_CLOEXEC = 0o2000000;
const AF_INET = 2;
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 1;
const EINVAL = 22;
const ENOENT = 2;
const LIBC_SYMBOLS = {
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  mount: { parameters: ["buffer", "buffer", "pointer", "u64", "pointer"], result: "i32" },
  unshare: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // open and ioctl are variadic in C; on x86_64 and aarch64 Linux an integer or pointer passed
  // variadically travels exactly like a fixed one.
  open: { parameters: ["buffer", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;
let libc: Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] | undefined;

function lib(): Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  return libc;
}

/**
 * Makes a new network namespace, bind-mounted on the existing file `path`, with lo up: what
 * `unshare --net=PATH ip link set lo up` does, without its two processes (milliseconds on every
 * container create). This thread enters the new namespace for a moment and goes back to its
 * own before returning; the calls are synchronous, so no other code of the daemon (which could
 * open a socket) runs in between.
 */
function createNetnsHere(path: string): void {
  const c = lib();
  const own = c.open(cString("/proc/thread-self/ns/net"), O_RDONLY_CLOEXEC);
  if (own < 0) throw systemError(`opening this thread's network namespace: errno ${errno()}`);
  try {
    if (c.unshare(CLONE_NEWNET) !== 0) {
      throw systemError(`unshare(CLONE_NEWNET) failed: errno ${errno()}`);
    }
    let failure: Error | undefined;
    try {
      if (
        c.mount(cString("/proc/thread-self/ns/net"), cString(path), null, BigInt(MS_BIND), null) !==
          0
      ) {
        throw systemError(`bind-mounting the network namespace on ${path}: errno ${errno()}`);
      }
      loopbackUp();
    } catch (err) {
      failure = err as Error;
    } finally {
      if (c.setns(own, CLONE_NEWNET) !== 0) {
        // Cannot happen with a namespace fd we hold; if it did, this thread's sockets would be
        // in the container's namespace: better to stop than to serve from there.
        // deno-lint-ignore no-console
        console.error(`pouch: cannot return to the daemon's network namespace: errno ${errno()}`);
        Deno.exit(70);
      }
    }
    if (failure) {
      detachMount(path);
      throw failure;
    }
  } finally {
    c.close(own);
  }
}

/** Sets IFF_UP on `lo` in this thread's network namespace (SIOCGIFFLAGS, SIOCSIFFLAGS). */
function loopbackUp(): void {
  const c = lib();
  const fd = c.socket(AF_INET, SOCK_DGRAM_CLOEXEC, 0);
  if (fd < 0) throw systemError(`socket() in the new network namespace: errno ${errno()}`);
  try {
    // struct ifreq: 16 bytes of name, then the union whose first member is the flags (short).
    const ifreq = new Uint8Array(40);
    ifreq.set(new TextEncoder().encode("lo"));
    if (c.ioctl(fd, BigInt(SIOCGIFFLAGS), ifreq) !== 0) {
      throw systemError(`SIOCGIFFLAGS on lo: errno ${errno()}`);
    }
    const view = new DataView(ifreq.buffer);
    view.setInt16(16, view.getInt16(16, true) | IFF_UP, true);
    if (c.ioctl(fd, BigInt(SIOCSIFFLAGS), ifreq) !== 0) {
      throw systemError(`setting lo up: errno ${errno()}`);
    }
  } finally {
    c.close(fd);
  }
}

/**
 * Lazily unmounts `path` (umount2 with MNT_DETACH: a process still entering the namespace must
 * not make this fail). A system call rather than `umount -l`, whose process costs milliseconds
 * on every removal. Not mounted (EINVAL) or gone (ENOENT) is fine.
 */
function detachMount(path: string): void {
  // Synchronous on this thread, so errno is still the call's when read.
  if (lib().umount2(cString(path), MNT_DETACH) === 0) return;
  const code = errno();
  if (code === EINVAL || code === ENOENT) return;
  throw systemError(`unmounting the network namespace ${path} failed: errno ${code}`);
}

/**
 * LXCFS: containers that see their own memory, CPUs and uptime in `/proc`.
 *
 * lxcfs is a FUSE filesystem mounted at its home directory (`--lxcfs-home`, default
 * `/var/lib/lxcfs`) whose `proc/meminfo`, `proc/cpuinfo`, ... answer for the cgroup of the process
 * that reads them. A container created with `HostConfig.EnableLxcfs` (or with the daemon's
 * `--enable-lxcfs`) gets those files bind-mounted over its own `/proc` files.
 *
 * **Supervision.** The daemon starts `lxcfs HOME` in the foreground lazily: on the first create
 * of a container that uses it (with `--enable-lxcfs`, that is every container, so the first
 * create pays the ~100 ms). When HOME already holds a `fuse.lxcfs` mount that answers (an lxcfs
 * under its own systemd unit, as Alibaba ran it), the daemon uses it and never starts, restarts
 * or stops it. An lxcfs the daemon started is restarted with backoff when it dies, after its
 * stale mount (`Transport endpoint is not connected`) is lazily unmounted.
 *
 * The pid of an lxcfs the daemon starts is kept in a pid file (`<propagationDir>.pid`): a daemon
 * killed with SIGKILL leaves its lxcfs running and mounted, and the next daemon adopts it from
 * that file (it checks the process is that lxcfs on that home), watches it, and restarts and
 * remounts it like its own when it dies.
 *
 * On daemon stop, the lxcfs the daemon started is stopped and its mount removed: a daemon that
 * is gone cannot remount it later, and an lxcfs left behind would be one nobody supervises.
 * Running containers that use it then read `Transport endpoint is not connected` from those
 * files until the daemon is back (its next lxcfs start remounts them). Who needs lxcfs to
 * outlive the daemon runs it under its own unit and adds `ExecStartPost=pouch remount-lxcfs`.
 *
 * **Remounting without restarting containers.** A bind mount of a FUSE file keeps pointing at
 * the connection it was made on, so after lxcfs restarts the containers' binds are dead. Two
 * pieces make them repairable from the host:
 *
 * 1. Propagation: the daemon keeps a directory of its own ({@link LxcfsOptions.propagationDir},
 *    `<home>/lxcfs`) bind-mounted onto itself and made `shared`, and binds the live lxcfs mount
 *    at `<propagationDir>/lxcfs`. Every lxcfs container gets that directory at
 *    {@link LXCFS_IN_CONTAINER} with `rslave` propagation, so when the daemon swaps the bind for
 *    the new lxcfs mount, the new one appears inside every container.
 * 2. Re-binding: `nsenter --mount=/proc/PID/ns/mnt --root=/ --wd=/proc/PID/root` enters the
 *    container's mount namespace while keeping the host's root (so the host's `/bin/sh`, `mount`
 *    and `umount` run, not the image's) and a working directory at the container's root. Relative
 *    paths (`proc/meminfo`, `.pouch/lxcfs/lxcfs/proc/meminfo`) then resolve inside the container
 *    and the mount happens in its namespace; absolute paths would resolve on the host, so
 *    `mount`/`umount` run with `--no-canonicalize`. No tool of the image is needed.
 *
 * @module
 */
import { messageOf, unavailable } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { OciMount, SpecOpt } from "./spec.ts";

/** The lxcfs binary run without `--lxcfs`. */
export const DEFAULT_LXCFS = "/usr/bin/lxcfs";

/** lxcfs's mount point without `--lxcfs-home`. */
export const DEFAULT_LXCFS_HOME = "/var/lib/lxcfs";

/** Where a container sees the daemon's propagation directory (the live lxcfs is under it). */
export const LXCFS_IN_CONTAINER = "/.pouch/lxcfs";

/** The `/proc` files lxcfs virtualises that containers get (those lxcfs provides). */
export const LXCFS_PROC_FILES: readonly string[] = [
  "meminfo",
  "cpuinfo",
  "stat",
  "uptime",
  "swaps",
  "diskstats",
  "loadavg",
];

/** The `/sys` files lxcfs virtualises that containers get (when lxcfs provides them). */
export const LXCFS_SYS_FILES: readonly string[] = ["devices/system/cpu/online"];

/** Restart backoff: doubles from the first delay up to the last. */
const RESTART_DELAY_MS = { first: 250, max: 10_000 };
/** How long a started lxcfs has to show its mount. */
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const ADOPTED_POLL_MS = 500;

/** The command line of process `pid`, or undefined when it is gone (or a zombie). */
async function processArgs(pid: number): Promise<string[] | undefined> {
  if (!await processAlive(pid)) return undefined;
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => undefined);
  return cmdline?.split("\0").filter((arg) => arg !== "");
}

/** Whether process `pid` exists and is not a zombie. */
async function processAlive(pid: number): Promise<boolean> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => undefined);
  if (stat === undefined) return false;
  // The state follows the command name in parentheses, which may itself hold spaces.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** SIGTERM, then SIGKILL after {@link STOP_TIMEOUT_MS}, for a process that is not our child. */
async function stopProcess(pid: number): Promise<void> {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    try {
      Deno.kill(pid, signal);
    } catch {
      return; // Gone already.
    }
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!await processAlive(pid)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** One file to bind: its path relative to lxcfs's home and to the container's root. */
export interface LxcfsFile {
  /** `proc/meminfo`, `sys/devices/system/cpu/online`. */
  path: string;
}

/** Options of {@link LxcfsManager}. */
export interface LxcfsOptions {
  /** The lxcfs binary ({@link DEFAULT_LXCFS}). */
  binary: string;
  /** lxcfs's mount point ({@link DEFAULT_LXCFS_HOME}). */
  home: string;
  /** The daemon's shared directory that containers bind (see the module doc). */
  propagationDir: string;
  log: Logger;
  /**
   * The running containers that use lxcfs, with their init's pid: remounted after lxcfs
   * restarts and by {@link LxcfsManager.remountAll}.
   */
  containers: () => Array<{ id: string; pid: number }>;
  /** Where the pid of the lxcfs the daemon starts is kept; default `<propagationDir>.pid`. */
  pidFile?: string;
}

/** What {@link LxcfsManager.remountAll} did. */
export interface RemountResult {
  /** IDs of the containers remounted. */
  remounted: string[];
  /** Containers that could not be remounted, with why. */
  failed: Array<{ id: string; error: string }>;
}

/** Unescapes a mountinfo path field (`\040` is a space). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** The mounts at `path` in `mountinfo`, bottom first: their filesystem types. */
export function mountTypesAt(mountinfo: string, path: string): string[] {
  const types: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    if (separator < 0 || fields.length < 5) continue;
    if (unescapeMountPath(fields[4]!) === path) types.push(fields[separator + 1] ?? "");
  }
  return types;
}

/** Whether the topmost mount at `path` is an lxcfs FUSE mount. */
export async function isLxcfsMount(path: string): Promise<boolean> {
  const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
  return mountTypesAt(mountinfo, path).at(-1) === "fuse.lxcfs";
}

/** Whether the lxcfs mounted at `home` answers (a dead one fails with ENOTCONN). */
async function answers(home: string): Promise<boolean> {
  try {
    await Deno.stat(`${home}/proc/meminfo`);
    return true;
  } catch {
    return false;
  }
}

async function run(program: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" })
      .output();
    const decoder = new TextDecoder();
    return {
      ok: out.success,
      output: (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim(),
    };
  } catch (err) {
    return { ok: false, output: messageOf(err) };
  }
}

/** Lazily unmounts every mount at `path` (a dead FUSE mount refuses a plain umount). */
async function unmountAll(path: string): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
    if (mountTypesAt(mountinfo, path).length === 0) return;
    const result = await run("umount", ["-l", path]);
    if (!result.ok) return;
  }
}

/**
 * The spec mounts of an lxcfs container: the propagation directory at
 * {@link LXCFS_IN_CONTAINER} (`rslave`: later lxcfs mounts propagate in) and each of `files`
 * from lxcfs's `home` over the container's own.
 */
export function lxcfsMounts(home: string, propagationDir: string, files: LxcfsFile[]): OciMount[] {
  return [
    {
      destination: LXCFS_IN_CONTAINER,
      type: "bind",
      source: propagationDir,
      options: ["rbind", "rslave", "ro", "nosuid", "nodev", "noexec"],
    },
    ...files.map((file): OciMount => ({
      destination: `/${file.path}`,
      type: "bind",
      source: `${home}/${file.path}`,
      options: ["bind", "ro", "nosuid", "nodev", "noexec"],
    })),
  ];
}

/**
 * The shell program, run in the container's mount namespace with its root as working
 * directory, that replaces each bind by one of the live lxcfs (see the module doc).
 */
export function remountScript(files: LxcfsFile[]): string {
  const inside = LXCFS_IN_CONTAINER.slice(1);
  const lines = ["rc=0"];
  for (const file of files) {
    // Relative paths: resolved from the container's root, in its mount namespace.
    const target = file.path;
    const source = `${inside}/lxcfs/${file.path}`;
    lines.push(
      `umount -l --no-canonicalize ${target} 2>/dev/null`,
      `mount --no-canonicalize --bind ${source} ${target} || rc=1`,
    );
  }
  lines.push(`exit $rc`);
  return lines.join("\n");
}

/** Starts (or adopts), supervises and remounts lxcfs; see the module doc. */
export class LxcfsManager {
  readonly #options: LxcfsOptions;
  #ready: Promise<void> | undefined;
  #files: LxcfsFile[] = [];
  /** The lxcfs we run; undefined when we use an external one. */
  #child: Deno.ChildProcess | undefined;
  /** The child that mounted and is watched for unexpected exits. */
  #supervised: Deno.ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  #restartDelay = RESTART_DELAY_MS.first;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #restarting: Promise<void> | undefined;
  /** An lxcfs a crashed daemon started, adopted from the pid file; watched by polling. */
  #adopted: number | undefined;
  #adoptedWatch: ReturnType<typeof setInterval> | undefined;

  /** A manager for `options`; nothing starts until {@link ensure}. */
  constructor(options: LxcfsOptions) {
    this.#options = options;
  }

  get #pidFile(): string {
    return this.#options.pidFile ?? `${this.#options.propagationDir}.pid`;
  }

  /** lxcfs's mount point. */
  get home(): string {
    return this.#options.home;
  }

  /** The pid of the lxcfs the daemon runs; 0 when it uses an external one or none. */
  get pid(): number {
    return this.#child?.pid ?? this.#adopted ?? 0;
  }

  /** The files the containers get (known once {@link ensure} resolved). */
  get files(): LxcfsFile[] {
    return [...this.#files];
  }

  /**
   * Makes sure lxcfs is mounted at its home and bound into the propagation directory: adopts a
   * live external mount, or starts our own. Concurrent callers share one attempt.
   *
   * @throws Unavailable when lxcfs cannot be started.
   */
  ensure(): Promise<void> {
    this.#ready ??= this.#setUp().catch((err) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #setUp(): Promise<void> {
    const { home } = this.#options;
    await Deno.mkdir(home, { recursive: true });
    if (await isLxcfsMount(home) && await answers(home)) {
      const orphan = await this.#orphan();
      if (orphan) {
        this.#adopt(orphan);
      } else {
        this.#options.log.info("using the lxcfs already mounted", { home });
      }
    } else {
      await unmountAll(home);
      await this.#spawn();
    }
    await this.#bindIntoPropagation();
    this.#files = await this.#availableFiles();
  }

  /** Spawns `lxcfs HOME` and waits until its mount answers. */
  async #spawn(): Promise<void> {
    const { binary, home, log } = this.#options;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(binary, {
        args: [home],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      throw unavailable(`cannot run lxcfs ${binary}: ${messageOf(err)}`, err);
    }
    this.#child = child;
    const drain = (stream: ReadableStream<Uint8Array>) =>
      stream.pipeThrough(new TextDecoderStream()).pipeTo(
        new WritableStream({
          write: (text) => {
            for (const line of text.split("\n")) {
              if (line.trim() !== "") log.debug("lxcfs", { line });
            }
          },
        }),
      ).catch(() => {});
    const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
    let exitCode: number | undefined;
    this.#exited = child.status.then(async (status) => {
      exitCode = status.code;
      await drained;
      this.#onExit(child, status);
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await isLxcfsMount(home) && await answers(home))) {
      if (exitCode !== undefined) {
        throw unavailable(`lxcfs ${binary} exited with code ${exitCode} before mounting ${home}`);
      }
      if (Date.now() >= deadline) {
        await this.#kill(child);
        throw unavailable(`lxcfs ${binary} did not mount ${home} in ${READY_TIMEOUT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.#supervised = child;
    await Deno.writeTextFile(this.#pidFile, `${child.pid}\n`);
    log.info("lxcfs started", { pid: child.pid, home });
  }

  /** The pid of an lxcfs an earlier daemon started on our home and left running, if any. */
  async #orphan(): Promise<number | undefined> {
    const text = await Deno.readTextFile(this.#pidFile).catch(() => "");
    const pid = Number(text.trim());
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    const args = await processArgs(pid);
    if (!args || args[0] !== this.#options.binary || !args.includes(this.#options.home)) {
      return undefined;
    }
    return pid;
  }

  /** Supervises an orphaned lxcfs: restarted (and containers remounted) when it dies. */
  #adopt(pid: number): void {
    this.#adopted = pid;
    this.#options.log.info("adopted the lxcfs a previous daemon started", { pid });
    this.#adoptedWatch = setInterval(async () => {
      if (this.#adopted !== pid || await processAlive(pid)) return;
      clearInterval(this.#adoptedWatch);
      this.#adoptedWatch = undefined;
      this.#adopted = undefined;
      if (this.#stopping) return;
      this.#options.log.warn("lxcfs exited: restarting it", { pid });
      this.#scheduleRestart();
    }, ADOPTED_POLL_MS);
  }

  /** Makes the propagation dir a shared mount and binds the live lxcfs mount under it. */
  async #bindIntoPropagation(): Promise<void> {
    const { home, propagationDir } = this.#options;
    const target = `${propagationDir}/lxcfs`;
    // The old bind (of a dead lxcfs) goes first: its unmount propagates to the containers too,
    // and a dead mount point answers ENOTCONN, even to mkdir.
    await unmountAll(target);
    await Deno.mkdir(target, { recursive: true });
    const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
    if (mountTypesAt(mountinfo, propagationDir).length === 0) {
      await this.#mount(["--bind", propagationDir, propagationDir]);
      await this.#mount(["--make-shared", propagationDir]);
    }
    await this.#mount(["--bind", home, target]);
  }

  async #mount(args: string[]): Promise<void> {
    const result = await run("mount", args);
    if (!result.ok) throw unavailable(`mount ${args.join(" ")} failed: ${result.output}`);
  }

  async #availableFiles(): Promise<LxcfsFile[]> {
    const files: LxcfsFile[] = [];
    for (const name of LXCFS_PROC_FILES) files.push({ path: `proc/${name}` });
    for (const name of LXCFS_SYS_FILES) files.push({ path: `sys/${name}` });
    const present: LxcfsFile[] = [];
    for (const file of files) {
      const ok = await Deno.stat(`${this.#options.home}/${file.path}`).then(
        (info) => info.isFile,
        () => false,
      );
      if (ok) present.push(file);
    }
    return present;
  }

  /** The spec step: lxcfs mounts for containers whose `HostConfig.EnableLxcfs` is set. */
  specOpt(): SpecOpt {
    return (spec, input) => {
      if (!input.hostConfig.EnableLxcfs) return;
      const mounts = lxcfsMounts(this.#options.home, this.#options.propagationDir, this.#files);
      spec.mounts.push(...mounts);
      // runc binds /dev/null over masked paths and remounts read-only ones: keep ours out.
      const ours = new Set(mounts.map((mount) => mount.destination));
      spec.linux.maskedPaths = spec.linux.maskedPaths.filter((path) => !ours.has(path));
      spec.linux.readonlyPaths = spec.linux.readonlyPaths.filter((path) => !ours.has(path));
    };
  }

  /**
   * Re-binds the lxcfs files in every running lxcfs container (after an lxcfs restart, or on
   * demand for `pouch remount-lxcfs`), first re-binding the live lxcfs into the propagation
   * directory. Does not restart any container.
   */
  async remountAll(): Promise<RemountResult> {
    await this.ensure();
    if (!await answers(this.#options.home)) {
      throw unavailable(`lxcfs at ${this.#options.home} does not answer`);
    }
    await this.#bindIntoPropagation();
    const result: RemountResult = { remounted: [], failed: [] };
    for (const container of this.#options.containers()) {
      try {
        await this.remount(container.pid);
        result.remounted.push(container.id);
      } catch (err) {
        result.failed.push({ id: container.id, error: messageOf(err) });
      }
    }
    return result;
  }

  /** Re-binds the lxcfs files in the mount namespace of process `pid` (a container's init). */
  async remount(pid: number): Promise<void> {
    const result = await run("nsenter", [
      `--mount=/proc/${pid}/ns/mnt`,
      "--root=/",
      `--wd=/proc/${pid}/root`,
      "--",
      "/bin/sh",
      "-c",
      remountScript(this.#files),
    ]);
    if (!result.ok) throw unavailable(`remounting lxcfs in pid ${pid} failed: ${result.output}`);
  }

  #onExit(child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    // A child that never mounted failed its start, which reports (and retries) itself.
    if (this.#stopping || child !== this.#supervised) return;
    this.#options.log.warn("lxcfs exited: restarting it", {
      pid: child.pid,
      code: status.code,
      signal: status.signal ?? undefined,
    });
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(delay * 2, RESTART_DELAY_MS.max);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restarting = this.#restart().finally(() => (this.#restarting = undefined));
    }, delay);
  }

  async #restart(): Promise<void> {
    if (this.#stopping) return;
    const { home, log } = this.#options;
    try {
      // The dead mount answers ENOTCONN and blocks a new mount at the same place.
      await unmountAll(home);
      await this.#spawn();
    } catch (err) {
      log.error("lxcfs restart failed: retrying", { error: messageOf(err) });
      if (!this.#stopping) this.#scheduleRestart();
      return;
    }
    try {
      this.#restartDelay = RESTART_DELAY_MS.first;
      const result = await this.remountAll();
      log.info("lxcfs restarted: containers remounted", {
        remounted: result.remounted.length,
        failed: result.failed.length,
      });
      for (const failure of result.failed) {
        log.warn("lxcfs remount failed", { id: failure.id.slice(0, 12), error: failure.error });
      }
    } catch (err) {
      log.error("remounting lxcfs after its restart failed", { error: messageOf(err) });
    }
  }

  async #kill(child: Deno.ChildProcess): Promise<void> {
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      try {
        child.kill(signal);
      } catch {
        break; // Exited already.
      }
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((resolve) => {
          const timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
          child.status.finally(() => clearTimeout(timer));
        }),
      ]);
      if (exited) break;
    }
  }

  /**
   * Stops the lxcfs the daemon started (an adopted one is left alone) and unbinds it from the
   * propagation directory (whose own shared mount stays for the next daemon); containers using
   * it read errors until the next daemon remounts them.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer);
    if (this.#adoptedWatch !== undefined) clearInterval(this.#adoptedWatch);
    await this.#restarting;
    const { home, propagationDir } = this.#options;
    // The shared self-bind of the propagation dir stays: the containers' copies are its slaves,
    // and the next daemon must bind the next lxcfs into the same peer group to reach them.
    if (this.#ready) await unmountAll(`${propagationDir}/lxcfs`);
    const child = this.#child;
    if (child) {
      await this.#kill(child);
      await this.#exited;
      // lxcfs unmounts on SIGTERM; after SIGKILL the dead mount stays.
      await unmountAll(home);
    }
    const adopted = this.#adopted;
    if (adopted !== undefined) {
      this.#adopted = undefined;
      await stopProcess(adopted);
      await unmountAll(home);
    }
    if (child || adopted !== undefined) await Deno.remove(this.#pidFile).catch(() => {});
  }
}

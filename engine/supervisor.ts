/**
 * The containerd supervisor: pouch starts its own containerd (unless told to use an existing one)
 * with a generated config, waits until it answers, pipes its log into the daemon's logger and
 * restarts it when it dies unexpectedly. Stopping containerd leaves the containers' shims running
 * (only containerd's own PID is signalled), as containerd itself intends.
 *
 * @module
 */

import { connectContainerd } from "./containerd.ts";
import { invalidArgument, messageOf, unavailable } from "./errors.ts";
import { sleep } from "./sleep.ts";

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** The containerd binary; `containerd` from `PATH` when omitted. */
  path?: string;
  /** containerd's persistent root (content, snapshots, metadata). */
  root: string;
  /** containerd's state directory (sockets, task bundles). */
  state: string;
  /** The gRPC socket path; the ttrpc socket is `${address}.ttrpc`. */
  address: string;
  /** Where the generated config is written. */
  configPath: string;
  /** containerd logs at debug level. */
  debug?: boolean;
  /** Receives containerd's log, one line at a time. Without it the log is discarded. */
  log?: (line: string) => void;
  /** Called after containerd was restarted and answers again. */
  onRestart?: () => void;
  /** How long to wait for containerd to answer after a (re)start, in ms; 20 s by default. */
  readyTimeoutMs?: number;
}

/** A running containerd under supervision. */
export interface ContainerdProcess {
  /** The PID of the current containerd process (changes when it is restarted). */
  readonly pid: number;
  /** The gRPC socket path. */
  readonly address: string;
  /** Stops supervising, sends SIGTERM, and SIGKILL if containerd has not exited in 10 s. */
  stop(): Promise<void>;
}

/** Unix socket paths (with their NUL) must fit in `sockaddr_un.sun_path`. */
const MAX_SOCKET_PATH_BYTES = 107;
const STOP_TIMEOUT_MS = 10_000;
/** Restart backoff: doubles from the first delay up to the last. */
const RESTART_DELAY_MS = { first: 250, max: 10_000 };
/** Give up after this many restarts in a row that did not stay up for `STABLE_MS`. */
const MAX_QUICK_RESTARTS = 5;
const STABLE_MS = 60_000;

/**
 * Plugins pouch does not use: containerd's own CRI (pouch serves CRI itself), snapshotters other
 * than overlayfs and native, and tracing.
 */
const DISABLED_PLUGINS = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
];

/**
 * Starts containerd with a config generated from `options` and resolves once it answers the
 * Version RPC; rejects (after killing it) if it does not within the ready timeout.
 */
export async function startContainerd(options: ContainerdOptions): Promise<ContainerdProcess> {
  for (const socket of [options.address, `${options.address}.ttrpc`]) {
    if (new TextEncoder().encode(socket).length > MAX_SOCKET_PATH_BYTES) {
      throw invalidArgument(
        `containerd socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${socket}`,
      );
    }
  }
  await Deno.mkdir(options.root, { recursive: true, mode: 0o711 });
  await Deno.mkdir(options.state, { recursive: true, mode: 0o711 });
  await Deno.mkdir(dirname(options.address), { recursive: true });
  await Deno.mkdir(dirname(options.configPath), { recursive: true });
  await Deno.writeTextFile(options.configPath, containerdConfig(options));
  await stopStale(options);

  const supervisor = new Supervisor(options);
  await supervisor.start();
  return supervisor;
}

/** Where the supervisor records the pid of the containerd it runs. */
/** The directory part of `path`, as node:path's `dirname` has it for the paths used here. */
function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  if (slash < 0) return ".";
  return path.slice(0, slash) || "/";
}

function pidFileOf(options: Pick<ContainerdOptions, "configPath">): string {
  return `${dirname(options.configPath)}/containerd.pid`;
}

/**
 * Stops a containerd left running on this config by a daemon that crashed (a SIGKILLed daemon
 * does not take its child with it); a second containerd on the same root would wait forever for
 * the database lock while the old one kept answering on the socket.
 */
async function stopStale(options: Pick<ContainerdOptions, "configPath">): Promise<void> {
  const pid = Number((await Deno.readTextFile(pidFileOf(options)).catch(() => "")).trim());
  if (!(pid > 0)) return;
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  if (!cmdline.includes("containerd") || !cmdline.includes(options.configPath)) return;
  const alive = () => Deno.stat(`/proc/${pid}`).then(() => true, () => false);
  for (const [signal, waitMs] of [["SIGTERM", 10_000], ["SIGKILL", 5_000]] as const) {
    try {
      Deno.kill(pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      if (!(await alive())) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The containerd config (version 2 TOML) for `options`. */
export function containerdConfig(
  options: Pick<ContainerdOptions, "root" | "state" | "address" | "debug">,
): string {
  const quote = (value: string) => JSON.stringify(value);
  return [
    "version = 2",
    `root = ${quote(options.root)}`,
    `state = ${quote(options.state)}`,
    `disabled_plugins = [${DISABLED_PLUGINS.map(quote).join(", ")}]`,
    "",
    "[grpc]",
    `  address = ${quote(options.address)}`,
    "",
    "[ttrpc]",
    `  address = ${quote(`${options.address}.ttrpc`)}`,
    "",
    "[debug]",
    `  level = ${quote(options.debug ? "debug" : "info")}`,
    "",
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${quote(`${options.root}/opt`)}`,
    "",
  ].join("\n");
}

/** Runs containerd and restarts it when it exits while not being stopped. */
class Supervisor implements ContainerdProcess {
  readonly address: string;
  #options: ContainerdOptions;
  #child: Deno.ChildProcess | undefined;
  /** The child that answered and is watched for unexpected exits. */
  #supervised: Deno.ChildProcess | undefined;
  /** Settles when the current child has exited and its log is drained. */
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  #startedAt = 0;
  #quickRestarts = 0;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #restarting: Promise<void> | undefined;

  constructor(options: ContainerdOptions) {
    this.#options = options;
    this.address = options.address;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  /** Spawns containerd and waits until it answers; kills it if it does not. */
  async start(): Promise<void> {
    const binary = this.#options.path ?? "containerd";
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(binary, {
        args: ["--config", this.#options.configPath],
        stdin: "null",
        stdout: "null",
        stderr: this.#options.log ? "piped" : "null",
      }).spawn();
    } catch (err) {
      throw unavailable(`cannot run ${binary}: ${messageOf(err)}`, err);
    }
    this.#child = child;
    this.#startedAt = Date.now();
    await Deno.writeTextFile(pidFileOf(this.#options), `${child.pid}\n`);
    const logged = this.#options.log ? pipeLines(child.stderr, this.#options.log) : undefined;
    let exitCode: number | undefined;
    this.#exited = child.status.then(async (status) => {
      exitCode = status.code;
      await logged;
      this.#onExit(child, status);
    });

    try {
      await waitUntilAnswering(this.address, {
        timeoutMs: this.#options.readyTimeoutMs ?? 20_000,
        exited: () => exitCode !== undefined,
      });
      this.#supervised = child;
    } catch (err) {
      await this.#terminate(child);
      const reason = exitCode !== undefined ? `exited with code ${exitCode}` : messageOf(err);
      throw unavailable(`containerd did not start (${reason})`, err);
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#restarting?.catch(() => {});
    if (this.#child) await this.#terminate(this.#child);
  }

  /** SIGTERM, then SIGKILL after the stop timeout; resolves when the child has exited. */
  async #terminate(child: Deno.ChildProcess): Promise<void> {
    signal(child, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
    });
    const exited = await Promise.race([this.#exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (exited === true) signal(child, "SIGKILL");
    await this.#exited;
  }

  #onExit(child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    if (this.#stopping || child !== this.#supervised) return;
    this.#options.log?.(
      `containerd (pid ${child.pid}) exited unexpectedly with code ${status.code}`,
    );
    this.#scheduleRestart();
  }

  /** Restarts after a backoff that grows with each restart in a row that did not last. */
  #scheduleRestart(): void {
    if (this.#stopping) return;
    if (Date.now() - this.#startedAt >= STABLE_MS) this.#quickRestarts = 0;
    if (this.#quickRestarts >= MAX_QUICK_RESTARTS) {
      this.#options.log?.(`containerd failed ${MAX_QUICK_RESTARTS} times in a row; giving up`);
      return;
    }
    const delay = Math.min(RESTART_DELAY_MS.first * 2 ** this.#quickRestarts, RESTART_DELAY_MS.max);
    this.#quickRestarts++;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restarting = this.#restart();
    }, delay);
  }

  async #restart(): Promise<void> {
    if (this.#stopping) return;
    try {
      await this.start();
    } catch (err) {
      this.#options.log?.(`restarting containerd failed: ${messageOf(err)}`);
      this.#scheduleRestart();
      return;
    }
    this.#options.log?.(`containerd restarted (pid ${this.pid})`);
    this.#options.onRestart?.();
  }
}

/** Sends `name` to `child`, ignoring a child that has already exited. */
function signal(child: Deno.ChildProcess, name: Deno.Signal): void {
  try {
    child.kill(name);
  } catch {
    // Already exited.
  }
}

/** Polls containerd's Version RPC until it answers, the timeout passes or the process exits. */
async function waitUntilAnswering(
  address: string,
  options: { timeoutMs: number; exited: () => boolean },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown = new Error("socket not created");
  while (Date.now() < deadline && !options.exited()) {
    if (await exists(address)) {
      // A fresh client each attempt: grpc-js would otherwise back off its reconnects.
      const client = connectContainerd(address);
      try {
        await client.version();
        return;
      } catch (err) {
        lastError = err;
      } finally {
        client.close();
      }
    }
    await sleep(50);
  }
  if (options.exited()) throw unavailable("containerd exited", lastError);
  throw unavailable(`containerd did not answer within ${options.timeoutMs} ms`, lastError);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads `stream` as UTF-8 and hands each line (without its newline) to `log`. */
async function pipeLines(stream: ReadableStream<Uint8Array>, log: (line: string) => void) {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (pending + text).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) log(line);
  }
  if (pending !== "") log(pending);
}

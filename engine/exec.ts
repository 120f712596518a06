/**
 * The exec manager: extra processes in running containers (`docker exec`), on containerd's
 * `tasks.exec`. An exec is created, started once, and inspected until some time after it
 * exited; like Docker, records live in memory only and a daemon restart forgets them.
 *
 * ```
 *   (create) ──> created ──start──> running ──exit──> exited ──5 min──> (forgotten)
 * ```
 *
 * Each exec has its own FIFOs in the container's `io/` directory (`exec-<id>-stdout` ...),
 * read by an {@link OutputPump} into a hub that only the attached client listens to: exec
 * output never goes to the container's json-file log. The client's connection is closed only
 * after the exit code is recorded, because clients read it right after the stream ends.
 *
 * @module
 */
import type { Containerd } from "./containerd.ts";
import type { Container, ContainerManager } from "./container.ts";
import { parseDetachKeys } from "./detach_keys.ts";
import { conflict, EngineError, invalidArgument, messageOf, notFound } from "./errors.ts";
import type { Logger } from "./log.ts";
import { frame } from "./logs.ts";
import { randomId } from "./names.ts";
import { readRootfsFile } from "./rootfs.ts";
import {
  type OciCapabilities,
  type OciProcess,
  type OciSpec,
  parseCapabilityMask,
} from "./spec.ts";
import {
  type FifoSet,
  makeFifos,
  OutputHub,
  OutputPump,
  removeFifos,
  StdinWriter,
} from "./stdio.ts";
import { type ResolvedUser, resolveUser } from "./user.ts";

/** Docker's `ExecConfig`: the body of `POST /containers/{id}/exec`. */
export interface ExecConfig {
  User?: string;
  Privileged?: boolean;
  Tty?: boolean;
  /** `[height, width]` of the exec's terminal at start (API 1.42+). */
  ConsoleSize?: [number, number] | null;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  /** Docker's format, e.g. `ctrl-p,ctrl-q`. */
  DetachKeys?: string;
  Env?: string[] | null;
  WorkingDir?: string;
  Cmd?: string[] | null;
}

/** An {@link ExecConfig} checked and with its defaults filled in. */
export interface ValidExecConfig {
  user: string;
  privileged: boolean;
  tty: boolean;
  consoleSize?: { height: number; width: number };
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  detachKeys: string;
  env: string[];
  workingDir: string;
  cmd: string[];
}

/** Docker's `GET /exec/{id}/json` answer. */
export interface ExecInspect {
  ID: string;
  Running: boolean;
  ExitCode: number | null;
  ProcessConfig: {
    tty: boolean;
    entrypoint: string;
    arguments: string[];
    privileged: boolean;
    user: string;
  };
  OpenStdin: boolean;
  OpenStderr: boolean;
  OpenStdout: boolean;
  CanRemove: boolean;
  ContainerID: string;
  DetachKeys: string;
  Pid: number;
}

/** How a client takes part in an exec's start. */
export interface ExecStartOptions {
  /** Start without a client: output is discarded. */
  detach?: boolean;
  /** Receives output framed for the client (raw with a TTY, multiplexed otherwise). */
  write?: (bytes: Uint8Array) => void;
  /** The exec ended (its exit code is recorded) or failed to start: close the connection. */
  close?: () => void;
}

/** A started exec, as its client drives it. */
export interface ExecSession {
  /** Sends client input to the exec's stdin; `null` closes it (present with AttachStdin). */
  input?: (chunk: Uint8Array | null) => void;
  /** Stops sending output to this client; the process goes on. */
  detach: () => void;
  /** Resolves once the process runs; rejects when it could not start (127, 126, ...). */
  started: Promise<void>;
}

/** Options of {@link ExecManager}. */
export interface ExecManagerOptions {
  client: Containerd;
  containers: Pick<ContainerManager, "get" | "dir" | "emitEvent">;
  log: Logger;
  /**
   * The daemon's bounding capability set, which `Privileged` grants (as create does for
   * `--privileged`); read from `/proc/self/status` when omitted.
   */
  capabilities?: string[];
  /** How long an exited exec stays inspectable; 5 minutes (Docker's GC period). */
  retainMs?: number;
}

interface ExecRecord {
  id: string;
  containerId: string;
  config: ValidExecConfig;
  status: "created" | "starting" | "running" | "exited";
  exitCode: number | null;
  pid: number;
  hub: OutputHub;
  stdin?: StdinWriter;
  /** Close callbacks of attached clients, called once the exit is recorded. */
  closers: Set<() => void>;
  started?: Promise<void>;
  abort?: AbortController;
  forget?: ReturnType<typeof setTimeout>;
}

const DEFAULT_RETAIN_MS = 5 * 60 * 1000;
/** How long output may keep flowing after the exit (a background child holding stdout). */
const OUTPUT_SETTLE_MS = 2000;

/** Creates, starts, inspects and resizes exec processes. */
export class ExecManager {
  readonly #client: Containerd;
  readonly #containers: Pick<ContainerManager, "get" | "dir" | "emitEvent">;
  readonly #log: Logger;
  readonly #retainMs: number;
  #capabilities: string[] | undefined;
  readonly #execs = new Map<string, ExecRecord>();
  #closing = false;

  /** A manager of the execs of `options.containers`. */
  constructor(options: ExecManagerOptions) {
    this.#client = options.client;
    this.#containers = options.containers;
    this.#log = options.log;
    this.#capabilities = options.capabilities;
    this.#retainMs = options.retainMs ?? DEFAULT_RETAIN_MS;
  }

  /**
   * Creates an exec in a running container; answers its ID.
   *
   * @throws Conflict `Container X is not running` or `... is paused, unpause the container
   *   before exec`; InvalidArgument for a bad config.
   */
  create(ref: string, config: ExecConfig): { Id: string } {
    const valid = validateExecConfig(config);
    const container = this.#runningContainer(ref);
    this.#forgetStale();
    const id = randomId();
    this.#execs.set(id, {
      id,
      containerId: container.id,
      config: valid,
      status: "created",
      exitCode: null,
      pid: 0,
      hub: new OutputHub(),
      closers: new Set(),
    });
    this.#event(container.id, `exec_create: ${valid.cmd.join(" ")}`, { execID: id });
    return { Id: id };
  }

  /** Docker's ExecInspect of exec `id`; throws NotFound. */
  inspect(id: string): ExecInspect {
    const exec = this.#get(id);
    const [entrypoint = "", ...args] = exec.config.cmd;
    return {
      ID: exec.id,
      Running: exec.status === "running" || exec.status === "starting",
      ExitCode: exec.exitCode,
      ProcessConfig: {
        tty: exec.config.tty,
        entrypoint,
        arguments: args,
        privileged: exec.config.privileged,
        user: exec.config.user,
      },
      OpenStdin: exec.config.attachStdin,
      OpenStderr: exec.config.attachStderr,
      OpenStdout: exec.config.attachStdout,
      CanRemove: false,
      ContainerID: exec.containerId,
      DetachKeys: exec.config.detachKeys,
      Pid: exec.pid,
    };
  }

  /** The IDs of a container's execs that have not exited, as inspect's `ExecIDs` lists them. */
  idsOf(containerId: string): string[] {
    return [...this.#execs.values()]
      .filter((exec) => exec.containerId === containerId && exec.status !== "exited")
      .map((exec) => exec.id);
  }

  /**
   * Checks that exec `id` may start: it exists (NotFound), has not started (Conflict) and its
   * container runs (Conflict). The API calls it before it takes over the connection, so that
   * these errors get their HTTP status.
   */
  checkStart(id: string): ExecInspect {
    const exec = this.#get(id);
    if (exec.status === "exited") throw conflict(`Error: Exec command ${id} has already run`);
    if (exec.status !== "created") throw conflict(`Error: Exec command ${id} is already running`);
    this.#runningContainer(exec.containerId);
    return this.inspect(id);
  }

  /**
   * Starts exec `id` with the client of `options`. Output reaches `options.write` from the
   * start; `options.close` is called after the exit code is recorded. A start that fails
   * records Docker's exit code (127 for a missing executable, 126 when it cannot be invoked),
   * writes the error to the client and closes it, and rejects `started`.
   */
  start(id: string, options: ExecStartOptions = {}): ExecSession {
    this.checkStart(id);
    const exec = this.#get(id);
    exec.status = "starting";
    const tty = exec.config.tty;
    let unsubscribe = () => {};
    const write = options.write;
    if (!options.detach && write) {
      unsubscribe = exec.hub.subscribe({
        data: (stream, chunk) => {
          if (stream === "stdout" && !exec.config.attachStdout) return;
          if (stream === "stderr" && !exec.config.attachStderr) return;
          write(tty ? chunk : frame(stream === "stdout" ? 1 : 2, chunk));
        },
        // The connection closes after the exit is recorded, not when the output ends.
        end: () => {},
      });
    }
    const close = options.close;
    if (!options.detach && close) exec.closers.add(close);
    exec.started = this.#launch(exec).catch((err) => {
      const text = new TextEncoder().encode(`${messageOf(err)}\r\n`);
      write?.(tty ? text : frame(1, text));
      this.#finish(exec);
      throw err;
    });

    let input: ExecSession["input"];
    if (exec.config.attachStdin && !options.detach) {
      // Input that arrives while the process starts waits for it, in order.
      let queue: Promise<void> = exec.started.catch(() => {});
      input = (chunk) => {
        queue = queue.then(async () => {
          const stdin = exec.stdin;
          if (!stdin) return;
          if (chunk !== null) {
            await stdin.write(chunk);
            return;
          }
          // The client half-closed: the process reads EOF (`echo hi | exec -i C cat`).
          await stdin.close();
          await this.#client.tasks.closeIO(exec.containerId, { execId: exec.id, stdin: true })
            .catch(() => {});
        });
      };
    }
    return {
      input,
      detach: () => {
        unsubscribe();
        if (close) exec.closers.delete(close);
      },
      started: exec.started,
    };
  }

  /** Sets the size of a TTY exec's terminal; waits for a starting exec to run. */
  async resize(id: string, size: { width: number; height: number }): Promise<void> {
    const exec = this.#get(id);
    if (exec.status === "starting") await exec.started?.catch(() => {});
    if (exec.status !== "running") throw conflict(`Exec ${id} is not running`);
    if (!exec.config.tty) return;
    await this.#client.tasks.resizePty(exec.containerId, { ...size, execId: exec.id });
  }

  /** Stops watching execs (their processes keep running) and forgets them. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const exec of this.#execs.values()) {
      exec.abort?.abort();
      clearTimeout(exec.forget);
      await exec.stdin?.close();
      for (const close of exec.closers) close();
      exec.closers.clear();
    }
    this.#execs.clear();
  }

  // --- helpers -------------------------------------------------------------------------------

  #get(id: string): ExecRecord {
    const exec = this.#execs.get(id);
    if (!exec) throw notFound(`No such exec instance: ${id}`);
    return exec;
  }

  #runningContainer(ref: string): Container {
    const container = this.#containers.get(ref);
    const status = container.state.Status;
    if (status === "paused") {
      throw conflict(`Container ${container.id} is paused, unpause the container before exec`);
    }
    if (status !== "running") throw conflict(`Container ${container.id} is not running`);
    return container;
  }

  /** Execs created but never started whose container stopped or went away. */
  #forgetStale(): void {
    for (const exec of this.#execs.values()) {
      if (exec.status !== "created") continue;
      let running = false;
      try {
        running = this.#containers.get(exec.containerId).state.Status === "running";
      } catch {
        // The container is gone.
      }
      if (!running) this.#execs.delete(exec.id);
    }
  }

  /** Makes the FIFOs, adds the process to the task, starts it and watches for its exit. */
  async #launch(exec: ExecRecord): Promise<void> {
    const container = this.#runningContainer(exec.containerId);
    const process = await this.#processSpec(container, exec.config);
    const fifos: FifoSet = await makeFifos(
      `${this.#containers.dir(container.id)}/io`,
      `exec-${exec.id}`,
      { stdin: exec.config.attachStdin, tty: exec.config.tty },
    );
    const pump = new OutputPump(fifos, { hub: exec.hub });
    try {
      if (fifos.stdin) exec.stdin = await StdinWriter.open(fifos.stdin);
      await this.#client.tasks.exec(container.id, exec.id, {
        stdin: fifos.stdin,
        stdout: fifos.stdout,
        stderr: fifos.stderr,
        terminal: exec.config.tty,
        spec: process,
      });
    } catch (err) {
      await exec.stdin?.close();
      await pump.abandon();
      await removeFifos(fifos);
      exec.exitCode = 126;
      throw err;
    }
    // The wait goes out before the start, so that no exit can slip past it.
    const abort = new AbortController();
    exec.abort = abort;
    const exited = this.#client.tasks.wait(container.id, {
      execId: exec.id,
      signal: abort.signal,
    }).catch(() => undefined);
    try {
      exec.pid = (await this.#client.tasks.start(container.id, exec.id)).pid;
      // The shim opens an exec's FIFOs at its start, not at its creation.
      pump.attached();
    } catch (err) {
      abort.abort();
      await this.#client.tasks.delete(container.id, exec.id).catch(() => {});
      await exec.stdin?.close();
      await pump.settle(1000) || await pump.abandon();
      await removeFifos(fifos);
      throw this.#startFailed(exec, err);
    }
    exec.status = "running";
    this.#event(exec.containerId, `exec_start: ${exec.config.cmd.join(" ")}`, { execID: exec.id });
    this.#log.debug("exec started", { id: exec.id.slice(0, 12), pid: exec.pid });
    (async () => {
      const exit = await exited;
      if (abort.signal.aborted) return;
      await pump.settle(OUTPUT_SETTLE_MS);
      const deleted = await this.#client.tasks.delete(container.id, exec.id).catch(() => undefined);
      exec.exitCode = exit?.exitStatus ?? deleted?.exitStatus ?? 255;
      await removeFifos(fifos);
      this.#log.debug("exec exited", { id: exec.id.slice(0, 12), code: exec.exitCode });
      this.#finish(exec);
    })().catch((err) => this.#log.error("watching an exec failed", { id: exec.id, error: err }));
  }

  /** Docker's `translateContainerdStartErr`: 127 not found, 126 not invokable. */
  #startFailed(exec: ExecRecord, err: unknown): EngineError {
    const message = messageOf(err);
    let code = 126;
    let kind: "InvalidArgument" | "System" = "System";
    if (/executable file not found|no such file or directory/i.test(message)) {
      code = 127;
      kind = "InvalidArgument";
    } else if (/permission denied|not a directory/i.test(message)) {
      code = 126;
      kind = "InvalidArgument";
    }
    exec.exitCode = code;
    return new EngineError(kind, message, { cause: err });
  }

  /** Reports an exec event on its container (which may be gone by the time an exec dies). */
  #event(containerId: string, action: string, extra: Record<string, string>): void {
    try {
      this.#containers.emitEvent(containerId, action, extra);
    } catch {
      // The container was removed: Docker reports nothing for its execs either.
    }
  }

  /** Marks the exec exited, closes its clients and schedules its removal. */
  #finish(exec: ExecRecord): void {
    exec.status = "exited";
    exec.exitCode ??= 126;
    exec.abort = undefined;
    exec.stdin?.close();
    exec.stdin = undefined;
    exec.hub.end();
    this.#event(exec.containerId, "exec_die", {
      execID: exec.id,
      exitCode: String(exec.exitCode),
    });
    for (const close of exec.closers) close();
    exec.closers.clear();
    if (this.#closing) return;
    exec.forget = setTimeout(() => this.#execs.delete(exec.id), this.#retainMs);
    Deno.unrefTimer(exec.forget);
  }

  async #processSpec(container: Container, config: ValidExecConfig): Promise<OciProcess> {
    const record = await this.#client.containers.get(container.id);
    const base = (record.spec as OciSpec).process;
    let user: ResolvedUser | undefined;
    if (config.user) {
      const mounts = await this.#client.snapshots.mounts(
        container.snapshotter,
        container.snapshotKey,
      );
      user = resolveUser(config.user, {
        passwd: await readRootfsFile(mounts, "/etc/passwd"),
        group: await readRootfsFile(mounts, "/etc/group"),
      }, container.hostConfig.GroupAdd ?? undefined);
    }
    if (config.privileged) this.#capabilities ??= await daemonCapabilities();
    return execProcessSpec(base, config, {
      user,
      capabilities: config.privileged ? this.#capabilities : undefined,
    });
  }
}

/**
 * Checks an `ExecConfig` as Docker does and fills in its defaults.
 *
 * @throws InvalidArgument `No exec command specified`, a malformed field, bad detach keys.
 */
export function validateExecConfig(config: ExecConfig): ValidExecConfig {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw invalidArgument("exec config must be a JSON object");
  }
  const cmd = config.Cmd ?? [];
  if (!Array.isArray(cmd) || cmd.some((arg) => typeof arg !== "string")) {
    throw invalidArgument("Cmd must be an array of strings");
  }
  if (cmd.length === 0) throw invalidArgument("No exec command specified");
  const env = config.Env ?? [];
  if (!Array.isArray(env) || env.some((entry) => typeof entry !== "string")) {
    throw invalidArgument("Env must be an array of strings");
  }
  for (const entry of env) {
    if (entry.startsWith("=") || entry === "") {
      throw invalidArgument(`invalid environment variable: ${entry}`);
    }
  }
  const workingDir = config.WorkingDir ?? "";
  if (typeof workingDir !== "string") throw invalidArgument("WorkingDir must be a string");
  if (workingDir !== "" && !workingDir.startsWith("/")) {
    throw invalidArgument(
      `the working directory '${workingDir}' is invalid, it needs to be an absolute path`,
    );
  }
  const user = config.User ?? "";
  if (typeof user !== "string") throw invalidArgument("User must be a string");
  const detachKeys = config.DetachKeys ?? "";
  if (typeof detachKeys !== "string") throw invalidArgument("DetachKeys must be a string");
  parseDetachKeys(detachKeys);
  let consoleSize: ValidExecConfig["consoleSize"];
  if (config.ConsoleSize) {
    const [height, width] = config.ConsoleSize;
    if (!isSize(height) || !isSize(width)) {
      throw invalidArgument(`invalid ConsoleSize ${JSON.stringify(config.ConsoleSize)}`);
    }
    if (height > 0 || width > 0) consoleSize = { height, width };
  }
  return {
    user,
    privileged: config.Privileged === true,
    tty: config.Tty === true,
    consoleSize,
    attachStdin: config.AttachStdin === true,
    attachStdout: config.AttachStdout === true,
    attachStderr: config.AttachStderr === true,
    detachKeys,
    env: [...env],
    workingDir,
    cmd: [...cmd],
  };
}

function isSize(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65535;
}

/** Options of {@link execProcessSpec}. */
export interface ExecProcessOptions {
  /** The exec's own user (`-u`), resolved; the container's when absent. */
  user?: ResolvedUser;
  /** Every capability to grant (`--privileged`); the container's set when absent. */
  capabilities?: string[];
}

/**
 * The OCI process of an exec, from the container's own process (rlimits, no-new-privileges,
 * capabilities, user, environment) as Docker derives it: the exec's command, terminal and
 * working directory; `TERM=xterm` with a TTY; the exec's Env replacing variables of the same
 * name; its user and, when privileged, every capability the daemon has.
 */
export function execProcessSpec(
  base: OciProcess,
  config: ValidExecConfig,
  options: ExecProcessOptions = {},
): OciProcess {
  const process: OciProcess = structuredClone(base);
  process.args = [...config.cmd];
  process.terminal = config.tty;
  process.cwd = config.workingDir || base.cwd;
  // The container's TERM came from its own TTY; an exec gets one only with its own.
  let env = base.env.filter((entry) => !entry.startsWith("TERM=") || config.tty);
  if (config.tty && !env.some((entry) => entry.startsWith("TERM="))) env.push("TERM=xterm");
  env = replaceOrAppendEnv(env, config.env);
  process.env = env;
  if (options.user) {
    const { uid, gid, additionalGids } = options.user;
    process.user = { uid, gid, additionalGids: [...additionalGids] };
  }
  const caps = options.capabilities ?? base.capabilities.bounding;
  process.capabilities = capabilitySets(caps, process.user.uid);
  if (config.consoleSize) process.consoleSize = { ...config.consoleSize };
  return process;
}

/** Root gets the set as bounding, effective and permitted; others only as bounding. */
function capabilitySets(caps: string[], uid: number): OciCapabilities {
  return uid === 0
    ? { bounding: [...caps], effective: [...caps], permitted: [...caps] }
    : { bounding: [...caps] };
}

/** moby's `ReplaceOrAppendEnvValues`; a bare `NAME` removes the variable. */
function replaceOrAppendEnv(env: string[], overrides: string[]): string[] {
  const out: Array<string | undefined> = [...env];
  const nameOf = (entry: string) => entry.split("=", 1)[0]!;
  for (const entry of overrides) {
    const at = out.findIndex((existing) =>
      existing !== undefined && nameOf(existing) === nameOf(entry)
    );
    if (!entry.includes("=")) {
      if (at >= 0) out[at] = undefined;
      continue;
    }
    if (at >= 0) out[at] = entry;
    else out.push(entry);
  }
  return out.filter((entry): entry is string => entry !== undefined);
}

/** The daemon's bounding capability set, as create computes it for `--privileged`. */
async function daemonCapabilities(): Promise<string[]> {
  const status = await Deno.readTextFile("/proc/self/status");
  return parseCapabilityMask(/^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? "0");
}

/**
 * Interactive commands: `exec` and `attach`, and the session both share with `run` and
 * `start -a`: the terminal in raw mode (restored at the end), its size sent on start and on
 * every SIGWINCH, stdin copied to the hijacked connection and the output copied back.
 *
 * The daemon watches stdin for the detach keys and ends the stream, as Docker's does; the CLI
 * watches for them too, only to tell a detach from the end of the process.
 *
 * @module
 */

import { ApiError } from "./client.ts";
import { type Command, type CommandContext, printError } from "./command.ts";
import { parseEnvFile, resolveEnv, UsageError } from "./flags.ts";
import type { HijackedConnection } from "./http.ts";
import { copyOutput } from "./stream.ts";

const enc = encodeURIComponent;

/** Docker's default detach keys. */
export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

/**
 * Docker's detach key format (`ctrl-p,ctrl-q`, `ctrl-a,x`) as bytes.
 *
 * @throws UsageError for a key that is neither one character nor `ctrl-` + a-z @ [ \ ] ^ _
 */
export function detachKeyBytes(keys: string): Uint8Array {
  const codes: number[] = [];
  for (const key of keys.split(",")) {
    if (key.length === 1 && key.charCodeAt(0) < 0x80) {
      codes.push(key.charCodeAt(0));
      continue;
    }
    const match = /^ctrl-([a-z@[\\\]^_])$/.exec(key);
    if (!match) throw new UsageError(`Invalid detach keys (${keys}) provided`);
    const char = match[1]!;
    codes.push(char >= "a" && char <= "z" ? char.charCodeAt(0) - 0x60 : char.charCodeAt(0) - 0x40);
  }
  return Uint8Array.from(codes);
}

/**
 * Whether typed input contained the detach sequence; the same rule as the daemon's: only
 * chunks no longer than the sequence count as typed keys.
 */
export class DetachWatcher {
  readonly #keys: Uint8Array;
  #matched = 0;
  /** The sequence went by. */
  seen = false;

  /** A watcher of `keys` (see {@link detachKeyBytes}). */
  constructor(keys: Uint8Array) {
    this.#keys = keys;
  }

  /** Looks at one chunk of input; answers whether the sequence is now complete. */
  feed(chunk: Uint8Array): boolean {
    if (chunk.length > this.#keys.length) {
      this.#matched = 0;
      return false;
    }
    for (const byte of chunk) {
      if (byte === this.#keys[this.#matched]) this.#matched++;
      else this.#matched = byte === this.#keys[0] ? 1 : 0;
      if (this.#matched === this.#keys.length) {
        this.#matched = 0;
        this.seen = true;
        return true;
      }
    }
    return false;
  }
}

/** Options of {@link runSession}. */
export interface SessionOptions {
  /** The process has a TTY: raw stream, raw terminal, size forwarding. */
  tty: boolean;
  /** Copy our stdin to the process. */
  stdin: boolean;
  /** The detach keys the daemon watches for (Docker's format). */
  detachKeys?: string;
  /** Sends the terminal's size to the daemon (the container's or the exec's resize). */
  resize?: (size: { columns: number; rows: number }) => Promise<void>;
}

/**
 * Runs an attached session on `conn` until the output ends; answers whether the user typed
 * the detach keys (the process then runs on). The terminal is restored whatever happens.
 */
export async function runSession(
  ctx: CommandContext,
  conn: HijackedConnection,
  options: SessionOptions,
): Promise<{ detached: boolean }> {
  const watcher = new DetachWatcher(detachKeyBytes(options.detachKeys || DEFAULT_DETACH_KEYS));
  const terminal = options.tty && options.stdin && ctx.stdin.isTerminal?.() === true;
  let stopResize: (() => void) | undefined;
  try {
    if (options.tty && options.resize) {
      const resize = options.resize;
      const send = async () => {
        const size = ctx.consoleSize?.();
        // The process may be gone already: its stream ends on its own then.
        if (size) await resize(size).catch(() => {});
      };
      await send();
      stopResize = ctx.onResize?.(() => void send());
    }
    if (terminal) ctx.stdin.setRaw?.(true, { cbreak: false });
    if (options.stdin) pumpStdin(ctx, conn, watcher);
    await copyOutput(conn.reader.chunks(), ctx, { multiplexed: !options.tty });
  } finally {
    stopResize?.();
    if (terminal) {
      try {
        ctx.stdin.setRaw?.(false);
      } catch { /* not a terminal any more */ }
    }
    conn.close();
  }
  return { detached: watcher.seen };
}

/** Copies stdin to the connection, then half-closes it so the process reads end of file. */
async function pumpStdin(
  ctx: CommandContext,
  conn: HijackedConnection,
  watcher: DetachWatcher,
): Promise<void> {
  const buf = new Uint8Array(32 * 1024);
  try {
    while (true) {
      const n = await ctx.stdin.read(buf);
      if (n === null) break;
      const chunk = buf.slice(0, n);
      await conn.write(chunk);
      // After the detach keys the daemon ends the stream; nothing more is for the process.
      if (watcher.feed(chunk)) return;
    }
    await conn.closeWrite();
  } catch {
    // The stream ended while we were writing: nothing left to do.
  }
}

// ---- exec --------------------------------------------------------------------------------

/** The answer of `GET /exec/{id}/json` (the parts the CLI reads). */
interface ExecInspect {
  Running: boolean;
  ExitCode: number | null;
}

const execCommand: Command = {
  name: "exec",
  usage: "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
  description: "Execute a command in a running container",
  flags: [
    { name: "detach", short: "d", kind: "bool", description: "Detached mode: run in background" },
    {
      name: "detach-keys",
      kind: "string",
      description: "Override the key sequence for detaching a container",
    },
    { name: "env", short: "e", kind: "list", description: "Set environment variables" },
    { name: "env-file", kind: "list", description: "Read in a file of environment variables" },
    { name: "interactive", short: "i", kind: "bool", description: "Keep STDIN open" },
    {
      name: "privileged",
      kind: "bool",
      description: "Give extended privileges to the command",
    },
    { name: "tty", short: "t", kind: "bool", description: "Allocate a pseudo-TTY" },
    {
      name: "user",
      short: "u",
      kind: "string",
      description: "Username or UID (format: <name|uid>[:<group|gid>])",
    },
    {
      name: "workdir",
      short: "w",
      kind: "string",
      description: "Working directory inside the container",
    },
  ],
  stopAtFirstArg: true,
  minArgs: 2,
  async run(ctx, flags) {
    const [container, ...cmd] = flags.args as [string, ...string[]];
    const detach = flags.bool("detach");
    const tty = flags.bool("tty");
    const interactive = flags.bool("interactive");
    const detachKeys = flags.string("detach-keys");
    if (detachKeys !== undefined) detachKeyBytes(detachKeys);
    const env: string[] = [];
    for (const file of flags.list("env-file")) {
      env.push(...parseEnvFile(ctx.readTextFile(file), { lookup: ctx.env }));
    }
    for (const entry of flags.list("env")) env.push(...resolveEnv(entry, ctx.env));
    if (tty && interactive && ctx.stdin.isTerminal?.() === false) {
      throw new UsageError("the input device is not a TTY");
    }
    const size = tty ? ctx.consoleSize?.() : undefined;
    const { Id: id } = await ctx.client.json<{ Id: string }>(
      "POST",
      `/containers/${enc(container)}/exec`,
      {
        json: {
          User: flags.string("user") ?? "",
          Privileged: flags.bool("privileged"),
          Tty: tty,
          ConsoleSize: size ? [size.rows, size.columns] : undefined,
          AttachStdin: interactive && !detach,
          AttachStdout: !detach,
          AttachStderr: !detach,
          DetachKeys: detachKeys ?? "",
          Env: env,
          WorkingDir: flags.string("workdir") ?? "",
          Cmd: cmd,
        },
      },
    );
    if (detach) {
      await ctx.client.call("POST", `/exec/${enc(id)}/start`, {
        json: { Detach: true, Tty: tty },
      });
      return 0;
    }
    const conn = await ctx.client.hijack("POST", `/exec/${enc(id)}/start`, {
      json: { Detach: false, Tty: tty },
    });
    const { detached } = await runSession(ctx, conn, {
      tty,
      stdin: interactive,
      detachKeys,
      resize: (size) =>
        ctx.client.call("POST", `/exec/${enc(id)}/resize`, {
          query: { h: size.rows, w: size.columns },
        }),
    });
    // Docker's CLI: the exit code is the exec's, read once the stream ended.
    const info = await ctx.client.json<ExecInspect>("GET", `/exec/${enc(id)}/json`);
    if (detached && info.Running) return 0;
    return info.ExitCode ?? 0;
  },
};

// ---- attach ------------------------------------------------------------------------------

/** The parts of `GET /containers/{id}/json` that attach reads. */
interface ContainerState {
  Id: string;
  Config?: { Tty?: boolean; OpenStdin?: boolean };
  State?: { Running?: boolean; Paused?: boolean; Restarting?: boolean; ExitCode?: number };
}

const attachCommand: Command = {
  name: "attach",
  usage: "attach [OPTIONS] CONTAINER",
  description: "Attach local standard input, output, and error streams to a running container",
  flags: [
    {
      name: "detach-keys",
      kind: "string",
      description: "Override the key sequence for detaching a container",
    },
    { name: "no-stdin", kind: "bool", description: "Do not attach STDIN" },
    {
      name: "sig-proxy",
      kind: "string",
      description: "Proxy all received signals to the process",
      default: "true",
    },
  ],
  minArgs: 1,
  maxArgs: 1,
  async run(ctx, flags) {
    const name = flags.args[0]!;
    const detachKeys = flags.string("detach-keys");
    if (detachKeys !== undefined) detachKeyBytes(detachKeys);
    const sigProxy = !["false", "0"].includes((flags.string("sig-proxy") ?? "true").toLowerCase());
    const info = await inspect(ctx, name);
    // Docker's CLI checks the state; the daemon also attaches to stopped containers, which is
    // how `run` and `start -a` see a container's output from its first byte.
    if (!info.State?.Running) {
      throw new Error("You cannot attach to a stopped container, start it first");
    }
    if (info.State.Paused) {
      throw new Error("You cannot attach to a paused container, unpause it first");
    }
    if (info.State.Restarting) {
      throw new Error("You cannot attach to a restarting container, wait until it is running");
    }
    const tty = info.Config?.Tty === true;
    const stdin = !flags.bool("no-stdin") && info.Config?.OpenStdin === true;
    if (tty && stdin && ctx.stdin.isTerminal?.() === false) {
      throw new Error("the input device is not a TTY");
    }
    const conn = await ctx.client.hijack("POST", `/containers/${enc(info.Id)}/attach`, {
      query: {
        stream: true,
        stdin: stdin || undefined,
        stdout: true,
        stderr: true,
        detachKeys,
      },
    });
    let stopProxy: (() => void) | undefined;
    if (sigProxy && !tty && ctx.onSignal) {
      stopProxy = ctx.onSignal((signal) => {
        ctx.client.call("POST", `/containers/${enc(info.Id)}/kill`, { query: { signal } })
          .catch(() => {});
      });
    }
    let detached: boolean;
    try {
      ({ detached } = await runSession(ctx, conn, {
        tty,
        stdin,
        detachKeys,
        resize: (size) => resizeContainer(ctx, info.Id, size),
      }));
    } finally {
      stopProxy?.();
    }
    if (detached) {
      // The detach keys ended the stream: the container runs on.
      const after = await inspect(ctx, info.Id).catch(() => undefined);
      if (after?.State?.Running) return 0;
    }
    return await exitCode(ctx, info.Id);
  },
};

function inspect(ctx: CommandContext, name: string): Promise<ContainerState> {
  return ctx.client.json<ContainerState>("GET", `/containers/${enc(name)}/json`);
}

/** The exit code of the container, once it stopped (its output ends just before). */
async function exitCode(ctx: CommandContext, id: string): Promise<number> {
  try {
    const res = await ctx.client.json<{ StatusCode: number }>(
      "POST",
      `/containers/${enc(id)}/wait`,
    );
    return res.StatusCode;
  } catch (error) {
    // Removed meanwhile (`--rm`): its code is gone with it.
    if (error instanceof ApiError && error.status === 404) return 0;
    await printError(ctx, error);
    return 1;
  }
}

/** Sends the terminal's size to a container (`POST /containers/{id}/resize`). */
export function resizeContainer(
  ctx: CommandContext,
  id: string,
  size: { columns: number; rows: number },
): Promise<void> {
  return ctx.client.call("POST", `/containers/${enc(id)}/resize`, {
    query: { h: size.rows, w: size.columns },
  });
}

/** `exec` and `attach`. */
export const attachCommands: Command[] = [execCommand, attachCommand];

/**
 * What every command is: a name, its flags, and a `run` that gets typed flags and a context
 * (the API client and the writers). Also the error printing shared by all commands.
 *
 * @module
 */

import { type ApiClient, ApiError, ConnectError } from "./client.ts";
import { type Flags, type FlagSpec, UsageError } from "./flags.ts";
import type { ByteSource } from "./http.ts";
import { writeAll, type Writer } from "./stream.ts";

/** The CLI's standard input: `Deno.stdin` or a test double. */
export interface Stdin extends ByteSource {
  /** Whether it is a terminal. */
  isTerminal?(): boolean;
  /** Switches raw mode on or off. */
  setRaw?(mode: boolean, options?: { cbreak: boolean }): void;
}

/** The world a command runs in. */
export interface CommandContext {
  /** Standard output. */
  stdout: Writer;
  /** Standard error. */
  stderr: Writer;
  /** Standard input. */
  stdin: Stdin;
  /** The CLI's environment. */
  env: (key: string) => string | undefined;
  /** The API client (connects lazily, per request). */
  client: ApiClient;
  /** Whether `-D` was given. */
  debug: boolean;
  /** Reads a file (`--env-file`, `load -i`). */
  readTextFile: (path: string) => string;
  /** Size of the terminal, when stdout is one. */
  consoleSize?: () => { columns: number; rows: number } | undefined;
  /**
   * Subscribes to SIGINT/SIGTERM (Docker's sig-proxy for attached runs); answers the
   * unsubscribe. Absent in tests.
   */
  onSignal?: (handler: (signal: string) => void) => () => void;
  /** Subscribes to the terminal's size changes (SIGWINCH); answers the unsubscribe. */
  onResize?: (handler: () => void) => () => void;
}

/** One command of the CLI. */
export interface Command {
  /** The name typed, e.g. `ps`. */
  name: string;
  /** Other names, e.g. `ls` and `list` under `container`. */
  aliases?: string[];
  /** Usage line after `pouch `, e.g. `ps [OPTIONS]`. */
  usage: string;
  /** One line of description. */
  description: string;
  /** Flags the command takes (`--help` is added). */
  flags: FlagSpec[];
  /** Stop parsing flags at the first argument (`run IMAGE CMD -x`). */
  stopAtFirstArg?: boolean;
  /** Minimal number of arguments. */
  minArgs?: number;
  /** Maximal number of arguments. */
  maxArgs?: number;
  /** Exit code of an engine error or a bad usage: 125 for run/create, else 1. */
  errorExitCode?: number;
  /** Runs the command; resolves to its exit code. */
  run(ctx: CommandContext, flags: Flags): Promise<number>;
}

/** A group of commands (`container`, `image`). */
export interface CommandGroup {
  /** The group's name. */
  name: string;
  /** One line of description. */
  description: string;
  /** Its sub-commands. */
  commands: Command[];
}

/** `--help` itself, added to every command (short `-h` unless the command uses it). */
export function helpFlag(specs: FlagSpec[]): FlagSpec {
  const shortTaken = specs.some((s) => s.short === "h");
  return shortTaken
    ? { name: "help", kind: "bool", description: "Print usage" }
    : { name: "help", short: "h", kind: "bool", description: "Print usage" };
}

/** Writes text to standard output. */
export function out(ctx: CommandContext, text: string): Promise<void> {
  return writeAll(ctx.stdout, text);
}

/** Writes text to standard error. */
export function err(ctx: CommandContext, text: string): Promise<void> {
  return writeAll(ctx.stderr, text);
}

/** The line printed for an error: Docker's wording for daemon answers. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return `Error response from daemon: ${error.message}`;
  if (error instanceof ConnectError || error instanceof UsageError) return error.message;
  if (error instanceof Error) return `Error: ${error.message}`;
  return `Error: ${String(error)}`;
}

/** Prints an error on standard error. */
export function printError(ctx: CommandContext, error: unknown): Promise<void> {
  return err(ctx, errorText(error) + "\n");
}

/**
 * Runs `fn` for each argument in turn, printing each error as it comes and going on; resolves
 * to 1 if any failed, else 0 (Docker's `start`, `restart`, `wait`, ...).
 */
export async function forEachArg(
  ctx: CommandContext,
  args: string[],
  fn: (arg: string) => Promise<void>,
): Promise<number> {
  let failed = false;
  for (const arg of args) {
    try {
      await fn(arg);
    } catch (error) {
      if (error instanceof ConnectError) throw error;
      failed = true;
      await printError(ctx, error);
    }
  }
  return failed ? 1 : 0;
}

/** How many calls {@link forEachArgInParallel} has in flight at most: the Docker CLI's limit. */
export const PARALLEL_LIMIT = 50;

/**
 * Runs `fn` for every argument, up to {@link PARALLEL_LIMIT} at once, and reports each outcome
 * in the order of the arguments: the line `fn` resolves with, or the error. Resolves to 1 if any
 * failed, else 0. Docker's `stop`, `kill`, `rm`, `pause` and `unpause` work so: stopping 50
 * containers one after the other would wait for each one's exit in turn.
 */
export async function forEachArgInParallel(
  ctx: CommandContext,
  args: string[],
  fn: (arg: string) => Promise<string>,
): Promise<number> {
  type Outcome = { line: string } | { error: unknown };
  const outcomes = args.map(() => Promise.withResolvers<Outcome>());
  let next = 0;
  const worker = async () => {
    while (next < args.length) {
      const index = next++;
      outcomes[index]!.resolve(
        await fn(args[index]!).then((line) => ({ line }), (error) => ({ error })),
      );
    }
  };
  const workers = Array.from({ length: Math.min(PARALLEL_LIMIT, args.length) }, worker);
  let failed = false;
  try {
    for (const outcome of outcomes) {
      const result = await outcome.promise;
      if ("line" in result) {
        await out(ctx, result.line + "\n");
        continue;
      }
      if (result.error instanceof ConnectError) throw result.error;
      failed = true;
      await printError(ctx, result.error);
    }
  } finally {
    // Every call has ended before the command does (the process exits after it).
    await Promise.all(workers);
  }
  return failed ? 1 : 0;
}

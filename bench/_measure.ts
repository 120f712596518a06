/**
 * What every benchmark section measures with: the wall time of one command, the median, minimum
 * and maximum of a set of samples, a bounded pool of concurrent work, and the resident memory of
 * processes from `/proc`.
 *
 * @module
 */

const decoder = new TextDecoder();
/** No single command of a benchmark may take longer than this. */
export const COMMAND_TIMEOUT_MS = 180_000;

/**
 * The wall time of running `command` to completion, in milliseconds; throws if it fails or
 * takes longer than {@link COMMAND_TIMEOUT_MS}.
 */
export async function time(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs: number = COMMAND_TIMEOUT_MS,
): Promise<number> {
  const started = performance.now();
  const result = await new Deno.Command(command, {
    args,
    env,
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const elapsed = performance.now() - started;
  if (!result.success) throw failed(command, args, result, elapsed >= timeoutMs);
  return elapsed;
}

/** Runs `command` and answers what it printed; throws with its stderr unless it exits 0 in time. */
export async function output(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const started = performance.now();
  const result = await new Deno.Command(command, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  if (!result.success) {
    throw failed(command, args, result, performance.now() - started >= COMMAND_TIMEOUT_MS);
  }
  return decoder.decode(result.stdout);
}

/** The error of a command that failed or was killed at its timeout. */
function failed(
  command: string,
  args: string[],
  result: Deno.CommandOutput,
  timedOut: boolean,
): Error {
  const how = timedOut
    ? "timed out"
    : `failed (exit ${result.code}${result.signal ? `, ${result.signal}` : ""})`;
  const stderr = decoder.decode(result.stderr).trim().slice(0, 2000);
  const what = `${command.split("/").pop()} ${args.join(" ")}`;
  return new Error(`${how}${stderr ? `: ${stderr}` : ""} [${what}]`);
}

/** Median, minimum and maximum of `samples`. */
export function stats(samples: number[]): { median: number; min: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

/** The path of `program` on PATH, if it is there. */
export async function which(program: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${program}`;
    if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
  }
  return undefined;
}

/** Calls `work(i)` for `i` in `[0, count)`, at most `concurrency` at a time; rethrows the first error. */
export async function pool(
  count: number,
  concurrency: number,
  work: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await work(next++);
  });
  await Promise.all(workers);
}

/** The resident set size of process `pid` in MB (10^6 bytes), 0 when it is gone. */
export async function rssMegabytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  return (kb * 1024) / 1e6;
}

/** The pids of the children of `pid` whose command name (`comm`) is `name`. */
export async function childrenNamed(pid: number, name: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    // pid (comm) state ppid ...; comm may hold spaces and parentheses, so split at the last ")".
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === pid && comm === name) found.push(Number(entry.name));
  }
  return found;
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

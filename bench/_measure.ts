/**
 * What every benchmark section measures with: the wall time of one command and the median,
 * minimum and maximum of a set of samples.
 *
 * @module
 */

/** The wall time of running `command` to completion, in milliseconds; throws if it fails. */
export async function time(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<number> {
  const started = performance.now();
  const result = await new Deno.Command(command, { args, env, stdout: "null", stderr: "piped" })
    .output();
  const elapsed = performance.now() - started;
  if (!result.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
  return elapsed;
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

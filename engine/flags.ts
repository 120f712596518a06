/**
 * Command-line flags with Go pflag's rules, as the Docker CLI and dockerd have them:
 * `--name value`, `--name=value`, `-n value`, `-nvalue`, combined short booleans (`-it`),
 * `--bool=false`, `--` ends the flags, a lone `-` is an argument. Shared by the CLI (`cmd/flags.ts`)
 * and the daemon's own flags (`engine/config.ts`); it imports nothing, so that neither pays for
 * more than the parser (node:util's parseArgs would load Deno's whole Node compatibility layer
 * into the daemon).
 *
 * @module
 */

/** How a flag takes its value. */
export type FlagKind = "bool" | "string" | "list";

/** One flag of a command. */
export interface FlagSpec {
  /** Long name without dashes, e.g. `memory`. */
  name: string;
  /** One-letter name, e.g. `m`. */
  short?: string;
  /** Other long names, e.g. `net` for `network`. */
  aliases?: string[];
  /** bool, string, or list (repeatable string). */
  kind: FlagKind;
  /** One line for `--help` (the daemon writes its usage out whole, so its flags have none). */
  description?: string;
  /** Default shown in `--help`. */
  default?: string;
}

/** Parsed flags: values by long name, and the arguments. */
export interface ParsedFlags {
  /** bool -> boolean, string -> string (last wins), list -> string[]. */
  values: Map<string, boolean | string | string[]>;
  /** Arguments in order (everything after the first one when not interspersed). */
  args: string[];
}

/** Bad usage: unknown flag, missing value, wrong argument count. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Bad flag value, worded as pflag does: `invalid argument "abc" for "-m, --memory" flag: ...`. */
export function invalidValue(spec: FlagSpec, value: string, reason: string): UsageError {
  const names = spec.short ? `-${spec.short}, --${spec.name}` : `--${spec.name}`;
  return new UsageError(`invalid argument ${JSON.stringify(value)} for "${names}" flag: ${reason}`);
}

/** Options of {@link parseFlags}. */
export interface ParseFlagsOptions {
  /** Keep parsing flags after the first argument (default true). */
  interspersed?: boolean;
}

function parseBool(spec: FlagSpec, text: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(text)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(text)) return false;
  throw invalidValue(
    spec,
    text,
    `strconv.ParseBool: parsing ${JSON.stringify(text)}: invalid syntax`,
  );
}

/** Parses `argv` against `specs`; throws {@link UsageError} on bad usage. */
export function parseFlags(
  argv: string[],
  specs: readonly FlagSpec[],
  options: ParseFlagsOptions = {},
): ParsedFlags {
  const interspersed = options.interspersed ?? true;
  const byLong = new Map<string, FlagSpec>();
  const byShort = new Map<string, FlagSpec>();
  for (const spec of specs) {
    byLong.set(spec.name, spec);
    for (const alias of spec.aliases ?? []) byLong.set(alias, spec);
    if (spec.short) byShort.set(spec.short, spec);
  }
  const values = new Map<string, boolean | string | string[]>();
  const args: string[] = [];
  const set = (spec: FlagSpec, value: string | boolean) => {
    if (spec.kind === "list") {
      const list = (values.get(spec.name) as string[] | undefined) ?? [];
      list.push(String(value));
      values.set(spec.name, list);
    } else {
      values.set(spec.name, value);
    }
  };

  let i = 0;
  while (i < argv.length) {
    const arg = argv[i++]!;
    if (arg === "--") {
      args.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      args.push(arg);
      if (!interspersed) {
        args.push(...argv.slice(i));
        break;
      }
      continue;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
      if (spec.kind === "bool") {
        set(spec, eq >= 0 ? parseBool(spec, arg.slice(eq + 1)) : true);
      } else if (eq >= 0) {
        set(spec, arg.slice(eq + 1));
      } else {
        if (i >= argv.length) throw new UsageError(`flag needs an argument: --${name}`);
        set(spec, argv[i++]!);
      }
      continue;
    }
    // Short flags, possibly combined: -it, -m512m, -e FOO.
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      const spec = byShort.get(letter);
      if (!spec) throw new UsageError(`unknown shorthand flag: '${letter}' in ${arg}`);
      if (spec.kind === "bool") {
        if (arg[j + 1] === "=") {
          set(spec, parseBool(spec, arg.slice(j + 2)));
          break;
        }
        set(spec, true);
        continue;
      }
      let rest = arg.slice(j + 1);
      if (rest.startsWith("=")) rest = rest.slice(1);
      if (rest !== "") {
        set(spec, rest);
      } else {
        if (i >= argv.length) {
          throw new UsageError(`flag needs an argument: '${letter}' in -${letter}`);
        }
        set(spec, argv[i++]!);
      }
      break;
    }
  }
  return { values, args };
}

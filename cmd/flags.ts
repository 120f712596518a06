/**
 * The CLI's flags: the pflag parser of `engine/flags.ts` (re-exported here), typed access to
 * what it parsed, and the value parsers of Docker's flags (memory sizes, CPUs, env files).
 * Commands that take a command line after the image (`run`, `create`) stop at the first
 * argument.
 *
 * @module
 */

export {
  type FlagKind,
  type FlagSpec,
  invalidValue,
  type ParsedFlags,
  parseFlags,
  type ParseFlagsOptions,
  UsageError,
} from "../engine/flags.ts";
import { type FlagSpec, invalidValue, type ParsedFlags } from "../engine/flags.ts";

/** Typed access to parsed values. */
export class Flags {
  #parsed: ParsedFlags;
  #specs: Map<string, FlagSpec>;

  /** Wraps parsed flags and the specs they were parsed with. */
  constructor(parsed: ParsedFlags, specs: FlagSpec[]) {
    this.#parsed = parsed;
    this.#specs = new Map(specs.map((s) => [s.name, s]));
  }

  /** The arguments. */
  get args(): string[] {
    return this.#parsed.args;
  }

  /** Whether the flag was given. */
  has(name: string): boolean {
    return this.#parsed.values.has(name);
  }

  /** A boolean flag (false when absent). */
  bool(name: string): boolean {
    return this.#parsed.values.get(name) === true;
  }

  /** A string flag, or undefined when absent. */
  string(name: string): string | undefined {
    const v = this.#parsed.values.get(name);
    return typeof v === "string" ? v : undefined;
  }

  /** A repeatable flag (empty when absent). */
  list(name: string): string[] {
    const v = this.#parsed.values.get(name);
    return Array.isArray(v) ? v : [];
  }

  /** An integer flag, or undefined when absent; throws on a non-integer. */
  int(name: string): number | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    if (!/^[-+]?\d+$/.test(text.trim())) {
      throw invalidValue(
        this.spec(name),
        text,
        `strconv.ParseInt: parsing ${JSON.stringify(text)}: invalid syntax`,
      );
    }
    return Number(text);
  }

  /** The spec of a flag (for error messages). */
  spec(name: string): FlagSpec {
    return this.#specs.get(name) ?? { name, kind: "string" };
  }
}

// ---- value parsers -----------------------------------------------------------------------

const binaryUnits: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
};

/**
 * Parses a memory size with binary units like Docker's `RAMInBytes`: `512`, `512b`, `64k`,
 * `100m`, `1.5g`, `2GiB`. Throws on anything else, including negative values.
 */
export function ramInBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text);
  if (!match) throw new Error(`invalid size: '${text}'`);
  const size = Number(match[1]);
  if (Number.isNaN(size)) throw new Error(`invalid size: '${text}'`);
  const unit = (match[2] ?? "").toLowerCase();
  return Math.trunc(size * binaryUnits[unit]!);
}

/** Parses `--cpus` (e.g. `1.5`) into NanoCpus; throws on negative or too precise values. */
export function parseNanoCpus(text: string): number {
  if (!/^\d*\.?\d+$|^\d+\.$/.test(text.trim())) {
    throw new Error(`failed to parse ${text} as a rational number`);
  }
  const nano = Number(text) * 1e9;
  const rounded = Math.round(nano);
  if (Math.abs(nano - rounded) > 1e-3) throw new Error("value is too precise");
  return rounded;
}

/** Parses `--ulimit nofile=1024:2048` into Docker's ulimit shape. */
export function parseUlimit(text: string): { Name: string; Soft: number; Hard: number } {
  const match = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(text);
  if (!match) throw new Error(`invalid ulimit argument: ${text}`);
  const soft = Number(match[2]);
  const hard = match[3] === undefined ? soft : Number(match[3]);
  if (soft > hard && hard !== -1) {
    throw new Error(
      `ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`,
    );
  }
  return { Name: match[1]!, Soft: soft, Hard: hard };
}

/** Options of {@link parseEnvFile}. */
export interface EnvFileOptions {
  /** Looks up `KEY` lines without a value (the CLI's environment). */
  lookup: (key: string) => string | undefined;
}

/**
 * Parses an env file as Docker does: one `KEY=VAL` per line, `#` comments and blank lines
 * skipped, a bare `KEY` takes its value from the environment (left out when unset).
 */
export function parseEnvFile(content: string, options: EnvFileOptions): string[] {
  const out: string[] = [];
  for (const raw of content.split(/\r?\n/)) {
    const line = raw.trimStart();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const key = eq >= 0 ? line.slice(0, eq) : line.trimEnd();
    if (key === "" || /\s/.test(key)) throw new Error(`variable '${key}' contains whitespaces`);
    if (eq >= 0) {
      out.push(line);
    } else {
      const value = options.lookup(key);
      if (value !== undefined) out.push(`${key}=${value}`);
    }
  }
  return out;
}

/** Resolves `-e KEY` (no `=`) from the environment, as Docker does; KEY=VAL is kept. */
export function resolveEnv(entry: string, lookup: (key: string) => string | undefined): string[] {
  if (entry.includes("=")) return [entry];
  const value = lookup(entry);
  return value === undefined ? [] : [`${entry}=${value}`];
}

/** Parses label lines (`-l k=v`, or label files): a bare key gets an empty value. */
export function parseLabels(entries: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq < 0) labels[entry] = "";
    else labels[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return labels;
}

/** Lines of a label file: `#` comments and blank lines skipped. */
export function parseLabelFile(content: string): string[] {
  return content.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

/** Formats the flags of a command for `--help`, aligned like pflag's usage. */
export function flagUsages(specs: FlagSpec[]): string {
  const rows = specs.map((spec) => {
    const names = spec.short ? `-${spec.short}, --${spec.name}` : `    --${spec.name}`;
    const type = spec.kind === "string" ? " string" : spec.kind === "list" ? " list" : "";
    const def = spec.default ? ` (default ${spec.default})` : "";
    return [`  ${names}${type}`, (spec.description ?? "") + def];
  });
  const width = Math.max(0, ...rows.map((r) => r[0]!.length));
  return rows.map(([left, right]) => `${left!.padEnd(width)}   ${right}`).join("\n");
}

/** An IP address as a number, with its family's width (32 or 128 bits). */
export interface IpAddress {
  value: bigint;
  bits: 32 | 128;
}

function parseIpv4(text: string): bigint | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let value = 0n;
  for (const part of m.slice(1)) {
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

/** Parses an IPv4 or IPv6 address (`::` shorthand and a trailing dotted quad included). */
export function parseIp(text: string): IpAddress | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { value: v4, bits: 32 };
  if (!text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): bigint[] | undefined => {
    if (half === "") return [];
    const out: bigint[] = [];
    const parts = half.split(":");
    for (const [i, part] of parts.entries()) {
      const last = i === parts.length - 1;
      const quad = last && part.includes(".") ? parseIpv4(part) : undefined;
      if (quad !== undefined) out.push(quad >> 16n, quad & 0xffffn);
      else if (/^[0-9a-fA-F]{1,4}$/.test(part)) out.push(BigInt(parseInt(part, 16)));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<bigint>(halves.length === 2 ? missing : 0).fill(0n), ...tail];
  return { value: all.reduce((acc, g) => (acc << 16n) | g, 0n), bits: 128 };
}

/** A network in CIDR notation: its address and prefix length. */
export interface Cidr {
  address: IpAddress;
  prefix: number;
}

/** Parses `10.1.0.0/24` or `fd00::/64`; undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= address.bits ? { address, prefix } : undefined;
}

/** Whether `cidr` (as Go's `IPNet.Contains`, ignoring the host bits of its address) holds `ip`. */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.address.bits !== ip.bits) return false;
  const shift = BigInt(ip.bits - cidr.prefix);
  return (cidr.address.value >> shift) === (ip.value >> shift);
}

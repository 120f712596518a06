/**
 * CNI plugin invocation (the CNI spec, versions 0.4.0 and 1.0.0): a network configuration list
 * is run plugin by plugin, each one a process given `CNI_COMMAND`, `CNI_CONTAINERID`,
 * `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH` in its environment and its own
 * configuration (with the list's `name` and `cniVersion`, the previous plugin's result as
 * `prevResult` and the capabilities it asks for as `runtimeConfig`) on stdin. ADD runs the list
 * in order, DEL in reverse, CHECK in order. A plugin that fails prints `{code, msg, details}` on
 * stdout; that message becomes the error's.
 *
 * @module
 */
import { invalidArgument, systemError, unavailable } from "../engine/errors.ts";

/** Where the standard plugins are looked for: Debian's package first, then the upstream path. */
export const DEFAULT_CNI_BIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"];

/** One plugin's configuration in a list (`type` names the binary). */
export interface PluginConfig {
  type: string;
  /** Capabilities the plugin accepts through `runtimeConfig` (`{portMappings: true}`). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A network configuration list (`.conflist`). */
export interface NetworkConfigList {
  cniVersion: string;
  name: string;
  plugins: PluginConfig[];
  /** The list's `disableCheck`: CHECK is not run on it. */
  disableCheck?: boolean;
}

/** What identifies one attachment: the container, its network namespace and interface. */
export interface RuntimeConf {
  containerId: string;
  /** The network namespace's path (empty on a DEL whose namespace is gone). */
  netns: string;
  ifName: string;
  /** `CNI_ARGS` pairs (`IP=10.1.0.5` asks host-local for a static address). */
  args?: Record<string, string>;
  /** Values of capabilities (`portMappings`), given to the plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

/** An interface of a CNI result. */
export interface CniInterface {
  name: string;
  mac?: string;
  /** The namespace path for interfaces inside the container; absent on the host side. */
  sandbox?: string;
}

/** An address of a CNI result. */
export interface CniIp {
  /** `a.b.c.d/nn`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

/** A CNI result, normalised to the 1.0.0 shape. */
export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: Array<{ dst: string; gw?: string }>;
  dns: Record<string, unknown>;
}

/** A failed plugin: its CNI error code, message and details. */
export class CniError extends Error {
  /** The CNI error code (1-99 are the spec's, 999 a plugin's own). */
  readonly code: number;
  /** The plugin's `details`. */
  readonly details: string;

  /** An error of `plugin` with the fields it printed. */
  constructor(plugin: string, fields: { code: number; msg: string; details?: string }) {
    super(
      `CNI plugin ${plugin} failed: ${fields.msg}${fields.details ? ` (${fields.details})` : ""}`,
    );
    this.name = "CniError";
    this.code = fields.code;
    this.details = fields.details ?? "";
  }
}

/** Runs one plugin process: its environment, stdin, and what it printed. */
export type PluginExec = (
  path: string,
  input: { env: Record<string, string>; stdin: string },
) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Options of {@link CniRunner}. */
export interface CniRunnerOptions {
  /** Directories searched for plugin binaries, in order; also `CNI_PATH`. */
  binDirs?: string[];
  /** Runs a plugin; by default a child process with a clean environment. */
  exec?: PluginExec;
  /** How long one plugin may take; default 60 s. */
  timeoutMs?: number;
}

const decoder = new TextDecoder();

/** Runs CNI network configuration lists. */
export class CniRunner {
  readonly #binDirs: string[];
  readonly #exec: PluginExec;
  readonly #timeoutMs: number;

  /** A runner over the plugins in `options.binDirs`. */
  constructor(options: CniRunnerOptions = {}) {
    this.#binDirs = options.binDirs ?? DEFAULT_CNI_BIN_DIRS;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#exec = options.exec ?? ((path, input) => runProcess(path, input, this.#timeoutMs));
  }

  /** The path of plugin `type`; throws Unavailable naming the directories searched. */
  async find(type: string): Promise<string> {
    if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw invalidArgument(`invalid CNI plugin type ${type}`);
    for (const dir of this.#binDirs) {
      const path = `${dir}/${type}`;
      const info = await Deno.stat(path).catch(() => undefined);
      if (info?.isFile) return path;
    }
    throw unavailable(
      `CNI plugin ${type} not found in ${this.#binDirs.join(", ")} ` +
        "(Debian package containernetworking-plugins, or --cni-bin-dir)",
    );
  }

  /** ADD: runs the list in order, each plugin given the previous result; returns the last. */
  async add(list: NetworkConfigList, rt: RuntimeConf): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of list.plugins) {
      const out = await this.#invoke("ADD", pluginInput(list, plugin, rt, prev), rt, plugin.type);
      prev = parseResult(JSON.parse(out || "{}"));
    }
    return prev ?? emptyResult(list.cniVersion);
  }

  /**
   * DEL: runs the list in reverse, each plugin given `prevResult` (the ADD's result, when
   * known). Every plugin runs even if one fails; the first failure is thrown after.
   */
  async del(list: NetworkConfigList, rt: RuntimeConf, prevResult?: CniResult): Promise<void> {
    let failure: unknown;
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.#invoke("DEL", pluginInput(list, plugin, rt, prevResult), rt, plugin.type);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure) throw failure;
  }

  /** CHECK: runs the list in order with the ADD's result; throws what a plugin reports. */
  async check(list: NetworkConfigList, rt: RuntimeConf, prevResult: CniResult): Promise<void> {
    for (const plugin of list.plugins) {
      await this.#invoke("CHECK", pluginInput(list, plugin, rt, prevResult), rt, plugin.type);
    }
  }

  async #invoke(
    command: "ADD" | "DEL" | "CHECK",
    config: Record<string, unknown>,
    rt: RuntimeConf,
    type: string,
  ): Promise<string> {
    const path = await this.find(type);
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifName,
      CNI_ARGS: formatArgs(rt.args),
      CNI_PATH: this.#binDirs.join(":"),
      PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    };
    const result = await this.#exec(path, { env, stdin: JSON.stringify(config) });
    if (result.code !== 0) throw pluginFailure(type, result);
    return result.stdout;
  }
}

/**
 * The stdin of one plugin of `list`: its config with the list's name and version, the previous
 * result, and the runtime values of the capabilities it declares.
 */
export function pluginInput(
  list: NetworkConfigList,
  plugin: PluginConfig,
  rt: RuntimeConf,
  prevResult?: CniResult,
): Record<string, unknown> {
  const config: Record<string, unknown> = {
    ...plugin,
    cniVersion: list.cniVersion,
    name: list.name,
  };
  const runtimeConfig: Record<string, unknown> = {};
  for (const [capability, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && rt.capabilityArgs?.[capability] !== undefined) {
      runtimeConfig[capability] = rt.capabilityArgs[capability];
    }
  }
  if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = runtimeConfig;
  if (prevResult) config.prevResult = prevResult;
  return config;
}

/**
 * Normalises a plugin's result (CNI 0.4.0 with `ips[].version`, or 1.0.0) into the 1.0.0 shape.
 *
 * @throws SystemError when the result is not a CNI result.
 */
export function parseResult(data: unknown): CniResult {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw systemError(`CNI plugin result is not a JSON object: ${JSON.stringify(data)}`);
  }
  const raw = data as Record<string, unknown>;
  const interfaces = Array.isArray(raw.interfaces) ? raw.interfaces : [];
  const ips = Array.isArray(raw.ips) ? raw.ips : [];
  return {
    cniVersion: String(raw.cniVersion ?? "1.0.0"),
    interfaces: interfaces.map((i: Record<string, unknown>) => ({
      name: String(i.name ?? ""),
      ...(i.mac ? { mac: String(i.mac) } : {}),
      ...(i.sandbox ? { sandbox: String(i.sandbox) } : {}),
    })),
    ips: ips.map((ip: Record<string, unknown>) => {
      if (typeof ip.address !== "string") {
        throw systemError(`CNI plugin result has an address that is not a string: ${ip.address}`);
      }
      return {
        address: ip.address,
        ...(typeof ip.gateway === "string" ? { gateway: ip.gateway } : {}),
        ...(typeof ip.interface === "number" ? { interface: ip.interface } : {}),
      };
    }),
    routes: Array.isArray(raw.routes) ? raw.routes as CniResult["routes"] : [],
    dns: typeof raw.dns === "object" && raw.dns !== null ? raw.dns as Record<string, unknown> : {},
  };
}

/** The container-side address of `result` on interface `ifName`, with its MAC. */
export function containerAddress(
  result: CniResult,
  ifName: string,
): { address: string; gateway: string; mac: string } | undefined {
  for (const ip of result.ips) {
    const iface = ip.interface === undefined ? undefined : result.interfaces[ip.interface];
    if (iface && (iface.name !== ifName || !iface.sandbox)) continue;
    // IPv4 only: the networks pouch makes have no IPv6 ranges.
    if (ip.address.includes(":")) continue;
    const mac = iface?.mac ??
      result.interfaces.find((i) => i.name === ifName && i.sandbox)?.mac ?? "";
    return { address: ip.address, gateway: ip.gateway ?? "", mac };
  }
  return undefined;
}

function emptyResult(cniVersion: string): CniResult {
  return { cniVersion, interfaces: [], ips: [], routes: [], dns: {} };
}

/** `CNI_ARGS`: `K=V;K=V`, with `IgnoreUnknown=1` so plugins skip the keys they do not know. */
function formatArgs(args: Record<string, string> | undefined): string {
  if (!args || Object.keys(args).length === 0) return "";
  return ["IgnoreUnknown=1", ...Object.entries(args).map(([k, v]) => `${k}=${v}`)].join(";");
}

/** The error of a plugin that exited non-zero: its JSON error if it printed one. */
export function pluginFailure(
  plugin: string,
  result: { code: number; stdout: string; stderr: string },
): CniError {
  try {
    const parsed = JSON.parse(result.stdout) as { code?: number; msg?: string; details?: string };
    if (typeof parsed.msg === "string") {
      return new CniError(plugin, {
        code: parsed.code ?? result.code,
        msg: parsed.msg,
        details: parsed.details,
      });
    }
  } catch {
    // Not JSON: fall back to what it printed.
  }
  const text = (result.stdout + result.stderr).trim() || `exit code ${result.code}`;
  return new CniError(plugin, { code: 999, msg: text });
}

async function runProcess(
  path: string,
  input: { env: Record<string, string>; stdin: string },
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(path, {
    env: input.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input.stdin));
  await writer.close();
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Network configurations from a CNI configuration directory (`/etc/cni/net.d`), read as the
 * kubelet and containerd read it: the files ending in `.conflist`, `.conf` or `.json`, sorted by
 * name; the first one that holds a valid configuration is the network. A `.conf` or `.json` file
 * holds a single plugin's configuration and becomes a list of one, as libcni's
 * `ConfListFromConf` makes it.
 *
 * A file that is not valid is skipped with its reason (the kubelet's older CNI code did the
 * same; containerd fails instead), so that one broken file does not take the node's network
 * down while a good one follows it.
 *
 * @module
 */
import { invalidArgument } from "../engine/errors.ts";
import type { NetworkConfigList, PluginConfig } from "./cni.ts";

/** The extensions of network configuration files, as libcni's `ConfFiles` filters them. */
const EXTENSIONS = [".conflist", ".conf", ".json"];

/** A network configuration list and the file it came from. */
export interface LoadedNetworkConfig {
  /** The file's path. */
  file: string;
  /** The list (a single plugin's file made into a list of one). */
  list: NetworkConfigList;
}

/** What a configuration directory holds. */
export interface ConfDirScan {
  /** The network: the first valid configuration by file name; undefined when there is none. */
  config?: LoadedNetworkConfig;
  /** Files before it (or all, when none is valid) that were skipped, with the reason. */
  skipped: Array<{ file: string; reason: string }>;
}

/** Reads `dir` (a missing directory holds nothing) and picks its network configuration. */
export async function loadNetworkConfig(dir: string): Promise<ConfDirScan> {
  const files: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) continue;
      if (EXTENSIONS.some((ext) => entry.name.endsWith(ext))) files.push(entry.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
      return { skipped: [] };
    }
    throw err;
  }
  // Go's sort.Strings order (bytes): file names are ASCII in practice, where it is JS's too.
  files.sort();
  const skipped: ConfDirScan["skipped"] = [];
  for (const name of files) {
    const file = `${dir.replace(/\/+$/, "")}/${name}`;
    try {
      const text = await Deno.readTextFile(file);
      return { config: { file, list: parseNetworkConfig(text, name) }, skipped };
    } catch (err) {
      skipped.push({ file, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return { skipped };
}

/**
 * Parses a configuration file's text: a list (`.conflist`) or a single plugin's configuration
 * (`.conf`, `.json`), which becomes a list of one.
 *
 * @throws InvalidArgument naming what is wrong.
 */
export function parseNetworkConfig(text: string, fileName: string): NetworkConfigList {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`${fileName}: not JSON: ${err instanceof Error ? err.message : err}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalidArgument(`${fileName}: not a JSON object`);
  }
  const raw = data as Record<string, unknown>;
  const name = raw.name;
  if (typeof name !== "string" || name === "") {
    throw invalidArgument(`${fileName}: the network has no name`);
  }
  const cniVersion = typeof raw.cniVersion === "string" ? raw.cniVersion : "";
  if (!supportedVersion(cniVersion)) {
    // Results before 0.3.0 have another shape (`ip4`), which nothing here reads.
    throw invalidArgument(`${fileName}: cniVersion "${cniVersion}" is not supported (0.3.0+)`);
  }
  let plugins: unknown[];
  if (fileName.endsWith(".conflist")) {
    if (!Array.isArray(raw.plugins) || raw.plugins.length === 0) {
      throw invalidArgument(`${fileName}: the list has no plugins`);
    }
    plugins = raw.plugins;
  } else {
    // A single plugin: its own object is the plugin's configuration.
    plugins = [raw];
  }
  return {
    cniVersion,
    name,
    plugins: plugins.map((plugin, i) => {
      if (typeof plugin !== "object" || plugin === null || Array.isArray(plugin)) {
        throw invalidArgument(`${fileName}: plugin ${i} is not an object`);
      }
      const type = (plugin as Record<string, unknown>).type;
      if (typeof type !== "string" || type === "") {
        throw invalidArgument(`${fileName}: plugin ${i} has no type`);
      }
      return plugin as PluginConfig;
    }),
    ...(raw.disableCheck === true ? { disableCheck: true } : {}),
  };
}

/** Whether a list of `cniVersion` can be CHECKed (CHECK came with 0.4.0) and is not disabled. */
export function supportsCheck(list: NetworkConfigList): boolean {
  if (list.disableCheck) return false;
  const [major = 0, minor = 0] = list.cniVersion.split(".").map(Number);
  return major > 0 || minor >= 4;
}

function supportedVersion(version: string): boolean {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!match) return false;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  return major > 0 || minor >= 3;
}

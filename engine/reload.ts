/**
 * SIGHUP: the config file (and the daemon's own flags, which still win) read again, and what
 * can change while the daemon runs applied in place: registry mirrors, insecure registries and
 * the log level (`debug`, `log-level`). Other changes are named in a warning: they need a
 * restart.
 *
 * @module
 */
import { type DaemonConfig, loadConfig } from "./config.ts";
import { messageOf } from "./errors.ts";
import type { Logger } from "./log.ts";
import { notifyManager } from "./notify.ts";
import type { RegistryConfig } from "./registry.ts";

/** The keys {@link reloadConfig} applies at run time. */
const LIVE_KEYS = ["registryMirrors", "insecureRegistries", "debug", "logLevel"] as const;
/** Keys that differ on every load or are not settings. */
const IGNORED_KEYS = new Set(["configFile"]);

/** What a reload changes. */
export interface ReloadTargets {
  /** The daemon's running config, updated in place (`info` reads it). */
  config: DaemonConfig;
  /** The registry client's settings, updated in place. */
  registry: RegistryConfig;
  log: Logger;
}

/**
 * Loads the config again from `args` (the daemon's flags) and applies its live keys to
 * `targets`. Returns the keys changed; a config that does not load changes nothing and is
 * logged as an error.
 */
export async function reloadConfig(args: string[], targets: ReloadTargets): Promise<string[]> {
  const { config, registry, log } = targets;
  let next: DaemonConfig | "help";
  try {
    next = await loadConfig(args);
  } catch (err) {
    log.error("config reload failed: keeping the running config", { error: messageOf(err) });
    return [];
  }
  if (next === "help") return [];
  const same = (key: keyof DaemonConfig) =>
    JSON.stringify(config[key]) === JSON.stringify(next[key]);
  const changed = LIVE_KEYS.filter((key) => !same(key));
  const live = new Set<string>(LIVE_KEYS);
  const needRestart = (Object.keys(next) as Array<keyof DaemonConfig>)
    .filter((key) => !live.has(key) && !IGNORED_KEYS.has(key) && !same(key));
  config.registryMirrors = next.registryMirrors;
  config.insecureRegistries = next.insecureRegistries;
  config.debug = next.debug;
  config.logLevel = next.logLevel;
  registry.mirrors = next.registryMirrors;
  registry.insecure = next.insecureRegistries;
  log.level = next.debug ? "debug" : next.logLevel;
  log.info("config reloaded", {
    changed: changed.join(",") || "nothing",
    mirrors: JSON.stringify(next.registryMirrors),
    insecure: next.insecureRegistries.join(","),
    level: log.level,
  });
  if (needRestart.length > 0) {
    log.warn("config changes that need a daemon restart were not applied", {
      keys: needRestart.join(","),
    });
  }
  return changed;
}

/**
 * Reloads on each SIGHUP (one at a time), telling systemd `RELOADING=1` before and `READY=1`
 * after. Returns the function that removes the listener.
 */
export function reloadOnSighup(args: string[], targets: ReloadTargets): () => void {
  let running: Promise<unknown> | undefined;
  const onHup = () => {
    if (running) {
      targets.log.warn("SIGHUP ignored: a reload is running");
      return;
    }
    targets.log.info("SIGHUP: reloading the config", { file: targets.config.configFile });
    notifyManager("RELOADING=1\nSTATUS=reloading the config", targets.log);
    running = reloadConfig(args, targets).finally(() => {
      running = undefined;
      notifyManager("READY=1\nSTATUS=serving", targets.log);
    });
  };
  Deno.addSignalListener("SIGHUP", onHup);
  return () => Deno.removeSignalListener("SIGHUP", onHup);
}

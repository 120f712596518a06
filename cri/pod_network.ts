/**
 * Pod networks from the CNI configuration directory (`--cni-conf-dir`, `/etc/cni/net.d`), as
 * the kubelet expects of a CRI runtime: when the directory holds a network configuration, a
 * pod's sandbox gets a network namespace of its own with nothing in it (the network manager's
 * `none` mode) and the configuration's plugins (from `--cni-bin-dir`) attach it: CNI ADD when
 * the pod runs, DEL when it stops (again, harmlessly, when it is removed), CHECK after a daemon
 * restart. Port mappings reach the plugins that declare the `portMappings` capability (portmap),
 * DNS settings those that declare `dns`. When the directory holds no configuration, pods get
 * pouch's default bridge network from the network manager, as before.
 *
 * What each pod got is kept in its sandbox record ({@link PodCniState}): DEL and CHECK run with
 * the configuration and the result of the ADD even if the directory changed since.
 *
 * @module
 */
import { messageOf } from "../engine/errors.ts";
import type { Logger } from "../engine/log.ts";
import {
  type CniResult,
  CniRunner,
  containerAddress,
  DEFAULT_CNI_BIN_DIRS,
  type NetworkConfigList,
} from "../network/cni.ts";
import { type ConfDirScan, loadNetworkConfig, supportsCheck } from "../network/cni_conf.ts";
import { sweepRules } from "../network/iptables.ts";
import { isNetnsMounted } from "../network/netns.ts";
import type { PodSandboxConfig } from "./types.ts";

/** The interface pods get: the kubelet's and containerd's name. */
export const POD_INTERFACE = "eth0";

/** A pod's attachment to the configuration directory's network (in its sandbox record). */
export interface PodCniState {
  /** The configuration file it came from. */
  file: string;
  /** The configuration used on ADD, used again on DEL and CHECK. */
  list: NetworkConfigList;
  /** The sandbox's network namespace. */
  netns: string;
  /** `CNI_ARGS`: the kubelet's `K8S_POD_*` keys. */
  args: Record<string, string>;
  /** `runtimeConfig` values: `portMappings`, `dns`. */
  capabilityArgs: Record<string, unknown>;
  /**
   * `adding` until the ADD finished (a crash in between leaves it, and the DEL at stop or
   * remove undoes what the plugins did); `ready`; `removed` once DEL ran.
   */
  phase: "adding" | "ready" | "removed";
  /** The ADD's result. */
  result?: CniResult;
}

/** Options of {@link PodNetworks}. */
export interface PodNetworksOptions {
  /** The configuration directory (`--cni-conf-dir`). */
  confDir: string;
  /** Where the plugins are (`--cni-bin-dir`). */
  binDirs?: string[];
  /** Runs the plugins; by default a {@link CniRunner} over `binDirs`. */
  cni?: Pick<CniRunner, "add" | "del" | "check">;
  log: Logger;
}

/** Attaches pods to the configuration directory's network. */
export class PodNetworks {
  readonly #confDir: string;
  readonly #binDirs: string[];
  readonly #cni: Pick<CniRunner, "add" | "del" | "check">;
  readonly #log: Logger;
  /** The last file reported, so that a change of network is logged once. */
  #lastFile: string | undefined;

  /** Pod networks from `options.confDir`. */
  constructor(options: PodNetworksOptions) {
    this.#confDir = options.confDir;
    this.#binDirs = options.binDirs ?? DEFAULT_CNI_BIN_DIRS;
    this.#cni = options.cni ?? new CniRunner({ binDirs: this.#binDirs });
    this.#log = options.log;
  }

  /** The configuration directory. */
  get confDir(): string {
    return this.#confDir;
  }

  /** The plugin directories. */
  get binDirs(): string[] {
    return [...this.#binDirs];
  }

  /**
   * The directory's network now: read on every use, as the kubelet's CNI code watches the
   * directory, so that a network installed after the daemon started (a CNI daemonset) is used.
   */
  async scan(): Promise<ConfDirScan> {
    const scan = await loadNetworkConfig(this.#confDir);
    const file = scan.config?.file ?? "";
    if (file !== (this.#lastFile ?? "")) {
      this.#lastFile = file;
      if (scan.config) {
        this.#log.info("pods use a CNI network", { file, network: scan.config.list.name });
      } else {
        this.#log.info("no CNI network configuration: pods use the default bridge", {
          dir: this.#confDir,
        });
      }
      for (const { file, reason } of scan.skipped) {
        this.#log.warn("skipped a CNI network configuration", { file, reason });
      }
    }
    return scan;
  }

  /** A pod's attachment before its ADD: what the plugins will be given. */
  plan(
    config: NonNullable<ConfDirScan["config"]>,
    pod: { id: string; netns: string; config: PodSandboxConfig },
  ): PodCniState {
    const metadata = pod.config.metadata;
    const capabilityArgs: Record<string, unknown> = {};
    // As containerd does: only mappings with a host port reach portmap.
    const portMappings = (pod.config.portMappings ?? [])
      .filter((mapping) => (mapping.hostPort ?? 0) > 0)
      .map((mapping) => ({
        hostPort: mapping.hostPort,
        containerPort: mapping.containerPort,
        protocol: (mapping.protocol ?? "TCP").toLowerCase(),
        hostIP: mapping.hostIp ?? "",
      }));
    if (portMappings.length > 0) capabilityArgs.portMappings = portMappings;
    const dns = pod.config.dnsConfig;
    if (dns && (dns.servers?.length || dns.searches?.length || dns.options?.length)) {
      capabilityArgs.dns = {
        servers: dns.servers ?? [],
        searches: dns.searches ?? [],
        options: dns.options ?? [],
      };
    }
    return {
      file: config.file,
      list: config.list,
      netns: pod.netns,
      args: {
        K8S_POD_NAMESPACE: metadata?.namespace ?? "",
        K8S_POD_NAME: metadata?.name ?? "",
        K8S_POD_INFRA_CONTAINER_ID: pod.id,
        K8S_POD_UID: metadata?.uid ?? "",
      },
      capabilityArgs,
      phase: "adding",
    };
  }

  /** CNI ADD of the pod `id`; returns its state with the result. */
  async add(id: string, state: PodCniState): Promise<PodCniState> {
    const result = await this.#cni.add(state.list, this.#runtimeConf(id, state, state.netns));
    if (!containerAddress(result, POD_INTERFACE)) {
      this.#log.warn("the CNI network gave the pod no IPv4 address", {
        id: id.slice(0, 12),
        network: state.list.name,
      });
    }
    return { ...state, result, phase: "ready" };
  }

  /**
   * CNI DEL of the pod `id` (a no-op once done): into its namespace while that is there, else
   * with an empty `CNI_NETNS` as the spec says, then the iptables rules the bridge plugin could
   * not find without the namespace. Returns the state marked removed.
   */
  async del(id: string, state: PodCniState): Promise<PodCniState> {
    if (state.phase === "removed") return state;
    const mounted = await isNetnsMounted(state.netns).catch(() => false);
    await this.#cni.del(
      state.list,
      this.#runtimeConf(id, state, mounted ? state.netns : ""),
      state.result,
    );
    if (!mounted) {
      await sweepRules(new Set([state.list.name]), (containerId) => containerId !== id)
        .catch(() => 0);
    }
    return { ...state, phase: "removed" };
  }

  /** CNI CHECK of a ready pod (when the version has it): logs what the plugins find wrong. */
  async check(id: string, state: PodCniState): Promise<void> {
    if (state.phase !== "ready" || !state.result || !supportsCheck(state.list)) return;
    try {
      await this.#cni.check(state.list, this.#runtimeConf(id, state, state.netns), state.result);
    } catch (err) {
      this.#log.warn("CNI CHECK of a pod failed: its network may need the pod recreated", {
        id: id.slice(0, 12),
        network: state.list.name,
        error: messageOf(err),
      });
    }
  }

  #runtimeConf(id: string, state: PodCniState, netns: string) {
    return {
      containerId: id,
      netns,
      ifName: POD_INTERFACE,
      args: state.args,
      capabilityArgs: state.capabilityArgs,
    };
  }
}

/** The pod's IPv4 address from its ADD's result, or empty. */
export function podAddress(state: PodCniState | undefined): string {
  if (!state?.result || state.phase !== "ready") return "";
  return containerAddress(state.result, POD_INTERFACE)?.address.split("/")[0] ?? "";
}

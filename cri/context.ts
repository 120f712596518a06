/**
 * What every group of CRI RPCs shares: the engine's managers, the CRI's own records in the
 * daemon's store (buckets `cri_sandbox` and `cri_container`: what the engine's container records
 * do not hold, such as annotations and the pod's config), lookups by ID or unique prefix, and the
 * reconciliation after a daemon restart.
 *
 * @module
 */
import type { Containerd } from "../engine/containerd.ts";
import type { Container, ContainerManager } from "../engine/container.ts";
import { invalidArgument, notFound } from "../engine/errors.ts";
import type { ExecManager } from "../engine/exec.ts";
import type { ImageManager } from "../engine/image.ts";
import type { Logger } from "../engine/log.ts";
import type { PluginManager } from "../engine/plugins.ts";
import type { ContainerMonitor } from "../engine/stats.ts";
import type { Bucket, Store } from "../engine/store.ts";
import type { CriContainerRecord, SandboxRecord } from "./convert.ts";
import { PodNetworks } from "./pod_network.ts";

/** The engine's parts the CRI drives (the daemon passes its own). */
export interface CriBackend {
  client: Pick<Containerd, "tasks" | "snapshots">;
  containers: Pick<
    ContainerManager,
    "create" | "start" | "stop" | "remove" | "get" | "list" | "reopenLog" | "networkSettings"
  >;
  exec: Pick<ExecManager, "create" | "start" | "inspect" | "resize">;
  images: Pick<ImageManager, "list" | "resolve" | "pull" | "remove" | "inspect">;
  monitor: Pick<ContainerMonitor, "stats">;
  store: Store;
  log: Logger;
  /** Site plugins' CRI hooks, if any are loaded. */
  plugins?: Pick<PluginManager, "beforeCriCreateContainer">;
}

/** Settings of the CRI (the daemon's flags). */
export interface CriSettings {
  /** The image of pod sandboxes' infra containers. */
  sandboxImage: string;
  /**
   * Whether pods may have a network of their own: the daemon has a network manager, which the
   * sandbox's `bridge` network mode and its containers' `container:ID` mode need.
   */
  podNetworking: boolean;
  /** Where image layers live (ImageFsInfo's mount point). */
  imageFsPath: string;
  /**
   * The CNI configuration directory (`--cni-conf-dir`): when it holds a network, pods get it
   * instead of the default bridge (see `pod_network.ts`). No directory: always the bridge.
   */
  cniConfDir?: string;
  /** Where the CNI plugins are (`--cni-bin-dir`). */
  cniBinDirs?: string[];
}

/** The shared state of the CRI's RPC groups. */
export class CriContext {
  readonly backend: CriBackend;
  readonly settings: CriSettings;
  readonly sandboxes: Bucket<SandboxRecord>;
  readonly containers: Bucket<CriContainerRecord>;
  /** The pods' networks from the CNI configuration directory, when pods may have networks. */
  readonly podNetworks: PodNetworks | undefined;

  /** The context over `backend`'s store. */
  constructor(backend: CriBackend, settings: CriSettings) {
    this.backend = backend;
    this.settings = settings;
    this.podNetworks = settings.podNetworking && settings.cniConfDir
      ? new PodNetworks({
        confDir: settings.cniConfDir,
        binDirs: settings.cniBinDirs,
        log: backend.log,
      })
      : undefined;
    this.sandboxes = backend.store.bucket<SandboxRecord>("cri_sandbox");
    this.containers = backend.store.bucket<CriContainerRecord>("cri_container");
  }

  /** The sandbox `ref` (ID or unique prefix); throws NotFound or InvalidArgument. */
  sandbox(ref: string): SandboxRecord {
    return resolve(this.sandboxes, ref, "pod sandbox");
  }

  /** The pod container `ref` (ID or unique prefix); throws NotFound or InvalidArgument. */
  container(ref: string): CriContainerRecord {
    return resolve(this.containers, ref, "container");
  }

  /** The engine's record of container `id`, or undefined when it is gone. */
  engineContainer(id: string): Container | undefined {
    try {
      return this.backend.containers.get(id);
    } catch {
      return undefined;
    }
  }

  /** Whether the sandbox is ready: not stopped, and its infra container runs. */
  sandboxReady(sandbox: SandboxRecord): boolean {
    return sandbox.state === "ready" &&
      this.engineContainer(sandbox.id)?.state.Status === "running";
  }

  /**
   * After a daemon restart (the engine has re-adopted its containers): forgets CRI records
   * whose engine container is gone, and marks sandboxes whose infra container no longer runs
   * as not ready, as the kubelet expects of a sandbox that died.
   */
  restore(): void {
    for (const record of this.containers.list()) {
      if (!this.engineContainer(record.id)) this.containers.delete(record.id);
    }
    for (const sandbox of this.sandboxes.list()) {
      const infra = this.engineContainer(sandbox.id);
      if (!infra) {
        this.sandboxes.delete(sandbox.id);
      } else if (sandbox.state === "ready" && infra.state.Status !== "running") {
        this.sandboxes.put(sandbox.id, { ...sandbox, state: "notready" });
      }
    }
  }
}

function resolve<T extends { id: string }>(bucket: Bucket<T>, ref: string, what: string): T {
  if (!ref) throw invalidArgument(`${what} ID is required`);
  const exact = bucket.find(ref);
  if (exact) return exact;
  const matches = /^[0-9a-f]+$/.test(ref)
    ? bucket.list().filter((record) => record.id.startsWith(ref))
    : [];
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw invalidArgument(`${what} ID prefix ${ref} is ambiguous`);
  throw notFound(`${what} ${ref} not found`);
}

/**
 * Pure conversions between CRI messages and the engine's shapes: pod and container configs into
 * Docker's create request (namespaces joined, security context, resources, mounts), container
 * records into CRI statuses, Docker's stats into CRI stats, and the list filters.
 *
 * @module
 */
import { invalidArgument, messageOf } from "../engine/errors.ts";
import type { Container } from "../engine/container.ts";
import type { CreateRequest } from "../engine/container.ts";
import type { StatsJson } from "../engine/stats.ts";
import type { PodCniState } from "./pod_network.ts";
import type { HostConfig } from "../engine/types.ts";
import type {
  ContainerSecurityContext,
  ContainerStateName,
  CriContainerConfig,
  LinuxResources,
  NamespaceOption,
  Opt,
  PodSandboxConfig,
  PodSandboxMetadata,
  SeccompContext,
  StringMap,
} from "./types.ts";

const utf8 = new TextDecoder();

/** Label on the engine's containers: `sandbox` or `container`, so lists can tell them apart. */
export const LABEL_TYPE = "io.pouch.cri.type";
/** Label on a pod's containers naming their sandbox. */
export const LABEL_SANDBOX_ID = "io.pouch.cri.sandbox-id";

/** What the CRI keeps of a pod sandbox (store bucket `cri_sandbox`). */
export interface SandboxRecord {
  /** The infra container's ID, which is the sandbox's. */
  id: string;
  config: PodSandboxConfig;
  /** Unix nanoseconds. */
  createdAt: number;
  runtimeHandler: string;
  /** The pod uses the host's network (`NamespaceOption.network == NODE`). */
  hostNetwork: boolean;
  /** `notready` once stopped: a stopped sandbox never runs again (the kubelet makes a new one). */
  state: "ready" | "notready";
  /** The pod's attachment to the CNI configuration directory's network, if it has one. */
  cni?: PodCniState;
}

/** What the CRI keeps of a pod's container (store bucket `cri_container`). */
export interface CriContainerRecord {
  id: string;
  sandboxId: string;
  config: CriContainerConfig;
  /** Unix nanoseconds. */
  createdAt: number;
  /** The CRI log's full path (`log_directory` + `log_path`); empty: none. */
  logPath: string;
}

/** `k8s_POD_name_namespace_uid_attempt`, the infra container's name as dockershim made it. */
export function sandboxName(metadata: PodSandboxMetadata): string {
  return safeName(
    ["k8s", "POD", metadata.name, metadata.namespace, metadata.uid, String(metadata.attempt)],
  );
}

/** `k8s_container_pod_namespace_uid_attempt`. */
export function containerName(
  sandbox: PodSandboxMetadata,
  container: { name: string; attempt: number },
): string {
  return safeName([
    "k8s",
    container.name,
    sandbox.name,
    sandbox.namespace,
    sandbox.uid,
    String(container.attempt),
  ]);
}

/** Joins parts with `_`, keeping only the characters container names allow. */
function safeName(parts: string[]): string {
  return parts.map((part) => part.replace(/[^a-zA-Z0-9_.-]/g, "-")).join("_");
}

/** Checks what RunPodSandbox needs; throws InvalidArgument. */
export function validateSandboxConfig(config: Opt<PodSandboxConfig>): PodSandboxConfig {
  if (!config) throw invalidArgument("config is required");
  const metadata = config.metadata;
  if (!metadata || !metadata.name || !metadata.namespace || !metadata.uid) {
    throw invalidArgument("sandbox config must include metadata with name, namespace and uid");
  }
  for (const mapping of config.portMappings ?? []) {
    if (!(mapping.containerPort > 0 && mapping.containerPort < 65536)) {
      throw invalidArgument(`invalid container port ${mapping.containerPort}`);
    }
  }
  return config;
}

/** Checks what CreateContainer needs; throws InvalidArgument. */
export function validateContainerConfig(config: Opt<CriContainerConfig>): CriContainerConfig {
  if (!config) throw invalidArgument("config is required");
  if (!config.metadata?.name) throw invalidArgument("container config must include metadata.name");
  if (!config.image?.image) throw invalidArgument("container config must include image.image");
  for (const mount of config.mounts ?? []) {
    if (!mount.containerPath.startsWith("/") || !mount.hostPath.startsWith("/")) {
      throw invalidArgument(
        `mount ${mount.hostPath}:${mount.containerPath}: both paths must be absolute`,
      );
    }
  }
  return config;
}

/** Whether the pod uses the host's network. */
export function usesHostNetwork(config: PodSandboxConfig): boolean {
  return config.linux?.securityContext?.namespaceOptions?.network === "NODE";
}

/** The engine's create request for a pod's infra container. */
export function sandboxCreateRequest(
  config: PodSandboxConfig,
  options: { image: string; networkMode: string },
): CreateRequest {
  const security = config.linux?.securityContext;
  const namespaces = security?.namespaceOptions;
  const hostNetwork = options.networkMode === "host";
  const dns = config.dnsConfig;
  const hostConfig: HostConfig = {
    NetworkMode: options.networkMode,
    IpcMode: namespaces?.ipc === "NODE" ? "host" : "shareable",
    PidMode: namespaces?.pid === "NODE" ? "host" : "",
    // A host-network pod shares the host's UTS namespace too, as the kubelet expects.
    UTSMode: hostNetwork ? "host" : "",
    CgroupParent: config.linux?.cgroupParent ?? "",
    Sysctls: { ...(config.linux?.sysctls ?? {}) },
    Privileged: security?.privileged === true,
    ReadonlyRootfs: security?.readonlyRootfs === true,
    Dns: dns?.servers ?? [],
    DnsSearch: dns?.searches ?? [],
    DnsOptions: dns?.options ?? [],
    GroupAdd: (security?.supplementalGroups ?? []).map(String),
    // As containerd's CRI: the pod's profile, unconfined when it names none (the kubelet then
    // wants none; with SeccompDefault it sends RuntimeDefault).
    SecurityOpt: seccompOf(security).kind === "unconfined" ? ["seccomp=unconfined"] : [],
    RestartPolicy: { Name: "no" },
  };
  const exposed: Record<string, Record<string, never>> = {};
  if (!hostNetwork && (config.portMappings ?? []).length > 0) {
    const bindings: NonNullable<HostConfig["PortBindings"]> = {};
    for (const mapping of config.portMappings ?? []) {
      const key = `${mapping.containerPort}/${(mapping.protocol ?? "TCP").toLowerCase()}`;
      exposed[key] = {};
      if (!mapping.hostPort) continue;
      (bindings[key] ??= []).push({
        HostIp: mapping.hostIp ?? "",
        HostPort: String(mapping.hostPort),
      });
    }
    hostConfig.PortBindings = bindings;
  }
  return {
    Image: options.image,
    Hostname: hostNetwork ? "" : config.hostname ?? "",
    User: userOf(security?.runAsUser?.value, security?.runAsGroup?.value),
    Labels: { ...(config.labels ?? {}), [LABEL_TYPE]: "sandbox" },
    ExposedPorts: exposed,
    HostConfig: hostConfig,
  };
}

/**
 * The seccomp profile the CRI asks for, as containerd reads it: `RuntimeDefault` (or the
 * deprecated `runtime/default`, `docker/default`) is the engine's default profile, `Localhost`
 * a profile file on the node, anything else (and no profile at all: the kubelet's default)
 * unconfined.
 */
export function seccompOf(
  security: Opt<SeccompContext>,
): { kind: "default" | "unconfined" } | { kind: "localhost"; path: string } {
  const profile = security?.seccomp;
  if (profile) {
    if (profile.profileType === "RuntimeDefault") return { kind: "default" };
    if (profile.profileType === "Localhost") {
      return { kind: "localhost", path: profile.localhostRef ?? "" };
    }
    return { kind: "unconfined" };
  }
  const path = security?.seccompProfilePath ?? "";
  if (path === "runtime/default" || path === "docker/default") return { kind: "default" };
  if (path.startsWith("localhost/")) return { kind: "localhost", path: path.slice(10) };
  return { kind: "unconfined" };
}

/**
 * Adds to `create` a Localhost seccomp profile that `security` names, read from the node (the
 * other kinds are in the create request already).
 */
export async function addLocalhostSeccomp(
  create: CreateRequest,
  security: Opt<SeccompContext>,
): Promise<void> {
  const seccomp = seccompOf(security);
  if (seccomp.kind !== "localhost") return;
  if (!seccomp.path.startsWith("/")) {
    throw invalidArgument(`seccomp profile ${seccomp.path}: want an absolute path`);
  }
  const profile = await Deno.readTextFile(seccomp.path).catch((err) => {
    throw invalidArgument(`seccomp profile ${seccomp.path}: ${messageOf(err)}`);
  });
  create.HostConfig ??= {};
  create.HostConfig.SecurityOpt = [...(create.HostConfig.SecurityOpt ?? []), `seccomp=${profile}`];
}

/** The engine's create request for a container of the pod `sandbox`. */
export function containerCreateRequest(
  config: CriContainerConfig,
  sandbox: SandboxRecord,
): CreateRequest {
  const security: Opt<ContainerSecurityContext> = config.linux?.securityContext;
  const join = `container:${sandbox.id}`;
  const podNamespaces: Opt<NamespaceOption> = sandbox.config.linux?.securityContext
    ?.namespaceOptions;
  const pid = security?.namespaceOptions?.pid ?? "CONTAINER";
  const hostConfig: HostConfig = {
    NetworkMode: sandbox.hostNetwork ? "host" : join,
    IpcMode: podNamespaces?.ipc === "NODE" ? "host" : join,
    UTSMode: sandbox.hostNetwork ? "host" : join,
    PidMode: pid === "NODE" ? "host" : pid === "POD" ? join : "",
    CgroupParent: sandbox.config.linux?.cgroupParent ?? "",
    Privileged: security?.privileged === true,
    ReadonlyRootfs: security?.readonlyRootfs === true,
    CapAdd: security?.capabilities?.addCapabilities ?? [],
    CapDrop: security?.capabilities?.dropCapabilities ?? [],
    GroupAdd: (security?.supplementalGroups ?? []).map(String),
    SecurityOpt: [
      ...(security?.noNewPrivs ? ["no-new-privileges"] : []),
      ...(seccompOf(security).kind === "unconfined" ? ["seccomp=unconfined"] : []),
    ],
    Binds: (config.mounts ?? []).map((mount) => {
      const options = [
        ...(mount.readonly ? ["ro"] : []),
        ...(mount.propagation === "PROPAGATION_BIDIRECTIONAL"
          ? ["rshared"]
          : mount.propagation === "PROPAGATION_HOST_TO_CONTAINER"
          ? ["rslave"]
          : []),
      ];
      const base = `${mount.hostPath}:${mount.containerPath}`;
      return options.length > 0 ? `${base}:${options.join(",")}` : base;
    }),
    Devices: (config.devices ?? []).map((device) => ({
      PathOnHost: device.hostPath,
      PathInContainer: device.containerPath,
      CgroupPermissions: device.permissions || "rwm",
    })),
    RestartPolicy: { Name: "no" },
    ...resourcesOf(config.linux?.resources),
  };
  // The kubelet sends empty lists for "the runtime's defaults"; only a non-empty one replaces.
  if ((security?.maskedPaths ?? []).length > 0) hostConfig.MaskedPaths = security!.maskedPaths;
  if ((security?.readonlyPaths ?? []).length > 0) {
    hostConfig.ReadonlyPaths = security!.readonlyPaths;
  }
  const command = config.command ?? [];
  const args = config.args ?? [];
  return {
    Image: config.image!.image,
    // Kubernetes' command replaces the image's entrypoint (and drops its CMD); args replace CMD.
    Entrypoint: command.length > 0 ? command : null,
    Cmd: args.length > 0 ? args : null,
    WorkingDir: config.workingDir ?? "",
    Env: (config.envs ?? []).map((env) =>
      `${env.key}=${typeof env.value === "string" ? env.value : utf8.decode(env.value)}`
    ),
    Tty: config.tty === true,
    OpenStdin: config.stdin === true,
    StdinOnce: config.stdinOnce === true,
    AttachStdin: config.stdin === true,
    User: security?.runAsUsername ||
      userOf(security?.runAsUser?.value, security?.runAsGroup?.value),
    Labels: {
      ...(config.labels ?? {}),
      [LABEL_TYPE]: "container",
      [LABEL_SANDBOX_ID]: sandbox.id,
    },
    HostConfig: hostConfig,
  };
}

/** `uid[:gid]`, or empty for the image's user. */
function userOf(uid: number | undefined, gid: number | undefined): string {
  if (uid === undefined || uid === null) return "";
  return gid === undefined || gid === null ? String(uid) : `${uid}:${gid}`;
}

/** Docker's resource fields of CRI's `LinuxContainerResources` (zero: unset). */
export function resourcesOf(resources: Opt<LinuxResources>): Partial<HostConfig> {
  if (!resources) return {};
  const out: Partial<HostConfig> = {};
  if (resources.cpuPeriod) out.CpuPeriod = resources.cpuPeriod;
  if (resources.cpuQuota) out.CpuQuota = resources.cpuQuota;
  if (resources.cpuShares) out.CpuShares = resources.cpuShares;
  if (resources.memoryLimitInBytes) out.Memory = resources.memoryLimitInBytes;
  if (resources.memorySwapLimitInBytes) out.MemorySwap = resources.memorySwapLimitInBytes;
  if (resources.oomScoreAdj) out.OomScoreAdj = resources.oomScoreAdj;
  if (resources.cpusetCpus) out.CpusetCpus = resources.cpusetCpus;
  if (resources.cpusetMems) out.CpusetMems = resources.cpusetMems;
  return out;
}

/** An OCI `LinuxResources` object for a running task's update (UpdateContainerResources). */
export function ociResourcesOf(resources: Opt<LinuxResources>): Record<string, unknown> {
  const cpu: Record<string, unknown> = {};
  const memory: Record<string, unknown> = {};
  if (resources?.cpuShares) cpu.shares = resources.cpuShares;
  if (resources?.cpuQuota) cpu.quota = resources.cpuQuota;
  if (resources?.cpuPeriod) cpu.period = resources.cpuPeriod;
  if (resources?.cpusetCpus) cpu.cpus = resources.cpusetCpus;
  if (resources?.cpusetMems) cpu.mems = resources.cpusetMems;
  if (resources?.memoryLimitInBytes) memory.limit = resources.memoryLimitInBytes;
  if (resources?.memorySwapLimitInBytes) memory.swap = resources.memorySwapLimitInBytes;
  return { cpu, memory };
}

/** Whether every pair of `selector` is in `labels`. */
export function matchesLabels(labels: Opt<StringMap>, selector: Opt<StringMap>): boolean {
  return Object.entries(selector ?? {}).every(([key, value]) => labels?.[key] === value);
}

/** Whether `id` matches a filter's ID: empty matches all; a prefix is enough (crictl sends one). */
export function matchesId(id: string, filter: Opt<string>): boolean {
  return !filter || id.startsWith(filter);
}

/** The CRI state of an engine container. */
export function containerStateOf(container: Container | undefined): ContainerStateName {
  switch (container?.state.Status) {
    case "created":
      return "CONTAINER_CREATED";
    case "running":
    case "paused":
    case "restarting":
      return "CONTAINER_RUNNING";
    case "exited":
    case "dead":
      return "CONTAINER_EXITED";
    default:
      return "CONTAINER_UNKNOWN";
  }
}

/** RFC 3339 time to Unix nanoseconds; 0 for Docker's zero time or nothing. */
export function toNanos(time: Opt<string>): number {
  const ms = Date.parse(time ?? "");
  if (!Number.isFinite(ms) || ms <= 0) return 0;
  // Keep the digits past milliseconds that RFC 3339 nanoseconds carry.
  const fraction = /\.(\d+)Z$/.exec(time ?? "")?.[1] ?? "";
  const extra = Number(fraction.padEnd(9, "0").slice(3, 9)) || 0;
  return ms * 1e6 + extra;
}

/** CRI's `reason` of an exited container, as containerd gives it. */
export function exitReasonOf(container: Container): string {
  if (container.state.Status !== "exited") return "";
  if (container.state.OOMKilled) return "OOMKilled";
  if (container.state.Error) return "Error";
  return container.state.ExitCode === 0 ? "Completed" : "Error";
}

/** CRI's CPU and memory usage from one of Docker's stats samples. */
export function usageOf(stats: StatsJson): {
  cpu: Record<string, unknown>;
  memory: Record<string, unknown>;
} {
  const timestamp = toNanos(stats.read) || Date.now() * 1e6;
  const memory = stats.memory_stats;
  const usage = memory.usage ?? 0;
  // The kubelet's working set: usage less the inactive file cache (cgroup v1 and v2 names).
  const inactive = memory.stats?.total_inactive_file ?? memory.stats?.inactive_file ?? 0;
  return {
    cpu: {
      timestamp,
      usageCoreNanoSeconds: { value: stats.cpu_stats.cpu_usage.total_usage },
    },
    memory: {
      timestamp,
      workingSetBytes: { value: Math.max(0, usage - inactive) },
      usageBytes: { value: usage },
      rssBytes: { value: memory.stats?.total_rss ?? memory.stats?.rss ?? memory.stats?.anon ?? 0 },
      pageFaults: { value: memory.stats?.total_pgfault ?? memory.stats?.pgfault ?? 0 },
      majorPageFaults: { value: memory.stats?.total_pgmajfault ?? memory.stats?.pgmajfault ?? 0 },
    },
  };
}

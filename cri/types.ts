/**
 * The CRI messages pouch reads and writes, as grpc-js hands them over with the conversion
 * options of {@link CONVERSION}: field names in lowerCamelCase, enums as their names, 64-bit
 * integers as numbers, absent sub-messages as `null`. Only the fields pouch uses are declared;
 * see `proto/api.proto` for the rest.
 *
 * @module
 */

/** How grpc-js converts messages both ways (the server and the tests' client agree on it). */
export const CONVERSION = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** A message field that may be absent. */
export type Opt<T> = T | null | undefined;

/** `map<string, string>`. */
export type StringMap = Record<string, string>;

/** `NamespaceMode`. */
export type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";

/** `NamespaceOption`. */
export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}

/** `Int64Value`. */
export interface Int64Value {
  value: number;
}

/** `PodSandboxMetadata`. */
export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt: number;
}

/** `DNSConfig`. */
export interface DnsConfig {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

/** `PortMapping`. */
export interface PortMapping {
  protocol?: "TCP" | "UDP" | "SCTP";
  containerPort: number;
  hostPort?: number;
  hostIp?: string;
}

/** The seccomp fields that a pod's and a container's security contexts both have. */
export interface SeccompContext {
  /** `SecurityProfile` (`profile_type` RuntimeDefault, Unconfined or Localhost). */
  seccomp?: Opt<{ profileType?: string; localhostRef?: string }>;
  /** Deprecated: `runtime/default`, `docker/default`, `unconfined`, `localhost/PATH`. */
  seccompProfilePath?: string;
}

/** `LinuxSandboxSecurityContext`. */
export interface SandboxSecurityContext extends SeccompContext {
  namespaceOptions?: Opt<NamespaceOption>;
  runAsUser?: Opt<Int64Value>;
  runAsGroup?: Opt<Int64Value>;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  privileged?: boolean;
}

/** `LinuxContainerResources`. */
export interface LinuxResources {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitInBytes?: number;
  oomScoreAdj?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  memorySwapLimitInBytes?: number;
}

/** `PodSandboxConfig`. */
export interface PodSandboxConfig {
  metadata?: Opt<PodSandboxMetadata>;
  hostname?: string;
  logDirectory?: string;
  dnsConfig?: Opt<DnsConfig>;
  portMappings?: PortMapping[];
  labels?: StringMap;
  annotations?: StringMap;
  linux?: Opt<{
    cgroupParent?: string;
    securityContext?: Opt<SandboxSecurityContext>;
    sysctls?: StringMap;
  }>;
}

/** `ContainerMetadata`. */
export interface ContainerMetadata {
  name: string;
  attempt: number;
}

/** `ImageSpec`. */
export interface ImageSpec {
  image: string;
  annotations?: StringMap;
  userSpecifiedImage?: string;
}

/** `Mount`. */
export interface CriMount {
  containerPath: string;
  hostPath: string;
  readonly?: boolean;
  selinuxRelabel?: boolean;
  propagation?:
    | "PROPAGATION_PRIVATE"
    | "PROPAGATION_HOST_TO_CONTAINER"
    | "PROPAGATION_BIDIRECTIONAL";
}

/** `Device`. */
export interface CriDevice {
  containerPath: string;
  hostPath: string;
  permissions?: string;
}

/** `LinuxContainerSecurityContext`. */
export interface ContainerSecurityContext extends SeccompContext {
  capabilities?: Opt<{ addCapabilities?: string[]; dropCapabilities?: string[] }>;
  privileged?: boolean;
  namespaceOptions?: Opt<NamespaceOption>;
  runAsUser?: Opt<Int64Value>;
  runAsGroup?: Opt<Int64Value>;
  runAsUsername?: string;
  readonlyRootfs?: boolean;
  supplementalGroups?: number[];
  noNewPrivs?: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
}

/** `ContainerConfig`. */
export interface CriContainerConfig {
  metadata?: Opt<ContainerMetadata>;
  image?: Opt<ImageSpec>;
  command?: string[];
  args?: string[];
  workingDir?: string;
  /** `KeyValue`: the value is `bytes` on the wire (binary env values), UTF-8 in practice. */
  envs?: Array<{ key: string; value: Uint8Array | string }>;
  mounts?: CriMount[];
  devices?: CriDevice[];
  labels?: StringMap;
  annotations?: StringMap;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: Opt<{
    resources?: Opt<LinuxResources>;
    securityContext?: Opt<ContainerSecurityContext>;
  }>;
}

/** `PodSandboxState`. */
export type SandboxState = "SANDBOX_READY" | "SANDBOX_NOTREADY";

/** `ContainerState`. */
export type ContainerStateName =
  | "CONTAINER_CREATED"
  | "CONTAINER_RUNNING"
  | "CONTAINER_EXITED"
  | "CONTAINER_UNKNOWN";

/** `AuthConfig`. */
export interface CriAuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

/**
 * Docker's API shapes (Moby API 1.41, plus PouchContainer's own fields), as the engine receives
 * and returns them. Field names are Docker's, so these objects go on the wire unchanged.
 *
 * @module
 */

/** `Config` of `POST /containers/create`: what runs, independent of the host. */
export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, Record<string, never>>;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Healthcheck?: unknown;
  ArgsEscaped?: boolean;
  Image?: string;
  Volumes?: Record<string, Record<string, never>> | null;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  NetworkDisabled?: boolean;
  MacAddress?: string;
  OnBuild?: string[] | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number | null;
  Shell?: string[] | null;
  // PouchContainer's rich container fields.
  Rich?: boolean;
  RichMode?: string;
  InitScript?: string;
  /** pouch's own: a command run by `/bin/sh -c` before the container's command (rich mode). */
  InitCmd?: string;
  DiskQuota?: Record<string, string> | null;
  SpecificID?: string;
}

/** A resource limit (`--ulimit`). */
export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

/** A device mapping (`--device`). */
export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions: string;
}

/** A mount of `HostConfig.Mounts` (`--mount`). */
export interface MountSpec {
  Type: "bind" | "volume" | "tmpfs" | string;
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  /** Accepted and ignored, as Docker does on Linux. */
  Consistency?: string;
  /** `CreateMountpoint` creates a missing source instead of refusing it. */
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean } | null;
  /** A volume's driver and labels when it is created on demand; `NoCopy` skips the image's content. */
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string> | null;
    DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null;
  } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null;
}

/** `HostConfig` of `POST /containers/create`: how the container sits on this host. */
export interface HostConfig {
  Binds?: string[] | null;
  ContainerIDFile?: string;
  LogConfig?: { Type: string; Config?: Record<string, string> };
  NetworkMode?: string;
  PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }>> | null;
  RestartPolicy?: { Name: string; MaximumRetryCount?: number };
  AutoRemove?: boolean;
  VolumeDriver?: string;
  VolumesFrom?: string[] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  CgroupnsMode?: string;
  Dns?: string[] | null;
  DnsOptions?: string[] | null;
  DnsSearch?: string[] | null;
  ExtraHosts?: string[] | null;
  GroupAdd?: string[] | null;
  IpcMode?: string;
  Cgroup?: string;
  Links?: string[] | null;
  OomScoreAdj?: number;
  PidMode?: string;
  Privileged?: boolean;
  PublishAllPorts?: boolean;
  ReadonlyRootfs?: boolean;
  SecurityOpt?: string[] | null;
  StorageOpt?: Record<string, string> | null;
  Tmpfs?: Record<string, string> | null;
  UTSMode?: string;
  UsernsMode?: string;
  ShmSize?: number;
  Sysctls?: Record<string, string> | null;
  Runtime?: string;
  Isolation?: string;
  // Resources
  CpuShares?: number;
  Memory?: number;
  NanoCpus?: number;
  CgroupParent?: string;
  BlkioWeight?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpuRealtimePeriod?: number;
  CpuRealtimeRuntime?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  Devices?: DeviceMapping[] | null;
  DeviceCgroupRules?: string[] | null;
  KernelMemory?: number;
  MemoryReservation?: number;
  MemorySwap?: number;
  MemorySwappiness?: number | null;
  OomKillDisable?: boolean | null;
  PidsLimit?: number | null;
  Ulimits?: Ulimit[] | null;
  Init?: boolean | null;
  Mounts?: MountSpec[] | null;
  MaskedPaths?: string[] | null;
  ReadonlyPaths?: string[] | null;
  // PouchContainer's fields.
  EnableLxcfs?: boolean;
  /** pouch's own: OCI prestart hooks, each `PATH [ARG...]`, run on the host by the runtime. */
  PrestartHooks?: string[] | null;
  /** pouch's own: OCI poststop hooks, each `PATH [ARG...]`. */
  PoststopHooks?: string[] | null;
}

/** The OCI image configuration's `config` object (what the image says to run). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

/** An OCI image configuration blob (`application/vnd.oci.image.config.v1+json`). */
export interface ImageConfigBlob {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ImageRunConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: Array<
    { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }
  >;
}

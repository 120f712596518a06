/**
 * `GET /version` and `GET /info`: what the daemon says about itself and its host, in Docker's
 * shapes (the Docker CLI prints these fields).
 *
 * @module
 */
import type { ContainerManager } from "./container.ts";
import type { Containerd } from "./containerd.ts";
import type { DaemonConfig } from "./config.ts";
import type { ImageManager } from "./image.ts";
import type { LxcfsManager, RemountResult } from "./lxcfs.ts";
import { unavailable } from "./errors.ts";
import { API_VERSION, MIN_API_VERSION } from "./api/mod.ts";
import { BUILD_TIME, GIT_COMMIT, VERSION } from "./version.ts";

/** What containerd says of its version. */
type ContainerdVersion = Awaited<ReturnType<Containerd["version"]>>;

/** Builds the version and info answers. */
export class SystemInfo {
  readonly #config: DaemonConfig;
  readonly #client: Containerd;
  readonly #containers: ContainerManager;
  readonly #images: ImageManager;
  readonly #lxcfs: LxcfsManager | undefined;
  readonly #containerdPid: (() => number) | undefined;
  readonly #id = crypto.randomUUID();
  #containerdVersion: { pid: number; version: ContainerdVersion } | undefined;

  /** Info over the daemon's parts. */
  constructor(
    config: DaemonConfig,
    parts: {
      client: Containerd;
      containers: ContainerManager;
      images: ImageManager;
      lxcfs?: LxcfsManager;
      /**
       * The PID of the containerd the daemon supervises: its version is asked once per
       * process. Without it (a containerd of the host's), every `/version` asks.
       */
      containerdPid?: () => number;
    },
  ) {
    this.#lxcfs = parts.lxcfs;
    this.#containerdPid = parts.containerdPid;
    this.#config = config;
    this.#client = parts.client;
    this.#containers = parts.containers;
    this.#images = parts.images;
  }

  /** `POST /lxcfs/remount`: re-binds lxcfs's files in every running lxcfs container. */
  async remountLxcfs(): Promise<RemountResult> {
    if (!this.#lxcfs) throw unavailable("lxcfs is not available: the daemon has no lxcfs");
    return await this.#lxcfs.remountAll();
  }

  /** Docker's `/version` answer. */
  async version(): Promise<Record<string, unknown>> {
    const containerd = await this.#askContainerdVersion();
    const common = {
      Version: VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: GIT_COMMIT,
      GoVersion: `deno ${Deno.version.deno}`,
      Os: "linux",
      Arch: goArch(),
      KernelVersion: kernelVersion(),
      BuildTime: BUILD_TIME,
    };
    return {
      Platform: { Name: "pouch" },
      Components: [
        { Name: "Engine", Version: VERSION, Details: { ApiVersion: API_VERSION } },
        {
          Name: "containerd",
          Version: containerd.version,
          Details: { GitCommit: containerd.revision },
        },
      ],
      ...common,
    };
  }

  /** containerd's version; empty when containerd does not answer. */
  async #askContainerdVersion(): Promise<ContainerdVersion> {
    const pid = this.#containerdPid?.();
    const cached = this.#containerdVersion;
    if (cached && cached.pid === pid) return cached.version;
    try {
      const version = await this.#client.version();
      if (pid !== undefined) this.#containerdVersion = { pid, version };
      return version;
    } catch {
      return { version: "", revision: "" };
    }
  }

  /** Docker's `/info` answer. */
  async info(): Promise<Record<string, unknown>> {
    const containers = this.#containers.list();
    const count = (status: string) => containers.filter((c) => c.state.Status === status).length;
    const images = await this.#images.list({}).catch(() => []);
    const memTotal = await memTotalBytes();
    return {
      ID: this.#id,
      Containers: containers.length,
      ContainersRunning: count("running"),
      ContainersPaused: count("paused"),
      ContainersStopped: containers.length - count("running") - count("paused"),
      Images: images.length,
      Driver: this.#config.snapshotter,
      DriverStatus: [],
      Plugins: { Volume: ["local"], Network: ["host", "null"], Log: ["json-file"] },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      Debug: this.#config.debug,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: "json-file",
      CgroupDriver: "cgroupfs",
      CgroupVersion: await cgroupVersion(),
      NEventsListener: 0,
      KernelVersion: kernelVersion(),
      OperatingSystem: await operatingSystem(),
      OSVersion: "",
      OSType: "linux",
      Architecture: arch(),
      NCPU: navigator.hardwareConcurrency,
      MemTotal: memTotal,
      IndexServerAddress: "https://index.docker.io/v1/",
      RegistryConfig: registryConfig(this.#config),
      GenericResources: null,
      DockerRootDir: this.#config.homeDir,
      HttpProxy: "",
      HttpsProxy: "",
      NoProxy: "",
      Name: Deno.hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: VERSION,
      Runtimes: Object.fromEntries(
        Object.entries(this.#config.runtimes).map(([name, path]) => [name, { path }]),
      ),
      DefaultRuntime: this.#config.defaultRuntime,
      Swarm: { NodeID: "", NodeAddr: "", LocalNodeState: "inactive", ControlAvailable: false },
      LiveRestoreEnabled: true,
      Isolation: "",
      InitBinary: "",
      ContainerdCommit: { ID: "" },
      RuncCommit: { ID: "" },
      InitCommit: { ID: "" },
      SecurityOptions: [],
      Warnings: [],
      // PouchContainer's fields.
      LxcfsEnabled: this.#config.enableLxcfs,
      CriEnabled: this.#config.enableCri,
      CriListen: this.#config.enableCri ? this.#config.listenCri : "",
      ContainerdAddress: this.#config.containerd || `${this.#config.homeDir}/containerd`,
    };
  }
}

/**
 * Docker's `RegistryConfig`: Docker Hub's mirrors in `Mirrors`, every registry with mirrors or
 * listed as insecure in `IndexConfigs` (`Secure: false` for the insecure ones), loopback as the
 * insecure CIDR pouch always assumes. Read from the running config, which SIGHUP updates.
 */
function registryConfig(config: DaemonConfig): Record<string, unknown> {
  const indexes: Record<
    string,
    { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }
  > = {
    "docker.io": { Name: "docker.io", Mirrors: [], Secure: true, Official: true },
  };
  for (const [host, mirrors] of Object.entries(config.registryMirrors)) {
    indexes[host] ??= { Name: host, Mirrors: [], Secure: true, Official: false };
    indexes[host].Mirrors = mirrors.map((m) => `${m}/`);
  }
  for (const host of config.insecureRegistries) {
    indexes[host] ??= { Name: host, Mirrors: [], Secure: false, Official: false };
    indexes[host].Secure = false;
  }
  return {
    IndexConfigs: indexes,
    InsecureRegistryCIDRs: ["127.0.0.0/8"],
    Mirrors: (config.registryMirrors["docker.io"] ?? []).map((m) => `${m}/`),
  };
}

/** The architecture as Go names it (Docker's `/version` reports GOARCH). */
function goArch(): string {
  return Deno.build.arch === "x86_64" ? "amd64" : "arm64";
}

function arch(): string {
  return Deno.build.arch === "x86_64" ? "x86_64" : Deno.build.arch;
}

function kernelVersion(): string {
  try {
    return Deno.osRelease();
  } catch {
    return "";
  }
}

async function memTotalBytes(): Promise<number> {
  try {
    const text = await Deno.readTextFile("/proc/meminfo");
    const kb = /MemTotal:\s+(\d+)/.exec(text)?.[1];
    return kb ? Number(kb) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function operatingSystem(): Promise<string> {
  try {
    const text = await Deno.readTextFile("/etc/os-release");
    return /PRETTY_NAME="?([^"\n]+)"?/.exec(text)?.[1] ?? "Linux";
  } catch {
    return "Linux";
  }
}

async function cgroupVersion(): Promise<string> {
  try {
    await Deno.stat("/sys/fs/cgroup/cgroup.controllers");
    return "2";
  } catch {
    return "1";
  }
}

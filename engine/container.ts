/**
 * The container manager: create, start, stop, kill, pause, remove, rename, inspect and list
 * containers, on containerd's containers, snapshots and tasks.
 *
 * A container's status moves like this (persisted before any caller hears of it):
 *
 * ```
 *   (create) ──> created ──start──> running ──exit──> exited ──start──> running
 *                              running ──pause──> paused ──unpause──> running
 *   created | exited ──rm──> (gone)         running | paused ──rm -f──> (killed, gone)
 * ```
 *
 * Create completes or undoes: each step registers its undo, and a failure runs them all. A record
 * in phase `creating` found at start-up is a crash mid-create and is undone the same way.
 *
 * @module
 */
import type { Containerd, Mount } from "./containerd.ts";
import {
  conflict,
  EngineError,
  invalidArgument,
  isAlreadyExists,
  isConflict,
  isNotFound,
  isNotModified,
  kindOf,
  messageOf,
  notFound,
  notImplemented,
  notModified,
  systemError,
  unavailable,
} from "./errors.ts";
import { sleep } from "./sleep.ts";
import type { EventSink } from "./events.ts";
import type { Logger } from "./log.ts";
import { CriFileLog } from "./cri_log.ts";
import { concatBytes, frame, readLogBatches } from "./logs.ts";
import {
  canReadLogs,
  type LogConfig,
  NO_READ_MESSAGE,
  openLogDriver,
  resolveLogConfig,
} from "./log_drivers.ts";
import { randomId, randomName, validateName } from "./names.ts";
import {
  APP_UNIT,
  awaitInitStep,
  DEFAULT_STATIC_INIT,
  dockerInitSpecOpt,
  findImageInit,
  hasInitStep,
  hooksSpecOpt,
  type ImageInit,
  INIT_STEP_SHELL,
  resetInitStep,
  richModeOf,
  richSpecOpts,
  SYSTEMD_STOP_SIGNAL,
  usesImageInit,
  validateHooks,
  validateRich,
} from "./rich.ts";
import type { LxcfsManager } from "./lxcfs.ts";
import type { PluginManager } from "./plugins.ts";
import type { NetworkManager } from "../network/mod.ts";
import {
  readHostFile,
  renderHostNetworkHosts,
  renderHosts,
  renderResolvConf,
  writeNetworkFiles,
} from "../network/files.ts";
import { readRootfsFile, rootfsHas } from "./rootfs.ts";
import { parseSignal } from "./signals.ts";
import {
  buildSpec,
  type OciHooks,
  type OciSpec,
  parseCapabilityMask,
  resourcesOf,
  validateHostConfig,
} from "./spec.ts";
import {
  fifoPaths,
  makeFifos,
  OutputHub,
  type OutputListener,
  type OutputLog,
  OutputPump,
  StdinWriter,
} from "./stdio.ts";
import type { Bucket, Store } from "./store.ts";
import type { ContainerConfig, HostConfig, ImageConfigBlob } from "./types.ts";
import { faultPoint } from "./faults.ts";
import { resolveUser } from "./user.ts";
import { planUpgrade, type UpgradeRequest } from "./upgrade.ts";
import {
  attachVolumes,
  checkBindSources,
  createBindSources,
  type MountPoint,
  mountPointsOf,
  planMounts,
  specHostConfig,
  type VolumeAttacher,
} from "./volumes.ts";

/**
 * What a crashed upgrade is recovered from. `preparing`: the record is the old container and
 * `snapshotKey` the new rootfs (containerd may already hold the new spec); recovery goes back.
 * `committed`: the record is the new container and `snapshotKey` the old rootfs; recovery goes
 * forward.
 */
export interface UpgradeMarker {
  phase: "preparing" | "committed";
  /** The snapshot to remove once recovered. */
  snapshotKey: string;
  /** Whether the container ran before the upgrade (it runs again after). */
  wasRunning: boolean;
  /** The containerd container's fields before the upgrade. */
  previous: { image?: string; labels?: Record<string, string>; spec: unknown; snapshotKey: string };
}

/** A container's status, as Docker names them. */
export type Status =
  | "created"
  | "running"
  | "paused"
  | "restarting"
  | "removing"
  | "exited"
  | "dead";

/** Docker's `State` object. */
export interface ContainerState {
  Status: Status;
  Pid: number;
  ExitCode: number;
  Error: string;
  OOMKilled: boolean;
  StartedAt: string;
  FinishedAt: string;
}

/** The persisted record of a container. */
export interface Container {
  id: string;
  name: string;
  /** RFC 3339 creation time. */
  created: string;
  /** The image as the user named it. */
  image: string;
  /** The image's ID (`sha256:` + config digest). */
  imageId: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  path: string;
  args: string[];
  state: ContainerState;
  restartCount: number;
  /** The OCI runtime's name (`runc`). */
  runtime: string;
  snapshotter: string;
  snapshotKey: string;
  /** `creating` until create finished; a record left `creating` is a crash to undo. */
  phase: "creating" | "ready";
  /** Inspect's `Mounts`: the binds and the named volumes attached (detached on remove). */
  mounts?: MountPoint[];
  /** A rich container's init from its image (sbin-init and systemd modes). */
  imageInit?: ImageInit;
  /**
   * The config as the user gave it, before the image's was merged in: an upgrade keeps what the
   * user chose (an explicit entrypoint) and takes the rest from the new image.
   */
  userConfig?: ContainerConfig;
  /** The network namespace the spec joins, as the network manager gave it at create. */
  netnsPath?: string;
  /** The hosts, hostname and resolv.conf files bound into the container. */
  files?: { hosts: string; hostname: string; resolvConf: string };
  /** An upgrade in progress, for crash recovery (see {@link ContainerManager.upgrade}). */
  upgrade?: UpgradeMarker;
  /** Stopped by `stop`: `unless-stopped` and `on-failure` leave it until a manual start. */
  manuallyStopped?: boolean;
  /** Being removed (`rm -v` or not): a crash midway is finished at the next start. */
  removing?: { volumes: boolean };
  /**
   * Where the output goes in the kubelet's CRI log format instead of the json-file log
   * (containers created through the CRI); `pouch logs` then has nothing to show.
   */
  criLogPath?: string;
}

/** What the container manager needs of the image manager. */
export interface ImageResolver {
  /**
   * Resolves a name or ID to the image, unpacked (unless `checkUnpacked` is false: then the
   * caller finds out when it uses the layers). Throws NotFound.
   */
  resolve(ref: string, options?: { checkUnpacked?: boolean }): Promise<ResolvedImage>;
}

/** An image as the container manager uses it. */
export interface ResolvedImage {
  id: string;
  name: string;
  config: ImageConfigBlob;
  chainId: string;
}

/**
 * What the container manager needs of the network manager: a namespace, addresses, published
 * ports and network files at create, a check before each start, cleanup at remove, and the
 * inspect views.
 */
export type ContainerNetworking = Pick<
  NetworkManager,
  "setup" | "teardown" | "prepareStart" | "settings" | "portsSummary" | "refresh" | "netnsOf"
>;

/** Options of {@link ContainerManager}. */
export interface ContainerManagerOptions {
  client: Containerd;
  store: Store;
  images: ImageResolver;
  log: Logger;
  /** The daemon's home: containers' files live in `<home>/containers/<id>`. */
  home: string;
  snapshotter: string;
  /** OCI runtimes by name: the binary each runs. */
  runtimes: Record<string, string>;
  defaultRuntime: string;
  /** Where container events (create, start, die, ...) are reported. */
  events?: EventSink;
  /** The static init of rich containers; default {@link DEFAULT_STATIC_INIT}. */
  staticInit?: string;
  /** OCI hooks every container gets (the daemon config's `hooks`), before its own. */
  hooks?: OciHooks;
  /** How long a start waits for a rich container's init script; default 60 s. */
  initStepTimeoutMs?: number;
  /**
   * The volume manager, for `-v NAME:/path`, `--mount type=volume`, `--volumes-from` and the
   * image's VOLUMEs; without it named volumes are refused.
   */
  volumes?: VolumeAttacher;
  /** lxcfs (`HostConfig.EnableLxcfs`); without it such containers are refused. */
  lxcfs?: LxcfsManager;
  /** Containers get lxcfs unless they set `EnableLxcfs: false` (`--enable-lxcfs`). */
  enableLxcfs?: boolean;
  /** The daemon's log driver and options (`--log-driver`, `--log-opt`); default json-file. */
  logConfig?: LogConfig;
  /** Hook plugins' container hooks (see plugins.ts). */
  plugins?: Pick<PluginManager, "beforeCreate" | "beforeStart" | "afterStop">;
  /**
   * The network manager (networks, CNI, published ports); without it a container gets a
   * namespace of its own with only `lo` (`default`, `bridge`, `none`) or the host's.
   */
  networks?: ContainerNetworking;
}

/** `POST /containers/create`'s body. */
export interface CreateRequest extends ContainerConfig {
  HostConfig?: HostConfig;
  /** `EndpointsConfig`: per network, a static address (`--ip`) and aliases. */
  NetworkingConfig?: {
    EndpointsConfig?:
      | Record<
        string,
        { IPAMConfig?: { IPv4Address?: string } | null; Aliases?: string[] | null } | null
      >
      | null;
  } | null;
}

/** Conditions of `POST /containers/{id}/wait`. */
export type WaitCondition = "not-running" | "next-exit" | "removed";

/** A client attached to a container's streams. */
export interface AttachOptions {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  /** Receives output, already framed for the client (multiplexed unless the container has a TTY). */
  write: (bytes: Uint8Array) => void;
  /** The output ended or the container is gone: close the connection. */
  close: () => void;
}

/** The daemon's own limits, which bound what a container may be given. */
interface DaemonLimits {
  maxOomScoreAdj: number;
  nofileHard?: number;
  nprocHard?: number;
  capabilities: string[];
}

/** In-memory companions of a container that do not outlive the daemon. */
interface Live {
  hub: OutputHub;
  pump?: OutputPump;
  /** The log the pump writes, while the task runs (reopened by ReopenContainerLog). */
  log?: OutputLog;
  stdin?: StdinWriter;
  monitor?: AbortController;
  exitWaiters: Array<(code: number) => void>;
  removeWaiters: Array<(code: number) => void>;
  /** Serialises lifecycle operations on this container. */
  lock: Promise<void>;
  /** Input an attached client sent before the container started (its stdin was not open). */
  pendingInput: Array<Uint8Array | null>;
  /** A restart the restart policy scheduled, waiting for its back-off. */
  restartTimer?: ReturnType<typeof setTimeout>;
  /** The next back-off of the restart policy (Docker's: 100 ms doubling to 1 min). */
  restartDelayMs?: number;
  /** Set while stop, restart, remove or upgrade end the task on purpose: no policy restart. */
  holdRestart?: boolean;
  /** The last task was deleted when its exit was recorded: a removal need not try again. */
  taskDeleted?: boolean;
  /**
   * Set by create until the first start: no task can exist yet, and the rootfs mounts of
   * `snapshotKey` are the ones its Prepare answered, so the start asks containerd for neither.
   */
  created?: { snapshotKey: string; rootfs: Mount[] };
}

const LABEL_MANAGED = "io.pouch.managed";
/**
 * The lease every create prepares its snapshot under, until the containerd container holds it
 * (one lease for the daemon's life rather than a lease per create: a containerd call less on
 * every create).
 */
const CREATION_LEASE = "pouch-creating";
const DEFAULT_STOP_TIMEOUT = 10;
/** How long a failed signal waits for the exit that may explain it (see #signalUnlessExited). */
const SIGNAL_RACE_MS = 2000;
/** The resources of Docker's `UpdateConfig` that `update` changes. */
const UPDATABLE_RESOURCES = [
  "CpuShares",
  "Memory",
  "NanoCpus",
  "CpuPeriod",
  "CpuQuota",
  "CpusetCpus",
  "CpusetMems",
  "MemoryReservation",
  "MemorySwap",
  "PidsLimit",
  "BlkioWeight",
] as const satisfies readonly (keyof HostConfig)[];

/** `POST /containers/{id}/update`'s body: Docker's resources and restart policy. */
export type UpdateRequest =
  & Partial<Pick<HostConfig, (typeof UPDATABLE_RESOURCES)[number] | "RestartPolicy">>
  & Record<string, unknown>;

/** Docker's restart back-off. */
const RESTART_DELAY_MS = { first: 100, max: 60_000, resetAfter: 10_000 };

/** Creates, runs and removes containers. */
export class ContainerManager {
  readonly #client: Containerd;
  readonly #store: Store;
  readonly #records: Bucket<Container>;
  readonly #images: ImageResolver;
  readonly #log: Logger;
  readonly #home: string;
  readonly #snapshotter: string;
  readonly #runtimes: Record<string, string>;
  readonly #defaultRuntime: string;
  readonly #live = new Map<string, Live>();
  readonly #events: EventSink | undefined;
  readonly #staticInit: string;
  readonly #hooks: OciHooks;
  readonly #initStepTimeoutMs: number;
  readonly #volumes: VolumeAttacher | undefined;
  readonly #lxcfs: LxcfsManager | undefined;
  readonly #enableLxcfs: boolean;
  readonly #networks: ContainerNetworking | undefined;
  readonly #logConfig: LogConfig;
  readonly #plugins: ContainerManagerOptions["plugins"];
  #closing = false;
  #limits: DaemonLimits | undefined;
  /** See {@link CREATION_LEASE}. */
  #creationLeaseId?: Promise<string>;

  /** A manager over `options.client` and `options.store`. */
  constructor(options: ContainerManagerOptions) {
    this.#client = options.client;
    this.#store = options.store;
    this.#records = options.store.bucket<Container>("container");
    this.#images = options.images;
    this.#log = options.log;
    this.#home = options.home;
    this.#snapshotter = options.snapshotter;
    this.#runtimes = options.runtimes;
    this.#defaultRuntime = options.defaultRuntime;
    this.#events = options.events;
    this.#staticInit = options.staticInit ?? DEFAULT_STATIC_INIT;
    this.#hooks = options.hooks ?? {};
    this.#initStepTimeoutMs = options.initStepTimeoutMs ?? 60_000;
    this.#volumes = options.volumes;
    this.#lxcfs = options.lxcfs;
    this.#enableLxcfs = options.enableLxcfs ?? false;
    this.#networks = options.networks;
    this.#logConfig = options.logConfig ?? { Type: "json-file", Config: {} };
    this.#plugins = options.plugins;
  }

  /** The running containers that use lxcfs, with their init's pid (for remounting). */
  lxcfsUsers(): Array<{ id: string; pid: number }> {
    return this.list()
      .filter((c) => c.hostConfig.EnableLxcfs && c.state.Status === "running" && c.state.Pid > 0)
      .map((c) => ({ id: c.id, pid: c.state.Pid }));
  }

  /**
   * Reports an event about container `ref` (an exec's `exec_create: sh`, `exec_start: sh`,
   * `exec_die` with `exitCode`, ...) with the container's image, name and labels.
   */
  emitEvent(ref: string, action: string, extra: Record<string, string> = {}): void {
    this.#emit(this.get(ref), action, extra);
  }

  /** Reports a container event with Docker's attributes: image, name, labels, `extra`. */
  #emit(container: Container, action: string, extra: Record<string, string> = {}): void {
    this.#events?.emit({
      type: "container",
      action,
      id: container.id,
      attributes: {
        ...(container.config.Labels ?? {}),
        image: container.image,
        name: container.name,
        ...extra,
      },
    });
  }

  /** Inspect's `NetworkSettings` of a container (empty without a network manager). */
  networkSettings(id: string): Record<string, unknown> {
    return this.#networks?.settings(id) ?? emptyNetworkSettings();
  }

  /** `ps`'s `Ports` of a container. */
  portsSummary(id: string): unknown[] {
    return this.#networks?.portsSummary(id) ?? [];
  }

  /** The directory of a container's files (log, hosts, FIFOs). */
  dir(id: string): string {
    return `${this.#home}/containers/${id}`;
  }

  // --- lookups -------------------------------------------------------------------------------

  /** Finds a container by full ID, name or unique ID prefix; throws NotFound. */
  get(ref: string): Container {
    const name = ref.replace(/^\//, "");
    const exact = this.#records.find(name);
    if (exact && exact.phase === "ready") return exact;
    const owner = this.#store.nameOwner(name);
    if (owner) {
      const byName = this.#records.find(owner);
      if (byName && byName.phase === "ready") return byName;
    }
    if (/^[0-9a-f]+$/.test(name)) {
      const matches = this.#records.list().filter((c) =>
        c.phase === "ready" && c.id.startsWith(name)
      );
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1) {
        throw invalidArgument(`multiple IDs found with provided prefix: ${name}`);
      }
    }
    throw notFound(`No such container: ${ref}`);
  }

  /**
   * Every finished container record, as the store keeps it: frozen and shared, not copies, so
   * that `ps` does not parse every record per request. Callers only read them.
   */
  list(): Array<Readonly<Container>> {
    return this.#records.views().filter((c) => c.phase === "ready");
  }

  /** Whether some container uses image `imageId`; returns its ID. */
  imageUser(imageId: string): string | undefined {
    return this.list().find((c) => c.imageId === imageId)?.id;
  }

  // --- create --------------------------------------------------------------------------------

  /** Creates a container; returns its ID and warnings. Undoes every step on failure. */
  async create(
    request: CreateRequest,
    options: { name?: string; criLogPath?: string } = {},
  ): Promise<{ Id: string; Warnings: string[] }> {
    const warnings: string[] = [];
    // Plugins see the request as the client sent it, before any check (PouchContainer's PreCreate).
    if (this.#plugins) request = await this.#plugins.beforeCreate(request, { name: options.name });
    const { HostConfig: hostConfigIn, NetworkingConfig: networking, ...configIn } = request;
    const hostConfig: HostConfig = { ...(hostConfigIn ?? {}) };
    const config: ContainerConfig = { ...configIn };
    const userConfig: ContainerConfig = structuredClone(configIn);
    if (!config.Image) throw invalidArgument("config.Image is required: no image given");
    // Volumes get their host paths once attached; until then a placeholder lets the spec's
    // checks (destinations, modes, duplicates) run before anything is created.
    const mountsOf = (ref: string) => this.get(ref).mounts ?? [];
    const userMounts = planMounts(hostConfig, { mountsOf });
    if (userMounts.volumes.length > 0 && !this.#volumes) {
      throw invalidArgument("named volumes are not supported: the daemon has no volume manager");
    }
    validateHostConfig(specHostConfig(hostConfig, userMounts, (v) => `/volume/${v.name || "_"}`));
    await checkBindSources(hostConfig);
    validateRich(config);
    validateHooks(hostConfig);
    validateRestartPolicy(hostConfig);
    // Docker records the effective driver and options: inspect shows them, starts use them.
    hostConfig.LogConfig = resolveLogConfig(hostConfig.LogConfig, this.#logConfig);
    if (richModeOf(config) === "dumb-init" || (hostConfig.Init && !config.Rich)) {
      await this.#checkStaticInit();
    }
    // The daemon's default is recorded, so that inspect shows it and remounts find it.
    hostConfig.EnableLxcfs ??= this.#enableLxcfs;
    if (hostConfig.EnableLxcfs) {
      if (!this.#lxcfs) throw unavailable("lxcfs is not available: the daemon has no lxcfs");
      await this.#lxcfs.ensure();
    }
    hostConfig.NetworkMode ||= config.NetworkDisabled ? "none" : "default";
    const networkMode = hostConfig.NetworkMode;
    if (!this.#networks && !["default", "none", "host", "bridge"].includes(networkMode)) {
      throw invalidArgument(
        `network mode ${networkMode} is not supported: the daemon has no network manager`,
      );
    }
    const runtime = hostConfig.Runtime || this.#defaultRuntime;
    if (!this.#runtimes[runtime]) throw invalidArgument(`Unknown runtime specified ${runtime}`);
    hostConfig.Runtime = runtime;
    const requestedName = options.name ? validateName(options.name) : undefined;
    const id = config.SpecificID ? validateSpecificId(config.SpecificID) : randomId();
    if (this.#records.find(id)) throw conflict(`container id ${id} is already in use`);
    if (requestedName) this.#assertNameFree(requestedName);

    // Its layers are known to be unpacked only when the snapshot's Prepare finds them: the
    // check is a containerd call every create would pay (a missing one is unpacked below).
    const image = await this.#images.resolve(config.Image, { checkUnpacked: false });
    mergeImageConfig(config, image.config.config ?? {});
    const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])].filter((a, i) =>
      !(i === 0 && a === "")
    );
    // An image init needs no command: it runs the machine.
    if (args.length === 0 && !usesImageInit(config)) {
      throw invalidArgument("No command specified");
    }

    const undo: Array<() => Promise<void> | void> = [];
    try {
      const name = requestedName ?? this.#freeRandomName(id);
      const record: Container = {
        id,
        name,
        created: new Date().toISOString(),
        image: config.Image,
        imageId: image.id,
        config,
        userConfig,
        hostConfig,
        path: args[0] ?? "",
        args: args.slice(1),
        state: emptyState("created"),
        restartCount: 0,
        runtime,
        snapshotter: this.#snapshotter,
        snapshotKey: id,
        phase: "creating",
        ...(options.criLogPath ? { criLogPath: options.criLogPath } : {}),
      };
      this.#store.transaction(() => {
        this.#store.reserveName(name, id);
        this.#records.put(id, record);
      });
      undo.push(() =>
        this.#store.transaction(() => {
          this.#records.delete(id);
          this.#store.releaseName(name);
        })
      );
      faultPoint("create:recorded");

      const dir = this.dir(id);
      await Deno.mkdir(dir, { recursive: true, mode: 0o710 });
      undo.push(() => Deno.remove(dir, { recursive: true }).catch(() => {}));

      // The network (a namespace made by a process, CNI plugins) and the rootfs (a lease, then
      // the snapshot) do not depend on each other: they are made at once. Their undo steps are
      // pushed first and both are settled before any failure is thrown, so that an undo never
      // races a step still running.
      // Until the containerd container references the snapshot, only a lease keeps the garbage
      // collector (which runs after any image removal) from taking it.
      const leasing = this.#creationLease();
      const leased = { id, type: `snapshots/${this.#snapshotter}` };
      undo.push(async () => {
        const lease = await leasing.catch(() => undefined);
        if (lease) await this.#client.leases.deleteResource(lease, leased).catch(() => {});
      });
      undo.push(() => this.#client.snapshots.remove(this.#snapshotter, id).catch(() => {}));
      const preparing = leasing.then(async (lease) => {
        const prepare = () =>
          this.#client.snapshots.prepare(this.#snapshotter, id, {
            parent: image.chainId,
            labels: { [LABEL_MANAGED]: "true" },
            lease,
          });
        let mounts: Mount[];
        try {
          mounts = await prepare();
        } catch (err) {
          // The image's top layer is gone (collected, or never unpacked): resolving it again
          // unpacks what is missing.
          if (!isNotFound(err) || image.chainId === "") throw err;
          await this.#images.resolve(image.id);
          mounts = await prepare();
        }
        faultPoint("create:snapshot");
        return { lease, mounts };
      });
      const networks = this.#networks;
      // Persists its own records first, so that a crash from here on is undone at start-up.
      if (networks) undo.push(() => networks.teardown(id));
      const settingUp = networks
        ? networks.setup({
          id,
          name,
          dir,
          networkMode,
          hostname: config.Hostname ?? "",
          domainname: config.Domainname ?? "",
          extraHosts: hostConfig.ExtraHosts ?? [],
          dns: hostConfig.Dns ?? [],
          dnsSearch: hostConfig.DnsSearch ?? [],
          dnsOptions: hostConfig.DnsOptions ?? [],
          exposed: config.ExposedPorts ?? {},
          portBindings: hostConfig.PortBindings,
          publishAll: hostConfig.PublishAllPorts === true,
          endpoints: networking?.EndpointsConfig ?? undefined,
        }).then((sandbox) => {
          faultPoint("create:network");
          return sandbox;
        })
        : this.#localNetworkFiles(id, { dir, hostname: config.Hostname, networkMode });
      const [network, rootfs] = await Promise.allSettled([settingUp, preparing]);
      if (network.status === "rejected") throw network.reason;
      if (rootfs.status === "rejected") throw rootfs.reason;
      const { hostname, netnsPath, files } = network.value;
      const { lease, mounts } = rootfs.value;
      config.Hostname = hostname;

      record.netnsPath = netnsPath;
      record.files = files;
      const spec = await this.#materialize(record, {
        image,
        mounts,
        netnsPath,
        files,
        undo,
        warnings,
      });
      faultPoint("create:spec");

      await this.#client.containers.create({
        id,
        image: image.name,
        labels: { ...(config.Labels ?? {}), [LABEL_MANAGED]: "true" },
        runtime: {
          name: "io.containerd.runc.v2",
          options: { binaryName: this.#runtimes[runtime] },
        },
        spec,
        snapshotter: this.#snapshotter,
        snapshotKey: id,
      });
      undo.push(() => this.#client.containers.delete(id).catch(() => {}));
      faultPoint("create:containerd");

      record.phase = "ready";
      this.#records.put(id, record);
      this.#liveOf(id).created = { snapshotKey: id, rootfs: mounts };
      // The containerd container now holds the snapshot: out of the lease, without holding up
      // the answer (left in, it would only keep a snapshot that the removal deletes anyway).
      this.#client.leases.deleteResource(lease, leased).catch(() => {});
      this.#log.info("container created", { id: id.slice(0, 12), name });
      this.#emit(record, "create");
      return { Id: id, Warnings: warnings };
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch (undoErr) {
          this.#log.warn("undo of a failed create failed", { id, error: undoErr });
        }
      }
      throw err;
    }
  }

  /**
   * Everything of a container that comes from its image and config on a prepared rootfs
   * (`mounts`): the user, a rich container's init, its volumes (attached, with their undo
   * pushed on `options.undo`) and the OCI spec. Sets `record.mounts`, `record.imageInit` and
   * `record.path` for an image init. Used by create and upgrade.
   */
  async #materialize(
    record: Container,
    options: {
      image: ResolvedImage;
      mounts: Mount[];
      netnsPath: string | undefined;
      files: { hosts: string; hostname: string; resolvConf: string };
      undo: Array<() => Promise<void> | void>;
      warnings: string[];
      /** Volumes the container already has, reused where it would get new anonymous ones. */
      reuse?: readonly MountPoint[];
    },
  ): Promise<OciSpec> {
    const { id, config, hostConfig } = record;
    const { image, mounts, netnsPath, files, undo, warnings } = options;
    const dir = this.dir(id);
    const args = [record.path, ...record.args].filter((a) => a !== "");
    const mountsOf = (ref: string) => this.get(ref).mounts ?? [];
    const user = resolveUser(config.User, {
      passwd: await readRootfsFile(mounts, "/etc/passwd"),
      group: await readRootfsFile(mounts, "/etc/group"),
    }, hostConfig.GroupAdd ?? undefined);
    const runDir = `${dir}/rich`;
    let imageInit: ImageInit | undefined;
    if (usesImageInit(config)) {
      imageInit = await findImageInit(mounts, {
        mode: richModeOf(config)!,
        image: record.image,
        command: args,
      });
      // A non-systemd init's command is started by a shell just before the init.
      const launched = !imageInit.systemd && args.length > 0 && !imageInit.commandIsInit;
      if (launched && !await rootfsHas(mounts, INIT_STEP_SHELL)) {
        throw invalidArgument(
          `rich mode ${config.RichMode} starts the command with ${INIT_STEP_SHELL}, which ` +
            `image ${config.Image} does not have`,
        );
      }
      if (imageInit.systemd) config.StopSignal ||= SYSTEMD_STOP_SIGNAL;
      record.imageInit = imageInit;
      if (record.path === "") record.path = imageInit.path;
    }
    if (hasInitStep(config)) {
      if (!await rootfsHas(mounts, INIT_STEP_SHELL)) {
        throw invalidArgument(
          `--initscript and --initcmd run with ${INIT_STEP_SHELL}, which image ${config.Image} ` +
            "does not have",
        );
      }
      // The wrapper writes its status here as the container's user (root before an image's
      // init).
      await Deno.mkdir(runDir, { mode: 0o700, recursive: true });
      if (!imageInit) await Deno.chown(runDir, user.uid, user.gid);
    }
    // The image's VOLUMEs and `-v /path` get new anonymous volumes where nothing else is
    // mounted; without a volume manager they stay part of the rootfs.
    const volumePlan = this.#volumes
      ? planMounts(hostConfig, { mountsOf, imageVolumes: config.Volumes, reuse: options.reuse })
      : planMounts(hostConfig, { mountsOf });
    const attached = this.#volumes
      ? await attachVolumes(this.#volumes, volumePlan, {
        containerId: id,
        rootfs: mounts,
        scratchDir: `${this.#home}/tmp`,
        undo,
      })
      : new Map();
    record.mounts = mountPointsOf(hostConfig, volumePlan, attached);
    const appUnitDir = `${dir}/systemd`;
    let appUnitText: string | undefined;
    const cgroupV2 = imageInit?.systemd === true && await isCgroupV2();
    const spec = buildSpec({
      id,
      config,
      hostConfig: specHostConfig(hostConfig, volumePlan, (v) => attached.get(v)!.source),
      image: image.config.config ?? {},
      user,
      files,
      netnsPath,
      namespacePaths: this.#joinedNamespaces(hostConfig),
      cgroupsPath: `${hostConfig.CgroupParent || "/pouch"}/${id}`,
      limits: await this.#daemonLimits(),
      warn: (message: string) => warnings.push(message),
    }, {
      extraOpts: [
        ...richSpecOpts({
          staticInit: this.#staticInit,
          runDir,
          imageInit,
          appUnitDir,
          onAppUnit: (unit) => appUnitText = unit,
          cgroupV2,
          output: fifoPaths(`${dir}/io`, "init", { stdin: false, tty: config.Tty === true }),
        }),
        dockerInitSpecOpt(this.#staticInit),
        hooksSpecOpt(this.#hooks),
        ...(this.#lxcfs ? [this.#lxcfs.specOpt()] : []),
      ],
    });
    if (appUnitText !== undefined) await writeAppUnit(appUnitDir, appUnitText);
    return spec;
  }

  /** The ID of the lease creates prepare their snapshots under (made on first use). */
  #creationLease(): Promise<string> {
    this.#creationLeaseId ??= this.#client.leases.create({
      id: CREATION_LEASE,
      labels: { [LABEL_MANAGED]: "true" },
    }).then(
      (lease) => lease.id,
      (err) => {
        // Left by an earlier run of the daemon: the same lease serves.
        if (isAlreadyExists(err)) return CREATION_LEASE;
        this.#creationLeaseId = undefined;
        throw err;
      },
    );
    return this.#creationLeaseId;
  }

  /** A container's hosts, hostname and resolv.conf when the daemon has no network manager. */
  async #localNetworkFiles(
    id: string,
    options: { dir: string; hostname?: string; networkMode: string },
  ): Promise<{ hostname: string; netnsPath?: string; files: NonNullable<Container["files"]> }> {
    const { dir, networkMode } = options;
    const hostname = options.hostname ||
      (networkMode === "host" ? Deno.hostname() : id.slice(0, 12));
    await writeLocalNetworkFiles(dir, { hostname, hostNetwork: networkMode === "host" });
    return {
      hostname,
      files: {
        hosts: `${dir}/hosts`,
        hostname: `${dir}/hostname`,
        resolvConf: `${dir}/resolv.conf`,
      },
    };
  }

  /** Rich containers need the host's static init; say which package gives it. */
  async #checkStaticInit(): Promise<void> {
    try {
      const info = await Deno.stat(this.#staticInit);
      if (!info.isFile) throw new Error("not a regular file");
    } catch (err) {
      throw unavailable(
        `rich containers need a static init at ${this.#staticInit} (Debian package tini): ` +
          messageOf(err),
        err,
      );
    }
  }

  #assertNameFree(name: string): void {
    const owner = this.#store.nameOwner(name);
    if (owner) {
      throw conflict(
        `Conflict. The container name "/${name}" is already in use by container "${owner}". ` +
          "You have to remove (or rename) that container to be able to reuse that name.",
      );
    }
  }

  #freeRandomName(id: string): string {
    for (let retry = 0; retry < 10; retry++) {
      const candidate = randomName(retry);
      if (!this.#store.nameOwner(candidate)) return candidate;
    }
    return id.slice(0, 12);
  }

  /** What the daemon itself may grant: containers can get no more (no CAP_SYS_RESOURCE here). */
  async #daemonLimits(): Promise<DaemonLimits> {
    if (this.#limits) return this.#limits;
    const status = await Deno.readTextFile("/proc/self/status");
    const bounding = /^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? "0";
    const adj = Number((await Deno.readTextFile("/proc/self/oom_score_adj")).trim()) || 0;
    const limits = await Deno.readTextFile("/proc/self/limits");
    const hard = (label: string) => {
      const line = limits.split("\n").find((l) => l.startsWith(label));
      const value = line?.slice(label.length).trim().split(/\s+/)[1];
      return value && value !== "unlimited" ? Number(value) : undefined;
    };
    this.#limits = {
      maxOomScoreAdj: adj,
      nofileHard: hard("Max open files"),
      nprocHard: hard("Max processes"),
      capabilities: parseCapabilityMask(bounding),
    };
    return this.#limits;
  }

  // --- upgrade -------------------------------------------------------------------------------

  /**
   * Replaces a container's image in place (see `upgrade.ts` for what is kept and changed): a new
   * rootfs from the new image, the spec rebuilt on the same network namespace and volumes, the
   * containerd container updated, and the container started again if it ran. Anything failing
   * before the new task runs is rolled back: the old spec, rootfs and record come back and the
   * old container runs again if it ran. A marker in the record makes a crash at any point
   * recoverable into the old or the new container ({@link restore}).
   */
  upgrade(ref: string, request: UpgradeRequest): Promise<{ Warnings: string[] }> {
    const container = this.get(ref);
    return this.#locked(container.id, () => this.#upgrade(container.id, request));
  }

  async #upgrade(id: string, request: UpgradeRequest): Promise<{ Warnings: string[] }> {
    const current = this.#records.get(id);
    if (current.upgrade) throw conflict(`container ${current.name} is being upgraded`);
    const image = await this.#images.resolve(request.Image ?? "");
    const plan = planUpgrade(
      {
        userConfig: current.userConfig ?? current.config,
        hostConfig: current.hostConfig,
        imageId: current.imageId,
      },
      request,
      { newImageId: image.id },
    );
    const config: ContainerConfig = structuredClone(plan.userConfig);
    mergeImageConfig(config, image.config.config ?? {});
    // The network files hold the hostname: it stays.
    config.Hostname = current.config.Hostname;
    const mountsOf = (ref: string) => this.get(ref).mounts ?? [];
    validateHostConfig(
      specHostConfig(
        plan.hostConfig,
        planMounts(plan.hostConfig, { mountsOf }),
        (v) => `/volume/${v.name || "_"}`,
      ),
    );
    validateRich(config);
    const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])].filter((a, i) =>
      !(i === 0 && a === "")
    );
    if (args.length === 0 && !usesImageInit(config)) {
      throw invalidArgument("No command specified");
    }

    const stored = await this.#client.containers.get(id);
    const wasRunning = current.state.Status === "running" || current.state.Status === "paused";
    const previous = structuredClone(current);
    const snapshotKey = `${id}-${randomId().slice(0, 12)}`;
    current.upgrade = {
      phase: "preparing",
      snapshotKey,
      wasRunning,
      previous: {
        image: stored.image,
        labels: stored.labels,
        spec: stored.spec,
        snapshotKey: current.snapshotKey,
      },
    };
    this.#records.put(id, current);
    this.#log.info("upgrading a container", { id: id.slice(0, 12), image: request.Image });

    const undo: Array<() => Promise<void> | void> = [];
    const warnings: string[] = [];
    let lease: { id: string } | undefined;
    let step = "stopping the container";
    try {
      faultPoint("upgrade:marked");
      if (wasRunning) await this.#stop(id, {});
      step = "preparing the new rootfs";
      faultPoint("upgrade:stopped");
      // The old rootfs is no longer referenced once containerd holds the new one: the lease
      // keeps it for a rollback.
      lease = await this.#client.leases.create({ expireSeconds: 3600 });
      await this.#client.leases.addResource(lease.id, {
        id: previous.snapshotKey,
        type: `snapshots/${previous.snapshotter}`,
      });
      const mounts = await this.#client.snapshots.prepare(this.#snapshotter, snapshotKey, {
        parent: image.chainId,
        labels: { [LABEL_MANAGED]: "true" },
        lease: lease.id,
      });
      undo.push(() => this.#client.snapshots.remove(this.#snapshotter, snapshotKey));
      const next: Container = {
        ...structuredClone(previous),
        image: config.Image!,
        imageId: image.id,
        config,
        userConfig: plan.userConfig,
        hostConfig: plan.hostConfig,
        path: args[0] ?? "",
        args: args.slice(1),
        snapshotter: this.#snapshotter,
        snapshotKey,
        // As the stop left it.
        state: { ...this.#records.get(id).state },
      };
      delete next.imageInit;
      delete next.upgrade;
      step = "building the new container";
      faultPoint("upgrade:snapshot");
      const spec = await this.#materialize(next, {
        image,
        mounts,
        netnsPath: previous.netnsPath ?? this.#networks?.netnsOf(id),
        files: previous.files ?? {
          hosts: `${this.dir(id)}/hosts`,
          hostname: `${this.dir(id)}/hostname`,
          resolvConf: `${this.dir(id)}/resolv.conf`,
        },
        undo,
        warnings,
        reuse: previous.mounts,
      });
      step = "updating the containerd container";
      faultPoint("upgrade:spec");
      await this.#client.containers.update({
        ...stored,
        image: image.name,
        labels: { ...(config.Labels ?? {}), [LABEL_MANAGED]: "true" },
        spec,
        snapshotter: this.#snapshotter,
        snapshotKey,
      }, ["image", "labels", "spec", "snapshotkey"]);
      undo.push(() =>
        this.#client.containers.update(
          { ...stored, snapshotKey: previous.snapshotKey },
          ["image", "labels", "spec", "snapshotkey"],
        ).then(() => {})
      );
      next.upgrade = { ...current.upgrade, phase: "committed", snapshotKey: previous.snapshotKey };
      faultPoint("upgrade:updated");
      this.#records.put(id, next);
      faultPoint("upgrade:committed");
      if (wasRunning) {
        step = "starting the new container";
        await this.#start(id);
      }
    } catch (err) {
      await this.#rollBackUpgrade(previous, { undo, wasRunning });
      if (lease) await this.#client.leases.delete(lease.id).catch(() => {});
      const message = `upgrade of ${previous.name} to ${request.Image} failed while ${step}: ` +
        `${messageOf(err)}; rolled back to ${previous.image}`;
      // The request was good (it was checked before anything changed): what failed is ours.
      const kind = kindOf(err) === "InvalidArgument" ? "InvalidArgument" : "System";
      throw new EngineError(kind, message, { cause: err });
    }
    faultPoint("upgrade:started");
    await this.#finishUpgrade(id);
    if (lease) await this.#client.leases.delete(lease.id).catch(() => {});
    const upgraded = this.#records.get(id);
    this.#log.info("container upgraded", { id: id.slice(0, 12), image: upgraded.image });
    this.#emit(upgraded, "upgrade", { oldImage: previous.image });
    return { Warnings: warnings };
  }

  /** Puts back the container as it was before a failed upgrade, running if it ran. */
  async #rollBackUpgrade(
    previous: Container,
    options: { undo: Array<() => Promise<void> | void>; wasRunning: boolean },
  ): Promise<void> {
    const id = previous.id;
    for (const step of options.undo.reverse()) {
      try {
        await step();
      } catch (err) {
        this.#log.warn("undo of a failed upgrade failed", { id, error: err });
      }
    }
    const restored = structuredClone(previous);
    delete restored.upgrade;
    restored.state = { ...this.#records.get(id).state };
    this.#records.put(id, restored);
    // The undo detached the volumes the new container was given; the old one keeps its own.
    for (const mount of previous.mounts ?? []) {
      if (mount.Type !== "volume" || !mount.Name) continue;
      await this.#volumes?.attach(mount.Name, id, {
        destination: mount.Destination,
        readOnly: !mount.RW,
      }).catch((err) => this.#log.warn("re-attaching a volume failed", { id, error: err }));
    }
    const state = this.#records.get(id).state.Status;
    if (options.wasRunning && state !== "running" && state !== "paused") {
      await this.#start(id).catch((err) =>
        this.#log.error("restarting the old container after a failed upgrade failed", {
          id,
          error: err,
        })
      );
    }
  }

  /** After a committed upgrade: the old rootfs and the volumes no longer used go. */
  async #finishUpgrade(id: string): Promise<void> {
    const record = this.#records.get(id);
    const marker = record.upgrade;
    if (!marker) return;
    await this.#client.snapshots.remove(this.#snapshotter, marker.snapshotKey).catch((err) => {
      if (!isNotFound(err)) this.#log.warn("removing the old rootfs failed", { id, error: err });
    });
    await this.#releaseUnusedVolumes(record);
    delete record.upgrade;
    this.#records.put(id, record);
  }

  /**
   * Detaches the volumes container `record` holds but no longer mounts (after an upgrade, or
   * one a crash cut short), removing anonymous ones no one else uses.
   */
  async #releaseUnusedVolumes(record: Container): Promise<void> {
    if (!this.#volumes) return;
    const mounted = new Set(
      (record.mounts ?? []).flatMap((m) => m.Type === "volume" && m.Name ? [m.Name] : []),
    );
    for (const name of this.#volumes.usedBy(record.id)) {
      if (mounted.has(name)) continue;
      await this.#volumes.detach(name, record.id).catch(() => {});
      await this.#removeAnonymousVolume(name, record.id);
    }
  }

  /** Brings a container whose upgrade a crash interrupted to the old or the new one. */
  async #recoverUpgrade(record: Container): Promise<void> {
    const marker = record.upgrade!;
    const id = record.id;
    if (marker.phase === "committed") {
      this.#log.info("finishing an upgrade interrupted by a crash", { id: id.slice(0, 12) });
      await this.#finishUpgrade(id);
    } else {
      this.#log.info("rolling back an upgrade interrupted by a crash", { id: id.slice(0, 12) });
      const stored = await this.#client.containers.get(id);
      if (stored.snapshotKey !== marker.previous.snapshotKey) {
        await this.#client.containers.update({
          ...stored,
          image: marker.previous.image,
          labels: marker.previous.labels,
          spec: marker.previous.spec,
          snapshotKey: marker.previous.snapshotKey,
        }, ["image", "labels", "spec", "snapshotkey"]);
      }
      await this.#client.snapshots.remove(this.#snapshotter, marker.snapshotKey).catch(() => {});
      await this.#releaseUnusedVolumes(record);
      delete record.upgrade;
      this.#records.put(id, record);
    }
  }

  // --- start and exit ------------------------------------------------------------------------

  /**
   * Starts a created or exited container; a running one is NotModified. A `--rm` container
   * whose start fails is removed, as Docker does: nothing is left of a `run --rm` that failed.
   */
  async start(ref: string): Promise<void> {
    const container = this.get(ref);
    try {
      await this.#locked(container.id, async () => {
        this.#cancelRestart(container.id);
        const current = this.#records.get(container.id);
        if (current.manuallyStopped) {
          current.manuallyStopped = false;
          this.#records.put(container.id, current);
        }
        await this.#start(container.id);
      });
    } catch (err) {
      if (container.hostConfig.AutoRemove && !isNotModified(err)) {
        await this.remove(container.id, { force: true, volumes: true }).catch((removeErr) =>
          this.#log.warn("auto-remove after a failed start failed", {
            id: container.id,
            error: removeErr,
          })
        );
      }
      throw err;
    }
  }

  async #start(id: string): Promise<void> {
    const container = this.#records.get(id);
    if (container.state.Status === "running" || container.state.Status === "paused") {
      throw notModified("container already started");
    }
    await this.#plugins?.beforeStart(container);
    const live = this.#liveOf(id);
    // A task left from an earlier run (exit recorded while we were busy) must go before the new
    // one is created; both containerd calls run while the FIFOs and the log are prepared.
    const created = live.created?.snapshotKey === container.snapshotKey ? live.created : undefined;
    live.created = undefined;
    const staleTaskGone = live.taskDeleted || created
      ? Promise.resolve()
      : this.#client.tasks.delete(id).then(() => {}, () => {});
    const rootfsMounts = created
      ? Promise.resolve(created.rootfs)
      : this.#client.snapshots.mounts(container.snapshotter, container.snapshotKey);
    rootfsMounts.catch(() => {}); // awaited below, after the preparations that may fail first

    const tty = container.config.Tty === true;
    const initStep = hasInitStep(container.config);
    if (initStep) await resetInitStep(`${this.dir(id)}/rich`);
    // Rich systemd containers bind-mount these paths: keep them in step with `create`.
    const fifos = await makeFifos(`${this.dir(id)}/io`, "init", {
      stdin: container.config.OpenStdin === true,
      tty,
    });
    const log = await this.#openLog(container);
    const pump = new OutputPump(fifos, {
      hub: live.hub,
      log,
      keepOpen: keepsOutputOpen(container),
    });
    let stdin: StdinWriter | undefined;
    try {
      if (fifos.stdin) stdin = await StdinWriter.open(fifos.stdin);
      // Docker creates a missing `-v /host:/path` source at each start, not at create.
      await createBindSources(container.hostConfig);
      // The namespace may be gone (a host reboot) or be another container's that must run.
      await this.#networks?.prepareStart(id);
      await staleTaskGone;
      live.taskDeleted = false;
      const rootfs = await rootfsMounts;
      await this.#client.tasks.create(id, {
        rootfs,
        stdin: fifos.stdin,
        stdout: fifos.stdout,
        stderr: fifos.stderr,
        terminal: tty,
      });
      pump.attached();
    } catch (err) {
      await stdin?.close();
      await pump.abandon();
      await log.close();
      throw this.#startFailed(container, err);
    }
    // The exit is waited for from before the start, as containerd's own client does: a command
    // that exits at once is then seen without a round trip after the start's answer.
    const monitorAbort = new AbortController();
    const firstWait = this.#client.tasks.wait(id, { signal: monitorAbort.signal });
    firstWait.catch(() => {});
    let pid: number;
    try {
      faultPoint("start:task");
      ({ pid } = await this.#client.tasks.start(id));
      faultPoint("start:started");
    } catch (err) {
      monitorAbort.abort();
      await this.#client.tasks.delete(id).catch(() => {});
      await stdin?.close();
      await pump.settle(1000) || await pump.abandon();
      await log.close();
      throw this.#startFailed(container, err);
    }
    if (initStep) {
      const failure = await this.#initStepFailure(container);
      if (failure) {
        monitorAbort.abort();
        const exitStatus = await this.#reapFailedStart(id, failure.exitCode === undefined);
        await stdin?.close();
        await pump.settle(1000) || await pump.abandon();
        await log.close();
        container.state = {
          ...container.state,
          Status: container.state.Status === "created" ? "created" : "exited",
          ExitCode: failure.exitCode ?? exitStatus ?? 255,
          Error: failure.message,
        };
        this.#records.put(id, container);
        throw systemError(failure.message);
      }
    }
    live.pump = pump;
    live.log = log;
    live.stdin = stdin;
    if (stdin) {
      for (const chunk of live.pendingInput.splice(0)) this.#feedStdin(container, stdin, chunk);
    }
    container.state = {
      ...emptyState("running"),
      Pid: pid,
      StartedAt: new Date().toISOString(),
    };
    this.#records.put(id, container);
    this.#log.info("container started", { id: id.slice(0, 12), pid });
    this.#emit(container, "start");
    this.#monitor(id, { pump, log, abort: monitorAbort, firstWait });
  }

  /**
   * Waits for a rich container's init script or command (see `rich.ts`); undefined when it
   * succeeded, else the error message with its output and its exit code (none on a timeout).
   */
  async #initStepFailure(
    container: Container,
  ): Promise<{ message: string; exitCode?: number } | undefined> {
    const what = container.config.InitScript
      ? `init script ${container.config.InitScript}`
      : "init command";
    const result = await awaitInitStep(`${this.dir(container.id)}/rich`, {
      timeoutMs: this.#initStepTimeoutMs,
      exited: async () => {
        const task = await this.#client.tasks.get(container.id).catch(() => undefined);
        return !task || task.status === "stopped";
      },
    });
    if (result.ok) return undefined;
    const output = result.output.trim();
    const tail = output === "" ? " (no output)" : `: ${output}`;
    if (result.exitCode !== undefined) {
      return {
        message: `${what} failed with exit code ${result.exitCode}${tail}`,
        exitCode: result.exitCode,
      };
    }
    if (result.reason === "timeout") {
      return {
        message: `${what} did not finish within ${this.#initStepTimeoutMs / 1000}s${tail}`,
      };
    }
    return { message: `the container exited before its ${what} finished${tail}` };
  }

  /** Ends the task of a start that failed after the task started; returns its exit status. */
  async #reapFailedStart(id: string, kill: boolean): Promise<number | undefined> {
    if (kill) await this.#client.tasks.kill(id, 9, { all: true }).catch(() => {});
    let exit = await this.#client.tasks.wait(id, { signal: AbortSignal.timeout(5000) })
      .catch(() => undefined);
    if (!exit) {
      await this.#client.tasks.kill(id, 9, { all: true }).catch(() => {});
      exit = await this.#client.tasks.wait(id, { signal: AbortSignal.timeout(5000) })
        .catch(() => undefined);
    }
    const deleted = await this.#client.tasks.delete(id).catch(() => undefined);
    return exit?.exitStatus ?? deleted?.exitStatus;
  }

  /** Records a failed start as Docker does (exit code 127/126/128) and builds the error. */
  #startFailed(container: Container, err: unknown): EngineError {
    const message = messageOf(err);
    let exitCode = 128;
    if (/executable file not found|no such file or directory/.test(message)) exitCode = 127;
    else if (/permission denied/.test(message)) exitCode = 126;
    container.state = {
      ...container.state,
      Status: container.state.Status === "created" ? "created" : "exited",
      ExitCode: exitCode,
      Error: message,
    };
    this.#records.put(container.id, container);
    const kind = exitCode === 128 ? "System" : "InvalidArgument";
    return new EngineError(kind, `failed to create task for container: ${message}`, {
      cause: err,
    });
  }

  /** Waits for the task's exit, then records it; keeps waiting across containerd restarts. */
  #monitor(
    id: string,
    options: {
      pump: OutputPump;
      log: OutputLog | undefined;
      /** Aborts `firstWait`: the monitor's own abort then. */
      abort?: AbortController;
      /** A wait already asked for (before the start). */
      firstWait?: Promise<{ exitStatus: number; exitedAt: Date }>;
    },
  ): void {
    const { pump, log } = options;
    const live = this.#liveOf(id);
    const abort = options.abort ?? new AbortController();
    live.monitor = abort;
    (async () => {
      let exit: { exitStatus: number; exitedAt: Date } | undefined;
      for (let attempt = 0; !abort.signal.aborted; attempt++) {
        try {
          const wait = attempt === 0 ? options.firstWait : undefined;
          exit = await (wait ?? this.#client.tasks.wait(id, { signal: abort.signal }));
          break;
        } catch (err) {
          if (abort.signal.aborted) return;
          if (isNotFound(err)) break;
          this.#log.warn("waiting for a task failed; retrying", {
            id: id.slice(0, 12),
            error: err,
          });
          await sleep(Math.min(200 * 2 ** attempt, 5000));
        }
      }
      if (abort.signal.aborted) return;
      await pump.settle(5000);
      await log?.close();
      const record = this.#records.find(id);
      await this.#recordExit(id, exit);
      // Told after the exit is recorded; a restart the policy schedules does not wait for it.
      if (record && this.#plugins) {
        void this.#plugins.afterStop({ ...record, exitCode: exit?.exitStatus ?? 255 });
      }
    })().catch((err) => this.#log.error("monitoring a container failed", { id, error: err }));
  }

  async #recordExit(id: string, exit?: { exitStatus: number; exitedAt: Date }): Promise<void> {
    const deleted = await this.#client.tasks.delete(id).catch(() => undefined);
    const status = exit?.exitStatus ?? deleted?.exitStatus ?? 255;
    const container = this.#records.find(id);
    const live = this.#liveOf(id);
    live.taskDeleted = deleted !== undefined;
    await live.stdin?.close();
    live.stdin = undefined;
    live.pendingInput = [];
    live.pump = undefined;
    live.log = undefined;
    live.monitor = undefined;
    if (!container) return;
    container.state = {
      ...container.state,
      Status: "exited",
      Pid: 0,
      ExitCode: status,
      FinishedAt: (exit?.exitedAt ?? deleted?.exitedAt ?? new Date()).toISOString(),
    };
    this.#records.put(id, container);
    this.#log.info("container exited", { id: id.slice(0, 12), code: status });
    this.#emit(container, "die", { exitCode: String(status) });
    for (const waiter of live.exitWaiters.splice(0)) waiter(status);
    if (container.hostConfig.AutoRemove && !this.#closing) {
      await this.remove(id, { force: true }).catch((err) =>
        this.#log.warn("auto-remove failed", { id, error: err })
      );
      return;
    }
    if (!this.#closing && !live.holdRestart && this.#policyRestarts(container)) {
      this.#scheduleRestart(container);
    }
  }

  // --- update --------------------------------------------------------------------------------

  /**
   * Docker's `update`: new resource limits and restart policy, written to the record and the
   * containerd container (for later starts) and applied to a running container's cgroups at
   * once, without restarting it. Fields absent, null or 0 stay as they are (Docker's rule). A
   * change the runtime refuses leaves everything as it was.
   */
  update(ref: string, request: UpdateRequest): Promise<{ Warnings: string[] }> {
    const container = this.get(ref);
    return this.#locked(container.id, () => this.#update(container.id, request));
  }

  async #update(id: string, request: UpdateRequest): Promise<{ Warnings: string[] }> {
    const current = this.#records.get(id);
    if (current.upgrade) throw conflict(`container ${current.name} is being upgraded`);
    const hostConfig: HostConfig = { ...current.hostConfig };
    for (const key of UPDATABLE_RESOURCES) {
      const value = request[key];
      if (value === undefined || value === null || value === 0 || value === "") continue;
      (hostConfig as Record<string, unknown>)[key] = value;
    }
    // Docker's swap default follows a new memory limit unless a swap limit is given.
    if (request.Memory && !request.MemorySwap && (current.hostConfig.MemorySwap ?? 0) > 0) {
      hostConfig.MemorySwap = 0;
    }
    const policy = request.RestartPolicy;
    if (policy && policy.Name !== undefined && policy.Name !== "") {
      if (current.hostConfig.AutoRemove) {
        throw invalidArgument(
          "Restart policy cannot be updated because AutoRemove is enabled for the container",
        );
      }
      hostConfig.RestartPolicy = { ...policy };
    }
    const mountsOf = (ref: string) => this.get(ref).mounts ?? [];
    validateHostConfig(
      specHostConfig(
        hostConfig,
        planMounts(hostConfig, { mountsOf }),
        (v) => `/volume/${v.name || "_"}`,
      ),
    );
    validateRestartPolicy(hostConfig);

    const resources = resourcesOf(hostConfig);
    const stored = await this.#client.containers.get(id);
    const spec = structuredClone(stored.spec) as OciSpec;
    const devices = spec.linux.resources.devices;
    spec.linux.resources = { devices, ...resources };
    await this.#client.containers.update({ ...stored, spec }, ["spec"]);
    const running = current.state.Status === "running" || current.state.Status === "paused";
    if (running) {
      try {
        await this.#client.tasks.update(id, resources);
      } catch (err) {
        await this.#client.containers.update(stored, ["spec"]).catch(() => {});
        throw new EngineError(
          kindOf(err) === "InvalidArgument" ? "InvalidArgument" : "System",
          `Cannot update container ${id}: ${messageOf(err)}`,
          { cause: err },
        );
      }
    }
    current.hostConfig = hostConfig;
    this.#records.put(id, current);
    this.#emit(current, "update");
    return { Warnings: [] };
  }

  // --- restart policy ------------------------------------------------------------------------

  /**
   * Whether Docker's restart policy restarts `container`, which just exited: `always`;
   * `unless-stopped` unless stopped by hand; `on-failure[:N]` after a non-zero exit, at most N
   * times. Never while it is upgraded.
   */
  #policyRestarts(container: Container, options: { daemonStart?: boolean } = {}): boolean {
    if (container.upgrade) return false;
    const policy = container.hostConfig.RestartPolicy;
    switch (policy?.Name ?? "") {
      case "always":
        // Even a container stopped by hand comes back when the daemon starts, as in Docker.
        return options.daemonStart === true || !container.manuallyStopped;
      case "unless-stopped":
        return !container.manuallyStopped;
      case "on-failure": {
        if (container.manuallyStopped || container.state.ExitCode === 0) return false;
        const max = policy?.MaximumRetryCount ?? 0;
        return max <= 0 || container.restartCount < max;
      }
      default:
        return false;
    }
  }

  /**
   * Restarts `container` after the policy's back-off: 100 ms, doubling up to a minute, back to
   * 100 ms once a run lasted 10 s. Meanwhile it is `restarting`.
   */
  #scheduleRestart(container: Container): void {
    const id = container.id;
    const live = this.#liveOf(id);
    const ranMs = Date.parse(container.state.FinishedAt) - Date.parse(container.state.StartedAt);
    let delay = live.restartDelayMs ?? RESTART_DELAY_MS.first;
    if (ranMs >= RESTART_DELAY_MS.resetAfter) delay = RESTART_DELAY_MS.first;
    live.restartDelayMs = Math.min(delay * 2, RESTART_DELAY_MS.max);
    container.state = { ...container.state, Status: "restarting" };
    this.#records.put(id, container);
    this.#log.info("restart policy: restarting", {
      id: id.slice(0, 12),
      policy: container.hostConfig.RestartPolicy?.Name,
      delayMs: delay,
    });
    live.restartTimer = setTimeout(() => {
      live.restartTimer = undefined;
      this.#locked(id, async () => {
        const current = this.#records.find(id);
        if (!current || current.state.Status !== "restarting") return;
        current.restartCount++;
        current.state = { ...current.state, Status: "exited" };
        this.#records.put(id, current);
        await this.#start(id);
      }).catch((err) => {
        this.#log.warn("restart policy: the start failed", { id: id.slice(0, 12), error: err });
        const current = this.#records.find(id);
        if (current && !this.#closing && this.#policyRestarts(current)) {
          this.#scheduleRestart(current);
        }
      });
    }, delay);
  }

  /** Calls off a scheduled policy restart; says whether there was one. */
  #cancelRestart(id: string): boolean {
    const live = this.#liveOf(id);
    if (live.restartTimer === undefined) return false;
    clearTimeout(live.restartTimer);
    live.restartTimer = undefined;
    const current = this.#records.find(id);
    if (current?.state.Status === "restarting") {
      current.state = { ...current.state, Status: "exited" };
      this.#records.put(id, current);
    }
    return true;
  }

  /** Runs `fn` (which ends the task on purpose) with the restart policy held off. */
  async #holdingRestart<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const live = this.#liveOf(id);
    live.holdRestart = true;
    try {
      return await fn();
    } finally {
      live.holdRestart = false;
    }
  }

  /**
   * After the daemon starts (and networks are back): starts the exited containers whose restart
   * policy says so, as Docker does after a daemon restart or a host reboot.
   */
  async startByPolicy(): Promise<void> {
    for (const container of this.list()) {
      if (container.state.Status !== "exited" && container.state.Status !== "restarting") continue;
      if (!container.state.StartedAt || container.state.StartedAt.startsWith("0001")) continue;
      if (!this.#policyRestarts(container, { daemonStart: true })) continue;
      await this.start(container.id).catch((err) =>
        this.#log.warn("restart policy: starting after the daemon start failed", {
          id: container.id.slice(0, 12),
          error: err,
        })
      );
    }
  }

  // --- stop, kill, restart, pause ------------------------------------------------------------

  /** Stops a running container: its stop signal, then SIGKILL after `timeout` seconds. */
  stop(ref: string, options: { timeout?: number; signal?: string } = {}): Promise<void> {
    const container = this.get(ref);
    return this.#locked(container.id, async () => {
      const current = this.#records.get(container.id);
      current.manuallyStopped = true;
      this.#records.put(container.id, current);
      // A restart waiting for its back-off is called off: the container stays stopped.
      if (this.#cancelRestart(container.id)) return;
      await this.#holdingRestart(container.id, () => this.#stop(container.id, options));
    });
  }

  async #stop(id: string, options: { timeout?: number; signal?: string }): Promise<void> {
    const container = this.#records.get(id);
    if (container.state.Status !== "running" && container.state.Status !== "paused") {
      throw notModified("container already stopped");
    }
    const signal = parseSignal(options.signal || container.config.StopSignal || "SIGTERM");
    const timeout = options.timeout ?? container.config.StopTimeout ?? DEFAULT_STOP_TIMEOUT;
    const exited = this.#nextExit(id);
    if (container.state.Status === "paused") await this.#client.tasks.resume(id).catch(() => {});
    if (timeout !== 0) {
      this.#emit(container, "kill", { signal: String(signal) });
      await this.#signalUnlessExited(id, signal, exited);
      if (timeout < 0) {
        await exited;
        this.#emit(container, "stop");
        return;
      }
      if (await withTimeout(exited, timeout * 1000)) {
        this.#emit(container, "stop");
        return;
      }
      this.#log.info("container did not stop in time; killing it", { id: id.slice(0, 12) });
    }
    this.#emit(container, "kill", { signal: "9" });
    await this.#signalUnlessExited(id, 9, exited);
    await exited;
    this.#emit(container, "stop");
  }

  /**
   * Sends `signal` to the task (SIGKILL to all its processes). A process that exits as the
   * signal goes out is stopped, not a failure: containerd then answers NotFound, or its shim,
   * shutting down with the task, closes the call ("ttrpc: closed").
   */
  async #signalUnlessExited(id: string, signal: number, exited: Promise<unknown>): Promise<void> {
    try {
      await this.#client.tasks.kill(id, signal, signal === 9 ? { all: true } : undefined);
    } catch (err) {
      if (isNotFound(err)) return;
      if (await withTimeout(exited, SIGNAL_RACE_MS)) return;
      throw err;
    }
  }

  /** Sends a signal to a running container's main process. */
  async kill(ref: string, signalName = "SIGKILL"): Promise<void> {
    const signal = parseSignal(signalName);
    const container = this.get(ref);
    if (container.state.Status !== "running" && container.state.Status !== "paused") {
      throw conflict(`Container ${container.id} is not running`);
    }
    const exited = signal === 9 ? this.#nextExit(container.id) : undefined;
    await this.#client.tasks.kill(container.id, signal, { all: signal === 9 });
    this.#emit(container, "kill", { signal: String(signal) });
    // Docker's kill of SIGKILL returns once the container is gone.
    if (exited) await withTimeout(exited, 10_000);
  }

  /** Stops (if running) and starts a container. */
  restart(ref: string, options: { timeout?: number } = {}): Promise<void> {
    const container = this.get(ref);
    return this.#locked(container.id, async () => {
      this.#cancelRestart(container.id);
      try {
        await this.#holdingRestart(container.id, () => this.#stop(container.id, options));
      } catch (err) {
        if (!(err instanceof EngineError && err.kind === "NotModified")) throw err;
      }
      // Docker counts only restarts made by the restart policy, not this explicit one.
      await this.#start(container.id);
      this.#emit(container, "restart");
    });
  }

  /** Freezes a running container's processes. */
  pause(ref: string): Promise<void> {
    const container = this.get(ref);
    return this.#locked(container.id, async () => {
      const current = this.#records.get(container.id);
      if (current.state.Status === "paused") {
        throw conflict(`Container ${container.id} is already paused`);
      }
      if (current.state.Status !== "running") {
        throw conflict(`Container ${container.id} is not running`);
      }
      await this.#client.tasks.pause(container.id);
      current.state.Status = "paused";
      this.#records.put(container.id, current);
      this.#emit(current, "pause");
    });
  }

  /** Thaws a paused container. */
  unpause(ref: string): Promise<void> {
    const container = this.get(ref);
    return this.#locked(container.id, async () => {
      const current = this.#records.get(container.id);
      if (current.state.Status !== "paused") {
        throw conflict(`Container ${container.id} is not paused`);
      }
      await this.#client.tasks.resume(container.id);
      current.state.Status = "running";
      this.#records.put(container.id, current);
      this.#emit(current, "unpause");
    });
  }

  /** Sets the size of a running container's terminal. */
  async resize(ref: string, size: { width: number; height: number }): Promise<void> {
    const container = this.get(ref);
    if (container.state.Status !== "running" && container.state.Status !== "paused") {
      throw conflict(`Container ${container.id} is not running`);
    }
    if (!container.config.Tty) return;
    await this.#client.tasks.resizePty(container.id, size);
    this.#emit(container, "resize", { height: String(size.height), width: String(size.width) });
  }

  // --- remove, rename ------------------------------------------------------------------------

  /**
   * Removes a container; a running one only with `force` (killed first). `volumes` (`rm -v`)
   * also removes its anonymous volumes.
   */
  remove(ref: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const container = this.get(ref);
    return this.#locked(container.id, async () => {
      const current = this.#records.find(container.id);
      if (!current) return;
      const running = current.state.Status === "running" || current.state.Status === "paused";
      if (current.state.Status === "restarting" && !options.force) {
        throw conflict(
          `You cannot remove a restarting container ${current.id}. ` +
            "Stop the container before attempting removal or force remove",
        );
      }
      this.#cancelRestart(current.id);
      this.#liveOf(current.id).holdRestart = true;
      if (running && !options.force) {
        throw conflict(
          `You cannot remove a running container ${current.id}. ` +
            "Stop the container before attempting removal or force remove",
        );
      }
      if (running) {
        const exited = this.#nextExit(current.id);
        if (current.state.Status === "paused") {
          await this.#client.tasks.resume(current.id).catch(() => {});
        }
        await this.#client.tasks.kill(current.id, 9, { all: true }).catch(() => {});
        await withTimeout(exited, 15_000);
      }
      await this.#destroy(current, { removeVolumes: options.volumes === true });
    });
  }

  /** Deletes every trace of a container: task, containerd record, snapshot, files, record. */
  async #destroy(container: Container, options: { removeVolumes?: boolean } = {}): Promise<void> {
    const id = container.id;
    const live = this.#live.get(id);
    live?.monitor?.abort();
    await live?.stdin?.close();
    // Persisted first: a removal a crash cuts short is finished at the next start.
    if (this.#records.find(id)) {
      container.removing = { volumes: options.removeVolumes === true };
      container.state = { ...container.state, Status: "removing" };
      this.#records.put(id, container);
    }
    faultPoint("remove:marked");
    if (!live?.taskDeleted) await this.#client.tasks.delete(id).catch(() => {});
    // With the task gone, the containerd record, the snapshot and the network do not depend on
    // one another: they go at once. (CNI DEL needs the namespace the task has just left; the
    // files go with the directory.)
    const results = await Promise.allSettled([
      this.#client.containers.delete(id).catch((err) => {
        if (!isNotFound(err)) throw err;
      }).then(() => faultPoint("remove:containerd")),
      this.#client.snapshots.remove(container.snapshotter, container.snapshotKey).catch(
        (err) => {
          if (!isNotFound(err)) throw err;
        },
      ),
      this.#networks?.teardown(id),
    ]);
    for (const result of results) if (result.status === "rejected") throw result.reason;
    faultPoint("remove:network");
    await Deno.remove(this.dir(id), { recursive: true }).catch(() => {});
    for (const mount of container.mounts ?? []) {
      if (mount.Type !== "volume" || !mount.Name) continue;
      await this.#volumes?.detach(mount.Name, id).catch((err) =>
        this.#log.warn("detaching a volume failed", { id, volume: mount.Name, error: err })
      );
      // Docker removes anonymous volumes on `rm -v` and with `--rm`; named ones always stay.
      if (options.removeVolumes || container.hostConfig.AutoRemove) {
        await this.#removeAnonymousVolume(mount.Name, id);
      }
    }
    this.#store.transaction(() => {
      this.#records.delete(id);
      if (this.#store.nameOwner(container.name) === id) this.#store.releaseName(container.name);
    });
    this.#live.delete(id);
    live?.hub.end();
    for (const waiter of live?.exitWaiters ?? []) waiter(container.state.ExitCode);
    for (const waiter of live?.removeWaiters ?? []) waiter(container.state.ExitCode);
    this.#log.info("container removed", { id: id.slice(0, 12) });
    this.#emit(container, "destroy");
  }

  /** Removes volume `name` if it is anonymous and no other container uses it. */
  async #removeAnonymousVolume(name: string, id: string): Promise<void> {
    try {
      if (!this.#volumes?.record(name).anonymous) return;
      await this.#volumes.remove(name);
    } catch (err) {
      // Gone already, or still used by another container: it stays, as in Docker.
      if (isNotFound(err) || isConflict(err)) return;
      this.#log.warn("removing an anonymous volume failed", { id, volume: name, error: err });
    }
  }

  /** Renames a container. */
  rename(ref: string, newName: string): Promise<void> {
    const container = this.get(ref);
    const name = validateName(newName);
    return this.#locked(container.id, async () => {
      const current = this.#records.get(container.id);
      if (current.name === name) {
        throw conflict(`Renaming a container with the same name as its current name`);
      }
      const oldName = current.name;
      this.#store.transaction(() => {
        this.#store.reserveName(name, current.id);
        this.#store.releaseName(current.name);
        current.name = name;
        this.#records.put(current.id, current);
      });
      this.#emit(current, "rename", { oldName: `/${oldName}` });
      // Its peers on user networks find it by the new name.
      await this.#networks?.refresh(current.id);
    });
  }

  // --- wait, attach, logs --------------------------------------------------------------------

  /** Waits for `condition`; resolves with the exit code. */
  wait(ref: string, condition: WaitCondition = "not-running"): Promise<number> {
    const container = this.get(ref);
    const live = this.#liveOf(container.id);
    const running = ["running", "paused", "restarting"].includes(container.state.Status);
    if (condition === "not-running" && !running) return Promise.resolve(container.state.ExitCode);
    if (condition === "removed") {
      return new Promise((resolve) => live.removeWaiters.push(resolve));
    }
    return this.#nextExit(container.id);
  }

  /**
   * Attaches a client to a container's streams. Returns a function that sends client input to
   * the container's stdin (when asked for and open), and one to detach.
   */
  attach(ref: string, options: AttachOptions): {
    input?: (chunk: Uint8Array | null) => void;
    detach: () => void;
  } {
    const container = this.get(ref);
    const live = this.#liveOf(container.id);
    const tty = container.config.Tty === true;
    const listener: OutputListener = {
      data: (stream, chunk) => {
        if (stream === "stdout" && options.stdout === false) return;
        if (stream === "stderr" && options.stderr === false) return;
        options.write(tty ? chunk : frame(stream === "stdout" ? 1 : 2, chunk));
      },
      end: () => options.close(),
    };
    const unsubscribe = live.hub.subscribe(listener);
    this.#emit(container, "attach");
    // An exited container that is not about to start has no output to wait for.
    let input: ((chunk: Uint8Array | null) => void) | undefined;
    if (options.stdin && container.config.OpenStdin) {
      input = (chunk) => {
        const live = this.#liveOf(container.id);
        // `docker run -i` attaches before the start: what it sends waits for the stdin FIFO.
        if (!live.stdin) {
          live.pendingInput.push(chunk);
          return;
        }
        this.#feedStdin(container, live.stdin, chunk);
      };
    }
    return { input, detach: unsubscribe };
  }

  /** Writes `chunk` to a container's stdin; null is the client's end of input. */
  #feedStdin(container: Container, stdin: StdinWriter, chunk: Uint8Array | null): void {
    if (chunk !== null) {
      stdin.write(chunk);
      return;
    }
    if (container.config.StdinOnce) {
      stdin.close().then(() =>
        this.#client.tasks.closeIO(container.id, { stdin: true }).catch(() => {})
      );
    }
  }

  /** The container's log entries, framed for the client; follows until the container stops. */
  async *logs(
    ref: string,
    options: {
      stdout?: boolean;
      stderr?: boolean;
      since?: number;
      until?: number;
      tail?: number;
      follow?: boolean;
      timestamps?: boolean;
      signal?: AbortSignal;
    },
  ): AsyncGenerator<Uint8Array> {
    const container = this.get(ref);
    if (!options.stdout && !options.stderr) {
      throw invalidArgument("You must choose at least one stream");
    }
    if (!canReadLogs(container.hostConfig.LogConfig)) throw notImplemented(NO_READ_MESSAGE);
    const tty = container.config.Tty === true;
    const encoder = new TextEncoder();
    const batches = readLogBatches(`${this.dir(container.id)}/json.log`, {
      ...options,
      stopped: () => {
        const current = this.#records.find(container.id);
        return !current || !["running", "paused", "restarting"].includes(current.state.Status);
      },
    });
    // A batch goes out in one write, not a write per line.
    for await (const batch of batches) {
      if (batch.length === 0) continue;
      yield concatBytes(batch.map((entry) => {
        const text = options.timestamps ? `${entry.time} ${entry.log}` : entry.log;
        const bytes = encoder.encode(text);
        return tty ? bytes : frame(entry.stream === "stdout" ? 1 : 2, bytes);
      }));
    }
  }

  /**
   * Reopens the CRI log of a running container (the kubelet renamed it to rotate it): output
   * from now on goes to a new file at the same path.
   */
  async reopenLog(ref: string): Promise<void> {
    const container = this.get(ref);
    if (container.state.Status !== "running" && container.state.Status !== "paused") {
      throw conflict(`Container ${container.id} is not running`);
    }
    const log = this.#live.get(container.id)?.log;
    if (!(log instanceof CriFileLog)) {
      throw invalidArgument(`container ${container.id} has no CRI log to reopen`);
    }
    await log.reopen();
  }

  // --- daemon start and stop -----------------------------------------------------------------

  /**
   * Reconciles the store with containerd after a (re)start: undoes half-created containers,
   * re-adopts running tasks, records exits that happened while the daemon was down, and removes
   * containerd objects of ours that have no record.
   */
  async restore(): Promise<void> {
    const records = this.#records.list();
    for (const record of records) {
      if (record.phase === "creating") {
        this.#log.info("undoing a create interrupted by a crash", { id: record.id.slice(0, 12) });
        await this.#destroy(record).catch((err) =>
          this.#log.warn("cleanup failed", { id: record.id, error: err })
        );
        continue;
      }
      if (record.removing) {
        this.#log.info("finishing a removal interrupted by a crash", {
          id: record.id.slice(0, 12),
        });
        await this.#client.tasks.kill(record.id, 9, { all: true }).catch(() => {});
        await this.#client.tasks.wait(record.id, { signal: AbortSignal.timeout(5000) })
          .catch(() => {});
        await this.#destroy(record, { removeVolumes: record.removing.volumes }).catch((err) =>
          this.#log.warn("cleanup failed", { id: record.id, error: err })
        );
        continue;
      }
      const wasRunning = record.upgrade?.wasRunning === true;
      if (record.upgrade) {
        await this.#recoverUpgrade(record).catch((err) =>
          this.#log.warn("recovering an upgrade failed", { id: record.id, error: err })
        );
      }
      await this.#adopt(this.#records.get(record.id)).catch((err) =>
        this.#log.warn("restoring a container failed", { id: record.id, error: err })
      );
      const state = this.#records.get(record.id).state.Status;
      if (wasRunning && state !== "running" && state !== "paused") {
        // The crash stopped it for the upgrade: it runs again, old or new.
        await this.start(record.id).catch((err) =>
          this.#log.warn("restarting an upgraded container failed", { id: record.id, error: err })
        );
      }
    }
    const known = new Set(this.#records.list().map((c) => c.id));
    const snapshots = new Set(
      this.#records.list().flatMap((c) => [
        c.snapshotKey,
        ...(c.upgrade ? [c.upgrade.snapshotKey] : []),
      ]),
    );
    for (const orphan of await this.#client.containers.list([`labels."${LABEL_MANAGED}"==true`])) {
      if (known.has(orphan.id)) continue;
      this.#log.info("removing a containerd container without a record", { id: orphan.id });
      await this.#client.tasks.kill(orphan.id, 9, { all: true }).catch(() => {});
      await this.#client.tasks.wait(orphan.id).catch(() => {});
      await this.#client.tasks.delete(orphan.id).catch(() => {});
      await this.#client.containers.delete(orphan.id).catch(() => {});
    }
    for (const snapshot of await this.#client.snapshots.list(this.#snapshotter)) {
      if (snapshot.labels[LABEL_MANAGED] !== "true" || snapshots.has(snapshot.name)) continue;
      await this.#client.snapshots.remove(this.#snapshotter, snapshot.name).catch(() => {});
    }
  }

  async #adopt(record: Container): Promise<void> {
    const id = record.id;
    let task;
    try {
      task = await this.#client.tasks.get(id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (task && (task.status === "running" || task.status === "paused")) {
      const tty = record.config.Tty === true;
      const live = this.#liveOf(id);
      const dir = `${this.dir(id)}/io`;
      const fifos = {
        stdout: `${dir}/init-stdout`,
        stderr: tty ? undefined : `${dir}/init-stderr`,
        stdin: record.config.OpenStdin ? `${dir}/init-stdin` : undefined,
      };
      // A syslog gone meanwhile must not leave a running container unadopted.
      const log = await this.#openLog(record).catch((err) => {
        this.#log.warn("opening the log driver failed: output is dropped", {
          id: id.slice(0, 12),
          error: err,
        });
        return undefined;
      });
      const pump = new OutputPump(fifos, {
        hub: live.hub,
        log,
        keepOpen: keepsOutputOpen(record),
        // The shim holds the write ends already.
        attached: true,
      });
      live.pump = pump;
      live.log = log;
      if (fifos.stdin) live.stdin = await StdinWriter.open(fifos.stdin).catch(() => undefined);
      record.state.Status = task.status;
      record.state.Pid = task.pid;
      this.#records.put(id, record);
      this.#monitor(id, { pump, log });
      this.#log.info("re-adopted a running container", { id: id.slice(0, 12) });
      return;
    }
    if (task) {
      // Exited while the daemon was down (or created but never started).
      const exit = await this.#client.tasks.delete(id).catch(() => undefined);
      if (record.state.Status === "running" || record.state.Status === "paused") {
        await this.#recordExit(id, exit);
      }
      return;
    }
    if (record.state.Status === "running" || record.state.Status === "paused") {
      // The shim is gone (host reboot, killed shim): the exit status is unknown.
      record.state = {
        ...record.state,
        Status: "exited",
        Pid: 0,
        ExitCode: 255,
        FinishedAt: new Date().toISOString(),
      };
      this.#records.put(id, record);
      if (record.hostConfig.AutoRemove) await this.#destroy(record);
    }
  }

  /** Stops watching tasks (containers keep running under their shims). */
  async close(): Promise<void> {
    this.#closing = true;
    for (const live of this.#live.values()) {
      live.monitor?.abort();
      await live.stdin?.close();
    }
    // Pumps end when their FIFOs close; they must not keep the daemon alive.
    this.#live.clear();
  }

  // --- helpers -------------------------------------------------------------------------------

  /** The log a run of `container` writes: its CRI log if it has one, else its json-file log. */
  async #openLog(container: Container): Promise<OutputLog> {
    if (container.criLogPath) return new CriFileLog(container.criLogPath);
    return await openLogDriver(container.hostConfig.LogConfig ?? { Type: "json-file" }, {
      dir: this.dir(container.id),
      id: container.id,
      name: container.name,
      image: container.image,
    });
  }

  /**
   * The namespaces that `container:REF` IPC, PID and UTS modes join: those of the running
   * container's init (`/proc/PID/ns/...`). A pod's containers join its sandbox's this way.
   */
  #joinedNamespaces(hostConfig: HostConfig): Partial<Record<"ipc" | "pid" | "uts", string>> {
    const paths: Partial<Record<"ipc" | "pid" | "uts", string>> = {};
    const modes = { ipc: hostConfig.IpcMode, pid: hostConfig.PidMode, uts: hostConfig.UTSMode };
    for (const type of ["ipc", "pid", "uts"] as const) {
      const mode = modes[type] ?? "";
      if (!mode.startsWith("container:")) continue;
      const target = this.get(mode.slice("container:".length));
      if (target.state.Status !== "running" || target.state.Pid <= 0) {
        throw conflict(
          `cannot join the ${type} namespace of a non running container: ${target.name}`,
        );
      }
      paths[type] = `/proc/${target.state.Pid}/ns/${type}`;
    }
    return paths;
  }

  #liveOf(id: string): Live {
    let live = this.#live.get(id);
    if (!live) {
      live = {
        hub: new OutputHub(),
        exitWaiters: [],
        removeWaiters: [],
        lock: Promise.resolve(),
        pendingInput: [],
      };
      this.#live.set(id, live);
    }
    return live;
  }

  #nextExit(id: string): Promise<number> {
    return new Promise((resolve) => this.#liveOf(id).exitWaiters.push(resolve));
  }

  #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const live = this.#liveOf(id);
    const result = live.lock.then(fn);
    live.lock = result.then(() => {}, () => {});
    return result;
  }
}

/** Docker's merge of the image's config into the container's on create. */
export function mergeImageConfig(
  config: ContainerConfig,
  image: NonNullable<ImageConfigBlob["config"]>,
): void {
  if (!config.User) config.User = image.User ?? "";
  if (image.ExposedPorts) config.ExposedPorts = { ...image.ExposedPorts, ...config.ExposedPorts };
  const env = config.Env ?? [];
  const keys = new Set(env.map((e) => e.split("=")[0]));
  config.Env = [...env, ...(image.Env ?? []).filter((e) => !keys.has(e.split("=")[0]))];
  config.Labels = { ...(image.Labels ?? {}), ...(config.Labels ?? {}) };
  if (!config.Entrypoint || config.Entrypoint.length === 0) {
    if (!config.Cmd || config.Cmd.length === 0) config.Cmd = image.Cmd ?? null;
    if (config.Entrypoint === null || config.Entrypoint === undefined) {
      config.Entrypoint = image.Entrypoint ?? null;
    }
  }
  if (!config.WorkingDir) config.WorkingDir = image.WorkingDir ?? "";
  if (image.Volumes) config.Volumes = { ...image.Volumes, ...(config.Volumes ?? {}) };
  if (!config.StopSignal && image.StopSignal) config.StopSignal = image.StopSignal;
}

function validateSpecificId(id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) {
    throw invalidArgument(`invalid specific id ${id}: want 64 lowercase hex characters`);
  }
  return id;
}

function emptyState(status: Status): ContainerState {
  return {
    Status: status,
    Pid: 0,
    ExitCode: 0,
    Error: "",
    OOMKilled: false,
    StartedAt: "0001-01-01T00:00:00Z",
    FinishedAt: "0001-01-01T00:00:00Z",
  };
}

/**
 * The network files of a container of a daemon without a network manager: loopback only, or
 * the host's network.
 */
async function writeLocalNetworkFiles(
  dir: string,
  options: { hostname: string; hostNetwork: boolean },
): Promise<void> {
  const hostHosts = await readHostFile("/etc/hosts");
  await writeNetworkFiles(dir, {
    hostname: options.hostname,
    hosts: options.hostNetwork
      ? renderHostNetworkHosts(hostHosts, [])
      : renderHosts({ hostname: options.hostname }),
    resolvConf: renderResolvConf({
      host: await readHostFile("/etc/resolv.conf"),
      hostNetwork: options.hostNetwork,
    }),
  });
}

/** Whether `promise` settled within `ms`. */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the host has only the unified cgroup v2 hierarchy. */
async function isCgroupV2(): Promise<boolean> {
  try {
    await Deno.stat("/sys/fs/cgroup/cgroup.controllers");
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes a systemd rich container's command unit into `dir` (bind-mounted at systemd's runtime
 * unit directory), enabled in `multi-user.target` by the symlink `systemctl enable` would make.
 */
async function writeAppUnit(dir: string, unit: string): Promise<void> {
  await Deno.mkdir(`${dir}/multi-user.target.wants`, { recursive: true, mode: 0o755 });
  await Deno.writeTextFile(`${dir}/${APP_UNIT}`, unit, { mode: 0o644 });
  const wants = `${dir}/multi-user.target.wants/${APP_UNIT}`;
  // An upgrade writes it again.
  await Deno.remove(wants).catch(() => {});
  await Deno.symlink(`../${APP_UNIT}`, wants);
}

/** Inspect's `NetworkSettings` of a container without networking. */
export function emptyNetworkSettings(): Record<string, unknown> {
  return {
    Bridge: "",
    SandboxID: "",
    HairpinMode: false,
    LinkLocalIPv6Address: "",
    LinkLocalIPv6PrefixLen: 0,
    Ports: {},
    SandboxKey: "",
    Networks: {},
  };
}

/** Whether the container's output FIFOs are mounted in it for systemd (see `rich.ts`). */
function keepsOutputOpen(container: Container): boolean {
  return container.imageInit?.systemd === true && container.config.Tty !== true;
}

/** Docker's restart policies; `MaximumRetryCount` only with `on-failure`. */
function validateRestartPolicy(hostConfig: HostConfig): void {
  const policy = hostConfig.RestartPolicy;
  if (!policy) return;
  const name = policy.Name ?? "";
  if (!["", "no", "always", "unless-stopped", "on-failure"].includes(name)) {
    throw invalidArgument(`invalid restart policy '${name}'`);
  }
  const max = policy.MaximumRetryCount ?? 0;
  if (max < 0) {
    throw invalidArgument("invalid restart policy: maximum retry count cannot be negative");
  }
  if (max > 0 && name !== "on-failure") {
    throw invalidArgument(
      `invalid restart policy: maximum retry count can only be used with 'on-failure'`,
    );
  }
  if (hostConfig.AutoRemove && name !== "" && name !== "no") {
    throw invalidArgument(
      "conflicting options: cannot specify both --restart and --rm",
    );
  }
}

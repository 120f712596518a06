/**
 * The network manager: networks in the daemon's store (bucket `network`), a persistent network
 * namespace per container (`<home>/netns/<id>`), attachments made by the standard CNI plugins
 * (bucket `endpoint`, written before the plugins run so that a crash can be undone), published
 * ports through `portmap`, and each container's `/etc/hosts`, `/etc/resolv.conf` and
 * `/etc/hostname`.
 *
 * A container's address is allocated at create (CNI ADD into its namespace) and released at
 * remove (CNI DEL): the namespace and the allocation outlive its task, so the address stays over
 * restarts of the container and of the daemon. Containers on the same user network find each
 * other by name through their hosts files, which are rewritten whenever one joins or leaves.
 *
 * @module
 */
import {
  conflict,
  forbidden,
  invalidArgument,
  isNotFound,
  messageOf,
  notFound,
} from "../engine/errors.ts";
import { faultPoint } from "../engine/faults.ts";
import {
  bridgeConfList,
  bridgeIsUp,
  bridgePorts,
  enableIpForward,
  ensureBridge,
  ensureMasquerade,
  hostRoutes,
  removeBridge,
  removeMasquerade,
} from "./bridge.ts";
import {
  contains,
  firstHost,
  formatIPv4,
  formatSubnet,
  isHostAddress,
  overlaps,
  parseCidr,
  parseIPv4,
  parseSubnet,
  pickSubnet,
  type Subnet,
  within,
} from "./cidr.ts";
import { type CniResult, CniRunner, containerAddress } from "./cni.ts";
import {
  type HostEntry,
  parseExtraHosts,
  readHostFile,
  renderHostNetworkHosts,
  renderHosts,
  renderResolvConf,
  writeNetworkFiles,
} from "./files.ts";
import { sweepRules } from "./iptables.ts";
import { createNetns, isNetnsMounted, mountedNetns, removeNetns } from "./netns.ts";
import { planPortMappings, type PortMapping, portsSummary, portsView } from "./ports.ts";

export { DEFAULT_CNI_BIN_DIRS } from "./cni.ts";
export type { PortMapping } from "./ports.ts";

/** The persisted record of a network. */
export interface NetworkRecord {
  id: string;
  name: string;
  /** `bridge`, or `host`/`null` for the predefined `host` and `none`. */
  driver: string;
  created: string;
  /** `bridge`, `host` and `none` exist on every daemon and cannot be removed. */
  builtin: boolean;
  /** The bridge device (bridge driver). */
  bridge?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  mtu?: number;
  internal: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
}

/** The persisted network side of a container (its sandbox). */
export interface SandboxRecord {
  containerId: string;
  /** `bridge` (also user networks), `none`, `host` or `container`. */
  mode: "bridge" | "none" | "host" | "container";
  /** The namespace the container's processes join (its own, or the one it shares). */
  netns: string;
  /** With mode `container`: the container whose namespace this one joins. */
  joined?: string;
  /** The container's directory, where its hosts, hostname and resolv.conf files live. */
  dir: string;
  hostname: string;
  domainname: string;
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  /** `Config.ExposedPorts` (for inspect's `Ports`). */
  exposed: Record<string, unknown>;
}

/** The persisted attachment of a container to a network. */
export interface EndpointRecord {
  containerId: string;
  networkId: string;
  endpointId: string;
  /** The interface in the container (`eth0`, `eth1`, ...). */
  ifName: string;
  /** `adding` until the CNI ADD finished: a crash in between is undone at start-up. */
  phase: "adding" | "ready";
  /** The address asked for (`--ip`). */
  requestedIp?: string;
  aliases: string[];
  portMappings: PortMapping[];
  /** The ADD's result, given back to the plugins on DEL and CHECK. */
  result?: CniResult;
  /**
   * `network`: masqueraded by its network's one rule. Absent on attachments made by earlier
   * versions, which have the bridge plugin's masquerade chain of their own (removed by DEL).
   */
  masquerade?: "network";
  /** `a.b.c.d/nn`. */
  address?: string;
  gateway?: string;
  mac?: string;
}

/** Docker's `NetworkResource`. */
export interface NetworkResource {
  Name: string;
  Id: string;
  Created: string;
  Scope: "local";
  Driver: string;
  EnableIPv6: false;
  IPAM: {
    Driver: "default";
    Options: Record<string, string>;
    Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }>;
  };
  Internal: boolean;
  Attachable: false;
  Ingress: false;
  ConfigFrom: { Network: "" };
  ConfigOnly: false;
  Containers: Record<string, {
    Name: string;
    EndpointID: string;
    MacAddress: string;
    IPv4Address: string;
    IPv6Address: string;
  }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** Docker's `NetworkCreateRequest`. */
export interface NetworkCreateRequest {
  Name?: string;
  Driver?: string;
  CheckDuplicate?: boolean;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  IPAM?: {
    Driver?: string;
    Config?: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> | null;
    Options?: Record<string, string> | null;
  } | null;
  Labels?: Record<string, string> | null;
  Options?: Record<string, string> | null;
}

/** `POST /networks/{id}/connect`'s body. */
export interface ConnectRequest {
  Container: string;
  EndpointConfig?: { IPAMConfig?: { IPv4Address?: string } | null; Aliases?: string[] | null };
}

/** `POST /networks/{id}/disconnect`'s body. */
export interface DisconnectRequest {
  Container: string;
  Force?: boolean;
}

/** What the network manager asks of the container manager. */
export interface ContainerLookup {
  /** Resolves a container name, ID or prefix; throws NotFound. */
  resolve(ref: string): { id: string; name: string; running: boolean };
  /** The current name of container `id`, if it exists. */
  nameOf(id: string): string | undefined;
}

/** A typed collection of records (the engine's `Bucket` is one). */
export interface NetworkBucket<T> {
  find(id: string): T | undefined;
  list(): T[];
  put(id: string, value: T): void;
  delete(id: string): void;
  /** The record itself, frozen and shared, for reading only. */
  view(id: string): Readonly<T> | undefined;
  /** Every record itself, frozen and shared, for reading only. */
  views(): ReadonlyArray<Readonly<T>>;
  /** Changes whenever a record is written or deleted. */
  readonly version: number;
}

/** The store as the network manager uses it (the engine's `Store` is one). */
export interface NetworkStore {
  bucket<T>(kind: string): NetworkBucket<T>;
  transaction<R>(fn: () => R): R;
}

/** The default network's settings (the daemon's `--bridge-name`, `--bip`, ... flags). */
export interface DefaultBridge {
  /** The device; `p0` by default. */
  name: string;
  /** The gateway with the subnet's prefix (`--bip`); `192.168.5.1/24` by default. */
  bip: string;
  /** Where addresses are allocated from, inside the subnet (`--fixed-cidr`). */
  fixedCidr?: string;
  /** The gateway containers route through, if not the bridge's address (`--default-gateway`). */
  defaultGateway?: string;
}

/** Options of {@link NetworkManager}. */
export interface NetworkManagerOptions {
  store: NetworkStore;
  /** The daemon's home: namespaces under `netns/`, host-local's state under `network/ipam`. */
  home: string;
  /** The default network. */
  bridge: DefaultBridge;
  /** The MTU of bridge networks (`--mtu`); 1500 by default. */
  mtu?: number;
  /** Masquerade and publish ports with iptables (`--iptables`); on by default. */
  iptables?: boolean;
  /** Turn IP forwarding on (`--ipforward`); on by default. */
  ipForward?: boolean;
  /** Where CNI plugins are looked for (`--cni-bin-dir`). */
  cniBinDirs?: string[];
  /** Runs the plugins; by default a {@link CniRunner} over `cniBinDirs`. */
  cni?: Pick<CniRunner, "add" | "del" | "check">;
  /** The containers, for connect, disconnect and peer names; set once they exist. */
  containers: () => ContainerLookup | undefined;
  /** Subnets user networks get when they name none, in order; Docker's defaults otherwise. */
  pools?: Array<{ base: string; size: number }>;
  /** Logs what reconciliation removed and what failed in cleanup. */
  warn?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What a container asks of networking at create. */
export interface SandboxRequest {
  id: string;
  name: string;
  /** The container's directory for its hosts, hostname and resolv.conf. */
  dir: string;
  /** `HostConfig.NetworkMode`: `default`, `bridge`, `none`, `host`, `container:REF` or a name. */
  networkMode: string;
  /** `Config.Hostname` (empty: the short ID, or the host's in host mode). */
  hostname: string;
  domainname: string;
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  exposed: Record<string, unknown>;
  portBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null;
  publishAll: boolean;
  /** `NetworkingConfig.EndpointsConfig`. */
  endpoints?: Record<string, ConnectRequest["EndpointConfig"] | null>;
}

/** What the container gets from {@link NetworkManager.setup}. */
export interface SandboxSetup {
  /** The namespace to join; undefined in host mode. */
  netnsPath?: string;
  hostname: string;
  /** Where the container's hosts, hostname and resolv.conf are (another's in container mode). */
  files: { hosts: string; hostname: string; resolvConf: string };
}

const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const FILTERS = ["name", "id", "driver", "label", "type", "dangling", "scope"];
/** Docker's default address pools for user networks. */
const DEFAULT_POOLS = [
  { base: "172.17.0.0/16", size: 16 },
  { base: "172.18.0.0/16", size: 16 },
  { base: "172.19.0.0/16", size: 16 },
  { base: "172.20.0.0/14", size: 16 },
  { base: "172.24.0.0/14", size: 16 },
  { base: "172.28.0.0/14", size: 16 },
  { base: "192.168.0.0/16", size: 20 },
];
const BRIDGE_NAME = /^[a-zA-Z0-9_.-]{1,15}$/;

/** Creates networks and attaches containers to them. */
export class NetworkManager {
  readonly #store: NetworkStore;
  readonly #networks: NetworkBucket<NetworkRecord>;
  readonly #sandboxes: NetworkBucket<SandboxRecord>;
  readonly #endpoints: NetworkBucket<EndpointRecord>;
  readonly #home: string;
  readonly #bridge: DefaultBridge;
  readonly #mtu: number;
  readonly #iptables: boolean;
  readonly #ipForward: boolean;
  readonly #cni: Pick<CniRunner, "add" | "del" | "check">;
  readonly #containers: () => ContainerLookup | undefined;
  readonly #pools: Array<{ base: Subnet; size: number }>;
  readonly #warn: (message: string, fields?: Record<string, unknown>) => void;
  /** Serialises changes: allocations, port checks and hosts files see one change at a time. */
  #lock: Promise<void> = Promise.resolve();
  /** The endpoints of each container, for the read-only views, as of an endpoint version. */
  #endpointIndex?: {
    version: number;
    byContainer: Map<string, Array<Readonly<EndpointRecord>>>;
  };

  /** A manager over `options.store`; call {@link init} before use. */
  constructor(options: NetworkManagerOptions) {
    this.#store = options.store;
    this.#networks = options.store.bucket<NetworkRecord>("network");
    this.#sandboxes = options.store.bucket<SandboxRecord>("sandbox");
    this.#endpoints = options.store.bucket<EndpointRecord>("endpoint");
    this.#home = options.home;
    this.#bridge = options.bridge;
    this.#mtu = options.mtu ?? 1500;
    this.#iptables = options.iptables ?? true;
    this.#ipForward = options.ipForward ?? true;
    this.#cni = options.cni ?? new CniRunner({ binDirs: options.cniBinDirs });
    this.#containers = options.containers;
    this.#pools = (options.pools ?? DEFAULT_POOLS).map((p) => ({
      base: parseSubnet(p.base, "address pool"),
      size: p.size,
    }));
    this.#warn = options.warn ?? (() => {});
  }

  /** The namespace directory: one file per container. */
  get netnsDir(): string {
    return `${this.#home}/netns`;
  }

  /** host-local's state directory. */
  get ipamDir(): string {
    return `${this.#home}/network/ipam`;
  }

  // --- daemon start and stop -----------------------------------------------------------------

  /**
   * Creates the predefined networks (`bridge` from the daemon's flags, `host`, `none`) and the
   * bridge devices of every bridge network, and turns IP forwarding on if asked.
   */
  async init(): Promise<void> {
    const subnetOf = parseCidr(this.#bridge.bip, "--bip");
    const subnet = formatSubnet(subnetOf.subnet);
    const gateway = this.#bridge.defaultGateway || formatIPv4(subnetOf.address);
    if (!isHostAddress(subnetOf.subnet, parseIPv4(gateway) ?? -1)) {
      throw invalidArgument(`invalid default gateway ${gateway}: not a host address of ${subnet}`);
    }
    if (this.#bridge.fixedCidr) {
      const fixed = parseSubnet(this.#bridge.fixedCidr, "--fixed-cidr");
      if (!within(fixed, subnetOf.subnet)) {
        throw invalidArgument(`--fixed-cidr ${this.#bridge.fixedCidr} is not inside ${subnet}`);
      }
    }
    if (!BRIDGE_NAME.test(this.#bridge.name)) {
      throw invalidArgument(`invalid --bridge-name ${this.#bridge.name}: 1-15 characters`);
    }
    const wanted: NetworkRecord = {
      id: "",
      name: "bridge",
      driver: "bridge",
      created: new Date().toISOString(),
      builtin: true,
      bridge: this.#bridge.name,
      subnet,
      gateway,
      ...(this.#bridge.fixedCidr ? { ipRange: this.#bridge.fixedCidr } : {}),
      mtu: this.#mtu,
      internal: false,
      labels: {},
      options: {
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.name": this.#bridge.name,
        "com.docker.network.driver.mtu": String(this.#mtu),
      },
    };
    for (const [name, driver] of [["host", "host"], ["none", "null"]]) {
      if (this.#byName(name!)) continue;
      const id = newId();
      this.#networks.put(id, {
        id,
        name: name!,
        driver: driver!,
        created: new Date().toISOString(),
        builtin: true,
        internal: false,
        labels: {},
        options: {},
      });
    }
    const current = this.#byName("bridge");
    if (!current) {
      const id = newId();
      this.#networks.put(id, { ...wanted, id });
    } else if (
      current.subnet !== wanted.subnet || current.gateway !== wanted.gateway ||
      current.bridge !== wanted.bridge || current.ipRange !== wanted.ipRange ||
      current.mtu !== wanted.mtu
    ) {
      // New flags apply once no container uses the old settings.
      if (this.#endpointsOf(current.id).length === 0) {
        if (this.#iptables) {
          await removeMasquerade({ subnet: current.subnet!, bridge: current.bridge! });
        }
        if (current.bridge !== wanted.bridge) await removeBridge(current.bridge!);
        this.#networks.put(current.id, { ...wanted, id: current.id, created: current.created });
      } else {
        this.#warn("the default network keeps its settings while containers use it", {
          subnet: current.subnet,
          bridge: current.bridge,
        });
      }
    }
    if (this.#ipForward) await enableIpForward();
    for (const network of this.#networks.list()) {
      if (network.driver === "bridge") await this.#ensureBridge(network);
    }
  }

  /**
   * Reconciles after a (re)start, given the containers that exist: attachments, namespaces,
   * host-local allocations and plugin iptables rules left by a crash are removed; containers
   * whose namespace is gone (a host reboot) get it back with the same addresses.
   */
  async restore(live: Set<string>): Promise<void> {
    await this.#locked(async () => {
      for (const sandbox of this.#sandboxes.list()) {
        if (live.has(sandbox.containerId)) continue;
        this.#warn("removing the network of a container that no longer exists", {
          id: sandbox.containerId.slice(0, 12),
        });
        await this.#teardown(sandbox.containerId);
      }
      for (const endpoint of this.#endpoints.list()) {
        if (live.has(endpoint.containerId) && endpoint.phase === "ready") continue;
        await this.#removeEndpoint(endpoint);
      }
      const mounted = await mountedNetns(this.netnsDir);
      for await (const entry of readDirSafe(this.netnsDir)) {
        if (live.has(entry)) continue;
        await removeNetns(`${this.netnsDir}/${entry}`).catch((err) =>
          this.#warn("removing a leftover network namespace failed", { entry, error: err })
        );
      }
      for (const sandbox of this.#sandboxes.list()) {
        if (sandbox.mode !== "bridge" && sandbox.mode !== "none") continue;
        if (mounted.has(sandbox.netns)) {
          await this.#check(sandbox);
          continue;
        }
        await this.#recreate(sandbox).catch((err) =>
          this.#warn("restoring a container's network failed", {
            id: sandbox.containerId.slice(0, 12),
            error: messageOf(err),
          })
        );
      }
      await this.#sweepIpam();
      const ours = new Set(this.#networks.list().map((n) => n.id));
      const removed = await sweepRules(
        ours,
        (containerId, network) =>
          this.#endpoints.find(endpointKey(containerId, network)) !== undefined,
      );
      if (removed > 0) this.#warn("removed leftover CNI iptables rules", { count: removed });
    });
  }

  /** Removes the bridge devices no container uses (they come back with the next use). */
  async close(): Promise<void> {
    await this.#locked(async () => {
      for (const network of this.#networks.list()) {
        if (network.driver !== "bridge" || this.#endpointsOf(network.id).length > 0) continue;
        // A bridge that still has ports serves someone else (another daemon on the same name).
        if ((await bridgePorts(network.bridge!)).length > 0) continue;
        await this.#removeBridge(network).catch((err) =>
          this.#warn("removing a bridge failed", { bridge: network.bridge, error: err })
        );
      }
    });
  }

  // --- the /networks API ---------------------------------------------------------------------

  /** Every network matching Docker's filters (`name`, `id`, `driver`, `label`, `type`, ...). */
  list(filters: Record<string, string[]> = {}): NetworkResource[] {
    for (const key of Object.keys(filters)) {
      if (!FILTERS.includes(key)) throw invalidArgument(`invalid filter '${key}'`);
    }
    for (const type of filters.type ?? []) {
      if (type !== "custom" && type !== "builtin") {
        throw invalidArgument(`invalid filter: 'type'='${type}'`);
      }
    }
    return this.#networks.list()
      .filter((n) => matchesFilters(n, filters, this.#endpointsOf(n.id).length))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((n) => this.#resource(n));
  }

  /** A network by name, full ID or unique ID prefix; throws NotFound. */
  inspect(ref: string): NetworkResource {
    return this.#resource(this.#find(ref));
  }

  /** Creates a user network (bridge driver) from Docker's request. */
  create(request: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    return this.#locked(async () => {
      const record = await this.#plan(request);
      this.#networks.put(record.id, record);
      faultPoint("network:recorded");
      try {
        await this.#ensureBridge(record);
      } catch (err) {
        this.#networks.delete(record.id);
        await this.#removeBridge(record).catch(() => {});
        throw err;
      }
      return { Id: record.id, Warning: "" };
    });
  }

  /** Removes a user network; 403 for predefined ones, 409 while containers are attached. */
  remove(ref: string): Promise<void> {
    return this.#locked(async () => {
      const network = this.#find(ref);
      await this.#removeNetwork(network);
    });
  }

  /** Removes the user networks no container uses; `until` and `label` filters. */
  prune(filters: Record<string, string[]> = {}): Promise<{ NetworksDeleted: string[] }> {
    for (const key of Object.keys(filters)) {
      if (key !== "until" && key !== "label" && key !== "label!") {
        throw invalidArgument(`invalid filter '${key}'`);
      }
    }
    const until = (filters.until ?? []).map(parseUntil);
    return this.#locked(async () => {
      const deleted: string[] = [];
      for (const network of this.#networks.list()) {
        if (network.builtin || this.#endpointsOf(network.id).length > 0) continue;
        if (until.some((t) => Date.parse(network.created) >= t)) continue;
        if (!labelsMatch(network.labels, filters.label ?? [])) continue;
        if ((filters["label!"] ?? []).some((f) => labelsMatch(network.labels, [f]))) continue;
        await this.#removeNetwork(network);
        deleted.push(network.name);
      }
      return { NetworksDeleted: deleted };
    });
  }

  /** Attaches a container (running or not) to a network: a new interface in its namespace. */
  connect(ref: string, request: ConnectRequest): Promise<void> {
    return this.#locked(async () => {
      const network = this.#find(ref);
      const container = this.#lookup().resolve(requiredContainer(request.Container));
      const sandbox = this.#sandboxes.find(container.id);
      if (network.driver !== "bridge") {
        throw forbidden(
          `container cannot be connected to network ${network.name}: only bridge networks can be ` +
            "connected to",
        );
      }
      if (!sandbox || sandbox.mode !== "bridge") {
        throw forbidden(
          `container ${container.name} cannot be connected to network ${network.name}: its ` +
            `network mode is ${sandbox?.mode ?? "unknown"}`,
        );
      }
      if (this.#endpoints.find(endpointKey(container.id, network.id))) {
        throw forbidden(
          `endpoint with name ${container.name} already exists in network ${network.name}`,
        );
      }
      const used = new Set(this.#endpointsOfContainer(container.id).map((e) => e.ifName));
      let index = 0;
      while (used.has(`eth${index}`)) index++;
      await this.#attach(sandbox, network, {
        ifName: `eth${index}`,
        requestedIp: request.EndpointConfig?.IPAMConfig?.IPv4Address || undefined,
        aliases: request.EndpointConfig?.Aliases ?? [],
        portMappings: [],
      });
      await this.#writeFiles(sandbox);
      await this.#refreshPeers(network.id);
    });
  }

  /** Detaches a container from a network. */
  disconnect(ref: string, request: DisconnectRequest): Promise<void> {
    return this.#locked(async () => {
      const network = this.#find(ref);
      let containerId: string;
      try {
        containerId = this.#lookup().resolve(requiredContainer(request.Container)).id;
      } catch (err) {
        // With force, an attachment whose container is gone can still be removed.
        if (!request.Force || !isNotFound(err)) throw err;
        const match = this.#endpointsOf(network.id).find((e) =>
          e.containerId.startsWith(request.Container)
        );
        if (!match) throw err;
        containerId = match.containerId;
      }
      const endpoint = this.#endpoints.find(endpointKey(containerId, network.id));
      if (!endpoint) {
        throw invalidArgument(
          `container ${request.Container} is not connected to network ${network.name}`,
        );
      }
      await this.#removeEndpoint(endpoint);
      const sandbox = this.#sandboxes.find(containerId);
      if (sandbox) await this.#writeFiles(sandbox);
      await this.#refreshPeers(network.id);
    });
  }

  // --- containers ----------------------------------------------------------------------------

  /**
   * Gives a new container its network: validates the mode, addresses and ports, creates its
   * namespace, attaches it (CNI ADD) and writes its files. Undoes itself on failure.
   */
  setup(request: SandboxRequest): Promise<SandboxSetup> {
    return this.#locked(async () => {
      try {
        return await this.#setup(request);
      } catch (err) {
        await this.#teardown(request.id).catch((undoErr) =>
          this.#warn("undoing a failed network setup failed", {
            id: request.id.slice(0, 12),
            error: messageOf(undoErr),
          })
        );
        throw err;
      }
    });
  }

  async #setup(request: SandboxRequest): Promise<SandboxSetup> {
    const mode = request.networkMode || "default";
    const ownFiles = {
      hosts: `${request.dir}/hosts`,
      hostname: `${request.dir}/hostname`,
      resolvConf: `${request.dir}/resolv.conf`,
    };
    const base: Omit<SandboxRecord, "mode" | "netns" | "hostname"> = {
      containerId: request.id,
      dir: request.dir,
      domainname: request.domainname,
      extraHosts: request.extraHosts,
      dns: request.dns,
      dnsSearch: request.dnsSearch,
      dnsOptions: request.dnsOptions,
      exposed: request.exposed,
    };
    parseExtraHosts(request.extraHosts);
    const publishes = Object.keys(request.portBindings ?? {}).length > 0 || request.publishAll;

    if (mode === "host") {
      const sandbox: SandboxRecord = {
        ...base,
        mode: "host",
        netns: "",
        hostname: request.hostname || Deno.hostname(),
      };
      this.#sandboxes.put(request.id, sandbox);
      await this.#writeFiles(sandbox);
      return { hostname: sandbox.hostname, files: ownFiles };
    }
    if (mode.startsWith("container:")) {
      if (request.hostname) {
        throw invalidArgument("conflicting options: hostname and the network mode");
      }
      if (publishes) {
        throw invalidArgument(
          "conflicting options: port publishing and the container type network mode",
        );
      }
      if (request.dns.length > 0 || request.extraHosts.length > 0) {
        throw invalidArgument(
          "conflicting options: dns and the network mode, or add-host and the network mode",
        );
      }
      const target = this.#joinTarget(mode.slice("container:".length));
      const sandbox: SandboxRecord = {
        ...base,
        mode: "container",
        joined: target.containerId,
        netns: target.netns,
        hostname: target.hostname,
      };
      this.#sandboxes.put(request.id, sandbox);
      return {
        netnsPath: target.netns,
        hostname: target.hostname,
        files: {
          hosts: `${target.dir}/hosts`,
          hostname: `${target.dir}/hostname`,
          resolvConf: `${target.dir}/resolv.conf`,
        },
      };
    }

    const hostname = request.hostname || request.id.slice(0, 12);
    const netns = `${this.netnsDir}/${request.id}`;
    if (mode === "none") {
      const sandbox: SandboxRecord = { ...base, mode: "none", netns, hostname };
      this.#sandboxes.put(request.id, sandbox);
      await createNetns(netns);
      await this.#writeFiles(sandbox);
      return { netnsPath: netns, hostname, files: ownFiles };
    }

    const network = this.#find(mode === "default" ? "bridge" : mode);
    if (network.driver !== "bridge") {
      throw invalidArgument(
        `network ${network.name} cannot be used as a network mode: use --net ${
          network.name === "none" ? "none" : "host"
        }`,
      );
    }
    const endpointConfig = endpointConfigFor(request.endpoints, network);
    const requestedIp = endpointConfig?.IPAMConfig?.IPv4Address || undefined;
    if (publishes && !this.#iptables) {
      throw invalidArgument("ports cannot be published: the daemon runs with --iptables=false");
    }
    const portMappings = planPortMappings({
      PortBindings: request.portBindings,
      PublishAllPorts: request.publishAll,
      ExposedPorts: request.exposed,
    }, { taken: this.#endpoints.list().flatMap((e) => e.portMappings) });
    const sandbox: SandboxRecord = { ...base, mode: "bridge", netns, hostname };
    this.#sandboxes.put(request.id, sandbox);
    await createNetns(netns);
    await this.#attach(sandbox, network, {
      ifName: "eth0",
      requestedIp,
      aliases: endpointConfig?.Aliases ?? [],
      portMappings,
    });
    await this.#writeFiles(sandbox);
    await this.#refreshPeers(network.id);
    return { netnsPath: netns, hostname, files: ownFiles };
  }

  /** Removes a container's network: CNI DEL of each attachment, its namespace, its records. */
  teardown(id: string): Promise<void> {
    return this.#locked(() => this.#teardown(id));
  }

  /**
   * Checks before a start that the container's namespace is there (recreating it, with the
   * same addresses, after a host reboot) and that a container it joins is running.
   */
  prepareStart(id: string): Promise<void> {
    return this.#locked(async () => {
      const sandbox = this.#sandboxes.find(id);
      if (!sandbox || sandbox.mode === "host") return;
      if (sandbox.mode === "container") {
        const target = this.#lookup().nameOf(sandbox.joined!) === undefined
          ? undefined
          : this.#lookup().resolve(sandbox.joined!);
        if (!target?.running) {
          throw conflict(
            `cannot join network of a non running container: ${sandbox.joined!.slice(0, 12)}`,
          );
        }
        return;
      }
      if (!await isNetnsMounted(sandbox.netns)) await this.#recreate(sandbox);
    });
  }

  /** Rewrites the hosts files of a container's peers (it was renamed). */
  refresh(id: string): Promise<void> {
    return this.#locked(async () => {
      for (const endpoint of this.#endpointsOfContainer(id)) {
        await this.#refreshPeers(endpoint.networkId);
      }
    });
  }

  /** Inspect's `NetworkSettings` of a container. */
  settings(id: string) {
    const sandbox = this.#sandboxes.view(id);
    const endpoints = this.#endpointViewsOf(id);
    const networks: Record<string, ReturnType<typeof endpointView>> = {};
    for (const endpoint of endpoints) {
      const network = this.#networks.view(endpoint.networkId);
      if (network) networks[network.name] = endpointView(network, endpoint);
    }
    if (sandbox?.mode === "none" || sandbox?.mode === "host") {
      const network = this.#networks.views().find((n) => n.name === sandbox.mode);
      if (network) networks[network.name] = endpointView(network, undefined);
    }
    const primary = endpoints.find((e) => this.#networks.view(e.networkId)?.name === "bridge");
    const prefix = primary?.address ? Number(primary.address.split("/")[1]) : 0;
    const mappings = endpoints.flatMap((e) => e.portMappings);
    return {
      Bridge: "",
      SandboxID: sandbox && sandbox.mode !== "host" ? id : "",
      HairpinMode: false,
      LinkLocalIPv6Address: "",
      LinkLocalIPv6PrefixLen: 0,
      Ports: sandbox?.mode === "bridge" ? portsView(sandbox.exposed, mappings) : {},
      SandboxKey: sandbox?.mode === "host" ? "" : sandbox?.netns ?? "",
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: primary?.endpointId ?? "",
      Gateway: primary?.gateway ?? "",
      GlobalIPv6Address: "",
      GlobalIPv6PrefixLen: 0,
      IPAddress: primary?.address?.split("/")[0] ?? "",
      IPPrefixLen: prefix,
      IPv6Gateway: "",
      MacAddress: primary?.mac ?? "",
      Networks: networks,
    };
  }

  /** `ps`'s `Ports` of a container. */
  portsSummary(id: string) {
    const sandbox = this.#sandboxes.view(id);
    if (!sandbox || sandbox.mode !== "bridge") return [];
    return portsSummary(sandbox.exposed, this.#endpointViewsOf(id).flatMap((e) => e.portMappings));
  }

  /** The namespace path of container `id` (its own or the one it joins), if it has one. */
  netnsOf(id: string): string | undefined {
    return this.#sandboxes.find(id)?.netns || undefined;
  }

  // --- internals -----------------------------------------------------------------------------

  async #attach(
    sandbox: SandboxRecord,
    network: NetworkRecord,
    options: {
      ifName: string;
      requestedIp?: string;
      aliases: string[];
      portMappings: PortMapping[];
    },
  ): Promise<EndpointRecord> {
    if (options.requestedIp) this.#checkRequestedIp(network, options.requestedIp);
    const endpoint: EndpointRecord = {
      containerId: sandbox.containerId,
      networkId: network.id,
      endpointId: newId(),
      ifName: options.ifName,
      phase: "adding",
      ...(options.requestedIp ? { requestedIp: options.requestedIp } : {}),
      aliases: options.aliases,
      portMappings: options.portMappings,
      masquerade: "network",
    };
    // Persisted first: a crash during the ADD leaves a record that start-up undoes.
    this.#endpoints.put(endpointKey(sandbox.containerId, network.id), endpoint);
    try {
      // Two `ip` runs per container otherwise; the full check is for a bridge that went away.
      if (!(await bridgeIsUp(network.bridge!))) await this.#ensureBridge(network);
      await this.#add(sandbox, network, endpoint, options.requestedIp);
    } catch (err) {
      await this.#removeEndpoint(endpoint);
      throw err;
    }
    return endpoint;
  }

  /** CNI ADD of `endpoint`, then records its result. */
  async #add(
    sandbox: SandboxRecord,
    network: NetworkRecord,
    endpoint: EndpointRecord,
    ip: string | undefined,
  ): Promise<void> {
    const result = await this.#cni.add(this.#confList(network, endpoint), {
      containerId: sandbox.containerId,
      netns: sandbox.netns,
      ifName: endpoint.ifName,
      args: ip ? { IP: ip } : undefined,
      capabilityArgs: endpoint.portMappings.length > 0
        ? { portMappings: endpoint.portMappings }
        : undefined,
    });
    const address = containerAddress(result, endpoint.ifName);
    endpoint.result = result;
    endpoint.address = address?.address;
    endpoint.gateway = address?.gateway;
    endpoint.mac = address?.mac;
    endpoint.phase = "ready";
    this.#endpoints.put(endpointKey(endpoint.containerId, endpoint.networkId), endpoint);
  }

  /** CNI DEL of an attachment (its namespace, if still there), then its record. */
  async #removeEndpoint(endpoint: EndpointRecord): Promise<void> {
    const network = this.#networks.find(endpoint.networkId);
    if (network?.driver === "bridge") {
      const netns = `${this.netnsDir}/${endpoint.containerId}`;
      const mounted = await isNetnsMounted(netns);
      try {
        await this.#cni.del(this.#confList(network, endpoint), {
          containerId: endpoint.containerId,
          // The spec's rule: a DEL whose namespace is gone gets an empty CNI_NETNS.
          netns: mounted ? netns : "",
          ifName: endpoint.ifName,
          capabilityArgs: endpoint.portMappings.length > 0
            ? { portMappings: endpoint.portMappings }
            : undefined,
        }, endpoint.result);
      } catch (err) {
        this.#warn("CNI DEL failed; its leftovers are swept at the next start", {
          id: endpoint.containerId.slice(0, 12),
          network: network.name,
          error: messageOf(err),
        });
      }
      if (!mounted) {
        // Without the namespace the bridge plugin cannot find its masquerade rules.
        await sweepRules(new Set([network.id]), (id) => id !== endpoint.containerId);
      }
    }
    this.#endpoints.delete(endpointKey(endpoint.containerId, endpoint.networkId));
  }

  async #teardown(id: string): Promise<void> {
    const sandbox = this.#sandboxes.find(id);
    const networks = new Set<string>();
    for (const endpoint of this.#endpointsOfContainer(id)) {
      networks.add(endpoint.networkId);
      await this.#removeEndpoint(endpoint);
    }
    if (sandbox && (sandbox.mode === "bridge" || sandbox.mode === "none")) {
      await removeNetns(sandbox.netns);
    } else {
      await removeNetns(`${this.netnsDir}/${id}`).catch(() => {});
    }
    this.#sandboxes.delete(id);
    for (const networkId of networks) await this.#refreshPeers(networkId);
  }

  /** CNI CHECK of a container's attachments: says what the plugins find missing. */
  async #check(sandbox: SandboxRecord): Promise<void> {
    for (const endpoint of this.#endpointsOfContainer(sandbox.containerId)) {
      const network = this.#networks.find(endpoint.networkId);
      if (!network || !endpoint.result) continue;
      await this.#cni.check(this.#confList(network, endpoint), {
        containerId: endpoint.containerId,
        netns: sandbox.netns,
        ifName: endpoint.ifName,
        capabilityArgs: endpoint.portMappings.length > 0
          ? { portMappings: endpoint.portMappings }
          : undefined,
      }, endpoint.result).catch((err) =>
        this.#warn("CNI CHECK failed: the container's network may need a restart", {
          id: endpoint.containerId.slice(0, 12),
          network: network.name,
          error: messageOf(err),
        })
      );
    }
  }

  /** A new namespace for a container whose old one is gone, attached again at its addresses. */
  async #recreate(sandbox: SandboxRecord): Promise<void> {
    await createNetns(sandbox.netns);
    for (const endpoint of this.#endpointsOfContainer(sandbox.containerId)) {
      const network = this.#networks.find(endpoint.networkId);
      if (!network) continue;
      // Release the old allocation (host-local keeps it by container ID) and take it again.
      await this.#cni.del(this.#confList(network, endpoint), {
        containerId: endpoint.containerId,
        netns: "",
        ifName: endpoint.ifName,
      }, endpoint.result).catch(() => {});
      await sweepRules(new Set([network.id]), (id) => id !== endpoint.containerId);
      await this.#ensureBridge(network);
      const ip = endpoint.address?.split("/")[0] ?? endpoint.requestedIp;
      endpoint.masquerade = "network";
      await this.#add(sandbox, network, endpoint, ip);
    }
  }

  async #removeNetwork(network: NetworkRecord): Promise<void> {
    if (network.builtin) {
      throw forbidden(`${network.name} is a pre-defined network and cannot be removed`);
    }
    if (this.#endpointsOf(network.id).length > 0) {
      throw conflict(
        `error while removing network: network ${network.name} id ${network.id} has active ` +
          "endpoints",
      );
    }
    // The record goes last: a crash midway leaves the network, whose bridge the next start
    // brings back, rather than a bridge no record knows.
    if (network.bridge) await this.#removeBridge(network);
    await Deno.remove(`${this.ipamDir}/${network.id}`, { recursive: true }).catch(() => {});
    faultPoint("network:unbridged");
    this.#networks.delete(network.id);
  }

  /** Validates a create request into a record (subnet chosen from the pools when not given). */
  async #plan(request: NetworkCreateRequest): Promise<NetworkRecord> {
    const name = request.Name ?? "";
    if (!name) throw invalidArgument("network name is required");
    if (!NETWORK_NAME.test(name)) {
      throw invalidArgument(
        `invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
      );
    }
    if (this.#byName(name)) throw conflict(`network with name ${name} already exists`);
    const driver = request.Driver || "bridge";
    if (driver !== "bridge") {
      throw invalidArgument(`network driver ${driver} is not supported: only bridge`);
    }
    if (request.EnableIPv6) throw invalidArgument("IPv6 networks are not supported");
    if (request.IPAM?.Driver && request.IPAM.Driver !== "default") {
      throw invalidArgument(`IPAM driver ${request.IPAM.Driver} is not supported: only default`);
    }
    const configs = request.IPAM?.Config ?? [];
    if (configs.length > 1) {
      throw invalidArgument("only one IPAM config (one IPv4 subnet) per network is supported");
    }
    const options = { ...(request.Options ?? {}) };
    const id = newId();
    const bridge = options["com.docker.network.bridge.name"] || `pouch${id.slice(0, 10)}`;
    // Shown in inspect, so that the device of every network can be found.
    options["com.docker.network.bridge.name"] = bridge;
    if (!BRIDGE_NAME.test(bridge)) {
      throw invalidArgument(`invalid bridge name ${bridge}: 1-15 characters`);
    }
    if (this.#networks.list().some((n) => n.bridge === bridge)) {
      throw conflict(`bridge ${bridge} is already used by another network`);
    }
    const mtuText = options["com.docker.network.driver.mtu"];
    const mtu = mtuText ? Number(mtuText) : this.#mtu;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
      throw invalidArgument(`invalid MTU ${mtuText}: want 68-65535`);
    }
    const ours = this.#networks.list().filter((n) => n.subnet);
    const routes = await hostRoutes(new Set(ours.map((n) => n.bridge!)));
    const config = configs[0] ?? {};
    let subnet: Subnet;
    if (config.Subnet) {
      subnet = parseSubnet(config.Subnet);
      if (subnet.prefix > 30) {
        throw invalidArgument(`subnet ${config.Subnet} is too small: want /30 or larger`);
      }
      const clash = ours.find((n) => overlaps(parseSubnet(n.subnet!), subnet));
      if (clash) {
        throw conflict(
          `subnet ${config.Subnet} overlaps with network ${clash.name} (${clash.subnet})`,
        );
      }
      const route = routes.find((r) => overlaps(r, subnet));
      if (route) {
        throw conflict(
          `subnet ${config.Subnet} overlaps with the host's route to ${formatSubnet(route)} ` +
            `on ${route.dev}`,
        );
      }
    } else {
      if (config.Gateway || config.IPRange) {
        throw invalidArgument("a gateway or an IP range needs a subnet (--subnet)");
      }
      const taken = [...ours.map((n) => parseSubnet(n.subnet!)), ...routes];
      const picked = this.#pools.map((pool) =>
        pickSubnet([pool.base], { prefix: pool.size, taken })
      ).find((s) => s !== undefined);
      if (!picked) {
        throw conflict("could not find an available, non-overlapping IPv4 address pool");
      }
      subnet = picked;
    }
    let gateway = formatIPv4(firstHost(subnet));
    if (config.Gateway) {
      const address = parseIPv4(config.Gateway);
      if (address === undefined || !isHostAddress(subnet, address)) {
        throw invalidArgument(
          `invalid gateway ${config.Gateway}: not a host address of subnet ${formatSubnet(subnet)}`,
        );
      }
      gateway = config.Gateway;
    }
    if (config.IPRange) {
      const range = parseSubnet(config.IPRange, "IP range");
      if (!within(range, subnet)) {
        throw invalidArgument(
          `IP range ${config.IPRange} is not inside subnet ${formatSubnet(subnet)}`,
        );
      }
    }
    return {
      id,
      name,
      driver,
      created: new Date().toISOString(),
      builtin: false,
      bridge,
      subnet: formatSubnet(subnet),
      gateway,
      ...(config.IPRange ? { ipRange: config.IPRange } : {}),
      mtu,
      internal: request.Internal === true,
      labels: { ...(request.Labels ?? {}) },
      options,
    };
  }

  #checkRequestedIp(network: NetworkRecord, ip: string): void {
    const address = parseIPv4(ip);
    const subnet = parseSubnet(network.subnet!);
    if (address === undefined) throw invalidArgument(`invalid IPv4 address ${ip}`);
    if (!isHostAddress(subnet, address) || ip === network.gateway) {
      throw invalidArgument(
        `invalid address ${ip}: not a free host address of network ${network.name} ` +
          `(${network.subnet}, gateway ${network.gateway})`,
      );
    }
    if (network.ipRange && !contains(parseSubnet(network.ipRange), address)) {
      throw invalidArgument(
        `invalid address ${ip}: outside the allocation range ${network.ipRange} of network ` +
          network.name,
      );
    }
    const holder = this.#endpointsOf(network.id).find((e) =>
      e.address?.split("/")[0] === ip || e.requestedIp === ip
    );
    if (holder) {
      throw conflict(
        `Address already in use: ${ip} is taken by container ${
          this.#lookup().nameOf(holder.containerId) ?? holder.containerId.slice(0, 12)
        } on network ${network.name}`,
      );
    }
  }

  /** The sandbox a `container:REF` mode joins: a running container with its own namespace. */
  #joinTarget(ref: string): SandboxRecord {
    const target = this.#lookup().resolve(ref);
    if (!target.running) {
      throw conflict(`cannot join network of a non running container: ${target.name}`);
    }
    const sandbox = this.#sandboxes.find(target.id);
    if (!sandbox || sandbox.mode === "host") {
      throw invalidArgument(
        `cannot join the network of container ${target.name}: it uses the host's network ` +
          "(use --net host)",
      );
    }
    // Joining a joiner joins the namespace it joined.
    return sandbox.mode === "container"
      ? this.#sandboxes.find(sandbox.joined!) ?? sandbox
      : sandbox;
  }

  /** Writes a container's hosts, hostname and resolv.conf from its sandbox and its peers. */
  async #writeFiles(sandbox: SandboxRecord): Promise<void> {
    if (sandbox.mode === "container") return;
    const hostResolv = await readHostFile("/etc/resolv.conf");
    const resolvConf = renderResolvConf({
      host: hostResolv,
      dns: sandbox.dns,
      dnsSearch: sandbox.dnsSearch,
      dnsOptions: sandbox.dnsOptions,
      hostNetwork: sandbox.mode === "host",
    });
    let hosts: string;
    if (sandbox.mode === "host") {
      hosts = renderHostNetworkHosts(await readHostFile("/etc/hosts"), sandbox.extraHosts);
    } else {
      const endpoints = this.#endpointsOfContainer(sandbox.containerId);
      hosts = renderHosts({
        hostname: sandbox.hostname,
        domainname: sandbox.domainname,
        address: endpoints.find((e) => e.address)?.address?.split("/")[0],
        extraHosts: sandbox.extraHosts,
        peers: this.#peersOf(sandbox.containerId, endpoints),
      });
    }
    await Deno.mkdir(sandbox.dir, { recursive: true });
    await writeNetworkFiles(sandbox.dir, { hostname: sandbox.hostname, hosts, resolvConf });
  }

  /** The other containers on the user networks of a container, as hosts entries. */
  #peersOf(id: string, endpoints: EndpointRecord[]): HostEntry[] {
    const entries: HostEntry[] = [];
    const seen = new Set<string>();
    for (const own of endpoints) {
      const network = this.#networks.find(own.networkId);
      // Docker resolves names on user networks only; the default bridge has no discovery.
      if (!network || network.builtin) continue;
      for (const peer of this.#endpointsOf(network.id)) {
        if (peer.containerId === id || !peer.address) continue;
        const address = peer.address.split("/")[0]!;
        const name = this.#containers()?.nameOf(peer.containerId);
        const hostname = this.#sandboxes.find(peer.containerId)?.hostname;
        const names = [name, hostname, ...peer.aliases, peer.containerId.slice(0, 12)]
          .filter((n): n is string => !!n)
          .filter((n, i, all) => all.indexOf(n) === i);
        const key = `${address} ${names.join(" ")}`;
        if (seen.has(key)) continue;
        seen.add(key);
        entries.push({ address, names });
      }
    }
    return entries;
  }

  /** Rewrites the files of every container on network `networkId` (a peer joined or left). */
  async #refreshPeers(networkId: string): Promise<void> {
    const network = this.#networks.find(networkId);
    if (!network || network.builtin) return;
    for (const endpoint of this.#endpointsOf(networkId)) {
      const sandbox = this.#sandboxes.find(endpoint.containerId);
      if (!sandbox) continue;
      await this.#writeFiles(sandbox).catch((err) =>
        this.#warn("rewriting a container's hosts file failed", {
          id: endpoint.containerId.slice(0, 12),
          error: messageOf(err),
        })
      );
    }
  }

  /** Removes host-local allocations that belong to no attachment (a crash mid-ADD or mid-DEL). */
  async #sweepIpam(): Promise<void> {
    for await (const networkId of readDirSafe(this.ipamDir)) {
      const dir = `${this.ipamDir}/${networkId}`;
      if (!this.#networks.find(networkId)) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        continue;
      }
      for await (const file of readDirSafe(dir)) {
        if (parseIPv4(file) === undefined) continue;
        const owner = (await Deno.readTextFile(`${dir}/${file}`).catch(() => "")).split(/\s/)[0];
        if (owner && this.#endpoints.find(endpointKey(owner, networkId))) continue;
        this.#warn("releasing a leftover address", { network: networkId.slice(0, 12), ip: file });
        await Deno.remove(`${dir}/${file}`).catch(() => {});
      }
    }
  }

  #confList(network: NetworkRecord, endpoint: EndpointRecord) {
    return bridgeConfList({
      name: network.id,
      bridge: network.bridge!,
      subnet: network.subnet!,
      gateway: network.gateway!,
      ipRange: network.ipRange,
      mtu: network.mtu ?? this.#mtu,
      internal: network.internal,
    }, {
      ipamDir: this.ipamDir,
      iptables: this.#iptables,
      ipForward: this.#ipForward,
      portMappings: endpoint.portMappings.length > 0,
      attachmentMasquerade: endpoint.masquerade !== "network",
    });
  }

  /** The network's bridge, with its address, up; and its masquerade rule unless internal. */
  async #ensureBridge(network: NetworkRecord): Promise<void> {
    await ensureBridge(network.bridge!, {
      gateway: network.gateway!,
      subnet: network.subnet!,
      mtu: network.mtu ?? this.#mtu,
    });
    if (this.#iptables && !network.internal) {
      await ensureMasquerade({ subnet: network.subnet!, bridge: network.bridge! });
    }
  }

  /** The network's masquerade rule and bridge device, gone. */
  async #removeBridge(network: NetworkRecord): Promise<void> {
    if (this.#iptables) {
      await removeMasquerade({ subnet: network.subnet!, bridge: network.bridge! });
    }
    await removeBridge(network.bridge!);
  }

  #resource(network: NetworkRecord): NetworkResource {
    const containers: NetworkResource["Containers"] = {};
    for (const endpoint of this.#endpointsOf(network.id)) {
      containers[endpoint.containerId] = {
        Name: this.#containers()?.nameOf(endpoint.containerId) ?? "",
        EndpointID: endpoint.endpointId,
        MacAddress: endpoint.mac ?? "",
        IPv4Address: endpoint.address ?? "",
        IPv6Address: "",
      };
    }
    return {
      Name: network.name,
      Id: network.id,
      Created: network.created,
      Scope: "local",
      Driver: network.driver,
      EnableIPv6: false,
      IPAM: {
        Driver: "default",
        Options: {},
        Config: network.subnet
          ? [{
            Subnet: network.subnet,
            Gateway: network.gateway!,
            ...(network.ipRange ? { IPRange: network.ipRange } : {}),
          }]
          : [],
      },
      Internal: network.internal,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: "" },
      ConfigOnly: false,
      Containers: containers,
      Options: network.options,
      Labels: network.labels,
    };
  }

  #find(ref: string): NetworkRecord {
    const all = this.#networks.list();
    const exact = all.find((n) => n.id === ref) ?? all.find((n) => n.name === ref);
    if (exact) return exact;
    if (/^[0-9a-f]+$/.test(ref)) {
      const matches = all.filter((n) => n.id.startsWith(ref));
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1) {
        throw invalidArgument(`network ${ref} is ambiguous (${matches.length} matches found)`);
      }
    }
    throw notFound(`network ${ref} not found`);
  }

  #byName(name: string): NetworkRecord | undefined {
    return this.#networks.list().find((n) => n.name === name);
  }

  #endpointsOf(networkId: string): EndpointRecord[] {
    return this.#endpoints.list().filter((e) => e.networkId === networkId);
  }

  #endpointsOfContainer(id: string): EndpointRecord[] {
    return this.#endpoints.list().filter((e) => e.containerId === id)
      .sort((a, b) => a.ifName.localeCompare(b.ifName, undefined, { numeric: true }));
  }

  /**
   * The endpoints of container `id` as {@link #endpointsOfContainer} orders them, but frozen
   * and from an index rebuilt only when an endpoint changed: `ps` asks for every container.
   */
  #endpointViewsOf(id: string): ReadonlyArray<Readonly<EndpointRecord>> {
    const version = this.#endpoints.version;
    if (this.#endpointIndex?.version !== version) {
      const byContainer = new Map<string, Array<Readonly<EndpointRecord>>>();
      for (const endpoint of this.#endpoints.views()) {
        let list = byContainer.get(endpoint.containerId);
        if (!list) byContainer.set(endpoint.containerId, list = []);
        list.push(endpoint);
      }
      for (const list of byContainer.values()) {
        list.sort((a, b) => a.ifName.localeCompare(b.ifName, undefined, { numeric: true }));
      }
      this.#endpointIndex = { version, byContainer };
    }
    return this.#endpointIndex.byContainer.get(id) ?? [];
  }

  #lookup(): ContainerLookup {
    const lookup = this.#containers();
    if (!lookup) throw notFound("no container manager");
    return lookup;
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#lock.then(fn);
    this.#lock = result.then(() => {}, () => {});
    return result;
  }
}

/** The endpoint config of a create request for `network` (by its name, ID, or the only one). */
function endpointConfigFor(
  endpoints: SandboxRequest["endpoints"],
  network: NetworkRecord,
): ConnectRequest["EndpointConfig"] | undefined {
  const entries = Object.entries(endpoints ?? {});
  const match = entries.find(([key]) => key === network.name || key === network.id) ??
    (entries.length === 1 ? entries[0] : undefined);
  return match?.[1] ?? undefined;
}

function endpointView(network: NetworkRecord, endpoint: EndpointRecord | undefined) {
  return {
    IPAMConfig: endpoint?.requestedIp ? { IPv4Address: endpoint.requestedIp } : null,
    Links: null,
    Aliases: endpoint && endpoint.aliases.length > 0 ? endpoint.aliases : null,
    NetworkID: network.id,
    EndpointID: endpoint?.endpointId ?? "",
    Gateway: endpoint?.gateway ?? "",
    IPAddress: endpoint?.address?.split("/")[0] ?? "",
    IPPrefixLen: endpoint?.address ? Number(endpoint.address.split("/")[1]) : 0,
    IPv6Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    MacAddress: endpoint?.mac ?? "",
    DriverOpts: null,
  };
}

function matchesFilters(
  network: NetworkRecord,
  filters: Record<string, string[]>,
  endpoints: number,
): boolean {
  const any = (key: string, test: (value: string) => boolean) =>
    !filters[key] || filters[key]!.length === 0 || filters[key]!.some(test);
  return any("name", (v) => network.name.includes(v)) &&
    any("id", (v) => network.id.startsWith(v)) &&
    any("driver", (v) => network.driver === v) &&
    any("scope", (v) => v === "local") &&
    any("type", (v) => (v === "builtin") === network.builtin) &&
    any("dangling", (v) => {
      const dangling = v === "true" || v === "1";
      return dangling === (!network.builtin && endpoints === 0);
    }) &&
    labelsMatch(network.labels, filters.label ?? []);
}

/** Docker's label filter: every `key` or `key=value` must match. */
function labelsMatch(labels: Record<string, string>, filters: string[]): boolean {
  return filters.every((filter) => {
    const eq = filter.indexOf("=");
    if (eq < 0) return filter in labels;
    return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
  });
}

function parseUntil(value: string): number {
  const seconds = Number(value);
  const time = Number.isFinite(seconds) && value !== "" ? seconds * 1000 : Date.parse(value);
  if (Number.isNaN(time)) throw invalidArgument(`invalid filter 'until'='${value}'`);
  return time;
}

function requiredContainer(ref: string | undefined): string {
  if (!ref) throw invalidArgument("a container (Container) is required");
  return ref;
}

function endpointKey(containerId: string, networkId: string): string {
  return `${containerId}/${networkId}`;
}

function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function* readDirSafe(dir: string): AsyncGenerator<string> {
  try {
    for await (const entry of Deno.readDir(dir)) yield entry.name;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * Daemon configuration: defaults as PouchContainer had them, overlaid by the JSON config file
 * (keys mirror the flag names), overlaid by the command-line flags. Flags win.
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";
import { type FlagSpec, parseFlags } from "./flags.ts";
import type { Level } from "./log.ts";
import { validateLogConfig } from "./log_drivers.ts";
import { checkHook } from "./rich.ts";
import type { OciHooks } from "./spec.ts";
import { DEFAULT_PLUGIN_DIRS, DEFAULT_PLUGIN_TIMEOUT_MS } from "../volume/plugin.ts";
import { DEFAULT_CNI_BIN_DIRS } from "../network/cni.ts";

/** The daemon's resolved configuration. */
export interface DaemonConfig {
  /** Addresses to serve the API on (`unix:///path`, `tcp://HOST:PORT`). */
  listen: string[];
  /** Serve TCP addresses over TLS (`--tls`; implied by `--tlsverify` and `--tlscert`). */
  tls: boolean;
  /** Require client certificates signed by `tlsCaCert` (`--tlsverify`), as dockerd. */
  tlsVerify: boolean;
  /** The CA that client certificates must be signed by (`--tlscacert`, PEM file). */
  tlsCaCert: string;
  /** The server's certificate (`--tlscert`, PEM file). */
  tlsCert: string;
  /** The server certificate's key (`--tlskey`, PEM file). */
  tlsKey: string;
  /** Serve TCP addresses in the clear all the same (`--insecure-tcp`): anyone reaching them is root. */
  insecureTcp: boolean;
  /** Root of the daemon's state. */
  homeDir: string;
  /** Address of an existing containerd; empty: start our own. */
  containerd: string;
  /** The containerd binary to start. */
  containerdPath: string;
  /** containerd namespace. */
  namespace: string;
  /** Snapshotter for image layers and container rootfs. */
  snapshotter: string;
  /** The default OCI runtime's name. */
  defaultRuntime: string;
  /** OCI runtimes by name: the binary each one runs. */
  runtimes: Record<string, string>;
  debug: boolean;
  /** The log level when not `debug` (`--log-level`). */
  logLevel: Level;
  /** The group owning the API sockets (`--group`); root's when it does not exist. */
  group: string;
  configFile: string;
  pidfile: string;
  /** Registries reached over plain HTTP (after HTTPS fails): `HOST[:PORT]`. */
  insecureRegistries: string[];
  /** Mirrors per registry host (`docker.io`, `HOST:PORT`), tried in order before it. */
  registryMirrors: Record<string, string[]>;
  /** HTTP proxy for pulls only (a P2P distributor such as Dragonfly); empty: none. */
  imageProxy: string;
  /** OCI hooks every new container gets (config file key `hooks`). */
  hooks: OciHooks;
  /** The static init bind-mounted into rich containers. */
  richInit: string;
  /** Containers get lxcfs unless they say otherwise (`--enable-lxcfs`). */
  enableLxcfs: boolean;
  /** The lxcfs binary the daemon runs (`--lxcfs`). */
  lxcfs: string;
  /** lxcfs's mount point (`--lxcfs-home`). */
  lxcfsHome: string;
  /** Where volume plugins are looked for, in order (`--volume-plugin-dir`). */
  volumePluginDirs: string[];
  /** The deadline of each volume plugin call (`--volume-plugin-timeout`). */
  volumePluginTimeoutMs: number;
  /** The default network's bridge device (`--bridge-name`). */
  bridgeName: string;
  /** The default network's gateway address and prefix (`--bip`). */
  bip: string;
  /** Where the default network allocates addresses, inside its subnet (`--fixed-cidr`). */
  fixedCidr: string;
  /** The default network's gateway, if not the bridge's address (`--default-gateway`). */
  defaultGateway: string;
  /** The MTU of bridge networks (`--mtu`). */
  mtu: number;
  /** Masquerade outgoing traffic and publish ports with iptables (`--iptables`). */
  iptables: boolean;
  /** Turn on IP forwarding (`--ipforward`). */
  ipForward: boolean;
  /** Where CNI plugins are looked for, in order (`--cni-bin-dir`). */
  cniBinDirs: string[];
  /** Serve the CRI (`--enable-cri`). */
  enableCri: boolean;
  /** The CRI's gRPC socket (`--listen-cri`). */
  listenCri: string;
  /** The image of pod sandboxes' infra containers (`--sandbox-image`). */
  sandboxImage: string;
  /** The CRI streaming server's port on loopback (`--stream-server-port`); 0: any free port. */
  streamServerPort: number;
  /** Where the CRI's CNI network configurations are (`--cni-conf-dir`). */
  cniConfDir: string;
  /** Containers' default log driver (`--log-driver`). */
  logDriver: string;
  /** Options of the default log driver (`--log-opt KEY=VALUE`). */
  logOpts: Record<string, string>;
  /** Where hook plugins are loaded from (`--plugin-dir`; see plugins.ts). */
  pluginDir: string;
  /** Hook plugins loaded besides those of the directory (`--plugin`, config key `plugins`). */
  plugins: string[];
}

/** The defaults, as PouchContainer had them. */
export function defaultConfig(): DaemonConfig {
  return {
    listen: ["unix:///var/run/pouchd.sock"],
    tls: false,
    tlsVerify: false,
    tlsCaCert: "",
    tlsCert: "",
    tlsKey: "",
    insecureTcp: false,
    homeDir: "/var/lib/pouch",
    containerd: "",
    containerdPath: "containerd",
    namespace: "default",
    snapshotter: "overlayfs",
    defaultRuntime: "runc",
    runtimes: { runc: "runc" },
    debug: false,
    logLevel: "info",
    group: "pouch",
    configFile: "/etc/pouch/config.json",
    pidfile: "/var/run/pouch.pid",
    insecureRegistries: [],
    registryMirrors: {},
    imageProxy: "",
    hooks: {},
    richInit: "/usr/bin/tini-static",
    enableLxcfs: false,
    lxcfs: "/usr/bin/lxcfs",
    lxcfsHome: "/var/lib/lxcfs",
    volumePluginDirs: [...DEFAULT_PLUGIN_DIRS],
    volumePluginTimeoutMs: DEFAULT_PLUGIN_TIMEOUT_MS,
    bridgeName: "p0",
    bip: "192.168.5.1/24",
    fixedCidr: "",
    defaultGateway: "",
    mtu: 1500,
    iptables: true,
    ipForward: true,
    cniBinDirs: [...DEFAULT_CNI_BIN_DIRS],
    enableCri: false,
    listenCri: "unix:///var/run/pouchcri.sock",
    sandboxImage: "registry.k8s.io/pause:3.9",
    streamServerPort: 10010,
    cniConfDir: "/etc/cni/net.d",
    logDriver: "json-file",
    logOpts: {},
    pluginDir: "/etc/pouch/plugins",
    plugins: [],
  };
}

/** The daemon's usage text. */
export const DAEMON_USAGE = `Usage: pouch daemon [OPTIONS]

Run the pouch daemon.

Options:
  -l, --listen ADDR          Address to serve the API on (repeatable, default unix:///var/run/pouchd.sock);
                             tcp://HOST[:PORT] needs TLS (port 2376 by default)
      --tls                  Serve tcp:// addresses over TLS (implied by --tlsverify, --tlscert)
      --tlscert PATH         The server's TLS certificate (PEM)
      --tlskey PATH          The server certificate's key (PEM)
      --tlsverify            Require client certificates signed by --tlscacert
      --tlscacert PATH       The CA client certificates must be signed by (PEM)
      --insecure-tcp         Serve tcp:// addresses without TLS (anyone reaching them is root)
      --home-dir DIR         Root of pouch's state (default /var/lib/pouch)
  -c, --containerd ADDR      Use an existing containerd at ADDR instead of starting one
      --containerd-path PATH containerd binary to start (default containerd from PATH)
      --default-runtime NAME OCI runtime for containers without --runtime (default runc)
      --add-runtime NAME=PATH  Register another OCI runtime (repeatable)
      --snapshotter NAME     containerd snapshotter (default overlayfs)
  -D, --debug                Debug logging (one line per request); same as --log-level debug
      --log-level LEVEL      debug, info, warn or error (default info)
      --group NAME           Group owning the API socket, mode 0660 (default pouch; root's
                             group when it does not exist)
      --config-file PATH     JSON config, keys as the flag names (default /etc/pouch/config.json)
      --pidfile PATH         Pid file (default /var/run/pouch.pid)
      --insecure-registries HOST[:PORT]
                             Registry reached over plain HTTP when HTTPS fails (repeatable;
                             loopback registries always are)
      --registry-mirror HOST[:PORT]=URL
                             A mirror of registry HOST, tried before it (repeatable, in order)
      --registry-mirrors URL A mirror of Docker Hub (repeatable, in order)
      --image-proxy URL      HTTP proxy used for pulls only (e.g. a P2P distributor)
      --rich-init PATH       Static init for rich containers (default /usr/bin/tini-static)
      --enable-lxcfs         Give every container lxcfs's /proc files (--enableLxcfs)
      --lxcfs PATH           lxcfs binary the daemon runs (default /usr/bin/lxcfs)
      --lxcfs-home DIR       lxcfs mount point; an lxcfs already mounted there is used
                             (default /var/lib/lxcfs)
      --volume-plugin-dir DIR
                             Where volume plugins' sockets and spec files are looked for
                             (repeatable; default /run/docker/plugins, /run/pouch/plugins,
                             /etc/docker/plugins, /usr/lib/docker/plugins, /etc/pouch/plugins)
      --volume-plugin-timeout DURATION
                             Deadline of each volume plugin call (default 30s; 500ms, 2m, or
                             seconds)
      --bridge-name NAME     The default network's bridge device (default p0)
      --bip CIDR             The default network's gateway and subnet (default 192.168.5.1/24)
      --fixed-cidr CIDR      Allocate the default network's addresses from this range
      --default-gateway IP   The default network's gateway (default: the --bip address)
      --mtu N                MTU of bridge networks (default 1500)
      --iptables[=false]     Masquerade and publish ports with iptables (default true)
      --ipforward[=false]    Turn on IP forwarding (default true)
      --cni-bin-dir DIR      Where CNI plugins are (repeatable; default /usr/lib/cni,
                             /opt/cni/bin)
      --enable-cri           Serve the Kubernetes CRI (runtime.v1) on --listen-cri
      --listen-cri ADDR      The CRI's socket (default unix:///var/run/pouchcri.sock)
      --sandbox-image IMAGE  Image of pod sandboxes' infra container
                             (default registry.k8s.io/pause:3.9)
      --stream-server-port N Port of the CRI streaming server (exec, attach, port-forward) on
                             127.0.0.1 (default 10010; 0: any free port)
      --cni-conf-dir DIR     CNI network configurations for pods (default /etc/cni/net.d)
      --log-driver NAME      Containers' default log driver: json-file, none or syslog
                             (default json-file)
      --log-opt KEY=VALUE    Option of the default log driver (repeatable; e.g. max-size=10m)
      --plugin-dir DIR       Hook plugins (*.ts, *.js, executables) loaded at start
                             (default /etc/pouch/plugins)
      --plugin PATH          Another hook plugin to load (repeatable)
  -h, --help                 Print this help
`;

/** Keys of the JSON config file, mapped to the config fields they set. */
const fileKeys: Record<string, keyof DaemonConfig> = {
  "listen": "listen",
  "tls": "tls",
  "tlsverify": "tlsVerify",
  "tlscacert": "tlsCaCert",
  "tlscert": "tlsCert",
  "tlskey": "tlsKey",
  "insecure-tcp": "insecureTcp",
  "home-dir": "homeDir",
  "containerd": "containerd",
  "containerd-path": "containerdPath",
  "debug": "debug",
  "log-level": "logLevel",
  "group": "group",
  "pidfile": "pidfile",
  "default-runtime": "defaultRuntime",
  "snapshotter": "snapshotter",
  "add-runtime": "runtimes",
  "runtimes": "runtimes",
  "insecure-registries": "insecureRegistries",
  "registry-mirrors": "registryMirrors",
  "image-proxy": "imageProxy",
  "hooks": "hooks",
  "rich-init": "richInit",
  "enable-lxcfs": "enableLxcfs",
  "lxcfs": "lxcfs",
  "lxcfs-home": "lxcfsHome",
  "volume-plugin-dir": "volumePluginDirs",
  "volume-plugin-timeout": "volumePluginTimeoutMs",
  "bridge-name": "bridgeName",
  "bip": "bip",
  "fixed-cidr": "fixedCidr",
  "default-gateway": "defaultGateway",
  "mtu": "mtu",
  "iptables": "iptables",
  "ipforward": "ipForward",
  "cni-bin-dir": "cniBinDirs",
  "enable-cri": "enableCri",
  "listen-cri": "listenCri",
  "sandbox-image": "sandboxImage",
  "stream-server-port": "streamServerPort",
  "cni-conf-dir": "cniConfDir",
  "log-driver": "logDriver",
  "log-opt": "logOpts",
  "log-opts": "logOpts",
  "plugin-dir": "pluginDir",
  "plugins": "plugins",
};

/** The daemon's flags, as `parseFlags` takes them. */
const DAEMON_FLAGS = [
  { name: "listen", kind: "list", short: "l" },
  { name: "tls", kind: "bool" },
  { name: "no-tls", kind: "bool" },
  { name: "tlsverify", kind: "bool" },
  { name: "no-tlsverify", kind: "bool" },
  { name: "tlscacert", kind: "string" },
  { name: "tlscert", kind: "string" },
  { name: "tlskey", kind: "string" },
  { name: "insecure-tcp", kind: "bool" },
  { name: "home-dir", kind: "string" },
  { name: "containerd", kind: "string", short: "c" },
  { name: "containerd-path", kind: "string" },
  { name: "default-runtime", kind: "string" },
  { name: "add-runtime", kind: "list" },
  { name: "snapshotter", kind: "string" },
  { name: "debug", kind: "bool", short: "D" },
  { name: "log-level", kind: "string" },
  { name: "group", kind: "string" },
  { name: "config-file", kind: "string" },
  { name: "pidfile", kind: "string" },
  { name: "insecure-registries", kind: "list" },
  { name: "registry-mirror", kind: "list" },
  { name: "registry-mirrors", kind: "list" },
  { name: "image-proxy", kind: "string" },
  { name: "rich-init", kind: "string" },
  { name: "enable-lxcfs", kind: "bool" },
  { name: "lxcfs", kind: "string" },
  { name: "lxcfs-home", kind: "string" },
  { name: "volume-plugin-dir", kind: "list" },
  { name: "volume-plugin-timeout", kind: "string" },
  { name: "bridge-name", kind: "string" },
  { name: "bip", kind: "string" },
  { name: "fixed-cidr", kind: "string" },
  { name: "default-gateway", kind: "string" },
  { name: "mtu", kind: "string" },
  { name: "iptables", kind: "bool" },
  { name: "no-iptables", kind: "bool" },
  { name: "ipforward", kind: "bool" },
  { name: "no-ipforward", kind: "bool" },
  { name: "cni-bin-dir", kind: "list" },
  { name: "enable-cri", kind: "bool" },
  { name: "listen-cri", kind: "string" },
  { name: "sandbox-image", kind: "string" },
  { name: "stream-server-port", kind: "string" },
  { name: "cni-conf-dir", kind: "string" },
  { name: "log-driver", kind: "string" },
  { name: "log-opt", kind: "list" },
  { name: "plugin-dir", kind: "string" },
  { name: "plugin", kind: "list" },
  { name: "help", kind: "bool", short: "h" },
] as const satisfies readonly FlagSpec[];

/** The daemon's flags by name, as parsed: a list, a string or a boolean by kind. */
type DaemonFlags = {
  [Flag in (typeof DAEMON_FLAGS)[number] as Flag["name"]]?: Flag["kind"] extends "list" ? string[]
    : Flag["kind"] extends "bool" ? boolean
    : string;
};

/** Parses the daemon's flags and config file into a {@link DaemonConfig}. */
export async function loadConfig(args: string[]): Promise<DaemonConfig | "help"> {
  let parsed;
  try {
    parsed = parseFlags(args.map(booleanFlag), DAEMON_FLAGS);
  } catch (err) {
    throw invalidArgument(err instanceof Error ? err.message : String(err));
  }
  if (parsed.args.length > 0) {
    throw invalidArgument(`unexpected argument ${JSON.stringify(parsed.args[0])}`);
  }
  const flags = Object.fromEntries(parsed.values) as DaemonFlags;
  if (flags.help) return "help";

  const config = defaultConfig();
  const configFile = flags["config-file"] ?? config.configFile;
  config.configFile = configFile;
  await applyFile(config, configFile, flags["config-file"] !== undefined);

  if (flags.listen) config.listen = flags.listen;
  applyTlsFlags(config, flags);
  if (flags["home-dir"]) config.homeDir = flags["home-dir"];
  if (flags.containerd !== undefined) config.containerd = flags.containerd;
  if (flags["containerd-path"]) config.containerdPath = flags["containerd-path"];
  if (flags["default-runtime"]) config.defaultRuntime = flags["default-runtime"];
  if (flags.snapshotter) config.snapshotter = flags.snapshotter;
  if (flags.debug) config.debug = true;
  if (flags["log-level"]) config.logLevel = flags["log-level"] as Level;
  if (!["debug", "info", "warn", "error"].includes(config.logLevel)) {
    throw invalidArgument(`invalid log level ${config.logLevel}: want debug, info, warn or error`);
  }
  if (flags.group !== undefined) config.group = flags.group;
  if (flags.pidfile) config.pidfile = flags.pidfile;
  for (const spec of flags["add-runtime"] ?? []) {
    const [name, path] = splitOnce(spec, "=");
    if (!name || !path) throw invalidArgument(`invalid --add-runtime ${spec}: want NAME=PATH`);
    config.runtimes[name] = path;
  }
  if (flags["insecure-registries"]) {
    config.insecureRegistries = flags["insecure-registries"].flatMap(splitList);
  }
  // Mirrors given as flags replace the config file's for the registries they name.
  const flagMirrors: Record<string, string[]> = {};
  for (const url of flags["registry-mirrors"]?.flatMap(splitList) ?? []) {
    (flagMirrors[DOCKER_HUB] ??= []).push(checkMirrorUrl(url));
  }
  for (const spec of flags["registry-mirror"] ?? []) {
    const [host, url] = splitOnce(spec, "=");
    if (!host || !url) {
      throw invalidArgument(`invalid --registry-mirror ${spec}: want HOST[:PORT]=URL`);
    }
    (flagMirrors[host] ??= []).push(checkMirrorUrl(url));
  }
  Object.assign(config.registryMirrors, flagMirrors);
  if (flags["image-proxy"] !== undefined) config.imageProxy = flags["image-proxy"];
  if (config.imageProxy) checkMirrorUrl(config.imageProxy);
  if (flags["rich-init"]) config.richInit = flags["rich-init"];
  if (flags["enable-lxcfs"]) config.enableLxcfs = true;
  if (flags.lxcfs) config.lxcfs = flags.lxcfs;
  if (flags["lxcfs-home"]) config.lxcfsHome = flags["lxcfs-home"];
  if (flags["volume-plugin-dir"]) config.volumePluginDirs = flags["volume-plugin-dir"];
  if (flags["volume-plugin-timeout"] !== undefined) {
    config.volumePluginTimeoutMs = parseDuration(
      flags["volume-plugin-timeout"],
      "--volume-plugin-timeout",
    );
  }
  if (flags["bridge-name"]) config.bridgeName = flags["bridge-name"];
  if (flags.bip) config.bip = flags.bip;
  if (flags["fixed-cidr"] !== undefined) config.fixedCidr = flags["fixed-cidr"];
  if (flags["default-gateway"] !== undefined) config.defaultGateway = flags["default-gateway"];
  if (flags.mtu !== undefined) config.mtu = Number(flags.mtu);
  if (flags.iptables) config.iptables = true;
  if (flags["no-iptables"]) config.iptables = false;
  if (flags.ipforward) config.ipForward = true;
  if (flags["no-ipforward"]) config.ipForward = false;
  if (flags["cni-bin-dir"]) config.cniBinDirs = flags["cni-bin-dir"].flatMap(splitList);
  if (flags["enable-cri"]) config.enableCri = true;
  if (flags["listen-cri"]) config.listenCri = flags["listen-cri"];
  if (flags["sandbox-image"]) config.sandboxImage = flags["sandbox-image"];
  if (flags["stream-server-port"] !== undefined) {
    config.streamServerPort = Number(flags["stream-server-port"]);
  }
  if (flags["cni-conf-dir"]) config.cniConfDir = flags["cni-conf-dir"];
  if (flags["log-driver"]) config.logDriver = flags["log-driver"];
  if (flags["log-opt"]) config.logOpts = keyValues(flags["log-opt"], "--log-opt");
  validateLogConfig({ Type: config.logDriver, Config: config.logOpts });
  if (flags["plugin-dir"] !== undefined) config.pluginDir = flags["plugin-dir"];
  if (flags.plugin) config.plugins.push(...flags.plugin);
  const port = config.streamServerPort;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalidArgument(`invalid --stream-server-port ${port}: want 0-65535`);
  }
  parseListenAddress(config.listenCri);
  if (!Number.isInteger(config.mtu) || config.mtu < 68 || config.mtu > 65535) {
    throw invalidArgument(`invalid --mtu ${config.mtu}: want 68-65535`);
  }
  for (const dir of config.volumePluginDirs) {
    if (!dir.startsWith("/")) {
      throw invalidArgument(`invalid volume plugin dir ${dir}: want an absolute path`);
    }
  }
  if (!config.lxcfsHome.startsWith("/")) {
    throw invalidArgument(`invalid lxcfs home ${config.lxcfsHome}: want an absolute path`);
  }
  checkApiListen(config);
  if (!config.runtimes[config.defaultRuntime]) {
    throw invalidArgument(`default runtime ${config.defaultRuntime} is not a known runtime`);
  }
  return config;
}

async function applyFile(config: DaemonConfig, path: string, required: boolean): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && !required) return;
    throw invalidArgument(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalidArgument(`config file ${path} must hold a JSON object`);
  }
  for (const [key, value] of Object.entries(data)) {
    const field = fileKeys[key];
    if (!field) throw invalidArgument(`config file ${path}: unknown key "${key}"`);
    if (field === "runtimes") {
      // PouchContainer's form: {"runtimes": {"name": {"path": "/bin/x"}}}; also {"name": "/bin/x"}.
      for (const [name, spec] of Object.entries(value as Record<string, unknown>)) {
        const runtimePath = typeof spec === "string" ? spec : (spec as { path?: string })?.path;
        if (!runtimePath) throw invalidArgument(`config file ${path}: runtime ${name} has no path`);
        config.runtimes[name] = runtimePath;
      }
    } else if (field === "listen") {
      config.listen = Array.isArray(value) ? value.map(String) : [String(value)];
    } else if (
      field === "debug" || field === "tls" || field === "tlsVerify" || field === "insecureTcp"
    ) {
      config[field] = value === true;
    } else if (field === "enableLxcfs" || field === "enableCri") {
      config[field] = value === true;
    } else if (field === "streamServerPort") {
      config.streamServerPort = Number(value);
    } else if (field === "iptables" || field === "ipForward") {
      config[field] = value !== false && value !== "false";
    } else if (field === "mtu") {
      config.mtu = Number(value);
    } else if (field === "cniBinDirs") {
      config.cniBinDirs = Array.isArray(value) ? value.map(String) : splitList(String(value));
    } else if (field === "insecureRegistries") {
      config.insecureRegistries = Array.isArray(value)
        ? value.map(String)
        : splitList(String(value));
    } else if (field === "hooks") {
      config.hooks = parseHooks(value, path);
    } else if (field === "volumePluginDirs") {
      config.volumePluginDirs = Array.isArray(value) ? value.map(String) : [String(value)];
    } else if (field === "volumePluginTimeoutMs") {
      config.volumePluginTimeoutMs = parseDuration(
        typeof value === "number" ? `${value}s` : String(value),
        `config file ${path}: "volume-plugin-timeout"`,
      );
    } else if (field === "logOpts") {
      if (typeof value !== "object" || value === null) {
        throw invalidArgument(`config file ${path}: "${key}" must be an object or a list`);
      }
      config.logOpts = Array.isArray(value)
        ? keyValues(value.map(String), `config file ${path}: "${key}"`)
        : Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, String(v)]));
    } else if (field === "plugins") {
      config.plugins = Array.isArray(value) ? value.map(String) : [String(value)];
    } else if (field === "registryMirrors") {
      config.registryMirrors = parseMirrors(value, path);
    } else {
      (config as unknown as Record<string, unknown>)[field] = String(value);
    }
  }
}

/** A parsed unix socket address. */
export type ListenAddress = { kind: "unix"; path: string };

/** Parses `unix:///path` (or a bare absolute path): the only form the CRI socket takes. */
export function parseListenAddress(address: string): ListenAddress {
  if (address.startsWith("unix://")) {
    const path = address.slice("unix://".length);
    if (!path.startsWith("/")) throw invalidArgument(`invalid listen address ${address}`);
    return { kind: "unix", path };
  }
  if (address.startsWith("/")) return { kind: "unix", path: address };
  throw invalidArgument(`unsupported listen address ${address}: want unix:///PATH`);
}

/** A parsed API address: a unix socket or a TCP host and port. */
export type ApiAddress = ListenAddress | { kind: "tcp"; host: string; port: number };

/** dockerd's ports: 2376 for TLS, 2375 for plain TCP. */
export const DEFAULT_TLS_PORT = 2376;
const DEFAULT_TCP_PORT = 2375;

/**
 * Parses an API address: `unix:///path`, a bare `/path`, or `tcp://HOST[:PORT]` (IPv6 in
 * brackets; an empty host is localhost, as dockerd; the port defaults to 2376 with TLS and
 * 2375 without).
 */
export function parseApiAddress(address: string, options: { tls: boolean }): ApiAddress {
  if (!address.startsWith("tcp://")) return parseListenAddress(address);
  const match = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\[\]]*)(?::(\d+))?\/?$/.exec(address);
  if (!match) throw invalidArgument(`invalid listen address ${address}: want tcp://HOST:PORT`);
  const host = (match[1] || "localhost").replace(/^\[(.*)\]$/, "$1");
  const port = match[2] === undefined
    ? (options.tls ? DEFAULT_TLS_PORT : DEFAULT_TCP_PORT)
    : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidArgument(`invalid listen address ${address}: want a port of 1-65535`);
  }
  return { kind: "tcp", host, port };
}

/** The TLS flags over the config file's keys; `--tls=false` turns off what the file says. */
function applyTlsFlags(
  config: DaemonConfig,
  flags: Record<string, string | boolean | (string | boolean)[] | undefined>,
): void {
  const text = (name: string) => typeof flags[name] === "string" ? flags[name] : undefined;
  config.tlsCaCert = text("tlscacert") ?? config.tlsCaCert;
  config.tlsCert = text("tlscert") ?? config.tlsCert;
  config.tlsKey = text("tlskey") ?? config.tlsKey;
  if (flags["insecure-tcp"]) config.insecureTcp = true;
  if (flags.tlsverify) config.tlsVerify = true;
  if (flags["no-tlsverify"]) config.tlsVerify = false;
  // As dockerd: --tlsverify implies --tls; and a server certificate has no other use.
  if (flags.tls || config.tlsVerify || (config.tlsCert && config.tlsKey)) config.tls = true;
  if (flags["no-tls"]) config.tls = config.tlsVerify = false;
}

/**
 * Checks the API addresses and their TLS settings. TCP without TLS hands root on this host to
 * anyone who can reach the port, so it is refused unless `--insecure-tcp` says so.
 */
function checkApiListen(config: DaemonConfig): void {
  const tcp = config.listen.filter((address) => parseApiAddress(address, config).kind === "tcp");
  if (config.tls && (!config.tlsCert || !config.tlsKey)) {
    throw invalidArgument(
      "TLS needs the server's certificate and key: give --tlscert and --tlskey",
    );
  }
  if (config.tlsVerify && !config.tlsCaCert) {
    throw invalidArgument("--tlsverify needs the CA of the client certificates: give --tlscacert");
  }
  if (tcp.length > 0 && !config.tls && !config.insecureTcp) {
    throw invalidArgument(
      `refusing to listen on ${tcp.join(", ")} without TLS: anyone who can reach it would be ` +
        "root on this host. Give --tlscert and --tlskey (and --tlsverify --tlscacert to " +
        "require client certificates), or --insecure-tcp to serve it in the clear anyway",
    );
  }
}

/** Registry host of Docker Hub, the one a plain list of mirrors is for. */
const DOCKER_HUB = "docker.io";

/** `a,b` or `a` -> a list (flags may carry several values separated by commas). */
function splitList(value: string): string[] {
  return value.split(",").map((v) => v.trim()).filter((v) => v !== "");
}

function checkMirrorUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument(`invalid registry mirror or proxy URL ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw invalidArgument(`invalid registry mirror or proxy URL ${url}: want http:// or https://`);
  }
  return url.replace(/\/+$/, "");
}

/**
 * `"registry-mirrors"` of the config file: `{"HOST[:PORT]": ["URL", ...]}` (mirrors of any
 * registry), or a plain list (PouchContainer's meaning: mirrors of Docker Hub).
 */
export function parseMirrors(value: unknown, path: string): Record<string, string[]> {
  if (Array.isArray(value)) return { [DOCKER_HUB]: value.map((v) => checkMirrorUrl(String(v))) };
  if (typeof value !== "object" || value === null) {
    throw invalidArgument(`config file ${path}: "registry-mirrors" must be an object or a list`);
  }
  const out: Record<string, string[]> = {};
  for (const [host, urls] of Object.entries(value)) {
    const list = Array.isArray(urls) ? urls : [urls];
    out[host === "index.docker.io" ? DOCKER_HUB : host] = list.map((u) =>
      checkMirrorUrl(String(u))
    );
  }
  return out;
}

/**
 * `"hooks"` of the config file: `{"prestart": [{"path": "/bin/x", "args": ["x", "-v"]}],
 * "poststop": [...]}`, PouchContainer's and the OCI spec's shape.
 */
export function parseHooks(value: unknown, path: string): OciHooks {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalidArgument(`config file ${path}: "hooks" must be an object`);
  }
  const hooks: OciHooks = {};
  for (const [kind, list] of Object.entries(value)) {
    if (kind !== "prestart" && kind !== "poststop") {
      throw invalidArgument(
        `config file ${path}: unknown hook kind "${kind}": want prestart or poststop`,
      );
    }
    if (!Array.isArray(list)) {
      throw invalidArgument(`config file ${path}: "hooks.${kind}" must be a list`);
    }
    hooks[kind] = list.map((hook) => checkHook(hook, `config file ${path}: hooks.${kind}`));
  }
  return hooks;
}

/** `500ms`, `30s`, `2m` or a number of seconds, in milliseconds; throws InvalidArgument. */
export function parseDuration(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000 }[match?.[2] ?? "s"] ?? 1000;
  const ms = match ? Math.round(Number(match[1]) * unit) : NaN;
  if (!(ms > 0)) {
    throw invalidArgument(`invalid ${what} ${JSON.stringify(text)}: want 500ms, 30s, 2m`);
  }
  return ms;
}

/** `--iptables=false` -> `--no-iptables` (Docker's form of a boolean flag set to false). */
function booleanFlag(arg: string): string {
  const match = /^--(iptables|ipforward|tls|tlsverify)=(.*)$/.exec(arg);
  if (!match) return arg;
  const value = match[2]!.toLowerCase();
  if (["false", "0", "no"].includes(value)) return `--no-${match[1]}`;
  if (["true", "1", "yes"].includes(value)) return `--${match[1]}`;
  throw invalidArgument(`invalid --${match[1]} value ${match[2]}: want true or false`);
}

/** `["KEY=VALUE", ...]` -> an object; throws InvalidArgument naming `what`. */
function keyValues(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const [key, value] = splitOnce(item, "=");
    if (!key || !item.includes("=")) {
      throw invalidArgument(`invalid ${what} ${item}: want KEY=VALUE`);
    }
    out[key] = value;
  }
  return out;
}

function splitOnce(text: string, separator: string): [string, string] {
  const index = text.indexOf(separator);
  return index < 0 ? [text, ""] : [text.slice(0, index), text.slice(index + 1)];
}

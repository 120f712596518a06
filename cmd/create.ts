/**
 * The flags of `create` and `run`, and their translation into the body of
 * `POST /containers/create` (Docker's Config + HostConfig, plus PouchContainer's fields).
 * Every value is checked here, so a bad flag fails before anything is sent.
 *
 * @module
 */

import {
  type Flags,
  type FlagSpec,
  invalidValue,
  parseEnvFile,
  parseIp,
  parseLabelFile,
  parseLabels,
  parseNanoCpus,
  parseUlimit,
  ramInBytes,
  resolveEnv,
  UsageError,
} from "./flags.ts";

/** Flags of `create` (and `run`, which adds `-d`, `--rm` has both). */
export const createFlags: FlagSpec[] = [
  {
    name: "interactive",
    short: "i",
    kind: "bool",
    description: "Keep STDIN open even if not attached",
  },
  { name: "tty", short: "t", kind: "bool", description: "Allocate a pseudo-TTY" },
  { name: "rm", kind: "bool", description: "Automatically remove the container when it exits" },
  { name: "name", kind: "string", description: "Assign a name to the container" },
  { name: "env", short: "e", kind: "list", description: "Set environment variables" },
  { name: "env-file", kind: "list", description: "Read in a file of environment variables" },
  {
    name: "workdir",
    short: "w",
    kind: "string",
    description: "Working directory inside the container",
  },
  {
    name: "user",
    short: "u",
    kind: "string",
    description: "Username or UID (format: <name|uid>[:<group|gid>])",
  },
  {
    name: "entrypoint",
    kind: "string",
    description: "Overwrite the default ENTRYPOINT of the image",
  },
  { name: "hostname", short: "h", kind: "string", description: "Container host name" },
  { name: "label", short: "l", kind: "list", description: "Set meta data on a container" },
  { name: "label-file", kind: "list", description: "Read in a line delimited file of labels" },
  { name: "memory", short: "m", kind: "string", description: "Memory limit" },
  {
    name: "memory-swap",
    kind: "string",
    description: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
  },
  { name: "cpus", kind: "string", description: "Number of CPUs" },
  { name: "cpu-shares", short: "c", kind: "string", description: "CPU shares (relative weight)" },
  {
    name: "cpuset-cpus",
    kind: "string",
    description: "CPUs in which to allow execution (0-3, 0,1)",
  },
  {
    name: "cpuset-mems",
    kind: "string",
    description: "MEMs in which to allow execution (0-3, 0,1)",
  },
  {
    name: "pids-limit",
    kind: "string",
    description: "Tune container pids limit (set -1 for unlimited)",
  },
  { name: "privileged", kind: "bool", description: "Give extended privileges to this container" },
  { name: "cap-add", kind: "list", description: "Add Linux capabilities" },
  { name: "cap-drop", kind: "list", description: "Drop Linux capabilities" },
  {
    name: "read-only",
    kind: "bool",
    description: "Mount the container's root filesystem as read only",
  },
  { name: "runtime", kind: "string", description: "Runtime to use for this container" },
  {
    name: "network",
    aliases: ["net"],
    kind: "string",
    description: "Connect a container to a network",
  },
  { name: "volume", short: "v", kind: "list", description: "Bind mount a volume" },
  { name: "tmpfs", kind: "list", description: "Mount a tmpfs directory" },
  {
    name: "mount",
    kind: "list",
    description: "Attach a filesystem mount to the container (type=bind|volume|tmpfs,...)",
  },
  {
    name: "volumes-from",
    kind: "list",
    description: "Mount volumes from the specified container(s) (CONTAINER[:ro|rw])",
  },
  {
    name: "volume-driver",
    kind: "string",
    description: "Optional volume driver for the container",
  },
  {
    name: "restart",
    kind: "string",
    description: "Restart policy to apply when a container exits",
    default: '"no"',
  },
  { name: "stop-signal", kind: "string", description: "Signal to stop the container" },
  { name: "log-driver", kind: "string", description: "Logging driver for the container" },
  { name: "log-opt", kind: "list", description: "Log driver options" },
  { name: "stop-timeout", kind: "string", description: "Timeout (in seconds) to stop a container" },
  { name: "ulimit", kind: "list", description: "Ulimit options" },
  { name: "shm-size", kind: "string", description: "Size of /dev/shm" },
  {
    name: "init",
    kind: "bool",
    description: "Run an init inside the container that forwards signals and reaps processes",
  },
  { name: "sysctl", kind: "list", description: "Sysctl options" },
  { name: "security-opt", kind: "list", description: "Security Options" },
  { name: "add-host", kind: "list", description: "Add a custom host-to-IP mapping (host:ip)" },
  { name: "dns", kind: "list", description: "Set custom DNS servers" },
  { name: "dns-search", kind: "list", description: "Set custom DNS search domains" },
  { name: "dns-option", aliases: ["dns-opt"], kind: "list", description: "Set DNS options" },
  { name: "ip", kind: "string", description: "IPv4 address (e.g., 172.30.100.104)" },
  {
    name: "network-alias",
    kind: "list",
    description: "Add network-scoped alias for the container",
  },
  {
    name: "mac-address",
    kind: "string",
    description: "Container MAC address (e.g., 92:d0:c6:0a:29:33)",
  },
  {
    name: "publish",
    short: "p",
    kind: "list",
    description: "Publish a container's port(s) to the host",
  },
  {
    name: "publish-all",
    short: "P",
    kind: "bool",
    description: "Publish all exposed ports to random ports",
  },
  { name: "expose", kind: "list", description: "Expose a port or a range of ports" },
  {
    name: "oom-score-adj",
    kind: "string",
    description: "Tune host's OOM preferences (-1000 to 1000)",
  },
  { name: "rich", kind: "bool", description: "Start a rich container (PouchContainer)" },
  {
    name: "rich-mode",
    kind: "string",
    description: "Rich container mode: dumb-init, sbin-init or systemd",
  },
  {
    name: "initscript",
    kind: "string",
    description: "Script run in the container before its command (rich mode)",
  },
  {
    name: "initcmd",
    kind: "string",
    description: "Command run by /bin/sh in the container before its command (rich mode)",
  },
  {
    name: "prestart-hook",
    kind: "list",
    description: "OCI prestart hook run on the host: 'PATH [ARG...]' (repeatable)",
  },
  {
    name: "poststop-hook",
    kind: "list",
    description: "OCI poststop hook run on the host: 'PATH [ARG...]' (repeatable)",
  },
  { name: "enableLxcfs", kind: "bool", description: "Enable lxcfs for the container" },
  {
    name: "disk-quota",
    kind: "list",
    description: "Disk quota of the rootfs or a volume ([PATH=]SIZE)",
  },
  { name: "specific-id", kind: "string", description: "Use this 64-hex ID for the container" },
];

/** Flags of `run`: `create`'s plus `-d`. */
export const runFlags: FlagSpec[] = [
  {
    name: "detach",
    short: "d",
    kind: "bool",
    description: "Run container in background and print container ID",
  },
  {
    name: "detach-keys",
    kind: "string",
    description: "Override the key sequence for detaching a container",
  },
  ...createFlags,
];

/** What `create`/`run` send, and what `run` needs to attach. */
export interface CreateRequest {
  /** The `name` query parameter. */
  name?: string;
  /** The body of `POST /containers/create`. */
  body: CreateBody;
  /** The image as given. */
  image: string;
  /** `-d` */
  detach: boolean;
  /** `-i` */
  interactive: boolean;
  /** `-t` */
  tty: boolean;
  /** `--rm` */
  autoRemove: boolean;
}

/** The body of `POST /containers/create` (the parts the CLI sets). */
export interface CreateBody {
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Hostname?: string;
  Labels?: Record<string, string>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  StopSignal?: string;
  StopTimeout?: number;
  /** Where API 1.41 takes `--mac-address` (1.44 moved it into the endpoint). */
  MacAddress?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>>;
  Rich?: boolean;
  RichMode?: string;
  InitScript?: string;
  InitCmd?: string;
  DiskQuota?: Record<string, string>;
  SpecificID?: string;
  HostConfig: Record<string, unknown>;
  /** The endpoint settings of `--ip` and `--network-alias`, by network. */
  NetworkingConfig?: { EndpointsConfig: Record<string, EndpointSettings> };
}

/** An endpoint of `NetworkingConfig.EndpointsConfig` (the parts the CLI sets). */
export interface EndpointSettings {
  IPAMConfig?: { IPv4Address: string };
  Aliases?: string[];
}

/** Options of {@link buildCreateRequest}. */
export interface BuildCreateOptions {
  /** The CLI's environment, for `-e KEY` and env files. */
  lookupEnv: (key: string) => string | undefined;
  /** Reads `--env-file` and `--label-file` files. */
  readFile: (path: string) => string;
  /** Whether `-d` applies (`run`); `create` never attaches. */
  isRun: boolean;
  /** The CLI's working directory, for `--mount src=./dir` (asked only then). */
  cwd?: () => string;
}

/** A `HostConfig.Mounts` entry, as `--mount` gives it. */
export interface MountBody {
  Type: string;
  Source?: string;
  Target: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; CreateMountpoint?: boolean };
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string>;
    DriverConfig?: { Name?: string; Options?: Record<string, string> };
  };
  TmpfsOptions?: { SizeBytes?: number; Mode?: number };
}

/** Options of {@link parseMount}. */
export interface ParseMountOptions {
  /** Where `src=.` and `src=./dir` are relative to, as Docker's CLI resolves them. */
  cwd?: () => string;
}

/** One CSV record (Go's `encoding/csv`, which Docker's CLI reads `--mount` with). */
function csvFields(text: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`extraneous or missing " in quoted-field`);
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i++];
      }
      if (i < text.length && text[i] !== ",") {
        throw new Error(`extraneous or missing " in quoted-field`);
      }
    } else {
      const end = text.indexOf(",", i);
      field = text.slice(i, end < 0 ? text.length : end);
      if (field.includes('"')) throw new Error(`bare " in non-quoted-field`);
      i += field.length;
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

/** Go's `strconv.ParseBool`. */
function goBool(text: string): boolean | undefined {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(text)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(text)) return false;
  return undefined;
}

/**
 * Parses Docker's `--mount` syntax (`type=volume,src=data,dst=/data,ro`, the type defaulting to
 * volume) into a `HostConfig.Mounts` entry; throws an Error with the Docker CLI's message.
 */
export function parseMount(text: string, options: ParseMountOptions = {}): MountBody {
  const mount: MountBody = { Type: "volume", Target: "" };
  const volumeOptions = () => (mount.VolumeOptions ??= {});
  const bindOptions = () => (mount.BindOptions ??= {});
  const tmpfsOptions = () => (mount.TmpfsOptions ??= {});
  const setBool = (key: string, value: string, set: (on: boolean) => void) => {
    const on = goBool(value);
    if (on === undefined) throw new Error(`invalid value for ${key}: ${value}`);
    set(on);
  };
  const setInMap = (map: Record<string, string>, value: string) => {
    const eq = value.indexOf("=");
    const key = eq < 0 ? value : value.slice(0, eq);
    if (key !== "") map[key] = eq < 0 ? "" : value.slice(eq + 1);
  };
  for (const field of csvFields(text)) {
    const eq = field.indexOf("=");
    // Docker's CLI lower-cases keys (not values).
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    if (value === undefined) {
      if (key === "readonly" || key === "ro") mount.ReadOnly = true;
      else if (key === "volume-nocopy") volumeOptions().NoCopy = true;
      else if (key === "bind-create-src") bindOptions().CreateMountpoint = true;
      else throw new Error(`invalid field '${field}' must be a key=value pair`);
      continue;
    }
    switch (key) {
      case "type":
        mount.Type = value.toLowerCase();
        break;
      case "source":
      case "src":
        mount.Source = value;
        if (options.cwd && (value === "." || value.startsWith("./"))) {
          const cwd = options.cwd().replace(/\/+$/, "");
          mount.Source = `${cwd}/${value.slice(2)}`.replace(/\/+$/, "") || "/";
        }
        break;
      case "target":
      case "dst":
      case "destination":
        mount.Target = value;
        break;
      case "readonly":
      case "ro":
        setBool(key, value, (on) => mount.ReadOnly = on);
        break;
      case "consistency":
        mount.Consistency = value.toLowerCase();
        break;
      case "bind-propagation":
        bindOptions().Propagation = value.toLowerCase();
        break;
      case "bind-create-src":
        setBool(key, value, (on) => bindOptions().CreateMountpoint = on);
        break;
      case "volume-nocopy":
        setBool(key, value, (on) => volumeOptions().NoCopy = on);
        break;
      case "volume-label":
        setInMap(volumeOptions().Labels ??= {}, value);
        break;
      case "volume-driver":
        (volumeOptions().DriverConfig ??= {}).Name = value;
        break;
      case "volume-opt":
        setInMap((volumeOptions().DriverConfig ??= {}).Options ??= {}, value);
        break;
      case "tmpfs-size":
        try {
          tmpfsOptions().SizeBytes = ramInBytes(value);
        } catch {
          throw new Error(`invalid value for ${key}: ${value}`);
        }
        break;
      case "tmpfs-mode":
        if (!/^[0-7]+$/.test(value) || parseInt(value, 8) > 0xffffffff) {
          throw new Error(`invalid value for ${key}: ${value}`);
        }
        tmpfsOptions().Mode = parseInt(value, 8);
        break;
      default:
        throw new Error(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (mount.Type === "") throw new Error("type is required");
  if (mount.Target === "") throw new Error("target is required");
  if (mount.VolumeOptions && mount.Type !== "volume") {
    throw new Error(`cannot mix 'volume-*' options with mount type '${mount.Type}'`);
  }
  if (mount.BindOptions && mount.Type !== "bind") {
    throw new Error(`cannot mix 'bind-*' options with mount type '${mount.Type}'`);
  }
  if (mount.TmpfsOptions && mount.Type !== "tmpfs") {
    throw new Error(`cannot mix 'tmpfs-*' options with mount type '${mount.Type}'`);
  }
  return mount;
}

const restartNames = ["no", "always", "unless-stopped", "on-failure"];

function parseRestart(flags: Flags, text: string): { Name: string; MaximumRetryCount?: number } {
  const [name, count] = text.split(":");
  if (!restartNames.includes(name ?? "")) {
    throw invalidValue(flags.spec("restart"), text, `invalid restart policy ${text}`);
  }
  if (count !== undefined) {
    if (name !== "on-failure") {
      throw invalidValue(
        flags.spec("restart"),
        text,
        `maximum retry count cannot be used with restart policy '${name}'`,
      );
    }
    if (!/^\d+$/.test(count)) {
      throw invalidValue(flags.spec("restart"), text, `maximum retry count must be an integer`);
    }
    return { Name: name!, MaximumRetryCount: Number(count) };
  }
  return { Name: name === "no" ? "no" : name! };
}

/** One `-p` mapping: the container port (`80/tcp`) and the host side it is bound to. */
export interface PortMapping {
  port: string;
  binding: { HostIp: string; HostPort: string };
}

/** Docker's `nat.ParsePortRange`: `80` or `8000-8010`, each within 0-65535. */
function parsePortRange(text: string): [number, number] | undefined {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  return start <= 65535 && end <= 65535 && start <= end ? [start, end] : undefined;
}

/** Docker's `nat.SplitProtoPort`: `80/udp` into `["udp", "80"]`, tcp by default. */
function splitProtoPort(text: string): [string, string] {
  const [port = "", proto] = text.split("/");
  return [proto ? proto.toLowerCase() : "tcp", port];
}

/** The Docker CLI's long `--publish` syntax (`published=8080,target=80,protocol=udp`). */
function standardPublishNotation(spec: string): string {
  if (!spec.includes("=")) return spec;
  const params: Record<string, string> = { protocol: "tcp" };
  for (const param of spec.split(",")) {
    const eq = param.indexOf("=");
    if (eq <= 0) {
      throw new Error(`invalid publish opts format (should be name=value but got '${param}')`);
    }
    params[param.slice(0, eq)] = param.slice(eq + 1);
  }
  return `${params.published ?? ""}:${params.target ?? ""}/${params.protocol}`;
}

/**
 * Parses a `-p` value as Docker's `nat.ParsePortSpec` does:
 * `[ip:][hostPort:]containerPort[/proto]`, ports or ranges (`8000-8001:80-81`, or a host range
 * for one container port, which the daemon picks from), IPv6 host addresses in brackets.
 */
export function parsePublish(spec: string): PortMapping[] {
  const [proto, rest] = splitProtoPort(standardPublishNotation(spec));
  const parts = rest.split(":");
  const containerPort = parts.at(-1)!;
  const hostPort = parts.length >= 2 ? parts.at(-2)! : "";
  let ip = parts.length >= 3 ? parts.slice(0, -2).join(":") : "";
  if (ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
  if (ip !== "" && !parseIp(ip)) throw new Error(`invalid IP address: ${ip}`);
  if (containerPort === "") throw new Error(`no port specified: ${spec}<empty>`);
  const container = parsePortRange(containerPort);
  if (!container) throw new Error(`invalid containerPort: ${containerPort}`);
  const host = hostPort === "" ? undefined : parsePortRange(hostPort);
  if (hostPort !== "" && !host) throw new Error(`invalid hostPort: ${hostPort}`);
  const [start, end] = container;
  if (host && end - start !== host[1] - host[0] && end !== start) {
    throw new Error(
      `invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`,
    );
  }
  if (!["tcp", "udp", "sctp"].includes(proto)) throw new Error(`invalid proto: ${proto}`);
  const mappings: PortMapping[] = [];
  for (let i = 0; i <= end - start; i++) {
    let hostSide = host ? String(host[0] + i) : "";
    // One container port and a host range: the daemon picks a free port of the range.
    if (host && start === end && host[0] !== host[1]) hostSide = `${host[0]}-${host[1]}`;
    mappings.push({ port: `${start + i}/${proto}`, binding: { HostIp: ip, HostPort: hostSide } });
  }
  return mappings;
}

/** Parses an `--expose` value (`80`, `80/udp`, `8000-8010`) into port keys (`80/tcp`). */
export function parseExpose(spec: string): string[] {
  if (spec.includes(":")) throw new Error(`invalid port format for --expose: ${spec}`);
  const [proto, port] = splitProtoPort(spec);
  const range = parsePortRange(port);
  if (!range) {
    throw new Error(`invalid range format for --expose: ${spec}, error: invalid port: ${port}`);
  }
  const ports: string[] = [];
  for (let p = range[0]; p <= range[1]; p++) ports.push(`${p}/${proto}`);
  return ports;
}

/**
 * Docker's `ValidateExtraHost`: `host:ip` or `host=ip` (an IPv6 address may be bracketed, the
 * special `host-gateway` is kept), answered as the `host:ip` the API takes.
 */
export function parseExtraHost(entry: string): string {
  let eq = entry.indexOf("=");
  if (eq < 0) eq = entry.indexOf(":");
  const name = eq < 0 ? "" : entry.slice(0, eq);
  if (name === "" || name.includes(":")) throw new Error(`bad format for add-host: "${entry}"`);
  let ip = entry.slice(eq + 1);
  if (ip !== "host-gateway") {
    if (ip.length > 2 && ip.startsWith("[") && ip.endsWith("]")) ip = ip.slice(1, -1);
    if (!parseIp(ip)) throw new Error(`invalid IP address in add-host: "${ip}"`);
  }
  return `${name}:${ip}`;
}

/** Docker's domain check for `--dns-search` (`.` means none). */
function validDnsSearch(domain: string): boolean {
  if (domain === ".") return true;
  const label = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
  return /[a-zA-Z]/.test(domain) && domain.length < 255 &&
    new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(domain);
}

function keyValues(entries: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new Error(`invalid ${what} format: ${entry}, should be KEY=VALUE`);
    out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/**
 * Docker's CLI `parseSecurityOpts`: every option needs a value (but `no-new-privileges`), and
 * `seccomp=FILE` becomes `seccomp=<the file's JSON, compacted>`, as the daemon reads profiles,
 * not files of the client's machine. `unconfined` and `builtin` are names, not files.
 */
function parseSecurityOpts(opts: string[], readFile: (path: string) => string): string[] {
  return opts.map((opt) => {
    let at = opt.indexOf("=");
    if (at < 0 && opt !== "no-new-privileges") at = opt.indexOf(":");
    const key = at < 0 ? opt : opt.slice(0, at);
    const value = at < 0 ? "" : opt.slice(at + 1);
    if (value === "" && key !== "no-new-privileges") {
      throw new UsageError(`Invalid --security-opt: ${JSON.stringify(opt)}`);
    }
    if (key !== "seccomp" || value === "unconfined" || value === "builtin") return opt;
    let text: string;
    try {
      text = readFile(value);
    } catch (err) {
      throw new UsageError(`opening seccomp profile (${value}) failed: ${(err as Error).message}`);
    }
    try {
      JSON.parse(text);
    } catch (err) {
      throw new UsageError(
        `compacting json for seccomp profile (${value}) failed: ${(err as Error).message}`,
      );
    }
    return `seccomp=${compactJson(text)}`;
  });
}

/** Go's `json.Compact` for valid JSON: whitespace outside strings goes, numbers stay as written. */
function compactJson(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (inString) {
      out += char;
      if (char === "\\") out += text[++i] ?? "";
      else if (char === '"') inString = false;
    } else if (char === '"') {
      inString = true;
      out += char;
    } else if (!" \t\r\n".includes(char)) {
      out += char;
    }
  }
  return out;
}

function size(flags: Flags, name: string): number | undefined {
  const text = flags.string(name);
  if (text === undefined) return undefined;
  try {
    return ramInBytes(text);
  } catch (err) {
    throw invalidValue(flags.spec(name), text, (err as Error).message);
  }
}

/** Each value of a list flag through `parse`, a failure worded as pflag's. */
function parseEach<T>(flags: Flags, name: string, parse: (value: string) => T): T[] {
  return flags.list(name).map((value) => {
    try {
      return parse(value);
    } catch (err) {
      throw invalidValue(flags.spec(name), value, (err as Error).message);
    }
  });
}

/**
 * Sets the network fields of a create body as the Docker CLI does: `--network` as
 * `HostConfig.NetworkMode`; `--ip` and `--network-alias` as the endpoint of that network (the
 * Docker CLI leaves the endpoint out when neither is given, and names the network `default`
 * when `--network` is absent); ports, DNS, extra hosts and the MAC address.
 */
function applyNetworkFlags(flags: Flags, body: CreateBody): void {
  const host = body.HostConfig;
  const network = flags.string("network");
  if (network !== undefined) {
    if (network === "" || network === "container:") {
      throw invalidValue(
        flags.spec("network"),
        network,
        "expected NAME, bridge, host, none or container:<name|id>",
      );
    }
    host.NetworkMode = network;
  }
  const endpoint: EndpointSettings = {};
  const ip = flags.string("ip");
  if (ip !== undefined && ip !== "") {
    if (parseIp(ip)?.bits !== 32) {
      throw invalidValue(flags.spec("ip"), ip, `invalid IPv4 address: ${ip}`);
    }
    endpoint.IPAMConfig = { IPv4Address: ip };
  }
  const aliases = flags.list("network-alias");
  if (aliases.length > 0) endpoint.Aliases = aliases;
  if (Object.keys(endpoint).length > 0) {
    const target = network ?? "default";
    host.NetworkMode = target;
    body.NetworkingConfig = { EndpointsConfig: { [target]: endpoint } };
  }
  const mac = flags.string("mac-address");
  if (mac !== undefined && mac !== "") {
    if (!/^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$/.test(mac)) {
      throw invalidValue(flags.spec("mac-address"), mac, `${mac} is not a valid mac address`);
    }
    body.MacAddress = mac;
  }

  const dns = parseEach(flags, "dns", (server) => {
    if (!parseIp(server.trim())) {
      throw new Error(`IP address is not correctly formatted: ${server}`);
    }
    return server.trim();
  });
  if (dns.length > 0) host.Dns = dns;
  const search = parseEach(flags, "dns-search", (domain) => {
    if (!validDnsSearch(domain.trim())) throw new Error(`${domain} is not a valid domain`);
    return domain.trim();
  });
  if (search.length > 0) host.DnsSearch = search;
  if (flags.list("dns-option").length > 0) host.DnsOptions = flags.list("dns-option");
  const extraHosts = parseEach(flags, "add-host", parseExtraHost);
  if (extraHosts.length > 0) host.ExtraHosts = extraHosts;

  const exposed: Record<string, Record<string, never>> = {};
  const bindings: Record<string, Array<PortMapping["binding"]>> = {};
  for (const mappings of parseEach(flags, "publish", parsePublish)) {
    for (const { port, binding } of mappings) {
      (bindings[port] ??= []).push(binding);
      exposed[port] = {};
    }
  }
  for (const ports of parseEach(flags, "expose", parseExpose)) {
    for (const port of ports) exposed[port] = {};
  }
  if (Object.keys(bindings).length > 0) host.PortBindings = bindings;
  if (Object.keys(exposed).length > 0) body.ExposedPorts = exposed;
  if (flags.bool("publish-all")) host.PublishAllPorts = true;
}

/**
 * Turns the parsed flags of `create`/`run` into the create request; throws
 * {@link UsageError} for a bad value, before anything is sent.
 */
export function buildCreateRequest(flags: Flags, options: BuildCreateOptions): CreateRequest {
  const [image, ...command] = flags.args;
  if (image === undefined) throw new UsageError("requires at least 1 argument");
  const detach = options.isRun && flags.bool("detach");
  const interactive = flags.bool("interactive");
  const tty = flags.bool("tty");
  const autoRemove = flags.bool("rm");

  const env: string[] = [];
  for (const file of flags.list("env-file")) {
    env.push(...parseEnvFile(options.readFile(file), { lookup: options.lookupEnv }));
  }
  for (const entry of flags.list("env")) env.push(...resolveEnv(entry, options.lookupEnv));

  const labelLines: string[] = [];
  for (const file of flags.list("label-file")) {
    labelLines.push(...parseLabelFile(options.readFile(file)));
  }
  labelLines.push(...flags.list("label"));

  const host: Record<string, unknown> = {};
  const attach = options.isRun && !detach;
  const body: CreateBody = {
    Image: image,
    Tty: tty,
    OpenStdin: interactive,
    StdinOnce: attach && interactive,
    AttachStdin: attach && interactive,
    AttachStdout: attach,
    AttachStderr: attach,
    HostConfig: host,
  };
  if (command.length > 0) body.Cmd = command;
  if (flags.has("entrypoint")) {
    body.Entrypoint = [flags.string("entrypoint")!];
  }
  if (env.length > 0) body.Env = env;
  if (labelLines.length > 0) body.Labels = parseLabels(labelLines);
  if (flags.has("workdir")) body.WorkingDir = flags.string("workdir");
  if (flags.has("user")) body.User = flags.string("user");
  if (flags.has("hostname")) body.Hostname = flags.string("hostname");
  if (flags.has("stop-signal")) body.StopSignal = flags.string("stop-signal");
  if (flags.has("stop-timeout")) body.StopTimeout = flags.int("stop-timeout");

  // Resources.
  const memory = size(flags, "memory");
  if (memory !== undefined) host.Memory = memory;
  const swap = flags.string("memory-swap");
  if (swap !== undefined) host.MemorySwap = swap === "-1" ? -1 : size(flags, "memory-swap");
  const cpus = flags.string("cpus");
  if (cpus !== undefined) {
    try {
      host.NanoCpus = parseNanoCpus(cpus);
    } catch (err) {
      throw invalidValue(flags.spec("cpus"), cpus, (err as Error).message);
    }
  }
  if (flags.has("cpu-shares")) host.CpuShares = flags.int("cpu-shares");
  if (flags.has("cpuset-cpus")) host.CpusetCpus = flags.string("cpuset-cpus");
  if (flags.has("cpuset-mems")) host.CpusetMems = flags.string("cpuset-mems");
  if (flags.has("pids-limit")) host.PidsLimit = flags.int("pids-limit");
  const shm = size(flags, "shm-size");
  if (shm !== undefined) host.ShmSize = shm;
  if (flags.has("oom-score-adj")) {
    const adj = flags.int("oom-score-adj")!;
    if (adj < -1000 || adj > 1000) {
      throw invalidValue(
        flags.spec("oom-score-adj"),
        String(adj),
        "oom-score-adj must be between -1000 and 1000",
      );
    }
    host.OomScoreAdj = adj;
  }
  const ulimits = flags.list("ulimit").map((u) => {
    try {
      return parseUlimit(u);
    } catch (err) {
      throw invalidValue(flags.spec("ulimit"), u, (err as Error).message);
    }
  });
  if (ulimits.length > 0) host.Ulimits = ulimits;

  // Security.
  if (flags.bool("privileged")) host.Privileged = true;
  if (flags.list("cap-add").length > 0) host.CapAdd = flags.list("cap-add");
  if (flags.list("cap-drop").length > 0) host.CapDrop = flags.list("cap-drop");
  if (flags.bool("read-only")) host.ReadonlyRootfs = true;
  if (flags.list("security-opt").length > 0) {
    host.SecurityOpt = parseSecurityOpts(flags.list("security-opt"), options.readFile);
  }
  if (flags.has("runtime")) host.Runtime = flags.string("runtime");
  if (flags.bool("init")) host.Init = true;
  if (flags.list("sysctl").length > 0) {
    try {
      host.Sysctls = keyValues(flags.list("sysctl"), "sysctl");
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }

  // Storage.
  const binds: string[] = [];
  const volumes: Record<string, Record<string, never>> = {};
  for (const v of flags.list("volume")) {
    if (v.includes(":")) binds.push(v);
    else if (v.startsWith("/")) volumes[v] = {};
    else throw invalidValue(flags.spec("volume"), v, `invalid volume specification: '${v}'`);
  }
  if (binds.length > 0) host.Binds = binds;
  if (Object.keys(volumes).length > 0) body.Volumes = volumes;
  const tmpfs: Record<string, string> = {};
  for (const t of flags.list("tmpfs")) {
    const colon = t.indexOf(":");
    if (colon < 0) tmpfs[t] = "";
    else tmpfs[t.slice(0, colon)] = t.slice(colon + 1);
  }
  if (Object.keys(tmpfs).length > 0) host.Tmpfs = tmpfs;
  const mounts = flags.list("mount").map((m) => {
    try {
      return parseMount(m, { cwd: options.cwd });
    } catch (err) {
      throw invalidValue(flags.spec("mount"), m, (err as Error).message);
    }
  });
  if (mounts.length > 0) host.Mounts = mounts;
  if (flags.list("volumes-from").length > 0) host.VolumesFrom = flags.list("volumes-from");
  if (flags.has("volume-driver")) host.VolumeDriver = flags.string("volume-driver");

  // Network: what the Docker CLI sends for one network.
  applyNetworkFlags(flags, body);

  // Lifecycle.
  const restart = flags.string("restart");
  if (restart !== undefined) {
    const policy = parseRestart(flags, restart);
    if (autoRemove && policy.Name !== "no") {
      throw new UsageError("Conflicting options: --restart and --rm");
    }
    host.RestartPolicy = policy;
  }
  if (autoRemove) host.AutoRemove = true;
  if (flags.has("log-driver") || flags.list("log-opt").length > 0) {
    try {
      host.LogConfig = {
        Type: flags.string("log-driver") ?? "",
        Config: keyValues(flags.list("log-opt"), "log-opt"),
      };
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }

  // PouchContainer's own.
  if (flags.bool("rich")) body.Rich = true;
  if (flags.has("rich-mode")) {
    const mode = flags.string("rich-mode")!;
    if (!["dumb-init", "sbin-init", "systemd"].includes(mode)) {
      throw invalidValue(
        flags.spec("rich-mode"),
        mode,
        "must be one of dumb-init, sbin-init, systemd",
      );
    }
    body.RichMode = mode;
  }
  if (flags.has("initscript")) body.InitScript = flags.string("initscript");
  if (flags.has("initcmd")) body.InitCmd = flags.string("initcmd");
  if (flags.list("prestart-hook").length > 0) host.PrestartHooks = flags.list("prestart-hook");
  if (flags.list("poststop-hook").length > 0) host.PoststopHooks = flags.list("poststop-hook");
  if (flags.bool("enableLxcfs")) host.EnableLxcfs = true;
  if (flags.list("disk-quota").length > 0) {
    const quota: Record<string, string> = {};
    for (const q of flags.list("disk-quota")) {
      const eq = q.lastIndexOf("=");
      const path = eq >= 0 ? q.slice(0, eq) : "/";
      const value = eq >= 0 ? q.slice(eq + 1) : q;
      try {
        ramInBytes(value);
      } catch (err) {
        throw invalidValue(flags.spec("disk-quota"), q, (err as Error).message);
      }
      quota[path] = value;
    }
    body.DiskQuota = quota;
  }
  if (flags.has("specific-id")) {
    const id = flags.string("specific-id")!;
    if (!/^[0-9a-f]{64}$/.test(id)) {
      throw invalidValue(flags.spec("specific-id"), id, "must be 64 lower-case hex characters");
    }
    body.SpecificID = id;
  }

  return { name: flags.string("name"), body, image, detach, interactive, tty, autoRemove };
}

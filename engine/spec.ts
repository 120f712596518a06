/**
 * The OCI runtime spec builder: Docker's `Config` + `HostConfig` + the image's config become
 * the `config.json` that runc runs.
 *
 * Like containerd's `oci.Compose` (and moby's `createSpec`), {@link buildSpec} starts from
 * Docker's default Linux spec and applies an ordered list of small functions, one concern
 * each: process, hostname, env, user, capabilities, rlimits, oom score, root, namespaces,
 * mounts, system paths, resources, devices, cgroups, sysctls, privileged. Each function only
 * reads the input and edits the spec being built, so the whole is pure and synchronous.
 *
 * Where Docker has a rule, the rule is Docker's (moby `oci/defaults.go`, `daemon/oci_linux.go`,
 * `daemon/daemon_unix.go`, `runconfig`), messages included. Two rules are this host's: rlimits
 * never exceed the daemon's own hard limits and `oomScoreAdj` never goes below the daemon's own,
 * because root here lacks CAP_SYS_RESOURCE and runc would die with "can't get final child's PID
 * from pipe: EOF"; both are clamped with a warning.
 *
 * Seccomp is Docker's default profile (see `seccomp.ts`) unless privileged or told otherwise.
 * Not yet here: AppArmor profiles, `--device`.
 *
 * @module
 */

import { invalidArgument, notImplemented } from "./errors.ts";
import type { ContainerConfig, HostConfig, ImageRunConfig, MountSpec } from "./types.ts";
import type { ResolvedUser } from "./user.ts";
import {
  defaultSeccompProfile,
  type OciSeccomp,
  parseSeccompProfile,
  seccompFor,
  type SeccompForOptions,
} from "./seccomp.ts";

// ---------------------------------------------------------------------------------------------
// The OCI runtime spec subset pouch produces (runtime-spec config.md / config-linux.md).

/** The OCI runtime configuration (`config.json`) that pouch writes into a bundle. */
export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly: boolean };
  /** Absent when the container shares the host's UTS namespace. */
  hostname?: string;
  mounts: OciMount[];
  linux: OciLinux;
  /** Programs the runtime runs on the host at points of the container's life. */
  hooks?: OciHooks;
}

/** An OCI hook: run on the host with the container's state JSON on stdin. */
export interface OciHook {
  path: string;
  /** The full argv, `args[0]` included. */
  args?: string[];
  env?: string[];
  /** Seconds before the runtime kills the hook. */
  timeout?: number;
}

/** The OCI hooks pouch sets (`hooks`). */
export interface OciHooks {
  /** After the namespaces are created, before the process starts (deprecated in OCI, but
   * runc 1.1 and crun run them, and PouchContainer used them). */
  prestart?: OciHook[];
  /** After the container is deleted. */
  poststop?: OciHook[];
}

/** The container's process (`process`). */
export interface OciProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  /** The terminal's initial size (exec processes with a TTY). */
  consoleSize?: { height: number; width: number };
}

/** Capability sets, names with the `CAP_` prefix. */
export interface OciCapabilities {
  bounding: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
}

/** A POSIX resource limit (`RLIMIT_NOFILE`, ...). */
export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

/** A mount (`mounts[]`). */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** A namespace to create (no path) or join (path). */
export interface OciNamespace {
  type: "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup";
  path?: string;
}

/** A device node to create in the container (`linux.devices[]`). */
export interface OciDevice {
  path: string;
  type: "c" | "b" | "u" | "p";
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/** A devices cgroup rule (`linux.resources.devices[]`). */
export interface OciDeviceCgroup {
  allow: boolean;
  type?: "a" | "c" | "b";
  major?: number;
  minor?: number;
  access?: string;
}

/** Cgroup limits (`linux.resources`). */
export interface OciResources {
  devices: OciDeviceCgroup[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
  };
  pids?: { limit: number };
  blockIO?: { weight: number };
}

/** The Linux section (`linux`). */
export interface OciLinux {
  sysctl: Record<string, string>;
  resources: OciResources;
  cgroupsPath: string;
  namespaces: OciNamespace[];
  devices: OciDevice[];
  rootfsPropagation?: string;
  maskedPaths: string[];
  readonlyPaths: string[];
  /** The system call filter; absent: unconfined. */
  seccomp?: OciSeccomp;
}

// ---------------------------------------------------------------------------------------------
// Input.

/** Everything {@link buildSpec} needs; the caller gathers it (image, files, netns, limits). */
export interface SpecInput {
  /** The 64-hex container id. */
  id: string;
  /** Docker's `Config`. */
  config: ContainerConfig;
  /** Docker's `HostConfig`. */
  hostConfig: HostConfig;
  /** The image's `config.config`; may be `{}`. */
  image: ImageRunConfig;
  /** The resolved user (see `resolveUser` in `user.ts`). */
  user: ResolvedUser;
  /** Host paths bind-mounted at /etc/hosts, /etc/hostname and /etc/resolv.conf. */
  files: { hosts: string; hostname: string; resolvConf: string };
  /** The cgroup path, e.g. `/pouch/<id>` (cgroupfs driver). */
  cgroupsPath: string;
  /** `""` or undefined: a new network namespace (unless host mode); a path: join it. */
  netnsPath?: string;
  /**
   * The namespaces that `container:ID` IPC, PID and UTS modes join (`/proc/PID/ns/ipc`, ...),
   * resolved by the container manager: the spec itself knows no other container.
   */
  namespacePaths?: Partial<Record<"ipc" | "pid" | "uts", string>>;
  /** The daemon's own limits, which the container cannot exceed here. */
  limits?: {
    /** The lowest `oom_score_adj` the daemon may set: its own. */
    maxOomScoreAdj?: number;
    /** The daemon's RLIMIT_NOFILE hard limit. */
    nofileHard?: number;
    /** The daemon's RLIMIT_NPROC hard limit. */
    nprocHard?: number;
    /**
     * The daemon's bounding capability set (see {@link parseCapabilityMask}): what
     * `--privileged` and `--cap-add ALL` grant, as Docker does since 20.10. Defaults to
     * {@link ALL_CAPABILITIES}; root here lacks CAP_SYS_RESOURCE, which runc cannot grant.
     */
    capabilities?: string[];
  };
  /** The host's hostname, used with `--network host`; defaults to `Deno.hostname()`. */
  hostHostname?: string;
  /** The host's device nodes, given to privileged containers (Docker lists /dev). */
  hostDevices?: OciDevice[];
  /** The architecture and kernel seccomp rules depend on; this machine's by default. */
  host?: SeccompForOptions;
  /** Where clamped values are reported. */
  warn?: (msg: string) => void;
}

/** One step of the spec: reads the input, edits the spec (containerd's `SpecOpts`). */
export type SpecOpt = (spec: OciSpec, input: SpecInput) => void;

/** Options of {@link buildSpec}. */
export interface BuildSpecOptions {
  /** The host's CPU count for validation; defaults to `navigator.hardwareConcurrency`. */
  cpuCount?: number;
  /** Steps applied after the built-in ones (rich mode, lxcfs, hooks). */
  extraOpts?: SpecOpt[];
}

/** Options of {@link validateHostConfig}. */
export interface ValidateOptions {
  /** The host's CPU count; defaults to `navigator.hardwareConcurrency`. */
  cpuCount?: number;
}

// ---------------------------------------------------------------------------------------------
// Docker's defaults.

/** The OCI version pouch writes, as containerd 1.6 does. */
export const OCI_VERSION = "1.0.2-dev";

/** The PATH a container gets when neither the image nor the user sets one. */
export const DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The size of /dev/shm when `ShmSize` is 0: 64 MiB. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** Docker's default capability set (moby `oci/caps/defaults.go`). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/**
 * Every capability of Linux 5.9+ in number order (0 to 40, CAP_CHECKPOINT_RESTORE), which is
 * what Docker's `GetAllCapabilities` gives on this host's kernel (cap_last_cap is 40).
 */
export const ALL_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** Paths of /proc and /sys hidden from unprivileged containers. */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Paths of /proc mounted read-only in unprivileged containers. */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/**
 * Docker's devices cgroup: deny everything, then allow the nodes runc creates by default
 * (null, zero, urandom, random, tty, console) and deny fuse. runc appends its own allow list
 * (ptmx, pts, tun, mknod of anything) after these rules, so containerd and Docker leave
 * `linux.devices` empty.
 */
function defaultDeviceRules(): OciDeviceCgroup[] {
  const allowChar = (major: number, minor: number): OciDeviceCgroup => ({
    allow: true,
    type: "c",
    major,
    minor,
    access: "rwm",
  });
  return [
    { allow: false, access: "rwm" },
    allowChar(1, 5), // /dev/zero
    allowChar(1, 3), // /dev/null
    allowChar(1, 9), // /dev/urandom
    allowChar(1, 8), // /dev/random
    allowChar(5, 0), // /dev/tty
    allowChar(5, 1), // /dev/console
    { allow: false, type: "c", major: 10, minor: 229, access: "rwm" }, // /dev/fuse
  ];
}

/** Docker's default Linux spec (moby `oci.DefaultLinuxSpec`), with containerd's bundle root. */
function defaultSpec(): OciSpec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [],
      env: [],
      cwd: "/",
      capabilities: {
        bounding: [...DEFAULT_CAPABILITIES],
        effective: [...DEFAULT_CAPABILITIES],
        permitted: [...DEFAULT_CAPABILITIES],
      },
    },
    root: { path: "rootfs", readonly: false },
    hostname: "",
    mounts: [
      mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
      mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
      mount("/dev/pts", "devpts", "devpts", [
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
      ]),
      mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
      mount("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev", "relatime"]),
      mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
      mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777"]),
    ],
    linux: {
      sysctl: {},
      resources: { devices: defaultDeviceRules() },
      cgroupsPath: "",
      namespaces: [
        { type: "mount" },
        { type: "network" },
        { type: "uts" },
        { type: "pid" },
        { type: "ipc" },
      ],
      devices: [],
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
}

function mount(destination: string, type: string, source: string, options: string[]): OciMount {
  return { destination, type, source, options };
}

// ---------------------------------------------------------------------------------------------
// The builder.

/**
 * Builds the OCI runtime spec of a container. Validates the host config first
 * ({@link validateHostConfig}), then applies Docker's rules concern by concern.
 *
 * @throws InvalidArgument for a bad input, with Docker's message.
 */
export function buildSpec(input: SpecInput, options?: BuildSpecOptions): OciSpec {
  validateHostConfig(input.hostConfig, { cpuCount: options?.cpuCount });
  const spec = defaultSpec();
  for (const opt of [...SPEC_OPTS, ...(options?.extraOpts ?? [])]) opt(spec, input);
  return spec;
}

/** The built-in steps, in order: later steps rely on earlier ones (caps on the user, ...). */
const SPEC_OPTS: readonly SpecOpt[] = [
  withProcess,
  withHostname,
  withEnv,
  withUser,
  withCapabilities,
  withRlimits,
  withNoNewPrivileges,
  withSeccomp,
  withOomScoreAdj,
  withRoot,
  withNamespaces,
  withMounts,
  withSystemPaths,
  withResources,
  withDevices,
  withCgroupsPath,
  withSysctls,
  withPrivileged,
];

// ---------------------------------------------------------------------------------------------
// Process: args, cwd, terminal, env.

/** Entrypoint + Cmd as Docker merges them, the working directory and the terminal. */
function withProcess(spec: OciSpec, input: SpecInput): void {
  spec.process.args = commandOf(input.config, input.image);
  const cwd = input.config.WorkingDir || input.image.WorkingDir || "/";
  if (!cwd.startsWith("/")) {
    throw invalidArgument(
      `the working directory '${cwd}' is invalid, it needs to be an absolute path`,
    );
  }
  spec.process.cwd = cwd;
  spec.process.terminal = input.config.Tty === true;
}

/**
 * The command line, following moby's `runconfig.Merge` then `getEntrypointAndArgs`:
 * - a non-empty container Entrypoint replaces the image's, and then the image's Cmd is not
 *   used: only the container's Cmd follows it;
 * - `[""]` (what `--entrypoint ""` sends) means no entrypoint and no image Cmd either;
 * - an empty or absent Entrypoint keeps the image's Cmd unless the container gives one, and an
 *   absent (null) Entrypoint also keeps the image's Entrypoint, `[]` resets it.
 */
function commandOf(config: ContainerConfig, image: ImageRunConfig): string[] {
  let entrypoint = config.Entrypoint ?? null;
  let cmd = config.Cmd ?? [];
  if (entrypoint === null || entrypoint.length === 0) {
    if (cmd.length === 0) cmd = image.Cmd ?? [];
    if (entrypoint === null) entrypoint = image.Entrypoint ?? [];
  }
  if (entrypoint.length === 1 && entrypoint[0] === "") entrypoint = [];
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw invalidArgument("No command specified");
  return args;
}

/** The container's hostname: its own, or the host's with `--network host`, or the short id. */
function hostnameOf(input: SpecInput): string {
  if (input.config.Hostname) return input.config.Hostname;
  if (input.hostConfig.NetworkMode === "host" || input.hostConfig.UTSMode === "host") {
    return input.hostHostname ?? Deno.hostname();
  }
  return input.id.slice(0, 12);
}

/** Hostname and NIS domain name; both belong to the UTS namespace, so none with `--uts host`. */
function withHostname(spec: OciSpec, input: SpecInput): void {
  // A joined UTS namespace keeps its owner's hostname, as Docker's `--uts container:` does.
  if (input.hostConfig.UTSMode === "host" || input.hostConfig.UTSMode?.startsWith("container:")) {
    delete spec.hostname;
    return;
  }
  spec.hostname = hostnameOf(input);
  // runc 1.1 has no `domainname` field; Docker sets the equivalent sysctl.
  if (input.config.Domainname) spec.linux.sysctl["kernel.domainname"] = input.config.Domainname;
}

/**
 * Docker's environment: PATH, HOSTNAME and (with a tty) TERM first, then the container's Env
 * followed by the image's variables it does not set, each replacing a default of the same
 * name. A bare `NAME` (no `=`) unsets the default.
 */
function withEnv(spec: OciSpec, input: SpecInput): void {
  const defaults = [`PATH=${DEFAULT_PATH_ENV}`, `HOSTNAME=${hostnameOf(input)}`];
  if (input.config.Tty) defaults.push("TERM=xterm");
  spec.process.env = replaceOrAppendEnv(defaults, mergeImageEnv(input.config.Env, input.image.Env));
}

/** The container's Env plus the image's variables whose names it does not set (`Merge`). */
function mergeImageEnv(
  containerEnv: string[] | null | undefined,
  imageEnv: string[] | undefined,
): string[] {
  const env = [...(containerEnv ?? [])];
  const names = new Set(env.map(envName));
  for (const entry of imageEnv ?? []) {
    if (!names.has(envName(entry))) env.push(entry);
  }
  return env;
}

/** moby's `ReplaceOrAppendEnvValues`: overrides replace defaults by name, or are appended. */
function replaceOrAppendEnv(defaults: string[], overrides: string[]): string[] {
  const env: Array<string | undefined> = [...defaults];
  const index = new Map(env.map((entry, i) => [envName(entry ?? ""), i]));
  for (const entry of overrides) {
    const at = index.get(envName(entry));
    if (!entry.includes("=")) {
      if (at !== undefined) env[at] = undefined; // `-e NAME` without a value unsets it
      continue;
    }
    if (at !== undefined) {
      env[at] = entry;
    } else {
      index.set(envName(entry), env.length);
      env.push(entry);
    }
  }
  return env.filter((entry): entry is string => entry !== undefined);
}

function envName(entry: string): string {
  const eq = entry.indexOf("=");
  return eq < 0 ? entry : entry.slice(0, eq);
}

// ---------------------------------------------------------------------------------------------
// User and security.

function withUser(spec: OciSpec, input: SpecInput): void {
  const { uid, gid, additionalGids } = input.user;
  spec.process.user = { uid, gid, additionalGids: [...additionalGids] };
}

/**
 * Docker's `TweakCapabilities` then `SetCapabilities`: privileged gets every capability;
 * otherwise CapAdd `ALL` starts from every capability minus CapDrop, CapDrop `ALL` keeps only
 * CapAdd, else the defaults minus CapDrop plus CapAdd. Root gets the set as bounding,
 * effective and permitted; any other user only as bounding, as execve would leave it.
 */
function withCapabilities(spec: OciSpec, input: SpecInput): void {
  const caps = capabilitiesOf(input.hostConfig, input.limits?.capabilities);
  spec.process.capabilities = spec.process.user.uid === 0
    ? { bounding: [...caps], effective: [...caps], permitted: [...caps] }
    : { bounding: [...caps] };
}

function capabilitiesOf(
  hostConfig: HostConfig,
  available: readonly string[] = ALL_CAPABILITIES,
): string[] {
  if (hostConfig.Privileged) return [...available];
  const adds = normalizeCapabilities(hostConfig.CapAdd ?? []);
  const drops = normalizeCapabilities(hostConfig.CapDrop ?? []);
  for (const cap of adds) {
    if (cap !== "ALL" && !available.includes(cap)) {
      throw invalidArgument(`capability ${cap} is not available: the daemon does not have it`);
    }
  }
  if (adds.length === 0 && drops.length === 0) return [...DEFAULT_CAPABILITIES];
  if (adds.includes("ALL")) return available.filter((cap) => !drops.includes(cap));
  if (drops.includes("ALL")) return adds;
  const caps = DEFAULT_CAPABILITIES.filter((cap) => !drops.includes(cap));
  for (const cap of adds) if (!caps.includes(cap)) caps.push(cap);
  return caps;
}

/** Upper-cases, adds the `CAP_` prefix, keeps `ALL`, refuses unknown names (Docker's message). */
/**
 * The capability names of a hex mask such as `CapBnd` in `/proc/self/status`
 * (`000001fffeffffff`), in number order; bits past {@link ALL_CAPABILITIES} are ignored.
 */
export function parseCapabilityMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || "0"}`);
  return ALL_CAPABILITIES.filter((_, bit) => ((mask >> BigInt(bit)) & 1n) === 1n);
}

function normalizeCapabilities(names: string[]): string[] {
  const caps: string[] = [];
  for (const name of names) {
    let cap = name.trim().toUpperCase();
    if (cap !== "ALL" && !cap.startsWith("CAP_")) cap = `CAP_${cap}`;
    if (cap !== "ALL" && !ALL_CAPABILITIES.includes(cap)) {
      throw invalidArgument(`unknown capability: "${cap}"`);
    }
    if (!caps.includes(cap)) caps.push(cap);
  }
  return caps;
}

function withNoNewPrivileges(spec: OciSpec, input: SpecInput): void {
  if (securityOptionsOf(input.hostConfig).noNewPrivileges) spec.process.noNewPrivileges = true;
}

/**
 * moby's `WithSeccomp`: none for privileged containers or `seccomp=unconfined`; the user's
 * profile, or Docker's default, filtered by the capabilities given just before.
 */
function withSeccomp(spec: OciSpec, input: SpecInput): void {
  const option = securityOptionsOf(input.hostConfig).seccomp;
  if (input.hostConfig.Privileged || option === "unconfined") return;
  const profile = option === "" || option === "builtin"
    ? defaultSeccompProfile()
    : parseSeccompProfile(option);
  spec.linux.seccomp = seccompFor(profile, spec.process.capabilities.bounding, input.host);
}

interface SecurityOptions {
  noNewPrivileges: boolean;
  /** `seccomp=`: `unconfined`, `builtin`, a profile's JSON, or "" (the default profile). */
  seccomp: string;
  /** `systempaths=unconfined`: no masked or read-only paths. */
  unconfinedSystemPaths: boolean;
}

/**
 * Parses `--security-opt` as moby's `parseSecurityOpt` does. `label` and `apparmor` are
 * accepted and left to the issue that brings those profiles; `seccomp` is `withSeccomp`'s. `systempaths=unconfined` is
 * turned into empty masked/readonly paths by Docker's CLI; pouch accepts it here as well.
 */
function securityOptionsOf(hostConfig: HostConfig): SecurityOptions {
  const result: SecurityOptions = {
    noNewPrivileges: false,
    unconfinedSystemPaths: false,
    seccomp: "",
  };
  for (const opt of hostConfig.SecurityOpt ?? []) {
    if (opt === "no-new-privileges") {
      result.noNewPrivileges = true;
      continue;
    }
    if (opt === "disable") continue; // `label=disable` in its legacy short form
    const separator = opt.includes("=") ? "=" : opt.includes(":") ? ":" : "";
    if (separator === "") throw invalidArgument(`invalid --security-opt 1: "${opt}"`);
    const at = opt.indexOf(separator);
    const key = opt.slice(0, at);
    const value = opt.slice(at + 1);
    switch (key) {
      case "label":
      case "apparmor":
        break;
      case "seccomp":
        // Docker's CLI sends a profile file's JSON as the value: check it now, not at start.
        if (!["", "unconfined", "builtin"].includes(value)) parseSeccompProfile(value);
        result.seccomp = value;
        break;
      case "no-new-privileges": {
        const enabled = parseGoBool(value);
        if (enabled === undefined) throw invalidArgument(`invalid --security-opt 2: "${opt}"`);
        result.noNewPrivileges = enabled;
        break;
      }
      case "systempaths":
        if (value !== "unconfined") throw invalidArgument(`invalid --security-opt 2: "${opt}"`);
        result.unconfinedSystemPaths = true;
        break;
      default:
        throw invalidArgument(`invalid --security-opt 2: "${opt}"`);
    }
  }
  return result;
}

/** Go's `strconv.ParseBool`. */
function parseGoBool(text: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Rlimits and OOM score.

/** The rlimit names Docker's `--ulimit` knows. */
const ULIMIT_NAMES = [
  "as",
  "core",
  "cpu",
  "data",
  "fsize",
  "locks",
  "memlock",
  "msgqueue",
  "nice",
  "nofile",
  "nproc",
  "rss",
  "rtprio",
  "rttime",
  "sigpending",
  "stack",
];

/**
 * `--ulimit` as rlimits, clamped to the daemon's own hard limits: without CAP_SYS_RESOURCE
 * runc cannot raise a hard limit, and the container would fail to start. -1 (unlimited) is the
 * daemon's limit where pouch knows it.
 */
function withRlimits(spec: OciSpec, input: SpecInput): void {
  const ulimits = input.hostConfig.Ulimits ?? [];
  if (ulimits.length === 0) return;
  const daemonHard: Record<string, number | undefined> = {
    nofile: input.limits?.nofileHard,
    nproc: input.limits?.nprocHard,
  };
  spec.process.rlimits = ulimits.map(({ Name, Soft, Hard }) => {
    const ceiling = daemonHard[Name];
    let soft = Soft;
    let hard = Hard;
    if (ceiling !== undefined && (hard < 0 || hard > ceiling)) {
      input.warn?.(
        `ulimit ${Name} hard limit ${hard} is above the daemon's hard limit ${ceiling}: ` +
          `lowered to ${ceiling}`,
      );
      hard = ceiling;
    }
    if (soft < 0 || soft > hard) soft = hard;
    if (hard < 0) throw invalidArgument(`unlimited (-1) is not supported for ulimit ${Name}`);
    return { type: `RLIMIT_${Name.toUpperCase()}`, hard, soft };
  });
}

/**
 * `--oom-score-adj`, never below the daemon's own score: lowering it needs CAP_SYS_RESOURCE.
 * 0 is left out, so the container inherits the shim's score as Docker's would.
 */
function withOomScoreAdj(spec: OciSpec, input: SpecInput): void {
  const requested = input.hostConfig.OomScoreAdj ?? 0;
  if (requested === 0) return;
  const floor = input.limits?.maxOomScoreAdj;
  if (floor !== undefined && requested < floor) {
    input.warn?.(
      `oom score adj ${requested} is below the daemon's own (${floor}), which it cannot ` +
        `lower without CAP_SYS_RESOURCE: raised to ${floor}`,
    );
    spec.process.oomScoreAdj = floor;
    return;
  }
  spec.process.oomScoreAdj = requested;
}

// ---------------------------------------------------------------------------------------------
// Root and namespaces.

function withRoot(spec: OciSpec, input: SpecInput): void {
  spec.root = { path: "rootfs", readonly: input.hostConfig.ReadonlyRootfs === true };
}

/**
 * Docker's namespaces: `host` modes share the host's, a network namespace path is joined, a
 * cgroup namespace only with `--cgroupns private` (the default on cgroup v1 is the host's).
 */
function withNamespaces(spec: OciSpec, input: SpecInput): void {
  const hostConfig = input.hostConfig;
  const remove = (type: OciNamespace["type"]) => {
    spec.linux.namespaces = spec.linux.namespaces.filter((ns) => ns.type !== type);
  };
  if (hostConfig.NetworkMode === "host") {
    remove("network");
  } else if (input.netnsPath) {
    setNamespace(spec, { type: "network", path: input.netnsPath });
  }
  if (hostConfig.IpcMode === "host") remove("ipc");
  if (hostConfig.PidMode === "host") remove("pid");
  if (hostConfig.UTSMode === "host") remove("uts");
  const modes = { ipc: hostConfig.IpcMode, pid: hostConfig.PidMode, uts: hostConfig.UTSMode };
  for (const type of ["ipc", "pid", "uts"] as const) {
    if (!modes[type]?.startsWith("container:")) continue;
    const path = input.namespacePaths?.[type];
    if (!path) throw invalidArgument(`${modes[type]}: the ${type} namespace to join is unknown`);
    setNamespace(spec, { type, path });
  }
  if (hostConfig.CgroupnsMode === "private") setNamespace(spec, { type: "cgroup" });
}

function setNamespace(spec: OciSpec, namespace: OciNamespace): void {
  const at = spec.linux.namespaces.findIndex((ns) => ns.type === namespace.type);
  if (at >= 0) spec.linux.namespaces[at] = namespace;
  else spec.linux.namespaces.push(namespace);
}

// ---------------------------------------------------------------------------------------------
// Mounts.

/** Mount points whose default mounts stay writable on a read-only rootfs (Docker's list). */
const WRITABLE_ON_READONLY_ROOTFS = ["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"];

/**
 * moby's `WithMounts`: the user's mounts (binds, `--mount`, tmpfs, the network files, the
 * host's /dev/shm with `--ipc host`) sorted parents first, after the defaults they do not
 * replace. /dev/shm gets `ShmSize`; a read-only rootfs makes the remaining defaults read-only.
 */
function withMounts(spec: OciSpec, input: SpecInput): void {
  const hostConfig = input.hostConfig;
  const userMounts = userMountsOf(hostConfig);
  const taken = new Set(userMounts.map((m) => m.destination));
  const readonlyRootfs = hostConfig.ReadonlyRootfs === true;

  // The network files, unless the user mounts something there.
  const networkFiles: Array<[string, string]> = [
    ["/etc/resolv.conf", input.files.resolvConf],
    ["/etc/hostname", input.files.hostname],
    ["/etc/hosts", input.files.hosts],
  ];
  for (const [destination, source] of networkFiles) {
    if (taken.has(destination)) continue;
    const options = readonlyRootfs ? ["rbind", "ro", "rprivate"] : ["rbind", "rprivate"];
    userMounts.push(mount(destination, "bind", source, options));
  }
  if (hostConfig.IpcMode === "host" && !taken.has("/dev/shm")) {
    userMounts.push(mount("/dev/shm", "bind", "/dev/shm", ["rbind", "rprivate"]));
  }
  // Parents before children; the sort is stable, so equal depths keep their given order.
  userMounts.sort((a, b) => depthOf(a.destination) - depthOf(b.destination));

  const userDestinations = new Set(userMounts.map((m) => m.destination));
  const devMounted = userDestinations.has("/dev");
  const defaults: OciMount[] = [];
  for (const m of spec.mounts) {
    if (userDestinations.has(m.destination)) continue;
    if (devMounted && m.destination.startsWith("/dev/")) continue;
    let options = [...m.options];
    if (m.destination === "/dev/shm") {
      if (hostConfig.IpcMode === "none") continue;
      options.push(`size=${hostConfig.ShmSize || DEFAULT_SHM_SIZE}`);
    }
    if (
      readonlyRootfs && !WRITABLE_ON_READONLY_ROOTFS.includes(m.destination) &&
      !options.includes("ro")
    ) {
      options = [...options, "ro"];
    }
    defaults.push({ ...m, options });
  }
  spec.mounts = [...defaults, ...userMounts];

  // A shared or slave bind needs a rootfs propagation that lets events through (moby).
  const propagations = userMounts.flatMap((m) => m.options.filter((o) => PROPAGATIONS.has(o)));
  if (propagations.some((p) => p === "shared" || p === "rshared")) {
    spec.linux.rootfsPropagation = "shared";
  } else if (propagations.some((p) => p === "slave" || p === "rslave")) {
    spec.linux.rootfsPropagation = "rslave";
  }
}

/** Binds, `--mount` and `--tmpfs` as OCI mounts; throws on a bad or duplicate mount point. */
function userMountsOf(hostConfig: HostConfig): OciMount[] {
  const mounts: OciMount[] = [
    ...(hostConfig.Binds ?? []).map(parseBind),
    ...(hostConfig.Mounts ?? []).map(mountFromSpec),
    ...Object.entries(hostConfig.Tmpfs ?? {}).map(([destination, data]) =>
      tmpfsMount(destination, data)
    ),
  ];
  const seen = new Set<string>();
  for (const m of mounts) {
    if (seen.has(m.destination)) throw invalidArgument(`Duplicate mount point: ${m.destination}`);
    seen.add(m.destination);
  }
  return mounts;
}

const PROPAGATIONS = new Set(["private", "rprivate", "shared", "rshared", "slave", "rslave"]);
/** SELinux relabelling and macOS consistency modes: accepted, meaningless here. */
const IGNORED_BIND_MODES = new Set(["z", "Z", "consistent", "cached", "delegated"]);

/**
 * A `-v src:dst[:mode,...]` bind as Docker's Linux parser reads it. Only absolute host paths:
 * the container manager puts each named or anonymous volume's host path in before the spec is
 * built (engine/volumes.ts).
 */
function parseBind(bind: string): OciMount {
  const parts = bind.split(":");
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => part === "")) {
    if (parts.length === 1 && bind.startsWith("/")) {
      throw invalidArgument(
        `invalid volume specification: '${bind}': anonymous volumes are not supported yet`,
      );
    }
    throw invalidArgument(`invalid volume specification: '${bind}'`);
  }
  const [source = "", target = "", mode = ""] = parts;
  if (!source.startsWith("/")) {
    throw invalidArgument(
      `invalid volume specification: '${bind}': named volumes are not supported yet, ` +
        `only absolute host paths can be bind-mounted`,
    );
  }
  const destination = checkDestination(target, "bind", `invalid volume specification: '${bind}': `);

  let readonly = false;
  let propagation = "";
  let rwSeen = false;
  for (const flag of mode === "" ? [] : mode.split(",")) {
    if (flag === "ro" || flag === "rw") {
      if (rwSeen) throw invalidArgument(`invalid mode: ${mode}`);
      rwSeen = true;
      readonly = flag === "ro";
    } else if (PROPAGATIONS.has(flag)) {
      if (propagation !== "") throw invalidArgument(`invalid mode: ${mode}`);
      propagation = flag;
    } else if (!IGNORED_BIND_MODES.has(flag)) {
      throw invalidArgument(`invalid mode: ${mode}`);
    }
  }
  return bindMount(source, destination, readonly, propagation);
}

/** A bind mount with Docker's options: `rbind`, `ro` when read-only, the propagation. */
function bindMount(
  source: string,
  destination: string,
  readonly: boolean,
  propagation: string,
): OciMount {
  const options = ["rbind"];
  if (readonly) options.push("ro");
  options.push(propagation || "rprivate");
  return mount(destination, "bind", cleanPath(source), options);
}

/** The option groups each `--mount` type may carry; any other is an error, as in moby. */
const MOUNT_OPTION_FIELDS: Record<string, Array<"BindOptions" | "VolumeOptions" | "TmpfsOptions">> =
  {
    bind: ["BindOptions"],
    volume: ["VolumeOptions"],
    tmpfs: ["TmpfsOptions"],
  };

/**
 * A `HostConfig.Mounts` entry (`--mount`). A volume's `Source` must already be its host path:
 * the container manager attaches volumes before it builds the spec.
 */
function mountFromSpec(spec: MountSpec): OciMount {
  const prefix = `invalid mount config for type "${spec.Type}": `;
  const allowed = MOUNT_OPTION_FIELDS[spec.Type];
  for (const field of ["BindOptions", "VolumeOptions", "TmpfsOptions"] as const) {
    if (allowed && !allowed.includes(field) && spec[field] != null) {
      throw invalidArgument(`${prefix}field ${field} must not be specified`);
    }
  }
  switch (spec.Type) {
    case "bind": {
      const source = spec.Source ?? "";
      if (source === "") throw invalidArgument(`${prefix}field Source must not be empty`);
      if (!source.startsWith("/")) {
        throw invalidArgument(
          `${prefix}invalid mount path: '${source}' mount path must be absolute`,
        );
      }
      const destination = checkDestination(spec.Target, "bind", "");
      const propagation = spec.BindOptions?.Propagation ?? "";
      if (propagation !== "" && !PROPAGATIONS.has(propagation)) {
        throw invalidArgument(`${prefix}invalid propagation mode: ${propagation}`);
      }
      return bindMount(source, destination, spec.ReadOnly === true, propagation);
    }
    case "tmpfs": {
      if (spec.Source) throw invalidArgument(`${prefix}field Source must not be specified`);
      const data: string[] = [];
      const size = spec.TmpfsOptions?.SizeBytes ?? 0;
      if (size < 0) throw invalidArgument(`${prefix}invalid tmpfs size: ${size}`);
      if (size > 0) data.push(`size=${tmpfsSize(size)}`);
      const mode = spec.TmpfsOptions?.Mode ?? 0;
      if (mode !== 0) data.push(`mode=${mode.toString(8)}`);
      if (spec.ReadOnly) data.push("ro");
      return tmpfsMount(spec.Target, data.join(","));
    }
    case "volume": {
      const source = spec.Source ?? "";
      if (!source.startsWith("/")) {
        throw invalidArgument(
          `${prefix}volume "${source}" has no host path: volumes are attached before the spec is built`,
        );
      }
      const destination = checkDestination(spec.Target, "volume", "");
      return bindMount(source, destination, spec.ReadOnly === true, "");
    }
    default:
      throw invalidArgument(`${prefix}mount type unknown`);
  }
}

/** A size in the largest unit that divides it evenly, as Docker's `ConvertTmpfsOptions`. */
function tmpfsSize(bytes: number): string {
  let size = bytes;
  let suffix = "";
  for (const next of ["k", "m", "g"]) {
    if (size % 1024 !== 0) break;
    size /= 1024;
    suffix = next;
  }
  return `${size}${suffix}`;
}

/** The tmpfs options `size=`, `mode=`, ... that Docker's `MergeTmpfsOptions` accepts. */
const TMPFS_DATA_KEYS = new Set(["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"]);

/**
 * Mount flags by the kernel flag they set: a later flag of a group overrides an earlier one
 * (`exec` after the default `noexec`).
 */
const FLAG_GROUPS: Record<string, string> = {
  ro: "rdonly",
  rw: "rdonly",
  suid: "nosuid",
  nosuid: "nosuid",
  dev: "nodev",
  nodev: "nodev",
  exec: "noexec",
  noexec: "noexec",
  sync: "sync",
  async: "sync",
  dirsync: "dirsync",
  remount: "remount",
  mand: "mand",
  nomand: "mand",
  atime: "noatime",
  noatime: "noatime",
  diratime: "nodiratime",
  nodiratime: "nodiratime",
  bind: "bind",
  rbind: "bind",
  relatime: "relatime",
  norelatime: "relatime",
  strictatime: "strictatime",
  nostrictatime: "strictatime",
  private: "propagation",
  rprivate: "propagation",
  shared: "propagation",
  rshared: "propagation",
  slave: "propagation",
  rslave: "propagation",
  unbindable: "propagation",
  runbindable: "propagation",
};

/** A `--tmpfs dst:options` mount: Docker's defaults `noexec,nosuid,nodev,rprivate`, then the user's. */
function tmpfsMount(target: string, data: string): OciMount {
  const destination = checkDestination(target, "tmpfs", "");
  const requested = data === "" ? [] : data.split(",");
  return mount(
    destination,
    "tmpfs",
    "tmpfs",
    mergeTmpfsOptions(["noexec", "nosuid", "nodev", "rprivate", ...requested]),
  );
}

/** moby's `MergeTmpfsOptions`: the last option of each flag group or data key wins. */
function mergeTmpfsOptions(options: string[]): string[] {
  const seen = new Set<string>();
  const merged: string[] = [];
  for (const option of [...options].reverse()) {
    if (option === "defaults") continue;
    let key = FLAG_GROUPS[option];
    if (key === undefined) {
      const eq = option.indexOf("=");
      const name = eq < 0 ? "" : option.slice(0, eq);
      if (!TMPFS_DATA_KEYS.has(name)) throw invalidArgument(`invalid tmpfs option "${option}"`);
      key = `data:${name}`;
    }
    if (seen.has(key)) continue;
    seen.add(key);
    merged.unshift(option);
  }
  return merged;
}

/** A mount point must be absolute and not `/`; returns it cleaned. */
function checkDestination(target: string, type: string, prefix: string): string {
  const what = `${prefix}invalid mount config for type "${type}": `;
  if (!target.startsWith("/")) {
    throw invalidArgument(`${what}invalid mount path: '${target}' mount path must be absolute`);
  }
  const destination = cleanPath(target);
  if (destination === "/") {
    throw invalidArgument(`${what}invalid specification: destination can't be '/'`);
  }
  return destination;
}

/** Go's `path.Clean` for absolute paths: no `.`, `..`, doubled or trailing slashes. */
export function cleanPath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

function depthOf(destination: string): number {
  return cleanPath(destination).split("/").length - 1;
}

// ---------------------------------------------------------------------------------------------
// System paths, resources, devices, cgroups, sysctls.

/** Masked and read-only paths: `HostConfig` overrides, none with `systempaths=unconfined`. */
function withSystemPaths(spec: OciSpec, input: SpecInput): void {
  if (securityOptionsOf(input.hostConfig).unconfinedSystemPaths) {
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
    return;
  }
  if (input.hostConfig.MaskedPaths) spec.linux.maskedPaths = [...input.hostConfig.MaskedPaths];
  if (input.hostConfig.ReadonlyPaths) {
    spec.linux.readonlyPaths = [...input.hostConfig.ReadonlyPaths];
  }
}

/** CFS period Docker uses for `--cpus`: 100 ms. */
const NANO_CPUS_PERIOD = 100_000;

/** moby's `getMemoryResources`, `getCPUResources`, `getPidsLimit` and the blkio weight. */
/**
 * The cgroup limits of a host config by Docker's rules (memory and swap, CPU shares, quota and
 * sets, pids, block I/O weight), as OCI `linux.resources` without the device rules: what
 * `buildSpec` sets, and what `pouch update` applies to a running container.
 */
export function resourcesOf(hc: HostConfig): Omit<OciResources, "devices"> {
  const resources: Omit<OciResources, "devices"> = {};

  const memory: NonNullable<OciResources["memory"]> = {};
  const limit = hc.Memory ?? 0;
  if (limit > 0) memory.limit = limit;
  if ((hc.MemoryReservation ?? 0) > 0) memory.reservation = hc.MemoryReservation;
  // Docker's default swap is as much again as the memory (memory+swap = 2 x memory); -1 (or
  // no memory limit) leaves swap unlimited.
  let swap = hc.MemorySwap ?? 0;
  if (limit > 0 && swap === 0) swap = 2 * limit;
  if (swap > 0) memory.swap = swap;
  const swappiness = hc.MemorySwappiness ?? -1; // -1 is "the host's default"
  if (swappiness >= 0) memory.swappiness = swappiness;
  if (hc.OomKillDisable !== undefined && hc.OomKillDisable !== null) {
    memory.disableOOMKiller = hc.OomKillDisable;
  }
  if (Object.keys(memory).length > 0) resources.memory = memory;

  const cpu: NonNullable<OciResources["cpu"]> = {};
  if ((hc.CpuShares ?? 0) > 0) cpu.shares = hc.CpuShares;
  const nanoCpus = hc.NanoCpus ?? 0;
  if (nanoCpus > 0) {
    cpu.period = NANO_CPUS_PERIOD;
    cpu.quota = Math.floor((nanoCpus * NANO_CPUS_PERIOD) / 1e9);
  }
  if (hc.CpuPeriod) cpu.period = hc.CpuPeriod;
  if (hc.CpuQuota) cpu.quota = hc.CpuQuota;
  if (hc.CpuRealtimeRuntime) cpu.realtimeRuntime = hc.CpuRealtimeRuntime;
  if (hc.CpuRealtimePeriod) cpu.realtimePeriod = hc.CpuRealtimePeriod;
  if (hc.CpusetCpus) cpu.cpus = hc.CpusetCpus;
  if (hc.CpusetMems) cpu.mems = hc.CpusetMems;
  if (Object.keys(cpu).length > 0) resources.cpu = cpu;

  // 0 and -1 both mean unlimited in Docker's API; a new cgroup has no limit, so say nothing.
  if ((hc.PidsLimit ?? 0) > 0) resources.pids = { limit: hc.PidsLimit as number };
  if ((hc.BlkioWeight ?? 0) > 0) resources.blockIO = { weight: hc.BlkioWeight as number };
  return resources;
}

function withResources(spec: OciSpec, input: SpecInput): void {
  Object.assign(spec.linux.resources, resourcesOf(input.hostConfig));
}

/** `--device-cgroup-rule` rules after Docker's defaults. `--device` needs a later issue. */
function withDevices(spec: OciSpec, input: SpecInput): void {
  for (const rule of input.hostConfig.DeviceCgroupRules ?? []) {
    spec.linux.resources.devices.push(parseDeviceCgroupRule(rule));
  }
}

/** `type major:minor access`, e.g. `c 1:3 rwm`, `b *:* m`, or `a` (moby's regex). */
function parseDeviceCgroupRule(rule: string): OciDeviceCgroup {
  if (rule === "a") return { allow: true, type: "a", access: "rwm" };
  const match = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(rule);
  if (!match) throw invalidArgument(`invalid device cgroup rule format: '${rule}'`);
  const [, type, major, minor, access] = match;
  const result: OciDeviceCgroup = { allow: true, type: type as "a" | "c" | "b" };
  if (major !== "*") result.major = Number(major);
  if (minor !== "*") result.minor = Number(minor);
  result.access = access;
  return result;
}

function withCgroupsPath(spec: OciSpec, input: SpecInput): void {
  spec.linux.cgroupsPath = input.cgroupsPath;
}

/**
 * Docker's default sysctls for a container with its own network namespace (unprivileged ping
 * and low ports, which its capabilities allow anyway), then `--sysctl`, which wins.
 */
function withSysctls(spec: OciSpec, input: SpecInput): void {
  const mode = input.hostConfig.NetworkMode ?? "";
  if (mode !== "host" && !mode.startsWith("container:")) {
    spec.linux.sysctl["net.ipv4.ping_group_range"] = "0 2147483647";
    spec.linux.sysctl["net.ipv4.ip_unprivileged_port_start"] = "0";
  }
  for (const [key, value] of Object.entries(input.hostConfig.Sysctls ?? {})) {
    spec.linux.sysctl[key] = value;
  }
}

/**
 * `--privileged`: /sys and the cgroup mount writable, no masked or read-only paths, every
 * device allowed and the host's device nodes created (capabilities are set earlier).
 */
function withPrivileged(spec: OciSpec, input: SpecInput): void {
  if (!input.hostConfig.Privileged) return;
  for (const m of spec.mounts) {
    if (m.destination === "/sys" || m.type === "cgroup") {
      m.options = m.options.filter((option) => option !== "ro");
    }
  }
  spec.linux.maskedPaths = [];
  spec.linux.readonlyPaths = [];
  spec.linux.resources.devices = [{ allow: true, access: "rwm" }];
  spec.linux.devices = (input.hostDevices ?? []).map((device) => ({ ...device }));
}

// ---------------------------------------------------------------------------------------------
// Validation.

/** Docker's smallest memory limit and reservation: 6 MiB. */
const MIN_MEMORY = 6 * 1024 * 1024;

/**
 * Checks a `HostConfig` the way Docker's daemon does before creating anything: resources,
 * namespace modes, OOM score range, ulimits, security options, capabilities and mounts.
 *
 * @throws InvalidArgument with Docker's message (`Minimum memory limit allowed is 6MB`).
 */
export function validateHostConfig(hostConfig: HostConfig, options?: ValidateOptions): void {
  const cpuCount = options?.cpuCount ?? navigator.hardwareConcurrency;
  validateMemory(hostConfig);
  validateCpu(hostConfig, cpuCount);
  validateModes(hostConfig);

  const pids = hostConfig.PidsLimit ?? 0;
  if (pids < -1) throw invalidArgument(`Invalid PIDs limit ${pids}: use -1 or 0 for unlimited`);
  const weight = hostConfig.BlkioWeight ?? 0;
  if (weight !== 0 && (weight < 10 || weight > 1000)) {
    throw invalidArgument("Range of blkio weight is from 10 to 1000");
  }
  if ((hostConfig.ShmSize ?? 0) < 0) throw invalidArgument("SHM size can not be less than 0");
  const oom = hostConfig.OomScoreAdj ?? 0;
  if (oom < -1000 || oom > 1000) {
    throw invalidArgument(`Invalid value ${oom}, range for oom score adj is [-1000, 1000]`);
  }
  for (const ulimit of hostConfig.Ulimits ?? []) {
    if (!ULIMIT_NAMES.includes(ulimit.Name)) {
      throw invalidArgument(`invalid ulimit type: ${ulimit.Name}`);
    }
    if (ulimit.Soft < -1 || ulimit.Hard < -1) {
      throw invalidArgument(`invalid ulimit ${ulimit.Name}: values must be -1 or more`);
    }
    if (ulimit.Hard >= 0 && (ulimit.Soft < 0 || ulimit.Soft > ulimit.Hard)) {
      throw invalidArgument(
        `ulimit soft limit must be less than or equal to hard limit: ${ulimit.Soft} > ${ulimit.Hard}`,
      );
    }
  }
  if ((hostConfig.Devices ?? []).length > 0) {
    throw notImplemented("--device is not supported yet");
  }
  if (hostConfig.NetworkMode === "host") {
    for (const key of Object.keys(hostConfig.Sysctls ?? {})) {
      if (key.startsWith("net.")) {
        throw invalidArgument(`sysctl "${key}" is not allowed in the host's network namespace`);
      }
    }
  }
  securityOptionsOf(hostConfig);
  capabilitiesOf(hostConfig);
  userMountsOf(hostConfig);
  for (const rule of hostConfig.DeviceCgroupRules ?? []) parseDeviceCgroupRule(rule);
}

/** moby's memory checks in `verifyPlatformContainerResources`. */
function validateMemory(hc: HostConfig): void {
  const memory = hc.Memory ?? 0;
  const swap = hc.MemorySwap ?? 0;
  const reservation = hc.MemoryReservation ?? 0;
  if (memory !== 0 && memory < MIN_MEMORY) {
    throw invalidArgument("Minimum memory limit allowed is 6MB");
  }
  if (memory > 0 && swap > 0 && swap < memory) {
    throw invalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage");
  }
  if (memory === 0 && swap > 0) {
    throw invalidArgument(
      "You should always set the Memory limit when using Memoryswap limit, see usage",
    );
  }
  if (swap < -1) throw invalidArgument(`Invalid memory swap limit ${swap}: use -1 for unlimited`);
  const swappiness = hc.MemorySwappiness ?? -1;
  if (swappiness !== -1 && (swappiness < 0 || swappiness > 100)) {
    throw invalidArgument(
      `Invalid value: ${swappiness}, valid memory swappiness range is 0-100`,
    );
  }
  if (reservation !== 0 && reservation < MIN_MEMORY) {
    throw invalidArgument("Minimum memory reservation allowed is 6MB");
  }
  if (memory > 0 && reservation > 0 && memory < reservation) {
    throw invalidArgument(
      "Minimum memory limit can not be less than memory reservation limit, see usage",
    );
  }
}

/** moby's CPU and cpuset checks. */
function validateCpu(hc: HostConfig, cpuCount: number): void {
  const nanoCpus = hc.NanoCpus ?? 0;
  const period = hc.CpuPeriod ?? 0;
  const quota = hc.CpuQuota ?? 0;
  if (nanoCpus > 0 && period > 0) {
    throw invalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set");
  }
  if (nanoCpus > 0 && quota > 0) {
    throw invalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
  }
  if (nanoCpus < 0 || nanoCpus > cpuCount * 1e9) {
    throw invalidArgument(
      `Range of CPUs is from 0.01 to ${cpuCount}.00, as there are only ${cpuCount} CPUs available`,
    );
  }
  if ((hc.CpuShares ?? 0) < 0) throw invalidArgument("shares: invalid argument");
  if (period !== 0 && (period < 1000 || period > 1000000)) {
    throw invalidArgument(
      "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    );
  }
  if (quota > 0 && quota < 1000) {
    throw invalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)");
  }
  const cpus = hc.CpusetCpus ?? "";
  const requested = parseUintList(cpus, `Invalid value ${cpus} for cpuset cpus`);
  const available = cpuCount === 1 ? "0" : `0-${cpuCount - 1}`;
  if ([...requested].some((cpu) => cpu >= cpuCount)) {
    throw invalidArgument(
      `Requested CPUs are not available - requested ${cpus}, available: ${available}`,
    );
  }
  const mems = hc.CpusetMems ?? "";
  parseUintList(mems, `Invalid value ${mems} for cpuset mems`);
}

/** Docker's `parsers.ParseUintList`: `0-3,5`; throws `<context>: invalid format: <list>`. */
function parseUintList(list: string, context: string): Set<number> {
  const values = new Set<number>();
  if (list === "") return values;
  const invalid = () => invalidArgument(`${context}: invalid format: ${list}`);
  for (const item of list.split(",")) {
    const range = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!range) throw invalid();
    const low = Number(range[1]);
    const high = range[2] === undefined ? low : Number(range[2]);
    if (high < low) throw invalid();
    for (let value = low; value <= high; value++) values.add(value);
  }
  return values;
}

/** The namespace modes pouch understands; IPC, PID and UTS may also join `container:ID`'s. */
function validateModes(hc: HostConfig): void {
  const check = (name: string, value: string | undefined, allowed: string[]) => {
    const mode = value ?? "";
    if (mode.startsWith("container:")) {
      if (name !== "cgroup namespace" && mode.length > "container:".length) return;
      throw notImplemented(`${name} mode ${mode} is not supported`);
    }
    if (!allowed.includes(mode)) throw invalidArgument(`invalid ${name} mode: ${mode}`);
  };
  check("IPC", hc.IpcMode, ["", "private", "shareable", "host", "none"]);
  check("PID", hc.PidMode, ["", "host"]);
  check("UTS", hc.UTSMode, ["", "host"]);
  check("cgroup namespace", hc.CgroupnsMode, ["", "host", "private"]);
}

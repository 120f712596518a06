/**
 * JSON type checks of request bodies, as Go's `encoding/json` does them in dockerd: a value of
 * the wrong JSON type for a known field (a string for `Tty`, `1.5` or `1e300` for `Memory`, a
 * number in `Env`) is refused with a 400 before the engine sees it, so no route trips over it
 * later with a TypeError (a 500) or, worse, acts on it. `null` is accepted everywhere (Go
 * leaves the zero value) and unknown fields are ignored, as dockerd ignores them.
 *
 * The schemas list the fields of Docker's `Config`, `HostConfig`, `NetworkingConfig` and
 * `UpdateConfig` that pouch reads, with Go's types.
 *
 * @module
 */
import { invalidArgument } from "../errors.ts";

/**
 * A field's Go type: `string`, `bool`, `int` (int64), `strings` ([]string), `strslice` (a
 * string or []string, Docker's `StrSlice`), `map` (map[string]string), `set`
 * (map[string]struct{}), `any`; an object of fields (a struct); `[T]` (a slice of T);
 * `{"*": T}` (a map of T).
 */
export type GoType =
  | "string"
  | "bool"
  | "int"
  | "strings"
  | "strslice"
  | "map"
  | "set"
  | "any"
  | readonly [GoType]
  | { readonly [field: string]: GoType };

/** Names a Go type in the message (`[]string`, `int64`, `container.HostConfig`). */
function goName(type: GoType, structName: string): string {
  if (typeof type === "string") {
    return {
      string: "string",
      bool: "bool",
      int: "int64",
      strings: "[]string",
      strslice: "strslice.StrSlice",
      map: "map[string]string",
      set: "map[string]struct {}",
      any: "interface {}",
    }[type];
  }
  if (Array.isArray(type)) return `[]${goName(type[0], structName)}`;
  return structName;
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return "array";
  if (typeof value === "boolean") return "bool";
  return typeof value === "object" ? "object" : typeof value;
}

/**
 * Checks `value` against `type` and answers it with each `StrSlice` string made a one-item
 * list (Docker's `"Cmd": "sh"`), fixing objects and lists in place; `path` names the field in
 * the message (`Config.Tty`).
 *
 * @throws InvalidArgument `json: cannot unmarshal string into Go struct field Config.Tty of
 * type bool`, as dockerd answers.
 */
export function checkGoType(value: unknown, type: GoType, path: string): unknown {
  if (value === null || value === undefined || type === "any") return value;
  const fail = (what = jsonKind(value)) =>
    invalidArgument(
      `json: cannot unmarshal ${what} into Go struct field ${path} of type ${
        goName(type, path.split(".").at(-1) ?? path)
      }`,
    );
  if (typeof type === "string") {
    switch (type) {
      case "string":
        if (typeof value !== "string") throw fail();
        return value;
      case "bool":
        if (typeof value !== "boolean") throw fail();
        return value;
      case "int":
        // Go's int64: an integer within range; 1.5 and 1e300 are refused.
        if (typeof value !== "number") throw fail();
        if (!Number.isSafeInteger(value)) throw fail(`number ${value}`);
        return value;
      case "strslice":
        if (typeof value === "string") return [value];
        // falls through: otherwise a []string
      case "strings":
        if (!Array.isArray(value)) throw fail();
        for (const item of value) {
          if (typeof item !== "string") throw fail(jsonKind(item));
        }
        return value;
      case "map":
        if (jsonKind(value) !== "object") throw fail();
        for (const item of Object.values(value as object)) {
          if (typeof item !== "string") throw fail(jsonKind(item));
        }
        return value;
      case "set":
        if (jsonKind(value) !== "object") throw fail();
        for (const item of Object.values(value as object)) {
          if (item !== null && jsonKind(item) !== "object") throw fail(jsonKind(item));
        }
        return value;
    }
  }
  if (Array.isArray(type)) {
    if (!Array.isArray(value)) throw fail();
    for (let i = 0; i < value.length; i++) value[i] = checkGoType(value[i], type[0], path);
    return value;
  }
  if (jsonKind(value) !== "object") throw fail();
  const fields = type as { readonly [field: string]: GoType };
  const each = fields["*"];
  const object = value as Record<string, unknown>;
  for (const [key, item] of Object.entries(object)) {
    const field = each ?? (Object.hasOwn(fields, key) ? fields[key] : undefined);
    if (field !== undefined) object[key] = checkGoType(item, field, each ? path : `${path}.${key}`);
  }
  return value;
}

/** No API body nests deeper than a few levels; 100 leaves room and keeps recursion safe. */
const MAX_JSON_DEPTH = 100;

/**
 * Refuses JSON text nesting deeper than {@link MAX_JSON_DEPTH} before it is parsed: code that
 * walks a parsed body recursively (copies, checks) would otherwise overflow the stack (a 500).
 *
 * @throws InvalidArgument naming the limit.
 */
export function checkJsonDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) i++; // a backslash escapes the next character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x7b || char === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw invalidArgument(`request body nests deeper than ${MAX_JSON_DEPTH} levels`);
      }
    } else if (char === 0x7d || char === 0x5d) {
      depth--;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Docker's types.

const RESTART_POLICY: GoType = { Name: "string", MaximumRetryCount: "int" };

const RESOURCES = {
  CpuShares: "int",
  Memory: "int",
  NanoCpus: "int",
  CgroupParent: "string",
  BlkioWeight: "int",
  CpuPeriod: "int",
  CpuQuota: "int",
  CpuRealtimePeriod: "int",
  CpuRealtimeRuntime: "int",
  CpusetCpus: "string",
  CpusetMems: "string",
  Devices: [{ PathOnHost: "string", PathInContainer: "string", CgroupPermissions: "string" }],
  DeviceCgroupRules: "strings",
  KernelMemory: "int",
  MemoryReservation: "int",
  MemorySwap: "int",
  MemorySwappiness: "int",
  OomKillDisable: "bool",
  PidsLimit: "int",
  Ulimits: [{ Name: "string", Soft: "int", Hard: "int" }],
} as const satisfies Record<string, GoType>;

const HOST_CONFIG: GoType = {
  ...RESOURCES,
  Binds: "strings",
  ContainerIDFile: "string",
  LogConfig: { Type: "string", Config: "map" },
  NetworkMode: "string",
  PortBindings: { "*": [{ HostIp: "string", HostPort: "string" }] },
  RestartPolicy: RESTART_POLICY,
  AutoRemove: "bool",
  VolumeDriver: "string",
  VolumesFrom: "strings",
  CapAdd: "strings",
  CapDrop: "strings",
  CgroupnsMode: "string",
  Dns: "strings",
  DnsOptions: "strings",
  DnsSearch: "strings",
  ExtraHosts: "strings",
  GroupAdd: "strings",
  IpcMode: "string",
  Cgroup: "string",
  Links: "strings",
  OomScoreAdj: "int",
  PidMode: "string",
  Privileged: "bool",
  PublishAllPorts: "bool",
  ReadonlyRootfs: "bool",
  SecurityOpt: "strings",
  StorageOpt: "map",
  Tmpfs: "map",
  UTSMode: "string",
  UsernsMode: "string",
  ShmSize: "int",
  Sysctls: "map",
  Runtime: "string",
  Isolation: "string",
  Init: "bool",
  Mounts: [{
    Type: "string",
    Source: "string",
    Target: "string",
    ReadOnly: "bool",
    Consistency: "string",
    BindOptions: { Propagation: "string", NonRecursive: "bool", CreateMountpoint: "bool" },
    VolumeOptions: {
      NoCopy: "bool",
      Labels: "map",
      DriverConfig: { Name: "string", Options: "map" },
    },
    TmpfsOptions: { SizeBytes: "int", Mode: "int" },
  }],
  MaskedPaths: "strings",
  ReadonlyPaths: "strings",
  EnableLxcfs: "bool",
  PrestartHooks: "strings",
  PoststopHooks: "strings",
};

const ENDPOINT_SETTINGS: GoType = {
  IPAMConfig: { IPv4Address: "string", IPv6Address: "string", LinkLocalIPs: "strings" },
  Links: "strings",
  Aliases: "strings",
  NetworkID: "string",
  EndpointID: "string",
  Gateway: "string",
  IPAddress: "string",
  IPPrefixLen: "int",
  MacAddress: "string",
  DriverOpts: "map",
};

const CONFIG = {
  Hostname: "string",
  Domainname: "string",
  User: "string",
  AttachStdin: "bool",
  AttachStdout: "bool",
  AttachStderr: "bool",
  ExposedPorts: "set",
  Tty: "bool",
  OpenStdin: "bool",
  StdinOnce: "bool",
  Env: "strings",
  Cmd: "strslice",
  Healthcheck: {
    Test: "strings",
    Interval: "int",
    Timeout: "int",
    StartPeriod: "int",
    StartInterval: "int",
    Retries: "int",
  },
  ArgsEscaped: "bool",
  Image: "string",
  Volumes: "set",
  WorkingDir: "string",
  Entrypoint: "strslice",
  NetworkDisabled: "bool",
  MacAddress: "string",
  OnBuild: "strings",
  Labels: "map",
  StopSignal: "string",
  StopTimeout: "int",
  Shell: "strslice",
  Rich: "bool",
  RichMode: "string",
  InitScript: "string",
  InitCmd: "string",
  DiskQuota: "map",
  SpecificID: "string",
} as const satisfies Record<string, GoType>;

/** `POST /containers/create`: Docker's `Config` with `HostConfig` and `NetworkingConfig`. */
export const CREATE_BODY: GoType = {
  ...CONFIG,
  HostConfig: HOST_CONFIG,
  NetworkingConfig: { EndpointsConfig: { "*": ENDPOINT_SETTINGS } },
};

/** `POST /containers/{id}/update`: Docker's `UpdateConfig` (resources and restart policy). */
export const UPDATE_BODY: GoType = { ...RESOURCES, RestartPolicy: RESTART_POLICY };

/** `POST /containers/{id}/exec`: Docker's `ExecConfig`. */
export const EXEC_BODY: GoType = {
  User: "string",
  Privileged: "bool",
  Tty: "bool",
  ConsoleSize: ["int"],
  AttachStdin: "bool",
  AttachStderr: "bool",
  AttachStdout: "bool",
  Detach: "bool",
  DetachKeys: "string",
  Env: "strings",
  WorkingDir: "string",
  Cmd: "strslice",
};

/** `POST /volumes/create`: Docker's `volume.CreateOptions`. */
export const VOLUME_CREATE_BODY: GoType = {
  Name: "string",
  Driver: "string",
  DriverOpts: "map",
  Labels: "map",
};

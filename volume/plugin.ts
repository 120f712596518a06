/**
 * Docker volume plugins as volume drivers: existing plugins work unchanged because pouch finds,
 * activates and calls them as Docker does.
 *
 * Discovery (Docker's `pkg/plugins`): a plugin named NAME is a unix socket `NAME.sock` or
 * `NAME/NAME.sock` in one of the plugin directories; failing that, a `NAME.spec` file (one line:
 * `unix:///path` or `tcp://host:port`) or a `NAME.json` file (`{"Name", "Addr", "TLSConfig"}`),
 * also possibly in a `NAME/` subdirectory. Sockets win over spec files, earlier directories over
 * later ones.
 *
 * Protocol: HTTP/1.1 `POST /Method` with a JSON body and `Accept:
 * application/vnd.docker.plugins.v1.2+json`. `/Plugin.Activate` answers `{"Implements": [...]}`
 * (which must include `VolumeDriver`); then `/VolumeDriver.Create|Remove|Mount|Unmount|Path|Get|
 * List|Capabilities`. Every answer may carry `Err`: a non-empty one is the call's error.
 *
 * Every call has a deadline (Docker's 30 s by default). A plugin that does not answer in time,
 * drops the connection, or answers anything but a 200 with a JSON object fails the call with an
 * error naming the plugin and the method.
 *
 * @module
 */
import { invalidArgument, messageOf, systemError, unavailable } from "../engine/errors.ts";
import type { DriverCapabilities, DriverVolume, VolumeDriver } from "./driver.ts";
import { HttpError, httpPost, type HttpTarget, type HttpTls, preview } from "./_http.ts";

/** Where plugins are looked for when no directories are configured (Docker's, then pouch's). */
export const DEFAULT_PLUGIN_DIRS: readonly string[] = [
  "/run/docker/plugins",
  "/run/pouch/plugins",
  "/etc/docker/plugins",
  "/usr/lib/docker/plugins",
  "/etc/pouch/plugins",
];

/** Docker's default deadline of a plugin call. */
export const DEFAULT_PLUGIN_TIMEOUT_MS = 30_000;

/** The media type Docker's plugin client sends in `Accept`. */
const PLUGIN_MIME = "application/vnd.docker.plugins.v1.2+json";

/** The `TLSConfig` of a plugin's `.json` file (Docker's `tlsconfig.Options`). */
export interface PluginTlsConfig {
  CAFile?: string;
  CertFile?: string;
  KeyFile?: string;
  InsecureSkipVerify?: boolean;
}

/** A discovered plugin: its name, its address and where that came from. */
export interface PluginAddress {
  name: string;
  /** `unix:///path`, `tcp://host:port`, `http://host:port` or `https://host:port`. */
  addr: string;
  /** The socket, `.spec` or `.json` file it was found as. */
  source: string;
  /** TLS settings from a `.json` file (used for `https://` addresses). */
  tls?: PluginTlsConfig;
  /**
   * What identifies this incarnation of the plugin: its address plus, for a unix socket, the
   * socket file's device and inode. A plugin that restarted has a new socket, so a new identity.
   */
  identity: string;
}

/** Options of {@link discoverPlugin}. */
export interface DiscoverOptions {
  /** The plugin directories, searched in order ({@link DEFAULT_PLUGIN_DIRS} by default). */
  dirs?: readonly string[];
}

/** A plugin name is a file name: no `/`, no `..`, nothing that could climb out of a directory. */
const PLUGIN_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Finds plugin `name` in the plugin directories; undefined when there is none. A spec or JSON
 * file that cannot be read or parsed is an InvalidArgument naming the file.
 */
export async function discoverPlugin(
  name: string,
  options: DiscoverOptions = {},
): Promise<PluginAddress | undefined> {
  if (!PLUGIN_NAME.test(name) || name.includes("..")) return undefined;
  const dirs = options.dirs ?? DEFAULT_PLUGIN_DIRS;
  for (const dir of dirs) {
    for (const path of candidates(dir, name, ".sock")) {
      const info = await Deno.stat(path).catch(() => undefined);
      if (info?.isSocket) {
        return {
          name,
          addr: `unix://${path}`,
          source: path,
          identity: `unix://${path}@${info.dev}:${info.ino}`,
        };
      }
    }
  }
  for (const dir of dirs) {
    for (const ext of [".spec", ".json"]) {
      for (const path of candidates(dir, name, ext)) {
        const info = await Deno.stat(path).catch(() => undefined);
        if (!info?.isFile) continue;
        const found = ext === ".spec" ? await readSpec(name, path) : await readJson(name, path);
        return { ...found, identity: await identityOf(found.addr) };
      }
    }
  }
  return undefined;
}

function candidates(dir: string, name: string, ext: string): string[] {
  const base = dir.replace(/\/+$/, "");
  return [`${base}/${name}${ext}`, `${base}/${name}/${name}${ext}`];
}

async function readSpec(name: string, path: string): Promise<Omit<PluginAddress, "identity">> {
  const text = await Deno.readTextFile(path).catch((err) => {
    throw invalidArgument(`volume plugin "${name}": cannot read ${path}: ${messageOf(err)}`, err);
  });
  const addr = text.trim();
  checkAddr(name, path, addr);
  return { name, addr, source: path };
}

async function readJson(name: string, path: string): Promise<Omit<PluginAddress, "identity">> {
  const fail = (why: string, cause?: unknown) =>
    invalidArgument(`volume plugin "${name}": ${path}: ${why}`, cause);
  const text = await Deno.readTextFile(path).catch((err) => {
    throw fail(`cannot read: ${messageOf(err)}`, err);
  });
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON: ${messageOf(err)}`, err);
  }
  if (!isObject(data) || typeof data.Addr !== "string") {
    throw fail(`want {"Name", "Addr", "TLSConfig"} with a string Addr`);
  }
  const addr = data.Addr.trim();
  checkAddr(name, path, addr);
  let tls: PluginTlsConfig | undefined;
  if (data.TLSConfig !== undefined && data.TLSConfig !== null) {
    const config = data.TLSConfig;
    if (!isObject(config)) throw fail("TLSConfig must be an object");
    tls = {};
    for (const key of ["CAFile", "CertFile", "KeyFile"] as const) {
      const value = config[key];
      if (value === undefined || value === "") continue;
      if (typeof value !== "string") throw fail(`TLSConfig.${key} must be a string`);
      tls[key] = value;
    }
    if (config.InsecureSkipVerify === true) tls.InsecureSkipVerify = true;
  }
  return { name, addr, source: path, ...(tls ? { tls } : {}) };
}

function checkAddr(name: string, path: string, addr: string): void {
  try {
    targetOf(addr);
  } catch (err) {
    throw invalidArgument(`volume plugin "${name}": ${path}: ${messageOf(err)}`, err);
  }
}

async function identityOf(addr: string): Promise<string> {
  if (!addr.startsWith("unix://")) return addr;
  const info = await Deno.stat(addr.slice("unix://".length)).catch(() => undefined);
  return info ? `${addr}@${info.dev}:${info.ino}` : addr;
}

/** The HTTP target of a plugin address; throws on an address the client cannot reach. */
function targetOf(addr: string, tls?: HttpTls): HttpTarget {
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new Error(`invalid plugin address ${JSON.stringify(addr)}`);
  }
  if (url.protocol === "unix:") {
    if (!url.pathname.startsWith("/")) throw new Error(`invalid plugin address ${addr}`);
    return { kind: "unix", path: decodeURIComponent(url.pathname) };
  }
  if (!["tcp:", "http:", "https:"].includes(url.protocol)) {
    throw new Error(
      `unsupported plugin address ${JSON.stringify(addr)}: want unix:///path or tcp://host:port`,
    );
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  if (!hostname || (url.protocol === "tcp:" && !url.port)) {
    throw new Error(`invalid plugin address ${addr}: want tcp://host:port`);
  }
  return url.protocol === "https:"
    ? { kind: "tcp", hostname, port, tls: tls ?? {} }
    : { kind: "tcp", hostname, port };
}

/** Options of {@link PluginClient}. */
export interface PluginClientOptions {
  /** The deadline of every call ({@link DEFAULT_PLUGIN_TIMEOUT_MS} by default). */
  timeoutMs?: number;
  /** TLS material for an `https://` address (PEM texts). */
  tls?: HttpTls;
}

/** Calls one plugin's methods: JSON in, a JSON object out, `Err` turned into an error. */
export class PluginClient {
  /** The plugin's name. */
  readonly name: string;
  /** The plugin's address. */
  readonly addr: string;
  readonly #target: HttpTarget;
  readonly #timeoutMs: number;
  #unreachable = false;

  /** A client of the plugin at `address`. Throws on an address it cannot reach. */
  constructor(address: Pick<PluginAddress, "name" | "addr">, options: PluginClientOptions = {}) {
    this.name = address.name;
    this.addr = address.addr;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
    try {
      this.#target = targetOf(address.addr, options.tls);
    } catch (err) {
      throw invalidArgument(`volume plugin "${this.name}": ${messageOf(err)}`, err);
    }
  }

  /** Whether the last call could not connect (the plugin went away: activate it again). */
  get unreachable(): boolean {
    return this.#unreachable;
  }

  /**
   * Calls `method` (`VolumeDriver.Create`) with `body` and answers the JSON object the plugin
   * sent back. A timeout or a connection failure is Unavailable; a non-200 status, a body that is
   * not a JSON object, or a non-empty `Err` is a system error; each names the plugin and method.
   */
  async call(method: string, body?: unknown): Promise<Record<string, unknown>> {
    const fail = (why: string, cause?: unknown) =>
      systemError(`volume plugin "${this.name}": ${method}: ${why}`, cause);
    let response;
    try {
      response = await httpPost(this.#target, `/${method}`, {
        headers: { Accept: PLUGIN_MIME },
        body: body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body)),
        timeoutMs: this.#timeoutMs,
      });
    } catch (err) {
      if (!(err instanceof HttpError)) throw fail(messageOf(err), err);
      this.#unreachable = err.reason === "connect";
      const where = `${this.addr}: ${err.message}`;
      if (err.reason === "malformed") throw fail(`answered garbage: ${err.message}`, err);
      throw unavailable(`volume plugin "${this.name}": ${method}: ${where}`, err);
    }
    this.#unreachable = false;
    const text = new TextDecoder().decode(response.body);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
    if (response.status !== 200) {
      // Docker's client too reads `Err` from an error status, or else shows the body.
      const detail = isObject(data) && typeof data.Err === "string" && data.Err !== ""
        ? data.Err
        : text.trim().slice(0, 200) || "(empty body)";
      throw fail(`HTTP ${response.status}: ${detail}`);
    }
    if (data === undefined) throw fail(`answered garbage (not JSON): ${preview(response.body)}`);
    if (!isObject(data)) throw fail(`answered ${preview(response.body)}, not a JSON object`);
    if (data.Err !== undefined && data.Err !== null && typeof data.Err !== "string") {
      throw fail(`answered garbage: Err is not a string`);
    }
    if (typeof data.Err === "string" && data.Err !== "") throw fail(data.Err);
    return data;
  }
}

/** What `VolumeDriver.Get` says of a volume. */
export interface PluginVolumeInfo {
  name: string;
  /** The host path (empty when the plugin has not mounted it). */
  mountpoint: string;
  status: Record<string, unknown>;
}

/** A volume driver backed by a plugin. */
export class PluginDriver implements VolumeDriver {
  /** The plugin's name, given to `--driver`. */
  readonly name: string;
  readonly #client: PluginClient;
  readonly #scope: "local" | "global";

  /** A driver over an activated plugin's client, of `options.scope` (local by default). */
  constructor(client: PluginClient, options: { scope?: "local" | "global" } = {}) {
    this.name = client.name;
    this.#client = client;
    this.#scope = options.scope ?? "local";
  }

  /** Whether the plugin could not be reached on the last call (re-discover, re-activate). */
  get unreachable(): boolean {
    return this.#client.unreachable;
  }

  /**
   * `VolumeDriver.Create`, then `Get` for the mountpoint and status. When `Get` fails, the volume
   * is removed at the plugin again, so a failed create leaves nothing.
   */
  async create(name: string, options: Record<string, string>): Promise<DriverVolume> {
    await this.#client.call("VolumeDriver.Create", { Name: name, Opts: { ...options } });
    try {
      const info = await this.get(name);
      return { name, options: { ...options }, mountpoint: info.mountpoint, status: info.status };
    } catch (err) {
      await this.#client.call("VolumeDriver.Remove", { Name: name }).catch(() => {});
      throw err;
    }
  }

  /** `VolumeDriver.Remove`. */
  async remove(volume: DriverVolume): Promise<void> {
    await this.#client.call("VolumeDriver.Remove", { Name: volume.name });
  }

  /** The mountpoint recorded at create (see {@link PluginDriver.pathOf} for the plugin's). */
  path(volume: DriverVolume): string {
    return volume.mountpoint;
  }

  /**
   * `VolumeDriver.Mount` for container `containerId`: answers the plugin's mountpoint, which must
   * be an absolute path (otherwise the mount is undone with `Unmount` and this fails).
   */
  async mount(volume: DriverVolume, containerId: string): Promise<string> {
    const request = { Name: volume.name, ID: containerId };
    const answer = await this.#client.call("VolumeDriver.Mount", request);
    const mountpoint = answer.Mountpoint;
    if (typeof mountpoint !== "string" || !mountpoint.startsWith("/")) {
      await this.#client.call("VolumeDriver.Unmount", request).catch(() => {});
      throw systemError(
        `volume plugin "${this.name}": VolumeDriver.Mount: answered garbage: ` +
          `Mountpoint ${JSON.stringify(mountpoint ?? null)} is not an absolute path`,
      );
    }
    return mountpoint;
  }

  /** `VolumeDriver.Unmount` for container `containerId`. */
  async unmount(volume: DriverVolume, containerId: string): Promise<void> {
    await this.#client.call("VolumeDriver.Unmount", { Name: volume.name, ID: containerId });
  }

  /** Nothing: the plugin keeps its own state across pouch restarts. */
  restore(_volume: DriverVolume): Promise<void> {
    return Promise.resolve();
  }

  /** The scope from `VolumeDriver.Capabilities`, asked at activation. */
  capabilities(): DriverCapabilities {
    return { scope: this.#scope };
  }

  /** What the plugin says of the volume now (`VolumeDriver.Get`), for `volume inspect`. */
  async describe(volume: DriverVolume): Promise<{
    mountpoint: string;
    status: Record<string, unknown>;
  }> {
    const info = await this.get(volume.name);
    return { mountpoint: info.mountpoint, status: info.status };
  }

  /** `VolumeDriver.Get`. */
  async get(name: string): Promise<PluginVolumeInfo> {
    const answer = await this.#client.call("VolumeDriver.Get", { Name: name });
    return this.#volumeInfo("VolumeDriver.Get", answer.Volume);
  }

  /** `VolumeDriver.Path`: the plugin's mountpoint of volume `name` (empty if not mounted). */
  async pathOf(name: string): Promise<string> {
    const answer = await this.#client.call("VolumeDriver.Path", { Name: name });
    const mountpoint = answer.Mountpoint ?? "";
    if (typeof mountpoint !== "string") {
      throw systemError(
        `volume plugin "${this.name}": VolumeDriver.Path: answered garbage: Mountpoint is not a string`,
      );
    }
    return mountpoint;
  }

  /** `VolumeDriver.List`: every volume the plugin has. */
  async list(): Promise<PluginVolumeInfo[]> {
    const answer = await this.#client.call("VolumeDriver.List", {});
    const volumes = answer.Volumes ?? [];
    if (!Array.isArray(volumes)) {
      throw systemError(
        `volume plugin "${this.name}": VolumeDriver.List: answered garbage: Volumes is not a list`,
      );
    }
    return volumes.map((v) => this.#volumeInfo("VolumeDriver.List", v));
  }

  #volumeInfo(method: string, value: unknown): PluginVolumeInfo {
    const garbage = (why: string) =>
      systemError(`volume plugin "${this.name}": ${method}: answered garbage: ${why}`);
    if (!isObject(value)) throw garbage("no Volume object");
    const { Name, Mountpoint, Status } = value;
    if (typeof Name !== "string" || Name === "") throw garbage("a volume without a Name");
    if (Mountpoint !== undefined && Mountpoint !== null && typeof Mountpoint !== "string") {
      throw garbage("Mountpoint is not a string");
    }
    if (Status !== undefined && Status !== null && !isObject(Status)) {
      throw garbage("Status is not an object");
    }
    return { name: Name, mountpoint: Mountpoint ?? "", status: { ...(Status ?? {}) } };
  }
}

/** Options of {@link activatePlugin}. */
export interface ActivateOptions {
  /** The deadline of every call. */
  timeoutMs?: number;
}

/**
 * Connects to a discovered plugin: `/Plugin.Activate` (it must implement `VolumeDriver`, else
 * InvalidArgument), then `/VolumeDriver.Capabilities` for its scope (optional, as in Docker: a
 * plugin that fails it is local).
 */
export async function activatePlugin(
  address: PluginAddress,
  options: ActivateOptions = {},
): Promise<PluginDriver> {
  const client = new PluginClient(address, {
    timeoutMs: options.timeoutMs,
    tls: address.addr.startsWith("https://") ? await readTls(address) : undefined,
  });
  const manifest = await client.call("Plugin.Activate");
  const implemented = manifest.Implements;
  if (!Array.isArray(implemented) || !implemented.every((i) => typeof i === "string")) {
    throw systemError(
      `volume plugin "${address.name}": Plugin.Activate: answered garbage: ` +
        `want {"Implements": [...]}`,
    );
  }
  if (!implemented.includes("VolumeDriver")) {
    throw invalidArgument(
      `plugin "${address.name}" does not implement VolumeDriver ` +
        `(it implements: ${implemented.join(", ") || "nothing"})`,
    );
  }
  let scope: "local" | "global" = "local";
  try {
    const answer = await client.call("VolumeDriver.Capabilities", {});
    const capabilities = answer.Capabilities;
    const value = isObject(capabilities) && typeof capabilities.Scope === "string"
      ? capabilities.Scope.toLowerCase()
      : "";
    if (value === "global") scope = value;
  } catch {
    // Capabilities is optional in the protocol: Docker assumes a local driver.
  }
  return new PluginDriver(client, { scope });
}

async function readTls(address: PluginAddress): Promise<HttpTls> {
  const config = address.tls ?? {};
  const read = (path: string) =>
    Deno.readTextFile(path).catch((err) => {
      throw invalidArgument(
        `volume plugin "${address.name}": cannot read ${path}: ${messageOf(err)}`,
        err,
      );
    });
  // Deno verifies every TLS peer: InsecureSkipVerify cannot be honoured, so without a CAFile
  // the system's roots are trusted (Docker would skip verification).
  return {
    ...(config.CAFile ? { caCerts: [await read(config.CAFile)] } : {}),
    ...(config.CertFile && config.KeyFile
      ? { cert: await read(config.CertFile), key: await read(config.KeyFile) }
      : {}),
  };
}

/** Options of {@link PluginRegistry}. */
export interface PluginRegistryOptions {
  /** The plugin directories ({@link DEFAULT_PLUGIN_DIRS} by default). */
  dirs?: readonly string[];
  /** The deadline of every plugin call ({@link DEFAULT_PLUGIN_TIMEOUT_MS} by default). */
  timeoutMs?: number;
}

/**
 * Finds volume drivers among plugins by name: discovers and activates a plugin on first use, and
 * keeps the activated driver while the plugin is the same (same address and socket). A plugin
 * whose socket went away is not found; one that was restarted (a new socket) or could not be
 * reached on the last call is activated again.
 */
export class PluginRegistry {
  readonly #dirs: readonly string[];
  readonly #timeoutMs: number;
  readonly #active = new Map<string, { identity: string; driver: PluginDriver }>();
  readonly #pending = new Map<string, Promise<PluginDriver | undefined>>();

  /** A registry over `options.dirs`. */
  constructor(options: PluginRegistryOptions = {}) {
    this.#dirs = options.dirs && options.dirs.length > 0 ? options.dirs : DEFAULT_PLUGIN_DIRS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PLUGIN_TIMEOUT_MS;
  }

  /** The directories searched, in order. */
  get dirs(): readonly string[] {
    return this.#dirs;
  }

  /**
   * The driver of plugin `name`, activated; undefined when no such plugin exists. Activation
   * failures (no answer, garbage, not a volume driver) are thrown.
   */
  resolve(name: string): Promise<PluginDriver | undefined> {
    // Concurrent lookups of one plugin share one discovery and activation.
    const pending = this.#pending.get(name);
    if (pending) return pending;
    const lookup = this.#lookup(name).finally(() => this.#pending.delete(name));
    this.#pending.set(name, lookup);
    return lookup;
  }

  async #lookup(name: string): Promise<PluginDriver | undefined> {
    const address = await discoverPlugin(name, { dirs: this.#dirs });
    if (!address) {
      this.#active.delete(name);
      return undefined;
    }
    const active = this.#active.get(name);
    if (active && active.identity === address.identity && !active.driver.unreachable) {
      return active.driver;
    }
    this.#active.delete(name);
    const driver = await activatePlugin(address, { timeoutMs: this.#timeoutMs });
    this.#active.set(name, { identity: address.identity, driver });
    return driver;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

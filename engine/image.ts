/**
 * Local images: load (docker-save and OCI archives), import (a rootfs tarball), list, inspect,
 * resolve, tag and remove, on top of containerd's image, content, snapshot and diff services.
 *
 * Storage model (containerd's, so `ctr` sees the same images):
 * - an image record per name (`docker.io/library/busybox:latest`) whose target is the manifest,
 *   or an index holding it; an untagged image keeps a record named `moby-dangling@<digest>`
 *   (the convention of Docker's containerd store) so it stays listed until removed;
 * - blobs in the content store, linked by the GC labels containerd follows (manifest -> config
 *   and layers, config -> top snapshot), so an image record keeps all of its parts alive;
 * - layers unpacked into committed snapshots named by chain ID, shared between images;
 * - every write done under a lease, so nothing half-written survives a failure: without an
 *   image record pointing at them, the blobs and snapshots go at the next GC.
 *
 * The image ID is the config blob's digest, as in Docker.
 *
 * @module
 */

import type { Containerd, ContentInfo, Descriptor, ImageRecord } from "./containerd.ts";
import {
  conflict,
  invalidArgument,
  isAlreadyExists,
  isConflict,
  isInvalidArgument,
  isNotFound,
  kindOf,
  messageOf,
  notFound,
} from "./errors.ts";
import { Sha256, sha256Digest } from "./sha256.ts";
import { sleep } from "./sleep.ts";
import {
  familiarName,
  formatReference,
  normalizeReference,
  parseReference,
  type Reference,
  repositoryOf,
  tryParseReference,
  withDefaultTag,
} from "./reference.ts";
import {
  type AuthConfig,
  type FetchedManifest,
  progressId,
  type ProgressMessage,
  progressMessage,
  RegistryClient,
  type RegistrySession,
} from "./registry.ts";
import { checkLayerEntry } from "./archive.ts";
import { gunzip, isGzip, maybeGunzip, readTar, type TarInput, tarStream } from "./tar.ts";
import type { ContainerConfig, ImageConfigBlob, ImageRunConfig } from "./types.ts";

// ---------------------------------------------------------------------------------------------
// Wire constants

/** Media types of manifests, configs and layers. */
export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

const INDEX_TYPES: string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
const MANIFEST_TYPES: string[] = [MediaType.ociManifest, MediaType.dockerManifest];

/** Label naming the uncompressed digest (diff ID) of a layer blob. */
const LABEL_UNCOMPRESSED = "containerd.io/uncompressed";
/** Prefix of GC labels: a blob keeps the content or snapshot the label names. */
const LABEL_GC_CONTENT = "containerd.io/gc.ref.content";
const LABEL_GC_SNAPSHOT = "containerd.io/gc.ref.snapshot";
/** Prefix of the label naming the repositories of a registry a blob came from (for mounts). */
const LABEL_DISTRIBUTION_SOURCE = "containerd.io/distribution.source";
/** Name prefix of the records that keep untagged images. */
export const DANGLING_PREFIX = "moby-dangling@";

const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";

/** How long a lease may outlive a crashed operation before GC may reclaim its objects. */
const LEASE_EXPIRY_SECONDS = 3600;
/**
 * How long the lease of a failed pull keeps its complete blobs and layers for the next try.
 * A successful pull deletes its lease at once (the image record then holds everything).
 */
const PULL_LEASE_SECONDS = 24 * 3600;
/** Layers downloaded (or pushed) at the same time, as Docker's default. */
const PULL_CONCURRENCY = 3;
/** A timestamp Docker prints for "never". */
const ZERO_TIME = "0001-01-01T00:00:00Z";

// ---------------------------------------------------------------------------------------------
// Public shapes

/** Options of {@link ImageManager}. */
export interface ImageManagerOptions {
  /** containerd snapshotter for layers; `overlayfs` by default. */
  snapshotter?: string;
  /** Where to log. */
  log?: (msg: string) => void;
  /** Directory for staging archives during load/import; the system temp dir by default. */
  tempDir?: string;
  /** The registry client pulls and pushes go through (mirrors, insecure registries, proxy). */
  registry?: RegistryClient;
  /** Told of each chunk of layer bytes a pull downloads, for metrics. */
  onPullBytes?: (bytes: number) => void;
}

/** Options of {@link ImageManager.pull}. */
export interface PullOptions {
  /** Credentials for the image's registry. */
  auth?: AuthConfig;
  /** Receives Docker's JSON progress messages. */
  onProgress?: (msg: ProgressMessage) => void;
  /** Called once the reference resolved to a manifest, before any layer is transferred. */
  onResolved?: () => void;
  /** `os/arch[/variant]` to choose in an index; the host's by default. */
  platform?: string;
  signal?: AbortSignal;
}

/** What a pull recorded. */
export interface PullResult {
  /** The normalised name the image got, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** Digest of what the reference resolved to (the index or the manifest). */
  digest: string;
  /** Image ID (the config's digest). */
  id: string;
}

/** Options of {@link ImageManager.push}. */
export interface PushOptions {
  /** Credentials for the image's registry. */
  auth?: AuthConfig;
  /** Receives Docker's JSON progress messages. */
  onProgress?: (msg: ProgressMessage) => void;
  /** Called once the image was found locally, before any request to the registry. */
  onResolved?: () => void;
  signal?: AbortSignal;
}

/** What a push stored in the registry. */
export interface PushResult {
  tag: string;
  /** Digest of the manifest put under the tag. */
  digest: string;
  /** Size of that manifest in bytes. */
  size: number;
}

/** An item of `GET /images/json`. */
export interface ImageSummary {
  Id: string;
  ParentId: string;
  RepoTags: string[];
  RepoDigests: string[];
  /** Unix seconds. */
  Created: number;
  Size: number;
  SharedSize: number;
  VirtualSize: number;
  Labels: Record<string, string>;
  Containers: number;
}

/** The body of `GET /images/{name}/json`. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  /** RFC 3339. */
  Created: string;
  Container: string;
  ContainerConfig: ContainerConfig;
  DockerVersion: string;
  Author: string;
  Config: ContainerConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Name: string; Data: Record<string, string> | null };
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/** What the container manager needs of an image. */
export interface ResolvedImage {
  /** `sha256:...` of the config. */
  id: string;
  /** The normalised name it was resolved by, or the ID when resolved by ID. */
  name: string;
  /** The platform manifest. */
  manifest: Descriptor;
  config: ImageConfigBlob;
  /** Chain ID of the top layer: the parent of a container's rootfs snapshot. */
  chainId: string;
  /** Familiar `name:tag` forms. */
  repoTags: string[];
  /** Familiar `name@digest` forms. */
  repoDigests: string[];
}

/** Options of {@link ImageManager.load}. */
export interface LoadOptions {
  /** Called with progress lines (an older image losing its name to a loaded one). */
  onProgress?: (msg: string) => void;
  /**
   * Called with each layer's progress as it is written into containerd, as Docker's JSON
   * messages: `Loading layer` (with byte counts), then `Load complete`.
   */
  onLayerProgress?: (msg: ProgressMessage) => void;
}

/** Options of {@link ImageManager.import}. */
export interface ImportOptions {
  /** Name to give the image; untagged when omitted. */
  ref?: string;
  /** Dockerfile instructions applied to the config (`CMD ["sh"]`, `ENV A=1`, ...). */
  changes?: string[];
  /** Commit message: the image's comment. */
  message?: string;
  /** `os/arch[/variant]`; the host's platform by default. */
  platform?: string;
}

/** Options of {@link ImageManager.list}. */
export interface ListOptions {
  /** Docker's `all` (intermediate images); pouch has none, so it changes nothing. */
  all?: boolean;
  /** `reference`, `dangling`, `label`, `before`, `since`. */
  filters?: Record<string, string[]>;
}

/** Options of {@link ImageManager.remove}. */
export interface RemoveOptions {
  force?: boolean;
  /** Returns the ID of a container using the image, if any. */
  isInUse?: (imageId: string) => string | undefined;
}

/** An item of `DELETE /images/{name}`'s answer. */
export type ImageDeleteItem = { Untagged: string } | { Deleted: string };

// ---------------------------------------------------------------------------------------------
// Internal shapes

interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

interface IndexEntry extends Descriptor {
  platform?: Platform;
}

interface ManifestBlob {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

interface IndexBlob {
  schemaVersion: number;
  mediaType?: string;
  manifests: IndexEntry[];
}

/** The config fields Docker adds to the OCI ones. */
interface DockerConfigBlob extends ImageConfigBlob {
  comment?: string;
  container?: string;
  container_config?: ImageRunConfig;
  docker_version?: string;
}

/** What an image record's target resolves to (content is immutable, so this is cacheable). */
interface TargetInfo {
  manifest: Descriptor;
  layers: Descriptor[];
  configDigest: string;
  config: DockerConfigBlob;
}

/** The image records pointing at one image ID. */
interface ImageGroup {
  id: string;
  records: ImageRecord[];
  info: TargetInfo;
  /** The record to take the target from: a named one when there is one. */
  primary: ImageRecord;
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

/**
 * Chain IDs of a list of diff IDs: `chain(L0) = diff(L0)`,
 * `chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))`.
 */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const previous = out[out.length - 1];
    out.push(previous === undefined ? diffId : sha256Digest(`${previous} ${diffId}`));
  }
  return out;
}

/** The platform pouch runs images for: this host's. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };
  return { os: "linux", architecture: arch[Deno.build.arch] ?? Deno.build.arch };
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(s: string): Platform {
  const [os, architecture, variant, extra] = s.toLowerCase().split("/");
  if (!os || !architecture || extra !== undefined) {
    throw invalidArgument(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, "").slice(0, 12);
}

function isDanglingName(name: string): boolean {
  return name.startsWith(DANGLING_PREFIX);
}

/** Whether `s` names a layer compressed with gzip. */
function isGzipLayer(mediaType: string): boolean {
  return mediaType.endsWith("+gzip") || mediaType.endsWith(".tar.gzip");
}

function isLayerType(mediaType: string): boolean {
  return mediaType.startsWith("application/vnd.oci.image.layer.") ||
    mediaType.startsWith("application/vnd.docker.image.rootfs.");
}

/** Splits a Dockerfile argument into words, removing quotes and honouring backslashes. */
export function splitWords(s: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"' && i + 1 < s.length) word += s[++i];
      else word += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "\\" && i + 1 < s.length) word += s[++i];
    else word += ch;
  }
  if (quote) throw invalidArgument(`unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) words.push(word);
  return words;
}

/** A JSON array of strings, or undefined when `s` is not one (then it is shell form). */
function jsonArgs(s: string): string[] | undefined {
  if (!s.startsWith("[")) return undefined;
  try {
    const parsed: unknown = JSON.parse(s);
    if (Array.isArray(parsed) && parsed.every((x) => typeof x === "string")) return parsed;
  } catch {
    // Not JSON: Docker then treats the text as shell form.
  }
  return undefined;
}

/** `key=value` pairs, or the legacy `key value` form when `allowLegacy` and no `=`. */
function keyValues(rest: string, instruction: string): Array<[string, string]> {
  const words = splitWords(rest);
  if (words.length === 0) throw invalidArgument(`${instruction} requires at least one argument`);
  if (!words[0]!.includes("=")) {
    // Legacy form `ENV key value with spaces`: one pair, the value is the rest of the line.
    const key = words[0]!;
    const value = rest.trim().slice(rest.trim().indexOf(key) + key.length).trim();
    if (value === "") {
      throw invalidArgument(`${instruction} names ${key} without a value`);
    }
    return [[key, splitWords(value).join(" ")]];
  }
  return words.map((w) => {
    const eq = w.indexOf("=");
    if (eq <= 0) throw invalidArgument(`${instruction}: syntax error - can't find = in "${w}"`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** Expands `80`, `80/udp`, `8000-8002/tcp` into `port/proto` keys. */
function exposedPorts(rest: string): string[] {
  const out: string[] = [];
  for (const spec of splitWords(rest)) {
    const [range, proto = "tcp", extra] = spec.toLowerCase().split("/");
    const [start, end = start, more] = range!.split("-");
    const lo = Number(start);
    const hi = Number(end);
    if (
      extra !== undefined || more !== undefined || !["tcp", "udp", "sctp"].includes(proto) ||
      !/^\d+$/.test(start!) || !/^\d+$/.test(end!) || lo < 1 || hi > 65535 || lo > hi
    ) {
      throw invalidArgument(`invalid containerPort: ${spec}`);
    }
    for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

/**
 * Applies Dockerfile instructions (`docker import --change`) to an image's run config and
 * returns the new config: `CMD`, `ENTRYPOINT` (JSON or shell form), `ENV`, `LABEL`
 * (`k=v ...` or legacy `k v`), `WORKDIR`, `USER`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`.
 */
export function parseChanges(changes: string[], base: ImageRunConfig = {}): ImageRunConfig {
  const config: ImageRunConfig = structuredClone(base);
  const lines = changes.flatMap((c) => c.split("\n")).map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("#")
  );
  for (const line of lines) {
    const match = /^(\S+)\s*(.*)$/s.exec(line)!;
    const instruction = match[1]!.toUpperCase();
    const rest = match[2]!.trim();
    switch (instruction) {
      case "CMD":
      case "ENTRYPOINT": {
        const args = jsonArgs(rest) ?? (rest === "" ? [] : ["/bin/sh", "-c", rest]);
        if (instruction === "CMD") config.Cmd = args;
        else config.Entrypoint = args;
        break;
      }
      case "ENV": {
        const env = config.Env ?? [];
        for (const [key, value] of keyValues(rest, instruction)) {
          const at = env.findIndex((e) => e.split("=")[0] === key);
          if (at >= 0) env[at] = `${key}=${value}`;
          else env.push(`${key}=${value}`);
        }
        config.Env = env;
        break;
      }
      case "LABEL": {
        config.Labels = { ...config.Labels, ...Object.fromEntries(keyValues(rest, instruction)) };
        break;
      }
      case "WORKDIR": {
        if (rest === "") throw invalidArgument("WORKDIR requires exactly one argument");
        const dir = splitWords(rest).join(" ");
        // A relative WORKDIR is relative to the previous one, as in a Dockerfile.
        config.WorkingDir = dir.startsWith("/")
          ? dir
          : `${(config.WorkingDir ?? "/").replace(/\/$/, "")}/${dir}`;
        break;
      }
      case "USER": {
        if (rest === "") throw invalidArgument("USER requires exactly one argument");
        config.User = rest;
        break;
      }
      case "EXPOSE": {
        if (rest === "") throw invalidArgument("EXPOSE requires at least one argument");
        const ports = { ...config.ExposedPorts };
        for (const port of exposedPorts(rest)) ports[port] = {};
        config.ExposedPorts = ports;
        break;
      }
      case "VOLUME": {
        const volumes = jsonArgs(rest) ?? splitWords(rest);
        if (volumes.length === 0) throw invalidArgument("VOLUME requires at least one argument");
        config.Volumes = { ...config.Volumes };
        for (const v of volumes) config.Volumes[v] = {};
        break;
      }
      case "STOPSIGNAL": {
        if (splitWords(rest).length !== 1) {
          throw invalidArgument("STOPSIGNAL requires exactly one argument");
        }
        config.StopSignal = rest;
        break;
      }
      default:
        throw invalidArgument(`${match[1]} is not a valid change command`);
    }
  }
  return config;
}

/** Docker's container config shape of an image's run config, with Docker's empty values. */
function containerConfigOf(run: ImageRunConfig | undefined): ContainerConfig {
  const config: ContainerConfig = {
    Hostname: "",
    Domainname: "",
    User: run?.User ?? "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: run?.Env ?? null,
    Cmd: run?.Cmd ?? null,
    Image: "",
    Volumes: run?.Volumes ?? null,
    WorkingDir: run?.WorkingDir ?? "",
    Entrypoint: run?.Entrypoint ?? null,
    OnBuild: null,
    Labels: run?.Labels ?? null,
  };
  if (run?.ExposedPorts) config.ExposedPorts = run.ExposedPorts;
  if (run?.StopSignal) config.StopSignal = run.StopSignal;
  return config;
}

/** Translates a Docker `reference` filter pattern (path.Match syntax) into a RegExp. */
function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) throw invalidArgument(`invalid reference filter ${JSON.stringify(pattern)}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = `!${cls.slice(1)}`;
      re += `[${cls.startsWith("!") ? `^${cls.slice(1)}` : cls}]`;
      i = end;
    } else if (ch === "\\" && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += ch.replace(/[.+^${}()|\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Whether `value` is false in Docker's query rules. */
function parseBoolFilter(key: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw invalidArgument(`Invalid filter '${key}=${value}'`);
}

// ---------------------------------------------------------------------------------------------
// Staging: an archive's files written to a temp directory while hashing them

interface StagedFile {
  /** Path of the staged copy. */
  tmp: string;
  size: number;
  digest: string;
  gzip: boolean;
  /** Digest of the decompressed bytes, computed on demand for gzip files. */
  uncompressed?: string;
}

/** The regular files and links of an archive, staged on disk. */
class Staging {
  readonly dir: string;
  #files = new Map<string, StagedFile>();
  #links = new Map<string, string>();
  #count = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(parent?: string): Promise<Staging> {
    return new Staging(await Deno.makeTempDir({ dir: parent, prefix: "pouch-image-" }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Writes a body to disk, hashing it on the way. */
  async add(path: string, body: ReadableStream<Uint8Array>): Promise<StagedFile> {
    const tmp = `${this.dir}/${this.#count++}`;
    const hash = new Sha256();
    let size = 0;
    let head = new Uint8Array(0);
    using file = await Deno.open(tmp, { write: true, createNew: true });
    for await (const chunk of body) {
      hash.update(chunk);
      if (head.length < 2) head = new Uint8Array([...head, ...chunk.subarray(0, 2)]);
      size += chunk.length;
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    }
    const staged = { tmp, size, digest: hash.digest(), gzip: isGzip(head) };
    this.#files.set(path, staged);
    return staged;
  }

  /** Records a link: `target` is already resolved to an archive path. */
  link(path: string, target: string): void {
    this.#links.set(path, target);
  }

  /** The file at `path`, following links. */
  get(path: string): StagedFile | undefined {
    let p = cleanPath(path);
    for (let hops = 0; hops < 16; hops++) {
      const file = this.#files.get(p);
      if (file) return file;
      const target = this.#links.get(p);
      if (target === undefined) return undefined;
      p = target;
    }
    return undefined;
  }

  has(path: string): boolean {
    return this.get(path) !== undefined;
  }

  /** The file at `path`, or an InvalidArgument error naming it. */
  require(path: string): StagedFile {
    const file = this.get(path);
    if (!file) throw invalidArgument(`invalid archive: ${path} not found in the archive`);
    return file;
  }

  async json<T>(path: string): Promise<T> {
    const file = this.require(path);
    if (file.size > 16 << 20) throw invalidArgument(`invalid archive: ${path} is too large`);
    return parseJson<T>(await Deno.readFile(file.tmp), path);
  }

  async bytes(file: StagedFile): Promise<Uint8Array> {
    return await Deno.readFile(file.tmp);
  }

  /** Digest of the file's decompressed bytes (the diff ID of a layer). */
  async uncompressedDigest(file: StagedFile): Promise<string> {
    if (!file.gzip) return file.digest;
    if (file.uncompressed) return file.uncompressed;
    const hash = new Sha256();
    using handle = await Deno.open(file.tmp);
    try {
      for await (const chunk of gunzip(handle.readable)) hash.update(chunk);
    } catch (err) {
      throw invalidArgument(`invalid archive: corrupt gzip layer: ${messageOf(err)}`, err);
    }
    file.uncompressed = hash.digest();
    return file.uncompressed;
  }

  /** Checks that the archive holds `desc`'s blob with its digest and size. */
  blob(desc: Descriptor): StagedFile {
    if (!/^sha256:[a-f0-9]{64}$/.test(desc.digest ?? "")) {
      throw invalidArgument(`invalid archive: unsupported digest ${JSON.stringify(desc.digest)}`);
    }
    const path = `blobs/${desc.digest.replace(":", "/")}`;
    const file = this.require(path);
    if (file.size !== desc.size) {
      throw invalidArgument(
        `invalid archive: blob ${desc.digest} is ${file.size} bytes, its descriptor says ${desc.size}`,
      );
    }
    if (file.digest !== desc.digest) {
      throw invalidArgument(
        `invalid archive: blob ${path} has digest ${file.digest}, expected ${desc.digest}`,
      );
    }
    return file;
  }
}

/** An archive path without `./`, leading or trailing slashes, `.` and `..` components. */
function cleanPath(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw invalidArgument(`invalid archive: ${what} is not valid JSON`, err);
  }
}

/** A blob to write to the content store, from a staged file or bytes. */
interface PlannedBlob {
  desc: Descriptor;
  source: StagedFile | Uint8Array;
  labels: Record<string, string>;
}

/** An image of an archive, verified and ready to be written. */
interface PlannedImage {
  names: string[];
  /** What the records point at (a manifest, or an index holding it). */
  target: Descriptor;
  manifest: Descriptor;
  layers: Descriptor[];
  configDigest: string;
  config: DockerConfigBlob;
  /** In write order: children before the blobs that reference them. */
  blobs: PlannedBlob[];
}

function validateConfig(config: DockerConfigBlob, what: string, layerCount: number): void {
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== "string")) {
    throw invalidArgument(`invalid archive: ${what} has no rootfs.diff_ids`);
  }
  if (diffIds.length !== layerCount) {
    throw invalidArgument(
      `invalid archive: ${what} lists ${diffIds.length} layers, the manifest ${layerCount}`,
    );
  }
}

function gcLabels(manifest: ManifestBlob): Record<string, string> {
  const labels: Record<string, string> = {
    [`${LABEL_GC_CONTENT}.config`]: manifest.config.digest,
  };
  manifest.layers.forEach((layer, i) => {
    labels[`${LABEL_GC_CONTENT}.l.${i}`] = layer.digest;
  });
  return labels;
}

// ---------------------------------------------------------------------------------------------
// The manager

/** How long after subscribing to image events {@link ImageManager.watch} trusts them. */
const WATCH_SETTLE_MS = 250;

/** Local images on containerd; see the module documentation for the storage model. */
export class ImageManager {
  #client: Containerd;
  #snapshotter: string;
  #log: (msg: string) => void;
  #tempDir?: string;
  /** Target digest -> what it resolves to. Content never changes, so entries stay valid. */
  #targets = new Map<string, TargetInfo>();
  /** Image ID -> config. */
  #configs = new Map<string, DockerConfigBlob>();
  /** Image ID -> size in bytes. */
  #sizes = new Map<string, number>();
  #registry: RegistryClient;
  #onPullBytes: (bytes: number) => void;
  /** Layer digest -> its running download, shared by concurrent pulls. */
  #downloads = new Map<string, Promise<void>>();
  /**
   * containerd's image records as last listed, kept only while {@link watch} follows
   * containerd's image events (which also tell of changes other clients make).
   */
  #records?: ImageRecord[];
  /** Bumped by every change seen: a list answered across a change is not kept. */
  #recordsGeneration = 0;
  #watching = false;

  /** Makes a manager over `client`'s image, content and snapshot services. */
  constructor(client: Containerd, options: ImageManagerOptions = {}) {
    this.#client = client;
    this.#snapshotter = options.snapshotter ?? "overlayfs";
    this.#log = options.log ?? (() => {});
    this.#tempDir = options.tempDir;
    this.#registry = options.registry ?? new RegistryClient({ log: this.#log });
    this.#onPullBytes = options.onPullBytes ?? (() => {});
  }

  /**
   * Follows containerd's image events, so that the image records can be kept between requests
   * (each container create resolves its image). Returns the function that stops following.
   * Without it, or while the subscription is down, every lookup lists the images.
   */
  watch(): () => void {
    const abort = new AbortController();
    const subscribe = async () => {
      // Records are kept only once containerd surely has the subscription (a local socket
      // answers in well under this), so that no change falls between a list and the events.
      const trusted = setTimeout(() => {
        this.#forgetRecords();
        this.#watching = true;
      }, WATCH_SETTLE_MS);
      try {
        const events = this.#client.events.subscribe(['topic~="/images/"'], abort.signal);
        for await (const _event of events) this.#forgetRecords();
      } finally {
        clearTimeout(trusted);
        this.#watching = false;
        this.#forgetRecords();
      }
    };
    (async () => {
      // A containerd restart ends the stream: subscribe again, listing meanwhile.
      while (!abort.signal.aborted) {
        await subscribe().catch((err) => {
          if (!abort.signal.aborted) {
            this.#log(`following containerd's image events: ${messageOf(err)}; again in 1s`);
          }
        });
        if (!abort.signal.aborted) await sleep(1000, abort.signal);
      }
    })();
    return () => abort.abort();
  }

  #forgetRecords(): void {
    this.#records = undefined;
    this.#recordsGeneration++;
  }

  /** containerd's image records: the kept list while watching, else a fresh one. */
  async #listRecords(): Promise<ImageRecord[]> {
    if (this.#watching && this.#records) return this.#records;
    const generation = this.#recordsGeneration;
    const records = await this.#client.images.list();
    if (this.#watching && generation === this.#recordsGeneration) this.#records = records;
    return records;
  }

  // --- load -----------------------------------------------------------------------------------

  /**
   * Loads a docker-save or OCI archive (tar, or gzip-compressed tar) and returns Docker's lines
   * for what was loaded: `Loaded image: busybox:latest`, or `Loaded image ID: sha256:...` for
   * an untagged image. Every blob is verified before any image is recorded; a bad archive
   * rejects with an InvalidArgument error and leaves no image behind.
   */
  async load(stream: ReadableStream<Uint8Array>, options: LoadOptions = {}): Promise<string[]> {
    const progress = options.onProgress ?? (() => {});
    const layerProgress = options.onLayerProgress ?? (() => {});
    await using staging = await Staging.create(this.#tempDir);
    for await (const entry of readTar(stream)) {
      const path = cleanPath(entry.name);
      if (entry.type === "file") await staging.add(path, entry.body);
      else if (entry.type === "symlink") {
        const base = path.split("/").slice(0, -1).join("/");
        staging.link(
          path,
          cleanPath(entry.linkname.startsWith("/") ? entry.linkname : `${base}/${entry.linkname}`),
        );
      } else if (entry.type === "hardlink") staging.link(path, cleanPath(entry.linkname));
    }

    let plans: PlannedImage[];
    if (staging.has("index.json") && staging.has("oci-layout")) {
      plans = await this.#planOci(staging);
    } else if (staging.has("manifest.json")) {
      plans = await this.#planDockerSave(staging);
    } else {
      throw invalidArgument("invalid archive: it holds neither manifest.json nor index.json");
    }
    if (plans.length === 0) throw invalidArgument("invalid archive: it holds no image");

    const loaded: string[] = [];
    await this.#withLease(async (lease) => {
      // Write and unpack everything first, then record the images: a failure in the middle
      // leaves only leased objects, which GC reclaims.
      for (const plan of plans) {
        for (const blob of plan.blobs) {
          if (!isLayerType(blob.desc.mediaType)) {
            await this.#writeBlob(blob, lease);
            continue;
          }
          const id = progressId(blob.desc.digest);
          const total = blob.desc.size;
          layerProgress({ status: "Loading layer", progressDetail: {}, id });
          await this.#writeBlob(blob, lease, (current) => {
            layerProgress(progressMessage("Loading layer", id, { current, total }));
          });
          layerProgress({ status: "Load complete", progressDetail: {}, id });
        }
        await this.#unpackArchived(plan, lease);
      }
      for (const plan of plans) {
        const info: TargetInfo = {
          manifest: plan.manifest,
          layers: plan.layers,
          configDigest: plan.configDigest,
          config: plan.config,
        };
        this.#targets.set(plan.target.digest, info);
        if (plan.names.length === 0) {
          await this.#putRecord(`${DANGLING_PREFIX}${plan.target.digest}`, plan.target, progress);
          loaded.push(`Loaded image ID: ${plan.configDigest}`);
        }
        for (const name of plan.names) {
          await this.#putRecord(name, plan.target, progress);
          loaded.push(`Loaded image: ${familiarName(name)}`);
        }
      }
    });
    return loaded;
  }

  /** Plans the images of a docker-save archive (`manifest.json`). */
  async #planDockerSave(staging: Staging): Promise<PlannedImage[]> {
    const entries = await staging.json<
      Array<{ Config?: string; RepoTags?: string[] | null; Layers?: string[] }>
    >("manifest.json");
    if (!Array.isArray(entries)) throw invalidArgument("invalid archive: bad manifest.json");
    const plans: PlannedImage[] = [];
    for (const entry of entries) {
      if (typeof entry?.Config !== "string" || !Array.isArray(entry.Layers)) {
        throw invalidArgument("invalid archive: manifest.json entry without Config or Layers");
      }
      const configFile = staging.require(entry.Config);
      // Content-addressed names (`<hex>.json`, `blobs/sha256/<hex>`) must match the content.
      checkAddressedName(entry.Config, configFile.digest);
      const configBytes = await staging.bytes(configFile);
      const config = parseJson<DockerConfigBlob>(configBytes, entry.Config);
      validateConfig(config, entry.Config, entry.Layers.length);

      const blobs: PlannedBlob[] = [];
      const layers: Descriptor[] = [];
      for (const [i, layerPath] of entry.Layers.entries()) {
        const file = staging.require(layerPath);
        checkAddressedName(layerPath, file.digest);
        const diffId = await staging.uncompressedDigest(file);
        if (diffId !== config.rootfs.diff_ids[i]) {
          throw invalidArgument(
            `invalid archive: layer ${layerPath} has diff ID ${diffId}, the config says ${
              config.rootfs.diff_ids[i]
            }`,
          );
        }
        const desc: Descriptor = {
          mediaType: file.gzip ? MediaType.dockerLayerGzip : MediaType.dockerLayer,
          digest: file.digest,
          size: file.size,
        };
        layers.push(desc);
        blobs.push({ desc, source: file, labels: { [LABEL_UNCOMPRESSED]: diffId } });
      }
      const configDesc: Descriptor = {
        mediaType: MediaType.dockerConfig,
        digest: configFile.digest,
        size: configFile.size,
      };
      blobs.push({ desc: configDesc, source: configBytes, labels: {} });
      const manifest: ManifestBlob = {
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: configDesc,
        layers,
      };
      const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
      const manifestDesc: Descriptor = {
        mediaType: MediaType.dockerManifest,
        digest: sha256Digest(manifestBytes),
        size: manifestBytes.length,
      };
      blobs.push({ desc: manifestDesc, source: manifestBytes, labels: gcLabels(manifest) });
      const names = (entry.RepoTags ?? []).map((tag) => {
        try {
          return normalizeReference(tag);
        } catch (err) {
          throw invalidArgument(`invalid archive: bad tag ${JSON.stringify(tag)}`, err);
        }
      });
      plans.push({
        names,
        target: manifestDesc,
        manifest: manifestDesc,
        layers,
        configDigest: configDesc.digest,
        config,
        blobs,
      });
    }
    return plans;
  }

  /** Plans the images of an OCI image layout archive (`index.json`). */
  async #planOci(staging: Staging): Promise<PlannedImage[]> {
    const layout = await staging.json<{ imageLayoutVersion?: string }>("oci-layout");
    if (typeof layout?.imageLayoutVersion !== "string") {
      throw invalidArgument("invalid archive: bad oci-layout");
    }
    const index = await staging.json<IndexBlob>("index.json");
    if (!Array.isArray(index?.manifests)) throw invalidArgument("invalid archive: bad index.json");
    const plans: PlannedImage[] = [];
    for (const desc of index.manifests) {
      const blobs: PlannedBlob[] = [];
      const found = await this.#planOciTarget(staging, desc, blobs, 0);
      plans.push({ ...found, names: namesOf(desc), target: descriptorOf(desc), blobs });
    }
    return plans;
  }

  /** Verifies `desc` (an index or a manifest) and what it references, adding the blobs. */
  async #planOciTarget(
    staging: Staging,
    desc: IndexEntry,
    blobs: PlannedBlob[],
    depth: number,
  ): Promise<Omit<PlannedImage, "names" | "target" | "blobs">> {
    if (depth > 4) throw invalidArgument("invalid archive: indexes nested too deep");
    const file = staging.blob(desc);
    const bytes = await staging.bytes(file);
    if (INDEX_TYPES.includes(desc.mediaType)) {
      const index = parseJson<IndexBlob>(bytes, desc.digest);
      if (!Array.isArray(index.manifests)) {
        throw invalidArgument(`invalid archive: index ${desc.digest} has no manifests`);
      }
      // Only the host platform's manifest is stored; archives of multi-platform images
      // usually hold just one platform's blobs.
      const host = hostPlatform();
      const candidates = index.manifests.filter((m) =>
        staging.has(`blobs/${m.digest?.replace(":", "/")}`) &&
        (!m.platform ||
          (m.platform.os === host.os && m.platform.architecture === host.architecture))
      );
      const chosen = candidates[0];
      if (!chosen) {
        throw invalidArgument(
          `invalid archive: index ${desc.digest} has no manifest for ${host.os}/${host.architecture}`,
        );
      }
      const found = await this.#planOciTarget(staging, chosen, blobs, depth + 1);
      const labels = {
        [`${LABEL_GC_CONTENT}.m.${index.manifests.indexOf(chosen)}`]: chosen.digest,
      };
      blobs.push({ desc: descriptorOf(desc), source: bytes, labels });
      return found;
    }
    if (!MANIFEST_TYPES.includes(desc.mediaType)) {
      throw invalidArgument(`invalid archive: unsupported media type ${desc.mediaType}`);
    }
    const manifest = parseJson<ManifestBlob>(bytes, desc.digest);
    if (!manifest.config || !Array.isArray(manifest.layers)) {
      throw invalidArgument(`invalid archive: manifest ${desc.digest} lacks config or layers`);
    }
    const configFile = staging.blob(manifest.config);
    const configBytes = await staging.bytes(configFile);
    const config = parseJson<DockerConfigBlob>(configBytes, manifest.config.digest);
    validateConfig(config, `config ${manifest.config.digest}`, manifest.layers.length);
    for (const [i, layer] of manifest.layers.entries()) {
      if (!isLayerType(layer.mediaType) || layer.mediaType.endsWith("+zstd")) {
        throw invalidArgument(`invalid archive: unsupported layer media type ${layer.mediaType}`);
      }
      const layerFile = staging.blob(layer);
      if (isGzipLayer(layer.mediaType) !== layerFile.gzip) {
        throw invalidArgument(`invalid archive: layer ${layer.digest} is not ${layer.mediaType}`);
      }
      const diffId = await staging.uncompressedDigest(layerFile);
      if (diffId !== config.rootfs.diff_ids[i]) {
        throw invalidArgument(
          `invalid archive: layer ${layer.digest} has diff ID ${diffId}, the config says ${
            config.rootfs.diff_ids[i]
          }`,
        );
      }
      blobs.push({
        desc: descriptorOf(layer),
        source: layerFile,
        labels: { [LABEL_UNCOMPRESSED]: diffId },
      });
    }
    blobs.push({ desc: descriptorOf(manifest.config), source: configBytes, labels: {} });
    blobs.push({ desc: descriptorOf(desc), source: bytes, labels: gcLabels(manifest) });
    return {
      manifest: descriptorOf(desc),
      layers: manifest.layers.map(descriptorOf),
      configDigest: manifest.config.digest,
      config,
    };
  }

  // --- import ---------------------------------------------------------------------------------

  /**
   * Makes a one-layer image of a rootfs tarball (tar or gzip) and returns its ID. `changes`
   * are Dockerfile instructions applied to the config (see {@link parseChanges}).
   */
  async import(stream: ReadableStream<Uint8Array>, options: ImportOptions = {}): Promise<string> {
    let name: string | undefined;
    if (options.ref !== undefined && options.ref !== "") name = targetName(options.ref);
    const platform = options.platform ? parsePlatform(options.platform) : hostPlatform();
    if (platform.os !== "linux") {
      throw invalidArgument(`operating system is not supported: ${platform.os}`);
    }
    const runConfig = parseChanges(options.changes ?? []);

    await using staging = await Staging.create(this.#tempDir);
    // Stored uncompressed: the blob digest is then the diff ID, and the layer is checked to be
    // a tar stream before anything is written to containerd.
    let layerFile: StagedFile;
    try {
      layerFile = await staging.add("layer.tar", await maybeGunzip(stream));
    } catch (err) {
      // DecompressionStream reports corrupt gzip as a TypeError.
      if (err instanceof TypeError) throw invalidArgument(`invalid gzip stream: ${err.message}`);
      throw err;
    }
    using check = await Deno.open(layerFile.tmp);
    for await (const entry of readTar(check.readable, { gunzip: false })) {
      // Reading the headers is the check (bodies are skipped), with Docker's breakout rule.
      checkLayerEntry(entry);
    }
    const layer: Descriptor = {
      mediaType: MediaType.dockerLayer,
      digest: layerFile.digest,
      size: layerFile.size,
    };
    const created = new Date().toISOString();
    const comment = options.message || "Imported from -";
    const config: DockerConfigBlob = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created,
      comment: options.message ?? "",
      config: runConfig,
      rootfs: { type: "layers", diff_ids: [layer.digest] },
      history: [{ created, comment }],
    };
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDesc: Descriptor = {
      mediaType: MediaType.dockerConfig,
      digest: sha256Digest(configBytes),
      size: configBytes.length,
    };
    const manifest: ManifestBlob = {
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: configDesc,
      layers: [layer],
    };
    const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
    const manifestDesc: Descriptor = {
      mediaType: MediaType.dockerManifest,
      digest: sha256Digest(manifestBytes),
      size: manifestBytes.length,
    };
    const plan: PlannedImage = {
      names: name ? [name] : [],
      target: manifestDesc,
      manifest: manifestDesc,
      layers: [layer],
      configDigest: configDesc.digest,
      config,
      blobs: [
        { desc: layer, source: layerFile, labels: { [LABEL_UNCOMPRESSED]: layer.digest } },
        { desc: configDesc, source: configBytes, labels: {} },
        { desc: manifestDesc, source: manifestBytes, labels: gcLabels(manifest) },
      ],
    };
    await this.#withLease(async (lease) => {
      for (const blob of plan.blobs) await this.#writeBlob(blob, lease);
      await this.#unpackArchived(plan, lease);
      this.#targets.set(manifestDesc.digest, {
        manifest: manifestDesc,
        layers: [layer],
        configDigest: configDesc.digest,
        config,
      });
      await this.#putRecord(name ?? `${DANGLING_PREFIX}${manifestDesc.digest}`, manifestDesc);
    });
    return configDesc.digest;
  }

  // --- pull -----------------------------------------------------------------------------------

  /**
   * Pulls an image from its registry (or a mirror of it) and names it: resolves the reference
   * to a manifest (choosing the host platform in an index), fetches the config, downloads the
   * missing layers concurrently while verifying each one's size and digest, unpacks them in
   * order, and only then records the image. Everything is written under a lease that is left
   * to expire when the pull fails, so that a second pull reuses the blobs already complete.
   * `onResolved` runs once the manifest is known (errors before it are the caller's to
   * report as a status; later ones arrive as messages).
   */
  async pull(s: string, options: PullOptions = {}): Promise<PullResult> {
    const ref = withDefaultTag(parseReference(s));
    const emit = options.onProgress ?? (() => {});
    const signal = options.signal;
    const session = this.#registry.session(ref.domain, ref.path, { auth: options.auth, signal });
    const tagOrDigest = ref.digest ?? ref.tag!;

    // 1. Resolve: the reference's manifest or index, then the platform's manifest.
    const top = await session.manifest(tagOrDigest);
    let index: { fetched: FetchedManifest; entry: IndexEntry; position: number } | undefined;
    let fetched = top;
    if (INDEX_TYPES.includes(top.mediaType)) {
      const list = parseRegistryJson<IndexBlob>(top.bytes, `index ${top.digest}`);
      const platform = options.platform ? parsePlatform(options.platform) : hostPlatform();
      const entry = selectManifest(list.manifests ?? [], platform);
      if (!entry) {
        throw notFound(
          `no matching manifest for ${formatPlatform(platform)} in the manifest list entries`,
        );
      }
      fetched = await session.manifest(entry.digest);
      if (fetched.bytes.length !== entry.size) {
        throw invalidArgument(
          `manifest ${entry.digest} is ${fetched.bytes.length} bytes, the index says ${entry.size}`,
        );
      }
      index = { fetched: top, entry, position: list.manifests.indexOf(entry) };
    }
    if (!MANIFEST_TYPES.includes(fetched.mediaType)) {
      throw invalidArgument(
        `${familiarName(ref)}: unsupported manifest media type ${fetched.mediaType}`,
      );
    }
    const manifest = parseRegistryJson<ManifestBlob>(fetched.bytes, `manifest ${fetched.digest}`);
    if (!manifest.config?.digest || !Array.isArray(manifest.layers)) {
      throw invalidArgument(`manifest ${fetched.digest} lacks a config or layers`);
    }
    for (const layer of manifest.layers) {
      if (!isLayerType(layer.mediaType) || layer.mediaType.endsWith("+zstd")) {
        throw invalidArgument(`unsupported layer media type ${layer.mediaType}`);
      }
      if (!/^sha256:[a-f0-9]{64}$/.test(layer.digest)) {
        throw invalidArgument(`unsupported layer digest ${layer.digest}`);
      }
    }
    options.onResolved?.();
    // Docker names the repository by its path in the registry: `library/busybox`.
    emit({ status: `Pulling from ${ref.path}`, id: tagOrDigest });

    const lease = await this.#client.leases.create({ expireSeconds: PULL_LEASE_SECONDS });
    let succeeded = false;
    try {
      // 2. The config: small, fetched whole and verified.
      const configBytes = await this.#hasContent(manifest.config.digest)
        ? await this.#client.content.readAll(manifest.config.digest)
        : await session.blobBytes(manifest.config.digest, manifest.config.size);
      const config = parseRegistryJson<DockerConfigBlob>(
        configBytes,
        `config ${manifest.config.digest}`,
      );
      const diffIds = config?.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) {
        throw invalidArgument(
          `config ${manifest.config.digest} lists ${
            diffIds?.length ?? 0
          } layers, the manifest ${manifest.layers.length}`,
        );
      }

      // 3. Layers: downloads run concurrently (bounded); unpacking follows in order.
      const sourceLabel = { [`${LABEL_DISTRIBUTION_SOURCE}.${ref.domain}`]: ref.path };
      const chain = chainIds(diffIds);
      for (const layer of manifest.layers) {
        emit({ status: "Pulling fs layer", progressDetail: {}, id: progressId(layer.digest) });
      }
      const abort = new AbortController();
      const onAbort = () => abort.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const limit = limiter(PULL_CONCURRENCY);
      const downloads = manifest.layers.map((layer, i) =>
        limit(() =>
          this.#download(session, layer, {
            lease,
            emit,
            labels: { [LABEL_UNCOMPRESSED]: diffIds[i]!, ...sourceLabel },
            signal: abort.signal,
          })
        )
      );
      // Every download is awaited (settled) before the lease can go: none is left running.
      const settled = Promise.allSettled(downloads);
      try {
        let parent: string | undefined;
        for (const [i, layer] of manifest.layers.entries()) {
          await downloads[i];
          const id = progressId(layer.digest);
          if (!(await this.#snapshotExists(chain[i]!))) {
            emit({ status: "Extracting", progressDetail: {}, id });
            await this.#applyLayer({
              layer: descriptorOf(layer),
              chainId: chain[i]!,
              diffId: diffIds[i]!,
              parent,
              lease: lease.id,
            });
          }
          emit({ status: "Pull complete", progressDetail: {}, id });
          parent = chain[i];
        }
      } catch (err) {
        abort.abort(err);
        throw err;
      } finally {
        await settled;
        signal?.removeEventListener("abort", onAbort);
      }

      // 4. Config, manifest and index, children first, with the GC labels that hold them.
      const top_ = chain[chain.length - 1];
      await this.#writeBlob({
        desc: descriptorOf(manifest.config),
        source: configBytes,
        labels: top_ ? { [`${LABEL_GC_SNAPSHOT}.${this.#snapshotter}`]: top_ } : {},
      }, lease.id);
      const manifestDesc: Descriptor = {
        mediaType: fetched.mediaType,
        digest: fetched.digest,
        size: fetched.bytes.length,
      };
      await this.#writeBlob(
        {
          desc: manifestDesc,
          source: fetched.bytes,
          labels: { ...gcLabels(manifest), ...sourceLabel },
        },
        lease.id,
      );
      let target = manifestDesc;
      if (index) {
        target = {
          mediaType: index.fetched.mediaType,
          digest: index.fetched.digest,
          size: index.fetched.bytes.length,
        };
        await this.#writeBlob({
          desc: target,
          source: index.fetched.bytes,
          labels: {
            [`${LABEL_GC_CONTENT}.m.${index.position}`]: index.entry.digest,
            ...sourceLabel,
          },
        }, lease.id);
      }
      this.#targets.set(target.digest, {
        manifest: manifestDesc,
        layers: manifest.layers.map(descriptorOf),
        configDigest: manifest.config.digest,
        config,
      });

      // 5. Names: the tag (when pulled by tag) and the digest form Docker lists.
      const name = formatReference(ref);
      const digestName = formatReference({ ...ref, tag: undefined, digest: top.digest });
      let upToDate = false;
      try {
        upToDate = (await this.#client.images.get(name)).target.digest === target.digest;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      await this.#putRecord(name, target);
      if (digestName !== name) await this.#putRecord(digestName, target);
      succeeded = true;
      emit({ status: `Digest: ${top.digest}` });
      emit({
        status: upToDate
          ? `Status: Image is up to date for ${familiarName(ref)}`
          : `Status: Downloaded newer image for ${familiarName(ref)}`,
      });
      return { name, digest: top.digest, id: manifest.config.digest };
    } finally {
      if (succeeded) {
        await this.#client.leases.delete(lease.id).catch((err) =>
          this.#log(`deleting lease ${lease.id}: ${messageOf(err)}`)
        );
      } else {
        // Kept until it expires: the complete blobs and layers of a failed pull are reused by
        // the next attempt instead of being collected.
        this.#log(`pull of ${s} failed; its lease ${lease.id} keeps what was complete`);
      }
    }
  }

  /**
   * Downloads one layer into the content store unless present, verifying size and digest as
   * the bytes stream through. Concurrent pulls of the same blob share one download.
   */
  #download(
    session: RegistrySession,
    layer: Descriptor,
    options: {
      lease: { id: string };
      emit: (msg: ProgressMessage) => void;
      labels: Record<string, string>;
      signal: AbortSignal;
    },
  ): Promise<void> {
    const running = this.#downloads.get(layer.digest);
    if (running) return running;
    const task = this.#downloadOnce(session, layer, options).finally(() =>
      this.#downloads.delete(layer.digest)
    );
    this.#downloads.set(layer.digest, task);
    return task;
  }

  async #downloadOnce(
    session: RegistrySession,
    layer: Descriptor,
    options: {
      lease: { id: string };
      emit: (msg: ProgressMessage) => void;
      labels: Record<string, string>;
      signal: AbortSignal;
    },
  ): Promise<void> {
    const { emit, signal } = options;
    const id = progressId(layer.digest);
    signal.throwIfAborted();
    if (await this.#hasContent(layer.digest)) {
      await this.#setLabels(layer, options.labels);
      emit({ status: "Already exists", progressDetail: {}, id });
      return;
    }
    const res = await session.blob(layer.digest);
    let received = 0;
    let reported = 0;
    const total = layer.size;
    const onPullBytes = this.#onPullBytes;
    // The digest is containerd's to check: its writer hashes what it stores and refuses a commit
    // that does not match `expected`. Hashing here too cost the daemon 0.7 s of CPU a GB.
    const counted = async function* (chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        received += chunk.length;
        onPullBytes(chunk.length);
        if (received > total) {
          throw invalidArgument(
            `blob ${layer.digest} is larger than the ${total} bytes its descriptor says`,
          );
        }
        // A message per 512 KiB is enough for a live bar without flooding the stream.
        if (received - reported >= 512 * 1024 || received === total) {
          reported = received;
          emit(progressMessage("Downloading", id, { current: received, total }));
        }
        yield chunk;
      }
      if (received !== total) {
        throw invalidArgument(
          `blob ${layer.digest} is truncated: ${received} of ${total} bytes arrived`,
        );
      }
      emit({ status: "Verifying Checksum", progressDetail: {}, id });
    };
    try {
      await this.#client.content.write(`pouch-pull-${layer.digest}`, counted(session.body(res)), {
        expected: layer.digest,
        size: layer.size,
        labels: options.labels,
        lease: options.lease.id,
        signal,
      });
    } catch (err) {
      // A refused commit: what arrived does not hash to the digest.
      if (!isConflict(err)) throw err;
      throw invalidArgument(
        `blob ${layer.digest} failed verification: the registry sent ${total} bytes that do ` +
          `not match that digest`,
        err,
      );
    }
    emit({ status: "Download complete", progressDetail: {}, id });
  }

  // --- push -----------------------------------------------------------------------------------

  /**
   * Pushes a named image to its registry: each blob the repository lacks is uploaded (or
   * mounted from another repository of the same registry that it came from), then the config,
   * then the manifest under the tag. Answers the manifest's digest and size.
   */
  async push(s: string, options: PushOptions = {}): Promise<PushResult> {
    const ref = withDefaultTag(parseReference(s));
    if (ref.tag === undefined) throw invalidArgument("push needs a tag, not a digest reference");
    const name = formatReference(ref);
    let record: ImageRecord;
    try {
      record = await this.#client.images.get(name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      throw notFound(
        `An image does not exist locally with the tag: ${familiarName({ ...ref, tag: undefined })}`,
      );
    }
    const emit = options.onProgress ?? (() => {});
    const info = await this.#targetInfo(record.target);
    const session = this.#registry.session(ref.domain, ref.path, {
      auth: options.auth,
      push: true,
      signal: options.signal,
    });
    options.onResolved?.();
    emit({
      status: `The push refers to repository [${familiarName({ ...ref, tag: undefined })}]`,
    });
    // Docker lists the layers top first.
    const layers = [...info.layers].reverse();
    for (const layer of layers) {
      emit({ status: "Preparing", progressDetail: {}, id: progressId(layer.digest) });
    }
    const limit = limiter(PULL_CONCURRENCY);
    const results = await Promise.allSettled(
      layers.map((layer) => limit(() => this.#pushBlob(session, layer, emit))),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    const configDesc: Descriptor = {
      mediaType: MediaType.dockerConfig,
      digest: info.configDigest,
      size: (await this.#client.content.info(info.configDigest)).size,
    };
    await this.#pushBlob(session, configDesc, undefined);
    const manifestBytes = await this.#client.content.readAll(info.manifest.digest);
    await session.putManifest(ref.tag, manifestBytes, info.manifest.mediaType);
    const result = { tag: ref.tag, digest: info.manifest.digest, size: manifestBytes.length };
    emit({ status: `${ref.tag}: digest: ${result.digest} size: ${result.size}` });
    emit({
      progressDetail: {},
      aux: { Tag: result.tag, Digest: result.digest, Size: result.size },
    });
    // The image now also comes from this repository: a later push elsewhere may mount from it.
    const digestName = formatReference({ ...ref, tag: undefined, digest: info.manifest.digest });
    await this.#putRecord(digestName, info.manifest).catch((err) =>
      this.#log(`recording ${digestName}: ${messageOf(err)}`)
    );
    return result;
  }

  /** Uploads one blob unless the repository has it; mounts it when it came from a sibling. */
  async #pushBlob(
    session: RegistrySession,
    desc: Descriptor,
    emit: ((msg: ProgressMessage) => void) | undefined,
  ): Promise<void> {
    const id = progressId(desc.digest);
    if (await session.hasBlob(desc.digest)) {
      emit?.({ status: "Layer already exists", progressDetail: {}, id });
      return;
    }
    const label = `${LABEL_DISTRIBUTION_SOURCE}.${session.domain}`;
    const info = await this.#client.content.info(desc.digest);
    const sources = (info.labels[label] ?? "").split(",").filter((r) =>
      r !== "" && r !== session.repository
    );
    let location: string | undefined;
    for (const from of sources.slice(0, 3)) {
      const answer = await session.startUpload({ digest: desc.digest, mountFrom: from });
      if (answer === "mounted") {
        emit?.({ status: `Mounted from ${from}`, progressDetail: {}, id });
        await this.#addSource(info, label, session.repository);
        return;
      }
      location = answer;
      break;
    }
    location ??= await session.startUpload();
    let sent = 0;
    let reported = 0;
    const chunks = this.#client.content.read(desc.digest);
    const body = ReadableStream.from((async function* () {
      for await (const chunk of chunks) {
        sent += chunk.length;
        if (sent - reported >= 512 * 1024 || sent === desc.size) {
          reported = sent;
          emit?.(progressMessage("Pushing", id, { current: sent, total: desc.size }));
        }
        yield chunk;
      }
    })());
    await session.upload(location, body, { digest: desc.digest, size: desc.size });
    emit?.({ status: "Pushed", progressDetail: {}, id });
    await this.#addSource(info, label, session.repository);
  }

  /** Adds `repository` to a blob's distribution source label (a comma-separated list). */
  async #addSource(info: ContentInfo, label: string, repository: string): Promise<void> {
    const repos = (info.labels[label] ?? "").split(",").filter((r) => r !== "");
    if (repos.includes(repository)) return;
    await this.#setLabels(info, { [label]: [...repos, repository].join(",") }, info.labels)
      .catch((err) => this.#log(`labelling ${info.digest}: ${messageOf(err)}`));
  }

  /** Checks credentials against a registry (`POST /auth`, `docker login`). */
  async login(auth: AuthConfig): Promise<void> {
    await this.#registry.login(auth);
  }

  // --- save -----------------------------------------------------------------------------------

  /**
   * A tarball of images in the format Docker 25+ saves and both `docker load` and `pouch load`
   * read: every blob under `blobs/sha256/`, an OCI `index.json` and `oci-layout`, and the
   * classic `manifest.json` and `repositories`. Layers are stored as they are in the content
   * store (compressed when pulled compressed). Unknown names fail before any byte is sent.
   */
  async save(names: string[]): Promise<ReadableStream<Uint8Array>> {
    if (names.length === 0) throw invalidArgument("save needs at least one image name");
    const groups = await this.#groups();
    const blobs = new Map<string, Descriptor>();
    const index: IndexEntry[] = [];
    const manifests: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const s of names) {
      const { group, name } = await this.#find(s, groups);
      const record = group.records.find((r) => r.name === name) ?? group.primary;
      const info = await this.#targetInfo(record.target);
      const tags = name !== undefined && parseReference(name).tag !== undefined
        ? [familiarName(name)]
        : [];
      const path = (digest: string) => `blobs/sha256/${digest.replace(/^sha256:/, "")}`;
      for (const layer of info.layers) blobs.set(layer.digest, layer);
      blobs.set(info.configDigest, {
        mediaType: MediaType.dockerConfig,
        digest: info.configDigest,
        size: 0,
      });
      blobs.set(info.manifest.digest, info.manifest);
      const annotations: Record<string, string> = {};
      if (name !== undefined && tags.length > 0) {
        annotations[ANNOTATION_IMAGE_NAME] = name;
        annotations[ANNOTATION_REF_NAME] = parseReference(name).tag!;
      }
      index.push({ ...info.manifest, annotations });
      manifests.push({
        Config: path(info.configDigest),
        RepoTags: tags,
        Layers: info.layers.map((l) => path(l.digest)),
      });
      for (const tag of tags) {
        const ref = parseReference(tag);
        const repo = familiarName({ ...ref, tag: undefined });
        const top = info.layers[info.layers.length - 1];
        (repositories[repo] ??= {})[ref.tag!] = top ? top.digest.replace(/^sha256:/, "") : "";
      }
    }
    const client = this.#client;
    const sizes = new Map<string, number>();
    for (const digest of blobs.keys()) sizes.set(digest, (await client.content.info(digest)).size);
    const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    async function* entries(): AsyncGenerator<TarInput> {
      yield { header: { name: "blobs/", type: "directory" } };
      yield { header: { name: "blobs/sha256/", type: "directory" } };
      for (const digest of blobs.keys()) {
        yield {
          header: { name: `blobs/sha256/${digest.slice(7)}`, size: sizes.get(digest)! },
          body: ReadableStream.from(client.content.read(digest)),
        };
      }
      yield {
        header: { name: "index.json" },
        body: json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: index }),
      };
      yield { header: { name: "manifest.json" }, body: json(manifests) };
      yield { header: { name: "oci-layout" }, body: json({ imageLayoutVersion: "1.0.0" }) };
      if (Object.keys(repositories).length > 0) {
        yield { header: { name: "repositories" }, body: json(repositories) };
      }
    }
    return tarStream(entries());
  }

  // --- queries --------------------------------------------------------------------------------

  /** Images in the shape of Docker's `GET /images/json`, newest first. */
  async list(options: ListOptions = {}): Promise<ImageSummary[]> {
    const groups = await this.#groups();
    const filters = options.filters ?? {};
    for (const key of Object.keys(filters)) {
      if (!["reference", "dangling", "label", "before", "since"].includes(key)) {
        throw invalidArgument(`invalid filter '${key}'`);
      }
    }
    const dangling = filters.dangling?.length
      ? parseBoolFilter("dangling", filters.dangling[filters.dangling.length - 1]!)
      : undefined;
    const patterns = (filters.reference ?? []).map(globToRegExp);
    const created = (g: ImageGroup) => Date.parse(g.info.config.created ?? "") || 0;
    const boundOf = async (ref: string) => {
      const group = await this.#find(ref, groups);
      return created(group.group);
    };
    const before = filters.before?.length ? await boundOf(filters.before[0]!) : undefined;
    const since = filters.since?.length ? await boundOf(filters.since[0]!) : undefined;

    const out: ImageSummary[] = [];
    for (const group of groups.values()) {
      const { repoTags, repoDigests } = namesOfGroup(group);
      const isDangling = repoTags.length === 0 && repoDigests.length === 0;
      if (dangling !== undefined && dangling !== isDangling) continue;
      if (before !== undefined && !(created(group) < before)) continue;
      if (since !== undefined && !(created(group) > since)) continue;
      const labels = group.info.config.config?.Labels ?? {};
      if (!(filters.label ?? []).every((l) => labelMatches(labels, l))) continue;
      let tags = repoTags;
      if (patterns.length > 0) {
        // Docker matches a pattern against the familiar name with and without its tag.
        tags = repoTags.filter((t) =>
          patterns.some((re) => re.test(t) || re.test(t.replace(/:[^:/]+$/, "")))
        );
        if (tags.length === 0) continue;
      }
      const size = await this.#size(group);
      out.push({
        Containers: -1,
        Created: Math.floor(created(group) / 1000),
        Id: group.id,
        Labels: labels,
        ParentId: "",
        RepoDigests: isDangling ? ["<none>@<none>"] : repoDigests,
        RepoTags: isDangling ? ["<none>:<none>"] : tags,
        SharedSize: -1,
        Size: size,
        VirtualSize: size,
      });
    }
    return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
  }

  /** An image in the shape of Docker's `GET /images/{name}/json`. */
  async inspect(nameOrId: string): Promise<ImageInspect> {
    const { group } = await this.#find(nameOrId);
    const { repoTags, repoDigests } = namesOfGroup(group);
    const config = group.info.config;
    const size = await this.#size(group);
    const lastTag = group.records
      .filter((r) => !isDanglingName(r.name))
      .map((r) => r.updatedAt ?? r.createdAt)
      .filter((d): d is Date => d !== undefined)
      .sort((a, b) => b.getTime() - a.getTime())[0];
    const inspect: ImageInspect = {
      Id: group.id,
      RepoTags: repoTags,
      RepoDigests: repoDigests,
      Parent: "",
      Comment: config.comment ?? "",
      Created: config.created ?? ZERO_TIME,
      Container: config.container ?? "",
      ContainerConfig: containerConfigOf(config.container_config),
      DockerVersion: config.docker_version ?? "",
      Author: config.author ?? "",
      Config: containerConfigOf(config.config),
      Architecture: config.architecture,
      Os: config.os,
      Size: size,
      VirtualSize: size,
      GraphDriver: { Name: "overlay2", Data: null },
      RootFS: { Type: "layers", Layers: [...config.rootfs.diff_ids] },
      Metadata: { LastTagTime: lastTag ? lastTag.toISOString() : ZERO_TIME },
    };
    if (config.variant) inspect.Variant = config.variant;
    return inspect;
  }

  /**
   * Finds an image by full or familiar name, `name@digest`, full ID (with or without
   * `sha256:`) or unique ID prefix, and makes sure its layers are unpacked (unless
   * `checkUnpacked` is false). Throws `No such image: NAME` (NotFound) otherwise.
   */
  async resolve(
    nameOrId: string,
    options: { checkUnpacked?: boolean } = {},
  ): Promise<ResolvedImage> {
    const { group, name } = await this.#find(nameOrId);
    const { repoTags, repoDigests } = namesOfGroup(group);
    const chain = chainIds(group.info.config.rootfs.diff_ids);
    const chainId = chain[chain.length - 1] ?? "";
    const checkUnpacked = options.checkUnpacked ?? true;
    if (checkUnpacked && chainId !== "" && !(await this.#snapshotExists(chainId))) {
      this.#log(`image ${shortId(group.id)}: unpacking missing layers`);
      await this.#withLease((lease) => this.#unpack(group.info, lease));
    }
    this.#configs.set(group.id, group.info.config);
    return {
      id: group.id,
      name: name ?? group.id,
      manifest: group.info.manifest,
      config: group.info.config,
      chainId,
      repoTags,
      repoDigests,
    };
  }

  /** The cached config of an image ID, if it was resolved before. */
  cachedConfig(id: string): ImageConfigBlob | undefined {
    return this.#configs.get(id);
  }

  // --- changes --------------------------------------------------------------------------------

  /** Gives the image `source` the name `target` (moving the name if it was elsewhere). */
  async tag(source: string, target: string): Promise<void> {
    const name = targetName(target);
    const { group } = await this.#find(source);
    await this.#putRecord(name, group.primary.target);
    // A named image needs no dangling record any more.
    for (const record of group.records) {
      if (isDanglingName(record.name)) await this.#deleteRecord(record.name, false);
    }
  }

  /**
   * Removes an image name or an image, with Docker's rules: removing a name untags it and
   * deletes the image with its last name; removing by ID needs `force` when more than one tag
   * points at it; removing the last name of, or the ID of, an image a container uses needs
   * `force`. Returns Docker's `Untagged`/`Deleted` items.
   */
  async remove(nameOrId: string, options: RemoveOptions = {}): Promise<ImageDeleteItem[]> {
    const force = options.force ?? false;
    const { group, name } = await this.#find(nameOrId);
    const id = group.id;
    const named = group.records.filter((r) => !isDanglingName(r.name)).map((r) => r.name);
    const container = options.isInUse?.(id);
    const dangling = group.records.filter((r) => isDanglingName(r.name)).map((r) => r.name);

    let untag: string[];
    if (name !== undefined) {
      // By name: untag; delete the image only when that was its last name.
      if (!force && container && isSingleReference(named)) {
        throw conflict(
          `conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${
            shortId(container)
          } is using its referenced image ${shortId(id)}`,
        );
      }
      // Docker: when the last tag of a repository goes, that repository's digest names
      // (`repo@sha256:...`, recorded by pulls and pushes) go with it.
      const goes = [name, ...sameRepoDigestNames(name, named)];
      if (named.some((n) => !goes.includes(n))) {
        for (const n of goes) await this.#deleteRecord(n, false);
        return goes.map((n) => ({ Untagged: familiarName(n) }));
      }
      untag = goes;
    } else {
      if (!force) {
        if (named.length > 0 && !isSingleReference(named)) {
          throw conflict(
            `conflict: unable to delete ${
              shortId(id)
            } (must be forced) - image is referenced in multiple repositories`,
          );
        }
        if (container) {
          throw conflict(
            `conflict: unable to delete ${
              shortId(id)
            } (must be forced) - image is being used by stopped container ${shortId(container)}`,
          );
        }
      }
      untag = named;
    }

    // The last name goes: delete the image. The last record delete is synchronous, so
    // containerd's GC reclaims the blobs and snapshots that nothing else references.
    const doomed = [...untag, ...dangling];
    for (const [i, record] of doomed.entries()) {
      await this.#deleteRecord(record, i === doomed.length - 1);
    }
    this.#configs.delete(id);
    this.#sizes.delete(id);
    for (const record of group.records) this.#targets.delete(record.target.digest);
    return [...untag.map((n) => ({ Untagged: familiarName(n) })), { Deleted: id }];
  }

  // --- internals: lookup ------------------------------------------------------------------------

  /** Reads (and caches) what a target descriptor resolves to. */
  async #targetInfo(target: Descriptor): Promise<TargetInfo> {
    const cached = this.#targets.get(target.digest);
    if (cached) return cached;
    let desc = target;
    for (let depth = 0; INDEX_TYPES.includes(desc.mediaType); depth++) {
      if (depth > 4) throw invalidArgument(`index ${target.digest} nested too deep`);
      const index = parseJson<IndexBlob>(
        await this.#client.content.readAll(desc.digest),
        desc.digest,
      );
      const host = hostPlatform();
      let chosen: IndexEntry | undefined;
      for (const m of index.manifests ?? []) {
        if (
          m.platform && (m.platform.os !== host.os || m.platform.architecture !== host.architecture)
        ) {
          continue;
        }
        if (await this.#hasContent(m.digest)) {
          chosen = m;
          break;
        }
      }
      if (!chosen) {
        throw notFound(`no manifest for ${host.os}/${host.architecture} in ${target.digest}`);
      }
      desc = chosen;
    }
    const manifest = parseJson<ManifestBlob>(
      await this.#client.content.readAll(desc.digest),
      desc.digest,
    );
    const config = parseJson<DockerConfigBlob>(
      await this.#client.content.readAll(manifest.config.digest),
      manifest.config.digest,
    );
    const info: TargetInfo = {
      manifest: descriptorOf(desc),
      layers: manifest.layers.map(descriptorOf),
      configDigest: manifest.config.digest,
      config,
    };
    this.#targets.set(target.digest, info);
    return info;
  }

  async #hasContent(digest: string): Promise<boolean> {
    try {
      await this.#client.content.info(digest);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** All images, grouped by ID. Records whose content is unreadable are skipped. */
  async #groups(): Promise<Map<string, ImageGroup>> {
    const groups = new Map<string, ImageGroup>();
    for (const record of await this.#listRecords()) {
      let info: TargetInfo;
      try {
        info = await this.#targetInfo(record.target);
      } catch (err) {
        this.#log(`image ${record.name}: skipped, its content is unreadable: ${messageOf(err)}`);
        continue;
      }
      const id = info.configDigest;
      const group = groups.get(id);
      if (!group) {
        groups.set(id, { id, records: [record], info, primary: record });
        continue;
      }
      group.records.push(record);
      if (isDanglingName(group.primary.name) && !isDanglingName(record.name)) {
        group.primary = record;
        group.info = info;
      }
    }
    return groups;
  }

  /**
   * Finds the image `s` names. `name` is the normalised record name when `s` is a name (not
   * an ID), undefined when `s` was taken as an ID.
   */
  async #find(
    s: string,
    known?: Map<string, ImageGroup>,
  ): Promise<{ group: ImageGroup; name?: string }> {
    const groups = known ?? await this.#groups();
    const ref = tryParseReference(s);
    if (ref) {
      const name = formatReference(withDefaultTag(ref));
      for (const group of groups.values()) {
        if (group.records.some((r) => r.name === name)) return { group, name };
      }
      // `name@digest` also finds an image of that repository whose manifest has the digest.
      if (ref.digest !== undefined) {
        const repo = repositoryOf(ref);
        for (const group of groups.values()) {
          const match = group.records.find((r) =>
            !isDanglingName(r.name) && r.target.digest === ref.digest &&
            repositoryOf(parseReference(r.name)) === repo
          );
          if (match) return { group };
        }
      }
    }
    // An ID or a unique prefix of one, as Docker accepts after names.
    const hex = s.replace(/^sha256:/, "");
    if (/^[a-f0-9]{1,64}$/.test(hex)) {
      const matches = [...groups.values()].filter((g) => g.id.slice(7).startsWith(hex));
      if (matches.length === 1) return { group: matches[0]! };
    }
    // Neither a name nor an ID: say why the reference is malformed rather than "no such image".
    if (!ref) parseReference(s);
    throw notFound(`No such image: ${s}`);
  }

  // --- internals: writing ----------------------------------------------------------------------

  /** Runs `fn` under a fresh lease, deleted afterwards (GC then reclaims what is unreferenced). */
  async #withLease<T>(fn: (lease: string) => Promise<T>): Promise<T> {
    const { id } = await this.#client.leases.create({ expireSeconds: LEASE_EXPIRY_SECONDS });
    try {
      return await fn(id);
    } finally {
      try {
        await this.#client.leases.delete(id);
      } catch (err) {
        this.#log(`deleting lease ${id}: ${messageOf(err)}`);
      }
    }
  }

  /** Writes a blob unless present, and makes sure it carries `labels`. */
  /** Writes a blob into containerd; `onBytes` hears how much was written, every 512 KiB. */
  async #writeBlob(
    blob: PlannedBlob,
    lease: string,
    onBytes?: (written: number) => void,
  ): Promise<void> {
    const { desc, source, labels } = blob;
    let existing: Record<string, string> | undefined;
    try {
      existing = (await this.#client.content.info(desc.digest)).labels;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    // Written even when present: for a blob that exists, containerd only adds it to the lease
    // (and answers ALREADY_EXISTS), which keeps the garbage collector from taking a blob that
    // nothing referenced yet (left by an image removed a moment ago) before our manifest does.
    const chunks = source instanceof Uint8Array ? source : fileChunks(source.tmp);
    const data = onBytes && !(chunks instanceof Uint8Array) ? countBytes(chunks, onBytes) : chunks;
    await this.#client.content.write(`pouch-${desc.digest}`, data, {
      expected: desc.digest,
      size: desc.size,
      labels,
      lease,
    });
    // The blob was there already (another image shares it): the write did not set labels.
    if (existing !== undefined) await this.#setLabels(desc, labels, existing);
  }

  async #setLabels(
    desc: { digest: string; size: number },
    labels: Record<string, string>,
    existing?: Record<string, string>,
  ): Promise<void> {
    const current = existing ?? (await this.#client.content.info(desc.digest)).labels;
    const missing = Object.keys(labels).filter((k) => current[k] !== labels[k]);
    if (missing.length === 0) return;
    await this.#client.content.update(
      { digest: desc.digest, size: desc.size, labels: { ...current, ...labels } },
      missing.map((k) => `labels.${k}`),
    );
  }

  async #snapshotExists(key: string): Promise<boolean> {
    try {
      await this.#client.snapshots.stat(this.#snapshotter, key);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Unpacks the layers into committed snapshots named by chain ID (skipping those present)
   * and labels the config so GC keeps the top snapshot while the config lives.
   */
  async #unpack(
    image: { layers: Descriptor[]; config: DockerConfigBlob; configDigest: string },
    lease: string,
  ): Promise<string> {
    const diffIds = image.config.rootfs.diff_ids;
    const chain = chainIds(diffIds);
    let parent: string | undefined;
    for (const [i, layer] of image.layers.entries()) {
      const chainId = chain[i]!;
      if (await this.#snapshotExists(chainId)) {
        // A present snapshot may be unreferenced (its image was just removed): the lease keeps
        // the garbage collector off it until this image's config references it.
        await this.#client.leases.addResource(lease, {
          id: chainId,
          type: `snapshots/${this.#snapshotter}`,
        });
      } else {
        await this.#applyLayer({ layer, chainId, diffId: diffIds[i]!, parent, lease });
      }
      parent = chainId;
    }
    const top = chain[chain.length - 1];
    if (top !== undefined) {
      const info = await this.#client.content.info(image.configDigest);
      await this.#setLabels(
        info,
        { [`${LABEL_GC_SNAPSHOT}.${this.#snapshotter}`]: top },
        info.labels,
      );
    }
    return top ?? "";
  }

  /**
   * Unpacks an image that came in an archive: a layer containerd cannot apply (digests were
   * verified, so its tar stream is malformed) is the archive's fault, not the daemon's.
   */
  async #unpackArchived(plan: PlannedImage, lease: string): Promise<void> {
    try {
      await this.#unpack(plan, lease);
    } catch (err) {
      if (kindOf(err) !== "System" && !isInvalidArgument(err)) throw err;
      throw invalidArgument(`invalid archive: failed to unpack a layer: ${messageOf(err)}`, err);
    }
  }

  /** prepare -> apply -> commit one layer; the active snapshot is removed on failure. */
  async #applyLayer(
    step: { layer: Descriptor; chainId: string; diffId: string; parent?: string; lease: string },
  ): Promise<void> {
    const { layer, chainId, diffId, parent, lease } = step;
    const key = `extract-${crypto.randomUUID()}-${chainId}`;
    const mounts = await this.#client.snapshots.prepare(this.#snapshotter, key, { parent, lease });
    try {
      const applied = await this.#client.diff.apply(layer, mounts, { lease });
      if (applied.digest !== diffId) {
        throw invalidArgument(
          `layer ${layer.digest} unpacked to ${applied.digest}, the config says ${diffId}`,
        );
      }
      await this.#client.snapshots.commit(this.#snapshotter, chainId, { key, lease });
    } catch (err) {
      await this.#client.snapshots.remove(this.#snapshotter, key).catch((e) =>
        this.#log(`removing snapshot ${key}: ${messageOf(e)}`)
      );
      // Another unpack of the same layer committed first: its snapshot is as good as ours.
      if (isAlreadyExists(err)) return;
      throw err;
    }
  }

  /**
   * Points the record `name` at `target`, creating it if needed. When the name moves away
   * from an image that has no other name, that image keeps a dangling record (Docker keeps it
   * as `<none>:<none>`).
   */
  async #putRecord(name: string, target: Descriptor, progress?: (msg: string) => void) {
    try {
      await this.#writeRecord(name, target, progress);
    } finally {
      // The event says so too, but later: the next lookup must see the change.
      this.#forgetRecords();
    }
  }

  async #writeRecord(name: string, target: Descriptor, progress?: (msg: string) => void) {
    let previous: ImageRecord | undefined;
    try {
      previous = await this.#client.images.get(name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (previous === undefined) {
      try {
        await this.#client.images.create({ name, target });
        return;
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        previous = await this.#client.images.get(name);
      }
    }
    if (previous.target.digest === target.digest) return;
    const oldInfo = await this.#targetInfo(previous.target).catch(() => undefined);
    const newInfo = await this.#targetInfo(target);
    await this.#client.images.update({ name, target }, ["target"]);
    if (oldInfo && oldInfo.configDigest !== newInfo.configDigest && !isDanglingName(name)) {
      const groups = await this.#groups();
      if (!groups.has(oldInfo.configDigest)) {
        progress?.(
          `The image ${
            familiarName(name)
          } already exists, renaming the old one with ID ${oldInfo.configDigest} to empty string`,
        );
        await this.#client.images.create({
          name: `${DANGLING_PREFIX}${previous.target.digest}`,
          target: previous.target,
        }).catch((err) => {
          if (!isAlreadyExists(err)) throw err;
        });
      }
    }
  }

  async #deleteRecord(name: string, sync: boolean): Promise<void> {
    try {
      await this.#client.images.delete(name, { sync });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    } finally {
      this.#forgetRecords();
    }
  }

  /** Disk usage of the image's layers (the committed snapshots), cached by ID. */
  async #size(group: ImageGroup): Promise<number> {
    const cached = this.#sizes.get(group.id);
    if (cached !== undefined) return cached;
    let size = 0;
    try {
      for (const chainId of chainIds(group.info.config.rootfs.diff_ids)) {
        size += (await this.#client.snapshots.usage(this.#snapshotter, chainId)).size;
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Not unpacked: the blobs' size is the best estimate, and is not cached.
      return group.info.layers.reduce((n, l) => n + l.size, 0);
    }
    this.#sizes.set(group.id, size);
    return size;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers of the manager

/**
 * The entry of an index to pull for `platform`: same OS and architecture, the same variant
 * when both name one (an entry without a variant fits any), never an attestation manifest
 * (`unknown/unknown`). Entries without a platform are taken only when nothing matches.
 */
export function selectManifest(
  entries: IndexEntry[],
  platform: { os: string; architecture: string; variant?: string },
): IndexEntry | undefined {
  const candidates = entries.filter((e) =>
    MANIFEST_TYPES.includes(e.mediaType) && e.platform !== undefined &&
    e.platform.os === platform.os && e.platform.architecture === platform.architecture &&
    (!platform.variant || !e.platform.variant || e.platform.variant === platform.variant)
  );
  // An exact variant match beats an entry that names none.
  const exact = candidates.find((e) => e.platform?.variant === platform.variant);
  return exact ?? candidates[0] ??
    entries.find((e) => MANIFEST_TYPES.includes(e.mediaType) && e.platform === undefined);
}

/** `linux/amd64`, `linux/arm/v7`. */
function formatPlatform(p: { os: string; architecture: string; variant?: string }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Parses JSON a registry sent; a registry's garbage is an InvalidArgument error. */
function parseRegistryJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw invalidArgument(`${what} from the registry is not valid JSON`, err);
  }
}

/** Runs at most `n` of the tasks given to the returned function at once, in call order. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= n) await new Promise<void>((resolve) => queue.push(resolve));
    running++;
    try {
      return await task();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}

/** A descriptor without fields (platform, urls) containerd's image target does not take. */
function descriptorOf(desc: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (desc.annotations && Object.keys(desc.annotations).length > 0) {
    out.annotations = desc.annotations;
  }
  return out;
}

/**
 * The names an OCI index entry gives its image: containerd's full-name annotation, else the
 * OCI ref name when it is a full reference (a bare tag like `latest` names no repository).
 */
function namesOf(desc: IndexEntry): string[] {
  const full = desc.annotations?.[ANNOTATION_IMAGE_NAME];
  const refName = desc.annotations?.[ANNOTATION_REF_NAME];
  for (const candidate of [full, refName]) {
    if (!candidate) continue;
    if (candidate === refName && !/[:/@]/.test(candidate)) continue;
    try {
      return [normalizeReference(candidate)];
    } catch (err) {
      throw invalidArgument(`invalid archive: bad image name ${JSON.stringify(candidate)}`, err);
    }
  }
  return [];
}

/** Checks `<hex>.json`, `<hex>.tar` and `blobs/sha256/<hex>` names against the content. */
function checkAddressedName(path: string, digest: string): void {
  const m = /^(?:blobs\/sha256\/([a-f0-9]{64})|([a-f0-9]{64})\.json)$/.exec(cleanPath(path));
  const hex = m?.[1] ?? m?.[2];
  if (hex !== undefined && `sha256:${hex}` !== digest) {
    throw invalidArgument(`invalid archive: ${path} has digest ${digest}`);
  }
}

/** The normalised name `s` gives for a new tag; InvalidArgument when it cannot be one. */
function targetName(s: string): string {
  const ref: Reference = parseReference(s);
  if (ref.digest !== undefined) {
    throw invalidArgument("refusing to create a tag with a digest reference");
  }
  return formatReference(withDefaultTag(ref));
}

/**
 * Docker's "single reference" test: exactly one tag, plus any digest names of that same
 * repository. Only then does removing the name (or the ID) take the image's last name away.
 */
function isSingleReference(names: string[]): boolean {
  if (names.length <= 1) return names.length === 1;
  const refs = names.map((n) => parseReference(n));
  const tagged = refs.filter((r) => r.digest === undefined);
  if (tagged.length > 1) return false;
  const single = tagged[0] ?? refs[0]!;
  const digestRepos = new Set(refs.filter((r) => r.digest !== undefined).map(repositoryOf));
  return digestRepos.size === 1 && digestRepos.has(repositoryOf(single));
}

/**
 * The digest names of `name`'s repository among `names`, when `name` is a tag and no other tag
 * of that repository is among them.
 */
function sameRepoDigestNames(name: string, names: string[]): string[] {
  const ref = parseReference(name);
  if (ref.digest !== undefined) return [];
  const repo = repositoryOf(ref);
  const others = names.map((n) => ({ n, r: parseReference(n) })).filter(({ n, r }) =>
    n !== name && repositoryOf(r) === repo
  );
  if (others.some(({ r }) => r.digest === undefined)) return [];
  return others.map(({ n }) => n);
}

function namesOfGroup(group: ImageGroup): { repoTags: string[]; repoDigests: string[] } {
  const repoTags: string[] = [];
  const repoDigests: string[] = [];
  for (const record of group.records) {
    if (isDanglingName(record.name)) continue;
    const ref = tryParseReference(record.name);
    if (!ref) continue;
    if (ref.tag !== undefined) repoTags.push(familiarName({ ...ref, digest: undefined }));
    if (ref.digest !== undefined) {
      repoDigests.push(familiarName({ ...ref, tag: undefined }));
    }
  }
  return { repoTags: repoTags.sort(), repoDigests: repoDigests.sort() };
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

/** Passes chunks through, telling `report` the running total every 512 KiB and at the end. */
async function* countBytes(
  chunks: AsyncIterable<Uint8Array>,
  report: (written: number) => void,
): AsyncIterable<Uint8Array> {
  let written = 0;
  let reported = 0;
  for await (const chunk of chunks) {
    written += chunk.length;
    if (written - reported >= 512 * 1024) {
      reported = written;
      report(written);
    }
    yield chunk;
  }
  if (written !== reported) report(written);
}

async function* fileChunks(path: string): AsyncIterable<Uint8Array> {
  using file = await Deno.open(path);
  for await (const chunk of file.readable) yield chunk;
}

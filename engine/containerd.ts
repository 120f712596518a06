/**
 * The containerd client: one module that speaks containerd 1.6's gRPC API over its unix socket,
 * sets the namespace header in one place, converts every gRPC error into the engine's error
 * kinds (`errors.ts`) and exposes typed services. The engine codes against {@link Containerd};
 * unit tests may use an in-memory fake of it, integration tests use the real containerd.
 *
 * @module
 */

import { conflict, isAlreadyExists, systemError } from "./errors.ts";
import { type DuplexCall, FRAME_HEADER, GrpcChannel } from "./grpc_client.ts";
import { fromGrpcError } from "./grpc_errors.ts";
import { concatBytes } from "./logs.ts";
import { descriptors } from "./proto/descriptors.ts";
import { ProtoSchema } from "./protobuf.ts";

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A mount as containerd describes it (snapshots, task rootfs). */
export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** containerd's record of a container (metadata only; the process is a task). */
export interface ContainerRecord {
  id: string;
  labels?: Record<string, string>;
  image?: string;
  /** Runtime name, e.g. `io.containerd.runc.v2`, with its options. */
  runtime: { name: string; options?: RuncOptions };
  /** The OCI runtime spec, sent as JSON inside a protobuf Any. */
  spec: unknown;
  snapshotter?: string;
  snapshotKey?: string;
  createdAt?: Date;
  updatedAt?: Date;
  extensions?: Record<string, unknown>;
}

/** Options of the runc v2 shim (`containerd.runc.v1.Options`). */
export interface RuncOptions {
  binaryName?: string;
  root?: string;
  systemdCgroup?: boolean;
  noPivotRoot?: boolean;
}

/** A task's or process's state. */
export type ProcessStatus = "unknown" | "created" | "running" | "stopped" | "paused" | "pausing";

/** What containerd says of a task or exec process. */
export interface ProcessInfo {
  id: string;
  containerId: string;
  pid: number;
  status: ProcessStatus;
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
  exitStatus: number;
  exitedAt?: Date;
}

/** An exit as reported by `Tasks.Wait`, `Tasks.Delete` or a `/tasks/exit` event. */
export interface ExitInfo {
  exitStatus: number;
  exitedAt: Date;
  pid?: number;
}

/** Standard streams of a task or exec: paths (FIFOs) or `file://`/`binary://` URIs. */
export interface Stdio {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
}

/** An image record in containerd's image store. */
export interface ImageRecord {
  name: string;
  labels?: Record<string, string>;
  target: Descriptor;
  createdAt?: Date;
  updatedAt?: Date;
}

/** Metadata of a blob in the content store. */
export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt?: Date;
  updatedAt?: Date;
}

/** A snapshot's metadata. */
export interface SnapshotInfo {
  name: string;
  parent?: string;
  kind: "unknown" | "view" | "active" | "committed";
  labels: Record<string, string>;
  createdAt?: Date;
  updatedAt?: Date;
}

/** A decoded event from containerd's event stream. */
export interface ContainerdEvent {
  timestamp: Date;
  namespace: string;
  topic: string;
  /** The decoded event payload for the topics the engine knows (see the implementation). */
  event: Record<string, unknown>;
}

/** Per-call options: a lease that protects the objects the call creates from GC. */
export interface CallOptions {
  lease?: string;
  signal?: AbortSignal;
}

/** The containerd services the engine uses. Every method rejects with an `EngineError`. */
export interface Containerd {
  /** The containerd namespace every call is made in. */
  readonly namespace: string;
  /** containerd's version and revision. */
  version(): Promise<{ version: string; revision: string }>;
  /** Closes the channel. */
  close(): void;

  namespaces: {
    /** Creates the namespace; succeeds if it already exists. */
    ensure(name: string): Promise<void>;
  };

  containers: {
    create(container: ContainerRecord): Promise<ContainerRecord>;
    get(id: string): Promise<ContainerRecord>;
    list(filters?: string[]): Promise<ContainerRecord[]>;
    /** Replaces the fields named in `fieldPaths` (e.g. `spec`, `labels`, `image`). */
    update(container: ContainerRecord, fieldPaths: string[]): Promise<ContainerRecord>;
    delete(id: string): Promise<void>;
  };

  tasks: {
    create(
      containerId: string,
      options: Stdio & { rootfs: Mount[]; runtimePath?: string },
    ): Promise<{ pid: number }>;
    start(containerId: string, execId?: string): Promise<{ pid: number }>;
    /** Deletes the task (or exec process with `execId`) and returns its exit. */
    delete(containerId: string, execId?: string): Promise<ExitInfo>;
    get(containerId: string, execId?: string): Promise<ProcessInfo>;
    list(filter?: string): Promise<ProcessInfo[]>;
    kill(
      containerId: string,
      signal: number,
      options?: { all?: boolean; execId?: string },
    ): Promise<void>;
    /** Adds an exec process; `spec` is an OCI `Process` object sent as JSON in an Any. */
    exec(
      containerId: string,
      execId: string,
      options: Stdio & { spec: unknown },
    ): Promise<void>;
    resizePty(
      containerId: string,
      size: { width: number; height: number; execId?: string },
    ): Promise<void>;
    closeIO(containerId: string, options?: { execId?: string; stdin?: boolean }): Promise<void>;
    pause(containerId: string): Promise<void>;
    resume(containerId: string): Promise<void>;
    pids(containerId: string): Promise<number[]>;
    /** Resolves when the process exits (a long-running call); aborts with `options.signal`. */
    wait(
      containerId: string,
      options?: { execId?: string; signal?: AbortSignal },
    ): Promise<ExitInfo>;
    /** Updates the task's resources (an OCI `LinuxResources` object). */
    update(containerId: string, resources: unknown): Promise<void>;
    /** Raw cgroup metrics as containerd returns them (`io.containerd.cgroups.v1.Metrics`). */
    metrics(containerIds: string[]): Promise<Array<{ id: string; data: unknown }>>;
  };

  snapshots: {
    prepare(
      snapshotter: string,
      key: string,
      options?: CallOptions & { parent?: string; labels?: Record<string, string> },
    ): Promise<Mount[]>;
    view(
      snapshotter: string,
      key: string,
      options?: CallOptions & { parent?: string; labels?: Record<string, string> },
    ): Promise<Mount[]>;
    mounts(snapshotter: string, key: string): Promise<Mount[]>;
    commit(
      snapshotter: string,
      name: string,
      options: CallOptions & { key: string; labels?: Record<string, string> },
    ): Promise<void>;
    remove(snapshotter: string, key: string): Promise<void>;
    stat(snapshotter: string, key: string): Promise<SnapshotInfo>;
    list(snapshotter: string): Promise<SnapshotInfo[]>;
    /** Disk usage of a snapshot in bytes and inodes. */
    usage(snapshotter: string, key: string): Promise<{ size: number; inodes: number }>;
  };

  content: {
    info(digest: string): Promise<ContentInfo>;
    /** Replaces the labels of a blob (field paths `labels.KEY`, or all labels when omitted). */
    update(info: ContentInfo, fieldPaths?: string[]): Promise<ContentInfo>;
    list(filters?: string[]): Promise<ContentInfo[]>;
    delete(digest: string): Promise<void>;
    /** Streams a blob in chunks. */
    read(digest: string, options?: { offset?: number; size?: number }): AsyncIterable<Uint8Array>;
    /** Reads a whole (small) blob. */
    readAll(digest: string): Promise<Uint8Array>;
    /**
     * Writes a blob under `ref` and commits it with the expected digest and size; succeeds
     * without writing when the blob already exists. Verifies the digest.
     */
    write(
      ref: string,
      data: Uint8Array | AsyncIterable<Uint8Array>,
      options: CallOptions & {
        expected: string;
        size: number;
        labels?: Record<string, string>;
      },
    ): Promise<void>;
  };

  images: {
    get(name: string): Promise<ImageRecord>;
    list(filters?: string[]): Promise<ImageRecord[]>;
    create(image: ImageRecord, options?: CallOptions): Promise<ImageRecord>;
    update(image: ImageRecord, fieldPaths?: string[]): Promise<ImageRecord>;
    delete(name: string, options?: { sync?: boolean }): Promise<void>;
  };

  diff: {
    /** Applies the layer blob `layer` onto `mounts` and returns the applied (uncompressed) descriptor. */
    apply(layer: Descriptor, mounts: Mount[], options?: CallOptions): Promise<Descriptor>;
  };

  leases: {
    create(
      options?: { id?: string; labels?: Record<string, string>; expireSeconds?: number },
    ): Promise<{ id: string }>;
    delete(id: string, options?: { sync?: boolean }): Promise<void>;
    /**
     * Puts an existing object under the lease (`type` as containerd names it: `content`,
     * `snapshots/overlayfs`), so that the garbage collector keeps it while the lease lives.
     */
    addResource(id: string, resource: { id: string; type: string }): Promise<void>;
    /** Takes an object out of the lease (it stays if something else references it). */
    deleteResource(id: string, resource: { id: string; type: string }): Promise<void>;
  };

  events: {
    /**
     * Subscribes to events matching `filters` (containerd filter syntax, e.g.
     * `topic=="/tasks/exit"`). The iterable ends when `signal` aborts.
     */
    subscribe(filters: string[], signal: AbortSignal): AsyncIterable<ContainerdEvent>;
  };
}

// ---------------------------------------------------------------------------------------------
// Implementation: gRPC over containerd's unix socket.
// ---------------------------------------------------------------------------------------------

/** Options of {@link connectContainerd}. */
export interface ConnectOptions {
  /** The containerd namespace of every call; `default` when omitted. */
  namespace?: string;
  /** Told of every unary round trip (`service` is the short name, `Tasks`), for metrics. */
  onCall?: (call: { service: string; method: string }, failed: boolean) => void;
}

/**
 * Connects to containerd at `address` (a socket path or a `unix://` URI) over one gRPC channel.
 * The connection is made lazily on the first call; `close()` ends it.
 *
 * Event subscriptions are scoped to the client's namespace: every filter given to
 * `events.subscribe` is joined with `namespace==<namespace>`.
 */
export function connectContainerd(address: string, options: ConnectOptions = {}): Containerd {
  const connection = new Connection(address, options.namespace ?? "default", options.onCall);
  return {
    namespace: connection.namespace,
    version: () => version(connection),
    close: () => connection.close(),
    namespaces: namespacesService(connection),
    containers: containersService(connection),
    tasks: tasksService(connection),
    snapshots: snapshotsService(connection),
    content: contentService(connection),
    images: imagesService(connection),
    diff: diffService(connection),
    leases: leasesService(connection),
    events: eventsService(connection),
  };
}

// --- protocol definitions -----------------------------------------------------------------------

const SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options";
const CGROUPS_V1_METRICS_TYPE_URL = "io.containerd.cgroups.v1.Metrics";
/** Extensions pouch stores itself are JSON under this type URL. */
const JSON_EXTENSION_TYPE_URL = "types.pouch.io/json";

/** The payloads of events this client decodes, by type URL. */
const EVENT_TYPES = [
  "containerd.events.TaskCreate",
  "containerd.events.TaskStart",
  "containerd.events.TaskDelete",
  "containerd.events.TaskExit",
  "containerd.events.TaskOOM",
  "containerd.events.TaskExecAdded",
  "containerd.events.TaskExecStarted",
  "containerd.events.TaskPaused",
  "containerd.events.TaskResumed",
  "containerd.events.TaskCheckpointed",
  "containerd.events.ContainerCreate",
  "containerd.events.ContainerUpdate",
  "containerd.events.ContainerDelete",
  "containerd.events.SnapshotPrepare",
  "containerd.events.SnapshotCommit",
  "containerd.events.SnapshotRemove",
  "containerd.services.images.v1.ImageCreate",
  "containerd.services.images.v1.ImageUpdate",
  "containerd.services.images.v1.ImageDelete",
];

let protocol: ProtoSchema | undefined;

/**
 * The message definitions, compiled once per process from the embedded descriptors (generated
 * from `./proto/*.proto` by `deno task proto`). They are a module rather than files read at run
 * time so that the single-file build carries them. Decoded messages have every field set,
 * 64-bit integers as numbers and enums as names.
 */
function schema(): ProtoSchema {
  return protocol ??= new ProtoSchema(descriptors);
}

/** Encodes `object` as the protobuf message `typeName` of the loaded definitions. */
function encodeMessage(typeName: string, object: Record<string, unknown>): Uint8Array {
  return schema().encode(typeName, object);
}

/** Decodes `bytes` as the protobuf message `typeName` into a plain object. */
function decodeMessage(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  return schema().decode(typeName, bytes);
}

// --- wire shapes (as proto-loader decodes them) -------------------------------------------------

interface WireTimestamp {
  seconds: number;
  nanos: number;
}

interface WireAny {
  type_url: string;
  value: Uint8Array;
}

interface WireDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

interface WireContainer {
  id: string;
  labels: Record<string, string>;
  image: string;
  runtime: { name: string; options: WireAny | null } | null;
  spec: WireAny | null;
  snapshotter: string;
  snapshotKey: string;
  createdAt: WireTimestamp | null;
  updatedAt: WireTimestamp | null;
  extensions: Record<string, WireAny>;
}

interface WireProcess {
  containerId: string;
  id: string;
  pid: number;
  status: string;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: WireTimestamp | null;
}

interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: WireDescriptor | null;
  createdAt: WireTimestamp | null;
  updatedAt: WireTimestamp | null;
}

interface WireContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt: WireTimestamp | null;
  updatedAt: WireTimestamp | null;
}

interface WireSnapshotInfo {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
  createdAt: WireTimestamp | null;
  updatedAt: WireTimestamp | null;
}

interface WireEnvelope {
  timestamp: WireTimestamp | null;
  namespace: string;
  topic: string;
  event: WireAny | null;
}

interface WireWriteResponse {
  action: string;
  offset: number;
  total: number;
  digest: string;
}

// --- the connection: one channel, one place for metadata and errors ----------------------------

/** Per-call settings the connection understands. */
interface CallSettings {
  lease?: string;
  signal?: AbortSignal;
}

/** A gRPC client over one channel; every call goes through its three call shapes. */
class Connection {
  readonly namespace: string;
  #channel: GrpcChannel;
  #onCall: ConnectOptions["onCall"];

  constructor(address: string, namespace: string, onCall?: ConnectOptions["onCall"]) {
    this.namespace = namespace;
    this.#onCall = onCall;
    this.#channel = new GrpcChannel(socketPath(address));
  }

  close(): void {
    this.#channel.close();
  }

  /** A unary call; rejects with an engine error, or with the signal's reason when aborted. */
  async unary<Res>(
    service: string,
    method: string,
    request: Record<string, unknown>,
    settings: CallSettings = {},
  ): Promise<Res> {
    const { signal } = settings;
    if (signal?.aborted) throw signal.reason;
    const definition = this.#method(service, method);
    const short = { service: service.slice(service.lastIndexOf(".") + 1), method };
    let response: Uint8Array;
    try {
      response = await this.#channel.unary(
        definition.path,
        encodeMessage(definition.requestType, request),
        this.#options(settings),
      );
    } catch (err) {
      this.#onCall?.(short, true);
      throw signal?.aborted ? signal.reason : fromGrpcError(err);
    }
    this.#onCall?.(short, false);
    return decodeMessage(definition.responseType, response) as Res;
  }

  /**
   * A server-streaming call as an async iterable. The call starts when iteration starts; it is
   * cancelled when the consumer stops early or `signal` aborts, which ends the iteration quietly.
   */
  async *serverStream<Res>(
    service: string,
    method: string,
    request: Record<string, unknown>,
    settings: CallSettings = {},
  ): AsyncGenerator<Res> {
    const { signal } = settings;
    if (signal?.aborted) return;
    const definition = this.#method(service, method);
    const stream = this.#channel.serverStream(
      definition.path,
      encodeMessage(definition.requestType, request),
      this.#options(settings),
    );
    try {
      for await (const message of stream) {
        yield decodeMessage(definition.responseType, message) as Res;
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw fromGrpcError(err);
    }
  }

  /** A bidirectional stream of messages, encoded and decoded on the way. */
  duplex<Res>(service: string, method: string, settings: CallSettings = {}): MessageDuplex<Res> {
    const definition = this.#method(service, method);
    const call = this.#channel.duplex(definition.path, this.#options(settings));
    return new MessageDuplex<Res>(call, definition.requestType, definition.responseType);
  }

  /** The one place the namespace (and lease) headers are set. */
  #options(settings: CallSettings): { metadata: Record<string, string>; signal?: AbortSignal } {
    const metadata: Record<string, string> = { "containerd-namespace": this.namespace };
    if (settings.lease) metadata["containerd-lease"] = settings.lease;
    return { metadata, signal: settings.signal };
  }

  #method(service: string, method: string) {
    const definition = schema().method(service, method);
    if (!definition) throw systemError(`no gRPC method ${service}/${method}`);
    return definition;
  }
}

/** A {@link DuplexCall} that speaks messages instead of bytes. */
class MessageDuplex<Res> {
  #call: DuplexCall;
  #requestType: string;
  #responseType: string;

  constructor(call: DuplexCall, requestType: string, responseType: string) {
    this.#call = call;
    this.#requestType = requestType;
    this.#responseType = responseType;
  }

  /** Encodes `request` behind room for the frame's header, so that it is not copied again. */
  send(request: Record<string, unknown>): Promise<void> {
    const framed = schema().encode(this.#requestType, request, { headroom: FRAME_HEADER });
    return this.#call.sendFramed(framed);
  }

  async next(): Promise<Res | undefined> {
    const message = await this.#call.next();
    return message === undefined ? undefined : decodeMessage(this.#responseType, message) as Res;
  }

  end(): void {
    this.#call.end();
  }

  cancel(): void {
    this.#call.cancel();
  }
}

/** The socket path of `unix:///path` or `/path`; containerd listens on a unix socket. */
function socketPath(address: string): string {
  if (address.startsWith("unix://")) return address.slice("unix://".length);
  if (address.startsWith("/")) return address;
  throw systemError(`containerd address ${address}: only unix sockets are supported`);
}

// --- conversions ------------------------------------------------------------------------------

/** Go's zero time, which containerd sends for unset timestamps. */
const GO_ZERO_SECONDS = -62135596800;

function toDate(timestamp: WireTimestamp | null | undefined): Date | undefined {
  if (!timestamp || timestamp.seconds <= GO_ZERO_SECONDS) return undefined;
  if (timestamp.seconds === 0 && timestamp.nanos === 0) return undefined;
  return new Date(timestamp.seconds * 1000 + Math.floor(timestamp.nanos / 1e6));
}

function jsonAny(typeUrl: string, value: unknown): WireAny {
  return { type_url: typeUrl, value: new TextEncoder().encode(JSON.stringify(value)) };
}

function parseJsonAny(any: WireAny | null): unknown {
  if (!any || any.value.length === 0) return undefined;
  return JSON.parse(new TextDecoder().decode(any.value));
}

function toWireRuncOptions(options: RuncOptions): WireAny {
  return {
    type_url: RUNC_OPTIONS_TYPE_URL,
    value: encodeMessage("containerd.runc.v1.Options", {
      binaryName: options.binaryName ?? "",
      root: options.root ?? "",
      systemdCgroup: options.systemdCgroup ?? false,
      noPivotRoot: options.noPivotRoot ?? false,
    }),
  };
}

function fromWireRuncOptions(any: WireAny | null): RuncOptions | undefined {
  if (!any || any.type_url !== RUNC_OPTIONS_TYPE_URL) return undefined;
  const decoded = decodeMessage("containerd.runc.v1.Options", any.value);
  const options: RuncOptions = {};
  if (decoded.binaryName) options.binaryName = String(decoded.binaryName);
  if (decoded.root) options.root = String(decoded.root);
  if (decoded.systemdCgroup) options.systemdCgroup = true;
  if (decoded.noPivotRoot) options.noPivotRoot = true;
  return options;
}

/** An extension value: an `{typeUrl, value}` Any passes as is, anything else as JSON. */
function toWireExtension(value: unknown): WireAny {
  if (typeof value === "object" && value !== null && "typeUrl" in value && "value" in value) {
    const any = value as { typeUrl: unknown; value: unknown };
    if (typeof any.typeUrl === "string" && any.value instanceof Uint8Array) {
      return { type_url: any.typeUrl, value: any.value };
    }
  }
  return jsonAny(JSON_EXTENSION_TYPE_URL, value);
}

function fromWireExtension(any: WireAny): unknown {
  if (any.type_url === JSON_EXTENSION_TYPE_URL) return parseJsonAny(any);
  return { typeUrl: any.type_url, value: new Uint8Array(any.value) };
}

function toWireContainer(container: ContainerRecord): Record<string, unknown> {
  const extensions: Record<string, WireAny> = {};
  for (const [key, value] of Object.entries(container.extensions ?? {})) {
    extensions[key] = toWireExtension(value);
  }
  return {
    id: container.id,
    labels: container.labels ?? {},
    image: container.image ?? "",
    runtime: {
      name: container.runtime.name,
      options: container.runtime.options ? toWireRuncOptions(container.runtime.options) : null,
    },
    spec: jsonAny(SPEC_TYPE_URL, container.spec),
    snapshotter: container.snapshotter ?? "",
    snapshotKey: container.snapshotKey ?? "",
    extensions,
  };
}

function fromWireContainer(wire: WireContainer): ContainerRecord {
  const record: ContainerRecord = {
    id: wire.id,
    labels: wire.labels,
    runtime: { name: wire.runtime?.name ?? "" },
    spec: parseJsonAny(wire.spec),
    createdAt: toDate(wire.createdAt),
    updatedAt: toDate(wire.updatedAt),
  };
  const options = fromWireRuncOptions(wire.runtime?.options ?? null);
  if (options) record.runtime.options = options;
  if (wire.image) record.image = wire.image;
  if (wire.snapshotter) record.snapshotter = wire.snapshotter;
  if (wire.snapshotKey) record.snapshotKey = wire.snapshotKey;
  const extensions = Object.entries(wire.extensions);
  if (extensions.length > 0) {
    record.extensions = Object.fromEntries(
      extensions.map(([key, any]) => [key, fromWireExtension(any)]),
    );
  }
  return record;
}

/** containerd's container field paths are lowercase (`snapshotkey`). */
function toContainerFieldPath(path: string): string {
  return path === "snapshotKey" || path === "snapshot_key" ? "snapshotkey" : path;
}

/**
 * containerd 1.6 leaves `container_id` empty (and sets `id` to the container's ID for a task,
 * to the exec ID for an exec process), so the caller passes the container's ID it knows.
 */
function fromWireProcess(
  wire: WireProcess,
  containerId = wire.containerId || wire.id,
): ProcessInfo {
  const info: ProcessInfo = {
    id: wire.id,
    containerId,
    pid: wire.pid,
    status: wire.status.toLowerCase() as ProcessStatus,
    exitStatus: wire.exitStatus,
    terminal: wire.terminal,
  };
  if (wire.stdin) info.stdin = wire.stdin;
  if (wire.stdout) info.stdout = wire.stdout;
  if (wire.stderr) info.stderr = wire.stderr;
  const exitedAt = toDate(wire.exitedAt);
  if (exitedAt) info.exitedAt = exitedAt;
  return info;
}

function toWireDescriptor(descriptor: Descriptor): Record<string, unknown> {
  return {
    mediaType: descriptor.mediaType,
    digest: descriptor.digest,
    size: descriptor.size,
    annotations: descriptor.annotations ?? {},
  };
}

function fromWireDescriptor(wire: WireDescriptor | null): Descriptor {
  const descriptor: Descriptor = {
    mediaType: wire?.mediaType ?? "",
    digest: wire?.digest ?? "",
    size: wire?.size ?? 0,
  };
  if (wire && Object.keys(wire.annotations).length > 0) {
    descriptor.annotations = wire.annotations;
  }
  return descriptor;
}

function toWireMount(mount: Mount): Record<string, unknown> {
  return {
    type: mount.type,
    source: mount.source,
    target: mount.target ?? "",
    options: mount.options,
  };
}

function fromWireMount(wire: Mount): Mount {
  const mount: Mount = { type: wire.type, source: wire.source, options: wire.options };
  if (wire.target) mount.target = wire.target;
  return mount;
}

function toWireImage(image: ImageRecord): Record<string, unknown> {
  return {
    name: image.name,
    labels: image.labels ?? {},
    target: toWireDescriptor(image.target),
  };
}

function fromWireImage(wire: WireImage): ImageRecord {
  return {
    name: wire.name,
    labels: wire.labels,
    target: fromWireDescriptor(wire.target),
    createdAt: toDate(wire.createdAt),
    updatedAt: toDate(wire.updatedAt),
  };
}

function fromWireContentInfo(wire: WireContentInfo): ContentInfo {
  return {
    digest: wire.digest,
    size: wire.size,
    labels: wire.labels,
    createdAt: toDate(wire.createdAt),
    updatedAt: toDate(wire.updatedAt),
  };
}

function fromWireSnapshotInfo(wire: WireSnapshotInfo): SnapshotInfo {
  const info: SnapshotInfo = {
    name: wire.name,
    kind: wire.kind.toLowerCase() as SnapshotInfo["kind"],
    labels: wire.labels,
    createdAt: toDate(wire.createdAt),
    updatedAt: toDate(wire.updatedAt),
  };
  if (wire.parent) info.parent = wire.parent;
  return info;
}

function fromWireExit(wire: { exitStatus: number; exitedAt: WireTimestamp | null; pid?: number }) {
  const exit: ExitInfo = {
    exitStatus: wire.exitStatus,
    exitedAt: toDate(wire.exitedAt) ?? new Date(0),
  };
  if (wire.pid) exit.pid = wire.pid;
  return exit;
}

/** Decodes an event payload this client knows; timestamps become dates. */
function decodeEvent(any: WireAny | null): Record<string, unknown> {
  if (!any || !EVENT_TYPES.includes(any.type_url)) return {};
  const event = decodeMessage(any.type_url, any.value);
  if ("exitedAt" in event) event.exitedAt = toDate(event.exitedAt as WireTimestamp);
  return event;
}

// --- services -----------------------------------------------------------------------------------

const VERSION = "containerd.services.version.v1.Version";
const NAMESPACES = "containerd.services.namespaces.v1.Namespaces";
const CONTAINERS = "containerd.services.containers.v1.Containers";
const TASKS = "containerd.services.tasks.v1.Tasks";
const SNAPSHOTS = "containerd.services.snapshots.v1.Snapshots";
const CONTENT = "containerd.services.content.v1.Content";
const IMAGES = "containerd.services.images.v1.Images";
const DIFF = "containerd.services.diff.v1.Diff";
const LEASES = "containerd.services.leases.v1.Leases";
const EVENTS = "containerd.services.events.v1.Events";

async function version(c: Connection): Promise<{ version: string; revision: string }> {
  const response = await c.unary<{ version: string; revision: string }>(VERSION, "Version", {});
  return { version: response.version, revision: response.revision };
}

function namespacesService(c: Connection): Containerd["namespaces"] {
  return {
    async ensure(name) {
      try {
        await c.unary(NAMESPACES, "Create", { namespace: { name, labels: {} } });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    },
  };
}

function containersService(c: Connection): Containerd["containers"] {
  type Response = { container: WireContainer };
  return {
    async create(container) {
      const response = await c.unary<Response>(CONTAINERS, "Create", {
        container: toWireContainer(container),
      });
      return fromWireContainer(response.container);
    },
    async get(id) {
      const response = await c.unary<Response>(CONTAINERS, "Get", { id });
      return fromWireContainer(response.container);
    },
    async list(filters = []) {
      const response = await c.unary<{ containers: WireContainer[] }>(CONTAINERS, "List", {
        filters,
      });
      return response.containers.map(fromWireContainer);
    },
    async update(container, fieldPaths) {
      const response = await c.unary<Response>(CONTAINERS, "Update", {
        container: toWireContainer(container),
        updateMask: { paths: fieldPaths.map(toContainerFieldPath) },
      });
      return fromWireContainer(response.container);
    },
    async delete(id) {
      await c.unary(CONTAINERS, "Delete", { id });
    },
  };
}

function tasksService(c: Connection): Containerd["tasks"] {
  return {
    async create(containerId, options) {
      const response = await c.unary<{ pid: number }>(TASKS, "Create", {
        containerId,
        rootfs: options.rootfs.map(toWireMount),
        stdin: options.stdin ?? "",
        stdout: options.stdout ?? "",
        stderr: options.stderr ?? "",
        terminal: options.terminal ?? false,
        runtimePath: options.runtimePath ?? "",
      });
      return { pid: response.pid };
    },
    async start(containerId, execId = "") {
      const response = await c.unary<{ pid: number }>(TASKS, "Start", { containerId, execId });
      return { pid: response.pid };
    },
    async delete(containerId, execId) {
      type Response = { pid: number; exitStatus: number; exitedAt: WireTimestamp | null };
      const response = execId
        ? await c.unary<Response>(TASKS, "DeleteProcess", { containerId, execId })
        : await c.unary<Response>(TASKS, "Delete", { containerId });
      return fromWireExit(response);
    },
    async get(containerId, execId = "") {
      const response = await c.unary<{ process: WireProcess }>(TASKS, "Get", {
        containerId,
        execId,
      });
      return fromWireProcess(response.process, containerId);
    },
    async list(filter = "") {
      const response = await c.unary<{ tasks: WireProcess[] }>(TASKS, "List", { filter });
      return response.tasks.map((task) => fromWireProcess(task));
    },
    async kill(containerId, signal, options = {}) {
      await c.unary(TASKS, "Kill", {
        containerId,
        execId: options.execId ?? "",
        signal,
        all: options.all ?? false,
      });
    },
    async exec(containerId, execId, options) {
      await c.unary(TASKS, "Exec", {
        containerId,
        execId,
        stdin: options.stdin ?? "",
        stdout: options.stdout ?? "",
        stderr: options.stderr ?? "",
        terminal: options.terminal ?? false,
        spec: jsonAny(PROCESS_TYPE_URL, options.spec),
      });
    },
    async resizePty(containerId, size) {
      await c.unary(TASKS, "ResizePty", {
        containerId,
        execId: size.execId ?? "",
        width: size.width,
        height: size.height,
      });
    },
    async closeIO(containerId, options = {}) {
      await c.unary(TASKS, "CloseIO", {
        containerId,
        execId: options.execId ?? "",
        stdin: options.stdin ?? true,
      });
    },
    async pause(containerId) {
      await c.unary(TASKS, "Pause", { containerId });
    },
    async resume(containerId) {
      await c.unary(TASKS, "Resume", { containerId });
    },
    async pids(containerId) {
      const response = await c.unary<{ processes: Array<{ pid: number }> }>(TASKS, "ListPids", {
        containerId,
      });
      return response.processes.map((process) => process.pid);
    },
    async wait(containerId, options = {}) {
      const response = await c.unary<{ exitStatus: number; exitedAt: WireTimestamp | null }>(
        TASKS,
        "Wait",
        { containerId, execId: options.execId ?? "" },
        { signal: options.signal },
      );
      return fromWireExit(response);
    },
    async update(containerId, resources) {
      await c.unary(TASKS, "Update", {
        containerId,
        resources: jsonAny(RESOURCES_TYPE_URL, resources),
      });
    },
    async metrics(containerIds) {
      if (containerIds.length === 0) return [];
      const response = await c.unary<{ metrics: Array<{ id: string; data: WireAny | null }> }>(
        TASKS,
        "Metrics",
        { filters: containerIds.map((id) => `id==${id}`) },
      );
      return response.metrics.map((metric) => ({
        id: metric.id,
        data: decodeMetrics(metric.data),
      }));
    },
  };
}

/** cgroup v1 metrics decoded; any other payload as `{typeUrl, value}`. */
function decodeMetrics(any: WireAny | null): unknown {
  if (!any) return undefined;
  if (any.type_url === CGROUPS_V1_METRICS_TYPE_URL) {
    return decodeMessage(CGROUPS_V1_METRICS_TYPE_URL, any.value);
  }
  return { typeUrl: any.type_url, value: new Uint8Array(any.value) };
}

function snapshotsService(c: Connection): Containerd["snapshots"] {
  type MountsResponse = { mounts: Mount[] };
  /** Prepare and View differ only in the kind of snapshot they make. */
  async function activeSnapshot(
    method: "Prepare" | "View",
    request: {
      snapshotter: string;
      key: string;
      options: CallOptions & { parent?: string; labels?: Record<string, string> };
    },
  ): Promise<Mount[]> {
    const { snapshotter, key, options } = request;
    const response = await c.unary<MountsResponse>(SNAPSHOTS, method, {
      snapshotter,
      key,
      parent: options.parent ?? "",
      labels: options.labels ?? {},
    }, options);
    return response.mounts.map(fromWireMount);
  }
  return {
    prepare: (snapshotter, key, options = {}) =>
      activeSnapshot("Prepare", { snapshotter, key, options }),
    view: (snapshotter, key, options = {}) => activeSnapshot("View", { snapshotter, key, options }),
    async mounts(snapshotter, key) {
      const response = await c.unary<MountsResponse>(SNAPSHOTS, "Mounts", { snapshotter, key });
      return response.mounts.map(fromWireMount);
    },
    async commit(snapshotter, name, options) {
      await c.unary(SNAPSHOTS, "Commit", {
        snapshotter,
        name,
        key: options.key,
        labels: options.labels ?? {},
      }, options);
    },
    async remove(snapshotter, key) {
      await c.unary(SNAPSHOTS, "Remove", { snapshotter, key });
    },
    async stat(snapshotter, key) {
      const response = await c.unary<{ info: WireSnapshotInfo }>(SNAPSHOTS, "Stat", {
        snapshotter,
        key,
      });
      return fromWireSnapshotInfo(response.info);
    },
    async list(snapshotter) {
      const infos: SnapshotInfo[] = [];
      const stream = c.serverStream<{ info: WireSnapshotInfo[] }>(SNAPSHOTS, "List", {
        snapshotter,
        filters: [],
      });
      for await (const response of stream) infos.push(...response.info.map(fromWireSnapshotInfo));
      return infos;
    },
    async usage(snapshotter, key) {
      const response = await c.unary<{ size: number; inodes: number }>(SNAPSHOTS, "Usage", {
        snapshotter,
        key,
      });
      return { size: response.size, inodes: response.inodes };
    },
  };
}

/** The largest chunk one `Write` request carries. */
const WRITE_CHUNK_SIZE = 1 << 20;

function contentService(c: Connection): Containerd["content"] {
  const service: Containerd["content"] = {
    async info(digest) {
      const response = await c.unary<{ info: WireContentInfo }>(CONTENT, "Info", { digest });
      return fromWireContentInfo(response.info);
    },
    async update(info, fieldPaths) {
      const response = await c.unary<{ info: WireContentInfo }>(CONTENT, "Update", {
        info: { digest: info.digest, size: info.size, labels: info.labels },
        updateMask: fieldPaths ? { paths: fieldPaths } : null,
      });
      return fromWireContentInfo(response.info);
    },
    async list(filters = []) {
      const infos: ContentInfo[] = [];
      const stream = c.serverStream<{ info: WireContentInfo[] }>(CONTENT, "List", { filters });
      for await (const response of stream) infos.push(...response.info.map(fromWireContentInfo));
      return infos;
    },
    async delete(digest) {
      await c.unary(CONTENT, "Delete", { digest });
    },
    async *read(digest, options = {}) {
      const stream = c.serverStream<{ data: Uint8Array }>(CONTENT, "Read", {
        digest,
        offset: options.offset ?? 0,
        size: options.size ?? 0,
      });
      for await (const response of stream) {
        if (response.data.length > 0) yield new Uint8Array(response.data);
      }
    },
    async readAll(digest) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of service.read(digest)) chunks.push(chunk);
      return concatBytes(chunks);
    },
    async write(ref, data, options) {
      try {
        await writeContent(c, ref, data, options);
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    },
  };
  return service;
}

/**
 * One `Content.Write` session, in lockstep (each request waits for its response, which bounds
 * what is in flight to one chunk): STAT opens the ingest under `ref` (and fails with
 * ALREADY_EXISTS when the blob is there), WRITE requests carry chunks at the writer's offset
 * (starting at 0 truncates a stale partial ingest), COMMIT carries the size, digest and labels.
 */
async function writeContent(
  c: Connection,
  ref: string,
  data: Uint8Array | AsyncIterable<Uint8Array>,
  options: CallSettings & { expected: string; size: number; labels?: Record<string, string> },
): Promise<void> {
  const call = c.duplex<WireWriteResponse>(CONTENT, "Write", options);
  const exchange = async (request: Record<string, unknown>): Promise<WireWriteResponse> => {
    await call.send(request);
    const response = await call.next();
    if (!response) {
      throw systemError(`content write ${ref}: stream ended before the ${request.action} answer`);
    }
    return response;
  };

  try {
    await exchange({ action: "STAT", ref, total: options.size, expected: options.expected });
    let offset = 0;
    // One chunk is read ahead while the one before is written: reading from the source (a
    // registry's socket) and containerd's writing to disk overlap instead of taking turns.
    const source = chunks(data, WRITE_CHUNK_SIZE);
    try {
      let next = source.next();
      while (true) {
        const chunk = await next;
        if (chunk.done) break;
        next = source.next();
        // Awaited in the next round; a failed write must not leave it unhandled meanwhile.
        next.catch(() => {});
        const response = await exchange({ action: "WRITE", ref, offset, data: chunk.value });
        offset = response.offset;
      }
    } finally {
      // Stops the source once a read ahead settles (the generator's finally blocks run).
      void source.return(undefined).catch(() => {});
    }
    try {
      await exchange({
        action: "COMMIT",
        ref,
        offset,
        total: options.size,
        expected: options.expected,
        labels: options.labels ?? {},
      });
    } catch (err) {
      // A failed commit's status comes in trailers, which the channel cannot see: the blob
      // being there with the expected digest is what a commit is for (the status would have
      // been ALREADY_EXISTS had another writer committed it first).
      if (options.signal?.aborted) throw err;
      if (!(await blobExists(c, options.expected, options.size))) {
        throw conflict(
          `content write ${ref}: containerd refused to commit ${options.expected} ` +
            `(${options.size} bytes): the data does not match that digest and size`,
          err,
        );
      }
    }
    // The commit's answer is the outcome. containerd then closes the stream on its own,
    // without waiting for our half-close, so the call is dropped rather than drained.
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    throw fromGrpcError(err);
  } finally {
    call.cancel();
  }
}

/** Whether the content store holds `digest` with `size` bytes. */
async function blobExists(c: Connection, digest: string, size: number): Promise<boolean> {
  try {
    const response = await c.unary<{ info: WireContentInfo }>(CONTENT, "Info", { digest });
    return response.info.size === size;
  } catch {
    return false;
  }
}

/**
 * Re-cuts `data` into chunks of `size` bytes (the last one shorter), each a list of pieces of
 * the input (views, not copies; the encoder writes them out as one value). Small pieces are
 * gathered into one chunk: each chunk is a request that waits for its answer, and a registry's
 * body comes in pieces of 64 KiB at most, so that 200 MB would otherwise be 3,400 round trips.
 */
async function* chunks(
  data: Uint8Array | AsyncIterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array[]> {
  const sources = data instanceof Uint8Array ? [data] : data;
  let pieces: Uint8Array[] = [];
  let gathered = 0;
  for await (const source of sources) {
    let start = 0;
    while (start < source.length) {
      const end = Math.min(start + size - gathered, source.length);
      pieces.push(source.subarray(start, end));
      gathered += end - start;
      start = end;
      if (gathered === size) {
        yield pieces;
        pieces = [];
        gathered = 0;
      }
    }
  }
  if (gathered > 0) yield pieces;
}

function imagesService(c: Connection): Containerd["images"] {
  type Response = { image: WireImage };
  return {
    async get(name) {
      const response = await c.unary<Response>(IMAGES, "Get", { name });
      return fromWireImage(response.image);
    },
    async list(filters = []) {
      const response = await c.unary<{ images: WireImage[] }>(IMAGES, "List", { filters });
      return response.images.map(fromWireImage);
    },
    async create(image, options = {}) {
      const response = await c.unary<Response>(
        IMAGES,
        "Create",
        { image: toWireImage(image) },
        options,
      );
      return fromWireImage(response.image);
    },
    async update(image, fieldPaths) {
      const response = await c.unary<Response>(IMAGES, "Update", {
        image: toWireImage(image),
        updateMask: fieldPaths ? { paths: fieldPaths } : null,
      });
      return fromWireImage(response.image);
    },
    async delete(name, options = {}) {
      await c.unary(IMAGES, "Delete", { name, sync: options.sync ?? false });
    },
  };
}

function diffService(c: Connection): Containerd["diff"] {
  return {
    async apply(layer, mounts, options = {}) {
      const response = await c.unary<{ applied: WireDescriptor | null }>(DIFF, "Apply", {
        diff: toWireDescriptor(layer),
        mounts: mounts.map(toWireMount),
        payloads: {},
      }, options);
      return fromWireDescriptor(response.applied);
    },
  };
}

/** The label that makes containerd's GC drop a lease after a time (RFC 3339). */
const LEASE_EXPIRE_LABEL = "containerd.io/gc.expire";

function leasesService(c: Connection): Containerd["leases"] {
  return {
    async create(options = {}) {
      const labels = { ...options.labels };
      if (options.expireSeconds !== undefined) {
        const expire = new Date(Date.now() + options.expireSeconds * 1000);
        labels[LEASE_EXPIRE_LABEL] = expire.toISOString().replace(/\.\d{3}Z$/, "Z");
      }
      const id = options.id ?? randomLeaseId();
      const response = await c.unary<{ lease: { id: string } | null }>(LEASES, "Create", {
        id,
        labels,
      });
      return { id: response.lease?.id ?? id };
    },
    async delete(id, options = {}) {
      await c.unary(LEASES, "Delete", { id, sync: options.sync ?? false });
    },
    async addResource(id, resource) {
      await c.unary(LEASES, "AddResource", { id, resource });
    },
    async deleteResource(id, resource) {
      await c.unary(LEASES, "DeleteResource", { id, resource });
    },
  };
}

/** A lease ID like containerd's client makes: a timestamp and random bits. */
function randomLeaseId(): string {
  const random = crypto.getRandomValues(new Uint8Array(6));
  const hex = Array.from(random, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `pouch-${Date.now()}-${hex}`;
}

function eventsService(c: Connection): Containerd["events"] {
  return {
    async *subscribe(filters, signal) {
      const scope = `namespace==${c.namespace}`;
      const scoped = filters.length > 0 ? filters.map((f) => `${scope},${f}`) : [scope];
      const stream = c.serverStream<WireEnvelope>(EVENTS, "Subscribe", { filters: scoped }, {
        signal,
      });
      for await (const envelope of stream) {
        yield {
          timestamp: toDate(envelope.timestamp) ?? new Date(0),
          namespace: envelope.namespace,
          topic: envelope.topic,
          event: decodeEvent(envelope.event),
        };
      }
    },
  };
}

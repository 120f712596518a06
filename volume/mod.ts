/**
 * The volume manager: named volumes behind pluggable drivers (`local`, `tmpfs`, and Docker volume
 * plugins found by name through the `resolveDriver` hook), their metadata in the daemon's store
 * (bucket `volume`), and reference counting by container: a volume that a container uses cannot
 * be removed (409). Create and remove complete or leave nothing behind; operations on one volume
 * are serialised.
 *
 * @module
 */
import { conflict, invalidArgument, isNotFound, notFound } from "../engine/errors.ts";
import { faultPoint } from "../engine/faults.ts";
import type { DriverVolume, VolumeDriver } from "./driver.ts";
import { validateVolumeName } from "./driver.ts";

export { parseSize, validateVolumeName } from "./driver.ts";
export type { DriverCapabilities, DriverVolume, VolumeDriver } from "./driver.ts";
export { detectProjectQuota, LocalDriver } from "./local.ts";
export { TmpfsDriver } from "./tmpfs.ts";
export { DEFAULT_PLUGIN_DIRS, DEFAULT_PLUGIN_TIMEOUT_MS, PluginRegistry } from "./plugin.ts";

/** The persisted record of a volume. */
export interface VolumeRecord {
  name: string;
  driver: string;
  /** RFC 3339 creation time. */
  created: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  /** The host path containers mount. */
  mountpoint: string;
  /** The driver's status (backend, size, ...). */
  status: Record<string, unknown>;
  /** IDs of the containers using the volume. */
  refs: string[];
  /** Made for an image's `VOLUME` or a `-v /path` without a name; `rm -v` removes it. */
  anonymous: boolean;
  /**
   * A create or remove in progress, persisted before the driver acts: a crash midway is undone
   * or finished at the next start. Such a record is not a volume yet (or any more).
   */
  phase?: "creating" | "removing";
}

/** Docker's `Volume` object. */
export interface Volume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: "local" | "global";
  Options: Record<string, string>;
  Status: Record<string, unknown>;
  UsageData: { RefCount: number; Size: number };
}

/** A typed collection of records (the engine's `Bucket` is one). */
export interface VolumeBucket<T> {
  /** The record `id`, or undefined. */
  find(id: string): T | undefined;
  /** Every record. */
  list(): T[];
  /** Writes the record `id`. */
  put(id: string, value: T): void;
  /** Deletes the record `id`. */
  delete(id: string): void;
}

/** The store as the volume manager uses it (the engine's `Store` is one). */
export interface VolumeStore {
  /** A typed collection of records. */
  bucket<T>(kind: string): VolumeBucket<T>;
  /** Runs `fn` in one transaction. */
  transaction<R>(fn: () => R): R;
}

/** Where volume events go (the engine's `EventBus` is one). */
export interface VolumeEventSink {
  /** Publishes one event. */
  emit(input: {
    type: "volume";
    action: string;
    id: string;
    attributes?: Record<string, string>;
  }): void;
}

/** Options of {@link VolumeManager}. */
export interface VolumeManagerOptions {
  store: VolumeStore;
  /** The drivers by which volumes can be created; the first named `local` is the default. */
  drivers: VolumeDriver[];
  /**
   * Finds a driver that is not among `drivers` by its name (a volume plugin); undefined when
   * there is none. Asked on every use, so that it can notice a plugin that went away.
   */
  resolveDriver?: (name: string) => Promise<VolumeDriver | undefined>;
  /** Where `create`, `mount`, `unmount` and `destroy` are reported. */
  events?: VolumeEventSink;
  /**
   * Called before a volume is created, with what will be created (hook plugins' place): may
   * change the driver, options and labels, or throw to refuse the create.
   */
  beforeCreate?: (request: VolumeCreateSpec) => Promise<VolumeCreateSpec>;
}

/** A volume about to be created, as {@link VolumeManagerOptions.beforeCreate} sees it. */
export interface VolumeCreateSpec {
  Name: string;
  Driver: string;
  DriverOpts: Record<string, string>;
  Labels: Record<string, string>;
}

/** `POST /volumes/create`'s body. */
export interface CreateVolumeRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** Options of {@link VolumeManager.attach}. */
export interface AttachVolumeOptions {
  /** Where the container mounts it (for the `mount` event). */
  destination?: string;
  /** Whether the container mounts it read-only (for the `mount` event). */
  readOnly?: boolean;
  /** The driver of a volume created on demand (`HostConfig.VolumeDriver`; `local` by default). */
  driver?: string;
}

/** A volume attached to a container. */
export interface AttachedVolume {
  name: string;
  driver: string;
  /** The host path to bind-mount into the container. */
  source: string;
}

/** Filters of {@link VolumeManager.list} (Docker's `name`, `driver`, `label`, `dangling`). */
export type VolumeFilters = Record<string, string[]>;

const FILTERS = ["name", "driver", "label", "dangling"];

/** Creates, lists and removes volumes and counts the containers using them. */
export class VolumeManager {
  readonly #store: VolumeStore;
  readonly #records: VolumeBucket<VolumeRecord>;
  readonly #drivers = new Map<string, VolumeDriver>();
  readonly #resolveDriver: ((name: string) => Promise<VolumeDriver | undefined>) | undefined;
  /** The drivers `resolveDriver` answered last, for what needs no I/O (a volume's scope). */
  readonly #resolved = new Map<string, VolumeDriver>();
  readonly #events: VolumeEventSink | undefined;
  readonly #beforeCreate: VolumeManagerOptions["beforeCreate"];
  readonly #locks = new Map<string, Promise<void>>();

  /** A manager over `options.store` with `options.drivers`. */
  constructor(options: VolumeManagerOptions) {
    this.#store = options.store;
    this.#records = options.store.bucket<VolumeRecord>("volume");
    for (const driver of options.drivers) this.#drivers.set(driver.name, driver);
    this.#resolveDriver = options.resolveDriver;
    this.#events = options.events;
    this.#beforeCreate = options.beforeCreate;
  }

  /** The volume `name`; throws NotFound (`get NAME: no such volume`). */
  get(name: string): Volume {
    return this.#view(this.#record(name));
  }

  /**
   * The volume `name` as `volume inspect` shows it: for drivers that can say (plugins), the
   * mountpoint and status they report now. Throws NotFound, or the driver's error.
   */
  async inspect(name: string): Promise<Volume> {
    const record = this.#record(name);
    const driver = await this.#driver(record.driver);
    const view = this.#view(record);
    if (!driver.describe) return view;
    const now = await driver.describe(driverVolume(record));
    return { ...view, Mountpoint: now.mountpoint, Status: { ...now.status } };
  }

  /** The record of volume `name` (a copy); throws NotFound. */
  record(name: string): VolumeRecord {
    return this.#record(name);
  }

  /** The names of the volumes container `containerId` uses. */
  usedBy(containerId: string): string[] {
    return this.#list().filter((record) => record.refs.includes(containerId)).map((r) => r.name);
  }

  /** Every volume matching `filters`. */
  list(filters: VolumeFilters = {}): Volume[] {
    for (const key of Object.keys(filters)) {
      if (!FILTERS.includes(key)) throw invalidArgument(`invalid filter '${key}'`);
    }
    return this.#list().filter((record) => matchesFilters(record, filters)).map((r) =>
      this.#view(r)
    );
  }

  /**
   * Creates a volume. An existing one of the same name and driver is answered as it is (Docker's
   * idempotent create); one of another driver is a conflict. Nothing is left on failure.
   */
  async create(
    request: CreateVolumeRequest,
    options: { anonymous?: boolean } = {},
  ): Promise<Volume> {
    let name = request.Name ? validateVolumeName(request.Name) : randomVolumeName();
    if (this.#beforeCreate && !this.#find(name)) {
      request = await this.#beforeCreate({
        Name: name,
        Driver: request.Driver || "local",
        DriverOpts: { ...(request.DriverOpts ?? {}) },
        Labels: { ...(request.Labels ?? {}) },
      });
      name = validateVolumeName(request.Name || name);
    }
    const driverName = request.Driver || "local";
    const driver = await this.#driver(driverName);
    return await this.#locked(name, async () => {
      const existing = this.#find(name);
      if (existing) {
        if (existing.driver !== driverName) {
          throw conflict(
            `create ${name}: volume name is already in use with driver "${existing.driver}"`,
          );
        }
        return this.#view(existing);
      }
      const intent: VolumeRecord = {
        name,
        driver: driverName,
        created: new Date().toISOString(),
        labels: { ...(request.Labels ?? {}) },
        options: { ...(request.DriverOpts ?? {}) },
        mountpoint: "",
        status: {},
        refs: [],
        anonymous: options.anonymous === true,
        phase: "creating",
      };
      this.#records.put(name, intent);
      let created: DriverVolume;
      try {
        created = await driver.create(name, { ...(request.DriverOpts ?? {}) });
      } catch (err) {
        this.#records.delete(name);
        throw err;
      }
      faultPoint("volume:created");
      const { phase: _phase, ...rest } = intent;
      const record: VolumeRecord = {
        ...rest,
        options: created.options,
        mountpoint: created.mountpoint,
        status: created.status,
      };
      try {
        this.#records.put(name, record);
      } catch (err) {
        await driver.remove(created).catch(() => {});
        try {
          this.#records.delete(name);
        } catch {
          // The next start finds the intent and cleans up after it.
        }
        throw err;
      }
      this.#emit(record, "create");
      return this.#view(record);
    });
  }

  /**
   * Removes a volume. One in use is a conflict (409), even with `force`, which makes a missing
   * volume not an error (Docker's `volume rm -f`), and forgets a plugin's volume even when its
   * plugin is gone or fails to remove it (Docker's purge on error).
   */
  remove(name: string, options: { force?: boolean } = {}): Promise<void> {
    return this.#locked(name, async () => {
      const record = this.#find(name);
      if (!record) {
        if (options.force) return;
        throw notFound(`get ${name}: no such volume`);
      }
      if (record.refs.length > 0) {
        throw conflict(`remove ${name}: volume is in use - [${record.refs.join(", ")}]`);
      }
      const builtIn = this.#drivers.has(record.driver);
      this.#records.put(name, { ...record, phase: "removing" });
      try {
        await (await this.#driver(record.driver)).remove(driverVolume(record));
      } catch (err) {
        if (builtIn || !options.force) {
          this.#records.put(name, record);
          throw err;
        }
      }
      faultPoint("volume:removed");
      this.#records.delete(name);
      this.#emit(record, "destroy");
    });
  }

  /** Removes every volume no container uses (matching `filters.label`); answers what went. */
  async prune(
    filters: VolumeFilters = {},
  ): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    for (const key of Object.keys(filters)) {
      if (key !== "label") throw invalidArgument(`invalid filter '${key}'`);
    }
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const record of this.#list()) {
      if (record.refs.length > 0 || !matchesFilters(record, filters)) continue;
      // A plugin's mountpoint may be remote storage: not walked.
      const size = this.#drivers.has(record.driver) ? await diskUsage(record.mountpoint) : 0;
      try {
        await this.remove(record.name);
      } catch (err) {
        // Taken by a container meanwhile, or removed by someone else: not this prune's business.
        if (isNotFound(err) || (err as { kind?: string }).kind === "Conflict") continue;
        throw err;
      }
      deleted.push(record.name);
      reclaimed += size;
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /**
   * Gives container `containerId` the volume `name`, creating it with `options.driver` (local by
   * default) when it does not exist (`run -v name:/path`); answers the host path to bind. Counts the reference
   * before the driver mounts, and takes it back if the mount fails.
   */
  async attach(
    name: string,
    containerId: string,
    options: AttachVolumeOptions = {},
  ): Promise<AttachedVolume> {
    validateVolumeName(name);
    if (!this.#find(name)) await this.create({ Name: name, Driver: options.driver });
    return this.#locked(name, async () => {
      const record = this.#record(name);
      if (!record.refs.includes(containerId)) {
        record.refs.push(containerId);
        this.#records.put(name, record);
      }
      let source: string;
      try {
        const driver = await this.#driver(record.driver);
        source = await driver.mount(driverVolume(record), containerId);
      } catch (err) {
        this.#dropRef(name, containerId);
        throw err;
      }
      this.#emit(record, "mount", {
        container: containerId,
        destination: options.destination ?? "",
        propagation: "",
        "read/write": String(options.readOnly !== true),
      });
      return { name, driver: record.driver, source };
    });
  }

  /** Container `containerId` no longer uses volume `name`; a missing volume is not an error. */
  detach(name: string, containerId: string): Promise<void> {
    return this.#locked(name, async () => {
      const record = this.#find(name);
      if (!record || !record.refs.includes(containerId)) return;
      // The container is gone either way: a driver that fails (or a plugin that went away) must
      // not keep the reference.
      const driver = await this.#driver(record.driver).catch(() => undefined);
      await driver?.unmount(driverVolume(record), containerId).catch(() => {});
      this.#dropRef(name, containerId);
      this.#emit(record, "unmount", { container: containerId });
    });
  }

  /**
   * After a daemon start: remounts what drivers keep mounted, and drops references of containers
   * that no longer exist (`liveContainers`, when given).
   */
  async restore(
    options: { liveContainers?: Set<string>; warn?: (message: string) => void } = {},
  ): Promise<void> {
    for (const record of this.#records.list()) {
      if (record.phase) {
        await this.#finishPhase(record).catch((err) =>
          options.warn?.(`volume ${record.name}: cannot clean up: ${(err as Error).message}`)
        );
        continue;
      }
    }
    for (const record of this.#list()) {
      const live = options.liveContainers;
      if (live && record.refs.some((id) => !live.has(id))) {
        record.refs = record.refs.filter((id) => live.has(id));
        this.#records.put(record.name, record);
      }
      const driver = this.#drivers.get(record.driver);
      // Plugins keep their own state; asking them now would make a start wait on each.
      if (!driver && this.#resolveDriver) continue;
      try {
        if (!driver) throw new Error(`unknown driver ${record.driver}`);
        await driver.restore(driverVolume(record));
      } catch (err) {
        options.warn?.(`volume ${record.name}: cannot restore: ${(err as Error).message}`);
      }
    }
  }

  /** Undoes a create, or finishes a remove, that a crash cut short. */
  async #finishPhase(record: VolumeRecord): Promise<void> {
    const driver = await this.#driver(record.driver).catch(() => undefined);
    if (record.phase === "creating") {
      await driver?.forget?.(record.name, record.options);
    } else {
      await driver?.remove(driverVolume(record));
    }
    this.#records.delete(record.name);
  }

  #dropRef(name: string, containerId: string): void {
    this.#store.transaction(() => {
      const current = this.#find(name);
      if (!current) return;
      current.refs = current.refs.filter((id) => id !== containerId);
      this.#records.put(name, current);
    });
  }

  #find(name: string): VolumeRecord | undefined {
    return this.#records.find(name);
  }

  #record(name: string): VolumeRecord {
    const record = this.#find(name);
    if (!record) throw notFound(`get ${name}: no such volume`);
    return record;
  }

  /** Every volume (records of a create or remove in progress are not volumes). */
  #list(): VolumeRecord[] {
    return this.#records.list().filter((record) => !record.phase);
  }

  /** Built-in drivers first, then `resolveDriver`; throws InvalidArgument when none is found. */
  async #driver(name: string): Promise<VolumeDriver> {
    const builtIn = this.#drivers.get(name);
    if (builtIn) return builtIn;
    const found = await this.#resolveDriver?.(name);
    if (!found) {
      this.#resolved.delete(name);
      throw invalidArgument(`volume driver "${name}" not found`);
    }
    this.#resolved.set(name, found);
    return found;
  }

  #view(record: VolumeRecord): Volume {
    const driver = this.#drivers.get(record.driver) ?? this.#resolved.get(record.driver);
    return {
      Name: record.name,
      Driver: record.driver,
      Mountpoint: record.mountpoint,
      CreatedAt: record.created,
      Labels: { ...record.labels },
      Scope: driver?.capabilities().scope ?? "local",
      Options: { ...record.options },
      Status: { ...record.status },
      UsageData: { RefCount: record.refs.length, Size: -1 },
    };
  }

  #emit(record: VolumeRecord, action: string, extra: Record<string, string> = {}): void {
    this.#events?.emit({
      type: "volume",
      action,
      id: record.name,
      attributes: { driver: record.driver, ...extra },
    });
  }

  /** Runs `fn` after every earlier operation on volume `name`. */
  #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const result = previous.then(fn);
    const done = result.then(() => {}, () => {});
    this.#locks.set(name, done);
    done.then(() => {
      if (this.#locks.get(name) === done) this.#locks.delete(name);
    });
    return result;
  }
}

/** Whether a record passes Docker's volume filters. */
function matchesFilters(record: VolumeRecord, filters: VolumeFilters): boolean {
  const name = filters.name;
  if (name && name.length > 0 && !name.some((n) => record.name.includes(n))) return false;
  const driver = filters.driver;
  if (driver && driver.length > 0 && !driver.includes(record.driver)) return false;
  for (const label of filters.label ?? []) {
    const eq = label.indexOf("=");
    if (eq < 0 && !(label in record.labels)) return false;
    if (eq >= 0 && record.labels[label.slice(0, eq)] !== label.slice(eq + 1)) return false;
  }
  for (const dangling of filters.dangling ?? []) {
    const want = parseBool(dangling);
    if (want === undefined) throw invalidArgument(`invalid filter 'dangling=${dangling}'`);
    if (want !== (record.refs.length === 0)) return false;
  }
  return true;
}

function parseBool(text: string): boolean | undefined {
  if (["1", "true", "True", "TRUE"].includes(text)) return true;
  if (["0", "false", "False", "FALSE"].includes(text)) return false;
  return undefined;
}

function driverVolume(record: VolumeRecord): DriverVolume {
  return {
    name: record.name,
    options: record.options,
    mountpoint: record.mountpoint,
    status: record.status,
  };
}

function randomVolumeName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes used under `path` (blocks actually allocated, so sparse images count what they hold). */
async function diskUsage(path: string): Promise<number> {
  let total = 0;
  try {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      const info = await Deno.lstat(full);
      total += (info.blocks ?? 0) * 512;
      if (entry.isDirectory) total += await diskUsage(full);
    }
  } catch {
    // Gone or unreadable: counts as nothing.
  }
  return total;
}

/**
 * The metadata store: one SQLite database (`node:sqlite`) under the daemon's home, holding
 * versioned JSON records by kind (containers, execs, images' engine-side records) and the name
 * index. Every write is a transaction that commits before the caller acknowledges anything;
 * reads return copies, so callers never mutate what is stored.
 *
 * The records of a kind are read from SQLite once, on its first read, and then kept in memory
 * (write-through: every write and delete updates the copy after the statement succeeded, and a
 * rolled-back transaction drops them all, to be read again). The daemon is the database's only
 * writer while it runs, so the memory copy is the database. {@link Bucket.view} and
 * {@link Bucket.views} answer the kept records themselves, deep-frozen, for read-only views
 * (`ps`, inspect) that would otherwise parse every record per request; {@link Bucket.version}
 * tells when something derived from a bucket must be recomputed.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { alreadyExists, conflict, notFound } from "./errors.ts";

/** The schema version of the records this code writes. */
export const RECORD_VERSION = 1;

/** A named, typed collection of records in the store. */
export class Bucket<T> {
  readonly #store: Store;
  readonly #kind: string;

  /** Makes the bucket `kind` of `store`. */
  constructor(store: Store, kind: string) {
    this.#store = store;
    this.#kind = kind;
  }

  /** The record `id`, or undefined. */
  find(id: string): T | undefined {
    return this.#store.read<T>(this.#kind, id);
  }

  /** The record `id`; throws NotFound. */
  get(id: string): T {
    const value = this.find(id);
    if (value === undefined) throw notFound(`no ${this.#kind} record ${id}`);
    return value;
  }

  /** Every record of this bucket, in insertion order. */
  list(): T[] {
    return this.#store.readAll<T>(this.#kind);
  }

  /**
   * The record `id` itself, deep-frozen and shared (no copy): for views that only read it. The
   * object is replaced, never changed, when the record is written, so it may key a `WeakMap`.
   */
  view(id: string): Readonly<T> | undefined {
    return this.#store.view<T>(this.#kind, id);
  }

  /** Every record of this bucket itself, deep-frozen and shared, in insertion order. */
  views(): ReadonlyArray<Readonly<T>> {
    return this.#store.viewAll<T>(this.#kind);
  }

  /** A number that changes whenever a record of this bucket is written or deleted. */
  get version(): number {
    return this.#store.version(this.#kind);
  }

  /** Writes (inserts or replaces) the record `id`. */
  put(id: string, value: T): void {
    this.#store.write(this.#kind, id, value);
  }

  /** Deletes the record `id`; a missing record is not an error. */
  delete(id: string): void {
    this.#store.remove(this.#kind, id);
  }
}

/** The daemon's persistent metadata. */
export class Store implements Disposable {
  readonly #db: DatabaseSync;
  readonly #readAll: StatementSync;
  readonly #write: StatementSync;
  readonly #remove: StatementSync;
  readonly #nameGet: StatementSync;
  readonly #nameAdd: StatementSync;
  readonly #nameDel: StatementSync;
  readonly #names: StatementSync;
  #depth = 0;
  /** The records of each kind read so far, by id, in rowid order. */
  readonly #kinds = new Map<string, Map<string, Kept>>();
  /** The frozen records of each kind, in order, until a write of that kind. */
  readonly #viewLists = new Map<string, ReadonlyArray<unknown>>();
  readonly #versions = new Map<string, number>();
  #generation = 0;

  /** Opens (creating if needed) the database at `path` (`:memory:` for tests). */
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    // WAL with synchronous NORMAL: a commit is written to the WAL before the call returns, so a
    // crash of the daemon loses nothing; only a power loss can undo the last commits (never
    // corrupt the file), after which no container is running anyway and the records containerd
    // has without ours are swept at start. FULL would fsync on every commit: about 0.2 ms of
    // blocked event loop per write, several writes per container start and removal.
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (kind, id));
      CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, id TEXT NOT NULL);
    `);
    this.#readAll = this.#db.prepare(
      "SELECT id, data FROM records WHERE kind = ? ORDER BY rowid",
    );
    this.#write = this.#db.prepare(
      "INSERT INTO records (kind, id, version, data) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (kind, id) DO UPDATE SET version = excluded.version, data = excluded.data",
    );
    this.#remove = this.#db.prepare("DELETE FROM records WHERE kind = ? AND id = ?");
    this.#nameGet = this.#db.prepare("SELECT id FROM names WHERE name = ?");
    this.#nameAdd = this.#db.prepare("INSERT INTO names (name, id) VALUES (?, ?)");
    this.#nameDel = this.#db.prepare("DELETE FROM names WHERE name = ?");
    this.#names = this.#db.prepare("SELECT name, id FROM names");
  }

  /** A typed view of the records of `kind`. */
  bucket<T>(kind: string): Bucket<T> {
    return new Bucket<T>(this, kind);
  }

  /** Runs `fn` in one transaction: all its writes commit together or none does. */
  transaction<R>(fn: () => R): R {
    if (this.#depth > 0) return fn();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      this.#forget();
      throw err;
    } finally {
      this.#depth--;
    }
  }

  /** Reserves `name` for `id`; throws Conflict if another object holds it. */
  reserveName(name: string, id: string): void {
    const holder = this.#nameGet.get(name) as { id: string } | undefined;
    if (holder?.id === id) return;
    if (holder) {
      throw conflict(
        `Conflict. The container name "/${name}" is already in use by container "${holder.id}". ` +
          "You have to remove (or rename) that container to be able to reuse that name.",
      );
    }
    try {
      this.#nameAdd.run(name, id);
    } catch (err) {
      throw alreadyExists(`name ${name} is already reserved`, err);
    }
  }

  /** Releases `name`. */
  releaseName(name: string): void {
    this.#nameDel.run(name);
  }

  /** The id holding `name`, if any. */
  nameOwner(name: string): string | undefined {
    return (this.#nameGet.get(name) as { id: string } | undefined)?.id;
  }

  /** Every reserved name with its holder. */
  names(): Array<{ name: string; id: string }> {
    return (this.#names.all() as Array<{ name: string; id: string }>).map((row) => ({
      name: row.name,
      id: row.id,
    }));
  }

  /** @internal */
  read<T>(kind: string, id: string): T | undefined {
    const kept = this.#kept(kind).get(id);
    return kept ? JSON.parse(kept.data) as T : undefined;
  }

  /** @internal */
  readAll<T>(kind: string): T[] {
    return Array.from(this.#kept(kind).values(), (kept) => JSON.parse(kept.data) as T);
  }

  /** @internal */
  view<T>(kind: string, id: string): Readonly<T> | undefined {
    const kept = this.#kept(kind).get(id);
    return kept ? frozen(kept) as T : undefined;
  }

  /** @internal */
  viewAll<T>(kind: string): ReadonlyArray<Readonly<T>> {
    let views = this.#viewLists.get(kind);
    if (!views) {
      views = Object.freeze(Array.from(this.#kept(kind).values(), frozen));
      this.#viewLists.set(kind, views);
    }
    return views as ReadonlyArray<Readonly<T>>;
  }

  /** @internal */
  version(kind: string): number {
    return this.#versions.get(kind) ?? 0;
  }

  /** @internal */
  write(kind: string, id: string, value: unknown): void {
    const data = JSON.stringify(value);
    const kept = this.#kept(kind);
    this.#write.run(kind, id, RECORD_VERSION, data);
    kept.set(id, { data });
    this.#changed(kind);
  }

  /** @internal */
  remove(kind: string, id: string): void {
    const kept = this.#kept(kind);
    this.#remove.run(kind, id);
    kept.delete(id);
    this.#changed(kind);
  }

  /** The records of `kind`, read from the database on first use. */
  #kept(kind: string): Map<string, Kept> {
    let kept = this.#kinds.get(kind);
    if (!kept) {
      const rows = this.#readAll.all(kind) as Array<{ id: string; data: string }>;
      kept = new Map(rows.map((row) => [row.id, { data: row.data }]));
      this.#kinds.set(kind, kept);
    }
    return kept;
  }

  #changed(kind: string): void {
    this.#viewLists.delete(kind);
    this.#versions.set(kind, ++this.#generation);
  }

  /** Drops every kept record (a transaction rolled back): they are read again when needed. */
  #forget(): void {
    for (const kind of this.#kinds.keys()) this.#changed(kind);
    this.#kinds.clear();
  }

  /** Closes the database. */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  /** Closes the database. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A record kept in memory: its JSON, and the frozen object once a view asked for it. */
interface Kept {
  readonly data: string;
  value?: unknown;
}

function frozen(kept: Kept): unknown {
  kept.value ??= deepFreeze(JSON.parse(kept.data));
  return kept.value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

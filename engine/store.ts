/**
 * The metadata store: one SQLite database (`node:sqlite`) under the daemon's home, holding
 * versioned JSON records by kind (containers, execs, images' engine-side records) and the name
 * index. Every write is a transaction that commits before the caller acknowledges anything;
 * reads return copies, so callers never mutate what is stored.
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

  /** Every record of this bucket. */
  list(): T[] {
    return this.#store.readAll<T>(this.#kind);
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
  readonly #read: StatementSync;
  readonly #readAll: StatementSync;
  readonly #write: StatementSync;
  readonly #remove: StatementSync;
  readonly #nameGet: StatementSync;
  readonly #nameAdd: StatementSync;
  readonly #nameDel: StatementSync;
  readonly #names: StatementSync;
  #depth = 0;

  /** Opens (creating if needed) the database at `path` (`:memory:` for tests). */
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS records (
        kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (kind, id));
      CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, id TEXT NOT NULL);
    `);
    this.#read = this.#db.prepare("SELECT data FROM records WHERE kind = ? AND id = ?");
    this.#readAll = this.#db.prepare("SELECT data FROM records WHERE kind = ? ORDER BY rowid");
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
    const row = this.#read.get(kind, id) as { data: string } | undefined;
    return row ? JSON.parse(row.data) as T : undefined;
  }

  /** @internal */
  readAll<T>(kind: string): T[] {
    return (this.#readAll.all(kind) as Array<{ data: string }>).map((row) =>
      JSON.parse(row.data) as T
    );
  }

  /** @internal */
  write(kind: string, id: string, value: unknown): void {
    this.#write.run(kind, id, RECORD_VERSION, JSON.stringify(value));
  }

  /** @internal */
  remove(kind: string, id: string): void {
    this.#remove.run(kind, id);
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

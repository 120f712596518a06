import assert from "node:assert/strict";
import { kindOf } from "../engine/errors.ts";
import {
  type DriverVolume,
  parseSize,
  validateVolumeName,
  type VolumeBucket,
  type VolumeDriver,
  VolumeManager,
  type VolumeStore,
} from "./mod.ts";

/** An in-memory store: buckets of copied JSON, transactions that roll back on a throw. */
class FakeStore implements VolumeStore {
  data = new Map<string, string>();
  bucket<T>(kind: string): VolumeBucket<T> {
    const key = (id: string) => `${kind}/${id}`;
    return {
      find: (id) => {
        const text = this.data.get(key(id));
        return text === undefined ? undefined : JSON.parse(text) as T;
      },
      list: () =>
        [...this.data.entries()].filter(([k]) => k.startsWith(`${kind}/`)).map(([, v]) =>
          JSON.parse(v) as T
        ),
      put: (id, value) => void this.data.set(key(id), JSON.stringify(value)),
      delete: (id) => void this.data.delete(key(id)),
    };
  }
  transaction<R>(fn: () => R): R {
    const saved = new Map(this.data);
    try {
      return fn();
    } catch (err) {
      this.data = saved;
      throw err;
    }
  }
}

/** A driver that records calls and can be told to fail. */
class FakeDriver implements VolumeDriver {
  readonly name: string;
  calls: string[] = [];
  failMount = false;
  constructor(name = "local") {
    this.name = name;
  }
  create(name: string, options: Record<string, string>): Promise<DriverVolume> {
    if (options.bad) return Promise.reject(new Error("bad option"));
    this.calls.push(`create ${name}`);
    return Promise.resolve({ name, options, mountpoint: `/v/${name}/_data`, status: {} });
  }
  remove(volume: DriverVolume): Promise<void> {
    this.calls.push(`remove ${volume.name}`);
    return Promise.resolve();
  }
  path(volume: DriverVolume): string {
    return volume.mountpoint;
  }
  mount(volume: DriverVolume, id: string): Promise<string> {
    if (this.failMount) return Promise.reject(new Error("mount failed"));
    this.calls.push(`mount ${volume.name} ${id}`);
    return Promise.resolve(volume.mountpoint);
  }
  unmount(volume: DriverVolume, id: string): Promise<void> {
    this.calls.push(`unmount ${volume.name} ${id}`);
    return Promise.resolve();
  }
  restore(): Promise<void> {
    return Promise.resolve();
  }
  capabilities() {
    return { scope: "local" as const };
  }
}

function setup() {
  const store = new FakeStore();
  const local = new FakeDriver();
  const events: string[] = [];
  const volumes = new VolumeManager({
    store,
    drivers: [local, new FakeDriver("tmpfs")],
    events: { emit: (e) => events.push(`${e.action} ${e.id}`) },
  });
  return { store, local, volumes, events };
}

async function rejectsWith(promise: Promise<unknown>, kind: string, message?: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(kindOf(err), kind);
    if (message) assert.match((err as Error).message, message);
    return true;
  });
}

Deno.test("validateVolumeName() accepts Docker's names and refuses paths", () => {
  for (const good of ["data", "a", "web_1.db-x", "0abc"]) {
    assert.equal(validateVolumeName(good), good);
  }
  for (const bad of ["a/b", "..", "-x", "_x", ".hidden", "a..b", "", "a b", "x:y"]) {
    assert.throws(
      () => validateVolumeName(bad),
      (err: unknown) => kindOf(err) === "InvalidArgument",
    );
  }
});

Deno.test("parseSize() reads Docker's sizes", () => {
  assert.equal(parseSize("1024"), 1024);
  assert.equal(parseSize("8m"), 8 * 1024 * 1024);
  assert.equal(parseSize("10G"), 10 * 1024 ** 3);
  assert.equal(parseSize("512KiB"), 512 * 1024);
  assert.equal(parseSize("1.5k"), 1536);
  assert.equal(parseSize("2 MB"), 2 * 1024 * 1024);
  for (const bad of ["", "x", "10X", "-1", "0", "1..2m"]) {
    assert.throws(() => parseSize(bad), (err: unknown) => kindOf(err) === "InvalidArgument");
  }
});

Deno.test("create() is idempotent per driver and refuses bad names and drivers", async () => {
  const { volumes, local, store } = setup();
  const created = await volumes.create({ Name: "data", Labels: { app: "db" } });
  assert.equal(created.Mountpoint, "/v/data/_data");
  assert.deepEqual(created.Labels, { app: "db" });
  assert.equal((await volumes.create({ Name: "data" })).CreatedAt, created.CreatedAt);
  assert.deepEqual(local.calls, ["create data"]);
  await rejectsWith(volumes.create({ Name: "data", Driver: "tmpfs" }), "Conflict");
  await rejectsWith(volumes.create({ Name: "a/b" }), "InvalidArgument", /invalid characters/);
  await rejectsWith(volumes.create({ Name: "x", Driver: "nfs" }), "InvalidArgument", /not found/);
  await assert.rejects(volumes.create({ Name: "y", DriverOpts: { bad: "1" } }), /bad option/);
  assert.deepEqual([...store.data.keys()], ["volume/data"]);
  const anonymous = await volumes.create({});
  assert.match(anonymous.Name, /^[0-9a-f]{64}$/);
});

Deno.test("list() filters by name, driver, label and dangling", async () => {
  const { volumes } = setup();
  await volumes.create({ Name: "web-data", Labels: { app: "web", tier: "front" } });
  await volumes.create({ Name: "db-data", Labels: { app: "db" } });
  await volumes.create({ Name: "cache", Driver: "tmpfs" });
  await volumes.attach("db-data", "c1");
  const names = (filters: Record<string, string[]>) =>
    volumes.list(filters).map((v) => v.Name).sort();
  assert.deepEqual(names({}), ["cache", "db-data", "web-data"]);
  assert.deepEqual(names({ name: ["data"] }), ["db-data", "web-data"]);
  assert.deepEqual(names({ driver: ["tmpfs"] }), ["cache"]);
  assert.deepEqual(names({ label: ["app"] }), ["db-data", "web-data"]);
  assert.deepEqual(names({ label: ["app=web"] }), ["web-data"]);
  assert.deepEqual(names({ label: ["app", "tier=front"] }), ["web-data"]);
  assert.deepEqual(names({ dangling: ["true"] }), ["cache", "web-data"]);
  assert.deepEqual(names({ dangling: ["false"] }), ["db-data"]);
  assert.throws(
    () => volumes.list({ color: ["x"] }),
    (e: unknown) => kindOf(e) === "InvalidArgument",
  );
  assert.throws(
    () => volumes.list({ dangling: ["maybe"] }),
    (e: unknown) => kindOf(e) === "InvalidArgument",
  );
});

Deno.test("a volume in use cannot be removed until every container detached", async () => {
  const { volumes, local, store, events } = setup();
  const attached = await volumes.attach("data", "c1", { destination: "/data" });
  assert.deepEqual(attached, { name: "data", driver: "local", source: "/v/data/_data" });
  await volumes.attach("data", "c2");
  await volumes.attach("data", "c2");
  assert.equal(volumes.get("data").UsageData.RefCount, 2);
  // The references are persisted: a new manager on the same store sees them.
  const again = new VolumeManager({ store, drivers: [local] });
  assert.deepEqual(again.record("data").refs, ["c1", "c2"]);
  await rejectsWith(volumes.remove("data"), "Conflict", /volume is in use - \[c1, c2\]/);
  await rejectsWith(volumes.remove("data", { force: true }), "Conflict");
  await volumes.detach("data", "c1");
  await volumes.detach("data", "c1");
  await rejectsWith(volumes.remove("data"), "Conflict", /\[c2\]/);
  await volumes.detach("data", "c2");
  await volumes.remove("data");
  await rejectsWith(volumes.remove("data"), "NotFound", /get data: no such volume/);
  await volumes.remove("data", { force: true });
  assert.deepEqual(events, [
    "create data",
    "mount data",
    "mount data",
    "mount data",
    "unmount data",
    "unmount data",
    "destroy data",
  ]);
});

Deno.test("attach() takes its reference back when the driver cannot mount", async () => {
  const { volumes, local } = setup();
  await volumes.create({ Name: "data" });
  local.failMount = true;
  await assert.rejects(volumes.attach("data", "c1"), /mount failed/);
  assert.deepEqual(volumes.record("data").refs, []);
  await rejectsWith(volumes.attach("../etc", "c1"), "InvalidArgument");
});

Deno.test("prune() removes unused volumes matching the label filter", async () => {
  const { volumes } = setup();
  await volumes.create({ Name: "keep", Labels: { keep: "yes" } });
  await volumes.create({ Name: "old" });
  await volumes.attach("used", "c1");
  assert.deepEqual((await volumes.prune({ label: ["keep=yes"] })).VolumesDeleted, ["keep"]);
  assert.deepEqual((await volumes.prune()).VolumesDeleted, ["old"]);
  assert.deepEqual(volumes.list().map((v) => v.Name), ["used"]);
});

Deno.test("restore() drops references of containers that are gone", async () => {
  const { volumes } = setup();
  await volumes.attach("data", "gone");
  await volumes.attach("data", "alive");
  await volumes.restore({ liveContainers: new Set(["alive"]) });
  assert.deepEqual(volumes.record("data").refs, ["alive"]);
});

Deno.test("inspect() shows built-in volumes as recorded", async () => {
  const { volumes } = setup();
  const created = await volumes.create({ Name: "data" });
  assert.deepEqual(await volumes.inspect("data"), created);
  await rejectsWith(volumes.inspect("nope"), "NotFound", /no such volume/);
});

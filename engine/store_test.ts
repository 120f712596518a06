import assert from "node:assert/strict";
import { Store } from "./store.ts";
import { isConflict } from "./errors.ts";

Deno.test("Store persists records across reopening", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/meta.db`;
    {
      using store = new Store(path);
      store.bucket<{ n: number }>("thing").put("a", { n: 1 });
    }
    using store = new Store(path);
    assert.deepEqual(store.bucket<{ n: number }>("thing").get("a"), { n: 1 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Store.transaction() rolls back every write when the function throws", () => {
  using store = new Store(":memory:");
  const bucket = store.bucket<string>("x");
  assert.throws(() =>
    store.transaction(() => {
      bucket.put("a", "1");
      store.reserveName("web", "a");
      throw new Error("boom");
    })
  );
  assert.equal(bucket.find("a"), undefined);
  assert.equal(store.nameOwner("web"), undefined);
});

Deno.test("Store.reserveName() refuses a name held by another id", () => {
  using store = new Store(":memory:");
  store.reserveName("web", "a");
  store.reserveName("web", "a");
  assert.throws(() => store.reserveName("web", "b"), isConflict);
  store.releaseName("web");
  store.reserveName("web", "b");
  assert.equal(store.nameOwner("web"), "b");
});

Deno.test("Bucket returns copies, not the stored object", () => {
  using store = new Store(":memory:");
  const bucket = store.bucket<{ list: number[] }>("x");
  bucket.put("a", { list: [1] });
  bucket.get("a").list.push(2);
  assert.deepEqual(bucket.get("a"), { list: [1] });
});

Deno.test("Bucket.view() answers the kept record, frozen, until the record is written", () => {
  using store = new Store(":memory:");
  const bucket = store.bucket<{ n: number; list: number[] }>("x");
  bucket.put("a", { n: 1, list: [1] });
  const first = bucket.view("a")!;
  assert.deepEqual(first, { n: 1, list: [1] });
  assert.equal(bucket.view("a"), first);
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.list));
  assert.throws(() => (first.list as number[]).push(2), TypeError);
  const version = bucket.version;
  bucket.put("a", { n: 2, list: [] });
  assert.notEqual(bucket.version, version);
  assert.deepEqual(bucket.view("a"), { n: 2, list: [] });
  assert.deepEqual(first, { n: 1, list: [1] });
  bucket.delete("a");
  assert.equal(bucket.view("a"), undefined);
});

Deno.test("Bucket.views() keeps insertion order across updates and deletes", () => {
  using store = new Store(":memory:");
  const bucket = store.bucket<string>("x");
  for (const id of ["a", "b", "c"]) bucket.put(id, id);
  const views = bucket.views();
  assert.equal(bucket.views(), views);
  bucket.put("a", "A");
  bucket.delete("b");
  bucket.put("d", "d");
  assert.deepEqual(bucket.views(), ["A", "c", "d"]);
  assert.deepEqual(bucket.list(), ["A", "c", "d"]);
  assert.deepEqual(views, ["a", "b", "c"]);
  assert.equal(store.bucket<string>("y").views().length, 0);
});

Deno.test("Store keeps records in memory as the database has them, across a rollback", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/meta.db`;
    {
      using store = new Store(path);
      const bucket = store.bucket<{ n: number }>("thing");
      bucket.put("a", { n: 1 });
      bucket.put("b", { n: 2 });
      assert.deepEqual(bucket.views(), [{ n: 1 }, { n: 2 }]);
      const version = bucket.version;
      assert.throws(() =>
        store.transaction(() => {
          bucket.put("a", { n: 10 });
          bucket.delete("b");
          bucket.put("c", { n: 3 });
          assert.deepEqual(bucket.views(), [{ n: 10 }, { n: 3 }]);
          throw new Error("boom");
        })
      );
      assert.notEqual(bucket.version, version);
      assert.deepEqual(bucket.views(), [{ n: 1 }, { n: 2 }]);
      assert.deepEqual(bucket.find("a"), { n: 1 });
      assert.equal(bucket.find("c"), undefined);
      // Another bucket of the same kind shares the kept records.
      store.bucket<{ n: number }>("thing").put("b", { n: 20 });
      assert.deepEqual(bucket.view("b"), { n: 20 });
    }
    using store = new Store(path);
    assert.deepEqual(store.bucket<{ n: number }>("thing").views(), [{ n: 1 }, { n: 20 }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

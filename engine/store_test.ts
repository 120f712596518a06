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

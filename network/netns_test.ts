import assert from "node:assert/strict";
import { createNetns, inNetns, isNetnsMounted, mountedNetns, removeNetns } from "./netns.ts";

Deno.test("createNetns() makes a persistent namespace with lo up; removeNetns() ends it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pouch-netns-" });
  const path = `${dir}/ns/one`;
  const ownNamespace = () => Deno.readLinkSync("/proc/thread-self/ns/net");
  const before = ownNamespace();
  try {
    await createNetns(path);
    assert.ok(await isNetnsMounted(path));
    // Made from this thread, which is back in its own namespace.
    assert.equal(ownNamespace(), before);
    assert.notEqual(Deno.statSync(path).ino, Deno.statSync("/proc/thread-self/ns/net").ino);
    // Idempotent: a second create keeps the same namespace.
    await createNetns(path);
    assert.equal((await mountedNetns(`${dir}/ns`)).size, 1);
    const links = await inNetns(path, ["ip", "-o", "link"]);
    assert.deepEqual(links.trim().split("\n").map((l) => l.split(":")[1]!.trim()), ["lo"]);
    assert.match(links, /state UNKNOWN|LOWER_UP/);
    await removeNetns(path);
    assert.ok(!await isNetnsMounted(path));
    await assert.rejects(() => Deno.stat(path), Deno.errors.NotFound);
    // Removing a missing one is not an error.
    await removeNetns(path);
  } finally {
    await removeNetns(path).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

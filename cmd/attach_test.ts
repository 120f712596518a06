import assert from "node:assert/strict";
import { detachKeyBytes, DetachWatcher } from "./attach.ts";
import { UsageError } from "./flags.ts";

Deno.test("detachKeyBytes() reads Docker's detach key format", () => {
  assert.deepEqual(detachKeyBytes("ctrl-p,ctrl-q"), Uint8Array.of(0x10, 0x11));
  assert.deepEqual(detachKeyBytes("ctrl-a,x,ctrl-_"), Uint8Array.of(1, 0x78, 31));
  assert.throws(() => detachKeyBytes("ctrl-1"), UsageError);
  assert.throws(() => detachKeyBytes("esc"), UsageError);
});

Deno.test("DetachWatcher sees typed keys, across reads, but not inside pasted data", () => {
  const watcher = new DetachWatcher(Uint8Array.of(0x10, 0x11));
  assert.equal(watcher.feed(Uint8Array.of(0x10)), false);
  assert.equal(watcher.feed(Uint8Array.of(0x11)), true);
  assert.equal(watcher.seen, true);
  const other = new DetachWatcher(Uint8Array.of(0x10, 0x11));
  assert.equal(other.feed(Uint8Array.of(0x41, 0x10, 0x11, 0x42)), false);
  assert.equal(other.feed(Uint8Array.of(0x10, 0x10)), false);
  assert.equal(other.feed(Uint8Array.of(0x11)), true);
});

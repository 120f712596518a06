import assert from "node:assert/strict";
import { startMemoryReclaimer } from "./memory.ts";
import { sleep } from "./sleep.ts";

Deno.test("trimMalloc() gives freed heap memory back", async () => {
  // In a child with the garbage collector exposed: 64 MB of small native allocations (below
  // glibc's mmap threshold, so on its heap) are freed but for one at the top of the heap, which
  // keeps glibc from shrinking the heap on its own.
  const script = `
    import { trimMalloc } from ${JSON.stringify(new URL("./memory.ts", import.meta.url).href)};
    const rssAnon = () => Number(Deno.readTextFileSync("/proc/self/status").match(/RssAnon:\\s+(\\d+)/)[1]);
    let held = [];
    for (let i = 0; i < 2000; i++) held.push(new Uint8Array(32 * 1024).fill(1));
    const top = new Uint8Array(32 * 1024).fill(2);
    held = [];
    for (let i = 0; i < 3; i++) globalThis.gc();
    const before = rssAnon();
    const trimmed = trimMalloc();
    console.log(JSON.stringify({ before, after: rssAnon(), trimmed, top: top[0] }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(result.trimmed, true);
  assert.equal(result.top, 2);
  assert.ok(
    result.after < result.before - 32 * 1024,
    `RssAnon ${result.before} kB -> ${result.after} kB`,
  );
});

Deno.test("startMemoryReclaimer() collects once after each burst of work, never during one", async () => {
  let activity = { served: 0, inFlight: 0 };
  const collected: number[] = [];
  const stop = startMemoryReclaimer({
    tickMs: 20,
    minCollectionIntervalMs: 300,
    activity: () => activity,
    collect: () => collected.push(activity.served),
  });
  try {
    // Quiet from the start: what the start-up left is collected.
    await sleep(100);
    assert.deepEqual(collected, [0]);
    // Busy: requests are answered while others are in flight.
    for (let i = 1; i <= 10; i++) {
      activity = { served: i, inFlight: 1 };
      await sleep(25);
    }
    assert.deepEqual(collected, [0]);
    // The burst is over: one collection, then none while idle.
    activity = { served: 11, inFlight: 0 };
    await sleep(100);
    assert.deepEqual(collected, [0, 11]);
    // Another burst right away waits for the minimum interval.
    activity = { served: 12, inFlight: 0 };
    await sleep(60);
    assert.deepEqual(collected, [0, 11]);
    await sleep(400);
    assert.deepEqual(collected, [0, 11, 12]);
  } finally {
    stop();
  }
});

import assert from "node:assert/strict";

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

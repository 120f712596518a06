import assert from "node:assert/strict";
import { ApiError, ConnectError } from "./client.ts";
import { type CommandContext, forEachArgInParallel, PARALLEL_LIMIT } from "./command.ts";
import { BufferWriter } from "./stream.ts";

/** A context whose standard output and error are kept; no daemon behind it. */
function capturing() {
  const stdout = new BufferWriter();
  const stderr = new BufferWriter();
  const ctx = { stdout, stderr } as unknown as CommandContext;
  return { ctx, stdout, stderr };
}

Deno.test("forEachArgInParallel runs the calls at once and reports them in argument order", async () => {
  const { ctx, stdout, stderr } = capturing();
  let running = 0;
  let most = 0;
  const names = Array.from({ length: PARALLEL_LIMIT + 10 }, (_, i) => `c${i}`);
  const code = await forEachArgInParallel(ctx, names, async (name) => {
    most = Math.max(most, ++running);
    // Later arguments finish first, so that order comes from the reporting, not the calls.
    await new Promise((resolve) => setTimeout(resolve, (names.length - names.indexOf(name)) % 7));
    running--;
    if (name === "c3") throw new ApiError("No such container: c3", 404);
    return name;
  });
  assert.equal(code, 1);
  assert.equal(most, PARALLEL_LIMIT);
  assert.equal(stdout.text(), names.filter((n) => n !== "c3").map((n) => `${n}\n`).join(""));
  assert.match(stderr.text(), /No such container: c3/);
});

Deno.test("forEachArgInParallel gives up on a daemon it cannot reach, once the calls ended", async () => {
  const { ctx, stdout } = capturing();
  let ended = 0;
  const failure = await forEachArgInParallel(ctx, ["a", "b", "c"], async (name) => {
    await new Promise((resolve) => setTimeout(resolve, name === "a" ? 1 : 5));
    ended++;
    if (name === "a") throw new ConnectError("unix:///nowhere.sock");
    return name;
  }).catch((err) => err);
  assert(failure instanceof ConnectError);
  assert.equal(ended, 3);
  assert.equal(stdout.text(), "");
  assert.equal(await forEachArgInParallel(ctx, [], () => Promise.resolve("")), 0);
});

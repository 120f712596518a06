import assert from "node:assert/strict";
import { parseSignal } from "./signals.ts";
import { isInvalidArgument } from "./errors.ts";

Deno.test("parseSignal() accepts numbers, names with and without SIG, and RTMIN+N", () => {
  assert.equal(parseSignal("9"), 9);
  assert.equal(parseSignal("KILL"), 9);
  assert.equal(parseSignal("sigterm"), 15);
  assert.equal(parseSignal("SIGRTMIN+3"), 37);
});

Deno.test("parseSignal() refuses unknown names and out-of-range numbers", () => {
  for (const bad of ["NOPE", "0", "65", "", "RTMIN+40"]) {
    assert.throws(() => parseSignal(bad), isInvalidArgument, bad);
  }
});

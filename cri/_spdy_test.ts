import assert from "node:assert/strict";
import { decodeHeaderBlock, encodeHeaderBlock, SPDY_DICTIONARY } from "./_spdy.ts";

/** zlib's Adler-32 checksum, which a stream's header names its dictionary by. */
function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

Deno.test("SPDY_DICTIONARY is the SPDY/3 dictionary (the ID zlib peers check)", () => {
  assert.equal(SPDY_DICTIONARY.length, 1423);
  assert.equal(adler32(SPDY_DICTIONARY), 3821447106);
});

Deno.test("header blocks round-trip with lower-case names and NUL-joined values", () => {
  const block = encodeHeaderBlock({ StreamType: ["error"], "x-multi": ["a", "b"] });
  assert.deepEqual(decodeHeaderBlock(block), { streamtype: ["error"], "x-multi": ["a", "b"] });
  assert.throws(() => decodeHeaderBlock(block.subarray(0, 6)), /truncated/);
});

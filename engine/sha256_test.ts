import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Sha256, sha256Digest } from "./sha256.ts";

const reference = (parts: (Uint8Array | string)[]) => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return `sha256:${hash.digest("hex")}`;
};

Deno.test("sha256Digest matches node:crypto for empty, text and bytes", () => {
  assert.equal(
    sha256Digest(""),
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(sha256Digest("sha256:a sha256:b ü"), reference(["sha256:a sha256:b ü"]));
  const bytes = crypto.getRandomValues(new Uint8Array(4096));
  assert.equal(sha256Digest(bytes), reference([bytes]));
});

Deno.test("Sha256 streams: chunks of any size and offset give the whole's digest", () => {
  const whole = new Uint8Array(3 << 20);
  for (let i = 0; i < whole.length; i += 65536) {
    crypto.getRandomValues(whole.subarray(i, Math.min(i + 65536, whole.length)));
  }
  const hash = new Sha256();
  const sizes = [0, 1, 63, 64, 65, 1000, 65536, 1 << 20];
  let at = 0;
  for (let i = 0; at < whole.length; i++) {
    const size = Math.min(sizes[i % sizes.length]!, whole.length - at);
    hash.update(whole.subarray(at, at + size));
    at += size;
  }
  assert.equal(hash.digest(), reference([whole]));
});

Deno.test("Sha256 refuses data after its digest, and a second digest", () => {
  const hash = new Sha256().update("x");
  hash.digest();
  assert.throws(() => hash.update("y"), /after digest/);
  assert.throws(() => hash.digest(), /twice/);
});

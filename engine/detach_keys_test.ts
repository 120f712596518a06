import assert from "node:assert/strict";
import { DEFAULT_DETACH_KEYS, DetachKeyMatcher, parseDetachKeys } from "./detach_keys.ts";
import { isInvalidArgument } from "./errors.ts";

const bytes = (...codes: number[]) => Uint8Array.from(codes);

Deno.test("parseDetachKeys() reads Docker's format", () => {
  assert.deepEqual(parseDetachKeys(undefined), DEFAULT_DETACH_KEYS);
  assert.deepEqual(parseDetachKeys(""), bytes(0x10, 0x11));
  assert.deepEqual(parseDetachKeys("ctrl-p,ctrl-q"), bytes(0x10, 0x11));
  assert.deepEqual(parseDetachKeys("ctrl-a,x"), bytes(1, 0x78));
  assert.deepEqual(
    parseDetachKeys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_"),
    bytes(0, 27, 28, 29, 30, 31),
  );
});

Deno.test("parseDetachKeys() refuses unknown keys with Docker's message", () => {
  for (const keys of ["ctrl-1", "ctrl-", "ctrl-P", "ab", "ctrl-p,", "é"]) {
    assert.throws(() => parseDetachKeys(keys), (err: unknown) => {
      assert.ok(isInvalidArgument(err), keys);
      assert.equal((err as Error).message, `Invalid detach keys (${keys}) provided`);
      return true;
    });
  }
});

Deno.test("DetachKeyMatcher detaches on the typed sequence and passes other input on", () => {
  const matcher = new DetachKeyMatcher(DEFAULT_DETACH_KEYS);
  assert.deepEqual(matcher.feed(bytes(0x61)), { forward: bytes(0x61), detached: false });
  // Ctrl-P is held back until the next key decides.
  assert.deepEqual(matcher.feed(bytes(0x10)), { forward: bytes(), detached: false });
  assert.deepEqual(matcher.feed(bytes(0x11)), { forward: bytes(), detached: true });
  // Both keys in one read (a terminal multiplexer sends them together).
  assert.deepEqual(matcher.feed(bytes(0x10, 0x11)), { forward: bytes(), detached: true });
});

Deno.test("DetachKeyMatcher gives back held keys when the sequence breaks", () => {
  const matcher = new DetachKeyMatcher(DEFAULT_DETACH_KEYS);
  matcher.feed(bytes(0x10));
  assert.deepEqual(matcher.feed(bytes(0x62)), { forward: bytes(0x10, 0x62), detached: false });
  matcher.feed(bytes(0x10));
  // Ctrl-P Ctrl-P: the first goes through, the second may still start the sequence.
  assert.deepEqual(matcher.feed(bytes(0x10)), { forward: bytes(0x10), detached: false });
  assert.deepEqual(matcher.feed(bytes(0x11)), { forward: bytes(), detached: true });
  matcher.feed(bytes(0x10));
  assert.deepEqual(matcher.flush(), bytes(0x10));
  assert.deepEqual(matcher.flush(), bytes());
});

Deno.test("DetachKeyMatcher lets pasted or piped data through untouched", () => {
  const matcher = new DetachKeyMatcher(DEFAULT_DETACH_KEYS);
  const data = bytes(0x41, 0x10, 0x11, 0x42);
  assert.deepEqual(matcher.feed(data), { forward: data, detached: false });
  matcher.feed(bytes(0x10));
  // A large chunk after a held key: the key goes first.
  assert.deepEqual(matcher.feed(data).forward, bytes(0x10, 0x41, 0x10, 0x11, 0x42));
});

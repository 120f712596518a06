import assert from "node:assert/strict";
import {
  acceptableAuthority,
  AuthorityRewriter,
  encodeHeaderBlock,
  type HeaderField,
  HpackDecoder,
  huffmanDecode,
} from "./_h2_authority.ts";

const hex = (text: string) =>
  Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (byte) => parseInt(byte, 16));

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  out.set([payload.length >> 16, (payload.length >> 8) & 0xff, payload.length & 0xff, type, flags]);
  new DataView(out.buffer).setUint32(5, streamId);
  out.set(payload, 9);
  return out;
}

/** Splits a rewritten stream back into frames (after the preface). */
function frames(bytes: Uint8Array): Array<{ type: number; flags: number; payload: Uint8Array }> {
  const out = [];
  let pos = PREFACE.length;
  while (pos < bytes.length) {
    const length = (bytes[pos]! << 16) | (bytes[pos + 1]! << 8) | bytes[pos + 2]!;
    out.push({
      type: bytes[pos + 3]!,
      flags: bytes[pos + 4]!,
      payload: bytes.slice(pos + 9, pos + 9 + length),
    });
    pos += 9 + length;
  }
  return out;
}

Deno.test("huffmanDecode() decodes RFC 7541's example (C.4.1)", () => {
  const decoded = huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"));
  assert.equal(new TextDecoder().decode(decoded), "www.example.com");
  assert.throws(() => huffmanDecode(hex("f1e3 00")), /padding|Huffman/);
});

Deno.test("HpackDecoder keeps the dynamic table across blocks (RFC 7541 C.3, C.4)", () => {
  const plain = new HpackDecoder();
  assert.deepEqual(plain.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")), [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
  ]);
  assert.deepEqual(plain.decode(hex("8286 84be 5808 6e6f 2d63 6163 6865")), [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ]);
  const huffman = new HpackDecoder();
  huffman.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
  assert.deepEqual(huffman.decode(hex("8286 84be 5886 a8eb 1064 9cbf")).at(-1), [
    "cache-control",
    "no-cache",
  ]);
});

Deno.test("encodeHeaderBlock() output decodes to the same fields", () => {
  const fields: HeaderField[] = [
    [":path", "/runtime.v1.RuntimeService/Version"],
    ["x-long", "v".repeat(300)],
    ["user-agent", "grpc-go/1.51.0"],
  ];
  assert.deepEqual(new HpackDecoder().decode(encodeHeaderBlock(fields)), fields);
});

Deno.test("acceptableAuthority() keeps host names and replaces socket paths", () => {
  assert.equal(acceptableAuthority("localhost"), "localhost");
  assert.equal(acceptableAuthority("[::1]:10010"), "[::1]:10010");
  assert.equal(acceptableAuthority("/var/run/pouchcri.sock"), "localhost");
  assert.equal(acceptableAuthority("var/run/pouchcri.sock"), "localhost");
});

Deno.test("AuthorityRewriter rewrites a split, padded header block and passes the rest", () => {
  const block = encodeHeaderBlock([
    [":method", "POST"],
    [":authority", "/tmp/cri.sock"],
    [":path", "/runtime.v1.RuntimeService/Version"],
  ]);
  const settings = frame(0x4, 0, 0, new Uint8Array(6));
  // HEADERS with 3 bytes of padding holding the first part, then a CONTINUATION.
  const first = new Uint8Array([3, ...block.subarray(0, 10), 0, 0, 0]);
  const input = [
    PREFACE,
    settings,
    frame(0x1, 0x8 | 0x1, 1, first),
    frame(0x9, 0x4, 1, block.subarray(10)),
    frame(0x0, 0x1, 1, new Uint8Array([1, 2, 3])),
  ];
  const all = new Uint8Array(input.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of input) {
    all.set(part, offset);
    offset += part.length;
  }
  const rewriter = new AuthorityRewriter();
  const out: Uint8Array[] = [];
  // In small pieces, as a socket may deliver them.
  for (let i = 0; i < all.length; i += 7) out.push(...rewriter.push(all.subarray(i, i + 7)));
  const bytes = new Uint8Array(out.reduce((n, p) => n + p.length, 0));
  offset = 0;
  for (const part of out) {
    bytes.set(part, offset);
    offset += part.length;
  }
  assert.deepEqual(bytes.subarray(0, PREFACE.length), PREFACE);
  const [settingsOut, headers, data] = frames(bytes);
  assert.equal(settingsOut!.type, 0x4);
  assert.equal(headers!.type, 0x1);
  // END_STREAM kept, END_HEADERS set, no padding.
  assert.equal(headers!.flags, 0x1 | 0x4);
  assert.deepEqual(new HpackDecoder().decode(headers!.payload), [
    [":method", "POST"],
    [":authority", "localhost"],
    [":path", "/runtime.v1.RuntimeService/Version"],
  ]);
  assert.deepEqual(data!.payload, new Uint8Array([1, 2, 3]));
  assert.throws(() => new AuthorityRewriter().push(new Uint8Array(30)), /preface/);
});

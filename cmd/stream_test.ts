import assert from "node:assert/strict";
import { BufferWriter, copyOutput, Demultiplexer, encodeFrame } from "./stream.ts";

const text = (p: Uint8Array) => new TextDecoder().decode(p);

Deno.test("Demultiplexer decodes frames split at any byte", () => {
  const wire = new Uint8Array([
    ...encodeFrame(1, "hello "),
    ...encodeFrame(2, "oops\n"),
    ...encodeFrame(1, ""),
    ...encodeFrame(1, "world\n"),
  ]);
  for (const step of [1, 3, 7, 8, 9, wire.length]) {
    const demux = new Demultiplexer();
    const frames = [];
    for (let i = 0; i < wire.length; i += step) {
      frames.push(...demux.push(wire.subarray(i, i + step)));
    }
    assert.deepEqual(
      frames.map((f) => [f.stream, text(f.data)]),
      [[1, "hello "], [2, "oops\n"], [1, ""], [1, "world\n"]],
      `step ${step}`,
    );
    assert.equal(demux.pendingBytes, 0);
  }
});

Deno.test("Demultiplexer reads the length as uint32 big-endian", () => {
  const big = new Uint8Array(70_000).fill(0x61);
  const frame = encodeFrame(1, big);
  assert.deepEqual([...frame.subarray(0, 8)], [1, 0, 0, 0, 0x00, 0x01, 0x11, 0x70]);
  const demux = new Demultiplexer();
  assert.equal(demux.push(frame.subarray(0, 100)).length, 0);
  const frames = demux.push(frame.subarray(100));
  assert.equal(frames[0]?.data.length, 70_000);
});

Deno.test("copyOutput() routes stdout and stderr frames, or copies raw TTY output", async () => {
  const stdout = new BufferWriter();
  const stderr = new BufferWriter();
  async function* source() {
    yield encodeFrame(1, "out");
    yield encodeFrame(2, "err");
    yield encodeFrame(3, "sys");
  }
  await copyOutput(source(), { stdout, stderr }, { multiplexed: true });
  assert.equal(stdout.text(), "out");
  assert.equal(stderr.text(), "errsys");

  const raw = new BufferWriter();
  async function* tty() {
    yield new TextEncoder().encode("\x01\x00raw");
  }
  await copyOutput(tty(), { stdout: raw, stderr }, { multiplexed: false });
  assert.equal(raw.text(), "\x01\x00raw");
});

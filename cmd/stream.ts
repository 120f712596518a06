/**
 * Byte streams of the CLI: the writers output goes to, and Docker's multiplexed stdio stream
 * (each frame: 1 byte stream type, 3 zero bytes, uint32 big-endian length, then the payload).
 *
 * @module
 */

import type { ByteSource } from "./http.ts";

/** Where output goes: `Deno.stdout`, `Deno.stderr` or a test buffer. */
export interface Writer {
  /** Writes some of `p`; resolves to the count written. */
  write(p: Uint8Array): Promise<number>;
}

const encoder = new TextEncoder();

/** Writes all of `p` (bytes or text) to `w`. */
export async function writeAll(w: Writer, p: Uint8Array | string): Promise<void> {
  const bytes = typeof p === "string" ? encoder.encode(p) : p;
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}

/** A writer that keeps what it is given; tests read it back with `text()`. */
export class BufferWriter implements Writer {
  #chunks: Uint8Array[] = [];

  /** Keeps a copy of `p`. */
  write(p: Uint8Array): Promise<number> {
    this.#chunks.push(p.slice());
    return Promise.resolve(p.length);
  }

  /** Everything written, as bytes. */
  bytes(): Uint8Array {
    const total = this.#chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  /** Everything written, as text. */
  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
}

/** A ReadableStream over a {@link ByteSource} such as `Deno.stdin`. */
export function sourceToStream(source: ByteSource): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull: async (controller) => {
      const buf = new Uint8Array(64 * 1024);
      const n = await source.read(buf);
      if (n === null) controller.close();
      else controller.enqueue(buf.slice(0, n));
    },
  });
}

/** Stream numbers of a multiplexed frame. */
export const StreamType = { stdin: 0, stdout: 1, stderr: 2, systemErr: 3 } as const;

/** One decoded frame. */
export interface Frame {
  /** 0 stdin, 1 stdout, 2 stderr, 3 system error. */
  stream: number;
  /** The frame's payload. */
  data: Uint8Array;
}

/**
 * Incremental decoder of Docker's multiplexed stream: feed it bytes as they arrive with
 * `push()`, get back the frames completed so far.
 */
export class Demultiplexer {
  #pending: Uint8Array = new Uint8Array(0);

  /** Adds bytes and returns the frames now complete. */
  push(chunk: Uint8Array): Frame[] {
    const buf = new Uint8Array(this.#pending.length + chunk.length);
    buf.set(this.#pending);
    buf.set(chunk, this.#pending.length);
    const frames: Frame[] = [];
    let off = 0;
    while (buf.length - off >= 8) {
      const view = new DataView(buf.buffer, buf.byteOffset + off, 8);
      const stream = view.getUint8(0);
      const size = view.getUint32(4, false);
      if (buf.length - off - 8 < size) break;
      frames.push({ stream, data: buf.slice(off + 8, off + 8 + size) });
      off += 8 + size;
    }
    this.#pending = buf.slice(off);
    return frames;
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pendingBytes(): number {
    return this.#pending.length;
  }
}

/** Encodes one frame (the daemon's side; the tests use it). */
export function encodeFrame(stream: number, data: Uint8Array | string): Uint8Array {
  const payload = typeof data === "string" ? encoder.encode(data) : data;
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length, false);
  out.set(payload, 8);
  return out;
}

/** Options of {@link copyOutput}. */
export interface CopyOutputOptions {
  /** Whether the stream is multiplexed (the container has no TTY). */
  multiplexed: boolean;
}

/**
 * Copies a container's output stream to `stdout`/`stderr`, decoding frames when multiplexed.
 * A frame of stream 3 (system error) is written to stderr.
 */
export async function copyOutput(
  source: AsyncIterable<Uint8Array>,
  outputs: { stdout: Writer; stderr: Writer },
  options: CopyOutputOptions,
): Promise<void> {
  if (!options.multiplexed) {
    for await (const chunk of source) await writeAll(outputs.stdout, chunk);
    return;
  }
  const demux = new Demultiplexer();
  for await (const chunk of source) {
    // Consecutive frames for one target go out in one write: a log of a million short lines
    // would otherwise cost a million system calls.
    let target: Writer | undefined;
    let batch: Uint8Array[] = [];
    const flush = async () => {
      if (target && batch.length > 0) await writeAll(target, concat(batch));
      batch = [];
    };
    for (const frame of demux.push(chunk)) {
      const next = frame.stream === StreamType.stdout ? outputs.stdout : outputs.stderr;
      if (next !== target) {
        await flush();
        target = next;
      }
      batch.push(frame.data);
    }
    await flush();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

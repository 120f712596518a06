/**
 * The kubelet's CRI log format, which containers created through the CRI write instead of the
 * json-file log: one line per line of output,
 * `2016-10-06T00:17:09.669794202Z stdout F message`, with tag `F` for a full line and `P` for a
 * piece of a line longer than the limit (the kubelet joins `P` pieces up to the next `F`).
 *
 * The kubelet rotates the file itself: it renames it, then calls ReopenContainerLog, which
 * {@link CriFileLog.reopen} answers by closing the old file and creating a new one at the path.
 *
 * @module
 */
import { concatBytes, logTime } from "./logs.ts";
import type { StreamName } from "./stdio.ts";

/** A piece of a line longer than this becomes a `P` entry, as containerd's CRI does (16 KiB). */
const MAX_LINE_BYTES = 16 * 1024;
const encoder = new TextEncoder();

/** Renders one CRI log line: time, stream, tag and the text without its newline. */
export function criLogLine(
  stream: StreamName,
  text: Uint8Array,
  options: { partial: boolean; time?: Date },
): Uint8Array {
  const head = encoder.encode(
    `${logTime(options.time)} ${stream} ${options.partial ? "P" : "F"} `,
  );
  const line = new Uint8Array(head.length + text.length + 1);
  line.set(head);
  line.set(text, head.length);
  line[line.length - 1] = 0x0a;
  return line;
}

/** One parsed line of a CRI log. */
export interface CriLogEntry {
  time: string;
  stream: StreamName;
  partial: boolean;
  text: string;
}

/** Parses a CRI log's text (for tests and `logs` of CRI containers); skips malformed lines. */
export function parseCriLog(text: string): CriLogEntry[] {
  const entries: CriLogEntry[] = [];
  for (const line of text.split("\n")) {
    const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(line);
    if (!match) continue;
    entries.push({
      time: match[1]!,
      stream: match[2] as StreamName,
      partial: match[3] === "P",
      text: match[4]!,
    });
  }
  return entries;
}

/** Appends a container's output to a CRI-format log file. */
export class CriFileLog {
  readonly path: string;
  #file: Deno.FsFile | null = null;
  #queue: Promise<void> = Promise.resolve();
  readonly #partial: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };

  /**
   * A log appending to `path`, created with its directory at once: the kubelet reads the file
   * of a container that has written nothing yet too.
   */
  constructor(path: string) {
    this.path = path;
    this.#queue = this.#open().then(() => {}, () => {});
  }

  /** Adds output of `stream`; complete lines become entries, a partial line waits. */
  write(stream: StreamName, chunk: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0x0a) continue;
      this.#emit(stream, this.#join(stream, chunk.subarray(start, i)), false);
      start = i + 1;
    }
    if (start < chunk.length) {
      this.#partial[stream].push(chunk.slice(start));
      const pending = this.#partial[stream].reduce((n, part) => n + part.length, 0);
      if (pending >= MAX_LINE_BYTES) this.#emit(stream, this.#join(stream), true);
    }
  }

  /** Writes pending partial lines (as full lines: the output ended) and waits for the file. */
  async flush(): Promise<void> {
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.#partial[stream].length > 0) this.#emit(stream, this.#join(stream), false);
    }
    await this.#queue;
  }

  /** Closes the file and opens a new one at the same path (after the kubelet renamed it). */
  reopen(): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      this.#file?.close();
      this.#file = null;
      await this.#open();
    });
    return this.#queue;
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = null;
  }

  async #open(): Promise<Deno.FsFile> {
    const dir = this.path.slice(0, this.path.lastIndexOf("/"));
    if (dir) await Deno.mkdir(dir, { recursive: true });
    this.#file = await Deno.open(this.path, { append: true, create: true, mode: 0o640 });
    return this.#file;
  }

  #join(stream: StreamName, tail: Uint8Array = new Uint8Array()): Uint8Array {
    const parts = this.#partial[stream];
    if (parts.length === 0) return tail;
    parts.push(tail);
    this.#partial[stream] = [];
    return concatBytes(parts);
  }

  #emit(stream: StreamName, text: Uint8Array, partial: boolean): void {
    const line = criLogLine(stream, text, { partial });
    this.#queue = this.#queue.then(async () => {
      const file = this.#file ?? await this.#open();
      let offset = 0;
      while (offset < line.length) offset += await file.write(line.subarray(offset));
    }).catch(() => {
      // A full disk (or a log directory removed under us) must not kill the pump.
    });
  }
}

/**
 * Docker's json-file log driver: one JSON object a line,
 * `{"log":"hi\n","stream":"stdout","time":"2026-11-23T10:00:00.123456789Z"}`, appended by the
 * engine as output arrives and read back by `logs` (also after a daemon restart).
 *
 * @module
 */
import type { StreamName } from "./stdio.ts";

/** One log entry. */
export interface LogEntry {
  stream: StreamName;
  /** The text, including its newline when it had one. */
  log: string;
  /** RFC 3339 time with nanoseconds, as Docker writes it. */
  time: string;
}

/** Docker splits lines longer than this into several entries. */
const MAX_ENTRY_BYTES = 16 * 1024;
const encoder = new TextEncoder();

/** RFC 3339 with nanosecond precision (the milliseconds padded), as Docker's time format. */
export function logTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");
}

/** Appends a container's output to its json-file log, a line per entry. */
export class JsonFileLog {
  readonly path: string;
  #file: Deno.FsFile | null = null;
  #queue: Promise<void> = Promise.resolve();
  readonly #partial: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };
  readonly #decoder = new TextDecoder();

  /** A log appending to `path`. */
  constructor(path: string) {
    this.path = path;
  }

  /** Adds output of `stream`; complete lines become entries, a partial line waits. */
  write(stream: StreamName, chunk: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== 0x0a) continue;
      this.#emit(stream, this.#join(stream, chunk.subarray(start, i + 1)));
      start = i + 1;
    }
    if (start < chunk.length) {
      this.#partial[stream].push(chunk.slice(start));
      const pending = this.#partial[stream].reduce((n, part) => n + part.length, 0);
      if (pending >= MAX_ENTRY_BYTES) this.#emit(stream, this.#join(stream, new Uint8Array()));
    }
  }

  /** Writes pending partial lines and waits for every write to reach the file. */
  async flush(): Promise<void> {
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.#partial[stream].length > 0) {
        this.#emit(stream, this.#join(stream, new Uint8Array()));
      }
    }
    await this.#queue;
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    await this.flush();
    this.#file?.close();
    this.#file = null;
  }

  #join(stream: StreamName, tail: Uint8Array): Uint8Array {
    const parts = this.#partial[stream];
    if (parts.length === 0) return tail;
    parts.push(tail);
    const joined = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      joined.set(part, offset);
      offset += part.length;
    }
    this.#partial[stream] = [];
    return joined;
  }

  #emit(stream: StreamName, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const entry: LogEntry = { log: this.#decoder.decode(bytes), stream, time: logTime() };
    const line = encoder.encode(JSON.stringify(entry) + "\n");
    this.#queue = this.#queue.then(async () => {
      this.#file ??= await Deno.open(this.path, { append: true, create: true, mode: 0o640 });
      let offset = 0;
      while (offset < line.length) offset += await this.#file.write(line.subarray(offset));
    }).catch(() => {
      // A full disk must not kill the pump; the entry is lost as Docker would lose it.
    });
  }
}

/** Which entries `readLogs` returns. */
export interface ReadLogsOptions {
  stdout?: boolean;
  stderr?: boolean;
  /** Unix seconds (fractions allowed): only entries at or after. */
  since?: number;
  /** Unix seconds: only entries before. */
  until?: number;
  /** Only the last N entries (after the stream and time filters); undefined: all. */
  tail?: number;
}

/** Parses a log file's text into entries matching `options`. */
export function parseLogText(text: string, options: ReadLogsOptions = {}): LogEntry[] {
  const wantStdout = options.stdout ?? true;
  const wantStderr = options.stderr ?? true;
  const entries: LogEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    let entry: LogEntry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // A torn last line from a crash: skip it.
    }
    if (entry.stream === "stdout" && !wantStdout) continue;
    if (entry.stream === "stderr" && !wantStderr) continue;
    if (options.since !== undefined || options.until !== undefined) {
      const seconds = Date.parse(entry.time) / 1000;
      if (options.since !== undefined && seconds < options.since) continue;
      if (options.until !== undefined && seconds >= options.until) continue;
    }
    entries.push(entry);
  }
  if (options.tail !== undefined && options.tail >= 0) {
    return options.tail === 0 ? [] : entries.slice(-options.tail);
  }
  return entries;
}

/**
 * Reads entries from `path`, and with `follow` keeps reading new entries until `stopped()`
 * says the container stopped and the file has no more. Yields entries in order.
 */
export async function* readLogs(
  path: string,
  options: ReadLogsOptions & {
    follow?: boolean;
    stopped?: () => boolean;
    signal?: AbortSignal;
  } = {},
): AsyncGenerator<LogEntry> {
  let offset = 0;
  let text = "";
  try {
    const bytes = await Deno.readFile(path);
    const end = bytes.lastIndexOf(0x0a) + 1;
    text = new TextDecoder().decode(bytes.subarray(0, end));
    offset = end;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  yield* parseLogText(text, options);
  if (!options.follow) return;

  const { tail: _tail, ...filters } = options;
  while (!options.signal?.aborted) {
    const chunk = await readFrom(path, offset);
    const end = chunk.lastIndexOf(0x0a) + 1;
    if (end > 0) {
      offset += end;
      yield* parseLogText(new TextDecoder().decode(chunk.subarray(0, end)), filters);
      continue;
    }
    if (options.stopped?.()) {
      // One more read: output written just before the stop flag flipped.
      const last = await readFrom(path, offset);
      const lastEnd = last.lastIndexOf(0x0a) + 1;
      if (lastEnd > 0) {
        yield* parseLogText(new TextDecoder().decode(last.subarray(0, lastEnd)), filters);
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function readFrom(path: string, offset: number): Promise<Uint8Array> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return new Uint8Array();
  }
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(256 * 1024);
    while (total < 8 * 1024 * 1024) {
      const n = await file.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      total += n;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  } finally {
    file.close();
  }
}

/** Docker's multiplexed stream frame: 8-byte header (stream, 0, 0, 0, big-endian size). */
export function frame(stream: 0 | 1 | 2, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length);
  out.set(payload, 8);
  return out;
}

/** Encodes `text` as UTF-8. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

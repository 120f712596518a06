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

/** Options of {@link JsonFileLog}: Docker's `max-size` and `max-file` log options. */
export interface JsonFileLogOptions {
  /** Rotate before the live file would grow past this many bytes; 0 or absent: never. */
  maxSize?: number;
  /**
   * How many files to keep, the live one included: `json.log`, `json.log.1` (the newest
   * rotated), ... Default 1: the live file is truncated instead of rotated, as Docker does.
   */
  maxFiles?: number;
}

/** Appends a container's output to its json-file log, a line per entry, rotating by size. */
export class JsonFileLog {
  readonly path: string;
  #file: Deno.FsFile | null = null;
  /** Bytes in the live file, known once it is open. */
  #size = 0;
  readonly #maxSize: number;
  readonly #maxFiles: number;
  /** Encoded entries waiting for the writer, in order. */
  #pending: Uint8Array[] = [];
  /** The writer draining `#pending`, while it runs. */
  #writing: Promise<void> | null = null;
  readonly #partial: Record<StreamName, Uint8Array[]> = { stdout: [], stderr: [] };
  readonly #decoder = new TextDecoder();

  /** A log appending to `path`. */
  constructor(path: string, options: JsonFileLogOptions = {}) {
    this.path = path;
    this.#maxSize = options.maxSize ?? 0;
    this.#maxFiles = Math.max(1, options.maxFiles ?? 1);
  }

  /** Adds output of `stream`; complete lines become entries, a partial line waits. */
  write(stream: StreamName, chunk: Uint8Array): void {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
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
    while (this.#writing) await this.#writing;
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
    this.#partial[stream] = [];
    return concatBytes(parts);
  }

  #emit(stream: StreamName, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const entry: LogEntry = { log: this.#decoder.decode(bytes), stream, time: logTime() };
    this.#pending.push(encoder.encode(JSON.stringify(entry) + "\n"));
    this.#writing ??= this.#drain().finally(() => this.#writing = null);
  }

  /**
   * Writes the pending entries, as many as have piled up in one write each time (a write per
   * entry made a chatty container's output crawl), rotating between entries by size.
   */
  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const lines = this.#pending;
        this.#pending = [];
        let file = this.#file ?? await this.#open();
        let batch: Uint8Array[] = [];
        let batchBytes = 0;
        for (const line of lines) {
          const size = this.#size + batchBytes + line.length;
          if (this.#maxSize > 0 && this.#size + batchBytes > 0 && size > this.#maxSize) {
            await writeAll(file, concatBytes(batch, batchBytes));
            this.#size += batchBytes;
            batch = [];
            batchBytes = 0;
            file = await this.#rotate();
          }
          batch.push(line);
          batchBytes += line.length;
        }
        await writeAll(file, concatBytes(batch, batchBytes));
        this.#size += batchBytes;
      }
    } catch {
      // A full disk must not kill the pump; the entries are lost as Docker would lose them.
      this.#pending = [];
    }
  }

  async #open(): Promise<Deno.FsFile> {
    const file = await Deno.open(this.path, { append: true, create: true, mode: 0o640 });
    this.#size = (await file.stat()).size;
    this.#file = file;
    return file;
  }

  /**
   * Docker's rotation: `json.log.N-1` is dropped, each `json.log.I` becomes `json.log.I+1` and
   * the live file `json.log.1`; with one file the live file is emptied instead. Readers holding
   * the old live file open read its rest through their handle (see {@link readLogs}).
   */
  async #rotate(): Promise<Deno.FsFile> {
    this.#file?.close();
    this.#file = null;
    if (this.#maxFiles > 1) {
      for (let i = this.#maxFiles - 1; i > 1; i--) {
        await Deno.rename(`${this.path}.${i - 1}`, `${this.path}.${i}`).catch(ignoreNotFound);
      }
      await Deno.rename(this.path, `${this.path}.1`).catch(ignoreNotFound);
    } else {
      await Deno.truncate(this.path, 0).catch(ignoreNotFound);
    }
    return await this.#open();
  }
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}

/** The rotated files of the json-file log at `path` (`path.1`, `path.2`, ...), oldest first. */
export async function rotatedLogFiles(path: string): Promise<string[]> {
  const files: string[] = [];
  for (let i = 1;; i++) {
    const rotated = `${path}.${i}`;
    if (!(await Deno.stat(rotated).then((info) => info.isFile, () => false))) break;
    files.push(rotated);
  }
  return files.reverse();
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
 * Reads entries from the json-file log at `path`, its rotated files first (oldest first), and
 * with `follow` keeps reading new entries until `stopped()` says the container stopped and the
 * file has no more. Yields entries in order. A follower keeps the live file open: when the
 * writer rotates it, the rest is read through that handle before the new live file.
 */
export async function* readLogs(
  path: string,
  options: ReadLogBatchesOptions = {},
): AsyncGenerator<LogEntry> {
  for await (const batch of readLogBatches(path, options)) yield* batch;
}

/** Options of {@link readLogs} and {@link readLogBatches}. */
export type ReadLogBatchesOptions = ReadLogsOptions & {
  follow?: boolean;
  stopped?: () => boolean;
  signal?: AbortSignal;
};

/**
 * {@link readLogs} a batch at a time (the entries of one read of the file): what a streaming
 * reader sends in one write.
 */
export async function* readLogBatches(
  path: string,
  options: ReadLogBatchesOptions = {},
): AsyncGenerator<LogEntry[]> {
  const { tail, ...filters } = options;
  let live = await Deno.open(path, { read: true }).catch(() => null);
  try {
    const liveIno = live ? (await live.stat()).ino : null;
    let offset = 0;
    // Streamed a chunk at a time: a log of gigabytes must not be held in memory (nor spread
    // into one call's arguments).
    const existing = async function* (): AsyncGenerator<LogEntry[]> {
      for (const rotated of await rotatedLogFiles(path)) {
        // A rotation between the open and this listing made the open file a rotated one.
        const info = await Deno.stat(rotated).catch(() => null);
        if (!info || (liveIno !== null && info.ino === liveIno)) continue;
        const file = await Deno.open(rotated, { read: true }).catch(() => null);
        if (!file) continue;
        try {
          yield* scanEntries(file, filters);
        } finally {
          file.close();
        }
      }
      if (live) offset = yield* scanEntries(live, filters);
    };
    if (tail !== undefined && tail >= 0) {
      // Only the last `tail` entries are kept while reading, in a ring.
      const ring: LogEntry[] = [];
      let next = 0;
      for await (const batch of existing()) {
        if (tail === 0) continue;
        for (const entry of batch) {
          ring[next] = entry;
          next = (next + 1) % tail;
        }
      }
      yield ring.length === tail ? [...ring.slice(next), ...ring.slice(0, next)] : ring;
    } else {
      yield* existing();
    }
    if (!options.follow) return;

    /** Takes the new live file after a rotation or truncation; says whether it did. */
    const reopenIfRotated = async (): Promise<boolean> => {
      const now = await Deno.stat(path).catch(() => null);
      if (!now) return false;
      if (live && (await live.stat()).ino === now.ino) {
        if (now.size >= offset) return false;
        offset = 0; // Truncated (max-file 1): start over at its beginning.
        return true;
      }
      live?.close();
      live = await Deno.open(path, { read: true }).catch(() => null);
      offset = 0;
      return live !== null;
    };
    /** Entries of complete lines written since the last read; null when there were none. */
    const readNew = async (): Promise<LogEntry[] | null> => {
      if (!live) return null;
      const chunk = await readAt(live, offset, 8 * 1024 * 1024);
      const end = chunk.lastIndexOf(0x0a) + 1;
      if (end === 0) return null;
      offset += end;
      return parseLogText(decoder.decode(chunk.subarray(0, end)), filters);
    };
    while (!options.signal?.aborted) {
      const fresh = await readNew();
      if (fresh) {
        yield fresh;
        continue;
      }
      if (await reopenIfRotated()) continue;
      if (options.stopped?.()) {
        // One more read: output written just before the stop flag flipped.
        yield await readNew() ?? [];
        if (await reopenIfRotated()) yield await readNew() ?? [];
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    live?.close();
  }
}

const decoder = new TextDecoder();

/**
 * The entries of `file` from its start, read a chunk at a time; answers the offset after the
 * last complete line (a torn last line is left for later).
 */
async function* scanEntries(
  file: Deno.FsFile,
  filters: ReadLogsOptions,
): AsyncGenerator<LogEntry[], number> {
  await file.seek(0, Deno.SeekMode.Start);
  const buffer = new Uint8Array(1024 * 1024);
  let carry = new Uint8Array();
  let offset = 0;
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    const data = concatBytes([carry, buffer.subarray(0, n)]);
    const end = data.lastIndexOf(0x0a) + 1;
    if (end > 0) {
      yield parseLogText(decoder.decode(data.subarray(0, end)), filters);
      offset += end;
    }
    carry = data.slice(end);
  }
  return offset;
}

/** One array of `parts`, in order (`total` when the caller knows it). */
export function concatBytes(parts: readonly Uint8Array[], total?: number): Uint8Array {
  const joined = new Uint8Array(total ?? parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

/** Reads `file` from `offset` to its end, at most `limit` bytes. */
async function readAt(file: Deno.FsFile, offset: number, limit: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(256 * 1024);
  while (total < limit) {
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

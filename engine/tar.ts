/**
 * Streaming tar: a reader that yields the entries of a (possibly gzip-compressed) tar stream in
 * archive order without buffering their bodies, and a writer that produces a tar stream.
 *
 * The reader understands ustar, GNU long names (`L`, `K`) and PAX headers (`x`, `g`) for path,
 * linkpath, size, uid, gid, mtime, uname and gname. The writer emits ustar, falling back to a
 * PAX header for what does not fit (long names, sizes of 8 GiB and more, large ids).
 *
 * ```ts
 * for await (const entry of readTar(stream)) {
 *   if (entry.name === "manifest.json") manifest = await new Response(entry.body).json();
 *   // bodies left unread are skipped when the loop moves on
 * }
 * ```
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";

const BLOCK = 512;

/** What a tar entry is. */
export type TarEntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "directory"
  | "fifo"
  | "other";

/** One entry of a tar stream. */
export interface TarEntry {
  /** The path as stored in the archive (after PAX and GNU long-name overrides). */
  name: string;
  type: TarEntryType;
  /** The raw type flag (`"0"`, `"5"`, ...), for types this module does not name. */
  typeflag: string;
  size: number;
  mode: number;
  /** Target of a symlink or hard link, otherwise `""`. */
  linkname: string;
  mtime: Date;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /**
   * The entry's content. Read it before asking for the next entry; whatever is left unread is
   * skipped when the iteration moves on, after which the stream errors.
   */
  body: ReadableStream<Uint8Array>;
}

/** Options of {@link readTar}. */
export interface ReadTarOptions {
  /** Detect gzip (magic `1f 8b`) and decompress it; default `true`. */
  gunzip?: boolean;
}

/** Whether `bytes` starts with gzip's magic number. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Returns `stream` decompressed when its first bytes are gzip's magic number, otherwise the same
 * bytes unchanged. Reads only as far as needed to see the magic number.
 */
export async function maybeGunzip(
  stream: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const reader = stream.getReader();
  // Collect at least two bytes: a source may hand us one byte at a time.
  const head: Uint8Array[] = [];
  let headLength = 0;
  let done = false;
  while (headLength < 2) {
    const next = await reader.read();
    if (next.done) {
      done = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  const first = concat(head, headLength);
  const replay = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.length > 0) controller.enqueue(first);
      if (done) controller.close();
    },
    async pull(controller) {
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  if (!isGzip(first)) return replay;
  return gunzip(replay);
}

/** `stream` decompressed with gzip. */
export function gunzip(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  // The DOM typings declare `BufferSource` chunks; the stream does yield Uint8Arrays.
  const pair = new DecompressionStream("gzip") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
  return stream.pipeThrough(pair);
}

/** `stream` compressed with gzip. */
export function gzip(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const pair = new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
  return stream.pipeThrough(pair);
}

/** A pull-based reader of exact byte counts over a stream's reader. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #offset = 0;
  /** Total bytes consumed, for error messages. */
  position = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Makes sure some unread bytes are buffered; false at end of stream. */
  async #fill(): Promise<boolean> {
    while (this.#offset >= this.#chunk.length) {
      const next = await this.#reader.read();
      if (next.done) return false;
      this.#chunk = next.value;
      this.#offset = 0;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or null at end of stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (!(await this.#fill())) return null;
    const end = Math.min(this.#chunk.length, this.#offset + max);
    const out = this.#chunk.subarray(this.#offset, end);
    this.position += out.length;
    this.#offset = end;
    return out;
  }

  /** Exactly `n` bytes; null when the stream ends before the first byte; throws when it ends inside. */
  async readExact(n: number): Promise<Uint8Array | null> {
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < n) {
      const part = await this.readSome(n - got);
      if (part === null) {
        if (got === 0) return null;
        throw truncated(this.position);
      }
      parts.push(part);
      got += part.length;
    }
    return parts.length === 1 ? parts[0]! : concat(parts, got);
  }

  /** Skips `n` bytes; throws when the stream ends first. */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const part = await this.readSome(left);
      if (part === null) throw truncated(this.position);
      left -= part.length;
    }
  }

  /** Reads and discards everything up to the end of the stream. */
  async drain(): Promise<void> {
    while ((await this.readSome(1 << 20)) !== null) {
      // discard
    }
  }

  async cancel(): Promise<void> {
    try {
      await this.#reader.cancel();
    } catch {
      // The source already failed; its error was reported where it was read.
    }
  }
}

function truncated(position: number): Error {
  return invalidArgument(`invalid tar archive: unexpected EOF at offset ${position}`);
}

/** The fields a PAX header can override. */
interface PaxRecords {
  [key: string]: string;
}

/** Parses PAX records: `"<length> <key>=<value>\n"` repeated. */
export function parsePax(bytes: Uint8Array): Record<string, string> {
  const records: PaxRecords = {};
  let pos = 0;
  while (pos < bytes.length) {
    const space = bytes.indexOf(0x20, pos);
    if (space < 0) throw invalidArgument("invalid tar archive: malformed PAX record");
    const length = Number(decoder.decode(bytes.subarray(pos, space)));
    if (!Number.isInteger(length) || length <= space - pos || pos + length > bytes.length) {
      throw invalidArgument("invalid tar archive: malformed PAX record length");
    }
    const record = decoder.decode(bytes.subarray(space + 1, pos + length - 1));
    const eq = record.indexOf("=");
    if (eq < 0) throw invalidArgument("invalid tar archive: malformed PAX record");
    records[record.slice(0, eq)] = record.slice(eq + 1);
    pos += length;
  }
  return records;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file", // contiguous file: a regular file for every purpose here
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  "6": "fifo",
};

const TYPEFLAGS: Record<TarEntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  chardev: "3",
  blockdev: "4",
  directory: "5",
  fifo: "6",
  other: "0",
};

/** A NUL-terminated string field. */
function cstring(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return decoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
}

/** A numeric field: octal text, or base-256 when the high bit of the first byte is set. */
function parseNumber(field: Uint8Array): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return value;
  }
  const text = cstring(field).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw invalidArgument("invalid tar archive: invalid tar header (bad number)");
  }
  return parseInt(text, 8);
}

/** Whether the header block's checksum is right (unsigned, or signed as some old tars wrote). */
function checksumOk(block: Uint8Array): boolean {
  const stored = parseNumber(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** The raw fields of a header block, before PAX and GNU overrides. */
interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function parseHeader(block: Uint8Array): RawHeader {
  let ok = false;
  try {
    ok = checksumOk(block);
  } catch {
    ok = false;
  }
  if (!ok) throw invalidArgument("invalid tar archive: invalid tar header (checksum mismatch)");
  const magic = decoder.decode(block.subarray(257, 263));
  let name = cstring(block.subarray(0, 100));
  // Only POSIX ustar has the prefix field; GNU tar ("ustar  ") keeps other data there.
  if (magic === "ustar\0") {
    const prefix = cstring(block.subarray(345, 500));
    if (prefix !== "") name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: parseNumber(block.subarray(100, 108)),
    uid: parseNumber(block.subarray(108, 116)),
    gid: parseNumber(block.subarray(116, 124)),
    size: parseNumber(block.subarray(124, 136)),
    mtime: parseNumber(block.subarray(136, 148)),
    typeflag: String.fromCharCode(block[156]!),
    linkname: cstring(block.subarray(157, 257)),
    uname: cstring(block.subarray(265, 297)),
    gname: cstring(block.subarray(297, 329)),
    devmajor: parseNumber(block.subarray(329, 337)),
    devminor: parseNumber(block.subarray(337, 345)),
  };
}

function isZeroBlock(block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Applies PAX records to a header. */
function applyPax(header: RawHeader, pax: PaxRecords): void {
  if (pax.path !== undefined) header.name = pax.path;
  if (pax.linkpath !== undefined) header.linkname = pax.linkpath;
  if (pax.uname !== undefined) header.uname = pax.uname;
  if (pax.gname !== undefined) header.gname = pax.gname;
  for (const key of ["size", "uid", "gid", "mtime"] as const) {
    const value = pax[key];
    if (value === undefined || value === "") continue;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) {
      throw invalidArgument(`invalid tar archive: bad PAX ${key} ${JSON.stringify(value)}`);
    }
    header[key] = key === "mtime" ? n : Math.trunc(n);
  }
}

/**
 * Reads the entries of a tar stream in order. Gzip input is detected and decompressed unless
 * `options.gunzip` is false. Malformed or truncated input rejects with an InvalidArgument error.
 * Breaking out of the iteration cancels the input.
 */
export async function* readTar(
  stream: ReadableStream<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const input = options.gunzip === false ? stream : await maybeGunzip(stream);
  const reader = new ByteReader(input);
  let globalPax: PaxRecords = {};
  let localPax: PaxRecords = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  try {
    while (true) {
      let block: Uint8Array | null;
      try {
        block = await reader.readExact(BLOCK);
      } catch (err) {
        throw rewrapStreamError(err);
      }
      // A stream that ends on a header boundary is accepted like Go's archive/tar does.
      if (block === null) return;
      if (isZeroBlock(block)) {
        // Read to the end so a gzip stream's checksum is verified; what follows the
        // end-of-archive marker is normally just the zero padding of the last record.
        try {
          await reader.drain();
        } catch (err) {
          throw rewrapStreamError(err);
        }
        return;
      }
      const header = parseHeader(block);

      // Meta entries describe the next entry; their bodies are small and read whole.
      if ("xgLK".includes(header.typeflag)) {
        if (header.size > 1 << 20) {
          throw invalidArgument("invalid tar archive: metadata header too large");
        }
        const body = (await reader.readExact(header.size)) ?? new Uint8Array(0);
        await reader.skip(padding(header.size));
        if (header.typeflag === "x") localPax = { ...localPax, ...parsePax(body) };
        else if (header.typeflag === "g") globalPax = { ...globalPax, ...parsePax(body) };
        else if (header.typeflag === "L") longName = cstring(body);
        else longLink = cstring(body);
        continue;
      }

      if (longName !== undefined) header.name = longName;
      if (longLink !== undefined) header.linkname = longLink;
      applyPax(header, { ...globalPax, ...localPax });
      localPax = {};
      longName = undefined;
      longLink = undefined;

      const type = TYPES[header.typeflag] ?? "other";
      // Links, devices and directories carry no data whatever their size field says.
      const size = type === "file" || type === "other" ? header.size : 0;
      const body = new EntryBody(reader, size);
      yield {
        name: header.name,
        type,
        typeflag: header.typeflag,
        size,
        mode: header.mode,
        linkname: header.linkname,
        mtime: new Date(header.mtime * 1000),
        uid: header.uid,
        gid: header.gid,
        uname: header.uname,
        gname: header.gname,
        devmajor: header.devmajor,
        devminor: header.devminor,
        body: body.stream,
      };
      await body.finish();
      await reader.skip(padding(size));
    }
  } finally {
    await reader.cancel();
  }
}

/** Errors of the input (a gzip stream that is not gzip) become InvalidArgument errors. */
function rewrapStreamError(err: unknown): unknown {
  if (err instanceof TypeError) {
    return invalidArgument(`invalid tar archive: ${err.message}`, err);
  }
  return err;
}

/** The body of one entry: a stream over the shared reader, limited to the entry's size. */
class EntryBody {
  readonly stream: ReadableStream<Uint8Array>;
  #reader: ByteReader;
  #remaining: number;
  #finished = false;
  /** The read in flight, so `finish()` never reads concurrently with it. */
  #inflight: Promise<unknown> = Promise.resolve();

  constructor(reader: ByteReader, size: number) {
    this.#reader = reader;
    this.#remaining = size;
    this.stream = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const step = this.#pull(controller);
        this.#inflight = step.catch(() => {});
        return step;
      },
    }, { highWaterMark: 0 });
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    if (this.#finished && this.#remaining > 0) {
      controller.error(new Error("tar entry body read after the next entry was requested"));
      return;
    }
    if (this.#remaining === 0) {
      controller.close();
      return;
    }
    let chunk: Uint8Array | null;
    try {
      chunk = await this.#reader.readSome(Math.min(this.#remaining, 1 << 20));
    } catch (err) {
      controller.error(rewrapStreamError(err));
      return;
    }
    if (chunk === null) {
      controller.error(truncated(this.#reader.position));
      return;
    }
    this.#remaining -= chunk.length;
    // Copy: the chunk is a view into the source's buffer, which the consumer may keep.
    controller.enqueue(chunk.slice());
    if (this.#remaining === 0) controller.close();
  }

  /** Skips whatever the consumer did not read. */
  async finish(): Promise<void> {
    await this.#inflight;
    this.#finished = true;
    const left = this.#remaining;
    this.#remaining = 0;
    try {
      await this.#reader.skip(left);
    } catch (err) {
      throw rewrapStreamError(err);
    }
    if (left > 0) this.#remaining = left; // makes a late read of the body error
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** The header of an entry to write. */
export interface TarHeaderInit {
  name: string;
  /** Default `"file"`. */
  type?: TarEntryType;
  /** Size of the body; required with a stream body, taken from a byte body otherwise. */
  size?: number;
  /** Permission bits; default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  mode?: number;
  /** Default: the epoch, so archives are reproducible. */
  mtime?: Date;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Target of a symlink or hard link. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

/** A body to write: bytes, text, or a stream of exactly `size` bytes. */
export type TarBody = Uint8Array | string | ReadableStream<Uint8Array>;

/** One entry for {@link tarStream}. */
export interface TarInput {
  header: TarHeaderInit;
  body?: TarBody;
}

const MAX_OCTAL_SIZE = 0o77777777777;
const MAX_OCTAL_ID = 0o7777777;

/**
 * Writes a tar stream. Entries are added with {@link TarWriter.add}; the bytes come out of
 * {@link TarWriter.readable}, which must be read concurrently (each `add` waits for the reader,
 * which is what keeps memory bounded). Use {@link tarStream} to turn a list of entries into a
 * stream without managing that concurrency.
 */
export class TarWriter {
  /** The tar bytes. */
  readonly readable: ReadableStream<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #paxCount = 0;

  constructor() {
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    this.readable = pipe.readable;
    this.#writer = pipe.writable.getWriter();
  }

  /** Adds an entry; a stream body must yield exactly `header.size` bytes. */
  async add(header: TarHeaderInit, body?: TarBody): Promise<void> {
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    const type = header.type ?? "file";
    let size = 0;
    if (bytes instanceof Uint8Array) size = bytes.length;
    else if (bytes !== undefined) {
      if (header.size === undefined) throw invalidArgument("tar: a stream body needs a size");
      size = header.size;
    }
    if (type !== "file" && type !== "other" && size !== 0) {
      throw invalidArgument(`tar: a ${type} entry has no body`);
    }
    for (const block of this.#headerBlocks({ ...header, type }, size)) {
      await this.#writer.write(block);
    }
    if (bytes instanceof Uint8Array) {
      if (size > 0) await this.#writer.write(bytes);
    } else if (bytes !== undefined) {
      let written = 0;
      for await (const chunk of bytes) {
        written += chunk.length;
        if (written > size) {
          throw invalidArgument(`tar: body of ${header.name} exceeds ${size} bytes`);
        }
        await this.#writer.write(chunk);
      }
      if (written !== size) {
        throw invalidArgument(`tar: body of ${header.name} is ${written} bytes, expected ${size}`);
      }
    }
    if (padding(size) > 0) await this.#writer.write(new Uint8Array(padding(size)));
  }

  /** Writes the end-of-archive marker and closes the stream. */
  async close(): Promise<void> {
    await this.#writer.write(new Uint8Array(BLOCK * 2));
    await this.#writer.close();
  }

  /** Fails the stream with `reason`. */
  async abort(reason?: unknown): Promise<void> {
    await this.#writer.abort(reason);
  }

  /** The header block, preceded by a PAX header block when some field does not fit ustar. */
  #headerBlocks(header: TarHeaderInit & { type: TarEntryType }, size: number): Uint8Array[] {
    let name = header.name;
    if (header.type === "directory" && !name.endsWith("/")) name += "/";
    const linkname = header.linkname ?? "";
    const uid = header.uid ?? 0;
    const gid = header.gid ?? 0;
    const pax: PaxRecords = {};

    let prefix = "";
    if (encoder.encode(name).length > 100) {
      const split = splitUstarName(name);
      if (split) [prefix, name] = split;
      else {
        pax.path = name;
        name = truncateBytes(name, 100);
      }
    }
    if (encoder.encode(linkname).length > 100) pax.linkpath = linkname;
    if (size > MAX_OCTAL_SIZE) pax.size = String(size);
    if (uid > MAX_OCTAL_ID) pax.uid = String(uid);
    if (gid > MAX_OCTAL_ID) pax.gid = String(gid);

    const blocks: Uint8Array[] = [];
    if (Object.keys(pax).length > 0) {
      const records = encodePax(pax);
      const paxName = truncateBytes(`PaxHeaders.${this.#paxCount++}/${basename(name)}`, 100);
      blocks.push(
        encodeHeader({ name: paxName, typeflag: "x", size: records.length, mode: 0o644 }),
        records,
      );
      if (padding(records.length) > 0) blocks.push(new Uint8Array(padding(records.length)));
    }
    const defaultMode = header.type === "directory"
      ? 0o755
      : header.type === "symlink"
      ? 0o777
      : 0o644;
    blocks.push(encodeHeader({
      name,
      prefix,
      typeflag: TYPEFLAGS[header.type],
      size: size > MAX_OCTAL_SIZE ? 0 : size,
      mode: header.mode ?? defaultMode,
      uid: uid > MAX_OCTAL_ID ? 0 : uid,
      gid: gid > MAX_OCTAL_ID ? 0 : gid,
      mtime: Math.floor((header.mtime?.getTime() ?? 0) / 1000),
      linkname: truncateBytes(linkname, 100),
      uname: header.uname ?? "",
      gname: header.gname ?? "",
      devmajor: header.devmajor ?? 0,
      devminor: header.devminor ?? 0,
    }));
    return blocks;
  }
}

/**
 * A tar stream of `entries`, produced lazily as the stream is read. An error in an entry (a
 * body of the wrong size) errors the stream.
 */
export function tarStream(
  entries: Iterable<TarInput> | AsyncIterable<TarInput>,
): ReadableStream<Uint8Array> {
  const writer = new TarWriter();
  (async () => {
    try {
      for await (const entry of entries) await writer.add(entry.header, entry.body);
      await writer.close();
    } catch (err) {
      await writer.abort(err).catch(() => {});
    }
  })();
  return writer.readable;
}

/** Splits a long name into ustar's prefix (<= 155 bytes) and name (<= 100 bytes) at a slash. */
function splitUstarName(name: string): [string, string] | undefined {
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (rest === "" || encoder.encode(rest).length > 100) return undefined;
    if (encoder.encode(prefix).length <= 155) return [prefix, rest];
  }
  return undefined;
}

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function truncateBytes(s: string, max: number): string {
  let out = s;
  while (encoder.encode(out).length > max) out = out.slice(0, -1);
  return out;
}

/** PAX records; each record's length counts its own digits. */
function encodePax(records: PaxRecords): Uint8Array {
  let text = "";
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    const bodyLength = encoder.encode(body).length;
    let length = bodyLength + String(bodyLength).length;
    if (String(length).length !== String(bodyLength).length) length++;
    text += `${length}${body}`;
  }
  return encoder.encode(text);
}

interface HeaderFields {
  name: string;
  prefix?: string;
  typeflag: string;
  size: number;
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

function encodeHeader(fields: HeaderFields): Uint8Array {
  const block = new Uint8Array(BLOCK);
  const put = (offset: number, length: number, value: string) => {
    block.set(encoder.encode(value).subarray(0, length), offset);
  };
  const octal = (offset: number, length: number, value: number) => {
    put(offset, length, value.toString(8).padStart(length - 1, "0") + "\0");
  };
  put(0, 100, fields.name);
  octal(100, 8, fields.mode & 0o7777);
  octal(108, 8, fields.uid ?? 0);
  octal(116, 8, fields.gid ?? 0);
  octal(124, 12, fields.size);
  octal(136, 12, Math.max(0, fields.mtime ?? 0));
  put(148, 8, "        ");
  put(156, 1, fields.typeflag);
  put(157, 100, fields.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, fields.uname ?? "");
  put(297, 32, fields.gname ?? "");
  octal(329, 8, fields.devmajor ?? 0);
  octal(337, 8, fields.devminor ?? 0);
  put(345, 155, fields.prefix ?? "");
  let sum = 0;
  for (const b of block) sum += b;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return block;
}

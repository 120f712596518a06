/**
 * What sits between a CRI client's socket and the grpc-js server: an HTTP/2 byte stream rewriter
 * that makes the `:authority` of every request one that nghttp2 accepts.
 *
 * Why: grpc-go clients that dial a unix socket by its path (the kubelet's CRI client and crictl,
 * 1.26 to 1.29 at least) send the path as the `:authority` (`/var/run/pouchcri.sock`). nghttp2,
 * which Deno's `node:http2` (and so grpc-js's server) is built on, refuses `/` in an authority:
 * it answers GOAWAY PROTOCOL_ERROR and closes the connection, so such a client cannot make a
 * single call. containerd (Go's HTTP/2 server) accepts it; newer grpc-go clients send
 * `localhost`, which is what the rewriter puts in place of any authority nghttp2 would refuse.
 *
 * Only the client's side is rewritten: its header blocks are HPACK-decoded (with the client's
 * dynamic table, which the rewriter keeps in step) and re-encoded as literals without indexing, so
 * the server's decoder never needs a dynamic table entry; every other frame, and everything the
 * server sends, passes through unchanged.
 *
 * @module
 */

import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** The HTTP/2 client connection preface. */
const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const FRAME_HEADERS = 0x1;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce: safe for every frame we write. */
const MAX_FRAME = 16_384;
/** A client's frames larger than this are refused (grpc-js announces 16 KiB too). */
const MAX_ACCEPTED_FRAME = 1 << 24;
/** The characters nghttp2 accepts in an authority (RFC 3986's, as `nghttp2_check_authority`). */
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;
/** What replaces an authority nghttp2 would refuse: what newer grpc-go clients send. */
const UNIX_AUTHORITY = "localhost";

/** A header field: name and value. */
export type HeaderField = [name: string, value: string];

/** HPACK's static table (RFC 7541, appendix A), from index 1. */
const STATIC_TABLE: HeaderField[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ...[
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
  ].map((name): HeaderField => [name, ""]),
];

/**
 * The bit lengths of HPACK's Huffman codes for symbols 0-256 (RFC 7541, appendix B), one letter
 * each (`a` = 5 bits). The code is canonical: the lengths alone define it.
 */
const HUFFMAN_LENGTHS = "isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhf" +
  "ibccccccccccccccccccccccdcdioijbkabababbbaccbbbabcbaabccccckgjix" +
  "prpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrqsrssprrrsrrs" +
  "vvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwv" +
  "z";

/** Huffman codes by `length * 2^32 + code`, built from the canonical lengths. */
const HUFFMAN_DECODE: Map<number, number> = (() => {
  const lengths = Array.from(HUFFMAN_LENGTHS, (c) => c.charCodeAt(0) - 97 + 5);
  const order = lengths.map((_, symbol) => symbol)
    .sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const table = new Map<number, number>();
  let code = 0;
  let previous = lengths[order[0]!]!;
  order.forEach((symbol, i) => {
    const length = lengths[symbol]!;
    if (i > 0) code = (code + 1) * 2 ** (length - previous);
    previous = length;
    table.set(length * 2 ** 32 + code, symbol);
  });
  return table;
})();

/** Decodes a Huffman-coded string (RFC 7541, 5.2); padding must be a prefix of EOS. */
export function huffmanDecode(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      const symbol = HUFFMAN_DECODE.get(length * 2 ** 32 + code);
      if (symbol === undefined) {
        if (length > 30) throw new Error("HPACK: invalid Huffman code");
        continue;
      }
      if (symbol === 256) throw new Error("HPACK: EOS in a Huffman string");
      out.push(symbol);
      code = 0;
      length = 0;
    }
  }
  if (length > 7 || code !== 2 ** length - 1) throw new Error("HPACK: invalid Huffman padding");
  return new Uint8Array(out);
}

/** Header octets as a string of one char per byte (names and values are octets, not UTF-8). */
function octets(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

/** An HPACK decoder (RFC 7541) with its dynamic table, for one direction of one connection. */
export class HpackDecoder {
  /** Newest first. */
  #table: HeaderField[] = [];
  #size = 0;
  #maxSize = 4096;

  /** The header fields of one complete header block. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let pos = 0;
    const integer = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      for (let shift = 0; shift <= 28; shift += 7) {
        if (pos >= block.length) throw new Error("HPACK: truncated integer");
        const byte = block[pos++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
      }
      throw new Error("HPACK: integer too large");
    };
    const string = (): string => {
      if (pos >= block.length) throw new Error("HPACK: truncated string");
      const huffman = (block[pos]! & 0x80) !== 0;
      const length = integer(7);
      if (pos + length > block.length) throw new Error("HPACK: truncated string");
      const raw = block.subarray(pos, pos + length);
      pos += length;
      return octets(huffman ? huffmanDecode(raw) : raw);
    };
    while (pos < block.length) {
      const first = block[pos]!;
      if (first & 0x80) {
        fields.push(this.#entry(integer(7)));
      } else if (first & 0x40) {
        const index = integer(6);
        const name = index === 0 ? string() : this.#entry(index)[0];
        const field: HeaderField = [name, string()];
        fields.push(field);
        this.#add(field);
      } else if (first & 0x20) {
        const size = integer(5);
        if (size > 1 << 20) throw new Error("HPACK: table size too large");
        this.#maxSize = size;
        this.#evict();
      } else {
        // Literal without indexing (0000) or never indexed (0001): both 4-bit prefixes.
        const index = integer(4);
        const name = index === 0 ? string() : this.#entry(index)[0];
        fields.push([name, string()]);
      }
    }
    return fields;
  }

  #entry(index: number): HeaderField {
    const field = index <= STATIC_TABLE.length
      ? STATIC_TABLE[index - 1]
      : this.#table[index - STATIC_TABLE.length - 1];
    if (!field || index === 0) throw new Error(`HPACK: invalid index ${index}`);
    return field;
  }

  #add(field: HeaderField): void {
    this.#table.unshift(field);
    this.#size += entrySize(field);
    this.#evict();
  }

  #evict(): void {
    while (this.#size > this.#maxSize && this.#table.length > 0) {
      this.#size -= entrySize(this.#table.pop()!);
    }
  }
}

function entrySize([name, value]: HeaderField): number {
  return name.length + value.length + 32;
}

/**
 * Encodes header fields as literals without indexing with literal names: a block that needs
 * no dynamic table on either side.
 */
export function encodeHeaderBlock(fields: HeaderField[]): Uint8Array {
  const out: number[] = [];
  const integer = (value: number, prefixBits: number, first: number) => {
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out.push(first | value);
      return;
    }
    out.push(first | mask);
    value -= mask;
    while (value >= 0x80) {
      out.push((value % 0x80) | 0x80);
      value = Math.floor(value / 0x80);
    }
    out.push(value);
  };
  const string = (text: string) => {
    // One byte per char: the strings came from `octets`.
    const bytes = Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
    integer(bytes.length, 7, 0);
    for (const byte of bytes) out.push(byte);
  };
  for (const [name, value] of fields) {
    out.push(0);
    string(name);
    string(value);
  }
  return new Uint8Array(out);
}

/** The authority to send on: `value` itself when nghttp2 accepts it, else `localhost`. */
export function acceptableAuthority(value: string): string {
  return VALID_AUTHORITY.test(value) ? value : UNIX_AUTHORITY;
}

/**
 * Rewrites a client's byte stream (preface, then frames): header blocks re-encoded with an
 * acceptable authority, every other frame as it came.
 */
export class AuthorityRewriter {
  #buffer: Uint8Array = new Uint8Array(0);
  #prefaceDone = false;
  readonly #hpack = new HpackDecoder();
  /** A header block waiting for its CONTINUATION frames. */
  #pending: { streamId: number; flags: number; fragments: Uint8Array[] } | undefined;

  /** Feeds bytes read from the client; returns what to send to the server. */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#buffer = concat([this.#buffer, chunk]);
    const out: Uint8Array[] = [];
    if (!this.#prefaceDone) {
      if (this.#buffer.length < PREFACE.length) return out;
      const preface = this.#buffer.subarray(0, PREFACE.length);
      if (!preface.every((byte, i) => byte === PREFACE[i])) {
        throw new Error("not an HTTP/2 connection preface");
      }
      out.push(preface.slice());
      this.#buffer = this.#buffer.subarray(PREFACE.length);
      this.#prefaceDone = true;
    }
    while (this.#buffer.length >= 9) {
      const b = this.#buffer;
      const length = (b[0]! << 16) | (b[1]! << 8) | b[2]!;
      if (length > MAX_ACCEPTED_FRAME) throw new Error("HTTP/2 frame too large");
      if (b.length < 9 + length) break;
      const type = b[3]!;
      const flags = b[4]!;
      const streamId = ((b[5]! & 0x7f) << 24 | b[6]! << 16 | b[7]! << 8 | b[8]!) >>> 0;
      const payload = b.subarray(9, 9 + length);
      const frame = b.subarray(0, 9 + length);
      this.#buffer = b.subarray(9 + length);
      if (this.#pending && (type !== FRAME_CONTINUATION || streamId !== this.#pending.streamId)) {
        throw new Error("HTTP/2: header block interrupted");
      }
      if (type === FRAME_HEADERS) {
        this.#pending = { streamId, flags, fragments: [headerFragment(payload, flags)] };
      } else if (type === FRAME_CONTINUATION) {
        if (!this.#pending) throw new Error("HTTP/2: CONTINUATION without HEADERS");
        this.#pending.fragments.push(payload.slice());
      } else {
        out.push(frame.slice());
        continue;
      }
      if (flags & FLAG_END_HEADERS) {
        const { streamId: id, flags: first, fragments } = this.#pending;
        this.#pending = undefined;
        const fields = this.#hpack.decode(concat(fragments)).map(([name, value]): HeaderField =>
          name === ":authority" || name === "host" ? [name, acceptableAuthority(value)] : [
            name,
            value,
          ]
        );
        out.push(...headerFrames(id, first & FLAG_END_STREAM, encodeHeaderBlock(fields)));
      }
    }
    return out;
  }
}

/** The header block fragment of a HEADERS frame's payload (padding and priority dropped). */
function headerFragment(payload: Uint8Array, flags: number): Uint8Array {
  let start = 0;
  let end = payload.length;
  if (flags & FLAG_PADDED) {
    start = 1;
    end -= payload[0] ?? 0;
  }
  if (flags & FLAG_PRIORITY) start += 5;
  if (start > end) throw new Error("HTTP/2: bad HEADERS padding");
  return payload.slice(start, end);
}

/** A HEADERS frame, plus CONTINUATION frames when the block is larger than a frame. */
function headerFrames(streamId: number, endStream: number, block: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let offset = 0;
  do {
    const piece = block.subarray(offset, offset + MAX_FRAME);
    offset += piece.length;
    const last = offset >= block.length;
    const type = frames.length === 0 ? FRAME_HEADERS : FRAME_CONTINUATION;
    const flags = (frames.length === 0 ? endStream : 0) | (last ? FLAG_END_HEADERS : 0);
    const frame = new Uint8Array(9 + piece.length);
    frame.set([piece.length >> 16, (piece.length >> 8) & 0xff, piece.length & 0xff, type, flags]);
    new DataView(frame.buffer).setUint32(5, streamId);
    frame.set(piece, 9);
    frames.push(frame);
  } while (offset < block.length);
  return frames;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A duplex over a client's socket for grpc-js's connection injector: what grpc-js reads is the
 * client's byte stream with its header blocks rewritten ({@link AuthorityRewriter}); what it
 * writes goes to the client as it is.
 */
export function rewritingDuplex(
  socket: Socket,
  onError?: (err: Error) => void,
): Duplex {
  const rewriter = new AuthorityRewriter();
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      socket.write(chunk, (err) => callback(err ?? null));
    },
    final(callback) {
      socket.end(() => callback());
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on("data", (chunk: Uint8Array) => {
    let pieces: Uint8Array[];
    try {
      pieces = rewriter.push(chunk);
    } catch (err) {
      onError?.(err as Error);
      duplex.destroy(err as Error);
      return;
    }
    // Backpressure: the socket waits until grpc-js reads again.
    for (const piece of pieces) if (!duplex.push(piece)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}

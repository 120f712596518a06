/**
 * The detach key sequence of attach and exec sessions (Docker's `--detach-keys`, default
 * Ctrl-P Ctrl-Q). As in Docker, the daemon watches a session's stdin for the sequence: the
 * session then ends without closing the process's stdin, and the process keeps running.
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";

/** Docker's default sequence, `ctrl-p,ctrl-q`. */
export const DEFAULT_DETACH_KEYS: Uint8Array = Uint8Array.of(0x10, 0x11);

/**
 * Parses Docker's format: comma-separated keys, each a single character or `ctrl-X` with X one
 * of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. An empty or absent value is the default.
 *
 * @throws InvalidArgument with Docker's message, e.g. `Invalid detach keys (ctrl-1) provided`.
 */
export function parseDetachKeys(keys: string | undefined): Uint8Array {
  if (keys === undefined || keys === "") return DEFAULT_DETACH_KEYS;
  const codes: number[] = [];
  for (const key of keys.split(",")) {
    const code = keyCode(key);
    if (code === undefined) {
      throw invalidArgument(`Invalid detach keys (${keys}) provided`);
    }
    codes.push(code);
  }
  return Uint8Array.from(codes);
}

/** The byte of one key: `ctrl-@` is 0, `ctrl-a` 1 ... `ctrl-_` 31; one character is itself. */
function keyCode(key: string): number | undefined {
  if (key.length === 1) {
    const code = key.charCodeAt(0);
    return code < 0x80 ? code : undefined;
  }
  const match = /^ctrl-([a-z@[\\\]^_])$/.exec(key);
  if (!match) return undefined;
  const char = match[1]!;
  return char >= "a" && char <= "z" ? char.charCodeAt(0) - 0x60 : char.charCodeAt(0) - 0x40;
}

/** What {@link DetachKeyMatcher.feed} answers for a chunk of input. */
export interface DetachKeyResult {
  /** The bytes to pass on to the process now (held-back bytes of a broken match included). */
  forward: Uint8Array;
  /** The whole sequence was typed: end the session; nothing after it is passed on. */
  detached: boolean;
}

/**
 * Finds the detach sequence in a session's input, holding back a partial match until the next
 * chunk decides it. Like Docker's escape proxy, only chunks no longer than the sequence count
 * as typed keys: a larger chunk is pasted or piped data and passes through untouched, so binary
 * input that happens to contain the bytes never ends a session.
 */
export class DetachKeyMatcher {
  readonly #keys: Uint8Array;
  #matched = 0;

  /** A matcher of `keys` (see {@link parseDetachKeys}). */
  constructor(keys: Uint8Array) {
    this.#keys = keys;
  }

  /** Feeds one chunk of input. */
  feed(chunk: Uint8Array): DetachKeyResult {
    if (this.#keys.length === 0) return { forward: chunk, detached: false };
    if (chunk.length > this.#keys.length) return { forward: this.#flush(chunk), detached: false };
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.#keys[this.#matched]) {
        this.#matched++;
        if (this.#matched === this.#keys.length) {
          this.#matched = 0;
          return { forward: Uint8Array.from(out), detached: true };
        }
        continue;
      }
      // A broken match: the held keys were ordinary input after all.
      out.push(...this.#keys.subarray(0, this.#matched));
      this.#matched = 0;
      if (byte === this.#keys[0]) this.#matched = 1;
      else out.push(byte);
    }
    return { forward: Uint8Array.from(out), detached: false };
  }

  /** The held-back prefix (input ended mid-sequence), to pass on; resets the matcher. */
  flush(): Uint8Array {
    return this.#flush(new Uint8Array(0));
  }

  #flush(chunk: Uint8Array): Uint8Array {
    if (this.#matched === 0) return chunk;
    const out = new Uint8Array(this.#matched + chunk.length);
    out.set(this.#keys.subarray(0, this.#matched));
    out.set(chunk, this.#matched);
    this.#matched = 0;
    return out;
  }
}

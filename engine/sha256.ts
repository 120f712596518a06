/**
 * SHA-256, streaming, from libcrypto (OpenSSL 3: Debian's libssl3, which systemd itself depends
 * on) through FFI. Not node:crypto: importing it loads Deno's Node compatibility layer, about
 * 10 MB of the daemon's RSS for one hash function. Not WebCrypto: it cannot hash a stream, and
 * layers are hashed as they arrive.
 *
 * @module
 */
import { systemError } from "./errors.ts";

/** The library's soname; OpenSSL 3 keeps the SHA256_* functions (deprecated, not removed). */
const LIBCRYPTO = "libcrypto.so.3";

/** `sizeof(SHA256_CTX)` is 112 bytes in OpenSSL 3; the context gets room to spare. */
const CONTEXT_BYTES = 256;

const encoder = new TextEncoder();

let symbols:
  | Deno.DynamicLibrary<{
    SHA256_Init: { parameters: ["buffer"]; result: "i32" };
    SHA256_Update: { parameters: ["buffer", "buffer", "usize"]; result: "i32" };
    SHA256_Final: { parameters: ["buffer", "buffer"]; result: "i32" };
  }>["symbols"]
  | undefined;

function libcrypto(): NonNullable<typeof symbols> {
  if (symbols) return symbols;
  try {
    symbols = Deno.dlopen(LIBCRYPTO, {
      SHA256_Init: { parameters: ["buffer"], result: "i32" },
      SHA256_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
      SHA256_Final: { parameters: ["buffer", "buffer"], result: "i32" },
    }).symbols;
  } catch (err) {
    throw systemError(
      `SHA-256 needs ${LIBCRYPTO} (Debian package libssl3): ${(err as Error).message}`,
      err,
    );
  }
  return symbols;
}

/** A SHA-256 being computed: feed it with {@link Sha256.update}, read it once with `digest`. */
export class Sha256 {
  /**
   * The C context, in memory of its own: an ArrayBuffer's store never moves, so it stays valid
   * between calls (a small typed array of its own may live in V8's moving heap).
   */
  #context = new Uint8Array(new ArrayBuffer(CONTEXT_BYTES));
  #finished = false;

  /** Starts a hash; throws a System error when libcrypto cannot be loaded. */
  constructor() {
    if (libcrypto().SHA256_Init(this.#context) !== 1) throw systemError("SHA256_Init failed");
  }

  /** Adds `data` (a string as UTF-8). */
  update(data: Uint8Array | string): this {
    if (this.#finished) throw new Error("Sha256.update after digest");
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    if (
      bytes.length > 0 &&
      libcrypto().SHA256_Update(this.#context, bytes, BigInt(bytes.length)) !== 1
    ) {
      throw systemError("SHA256_Update failed");
    }
    return this;
  }

  /** The hash as `sha256:<hex>`; the hash takes no more data afterwards. */
  digest(): string {
    if (this.#finished) throw new Error("Sha256.digest called twice");
    this.#finished = true;
    const out = new Uint8Array(new ArrayBuffer(32));
    if (libcrypto().SHA256_Final(out, this.#context) !== 1) {
      throw systemError("SHA256_Final failed");
    }
    return `sha256:${out.toHex()}`;
  }
}

/** The digest of `data` (a string as UTF-8), as `sha256:<hex>`. */
export function sha256Digest(data: Uint8Array | string): string {
  return new Sha256().update(data).digest();
}

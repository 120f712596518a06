/**
 * What the modules that call libc through FFI share: C strings and errno. Each module opens
 * libc with its own symbols; this one opens it for `__errno_location` alone.
 *
 * @module
 */

let errnoLocation: (() => Deno.PointerValue) | undefined;

/**
 * errno of the libc call just made on this thread. Only meaningful right after a synchronous
 * FFI call, with nothing in between.
 */
export function errno(): number {
  errnoLocation ??= Deno.dlopen("libc.so.6", {
    __errno_location: { parameters: [], result: "pointer" },
  }).symbols.__errno_location;
  const location = errnoLocation();
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
}

/** `text` as a NUL-terminated C string. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`${text}\0`);
}

/**
 * Giving freed memory back to the system. The daemon's native allocations (buffers of container
 * output on their way to the logs, of pulls and of API answers) come from glibc's heap, which
 * keeps what is freed inside it for later: after a container wrote 100 MB of output, 100 MB of
 * free heap stayed in the daemon's RSS. `malloc_trim(0)` returns the free pages, a few
 * milliseconds of work at most; the daemon calls it a second after its start (5-10 MB freed by
 * the start-up itself) and then every 10 seconds.
 *
 * @module
 */

let libc:
  | Deno.DynamicLibrary<{ malloc_trim: { parameters: ["usize"]; result: "i32" } }>["symbols"]
  | undefined;

/** Returns the free pages of the C heap to the system; false where there is no glibc. */
export function trimMalloc(): boolean {
  try {
    libc ??= Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    }).symbols;
  } catch {
    return false;
  }
  libc.malloc_trim(0n);
  return true;
}

/**
 * Calls {@link trimMalloc} a second from now (what the start-up freed: the daemon's bundle
 * decompressed and compiled, the state read back) and then every `intervalMs`; returns the
 * function that stops it.
 */
export function startMallocTrimmer(intervalMs = 30_000): () => void {
  const trim = () => {
    if (!trimMalloc()) clearInterval(timer);
  };
  const first = setTimeout(trim, 1000);
  const timer = setInterval(trim, intervalMs);
  Deno.unrefTimer(first);
  Deno.unrefTimer(timer);
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}

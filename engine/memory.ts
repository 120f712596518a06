/**
 * Giving freed memory back to the system. The daemon's native allocations (buffers of container
 * output on their way to the logs, of pulls, of API answers and containerd calls) come from
 * glibc's heap, which keeps what is freed inside it for later: after a container wrote 100 MB of
 * output, 100 MB of free heap stayed in the daemon's RSS. `malloc_trim(0)` returns the free
 * pages, a few milliseconds of work at most.
 *
 * Much of that native memory is only freed when V8 collects the JavaScript objects that own it
 * (finished fetches, child processes, streams), and V8 sees no reason to collect a small heap:
 * after 100 containers were started, 30 MB more stayed in the daemon until a full collection.
 * So the reclaimer also runs a full collection, when the daemon runs with `--expose-gc` (as
 * `dist/pouch` and `deno task daemon` do), but only when a burst of API work has just ended: an
 * idle daemon is never collected again and a busy one is not paused. The collection is V8's
 * "last resort" flavour, which compacts the heap and returns its empty pages: a plain full
 * collection frees the objects but keeps their pages (after a `ps` of 1,000 containers and their
 * removal, 12 MB of free V8 heap stayed in the daemon). It pauses the daemon a few milliseconds
 * more (7 against 2 ms for a heap of this size).
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

/** The work the daemon has done: requests answered so far and requests in flight. */
export interface Activity {
  served: number;
  inFlight: number;
}

/** Options of {@link startMemoryReclaimer}. */
export interface ReclaimerOptions {
  /** Between trims of the C heap; 10 s by default. */
  trimIntervalMs?: number;
  /** Between looks at the activity; 500 ms by default. */
  tickMs?: number;
  /** At least this long between collections; 5 s by default. */
  minCollectionIntervalMs?: number;
  /** The daemon's activity; without it, the reclaimer only trims. */
  activity?: () => Activity;
  /** A full V8 collection; `globalThis.gc` (from `--expose-gc`) when there is one. */
  collect?: () => void;
}

/**
 * Trims the C heap a second from now (what the start-up freed: the daemon's bundle decompressed
 * and compiled, the state read back) and then every `trimIntervalMs`. Each tick it looks at the
 * activity: once requests have been answered since the last collection and a whole tick has
 * passed with none answered and none in flight, it collects (see the module's notes), at most
 * once per `minCollectionIntervalMs`, and trims half a second later. Returns the function that stops
 * it.
 */
export function startMemoryReclaimer(options: ReclaimerOptions = {}): () => void {
  const collect = options.collect ?? exposedGc();
  const minInterval = options.minCollectionIntervalMs ?? 5_000;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, task: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      task();
    }, ms);
    Deno.unrefTimer(timer);
    timers.add(timer);
  };
  let collectedAt: number | undefined;
  let lastCollection = -Infinity;
  let servedLastTick: number | undefined;
  const tick = () => {
    const activity = options.activity?.();
    if (!collect || !activity) return;
    const quiet = activity.inFlight === 0 && activity.served === servedLastTick;
    servedLastTick = activity.served;
    const now = performance.now();
    if (quiet && activity.served !== collectedAt && now - lastCollection >= minInterval) {
      collectedAt = activity.served;
      lastCollection = now;
      collect();
      // What the collection released is freed by finalizers that run after it: trim once they
      // have.
      later(500, trimMalloc);
    }
  };
  const trim = () => {
    if (!trimMalloc()) clearInterval(trimmer);
  };
  later(1000, trim);
  const trimmer = setInterval(trim, options.trimIntervalMs ?? 10_000);
  const ticker = setInterval(tick, options.tickMs ?? 500);
  Deno.unrefTimer(trimmer);
  Deno.unrefTimer(ticker);
  return () => {
    for (const timer of timers) clearTimeout(timer);
    clearInterval(trimmer);
    clearInterval(ticker);
  };
}

function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options?: Record<string, string>) => void }).gc;
  return typeof gc === "function"
    ? () => gc({ type: "major", execution: "sync", flavor: "last-resort" })
    : undefined;
}

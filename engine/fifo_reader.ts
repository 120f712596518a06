/**
 * Reading FIFOs without a thread each. A `Deno.FsFile` read of a FIFO blocks one of the
 * runtime's blocking threads until data comes, and Deno has only 32 of them: with two output
 * FIFOs per running container, 16 idle containers would exhaust them and every file operation
 * of the daemon would stall. Here every FIFO is opened non-blocking through libc and watched by
 * one epoll instance; one `epoll_wait` at a time runs on a blocking thread, and the reads
 * themselves never block, so any number of containers costs one thread.
 *
 * @module
 */

import { errno } from "./_libc.ts";

const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLLIN = 0x1;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EINTR = 4;
const EAGAIN = 11;
/** `struct epoll_event` is packed on x86_64: a u32 of events, then a u64 of data. */
const EVENT_SIZE = 12;
const MAX_EVENTS = 64;
/** How long one wait lasts, so that the loop notices it has nothing left to watch. */
const WAIT_MS = 250;
const CHUNK = 64 * 1024;
/** Reads of one FIFO per wake-up: a fast writer does not keep the event loop to itself. */
const READS_PER_WAKE = 16;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Takes a chunk; a promise returned pauses the reading until it settles (backpressure). */
export type FifoDataHandler = (chunk: Uint8Array) => void | Promise<void>;

interface Watch {
  onData: FifoDataHandler;
  resolve: () => void;
  /** The event registered for the FIFO, to register it again after a pause. */
  event: Uint8Array;
  paused: boolean;
}

/** The process's one epoll instance and the FIFOs it watches. */
class FifoPoller {
  readonly #libc: Libc;
  readonly #epoll: number;
  readonly #watches = new Map<number, Watch>();
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);
  readonly #chunk = new Uint8Array(CHUNK);
  #looping = false;

  constructor() {
    this.#libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    this.#epoll = this.#libc.epoll_create1(O_CLOEXEC);
    if (this.#epoll < 0) throw new Error(`epoll_create1 failed: errno ${errno()}`);
  }

  /** Opens `path` and delivers what is written to it until every writer has closed it. */
  read(path: string, onData: FifoDataHandler): Promise<void> {
    const fd = this.#libc.open(
      new TextEncoder().encode(`${path}\0`),
      O_RDONLY | O_NONBLOCK | O_CLOEXEC,
      0,
    );
    if (fd < 0) return Promise.reject(new Error(`open ${path}: errno ${errno()}`));
    const event = new Uint8Array(EVENT_SIZE);
    const view = new DataView(event.buffer);
    view.setUint32(0, EPOLLIN, true);
    view.setBigUint64(4, BigInt(fd), true);
    if (this.#libc.epoll_ctl(this.#epoll, EPOLL_CTL_ADD, fd, event) < 0) {
      const code = errno();
      this.#libc.close(fd);
      return Promise.reject(new Error(`epoll_ctl ${path}: errno ${code}`));
    }
    const done = Promise.withResolvers<void>();
    this.#watches.set(fd, { onData, resolve: done.resolve, event, paused: false });
    if (!this.#looping) this.#loop();
    return done.promise;
  }

  async #loop(): Promise<void> {
    this.#looping = true;
    try {
      while (this.#watches.size > 0) {
        const ready = await this.#libc.epoll_wait(this.#epoll, this.#events, MAX_EVENTS, WAIT_MS);
        if (ready < 0) {
          if (errno() === EINTR) continue;
          throw new Error(`epoll_wait failed: errno ${errno()}`);
        }
        const view = new DataView(this.#events.buffer);
        for (let i = 0; i < ready; i++) {
          const flags = view.getUint32(i * EVENT_SIZE, true);
          const fd = Number(view.getBigUint64(i * EVENT_SIZE + 4, true));
          if (flags & (EPOLLIN | EPOLLHUP | EPOLLERR)) this.#drain(fd);
        }
      }
    } finally {
      this.#looping = false;
    }
  }

  /**
   * Reads `fd` until it would block, or a handler asks to wait, or for {@link READS_PER_WAKE}
   * reads (epoll reports it again); at EOF (no writer left) the watch ends.
   */
  #drain(fd: number): void {
    const watch = this.#watches.get(fd);
    if (!watch || watch.paused) return;
    for (let reads = 0; reads < READS_PER_WAKE; reads++) {
      const n = Number(this.#libc.read(fd, this.#chunk, BigInt(CHUNK)));
      if (n > 0) {
        const wait = watch.onData(this.#chunk.slice(0, n));
        if (wait) {
          this.#pause(fd, watch, wait);
          return;
        }
        continue;
      }
      if (n < 0) {
        const code = errno();
        if (code === EAGAIN) return;
        if (code === EINTR) continue;
      }
      // 0: every writer has closed it; or an error, which ends the stream like EOF does.
      this.#close(fd);
      watch.resolve();
      return;
    }
  }

  /**
   * Stops watching `fd` until `until` settles: what the writer sends meanwhile waits in the
   * FIFO (a full pipe blocks the writer) rather than in the daemon's memory.
   */
  #pause(fd: number, watch: Watch, until: Promise<void>): void {
    watch.paused = true;
    this.#libc.epoll_ctl(this.#epoll, EPOLL_CTL_DEL, fd, new Uint8Array(EVENT_SIZE));
    until.catch(() => {}).then(() => {
      watch.paused = false;
      if (this.#watches.get(fd) !== watch) return;
      // Level-triggered: data already waiting is reported by the next (or current) wait.
      this.#libc.epoll_ctl(this.#epoll, EPOLL_CTL_ADD, fd, watch.event);
      if (!this.#looping) this.#loop();
    });
  }

  #close(fd: number): void {
    this.#libc.epoll_ctl(this.#epoll, EPOLL_CTL_DEL, fd, new Uint8Array(EVENT_SIZE));
    this.#libc.close(fd);
    this.#watches.delete(fd);
  }
}

let poller: FifoPoller | undefined;

/**
 * Opens the FIFO at `path` for reading without blocking a thread (see the module doc) and calls
 * `onData` with each chunk written to it (a promise it returns holds the reading back until it
 * settles); resolves once every writer has closed it. The read end is opened at once, writers
 * or not: a stream only ends after a writer has come and gone.
 */
export function readFifo(path: string, onData: FifoDataHandler): Promise<void> {
  poller ??= new FifoPoller();
  return poller.read(path, onData);
}

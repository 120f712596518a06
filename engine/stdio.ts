/**
 * A container's standard streams: the FIFOs the runc shim writes into, the pumps that read them
 * into the json-file log and out to attached clients, and the stdin FIFO the daemon writes.
 *
 * The shim keeps its own read end of each output FIFO open, so a container never gets EPIPE
 * while the daemon is down; the daemon reopens the FIFOs when it re-adopts the container.
 *
 * @module
 */
import { readFifo } from "./fifo_reader.ts";

/** Which stream a chunk came from. */
export type StreamName = "stdout" | "stderr";

/** Where a pump writes a container's output: its json-file log, or its CRI log. */
export interface OutputLog {
  /** Adds output of `stream`. */
  write(stream: StreamName, chunk: Uint8Array): void;
  /** Waits until everything written reached the file. */
  flush(): Promise<void>;
  /** Flushes and closes the file. */
  close(): Promise<void>;
}

/** A listener for a container's output. */
export interface OutputListener {
  data(stream: StreamName, chunk: Uint8Array): void;
  /** The output of this run ended (the process and its children closed their streams). */
  end(): void;
}

/** Fans a container's output out to attached clients. */
export class OutputHub {
  readonly #listeners = new Set<OutputListener>();

  /** Adds `listener`; the returned function removes it. */
  subscribe(listener: OutputListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends a chunk to every listener. */
  publish(stream: StreamName, chunk: Uint8Array): void {
    for (const listener of this.#listeners) listener.data(stream, chunk);
  }

  /** Tells every listener that the output ended, and forgets them. */
  end(): void {
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const listener of listeners) listener.end();
  }
}

let libc: Deno.DynamicLibrary<{ mkfifo: { parameters: ["buffer", "u32"]; result: "i32" } }> | null =
  null;

/** Creates a FIFO at `path` with mode 0600 (Deno has no mkfifo; libc's through FFI). */
export async function mkfifo(path: string): Promise<void> {
  try {
    libc ??= Deno.dlopen("libc.so.6", { mkfifo: { parameters: ["buffer", "u32"], result: "i32" } });
  } catch {
    const result = await new Deno.Command("mkfifo", { args: ["-m", "600", path] }).output();
    if (!result.success) throw new Error(`mkfifo ${path} failed`);
    return;
  }
  const status = libc.symbols.mkfifo(new TextEncoder().encode(path + "\0"), 0o600);
  if (status !== 0) {
    const info = await Deno.lstat(path).catch(() => null);
    if (info?.isFifo) return;
    throw new Error(`mkfifo ${path} failed`);
  }
}

/** The FIFO paths of one process's streams. */
export interface FifoSet {
  stdin?: string;
  stdout: string;
  stderr?: string;
}

/** The FIFO paths of a process in `dir` (`<prefix>-stdout` ...), as {@link makeFifos} makes them. */
export function fifoPaths(
  dir: string,
  prefix: string,
  options: { stdin: boolean; tty: boolean },
): FifoSet {
  const set: FifoSet = { stdout: `${dir}/${prefix}-stdout` };
  if (!options.tty) set.stderr = `${dir}/${prefix}-stderr`;
  if (options.stdin) set.stdin = `${dir}/${prefix}-stdin`;
  return set;
}

/** Makes the FIFOs for a process in `dir` (`<prefix>-stdout` ...). */
export async function makeFifos(
  dir: string,
  prefix: string,
  options: { stdin: boolean; tty: boolean },
): Promise<FifoSet> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const set = fifoPaths(dir, prefix, options);
  for (const path of [set.stdin, set.stdout, set.stderr]) {
    if (!path) continue;
    await Deno.remove(path).catch(() => {});
    await mkfifo(path);
  }
  return set;
}

/** Removes the FIFOs of `set`. */
export async function removeFifos(set: FifoSet): Promise<void> {
  for (const path of [set.stdin, set.stdout, set.stderr]) {
    if (path) await Deno.remove(path).catch(() => {});
  }
}

/** Output read for a log before the pump waits for the log to have written it. */
const LOG_BACKLOG_BYTES = 1 << 20;

/**
 * Reads a process's output FIFOs into a log and a hub until both reach EOF.
 *
 * Opening a FIFO for reading blocks until a writer opens it: the opens start before the task is
 * created, and {@link OutputPump.abandon} unblocks them if the task never comes.
 */
export class OutputPump {
  readonly #fifos: FifoSet;
  readonly #hub: OutputHub;
  readonly #log: OutputLog | undefined;
  readonly #done: Promise<void>;
  readonly #keepers: Deno.FsFile[] = [];
  readonly #keepOpen: boolean;
  /** Resolves once every read end is open (or failed to open). */
  readonly #opened: Promise<void>;
  #abandoned = false;

  /**
   * Starts reading `fifos` into `log` (if any) and `hub` (without a thread per FIFO: see
   * `fifo_reader.ts`).
   *
   * The pump first holds a write end of each FIFO itself, so that a stream ends (EOF) only after
   * a writer has come and gone: it drops it once the process's own writers are attached
   * ({@link attached}; `attached: true` when they already are, for a re-adopted task), or when
   * the process never ran ({@link abandon}). With `keepOpen` it holds them until the process has
   * ended ({@link settle}, {@link abandon}): for an init such as systemd that trades the streams
   * it was given for /dev/null and opens the FIFOs (mounted in the container) again later, EOF
   * must not come before it exits.
   */
  constructor(
    fifos: FifoSet,
    options: { hub: OutputHub; log?: OutputLog; keepOpen?: boolean; attached?: boolean },
  ) {
    this.#fifos = fifos;
    this.#hub = options.hub;
    this.#log = options.log;
    this.#keepOpen = options.keepOpen === true;
    for (const path of [fifos.stdout, fifos.stderr]) {
      if (!path) continue;
      try {
        // This end is never read.
        this.#keepers.push(Deno.openSync(path, { read: true, write: true }));
      } catch {
        // No FIFO: the read end fails to open too, and that stream simply ends.
      }
    }
    const streams: Array<[StreamName, string]> = [["stdout", fifos.stdout]];
    if (fifos.stderr) streams.push(["stderr", fifos.stderr]);
    const opened = streams.map(() => Promise.withResolvers<void>());
    this.#opened = Promise.all(opened.map((o) => o.promise)).then(() => {});
    this.#done = Promise.all(
      streams.map(([name, path], i) => this.#pump(name, path, () => opened[i]!.resolve())),
    )
      .then(async () => {
        await this.#log?.flush();
        this.#hub.end();
      });
    if (options.attached) this.attached();
  }

  /** Resolves when every stream reached EOF and the log is flushed. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** The process's writers are attached (its task or exec was created): ours can go. */
  attached(): void {
    // Not before the read ends are open, or the stream could miss the writers' departure.
    if (!this.#keepOpen) this.#opened.then(() => this.#release());
  }

  /** The process has ended: waits for EOF, at most `ms` milliseconds; says whether EOF came. */
  async settle(ms: number): Promise<boolean> {
    this.#release();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([this.#done.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the pump (the task was never created, or its start failed). */
  async abandon(): Promise<void> {
    this.#abandoned = true;
    // Without our write ends, and no process's, the reads see EOF.
    this.#release();
    await this.#done;
  }

  #release(): void {
    for (const keeper of this.#keepers.splice(0)) keeper.close();
  }

  async #pump(stream: StreamName, path: string, onOpen: () => void): Promise<void> {
    let reading: Promise<void>;
    let unflushed = 0;
    try {
      reading = readFifo(path, (chunk) => {
        if (this.#abandoned) return;
        this.#log?.write(stream, chunk);
        this.#hub.publish(stream, chunk);
        if (!this.#log) return;
        unflushed += chunk.length;
        if (unflushed < LOG_BACKLOG_BYTES) return;
        unflushed = 0;
        // The output waits in the FIFO while the log catches up: a process writing faster than
        // its log can take blocks on a full pipe, as on a slow terminal, instead of the daemon
        // holding its output in memory (100 MB written at once grew the daemon by 700 MB).
        return this.#log.flush();
      });
    } finally {
      onOpen();
    }
    // A read error ends this stream like EOF does.
    await reading.catch(() => {});
  }
}

/** The daemon's write end of a process's stdin FIFO. */
export class StdinWriter {
  readonly #file: Deno.FsFile;
  #closed = false;
  #queue: Promise<void> = Promise.resolve();

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Opens `path` read-write, which never blocks on a FIFO. */
  static async open(path: string): Promise<StdinWriter> {
    return new StdinWriter(await Deno.open(path, { read: true, write: true }));
  }

  /** Writes `chunk` after every earlier chunk. */
  write(chunk: Uint8Array): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      if (this.#closed) return;
      let offset = 0;
      while (offset < chunk.length) offset += await this.#file.write(chunk.subarray(offset));
    }).catch(() => {});
    return this.#queue;
  }

  /** Closes the FIFO after pending writes: the process reads EOF. */
  async close(): Promise<void> {
    await this.#queue;
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

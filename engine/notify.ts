/**
 * systemd's notification protocol (`sd_notify`): datagrams such as `READY=1` sent to the unix
 * socket named by `$NOTIFY_SOCKET`. Deno has no datagram unix socket in its stable API, so the
 * socket is made and written through libc by FFI, as `stdio.ts` does for mkfifo.
 *
 * A path starting with `@` names an abstract socket (its first byte is NUL on the wire).
 *
 * @module
 */

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
/** No SIGPIPE when the receiver is gone: the daemon must not die of a closed socket. */
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
/** `sizeof(struct sockaddr_un)`: a 2-byte family and 108 bytes of path. */
const SOCKADDR_UN_SIZE = 110;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | null = null;

function open(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  libc ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return libc.symbols;
}

/** `struct sockaddr_un` for `path` (`@name`: abstract) and the length to pass with it. */
export function socketAddress(path: string): { address: Uint8Array; length: number } {
  const name = new TextEncoder().encode(path);
  const abstract = path.startsWith("@");
  if (name.length === 0 || name.length >= SOCKADDR_UN_SIZE - 2) {
    throw new Error(`invalid notify socket ${JSON.stringify(path)}`);
  }
  const address = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  // An abstract name's `@` becomes its leading NUL and its length counts no terminator.
  if (abstract) address[2] = 0;
  return { address, length: 2 + name.length + (abstract ? 0 : 1) };
}

/** The socket {@link claimNotifySocket} took from the environment. */
let claimed: string | undefined;

/**
 * Takes `$NOTIFY_SOCKET` for this process alone (sd_notify's `unset_environment`): the
 * processes the daemon starts must not inherit it, or containerd's own READY=1 would reach
 * systemd before the daemon is ready.
 */
export function claimNotifySocket(): void {
  claimed = Deno.env.get("NOTIFY_SOCKET") ?? claimed;
  Deno.env.delete("NOTIFY_SOCKET");
}

/** Options of {@link sdNotify}. */
export interface NotifyOptions {
  /** The socket; the claimed one or `$NOTIFY_SOCKET` when omitted. */
  socket?: string;
}

/**
 * Sends `state` (newline-separated `KEY=VALUE` lines, such as `READY=1\nSTATUS=serving`) to the
 * service manager. Returns false when no manager listens (`$NOTIFY_SOCKET` unset), true once
 * sent; throws when the socket exists but the send fails.
 */
export function sdNotify(state: string, options: NotifyOptions = {}): boolean {
  const path = options.socket ?? claimed ?? Deno.env.get("NOTIFY_SOCKET");
  if (!path) return false;
  const { address, length } = socketAddress(path);
  const c = open();
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error("cannot create the notify socket");
  try {
    const message = new TextEncoder().encode(state);
    const sent = c.sendto(fd, message, BigInt(message.length), MSG_NOSIGNAL, address, length);
    if (Number(sent) !== message.length) throw new Error(`cannot notify ${path}`);
    return true;
  } finally {
    c.close(fd);
  }
}

/**
 * A datagram socket bound at a path or abstract name that collects what {@link sdNotify}
 * sends: the service manager's side, for tests and for tools that supervise the daemon.
 */
export class NotifyListener {
  readonly #fd: number;
  readonly path: string;

  /** Binds `path` (`@name`: abstract); a file at `path` is replaced. */
  constructor(path: string) {
    const c = open();
    if (!path.startsWith("@")) {
      try {
        Deno.removeSync(path);
      } catch {
        // Nothing there.
      }
    }
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error("cannot create a datagram socket");
    const { address, length } = socketAddress(path);
    if (c.bind(fd, address, length) !== 0) {
      c.close(fd);
      throw new Error(`cannot bind ${path}`);
    }
    this.#fd = fd;
    this.path = path;
  }

  /** The datagrams queued so far (without waiting). */
  drain(): string[] {
    const c = open();
    const buffer = new Uint8Array(4096);
    const out: string[] = [];
    while (true) {
      const n = Number(c.recv(this.#fd, buffer, BigInt(buffer.length), MSG_DONTWAIT));
      if (n < 0) return out;
      out.push(new TextDecoder().decode(buffer.subarray(0, n)));
    }
  }

  /** Closes the socket and removes its file. */
  close(): void {
    open().close(this.#fd);
    if (!this.path.startsWith("@")) {
      try {
        Deno.removeSync(this.path);
      } catch {
        // Already gone.
      }
    }
  }
}

/**
 * Tells the service manager `state` if one listens; a failure is logged, never thrown, since
 * the daemon serves whether or not systemd hears it.
 */
export function notifyManager(
  state: string,
  log: { warn(message: string, fields?: object): void },
): void {
  try {
    sdNotify(state);
  } catch (err) {
    log.warn("cannot notify the service manager", {
      state: state.split("\n")[0],
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/**
 * systemd's notification protocol (`sd_notify`): datagrams such as `READY=1` sent to the unix
 * socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket), sent through
 * `_unix_dgram.ts` since Deno's stable API has no datagram unix socket.
 *
 * @module
 */

import { UnixDatagramSocket } from "./_unix_dgram.ts";

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
  const socket = UnixDatagramSocket.connect(path);
  try {
    if (!socket.send(new TextEncoder().encode(state))) throw new Error(`cannot notify ${path}`);
    return true;
  } finally {
    socket.close();
  }
}

/**
 * A datagram socket bound at a path or abstract name that collects what {@link sdNotify}
 * sends: the service manager's side, for tests and for tools that supervise the daemon.
 */
export class NotifyListener {
  readonly #socket: UnixDatagramSocket;
  readonly path: string;

  /** Binds `path` (`@name`: abstract); a file at `path` is replaced. */
  constructor(path: string) {
    if (!path.startsWith("@")) {
      try {
        Deno.removeSync(path);
      } catch {
        // Nothing there.
      }
    }
    this.#socket = UnixDatagramSocket.bind(path);
    this.path = path;
  }

  /** The datagrams queued so far (without waiting). */
  drain(): string[] {
    const out: string[] = [];
    for (let datagram = this.#socket.receive(); datagram; datagram = this.#socket.receive()) {
      out.push(new TextDecoder().decode(datagram));
    }
    return out;
  }

  /** Closes the socket and removes its file. */
  close(): void {
    this.#socket.close();
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

/**
 * Unix datagram sockets through libc (Deno's stable API has none): what the syslog log driver
 * sends to `/dev/log` with, what `sd_notify` sends to systemd with (`notify.ts`), and what their
 * tests receive with. Sends never block: a full receive queue drops the message, as syslog over
 * a datagram socket may. A path starting with `@` names an abstract socket (its first byte is
 * NUL on the wire).
 *
 * @module
 */

import { errno } from "./_libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EPROTOTYPE = 91;

const symbols = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof symbols> | null = null;

function lib(): Deno.DynamicLibrary<typeof symbols> {
  libc ??= Deno.dlopen("libc.so.6", symbols);
  return libc;
}

/** `sizeof(struct sockaddr_un)`: a 2-byte family and 108 bytes of path. */
const SOCKADDR_UN_SIZE = 110;

/**
 * `struct sockaddr_un` for `path` (`@name`: abstract), as long as it must be passed: an abstract
 * name's `@` becomes its leading NUL and its length counts no terminator.
 */
export function sockaddr(path: string): Uint8Array {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length === 0 || bytes.length >= SOCKADDR_UN_SIZE - 2) {
    throw new Error(`invalid unix socket path ${JSON.stringify(path)}`);
  }
  const abstract = path.startsWith("@");
  const address = new Uint8Array(2 + bytes.length + (abstract ? 0 : 1));
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(bytes, 2);
  if (abstract) address[2] = 0;
  return address;
}

/** Raised by {@link UnixDatagramSocket.connect} when `path` is a stream socket, not a datagram one. */
export class NotDatagramSocket extends Error {}

/** A unix datagram socket: connected to send, or bound to receive. */
export class UnixDatagramSocket {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  static #open(): UnixDatagramSocket {
    const fd = lib().symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket(AF_UNIX, SOCK_DGRAM) failed: errno ${errno()}`);
    return new UnixDatagramSocket(fd);
  }

  /** A socket sending to the datagram socket at `path`; throws when nothing listens there. */
  static connect(path: string): UnixDatagramSocket {
    const socket = UnixDatagramSocket.#open();
    const address = sockaddr(path);
    if (lib().symbols.connect(socket.#fd, address, address.length) !== 0) {
      const code = errno();
      socket.close();
      if (code === EPROTOTYPE) throw new NotDatagramSocket(`${path} is not a datagram socket`);
      throw new Error(`cannot connect to unix datagram socket ${path}: errno ${code}`);
    }
    return socket;
  }

  /** A socket bound at `path` (which must not exist), receiving datagrams. */
  static bind(path: string): UnixDatagramSocket {
    const socket = UnixDatagramSocket.#open();
    const address = sockaddr(path);
    if (lib().symbols.bind(socket.#fd, address, address.length) !== 0) {
      const code = errno();
      socket.close();
      throw new Error(`cannot bind unix datagram socket ${path}: errno ${code}`);
    }
    return socket;
  }

  /** Sends one datagram; false when the receiver's queue is full (the datagram is dropped). */
  send(datagram: Uint8Array): boolean {
    if (this.#fd < 0) throw new Error("socket closed");
    const sent = lib().symbols.send(this.#fd, datagram, BigInt(datagram.length), MSG_DONTWAIT);
    if (Number(sent) >= 0) return true;
    const code = errno();
    if (code === EAGAIN) return false;
    throw new Error(`send on unix datagram socket failed: errno ${code}`);
  }

  /** The next queued datagram, or null when none is queued (never blocks). */
  receive(): Uint8Array | null {
    if (this.#fd < 0) throw new Error("socket closed");
    const buffer = new Uint8Array(64 * 1024);
    const n = Number(lib().symbols.recv(this.#fd, buffer, BigInt(buffer.length), MSG_DONTWAIT));
    if (n >= 0) return buffer.slice(0, n);
    const code = errno();
    if (code === EAGAIN) return null;
    throw new Error(`recv on unix datagram socket failed: errno ${code}`);
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    lib().symbols.close(this.#fd);
    this.#fd = -1;
  }
}

/**
 * A hijacked attach or exec stream: the process's output goes to the socket, the socket's
 * bytes go to the process's stdin, watched for the detach key sequence. What ends a session
 * follows moby's `AttachStreams`: the detach keys end it without closing the process's stdin;
 * the client's half-close closes the process's stdin without a TTY, and ends the session with
 * one (a terminal's stdin has no end of file).
 *
 * @module
 */
import { DetachKeyMatcher } from "../detach_keys.ts";
import type { Hijack } from "./http.ts";

/** The process side of a session, as the container and exec managers hand it out. */
export interface StreamSession {
  /** Sends client input to the process; `null` is the client's end of input. */
  input?: (chunk: Uint8Array | null) => void;
  /** Stops sending output to this client. */
  detach: () => void;
}

/** Options of {@link pipeHijacked}. */
export interface PipeOptions {
  /** The process has a TTY: stdin's end ends the session instead of closing stdin. */
  tty: boolean;
  /** The detach sequence (see `parseDetachKeys`). */
  detachKeys: Uint8Array;
  /** Opens the session with the socket's writer and closer. */
  open: (io: { write: (bytes: Uint8Array) => void; close: () => void }) => StreamSession;
}

/** Runs a session over `hijack`'s socket (the 101 answer must already be written). */
export function pipeHijacked(hijack: Hijack, options: PipeOptions): StreamSession {
  const socket = hijack.socket;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    socket.end();
  };
  const session = options.open({
    write: (bytes) => {
      if (!closed) socket.write(bytes);
    },
    close,
  });
  const matcher = new DetachKeyMatcher(options.detachKeys);
  let inputDone = false;
  const detach = () => {
    inputDone = true;
    session.detach();
    close();
  };
  const onData = (chunk: Uint8Array) => {
    if (inputDone || !session.input) return;
    const { forward, detached } = matcher.feed(chunk);
    if (forward.length > 0) session.input(forward);
    if (detached) detach();
  };
  socket.on("data", onData);
  socket.on("end", () => {
    // Without stdin attached, the client's half-close means nothing (Docker ignores it).
    if (inputDone || !session.input) return;
    inputDone = true;
    const held = matcher.flush();
    if (held.length > 0) session.input?.(held);
    if (options.tty) detach();
    else session.input?.(null);
  });
  socket.on("error", () => session.detach());
  socket.on("close", () => {
    closed = true;
    session.detach();
  });
  if (hijack.head.length > 0) onData(hijack.head);
  return session;
}

/**
 * ExecSync (a command run to completion, with a timeout), and Exec, Attach and PortForward,
 * which answer a URL of the streaming server; plus the streaming server's runtime side, which
 * runs those sessions on the engine's exec manager and container manager.
 *
 * @module
 */
import { conflict, invalidArgument } from "../engine/errors.ts";
import { GrpcCode } from "../engine/grpc_errors.ts";
import type { CriContext } from "./context.ts";
import { podIpOf } from "./sandbox.ts";
import { GrpcStatusError, type Handlers } from "./server.ts";
import type {
  StreamingServer,
  StreamRuntime,
  StreamSession,
  StreamSink,
  TerminalSize,
} from "./streaming.ts";

/** ExecSync keeps at most this much of each stream, as containerd does (16 MiB). */
const MAX_EXEC_SYNC_OUTPUT = 16 * 1024 * 1024;

/** The result of {@link execSync}. */
export interface ExecSyncResult {
  stdout: Uint8Array;
  stderr: Uint8Array;
  exitCode: number;
}

/**
 * Splits the engine's multiplexed output frames (an 8-byte header: stream, 0, 0, 0, size) into
 * their streams; each write of the engine is whole frames.
 */
export function demux(
  bytes: Uint8Array,
  emit: (stream: "stdout" | "stderr", chunk: Uint8Array) => void,
): void {
  let at = 0;
  while (at + 8 <= bytes.length) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + at + 4, 4).getUint32(0);
    const stream = bytes[at] === 2 ? "stderr" : "stdout";
    emit(stream, bytes.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
}

/** Runs `cmd` in container `id` to completion; a timeout kills it and is DeadlineExceeded. */
export async function execSync(
  ctx: CriContext,
  id: string,
  options: { cmd: string[]; timeoutMs?: number },
): Promise<ExecSyncResult> {
  const exec = ctx.backend.exec;
  const { Id: execId } = exec.create(id, {
    Cmd: options.cmd,
    AttachStdout: true,
    AttachStderr: true,
  });
  const chunks = { stdout: [] as Uint8Array[], stderr: [] as Uint8Array[] };
  const sizes = { stdout: 0, stderr: 0 };
  const closed = Promise.withResolvers<void>();
  const session = exec.start(execId, {
    write: (bytes) =>
      demux(bytes, (stream, chunk) => {
        if (sizes[stream] + chunk.length > MAX_EXEC_SYNC_OUTPUT) return;
        sizes[stream] += chunk.length;
        chunks[stream].push(chunk.slice());
      }),
    close: () => closed.resolve(),
  });
  await session.started;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    if (options.timeoutMs) timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  try {
    const outcome = await Promise.race([closed.promise, timedOut]);
    if (outcome === "timeout") {
      await ctx.backend.client.tasks.kill(id, 9, { execId }).catch(() => {});
      throw new GrpcStatusError(
        GrpcCode.DEADLINE_EXCEEDED,
        `command ${JSON.stringify(options.cmd)} timed out after ${options.timeoutMs! / 1000}s`,
      );
    }
  } finally {
    clearTimeout(timer);
  }
  return {
    stdout: concat(chunks.stdout),
    stderr: concat(chunks.stderr),
    exitCode: exec.inspect(execId).ExitCode ?? 0,
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The exec and streaming RPCs' handlers; the URLs point at `streaming`. */
export function execHandlers(ctx: CriContext, streaming: StreamingServer): Handlers {
  const running = (ref: string) => {
    const record = ctx.container(ref);
    if (ctx.engineContainer(record.id)?.state.Status !== "running") {
      throw conflict(`container ${record.id} is not running`);
    }
    return record;
  };
  return {
    async ExecSync(request: { containerId: string; cmd: string[]; timeout: number }) {
      const record = running(request.containerId);
      if (request.cmd.length === 0) throw invalidArgument("cmd is required");
      const result = await execSync(ctx, record.id, {
        cmd: request.cmd,
        timeoutMs: request.timeout > 0 ? request.timeout * 1000 : undefined,
      });
      return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
    },

    Exec(request: {
      containerId: string;
      cmd: string[];
      tty: boolean;
      stdin: boolean;
      stdout: boolean;
      stderr: boolean;
    }) {
      const record = running(request.containerId);
      if (request.cmd.length === 0) throw invalidArgument("cmd is required");
      if (!request.stdin && !request.stdout && !request.stderr) {
        throw invalidArgument("one of stdin, stdout and stderr must be set");
      }
      if (request.tty && request.stderr) {
        throw invalidArgument("tty and stderr cannot both be set");
      }
      const url = streaming.urlFor({
        kind: "exec",
        containerId: record.id,
        cmd: request.cmd,
        tty: request.tty,
        stdin: request.stdin,
        stdout: request.stdout,
        stderr: request.stderr,
      });
      return Promise.resolve({ url });
    },

    Attach(request: {
      containerId: string;
      stdin: boolean;
      tty: boolean;
      stdout: boolean;
      stderr: boolean;
    }) {
      const record = running(request.containerId);
      if (!request.stdin && !request.stdout && !request.stderr) {
        throw invalidArgument("one of stdin, stdout and stderr must be set");
      }
      const url = streaming.urlFor({
        kind: "attach",
        containerId: record.id,
        tty: request.tty,
        stdin: request.stdin,
        stdout: request.stdout,
        stderr: request.stderr,
      });
      return Promise.resolve({ url });
    },

    PortForward(request: { podSandboxId: string; port: number[] }) {
      const sandbox = ctx.sandbox(request.podSandboxId);
      if (!ctx.sandboxReady(sandbox)) throw conflict(`pod sandbox ${sandbox.id} is not ready`);
      for (const port of request.port) {
        if (!(port > 0 && port < 65536)) throw invalidArgument(`invalid port ${port}`);
      }
      const url = streaming.urlFor({
        kind: "portforward",
        sandboxId: sandbox.id,
        ports: request.port,
      });
      return Promise.resolve({ url });
    },
  };
}

/** The streaming server's runtime side over the engine's managers. */
export function streamRuntime(
  ctx: CriContext,
  engine: {
    attach: (
      ref: string,
      options: {
        stdin?: boolean;
        stdout?: boolean;
        stderr?: boolean;
        write: (bytes: Uint8Array) => void;
        close: () => void;
      },
    ) => { input?: (chunk: Uint8Array | null) => void; detach: () => void };
    resize: (ref: string, size: { width: number; height: number }) => Promise<void>;
  },
): StreamRuntime {
  return {
    async open(request, sink: StreamSink, size?: TerminalSize): Promise<StreamSession> {
      const tty = request.tty;
      const write = (bytes: Uint8Array) => {
        if (tty) sink.write("stdout", bytes);
        else demux(bytes, (stream, chunk) => sink.write(stream, chunk));
      };
      if (request.kind === "attach") {
        const attached = engine.attach(request.containerId, {
          stdin: request.stdin,
          stdout: request.stdout,
          stderr: request.stderr,
          write,
          close: () => sink.end({}),
        });
        if (tty && size) await engine.resize(request.containerId, size).catch(() => {});
        return {
          input: attached.input,
          resize: (size) => void engine.resize(request.containerId, size).catch(() => {}),
          detach: attached.detach,
        };
      }
      const exec = ctx.backend.exec;
      const { Id: execId } = exec.create(request.containerId, {
        Cmd: request.cmd,
        Tty: tty,
        AttachStdin: request.stdin,
        AttachStdout: request.stdout,
        AttachStderr: request.stderr,
        ConsoleSize: tty && size ? [size.height, size.width] : undefined,
      });
      const session = exec.start(execId, {
        write,
        close: () => {
          let exitCode: number | undefined;
          try {
            exitCode = exec.inspect(execId).ExitCode ?? undefined;
          } catch {
            // Forgotten already: the status says nothing of the code.
          }
          sink.end({ exitCode });
        },
      });
      await session.started;
      return {
        input: session.input,
        resize: (size) => void exec.resize(execId, size).catch(() => {}),
        detach: session.detach,
      };
    },

    portAddress(sandboxId: string, port: number) {
      const sandbox = ctx.sandbox(sandboxId);
      if (sandbox.hostNetwork) return { hostname: "127.0.0.1", port };
      const ip = podIpOf(ctx, sandbox);
      if (!ip) throw conflict(`pod sandbox ${sandbox.id} has no address`);
      return { hostname: ip, port };
    },
  };
}

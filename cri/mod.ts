/**
 * pouch's CRI v1 (`runtime.v1`) server, which makes pouch a Kubernetes node runtime: the
 * RuntimeService and ImageService on a unix socket (`--listen-cri`), and the streaming server
 * for Exec, Attach and PortForward (`--stream-server-port`, on loopback). Started by the daemon
 * with `--enable-cri`; it calls the engine's container, exec, image and stats managers directly.
 *
 * ```
 * RuntimeService: runtime.ts (Version, Status, ...), sandbox.ts (pods), container.ts
 *                 (containers, logs, stats), exec.ts (ExecSync, Exec, Attach, PortForward)
 * ImageService:   image.ts
 * every RPC:      server.ts (errors -> gRPC statuses, logging)
 * ```
 *
 * @module
 */
import { parseListenAddress } from "../engine/config.ts";
import type { ContainerManager } from "../engine/container.ts";
import { messageOf } from "../engine/errors.ts";
import { containerHandlers } from "./container.ts";
import { type CriBackend, CriContext, type CriSettings } from "./context.ts";
import { execHandlers, streamRuntime } from "./exec.ts";
import { imageHandlers } from "./image.ts";
import { runtimeHandlers } from "./runtime.ts";
import { reconcilePodNetworks, removeOrphans, sandboxHandlers } from "./sandbox.ts";
import { IMAGE_SERVICE, RUNTIME_SERVICE, serveGrpc } from "./server.ts";
import { startStreamingServer } from "./streaming.ts";

export type { CriBackend, CriSettings } from "./context.ts";

/** Options of {@link startCri}. */
export interface CriOptions extends CriSettings {
  /** The gRPC socket, `unix:///var/run/pouchcri.sock`. */
  listen: string;
  /** The streaming server's port on loopback; 0 for any free one. */
  streamPort: number;
  /** The streaming server's address; 127.0.0.1 by default. */
  streamAddress?: string;
}

/** The engine parts the CRI needs, plus attach and resize for the streaming server. */
export interface CriEngine extends CriBackend {
  containers: CriBackend["containers"] & Pick<ContainerManager, "attach" | "resize">;
}

/** A running CRI server. */
export interface CriServer {
  /** The streaming server's base URL. */
  readonly streamUrl: string;
  /** Stops the gRPC server and the streaming server. */
  close(): Promise<void>;
}

/**
 * Starts the CRI: reconciles its records with the engine's containers (after a restart), then
 * serves the streaming server and the gRPC services.
 */
export async function startCri(engine: CriEngine, options: CriOptions): Promise<CriServer> {
  const ctx = new CriContext(engine, options);
  await reconcilePodNetworks(ctx);
  ctx.restore();
  await removeOrphans(ctx).catch((err) =>
    engine.log.warn("removing CRI orphans failed", { error: messageOf(err) })
  );
  const streaming = await startStreamingServer({
    hostname: options.streamAddress,
    port: options.streamPort,
    runtime: streamRuntime(ctx, engine.containers),
    log: engine.log,
  });
  const { path } = parseListenAddress(options.listen);
  let grpc;
  try {
    grpc = await serveGrpc({
      [RUNTIME_SERVICE]: {
        ...runtimeHandlers(ctx),
        ...sandboxHandlers(ctx),
        ...containerHandlers(ctx),
        ...execHandlers(ctx, streaming),
      },
      [IMAGE_SERVICE]: imageHandlers(ctx),
    }, { path, log: engine.log });
  } catch (err) {
    await streaming.close();
    throw err;
  }
  engine.log.info("CRI listening", { address: options.listen, streaming: streaming.url });
  return {
    streamUrl: streaming.url,
    async close() {
      await grpc.close();
      await streaming.close();
    },
  };
}

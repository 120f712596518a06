/**
 * The pod sandbox RPCs: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus and
 * ListPodSandbox. A sandbox is an infra container of the sandbox image (`catatonit -P`, or
 * Kubernetes' pause) that owns the pod's network, IPC and UTS namespaces (and PID when the pod
 * shares it); the pod's containers join them (see `containerCreateRequest`).
 *
 * Idempotency as the CRI asks: stopping or removing a sandbox that is gone succeeds.
 *
 * @module
 */
import { isNotFound, isNotModified, messageOf } from "../engine/errors.ts";
import { GrpcCode } from "../engine/grpc_errors.ts";
import type { CriContext } from "./context.ts";
import {
  addLocalhostSeccomp,
  LABEL_SANDBOX_ID,
  LABEL_TYPE,
  matchesId,
  matchesLabels,
  sandboxCreateRequest,
  sandboxName,
  type SandboxRecord,
  usesHostNetwork,
  validateSandboxConfig,
} from "./convert.ts";
import { podAddress } from "./pod_network.ts";
import { GrpcStatusError, type Handlers } from "./server.ts";
import type { Opt, PodSandboxConfig, SandboxState, StringMap } from "./types.ts";

/** How long the infra container gets to stop before SIGKILL (catatonit exits on SIGTERM). */
const SANDBOX_STOP_TIMEOUT = 2;

/** Makes sure `image` is present, pulling it when it is not. */
export async function ensureImage(ctx: CriContext, image: string): Promise<void> {
  try {
    await ctx.backend.images.resolve(image);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    ctx.backend.log.info("pulling the sandbox image", { image });
    await ctx.backend.images.pull(image);
  }
}

/** The sandbox RPCs' handlers. */
export function sandboxHandlers(ctx: CriContext): Handlers {
  return {
    async RunPodSandbox(request: { config: Opt<PodSandboxConfig>; runtimeHandler?: string }) {
      const config = validateSandboxConfig(request.config);
      const hostNetwork = usesHostNetwork(config);
      if (!hostNetwork && !ctx.settings.podNetworking) {
        throw new GrpcStatusError(
          GrpcCode.FAILED_PRECONDITION,
          "pod networking is not available (the daemon has no network manager): only " +
            "host-network pods (NamespaceOption.network = NODE) can run",
        );
      }
      await ensureImage(ctx, ctx.settings.sandboxImage);
      const podNetworks = ctx.podNetworks;
      // The CNI configuration directory's network, when it holds one; else the default bridge.
      const cniConfig = hostNetwork ? undefined : (await podNetworks?.scan())?.config;
      const create = sandboxCreateRequest(config, {
        image: ctx.settings.sandboxImage,
        // `none`: a namespace of its own with only loopback, for the CNI plugins to fill.
        networkMode: hostNetwork ? "host" : cniConfig ? "none" : "bridge",
      });
      await addLocalhostSeccomp(create, config.linux?.securityContext);
      if (cniConfig) {
        // Ports go through the network's plugins (portmap), not the network manager.
        delete create.HostConfig!.PortBindings;
        create.ExposedPorts = {};
      }
      if (request.runtimeHandler) create.HostConfig!.Runtime = request.runtimeHandler;
      if (config.logDirectory) await Deno.mkdir(config.logDirectory, { recursive: true });
      const containers = ctx.backend.containers;
      const { Id: id } = await containers.create(create, { name: sandboxName(config.metadata!) });
      let record: SandboxRecord = {
        id,
        config,
        createdAt: Date.now() * 1e6,
        runtimeHandler: request.runtimeHandler ?? "",
        hostNetwork,
        state: "ready",
      };
      try {
        if (cniConfig && podNetworks) {
          const netns = netnsOf(ctx, id);
          record = { ...record, cni: podNetworks.plan(cniConfig, { id, netns, config }) };
          // Persisted before the ADD: after a crash, the pod's stop and remove run the DEL.
          ctx.sandboxes.put(id, record);
          record = { ...record, cni: await podNetworks.add(id, record.cni!) };
        }
        await containers.start(id);
      } catch (err) {
        if (record.cni) {
          await podNetworks?.del(id, record.cni).catch((delErr) =>
            ctx.backend.log.warn("CNI DEL after a failed RunPodSandbox failed", {
              id: id.slice(0, 12),
              error: messageOf(delErr),
            })
          );
        }
        await containers.remove(id, { force: true }).catch(() => {});
        ctx.sandboxes.delete(id);
        throw err;
      }
      ctx.sandboxes.put(id, record);
      ctx.backend.log.info("pod sandbox running", {
        id: id.slice(0, 12),
        pod: `${config.metadata!.namespace}/${config.metadata!.name}`,
        ...(record.cni ? { network: record.cni.list.name, ip: podAddress(record.cni) } : {}),
      });
      return { podSandboxId: id };
    },

    async StopPodSandbox(request: { podSandboxId: string }) {
      const sandbox = findSandbox(ctx, request.podSandboxId);
      if (!sandbox) return {};
      for (const record of podContainers(ctx, sandbox.id)) {
        await stopQuietly(ctx, record.id, 0);
      }
      await stopQuietly(ctx, sandbox.id, SANDBOX_STOP_TIMEOUT);
      ctx.sandboxes.put(sandbox.id, { ...ctx.sandbox(sandbox.id), state: "notready" });
      // A stopped pod gives its address back, as the kubelet expects; a failed DEL fails the
      // stop, so that the kubelet tries again.
      await releaseNetwork(ctx, sandbox.id);
      return {};
    },

    async RemovePodSandbox(request: { podSandboxId: string }) {
      const sandbox = findSandbox(ctx, request.podSandboxId);
      if (!sandbox) return {};
      for (const record of podContainers(ctx, sandbox.id)) {
        await removeQuietly(ctx, record.id);
        ctx.containers.delete(record.id);
      }
      // Before the namespace goes with the infra container; a pod that cannot be detached is
      // still removed (its leftovers are the plugins' to find), or the kubelet would be stuck.
      await releaseNetwork(ctx, sandbox.id).catch((err) =>
        ctx.backend.log.warn("CNI DEL of a removed pod failed", {
          id: sandbox.id.slice(0, 12),
          error: messageOf(err),
        })
      );
      await removeQuietly(ctx, sandbox.id);
      ctx.sandboxes.delete(sandbox.id);
      return {};
    },

    PodSandboxStatus(request: { podSandboxId: string; verbose?: boolean }) {
      const sandbox = ctx.sandbox(request.podSandboxId);
      const infra = ctx.engineContainer(sandbox.id);
      return Promise.resolve({
        status: {
          id: sandbox.id,
          metadata: sandbox.config.metadata,
          state: stateOf(ctx, sandbox),
          createdAt: sandbox.createdAt,
          network: { ip: podIpOf(ctx, sandbox), additionalIps: [] },
          linux: {
            namespaces: {
              options: sandbox.config.linux?.securityContext?.namespaceOptions ?? {},
            },
          },
          labels: sandbox.config.labels ?? {},
          annotations: sandbox.config.annotations ?? {},
          runtimeHandler: sandbox.runtimeHandler,
        },
        // containerd's keys (`crictl inspectp -o go-template --template '{{.info.pid}}'`).
        info: request.verbose
          ? {
            info: JSON.stringify({
              pid: infra?.state.Pid ?? 0,
              processStatus: infra?.state.Status ?? "deleted",
              netNamespaceClosed: sandbox.cni?.phase === "removed",
              image: ctx.settings.sandboxImage,
              snapshotKey: infra?.snapshotKey ?? "",
              snapshotter: infra?.snapshotter ?? "",
              runtimeHandler: sandbox.runtimeHandler,
              runtimeType: "io.containerd.runc.v2",
              config: sandbox.config,
              ...(sandbox.cni
                ? { cniResult: sandbox.cni.result ?? null, cniConfigFile: sandbox.cni.file }
                : {}),
            }),
          }
          : {},
        containersStatuses: [],
        timestamp: Date.now() * 1e6,
      });
    },

    ListPodSandbox(request: {
      filter: Opt<{ id?: string; state: Opt<{ state: SandboxState }>; labelSelector?: StringMap }>;
    }) {
      const filter = request.filter;
      const items = ctx.sandboxes.list()
        .filter((sandbox) => matchesId(sandbox.id, filter?.id))
        .map((sandbox) => ({ sandbox, state: stateOf(ctx, sandbox) }))
        .filter(({ state }) => !filter?.state || filter.state.state === state)
        .filter(({ sandbox }) => matchesLabels(sandbox.config.labels, filter?.labelSelector))
        .map(({ sandbox, state }) => ({
          id: sandbox.id,
          metadata: sandbox.config.metadata,
          state,
          createdAt: sandbox.createdAt,
          labels: sandbox.config.labels ?? {},
          annotations: sandbox.config.annotations ?? {},
          runtimeHandler: sandbox.runtimeHandler,
        }));
      return Promise.resolve({ items });
    },
  };
}

/** Removes engine containers that a crash left labelled as the CRI's but without a record. */
export async function removeOrphans(ctx: CriContext): Promise<void> {
  for (const container of ctx.backend.containers.list()) {
    const type = container.config.Labels?.[LABEL_TYPE];
    if (type !== "sandbox" && type !== "container") continue;
    const known = type === "sandbox"
      ? ctx.sandboxes.find(container.id)
      : ctx.containers.find(container.id);
    if (known) continue;
    // A pod container whose sandbox is known but whose record was not written yet is one too.
    ctx.backend.log.info("removing a CRI container without a record", {
      id: container.id.slice(0, 12),
      sandbox: container.config.Labels?.[LABEL_SANDBOX_ID]?.slice(0, 12),
    });
    await removeQuietly(ctx, container.id);
  }
}

function findSandbox(ctx: CriContext, ref: string): SandboxRecord | undefined {
  try {
    return ctx.sandbox(ref);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function podContainers(ctx: CriContext, sandboxId: string) {
  return ctx.containers.list().filter((record) => record.sandboxId === sandboxId);
}

function stateOf(ctx: CriContext, sandbox: SandboxRecord): SandboxState {
  return ctx.sandboxReady(sandbox) ? "SANDBOX_READY" : "SANDBOX_NOTREADY";
}

/**
 * The pod's address: from its CNI result when the configuration directory's network has it,
 * else from the network manager's view of the infra container; empty on the host's network.
 */
export function podIpOf(ctx: CriContext, sandbox: SandboxRecord): string {
  if (sandbox.hostNetwork) return "";
  if (sandbox.cni) return podAddress(sandbox.cni);
  const settings = ctx.backend.containers.networkSettings(sandbox.id) as { IPAddress?: string };
  return settings.IPAddress ?? "";
}

/** The infra container's network namespace (the network manager made it at create). */
function netnsOf(ctx: CriContext, id: string): string {
  const settings = ctx.backend.containers.networkSettings(id) as { SandboxKey?: string };
  if (!settings.SandboxKey) throw new Error(`pod sandbox ${id} has no network namespace`);
  return settings.SandboxKey;
}

/** CNI DEL of a pod attached to the configuration directory's network (once). */
async function releaseNetwork(ctx: CriContext, id: string): Promise<void> {
  const sandbox = ctx.sandboxes.find(id);
  if (!sandbox?.cni || sandbox.cni.phase === "removed" || !ctx.podNetworks) return;
  const cni = await ctx.podNetworks.del(id, sandbox.cni);
  ctx.sandboxes.put(id, { ...ctx.sandbox(id), cni });
}

/**
 * After a daemon restart, before the records are reconciled: pods whose infra container is gone
 * give their CNI attachment back; running ones are CHECKed (the plugins say what is missing).
 */
export async function reconcilePodNetworks(ctx: CriContext): Promise<void> {
  const podNetworks = ctx.podNetworks;
  if (!podNetworks) return;
  for (const sandbox of ctx.sandboxes.list()) {
    if (!sandbox.cni || sandbox.cni.phase === "removed") continue;
    const infra = ctx.engineContainer(sandbox.id);
    if (!infra) {
      await releaseNetwork(ctx, sandbox.id).catch((err) =>
        ctx.backend.log.warn("CNI DEL of a pod whose infra container is gone failed", {
          id: sandbox.id.slice(0, 12),
          error: messageOf(err),
        })
      );
    } else if (infra.state.Status === "running") {
      await podNetworks.check(sandbox.id, sandbox.cni);
    }
  }
}

/** Stops an engine container; one already stopped or gone is fine. */
export async function stopQuietly(ctx: CriContext, id: string, timeout: number): Promise<void> {
  try {
    await ctx.backend.containers.stop(id, { timeout });
  } catch (err) {
    if (!isNotFound(err) && !isNotModified(err)) throw err;
  }
}

/** Removes an engine container (killing it if it runs); one already gone is fine. */
export async function removeQuietly(ctx: CriContext, id: string): Promise<void> {
  try {
    await ctx.backend.containers.remove(id, { force: true });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/**
 * The pod container RPCs: CreateContainer, StartContainer, StopContainer, RemoveContainer,
 * ListContainers, ContainerStatus, UpdateContainerResources, ReopenContainerLog, ContainerStats
 * and ListContainerStats, on the engine's container manager. Containers join their sandbox's
 * namespaces and write their output in the kubelet's CRI log format at the sandbox's log
 * directory plus the container's log path.
 *
 * Idempotency as the CRI asks: stopping or removing a container that is gone succeeds.
 *
 * @module
 */
import { conflict, isNotFound, isNotModified } from "../engine/errors.ts";
import type { Container } from "../engine/container.ts";
import type { StatsJson } from "../engine/stats.ts";
import type { CriContext } from "./context.ts";
import {
  addLocalhostSeccomp,
  containerCreateRequest,
  containerName,
  containerStateOf,
  type CriContainerRecord,
  exitReasonOf,
  matchesId,
  matchesLabels,
  ociResourcesOf,
  type SandboxRecord,
  toNanos,
  usageOf,
  validateContainerConfig,
} from "./convert.ts";
import { removeQuietly, stopQuietly } from "./sandbox.ts";
import type { Handlers } from "./server.ts";
import type {
  ContainerStateName,
  CriContainerConfig,
  LinuxResources,
  Opt,
  StringMap,
} from "./types.ts";

/** The container RPCs' handlers. */
export function containerHandlers(ctx: CriContext): Handlers {
  const engine = ctx.backend.containers;
  return {
    async CreateContainer(request: { podSandboxId: string; config: Opt<CriContainerConfig> }) {
      const sandbox = ctx.sandbox(request.podSandboxId);
      const config = validateContainerConfig(request.config);
      if (!ctx.sandboxReady(sandbox)) {
        throw conflict(`pod sandbox ${sandbox.id} is not ready: create a new one`);
      }
      const directory = sandbox.config.logDirectory ?? "";
      const logPath = directory && config.logPath
        ? `${directory.replace(/\/+$/, "")}/${config.logPath.replace(/^\/+/, "")}`
        : "";
      const create = containerCreateRequest(config, sandbox);
      await addLocalhostSeccomp(create, config.linux?.securityContext);
      const name = containerName(sandbox.config.metadata!, config.metadata!);
      // Site plugins may change the request (PouchContainer's CRI hook).
      const hooked = await ctx.backend.plugins?.beforeCriCreateContainer(create, {
        sandboxId: sandbox.id,
        name,
      }) ?? create;
      const { Id: id } = await engine.create(hooked, {
        name,
        criLogPath: logPath || undefined,
      });
      ctx.containers.put(id, {
        id,
        sandboxId: sandbox.id,
        config,
        createdAt: Date.now() * 1e6,
        logPath,
      });
      return { containerId: id };
    },

    async StartContainer(request: { containerId: string }) {
      const record = ctx.container(request.containerId);
      const sandbox = ctx.sandboxes.find(record.sandboxId);
      if (!sandbox || !ctx.sandboxReady(sandbox)) {
        throw conflict(`pod sandbox ${record.sandboxId} of container ${record.id} is not ready`);
      }
      try {
        await engine.start(record.id);
      } catch (err) {
        if (isNotModified(err)) throw conflict(`container ${record.id} is already running`);
        throw err;
      }
      return {};
    },

    async StopContainer(request: { containerId: string; timeout: number }) {
      const record = find(ctx, request.containerId);
      if (record) await stopQuietly(ctx, record.id, Math.max(0, request.timeout));
      return {};
    },

    async RemoveContainer(request: { containerId: string }) {
      const record = find(ctx, request.containerId);
      if (!record) return {};
      await removeQuietly(ctx, record.id);
      ctx.containers.delete(record.id);
      return {};
    },

    ListContainers(request: {
      filter: Opt<{
        id?: string;
        state: Opt<{ state: ContainerStateName }>;
        podSandboxId?: string;
        labelSelector?: StringMap;
      }>;
    }) {
      const filter = request.filter;
      const containers = ctx.containers.list()
        .filter((record) => matchesId(record.id, filter?.id))
        .filter((record) => matchesId(record.sandboxId, filter?.podSandboxId))
        .filter((record) => matchesLabels(record.config.labels, filter?.labelSelector))
        .map((record) => ({ record, engine: ctx.engineContainer(record.id) }))
        .filter(({ engine }) => !filter?.state || filter.state.state === containerStateOf(engine))
        .map(({ record, engine }) => ({
          id: record.id,
          podSandboxId: record.sandboxId,
          metadata: record.config.metadata,
          image: { image: record.config.image?.image ?? "" },
          imageRef: engine?.imageId ?? "",
          imageId: engine?.imageId ?? "",
          state: containerStateOf(engine),
          createdAt: record.createdAt,
          labels: record.config.labels ?? {},
          annotations: record.config.annotations ?? {},
        }));
      return Promise.resolve({ containers });
    },

    ContainerStatus(request: { containerId: string; verbose?: boolean }) {
      const record = ctx.container(request.containerId);
      const container = ctx.engineContainer(record.id);
      return Promise.resolve({
        status: statusOf(record, container),
        // containerd's keys, which scripts read (`crictl inspect -o go-template
        // --template '{{.info.pid}}'`).
        info: request.verbose
          ? {
            info: JSON.stringify({
              sandboxID: record.sandboxId,
              pid: container?.state.Pid ?? 0,
              removing: false,
              snapshotKey: container?.snapshotKey ?? "",
              snapshotter: container?.snapshotter ?? "",
              runtimeType: "io.containerd.runc.v2",
              runtimeOptions: { binaryName: container?.runtime ?? "" },
              config: record.config,
            }),
          }
          : {},
      });
    },

    async UpdateContainerResources(request: { containerId: string; linux: Opt<LinuxResources> }) {
      const record = ctx.container(request.containerId);
      const container = ctx.engineContainer(record.id);
      // Only a running task has cgroups to change; the new values are not kept for a restart.
      if (container?.state.Status === "running" || container?.state.Status === "paused") {
        await ctx.backend.client.tasks.update(record.id, ociResourcesOf(request.linux));
      }
      if (request.linux) {
        ctx.containers.put(record.id, {
          ...record,
          config: { ...record.config, linux: { ...record.config.linux, resources: request.linux } },
        });
      }
      return {};
    },

    async ReopenContainerLog(request: { containerId: string }) {
      const record = ctx.container(request.containerId);
      await engine.reopenLog(record.id);
      return {};
    },

    async ContainerStats(request: { containerId: string }) {
      const record = ctx.container(request.containerId);
      return { stats: await statsOf(ctx, record) };
    },

    async PodSandboxStats(request: { podSandboxId: string }) {
      const sandbox = ctx.sandbox(request.podSandboxId);
      if (!ctx.sandboxReady(sandbox)) throw conflict(`pod sandbox ${sandbox.id} is not ready`);
      return { stats: await podStatsOf(ctx, sandbox) };
    },

    async ListPodSandboxStats(request: {
      filter: Opt<{ id?: string; labelSelector?: StringMap }>;
    }) {
      const stats = [];
      for (const sandbox of ctx.sandboxes.list()) {
        if (!matchesId(sandbox.id, request.filter?.id)) continue;
        if (!matchesLabels(sandbox.config.labels, request.filter?.labelSelector)) continue;
        if (!ctx.sandboxReady(sandbox)) continue;
        const sample = await podStatsOf(ctx, sandbox).catch(() => undefined);
        if (sample) stats.push(sample);
      }
      return { stats };
    },

    async ListContainerStats(request: {
      filter: Opt<{ id?: string; podSandboxId?: string; labelSelector?: StringMap }>;
    }) {
      const filter = request.filter;
      const stats = [];
      for (const record of ctx.containers.list()) {
        if (!matchesId(record.id, filter?.id)) continue;
        if (!matchesId(record.sandboxId, filter?.podSandboxId)) continue;
        if (!matchesLabels(record.config.labels, filter?.labelSelector)) continue;
        if (ctx.engineContainer(record.id)?.state.Status !== "running") continue;
        // A container that stops while being sampled is left out rather than failing the list.
        const sample = await statsOf(ctx, record).catch(() => undefined);
        if (sample) stats.push(sample);
      }
      return { stats };
    },
  };
}

function find(ctx: CriContext, ref: string): CriContainerRecord | undefined {
  try {
    return ctx.container(ref);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** CRI's `ContainerStatus` of a pod container. */
function statusOf(record: CriContainerRecord, container: Container | undefined) {
  return {
    id: record.id,
    metadata: record.config.metadata,
    state: containerStateOf(container),
    createdAt: record.createdAt,
    startedAt: toNanos(container?.state.StartedAt),
    finishedAt: toNanos(container?.state.FinishedAt),
    exitCode: container?.state.ExitCode ?? 0,
    image: { image: record.config.image?.image ?? "" },
    imageRef: container?.imageId ?? "",
    imageId: container?.imageId ?? "",
    reason: container ? exitReasonOf(container) : "",
    message: container?.state.Error ?? "",
    labels: record.config.labels ?? {},
    annotations: record.config.annotations ?? {},
    mounts: record.config.mounts ?? [],
    logPath: record.logPath,
    user: container ? userOf(container) : null,
    // What the container was created or last updated with (the kubelet's in-place resize reads it).
    resources: record.config.linux?.resources ? { linux: record.config.linux.resources } : null,
  };
}

/** The user the container runs as, when it is given by number. */
function userOf(container: Container) {
  const [uid, gid] = (container.config.User ?? "").split(":");
  if (!uid || !/^\d+$/.test(uid)) return null;
  return {
    linux: {
      uid: Number(uid),
      gid: gid && /^\d+$/.test(gid) ? Number(gid) : 0,
      supplementalGroups: [],
    },
  };
}

/** One stats sample of a running engine container. */
async function sampleOf(ctx: CriContext, id: string): Promise<StatsJson> {
  for await (const stats of ctx.backend.monitor.stats(id, { oneShot: true })) return stats;
  throw conflict(`container ${id} has no stats`);
}

/** CRI's `ContainerStats` of a running pod container. */
async function statsOf(ctx: CriContext, record: CriContainerRecord, given?: StatsJson) {
  const sample = given ?? await sampleOf(ctx, record.id);
  const usage = usageOf(sample);
  return {
    attributes: {
      id: record.id,
      metadata: record.config.metadata,
      labels: record.config.labels ?? {},
      annotations: record.config.annotations ?? {},
    },
    cpu: usage.cpu,
    memory: usage.memory,
    writableLayer: await writableLayerOf(ctx, record.id),
  };
}

/** The container's writable layer: its rootfs snapshot's usage (containerd's, as its CRI's). */
async function writableLayerOf(ctx: CriContext, id: string) {
  const container = ctx.engineContainer(id);
  const usage = container
    ? await ctx.backend.client.snapshots.usage(container.snapshotter, container.snapshotKey)
      .catch(() => undefined)
    : undefined;
  return {
    timestamp: Date.now() * 1e6,
    fsId: { mountpoint: ctx.settings.imageFsPath },
    usedBytes: { value: usage?.size ?? 0 },
    inodesUsed: { value: usage?.inodes ?? 0 },
  };
}

/**
 * CRI's `PodSandboxStats`: the pod's CPU, memory and processes summed over its infra container
 * and its running containers, the infra container's network, and each container's stats.
 */
async function podStatsOf(ctx: CriContext, sandbox: SandboxRecord) {
  const infra = await sampleOf(ctx, sandbox.id);
  const containers = [];
  const usages = [usageOf(infra)];
  let processes = infra.pids_stats.current ?? 0;
  for (const record of ctx.containers.list()) {
    if (record.sandboxId !== sandbox.id) continue;
    if (ctx.engineContainer(record.id)?.state.Status !== "running") continue;
    const sample = await sampleOf(ctx, record.id).catch(() => undefined);
    if (!sample) continue;
    usages.push(usageOf(sample));
    processes += sample.pids_stats.current ?? 0;
    containers.push(await statsOf(ctx, record, sample));
  }
  const timestamp = Date.now() * 1e6;
  const sum = (pick: (usage: ReturnType<typeof usageOf>) => unknown) => ({
    value: usages.reduce((total, usage) => total + (pick(usage) as { value: number }).value, 0),
  });
  const interfaces = Object.entries(infra.networks ?? {}).map(([name, counters]) => ({
    name,
    rxBytes: { value: counters.rx_bytes },
    rxErrors: { value: counters.rx_errors },
    txBytes: { value: counters.tx_bytes },
    txErrors: { value: counters.tx_errors },
  }));
  return {
    attributes: {
      id: sandbox.id,
      metadata: sandbox.config.metadata,
      labels: sandbox.config.labels ?? {},
      annotations: sandbox.config.annotations ?? {},
    },
    linux: {
      cpu: { timestamp, usageCoreNanoSeconds: sum((u) => u.cpu.usageCoreNanoSeconds) },
      memory: {
        timestamp,
        workingSetBytes: sum((u) => u.memory.workingSetBytes),
        usageBytes: sum((u) => u.memory.usageBytes),
        rssBytes: sum((u) => u.memory.rssBytes),
      },
      network: {
        timestamp,
        defaultInterface: interfaces.find((i) => i.name === "eth0") ?? interfaces[0] ?? null,
        interfaces,
      },
      process: { timestamp, processCount: { value: processes } },
      containers,
    },
  };
}

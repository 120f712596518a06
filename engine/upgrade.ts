/**
 * In-place upgrade (`pouch upgrade`, `POST /containers/{id}/upgrade`): what a container becomes
 * when its image is replaced. This module is the pure part, the rules; the container manager
 * carries them out (new snapshot, spec, containerd update, restart, rollback).
 *
 * The rules, PouchContainer's with its gaps closed:
 * - Kept: ID, name, network namespace (so IPs, MACs, published ports), volumes and binds, the
 *   labels and env the user gave (the request's values merged over them by key), the restart
 *   policy and every other host setting the request does not change.
 * - Entrypoint: the request's wins; else one the user gave the old container explicitly (not
 *   inherited from the old image); else the new image's. Command likewise, each on its own; then
 *   Docker's create rule applies: an explicit entrypoint without a command does not take the
 *   image's command.
 * - The image's own env, labels, working dir, user, volumes and stop signal come from the new
 *   image, under what the user set.
 *
 * @module
 */
import { invalidArgument } from "./errors.ts";
import type { ContainerConfig, HostConfig } from "./types.ts";

/**
 * `POST /containers/{id}/upgrade`'s body: PouchContainer's `{Image, Cmd, Entrypoint}`, or the
 * fuller form of its design, config fields plus a `HostConfig`.
 */
export interface UpgradeRequest extends ContainerConfig {
  HostConfig?: HostConfig | null;
}

/** The host settings an upgrade may change; the rest (network, devices, ...) stay. */
export const UPGRADABLE_HOST_FIELDS = [
  "Binds",
  "Memory",
  "MemorySwap",
  "MemoryReservation",
  "NanoCpus",
  "CpuShares",
  "CpuPeriod",
  "CpuQuota",
  "CpusetCpus",
  "CpusetMems",
  "PidsLimit",
  "RestartPolicy",
  "Ulimits",
  "BlkioWeight",
] as const satisfies readonly (keyof HostConfig)[];

/** The config fields an upgrade may set besides the image, command and entrypoint. */
const UPGRADABLE_CONFIG_FIELDS = [
  "Env",
  "Labels",
  "WorkingDir",
  "User",
  "StopSignal",
  "StopTimeout",
] as const satisfies readonly (keyof ContainerConfig)[];

/** What {@link planUpgrade} needs of the container. */
export interface UpgradeSubject {
  /** The config the user gave at create (before the image's was merged in). */
  userConfig: ContainerConfig;
  hostConfig: HostConfig;
  /** The ID of the image the container runs now. */
  imageId: string;
}

/** The container after the upgrade, before the new image's config is merged in. */
export interface UpgradePlan {
  /** The new user config: the image reference, and what the user gave, merged. */
  userConfig: ContainerConfig;
  /** The new host config. */
  hostConfig: HostConfig;
}

/**
 * The container's new user config and host config, by the rules of the module doc.
 *
 * @throws InvalidArgument without an image, for a host setting an upgrade cannot change, and
 * ("image not changed") when neither the image nor any other setting changes.
 */
export function planUpgrade(
  subject: UpgradeSubject,
  request: UpgradeRequest,
  options: { newImageId: string },
): UpgradePlan {
  if (!request.Image) throw invalidArgument("upgrade needs an image: --image IMAGE");
  const { HostConfig: hostRequest, ...configRequest } = request;
  for (const key of Object.keys(hostRequest ?? {})) {
    const value = (hostRequest as Record<string, unknown>)[key];
    if (value === undefined || value === null) continue;
    if (!(UPGRADABLE_HOST_FIELDS as readonly string[]).includes(key)) {
      throw invalidArgument(`upgrade cannot change HostConfig.${key}`);
    }
  }
  const old = subject.userConfig;
  const userConfig: ContainerConfig = { ...old, Image: request.Image };
  // An explicit value of the request wins; else what the user gave before (absent: the image's).
  if (configRequest.Entrypoint !== undefined && configRequest.Entrypoint !== null) {
    userConfig.Entrypoint = [...configRequest.Entrypoint];
  }
  if (configRequest.Cmd !== undefined && configRequest.Cmd !== null) {
    userConfig.Cmd = [...configRequest.Cmd];
  }
  userConfig.Env = mergeEnv(old.Env ?? [], configRequest.Env ?? []);
  userConfig.Labels = { ...(old.Labels ?? {}), ...(configRequest.Labels ?? {}) };
  for (const key of UPGRADABLE_CONFIG_FIELDS) {
    if (key === "Env" || key === "Labels") continue;
    const value = configRequest[key];
    if (value !== undefined && value !== null && value !== "") {
      (userConfig as Record<string, unknown>)[key] = value;
    }
  }

  const hostConfig: HostConfig = { ...subject.hostConfig };
  for (const key of UPGRADABLE_HOST_FIELDS) {
    const value = hostRequest?.[key];
    if (value === undefined || value === null) continue;
    if (key === "Binds") {
      hostConfig.Binds = mergeBinds(subject.hostConfig.Binds ?? [], value as string[]);
    } else {
      (hostConfig as Record<string, unknown>)[key] = value;
    }
  }

  const unchanged: ContainerConfig = {
    ...old,
    Image: request.Image,
    Env: [...(old.Env ?? [])],
    Labels: { ...(old.Labels ?? {}) },
  };
  const changed = options.newImageId !== subject.imageId ||
    JSON.stringify(userConfig) !== JSON.stringify(unchanged) ||
    JSON.stringify(hostConfig) !== JSON.stringify(subject.hostConfig);
  if (!changed) {
    throw invalidArgument(
      `failed to upgrade container: image not changed (${request.Image}) and nothing else to change`,
    );
  }
  return { userConfig, hostConfig };
}

/** `overrides` over `base` by variable name (a name without `=` unsets nothing: it is kept). */
function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const name = (entry: string) => entry.split("=")[0]!;
  const overridden = new Set(overrides.map(name));
  return [...base.filter((entry) => !overridden.has(name(entry))), ...overrides];
}

/** `added` binds over `base` ones by destination: a new `-v` for the same path replaces it. */
function mergeBinds(base: readonly string[], added: readonly string[]): string[] {
  const destination = (bind: string) => (bind.split(":")[1] ?? bind).replace(/\/+$/, "");
  const replaced = new Set(added.map(destination));
  return [...base.filter((bind) => !replaced.has(destination(bind))), ...added];
}
